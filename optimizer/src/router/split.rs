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
pub(super) type Candidate = (StoreIdx, u64, f64);

#[derive(Copy, Clone)]
struct Cover {
    shipments: u8,
    /// What the rule minimises: (shipments, metres) for the router's own rule.
    key: (u32, f64),
    /// (previous mask, candidate index) that reached this mask.
    from: Option<(u32, u32)>,
}

pub(super) fn find<C: TravelCost>(
    router: &Router<C>,
    ctx: &mut Ctx<'_>,
) -> Result<Option<(Parts, Timestamp)>, RouteError> {
    let max = router.config.max_shipments;
    find_by(router, ctx, |candidates, lines| best_cover(candidates, lines.len(), max))
}

/// Like [`find`], with the cover chosen by `choose` from the candidates (`None`: no split).
pub(super) fn find_by<C: TravelCost>(
    router: &Router<C>,
    ctx: &mut Ctx<'_>,
    mut choose: impl FnMut(&[Candidate], &[(SkuIdx, u32)]) -> Option<Parts>,
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
        let Some(parts) = choose(&candidates, &ctx.lines) else {
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
    cover_by(candidates, n, max_shipments, false, |ci, _| (1, candidates[ci].2)).map(|(parts, _)| parts)
}

/// Orders with more lines than this give each priced part all the lines it can add (3^lines
/// steps per candidate otherwise).
const SUBSET_LINES: usize = 6;

/// The cover of `lines` whose price is least and below `below`: each part at `price(store,
/// its lines)`, plus `penalty` per part beyond the first; at most `max_shipments` parts. The
/// price must be a store's fixed part plus one per line ([`super::BidPrices::store`]); a part
/// may take fewer lines than its store could give (exact up to [`SUBSET_LINES`] lines).
pub(super) fn priced_cover(
    candidates: &[Candidate],
    lines: &[(SkuIdx, u32)],
    max_shipments: usize,
    price: impl Fn(StoreIdx, &[(SkuIdx, u32)]) -> f64,
    penalty: f64,
    below: f64,
) -> Option<Parts> {
    // Per candidate: its fixed part, then each line's.
    let priced: Vec<(f64, Vec<f64>)> = candidates
        .iter()
        .map(|&(store, _, _)| {
            let fixed = price(store, &[]);
            (fixed, lines.iter().map(|l| price(store, std::slice::from_ref(l)) - fixed).collect())
        })
        .collect();
    let part = |ci: usize, mask: u32| {
        let (fixed, per_line) = &priced[ci];
        fixed + per_line.iter().enumerate().filter(|(i, _)| mask & (1 << i) != 0).map(|(_, p)| p).sum::<f64>()
    };
    let subsets = lines.len() <= SUBSET_LINES;
    // Every part pays the penalty in the search; the first does not owe it.
    let (parts, (_, paid)) =
        cover_by(candidates, lines.len(), max_shipments, subsets, |ci, take| (0, part(ci, take) + penalty))?;
    (paid - penalty < below).then_some(parts)
}

/// The cover of all `n` lines with least total `step` cost, compared as (count, amount), and
/// that total: a step takes candidate `ci` for the lines `take` (a mask) that the cover does
/// not hold yet; all of those it can add, or with `subsets` any non-empty part of them. `None`
/// if impossible within `max_shipments`.
fn cover_by(
    candidates: &[Candidate],
    n: usize,
    max_shipments: usize,
    subsets: bool,
    step: impl Fn(usize, u32) -> (u32, f64),
) -> Option<(Parts, (u32, f64))> {
    let full = (1u32 << n) - 1;
    let mut table: Vec<Option<Cover>> = vec![None; 1 << n];
    table[0] = Some(Cover { shipments: 0, key: (0, 0.0), from: None });
    // Masks only grow along a transition, so increasing numeric order is a topological order.
    for mask in 0..=full {
        let Some(here) = table[mask as usize] else { continue };
        if usize::from(here.shipments) >= max_shipments {
            continue;
        }
        for (ci, (_, cov, _)) in candidates.iter().enumerate() {
            let open = *cov as u32 & full & !mask;
            // Every non-empty subset of the lines it can add, or all of them at once.
            let mut take = open;
            while take != 0 {
                let next = mask | take;
                let (count, amount) = step(ci, take);
                let cand = Cover {
                    shipments: here.shipments + 1,
                    key: (here.key.0 + count, here.key.1 + amount),
                    from: Some((mask, ci as u32)),
                };
                let better = match table[next as usize] {
                    None => true,
                    Some(old) => cand.key < old.key,
                };
                if better {
                    table[next as usize] = Some(cand);
                }
                take = if subsets { (take - 1) & open } else { 0 };
            }
        }
    }
    let mut parts = Vec::new();
    let mut mask = full;
    let total = table[full as usize]?.key;
    while let Some(Cover { from: Some((prev, ci)), .. }) = table[mask as usize] {
        let (store, _, _) = candidates[ci as usize];
        let lines: Vec<usize> = (0..n).filter(|i| (mask & !prev) & (1 << i) != 0).collect();
        parts.push((store, lines));
        mask = prev;
    }
    parts.reverse();
    Some((parts, total))
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

    /// The least-price cover by brute force: every assignment of each line to a candidate that
    /// can give it, within the shipment limit.
    fn cheapest_by_brute_force(
        masks: &[u64],
        n: usize,
        max_shipments: usize,
        price: &dyn Fn(usize, u32) -> f64,
        penalty: f64,
    ) -> Option<f64> {
        let m = masks.len();
        let mut best: Option<f64> = None;
        for code in 0..m.pow(n as u32) {
            let mut per = vec![0u32; m];
            let mut c = code;
            let mut ok = true;
            for line in 0..n {
                let who = c % m;
                c /= m;
                ok &= masks[who] & (1 << line) != 0;
                per[who] |= 1 << line;
            }
            let used: Vec<usize> = (0..m).filter(|&w| per[w] != 0).collect();
            if !ok || used.len() > max_shipments {
                continue;
            }
            let total =
                used.iter().map(|&w| price(w, per[w])).sum::<f64>() + penalty * (used.len() - 1) as f64;
            best = Some(best.map_or(total, |b: f64| b.min(total)));
        }
        best
    }

    proptest::proptest! {
        #![proptest_config(crate::testkit::seeded(256))]

        /// The priced cover is the least-price one (prices a store's fixed part plus one per
        /// line, ties and zero prices included), covers each line once from a store that can
        /// give it, and is refused when it is not below the bound.
        #[test]
        fn priced_cover_is_the_cheapest(
            n in 1usize..=4,
            stores in proptest::collection::vec((1u64..16, 0u32..4, proptest::collection::vec(0u32..4, 4)), 1..=5),
            max_shipments in 1usize..=4,
            penalty in 0u32..3,
        ) {
            let candidates: Vec<Candidate> =
                stores.iter().enumerate().map(|(i, s)| (StoreIdx(i as u32), s.0 & ((1 << n) - 1), 0.0)).collect();
            let lines: Vec<(SkuIdx, u32)> = (0..n as u32).map(|k| (SkuIdx(k), 1)).collect();
            let price = |store: StoreIdx, part: &[(SkuIdx, u32)]| {
                let (_, fixed, per) = &stores[store.0 as usize];
                f64::from(*fixed) + part.iter().map(|(k, _)| f64::from(per[k.0 as usize])).sum::<f64>()
            };
            let by_mask = |w: usize, mask: u32| {
                let part: Vec<(SkuIdx, u32)> = lines.iter().copied().filter(|(k, _)| mask & (1 << k.0) != 0).collect();
                price(StoreIdx(w as u32), &part)
            };
            let masks: Vec<u64> = candidates.iter().map(|c| c.1).collect();
            let penalty = f64::from(penalty);
            let best = cheapest_by_brute_force(&masks, n, max_shipments, &by_mask, penalty);
            let got = priced_cover(&candidates, &lines, max_shipments, price, penalty, f64::INFINITY);
            proptest::prop_assert_eq!(best.is_some(), got.is_some());
            if let (Some(best), Some(parts)) = (best, got) {
                let mut covered = 0u32;
                for (store, ix) in &parts {
                    for &i in ix {
                        proptest::prop_assert!(masks[store.0 as usize] & (1 << i) != 0);
                        proptest::prop_assert!(covered & (1 << i) == 0);
                        covered |= 1 << i;
                    }
                }
                proptest::prop_assert_eq!(covered, (1u32 << n) - 1);
                proptest::prop_assert!(parts.len() <= max_shipments);
                let total = parts.iter().map(|(s, ix)| by_mask(s.0 as usize, ix.iter().fold(0, |m, &i| m | 1 << i))).sum::<f64>()
                    + penalty * (parts.len() - 1) as f64;
                proptest::prop_assert!((total - best).abs() < 1e-9, "cover {} against {}", total, best);
                // Not below a bound equal to its own price: refused.
                proptest::prop_assert!(priced_cover(&candidates, &lines, max_shipments, price, penalty, best).is_none());
            }
        }
    }
}
