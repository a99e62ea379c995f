//! Spatial index of stores: R-trees over points on the unit sphere, so that Euclidean
//! nearest-neighbour order is exactly great-circle order.
//!
//! # Design
//! * One R-tree over every store answers k-nearest and within-radius queries.
//! * A SKU carried by few stores ("sparse": fewer than `sparse_fraction`, default 1/4, of all
//!   stores) gets an R-tree of its own over just its carriers. Searching for it walks only stores that carry it.
//! * A SKU carried by many stores is searched through the global tree; the ledger's per-SKU
//!   availability bitset rejects a store in a few nanoseconds, and since at least
//!   `sparse_fraction` of stores carry it, few stores are walked before a carrier is met.
//!
//! * Walks run over frozen compact trees ([`walk::FlatTree`]): the global one a copy of an rstar
//!   bulk load, each sparse SKU's built in place by the same algorithm (OMT, [`walk::FlatTree::bulk`]),
//!   which skips rstar's node objects and the copy: 18 million carrier points take 0.3 to 1 s
//!   less to index than through rstar, with walks as fast (measured). A carrier
//!   added by a stock feed joins a short list beside its SKU's copy, walked together with it,
//!   and the copy is rebuilt once that list grows past an eighth of the tree.
//!
//! Memory stays bounded: the per-SKU trees hold only the long tail of the assortment.
//!
//! * Checkout walks ([`StoreIndex::walk_stocked`]) want carriers that have the SKU available
//!   now. When stock runs out in places, walks over all carriers (or all stores, for a dense
//!   SKU) step past more and more drained stores: on a day where stock runs short, most of the
//!   router's time went there. A walk counts the stores it visits whose availability bit is
//!   clear; once a SKU's count passes [`IndexConfig::compact_after`] and fewer than half of the
//!   stores the walk goes through still have it, the SKU gets a *stocked* tree: only the stores
//!   whose bit is set, built from the bitset (OMT, like the sparse trees). A store whose bit is
//!   set later joins a short list beside it: the bitset counts its clear-to-set changes, a walk
//!   that sees the count move first adds the stores set since, and the tree is rebuilt from the
//!   bits once that list passes an eighth of it. The stocked tree therefore always holds every
//!   store with the SKU available (it may hold drained ones too), so the router meets the same
//!   stores in the same order, minus drained ones it would have rejected anyway.

use crate::growing::Growing;
use crate::ledger::AtomicBitset;
use crate::model::{chord2_to_m, m_to_chord2, LonLat, Network, SkuIdx, StoreIdx};
use parking_lot::RwLock;
use rstar::primitives::GeomWithData;
use rstar::{RStarInsertionStrategy, RTreeParams};
use std::sync::atomic::{AtomicU64, Ordering};

/// Wider nodes than rstar's default (6): nearest-neighbour walks over points touch fewer levels
/// and heap entries (measured in `benches/routing.rs`).
pub struct StoreTreeParams;

impl RTreeParams for StoreTreeParams {
    const MIN_SIZE: usize = 6;
    const MAX_SIZE: usize = 16;
    const REINSERTION_COUNT: usize = 4;
    type DefaultInsertionStrategy = RStarInsertionStrategy;
}

type RTree<T> = rstar::RTree<T, StoreTreeParams>;
use std::ops::ControlFlow;
use walk::{FlatPoint, FlatTree};

mod walk;

/// A tree entry: the unit vector of a store, and its index with its capabilities packed in the
/// top bits (see [`Candidate`]), so that a walk can skip stores without touching them.
type Site = GeomWithData<[f64; 3], u32>;

const SHIP_BIT: u32 = 1 << 31;
const PICKUP_BIT: u32 = 1 << 30;
const INDEX_MASK: u32 = PICKUP_BIT - 1;

/// A store met during a walk.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Candidate {
    pub store: StoreIdx,
    /// The store ships online orders.
    pub ship: bool,
    /// The store offers pickup.
    pub pickup: bool,
    /// Squared chord between unit vectors; see [`Candidate::distance_m`].
    pub chord2: f64,
}

impl Candidate {
    fn unpack(data: u32, chord2: f64) -> Candidate {
        Candidate {
            store: StoreIdx(data & INDEX_MASK),
            ship: data & SHIP_BIT != 0,
            pickup: data & PICKUP_BIT != 0,
            chord2,
        }
    }

    /// Great-circle distance from the query point.
    ///
    /// # Units
    /// Metres.
    pub fn distance_m(&self) -> f64 {
        chord2_to_m(self.chord2)
    }
}

/// Index settings.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct IndexConfig {
    /// A SKU carried by fewer than this share of stores gets its own R-tree.
    pub sparse_fraction: f64,
    /// Drained stores a SKU's checkout walks may step past before its stocked tree is built or
    /// rebuilt (see the module docs).
    pub compact_after: u64,
}

impl Default for IndexConfig {
    fn default() -> Self {
        IndexConfig { sparse_fraction: 0.25, compact_after: 4096 }
    }
}

/// Which SKU a walk should follow and where the walk should go.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Walk {
    /// Every store, nearest first.
    All,
    /// Stores that carry this SKU, nearest first (falls back to all stores when it is dense).
    Carriers(SkuIdx),
}

/// A sparse SKU's carriers: a flat tree and the carriers added since it was built.
#[derive(Debug)]
struct Carriers {
    tree: FlatTree,
    added: Vec<FlatPoint>,
}

impl Carriers {
    /// Bulk-loads the carriers in place ([`FlatTree::bulk`]: rstar's algorithm without rstar's
    /// node objects and the copy of its tree).
    fn new(points: Vec<FlatPoint>) -> Carriers {
        Carriers { tree: FlatTree::bulk(points, StoreTreeParams::MAX_SIZE), added: Vec::new() }
    }
}

/// A SKU's stores with stock (a superset of them; see the module docs).
#[derive(Debug)]
struct Stocked {
    tree: FlatTree,
    /// Stores whose bit was set after the tree was built.
    added: Vec<FlatPoint>,
    /// Which stores `tree` and `added` hold, one bit per store.
    members: Vec<u64>,
    /// The bitset's set count the members have caught up with.
    seen: u64,
}

/// Per SKU, what checkout walks use besides the carrier trees.
#[derive(Debug, Default)]
struct StockedSlot {
    tree: RwLock<Option<Stocked>>,
    /// Drained stores walks stepped past since the stocked tree was last (re)built or judged.
    wasted: AtomicU64,
}

/// R-trees over store locations. See the module docs.
#[derive(Debug)]
pub struct StoreIndex {
    /// Every store (a compact copy of an rstar tree, like the sparse SKUs' trees).
    all: FlatTree,
    /// Per SKU: `Some` tree over its carriers when the SKU is sparse (learned SKUs always are).
    sparse: Growing<Option<RwLock<Carriers>>>,
    /// Per SKU: the stocked tree, once its walks have stepped past enough drained stores.
    stocked: Growing<StockedSlot>,
    locations: Vec<[f64; 3]>,
    /// Per store: its index with capability bits, as stored in the trees.
    packed: Vec<u32>,
    config: IndexConfig,
}

impl StoreIndex {
    /// Builds the index. `carriers[k]` lists the stores that carry SKU `k`.
    ///
    /// # Runtime
    /// O(n log n) for the global tree plus O(c log c) per sparse SKU with c carriers.
    pub fn build(network: &Network, carriers: &[Vec<StoreIdx>], config: IndexConfig) -> StoreIndex {
        use rayon::prelude::*;
        assert!(network.stores().len() < INDEX_MASK as usize, "store indexes fit in 30 bits");
        let locations: Vec<[f64; 3]> = network.stores().iter().map(|s| s.location.unit_vector()).collect();
        let packed: Vec<u32> = network
            .stores()
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let c = s.capabilities;
                i as u32 | if c.ship { SHIP_BIT } else { 0 } | if c.pickup { PICKUP_BIT } else { 0 }
            })
            .collect();
        let site = |i: u32| Site::new(locations[i as usize], packed[i as usize]);
        let all = FlatTree::new(
            RTree::bulk_load_with_params((0..locations.len() as u32).map(site).collect()).root(),
        );
        let point = |i: StoreIdx| FlatPoint { p: locations[i.0 as usize], data: packed[i.0 as usize] };
        let limit = (locations.len() as f64 * config.sparse_fraction).ceil() as usize;
        let sparse = carriers
            .par_iter()
            .map(|c| {
                (c.len() < limit).then(|| RwLock::new(Carriers::new(c.iter().map(|&i| point(i)).collect())))
            })
            .collect();
        let stocked = Growing::new((0..carriers.len()).map(|_| StockedSlot::default()).collect());
        StoreIndex { all, sparse: Growing::new(sparse), stocked, locations, packed, config }
    }

    /// Adds a SKU the catalogue is learning, carried by no store yet (see
    /// [`crate::model::SkuCatalog::learn`]). Returns its index.
    pub fn learn_sku(&self) -> SkuIdx {
        let k = self.sparse.push(Some(RwLock::new(Carriers::new(Vec::new()))));
        let s = self.stocked.push(StockedSlot::default());
        debug_assert_eq!(k, s);
        SkuIdx(k as u32)
    }

    /// Number of stores indexed.
    pub fn len(&self) -> usize {
        self.locations.len()
    }

    pub fn is_empty(&self) -> bool {
        self.locations.is_empty()
    }

    /// Whether `sku` has its own carrier tree.
    pub fn is_sparse(&self, sku: SkuIdx) -> bool {
        self.sparse.get(sku.0 as usize).is_some_and(Option::is_some)
    }

    /// Records that `store` now carries `sku` (a stock feed created the row).
    pub fn add_carrier(&self, sku: SkuIdx, store: StoreIdx) {
        if let Some(Some(carriers)) = self.sparse.get(sku.0 as usize) {
            let point =
                FlatPoint { p: self.locations[store.0 as usize], data: self.packed[store.0 as usize] };
            let mut c = carriers.write();
            let known = walk::best_first(&c.tree, &c.added, point.p, 0.0, 0.0, |data, _| {
                if data == point.data {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            });
            if known.is_some() {
                return;
            }
            c.added.push(point);
            if c.added.len() > 64.max(c.tree.points().len() / 8) {
                *c = Carriers::new(c.tree.points().iter().chain(&c.added).copied().collect());
            }
        }
    }

    /// Visits stores nearest first from `at` whose great-circle distance lies in
    /// `[min_m, max_m]`, until `visit` breaks. Returns the break value.
    ///
    /// # Runtime
    /// O(log n) per store visited; nodes outside the distance band are never expanded.
    pub fn walk<B>(
        &self,
        walk: Walk,
        at: LonLat,
        min_m: f64,
        max_m: f64,
        mut visit: impl FnMut(Candidate) -> ControlFlow<B>,
    ) -> Option<B> {
        let (q, min_c2, max_c2) = band(at, min_m, max_m);
        let mut run = |tree: &FlatTree, added: &[FlatPoint]| {
            walk::best_first(tree, added, q, min_c2, max_c2, |data, c2| visit(Candidate::unpack(data, c2)))
        };
        match walk {
            Walk::Carriers(sku) => match self.sparse.get(sku.0 as usize) {
                Some(Some(carriers)) => {
                    let c = carriers.read();
                    run(&c.tree, &c.added)
                }
                _ => run(&self.all, &[]),
            },
            Walk::All => run(&self.all, &[]),
        }
    }

    /// Like [`StoreIndex::walk`] over `Walk::Carriers(sku)`, for checkout: visits, nearest
    /// first within `[min_m, max_m]`, every store whose bit in `stocked` (the ledger's
    /// availability bits of `sku`) is set, and possibly some whose bit is clear; nothing when
    /// `stocked` is `None` (no store has had the SKU). Builds or refreshes the SKU's stocked
    /// tree as the module docs describe.
    ///
    /// # Runtime
    /// O(log n) per store visited; O(n / 64) more when bits were set since the last walk, and
    /// O(m log m) for m stocked stores when the stocked tree is (re)built.
    pub fn walk_stocked<B>(
        &self,
        sku: SkuIdx,
        stocked: Option<&AtomicBitset>,
        at: LonLat,
        min_m: f64,
        max_m: f64,
        mut visit: impl FnMut(Candidate) -> ControlFlow<B>,
    ) -> Option<B> {
        let bits = stocked?;
        let Some(slot) = self.stocked.get(sku.0 as usize) else {
            return self.walk(Walk::Carriers(sku), at, min_m, max_m, visit);
        };
        let mut wasted = 0u64;
        let mut counted = |c: Candidate| {
            wasted += u64::from(!bits.get(c.store.0));
            visit(c)
        };
        let found = loop {
            let guard = slot.tree.read();
            match &*guard {
                Some(s) if s.seen != bits.sets() => {
                    drop(guard);
                    self.catch_up(slot, bits);
                }
                Some(s) => {
                    let (q, min_c2, max_c2) = band(at, min_m, max_m);
                    break walk::best_first(&s.tree, &s.added, q, min_c2, max_c2, |data, c2| {
                        counted(Candidate::unpack(data, c2))
                    });
                }
                None => {
                    drop(guard);
                    break self.walk(Walk::Carriers(sku), at, min_m, max_m, &mut counted);
                }
            }
        };
        // Counted in bulk: a walk that met a stocked store first adds nothing.
        let enough = self.config.compact_after;
        if wasted >= enough.min(32) && slot.wasted.fetch_add(wasted, Ordering::Relaxed) + wasted >= enough {
            self.compact(sku, slot, bits);
        }
        found
    }

    /// Builds `sku`'s stocked tree from `bits` when that at least halves what its walks go
    /// through (see the module docs); starts counting waste afresh either way.
    fn compact(&self, sku: SkuIdx, slot: &StockedSlot, bits: &AtomicBitset) {
        let mut guard = slot.tree.write();
        slot.wasted.store(0, Ordering::Relaxed);
        let now = match (&*guard, self.sparse.get(sku.0 as usize)) {
            (Some(s), _) => s.tree.points().len() + s.added.len(),
            (None, Some(Some(c))) => {
                let c = c.read();
                c.tree.points().len() + c.added.len()
            }
            (None, _) => self.locations.len(),
        };
        let seen = bits.sets();
        let members = bits.snapshot();
        let stocked: usize = members.iter().map(|w| w.count_ones() as usize).sum();
        if stocked * 2 <= now {
            *guard = Some(self.stocked_tree(members, seen));
        }
    }

    /// The tree over the stores set in `members`.
    fn stocked_tree(&self, members: Vec<u64>, seen: u64) -> Stocked {
        let points =
            ones(&members).map(|i| FlatPoint { p: self.locations[i], data: self.packed[i] }).collect();
        Stocked { tree: FlatTree::bulk(points, StoreTreeParams::MAX_SIZE), added: Vec::new(), members, seen }
    }

    /// Adds to `slot`'s stocked tree the stores whose bit was set since it last looked.
    #[cold]
    fn catch_up(&self, slot: &StockedSlot, bits: &AtomicBitset) {
        let mut guard = slot.tree.write();
        let Some(s) = guard.as_mut() else { return };
        let seen = bits.sets();
        if s.seen == seen {
            return;
        }
        for (w, member) in s.members.iter_mut().enumerate() {
            let new = bits.word(w) & !*member;
            *member |= new;
            for b in ones(&[new]) {
                let i = w * 64 + b;
                s.added.push(FlatPoint { p: self.locations[i], data: self.packed[i] });
            }
        }
        s.seen = seen;
        if s.added.len() > 64.max(s.tree.points().len() / 8) {
            *s = self.stocked_tree(bits.snapshot(), seen);
        }
    }

    /// The `k` stores nearest to `at`, nearest first, with distances in metres.
    ///
    /// # Runtime
    /// O(k log n).
    pub fn nearest(&self, at: LonLat, k: usize) -> Vec<(StoreIdx, f64)> {
        let mut out = Vec::with_capacity(k);
        if k > 0 {
            self.walk::<()>(Walk::All, at, 0.0, f64::INFINITY, |c| {
                out.push((c.store, c.distance_m()));
                if out.len() == k {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            });
        }
        out
    }

    /// All stores within `radius_m` metres of `at`, nearest first.
    ///
    /// # Runtime
    /// O(log n + m) for m results, plus sorting.
    pub fn within(&self, at: LonLat, radius_m: f64) -> Vec<(StoreIdx, f64)> {
        let mut out = Vec::new();
        self.walk::<()>(Walk::All, at, 0.0, radius_m, |c| {
            let d = at.distance_m(LonLat::from_unit_vector(&self.locations[c.store.0 as usize]));
            if d <= radius_m {
                out.push((c.store, d));
            }
            ControlFlow::Continue(())
        });
        out.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        out
    }
}

/// A walk's start and its distance band as squared chords (widened by a hair, so that rounding
/// never drops a store on the edge).
fn band(at: LonLat, min_m: f64, max_m: f64) -> ([f64; 3], f64, f64) {
    let min_c2 = if min_m > 0.0 { m_to_chord2(min_m) * (1.0 + 1e-12) } else { 0.0 };
    let max_c2 = if max_m.is_finite() { m_to_chord2(max_m) * (1.0 + 1e-12) } else { f64::INFINITY };
    (at.unit_vector(), min_c2, max_c2)
}

/// The positions of the set bits of `words`, ascending.
fn ones(words: &[u64]) -> impl Iterator<Item = usize> + '_ {
    words.iter().enumerate().flat_map(|(w, &word)| {
        let mut rest = word;
        std::iter::from_fn(move || {
            (rest != 0).then(|| {
                let b = rest.trailing_zeros() as usize;
                rest &= rest - 1;
                w * 64 + b
            })
        })
    })
}

#[cfg(test)]
mod tests;
