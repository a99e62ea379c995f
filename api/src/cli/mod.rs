//! The `omniroute` command line.

mod bench;
mod db;
mod generate;
mod map;
mod optimize;
mod recommend;
mod replay;
mod route;
mod serve;
mod simulate;
mod state;

use crate::data;
pub use crate::settings::{CostModel, Routing};
use anyhow::Context;
use clap::{Parser, Subcommand};
use optimizer::travel::TravelCost;
use optimizer::{Engine, EngineConfig};
use std::path::{Path, PathBuf};

/// omniroute: geospatial order-fulfilment optimizer for ship-from-store and pickup.
#[derive(Debug, Parser)]
#[command(name = "omniroute", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate a synthetic store network and Singles' Day order stream.
    Generate(generate::Args),
    /// Route one order (JSON, as a line of orders.jsonl) and print the decision.
    Route(route::Args),
    /// Route a whole order stream in time order with live stock depletion; print KPIs.
    Replay(replay::Args),
    /// Measure routing throughput, latency, load time and memory against a naive baseline.
    Bench(bench::Args),
    /// Run the checkout HTTP service with durable state.
    Serve(serve::Args),
    /// Plan a wave of orders at least total cost (greedy or LP), with KPIs and shadow prices.
    Optimize(optimize::Args),
    /// Prepare a PostgreSQL + PostGIS database: migrate the schema, import a dataset.
    Db(db::Args),
    /// Check or copy the embedded store's state (operations).
    State(state::Args),
    /// Replay what-if scenarios (TOML) of a whole day in parallel and compare them with the first.
    Simulate(simulate::Args),
    /// Which orders moved between two simulation results (per-order diff).
    Diff(simulate::DiffArgs),
    /// Maps of results: GeoJSON layers, a self-contained HTML map, PNG/SVG pictures and charts.
    Map(map::Args),
    /// Magic Mirror recommendations: evaluate the models on a purchase history.
    Recommend(recommend::Args),
}

/// A dataset directory and an order file in it (or elsewhere).
#[derive(Debug, Clone, clap::Args)]
pub struct DatasetArgs {
    /// Dataset directory (default: the bundled sample).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Order file (default: orders.jsonl in the dataset directory).
    #[arg(long)]
    pub orders: Option<PathBuf>,
}

impl DatasetArgs {
    /// The dataset directory.
    pub fn dir(&self) -> PathBuf {
        self.data.clone().unwrap_or_else(default_data_dir)
    }
    /// The order file.
    pub fn orders_path(&self) -> PathBuf {
        self.orders.clone().unwrap_or_else(|| self.dir().join("orders.jsonl"))
    }
}

/// The routing rules shared by every command that routes or plans: a routing file, then flags
/// that override it (see [`Routing`] for the file and the defaults).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RoutingArgs {
    /// Routing rules as TOML: cost, ship_radius_km, pickup_radius_km, dc_fallback, allow_split,
    /// k and a [weights] table. Flags below override it.
    #[arg(long, value_name = "FILE")]
    pub routing: Option<PathBuf>,
    /// Travel-cost model for ETAs, promises and the planner's leg costs [default: hub].
    #[arg(long, value_enum)]
    pub cost: Option<CostModel>,
    /// Farthest a store may ship from, kilometres [default: 50].
    #[arg(long)]
    pub ship_radius_km: Option<f64>,
    /// Pickup orders: farthest an alternative store may be from the store the shopper named,
    /// kilometres, when that store cannot serve the order [default: 10].
    #[arg(long)]
    pub pickup_radius_km: Option<f64>,
    /// Ship orders no store can serve are unfulfillable instead of going to the nearest DC.
    #[arg(long)]
    pub no_dc_fallback: bool,
    /// Never split a multi-line order over several stores.
    #[arg(long)]
    pub no_split: bool,
}

impl RoutingArgs {
    /// The rules: defaults, then the routing file, then the flags. Errors name the flag or the
    /// file's line and key.
    pub fn rules(&self) -> anyhow::Result<Routing> {
        let mut r = match &self.routing {
            Some(p) => Routing::read(p)?,
            None => Routing::default(),
        };
        if let Some(c) = self.cost {
            r.cost = c;
        }
        if let Some(km) = self.ship_radius_km {
            anyhow::ensure!(
                km.is_finite() && km > 0.0,
                "--ship-radius-km must be a positive number of kilometres"
            );
            r.ship_radius_km = km;
        }
        if let Some(km) = self.pickup_radius_km {
            anyhow::ensure!(
                km.is_finite() && km >= 0.0,
                "--pickup-radius-km must be a number of kilometres, 0 or more (0: only the named store)"
            );
            r.pickup_radius_km = km;
        }
        r.dc_fallback &= !self.no_dc_fallback;
        r.allow_split &= !self.no_split;
        r.validate().map_err(|e| anyhow::anyhow!("routing rules: {e}"))?;
        Ok(r)
    }

    pub fn travel_cost(&self, engine: &Engine) -> anyhow::Result<Box<dyn TravelCost>> {
        Ok(self.rules()?.travel_cost(engine.network().cities()))
    }
}

/// Loads a dataset directory into an engine, naming the directory in errors; returns it with the
/// seconds it took.
fn load_engine(dir: &Path, config: EngineConfig) -> anyhow::Result<(Engine, f64)> {
    data::load_engine(dir, config).with_context(|| format!("loading dataset {}", dir.display()))
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    // Logs (RUST_LOG, default info) go to standard error; commands print results to standard output.
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        // Whatever a client sends that is not HTTP is answered 400 by actix, which also logs it at
        // ERROR: anyone could fill the log that way. Those are the client's errors, not ours.
        .filter_module("actix_http::h1::dispatcher", log::LevelFilter::Off)
        .init();
    match cli.command {
        Command::Generate(a) => generate::run(a),
        Command::Route(a) => route::run(a),
        Command::Replay(a) => replay::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Optimize(a) => optimize::run(a),
        Command::Db(a) => db::run(a),
        Command::State(a) => state::run(a),
        Command::Simulate(a) => simulate::run(a),
        Command::Diff(a) => simulate::diff(a),
        Command::Map(a) => map::run(a),
        Command::Recommend(a) => recommend::run(a),
    }
}

/// Default dataset: the bundled sample next to the binary's source tree or the working directory.
pub fn default_data_dir() -> PathBuf {
    let here = PathBuf::from("data/sample");
    if here.join("stores.csv").exists() {
        return here;
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/sample")
}
