//! Criterion benchmarks of one checkout decision (route + reservation) on a generated network,
//! beside the naive baseline (nearest-neighbour walk over all stores with a stock check per
//! store). Network size comes from OMNIROUTE_BENCH_STORES (default 180,000 stores, 2,000 SKUs,
//! ~100 SKUs per store, seed 11).
//!
//! Run: `cargo bench -p omniroute --bench routing`

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use omniroute::data::cities;
use omniroute::data::generated_engine;
use optimizer::generate::{self, GenConfig, LineMix};
use optimizer::index::Walk;
use optimizer::model::{Mode, Order, OrderId, SkuIdx};
use optimizer::progress::NoProgress;
use optimizer::router::{Router, RouterConfig};
use optimizer::travel::GreatCircle;
use optimizer::Engine;
use std::ops::ControlFlow;

#[global_allocator]
static GLOBAL: omniroute::alloc::Allocator = omniroute::alloc::Allocator;

fn network() -> (Engine, GenConfig) {
    let stores = std::env::var("OMNIROUTE_BENCH_STORES").ok().and_then(|v| v.parse().ok()).unwrap_or(180_000);
    let cfg = GenConfig { stores, skus: 2_000, orders: 0, skus_per_store: 100, ..GenConfig::default() };
    let data = generate::generate(&cities::bundled(), &cfg, &NoProgress).expect("valid config");
    (generated_engine(data, optimizer::EngineConfig::default()).expect("valid dataset"), cfg)
}

/// A cycling supply of orders with fresh ids (ids must be unique per reservation).
struct Orders {
    templates: Vec<Order>,
    next: usize,
    tag: u64,
}

impl Orders {
    fn new(engine: &Engine, cfg: &GenConfig, lines: u8, seed: u64) -> Orders {
        let cfg = GenConfig {
            orders: 100_000,
            lines: LineMix::Fixed(lines),
            pickup_share: 0.0,
            seed,
            ..cfg.clone()
        };
        let templates =
            generate::orders(engine.network().cities(), engine.network().stores(), &cfg, &NoProgress)
                .unwrap();
        Orders { templates, next: 0, tag: seed }
    }

    fn next(&mut self) -> Order {
        let t = &self.templates[self.next % self.templates.len()];
        self.next += 1;
        let id = OrderId::parse(&format!("c{}-{}", self.tag, self.next)).unwrap();
        Order::new(id, t.created_at(), t.customer(), Mode::Ship, None, t.lines().to_vec()).unwrap()
    }
}

fn naive(engine: &Engine, order: &Order) -> bool {
    let lines: Vec<(SkuIdx, u32)> = order
        .lines()
        .iter()
        .filter_map(|l| Some((engine.network().catalog().get(&l.sku)?, l.qty.get())))
        .collect();
    engine
        .index()
        .walk(Walk::All, order.customer(), 0.0, 50_000.0, |c| {
            if !engine.network().store(c.store).capabilities.ship {
                return ControlFlow::Continue(());
            }
            match engine.ledger().reserve(order.id(), &[(c.store, &lines)], order.created_at()) {
                Ok(Ok(_)) => ControlFlow::Break(true),
                Ok(Err(_)) => ControlFlow::Continue(()),
                Err(_) => ControlFlow::Break(false),
            }
        })
        .unwrap_or(false)
}

fn routing(c: &mut Criterion) {
    let (engine, cfg) = network();
    let router = Router::new(RouterConfig::default(), GreatCircle::default());
    let mut group = c.benchmark_group("route_and_reserve");
    group.sample_size(30).measurement_time(std::time::Duration::from_secs(5));
    for (name, lines, seed) in [("omniroute_1_line", 1u8, 21u64), ("omniroute_3_lines", 3, 22)] {
        let mut orders = Orders::new(&engine, &cfg, lines, seed);
        group.bench_function(name, |b| {
            b.iter_batched(|| orders.next(), |o| router.route(&engine, &o).unwrap(), BatchSize::SmallInput)
        });
    }
    let mut orders = Orders::new(&engine, &cfg, 1, 23);
    group.bench_function("naive_1_line", |b| {
        b.iter_batched(|| orders.next(), |o| naive(&engine, &o), BatchSize::SmallInput)
    });
    group.finish();
}

criterion_group!(benches, routing);
criterion_main!(benches);
