//! Maps of a dataset and of what happened to its orders: layers as data (GeoJSON, a kepler.gl
//! configuration), one self-contained HTML map that opens offline, and PNG/SVG pictures of the
//! map and of KPI charts.
//!
//! Everything starts from a [`MapData`]: the sites (stores, DCs, destination cities) and one
//! [`View`] per result (a plan, a replay, each scenario of a simulation). A view holds per-store
//! figures, flows aggregated from each store or DC to the destination city, unfilled demand on a
//! grid and the KPIs its charts draw. [`source`] builds views from the results the other
//! commands write; [`geojson`], [`html`] and [`render`] write them out.

pub mod geojson;
pub mod html;
pub mod land;
pub mod render;
pub mod source;

use optimizer::model::{LonLat, Network, Timestamp};
use rustc_hash::FxHashMap;
use serde::Serialize;

/// Distance histogram bins, kilometres wide.
pub const DISTANCE_BIN_KM: f64 = 5.0;
/// Bins of the distance histogram; the last one holds everything farther.
pub const DISTANCE_BINS: usize = 30;

/// A store on the map (the union of every view's stores, by id).
#[derive(Clone, Debug, Serialize)]
pub struct StoreSite {
    pub id: String,
    pub city: String,
    pub lon: f64,
    pub lat: f64,
}

/// A DC on the map.
#[derive(Clone, Debug, Serialize)]
pub struct DcSite {
    pub id: String,
    pub lon: f64,
    pub lat: f64,
}

/// A destination city: where flows end.
#[derive(Clone, Debug, Serialize)]
pub struct CitySite {
    pub name: String,
    pub lon: f64,
    pub lat: f64,
}

/// Where a flow starts.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Site {
    /// Index into [`MapData::stores`].
    Store(u32),
    /// Index into [`MapData::dcs`].
    Dc(u32),
}

/// One store's figures in one view.
#[derive(Copy, Clone, Debug, Default, PartialEq, Serialize)]
pub struct StoreFig {
    /// The store takes orders in this view (it exists, ships or takes pickups).
    pub open: bool,
    /// Orders per day.
    pub capacity: u32,
    /// Orders (shipments and pickups) it served.
    pub orders: u32,
    /// Its SKUs with stock at the start that had none left available at the end.
    pub stockouts: u32,
}

impl StoreFig {
    /// Orders served as a percentage of the day's capacity (0 without capacity).
    pub fn utilisation_pct(&self) -> f64 {
        if self.capacity == 0 {
            0.0
        } else {
            100.0 * f64::from(self.orders) / f64::from(self.capacity)
        }
    }
}

/// Orders from one store or DC to one destination city.
#[derive(Clone, Debug, PartialEq)]
pub struct Flow {
    pub from: Site,
    /// Index into [`MapData::cities`].
    pub to: u16,
    pub orders: u32,
    /// Mean distance of its shipments.
    ///
    /// # Units
    /// Kilometres.
    pub mean_km: f64,
}

/// Unfilled orders in one grid cell.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UnfilledCell {
    /// Cell column and row: the cell spans `[x, x + 1) * grid_deg` in longitude and the same in
    /// latitude with `y`.
    pub x: i32,
    pub y: i32,
    pub orders: u32,
    /// Distinct SKUs the unfilled orders asked for.
    pub skus: u32,
    /// The SKU asked for by most of them (ties: the smallest id).
    pub top_sku: String,
}

/// One local hour of a view.
#[derive(Copy, Clone, Debug, Default, PartialEq, Serialize)]
pub struct HourFig {
    pub orders: u32,
    pub filled: u32,
    /// Stores that had reached their capacity by the end of this hour.
    pub stores_saturated: u32,
}

/// The figures a view's charts and legend show.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Kpis {
    pub orders: u64,
    pub filled: u64,
    pub from_dcs: u64,
    pub unfilled: u64,
    pub split: u64,
    /// Mean distance per order served, kilometres.
    pub mean_km: f64,
    /// Local hours from the first order's day.
    pub hourly: Vec<HourFig>,
    /// Orders served per distance bin ([`DISTANCE_BIN_KM`] wide; the last bin holds the rest).
    pub distance_hist: Vec<u64>,
    pub stores_used: u64,
    pub stores_at_capacity: u64,
}

impl Kpis {
    pub fn fill_rate_pct(&self) -> f64 {
        if self.orders == 0 {
            0.0
        } else {
            100.0 * self.filled as f64 / self.orders as f64
        }
    }
}

/// One result on the map.
#[derive(Clone, Debug)]
pub struct View {
    pub name: String,
    /// Aligned with [`MapData::stores`].
    pub stores: Vec<StoreFig>,
    /// Orders per DC, aligned with [`MapData::dcs`].
    pub dcs: Vec<u32>,
    /// Sorted by (from, to).
    pub flows: Vec<Flow>,
    /// Sorted by (y, x).
    pub unfilled: Vec<UnfilledCell>,
    pub kpis: Kpis,
}

/// Everything a map shows.
#[derive(Clone, Debug)]
pub struct MapData {
    pub title: String,
    pub stores: Vec<StoreSite>,
    pub dcs: Vec<DcSite>,
    pub cities: Vec<CitySite>,
    /// Side of the unfilled-demand grid cells, degrees.
    pub grid_deg: f64,
    pub views: Vec<View>,
}

impl MapData {
    /// The sites of `network`, with no view yet.
    pub fn new(title: &str, network: &Network, grid_km: f64) -> MapData {
        let cities = network.cities();
        MapData {
            title: title.to_string(),
            stores: network
                .stores()
                .iter()
                .map(|s| StoreSite {
                    id: s.id.to_string(),
                    city: cities.get(usize::from(s.city.0)).map_or_else(String::new, |c| c.name.clone()),
                    lon: s.location.lon(),
                    lat: s.location.lat(),
                })
                .collect(),
            dcs: network
                .dcs()
                .iter()
                .map(|d| DcSite { id: d.id.to_string(), lon: d.location.lon(), lat: d.location.lat() })
                .collect(),
            cities: cities
                .iter()
                .map(|c| CitySite { name: c.name.clone(), lon: c.location.lon(), lat: c.location.lat() })
                .collect(),
            grid_deg: grid_km / 111.32,
            views: Vec::new(),
        }
    }

    /// Longitude/latitude bounds of every site, `[west, south, east, north]`.
    pub fn bounds(&self) -> [f64; 4] {
        let mut b = [f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY];
        let points =
            self.stores.iter().map(|s| (s.lon, s.lat)).chain(self.dcs.iter().map(|d| (d.lon, d.lat)));
        for (lon, lat) in points {
            b = [b[0].min(lon), b[1].min(lat), b[2].max(lon), b[3].max(lat)];
        }
        if !b[0].is_finite() {
            return [-180.0, -60.0, 180.0, 75.0];
        }
        b
    }
}

/// What happened to one order, as a view is built from it.
pub struct Fate<'a> {
    /// Where the order goes (the customer, or the pickup store's customer location).
    pub to: LonLat,
    pub created_at: Timestamp,
    /// `None`: unfilled.
    pub from: Option<Site>,
    pub shipments: u32,
    /// Summed over shipments.
    pub km: f64,
    /// The SKUs it asked for (read only when it is unfilled).
    pub skus: &'a mut dyn Iterator<Item = &'a str>,
}

/// Builds a [`View`] from fates in arrival order.
pub struct ViewBuilder<'m> {
    map: &'m MapData,
    nearest_city: rstar::RTree<rstar::primitives::GeomWithData<[f64; 2], u16>>,
    zone: optimizer::model::TimeZone,
    first_day: Option<i64>,
    stores: Vec<StoreFig>,
    served_today: Vec<(i64, u32)>,
    saturated_at: Vec<u32>,
    dcs: Vec<u32>,
    flows: FxHashMap<(Site, u16), (u32, f64)>,
    unfilled: FxHashMap<(i32, i32), (u32, FxHashMap<String, u32>)>,
    kpis: Kpis,
    served_km: f64,
}

impl<'m> ViewBuilder<'m> {
    /// `stores`: the view's store figures (open, capacity, stock-outs) aligned with `map.stores`;
    /// stores past its end (ones a simulated scenario added to the map) are absent from this
    /// view. Orders are counted from the fates.
    pub fn new(
        map: &'m MapData,
        zone: optimizer::model::TimeZone,
        mut stores: Vec<StoreFig>,
    ) -> ViewBuilder<'m> {
        assert!(stores.len() <= map.stores.len(), "at most one figure per store of the map");
        stores.resize(map.stores.len(), StoreFig::default());
        let nearest_city = rstar::RTree::bulk_load(
            map.cities
                .iter()
                .enumerate()
                .map(|(i, c)| rstar::primitives::GeomWithData::new([c.lon, c.lat], i as u16))
                .collect(),
        );
        let n = stores.len();
        ViewBuilder {
            map,
            nearest_city,
            zone,
            first_day: None,
            stores,
            served_today: vec![(i64::MIN, 0); n],
            saturated_at: Vec::new(),
            dcs: vec![0; map.dcs.len()],
            flows: FxHashMap::default(),
            unfilled: FxHashMap::default(),
            kpis: Kpis { distance_hist: vec![0; DISTANCE_BINS], ..Kpis::default() },
            served_km: 0.0,
        }
    }

    /// Counts one order.
    pub fn add(&mut self, fate: Fate<'_>) {
        let day = self.zone.local_day(fate.created_at);
        let first = *self.first_day.get_or_insert(day);
        let hour = ((day - first).max(0) * 24
            + i64::from(self.zone.local_second_of_day(fate.created_at) / 3600)) as usize;
        if self.kpis.hourly.len() <= hour {
            self.kpis.hourly.resize(hour + 1, HourFig::default());
            self.saturated_at.resize(hour + 1, 0);
        }
        self.kpis.orders += 1;
        self.kpis.hourly[hour].orders += 1;
        let Some(from) = fate.from else {
            self.kpis.unfilled += 1;
            let g = self.map.grid_deg;
            let key = ((fate.to.lon() / g).floor() as i32, (fate.to.lat() / g).floor() as i32);
            let cell = self.unfilled.entry(key).or_default();
            cell.0 += 1;
            for sku in fate.skus {
                *cell.1.entry(sku.to_string()).or_default() += 1;
            }
            return;
        };
        self.kpis.filled += 1;
        self.kpis.hourly[hour].filled += 1;
        self.kpis.split += u64::from(fate.shipments > 1);
        self.served_km += fate.km;
        let bin = ((fate.km / DISTANCE_BIN_KM) as usize).min(DISTANCE_BINS - 1);
        self.kpis.distance_hist[bin] += 1;
        match from {
            Site::Store(s) => {
                let f = &mut self.stores[s as usize];
                f.orders += 1;
                let today = &mut self.served_today[s as usize];
                if today.0 != day {
                    *today = (day, 0);
                }
                today.1 += 1;
                if f.capacity > 0 && today.1 == f.capacity {
                    self.saturated_at[hour] += 1;
                }
            }
            Site::Dc(d) => {
                self.kpis.from_dcs += 1;
                self.dcs[d as usize] += 1;
            }
        }
        let to = self.nearest_city.nearest_neighbor(&[fate.to.lon(), fate.to.lat()]).map_or(0, |c| c.data);
        let flow = self.flows.entry((from, to)).or_default();
        flow.0 += 1;
        flow.1 += fate.km;
    }

    pub fn finish(mut self, name: &str) -> View {
        let mut saturated = 0;
        for (h, n) in self.kpis.hourly.iter_mut().zip(&self.saturated_at) {
            saturated += n;
            h.stores_saturated = saturated;
        }
        self.kpis.mean_km = if self.kpis.filled > 0 { self.served_km / self.kpis.filled as f64 } else { 0.0 };
        self.kpis.stores_used = self.stores.iter().filter(|s| s.orders > 0).count() as u64;
        self.kpis.stores_at_capacity =
            self.stores.iter().filter(|s| s.capacity > 0 && s.orders >= s.capacity).count() as u64;
        let mut flows: Vec<Flow> = self
            .flows
            .into_iter()
            .map(|((from, to), (orders, km))| Flow { from, to, orders, mean_km: km / f64::from(orders) })
            .collect();
        flows.sort_by_key(|f| (f.from, f.to));
        let mut unfilled: Vec<UnfilledCell> = self
            .unfilled
            .into_iter()
            .map(|((x, y), (orders, skus))| {
                let top_sku = skus
                    .iter()
                    .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
                    .map_or_else(String::new, |(s, _)| s.clone());
                UnfilledCell { x, y, orders, skus: skus.len() as u32, top_sku }
            })
            .collect();
        unfilled.sort_by_key(|c| (c.y, c.x));
        View { name: name.to_string(), stores: self.stores, dcs: self.dcs, flows, unfilled, kpis: self.kpis }
    }
}

/// A view's change from a baseline: per store and per flow.
pub struct Comparison {
    /// Orders served, this view minus the baseline, per store of the map.
    pub store_orders: Vec<i64>,
    /// (from, to, baseline orders, this view's orders) for every flow in either.
    pub flows: Vec<(Site, u16, u32, u32)>,
}

impl Comparison {
    pub fn new(base: &View, other: &View) -> Comparison {
        let store_orders = base
            .stores
            .iter()
            .zip(&other.stores)
            .map(|(a, b)| i64::from(b.orders) - i64::from(a.orders))
            .collect();
        let mut flows: std::collections::BTreeMap<(Site, u16), (u32, u32)> = Default::default();
        for f in &base.flows {
            flows.entry((f.from, f.to)).or_default().0 = f.orders;
        }
        for f in &other.flows {
            flows.entry((f.from, f.to)).or_default().1 = f.orders;
        }
        Comparison {
            store_orders,
            flows: flows
                .into_iter()
                .filter(|(_, (a, b))| a != b)
                .map(|((s, t), (a, b))| (s, t, a, b))
                .collect(),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    /// Two stores, a DC, two cities and one view with a flow from each source and an unfilled
    /// cell.
    pub fn tiny() -> MapData {
        let mut m = MapData {
            title: "t".into(),
            stores: vec![
                StoreSite { id: "a".into(), city: "X".into(), lon: 121.0, lat: 31.0 },
                StoreSite { id: "b".into(), city: "Y".into(), lon: 116.0, lat: 40.0 },
            ],
            dcs: vec![DcSite { id: "d".into(), lon: 120.0, lat: 30.0 }],
            cities: vec![
                CitySite { name: "X".into(), lon: 121.0, lat: 31.0 },
                CitySite { name: "Y".into(), lon: 116.0, lat: 40.0 },
            ],
            grid_deg: 0.5,
            views: vec![],
        };
        let kpis = Kpis { orders: 4, filled: 3, from_dcs: 1, unfilled: 1, ..Kpis::default() };
        m.views.push(View {
            name: "base".into(),
            stores: vec![
                StoreFig { open: true, capacity: 10, orders: 2, stockouts: 1 },
                StoreFig { open: true, capacity: 5, orders: 0, stockouts: 0 },
            ],
            dcs: vec![1],
            flows: vec![
                Flow { from: Site::Store(0), to: 0, orders: 2, mean_km: 3.5 },
                Flow { from: Site::Dc(0), to: 1, orders: 1, mean_km: 1100.0 },
            ],
            unfilled: vec![UnfilledCell { x: 200, y: 50, orders: 1, skus: 1, top_sku: "s1".into() }],
            kpis,
        });
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> MapData {
        let mut m = tests_support::tiny();
        m.views.clear();
        m
    }

    fn fate<'a>(
        lon: f64,
        lat: f64,
        hour: i64,
        from: Option<Site>,
        km: f64,
        skus: &'a mut dyn Iterator<Item = &'a str>,
    ) -> Fate<'a> {
        // 2026-11-11T00:00+08:00 plus `hour` hours.
        let t = Timestamp(1_794_326_400 + hour * 3600);
        Fate { to: LonLat::new(lon, lat).unwrap(), created_at: t, from, shipments: 1, km, skus }
    }

    #[test]
    fn a_view_counts_flows_stores_saturation_and_unfilled_cells() {
        let m = map();
        let figs = vec![
            StoreFig { open: true, capacity: 2, orders: 0, stockouts: 0 },
            StoreFig { open: true, capacity: 10, orders: 0, stockouts: 1 },
        ];
        let mut b = ViewBuilder::new(&m, optimizer::model::TimeZone::china(), figs);
        let none: &[&str] = &[];
        b.add(fate(121.1, 31.1, 0, Some(Site::Store(0)), 12.0, &mut none.iter().copied()));
        b.add(fate(116.1, 40.0, 1, Some(Site::Store(0)), 7.0, &mut none.iter().copied()));
        b.add(fate(121.2, 31.0, 1, Some(Site::Dc(0)), 400.0, &mut none.iter().copied()));
        let skus = ["s1", "s2"];
        b.add(fate(100.2, 25.3, 3, None, 0.0, &mut skus.iter().copied()));
        let skus = ["s2"];
        b.add(fate(100.3, 25.4, 3, None, 0.0, &mut skus.iter().copied()));
        let v = b.finish("v");
        assert_eq!((v.kpis.orders, v.kpis.filled, v.kpis.from_dcs, v.kpis.unfilled), (5, 3, 1, 2));
        assert_eq!(v.stores[0].orders, 2);
        assert_eq!(v.dcs, vec![1]);
        // Store a reached its capacity of 2 in hour 1 and stays saturated.
        let sat: Vec<u32> = v.kpis.hourly.iter().map(|h| h.stores_saturated).collect();
        assert_eq!(sat, vec![0, 1, 1, 1]);
        assert_eq!(v.kpis.stores_at_capacity, 1);
        // Flows: a to X, a to Y, the DC to X.
        let flows: Vec<(Site, u16, u32)> = v.flows.iter().map(|f| (f.from, f.to, f.orders)).collect();
        assert_eq!(flows, vec![(Site::Store(0), 0, 1), (Site::Store(0), 1, 1), (Site::Dc(0), 0, 1)]);
        assert_eq!(v.unfilled.len(), 1);
        assert_eq!((v.unfilled[0].orders, v.unfilled[0].skus, v.unfilled[0].top_sku.as_str()), (2, 2, "s2"));
        assert_eq!(v.kpis.distance_hist[2], 1);
        assert_eq!(v.kpis.distance_hist[1], 1);
        assert_eq!(v.kpis.distance_hist[DISTANCE_BINS - 1], 1);
        assert!((v.kpis.mean_km - 419.0 / 3.0).abs() < 1e-9);

        let mut other = v.clone();
        other.stores[0].orders = 0;
        other.flows.remove(0);
        let c = Comparison::new(&v, &other);
        assert_eq!(c.store_orders, vec![-2, 0]);
        assert_eq!(c.flows, vec![(Site::Store(0), 0, 1, 0)]);
    }
}
