//! # omniroute (binary crate library)
//!
//! Everything that touches the outside world around the pure `optimizer` core: dataset files,
//! the command line, progress bars, the HTTP service and the storage adapters (embedded redb,
//! PostgreSQL + PostGIS).

pub mod alloc;
pub mod broker;
pub mod cli;
pub mod coupons;
pub mod data;
#[doc(hidden)]
pub mod fuzz;
pub mod map;
pub mod metrics;
pub mod progress;
pub mod recommend;
pub mod scenario;
pub mod server;
pub mod service;
pub mod settings;
pub mod storage;
