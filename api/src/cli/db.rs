//! `omniroute db`: prepare a PostgreSQL + PostGIS database for `serve --database-url`.

use super::default_data_dir;
use crate::data;
use crate::progress::Bar;
use crate::storage::postgres::{connect, migrate};
use anyhow::Context;
use bytes::Bytes;
use futures_util::SinkExt;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The database (`postgres://user@host:port/db`).
    #[arg(long, env = "OMNIROUTE_DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    #[command(subcommand)]
    pub command: DbCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum DbCommand {
    /// Apply the schema migrations that are missing (PostGIS, tables, functions).
    Migrate,
    /// Load a dataset's stores and stock (migrating first), with COPY.
    Import {
        /// Dataset directory (default: the bundled sample).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Wipe stores, stock, orders and reservations already in the database.
        #[arg(long)]
        replace: bool,
    },
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let url = a.database_url.context("--database-url (or OMNIROUTE_DATABASE_URL) is required")?;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(async move {
        let mut client = connect(&url).await?;
        let applied = migrate(&mut client).await?;
        if applied.is_empty() {
            eprintln!("schema is up to date");
        } else {
            eprintln!("applied migrations: {}", applied.join(", "));
        }
        match a.command {
            DbCommand::Migrate => Ok(()),
            DbCommand::Import { data, replace } => {
                import(&mut client, data.unwrap_or_else(default_data_dir), replace).await
            }
        }
    })
}

/// Rows per COPY message.
const ROWS_PER_CHUNK: usize = 20_000;

async fn import(client: &mut tokio_postgres::Client, dir: PathBuf, replace: bool) -> anyhow::Result<()> {
    let t = Instant::now();
    let loaded = data::load_network(&dir).with_context(|| format!("loading dataset {}", dir.display()))?;
    let net = &loaded.network;
    eprintln!(
        "read {} stores and {} stock rows from {} in {:.1} s",
        net.stores().len(),
        loaded.stock.len(),
        dir.display(),
        t.elapsed().as_secs_f64()
    );
    let tx = client.transaction().await?;
    let existing: i64 = tx.query_one("SELECT count(*) FROM stores", &[]).await?.get(0);
    if existing > 0 && !replace {
        anyhow::bail!(
            "the database already holds {existing} stores; pass --replace to wipe its stores, stock, orders and reservations"
        );
    }
    // Bulk load: no per-row notifications (replicas restart after an import), indexes built once.
    tx.batch_execute(
        "TRUNCATE stores, stock, store_days, reservations, orders;
         ALTER TABLE stock DISABLE TRIGGER stock_notify_insert;
         ALTER TABLE stores DISABLE TRIGGER stores_notify;
         ALTER TABLE stock DROP CONSTRAINT stock_pkey;
         DROP INDEX stock_sku;",
    )
    .await?;

    let bar = Bar::new();
    bar.bar().set_message("stores");
    bar.bar().set_length(net.stores().len() as u64);
    let sink = tx
        .copy_in("COPY stores (store_id, brand, city, geom, pickup, ship, capacity_per_day, opens_min, closes_min) FROM STDIN WITH (FREEZE)")
        .await?;
    futures_util::pin_mut!(sink);
    for chunk in net.stores().chunks(ROWS_PER_CHUNK) {
        let mut text = String::with_capacity(chunk.len() * 96);
        for s in chunk {
            let city = &net.cities()[usize::from(s.city.0)].name;
            writeln!(
                text,
                "{}\t{}\t{}\tSRID=4326;POINT({} {})\t{}\t{}\t{}\t{}\t{}",
                s.id,
                s.brand,
                city.replace(['\t', '\n', '\\'], " "),
                s.location.lon(),
                s.location.lat(),
                s.capabilities.pickup,
                s.capabilities.ship,
                s.capacity_per_day,
                s.hours.opens_min,
                s.hours.closes_min
            )?;
        }
        sink.send(Bytes::from(text)).await?;
        bar.bar().inc(chunk.len() as u64);
    }
    sink.finish().await?;

    // The last row of a repeated (store, SKU) wins, as when the service loads the files.
    let mut stock = loaded.stock;
    stock.sort_by_key(|r| (r.store, r.sku));
    let rows: Vec<_> = stock
        .chunk_by(|a, b| (a.store, a.sku) == (b.store, b.sku))
        .map(|g| *g.last().expect("chunks are not empty"))
        .collect();
    bar.bar().set_message("stock");
    bar.bar().set_length(rows.len() as u64);
    bar.bar().set_position(0);
    let sink =
        tx.copy_in("COPY stock (store_id, sku, on_hand, safety_stock) FROM STDIN WITH (FREEZE)").await?;
    futures_util::pin_mut!(sink);
    for chunk in rows.chunks(ROWS_PER_CHUNK) {
        let mut text = String::with_capacity(chunk.len() * 24);
        for r in chunk {
            let (store, sku) = (net.store(r.store).id, net.catalog().sku(r.sku));
            writeln!(text, "{store}\t{sku}\t{}\t{}", r.on_hand, r.safety_stock)?;
        }
        sink.send(Bytes::from(text)).await?;
        bar.bar().inc(chunk.len() as u64);
    }
    sink.finish().await?;
    bar.bar().set_message("indexes");
    tx.batch_execute(
        "ALTER TABLE stock ADD PRIMARY KEY (store_id, sku);
         CREATE INDEX stock_sku ON stock (sku, store_id);
         ALTER TABLE stock ENABLE TRIGGER stock_notify_insert;
         ALTER TABLE stores ENABLE TRIGGER stores_notify;",
    )
    .await?;
    tx.commit().await?;
    client.batch_execute("ANALYZE stores; ANALYZE stock;").await?;
    bar.finish();
    eprintln!(
        "imported {} stores and {} stock rows in {:.1} s; restart running replicas to load them",
        net.stores().len(),
        rows.len(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
