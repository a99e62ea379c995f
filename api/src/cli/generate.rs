use crate::data::{cities, write_dataset};
use crate::progress::Bar;
use anyhow::Context;
use optimizer::generate::{generate, GenConfig, LineMix};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Number of stores.
    #[arg(long, default_value_t = 2_000)]
    pub stores: usize,
    /// Number of SKUs in the catalogue.
    #[arg(long, default_value_t = 200)]
    pub skus: u32,
    /// Number of orders.
    #[arg(long, default_value_t = 10_000)]
    pub orders: usize,
    /// Random seed: the same seed gives the same files.
    #[arg(long, default_value_t = 11)]
    pub seed: u64,
    /// Average SKUs carried per store.
    #[arg(long, default_value_t = 100)]
    pub skus_per_store: u32,
    /// Lines per order: `mixed` (1 to 5) or a fixed number.
    #[arg(long, default_value = "mixed", value_parser = parse_lines)]
    pub lines: LineMix,
    /// Multiplies on-hand stock (randomized rounding); below 1 makes stock scarce and contested.
    #[arg(long, default_value_t = 1.0)]
    pub stock_scale: f64,
    /// Multiplies every store's daily capacity (randomized rounding, at least 1); below 1 makes
    /// capacity bind, as at a Singles' Day peak.
    #[arg(long, default_value_t = 1.0)]
    pub capacity_scale: f64,
    /// Largest quantity per order line, 1 to 3 (1 gives one-unit lines).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=3))]
    pub max_qty: u32,
    /// Share of pickup orders, 0 to 1.
    #[arg(long, default_value_t = 0.2)]
    pub pickup_share: f64,
    /// Number of distribution centres.
    #[arg(long, default_value_t = 8)]
    pub dcs: usize,
    /// Output directory.
    #[arg(long)]
    pub out: PathBuf,
    /// Name stores, SKUs, DCs and brands with text ids (`Köln-00042`, `SKU-00007`, `DC-00003`, `B-00012`)
    /// instead of their numbers.
    #[arg(long)]
    pub text_ids: bool,
    /// The dataset's own city list (a `cities.csv`, copied into the output): stores and orders
    /// are placed around these cities instead of the bundled Chinese ones.
    #[arg(long)]
    pub cities: Option<PathBuf>,
    /// The dataset's time zone (IANA name, written to `dataset.toml`); the sale day starts at
    /// its local midnight of November 11.
    #[arg(long)]
    pub time_zone: Option<String>,
    /// Customers of a purchase history (`history.csv`, the year before the sale day, with a
    /// planted structure: see ARCHITECTURE.md); 0 writes none.
    #[arg(long, default_value_t = 0)]
    pub customers: u32,
    /// Purchases of the history in all (about).
    #[arg(long, default_value_t = 0)]
    pub purchases: u64,
    /// Product categories (of `catalogue.csv` and the history's tastes).
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub categories: u32,
    /// Customer segments of the history (each with its own taste).
    #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub segments: u32,
}

fn parse_lines(s: &str) -> Result<LineMix, String> {
    if s == "mixed" {
        return Ok(LineMix::Mixed);
    }
    match s.parse::<u8>() {
        Ok(n @ 1..=50) => Ok(LineMix::Fixed(n)),
        _ => Err(format!("`{s}` is neither `mixed` nor a number of lines from 1 to 50")),
    }
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let cities = match &a.cities {
        Some(path) => cities::CityList::read(path)?.cities,
        None => cities::bundled(),
    };
    let zone = match &a.time_zone {
        Some(name) => crate::data::dataset::zone(name).map_err(|e| anyhow::anyhow!("--time-zone: {e}"))?,
        None => optimizer::model::TimeZone::china(),
    };
    // 2026-11-11T00:00 local time.
    let midnight_utc = 1_794_355_200;
    let day_start = optimizer::model::Timestamp(
        midnight_utc - i64::from(zone.offset_s(optimizer::model::Timestamp(midnight_utc))),
    );
    let cfg = GenConfig {
        text_ids: a.text_ids,
        day_start,
        stores: a.stores,
        skus: a.skus,
        orders: a.orders,
        seed: a.seed,
        skus_per_store: a.skus_per_store,
        lines: a.lines,
        pickup_share: a.pickup_share,
        max_qty: a.max_qty,
        stock_scale: a.stock_scale,
        capacity_scale: a.capacity_scale,
        dcs: a.dcs,
        ..GenConfig::default()
    };
    let bar = Bar::new();
    let data = generate(&cities, &cfg, &bar).context("invalid generator settings")?;
    write_dataset(&a.out, &data, &cities, &zone, &bar)?;
    let skus: Vec<optimizer::model::Sku> = (1..=a.skus).map(|k| data.sku(k)).collect();
    crate::data::prices::write(
        &a.out,
        skus.iter().map(|sku| (sku.clone(), crate::data::prices::generated_price(a.seed, sku))),
    )?;
    crate::recommend::history::write_catalogue(
        &a.out,
        skus.iter().enumerate().map(|(i, sku)| {
            let n = i as u32 + 1;
            let category = category_name(optimizer::generate::history::category(a.seed, a.categories, n));
            let product = crate::recommend::history::Product {
                name: format!("{category} {n}"),
                brand: format!("Brand {}", 1 + n % 997),
                category,
                unit_price_cents: crate::data::prices::generated_price(a.seed, sku),
            };
            (sku.as_str(), product)
        }),
    )?;
    let purchases = if a.customers > 0 { history(&a, &data, &skus, &cities, day_start, &bar)? } else { 0 };
    bar.finish();
    if let Some(path) = &a.cities {
        std::fs::copy(path, a.out.join("cities.csv"))
            .with_context(|| format!("copying {}", path.display()))?;
    }
    if let Some(name) = &a.time_zone {
        std::fs::write(a.out.join(crate::data::dataset::FILE), format!("time_zone = \"{name}\"\n"))
            .with_context(|| format!("writing {}", a.out.join(crate::data::dataset::FILE).display()))?;
    }
    eprintln!(
        "wrote {} stores, {} stock rows, {} DCs, {} orders and {purchases} purchases of {} customers to {}",
        data.stores.len(),
        data.stock.len(),
        data.dcs.len(),
        data.orders.len(),
        a.customers,
        a.out.display()
    );
    Ok(())
}

const CATEGORIES: [&str; 20] = [
    "Dairy",
    "Snacks",
    "Beverages",
    "Bakery",
    "Produce",
    "Frozen",
    "Household",
    "Beauty",
    "Baby",
    "Pet",
    "Apparel",
    "Shoes",
    "Electronics",
    "Toys",
    "Sports",
    "Books",
    "Kitchen",
    "Health",
    "Stationery",
    "Tea",
];

fn category_name(c: u32) -> String {
    let base = CATEGORIES[c as usize % CATEGORIES.len()];
    match c as usize / CATEGORIES.len() {
        0 => base.to_owned(),
        n => format!("{base} {}", n + 1),
    }
}

/// Writes the purchase history of `a.customers` customers; returns its number of purchases.
fn history(
    a: &Args,
    data: &optimizer::generate::Dataset,
    skus: &[optimizer::model::Sku],
    cities: &[optimizer::model::City],
    end: optimizer::model::Timestamp,
    bar: &Bar,
) -> anyhow::Result<u64> {
    use optimizer::generate::history::{history, HistoryConfig};
    let cfg = HistoryConfig {
        customers: a.customers,
        purchases: if a.purchases > 0 { a.purchases } else { u64::from(a.customers) * 20 },
        skus: a.skus,
        categories: a.categories,
        segments: a.segments,
        seed: a.seed,
        end,
    };
    let populations: Vec<u64> = cities.iter().map(|c| c.population).collect();
    let rows = history(&cfg, &data.stores, &populations, bar).context("invalid history settings")?;
    let width = a.customers.to_string().len().max(6);
    let names: Vec<String> = (1..=a.customers).map(|c| format!("C-{c:0width$}")).collect();
    crate::recommend::history::write(
        &a.out.join(crate::recommend::history::FILE),
        rows.iter().map(|p| crate::recommend::history::Written {
            customer: &names[p.customer as usize - 1],
            sku: skus[p.sku as usize - 1].as_str(),
            at: p.at.0,
            store: p.store.map(|s| data.stores[s as usize].id.as_str()),
        }),
    )?;
    Ok(rows.len() as u64)
}
