//! Integration tests: drive the real `omniroute` binary.

mod cli;
mod helpers;
