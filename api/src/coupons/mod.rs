//! Coupons: campaigns of a brand, signed QR posters in its stores, and the arithmetic of
//! discounts and stacking, in integer cents.
//!
//! * [`campaign`]: what marketing creates, checked and resolved to a fixed store list.
//! * [`token`]: the poster token (HMAC-SHA256, 128-bit tag, key rotation by id), verified with
//!   no storage read.
//! * [`discount`]: amount off with a minimum spend, percentage with a maximum, stacking.
//! * [`poster`]: a store's poster with its QR code, as SVG or PNG.
//! * [`wallet`]: a customer's captured coupons and the issue budgets a capture takes from.

pub mod campaign;
pub mod discount;
pub mod limit;
pub mod poster;
pub mod redeem;
pub mod stats;
pub mod token;
pub mod wallet;

use discount::{Cents, Discount};

/// How the service signs posters.
#[derive(Clone, Debug)]
pub struct CouponConfig {
    pub keys: token::KeyRing,
    /// The page a poster's QR code opens, the token appended as the last path segment (the
    /// shopper app's capture page, which calls `POST /v1/coupons/capture`).
    pub public_url: String,
    pub rate: limit::CaptureRate,
}

/// What the service holds for coupons: the signing keys and the capture limiters.
pub struct Coupons {
    pub config: CouponConfig,
    pub limiter: limit::CaptureLimiter,
}

impl Coupons {
    pub fn new(config: CouponConfig) -> Coupons {
        let limiter = limit::CaptureLimiter::new(config.rate);
        Coupons { config, limiter }
    }
}

/// The default capture page: capitals, so that the whole URL fits the QR alphanumeric mode.
pub const DEFAULT_CAPTURE_URL: &str = "HTTPS://OMNIROUTE.EXAMPLE";

/// Cents as a decimal amount (`5000` → `50.00`).
pub fn money(c: Cents) -> String {
    format!("{}.{:02}", c / 100, c % 100)
}

/// A discount in words, for posters and wallets.
pub fn describe(d: &Discount) -> String {
    let min = |m: Cents| if m == 0 { String::new() } else { format!(" on orders of {} or more", money(m)) };
    match *d {
        Discount::AmountOff { off_cents, min_spend_cents } => {
            format!("{} off{}", money(off_cents), min(min_spend_cents))
        }
        Discount::PercentOff { percent, max_off_cents, min_spend_cents } => {
            format!("{percent}% off (up to {}){}", money(max_off_cents), min(min_spend_cents))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offers_read_in_words() {
        assert_eq!(
            describe(&Discount::AmountOff { off_cents: 5_000, min_spend_cents: 30_000 }),
            "50.00 off on orders of 300.00 or more"
        );
        assert_eq!(
            describe(&Discount::PercentOff { percent: 15, max_off_cents: 2_005, min_spend_cents: 0 }),
            "15% off (up to 20.05)"
        );
    }
}
