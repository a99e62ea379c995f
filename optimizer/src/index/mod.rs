//! Spatial index of stores: R-trees over points on the unit sphere, so that Euclidean
//! nearest-neighbour order is exactly great-circle order.
//!
//! # Design
//! * One R-tree over every store answers k-nearest and within-radius queries.
//! * A SKU carried by few stores ("sparse": fewer than `sparse_fraction` of all stores) gets an
//!   R-tree of its own over just its carriers. Searching for it walks only stores that carry it.
//! * A SKU carried by many stores is searched through the global tree; the ledger's per-SKU
//!   availability bitset rejects a store in a few nanoseconds, and since at least
//!   `sparse_fraction` of stores carry it, few stores are walked before a carrier is met.
//!
//! Memory stays bounded: the per-SKU trees hold only the long tail of the assortment.

use crate::model::{chord2_to_m, m_to_chord2, LonLat, Network, SkuIdx, StoreIdx};
use parking_lot::RwLock;
use rstar::primitives::GeomWithData;
use rstar::RTree;
use std::ops::ControlFlow;

type Site = GeomWithData<[f64; 3], u32>;

/// Index settings.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct IndexConfig {
    /// A SKU carried by fewer than this share of stores gets its own R-tree.
    pub sparse_fraction: f64,
}

impl Default for IndexConfig {
    fn default() -> Self {
        IndexConfig { sparse_fraction: 1.0 / 16.0 }
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

/// R-trees over store locations. See the module docs.
#[derive(Debug)]
pub struct StoreIndex {
    all: RTree<Site>,
    /// Per SKU: `Some` tree over its carriers when the SKU is sparse.
    sparse: Vec<Option<RwLock<RTree<Site>>>>,
    locations: Vec<[f64; 3]>,
}

impl StoreIndex {
    /// Builds the index. `carriers[k]` lists the stores that carry SKU `k`.
    ///
    /// # Runtime
    /// O(n log n) for the global tree plus O(c log c) per sparse SKU with c carriers.
    pub fn build(network: &Network, carriers: &[Vec<StoreIdx>], config: IndexConfig) -> StoreIndex {
        use rayon::prelude::*;
        let locations: Vec<[f64; 3]> =
            network.stores().iter().map(|s| s.location.unit_vector()).collect();
        let site = |i: StoreIdx| Site::new(locations[i.0 as usize], i.0);
        let all = RTree::bulk_load((0..locations.len() as u32).map(|i| site(StoreIdx(i))).collect());
        let limit = (locations.len() as f64 * config.sparse_fraction).ceil() as usize;
        let sparse = carriers
            .par_iter()
            .map(|c| {
                (c.len() < limit).then(|| RwLock::new(RTree::bulk_load(c.iter().map(|&i| site(i)).collect())))
            })
            .collect();
        StoreIndex { all, sparse, locations }
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
        if let Some(Some(tree)) = self.sparse.get(sku.0 as usize) {
            let site = Site::new(self.locations[store.0 as usize], store.0);
            let mut tree = tree.write();
            if !tree.contains(&site) {
                tree.insert(site);
            }
        }
    }

    /// Visits stores nearest first from `at`, passing each store and its great-circle distance
    /// in metres, until `visit` breaks or `max_m` is passed. Returns the break value.
    ///
    /// # Runtime
    /// O(log n) per store visited.
    pub fn walk<B>(
        &self,
        walk: Walk,
        at: LonLat,
        max_m: f64,
        mut visit: impl FnMut(StoreIdx, f64) -> ControlFlow<B>,
    ) -> Option<B> {
        let q = at.unit_vector();
        let max_c2 = m_to_chord2(max_m) * (1.0 + 1e-12);
        let mut run = |tree: &RTree<Site>| {
            for (site, c2) in tree.nearest_neighbor_iter_with_distance_2(&q) {
                if c2 > max_c2 {
                    return None;
                }
                if let ControlFlow::Break(b) = visit(StoreIdx(site.data), chord2_to_m(c2)) {
                    return Some(b);
                }
            }
            None
        };
        match walk {
            Walk::Carriers(sku) => match self.sparse.get(sku.0 as usize) {
                Some(Some(tree)) => run(&tree.read()),
                _ => run(&self.all),
            },
            Walk::All => run(&self.all),
        }
    }

    /// The `k` stores nearest to `at`, nearest first, with distances in metres.
    ///
    /// # Runtime
    /// O(k log n).
    pub fn nearest(&self, at: LonLat, k: usize) -> Vec<(StoreIdx, f64)> {
        let mut out = Vec::with_capacity(k);
        if k > 0 {
            self.walk::<()>(Walk::All, at, f64::INFINITY, |s, d| {
                out.push((s, d));
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
        let q = at.unit_vector();
        let mut out: Vec<(StoreIdx, f64)> = self
            .all
            .locate_within_distance(q, m_to_chord2(radius_m) * (1.0 + 1e-12))
            .map(|s| (StoreIdx(s.data), at.distance_m(LonLat::from_unit_vector(s.geom()))))
            .filter(|(_, d)| *d <= radius_m)
            .collect();
        out.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        out
    }

    /// Approximate heap bytes used by the trees.
    pub fn heap_bytes(&self) -> usize {
        let node = std::mem::size_of::<rstar::RTreeNode<Site>>();
        let sparse: usize = self.sparse.iter().flatten().map(|t| t.read().size()).sum();
        (self.all.size() + sparse) * node * 5 / 4 + self.locations.len() * 24
    }
}

#[cfg(test)]
mod tests;
