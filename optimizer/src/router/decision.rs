//! What the router answers: a decision that explains itself.

use crate::model::{DcId, OrderId, OrderLine, Sku, StoreId, Timestamp};
use crate::travel::Promise;
use serde::Serialize;

/// Outcome class of a routing decision.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// One store serves the whole order (for pickup: the store the shopper chose).
    Assigned,
    /// Several stores serve it, each shipping part of the lines.
    Split,
    /// A distribution centre serves it.
    Dc,
    /// Pickup only: the chosen store cannot, another nearby store can and holds the goods. The
    /// shopper must accept the switch; it is never made silently.
    Alternative,
    /// Nothing can serve it; `unfulfilled` gives a reason per line.
    Unfulfillable,
}

impl Status {
    /// The snake_case name used in JSON and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Assigned => "assigned",
            Status::Split => "split",
            Status::Dc => "dc",
            Status::Alternative => "alternative",
            Status::Unfulfillable => "unfulfillable",
        }
    }
}

/// One parcel (or pickup) from one store or DC.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Shipment {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_id: Option<StoreId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dc_id: Option<DcId>,
    /// Where the goods leave from, degrees.
    pub lon: f64,
    pub lat: f64,
    pub lines: Vec<OrderLine>,
    /// Great-circle distance from source to customer, metres.
    pub distance_m: f64,
    /// Time until delivery (ship) or until ready for collection (pickup), seconds.
    pub eta_s: u32,
    pub promise: Promise,
}

/// Why a store nearer than the chosen one (or the chosen pickup store) was passed over.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Rejection {
    /// The store lacks `missing` units of `sku`.
    ShortOfSku {
        sku: Sku,
        missing: u32,
    },
    /// The store already took its daily order capacity.
    CapacityFull {
        capacity_per_day: u32,
    },
    PickupDisabled,
    ShipDisabled,
    /// The store is farther than the search radius.
    OutsideRadius {
        radius_m: f64,
    },
}

impl Rejection {
    /// The snake_case reason used in JSON and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::ShortOfSku { .. } => "short_of_sku",
            Rejection::CapacityFull { .. } => "capacity_full",
            Rejection::PickupDisabled => "pickup_disabled",
            Rejection::ShipDisabled => "ship_disabled",
            Rejection::OutsideRadius { .. } => "outside_radius",
        }
    }
}

/// One store the router looked at and did not choose.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Rejected {
    pub store_id: StoreId,
    pub distance_m: f64,
    #[serde(flatten)]
    pub rejection: Rejection,
}

/// Why a line could not be served.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum LineReason {
    UnknownSku,
    /// No store within `radius_m` could supply it and no DC could take the order.
    NoStockWithinRadius {
        radius_m: f64,
    },
    /// The pickup store named in the order does not exist.
    UnknownPickupStore {
        store_id: StoreId,
    },
}

/// An order line that could not be served, with its reason.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LineFailure {
    pub sku: Sku,
    #[serde(flatten)]
    pub reason: LineReason,
}

/// How the router reached its decision.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Explanation {
    /// Stores examined (nearest first) before the decision.
    pub candidates_considered: u32,
    /// The nearest rejected stores, nearest first (at most `RouterConfig::max_explained`).
    pub rejected: Vec<Rejected>,
    /// Rejections not listed in `rejected` because of the limit.
    pub rejected_not_listed: u32,
    /// The stages tried, in order.
    pub stages: Stages,
}

/// A routing stage.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    SingleStore,
    Split,
    Dc,
    PickupStore,
    Alternative,
}

/// The stages a decision went through, in order (at most 5; kept inline, no allocation).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Stages {
    len: u8,
    items: [Option<Stage>; 5],
}

impl Stages {
    pub fn push(&mut self, stage: Stage) {
        if let Some(slot) = self.items.get_mut(usize::from(self.len)) {
            *slot = Some(stage);
            self.len += 1;
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = Stage> + '_ {
        self.items.iter().flatten().copied()
    }
}

impl Serialize for Stages {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

/// The routing decision for one order. Stock for store shipments is reserved until
/// `reservation_expires_at`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Decision {
    pub order_id: OrderId,
    pub status: Status,
    pub shipments: Vec<Shipment>,
    pub unfulfilled: Vec<LineFailure>,
    pub explanation: Explanation,
    /// When held store stock is released unless the order is committed (absent when nothing is
    /// held: DC or unfulfillable decisions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reservation_expires_at: Option<Timestamp>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Sku;

    #[test]
    fn names_match_the_json_names() {
        for s in [Status::Assigned, Status::Split, Status::Dc, Status::Alternative, Status::Unfulfillable] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        let all = [
            Rejection::ShortOfSku { sku: Sku(1), missing: 1 },
            Rejection::CapacityFull { capacity_per_day: 1 },
            Rejection::PickupDisabled,
            Rejection::ShipDisabled,
            Rejection::OutsideRadius { radius_m: 1.0 },
        ];
        for r in all {
            assert_eq!(serde_json::to_value(&r).unwrap()["reason"], r.reason());
        }
    }
}
