//! `omniroute optimize`: a batch plan for an order file, greedy or LP, with KPIs, the greedy-versus-LP
//! gap, shadow prices and an optional independent check.

use super::{load_engine, DatasetArgs, RoutingArgs};
use crate::data::read_orders;
use crate::progress::Bar;
use anyhow::Context;
use optimizer::model::{Order, Timestamp};
use optimizer::plan::{
    self, lp, Comparison, Instance, LedgerView, PlanConfig, PlanOutcome, PlanReport, Planning, SolveOptions,
    Solver,
};
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SolverArg {
    Greedy,
    Lp,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub dataset: DatasetArgs,
    #[arg(long, value_enum, default_value_t = SolverArg::Lp)]
    pub solver: SolverArg,
    /// Write the plan (assignments, KPIs, LP statistics, shadow prices) as JSON here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub routing: RoutingArgs,
    /// Use the peers' weights: 1 per km, a flat DC cost of 500, nothing else (overrides the
    /// routing file's [weights]).
    #[arg(long)]
    pub peer_weights: bool,
    /// Candidate stores per order and per line (overrides the routing file).
    #[arg(long)]
    pub k: Option<usize>,
    /// Check the plan with the independent validator; exit non-zero on any violation.
    #[arg(long)]
    pub check: bool,
    /// LP only: solve one monolithic LP (no presolve, no components), as a peer would.
    #[arg(long)]
    pub monolithic: bool,
    /// LP only: hand every component to HiGHS, also the ones that are networks (single-line,
    /// one-unit orders) and would otherwise be solved as a min-cost flow.
    #[arg(long)]
    pub highs_only: bool,
    /// LP only: the min-cost flow solver of network components: `auto` (successive shortest
    /// paths for small components, the network simplex for large ones), `paths` or `simplex`.
    #[arg(long, value_enum, default_value_t = FlowArg::Auto)]
    pub flow: FlowArg,
    /// LP only: skip the greedy comparison.
    #[arg(long)]
    pub no_compare: bool,
    /// Shadow prices to list per kind.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// Write the single-line instance as a min-cost-flow problem (binary, see
    /// benches/peer_mcf.py) and exit.
    #[arg(long)]
    pub export_mcf: Option<PathBuf>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// What the command prints.
#[derive(Debug, Serialize)]
struct Summary<'a> {
    solver: &'static str,
    orders: usize,
    load_s: f64,
    candidates_s: f64,
    solve_s: f64,
    kpis: &'a plan::PlanKpis,
    #[serde(skip_serializing_if = "Option::is_none")]
    lp: Option<&'a plan::LpStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    greedy_comparison: Option<Comparison>,
    #[serde(skip_serializing_if = "Option::is_none")]
    shadow_prices: Option<&'a plan::ShadowPrices>,
    violations: Option<usize>,
}

/// The planner's settings: the routing rules, then `--peer-weights` and `--k`.
fn plan_config(a: &Args) -> anyhow::Result<PlanConfig> {
    let mut config = a.routing.rules()?.plan_config();
    if a.peer_weights {
        config.weights = plan::CostWeights::peer();
    }
    if let Some(k) = a.k {
        config.k = k;
    }
    config.validate().map_err(|e| anyhow::anyhow!("--k: {e}"))?;
    Ok(config)
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let config = plan_config(&a)?;
    anyhow::ensure!(
        !(a.monolithic && a.solver == SolverArg::Greedy),
        "--monolithic applies to --solver lp only"
    );
    let dir = a.dataset.dir();
    let (engine, load_s) = load_engine(&dir, optimizer::EngineConfig::default())?;
    let path = a.dataset.orders_path();
    let orders = read_orders(&path)?;
    anyhow::ensure!(!orders.is_empty(), "{}: no orders to plan", path.display());
    let now = orders.iter().map(Order::created_at).min().unwrap_or(Timestamp(0));
    let view = LedgerView { network: engine.network(), ledger: engine.ledger(), now };
    let cost = a.routing.travel_cost(&engine)?;
    let bar = Bar::new();
    let t = Instant::now();
    let planning = Planning::new(&engine, &view, &*cost, &orders, &config, &bar);
    let candidates_s = t.elapsed().as_secs_f64();
    if let Some(out) = &a.export_mcf {
        bar.finish();
        export_mcf(planning.instance(), out)?;
        eprintln!("wrote the min-cost-flow instance of {} orders to {}", orders.len(), out.display());
        return Ok(());
    }
    let solver = match a.solver {
        SolverArg::Greedy => Solver::Greedy,
        SolverArg::Lp => Solver::Lp,
    };
    let options = SolveOptions {
        solver,
        lp: lp::LpOptions {
            decompose: !a.monolithic,
            network: !a.highs_only,
            flow: a.flow.into(),
            ..lp::LpOptions::default()
        },
        compare_with_greedy: !a.no_compare,
        top_prices: a.top,
    };
    let t = Instant::now();
    let PlanOutcome { plan, report, greedy_comparison } = planning.solve(options, &bar)?;
    let solve_s = t.elapsed().as_secs_f64();
    bar.finish();
    let violations = a.check.then(|| {
        plan::validate::validate(engine.network(), &view, &orders, &report.assignments, &report.unfilled)
    });
    if let Some(out) = &a.out {
        let file = std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
        let mut w = std::io::BufWriter::new(file);
        #[derive(Serialize)]
        struct Out<'a> {
            #[serde(flatten)]
            report: &'a PlanReport,
            greedy_comparison: &'a Option<Comparison>,
        }
        serde_json::to_writer(&mut w, &Out { report: &report, greedy_comparison: &greedy_comparison })?;
        w.flush()?;
    }
    let summary = Summary {
        solver: plan.solver.as_str(),
        orders: orders.len(),
        load_s,
        candidates_s,
        solve_s,
        kpis: &report.kpis,
        lp: report.lp.as_ref(),
        greedy_comparison: greedy_comparison.clone(),
        shadow_prices: report.shadow_prices.as_ref(),
        violations: violations.as_ref().map(Vec::len),
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{}", table(&summary));
    }
    if let Some(v) = violations {
        if !v.is_empty() {
            for x in v.iter().take(20) {
                eprintln!("violation: {x}");
            }
            anyhow::bail!("the plan has {} violations", v.len());
        }
    }
    Ok(())
}

/// The summary: the plan's KPIs (with units, and what each share is a share of) first, then
/// the solver's internals, then shadow prices in words.
fn table(s: &Summary) -> String {
    let k = s.kpis;
    let pct = |x: f64| format!("{:.2}% of orders", x * 100.0);
    let mut rows: Vec<(&str, String)> = vec![
        ("orders", s.orders.to_string()),
        ("cost", format!("{:.3} (money units under the weights)", k.cost)),
        ("total distance", format!("{:.1} km over {} shipments", k.total_km, k.shipments)),
        ("fill rate", pct(k.fill_rate)),
        ("from stores", pct(k.store_share)),
        ("from DCs", pct(k.dc_share)),
        ("split", pct(k.split_rate)),
        ("unfilled", format!("{} orders", k.unfilled)),
        (
            "store utilisation",
            format!(
                "of capacity left: {} stores used, p50 {:.1}%, p90 {:.1}%, p99 {:.1}%, max {:.1}%; {} at capacity",
                k.utilization.stores_used,
                k.utilization.p50 * 100.0,
                k.utilization.p90 * 100.0,
                k.utilization.p99 * 100.0,
                k.utilization.max * 100.0,
                k.utilization.stores_at_capacity
            ),
        ),
        ("", String::new()),
        ("solver", s.solver.to_string()),
        ("load", format!("{:.2} s", s.load_s)),
        ("candidates", format!("{:.2} s", s.candidates_s)),
        ("solve", format!("{:.2} s", s.solve_s)),
    ];
    if let Some(lp) = s.lp {
        rows.push(("LP bound", format!("{:.3} (gap {:.4}%)", lp.lower_bound, lp.gap * 100.0)));
        rows.push((
            "presolve",
            format!("{} of {} orders fixed in {:.2} s", lp.fixed_by_presolve, lp.orders, lp.presolve_s),
        ));
        rows.push((
            "components",
            format!(
                "{} (largest {} orders), {} columns, {} rows, {} fractional orders",
                lp.components, lp.largest_component, lp.lp_columns, lp.lp_rows, lp.fractional_orders
            ),
        ));
    }
    if let Some(g) = &s.greedy_comparison {
        rows.push((
            "greedy",
            format!(
                "cost {:.3} ({:+.2}% vs this plan), DC share {}, {:.2} s",
                g.greedy_cost,
                g.greedy_excess * 100.0,
                pct(g.greedy_dc_share),
                g.greedy_s
            ),
        ));
    }
    if let Some(p) = s.shadow_prices {
        if !p.capacity.is_empty() || !p.stock.is_empty() {
            rows.push(("", String::new()));
        }
        for c in p.capacity.iter().take(3) {
            rows.push((
                "capacity price",
                format!(
                    "one more order of capacity at store {} would lower the plan's cost by {:.3}",
                    c.store_id, c.saving_per_order
                ),
            ));
        }
        for c in p.stock.iter().take(3) {
            rows.push((
                "stock price",
                format!(
                    "one more unit of SKU {} at store {} would lower the plan's cost by {:.3}",
                    c.sku, c.store_id, c.saving_per_unit
                ),
            ));
        }
    }
    if let Some(v) = s.violations {
        rows.push(("check", if v == 0 { "valid".to_string() } else { format!("{v} violations") }));
    }
    rows.iter().map(|(k, v)| if k.is_empty() { "\n".to_string() } else { format!("{k:<18} {v}\n") }).collect()
}

/// Writes a single-line instance as a min-cost-flow problem for the peer benchmark:
/// little-endian i64 `nodes, arcs`, then `tails[arcs], heads[arcs], capacities[arcs],
/// costs[arcs]` and `supplies[nodes]`. Costs are in micro-units (cost x 10^6, rounded).
/// Nodes: 0 sink, 1..=n orders, then cells, then stores.
fn export_mcf(inst: &Instance, path: &Path) -> anyhow::Result<()> {
    use optimizer::plan::OptKind;
    let n = inst.len();
    let cells = inst.cells();
    let order = |o: usize| 1 + o as i64;
    let cell = |r: usize| 1 + n as i64 + r as i64;
    let store = |s: usize| 1 + (n + cells) as i64 + s as i64;
    let nodes = 1 + n + cells + inst.store_count();
    let micro = |c: f64| (c * 1e6).round() as i64;
    let (mut tails, mut heads, mut caps, mut costs) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut arc = |t: i64, h: i64, cap: i64, cost: i64| {
        tails.push(t);
        heads.push(h);
        caps.push(cap);
        costs.push(cost);
    };
    for o in 0..n {
        let lines = inst.lines(o);
        anyhow::ensure!(
            lines.len() == 1 && lines[0].1 == 1,
            "--export-mcf needs single-line, one-unit orders (order #{o} has {} lines)",
            lines.len()
        );
        arc(order(o), 0, 1, micro(inst.fallback_cost(o)));
        for x in inst.options(o).iter().filter(|x| x.kind == OptKind::Whole) {
            let (s, k) = (optimizer::model::StoreIdx(x.store), optimizer::model::SkuIdx(lines[0].0));
            let r = inst.cell_row(s, k).expect("option cells are rows");
            arc(order(o), cell(r), 1, micro(x.cost));
        }
    }
    let bounds = inst.bounds();
    for (r, &b) in bounds[..cells].iter().enumerate() {
        arc(cell(r), store(inst.cell(r).0 .0 as usize), b as i64, 0);
    }
    for s in 0..inst.store_count() {
        arc(store(s), 0, bounds[inst.capacity_row(s as u32)] as i64, 0);
    }
    let mut supplies = vec![0i64; nodes];
    supplies[0] = -(n as i64);
    for o in 0..n {
        supplies[1 + o] = 1;
    }
    let mut w = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
    );
    for v in [nodes as i64, tails.len() as i64]
        .iter()
        .chain(&tails)
        .chain(&heads)
        .chain(&caps)
        .chain(&costs)
        .chain(&supplies)
    {
        w.write_all(&v.to_le_bytes())?;
    }
    w.flush()?;
    Ok(())
}

/// `--flow`: the min-cost flow solver of network components.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FlowArg {
    Auto,
    Paths,
    Simplex,
}

impl From<FlowArg> for lp::FlowSolver {
    fn from(f: FlowArg) -> Self {
        match f {
            FlowArg::Auto => lp::FlowSolver::Auto,
            FlowArg::Paths => lp::FlowSolver::ShortestPaths,
            FlowArg::Simplex => lp::FlowSolver::Simplex,
        }
    }
}
