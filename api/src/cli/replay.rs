use super::{load_engine, DatasetArgs, RoutingArgs};
use crate::data::read_orders;
use crate::progress::Bar;
use optimizer::router::Router;
use optimizer::sim::{self, CheckoutPolicy, Report};
use serde::Serialize;
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub dataset: DatasetArgs,
    /// Keep reservations held (they expire after the TTL) instead of committing each order as
    /// shipped right after routing.
    #[arg(long)]
    pub hold: bool,
    /// Print the KPIs as JSON (with per-city and per-hour breakdowns).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub routing: RoutingArgs,
}

/// What `replay --json` prints.
#[derive(Serialize)]
struct Out<'a> {
    #[serde(flatten)]
    kpis: &'a Report,
    load_s: f64,
    replay_s: f64,
    orders_per_s: f64,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let rules = a.routing.rules()?;
    let dir = a.dataset.dir();
    let (engine, load_s) = load_engine(&dir, optimizer::EngineConfig::default())?;
    let mut orders = read_orders(&a.dataset.orders_path())?;
    orders.sort_by(|x, y| x.created_at().cmp(&y.created_at()).then_with(|| x.id().cmp(y.id())));
    for o in &orders {
        // SKUs the network lacks are learned (orders for them ship from DCs).
        let _ = engine.admit(o);
    }
    let router = Router::new(rules.router_config(), rules.travel_cost(engine.network().cities()));
    // Shipped at once, or (--hold) never paid: held until the TTL gives the stock back.
    let policy = CheckoutPolicy { ship_after_s: 0, abandon_share: if a.hold { 1.0 } else { 0.0 }, seed: 1 };
    let bar = Bar::new();
    let t = Instant::now();
    let run = sim::replay(&engine, &router, &orders, &policy, &rules.plan_config(), &bar);
    let replay_s = t.elapsed().as_secs_f64();
    bar.finish();
    let orders_per_s = if replay_s > 0.0 { orders.len() as f64 / replay_s } else { 0.0 };
    if a.json {
        let out = Out { kpis: &run.report, load_s, replay_s, orders_per_s };
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print!("{}", table(&run.report));
        println!("{:<34} {load_s:.2} s", "load time");
        println!("{:<34} {replay_s:.3} s ({orders_per_s:.0} orders/s)", "replay time");
    }
    Ok(())
}

/// The KPIs as aligned rows, each with its unit and what a share is a share of.
pub fn table(k: &Report) -> String {
    let o = &k.of_orders;
    let p = &k.promises_of_shipments;
    let u = &k.store_utilisation;
    let share = |s: &sim::Share| format!("{:.2}% ({} orders)", s.pct, s.count);
    let rows = [
        ("orders", k.orders.to_string()),
        ("fill rate, of orders", format!("{:.2}%", k.fill_rate_pct)),
        ("from stores, of orders", share(&o.from_stores)),
        ("from DCs, of orders", share(&o.from_dcs)),
        ("unfilled, of orders", share(&o.unfilled)),
        ("pickup alternatives, of orders", share(&o.pickup_alternative)),
        ("split, of orders", share(&o.split)),
        (
            "distance per shipment",
            format!(
                "p50 {:.2} km, p95 {:.2} km, mean {:.2} km",
                k.distance.p50_km, k.distance.p95_km, k.distance.mean_km
            ),
        ),
        (
            "promise, of shipments",
            format!(
                "same day {:.2}%, next day {:.2}%, later {:.2}%",
                p.same_day.pct, p.next_day.pct, p.later.pct
            ),
        ),
        (
            "store utilisation, of capacity",
            format!(
                "{} stores used, p50 {:.1}%, p90 {:.1}%, max {:.1}%; {} at capacity",
                u.stores_used, u.p50_pct, u.p90_pct, u.max_pct, u.stores_at_capacity
            ),
        ),
        ("total cost (planner weights)", format!("{:.0}", k.total_cost)),
    ];
    let mut s: String = rows.iter().map(|(k, v)| format!("{k:<34} {v}\n")).collect();
    if let Some(c) = k.unfilled_by_city.first() {
        s += &format!("{:<34} {} ({} orders)\n", "most unfilled city", c.key, c.count);
    }
    s
}
