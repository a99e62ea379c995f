//! Best-first nearest-neighbour traversal over an rstar tree, pruned to a distance band.
//!
//! rstar's own `nearest_neighbor_iter` walks without a bound and grows its heap through
//! `extend`; checkout needs "nearest first, but only within the radius" and usually stops after a
//! few stores, so this walk prunes every node outside `[min_c2, max_c2]` and pushes children one
//! by one.

use super::Site;
use rstar::{ParentNode, RTreeNode, AABB};

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::ops::ControlFlow;

struct Item<'t> {
    d2: f64,
    node: &'t RTreeNode<Site>,
}

impl PartialEq for Item<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.d2 == other.d2
    }
}
impl Eq for Item<'_> {}
impl PartialOrd for Item<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Item<'_> {
    // Reversed: BinaryHeap is a max-heap and we want the nearest first.
    fn cmp(&self, other: &Self) -> Ordering {
        other.d2.total_cmp(&self.d2)
    }
}

fn point_d2(a: &[f64; 3], b: &[f64; 3]) -> f64 {
    (a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)
}

/// Squared distance from `q` to the farthest corner of `b`.
fn max_d2(b: &AABB<[f64; 3]>, q: &[f64; 3]) -> f64 {
    let (lo, hi) = (b.lower(), b.upper());
    (0..3).map(|i| (q[i] - lo[i]).abs().max((q[i] - hi[i]).abs()).powi(2)).sum()
}

/// Visits leaves with squared chord distance in `[min_c2, max_c2]` in increasing distance order.
pub(super) fn best_first<B>(
    root: &ParentNode<Site>,
    q: [f64; 3],
    min_c2: f64,
    max_c2: f64,
    mut visit: impl FnMut(u32, f64) -> ControlFlow<B>,
) -> Option<B> {
    fn push<'t>(
        heap: &mut BinaryHeap<Item<'t>>,
        children: &'t [RTreeNode<Site>],
        q: &[f64; 3],
        min_c2: f64,
        max_c2: f64,
    ) {
        for node in children {
            let d2 = match node {
                RTreeNode::Leaf(site) => {
                    let d2 = point_d2(site.geom(), q);
                    if d2 < min_c2 {
                        continue;
                    }
                    d2
                }
                RTreeNode::Parent(p) => {
                    let env = p.envelope();
                    if min_c2 > 0.0 && max_d2(&env, q) < min_c2 {
                        continue;
                    }
                    env.distance_2(q)
                }
            };
            if d2 <= max_c2 {
                heap.push(Item { d2, node });
            }
        }
    }
    let mut heap: BinaryHeap<Item<'_>> = BinaryHeap::with_capacity(64);
    push(&mut heap, root.children(), &q, min_c2, max_c2);
    while let Some(Item { d2, node }) = heap.pop() {
        match node {
            RTreeNode::Leaf(site) => {
                if let ControlFlow::Break(b) = visit(site.data, d2) {
                    return Some(b);
                }
            }
            RTreeNode::Parent(p) => push(&mut heap, p.children(), &q, min_c2, max_c2),
        }
    }
    None
}
