//! Synthetic purchase histories with a planted structure, so that recommendation quality can be
//! measured against a known truth.
//!
//! The structure, documented in ARCHITECTURE.md ("Magic Mirror"):
//! - **Catalogue.** SKU `n` belongs to category `n mod categories` shifted by a seeded hash, and
//!   is as popular as the stores' assortments make it (Zipf over SKU numbers, exponent 1).
//! - **Segments.** Each customer belongs to one of `segments` segments. A segment has a taste
//!   vector over categories (four favourite categories weighted 40/25/15/10%, the rest spread
//!   evenly) and a list of 300 favourite items drawn from that taste.
//! - **Habits.** A customer has 1 to 6 habits: an item (70% from her segment's favourites, the
//!   rest from her segment's taste) bought about every `period` days (log-normal, median 21,
//!   7 to 90), each purchase 0.8 to 1.2 periods after the last. 30% of habits start later in
//!   the year; 25% stop before its end (a habit she dropped).
//! - **Exploration.** Each basket adds on average 0.8 items she has not planned: 55% from her
//!   segment's favourites, 30% from its taste, 15% from the whole catalogue by popularity. 15%
//!   of explored items become habits from then on.
//! - **Visits.** Baskets fall uniformly over the 365 days before `end`; how many depends on the
//!   customer's activity (log-normal around `purchases / customers` items). 45% of baskets are
//!   bought in one of her home city's stores (the store is written), the rest online.
//!
//! Same config and seed, same history, on any machine and thread count: each customer draws
//! from her own ChaCha stream.

use super::rng_for;
use crate::model::{Store, Timestamp};
use rand::distr::weighted::WeightedIndex;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal, Poisson};
use rayon::prelude::*;

const STREAM_HISTORY: u64 = 3 << 40;
const STREAM_SEGMENTS: u64 = 4 << 40;
const DAY_S: i64 = 86_400;
const FAVOURITES: usize = 300;

/// What history to generate.
#[derive(Clone, Debug, PartialEq)]
pub struct HistoryConfig {
    pub customers: u32,
    /// Purchases to aim for in all (the total varies by a few percent).
    pub purchases: u64,
    /// SKUs are numbered 1 to `skus`.
    pub skus: u32,
    pub categories: u32,
    pub segments: u32,
    pub seed: u64,
    /// The history ends here; it covers the 365 days before.
    pub end: Timestamp,
}

/// One purchased item.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Purchase {
    /// Customer number, from 1.
    pub customer: u32,
    /// SKU number, from 1.
    pub sku: u32,
    pub at: Timestamp,
    /// Position of the store in the store list, for a basket bought in a store.
    pub store: Option<u32>,
}

/// The category of SKU number `sku`.
pub fn category(seed: u64, categories: u32, sku: u32) -> u32 {
    let mut z = (seed ^ u64::from(sku)).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    ((z ^ (z >> 31)) % u64::from(categories.max(1))) as u32
}

struct World {
    /// Items of each category, and their popularity weights.
    by_category: Vec<(Vec<u32>, Option<WeightedIndex<f64>>)>,
    popular: WeightedIndex<f64>,
    taste: Vec<WeightedIndex<f64>>,
    favourites: Vec<Vec<u32>>,
    favourite_pick: WeightedIndex<f64>,
    /// Stores of each city (positions), and the city of each customer draws from `by_pop`.
    city_stores: Vec<Vec<u32>>,
    by_pop: WeightedIndex<f64>,
}

impl World {
    fn new(cfg: &HistoryConfig, stores: &[Store], cities: usize, populations: &[u64]) -> Option<Self> {
        let cats = cfg.categories.clamp(1, cfg.skus) as usize;
        let mut items: Vec<Vec<u32>> = vec![Vec::new(); cats];
        for n in 1..=cfg.skus {
            items[category(cfg.seed, cats as u32, n) as usize].push(n);
        }
        let by_category = items
            .into_iter()
            .map(|list| {
                let w = WeightedIndex::new(list.iter().map(|&n| 1.0 / f64::from(n))).ok();
                (list, w)
            })
            .collect::<Vec<_>>();
        let popular = WeightedIndex::new((1..=cfg.skus).map(|n| 1.0 / f64::from(n))).ok()?;
        let mut taste = Vec::new();
        let mut favourites = Vec::new();
        for s in 0..cfg.segments.max(1) {
            let mut rng = rng_for(cfg.seed, STREAM_SEGMENTS + u64::from(s));
            let mut w = vec![0.1 / cats as f64; cats];
            for share in [0.4, 0.25, 0.15, 0.1] {
                w[rng.random_range(0..cats)] += share;
            }
            // Categories with no items get no weight.
            for (c, (list, _)) in by_category.iter().enumerate() {
                if list.is_empty() {
                    w[c] = 0.0;
                }
            }
            let t = WeightedIndex::new(&w).ok()?;
            let mut fav = Vec::with_capacity(FAVOURITES);
            for _ in 0..FAVOURITES * 4 {
                if fav.len() >= FAVOURITES.min(cfg.skus as usize / 2).max(1) {
                    break;
                }
                let item = pick_in(&by_category, t.sample(&mut rng), &mut rng);
                if !fav.contains(&item) {
                    fav.push(item);
                }
            }
            taste.push(t);
            favourites.push(fav);
        }
        let favourite_pick = WeightedIndex::new((1..=FAVOURITES).map(|r| 1.0 / (r as f64).powf(0.7))).ok()?;
        let mut city_stores = vec![Vec::new(); cities];
        for (i, s) in stores.iter().enumerate() {
            if let Some(list) = city_stores.get_mut(s.city.0 as usize) {
                list.push(i as u32);
            }
        }
        let by_pop = WeightedIndex::new(populations.iter().map(|&p| p.max(1) as f64)).ok()?;
        Some(World { by_category, popular, taste, favourites, favourite_pick, city_stores, by_pop })
    }

    fn favourite(&self, segment: usize, rng: &mut ChaCha8Rng) -> u32 {
        let fav = &self.favourites[segment];
        loop {
            let r = self.favourite_pick.sample(rng);
            if r < fav.len() {
                return fav[r];
            }
        }
    }

    fn tasted(&self, segment: usize, rng: &mut ChaCha8Rng) -> u32 {
        pick_in(&self.by_category, self.taste[segment].sample(rng), rng)
    }
}

fn pick_in(by_category: &[(Vec<u32>, Option<WeightedIndex<f64>>)], c: usize, rng: &mut ChaCha8Rng) -> u32 {
    let (list, w) = &by_category[c];
    w.as_ref().map_or(1, |w| list[w.sample(rng)])
}

struct Habit {
    item: u32,
    period_s: f64,
    from: i64,
    until: i64,
    next: i64,
}

/// Generates the history of `cfg.customers` customers over `stores` (their cities index
/// `populations`), in customer then time order. `None` when the catalogue or city list is empty.
pub fn history(
    cfg: &HistoryConfig,
    stores: &[Store],
    populations: &[u64],
    progress: &dyn crate::progress::Progress,
) -> Option<Vec<Purchase>> {
    if cfg.skus == 0 || populations.is_empty() {
        return None;
    }
    let world = World::new(cfg, stores, populations.len(), populations)?;
    let mean_items = (cfg.purchases as f64 / f64::from(cfg.customers.max(1))).max(1.0);
    let activity = LogNormal::new(0.0, 0.5).expect("valid");
    let period = LogNormal::new(21f64.ln(), 0.5).expect("valid");
    let explore = Poisson::new(0.8).expect("valid");
    let end = cfg.end.0;
    let start = end - 365 * DAY_S;
    progress.stage("history", u64::from(cfg.customers));
    let per_customer: Vec<Vec<Purchase>> = (1..=cfg.customers)
        .into_par_iter()
        .map(|customer| {
            let mut rng = rng_for(cfg.seed, STREAM_HISTORY + u64::from(customer));
            let segment = rng.random_range(0..world.favourites.len());
            let city = world.by_pop.sample(&mut rng);
            let home = &world.city_stores[city];
            let homes: Vec<u32> =
                (0..home.len().min(2)).map(|_| home[rng.random_range(0..home.len())]).collect();
            let budget = (mean_items * activity.sample(&mut rng)).max(2.0);
            let baskets = ((budget / 3.0).round() as usize).clamp(2, 400);
            let mut times: Vec<i64> = (0..baskets).map(|_| rng.random_range(start..end)).collect();
            times.sort_unstable();
            times.dedup();
            let mut habits: Vec<Habit> = (0..rng.random_range(1..=6))
                .map(|_| {
                    let item = if rng.random_bool(0.7) {
                        world.favourite(segment, &mut rng)
                    } else {
                        world.tasted(segment, &mut rng)
                    };
                    let late = rng.random_bool(0.3);
                    new_habit(item, &period, start, end, &mut rng, late)
                })
                .collect();
            let mut out = Vec::new();
            let mut basket: Vec<u32> = Vec::new();
            for &t in &times {
                basket.clear();
                for h in &mut habits {
                    if t >= h.from && t < h.until && t >= h.next {
                        basket.push(h.item);
                        h.next = t + (h.period_s * rng.random_range(0.8..1.2)) as i64;
                    }
                }
                let mut n = explore.sample(&mut rng) as usize;
                if basket.is_empty() {
                    n = n.max(1);
                }
                for _ in 0..n {
                    let roll: f64 = rng.random();
                    let item = if roll < 0.55 {
                        world.favourite(segment, &mut rng)
                    } else if roll < 0.85 {
                        world.tasted(segment, &mut rng)
                    } else {
                        world.popular.sample(&mut rng) as u32 + 1
                    };
                    if !basket.contains(&item) {
                        basket.push(item);
                        if rng.random_bool(0.15) && !habits.iter().any(|h| h.item == item) {
                            let mut h = new_habit(item, &period, t, end, &mut rng, false);
                            h.from = t;
                            h.next = t + h.period_s as i64;
                            habits.push(h);
                        }
                    }
                }
                basket.truncate(12);
                let store = if !homes.is_empty() && rng.random_bool(0.45) {
                    Some(homes[usize::from(homes.len() > 1 && rng.random_bool(0.2))])
                } else {
                    None
                };
                out.extend(basket.iter().map(|&sku| Purchase { customer, sku, at: Timestamp(t), store }));
            }
            progress.advance(1);
            out
        })
        .collect();
    let total = per_customer.iter().map(Vec::len).sum();
    let mut all = Vec::with_capacity(total);
    for p in per_customer {
        all.extend(p);
    }
    Some(all)
}

fn new_habit(
    item: u32,
    period: &LogNormal<f64>,
    start: i64,
    end: i64,
    rng: &mut ChaCha8Rng,
    late: bool,
) -> Habit {
    let period_s = period.sample(rng).clamp(7.0, 90.0) * DAY_S as f64;
    let from = if late { rng.random_range(start..end) } else { start };
    let until = if rng.random_bool(0.25) { rng.random_range(from..end) } else { end };
    Habit { item, period_s, from, until, next: from + (period_s * rng.random::<f64>()) as i64 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::City;

    fn cfg(customers: u32) -> HistoryConfig {
        HistoryConfig {
            customers,
            purchases: u64::from(customers) * 20,
            skus: 500,
            categories: 20,
            segments: 8,
            seed: 3,
            end: Timestamp(1_794_326_400),
        }
    }

    fn stores() -> Vec<Store> {
        let city = City {
            name: "X".into(),
            region: String::new(),
            location: crate::model::LonLat::new(121.0, 31.0).unwrap(),
            population: 1,
        };
        let data = super::super::generate(
            &[city],
            &super::super::GenConfig { stores: 5, orders: 0, ..Default::default() },
            &crate::progress::NoProgress,
        )
        .unwrap();
        data.stores
    }

    #[test]
    fn same_seed_same_history_and_time_ordered_per_customer() {
        let s = stores();
        let a = history(&cfg(200), &s, &[1], &crate::progress::NoProgress).unwrap();
        let b = history(&cfg(200), &s, &[1], &crate::progress::NoProgress).unwrap();
        assert_eq!(a, b);
        assert!(a.windows(2).all(|w| (w[0].customer, w[0].at) <= (w[1].customer, w[1].at)));
        let per = a.len() as f64 / 200.0;
        assert!((10.0..40.0).contains(&per), "{per} purchases per customer");
        assert!(a.iter().all(|p| (1..=500).contains(&p.sku) && p.store.is_none_or(|s| s < 5)));
        assert!(a.iter().any(|p| p.store.is_some()) && a.iter().any(|p| p.store.is_none()));
    }

    #[test]
    fn customers_buy_again_what_they_bought() {
        let a = history(&cfg(300), &stores(), &[1], &crate::progress::NoProgress).unwrap();
        let (mut repeat, mut all) = (0, 0);
        let mut seen = rustc_hash::FxHashSet::default();
        for p in &a {
            all += 1;
            if !seen.insert((p.customer, p.sku)) {
                repeat += 1;
            }
        }
        let share = f64::from(repeat) / f64::from(all);
        assert!((0.3..0.9).contains(&share), "repeat share {share}");
    }
}
