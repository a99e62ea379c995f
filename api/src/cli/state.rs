//! `omniroute state`: check and copy the embedded store's state file.

use crate::storage::embedded::{backup_file, verify_file, StateSummary, STATE_FILE};
use anyhow::Context;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: StateCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum StateCommand {
    /// Check a state that no server has open (a stopped service's, or a backup): redb's
    /// integrity check, every record decoded and, with --data, the dataset it belongs to.
    /// Exits non-zero on any problem.
    Verify {
        /// The state directory (`serve --state`).
        #[arg(long, conflicts_with = "file")]
        state: Option<PathBuf>,
        /// A state file, such as a backup.
        #[arg(long)]
        file: Option<PathBuf>,
        /// The dataset the state should belong to.
        #[arg(long)]
        data: Option<PathBuf>,
    },
    /// Write a consistent copy of a state. With --url, of a running server's state, written by the
    /// server under its state directory (`backups/`; needs an admin key); with --state, of a
    /// stopped service's state, written to --out.
    Backup {
        /// A stopped service's state directory.
        #[arg(long, conflicts_with = "url", requires = "out")]
        state: Option<PathBuf>,
        /// Where the copy goes (with --state).
        #[arg(long)]
        out: Option<PathBuf>,
        /// A running server (`http://host:port`).
        #[arg(long)]
        url: Option<String>,
        /// An admin key for --url.
        #[arg(long, env = "OMNIROUTE_ADMIN_KEY", hide_env_values = true)]
        key: Option<String>,
    },
}

fn print(what: &str, s: &StateSummary) {
    println!(
        "{what}: {} stock cells, {} reservations, {} answered orders; dataset {}",
        s.cells,
        s.reservations,
        s.orders,
        s.dataset.as_deref().unwrap_or("not recorded")
    );
}

fn state_file(dir: Option<PathBuf>, file: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match (dir, file) {
        (Some(d), _) => Ok(d.join(STATE_FILE)),
        (None, Some(f)) => Ok(f),
        (None, None) => anyhow::bail!("give --state DIR or --file FILE"),
    }
}

pub fn run(a: Args) -> anyhow::Result<()> {
    match a.command {
        StateCommand::Verify { state, file, data } => {
            let path = state_file(state, file)?;
            let summary = verify_file(&path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            print(&format!("{} is sound", path.display()), &summary);
            if let Some(dir) = data {
                let loaded = crate::data::load_network(&dir)
                    .with_context(|| format!("loading dataset {}", dir.display()))?;
                let want = crate::data::fingerprint(&loaded.network);
                match &summary.dataset {
                    Some(got) if *got == want => println!("it belongs to the dataset in {}", dir.display()),
                    Some(_) => {
                        anyhow::bail!("{} belongs to another dataset than {}", path.display(), dir.display())
                    }
                    None => {
                        println!("it does not record its dataset (written before datasets were recorded)")
                    }
                }
            }
            Ok(())
        }
        StateCommand::Backup { state: Some(dir), out: Some(out), .. } => {
            let from = dir.join(STATE_FILE);
            let summary = backup_file(&from, &out).map_err(|e| anyhow::anyhow!("{}: {e}", from.display()))?;
            print(&format!("copied {} to {}", from.display(), out.display()), &summary);
            Ok(())
        }
        StateCommand::Backup { url: Some(url), key, .. } => {
            let key = key.context("--key (or OMNIROUTE_ADMIN_KEY) is required with --url")?;
            let url = format!("{}/v1/admin/backup", url.trim_end_matches('/'));
            let body = actix_web::rt::System::new().block_on(async move {
                let client = awc::Client::builder().timeout(std::time::Duration::from_secs(3600)).finish();
                let mut res = client
                    .post(&url)
                    .insert_header(("Authorization", format!("Bearer {key}")))
                    .send()
                    .await
                    .map_err(|e| anyhow::anyhow!("{url}: {e}"))?;
                let body = res.body().await.map_err(|e| anyhow::anyhow!("{url}: {e}"))?;
                anyhow::ensure!(
                    res.status().is_success(),
                    "{url}: {} {}",
                    res.status(),
                    String::from_utf8_lossy(&body)
                );
                Ok::<_, anyhow::Error>(body)
            })?;
            println!("{}", String::from_utf8_lossy(&body));
            Ok(())
        }
        StateCommand::Backup { .. } => {
            anyhow::bail!("give --url URL (a running server) or --state DIR --out FILE")
        }
    }
}
