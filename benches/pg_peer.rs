//! The peer, side by side: the plain-SQL lookup a team would write without omniroute (PostGIS
//! KNN `ORDER BY geom <-> point` joined with stock, `LIMIT 1`; and its multi-line variant) against
//! omniroute's in-memory candidate search, on the same dataset and the same orders.
//!
//! Both only look up (nothing is reserved): the nearest ship-capable store that holds every line.
//! Prints one line per case with lookups/s, p50 and p99, and how often the two agree.
//!
//! ```sh
//! cargo bench -p omniroute --bench pg_peer -- --database-url postgres://postgres@127.0.0.1/omniroute_bench \
//!     --data data/large/n180k --seconds 10
//! ```

use clap::Parser;
use hdrhistogram::Histogram;
use omniroute::data::load_engine;
use optimizer::index::Walk;
use optimizer::model::{Mode, Order, SkuIdx, StoreId, Timestamp};
use optimizer::{Engine, EngineConfig};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

// The allocator the omniroute binary ships with (api/src/main.rs): measure the engine as it runs.
#[global_allocator]
static GLOBAL: omniroute::alloc::Allocator = omniroute::alloc::Allocator;

#[derive(Parser, Debug)]
struct Args {
    #[arg(long)]
    database_url: String,
    /// Dataset directory imported into that database (`omniroute db import`).
    #[arg(long)]
    data: PathBuf,
    /// Seconds per SQL case.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Seconds of unrecorded SQL before the SQL cases (fills the database's buffers), and up to
    /// one second of unrecorded in-memory lookups before those, so that neither side is measured
    /// cold.
    #[arg(long, default_value_t = 3)]
    warmup: u64,
    /// Orders taken from the dataset's orders.jsonl.
    #[arg(long, default_value_t = 20_000)]
    orders: usize,
    /// Criterion passes --bench; ignore it.
    #[arg(long, hide = true)]
    bench: bool,
}

const SINGLE: &str = "SELECT s.store_id FROM stores s JOIN stock k ON k.store_id = s.store_id
    WHERE k.sku = $3 AND k.on_hand - k.reserved - k.safety_stock >= $4 AND s.ship
    ORDER BY s.geom <-> ST_SetSRID(ST_MakePoint($1, $2), 4326)::geography LIMIT 1";

const MULTI: &str = "SELECT s.store_id FROM stores s
    WHERE s.ship AND NOT EXISTS (
        SELECT 1 FROM unnest($3::text[], $4::int[]) l(sku, qty)
        WHERE NOT EXISTS (SELECT 1 FROM stock k WHERE k.store_id = s.store_id AND k.sku = l.sku
                          AND k.on_hand - k.reserved - k.safety_stock >= l.qty))
    ORDER BY s.geom <-> ST_SetSRID(ST_MakePoint($1, $2), 4326)::geography LIMIT 1";

/// One lookup: (lon, lat, skus, qtys).
type Query = (f64, f64, Vec<String>, Vec<i32>);

fn query(o: &Order) -> Query {
    let at = o.customer();
    let skus = o.lines().iter().map(|l| l.sku.as_str().to_owned()).collect();
    let qtys = o.lines().iter().map(|l| l.qty.get() as i32).collect();
    (at.lon(), at.lat(), skus, qtys)
}

/// omniroute's candidate search: the R-tree walk over the carriers of the rarest SKU, nearest
/// first, lock-free availability bits, then the exact check under the store's lock.
/// `lines` is a buffer reused between calls (the router keeps its own per call).
fn nearest(engine: &Engine, o: &Order, now: Timestamp, lines: &mut Vec<(SkuIdx, u32)>) -> Option<StoreId> {
    let (net, ledger) = (engine.network(), engine.ledger());
    lines.clear();
    lines.extend(o.lines().iter().map(|l| (net.catalog().get(&l.sku).expect("catalogued"), l.qty.get())));
    let lines = &lines[..];
    let driver = lines.iter().map(|(s, _)| *s).min_by_key(|s| ledger.carrier_count(*s))?;
    engine.index().walk(Walk::Carriers(driver), o.customer(), 0.0, f64::INFINITY, |c| {
        if !c.ship || lines.iter().any(|(sku, _)| !ledger.maybe_available(c.store, *sku)) {
            return ControlFlow::Continue(());
        }
        match ledger.check(c.store, lines, now) {
            Ok(()) => ControlFlow::Break(net.store_id(c.store).clone()),
            Err(_) => ControlFlow::Continue(()),
        }
    })
}

fn report(name: &str, h: &Histogram<u64>, wall: f64) {
    println!(
        "{name:<34} lookups={:>8} lookups/s={:>10.0} p50={:>9.4}ms p99={:>9.4}ms",
        h.len(),
        h.len() as f64 / wall,
        h.value_at_quantile(0.5) as f64 / 1e6,
        h.value_at_quantile(0.99) as f64 / 1e6
    );
}

async fn sql_case(
    url: &str,
    sql: &'static str,
    queries: Arc<Vec<Query>>,
    connections: usize,
    seconds: u64,
) -> (Histogram<u64>, f64) {
    let start = Instant::now();
    let stop = start + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for c in 0..connections {
        let (url, queries) = (url.to_owned(), queries.clone());
        tasks.push(tokio::spawn(async move {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.expect("connect");
            tokio::spawn(conn);
            let stmt = client.prepare(sql).await.expect("prepare");
            let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
            let mut i = c;
            while Instant::now() < stop {
                let (lon, lat, skus, qtys) = &queries[i % queries.len()];
                let t = Instant::now();
                if sql == SINGLE {
                    client.query_opt(&stmt, &[lon, lat, &skus[0], &qtys[0]]).await.expect("query");
                } else {
                    client.query_opt(&stmt, &[lon, lat, skus, qtys]).await.expect("query");
                }
                h.saturating_record(t.elapsed().as_nanos() as u64);
                i += connections;
            }
            h
        }));
    }
    let mut all = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
    for t in tasks {
        all.add(t.await.unwrap()).unwrap();
    }
    (all, start.elapsed().as_secs_f64())
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let (engine, load_s) = load_engine(&a.data, EngineConfig::default())?;
    eprintln!("loaded {} in {load_s:.1} s", a.data.display());
    let orders: Vec<Order> = omniroute::data::read_orders(&a.data.join("orders.jsonl"))?
        .into_iter()
        .filter(|o| o.mode() == Mode::Ship)
        .take(a.orders * 4)
        .collect();
    let single: Vec<&Order> = orders.iter().filter(|o| o.lines().len() == 1).take(a.orders).collect();
    let multi: Vec<&Order> = orders.iter().filter(|o| o.lines().len() > 1).take(a.orders).collect();
    let now = Timestamp(1_794_326_400);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;

    for (label, set, sql) in [("single-line", &single, SINGLE), ("multi-line", &multi, MULTI)] {
        // omniroute, one thread, the same orders cycled for the same time, after a warm-up.
        let mut buf = Vec::with_capacity(8);
        let warm = Instant::now() + Duration::from_secs(a.warmup.min(1));
        for o in set.iter().cycle() {
            if Instant::now() >= warm {
                break;
            }
            std::hint::black_box(nearest(&engine, o, now, &mut buf));
        }
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
        let start = Instant::now();
        let stop = start + Duration::from_secs(a.seconds.min(5));
        let mut i = 0;
        while Instant::now() < stop {
            let t = Instant::now();
            std::hint::black_box(nearest(&engine, set[i % set.len()], now, &mut buf));
            h.saturating_record(t.elapsed().as_nanos() as u64);
            i += 1;
        }
        let ours = h.len() as f64 / start.elapsed().as_secs_f64();
        report(&format!("omniroute {label} (1 thread)"), &h, start.elapsed().as_secs_f64());
        let queries: Arc<Vec<Query>> = Arc::new(set.iter().map(|o| query(o)).collect());
        if a.warmup > 0 {
            rt.block_on(sql_case(&a.database_url, sql, queries.clone(), 2, a.warmup));
        }
        let mut peer_best = 0.0f64;
        let mut peer_one = 0.0f64;
        for connections in [1, 2] {
            let (h, wall) =
                rt.block_on(sql_case(&a.database_url, sql, queries.clone(), connections, a.seconds));
            peer_best = peer_best.max(h.len() as f64 / wall);
            if connections == 1 {
                peer_one = h.len() as f64 / wall;
            }
            report(
                &format!("SQL {label} ({connections} connection{})", if connections > 1 { "s" } else { "" }),
                &h,
                wall,
            );
        }
        // Do both pick the same store? (PostGIS orders by spheroid distance, omniroute by great
        // circle: near-ties may differ.)
        let sample: Vec<&Order> = set.iter().take(500).copied().collect();
        let agree = rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&a.database_url, tokio_postgres::NoTls).await?;
            tokio::spawn(conn);
            let mut same = 0;
            for o in &sample {
                let (lon, lat, skus, qtys) = query(o);
                let row = if sql == SINGLE {
                    client.query_opt(sql, &[&lon, &lat, &skus[0], &qtys[0]]).await?
                } else {
                    client.query_opt(sql, &[&lon, &lat, &skus, &qtys]).await?
                };
                let theirs = row.map(|r| StoreId::parse(r.get::<_, &str>(0)).expect("valid ids"));
                same += usize::from(theirs == nearest(&engine, o, now, &mut buf));
            }
            Ok::<_, anyhow::Error>(same)
        })?;
        println!(
            "{label}: omniroute/SQL speed ratio {:.0}x per thread against one connection, {:.0}x against the faster SQL case; same store on {agree} of {} orders",
            ours / peer_one,
            ours / peer_best,
            sample.len()
        );
    }
    Ok(())
}
