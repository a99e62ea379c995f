//! KPIs of a replayed order stream.

use crate::router::{Decision, Status};
use crate::travel::Promise;
use serde::Serialize;

/// Collects decisions; [`KpiAccumulator::finish`] turns them into [`Kpis`].
#[derive(Debug, Default, Clone)]
pub struct KpiAccumulator {
    orders: u64,
    from_stores: u64,
    from_dc: u64,
    alternative: u64,
    unfulfillable: u64,
    split: u64,
    shipment_distances_m: Vec<f64>,
    promises: [u64; 3],
}

/// Share of orders per delivery promise.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PromiseMix {
    pub same_day: f64,
    pub next_day: f64,
    pub later: f64,
}

/// Replay KPIs. Shares are fractions of all orders in `0..=1`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Kpis {
    pub orders: u64,
    /// Orders served by any source (stores, pickup alternatives or DCs).
    pub fill_rate: f64,
    /// Served by stores (assigned, split, or an accepted pickup alternative).
    pub share_from_stores: f64,
    pub share_from_dcs: f64,
    pub share_unfulfillable: f64,
    /// Pickup orders moved to another store.
    pub share_pickup_alternative: f64,
    pub split_rate: f64,
    /// Per shipment, metres.
    pub distance_p50_m: f64,
    pub distance_p95_m: f64,
    /// Per shipment.
    pub promise_mix: PromiseMix,
    pub wall_time_s: f64,
    pub orders_per_s: f64,
}

impl KpiAccumulator {
    /// Adds one decision.
    pub fn add(&mut self, d: &Decision) {
        self.orders += 1;
        match d.status {
            Status::Assigned => self.from_stores += 1,
            Status::Split => {
                self.from_stores += 1;
                self.split += 1;
            }
            Status::Alternative => {
                self.from_stores += 1;
                self.alternative += 1;
            }
            Status::Dc => self.from_dc += 1,
            Status::Unfulfillable => self.unfulfillable += 1,
        }
        for s in &d.shipments {
            self.shipment_distances_m.push(s.distance_m);
            self.promises[s.promise as usize] += 1;
        }
    }

    /// Merges another accumulator (for parallel replays).
    pub fn merge(&mut self, other: KpiAccumulator) {
        self.orders += other.orders;
        self.from_stores += other.from_stores;
        self.from_dc += other.from_dc;
        self.alternative += other.alternative;
        self.unfulfillable += other.unfulfillable;
        self.split += other.split;
        self.shipment_distances_m.extend(other.shipment_distances_m);
        for i in 0..3 {
            self.promises[i] += other.promises[i];
        }
    }

    /// The KPIs, given the wall time the replay took.
    pub fn finish(mut self, wall_time_s: f64) -> Kpis {
        let n = self.orders.max(1) as f64;
        self.shipment_distances_m.sort_by(f64::total_cmp);
        let pct = |p: f64| {
            let v = &self.shipment_distances_m;
            if v.is_empty() {
                0.0
            } else {
                v[((v.len() - 1) as f64 * p).round() as usize]
            }
        };
        let shipments = self.promises.iter().sum::<u64>().max(1) as f64;
        Kpis {
            orders: self.orders,
            fill_rate: (self.orders - self.unfulfillable) as f64 / n,
            share_from_stores: self.from_stores as f64 / n,
            share_from_dcs: self.from_dc as f64 / n,
            share_unfulfillable: self.unfulfillable as f64 / n,
            share_pickup_alternative: self.alternative as f64 / n,
            split_rate: self.split as f64 / n,
            distance_p50_m: pct(0.5),
            distance_p95_m: pct(0.95),
            promise_mix: PromiseMix {
                same_day: self.promises[Promise::SameDay as usize] as f64 / shipments,
                next_day: self.promises[Promise::NextDay as usize] as f64 / shipments,
                later: self.promises[Promise::Later as usize] as f64 / shipments,
            },
            wall_time_s,
            orders_per_s: if wall_time_s > 0.0 { self.orders as f64 / wall_time_s } else { 0.0 },
        }
    }
}
