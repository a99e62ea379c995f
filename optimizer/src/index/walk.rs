//! The checkout walk: best-first nearest-neighbour traversal, pruned to a distance band, over a
//! frozen compact copy of an rstar tree.
//!
//! rstar keeps every child inline as a 72-byte enum (a 48-byte box for a parent, a 32-byte point
//! for a leaf), so expanding a node of 16 children reads 1.1 KB, and on 180,000 stores most of
//! those reads miss the cache: the walk stalled on them for most of its time. [`FlatTree`] copies
//! the tree's topology (rstar builds it: bulk load, R* splits) into arrays in breadth-first order:
//! a parent's child boxes as `f32` rounded outwards (28 bytes each; an outward box only ever
//! lowers a lower bound, so the walk stays exact) and points as `f64` (32 bytes), about 2.5 times
//! fewer cache lines per expansion.
//!
//! The walk itself
//! * prunes every node and point outside `[min_c2, max_c2]`,
//! * prefetches every cache line of an expanded node's children at once,
//! * copies the surviving children of an expanded node into an arena (the thread's, kept
//!   between walks so that a walk allocates nothing) and keeps a single
//!   heap entry per expanded node: a cursor at its nearest unvisited child (selected, not sorted:
//!   a walk rarely takes more than one or two children of a node). The heap holds one entry per
//!   level instead of sixteen, and most pushes disappear.

use super::Site;
use rstar::{ParentNode, RTreeNode};
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::ops::ControlFlow;

/// A child box of a flat node, rounded outwards to `f32`, with where the child's own children
/// are: `boxes[b0..b0 + nb]` and `points[p0..p0 + np]`. Keeping the ranges in the box (rather
/// than in a node table) saves one cache miss per expanded node.
#[derive(Copy, Clone, Debug, Default)]
struct FlatBox {
    lo: [f32; 3],
    hi: [f32; 3],
    b0: u32,
    p0: u32,
    nb: u16,
    np: u16,
}

/// A stored point and its data word.
#[derive(Copy, Clone, Debug, PartialEq)]
pub(super) struct FlatPoint {
    pub p: [f64; 3],
    pub data: u32,
}

/// A frozen, cache-friendly copy of an rstar tree (see the module docs).
#[derive(Debug, Clone, Default)]
pub(super) struct FlatTree {
    /// The root's children (only the ranges are used).
    root: FlatBox,
    boxes: Vec<FlatBox>,
    points: Vec<FlatPoint>,
}

fn down(x: f64) -> f32 {
    let f = x as f32;
    if f64::from(f) > x {
        f.next_down()
    } else {
        f
    }
}

fn up(x: f64) -> f32 {
    let f = x as f32;
    if f64::from(f) < x {
        f.next_up()
    } else {
        f
    }
}

impl FlatTree {
    /// Copies the tree under `root`, breadth first.
    pub fn new(root: &ParentNode<Site>) -> FlatTree {
        let mut t = FlatTree::default();
        // (node, index of its box in `boxes`, or None for the root)
        let mut queue = std::collections::VecDeque::from([(root, None)]);
        while let Some((node, at)) = queue.pop_front() {
            let (b0, p0) = (t.boxes.len() as u32, t.points.len() as u32);
            for child in node.children() {
                match child {
                    RTreeNode::Leaf(site) => t.points.push(FlatPoint { p: *site.geom(), data: site.data }),
                    RTreeNode::Parent(p) => {
                        let env = p.envelope();
                        let (lo, hi) = (env.lower(), env.upper());
                        queue.push_back((p, Some(t.boxes.len())));
                        t.boxes.push(FlatBox {
                            lo: [down(lo[0]), down(lo[1]), down(lo[2])],
                            hi: [up(hi[0]), up(hi[1]), up(hi[2])],
                            ..FlatBox::default()
                        });
                    }
                }
            }
            // rstar nodes hold at most a few dozen children.
            let (nb, np) = ((t.boxes.len() as u32 - b0) as u16, (t.points.len() as u32 - p0) as u16);
            let slot = match at {
                Some(i) => &mut t.boxes[i],
                None => &mut t.root,
            };
            (slot.b0, slot.p0, slot.nb, slot.np) = (b0, p0, nb, np);
        }
        t
    }

    /// Bulk-loads `points` top down by Overlap Minimizing Top-down partitioning, the algorithm
    /// rstar's bulk load uses (each node's points are cut into slabs along each axis in turn by
    /// selection, one slab group per child), but in place over the flat points: no node objects,
    /// no copy afterwards. Leaves hold at most `fanout` points, parents (as in rstar's bulk load)
    /// up to `ceil(fanout^(1/3))^3` children, at least 8; the layout is breadth first and
    /// each leaf's points are contiguous, neighbouring leaves near each other.
    ///
    /// # Runtime
    /// O(n log n).
    pub fn bulk(mut points: Vec<FlatPoint>, fanout: usize) -> FlatTree {
        assert!((2..=usize::from(u16::MAX)).contains(&fanout), "fanout in 2..=65535");
        let mut t = FlatTree { root: FlatBox::default(), boxes: Vec::new(), points: Vec::new() };
        if points.len() <= fanout {
            t.root.np = points.len() as u16;
            t.points = points;
            return t;
        }
        // (start, len) of a node's points; the node's box at `boxes[at]`, or the root for None.
        let mut queue = std::collections::VecDeque::from([(0usize, points.len(), None::<usize>)]);
        let mut clusters = Vec::new();
        while let Some((start, len, at)) = queue.pop_front() {
            let run = &mut points[start..start + len];
            let slot = FlatBox { b0: t.boxes.len() as u32, ..FlatBox::default() };
            let slot = if len <= fanout {
                FlatBox { p0: start as u32, np: len as u16, ..slot }
            } else {
                clusters.clear();
                omt_clusters(run, fanout, &mut clusters);
                for &(off, n) in &clusters {
                    queue.push_back((start + off, n, Some(t.boxes.len())));
                    t.boxes.push(bounds(&run[off..off + n]));
                }
                FlatBox { nb: clusters.len() as u16, ..slot }
            };
            let target = match at {
                Some(i) => &mut t.boxes[i],
                None => &mut t.root,
            };
            (target.b0, target.p0, target.nb, target.np) = (slot.b0, slot.p0, slot.nb, slot.np);
        }
        t.points = points;
        t
    }

    /// Every stored point.
    pub fn points(&self) -> &[FlatPoint] {
        &self.points
    }
}

/// The box around `points`, rounded outwards to `f32`.
fn bounds(points: &[FlatPoint]) -> FlatBox {
    let mut b = FlatBox { lo: [f32::INFINITY; 3], hi: [f32::NEG_INFINITY; 3], ..FlatBox::default() };
    for q in points {
        for d in 0..3 {
            b.lo[d] = b.lo[d].min(down(q.p[d]));
            b.hi[d] = b.hi[d].max(up(q.p[d]));
        }
    }
    b
}

/// Reorders `run` (more than `fanout` points) into the clusters that become one node's children
/// and appends each cluster's (offset, length): as many clusters as subtrees of a full tree of
/// this depth need, cut as slabs along z, each slab along y, each of those along x.
fn omt_clusters(run: &mut [FlatPoint], fanout: usize, out: &mut Vec<(usize, usize)>) {
    let m = fanout as f64;
    let depth = (run.len() as f64).log(m).ceil() as i32;
    let per_subtree = m.powi(depth - 1);
    let clusters = (run.len() as f64 / per_subtree).ceil();
    let per_axis = (clusters.powf(1.0 / 3.0).ceil() as usize).max(2);
    let mut groups = vec![(0usize, run.len())];
    for axis in (0..3).rev() {
        let mut next = Vec::with_capacity(groups.len() * per_axis);
        for (off, len) in groups {
            let slab = len.div_ceil(per_axis);
            let mut at = 0;
            while len - at > slab {
                let rest = &mut run[off + at..off + len];
                rest.select_nth_unstable_by(slab, |a, b| a.p[axis].total_cmp(&b.p[axis]));
                next.push((off + at, slab));
                at += slab;
            }
            next.push((off + at, len - at));
        }
        groups = next;
    }
    out.extend(groups);
}

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
fn max_d2(b: &FlatBox, q: &[f64; 3]) -> f64 {
    (0..3).map(|i| (q[i] - f64::from(b.lo[i])).abs().max((q[i] - f64::from(b.hi[i])).abs()).powi(2)).sum()
}

/// Squared distance from `q` to the nearest point of `b` (0 inside).
fn min_d2(b: &FlatBox, q: &[f64; 3]) -> f64 {
    (0..3).map(|i| (f64::from(b.lo[i]) - q[i]).max(0.0).max(q[i] - f64::from(b.hi[i])).powi(2)).sum()
}

/// An arena entry: a point (`POINT` bit set, index into `points`, or into the extra points) or
/// the index of a box in `boxes`.
type Entry = (f64, u32);
const POINT: u32 = 1 << 31;
const EXTRA: u32 = 1 << 30;

/// The band a walk may visit and the point it starts from.
struct Band {
    q: [f64; 3],
    min_c2: f64,
    max_c2: f64,
}

impl Band {
    fn push_points(&self, arena: &mut Vec<Entry>, points: &[FlatPoint], base: u32, tag: u32) {
        for (i, pt) in points.iter().enumerate() {
            let d2 = point_d2(&pt.p, &self.q);
            if d2 >= self.min_c2 && d2 <= self.max_c2 {
                arena.push((d2, (base + i as u32) | tag));
            }
        }
    }

    fn push_boxes(&self, arena: &mut Vec<Entry>, boxes: &[FlatBox], base: u32) {
        for (i, b) in boxes.iter().enumerate() {
            if self.min_c2 > 0.0 && max_d2(b, &self.q) < self.min_c2 {
                continue;
            }
            let d2 = min_d2(b, &self.q);
            if d2 <= self.max_c2 {
                arena.push((d2, base + i as u32));
            }
        }
    }
}

/// Closes the arena entries pushed since `start` into a cursor.
fn cursor(arena: &mut [Entry], start: usize) -> Option<Cursor> {
    let end = arena.len();
    (start < end).then(|| Cursor {
        d2: bring_nearest_first(&mut arena[start..]),
        start: start as u32,
        end: end as u32,
    })
}

/// Swaps the nearest entry of a non-empty `slice` to its front and returns its distance. A walk
/// usually takes one or two children of a node, so selecting beats sorting them all.
fn bring_nearest_first(slice: &mut [Entry]) -> f64 {
    let mut best = 0;
    for (i, e) in slice.iter().enumerate().skip(1) {
        if e.0 < slice[best].0 {
            best = i;
        }
    }
    slice.swap(0, best);
    slice[0].0
}

/// Asks for every cache line of `slice` at once. A node's children span up to nine lines that
/// nearly always miss; read one after another, each waits for the one before it, while
/// prefetched they arrive together.
#[inline(always)]
fn prefetch<T>(slice: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let (at, bytes) = (slice.as_ptr() as usize, std::mem::size_of_val(slice));
        // An empty slice holds no line (and may point anywhere).
        let lines = if bytes == 0 { 0..0 } else { at & !63..at + bytes };
        for line in lines.step_by(64) {
            // SAFETY: a prefetch is a hint: it never faults and changes no program state, and
            // these lines hold `slice` anyway.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(line as *const i8) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = slice;
}

/// Visits the points of `tree` and `extra` with squared chord distance from `q` in
/// `[min_c2, max_c2]`, in increasing distance order, until `visit` breaks.
pub(super) fn best_first<B>(
    tree: &FlatTree,
    extra: &[FlatPoint],
    q: [f64; 3],
    min_c2: f64,
    max_c2: f64,
    visit: impl FnMut(u32, f64) -> ControlFlow<B>,
) -> Option<B> {
    let band = Band { q, min_c2, max_c2 };
    // The arena and heap of this thread's last walk, emptied (a walk started from inside a
    // visit finds them taken and allocates its own).
    let (mut arena, mut heap) = SCRATCH.with(|s| s.take());
    arena.reserve(128);
    heap.reserve(16);
    let found = walk_with(tree, extra, &band, &mut arena, &mut heap, visit);
    arena.clear();
    heap.clear();
    SCRATCH.with(|s| s.set((arena, heap)));
    found
}

thread_local! {
    static SCRATCH: std::cell::Cell<(Vec<Entry>, BinaryHeap<Cursor>)> =
        const { std::cell::Cell::new((Vec::new(), BinaryHeap::new())) };
}

fn walk_with<B>(
    tree: &FlatTree,
    extra: &[FlatPoint],
    band: &Band,
    arena: &mut Vec<Entry>,
    heap: &mut BinaryHeap<Cursor>,
    mut visit: impl FnMut(u32, f64) -> ControlFlow<B>,
) -> Option<B> {
    let expand = |arena: &mut Vec<Entry>, heap: &mut BinaryHeap<Cursor>, n: &FlatBox| {
        let start = arena.len();
        let (b0, p0) = (n.b0 as usize, n.p0 as usize);
        let (boxes, points) =
            (&tree.boxes[b0..b0 + usize::from(n.nb)], &tree.points[p0..p0 + usize::from(n.np)]);
        prefetch(boxes);
        prefetch(points);
        band.push_boxes(arena, boxes, n.b0);
        band.push_points(arena, points, n.p0, POINT);
        if let Some(c) = cursor(arena, start) {
            heap.push(c);
        }
    };
    expand(arena, heap, &tree.root);
    if !extra.is_empty() {
        let start = arena.len();
        band.push_points(arena, extra, 0, POINT | EXTRA);
        if let Some(c) = cursor(arena, start) {
            heap.push(c);
        }
    }
    while let Some(mut cursor) = heap.pop() {
        let (d2, entry) = arena[cursor.start as usize];
        cursor.start += 1;
        if cursor.start < cursor.end {
            cursor.d2 = bring_nearest_first(&mut arena[cursor.start as usize..cursor.end as usize]);
            heap.push(cursor);
        }
        if entry & POINT != 0 {
            let i = (entry & !(POINT | EXTRA)) as usize;
            let pt = if entry & EXTRA != 0 { &extra[i] } else { &tree.points[i] };
            if let ControlFlow::Break(b) = visit(pt.data, d2) {
                return Some(b);
            }
        } else {
            expand(arena, heap, &tree.boxes[entry as usize]);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::LonLat;
    use proptest::prelude::*;

    /// Checks the tree's shape: every point under exactly one leaf, nodes within `fanout`
    /// children, every box holding its children; returns how many points the leaves hold.
    fn check_node(t: &FlatTree, n: &FlatBox, fanout: usize, seen: &mut [u32]) -> usize {
        // Leaves hold at most `fanout` points; a parent up to ceil(fanout^(1/3))^3 (at least 8)
        // children, as in rstar's bulk load.
        assert!(usize::from(n.np) <= fanout && (n.np == 0 || n.nb == 0));
        let per_axis = ((fanout as f64).cbrt().ceil() as usize).max(2);
        assert!(usize::from(n.nb) <= per_axis.pow(3));
        let mut total = 0;
        for p in &t.points[n.p0 as usize..(n.p0 + u32::from(n.np)) as usize] {
            seen[p.data as usize] += 1;
            total += 1;
        }
        for c in &t.boxes[n.b0 as usize..(n.b0 + u32::from(n.nb)) as usize] {
            let inside = |lo: [f32; 3], hi: [f32; 3]| (0..3).all(|d| c.lo[d] <= lo[d] && hi[d] <= c.hi[d]);
            for p in &t.points[c.p0 as usize..(c.p0 + u32::from(c.np)) as usize] {
                let (lo, hi) = (p.p.map(down), p.p.map(up));
                assert!(inside(lo, hi), "a point outside its leaf's box");
            }
            for g in &t.boxes[c.b0 as usize..(c.b0 + u32::from(c.nb)) as usize] {
                assert!(inside(g.lo, g.hi), "a box outside its parent's box");
            }
            total += check_node(t, c, fanout, seen);
        }
        total
    }

    /// A walk started from inside another walk's visit (the scratch arena is then taken) sees
    /// the same points in the same order as one started on its own, and so does the outer walk.
    #[test]
    fn a_walk_inside_a_walk_keeps_both_orders() {
        let points: Vec<FlatPoint> = (0..500)
            .map(|i| {
                let (lon, lat) = (100.0 + f64::from(i % 25) * 0.37, 25.0 + f64::from(i / 25) * 0.41);
                FlatPoint { p: LonLat::new(lon, lat).unwrap().unit_vector(), data: i }
            })
            .collect();
        let t = FlatTree::bulk(points, 16);
        let q = |lon, lat| LonLat::new(lon, lat).unwrap().unit_vector();
        let order = |at: [f64; 3]| {
            let mut out = Vec::new();
            best_first::<()>(&t, &[], at, 0.0, f64::INFINITY, |d, _| {
                out.push(d);
                ControlFlow::Continue(())
            });
            out
        };
        let (outer_alone, inner_alone) = (order(q(103.0, 28.0)), order(q(108.0, 31.0)));
        let mut outer = Vec::new();
        best_first::<()>(&t, &[], q(103.0, 28.0), 0.0, f64::INFINITY, |d, _| {
            outer.push(d);
            if outer.len() % 100 == 1 {
                assert_eq!(order(q(108.0, 31.0)), inner_alone);
            }
            ControlFlow::Continue(())
        });
        assert_eq!(outer, outer_alone);
        assert_eq!(outer.len(), 500);
    }

    proptest! {
        #![proptest_config(crate::testkit::seeded(32))]

        /// The in-place bulk load gives a well-formed tree whose walk visits every point once,
        /// in exactly the order a brute-force sort by distance gives.
        #[test]
        fn bulk_tree_walks_in_brute_force_order(
            pts in proptest::collection::vec((73.0f64..135.0, 18.0f64..53.0), 0..3000),
            fanout in 2usize..20,
            q in (73.0f64..135.0, 18.0f64..53.0),
        ) {
            let points: Vec<FlatPoint> = pts
                .iter()
                .enumerate()
                .map(|(i, &(lon, lat))| FlatPoint { p: LonLat::new(lon, lat).unwrap().unit_vector(), data: i as u32 })
                .collect();
            let t = FlatTree::bulk(points.clone(), fanout);
            let mut seen = vec![0u32; points.len()];
            prop_assert_eq!(check_node(&t, &t.root, fanout, &mut seen), points.len());
            prop_assert!(seen.iter().all(|&s| s == 1));
            let q = LonLat::new(q.0, q.1).unwrap().unit_vector();
            let d2 = |p: &[f64; 3]| (0..3).map(|d| (p[d] - q[d]).powi(2)).sum::<f64>();
            let mut walked = Vec::new();
            best_first::<()>(&t, &[], q, 0.0, f64::INFINITY, |data, c2| {
                walked.push((data, c2));
                ControlFlow::Continue(())
            });
            // Every point once, each at its own distance, nearest first: the brute-force order.
            let mut once = vec![false; points.len()];
            for &(data, c2) in &walked {
                prop_assert!(!std::mem::replace(&mut once[data as usize], true));
                prop_assert!((c2 - d2(&points[data as usize].p)).abs() < 1e-12);
            }
            prop_assert!(once.iter().all(|&v| v));
            prop_assert!(walked.windows(2).all(|w| w[0].1 <= w[1].1));
        }
    }
}
