//! `omniroute map`: layers (GeoJSON, kepler.gl configuration), a self-contained HTML map and
//! PNG/SVG pictures of a dataset's results: plans, a checkout replay, simulated scenarios.

use super::{DatasetArgs, RoutingArgs};
use crate::data::{self, read_orders};
use crate::map::{self, render, source, MapData};
use crate::progress::Bar;
use anyhow::Context;
use optimizer::router::Router;
use optimizer::sim::{self, CheckoutPolicy};
use optimizer::Engine;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub dataset: DatasetArgs,
    #[command(flatten)]
    pub routing: RoutingArgs,
    /// A plan of the order file, as `omniroute optimize --out` writes it; `NAME=FILE` names its
    /// view (default: the file's stem). Repeat for several plans.
    #[arg(long, value_name = "[NAME=]FILE")]
    pub plan: Vec<String>,
    /// Replay the order file through the checkout router (live stock) and map that; the default
    /// when no plan or simulation is given.
    #[arg(long)]
    pub replay: bool,
    /// A results folder of `omniroute simulate --out` over this dataset: one view per scenario,
    /// each compared with the baseline.
    #[arg(long, value_name = "DIR")]
    pub simulation: Option<PathBuf>,
    /// Write the layers here: one folder of GeoJSON per view and kepler.json.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Write the self-contained HTML map here.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Write a PNG picture of the map here, and the KPI charts beside it (<stem>.hourly.png,
    /// <stem>.distance.png, <stem>.comparison.png).
    #[arg(long, value_name = "FILE")]
    pub png: Option<PathBuf>,
    /// The same pictures as SVG.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
    /// The view the PNG/SVG map shows [default: the first].
    #[arg(long)]
    pub view: Option<String>,
    /// Side of the unfilled-demand grid cells, kilometres (north-south; cells are square in
    /// degrees).
    #[arg(long, default_value_t = 25.0)]
    pub grid_km: f64,
    /// The map's title [default: the dataset directory's name].
    #[arg(long)]
    pub title: Option<String>,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        a.out.is_some() || a.html.is_some() || a.png.is_some() || a.svg.is_some(),
        "nothing to write: give --out DIR, --html FILE, --png FILE or --svg FILE"
    );
    anyhow::ensure!(
        a.grid_km.is_finite() && a.grid_km >= 0.1 && a.grid_km <= 1000.0,
        "--grid-km must be between 0.1 and 1000 kilometres"
    );
    let rules = a.routing.rules()?;
    let dir = a.dataset.dir();
    let total = Instant::now();
    // Plans and simulations need the network and stock, not an engine (its indexes take longer to
    // build than a million-order plan takes to map); a replay builds one.
    let loaded = data::load_network(&dir).with_context(|| format!("loading dataset {}", dir.display()))?;
    let title = a.title.clone().unwrap_or_else(|| {
        dir.canonicalize()
            .ok()
            .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_default()
    });
    let mut map = MapData::new(&title, &loaded.network, a.grid_km);
    log::info!("loaded {} in {:.2} s", dir.display(), total.elapsed().as_secs_f64());

    let replay = a.replay || (a.plan.is_empty() && a.simulation.is_none());
    let needs_orders = replay || !a.plan.is_empty();
    let orders = if needs_orders {
        let t = Instant::now();
        let mut orders = read_orders(&a.dataset.orders_path())?;
        orders.sort_by(|x, y| x.created_at().cmp(&y.created_at()).then_with(|| x.id().cmp(y.id())));
        log::info!("read {} orders in {:.2} s", orders.len(), t.elapsed().as_secs_f64());
        orders
    } else {
        Vec::new()
    };
    for p in &a.plan {
        let (name, file) = match p.split_once('=') {
            Some((n, f)) if !n.is_empty() => (n.to_string(), PathBuf::from(f)),
            _ => {
                let f = PathBuf::from(p);
                (f.file_stem().map_or_else(|| "plan".into(), |s| s.to_string_lossy().into_owned()), f)
            }
        };
        let t = Instant::now();
        let view = source::plan_view(&map, &loaded.network, &loaded.stock, &orders, &file, &name)?;
        log::info!("plan {name}: {} orders mapped in {:.2} s", view.kpis.orders, t.elapsed().as_secs_f64());
        map.views.push(view);
    }
    if let Some(sim_dir) = &a.simulation {
        let t = Instant::now();
        source::add_simulation(&mut map, loaded.network.zone(), sim_dir)?;
        log::info!("mapped the scenarios of {} in {:.2} s", sim_dir.display(), t.elapsed().as_secs_f64());
    }
    if replay {
        let t = Instant::now();
        let engine = Engine::new(loaded.network, loaded.stock, optimizer::EngineConfig::default());
        for o in &orders {
            // SKUs the network lacks are learned (orders for them ship from DCs).
            let _ = engine.admit(o);
        }
        let router = Router::new(rules.router_config(), rules.travel_cost(engine.network().cities()));
        let before = source::empty_cells(&engine);
        let bar = Bar::new();
        let policy = CheckoutPolicy { ship_after_s: 0, abandon_share: 0.0, seed: 1 };
        let run = sim::replay(&engine, &router, &orders, &policy, &rules.plan_config(), &bar);
        bar.finish();
        let view = source::outcomes_view(&map, &engine, &orders, &run.outcomes, &before, "replay");
        log::info!("replayed and mapped {} orders in {:.2} s", orders.len(), t.elapsed().as_secs_f64());
        map.views.push(view);
    }
    let mut names = std::collections::BTreeSet::new();
    for v in &map.views {
        anyhow::ensure!(
            names.insert(v.name.clone()),
            "two results are named `{}`: name plans with NAME=FILE",
            v.name
        );
    }
    let view = match &a.view {
        Some(name) => map.views.iter().position(|v| &v.name == name).with_context(|| {
            let all: Vec<&str> = map.views.iter().map(|v| v.name.as_str()).collect();
            format!("--view {name}: no such result (there are: {})", all.join(", "))
        })?,
        None => 0,
    };

    let mut written = Vec::new();
    let t = Instant::now();
    if let Some(out) = &a.out {
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        written.extend(map::geojson::write(&map, out)?);
    }
    let layers_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    if let Some(html) = &a.html {
        let page = map::html::page(&map);
        std::fs::write(html, &page).with_context(|| format!("writing {}", html.display()))?;
        log::info!("HTML map: {:.1} MB", page.len() as f64 / 1e6);
        written.push(html.clone());
    }
    let html_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    if let Some(p) = &a.png {
        written.extend(render::write_all(&map, view, p, render::Format::Png)?);
    }
    if let Some(p) = &a.svg {
        written.extend(render::write_all(&map, view, p, render::Format::Svg)?);
    }
    log::info!(
        "wrote {} files: layers {layers_s:.2} s, HTML {html_s:.2} s, pictures {:.2} s; {:.2} s in all",
        written.len(),
        t.elapsed().as_secs_f64(),
        total.elapsed().as_secs_f64()
    );
    for f in written {
        println!("{}", f.display());
    }
    Ok(())
}
