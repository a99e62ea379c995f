//! Orders as the checkout sends them: parsed once, then valid by construction.

use super::geo::LonLat;
use super::ids::{CustomerId, OrderId, Qty, Sku, StoreId, Timestamp};
use serde::{Deserialize, Serialize};

/// How the shopper receives the goods.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Delivered to the customer's address from a store or DC.
    Ship,
    /// Collected by the shopper in a store.
    Pickup,
}

/// One line of an order.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderLine {
    pub sku: Sku,
    pub qty: Qty,
    /// The price of one unit in cents, when the order says (coupons need the order's value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_price_cents: Option<u64>,
}

impl OrderLine {
    /// A line without a price.
    pub fn new(sku: Sku, qty: Qty) -> OrderLine {
        OrderLine { sku, qty, unit_price_cents: None }
    }
}

/// The coupons a shopper asks to redeem with an order.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CouponChoice {
    /// These coupons of her wallet, by campaign id, in this order.
    Listed(Vec<u32>),
    /// `"best"`: whichever coupons of her wallet take most off.
    Best(BestWord),
}

/// The word `best`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BestWord {
    Best,
}

/// Why an order was refused before routing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    #[error("lines must not be empty")]
    NoLines,
    #[error("lines has {got} entries, more than the maximum of {max}")]
    TooManyLines { got: usize, max: usize },
    #[error("lines[{index}].sku {sku} appears more than once")]
    DuplicateSku { index: usize, sku: Sku },
    #[error("pickup_store_id is required when mode is pickup")]
    MissingPickupStore,
    #[error("pickup_store_id is only allowed when mode is pickup")]
    UnexpectedPickupStore,
}

impl OrderError {
    /// The input field the error is about, as a JSON path.
    pub fn field(&self) -> String {
        match self {
            OrderError::NoLines | OrderError::TooManyLines { .. } => "lines".into(),
            OrderError::DuplicateSku { index, .. } => format!("lines[{index}].sku"),
            OrderError::MissingPickupStore | OrderError::UnexpectedPickupStore => "pickup_store_id".into(),
        }
    }
}

/// A validated order: 1 to [`Order::MAX_LINES`] lines with distinct SKUs; `pickup_store` present
/// exactly when the mode is pickup.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Order {
    id: OrderId,
    created_at: Timestamp,
    customer: LonLat,
    mode: Mode,
    pickup_store: Option<StoreId>,
    lines: Vec<OrderLine>,
    customer_id: Option<CustomerId>,
    coupons: Option<CouponChoice>,
}

impl Order {
    /// Most lines one order may have.
    pub const MAX_LINES: usize = 100;

    /// Checks the cross-field rules and builds the order.
    pub fn new(
        id: OrderId,
        created_at: Timestamp,
        customer: LonLat,
        mode: Mode,
        pickup_store: Option<StoreId>,
        lines: Vec<OrderLine>,
    ) -> Result<Order, OrderError> {
        if lines.is_empty() {
            return Err(OrderError::NoLines);
        }
        if lines.len() > Self::MAX_LINES {
            return Err(OrderError::TooManyLines { got: lines.len(), max: Self::MAX_LINES });
        }
        for (i, line) in lines.iter().enumerate() {
            if lines[..i].iter().any(|l| l.sku == line.sku) {
                return Err(OrderError::DuplicateSku { index: i, sku: line.sku.clone() });
            }
        }
        match (mode, &pickup_store) {
            (Mode::Pickup, None) => return Err(OrderError::MissingPickupStore),
            (Mode::Ship, Some(_)) => return Err(OrderError::UnexpectedPickupStore),
            _ => {}
        }
        Ok(Order { id, created_at, customer, mode, pickup_store, lines, customer_id: None, coupons: None })
    }

    /// The same order placed by a known customer (the coupon and recommendation modules key on
    /// it).
    pub fn with_customer_id(mut self, customer_id: Option<CustomerId>) -> Order {
        self.customer_id = customer_id;
        self
    }

    /// The same order with coupons to redeem (the service checks them against the customer's
    /// wallet; routing ignores them).
    pub fn with_coupons(mut self, coupons: Option<CouponChoice>) -> Order {
        self.coupons = coupons;
        self
    }

    /// The coupons the shopper asks to redeem.
    pub fn coupons(&self) -> Option<&CouponChoice> {
        self.coupons.as_ref()
    }

    /// The order's value in cents when every line has a price.
    pub fn value_cents(&self) -> Option<u64> {
        self.lines.iter().try_fold(0u64, |sum, l| {
            l.unit_price_cents
                .and_then(|p| p.checked_mul(l.qty.get() as u64))
                .and_then(|v| sum.checked_add(v))
        })
    }

    pub fn id(&self) -> &OrderId {
        &self.id
    }
    pub fn created_at(&self) -> Timestamp {
        self.created_at
    }
    /// Where the customer is (ship) or placed the order from (pickup).
    pub fn customer(&self) -> LonLat {
        self.customer
    }
    pub fn mode(&self) -> Mode {
        self.mode
    }
    /// The store the shopper chose for pickup (pickup mode only).
    pub fn pickup_store(&self) -> Option<&StoreId> {
        self.pickup_store.as_ref()
    }
    /// The customer who placed the order, when the order says.
    pub fn customer_id(&self) -> Option<&CustomerId> {
        self.customer_id.as_ref()
    }
    pub fn lines(&self) -> &[OrderLine] {
        &self.lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(sku: u32, qty: i64) -> OrderLine {
        OrderLine::new(Sku::numbered(sku), Qty::parse(qty).unwrap())
    }

    fn build(mode: Mode, pickup: Option<StoreId>, lines: Vec<OrderLine>) -> Result<Order, OrderError> {
        Order::new(
            OrderId::parse("o1").unwrap(),
            Timestamp(0),
            LonLat::new(121.0, 31.0).unwrap(),
            mode,
            pickup,
            lines,
        )
    }

    #[test]
    fn refuses_empty_duplicate_and_mismatched_pickup() {
        assert_eq!(build(Mode::Ship, None, vec![]), Err(OrderError::NoLines));
        let dup = build(Mode::Ship, None, vec![line(1, 1), line(2, 1), line(1, 3)]).unwrap_err();
        assert_eq!(dup, OrderError::DuplicateSku { index: 2, sku: Sku::numbered(1) });
        assert_eq!(dup.field(), "lines[2].sku");
        assert_eq!(build(Mode::Pickup, None, vec![line(1, 1)]), Err(OrderError::MissingPickupStore));
        assert_eq!(
            build(Mode::Ship, Some(StoreId::numbered(3)), vec![line(1, 1)]),
            Err(OrderError::UnexpectedPickupStore)
        );
        assert!(build(Mode::Pickup, Some(StoreId::numbered(3)), vec![line(1, 1)]).is_ok());
    }
}
