//! Events for downstream systems (warehouse, analytics): what each state change writes to the
//! outbox, in the same commit. The publisher (`crate::broker`) numbers nothing: the storage gives
//! each event its sequence number when it writes it, and the publisher adds it to the JSON.
//!
//! Subjects, below the events root: `orders` for route decisions and reservation ends (one
//! subject, so that one consumer sees an order's events in order), `stock.<brand>` for accepted
//! stock feeds (a brand's systems may subscribe to their own).

use crate::storage::{CellRecord, OutboxEvent};
use optimizer::model::OrderId;
use serde::Serialize;

/// The subject of order events.
pub const ORDERS: &str = "orders";

/// An order was routed: the decision exactly as answered.
pub fn routed(order_id: &OrderId, at: i64, decision: &[u8]) -> OutboxEvent {
    // Written directly (one per routed order, on the request's thread): the decision's JSON is
    // copied in, not parsed again.
    let mut json = Vec::with_capacity(64 + order_id.as_str().len() + decision.len());
    json.extend_from_slice(b"{\"type\":\"routed\",\"order_id\":");
    serde_json::to_writer(&mut json, order_id.as_str()).expect("a string serialises");
    json.extend_from_slice(b",\"at\":");
    json.extend_from_slice(itoa::Buffer::new().format(at).as_bytes());
    json.extend_from_slice(b",\"decision\":");
    json.extend_from_slice(decision);
    json.push(b'}');
    OutboxEvent { subject: ORDERS.into(), json }
}

/// How an order's reservation ended.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Ended {
    Shipped,
    Cancelled,
    Expired,
}

impl Ended {
    fn as_str(self) -> &'static str {
        match self {
            Ended::Shipped => "shipped",
            Ended::Cancelled => "cancelled",
            Ended::Expired => "expired",
        }
    }
}

/// An order's reservation ended.
pub fn ended(order_id: &OrderId, how: Ended, at: i64) -> OutboxEvent {
    let json = serde_json::json!({"type": how.as_str(), "order_id": order_id.as_str(), "at": at});
    OutboxEvent { subject: ORDERS.into(), json: json.to_string().into_bytes() }
}

#[derive(Serialize)]
struct Cell<'a> {
    store_id: &'a str,
    sku: &'a str,
    on_hand: u32,
    safety_stock: u32,
}

#[derive(Serialize)]
struct StockFed<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    at: i64,
    brand: &'a str,
    key_id: &'a str,
    /// The broker message that carried the feed, when one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    message_id: Option<&'a str>,
    cells: Vec<Cell<'a>>,
}

/// A stock feed was accepted: one event per brand, with the cells of that brand's stores as the
/// feed left them. `brand_of` names a cell's brand.
pub fn stock_fed(
    cells: &[CellRecord],
    brand_of: &dyn Fn(&CellRecord) -> String,
    key_id: &str,
    message_id: Option<&str>,
    at: i64,
) -> Vec<OutboxEvent> {
    let mut by_brand: std::collections::BTreeMap<String, Vec<Cell<'_>>> = Default::default();
    for c in cells {
        by_brand.entry(brand_of(c)).or_default().push(Cell {
            store_id: c.store_id.as_str(),
            sku: c.sku.as_str(),
            on_hand: c.on_hand,
            safety_stock: c.safety_stock,
        });
    }
    by_brand
        .into_iter()
        .map(|(brand, cells)| {
            let event = StockFed { kind: "stock_fed", at, brand: &brand, key_id, message_id, cells };
            OutboxEvent {
                subject: format!("stock.{brand}"),
                json: serde_json::to_vec(&event).expect("serialisable"),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_routed_event_embeds_the_decision_as_json() {
        let id = OrderId::parse("o-1").unwrap();
        let e = routed(&id, 42, br#"{"store_id":"7","mode":"ship"}"#);
        let v: serde_json::Value = serde_json::from_slice(&e.json).unwrap();
        assert_eq!(v["type"], "routed");
        assert_eq!(v["order_id"], "o-1");
        assert_eq!(v["at"], 42);
        assert_eq!(v["decision"]["store_id"], "7");
        assert_eq!(e.subject, ORDERS);
    }

    #[test]
    fn a_feed_makes_one_event_per_brand() {
        let cell = |store: &str, sku: &str| CellRecord {
            store_id: optimizer::model::StoreId::parse(store).unwrap(),
            sku: optimizer::model::Sku::parse(sku).unwrap(),
            on_hand: 3,
            safety_stock: 1,
            version: 1,
        };
        let cells = [cell("1", "a"), cell("2", "b"), cell("3", "c")];
        let brand = |c: &CellRecord| if c.store_id.as_str() == "2" { "B".into() } else { "A".into() };
        let events = stock_fed(&cells, &brand, "bootstrap-1", Some("m-1"), 7);
        assert_eq!(events.iter().map(|e| e.subject.as_str()).collect::<Vec<_>>(), ["stock.A", "stock.B"]);
        let a: serde_json::Value = serde_json::from_slice(&events[0].json).unwrap();
        assert_eq!(a["cells"].as_array().unwrap().len(), 2);
        assert_eq!(a["message_id"], "m-1");
        assert_eq!(a["cells"][1]["store_id"], "3");
    }
}
