//! `omniroute simulate`: what-if scenarios replayed in parallel, compared with the first.

use crate::progress::Bar;
use crate::scenario::{Base, Scenario, Simulated};
use anyhow::Context;
use indicatif::MultiProgress;
use optimizer::router::Status;
use optimizer::sim::{self, Report};
use optimizer::Engine;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Scenario files (TOML, see scenarios/README.md); the first is the baseline the others are
    /// compared with.
    #[arg(required = true)]
    pub scenarios: Vec<PathBuf>,
    /// Results directory: one folder per scenario (report.json, orders.csv) and the comparison
    /// (comparison.md, .csv, .json).
    #[arg(long)]
    pub out: PathBuf,
    /// Scenarios run at once [default: one per core].
    #[arg(long)]
    pub jobs: Option<usize>,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    // Everything is read and checked before anything runs.
    let scenarios: Vec<Scenario> = a.scenarios.iter().map(|p| Scenario::read(p)).collect::<Result<_, _>>()?;
    let mut names = std::collections::BTreeSet::new();
    for s in &scenarios {
        anyhow::ensure!(
            names.insert(s.name.clone()),
            "{}: scenario name `{}` used twice",
            s.path.display(),
            s.name
        );
    }
    // Each base is loaded once, whichever scenarios share it.
    let mut bases: BTreeMap<PathBuf, Arc<Base>> = BTreeMap::new();
    let mut prepared = Vec::new();
    for s in &scenarios {
        let dir = s.base.as_ref().expect("scenario files have a base");
        let key =
            dir.canonicalize().with_context(|| format!("{}: base {}", s.path.display(), dir.display()))?;
        let base = match bases.get(&key) {
            Some(b) => b.clone(),
            None => {
                let t = std::time::Instant::now();
                let b = Arc::new(Base::load(dir)?);
                log::info!("loaded base {} in {:.2} s", dir.display(), t.elapsed().as_secs_f64());
                bases.insert(key, b.clone());
                b
            }
        };
        let changes = s.resolve(&base.network)?;
        let t = std::time::Instant::now();
        let orders = s.orders(&base.network)?;
        log::info!("{}: {} orders ready in {:.2} s", s.name, orders.len(), t.elapsed().as_secs_f64());
        anyhow::ensure!(!orders.is_empty(), "{}: the demand has no orders", s.path.display());
        prepared.push((s, base, changes, orders));
    }
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;

    let jobs = a.jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1);
    let multi = MultiProgress::new();
    let bars: Vec<Bar> = prepared.iter().map(|(s, ..)| Bar::in_multi(&multi, &s.name)).collect();
    let results: Vec<parking_lot::Mutex<Option<anyhow::Result<Report>>>> =
        prepared.iter().map(|_| parking_lot::Mutex::new(None)).collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let t = std::time::Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(prepared.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some((s, base, changes, orders)) = prepared.get(i) else { break };
                let r = run_one(s, base, changes, orders, &a.out, &bars[i]);
                bars[i].finish();
                *results[i].lock() = Some(r);
            });
        }
    });
    let mut reports = Vec::new();
    for ((s, ..), r) in prepared.iter().zip(results) {
        let report = r.into_inner().expect("every scenario ran")?;
        reports.push((s.name.clone(), report));
    }
    write_comparison(&a.out, &reports)?;
    eprintln!(
        "{} scenarios in {:.1} s; results in {}",
        reports.len(),
        t.elapsed().as_secs_f64(),
        a.out.display()
    );
    print!("{}", comparison_markdown(&reports));
    Ok(())
}

/// Replays one scenario and writes its folder.
fn run_one(
    s: &Scenario,
    base: &Base,
    changes: &[optimizer::sim::changes::Change],
    orders: &[optimizer::model::Order],
    out: &Path,
    bar: &Bar,
) -> anyhow::Result<Report> {
    let t = std::time::Instant::now();
    let Simulated { engine, run, empty_before } = s.simulate(base, changes, orders, bar)?;
    let sim_s = t.elapsed().as_secs_f64();
    let t = std::time::Instant::now();
    let dir = out.join(&s.name);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(dir.join("report.json"), serde_json::to_string_pretty(&s.result(&run.report))? + "\n")
        .with_context(|| format!("writing {}", dir.join("report.json").display()))?;
    write_orders(&dir.join("orders.csv"), &engine, orders, &run.outcomes)?;
    write_stores(&dir.join("stores.csv"), &engine, &run.outcomes, &empty_before)?;
    log::info!(
        "{}: {} orders built and replayed in {sim_s:.2} s ({:.0} orders/s), results written in {:.2} s",
        s.name,
        orders.len(),
        orders.len() as f64 / sim_s.max(1e-9),
        t.elapsed().as_secs_f64()
    );
    Ok(run.report)
}

/// One line per order: where it went and how far, when it arrived and where it was going (what
/// `omniroute map --simulation` draws); the SKUs of unfilled orders (`;`-separated).
fn write_orders(
    path: &Path,
    engine: &Engine,
    orders: &[optimizer::model::Order],
    outcomes: &[sim::Outcome],
) -> anyhow::Result<()> {
    let net = engine.network();
    let file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = csv::Writer::from_writer(std::io::BufWriter::new(file));
    w.write_record([
        "order_id",
        "status",
        "source",
        "shipments",
        "distance_km",
        "created_at_unix",
        "lon",
        "lat",
        "skus",
    ])?;
    let mut skus = String::new();
    for (o, x) in orders.iter().zip(outcomes) {
        let source = match x.status {
            Status::Unfulfillable => String::new(),
            Status::Dc => format!("DC:{}", net.dcs()[x.source as usize].id),
            _ => net.stores()[x.source as usize].id.to_string(),
        };
        skus.clear();
        if x.status == Status::Unfulfillable {
            for (i, l) in o.lines().iter().enumerate() {
                if i > 0 {
                    skus.push(';');
                }
                skus.push_str(l.sku.as_str());
            }
        }
        let c = o.customer();
        w.write_record([
            o.id().as_str(),
            x.status.as_str(),
            &source,
            &x.shipments.to_string(),
            &format!("{:.3}", f64::from(x.distance_m) / 1000.0),
            &o.created_at().0.to_string(),
            &format!("{:.6}", c.lon()),
            &format!("{:.6}", c.lat()),
            &skus,
        ])?;
    }
    w.flush().with_context(|| format!("writing {}", path.display()))
}

/// One line per store of the scenario's network: where it is, whether it takes orders, its
/// capacity, the orders it served and its SKUs left with nothing available (`stockouts`).
fn write_stores(
    path: &Path,
    engine: &Engine,
    outcomes: &[sim::Outcome],
    empty_before: &[u32],
) -> anyhow::Result<()> {
    let net = engine.network();
    let mut served = vec![0u32; net.stores().len()];
    for x in outcomes {
        if !matches!(x.status, Status::Unfulfillable | Status::Dc) {
            served[x.source as usize] += 1;
        }
    }
    let empty_after = crate::map::source::empty_cells(engine);
    let file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = csv::Writer::from_writer(std::io::BufWriter::new(file));
    w.write_record(["store_id", "city", "lon", "lat", "open", "capacity", "orders", "stockouts"])?;
    for (i, s) in net.stores().iter().enumerate() {
        let city = net.cities().get(usize::from(s.city.0)).map_or("", |c| c.name.as_str());
        w.write_record([
            s.id.as_str(),
            city,
            &format!("{:.6}", s.location.lon()),
            &format!("{:.6}", s.location.lat()),
            if s.capabilities.ship || s.capabilities.pickup { "true" } else { "false" },
            &s.capacity_per_day.to_string(),
            &served[i].to_string(),
            &empty_after[i].saturating_sub(empty_before[i]).to_string(),
        ])?;
    }
    w.flush().with_context(|| format!("writing {}", path.display()))
}

/// The compared figures of a report, in order, with their units in the name.
fn metrics(r: &Report) -> Vec<(&'static str, f64)> {
    let o = &r.of_orders;
    vec![
        ("orders", r.orders as f64),
        ("fill rate, % of orders", r.fill_rate_pct),
        ("from stores, % of orders", o.from_stores.pct),
        ("from DCs, % of orders", o.from_dcs.pct),
        ("unfilled, % of orders", o.unfilled.pct),
        ("split, % of orders", o.split.pct),
        ("pickup alternative, % of orders", o.pickup_alternative.pct),
        ("distance p50, km per shipment", r.distance.p50_km),
        ("distance p95, km per shipment", r.distance.p95_km),
        ("distance mean, km per shipment", r.distance.mean_km),
        ("same day, % of shipments", r.promises_of_shipments.same_day.pct),
        ("next day, % of shipments", r.promises_of_shipments.next_day.pct),
        ("later, % of shipments", r.promises_of_shipments.later.pct),
        ("stores used", r.store_utilisation.stores_used as f64),
        ("stores at capacity", r.store_utilisation.stores_at_capacity as f64),
        ("store utilisation p90, % of capacity", r.store_utilisation.p90_pct),
        ("store utilisation max, % of capacity", r.store_utilisation.max_pct),
        ("total cost, money units", r.total_cost),
    ]
}

fn fmt(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.0}")
    } else {
        format!("{x:.4}")
    }
}

/// A change with its sign, whole numbers without decimals.
fn signed(x: f64) -> String {
    let x = round4(x);
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:+.0}")
    } else {
        format!("{x:+.4}")
    }
}

fn comparison_markdown(reports: &[(String, Report)]) -> String {
    let base = metrics(&reports[0].1);
    let mut s = String::from("| metric |");
    for (i, (name, _)) in reports.iter().enumerate() {
        s += &format!(" {name} |");
        if i > 0 {
            s += &format!(" Δ {name} |");
        }
    }
    s += "\n|---|";
    s += &"---:|".repeat(reports.len() * 2 - 1);
    s += "\n";
    let all: Vec<Vec<(&str, f64)>> = reports.iter().map(|(_, r)| metrics(r)).collect();
    for (m, (label, b)) in base.iter().enumerate() {
        s += &format!("| {label} | {} |", fmt(*b));
        for row in &all[1..] {
            let v = row[m].1;
            s += &format!(" {} | {} |", fmt(v), signed(v - b));
        }
        s += "\n";
    }
    s
}

/// Writes comparison.md, .csv and .json: every scenario's figures and their change from the
/// baseline (the first scenario).
fn write_comparison(out: &Path, reports: &[(String, Report)]) -> anyhow::Result<()> {
    let base = metrics(&reports[0].1);
    let mut csv = String::from("scenario,metric,value,baseline,delta\n");
    #[derive(Serialize)]
    struct Row<'a> {
        metric: &'a str,
        value: f64,
        baseline: f64,
        delta: f64,
    }
    #[derive(Serialize)]
    struct Json<'a> {
        baseline: &'a str,
        scenarios: BTreeMap<&'a str, Vec<Row<'a>>>,
    }
    let mut json = Json { baseline: &reports[0].0, scenarios: BTreeMap::new() };
    for (name, r) in reports {
        let rows: Vec<Row> = metrics(r)
            .into_iter()
            .zip(&base)
            .map(|((metric, value), (_, b))| Row { metric, value, baseline: *b, delta: round4(value - b) })
            .collect();
        for x in &rows {
            csv +=
                &format!("{name},\"{}\",{},{},{}\n", x.metric, fmt(x.value), fmt(x.baseline), fmt(x.delta));
        }
        json.scenarios.insert(name, rows);
    }
    let write = |file: &str, text: String| {
        std::fs::write(out.join(file), text).with_context(|| format!("writing {}", out.join(file).display()))
    };
    write("comparison.md", comparison_markdown(reports))?;
    write("comparison.csv", csv)?;
    write("comparison.json", serde_json::to_string_pretty(&json)? + "\n")?;
    Ok(())
}

fn round4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

/// `omniroute diff A B`: which orders moved between two scenario results.
#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// Result folder of the first scenario (holds orders.csv).
    pub a: PathBuf,
    /// Result folder of the second scenario.
    pub b: PathBuf,
    /// Write the moved orders here as CSV (order_id, status and source in each, distance
    /// change); default: only the summary.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// One order line of a result's orders.csv.
struct OrderRow {
    status: String,
    source: String,
    distance_km: f64,
}

fn read_orders_csv(dir: &Path) -> anyhow::Result<Vec<(String, OrderRow)>> {
    let path = dir.join("orders.csv");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate().skip(1) {
        // The first five columns; later ones (arrival, destination, SKUs) may be quoted.
        let f: Vec<&str> = line.splitn(6, ',').collect();
        anyhow::ensure!(
            f.len() >= 5,
            "{}:{}: expected at least 5 fields, got {}",
            path.display(),
            n + 1,
            f.len()
        );
        let distance_km =
            f[4].parse().map_err(|e| anyhow::anyhow!("{}:{}: distance_km: {e}", path.display(), n + 1))?;
        out.push((f[0].to_string(), OrderRow { status: f[1].into(), source: f[2].into(), distance_km }));
    }
    Ok(out)
}

pub fn diff(a: DiffArgs) -> anyhow::Result<()> {
    let (x, y) = (read_orders_csv(&a.a)?, read_orders_csv(&a.b)?);
    let ys: rustc_hash::FxHashMap<&str, &OrderRow> = y.iter().map(|(id, r)| (id.as_str(), r)).collect();
    let (mut moved, mut only_a, mut to_dc, mut to_unfilled, mut from_unfilled) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut delta_km = 0.0;
    let mut w = match &a.out {
        Some(p) => {
            let f = std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?;
            let mut w = std::io::BufWriter::new(f);
            writeln!(w, "order_id,status_a,source_a,status_b,source_b,distance_change_km")?;
            Some(w)
        }
        None => None,
    };
    for (id, ra) in &x {
        let Some(rb) = ys.get(id.as_str()) else {
            only_a += 1;
            continue;
        };
        if ra.status == rb.status && ra.source == rb.source {
            continue;
        }
        moved += 1;
        to_dc += u64::from(rb.status == "dc" && ra.status != "dc");
        to_unfilled += u64::from(rb.status == "unfulfillable" && ra.status != "unfulfillable");
        from_unfilled += u64::from(ra.status == "unfulfillable" && rb.status != "unfulfillable");
        let d = rb.distance_km - ra.distance_km;
        delta_km += d;
        if let Some(w) = w.as_mut() {
            writeln!(w, "{id},{},{},{},{},{d:.3}", ra.status, ra.source, rb.status, rb.source)?;
        }
    }
    if let Some(mut w) = w {
        w.flush()?;
    }
    println!("orders in both        {}", x.len() as u64 - only_a);
    println!("orders only in A      {only_a}");
    println!("orders only in B      {}", (y.len() as u64).saturating_sub(x.len() as u64 - only_a));
    println!("moved                 {moved}");
    println!("  to a DC             {to_dc}");
    println!("  to unfilled         {to_unfilled}");
    println!("  filled now          {from_unfilled}");
    println!(
        "distance change       {delta_km:+.1} km in all, {:+.3} km per moved order",
        if moved > 0 { delta_km / moved as f64 } else { 0.0 }
    );
    Ok(())
}
