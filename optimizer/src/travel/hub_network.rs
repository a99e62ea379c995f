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
    /// Constant-time answer to "nearest hub" over the cities' area; rstar beyond it.
    grid: HubGrid,
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
        let grid = HubGrid::build(&locs, &nearest_city);
        HubNetwork { config, cities: locs, nearest_city, grid, linehaul_s }
    }

    /// The hub city nearest to `at`.
    pub fn hub_of(&self, at: LonLat) -> CityId {
        let p = at.unit_vector();
        match self.grid.nearest(at, &p) {
            Some(city) => CityId(city),
            None => CityId(self.nearest_city.nearest_neighbor(&p).map_or(0, |c| c.data)),
        }
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

/// A lon/lat grid over the cities' bounding box (plus a margin) in which each cell lists the
/// only cities that can be nearest to some point of the cell, so that "nearest hub" costs a
/// handful of distance computations instead of an R-tree search (the router asks it once per
/// shipment).
///
/// A city `x` can be nearest to a point `p` of a cell with centre `c` and radius `r` (the
/// largest chord from `c` to the cell's boundary) only if `|c - x| <= d0 + 2r`, where `d0` is
/// the chord from `c` to its own nearest city: `|p - x| <= |p - nearest(c)| <= d0 + r` and
/// `|c - x| <= |p - x| + r`. Chords on the unit sphere are Euclidean distances, so the
/// triangle inequality holds and the answer is exact.
#[derive(Debug, Clone, Default)]
struct HubGrid {
    lon0: f64,
    lat0: f64,
    cols: usize,
    rows: usize,
    /// Per cell, `candidates[offsets[i]..offsets[i + 1]]`.
    offsets: Vec<u32>,
    candidates: Vec<u16>,
    units: Vec<[f64; 3]>,
}

impl HubGrid {
    const CELL_DEG: f64 = 0.5;
    const MARGIN_DEG: f64 = 2.0;

    fn build(cities: &[LonLat], tree: &RTree<GeomWithData<[f64; 3], u16>>) -> HubGrid {
        if cities.is_empty() {
            return HubGrid::default();
        }
        let fold = |f: fn(f64, f64) -> f64, init: f64, get: fn(LonLat) -> f64| {
            cities.iter().copied().map(get).fold(init, f)
        };
        let lon0 = (fold(f64::min, f64::INFINITY, LonLat::lon) - Self::MARGIN_DEG).max(-180.0);
        let lat0 = (fold(f64::min, f64::INFINITY, LonLat::lat) - Self::MARGIN_DEG).max(-89.0);
        let lon1 = (fold(f64::max, f64::NEG_INFINITY, LonLat::lon) + Self::MARGIN_DEG).min(180.0);
        let lat1 = (fold(f64::max, f64::NEG_INFINITY, LonLat::lat) + Self::MARGIN_DEG).min(89.0);
        let cols = ((lon1 - lon0) / Self::CELL_DEG).ceil().max(1.0) as usize;
        let rows = ((lat1 - lat0) / Self::CELL_DEG).ceil().max(1.0) as usize;
        let units: Vec<[f64; 3]> = cities.iter().map(|c| c.unit_vector()).collect();
        let unit = |lon: f64, lat: f64| {
            LonLat::new(lon.clamp(-180.0, 180.0), lat.clamp(-90.0, 90.0)).map(|p| p.unit_vector())
        };
        let mut offsets = Vec::with_capacity(cols * rows + 1);
        let mut candidates = Vec::new();
        offsets.push(0);
        for row in 0..rows {
            for col in 0..cols {
                let (w, s) = (lon0 + col as f64 * Self::CELL_DEG, lat0 + row as f64 * Self::CELL_DEG);
                let h = Self::CELL_DEG / 2.0;
                let Ok(c) = unit(w + h, s + h) else {
                    offsets.push(candidates.len() as u32);
                    continue;
                };
                // The farthest boundary point of a small lon/lat cell is a corner or an edge
                // midpoint; the 1% and the absolute slack cover the curvature in between.
                let r = [
                    (0.0, 0.0),
                    (h, 0.0),
                    (2.0 * h, 0.0),
                    (0.0, h),
                    (2.0 * h, h),
                    (0.0, 2.0 * h),
                    (h, 2.0 * h),
                    (2.0 * h, 2.0 * h),
                ]
                .iter()
                .filter_map(|(dx, dy)| unit(w + dx, s + dy).ok())
                .map(|b| chord(&c, &b))
                .fold(0.0, f64::max)
                    * 1.01
                    + 1e-9;
                let d0 = tree.nearest_neighbor(&c).map_or(0.0, |n| chord(&c, n.geom()));
                let bound = d0 + 2.0 * r;
                candidates.extend(
                    units.iter().enumerate().filter(|(_, u)| chord(&c, u) <= bound).map(|(i, _)| i as u16),
                );
                offsets.push(candidates.len() as u32);
            }
        }
        HubGrid { lon0, lat0, cols, rows, offsets, candidates, units }
    }

    /// The nearest city to `at` (unit vector `p`), or `None` outside the grid.
    fn nearest(&self, at: LonLat, p: &[f64; 3]) -> Option<u16> {
        let col = (at.lon() - self.lon0) / Self::CELL_DEG;
        let row = (at.lat() - self.lat0) / Self::CELL_DEG;
        if !(col >= 0.0 && row >= 0.0 && (col as usize) < self.cols && (row as usize) < self.rows) {
            return None;
        }
        let cell = row as usize * self.cols + col as usize;
        let list = &self.candidates[self.offsets[cell] as usize..self.offsets[cell + 1] as usize];
        list.iter().copied().min_by(|&a, &b| {
            chord2(p, &self.units[usize::from(a)]).total_cmp(&chord2(p, &self.units[usize::from(b)]))
        })
    }
}

fn chord2(a: &[f64; 3], b: &[f64; 3]) -> f64 {
    (a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)
}

fn chord(a: &[f64; 3], b: &[f64; 3]) -> f64 {
    chord2(a, b).sqrt()
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
            region: "00".into(),
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

    /// Four networks of 5 real cities plus 80 pseudo-random ones over eastern China, built once.
    fn random_networks() -> &'static [(Vec<City>, HubNetwork)] {
        static NETS: std::sync::OnceLock<Vec<(Vec<City>, HubNetwork)>> = std::sync::OnceLock::new();
        NETS.get_or_init(|| {
            (1u64..=4)
                .map(|seed| {
                    let mut cs = cities();
                    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
                    let mut next = || {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        (x >> 11) as f64 / (1u64 << 53) as f64
                    };
                    for i in 0..80 {
                        let (lon, lat) = (100.0 + 25.0 * next(), 20.0 + 22.0 * next());
                        cs.push(city(&format!("c{i}"), lon, lat));
                    }
                    let net = HubNetwork::new(&cs, HubNetworkConfig { neighbours: 2, ..Default::default() });
                    (cs, net)
                })
                .collect()
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config {
            rng_algorithm: proptest::test_runner::RngAlgorithm::ChaCha,
            ..proptest::test_runner::Config::with_cases(2000)
        })]

        /// The grid gives the same hub as a brute-force scan, inside the grid and beyond it.
        #[test]
        fn grid_hub_is_the_nearest_city(lon in 70.0f64..140.0, lat in 15.0f64..56.0, seed in 0usize..4) {
            let (cs, net) = &random_networks()[seed];
            let at = LonLat::new(lon, lat).unwrap();
            let brute = (0..cs.len())
                .min_by(|&a, &b| at.distance_m(cs[a].location).total_cmp(&at.distance_m(cs[b].location)))
                .unwrap();
            let got = usize::from(net.hub_of(at).0);
            let (dg, db) = (at.distance_m(cs[got].location), at.distance_m(cs[brute].location));
            proptest::prop_assert!((dg - db).abs() < 1e-6, "got {got} at {dg} m, nearest {brute} at {db} m");
        }
    }
}
