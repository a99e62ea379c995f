use super::{Leg, Origin, TravelCost};
use crate::model::{City, CityId, LonLat};
use petgraph::algo::{dijkstra, min_spanning_tree};
use petgraph::data::FromElements;
use petgraph::graph::{NodeIndex, UnGraph};
use rstar::primitives::GeomWithData;
use rstar::RTree;

/// Settings of the line-haul network.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct HubNetworkConfig {
    /// Each city is linked to this many nearest cities (plus a spanning tree for connectivity).
    pub neighbours: usize,
    /// Road length over great-circle length.
    pub detour_factor: f64,
    /// Line-haul truck speed, metres per second.
    pub linehaul_speed_mps: f64,
    /// Courier speed for the first and last mile, metres per second.
    pub courier_speed_mps: f64,
    /// Sorting time at each hub the parcel passes, seconds.
    pub hub_transfer_s: u32,
    /// Picking and packing at the origin, seconds.
    pub handling_s: u32,
}

impl Default for HubNetworkConfig {
    fn default() -> Self {
        HubNetworkConfig {
            neighbours: 4,
            detour_factor: 1.3,
            linehaul_speed_mps: 70_000.0 / 3600.0,
            courier_speed_mps: 25_000.0 / 3600.0,
            hub_transfer_s: 2 * 3600,
            handling_s: 3600,
        }
    }
}

/// Delivery time over a graph of city hubs: courier to the origin's hub, line haul along the
/// fastest hub path (all pairs precomputed with Dijkstra), courier from the destination's hub.
/// Within one city the parcel goes straight by courier.
#[derive(Debug, Clone)]
pub struct HubNetwork {
    config: HubNetworkConfig,
    cities: Vec<LonLat>,
    nearest_city: RTree<GeomWithData<[f64; 3], u16>>,
    /// Line-haul seconds between hubs, row-major `n x n`.
    linehaul_s: Vec<u32>,
}

impl HubNetwork {
    /// Builds the hub graph over `cities` and precomputes all-pairs line-haul times.
    ///
    /// # Runtime
    /// O(n^2 log n) for n cities (n Dijkstra runs on a sparse graph, plus an n^2 spanning tree).
    pub fn new(cities: &[City], config: HubNetworkConfig) -> HubNetwork {
        let n = cities.len();
        let locs: Vec<LonLat> = cities.iter().map(|c| c.location).collect();
        let seconds = |a: usize, b: usize| {
            locs[a].distance_m(locs[b]) * config.detour_factor / config.linehaul_speed_mps
        };
        // Spanning tree of the complete graph guarantees every hub is reachable.
        let mut complete = UnGraph::<(), f64>::new_undirected();
        let nodes: Vec<NodeIndex> = (0..n).map(|_| complete.add_node(())).collect();
        for a in 0..n {
            for b in a + 1..n {
                complete.add_edge(nodes[a], nodes[b], seconds(a, b));
            }
        }
        let mut graph = UnGraph::<(), f64>::from_elements(min_spanning_tree(&complete));
        for a in 0..n {
            let mut by_dist: Vec<usize> = (0..n).filter(|&b| b != a).collect();
            by_dist.sort_by(|&x, &y| seconds(a, x).total_cmp(&seconds(a, y)));
            for &b in by_dist.iter().take(config.neighbours) {
                if graph.find_edge(nodes[a], nodes[b]).is_none() {
                    graph.add_edge(nodes[a], nodes[b], seconds(a, b));
                }
            }
        }
        let transfer = f64::from(config.hub_transfer_s);
        let mut linehaul_s = vec![0u32; n * n];
        for a in 0..n {
            // Each hop also costs a sort at the hub it reaches.
            let dist = dijkstra(&graph, nodes[a], None, |e| *e.weight() + transfer);
            for (node, secs) in dist {
                linehaul_s[a * n + node.index()] = secs.round() as u32;
            }
        }
        let nearest_city = RTree::bulk_load(
            locs.iter().enumerate().map(|(i, l)| GeomWithData::new(l.unit_vector(), i as u16)).collect(),
        );
        HubNetwork { config, cities: locs, nearest_city, linehaul_s }
    }

    /// The hub city nearest to `at`.
    pub fn hub_of(&self, at: LonLat) -> CityId {
        let p = at.unit_vector();
        CityId(self.nearest_city.nearest_neighbor(&p).map_or(0, |c| c.data))
    }

    /// Line-haul time between two hubs.
    ///
    /// # Units
    /// Seconds.
    pub fn linehaul_s(&self, from: CityId, to: CityId) -> u32 {
        let n = self.cities.len();
        self.linehaul_s[usize::from(from.0) * n + usize::from(to.0)]
    }

    fn courier_s(&self, a: LonLat, b: LonLat) -> u32 {
        (a.distance_m(b) / self.config.courier_speed_mps) as u32
    }
}

impl TravelCost for HubNetwork {
    fn leg(&self, from: Origin, to: LonLat) -> Leg {
        let distance_m = from.location.distance_m(to);
        let dest_hub = self.hub_of(to);
        let travel = if dest_hub == from.city {
            self.courier_s(from.location, to)
        } else {
            let origin_hub = self.cities[usize::from(from.city.0)];
            let dest = self.cities[usize::from(dest_hub.0)];
            self.courier_s(from.location, origin_hub)
                .saturating_add(self.linehaul_s(from.city, dest_hub))
                .saturating_add(self.courier_s(dest, to))
        };
        Leg { distance_m, eta_s: self.config.handling_s.saturating_add(travel) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn city(name: &str, lon: f64, lat: f64) -> City {
        City {
            name: name.into(),
            province_code: "00".into(),
            location: LonLat::new(lon, lat).unwrap(),
            population: 1,
        }
    }

    fn cities() -> Vec<City> {
        vec![
            city("Shanghai", 121.458, 31.222),
            city("Suzhou", 120.595, 31.304),
            city("Nanjing", 118.778, 32.061),
            city("Beijing", 116.397, 39.908),
            city("Urumqi", 87.601, 43.801),
        ]
    }

    #[test]
    fn every_hub_reaches_every_other_and_times_are_symmetric() {
        let net = HubNetwork::new(&cities(), HubNetworkConfig { neighbours: 1, ..Default::default() });
        for a in 0..5 {
            for b in 0..5 {
                let (x, y) = (net.linehaul_s(CityId(a), CityId(b)), net.linehaul_s(CityId(b), CityId(a)));
                assert_eq!(x, y);
                assert_eq!(x == 0, a == b, "{a}->{b}");
            }
        }
    }

    #[test]
    fn line_haul_never_beats_the_straight_line_at_truck_speed() {
        let cfg = HubNetworkConfig::default();
        let cs = cities();
        let net = HubNetwork::new(&cs, cfg);
        for a in 0..5 {
            for b in 0..5 {
                let straight = cs[a].location.distance_m(cs[b].location) / cfg.linehaul_speed_mps;
                assert!(f64::from(net.linehaul_s(CityId(a as u16), CityId(b as u16))) >= straight.floor());
            }
        }
    }

    #[test]
    fn same_city_goes_by_courier_and_other_cities_by_line_haul() {
        let net = HubNetwork::new(&cities(), HubNetworkConfig::default());
        let from = Origin { location: LonLat::new(121.40, 31.20).unwrap(), city: CityId(0) };
        let local = net.leg(from, LonLat::new(121.50, 31.25).unwrap());
        let far = net.leg(from, LonLat::new(116.40, 39.90).unwrap());
        assert!(local.eta_s < 3 * 3600, "{local:?}");
        assert!(far.eta_s > 12 * 3600, "{far:?}");
        assert_eq!(net.hub_of(LonLat::new(116.5, 39.8).unwrap()), CityId(3));
    }
}
