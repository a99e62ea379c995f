//! Wallets and issue budgets: what a capture checks and changes.
//!
//! A customer holds at most one coupon per campaign (a capture is idempotent per customer and
//! campaign). [`IssueCounts`] counts the coupons issued per campaign, per store and per poster,
//! so that a capture can take one against the campaign's budgets in one step; the embedded
//! store rebuilds the counts from the wallet records when it opens (they are never stored, so
//! they always equal a recount).

use super::campaign::{Budgets, Campaign};
use parking_lot::Mutex;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

/// A coupon in a customer's wallet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalletEntry {
    pub campaign: u32,
    /// The store whose poster it was captured from (the redemption is credited to it).
    pub store_id: String,
    /// The store's position in the campaign's list.
    pub store_number: u32,
    pub serial: u16,
    /// Unix seconds.
    pub captured_at: i64,
    /// Redemptions so far (shipped or held orders).
    #[serde(default)]
    pub redeemed: u32,
}

/// What a capture did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Captured {
    /// Added to the wallet now.
    New(WalletEntry),
    /// The customer held this campaign's coupon already: nothing changed.
    Already(WalletEntry),
    /// An issue budget (campaign, store or poster) is spent.
    OverBudget,
}

/// A poster: campaign, store number, serial.
type PosterKey = (u32, u32, u16);

#[derive(Default)]
struct Counts {
    campaign: FxHashMap<u32, u64>,
    store: FxHashMap<(u32, u32), u64>,
    poster: FxHashMap<PosterKey, u64>,
}

/// Coupons issued per campaign, store and poster.
#[derive(Default)]
pub struct IssueCounts {
    counts: Mutex<Counts>,
}

fn under(cap: Option<u64>, n: u64) -> bool {
    cap.is_none_or(|c| n < c)
}

impl IssueCounts {
    /// Counts one more coupon of `entry`'s poster if every issue budget of `budgets` allows it;
    /// whether it did.
    pub fn try_issue(&self, budgets: &Budgets, entry: &WalletEntry) -> bool {
        let mut c = self.counts.lock();
        let key = (entry.campaign, entry.store_number, entry.serial);
        let n = (
            c.campaign.get(&key.0).copied().unwrap_or(0),
            c.store.get(&(key.0, key.1)).copied().unwrap_or(0),
            c.poster.get(&key).copied().unwrap_or(0),
        );
        if !(under(budgets.issued, n.0)
            && under(budgets.issued_per_store, n.1)
            && under(budgets.issued_per_poster, n.2))
        {
            return false;
        }
        *c.campaign.entry(key.0).or_default() += 1;
        *c.store.entry((key.0, key.1)).or_default() += 1;
        *c.poster.entry(key).or_default() += 1;
        true
    }

    /// Counts a coupon that is already in a wallet (rebuilding the counts), whatever the budgets.
    pub fn count(&self, entry: &WalletEntry) {
        let mut c = self.counts.lock();
        *c.campaign.entry(entry.campaign).or_default() += 1;
        *c.store.entry((entry.campaign, entry.store_number)).or_default() += 1;
        *c.poster.entry((entry.campaign, entry.store_number, entry.serial)).or_default() += 1;
    }

    /// Takes back a coupon counted by [`IssueCounts::try_issue`] whose write failed.
    pub fn undo(&self, entry: &WalletEntry) {
        let mut c = self.counts.lock();
        let key = (entry.campaign, entry.store_number, entry.serial);
        if let Some(n) = c.campaign.get_mut(&key.0) {
            *n = n.saturating_sub(1);
        }
        if let Some(n) = c.store.get_mut(&(key.0, key.1)) {
            *n = n.saturating_sub(1);
        }
        if let Some(n) = c.poster.get_mut(&key) {
            *n = n.saturating_sub(1);
        }
    }

    /// Coupons of `campaign` issued: in all, and per store number.
    pub fn issued(&self, campaign: u32) -> (u64, FxHashMap<u32, u64>) {
        let c = self.counts.lock();
        let per_store =
            c.store.iter().filter(|((k, _), _)| *k == campaign).map(|((_, s), n)| (*s, *n)).collect();
        (c.campaign.get(&campaign).copied().unwrap_or(0), per_store)
    }
}

/// The wallet entry a capture of `campaign`'s poster would add.
pub fn entry(campaign: &Campaign, store_number: u32, serial: u16, at: i64) -> Option<WalletEntry> {
    let store_id = campaign.stores.get(store_number as usize)?.to_string();
    Some(WalletEntry { campaign: campaign.id, store_id, store_number, serial, captured_at: at, redeemed: 0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(campaign: u32, store_number: u32, serial: u16) -> WalletEntry {
        WalletEntry {
            campaign,
            store_id: format!("S{store_number}"),
            store_number,
            serial,
            captured_at: 0,
            redeemed: 0,
        }
    }

    #[test]
    fn every_issue_budget_holds_and_undo_gives_back() {
        let b = Budgets {
            issued: Some(3),
            issued_per_store: Some(2),
            issued_per_poster: Some(1),
            ..Budgets::default()
        };
        let counts = IssueCounts::default();
        assert!(counts.try_issue(&b, &e(1, 0, 0)));
        assert!(!counts.try_issue(&b, &e(1, 0, 0)), "per poster");
        assert!(counts.try_issue(&b, &e(1, 0, 1)));
        assert!(!counts.try_issue(&b, &e(1, 0, 2)), "per store");
        assert!(counts.try_issue(&b, &e(1, 1, 0)));
        assert!(!counts.try_issue(&b, &e(1, 2, 0)), "per campaign");
        assert!(counts.try_issue(&b, &e(2, 2, 0)), "another campaign counts apart");
        counts.undo(&e(1, 1, 0));
        assert!(counts.try_issue(&b, &e(1, 2, 0)));
        let (total, per_store) = counts.issued(1);
        assert_eq!(total, 3);
        assert_eq!(per_store.get(&0), Some(&2));
    }

    #[test]
    fn concurrent_issues_never_pass_the_cap() {
        let b = Budgets { issued: Some(100), ..Budgets::default() };
        let counts = std::sync::Arc::new(IssueCounts::default());
        let granted: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|t| {
                    let counts = counts.clone();
                    s.spawn(move || {
                        (0..1_000).filter(|i| counts.try_issue(&b, &e(1, (t * 1_000 + i) as u32, 0))).count()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(granted, 100);
        assert_eq!(counts.issued(1).0, 100);
    }
}
