//! What the router answers: a decision that explains itself.
//!
//! A decision names stores, DCs and SKUs by the network's dense indexes (building one allocates
//! no id text); [`Decision::on`] renders it with the network's ids and time zone, which is what
//! callers serialise.

use crate::model::{Network, OrderId, Sku, SkuIdx, StoreId, StoreIdx, Timestamp};
use crate::travel::Promise;
use serde::ser::{SerializeMap, SerializeStruct};
use serde::{Serialize, Serializer};

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

/// Where a shipment leaves from.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Store(StoreIdx),
    /// Position in [`Network::dcs`].
    Dc(u32),
}

/// Units of one SKU in a shipment.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ShipLine {
    pub sku: SkuIdx,
    pub qty: u32,
}

/// One parcel (or pickup) from one store or DC.
#[derive(Clone, Debug, PartialEq)]
pub struct Shipment {
    pub source: Source,
    /// Where the goods leave from, degrees.
    pub lon: f64,
    pub lat: f64,
    pub lines: Vec<ShipLine>,
    /// Great-circle distance from source to customer, metres.
    pub distance_m: f64,
    /// Time until delivery (ship) or until ready for collection (pickup), seconds.
    pub eta_s: u32,
    pub promise: Promise,
}

impl Shipment {
    /// The store it leaves from, if not a DC.
    pub fn store(&self) -> Option<StoreIdx> {
        match self.source {
            Source::Store(s) => Some(s),
            Source::Dc(_) => None,
        }
    }
}

/// Why a store nearer than the chosen one (or the chosen pickup store) was passed over.
#[derive(Clone, Debug, PartialEq)]
pub enum Rejection {
    /// The store lacks `missing` units of `sku`.
    ShortOfSku {
        sku: SkuIdx,
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
#[derive(Clone, Debug, PartialEq)]
pub struct Rejected {
    pub store: StoreIdx,
    pub distance_m: f64,
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
#[derive(Clone, Debug, Default, PartialEq)]
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
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub order_id: OrderId,
    pub status: Status,
    pub shipments: Vec<Shipment>,
    pub unfulfilled: Vec<LineFailure>,
    pub explanation: Explanation,
    /// When held store stock is released unless the order is committed (absent when nothing is
    /// held: DC or unfulfillable decisions).
    pub reservation_expires_at: Option<Timestamp>,
}

impl Decision {
    /// The decision with the ids and time zone of `network` (the one it was routed on): what
    /// serialises to the JSON answer.
    ///
    /// ```json
    /// {"order_id": "SD1", "status": "assigned",
    ///  "shipments": [{"store_id": "S-7", "lon": 121.4, "lat": 31.2, "lines": [{"sku": "A", "qty": 1}],
    ///                 "distance_m": 812.5, "eta_s": 5400, "promise": "same_day"}],
    ///  "unfulfilled": [],
    ///  "explanation": {"candidates_considered": 1, "rejected": [], "rejected_not_listed": 0,
    ///                  "stages": ["single_store"]},
    ///  "reservation_expires_at": "2026-11-11T00:15:00+08:00"}
    /// ```
    pub fn on<'a>(&'a self, network: &'a Network) -> DecisionJson<'a> {
        DecisionJson { d: self, net: network }
    }

    /// The id of the store a shipment leaves from, on `network`.
    pub fn store_id<'a>(&self, network: &'a Network, shipment: usize) -> Option<&'a StoreId> {
        self.shipments.get(shipment)?.store().map(|s| network.store_id(s))
    }
}

/// A [`Decision`] rendered with its network's ids and time zone.
pub struct DecisionJson<'a> {
    d: &'a Decision,
    net: &'a Network,
}

impl Serialize for DecisionJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (d, net) = (self.d, self.net);
        let mut st = s.serialize_struct("Decision", 6)?;
        st.serialize_field("order_id", &d.order_id)?;
        st.serialize_field("status", &d.status)?;
        st.serialize_field("shipments", &Shipments(&d.shipments, net))?;
        st.serialize_field("unfulfilled", &d.unfulfilled)?;
        st.serialize_field("explanation", &ExplanationJson(&d.explanation, net))?;
        match d.reservation_expires_at {
            Some(t) => {
                let mut buf = [0u8; 25];
                let offset = net.zone().offset_s(t);
                match t.rfc3339_into(offset, &mut buf) {
                    Some(text) => st.serialize_field("reservation_expires_at", text)?,
                    None => st.serialize_field("reservation_expires_at", &t.rfc3339_at(offset))?,
                }
            }
            None => st.skip_field("reservation_expires_at")?,
        }
        st.end()
    }
}

/// The shipments, lines and rejected stores of a decision, rendered in order.
struct Shipments<'a>(&'a [Shipment], &'a Network);
struct Lines<'a>(&'a [ShipLine], &'a Network);
struct Rejecteds<'a>(&'a [Rejected], &'a Network);

impl Serialize for Shipments<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|x| ShipmentJson(x, self.1)))
    }
}

impl Serialize for Lines<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|x| LineJson(x, self.1)))
    }
}

impl Serialize for Rejecteds<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|x| RejectedJson(x, self.1)))
    }
}

struct ShipmentJson<'a>(&'a Shipment, &'a Network);

impl Serialize for ShipmentJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (x, net) = (self.0, self.1);
        let mut st = s.serialize_struct("Shipment", 7)?;
        match x.source {
            Source::Store(i) => st.serialize_field("store_id", net.store_id(i))?,
            Source::Dc(i) => st.serialize_field("dc_id", &net.dcs()[i as usize].id)?,
        }
        st.serialize_field("lon", &x.lon)?;
        st.serialize_field("lat", &x.lat)?;
        st.serialize_field("lines", &Lines(&x.lines, net))?;
        st.serialize_field("distance_m", &x.distance_m)?;
        st.serialize_field("eta_s", &x.eta_s)?;
        st.serialize_field("promise", &x.promise)?;
        st.end()
    }
}

struct LineJson<'a>(&'a ShipLine, &'a Network);

impl Serialize for LineJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Line", 2)?;
        st.serialize_field("sku", self.1.catalog().sku(self.0.sku))?;
        st.serialize_field("qty", &self.0.qty)?;
        st.end()
    }
}

struct ExplanationJson<'a>(&'a Explanation, &'a Network);

impl Serialize for ExplanationJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (e, net) = (self.0, self.1);
        let mut st = s.serialize_struct("Explanation", 4)?;
        st.serialize_field("candidates_considered", &e.candidates_considered)?;
        st.serialize_field("rejected", &Rejecteds(&e.rejected, net))?;
        st.serialize_field("rejected_not_listed", &e.rejected_not_listed)?;
        st.serialize_field("stages", &e.stages)?;
        st.end()
    }
}

struct RejectedJson<'a>(&'a Rejected, &'a Network);

impl Serialize for RejectedJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (r, net) = (self.0, self.1);
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("store_id", net.store_id(r.store))?;
        m.serialize_entry("distance_m", &r.distance_m)?;
        m.serialize_entry("reason", r.rejection.reason())?;
        match &r.rejection {
            Rejection::ShortOfSku { sku, missing } => {
                m.serialize_entry("sku", net.catalog().sku(*sku))?;
                m.serialize_entry("missing", missing)?;
            }
            Rejection::CapacityFull { capacity_per_day } => {
                m.serialize_entry("capacity_per_day", capacity_per_day)?
            }
            Rejection::OutsideRadius { radius_m } => m.serialize_entry("radius_m", radius_m)?,
            Rejection::PickupDisabled | Rejection::ShipDisabled => {}
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_the_json_names() {
        for s in [Status::Assigned, Status::Split, Status::Dc, Status::Alternative, Status::Unfulfillable] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }

    #[test]
    fn a_decision_renders_with_the_networks_ids_and_zone() {
        let net = crate::testkit::network(vec![crate::testkit::store(7, 121.4, 31.2)], 3)
            .with_zone(crate::model::TimeZone::fixed("X", 3600).unwrap());
        let mut explanation = Explanation::default();
        explanation.stages.push(super::super::Stage::SingleStore);
        for rejection in [
            Rejection::ShortOfSku { sku: SkuIdx(2), missing: 1 },
            Rejection::CapacityFull { capacity_per_day: 4 },
            Rejection::ShipDisabled,
            Rejection::OutsideRadius { radius_m: 5.0 },
        ] {
            explanation.rejected.push(Rejected { store: StoreIdx(0), distance_m: 3.5, rejection });
        }
        let d = Decision {
            order_id: OrderId::parse("o1").unwrap(),
            status: Status::Split,
            shipments: vec![
                Shipment {
                    source: Source::Store(StoreIdx(0)),
                    lon: 121.4,
                    lat: 31.2,
                    lines: vec![ShipLine { sku: SkuIdx(1), qty: 2 }],
                    distance_m: 812.5,
                    eta_s: 60,
                    promise: Promise::SameDay,
                },
                Shipment {
                    source: Source::Dc(0),
                    lon: 121.2,
                    lat: 31.0,
                    lines: vec![ShipLine { sku: SkuIdx(0), qty: 1 }],
                    distance_m: 1.0,
                    eta_s: 1,
                    promise: Promise::NextDay,
                },
            ],
            unfulfilled: vec![LineFailure { sku: Sku::parse("X").unwrap(), reason: LineReason::UnknownSku }],
            explanation,
            reservation_expires_at: Some(Timestamp(1_794_326_400)),
        };
        let v = serde_json::to_value(d.on(&net)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "order_id": "o1", "status": "split",
                "shipments": [
                    {"store_id": "7", "lon": 121.4, "lat": 31.2, "lines": [{"sku": "1", "qty": 2}],
                     "distance_m": 812.5, "eta_s": 60, "promise": "same_day"},
                    {"dc_id": "1", "lon": 121.2, "lat": 31.0, "lines": [{"sku": "0", "qty": 1}],
                     "distance_m": 1.0, "eta_s": 1, "promise": "next_day"}],
                "unfulfilled": [{"sku": "X", "reason": "unknown_sku"}],
                "explanation": {"candidates_considered": 0, "rejected": [
                    {"store_id": "7", "distance_m": 3.5, "reason": "short_of_sku", "sku": "2", "missing": 1},
                    {"store_id": "7", "distance_m": 3.5, "reason": "capacity_full", "capacity_per_day": 4},
                    {"store_id": "7", "distance_m": 3.5, "reason": "ship_disabled"},
                    {"store_id": "7", "distance_m": 3.5, "reason": "outside_radius", "radius_m": 5.0}],
                    "rejected_not_listed": 0, "stages": ["single_store"]},
                "reservation_expires_at": "2026-11-10T17:00:00+01:00"
            })
        );
        assert_eq!(d.store_id(&net, 0).map(|s| s.as_str()), Some("7"));
    }
}
