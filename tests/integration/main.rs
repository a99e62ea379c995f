//! Integration tests: drive the real `omniroute` binary (CLI commands, and the HTTP service on a
//! random port with a fresh state directory).

mod brands;
mod broker;
mod citus;
mod cli;
mod contract;
mod coupons;
mod hardening;
mod helpers;
mod map;
mod parity;
mod postgres;
mod recommend;
mod retailer;
mod server;
mod service;
mod simulate;
