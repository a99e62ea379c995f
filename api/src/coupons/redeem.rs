//! Redeeming coupons with an order: which of the customer's coupons apply to a routed order,
//! what each takes off, and the redemption budgets they count against.
//!
//! The route call names coupons of the customer's wallet (by campaign id) or asks for the
//! `best`. [`evaluate`] checks each against its campaign (active, redemption window, the stores
//! that fulfil the order, minimum spend), applies the stacking rules, and asks the backend to
//! take the applied coupons from every budget and limit at once ([`RedemptionCounts::try_take`]
//! on the embedded store; the database's conditional updates on PostgreSQL). A coupon a budget
//! refuses is left off with the reason and the rest applied again. The result is the
//! [`Redemption`] recorded with the reservation, and the coupons' part of the decision.

use super::campaign::{Campaign, Status};
use super::discount::{self, Cents, Left, Offer};
use super::wallet::WalletEntry;
use optimizer::model::{CouponChoice, Network, StoreIdx};
use parking_lot::{Mutex, RwLock};
use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A campaign with its participating stores as a set of the network's stores.
pub struct Offered {
    pub campaign: Arc<Campaign>,
    pub stores: FxHashSet<StoreIdx>,
}

impl Offered {
    pub fn new(campaign: Campaign, net: &Network) -> Offered {
        let stores = campaign.stores.iter().filter_map(|s| net.store_idx(s)).collect();
        Offered { campaign: Arc::new(campaign), stores }
    }
}

/// How long a service serves a campaign from memory: a pause or end made on another replica
/// holds everywhere within this time.
pub const CAMPAIGN_CACHE: Duration = Duration::from_secs(1);

/// Campaigns read in the last [`CAMPAIGN_CACHE`].
#[derive(Default)]
pub struct CampaignCache {
    map: RwLock<FxHashMap<u32, (Instant, Arc<Offered>)>>,
}

impl CampaignCache {
    /// The campaign if it was read less than [`CAMPAIGN_CACHE`] ago.
    pub fn fresh(&self, id: u32) -> Option<Arc<Offered>> {
        let map = self.map.read();
        let (at, c) = map.get(&id)?;
        (at.elapsed() < CAMPAIGN_CACHE).then(|| c.clone())
    }

    /// Keeps a campaign just read.
    pub fn keep(&self, c: Arc<Offered>) {
        let mut map = self.map.write();
        if map.len() > 100_000 {
            map.retain(|_, (at, _)| at.elapsed() < CAMPAIGN_CACHE);
        }
        map.insert(c.campaign.id, (Instant::now(), c));
    }

    /// Forgets a campaign this service just changed.
    pub fn forget(&self, id: u32) {
        self.map.write().remove(&id);
    }
}

/// A customer's coupons with their campaigns, as the route call reads them.
pub struct Wallet {
    pub customer: String,
    pub coupons: Vec<(WalletEntry, Arc<Offered>)>,
}

/// Why a coupon was not applied: stable codes in the decision.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// The customer holds no coupon of that campaign.
    NotInWallet,
    CampaignPaused,
    CampaignEnded,
    /// The order is placed outside the campaign's redemption window.
    OutsideRedemptionWindow,
    /// A store that fulfils the order does not take part in the campaign (or no store does: a
    /// DC ships it, or it is unfilled).
    StoreNotInCampaign,
    BelowMinimumSpend,
    /// A redemption budget of the campaign, the capture store or the poster is spent.
    BudgetSpent,
    /// The customer redeemed this campaign's coupon as often as it allows.
    CustomerLimitReached,
    /// An exclusive coupon is on the order (or this one is exclusive and others are).
    NotCombinable,
    /// What the coupons before it left is zero.
    NothingLeft,
    /// `best` chose coupons worth more.
    NotBest,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::NotInWallet => "not_in_wallet",
            Refusal::CampaignPaused => "campaign_paused",
            Refusal::CampaignEnded => "campaign_ended",
            Refusal::OutsideRedemptionWindow => "outside_redemption_window",
            Refusal::StoreNotInCampaign => "store_not_in_campaign",
            Refusal::BelowMinimumSpend => "below_minimum_spend",
            Refusal::BudgetSpent => "budget_spent",
            Refusal::CustomerLimitReached => "customer_limit_reached",
            Refusal::NotCombinable => "not_combinable",
            Refusal::NothingLeft => "nothing_left",
            Refusal::NotBest => "not_best",
        }
    }
}

/// A coupon redeemed with an order: its campaign, where it was captured (the redemption is
/// credited to that store and poster) and what it took off.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redeemed {
    pub campaign: u32,
    pub store_number: u32,
    pub serial: u16,
    pub off_cents: Cents,
}

/// The coupons an order redeemed, recorded with its reservation. It counts against the budgets
/// while the reservation is held or shipped; `ended` once it was cancelled or expired (the
/// coupons went back).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redemption {
    pub customer: String,
    /// Unix seconds.
    pub at: i64,
    pub coupons: Vec<Redeemed>,
    #[serde(default)]
    pub ended: bool,
}

/// One coupon's line in a decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CouponLine {
    pub campaign: u32,
    pub applied: bool,
    pub off_cents: Cents,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Refusal>,
}

/// The coupons' part of a decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CouponsOutcome {
    pub value_cents: Cents,
    pub discount_cents: Cents,
    pub pay_cents: Cents,
    pub coupons: Vec<CouponLine>,
}

/// What a backend's budget check refused: the campaign and why.
pub type Refused = (u32, Refusal);

/// Takes an order's applied coupons (each with its campaign) from every budget and limit at once.
pub type Take<'a> = dyn FnMut(&[(Redeemed, &Campaign)]) -> Result<(), Refused> + 'a;

/// A wallet coupon with its campaign.
type Held = (WalletEntry, Arc<Offered>);

/// Decides the coupons of an order worth `value` placed at `at` (Unix seconds) and fulfilled by
/// `stores` (none: a DC or nobody), from `wallet`. Campaigns in `refused` were refused by the
/// authority before (a retry after the database refused a budget). `take` takes the applied
/// coupons from every budget and limit at once, or names one it refused.
pub fn evaluate(
    choice: &CouponChoice,
    value: Cents,
    at: i64,
    stores: &[StoreIdx],
    wallet: &Wallet,
    refused: &[Refused],
    take: &mut Take<'_>,
) -> (CouponsOutcome, Option<Redemption>) {
    // The coupons asked for, in the order asked: (campaign id, wallet coupon).
    let asked: Vec<(u32, Option<&Held>)> = match choice {
        CouponChoice::Listed(ids) => {
            ids.iter().map(|id| (*id, wallet.coupons.iter().find(|(e, _)| e.campaign == *id))).collect()
        }
        CouponChoice::Best(_) => wallet.coupons.iter().map(|c| (c.0.campaign, Some(c))).collect(),
    };
    let mut why: Vec<Option<Refusal>> = asked
        .iter()
        .map(|(id, coupon)| {
            if let Some((_, r)) = refused.iter().find(|(c, _)| c == id) {
                return Some(*r);
            }
            let Some((_, offered)) = coupon else { return Some(Refusal::NotInWallet) };
            let c = &offered.campaign;
            match c.status {
                Status::Paused => return Some(Refusal::CampaignPaused),
                Status::Ended => return Some(Refusal::CampaignEnded),
                Status::Active => {}
            }
            if !c.redemption.contains(at) {
                return Some(Refusal::OutsideRedemptionWindow);
            }
            if stores.is_empty() || !stores.iter().all(|s| offered.stores.contains(s)) {
                return Some(Refusal::StoreNotInCampaign);
            }
            if !c.discount.reaches_min_spend(value) {
                return Some(Refusal::BelowMinimumSpend);
            }
            None
        })
        .collect();
    loop {
        let eligible: Vec<usize> = (0..asked.len()).filter(|&i| why[i].is_none()).collect();
        let offers: Vec<Offer> = eligible
            .iter()
            .map(|&i| {
                let c = &asked[i].1.expect("eligible coupons are in the wallet").1.campaign;
                Offer { campaign: c.id, discount: c.discount, stacking: c.stacking }
            })
            .collect();
        let applied = match choice {
            CouponChoice::Listed(_) => discount::apply_listed(value, &offers),
            CouponChoice::Best(_) => discount::apply_best(value, &offers),
        };
        let items: Vec<(Redeemed, &Campaign)> = applied
            .applied
            .iter()
            .map(|&(k, off)| {
                let (entry, offered) = asked[eligible[k]].1.expect("eligible coupons are in the wallet");
                let r = Redeemed {
                    campaign: entry.campaign,
                    store_number: entry.store_number,
                    serial: entry.serial,
                    off_cents: off,
                };
                (r, &*offered.campaign)
            })
            .collect();
        if !items.is_empty() {
            if let Err((campaign, r)) = take(&items) {
                // That coupon cannot be had; the others are applied again without it.
                if let Some(i) = asked.iter().position(|(id, _)| *id == campaign) {
                    if why[i].is_none() {
                        why[i] = Some(r);
                        continue;
                    }
                }
                // A refusal of a coupon not on the order: a bug of the backend; apply none.
                for (k, _) in &applied.applied {
                    why[eligible[*k]] = Some(r);
                }
                continue;
            }
        }
        let mut lines: Vec<CouponLine> = asked
            .iter()
            .zip(&why)
            .map(|((id, _), w)| CouponLine { campaign: *id, applied: false, off_cents: 0, reason: *w })
            .collect();
        for &(k, off) in &applied.applied {
            let line = &mut lines[eligible[k]];
            line.applied = true;
            line.off_cents = off;
        }
        for &(k, left) in &applied.left_out {
            lines[eligible[k]].reason = Some(match left {
                Left::Exclusive | Left::SameCampaign => Refusal::NotCombinable,
                Left::NothingLeft => Refusal::NothingLeft,
                Left::NotBest => Refusal::NotBest,
            });
        }
        let discount_cents = applied.total();
        let outcome = CouponsOutcome {
            value_cents: value,
            discount_cents,
            pay_cents: value - discount_cents,
            coupons: lines,
        };
        let redemption = (!items.is_empty()).then(|| Redemption {
            customer: wallet.customer.clone(),
            at,
            coupons: items.iter().map(|(r, _)| *r).collect(),
            ended: false,
        });
        return (outcome, redemption);
    }
}

/// A poster: campaign, store number, serial.
type PosterKey = (u32, u32, u16);

#[derive(Default)]
struct Counts {
    /// Per campaign: coupons redeemed and discount given.
    campaign: FxHashMap<u32, (u64, Cents)>,
    /// Per campaign and capture store: coupons redeemed and discount given.
    store: FxHashMap<(u32, u32), (u64, Cents)>,
    poster: FxHashMap<PosterKey, u64>,
    /// Per customer and campaign.
    customer: FxHashMap<(String, u32), u32>,
}

/// Live redemptions (held or shipped orders) per campaign, capture store, poster and customer:
/// the embedded store's authority, rebuilt from the redemption records when it opens (never
/// stored, so they always equal a recount).
#[derive(Default)]
pub struct RedemptionCounts {
    counts: Mutex<Counts>,
}

fn under(cap: Option<u64>, n: u64, more: u64) -> bool {
    cap.is_none_or(|c| n.saturating_add(more) <= c)
}

/// Redemptions of one campaign.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub redeemed: u64,
    pub discount_cents: Cents,
    /// Redeemed and discount given per capture store number.
    pub per_store: FxHashMap<u32, (u64, Cents)>,
}

impl RedemptionCounts {
    /// Takes every coupon of `items` for `customer` if every budget and limit allows all of
    /// them, or names the first coupon refused and takes none.
    pub fn try_take(&self, customer: &str, items: &[(Redeemed, &Campaign)]) -> Result<(), Refused> {
        let mut c = self.counts.lock();
        for (r, campaign) in items {
            let b = &campaign.budgets;
            let (n, cents) = c.campaign.get(&r.campaign).copied().unwrap_or((0, 0));
            let store = c.store.get(&(r.campaign, r.store_number)).map_or(0, |s| s.0);
            let poster = c.poster.get(&(r.campaign, r.store_number, r.serial)).copied().unwrap_or(0);
            if !(under(b.redeemed, n, 1)
                && under(b.discount_cents, cents, r.off_cents)
                && under(b.redeemed_per_store, store, 1)
                && under(b.redeemed_per_poster, poster, 1))
            {
                return Err((r.campaign, Refusal::BudgetSpent));
            }
            let mine = c.customer.get(&(customer.to_string(), r.campaign)).copied().unwrap_or(0);
            if mine >= campaign.per_customer {
                return Err((r.campaign, Refusal::CustomerLimitReached));
            }
        }
        for (r, _) in items {
            Self::add(&mut c, customer, r, 1);
        }
        Ok(())
    }

    fn add(c: &mut Counts, customer: &str, r: &Redeemed, sign: i64) {
        let step = |n: &mut u64, by: u64| *n = if sign > 0 { *n + by } else { n.saturating_sub(by) };
        let e = c.campaign.entry(r.campaign).or_default();
        step(&mut e.0, 1);
        step(&mut e.1, r.off_cents);
        let s = c.store.entry((r.campaign, r.store_number)).or_default();
        step(&mut s.0, 1);
        step(&mut s.1, r.off_cents);
        step(c.poster.entry((r.campaign, r.store_number, r.serial)).or_default(), 1);
        let k = (customer.to_string(), r.campaign);
        let m = c.customer.entry(k).or_default();
        *m = if sign > 0 { *m + 1 } else { m.saturating_sub(1) };
    }

    /// Counts a live redemption read back (rebuilding the counts), whatever the budgets.
    pub fn count(&self, r: &Redemption) {
        let mut c = self.counts.lock();
        for x in &r.coupons {
            Self::add(&mut c, &r.customer, x, 1);
        }
    }

    /// Gives back the coupons of a redemption that ended (or whose write failed).
    pub fn give_back(&self, r: &Redemption) {
        let mut c = self.counts.lock();
        for x in &r.coupons {
            Self::add(&mut c, &r.customer, x, -1);
        }
    }

    /// Live redemptions of `campaign`.
    pub fn tally(&self, campaign: u32) -> Tally {
        let c = self.counts.lock();
        let (redeemed, discount_cents) = c.campaign.get(&campaign).copied().unwrap_or((0, 0));
        let per_store =
            c.store.iter().filter(|((k, _), _)| *k == campaign).map(|((_, s), n)| (*s, *n)).collect();
        Tally { redeemed, discount_cents, per_store }
    }

    /// Live redemptions of `campaign`'s coupon by `customer`.
    pub fn of_customer(&self, customer: &str, campaign: u32) -> u32 {
        self.counts.lock().customer.get(&(customer.to_string(), campaign)).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::super::campaign::Budgets;
    use super::super::discount::{Discount, Stacking};
    use super::*;
    use optimizer::model::BestWord;

    use super::super::campaign::tests::test_campaign as campaign;

    fn wallet(campaigns: Vec<Campaign>) -> Wallet {
        let coupons = campaigns
            .into_iter()
            .map(|c| {
                let e = WalletEntry {
                    campaign: c.id,
                    store_id: "S1".into(),
                    store_number: 0,
                    serial: 0,
                    captured_at: 0,
                    redeemed: 0,
                };
                let stores = [StoreIdx(0)].into_iter().collect();
                (e, Arc::new(Offered { campaign: Arc::new(c), stores }))
            })
            .collect();
        Wallet { customer: "c1".into(), coupons }
    }

    const OFF_50: Discount = Discount::AmountOff { off_cents: 5_000, min_spend_cents: 30_000 };
    const PCT_10: Discount = Discount::PercentOff { percent: 10, max_off_cents: 10_000, min_spend_cents: 0 };

    #[test]
    fn listed_coupons_apply_with_reasons_for_the_rest() {
        let w = wallet(vec![
            campaign(1, OFF_50, Stacking::Exclusive, Budgets::default()),
            campaign(2, PCT_10, Stacking::Joinable { order: 1 }, Budgets::default()),
        ]);
        let counts = RedemptionCounts::default();
        let mut take = |items: &[(Redeemed, &Campaign)]| counts.try_take("c1", items);
        let choice = CouponChoice::Listed(vec![1, 2, 9]);
        let (out, red) = evaluate(&choice, 40_000, 50, &[StoreIdx(0)], &w, &[], &mut take);
        assert_eq!(out.discount_cents, 5_000);
        assert_eq!(out.pay_cents, 35_000);
        assert!(out.coupons[0].applied);
        assert_eq!(out.coupons[1].reason, Some(Refusal::NotCombinable));
        assert_eq!(out.coupons[2].reason, Some(Refusal::NotInWallet));
        assert_eq!(red.unwrap().coupons.len(), 1);
        assert_eq!(counts.tally(1).redeemed, 1);
        // The same customer again: her limit of one.
        let (out, red) = evaluate(&choice, 40_000, 50, &[StoreIdx(0)], &w, &[], &mut take);
        assert_eq!(out.coupons[0].reason, Some(Refusal::CustomerLimitReached));
        assert!(out.coupons[1].applied, "the joinable one applies once the exclusive one is refused");
        assert_eq!(out.discount_cents, 4_000);
        assert_eq!(red.unwrap().coupons[0].campaign, 2);
    }

    #[test]
    fn eligibility_is_checked_before_stacking() {
        let w = wallet(vec![campaign(1, OFF_50, Stacking::Exclusive, Budgets::default())]);
        let counts = RedemptionCounts::default();
        let mut take = |items: &[(Redeemed, &Campaign)]| counts.try_take("c1", items);
        let best = CouponChoice::Best(BestWord::Best);
        let reason = |value, at, stores: &[StoreIdx]| {
            let mut t = |items: &[(Redeemed, &Campaign)]| counts.try_take("c1", items);
            evaluate(&best, value, at, stores, &w, &[], &mut t).0.coupons[0].reason
        };
        assert_eq!(reason(29_999, 50, &[StoreIdx(0)]), Some(Refusal::BelowMinimumSpend));
        assert_eq!(reason(30_000, 101, &[StoreIdx(0)]), Some(Refusal::OutsideRedemptionWindow));
        assert_eq!(reason(30_000, 50, &[StoreIdx(0), StoreIdx(1)]), Some(Refusal::StoreNotInCampaign));
        assert_eq!(reason(30_000, 50, &[]), Some(Refusal::StoreNotInCampaign));
        let (out, _) =
            evaluate(&best, 30_000, 50, &[StoreIdx(0)], &w, &[(1, Refusal::BudgetSpent)], &mut take);
        assert_eq!(out.coupons[0].reason, Some(Refusal::BudgetSpent), "a refusal of the authority holds");
        assert_eq!(counts.tally(1), Tally::default(), "nothing was taken");
    }

    #[test]
    fn budgets_hold_and_give_back_restores() {
        let b = Budgets { redeemed: Some(2), discount_cents: Some(12_000), ..Budgets::default() };
        let c = campaign(1, OFF_50, Stacking::Exclusive, b);
        let counts = RedemptionCounts::default();
        let r = |customer: &str| {
            let x = Redeemed { campaign: 1, store_number: 0, serial: 0, off_cents: 5_000 };
            (counts.try_take(customer, &[(x, &c)]), x)
        };
        assert!(r("a").0.is_ok());
        let (ok, x) = r("b");
        assert!(ok.is_ok());
        assert_eq!(r("c").0, Err((1, Refusal::BudgetSpent)));
        counts.give_back(&Redemption { customer: "b".into(), at: 0, coupons: vec![x], ended: false });
        assert!(r("c").0.is_ok());
        assert_eq!(counts.tally(1).redeemed, 2);
        assert_eq!(counts.tally(1).discount_cents, 10_000);
        assert_eq!(counts.of_customer("b", 1), 0);
    }

    #[test]
    fn concurrent_redemptions_never_pass_the_cap() {
        let c =
            campaign(1, OFF_50, Stacking::Exclusive, Budgets { redeemed: Some(100), ..Budgets::default() });
        let counts = RedemptionCounts::default();
        let granted: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|t| {
                    let (counts, c) = (&counts, &c);
                    s.spawn(move || {
                        (0..1_000)
                            .filter(|i| {
                                let x = Redeemed { campaign: 1, store_number: 0, serial: 0, off_cents: 1 };
                                counts.try_take(&format!("c{t}-{i}"), &[(x, c)]).is_ok()
                            })
                            .count()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(granted, 100);
        assert_eq!(counts.tally(1).redeemed, 100);
    }
}
