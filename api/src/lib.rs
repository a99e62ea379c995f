//! # omniroute (binary crate library)
//!
//! Everything that touches the outside world around the pure `optimizer` core: dataset files,
//! the command line, progress bars and (in later issues) the HTTP service and storage adapters.

pub mod cli;
pub mod data;
pub mod progress;
pub mod server;
pub mod storage;
