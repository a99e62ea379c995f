use super::{default_data_dir, RoutingArgs};
use crate::server::auth::ApiKeys;
use crate::server::state::Limits;
use crate::server::{Application, ServeConfig};
use crate::service::{ServiceConfig, StorageConfig};
use anyhow::Context;
use optimizer::ledger::LedgerConfig;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Dataset directory (required, unless --dev serves the bundled sample).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Directory of the embedded durable state (created, with an empty state, if it holds none).
    #[arg(long, default_value = "state")]
    pub state: PathBuf,
    /// Start with a new, empty embedded state when the state file is empty or damaged (it is
    /// kept beside as `state.redb.damaged-<time>`). Without it, such a file stops the start-up.
    #[arg(long)]
    pub new_state: bool,
    /// Development mode: serve the bundled sample when --data is not given, and without keys
    /// print a generated admin key on standard error.
    #[arg(long)]
    pub dev: bool,
    /// PostgreSQL + PostGIS shared by several replicas, instead of the embedded store
    /// (`postgres://user@host:port/db`; prepare it with `omniroute db migrate` and `db import`).
    #[arg(long, env = "OMNIROUTE_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Reservation transactions this replica runs at once against the database (each folds the
    /// orders that queue meanwhile into one). Across all replicas, about the database's core
    /// count: 2 for one replica on a 2-core database, 1 each for three.
    #[arg(long, env = "OMNIROUTE_DB_BATCHERS", default_value_t = crate::storage::postgres::DEFAULT_BATCHERS as u16,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub db_batchers: u16,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub bind: String,
    /// File with `role:key` lines; otherwise OMNIROUTE_API_KEYS (comma-separated `role:key`);
    /// one of them is required unless --dev.
    #[arg(long)]
    pub api_keys_file: Option<PathBuf>,
    /// Seconds a reservation holds stock unless the order is shipped.
    #[arg(long, default_value_t = 900)]
    pub reservation_ttl_s: u32,
    /// Orders expected before the next restart: sizes the filter of answered order ids (16 bits
    /// each, at least 4 MiB) and makes room for as many reservation records at start, so that
    /// nothing grows during a peak; 0 sizes the filter for 2 M orders and grows the records on
    /// demand (only reservations that hold stock stay in memory).
    #[arg(long, default_value_t = 0)]
    pub expected_reservations: usize,
    /// Embedded store: each commit also saves the file's allocation state and commits in two
    /// phases, so that a start after a crash takes well under a second instead of a walk of the
    /// whole file (seconds per GB); each commit then costs a second fsync.
    #[arg(long)]
    pub quick_repair: bool,
    /// HTTP worker threads (default: one per core).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Plan jobs that may wait behind the running one; past it `POST /v1/plans` is 429.
    #[arg(long, default_value_t = Limits::default().max_queued_plans)]
    pub plan_queue: usize,
    /// Connections the kernel queues before the server accepts them.
    #[arg(long, default_value_t = Limits::default().listen_backlog)]
    pub listen_backlog: u32,
    /// Seconds a request's body may take to arrive (a slow sender is answered 408 after it).
    #[arg(long, default_value_t = Limits::default().body_timeout.as_secs(), value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub body_timeout_s: u64,
    /// NATS server with JetStream: consume stock feeds from `<prefix>.feeds.<brand>` and publish
    /// events to `<prefix>.events.>` (see ARCHITECTURE.md, "Broker").
    #[arg(long, env = "OMNIROUTE_NATS_URL")]
    pub nats_url: Option<String>,
    /// Root of the broker's subjects and stream names.
    #[arg(long, default_value = "omniroute")]
    pub nats_prefix: String,
    /// Do not consume stock feeds from the broker (events only).
    #[arg(long)]
    pub no_broker_feeds: bool,
    /// Do not write or publish events (stock feeds only).
    #[arg(long)]
    pub no_events: bool,
    /// Feed messages applied in one group commit at most.
    #[arg(long, default_value_t = 256)]
    pub nats_batch: usize,
    /// Events in one published message at most (consecutive events of one subject, as JSON lines).
    #[arg(long, default_value_t = 512)]
    pub events_per_message: usize,
    /// Coupon poster signing keys, `id:secret,...` (id 0-255, secret of 32+ characters; the last
    /// signs new posters, all verify). Without them posters and captures answer 501 (with
    /// --dev, a key is made up for the run).
    #[arg(long, env = "OMNIROUTE_COUPON_KEYS", hide_env_values = true)]
    pub coupon_keys: Option<String>,
    /// The page a poster's QR code opens (the shopper app's capture page); the token is appended.
    #[arg(long, default_value = crate::coupons::DEFAULT_CAPTURE_URL)]
    pub coupon_url: String,
    /// Coupon captures per customer per minute (0: no limit).
    #[arg(long, default_value_t = crate::coupons::limit::CaptureRate::default().per_customer_per_min)]
    pub captures_per_customer_per_min: u32,
    /// Coupon captures per client address per second (0: no limit).
    #[arg(long, default_value_t = crate::coupons::limit::CaptureRate::default().per_address_per_s)]
    pub captures_per_address_per_s: u32,
    #[command(flatten)]
    pub routing: RoutingArgs,
}

fn keys(a: &Args) -> anyhow::Result<ApiKeys> {
    if let Some(path) = &a.api_keys_file {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        return ApiKeys::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()));
    }
    if let Ok(text) = std::env::var("OMNIROUTE_API_KEYS") {
        return ApiKeys::parse(&text).map_err(|e| anyhow::anyhow!("OMNIROUTE_API_KEYS: {e}"));
    }
    anyhow::ensure!(
        a.dev,
        "no API keys: give --api-keys-file FILE or OMNIROUTE_API_KEYS (role:key,...), or --dev for a generated admin key"
    );
    let (keys, key) = ApiKeys::development();
    eprintln!("development mode, no API keys configured: admin key for this run: {key}");
    Ok(keys)
}

fn coupons(a: &Args) -> anyhow::Result<Option<crate::coupons::CouponConfig>> {
    use crate::coupons::token::KeyRing;
    let keys = match (&a.coupon_keys, a.dev) {
        (Some(spec), _) => KeyRing::parse(spec).map_err(|e| anyhow::anyhow!("--coupon-keys: {e}"))?,
        (None, true) => {
            let secret: String = (0..48).map(|_| char::from(b'a' + rand::random::<u8>() % 26)).collect();
            eprintln!("development mode: coupon posters are signed with a key made up for this run");
            KeyRing::new(&[(0, secret.as_bytes())]).expect("one key")
        }
        (None, false) => return Ok(None),
    };
    let public_url = a.coupon_url.trim_end_matches('/').to_string();
    anyhow::ensure!(!public_url.is_empty(), "--coupon-url must not be empty");
    let rate = crate::coupons::limit::CaptureRate {
        per_customer_per_min: a.captures_per_customer_per_min,
        per_address_per_s: a.captures_per_address_per_s,
    };
    Ok(Some(crate::coupons::CouponConfig { keys, public_url, rate }))
}

fn broker(a: &Args) -> anyhow::Result<Option<crate::broker::BrokerConfig>> {
    let Some(url) = &a.nats_url else { return Ok(None) };
    let config = crate::broker::BrokerConfig {
        url: url.clone(),
        prefix: a.nats_prefix.clone(),
        feeds: !a.no_broker_feeds,
        events: !a.no_events,
        batch: a.nats_batch,
        events_per_message: a.events_per_message,
    };
    config.check().map_err(anyhow::Error::msg)?;
    anyhow::ensure!(
        !(config.events && a.database_url.is_some()),
        "--nats-url with --database-url: events out need the embedded store; add --no-events to consume stock feeds only"
    );
    Ok(Some(config))
}

pub fn run(a: Args) -> anyhow::Result<()> {
    anyhow::ensure!(a.reservation_ttl_s > 0, "--reservation-ttl-s must be at least 1");
    let data = match (&a.data, a.dev) {
        (Some(d), _) => d.clone(),
        (None, true) => default_data_dir(),
        (None, false) => anyhow::bail!("--data DIR is required (or --dev to serve the bundled sample)"),
    };
    let storage = match &a.database_url {
        Some(url) => StorageConfig::Postgres { url: url.clone(), batchers: usize::from(a.db_batchers) },
        None => StorageConfig::Embedded {
            state_dir: a.state.clone(),
            new_state: a.new_state,
            quick_repair: a.quick_repair,
        },
    };
    let config = ServeConfig {
        service: ServiceConfig {
            data,
            routing: a.routing.rules()?,
            ledger: LedgerConfig {
                reservation_ttl_s: a.reservation_ttl_s,
                expected_reservations: a.expected_reservations,
            },
            storage,
        },
        bind: a.bind.clone(),
        keys: keys(&a)?,
        limits: Limits {
            listen_backlog: a.listen_backlog,
            body_timeout: Duration::from_secs(a.body_timeout_s),
            max_queued_plans: a.plan_queue,
            ..Limits::default()
        },
        expiry_every: Duration::from_secs(1),
        workers: a.workers,
        broker: broker(&a)?,
        coupons: coupons(&a)?,
    };
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(config)?;
        // Tests and scripts read this line to find the port.
        println!("listening on http://{}", app.addr());
        app.run().await.context("serving")
    })
}
