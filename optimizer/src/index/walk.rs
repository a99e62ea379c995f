//! Best-first nearest-neighbour traversal over an rstar tree, pruned to a distance band.
//!
//! rstar's own `nearest_neighbor_iter` walks without a bound and pushes every child of every node
//! it expands into one heap. Checkout needs "nearest first, within the radius" and usually stops
//! after one or two stores, so this walk
//! * prunes every node and leaf outside `[min_c2, max_c2]`,
//! * sorts the surviving children of an expanded node once (into a per-walk arena) and keeps a
//!   single heap entry per expanded node: a cursor at its nearest unvisited child. The heap holds
//!   one entry per level instead of sixteen, and most pushes disappear.

use super::Site;
use rstar::{ParentNode, RTreeNode, AABB};
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::ops::ControlFlow;

/// A node's children within the band, nearest first: `arena[start..end]`, next at `start`.
#[derive(Copy, Clone)]
struct Cursor {
    d2: f64,
    start: u32,
    end: u32,
}

impl PartialEq for Cursor {
    fn eq(&self, other: &Self) -> bool {
        self.d2 == other.d2
    }
}
impl Eq for Cursor {}
impl PartialOrd for Cursor {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Cursor {
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

/// Squared distance from `q` to the nearest point of `b` (0 inside).
fn min_d2(b: &AABB<[f64; 3]>, q: &[f64; 3]) -> f64 {
    let (lo, hi) = (b.lower(), b.upper());
    (0..3).map(|i| (lo[i] - q[i]).max(0.0).max(q[i] - hi[i]).powi(2)).sum()
}

/// Sorts the children of one node that fall in the band into the arena; returns their cursor.
fn expand<'t>(
    arena: &mut Vec<(f64, &'t RTreeNode<Site>)>,
    children: &'t [RTreeNode<Site>],
    q: &[f64; 3],
    min_c2: f64,
    max_c2: f64,
) -> Option<Cursor> {
    let start = arena.len();
    for node in children {
        let d2 = match node {
            RTreeNode::Leaf(site) => point_d2(site.geom(), q),
            RTreeNode::Parent(p) => {
                let env = p.envelope();
                if min_c2 > 0.0 && max_d2(&env, q) < min_c2 {
                    continue;
                }
                min_d2(&env, q)
            }
        };
        let leaf_too_near = matches!(node, RTreeNode::Leaf(_)) && d2 < min_c2;
        if d2 <= max_c2 && !leaf_too_near {
            arena.push((d2, node));
        }
    }
    let end = arena.len();
    let slice = &mut arena[start..];
    slice.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
    slice.first().map(|&(d2, _)| Cursor { d2, start: start as u32, end: end as u32 })
}

/// Visits leaves with squared chord distance in `[min_c2, max_c2]` in increasing distance order.
pub(super) fn best_first<B>(
    root: &ParentNode<Site>,
    q: [f64; 3],
    min_c2: f64,
    max_c2: f64,
    mut visit: impl FnMut(u32, f64) -> ControlFlow<B>,
) -> Option<B> {
    let mut arena: Vec<(f64, &RTreeNode<Site>)> = Vec::with_capacity(128);
    let mut heap: BinaryHeap<Cursor> = BinaryHeap::with_capacity(16);
    if let Some(c) = expand(&mut arena, root.children(), &q, min_c2, max_c2) {
        heap.push(c);
    }
    while let Some(mut cursor) = heap.pop() {
        let (d2, node) = arena[cursor.start as usize];
        cursor.start += 1;
        if cursor.start < cursor.end {
            cursor.d2 = arena[cursor.start as usize].0;
            heap.push(cursor);
        }
        match node {
            RTreeNode::Leaf(site) => {
                if let ControlFlow::Break(b) = visit(site.data, d2) {
                    return Some(b);
                }
            }
            RTreeNode::Parent(p) => {
                if let Some(c) = expand(&mut arena, p.children(), &q, min_c2, max_c2) {
                    heap.push(c);
                }
            }
        }
    }
    None
}
