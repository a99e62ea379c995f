//! `omniroute db`: prepare a PostgreSQL + PostGIS database for `serve --database-url`.

use super::default_data_dir;
use crate::data;
use crate::progress::Bar;
use crate::storage::postgres::import::{connect, import, migrate};
use anyhow::Context;
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
    Migrate {
        /// Stop after this version (for a staged upgrade, or to test one); default: all.
        #[arg(long, value_name = "VERSION")]
        to: Option<u32>,
    },
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
        let to = match a.command {
            DbCommand::Migrate { to } => to,
            DbCommand::Import { .. } => None,
        };
        let applied = migrate(&mut client, to).await?;
        if applied.is_empty() {
            eprintln!("schema is up to date");
        } else {
            eprintln!("applied migrations: {}", applied.join(", "));
        }
        let DbCommand::Import { data, replace } = a.command else { return Ok(()) };
        let dir = data.unwrap_or_else(default_data_dir);
        let t = Instant::now();
        let loaded =
            data::load_network(&dir).with_context(|| format!("loading dataset {}", dir.display()))?;
        eprintln!(
            "read {} stores and {} stock rows from {} in {:.1} s",
            loaded.network.stores().len(),
            loaded.stock.len(),
            dir.display(),
            t.elapsed().as_secs_f64()
        );
        let regions = data::regions::Regions::load(&dir, &loaded.network)
            .with_context(|| format!("loading dataset {}", dir.display()))?;
        let bar = Bar::new();
        let done = import(&mut client, loaded, &regions, replace, &bar).await;
        bar.finish();
        let done = done?;
        eprintln!(
            "imported {} stores in {} regions and {} stock rows in {:.1} s; restart running replicas to load them",
            done.stores,
            regions.count(),
            done.stock_rows,
            t.elapsed().as_secs_f64()
        );
        Ok(())
    })
}
