//! Magic Mirror: in-store recommendations from a shopper's history, limited to what the store
//! can hand over now.
//!
//! [`model`] trains TIFU-KNN, item co-occurrence and the baselines on a purchase history
//! ([`history`]); [`Model::recommend`] ranks for one shopper and one store, skipping items the
//! store cannot give before the top k is cut, so a list is never short because stock was cut
//! afterwards. [`Recommender`] serves a trained model and learns from shipped orders;
//! [`eval`] measures every model on a time-based split.

pub mod eval;
pub mod history;
pub mod model;

use model::{bought, Model, NO_STORE};
use optimizer::ledger::StockLedger;
use optimizer::model::{Network, OrderId, SkuIdx, StoreIdx};
use rustc_hash::{FxHashMap, FxHashSet};
use serde::Serialize;

pub use model::{Basket, Params};

/// Longest list a call may ask for.
pub const MAX_K: usize = 100;
/// Routed orders remembered until they ship (beyond this, new ones are not learned from).
const MAX_PENDING: usize = 1_000_000;
/// A full list of routed orders forgets those older than this.
const PENDING_FOR_S: i64 = 86_400;

/// A ranking method: the model or a baseline.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// What the Magic Mirror serves: TIFU-KNN's scores plus items bought with hers (weighted by
    /// [`Params::bought_with`]).
    Mirror,
    /// TIFU-KNN: time-decayed personal frequency blended with nearest customers.
    TifuKnn,
    /// Items bought with the customer's items (item-item co-occurrence).
    BoughtWith,
    /// The customer's own most frequent items (P-TopFreq), then popular in this store.
    #[value(name = "p-topfreq")]
    #[serde(rename = "p-topfreq")]
    PTopFreq,
    /// Popular in this store, then this city, then overall.
    PopularStore,
    /// Popular in this city, then overall.
    PopularCity,
}

impl Method {
    pub const ALL: [Method; 6] = [
        Method::Mirror,
        Method::TifuKnn,
        Method::BoughtWith,
        Method::PTopFreq,
        Method::PopularStore,
        Method::PopularCity,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Method::Mirror => "mirror",
            Method::TifuKnn => "tifu-knn",
            Method::BoughtWith => "bought-with",
            Method::PTopFreq => "p-topfreq",
            Method::PopularStore => "popular-store",
            Method::PopularCity => "popular-city",
        }
    }
}

/// Why an item is on the list.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// She buys it about every `every_days` days.
    Habit {
        every_days: u32,
    },
    /// She bought it `times` times (once, or all on one day).
    BoughtBefore {
        times: u32,
    },
    /// Bought with an item of hers.
    BoughtWith {
        item: u32,
    },
    /// Customers whose baskets are like hers buy it.
    LikeYou,
    PopularStore,
    PopularCity {
        city: u32,
    },
    Popular,
    /// In stock here (nothing else to go by).
    InStock,
}

impl Reason {
    /// A stable name of the kind of reason.
    pub fn kind(self) -> &'static str {
        match self {
            Reason::Habit { .. } => "habit",
            Reason::BoughtBefore { .. } => "bought_before",
            Reason::BoughtWith { .. } => "bought_with",
            Reason::LikeYou => "like_you",
            Reason::PopularStore => "popular_in_store",
            Reason::PopularCity { .. } => "popular_in_city",
            Reason::Popular => "popular",
            Reason::InStock => "in_stock",
        }
    }

    /// The reason in words; `item` names an item, `city` a city.
    pub fn text(self, item: impl Fn(u32) -> String, city: impl Fn(u32) -> String) -> String {
        match self {
            Reason::Habit { every_days: 1 } => "you buy this about every day".into(),
            Reason::Habit { every_days } => format!("you buy this about every {every_days} days"),
            Reason::BoughtBefore { times: 1 } => "you bought this before".into(),
            Reason::BoughtBefore { times } => format!("you bought this {times} times"),
            Reason::BoughtWith { item: i } => format!("bought with {}", item(i)),
            Reason::LikeYou => "shoppers like you buy this".into(),
            Reason::PopularStore => "popular in this store".into(),
            Reason::PopularCity { city: c } => format!("popular in {}", city(c)),
            Reason::Popular => "popular".into(),
            Reason::InStock => "in stock here".into(),
        }
    }
}

/// One recommended item.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Pick {
    pub item: u32,
    pub score: f32,
    pub reason: Reason,
}

/// Whom a list is for: her trained number, if the model knows her, and baskets learned since.
#[derive(Clone, Copy, Default)]
pub struct Shopper<'a> {
    pub trained: Option<u32>,
    pub recent: &'a [Basket],
    /// When she is served (Unix seconds): which of her habits are due.
    pub now: i64,
}

/// What a list is cut from at one store: whether the store can give an item now, every item it
/// stocks (the last resort), and purchases learned since training (item, count).
pub struct Shelf<'a> {
    pub store: Option<u32>,
    pub available: &'a mut dyn FnMut(u32) -> bool,
    pub stocked: &'a mut dyn Iterator<Item = u32>,
    pub recent_sales: &'a [(u32, u32)],
}

struct List<'s, 'a> {
    k: usize,
    out: Vec<Pick>,
    seen: FxHashSet<u32>,
    shelf: &'s mut Shelf<'a>,
}

impl List<'_, '_> {
    fn full(&self) -> bool {
        self.out.len() >= self.k
    }

    fn offer(&mut self, item: u32, score: f32, reason: impl FnOnce() -> Reason) {
        if self.full() || self.seen.contains(&item) {
            return;
        }
        self.seen.insert(item);
        if (self.shelf.available)(item) {
            self.out.push(Pick { item, score, reason: reason() });
        }
    }
}

impl Model {
    /// The top `k` items of `method` for `shopper` at `shelf`: only items the shelf can give,
    /// filtered before the cut; short only when the store stocks fewer than `k` available items.
    pub fn recommend(
        &self,
        method: Method,
        shopper: Shopper<'_>,
        shelf: &mut Shelf<'_>,
        k: usize,
    ) -> Vec<Pick> {
        let baskets: Vec<(i64, &[u32])> = shopper
            .trained
            .into_iter()
            .flat_map(|c| self.customer_baskets(c))
            .chain(shopper.recent.iter().map(|b| (b.at, b.items.as_slice())))
            .collect();
        let own: std::borrow::Cow<[(u32, f32)]> = match shopper.trained {
            Some(c) if shopper.recent.is_empty() => self.trained_vector(c).into(),
            _ => self.vector(baskets.iter().copied()).into(),
        };
        let mut list = List { k, out: Vec::with_capacity(k), seen: FxHashSet::default(), shelf };
        let hers = |item: u32| own.binary_search_by_key(&item, |x| x.0).is_ok();
        let mine = bought(baskets.iter().copied());
        let why_hers = |item: u32| match mine.get(&item) {
            Some(b) => match b.every_days() {
                Some(every_days) => Reason::Habit { every_days },
                None => Reason::BoughtBefore { times: b.times },
            },
            None => Reason::BoughtBefore { times: 1 },
        };
        match method {
            Method::TifuKnn | Method::Mirror => {
                let mut scores = self.tifu_scores(&own, shopper.trained);
                if method == Method::Mirror {
                    // Repeat and explore on one scale: her items by TIFU-KNN's score times how
                    // due they are (her mean interval against the time since she last bought
                    // it); new items by their neighbours' score plus that of items bought with
                    // hers.
                    let w = self.params.bought_with;
                    for x in &mut scores {
                        if let Some(b) = mine.get(&x.0) {
                            x.1 *= b.due_at(shopper.now);
                        }
                    }
                    scores.extend(
                        self.bought_with_scores(&own)
                            .into_iter()
                            .filter(|x| !hers(x.0))
                            .map(|(i, s, _)| (i, w * s)),
                    );
                    scores = model::merge(scores);
                    model::best_first(&mut scores);
                }
                for (item, score) in scores {
                    if list.full() {
                        break;
                    }
                    list.offer(item, score, || {
                        if hers(item) {
                            why_hers(item)
                        } else {
                            own.iter()
                                .find(|&&(i, _)| self.bought_with(i).iter().any(|x| x.0 == item))
                                .map_or(Reason::LikeYou, |&(i, _)| Reason::BoughtWith { item: i })
                        }
                    });
                }
                self.offer_bought_with(&own, &mut list);
            }
            Method::BoughtWith => self.offer_bought_with(&own, &mut list),
            Method::PTopFreq => {
                // By how often, then how lately.
                let mut ranked: Vec<(u32, model::Bought)> = mine.iter().map(|(&i, &b)| (i, b)).collect();
                ranked.sort_unstable_by(|a, b| {
                    (b.1.times, b.1.last).cmp(&(a.1.times, a.1.last)).then(a.0.cmp(&b.0))
                });
                for (item, b) in ranked {
                    if list.full() {
                        break;
                    }
                    list.offer(item, b.times as f32, || why_hers(item));
                }
            }
            Method::PopularStore | Method::PopularCity => {}
        }
        self.offer_popular(method != Method::PopularCity, &mut list);
        while !list.full() {
            let Some(item) = list.shelf.stocked.next() else { break };
            list.offer(item, 0.0, || Reason::InStock);
        }
        list.out
    }

    fn offer_bought_with(&self, own: &[(u32, f32)], list: &mut List<'_, '_>) {
        if list.full() {
            return;
        }
        for (item, score, via) in self.bought_with_scores(own) {
            if list.full() {
                break;
            }
            list.offer(item, score, || Reason::BoughtWith { item: via });
        }
    }

    fn offer_popular(&self, in_store: bool, list: &mut List<'_, '_>) {
        let store = list.shelf.store;
        if in_store && !list.full() {
            if let Some(s) = store {
                let mut counts: Vec<(u32, u32)> = self.popular_in_store(s).to_vec();
                if !list.shelf.recent_sales.is_empty() {
                    counts.extend_from_slice(list.shelf.recent_sales);
                    counts.sort_unstable_by_key(|x| x.0);
                    counts.dedup_by(|b, a| {
                        let same = a.0 == b.0;
                        if same {
                            a.1 += b.1;
                        }
                        same
                    });
                    counts.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                }
                for (item, n) in counts {
                    if list.full() {
                        break;
                    }
                    list.offer(item, n as f32, || Reason::PopularStore);
                }
            }
        }
        if let Some(city) = store.and_then(|s| self.city_of(s)) {
            for &(item, n) in self.popular_in_city(city) {
                if list.full() {
                    break;
                }
                list.offer(item, n as f32, || Reason::PopularCity { city });
            }
        }
        for &(item, n) in self.popular() {
            if list.full() {
                break;
            }
            list.offer(item, n as f32, || Reason::Popular);
        }
    }
}

/// A routed order that may ship: its customer and what it holds in which stores.
struct Routed {
    customer: Box<str>,
    holds: Vec<(u32, u32)>,
    /// When it was routed (Unix seconds).
    at: i64,
}

/// A trained model serving one service's stores, learning from the orders that ship.
#[derive(Default)]
pub struct Recommender {
    model: Model,
    customers: history::Names,
    purchases: u64,
    /// Baskets shipped since training, by customer id.
    recent: parking_lot::RwLock<FxHashMap<Box<str>, Vec<Basket>>>,
    /// Units sold since training, by store and item.
    recent_sales: parking_lot::RwLock<FxHashMap<u32, FxHashMap<u32, u32>>>,
    pending: parking_lot::Mutex<FxHashMap<OrderId, Routed>>,
}

/// What training from a dataset did.
#[derive(Debug, Clone, Copy)]
pub struct Trained {
    pub purchases: u64,
    pub customers: usize,
    /// Rows naming a SKU the network does not stock (left out).
    pub skipped: u64,
    pub seconds: f64,
}

impl Recommender {
    /// Trains on `dir/history.csv` over `network`'s SKUs and stores; an untrained recommender
    /// (popular items from shipped orders only, then what is in stock) when there is none.
    pub fn load(
        dir: &std::path::Path,
        network: &Network,
        params: Params,
    ) -> Result<(Recommender, Trained), crate::data::DataError> {
        let t = std::time::Instant::now();
        let path = dir.join(history::FILE);
        let store_city = network.stores().iter().map(|s| u32::from(s.city.0)).collect();
        let cities = network.cities().len();
        if !path.exists() {
            let model =
                Model::train(Vec::new(), 0, store_city, cities, params, &optimizer::progress::NoProgress);
            let r = Recommender { model, ..Recommender::default() };
            return Ok((
                r,
                Trained { purchases: 0, customers: 0, skipped: 0, seconds: t.elapsed().as_secs_f64() },
            ));
        }
        let h = history::read(
            &path,
            |sku| network.catalog().get(sku).map(|k| k.0),
            |store| network.store_idx(store).map(|s| s.0),
        )?;
        let purchases = h.rows.len() as u64;
        let customers = h.customers.len();
        let model =
            Model::train(h.rows, customers, store_city, cities, params, &optimizer::progress::NoProgress);
        let trained =
            Trained { purchases, customers, skipped: h.skipped, seconds: t.elapsed().as_secs_f64() };
        Ok((Recommender { model, customers: h.customers, purchases, ..Recommender::default() }, trained))
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Purchases trained on.
    pub fn purchases(&self) -> u64 {
        self.purchases
    }

    /// Whether the model knows `customer` (from the history or a shipped order).
    pub fn knows(&self, customer: &str) -> bool {
        self.customers.get(customer).is_some() || self.recent.read().contains_key(customer)
    }

    /// The top `k` for `customer` (none: an anonymous shopper) at `store`, from what `ledger`
    /// says the store can give now.
    pub fn recommend(
        &self,
        customer: Option<&str>,
        store: StoreIdx,
        k: usize,
        ledger: &StockLedger,
    ) -> Vec<Pick> {
        let recent = self.recent.read();
        let mine: &[Basket] = customer.and_then(|c| recent.get(c)).map_or(&[], Vec::as_slice);
        let shopper = Shopper {
            trained: customer.and_then(|c| self.customers.get(c)),
            recent: mine,
            now: crate::service::now().0,
        };
        let sales: Vec<(u32, u32)> = self
            .recent_sales
            .read()
            .get(&store.0)
            .map(|m| m.iter().map(|(&i, &n)| (i, n)).collect())
            .unwrap_or_default();
        let mut available = |item: u32| ledger.level(store, SkuIdx(item)).is_some_and(|l| l.available > 0);
        let mut stocked = ledger.skus_of(store).into_iter().map(|s| s.0);
        let mut shelf = Shelf {
            store: Some(store.0),
            available: &mut available,
            stocked: &mut stocked,
            recent_sales: &sales,
        };
        self.model.recommend(Method::Mirror, shopper, &mut shelf, k)
    }

    /// Remembers an order of `customer` that now holds `holds` (store, SKU), until it ships or
    /// is cancelled; at most [`MAX_PENDING`] at once, those older than a day forgotten first.
    pub fn routed(&self, order: &OrderId, customer: &str, holds: &[optimizer::ledger::Hold]) {
        let at = crate::service::now().0;
        let mut pending = self.pending.lock();
        if pending.len() >= MAX_PENDING {
            // Orders neither shipped nor cancelled within a day expired or were ended elsewhere.
            pending.retain(|_, r| at - r.at < PENDING_FOR_S);
        }
        if pending.len() < MAX_PENDING {
            let holds = holds.iter().map(|h| (h.store.0, h.sku.0)).collect();
            pending.insert(order.clone(), Routed { customer: customer.into(), holds, at });
        }
    }

    /// Learns from a shipped order (its customer bought its items at `at`); forgets a cancelled
    /// one. Orders this process did not route are not learned from.
    pub fn ended(&self, order: &OrderId, shipped: bool, at: i64) {
        let Some(r) = self.pending.lock().remove(order) else { return };
        if !shipped {
            return;
        }
        let mut items: Vec<u32> = r.holds.iter().map(|h| h.1).collect();
        items.sort_unstable();
        items.dedup();
        {
            let mut sales = self.recent_sales.write();
            for &(store, item) in &r.holds {
                if store != NO_STORE {
                    *sales.entry(store).or_default().entry(item).or_default() += 1;
                }
            }
        }
        let mut recent = self.recent.write();
        let list = recent.entry(r.customer).or_default();
        match list.last_mut() {
            Some(last) if last.at == at => {
                last.items.extend(items);
                last.items.sort_unstable();
                last.items.dedup();
            }
            _ => list.push(Basket { at, items }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::model::{Model, Row, NO_STORE};
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, rng_seed: proptest::test_runner::RngSeed::Fixed(30), ..ProptestConfig::default() })]

        /// Whatever the history and the shelf, every method's list holds distinct items the shelf
        /// can give, and is as long as k or as the items the store can give.
        #[test]
        fn lists_are_distinct_available_and_full(
            purchases in prop::collection::vec((0u32..30, 0i64..40, 0u32..60, prop::option::of(0u32..4)), 1..400),
            stocked in prop::collection::vec(prop::collection::btree_set(0u32..70, 0..40), 4),
            k in 1usize..25,
            customer in 0u32..32,
        ) {
            let rows: Vec<Row> = purchases
                .iter()
                .map(|&(c, day, item, store)| Row { customer: c, at: day * 86_400, item, store: store.unwrap_or(NO_STORE) })
                .collect();
            let model = Model::train(rows, 30, vec![0, 0, 1, 1], 2, Params::default(), &optimizer::progress::NoProgress);
            for (s, shelf_items) in stocked.iter().enumerate() {
                for method in Method::ALL {
                    let mut available = |i: u32| shelf_items.contains(&i);
                    let mut all = shelf_items.iter().copied();
                    let mut shelf = Shelf { store: Some(s as u32), available: &mut available, stocked: &mut all, recent_sales: &[] };
                    let shopper = Shopper { trained: (customer < 30).then_some(customer), recent: &[], now: 41 * 86_400 };
                    let list = model.recommend(method, shopper, &mut shelf, k);
                    let items: std::collections::BTreeSet<u32> = list.iter().map(|p| p.item).collect();
                    prop_assert_eq!(items.len(), list.len(), "{:?}: duplicates", method);
                    prop_assert!(items.is_subset(shelf_items), "{:?}: {:?} not all on the shelf", method, items);
                    prop_assert_eq!(list.len(), k.min(shelf_items.len()), "{:?}", method);
                }
            }
        }
    }
}
