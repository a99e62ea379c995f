//! Capture rate limits, per customer and per client address (GCRA token buckets from the
//! `governor` crate): a shopper, or a script guessing codes, gets 429 with the seconds to wait.

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How fast captures may come; 0 turns a limit off.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct CaptureRate {
    /// Captures per customer per minute (a burst of as many).
    pub per_customer_per_min: u32,
    /// Captures per client address per second (a burst of twice as many).
    pub per_address_per_s: u32,
}

impl Default for CaptureRate {
    fn default() -> Self {
        CaptureRate { per_customer_per_min: 20, per_address_per_s: 200 }
    }
}

/// Which limit a refused capture hit.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Limited {
    Customer { retry_after: Duration },
    Address { retry_after: Duration },
}

/// The keyed limiters.
pub struct CaptureLimiter {
    customers: Option<DefaultKeyedRateLimiter<String>>,
    addresses: Option<DefaultKeyedRateLimiter<String>>,
    clock: DefaultClock,
    checks: AtomicU64,
}

/// Checks between two sweeps of keys whose buckets are full again.
const SWEEP_EVERY: u64 = 65_536;

impl CaptureLimiter {
    pub fn new(rate: CaptureRate) -> CaptureLimiter {
        let customers =
            NonZeroU32::new(rate.per_customer_per_min).map(|n| RateLimiter::keyed(Quota::per_minute(n)));
        let addresses = NonZeroU32::new(rate.per_address_per_s).map(|n| {
            RateLimiter::keyed(
                Quota::per_second(n).allow_burst(n.saturating_mul(NonZeroU32::new(2).expect("2"))),
            )
        });
        CaptureLimiter { customers, addresses, clock: DefaultClock::default(), checks: AtomicU64::new(0) }
    }

    /// Takes one capture from `customer`'s and `address`'s buckets, or says which is empty and
    /// for how long. The address is checked first: a script cycling customer ids meets it.
    pub fn check(&self, customer: &str, address: &str) -> Result<(), Limited> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            for l in [&self.customers, &self.addresses].into_iter().flatten() {
                l.retain_recent();
                l.shrink_to_fit();
            }
        }
        let now = self.clock.now();
        if let Some(l) = &self.addresses {
            l.check_key(&address.to_string())
                .map_err(|n| Limited::Address { retry_after: n.wait_time_from(now) })?;
        }
        if let Some(l) = &self.customers {
            l.check_key(&customer.to_string())
                .map_err(|n| Limited::Customer { retry_after: n.wait_time_from(now) })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_customer_over_the_rate_waits_others_do_not() {
        let l = CaptureLimiter::new(CaptureRate { per_customer_per_min: 3, per_address_per_s: 0 });
        for _ in 0..3 {
            assert_eq!(l.check("c1", "a"), Ok(()));
        }
        match l.check("c1", "a") {
            Err(Limited::Customer { retry_after }) => {
                assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(20))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(l.check("c2", "a"), Ok(()));
    }

    #[test]
    fn an_address_over_the_rate_waits_whatever_customer_it_names() {
        let l = CaptureLimiter::new(CaptureRate { per_customer_per_min: 0, per_address_per_s: 5 });
        for i in 0..10 {
            assert_eq!(l.check(&format!("c{i}"), "10.0.0.1"), Ok(()), "a burst of twice the rate");
        }
        assert!(matches!(l.check("c99", "10.0.0.1"), Err(Limited::Address { .. })));
        assert_eq!(l.check("c99", "10.0.0.2"), Ok(()));
    }
}
