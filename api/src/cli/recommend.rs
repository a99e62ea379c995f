//! `omniroute recommend evaluate`: every recommendation model against every baseline on a
//! time-based split of a purchase history.

use crate::progress::Bar;
use crate::recommend::eval::{evaluate, split, Report, Stock};
use crate::recommend::history::{self, Names};
use crate::recommend::model::{Model, NeighbourBlend, Params};
use crate::recommend::{Method, MAX_K};
use anyhow::Context;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Hold out each customer's last basket, train on the rest, and score every model.
    Evaluate(EvaluateArgs),
}

#[derive(Debug, clap::Args)]
pub struct EvaluateArgs {
    /// Dataset directory: its `history.csv`, and its stores and stock (lists hold only what a
    /// store can give).
    #[arg(long, default_value = "data/sample")]
    pub data: PathBuf,
    /// A history file from elsewhere instead of the dataset's (its SKUs and stores need not be
    /// the dataset's; with `--no-stock`, every item counts as available).
    #[arg(long)]
    pub history: Option<PathBuf>,
    /// Ignore stores and stock: every item is available everywhere.
    #[arg(long)]
    pub no_stock: bool,
    /// List length.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=MAX_K as i64))]
    pub k: u32,
    /// Methods to score (default: all).
    #[arg(long, value_delimiter = ',')]
    pub methods: Vec<Method>,
    /// Write the figures as JSON here too.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// TIFU-KNN: weight of the customer's own vector against her neighbours', 0 to 1.
    #[arg(long, default_value_t = Params::default().alpha)]
    pub alpha: f32,
    /// TIFU-KNN: nearest customers blended in.
    #[arg(long, default_value_t = Params::default().neighbours)]
    pub neighbours: usize,
    /// TIFU-KNN: baskets per group.
    #[arg(long, default_value_t = Params::default().group_size)]
    pub group_size: usize,
    /// TIFU-KNN: decay from basket to basket inside a group.
    #[arg(long, default_value_t = Params::default().within_decay)]
    pub within_decay: f32,
    /// TIFU-KNN: decay from group to group.
    #[arg(long, default_value_t = Params::default().group_decay)]
    pub group_decay: f32,
    /// Magic Mirror: weight of items bought with hers, added to TIFU-KNN's scores.
    #[arg(long, default_value_t = Params::default().bought_with)]
    pub bought_with: f32,
    /// TIFU-KNN: how the neighbours' part weighs an item (`bought`: the share of them who
    /// bought it; `tifu`: the mean of their vectors, as in the paper).
    #[arg(long, value_enum, default_value_t = Params::default().blend)]
    pub neighbour_blend: NeighbourBlend,
    /// Neighbour search: the customer's items probed.
    #[arg(long, default_value_t = Params::default().probe_items)]
    pub probe_items: usize,
    /// Neighbour search: customers read per probed item.
    #[arg(long, default_value_t = Params::default().probe_customers)]
    pub probe_customers: usize,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    match a.command {
        Command::Evaluate(e) => run_evaluate(e),
    }
}

fn check_params(a: &EvaluateArgs) -> anyhow::Result<Params> {
    let unit = |v: f32, name: &str| {
        anyhow::ensure!((0.0..=1.0).contains(&v), "--{name}: {v} is not between 0 and 1");
        Ok(())
    };
    unit(a.alpha, "alpha")?;
    unit(a.within_decay, "within-decay")?;
    unit(a.group_decay, "group-decay")?;
    anyhow::ensure!(
        (0.0..=100.0).contains(&a.bought_with),
        "--bought-with: {} is not between 0 and 100",
        a.bought_with
    );
    anyhow::ensure!(
        (1..=1_000).contains(&a.neighbours),
        "--neighbours: {} is not between 1 and 1000",
        a.neighbours
    );
    anyhow::ensure!(
        (1..=100).contains(&a.probe_items),
        "--probe-items: {} is not between 1 and 100",
        a.probe_items
    );
    anyhow::ensure!(
        (1..=10_000).contains(&a.probe_customers),
        "--probe-customers: {} is not between 1 and 10000",
        a.probe_customers
    );
    anyhow::ensure!(
        (1..=1_000).contains(&a.group_size),
        "--group-size: {} is not between 1 and 1000",
        a.group_size
    );
    Ok(Params {
        alpha: a.alpha,
        neighbours: a.neighbours,
        group_size: a.group_size,
        within_decay: a.within_decay,
        group_decay: a.group_decay,
        probe_items: a.probe_items,
        probe_customers: a.probe_customers,
        bought_with: a.bought_with,
        blend: a.neighbour_blend,
    })
}

fn run_evaluate(a: EvaluateArgs) -> anyhow::Result<()> {
    let params = check_params(&a)?;
    let methods = if a.methods.is_empty() { Method::ALL.to_vec() } else { a.methods.clone() };
    let path = a.history.clone().unwrap_or_else(|| a.data.join(history::FILE));
    anyhow::ensure!(
        path.exists(),
        "{}: no history file (generate one with `omniroute generate --customers N`)",
        path.display()
    );
    let t = std::time::Instant::now();
    let mut items = Names::default();
    let (h, store_city, cities, stock): (_, Vec<u32>, usize, Stock) = if a.no_stock {
        let mut stores = Names::default();
        let h = history::read(&path, |sku| Some(items.intern(sku)), |s| Some(stores.intern(s)))?;
        let n = stores.len();
        (h, vec![crate::recommend::model::NO_STORE; n], 0, None)
    } else {
        let loaded =
            crate::data::load_network(&a.data).with_context(|| format!("loading {}", a.data.display()))?;
        let net = &loaded.network;
        for sku in net.catalog().iter() {
            items.intern(sku.as_str());
        }
        let mut per: Vec<Vec<u32>> = vec![Vec::new(); net.stores().len()];
        for e in &loaded.stock {
            if e.on_hand > e.safety_stock {
                per[e.store.0 as usize].push(e.sku.0);
            }
        }
        for l in &mut per {
            l.sort_unstable();
        }
        let h = history::read(&path, |sku| Some(items.intern(sku)), |s| net.store_idx(s).map(|i| i.0))?;
        let store_city = net.stores().iter().map(|s| u32::from(s.city.0)).collect();
        (h, store_city, net.cities().len(), Some(per))
    };
    let read_s = t.elapsed().as_secs_f64();
    let customers = h.customers.len();
    let purchases = h.rows.len();
    let (train, truths) = split(h.rows);
    let trained_on = train.len();
    let bar = Bar::new();
    let t = std::time::Instant::now();
    let model = Model::train(train, customers, store_city, cities, params, &bar);
    let train_s = t.elapsed().as_secs_f64();
    let (reports, left_out) = evaluate(&model, &truths, &stock, items.len(), &methods, a.k as usize, &bar);
    bar.finish();
    let (_, peak_mib) = super::bench::rss_mib();
    println!(
        "{}: {purchases} purchases of {customers} customers, {} SKUs; read in {read_s:.1} s",
        path.display(),
        items.len()
    );
    println!(
        "trained on {trained_on} purchases in {train_s:.1} s; peak memory {peak_mib:.0} MiB; {} customers evaluated{}",
        truths.len() as u64 - left_out,
        if left_out > 0 { format!(" ({left_out} left out: no held-out item their store can give)") } else { String::new() }
    );
    let k = a.k;
    println!(
        "\n{:<14} {:>9} {:>9} {:>7} | {:>9} {:>9} {:>7} | {:>9} {:>9} {:>7} | {:>8} {:>6}",
        "method",
        format!("recall@{k}"),
        format!("ndcg@{k}"),
        "hit",
        "rep.rec",
        "rep.ndcg",
        "rep.hit",
        "new.rec",
        "new.ndcg",
        "new.hit",
        "coverage",
        "oos"
    );
    for r in &reports {
        println!(
            "{:<14} {:>9.4} {:>9.4} {:>7.4} | {:>9.4} {:>9.4} {:>7.4} | {:>9.4} {:>9.4} {:>7.4} | {:>8.4} {:>6.4}",
            r.method.name(),
            r.overall.recall,
            r.overall.ndcg,
            r.overall.hit_rate,
            r.repeat.recall,
            r.repeat.ndcg,
            r.repeat.hit_rate,
            r.new.recall,
            r.new.ndcg,
            r.new.hit_rate,
            r.coverage,
            r.out_of_stock
        );
    }
    let find = |m: Method| reports.iter().find(|r| r.method == m);
    if let (Some(f), Some(p)) = (find(Method::PTopFreq), find(Method::PopularStore)) {
        let ratio = |a: f64, b: f64| if b > 0.0 { format!("{:.2}x", a / b) } else { "n/a".to_string() };
        println!();
        for t in [find(Method::Mirror), find(Method::TifuKnn)].into_iter().flatten() {
            println!(
                "{} recall@{k}: {} p-topfreq (target 1.10x), {} popular-store (target 2x); on new items {} popular-store (target 2x)",
                t.method.name(),
                ratio(t.overall.recall, f.overall.recall),
                ratio(t.overall.recall, p.overall.recall),
                ratio(t.new.recall, p.new.recall),
            );
        }
    }
    if let Some(out) = &a.json {
        #[derive(serde::Serialize)]
        struct Out<'a> {
            history: String,
            purchases: usize,
            customers: usize,
            trained_on: usize,
            train_seconds: f64,
            peak_mib: f64,
            k: u32,
            params: Params,
            reports: &'a [Report],
        }
        let body = Out {
            history: path.display().to_string(),
            purchases,
            customers,
            trained_on,
            train_seconds: train_s,
            peak_mib,
            k,
            params,
            reports: &reports,
        };
        std::fs::write(out, serde_json::to_vec_pretty(&body)?)
            .with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}
