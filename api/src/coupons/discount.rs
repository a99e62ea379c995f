//! Discount arithmetic and stacking, in integer cents.
//!
//! A coupon takes either a fixed amount off an order whose value reaches a minimum spend ("50 off
//! 300") or a percentage of the order's value up to a maximum. Minimum spends are checked against
//! the order's value before any discount. Coupons that join apply in their campaigns' stated
//! order, each on what the ones before it left; an exclusive coupon applies alone. No discount
//! ever exceeds what is left of the order's value.

use serde::{Deserialize, Serialize};

/// Money in integer cents of the marketplace's currency.
pub type Cents = u64;

/// What a coupon takes off.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Discount {
    /// `off_cents` off an order worth at least `min_spend_cents`.
    AmountOff {
        #[schema(minimum = 1, maximum = 1_000_000_000_000_u64)]
        off_cents: Cents,
        #[serde(default)]
        #[schema(minimum = 0, maximum = 1_000_000_000_000_u64)]
        min_spend_cents: Cents,
    },
    /// `percent` of the order's value (rounded down to the cent), at most `max_off_cents`, on an
    /// order worth at least `min_spend_cents`.
    PercentOff {
        #[schema(minimum = 1, maximum = 100)]
        percent: u8,
        #[schema(minimum = 1, maximum = 1_000_000_000_000_u64)]
        max_off_cents: Cents,
        #[serde(default)]
        #[schema(minimum = 0, maximum = 1_000_000_000_000_u64)]
        min_spend_cents: Cents,
    },
}

/// A discount that cannot be offered.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct DiscountError {
    pub field: &'static str,
    pub message: &'static str,
}

/// Largest amount of money a campaign may state: 10^12 cents.
pub const MAX_CENTS: Cents = 1_000_000_000_000;

impl Discount {
    /// Checks the discount's numbers (field names relative to the discount object).
    pub fn check(&self) -> Result<(), DiscountError> {
        let bad = |field, message| Err(DiscountError { field, message });
        match *self {
            Discount::AmountOff { off_cents, min_spend_cents } => {
                if off_cents == 0 || off_cents > MAX_CENTS {
                    return bad("off_cents", "must be between 1 and 10^12 cents");
                }
                if min_spend_cents > MAX_CENTS {
                    return bad("min_spend_cents", "must be at most 10^12 cents");
                }
            }
            Discount::PercentOff { percent, max_off_cents, min_spend_cents } => {
                if !(1..=100).contains(&percent) {
                    return bad("percent", "must be between 1 and 100");
                }
                if max_off_cents == 0 || max_off_cents > MAX_CENTS {
                    return bad("max_off_cents", "must be between 1 and 10^12 cents");
                }
                if min_spend_cents > MAX_CENTS {
                    return bad("min_spend_cents", "must be at most 10^12 cents");
                }
            }
        }
        Ok(())
    }

    /// The minimum spend.
    pub fn min_spend(&self) -> Cents {
        match *self {
            Discount::AmountOff { min_spend_cents, .. } | Discount::PercentOff { min_spend_cents, .. } => {
                min_spend_cents
            }
        }
    }

    /// What it takes off `left` (what earlier coupons left of the order), never more than `left`.
    /// The minimum spend is not checked here (see [`Discount::reaches_min_spend`]).
    pub fn off(&self, left: Cents) -> Cents {
        match *self {
            Discount::AmountOff { off_cents, .. } => off_cents.min(left),
            Discount::PercentOff { percent, max_off_cents, .. } => {
                let p = (u128::from(left) * u128::from(percent) / 100) as Cents;
                p.min(max_off_cents).min(left)
            }
        }
    }

    /// Whether an order worth `value` (before any discount) qualifies.
    pub fn reaches_min_spend(&self, value: Cents) -> bool {
        value >= self.min_spend()
    }
}

/// How a coupon combines with others on one order.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Stacking {
    /// Applies alone.
    #[default]
    Exclusive,
    /// Joins other joinable coupons; they apply in ascending `order` (ties by campaign id).
    Joinable { order: u32 },
}

/// A coupon offered for one order: its campaign, discount and stacking.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Offer {
    pub campaign: u32,
    pub discount: Discount,
    pub stacking: Stacking,
}

/// Why an eligible coupon was left off the order by the stacking rules.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Left {
    /// An exclusive coupon cannot join others (or others cannot join it).
    Exclusive,
    /// Another coupon of the same campaign is on the order.
    SameCampaign,
    /// It would take nothing off (what earlier coupons left is zero).
    NothingLeft,
    /// `best` chose coupons worth more.
    NotBest,
}

/// The coupons applied to an order and what each took off, in application order.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Applied {
    /// (index into the offers, cents off).
    pub applied: Vec<(usize, Cents)>,
    /// (index into the offers, why not).
    pub left_out: Vec<(usize, Left)>,
}

impl Applied {
    pub fn total(&self) -> Cents {
        self.applied.iter().map(|(_, c)| c).sum()
    }
}

/// Applies `offers` (each already eligible, minimum spend met) to an order worth `value`, as
/// the shopper listed them: an exclusive coupon applies only when it is first and takes the order
/// alone; joinable ones apply together in their stated order.
pub fn apply_listed(value: Cents, offers: &[Offer]) -> Applied {
    let mut chosen: Vec<usize> = Vec::new();
    let mut out = Applied::default();
    for (i, o) in offers.iter().enumerate() {
        let alone = chosen.first().is_some_and(|&c| offers[c].stacking == Stacking::Exclusive);
        if chosen.iter().any(|&c| offers[c].campaign == o.campaign) {
            out.left_out.push((i, Left::SameCampaign));
        } else if alone || (o.stacking == Stacking::Exclusive && !chosen.is_empty()) {
            out.left_out.push((i, Left::Exclusive));
        } else {
            chosen.push(i);
        }
    }
    compute(value, offers, chosen, out)
}

/// Chooses the coupons worth most for an order worth `value`: every joinable coupon together
/// (one per campaign), or the best exclusive one alone, whichever takes more off; on a tie the
/// one that uses fewer coupons.
pub fn apply_best(value: Cents, offers: &[Offer]) -> Applied {
    let mut joinable: Vec<usize> = Vec::new();
    for (i, o) in offers.iter().enumerate() {
        if o.stacking != Stacking::Exclusive && !joinable.iter().any(|&j| offers[j].campaign == o.campaign) {
            joinable.push(i);
        }
    }
    let together = compute(value, offers, joinable, Applied::default());
    let mut best = together;
    for (i, o) in offers.iter().enumerate() {
        if o.stacking == Stacking::Exclusive {
            let alone = compute(value, offers, vec![i], Applied::default());
            let (a, b) = (
                (alone.total(), usize::MAX - alone.applied.len()),
                (best.total(), usize::MAX - best.applied.len()),
            );
            if a > b {
                best = alone;
            }
        }
    }
    let used: Vec<usize> = best.applied.iter().map(|(i, _)| *i).collect();
    let dropped: Vec<usize> = best.left_out.iter().map(|(i, _)| *i).collect();
    for i in 0..offers.len() {
        if !used.contains(&i) && !dropped.contains(&i) {
            best.left_out.push((i, Left::NotBest));
        }
    }
    best.left_out.sort_by_key(|(i, _)| *i);
    best
}

/// Applies `chosen` in stacking order on `value`.
fn compute(value: Cents, offers: &[Offer], mut chosen: Vec<usize>, mut out: Applied) -> Applied {
    chosen.sort_by_key(|&i| match offers[i].stacking {
        Stacking::Exclusive => (0, offers[i].campaign),
        Stacking::Joinable { order } => (order, offers[i].campaign),
    });
    let mut left = value;
    for i in chosen {
        let off = offers[i].discount.off(left);
        if off == 0 {
            out.left_out.push((i, Left::NothingLeft));
        } else {
            left -= off;
            out.applied.push((i, off));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn amount(off: Cents, min: Cents) -> Discount {
        Discount::AmountOff { off_cents: off, min_spend_cents: min }
    }
    fn percent(p: u8, max: Cents) -> Discount {
        Discount::PercentOff { percent: p, max_off_cents: max, min_spend_cents: 0 }
    }
    fn offer(campaign: u32, discount: Discount, stacking: Stacking) -> Offer {
        Offer { campaign, discount, stacking }
    }

    #[test]
    fn fifty_off_three_hundred() {
        let d = amount(5_000, 30_000);
        assert!(!d.reaches_min_spend(29_999));
        assert!(d.reaches_min_spend(30_000));
        assert_eq!(d.off(30_000), 5_000);
        assert_eq!(d.off(3_000), 3_000, "never more than the order's value");
    }

    #[test]
    fn percentages_round_down_to_the_cent_and_stop_at_their_maximum() {
        let d = percent(15, 2_000);
        assert_eq!(d.off(999), 149);
        assert_eq!(d.off(100_000), 2_000);
        assert_eq!(percent(100, MAX_CENTS).off(MAX_CENTS), MAX_CENTS);
    }

    #[test]
    fn bad_numbers_are_named() {
        assert_eq!(amount(0, 0).check().unwrap_err().field, "off_cents");
        assert_eq!(percent(0, 1).check().unwrap_err().field, "percent");
        assert_eq!(percent(101, 1).check().unwrap_err().field, "percent");
        assert_eq!(percent(10, 0).check().unwrap_err().field, "max_off_cents");
        assert_eq!(amount(1, MAX_CENTS + 1).check().unwrap_err().field, "min_spend_cents");
        assert!(amount(1, 0).check().is_ok() && percent(1, 1).check().is_ok());
    }

    #[test]
    fn joinable_coupons_apply_in_their_stated_order() {
        // 10% first, then 20 off: 1000 -> 900 -> 880; the other order gives 980 -> 882.
        let offers = [
            offer(1, amount(2_000, 0), Stacking::Joinable { order: 2 }),
            offer(2, percent(10, MAX_CENTS), Stacking::Joinable { order: 1 }),
        ];
        let a = apply_listed(100_000, &offers);
        assert_eq!(a.applied, vec![(1, 10_000), (0, 2_000)]);
        assert_eq!(a.total(), 12_000);
    }

    #[test]
    fn an_exclusive_coupon_applies_alone() {
        let ex = offer(1, amount(3_000, 0), Stacking::Exclusive);
        let j = offer(2, amount(1_000, 0), Stacking::Joinable { order: 0 });
        let a = apply_listed(10_000, &[ex, j]);
        assert_eq!((a.applied, a.left_out), (vec![(0, 3_000)], vec![(1, Left::Exclusive)]));
        let a = apply_listed(10_000, &[j, ex]);
        assert_eq!((a.applied, a.left_out), (vec![(0, 1_000)], vec![(1, Left::Exclusive)]));
    }

    #[test]
    fn one_coupon_per_campaign() {
        let j = offer(2, amount(1_000, 0), Stacking::Joinable { order: 0 });
        let a = apply_listed(10_000, &[j, j]);
        assert_eq!((a.applied, a.left_out), (vec![(0, 1_000)], vec![(1, Left::SameCampaign)]));
    }

    #[test]
    fn best_takes_the_joinable_set_or_the_best_exclusive_one() {
        let ex = offer(1, amount(2_500, 0), Stacking::Exclusive);
        let j1 = offer(2, amount(1_000, 0), Stacking::Joinable { order: 0 });
        let j2 = offer(3, amount(1_000, 0), Stacking::Joinable { order: 0 });
        let a = apply_best(10_000, &[ex, j1, j2]);
        assert_eq!(a.applied, vec![(0, 2_500)]);
        assert_eq!(a.left_out, vec![(1, Left::NotBest), (2, Left::NotBest)]);
        let j3 = offer(4, amount(600, 0), Stacking::Joinable { order: 0 });
        assert_eq!(apply_best(10_000, &[ex, j1, j2, j3]).total(), 2_600);
        assert_eq!(apply_best(10_000, &[]).total(), 0);
    }

    fn any_discount() -> impl Strategy<Value = Discount> {
        prop_oneof![
            (1..=MAX_CENTS, 0..=MAX_CENTS).prop_map(|(o, m)| amount(o, m)),
            (1u8..=100, 1..=MAX_CENTS, 0..=MAX_CENTS).prop_map(|(p, x, m)| Discount::PercentOff {
                percent: p,
                max_off_cents: x,
                min_spend_cents: m
            }),
        ]
    }

    fn any_offer() -> impl Strategy<Value = Offer> {
        (
            0u32..6,
            any_discount(),
            prop_oneof![Just(Stacking::Exclusive), (0u32..3).prop_map(|order| Stacking::Joinable { order })],
        )
            .prop_map(|(c, d, s)| offer(c, d, s))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, rng_seed: proptest::test_runner::RngSeed::Fixed(29), ..ProptestConfig::default() })]

        #[test]
        fn a_discount_never_exceeds_the_order_and_grows_with_it(d in any_discount(), v in 0..=MAX_CENTS, w in 0..=MAX_CENTS) {
            prop_assert!(d.check().is_ok());
            prop_assert!(d.off(v) <= v);
            let (lo, hi) = (v.min(w), v.max(w));
            prop_assert!(d.off(lo) <= d.off(hi));
        }

        #[test]
        fn stacked_coupons_never_take_more_than_the_order(value in 0..=MAX_CENTS, offers in prop::collection::vec(any_offer(), 0..8)) {
            for a in [apply_listed(value, &offers), apply_best(value, &offers)] {
                prop_assert!(a.total() <= value);
                // Every offer is accounted for exactly once.
                let mut seen: Vec<usize> = a.applied.iter().map(|(i, _)| *i).chain(a.left_out.iter().map(|(i, _)| *i)).collect();
                seen.sort();
                prop_assert_eq!(seen, (0..offers.len()).collect::<Vec<_>>());
                // At most one coupon per campaign; an exclusive one only alone.
                let used: Vec<&Offer> = a.applied.iter().map(|(i, _)| &offers[*i]).collect();
                let mut campaigns: Vec<u32> = used.iter().map(|o| o.campaign).collect();
                campaigns.sort();
                campaigns.dedup();
                prop_assert_eq!(campaigns.len(), used.len());
                prop_assert!(used.len() <= 1 || used.iter().all(|o| o.stacking != Stacking::Exclusive));
            }
        }

        #[test]
        fn best_is_never_worse_than_the_listed_choice(value in 0..=MAX_CENTS, offers in prop::collection::vec(any_offer(), 0..8)) {
            prop_assert!(apply_best(value, &offers).total() >= apply_listed(value, &offers).total());
        }
    }
}
