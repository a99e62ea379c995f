//! `omniroute bench`: routing throughput and latency, load time and memory, side by side with a
//! naive baseline (nearest-neighbour iteration over all stores with a stock check per candidate).

use super::{load_engine, RoutingArgs};
use crate::data::cities;
use crate::progress::Bar;
use hdrhistogram::Histogram;
use optimizer::generate::{self, GenConfig, LineMix};
use optimizer::index::Walk;
use optimizer::model::{Mode, Order, OrderId, OrderLine, Sku, SkuIdx};
use optimizer::progress::NoProgress;
use optimizer::router::{Router, Status};
use optimizer::travel::TravelCost;
use optimizer::{Engine, EngineConfig};
use serde::Serialize;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Load this dataset directory (measures load time from files); otherwise generate in memory.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Stores to generate when --data is not given.
    #[arg(long, default_value_t = 180_000)]
    pub stores: usize,
    /// SKUs in the catalogue (also the range order lines draw from).
    #[arg(long, default_value_t = 2_000)]
    pub skus: u32,
    #[arg(long, default_value_t = 100)]
    pub skus_per_store: u32,
    #[arg(long, default_value_t = 11)]
    pub seed: u64,
    /// Orders routed per case.
    #[arg(long, default_value_t = 400_000)]
    pub orders: usize,
    /// Orders routed per naive-baseline case (it is much slower).
    #[arg(long, default_value_t = 50_000)]
    pub baseline_orders: usize,
    /// Threads for the multi-threaded cases (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// SKUs carried by fewer than this share of stores get their own R-tree.
    #[arg(long, default_value_t = optimizer::index::IndexConfig::default().sparse_fraction)]
    pub sparse_fraction: f64,
    /// Run only the cases whose name contains this text (e.g. `naive`, `3-line`).
    #[arg(long)]
    pub only: Option<String>,
    /// Also print the results as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub routing: RoutingArgs,
}

#[derive(Debug, Serialize)]
struct CaseResult {
    case: String,
    threads: usize,
    orders: usize,
    routes_per_s: f64,
    p50_us: f64,
    p99_us: f64,
    p999_us: f64,
    from_stores: f64,
    /// Mean stores examined per order (omniroute cases only).
    mean_candidates: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    stores: usize,
    stock_rows: u64,
    sparse_skus: usize,
    load_or_build_s: f64,
    loaded_from_files: bool,
    rss_after_load_mib: f64,
    peak_rss_mib: f64,
    cases: Vec<CaseResult>,
}

/// (current, peak) resident set size in MiB, from /proc/self/status.
pub(crate) fn rss_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[derive(Clone, Copy, PartialEq)]
enum Method {
    Omniroute,
    Naive,
}

/// The baseline: walk every store nearest first; for each ship-capable one, try to reserve
/// (lock, look up each line); stop at the first success or at the radius.
fn naive_route(engine: &Engine, order: &Order, lines: &[(SkuIdx, u32)], radius_m: f64) -> bool {
    let net = engine.network();
    engine
        .index()
        .walk(Walk::All, order.customer(), 0.0, radius_m, |c| {
            if !net.store(c.store).capabilities.ship {
                return ControlFlow::Continue(());
            }
            match engine.ledger().reserve(order.id(), &[(c.store, lines)], order.created_at()) {
                Ok(Ok(_)) => ControlFlow::Break(true),
                Ok(Err(_)) => ControlFlow::Continue(()),
                Err(_) => ControlFlow::Break(false),
            }
        })
        .unwrap_or(false)
}

fn run_case(
    engine: &Engine,
    router: &Router<Box<dyn TravelCost>>,
    orders: &[Order],
    threads: usize,
    method: Method,
    name: String,
) -> CaseResult {
    let catalog = engine.network().catalog();
    let resolved: Vec<Vec<(SkuIdx, u32)>> = orders
        .iter()
        .map(|o| o.lines().iter().filter_map(|l| Some((catalog.get(&l.sku)?, l.qty.get()))).collect())
        .collect();
    let chunk = orders.len().div_ceil(threads);
    let radius = router.config().ship_radius_m;
    let t = Instant::now();
    let per_thread: Vec<(Histogram<u64>, usize, u64)> = std::thread::scope(|s| {
        let handles: Vec<_> = orders
            .chunks(chunk)
            .zip(resolved.chunks(chunk))
            .map(|(os, ls)| {
                s.spawn(move || {
                    let mut h =
                        Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds");
                    let mut stores = 0usize;
                    let mut candidates = 0u64;
                    for (o, l) in os.iter().zip(ls) {
                        let start = Instant::now();
                        let from_store = match method {
                            Method::Omniroute => {
                                let d = router.route(engine, o).expect("unique ids");
                                candidates += u64::from(d.explanation.candidates_considered);
                                matches!(d.status, Status::Assigned | Status::Split)
                            }
                            Method::Naive => !l.is_empty() && naive_route(engine, o, l, radius),
                        };
                        h.saturating_record(start.elapsed().as_nanos() as u64);
                        stores += usize::from(from_store);
                    }
                    (h, stores, candidates)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("bench thread")).collect()
    });
    let wall = t.elapsed().as_secs_f64();
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds");
    let (mut stores, mut candidates) = (0, 0);
    for (h, s, c) in per_thread {
        hist.add(h).expect("same bounds");
        stores += s;
        candidates += c;
    }
    let us = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    CaseResult {
        case: name,
        threads,
        orders: orders.len(),
        routes_per_s: orders.len() as f64 / wall,
        p50_us: us(0.5),
        p99_us: us(0.99),
        p999_us: us(0.999),
        from_stores: stores as f64 / orders.len() as f64,
        mean_candidates: candidates as f64 / orders.len() as f64,
    }
}

fn bench_orders(
    engine: &Engine,
    a: &Args,
    n: usize,
    lines: u8,
    seed: u64,
    tag: &str,
) -> anyhow::Result<Vec<Order>> {
    let cfg = GenConfig {
        stores: engine.network().stores().len(),
        skus: a.skus,
        orders: n,
        seed,
        lines: LineMix::Fixed(lines),
        pickup_share: 0.0,
        ..GenConfig::default()
    };
    let raw = generate::orders(engine.network().cities(), engine.network().stores(), &cfg, &NoProgress)?;
    let catalog = engine.network().catalog();
    // The generator names SKU number n `n` (or `SKU-0000n` in a dataset generated with text
    // ids); each line takes the catalogue's own id, as an order parsed at the edge does.
    let text = catalog.get("SKU-00001").is_some();
    let shared = |sku: &Sku| {
        let named =
            if text { Sku::parse(&format!("SKU-{:05}", sku.as_str())).ok() } else { Some(sku.clone()) };
        named.and_then(|s| catalog.get(&s)).map_or_else(|| sku.clone(), |k| catalog.sku(k).clone())
    };
    Ok(raw
        .into_iter()
        .enumerate()
        .map(|(i, o)| {
            let id = OrderId::parse(&format!("{tag}-{i}")).expect("valid id");
            let lines = o.lines().iter().map(|l| OrderLine { sku: shared(&l.sku), ..l.clone() }).collect();
            Order::new(id, o.created_at(), o.customer(), Mode::Ship, None, lines).expect("valid order")
        })
        .collect())
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let threads = a.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    anyhow::ensure!(threads >= 1, "--threads must be at least 1");
    anyhow::ensure!(a.orders >= threads, "--orders must be at least the number of threads");
    let (engine, build_s, from_files) = match &a.data {
        Some(dir) => {
            let (e, s) = load_engine(dir, engine_config(&a))?;
            (e, s, true)
        }
        None => {
            let cfg = GenConfig {
                stores: a.stores,
                skus: a.skus,
                orders: 0,
                seed: a.seed,
                skus_per_store: a.skus_per_store,
                ..GenConfig::default()
            };
            let bar = Bar::new();
            let data = generate::generate(&cities::bundled(), &cfg, &bar)?;
            bar.finish();
            let t = Instant::now();
            let engine = crate::data::generated_engine(data, engine_config(&a))?;
            (engine, t.elapsed().as_secs_f64(), false)
        }
    };
    let (rss_after_load, _) = rss_mib();
    let rules = a.routing.rules()?;
    let router = Router::new(rules.router_config(), rules.travel_cost(engine.network().cities()));
    let mut cases = Vec::new();
    let plan = [
        ("omniroute 1-line", Method::Omniroute, 1u8, 1usize),
        ("omniroute 1-line", Method::Omniroute, 1, threads),
        ("omniroute 3-line", Method::Omniroute, 3, 1),
        ("omniroute 3-line", Method::Omniroute, 3, threads),
        ("naive 1-line", Method::Naive, 1, 1),
        ("naive 3-line", Method::Naive, 3, 1),
    ];
    for (i, (name, method, lines, t)) in plan.into_iter().enumerate() {
        if a.only.as_deref().is_some_and(|only| !name.contains(only)) {
            continue;
        }
        let n = if method == Method::Naive { a.baseline_orders } else { a.orders };
        let orders = bench_orders(&engine, &a, n, lines, a.seed + 100 + i as u64, &format!("b{i}"))?;
        eprintln!("running {name} on {t} thread(s)...");
        cases.push(run_case(&engine, &router, &orders, t, method, name.to_string()));
    }
    let (_, peak) = rss_mib();
    let sparse_skus =
        (0..engine.network().catalog().len() as u32).filter(|k| engine.index().is_sparse(SkuIdx(*k))).count();
    let report = Report {
        stores: engine.network().stores().len(),
        stock_rows: (0..engine.network().stores().len() as u32)
            .map(|s| engine.ledger().skus_of(optimizer::model::StoreIdx(s)).len() as u64)
            .sum(),
        sparse_skus,
        load_or_build_s: build_s,
        loaded_from_files: from_files,
        rss_after_load_mib: rss_after_load,
        peak_rss_mib: peak,
        cases,
    };
    println!(
        "stores: {}  stock rows: {}  sparse SKUs: {}  {}: {:.2} s  RSS after load: {:.0} MiB  peak RSS: {:.0} MiB\n",
        report.stores,
        report.stock_rows,
        report.sparse_skus,
        if from_files { "load from files" } else { "engine build (in memory)" },
        report.load_or_build_s,
        report.rss_after_load_mib,
        report.peak_rss_mib
    );
    println!(
        "| case | threads | orders | routes/s | p50 µs | p99 µs | p99.9 µs | from stores | stores examined |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for c in &report.cases {
        println!(
            "| {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.1}% | {:.2} |",
            c.case,
            c.threads,
            c.orders,
            c.routes_per_s,
            c.p50_us,
            c.p99_us,
            c.p999_us,
            c.from_stores * 100.0,
            c.mean_candidates
        );
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}

fn engine_config(a: &Args) -> EngineConfig {
    let index = optimizer::index::IndexConfig { sparse_fraction: a.sparse_fraction, ..Default::default() };
    // Room for every reservation the run makes (four omniroute cases, two baseline ones), as a
    // deployment sizes it for the orders it expects.
    let ledger = optimizer::ledger::LedgerConfig {
        expected_reservations: a.orders * 4 + a.baseline_orders * 2,
        ..Default::default()
    };
    EngineConfig { index, ledger }
}
