use super::{load_engine, DatasetArgs, RoutingArgs};
use crate::data::read_orders;
use crate::progress::Bar;
use anyhow::Context;
use optimizer::kpi::{KpiAccumulator, Kpis};
use optimizer::router::Router;

use std::time::Instant;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub dataset: DatasetArgs,
    /// Keep reservations held (they expire after the TTL) instead of committing each order as
    /// shipped right after routing.
    #[arg(long)]
    pub hold: bool,
    /// Print the KPIs as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub routing: RoutingArgs,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let dir = a.dataset.dir();
    let (engine, load_s) = load_engine(&dir, optimizer::EngineConfig::default())?;
    let path = a.dataset.orders_path();
    let mut orders = read_orders(&path)?;
    orders.sort_by_key(|o| o.created_at());
    let router = Router::new(a.routing.router_config()?, a.routing.travel_cost(&engine));
    let bar = Bar::new();
    optimizer::progress::Progress::stage(&bar, "replay", orders.len() as u64);
    let mut kpis = KpiAccumulator::default();
    let t = Instant::now();
    for (i, order) in orders.iter().enumerate() {
        if a.hold && i % 1024 == 0 {
            engine.ledger().expire(order.created_at());
        }
        let d = router
            .route(&engine, order)
            .with_context(|| format!("{}: order {}", path.display(), order.id()))?;
        if !a.hold && d.reservation_expires_at.is_some() {
            engine.ledger().commit(order.id())?;
        }
        kpis.add(&d);
        if i % 4096 == 0 {
            bar.bar().set_position(i as u64);
        }
    }
    let k = kpis.finish(t.elapsed().as_secs_f64());
    bar.finish();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&k)?);
    } else {
        print!("{}", table(&k, load_s));
    }
    Ok(())
}

fn pct(x: f64) -> String {
    format!("{:.2}%", x * 100.0)
}

fn table(k: &Kpis, load_s: f64) -> String {
    let rows = [
        ("orders", k.orders.to_string()),
        ("fill rate", pct(k.fill_rate)),
        ("from stores", pct(k.share_from_stores)),
        ("from DCs", pct(k.share_from_dcs)),
        ("unfulfillable", pct(k.share_unfulfillable)),
        ("pickup alternatives", pct(k.share_pickup_alternative)),
        ("split rate", pct(k.split_rate)),
        ("distance p50", format!("{:.2} km", k.distance_p50_m / 1000.0)),
        ("distance p95", format!("{:.2} km", k.distance_p95_m / 1000.0)),
        ("same-day", pct(k.promise_mix.same_day)),
        ("next-day", pct(k.promise_mix.next_day)),
        ("later", pct(k.promise_mix.later)),
        ("load time", format!("{load_s:.2} s")),
        ("wall time", format!("{:.3} s", k.wall_time_s)),
        ("orders/s", format!("{:.0}", k.orders_per_s)),
    ];
    rows.iter().map(|(k, v)| format!("{k:<20} {v}\n")).collect()
}
