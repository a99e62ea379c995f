//! # omniroute optimizer
//!
//! The pure domain core of omniroute: plain values in, plain values out. No I/O, no async, no
//! clock (time is always a parameter), no HTTP or database.
//!
//! Capabilities:
//! * [`model`]: identifiers, coordinates (lon, lat), stores, orders and the network;
//! * [`index`]: R-trees over stores in great-circle order, with per-SKU trees for rare SKUs;
//! * [`ledger`]: live stock with all-or-nothing reservations, TTLs, feeds and daily capacity;
//! * [`travel`]: travel-cost strategies (great circle, petgraph hub network) and promises;
//! * [`router`]: the checkout decision for one order, reserved atomically, explained;
//! * [`generate`]: deterministic synthetic networks and Singles' Day order streams;
//! * [`plan`]: batch plans for a wave of orders: greedy and LP (good_lp + HiGHS), validator;
//! * [`kpi`]: replay KPIs (fill rate, split rate, distance percentiles, promise mix).
//! * [`progress`]: the progress trait long computations report through.
//! * [`growing`]: append-only tables for what is learned while serving (new SKUs).

pub mod engine;
pub mod generate;
pub mod growing;
pub mod index;
pub mod ledger;
pub mod model;
pub mod plan;
pub mod progress;
pub mod router;
pub mod sim;
pub mod travel;

#[cfg(test)]
mod testkit;

pub use engine::{Engine, EngineConfig, NearbyStore};
