//! Cheapest-option greedy on an instance: orders in arrival order, each by its cheapest feasible
//! option at that moment. The LP's rounding and repair start from it; the greedy *solver* is the
//! checkout router itself (`checkout.rs`).

use super::instance::{Instance, OptKind};
use super::{Choice, Plan, Solver, UnfilledReason};
use crate::model::StoreIdx;

/// Serves orders in arrival order by their cheapest feasible option among the instance's
/// candidates (whole store, split, DC), drawing stock and capacity down as it goes.
///
/// # Runtime
/// O(total options); sequential, as checkout is.
pub fn greedy(inst: &Instance) -> Plan {
    let mut left = inst.bounds().to_vec();
    let mut choices = vec![Choice::Unfilled(UnfilledReason::NoCandidate); inst.len()];
    for &o in &inst.arrival {
        let o = o as usize;
        choices[o] = serve(inst, o, &mut left);
    }
    Plan { solver: Solver::Greedy, choices, lp: None, priced: None }
}

/// Whether `opt` fits in `left`.
fn fits(inst: &Instance, o: usize, opt: &super::Opt, left: &[f64]) -> bool {
    let mut ok = true;
    inst.rows_of(o, opt, |r, c| ok &= left[r] >= c - 1e-9);
    ok
}

fn take(inst: &Instance, o: usize, opt: &super::Opt, left: &mut [f64], sign: f64) {
    inst.rows_of(o, opt, |r, c| left[r] -= sign * c);
}

/// Picks and takes the cheapest feasible option of order `o`.
pub(super) fn serve(inst: &Instance, o: usize, left: &mut [f64]) -> Choice {
    let opts = inst.options(o);
    let mut best: Option<(f64, Choice)> = None;
    let consider = |cost: f64, c: Choice, best: &mut Option<(f64, Choice)>| {
        if best.as_ref().is_none_or(|b| cost < b.0) {
            *best = Some((cost, c));
        }
    };
    let mut any_store = false;
    for opt in opts {
        match opt.kind {
            OptKind::Whole => {
                any_store = true;
                if fits(inst, o, opt, left) {
                    consider(opt.cost, Choice::Whole(StoreIdx(opt.store)), &mut best);
                }
            }
            OptKind::Dc => {
                any_store = true;
                consider(opt.cost, Choice::Dc(opt.store), &mut best);
            }
            OptKind::Line(_) => any_store = true,
            OptKind::Unfilled => {}
        }
    }
    // Split: each line by its cheapest feasible line option, tentatively taken in turn.
    let n_lines = inst.lines(o).len();
    if n_lines > 1 && opts.iter().any(|x| matches!(x.kind, OptKind::Line(_))) {
        let mut picked = Vec::with_capacity(n_lines);
        let mut total = -inst.split_penalty();
        for n in 0..n_lines {
            let pick = opts
                .iter()
                .filter(|x| x.kind == OptKind::Line(n as u8) && fits(inst, o, x, left))
                .min_by(|a, b| a.cost.total_cmp(&b.cost));
            match pick {
                Some(x) => {
                    take(inst, o, x, left, 1.0);
                    total += x.cost;
                    picked.push(*x);
                }
                None => break,
            }
        }
        for x in &picked {
            take(inst, o, x, left, -1.0);
        }
        if picked.len() == n_lines {
            consider(total, Choice::Split(picked.iter().map(|x| StoreIdx(x.store)).collect()), &mut best);
        }
    }
    let unfilled_cost = opts.iter().find(|x| x.kind == OptKind::Unfilled).map_or(f64::INFINITY, |x| x.cost);
    match best {
        Some((cost, choice)) if cost < unfilled_cost => {
            apply(inst, o, &choice, left);
            choice
        }
        _ => Choice::Unfilled(reason(any_store)),
    }
}

fn reason(any_store: bool) -> UnfilledReason {
    if any_store {
        UnfilledReason::CandidatesExhausted
    } else {
        UnfilledReason::NoCandidate
    }
}

/// The options a choice is made of.
pub(super) fn parts<'a>(
    inst: &'a Instance,
    o: usize,
    choice: &'a Choice,
) -> impl Iterator<Item = &'a super::Opt> {
    let opts = inst.options(o);
    let (whole, split): (Option<u32>, &[StoreIdx]) = match choice {
        Choice::Whole(s) => (Some(s.0), &[]),
        Choice::Split(stores) => (None, stores),
        Choice::Dc(_) | Choice::Unfilled(_) => (None, &[]),
    };
    let whole = whole.and_then(move |s| opts.iter().find(|x| x.kind == OptKind::Whole && x.store == s));
    let lines = split
        .iter()
        .enumerate()
        .filter_map(move |(n, s)| opts.iter().find(|x| x.kind == OptKind::Line(n as u8) && x.store == s.0));
    whole.into_iter().chain(lines)
}

/// Takes the rows of `choice` from `left`.
pub(super) fn apply(inst: &Instance, o: usize, choice: &Choice, left: &mut [f64]) {
    for x in parts(inst, o, choice) {
        take(inst, o, x, left, 1.0);
    }
}

/// Takes the rows of `choice` from `left` when they fit (all or nothing); says whether it did.
pub(super) fn take_if_fits(inst: &Instance, o: usize, choice: &Choice, left: &mut [f64]) -> bool {
    apply(inst, o, choice, left);
    let mut ok = true;
    for x in parts(inst, o, choice) {
        inst.rows_of(o, x, |r, _| ok &= left[r] >= -1e-9);
    }
    if !ok {
        for x in parts(inst, o, choice) {
            take(inst, o, x, left, -1.0);
        }
    }
    ok
}
