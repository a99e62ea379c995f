//! Progress reporting for long computations (generation, candidate building, LP solving).
//!
//! The core only calls the trait; what it drives (a terminal bar, a job's status document, a
//! counter in a test) is the caller's. Stages only move forward: a new [`Progress::stage`] call
//! ends the previous stage.

/// Receives progress of a long computation.
pub trait Progress: Sync {
    /// A new stage named `name` with `total` steps begins.
    fn stage(&self, name: &'static str, total: u64);
    /// `n` more steps of the current stage are done.
    fn advance(&self, n: u64);
}

/// Progress that goes nowhere.
pub struct NoProgress;

impl Progress for NoProgress {
    fn stage(&self, _: &'static str, _: u64) {}
    fn advance(&self, _: u64) {}
}
