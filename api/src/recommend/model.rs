//! The models: TIFU-KNN, item-item co-occurrence and the baselines (the customer's own most
//! frequent items, popular in this store, popular in this city), trained in parallel.
//!
//! Items, customers and stores are dense numbers here; [`super::Recommender`] maps ids.

use rayon::prelude::*;
use rustc_hash::FxHashMap;

/// No store: a purchase made online.
pub const NO_STORE: u32 = u32::MAX;
/// Items kept per store and per city, by popularity.
const TOP_PER_PLACE: usize = 200;
/// Items kept overall, by popularity.
const TOP_OVERALL: usize = 2_000;
/// Items kept per item, by how often they share a basket with it.
const TOP_BOUGHT_WITH: usize = 10;
/// Baskets longer than this add no pairs (a bulk order says little about what goes together).
const MAX_PAIR_BASKET: usize = 20;

/// One purchased item (a basket is a customer's purchases with one timestamp).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Row {
    pub customer: u32,
    pub at: i64,
    pub item: u32,
    /// The store it was bought in, [`NO_STORE`] online.
    pub store: u32,
}

/// How the neighbours' part of TIFU-KNN's prediction weighs an item.
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum NeighbourBlend {
    /// The share of her neighbours who bought it (each neighbour's items at weight 1).
    Bought,
    /// The mean of the neighbours' TIFU vectors, as in the paper.
    Tifu,
}

/// TIFU-KNN's settings (Hu et al., SIGIR 2020): baskets in groups of `group_size` from the
/// newest, decayed by `within_decay` inside a group and `group_decay` from group to group; the
/// prediction blends the customer's own vector (`alpha`) with her `neighbours` nearest
/// customers' part (`blend`: by default the share of them who bought each item, where the
/// paper takes the mean of their vectors, whose decayed frequencies favour their own habits
/// over what her segment tries).
#[derive(Copy, Clone, Debug, PartialEq, serde::Serialize)]
pub struct Params {
    pub alpha: f32,
    pub neighbours: usize,
    pub group_size: usize,
    pub within_decay: f32,
    pub group_decay: f32,
    /// Neighbour search: the customer's most telling items probed (weight times rarity), and
    /// customers read per probed item.
    pub probe_items: usize,
    pub probe_customers: usize,
    /// The Magic Mirror's weight of items bought with hers, added to TIFU-KNN's scores.
    pub bought_with: f32,
    pub blend: NeighbourBlend,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            alpha: 0.7,
            neighbours: 300,
            group_size: 7,
            within_decay: 0.9,
            group_decay: 0.7,
            probe_items: 6,
            probe_customers: 100,
            bought_with: 0.0,
            blend: NeighbourBlend::Bought,
        }
    }
}

/// Compressed rows: the entries of key `k` are `items[start[k]..start[k + 1]]`.
#[derive(Default, Clone, Debug)]
pub struct Csr<T> {
    start: Vec<u32>,
    items: Vec<T>,
}

impl<T> Csr<T> {
    fn from_lists(lists: Vec<Vec<T>>) -> Csr<T> {
        let mut start = Vec::with_capacity(lists.len() + 1);
        start.push(0);
        let total = lists.iter().map(Vec::len).sum();
        let mut items = Vec::with_capacity(total);
        for l in lists {
            items.extend(l);
            start.push(items.len() as u32);
        }
        Csr { start, items }
    }

    /// Key `k`'s entries (none for a key beyond the table).
    pub fn get(&self, k: u32) -> &[T] {
        let k = k as usize;
        if k + 1 >= self.start.len() {
            return &[];
        }
        &self.items[self.start[k] as usize..self.start[k + 1] as usize]
    }

    pub fn keys(&self) -> usize {
        self.start.len().saturating_sub(1)
    }
}

/// One basket of a customer: its time and items.
#[derive(Clone, Debug, PartialEq)]
pub struct Basket {
    pub at: i64,
    pub items: Vec<u32>,
}

/// A trained model.
#[derive(Default)]
pub struct Model {
    pub params: Params,
    /// Each customer's baskets, oldest first: (time, first item) into `basket_items`.
    baskets: Csr<(i64, u32)>,
    basket_items: Vec<u32>,
    /// Each customer's TIFU vector, sorted by item, and its length.
    vectors: Csr<(u32, f32)>,
    norms: Vec<f32>,
    neighbours: Csr<u32>,
    bought_with: Csr<(u32, u32)>,
    by_store: Csr<(u32, u32)>,
    by_city: Csr<(u32, u32)>,
    overall: Vec<(u32, u32)>,
    store_city: Vec<u32>,
}

fn sorted_counts(mut keys: Vec<u64>) -> Vec<(u64, u32)> {
    keys.par_sort_unstable();
    let mut out: Vec<(u64, u32)> = Vec::new();
    for k in keys {
        match out.last_mut() {
            Some((last, n)) if *last == k => *n += 1,
            _ => out.push((k, 1)),
        }
    }
    out
}

/// Groups counted `(key << 32 | item, count)` pairs by key into top-`top` lists by count.
fn top_lists(counts: &[(u64, u32)], keys: usize, top: usize) -> Csr<(u32, u32)> {
    let mut lists: Vec<Vec<(u32, u32)>> = vec![Vec::new(); keys];
    for &(k, n) in counts {
        let key = (k >> 32) as usize;
        if key < keys {
            lists[key].push((k as u32, n));
        }
    }
    lists.par_iter_mut().for_each(|l| {
        l.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        l.truncate(top);
    });
    Csr::from_lists(lists)
}

impl Model {
    /// Trains on `rows` of `customers` customers; `store_city[s]` is store `s`'s city
    /// ([`NO_STORE`] where unknown) and `cities` the number of cities.
    pub fn train(
        mut rows: Vec<Row>,
        customers: usize,
        store_city: Vec<u32>,
        cities: usize,
        params: Params,
        progress: &dyn optimizer::progress::Progress,
    ) -> Model {
        progress.stage("sort", 1);
        rows.par_sort_unstable();
        rows.dedup_by(|a, b| a.customer == b.customer && a.at == b.at && a.item == b.item);
        progress.advance(1);
        progress.stage("baskets", 1);
        let mut lists: Vec<Vec<(i64, u32)>> = vec![Vec::new(); customers];
        let mut basket_items = Vec::with_capacity(rows.len());
        let mut prev: Option<(u32, i64)> = None;
        for r in &rows {
            if prev != Some((r.customer, r.at)) {
                if let Some(l) = lists.get_mut(r.customer as usize) {
                    l.push((r.at, basket_items.len() as u32));
                }
                prev = Some((r.customer, r.at));
            }
            basket_items.push(r.item);
        }
        let baskets = Csr::from_lists(lists);
        progress.advance(1);
        let mut model = Model { params, baskets, basket_items, store_city, ..Model::default() };

        progress.stage("vectors", customers as u64);
        let vectors: Vec<Vec<(u32, f32)>> = (0..customers as u32)
            .into_par_iter()
            .map(|c| {
                let v = model.vector(model.customer_baskets(c));
                progress.advance(1);
                v
            })
            .collect();
        model.norms = vectors.par_iter().map(|v| norm(v)).collect();
        model.vectors = Csr::from_lists(vectors);

        progress.stage("neighbours", customers as u64);
        model.neighbours = model.find_neighbours(progress);

        progress.stage("popularity", 1);
        let items = rows.iter().map(|r| r.item).max().map_or(0, |m| m as usize + 1);
        let stores = model.store_city.len().max(
            rows.iter().filter(|r| r.store != NO_STORE).map(|r| r.store as usize + 1).max().unwrap_or(0),
        );
        let by_store = sorted_counts(
            rows.par_iter()
                .filter(|r| r.store != NO_STORE)
                .map(|r| (u64::from(r.store) << 32) | u64::from(r.item))
                .collect(),
        );
        model.by_store = top_lists(&by_store, stores, TOP_PER_PLACE);
        let by_city = sorted_counts(
            rows.par_iter()
                .filter_map(|r| {
                    let city = *model.store_city.get(r.store as usize)?;
                    (city != NO_STORE).then_some((u64::from(city) << 32) | u64::from(r.item))
                })
                .collect(),
        );
        model.by_city = top_lists(&by_city, cities, TOP_PER_PLACE);
        let overall = sorted_counts(rows.par_iter().map(|r| u64::from(r.item)).collect());
        model.overall = top_lists(&overall, 1, TOP_OVERALL).get(0).to_vec();
        progress.advance(1);
        drop(rows);

        progress.stage("bought with", 1);
        let pairs: Vec<u64> = (0..customers as u32)
            .into_par_iter()
            .flat_map_iter(|c| {
                let mut out = Vec::new();
                for (_, items) in model.customer_baskets(c) {
                    if items.len() > MAX_PAIR_BASKET {
                        continue;
                    }
                    for &a in items {
                        for &b in items {
                            if a != b {
                                out.push((u64::from(a) << 32) | u64::from(b));
                            }
                        }
                    }
                }
                out
            })
            .collect();
        model.bought_with = top_lists(&sorted_counts(pairs), items, TOP_BOUGHT_WITH);
        progress.advance(1);
        model
    }

    /// Number of customers trained on.
    pub fn customers(&self) -> usize {
        self.baskets.keys()
    }

    /// Customer `c`'s baskets, oldest first.
    pub fn customer_baskets(
        &self,
        c: u32,
    ) -> impl DoubleEndedIterator<Item = (i64, &[u32])> + ExactSizeIterator + '_ {
        let list = self.baskets.get(c);
        let end_of = move |i: usize| match list.get(i + 1) {
            Some(&(_, s)) => s as usize,
            None => {
                // The basket after the customer's last one starts the next customer's list.
                let k = c as usize + 1;
                match self.baskets.start.get(k) {
                    Some(&next) if (next as usize) < self.baskets.items.len() => {
                        self.baskets.items[next as usize].1 as usize
                    }
                    _ => self.basket_items.len(),
                }
            }
        };
        list.iter().enumerate().map(move |(i, &(at, s))| (at, &self.basket_items[s as usize..end_of(i)]))
    }

    /// The TIFU vector of `baskets` (oldest first), sorted by item.
    pub fn vector<'a>(
        &self,
        baskets: impl ExactSizeIterator<Item = (i64, &'a [u32])> + DoubleEndedIterator,
    ) -> Vec<(u32, f32)> {
        let p = &self.params;
        let n = baskets.len();
        if n == 0 {
            return Vec::new();
        }
        let m = p.group_size.max(1);
        let groups = n.div_ceil(m);
        let mut acc: Vec<(u32, f32)> = Vec::new();
        for (r, (_, items)) in baskets.rev().enumerate() {
            let (g, q) = (r / m, r % m);
            let size = if g + 1 == groups { n - g * m } else { m };
            let w =
                p.group_decay.powi(g as i32) * p.within_decay.powi(q as i32) / size as f32 / groups as f32;
            acc.extend(items.iter().map(|&i| (i, w)));
        }
        merge(acc)
    }

    fn find_neighbours(&self, progress: &dyn optimizer::progress::Progress) -> Csr<u32> {
        let customers = self.customers();
        let items = self.vectors.items.iter().map(|&(i, _)| i as usize + 1).max().unwrap_or(0);
        // Inverted index: item -> (customer, weight).
        let mut count = vec![0u32; items + 1];
        for &(i, _) in &self.vectors.items {
            count[i as usize + 1] += 1;
        }
        for i in 1..count.len() {
            count[i] += count[i - 1];
        }
        let mut fill = count.clone();
        let mut posting = vec![(0u32, 0f32); self.vectors.items.len()];
        for c in 0..customers as u32 {
            for &(i, w) in self.vectors.get(c) {
                posting[fill[i as usize] as usize] = (c, w);
                fill[i as usize] += 1;
            }
        }
        let posting = Csr { start: count, items: posting };
        let total = customers.max(1) as f32;
        let p = self.params;
        let lists: Vec<Vec<u32>> = (0..customers as u32)
            .into_par_iter()
            .map(|c| {
                let mine = self.vectors.get(c);
                let mut probes: Vec<(u32, f32)> = mine
                    .iter()
                    .map(|&(i, w)| (i, w * (total / posting.get(i).len().max(1) as f32).ln()))
                    .collect();
                probes.sort_unstable_by(|a, b| b.1.total_cmp(&a.1));
                probes.truncate(p.probe_items);
                let mut cand: Vec<(u32, f32)> = Vec::new();
                for &(i, _) in &probes {
                    let list = posting.get(i);
                    let take = list.len().min(p.probe_customers);
                    if take == 0 {
                        continue;
                    }
                    let offset =
                        (u64::from(c).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 16) as usize % list.len();
                    let stride = (list.len() / take).max(1);
                    for j in 0..take {
                        let (v, _) = list[(offset + j * stride) % list.len()];
                        if v != c {
                            cand.push((v, 0.0));
                        }
                    }
                }
                cand.sort_unstable_by_key(|x| x.0);
                cand.dedup_by_key(|x| x.0);
                let nu = self.norms[c as usize];
                for x in &mut cand {
                    let nv = self.norms[x.0 as usize];
                    x.1 =
                        if nu > 0.0 && nv > 0.0 { dot(mine, self.vectors.get(x.0)) / (nu * nv) } else { 0.0 };
                }
                best_first(&mut cand);
                cand.truncate(p.neighbours);
                progress.advance(1);
                // A list of its own length: the candidates' buffer is many times longer, and a
                // million of those would be gigabytes.
                let mut out = Vec::with_capacity(cand.iter().filter(|x| x.1 > 0.0).count());
                out.extend(cand.iter().filter(|x| x.1 > 0.0).map(|x| x.0));
                out
            })
            .collect();
        Csr::from_lists(lists)
    }

    /// TIFU-KNN's scores for a customer with TIFU vector `own` and trained number `customer`
    /// (whose neighbours blend in), highest first.
    pub fn tifu_scores(&self, own: &[(u32, f32)], customer: Option<u32>) -> Vec<(u32, f32)> {
        let a = self.params.alpha;
        let mut acc: Vec<(u32, f32)> = own.iter().map(|&(i, w)| (i, a * w)).collect();
        if let Some(c) = customer {
            let nb = self.neighbours.get(c);
            if !nb.is_empty() {
                let share = (1.0 - a) / nb.len() as f32;
                for &v in nb {
                    let items = self.vectors.get(v).iter();
                    match self.params.blend {
                        NeighbourBlend::Bought => acc.extend(items.map(|&(i, _)| (i, share))),
                        NeighbourBlend::Tifu => acc.extend(items.map(|&(i, w)| (i, share * w))),
                    }
                }
            }
        }
        let mut scores = merge(acc);
        best_first(&mut scores);
        scores
    }

    /// The trained TIFU vector of customer `c`.
    pub fn trained_vector(&self, c: u32) -> &[(u32, f32)] {
        self.vectors.get(c)
    }

    /// Items bought with `item` most often, with the count.
    pub fn bought_with(&self, item: u32) -> &[(u32, u32)] {
        self.bought_with.get(item)
    }

    /// Items bought with the customer's items (weighted by her vector), highest first.
    pub fn bought_with_scores(&self, own: &[(u32, f32)]) -> Vec<(u32, f32, u32)> {
        let mut acc: FxHashMap<u32, (f32, u32, f32)> = FxHashMap::default();
        for &(i, w) in own {
            let list = self.bought_with(i);
            let total: u32 = list.iter().map(|x| x.1).sum();
            for &(j, n) in list {
                let s = w * n as f32 / total.max(1) as f32;
                let e = acc.entry(j).or_insert((0.0, i, 0.0));
                e.0 += s;
                if s > e.2 {
                    e.1 = i;
                    e.2 = s;
                }
            }
        }
        let mut out: Vec<(u32, f32, u32)> = acc.into_iter().map(|(j, (s, via, _))| (j, s, via)).collect();
        out.sort_unstable_by(|x, y| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0)));
        out
    }

    /// Most bought in store `s` (with counts).
    pub fn popular_in_store(&self, s: u32) -> &[(u32, u32)] {
        self.by_store.get(s)
    }

    /// Most bought in `city` (with counts).
    pub fn popular_in_city(&self, city: u32) -> &[(u32, u32)] {
        self.by_city.get(city)
    }

    /// Most bought overall (with counts).
    pub fn popular(&self) -> &[(u32, u32)] {
        &self.overall
    }

    /// Store `s`'s city, if known.
    pub fn city_of(&self, s: u32) -> Option<u32> {
        self.store_city.get(s as usize).copied().filter(|&c| c != NO_STORE)
    }
}

/// Sorts scored items highest first, equal scores by item.
pub(crate) fn best_first(v: &mut [(u32, f32)]) {
    v.sort_unstable_by(|x, y| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0)));
}

/// Sums the weights of equal items; sorted by item.
pub(crate) fn merge(mut acc: Vec<(u32, f32)>) -> Vec<(u32, f32)> {
    acc.sort_unstable_by_key(|x| x.0);
    let mut out: Vec<(u32, f32)> = Vec::with_capacity(acc.len());
    for (i, w) in acc {
        match out.last_mut() {
            Some(last) if last.0 == i => last.1 += w,
            _ => out.push((i, w)),
        }
    }
    out
}

fn norm(v: &[(u32, f32)]) -> f32 {
    v.iter().map(|x| x.1 * x.1).sum::<f32>().sqrt()
}

fn dot(a: &[(u32, f32)], b: &[(u32, f32)]) -> f32 {
    let (mut i, mut j, mut s) = (0, 0, 0.0);
    while i < a.len() && j < b.len() {
        match a[i].0.cmp(&b[j].0) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                s += a[i].1 * b[j].1;
                i += 1;
                j += 1;
            }
        }
    }
    s
}

/// How a customer bought one item: in how many baskets, first and last when.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Bought {
    pub times: u32,
    pub first: i64,
    pub last: i64,
}

impl Bought {
    /// About every how many days she buys it (at least 1), once she has bought it twice.
    pub fn every_days(self) -> Option<u32> {
        (self.times >= 2).then(|| {
            (((self.last - self.first) / i64::from(self.times - 1)) as f64 / 86_400.0).round().max(1.0) as u32
        })
    }

    /// How much more likely she is to buy it at `now` than her TIFU weight says: an item bought
    /// at least twice is due when the time since she last bought it is near her mean interval
    /// (a log-normal bump around 1, floor 0.3); an item bought once keeps a neutral 1.
    pub fn due_at(self, now: i64) -> f32 {
        if self.times < 2 {
            return 1.0;
        }
        let period = ((self.last - self.first) as f64 / f64::from(self.times - 1)).max(86_400.0);
        let r = ((now - self.last) as f64 / period).max(0.05);
        (0.3 + 1.2 * (-(r.ln().powi(2)) / (2.0 * 0.35 * 0.35)).exp()) as f32
    }
}

/// How she bought each item of `baskets` (oldest first).
pub fn bought<'a>(baskets: impl Iterator<Item = (i64, &'a [u32])>) -> FxHashMap<u32, Bought> {
    let mut seen: FxHashMap<u32, Bought> = FxHashMap::default();
    for (at, items) in baskets {
        for &i in items {
            let e = seen.entry(i).or_insert(Bought { times: 0, first: at, last: at });
            e.times += 1;
            e.first = e.first.min(at);
            e.last = e.last.max(at);
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(customer: u32, day: i64, item: u32, store: u32) -> Row {
        Row { customer, at: day * 86_400, item, store }
    }

    fn small() -> Model {
        // Customers 0 and 1 buy 1 and 2 together; customer 2 buys 1 then 3; store 0 sells 3 most.
        let rows = vec![
            row(0, 1, 1, 0),
            row(0, 1, 2, 0),
            row(0, 8, 1, NO_STORE),
            row(1, 2, 1, 1),
            row(1, 2, 2, 1),
            row(2, 3, 1, 0),
            row(2, 9, 3, 0),
            row(2, 20, 3, 0),
        ];
        Model::train(rows, 3, vec![0, 0], 1, Params::default(), &optimizer::progress::NoProgress)
    }

    #[test]
    fn baskets_group_a_customers_purchases_by_time() {
        let m = small();
        let b: Vec<(i64, Vec<u32>)> = m.customer_baskets(0).map(|(t, i)| (t / 86_400, i.to_vec())).collect();
        assert_eq!(b, vec![(1, vec![1, 2]), (8, vec![1])]);
        let b: Vec<(i64, Vec<u32>)> = m.customer_baskets(2).map(|(t, i)| (t / 86_400, i.to_vec())).collect();
        assert_eq!(b, vec![(3, vec![1]), (9, vec![3]), (20, vec![3])]);
        assert_eq!(m.customer_baskets(3).count(), 0);
    }

    #[test]
    fn newer_baskets_weigh_more() {
        let m = small();
        let v = m.trained_vector(2);
        let w = |i| v.iter().find(|x| x.0 == i).unwrap().1;
        assert!(w(3) > w(1));
        let b = bought(m.customer_baskets(2));
        assert_eq!((b[&3].times, b[&3].every_days()), (2, Some(11)));
        assert_eq!((b[&1].times, b[&1].every_days()), (1, None));
    }

    #[test]
    fn neighbours_share_items_and_blend_in() {
        let m = small();
        assert!(m.neighbours.get(0).contains(&1));
        // Customer 1 never bought 3, but her neighbours' vectors can add items she lacks; her own
        // items stay first.
        let s = m.tifu_scores(m.trained_vector(1), Some(1));
        assert!(s[0].0 == 1 || s[0].0 == 2);
        assert_eq!(m.bought_with(1).iter().map(|x| x.0).collect::<Vec<_>>(), vec![2]);
        assert_eq!(m.popular_in_store(0)[0], (1, 2));
        assert_eq!(m.popular_in_city(0)[0].0, 1);
        assert_eq!(m.popular()[0], (1, 4));
    }

    #[test]
    fn the_neighbours_part_counts_who_bought_an_item_or_blends_their_vectors() {
        // Everyone buys 1; customer 1 also buys 5 in five baskets, customers 2 and 3 buy 6 once.
        let mut rows = vec![row(0, 1, 1, 0), row(1, 1, 1, 0), row(2, 1, 1, 0), row(3, 1, 1, 0)];
        rows.extend((2..7).map(|d| row(1, d, 5, 0)));
        rows.extend([row(2, 2, 6, 0), row(3, 2, 6, 0)]);
        let train = |blend| {
            let params = Params { blend, ..Params::default() };
            Model::train(rows.clone(), 4, vec![0], 1, params, &optimizer::progress::NoProgress)
        };
        let ratio = |m: &Model| {
            let s = m.tifu_scores(m.trained_vector(0), Some(0));
            let score = |item: u32| s.iter().find(|x| x.0 == item).map(|x| x.1).expect("scored");
            score(6) / score(5)
        };
        let m = train(NeighbourBlend::Bought);
        assert_eq!(m.neighbours.get(0).len(), 3);
        // Two of her three neighbours bought 6, one bought 5 (however often).
        assert!((ratio(&m) - 2.0).abs() < 1e-5, "{}", ratio(&m));
        // The paper's mean of vectors weighs how much of each neighbour's history it is.
        let m = train(NeighbourBlend::Tifu);
        assert!((ratio(&m) - 2.0).abs() > 0.1, "{}", ratio(&m));
    }
}
