//! Offline evaluation on a time-based split: each customer's last basket is held out, the models
//! train on the rest, and each ranks `k` items for her at a store (the store of the held-out
//! basket, else the one she bought in most).
//!
//! For a customer with held-out items `T` (those the store can give: a list holds nothing else)
//! and list `R` of length k: recall@k = |R ∩ T| / |T|; NDCG@k = Σ over hits at rank i (from 0)
//! of 1/log2(i + 2), divided by the same sum over the first min(k, |T|) ranks; hit rate = 1 if
//! R ∩ T is not empty. Each is averaged over customers. *Repeat* items are those of T she bought
//! before the split, *new* items the rest; their figures take T as only those items, over the
//! customers who have some. Coverage is the share of the catalogue on at least one list.

use super::model::{Model, Row, NO_STORE};
use super::{Method, Shelf, Shopper};
use rayon::prelude::*;
use rustc_hash::FxHashMap;
use serde::Serialize;

/// One customer's held-out basket and the store she is served at.
#[derive(Clone, Debug, PartialEq)]
pub struct Truth {
    pub customer: u32,
    /// When she bought the held-out basket.
    pub at: i64,
    pub items: Vec<u32>,
    pub store: u32,
}

/// Splits `rows` into training rows and each customer's last basket (customers with a single
/// basket only train).
pub fn split(mut rows: Vec<Row>) -> (Vec<Row>, Vec<Truth>) {
    rows.par_sort_unstable();
    let mut train = Vec::with_capacity(rows.len());
    let mut truths = Vec::new();
    let mut i = 0;
    while i < rows.len() {
        let c = rows[i].customer;
        let mut j = i;
        while j < rows.len() && rows[j].customer == c {
            j += 1;
        }
        let mine = &rows[i..j];
        let last_at = mine[mine.len() - 1].at;
        let cut = mine.iter().position(|r| r.at == last_at).expect("present");
        if cut == 0 {
            train.extend_from_slice(mine);
        } else {
            train.extend_from_slice(&mine[..cut]);
            let held = &mine[cut..];
            let store = held
                .iter()
                .map(|r| r.store)
                .find(|&s| s != NO_STORE)
                .unwrap_or_else(|| most_visited(&mine[..cut]));
            let mut items: Vec<u32> = held.iter().map(|r| r.item).collect();
            items.dedup();
            truths.push(Truth { customer: c, at: last_at, items, store });
        }
        i = j;
    }
    (train, truths)
}

fn most_visited(rows: &[Row]) -> u32 {
    let mut n: FxHashMap<u32, u32> = FxHashMap::default();
    for r in rows.iter().filter(|r| r.store != NO_STORE) {
        *n.entry(r.store).or_default() += 1;
    }
    n.into_iter().max_by_key(|&(s, c)| (c, std::cmp::Reverse(s))).map_or(NO_STORE, |x| x.0)
}

/// What each store can give: sorted available items per store; `None` means every item
/// everywhere (a history without a store network).
pub type Stock = Option<Vec<Vec<u32>>>;

/// Recall, NDCG and hit rate over some customers.
#[derive(Default, Clone, Copy, Debug, Serialize)]
pub struct Scores {
    pub recall: f64,
    pub ndcg: f64,
    pub hit_rate: f64,
    pub customers: u64,
}

impl Scores {
    fn add(&mut self, list: &[u32], truth: &[u32]) {
        if truth.is_empty() {
            return;
        }
        let mut dcg = 0.0;
        let mut hits = 0;
        for (i, item) in list.iter().enumerate() {
            if truth.contains(item) {
                hits += 1;
                dcg += 1.0 / ((i + 2) as f64).log2();
            }
        }
        let ideal: f64 = (0..list.len().max(1).min(truth.len())).map(|i| 1.0 / ((i + 2) as f64).log2()).sum();
        self.recall += f64::from(hits) / truth.len() as f64;
        self.ndcg += if ideal > 0.0 { dcg / ideal } else { 0.0 };
        self.hit_rate += f64::from(u8::from(hits > 0));
        self.customers += 1;
    }

    fn merge(mut self, o: Scores) -> Scores {
        self.recall += o.recall;
        self.ndcg += o.ndcg;
        self.hit_rate += o.hit_rate;
        self.customers += o.customers;
        self
    }

    fn mean(mut self) -> Scores {
        let n = self.customers.max(1) as f64;
        self.recall /= n;
        self.ndcg /= n;
        self.hit_rate /= n;
        self
    }
}

/// One method's figures.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub method: Method,
    pub overall: Scores,
    pub repeat: Scores,
    pub new: Scores,
    /// Share of the catalogue recommended to someone.
    pub coverage: f64,
    /// Share of recommended items the store could not give (must be 0).
    pub out_of_stock: f64,
    /// Lists shorter than k (the store stocked fewer available items).
    pub short_lists: u64,
}

#[derive(Default)]
struct Tally {
    overall: Scores,
    repeat: Scores,
    new: Scores,
    recommended: u64,
    out_of_stock: u64,
    short: u64,
    /// Which items were recommended to someone (empty until the first list).
    items: Vec<bool>,
}

/// Evaluates every method of `methods` at `k` for `truths` with `model` (trained on the split's
/// training rows), `items` being the catalogue's size. Customers whose held-out items the store
/// cannot give (or who have no store when `stock` is given) are left out; their number is
/// returned too.
pub fn evaluate(
    model: &Model,
    truths: &[Truth],
    stock: &Stock,
    items: usize,
    methods: &[Method],
    k: usize,
    progress: &dyn optimizer::progress::Progress,
) -> (Vec<Report>, u64) {
    let can_give = |store: u32, item: u32| match stock {
        None => true,
        Some(per) => per.get(store as usize).is_some_and(|l| l.binary_search(&item).is_ok()),
    };
    let usable: Vec<(&Truth, Vec<u32>)> = truths
        .iter()
        .filter_map(|t| {
            let items: Vec<u32> = t.items.iter().copied().filter(|&i| can_give(t.store, i)).collect();
            (!items.is_empty() && (stock.is_none() || t.store != NO_STORE)).then_some((t, items))
        })
        .collect();
    let left_out = (truths.len() - usable.len()) as u64;
    progress.stage("evaluate", (usable.len() * methods.len()) as u64);
    let reports = methods
        .iter()
        .map(|&method| {
            let t = usable
                .par_iter()
                .fold(Tally::default, |mut acc, (truth, held)| {
                    let store = (truth.store != NO_STORE).then_some(truth.store);
                    let mut available = |i: u32| can_give(truth.store, i);
                    let stocked: &[u32] = match (stock, store) {
                        (Some(per), Some(s)) => per.get(s as usize).map_or(&[], Vec::as_slice),
                        _ => &[],
                    };
                    let mut stocked = stocked.iter().copied();
                    let mut shelf =
                        Shelf { store, available: &mut available, stocked: &mut stocked, recent_sales: &[] };
                    let shopper = Shopper { trained: Some(truth.customer), recent: &[], now: truth.at };
                    let list: Vec<u32> =
                        model.recommend(method, shopper, &mut shelf, k).into_iter().map(|p| p.item).collect();
                    let bought_before = |i: &u32| {
                        model.trained_vector(truth.customer).binary_search_by_key(i, |x| x.0).is_ok()
                    };
                    let (repeat, new): (Vec<u32>, Vec<u32>) = held.iter().partition(|i| bought_before(i));
                    acc.overall.add(&list, held);
                    acc.repeat.add(&list, &repeat);
                    acc.new.add(&list, &new);
                    acc.recommended += list.len() as u64;
                    acc.out_of_stock += list.iter().filter(|&&i| !can_give(truth.store, i)).count() as u64;
                    acc.short += u64::from(list.len() < k);
                    if acc.items.is_empty() {
                        acc.items = vec![false; items];
                    }
                    for &i in &list {
                        if let Some(seen) = acc.items.get_mut(i as usize) {
                            *seen = true;
                        }
                    }
                    progress.advance(1);
                    acc
                })
                .reduce(Tally::default, |mut a, b| {
                    a.overall = a.overall.merge(b.overall);
                    a.repeat = a.repeat.merge(b.repeat);
                    a.new = a.new.merge(b.new);
                    a.recommended += b.recommended;
                    a.out_of_stock += b.out_of_stock;
                    a.short += b.short;
                    if a.items.is_empty() {
                        a.items = b.items;
                    } else {
                        for (x, y) in a.items.iter_mut().zip(b.items) {
                            *x |= y;
                        }
                    }
                    a
                });
            Report {
                method,
                overall: t.overall.mean(),
                repeat: t.repeat.mean(),
                new: t.new.mean(),
                coverage: t.items.iter().filter(|&&x| x).count() as f64 / items.max(1) as f64,
                out_of_stock: t.out_of_stock as f64 / t.recommended.max(1) as f64,
                short_lists: t.short,
            }
        })
        .collect();
    (reports, left_out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(customer: u32, day: i64, item: u32, store: u32) -> Row {
        Row { customer, at: day * 86_400, item, store }
    }

    #[test]
    fn the_last_basket_is_held_out_at_its_store_or_the_most_visited() {
        let rows = vec![
            row(0, 1, 1, 2),
            row(0, 2, 1, 2),
            row(0, 3, 5, NO_STORE),
            row(0, 3, 6, NO_STORE),
            row(1, 1, 1, 4),
            row(1, 9, 2, 7),
            row(2, 4, 3, NO_STORE),
        ];
        let (train, truths) = split(rows);
        assert_eq!(train.len(), 4);
        assert_eq!(
            truths,
            vec![
                Truth { customer: 0, at: 3 * 86_400, items: vec![5, 6], store: 2 },
                Truth { customer: 1, at: 9 * 86_400, items: vec![2], store: 7 }
            ]
        );
    }

    #[test]
    fn scores_follow_the_formulas() {
        let mut s = Scores::default();
        s.add(&[9, 1, 8, 2], &[1, 2, 3]);
        let dcg = 1.0 / 3f64.log2() + 1.0 / 5f64.log2();
        let ideal = 1.0 + 1.0 / 3f64.log2() + 1.0 / 4f64.log2();
        assert!((s.recall - 2.0 / 3.0).abs() < 1e-12);
        assert!((s.ndcg - dcg / ideal).abs() < 1e-12);
        s.add(&[7], &[1]);
        let m = s.mean();
        assert_eq!(m.customers, 2);
        assert!((m.hit_rate - 0.5).abs() < 1e-12);
    }

    #[test]
    fn lists_hold_only_what_the_store_can_give_and_are_full() {
        let rows: Vec<Row> = (0..40u32)
            .flat_map(|c| (0..4).map(move |d| row(c, i64::from(d), (c + d as u32) % 12, c % 3)))
            .collect();
        let (train, truths) = split(rows);
        let model =
            Model::train(train, 40, vec![0, 0, 0], 1, Default::default(), &optimizer::progress::NoProgress);
        // Store 0 gives even items only; store 1 odd; store 2 items under 4.
        let stock = Some(vec![
            (0..12).filter(|i| i % 2 == 0).collect(),
            (0..12).filter(|i| i % 2 == 1).collect(),
            (0..4).collect(),
        ]);
        let (reports, _) =
            evaluate(&model, &truths, &stock, 12, &Method::ALL, 5, &optimizer::progress::NoProgress);
        for r in &reports {
            assert_eq!(r.out_of_stock, 0.0, "{:?}", r.method);
            // Store 2 stocks 4 items: its lists are short, the others full.
            assert!(r.short_lists > 0 && r.short_lists < 40, "{:?}", r);
        }
    }
}
