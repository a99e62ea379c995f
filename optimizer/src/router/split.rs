//! Split search: serve a multi-line order from several nearby stores.
//!
//! Candidates are, per line, the `split_candidates_per_line` nearest ship-capable stores within
//! the radius that have that line available (the single-store walk has already met the driver
//! line's, so that line is not walked again). Each candidate covers a subset of lines (a bit
//! mask). A dynamic programme over masks finds the cover with the fewest shipments, then the
//! least total distance; the chosen shipments are reserved atomically.
//!
//! Masks start from the lock-free availability bits (a line is "covered" when the store has any
//! of it available, capacity is assumed), which can only claim more than a store can do. When the
//! reservation refuses a store, that store's mask is computed exactly under its lock and the
//! cover is searched again. A cover that reserves is feasible, and no exactly feasible cover is
//! better than the best cover under masks that claim at least as much, so the result is the one
//! exact masks would give, while most candidates are never locked. If a store refuses whose mask
//! was already exact, another order took the stock meanwhile and the search starts over (a
//! bounded number of times).

use super::{Ctx, RouteError, Router};
use crate::model::{SkuIdx, StoreIdx, Timestamp};
use crate::travel::TravelCost;
use std::ops::ControlFlow;

/// Orders with more lines than this are not split (the mask table has 2^lines entries).
const MAX_SPLIT_LINES: usize = 12;
const ATTEMPTS: usize = 3;

/// Parts of a split: (store, indexes of the order lines it ships).
pub(super) type Parts = Vec<(StoreIdx, Vec<usize>)>;

/// A split candidate: the store, the lines it may supply (bit `i`: line `i`), its distance.
type Candidate = (StoreIdx, u64, f64);

#[derive(Copy, Clone)]
struct Cover {
    shipments: u8,
    distance_m: f64,
    /// (previous mask, candidate index) that reached this mask.
    from: Option<(u32, u32)>,
}

pub(super) fn find<C: TravelCost>(
    router: &Router<C>,
    ctx: &mut Ctx<'_>,
) -> Result<Option<(Parts, Timestamp)>, RouteError> {
    let n = ctx.lines.len();
    if n > MAX_SPLIT_LINES {
        return Ok(None);
    }
    let ledger = ctx.engine.ledger();
    let mut candidates = candidates(router, ctx);
    let mut exact = vec![false; candidates.len()];
    let mut races = 0;
    loop {
        let Some(parts) = best_cover(&candidates, n, router.config.max_shipments) else {
            return Ok(None);
        };
        let per_store: Vec<(StoreIdx, Vec<(SkuIdx, u32)>)> =
            parts.iter().map(|(s, ix)| (*s, ix.iter().map(|&i| ctx.lines[i]).collect())).collect();
        let request: Vec<(StoreIdx, &[(SkuIdx, u32)])> =
            per_store.iter().map(|(s, l)| (*s, l.as_slice())).collect();
        let refused = match ledger.reserve(ctx.order.id(), &request, ctx.now)? {
            Ok(expires_at) => return Ok(Some((parts, expires_at))),
            Err(refused) => refused,
        };
        let store = parts[refused.shipment].0;
        let c = candidates.iter().position(|c| c.0 == store).expect("parts are candidates");
        if exact[c] {
            races += 1;
            if races == ATTEMPTS {
                return Ok(None);
            }
            candidates = self::candidates(router, ctx);
            exact = vec![false; candidates.len()];
        } else {
            let (mask, has_capacity) = ledger.coverage(store, &ctx.lines, ctx.now);
            candidates[c].1 = if has_capacity { mask } else { 0 };
            exact[c] = true;
        }
    }
}

/// Candidate stores with the lines their availability bits claim, and their distance.
fn candidates<C: TravelCost>(router: &Router<C>, ctx: &mut Ctx<'_>) -> Vec<Candidate> {
    let engine = ctx.engine;
    let ledger = engine.ledger();
    let at = ctx.order.customer();
    let k = router.config.split_candidates_per_line;
    let mut found: Vec<(StoreIdx, f64)> = Vec::new();
    for &(sku, _) in &ctx.lines {
        if let Some(d) = ctx.driver.as_ref().filter(|d| d.sku == sku) {
            found.extend_from_slice(&d.stores);
            continue;
        }
        let mut taken = 0;
        let mut walked = 0;
        engine.walk_stocked::<()>(sku, at, 0.0, router.config.ship_radius_m, |c| {
            walked += 1;
            if walked > router.config.max_walk {
                return ControlFlow::Break(());
            }
            if c.ship && ledger.maybe_available(c.store, sku) {
                found.push((c.store, c.distance_m()));
                taken += 1;
            }
            if taken == k {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        ctx.explanation.candidates_considered += walked;
    }
    found.sort_by_key(|p| p.0);
    found.dedup_by_key(|p| p.0);
    found
        .into_iter()
        .filter_map(|(store, d)| {
            let mask = ctx
                .lines
                .iter()
                .take(64)
                .enumerate()
                .filter(|(_, (sku, _))| ledger.maybe_available(store, *sku))
                .fold(0u64, |m, (i, _)| m | 1 << i);
            (mask != 0).then_some((store, mask, d))
        })
        .collect()
}

/// Fewest shipments, then least total distance, covering all `n` lines; `None` if impossible
/// within `max_shipments`.
fn best_cover(candidates: &[Candidate], n: usize, max_shipments: usize) -> Option<Parts> {
    let full = (1u32 << n) - 1;
    let mut table: Vec<Option<Cover>> = vec![None; 1 << n];
    table[0] = Some(Cover { shipments: 0, distance_m: 0.0, from: None });
    // Masks only grow along a transition, so increasing numeric order is a topological order.
    for mask in 0..=full {
        let Some(here) = table[mask as usize] else { continue };
        if usize::from(here.shipments) >= max_shipments {
            continue;
        }
        for (ci, (_, cov, d)) in candidates.iter().enumerate() {
            let next = mask | (*cov as u32 & full);
            if next == mask {
                continue;
            }
            let cand = Cover {
                shipments: here.shipments + 1,
                distance_m: here.distance_m + d,
                from: Some((mask, ci as u32)),
            };
            let better = match table[next as usize] {
                None => true,
                Some(old) => (cand.shipments, cand.distance_m) < (old.shipments, old.distance_m),
            };
            if better {
                table[next as usize] = Some(cand);
            }
        }
    }
    let mut parts = Vec::new();
    let mut mask = full;
    table[full as usize]?;
    while let Some(Cover { from: Some((prev, ci)), .. }) = table[mask as usize] {
        let (store, _, _) = candidates[ci as usize];
        let lines: Vec<usize> = (0..n).filter(|i| (mask & !prev) & (1 << i) != 0).collect();
        parts.push((store, lines));
        mask = prev;
    }
    parts.reverse();
    Some(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefers_fewer_shipments_over_shorter_distance() {
        let c = [
            (StoreIdx(0), 0b001, 1.0),
            (StoreIdx(1), 0b010, 1.0),
            (StoreIdx(2), 0b100, 1.0),
            (StoreIdx(3), 0b011, 50.0),
        ];
        let parts = best_cover(&c, 3, 3).unwrap();
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().any(|(s, l)| *s == StoreIdx(3) && l == &vec![0, 1]));
        assert!(parts.iter().any(|(s, l)| *s == StoreIdx(2) && l == &vec![2]));
    }

    #[test]
    fn ties_on_shipments_go_to_least_total_distance() {
        let c = [
            (StoreIdx(0), 0b01, 10.0),
            (StoreIdx(1), 0b10, 10.0),
            (StoreIdx(2), 0b01, 2.0),
            (StoreIdx(3), 0b10, 3.0),
        ];
        let mut stores: Vec<StoreIdx> = best_cover(&c, 2, 3).unwrap().into_iter().map(|p| p.0).collect();
        stores.sort();
        assert_eq!(stores, vec![StoreIdx(2), StoreIdx(3)]);
    }

    #[test]
    fn respects_the_shipment_limit() {
        let c = [(StoreIdx(0), 0b001, 1.0), (StoreIdx(1), 0b010, 1.0), (StoreIdx(2), 0b100, 1.0)];
        assert!(best_cover(&c, 3, 2).is_none());
        assert!(best_cover(&c[..2], 3, 3).is_none());
    }
}
