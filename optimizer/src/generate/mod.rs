//! Deterministic synthetic networks and Singles' Day order streams.
//!
//! Same config and seed, same dataset, on any machine and thread count: every store and every
//! order draws from its own ChaCha stream keyed by the seed and its position.

mod curve;
pub mod history;

use crate::model::{
    BrandId, Capabilities, City, CityId, Dc, DcId, LonLat, Mode, OpeningHours, Order, OrderId, OrderLine,
    Qty, Sku, Store, StoreId, Timestamp,
};
use rand::distr::weighted::WeightedIndex;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp, LogNormal, Normal, Zipf};
use rayon::prelude::*;

use crate::progress::Progress;

/// How many lines generated orders have.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum LineMix {
    /// 1 to 5 lines: 50% one line, 20% two, 15% three, 10% four, 5% five.
    Mixed,
    /// Exactly this many lines (1 to 50).
    Fixed(u8),
}

/// What to generate.
#[derive(Clone, Debug, PartialEq)]
pub struct GenConfig {
    pub stores: usize,
    pub skus: u32,
    pub orders: usize,
    pub seed: u64,
    /// Average SKUs carried per store (each store carries 50% to 150% of this).
    pub skus_per_store: u32,
    pub brands: u32,
    pub dcs: usize,
    pub lines: LineMix,
    /// Multiplies every store's on-hand stock (rounded down); below 1 makes stock scarce and
    /// contested, as planners' stress cases are.
    pub stock_scale: f64,
    /// Multiplies every store's daily capacity (randomized rounding, at least 1); below 1 makes
    /// capacity bind, as it does at a Singles' Day peak.
    pub capacity_scale: f64,
    /// Largest quantity per line (quantities are 1: 85%, 2: 10%, 3: 5%, capped here).
    pub max_qty: u32,
    /// Share of orders for in-store pickup.
    pub pickup_share: f64,
    /// Local midnight that starts the sale day.
    pub day_start: Timestamp,
    /// Name things with text ids (stores by city and number, `Köln-00042`; `SKU-00007`,
    /// `DC-00003`, `B-00012`) instead of their numbers.
    pub text_ids: bool,
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig {
            stores: 2_000,
            skus: 200,
            orders: 10_000,
            seed: 11,
            skus_per_store: 100,
            brands: 1_000,
            dcs: 8,
            lines: LineMix::Mixed,
            max_qty: 3,
            stock_scale: 1.0,
            capacity_scale: 1.0,
            pickup_share: 0.2,
            // 2026-11-11T00:00:00+08:00
            day_start: Timestamp(1_794_326_400),
            text_ids: false,
        }
    }
}

/// One row of `stock.csv`. Generated ids are numbered: the store is named by its position in
/// [`Dataset::stores`] (its id is [`StoreId::numbered`] of that position + 1) and the SKU by its
/// number (its id is [`Sku::numbered`] of it), so that millions of rows carry no text.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct StockRow {
    /// Position of the store in [`Dataset::stores`].
    pub store: u32,
    /// The SKU's number.
    pub sku: u32,
    pub on_hand: u32,
    pub safety_stock: u32,
}

/// A generated dataset.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub stores: Vec<Store>,
    pub stock: Vec<StockRow>,
    pub dcs: Vec<Dc>,
    pub orders: Vec<Order>,
    /// Whether ids are text (see [`GenConfig::text_ids`]).
    pub text_ids: bool,
}

impl Dataset {
    /// The id of SKU number `n` (as [`StockRow::sku`] numbers it).
    pub fn sku(&self, n: u32) -> Sku {
        sku_id(self.text_ids, n)
    }
}

fn sku_id(text: bool, n: u32) -> Sku {
    if text {
        Sku::parse(&format!("SKU-{n:05}")).expect("valid")
    } else {
        Sku::numbered(n)
    }
}

fn numbered<T>(
    text: bool,
    prefix: &str,
    n: u32,
    parse: impl Fn(&str) -> Result<T, crate::model::IdError>,
) -> T {
    let s = if text { format!("{prefix}{n:05}") } else { n.to_string() };
    parse(&s).expect("valid")
}

/// Why generation could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenError {
    #[error("{field} must be at least {min}")]
    TooSmall { field: &'static str, min: u64 },
    #[error("lines must be between 1 and 50")]
    Lines,
    #[error("pickup_share must be between 0 and 1")]
    PickupShare,
    #[error("stock_scale must be a positive number")]
    StockScale,
    #[error("capacity_scale must be a positive number")]
    CapacityScale,
    #[error("the city list is empty")]
    NoCities,
}

/// Regional hubs for DCs, in order of preference; missing ones are replaced by the largest cities.
const DC_CITIES: [&str; 10] = [
    "Beijing",
    "Shanghai",
    "Guangzhou",
    "Chengdu",
    "Wuhan",
    "Xi'an",
    "Shenyang",
    "Kunming",
    "Zhengzhou",
    "Hangzhou",
];

const STREAM_STORES: u64 = 1 << 40;
const STREAM_ORDERS: u64 = 2 << 40;

fn rng_for(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// Spread of stores and customers around a city centre, metres (grows with population).
fn city_sigma_m(city: &City) -> f64 {
    (4_000.0 * (city.population as f64 / 1e6).sqrt()).clamp(1_500.0, 15_000.0)
}

fn around(city: &City, rng: &mut ChaCha8Rng, scale: f64) -> LonLat {
    let n = Normal::new(0.0, city_sigma_m(city) * scale).expect("positive sigma");
    let p = city.location.offset_m(n.sample(rng), n.sample(rng));
    // Six decimals (about 0.1 m) keep the files small and round-trip exactly through text.
    let round = |v: f64| (v * 1e6).round() / 1e6;
    LonLat::new(round(p.lon()), round(p.lat())).expect("rounding keeps a valid position")
}

/// Generates a dataset over `cities`.
///
/// # Runtime
/// O(stores * skus_per_store + orders * lines), parallel over stores and orders.
pub fn generate(cities: &[City], cfg: &GenConfig, progress: &dyn Progress) -> Result<Dataset, GenError> {
    validate(cities, cfg)?;
    let by_pop =
        WeightedIndex::new(cities.iter().map(|c| c.population.max(1) as f64)).expect("positive weights");
    let sku_zipf = Zipf::new(f64::from(cfg.skus), 1.0).expect("n >= 1");
    let brand_zipf = Zipf::new(f64::from(cfg.brands), 1.1).expect("n >= 1");
    let capacity = LogNormal::new(200f64.ln(), 0.6).expect("valid");

    progress.stage("stores", cfg.stores as u64);
    let per_store: Vec<(Store, Vec<StockRow>)> = (0..cfg.stores)
        .into_par_iter()
        .map(|i| {
            let mut rng = rng_for(cfg.seed, STREAM_STORES + i as u64);
            let c = by_pop.sample(&mut rng);
            let id = if cfg.text_ids {
                // The city's name and a number (`Köln-00042`, `Frankfurt am Main-00003`): text as
                // retailers write it, spaces and non-ASCII letters included.
                let name = &cities[c].name;
                let mut cut = name.len().min(40);
                while !name.is_char_boundary(cut) {
                    cut -= 1;
                }
                StoreId::parse(&format!("{}-{:05}", &name[..cut], i + 1)).expect("valid")
            } else {
                StoreId::numbered(i as u32 + 1)
            };
            let pickup = rng.random_bool(0.7);
            let ship = rng.random_bool(0.85) || !pickup;
            let hours = if rng.random_bool(0.1) {
                OpeningHours::ALWAYS
            } else {
                let opens = 480 + 30 * rng.random_range(0..5u16);
                let closes = 1260 + 30 * rng.random_range(0..5u16);
                OpeningHours::new(opens, closes).expect("in range")
            };
            let store = Store {
                id,
                brand: numbered(cfg.text_ids, "B-", brand_zipf.sample(&mut rng) as u32, BrandId::parse),
                city: CityId(c as u16),
                location: around(&cities[c], &mut rng, 1.0),
                capabilities: Capabilities { pickup, ship },
                capacity_per_day: capacity.sample(&mut rng).clamp(20.0, 3_000.0) as u32,
                hours,
            };
            let store = if cfg.capacity_scale == 1.0 {
                store
            } else {
                let scaled = f64::from(store.capacity_per_day) * cfg.capacity_scale + rng.random::<f64>();
                Store { capacity_per_day: (scaled.floor() as u32).max(1), ..store }
            };
            let want = assortment_size(cfg, &mut rng);
            let mut skus: Vec<u32> = Vec::with_capacity(want);
            let mut attempts = 0;
            while skus.len() < want && attempts < want * 50 {
                attempts += 1;
                let s = sku_zipf.sample(&mut rng) as u32;
                if !skus.contains(&s) {
                    skus.push(s);
                }
            }
            skus.sort_unstable();
            let stock = skus
                .into_iter()
                .map(|s| {
                    let popular = if s <= 50 { 20 } else { 0 };
                    let on_hand =
                        if rng.random_bool(0.05) { 0 } else { 1 + popular + rng.random_range(0..20u32) };
                    let on_hand = if cfg.stock_scale == 1.0 {
                        on_hand
                    } else {
                        (f64::from(on_hand) * cfg.stock_scale + rng.random::<f64>()).floor() as u32
                    };
                    let safety_stock = rng.random_range(0..=2u32).min(on_hand);
                    StockRow { store: i as u32, sku: s, on_hand, safety_stock }
                })
                .collect();
            progress.advance(1);
            (store, stock)
        })
        .collect();
    let mut stores = Vec::with_capacity(per_store.len());
    let mut stock = Vec::new();
    for (s, rows) in per_store {
        stores.push(s);
        stock.extend(rows);
    }
    let dcs = pick_dcs(cities, cfg);
    let orders = orders(cities, &stores, cfg, progress)?;
    Ok(Dataset { stores, stock, dcs, orders, text_ids: cfg.text_ids })
}

/// Generates only the order stream of `cfg` for an existing set of stores (pickup orders name
/// pickup stores of the customer's city).
pub fn orders(
    cities: &[City],
    stores: &[Store],
    cfg: &GenConfig,
    progress: &dyn Progress,
) -> Result<Vec<Order>, GenError> {
    validate(cities, cfg)?;
    let by_pop =
        WeightedIndex::new(cities.iter().map(|c| c.population.max(1) as f64)).expect("positive weights");
    let sku_zipf = Zipf::new(f64::from(cfg.skus), 1.0).expect("n >= 1");
    Ok(generate_orders(cities, stores, cfg, &by_pop, &sku_zipf, progress))
}

fn validate(cities: &[City], cfg: &GenConfig) -> Result<(), GenError> {
    if cities.is_empty() {
        return Err(GenError::NoCities);
    }
    for (field, v, min) in
        [("stores", cfg.stores as u64, 1), ("skus", cfg.skus.into(), 1), ("brands", cfg.brands.into(), 1)]
    {
        if v < min {
            return Err(GenError::TooSmall { field, min });
        }
    }
    if let LineMix::Fixed(n) = cfg.lines {
        if !(1..=50).contains(&n) {
            return Err(GenError::Lines);
        }
    }
    if !(cfg.stock_scale.is_finite() && cfg.stock_scale > 0.0) {
        return Err(GenError::StockScale);
    }
    if !(cfg.capacity_scale.is_finite() && cfg.capacity_scale > 0.0) {
        return Err(GenError::CapacityScale);
    }
    if !(0.0..=1.0).contains(&cfg.pickup_share) {
        return Err(GenError::PickupShare);
    }
    Ok(())
}

fn assortment_size(cfg: &GenConfig, rng: &mut ChaCha8Rng) -> usize {
    let avg = cfg.skus_per_store.min(cfg.skus).max(1);
    let lo = (avg / 2).max(1);
    let hi = (avg + avg / 2).min(cfg.skus).max(lo);
    rng.random_range(lo..=hi) as usize
}

fn pick_dcs(cities: &[City], cfg: &GenConfig) -> Vec<Dc> {
    let n = cfg.dcs;
    let mut chosen: Vec<usize> =
        DC_CITIES.iter().filter_map(|name| cities.iter().position(|c| c.name == *name)).take(n).collect();
    let mut by_size: Vec<usize> = (0..cities.len()).collect();
    by_size.sort_by_key(|&i| std::cmp::Reverse(cities[i].population));
    for i in by_size {
        if chosen.len() >= n {
            break;
        }
        if !chosen.contains(&i) {
            chosen.push(i);
        }
    }
    chosen
        .into_iter()
        .enumerate()
        .map(|(k, c)| Dc {
            id: numbered(cfg.text_ids, "DC-", k as u32 + 1, DcId::parse),
            city: CityId(c as u16),
            location: cities[c].location,
        })
        .collect()
}

/// An order before it gets its id: (time, position, customer, pickup store, lines).
type Draft = (i64, usize, LonLat, Option<StoreId>, Vec<OrderLine>);

fn generate_orders(
    cities: &[City],
    stores: &[Store],
    cfg: &GenConfig,
    by_pop: &WeightedIndex<f64>,
    sku_zipf: &Zipf<f64>,
    progress: &dyn Progress,
) -> Vec<Order> {
    let mut pickup_by_city: Vec<Vec<&StoreId>> = vec![Vec::new(); cities.len()];
    for s in stores.iter().filter(|s| s.capabilities.pickup) {
        pickup_by_city[usize::from(s.city.0)].push(&s.id);
    }
    let line_weights = WeightedIndex::new([50.0, 20.0, 15.0, 10.0, 5.0]).expect("positive");
    let hour_weights = WeightedIndex::new(curve::HOURLY_WEIGHTS).expect("positive");
    let spike = Exp::new(1.0 / 600.0).expect("positive rate");
    progress.stage("orders", cfg.orders as u64);
    let mut drafts: Vec<Draft> = (0..cfg.orders)
        .into_par_iter()
        .map(|i| {
            let mut rng = rng_for(cfg.seed, STREAM_ORDERS + i as u64);
            let c = by_pop.sample(&mut rng);
            let customer = around(&cities[c], &mut rng, 1.5);
            let n_lines = match cfg.lines {
                LineMix::Mixed => line_weights.sample(&mut rng) + 1,
                LineMix::Fixed(n) => usize::from(n),
            }
            .min(cfg.skus as usize);
            let mut lines: Vec<OrderLine> = Vec::with_capacity(n_lines);
            while lines.len() < n_lines {
                let sku = sku_id(cfg.text_ids, sku_zipf.sample(&mut rng) as u32);
                if lines.iter().all(|l| l.sku != sku) {
                    let qty = match rng.random_range(0..100) {
                        0..85 => 1,
                        85..95 => 2,
                        _ => 3,
                    };
                    let qty = qty.min(i64::from(cfg.max_qty.max(1)));
                    lines.push(OrderLine::new(sku, Qty::parse(qty).expect("1..=3")));
                }
            }
            let pickup = (rng.random_bool(cfg.pickup_share) && !pickup_by_city[c].is_empty())
                .then(|| pickup_by_city[c][rng.random_range(0..pickup_by_city[c].len())].clone());
            let offset = if rng.random_bool(0.3) {
                (spike.sample(&mut rng) as i64).min(86_399)
            } else {
                hour_weights.sample(&mut rng) as i64 * 3600 + rng.random_range(0..3600)
            };
            progress.advance(1);
            (cfg.day_start.0 + offset, i, customer, pickup, lines)
        })
        .collect();
    drafts.sort_by_key(|d| (d.0, d.1));
    drafts
        .into_iter()
        .enumerate()
        .map(|(rank, (t, _, customer, pickup, lines))| {
            let id = OrderId::parse(&format!("SD{:09}", rank + 1)).expect("valid id");
            let mode = if pickup.is_some() { Mode::Pickup } else { Mode::Ship };
            Order::new(id, Timestamp(t), customer, mode, pickup, lines).expect("generated orders are valid")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::NoProgress;
    use crate::testkit;

    fn cities() -> Vec<City> {
        let mut beijing = testkit::city();
        beijing.name = "Beijing".into();
        beijing.location = LonLat::new(116.4, 39.9).unwrap();
        vec![testkit::city(), beijing]
    }

    fn small() -> GenConfig {
        GenConfig { stores: 300, skus: 50, orders: 500, skus_per_store: 10, ..GenConfig::default() }
    }

    #[test]
    fn same_seed_same_dataset() {
        let a = generate(&cities(), &small(), &NoProgress).unwrap();
        let b = generate(&cities(), &small(), &NoProgress).unwrap();
        assert_eq!(a.stores, b.stores);
        assert_eq!(a.stock, b.stock);
        assert_eq!(a.orders, b.orders);
        let c = generate(&cities(), &GenConfig { seed: 12, ..small() }, &NoProgress).unwrap();
        assert_ne!(a.stores, c.stores);
    }

    #[test]
    fn orders_are_in_time_order_within_the_day_and_valid() {
        let d = generate(&cities(), &small(), &NoProgress).unwrap();
        assert_eq!(d.orders.len(), 500);
        let start = small().day_start;
        assert!(d.orders.windows(2).all(|w| w[0].created_at() <= w[1].created_at()));
        assert!(d.orders.iter().all(|o| (0..86_400).contains(&(o.created_at().0 - start.0))));
        let first_hour = d.orders.iter().filter(|o| o.created_at().0 - start.0 < 3600).count();
        assert!(first_hour > 100, "midnight spike missing: {first_hour}");
        let pickups = d.orders.iter().filter(|o| o.mode() == Mode::Pickup).count();
        assert!((40..160).contains(&pickups), "{pickups}");
    }

    #[test]
    fn stock_is_sparse_and_popular_skus_are_carried_more() {
        let d = generate(&cities(), &small(), &NoProgress).unwrap();
        let per_store = d.stock.len() as f64 / 300.0;
        assert!((7.0..13.0).contains(&per_store), "{per_store}");
        let count = |sku| d.stock.iter().filter(|r| r.sku == sku).count();
        assert!(count(1) > 3 * count(40), "{} vs {}", count(1), count(40));
        assert_eq!(d.dcs.len(), 2);
        assert_eq!(d.dcs[0].city, CityId(1), "Beijing is the first DC city");
    }

    #[test]
    fn refuses_bad_settings() {
        assert_eq!(
            generate(&cities(), &GenConfig { stores: 0, ..small() }, &NoProgress).unwrap_err(),
            GenError::TooSmall { field: "stores", min: 1 }
        );
        assert_eq!(
            generate(&cities(), &GenConfig { lines: LineMix::Fixed(0), ..small() }, &NoProgress).unwrap_err(),
            GenError::Lines
        );
        assert_eq!(generate(&[], &small(), &NoProgress).unwrap_err(), GenError::NoCities);
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert_eq!(
                generate(&cities(), &GenConfig { capacity_scale: bad, ..small() }, &NoProgress).unwrap_err(),
                GenError::CapacityScale
            );
        }
    }

    #[test]
    fn capacity_scale_shrinks_every_store_to_at_least_one() {
        let full = generate(&cities(), &small(), &NoProgress).unwrap();
        let cut = generate(&cities(), &GenConfig { capacity_scale: 0.02, ..small() }, &NoProgress).unwrap();
        let total = |d: &Dataset| d.stores.iter().map(|s| u64::from(s.capacity_per_day)).sum::<u64>();
        let (a, b) = (total(&full) as f64, total(&cut) as f64);
        // Randomized rounding keeps the scaled total within a few per cent of its expectation
        // (plus the floor of one per store).
        assert!((b - 0.02 * a).abs() < 0.1 * 0.02 * a + 300.0, "{b} vs 0.02 x {a}");
        assert!(cut.stores.iter().all(|s| s.capacity_per_day >= 1));
        // The same stores in the same places; only capacities (and what follows in the stream)
        // change.
        assert!(full.stores.iter().zip(&cut.stores).all(|(x, y)| x.location == y.location));
    }
}
