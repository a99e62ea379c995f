use super::{default_data_dir, load_engine, RoutingArgs};
use crate::data::order_json::parse_order;
use anyhow::Context;
use optimizer::router::Router;
use std::io::Read;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Dataset directory (default: the bundled sample).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// File with one order as JSON, or `-` for standard input.
    #[arg(long)]
    pub order: PathBuf,
    #[command(flatten)]
    pub routing: RoutingArgs,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let text = if a.order.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).context("reading the order from standard input")?;
        s
    } else {
        std::fs::read_to_string(&a.order).with_context(|| format!("reading {}", a.order.display()))?
    };
    let order = parse_order(text.trim()).map_err(|e| anyhow::anyhow!("invalid order: {e}"))?;
    let (engine, _) =
        load_engine(&a.data.unwrap_or_else(default_data_dir), optimizer::EngineConfig::default())?;
    anyhow::ensure!(
        engine.within_reach(order.customer()),
        "invalid order: field `customer`: more than {:.0} km from every store and DC of this network",
        engine.network().reach_m() / 1000.0
    );
    let mismatch =
        |e: optimizer::model::OrderMismatch| anyhow::anyhow!("invalid order: field `{}`: {e}", e.field());
    engine.admit(&order).map_err(mismatch)?;
    let rules = a.routing.rules()?;
    let router = Router::new(rules.router_config(), rules.travel_cost(engine.network().cities()));
    let decision = router.route(&engine, &order)?;
    println!("{}", serde_json::to_string_pretty(&decision.on(engine.network()))?);
    Ok(())
}
