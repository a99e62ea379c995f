//! The checkout service: actix-web over the engine, with durable state behind [`Storage`].
//!
//! [`Application::build`] is the one place that wires everything together.

pub mod auth;
pub mod backend;
pub mod error;
pub mod metrics;
pub mod openapi;
pub mod orderbook;
pub mod plans;
pub mod routes;
pub mod state;

use crate::cli::{load_engine, CostModel};
use crate::storage::postgres::Postgres;
use crate::storage::{Embedded, Storage};
use actix_web::dev::{Server, Service};
use actix_web::{web, App, HttpResponse, HttpServer, ResponseError};
use anyhow::Context;
use auth::ApiKeys;
use backend::{Backend, CacheSink};
use error::ApiError;
use optimizer::ledger::LedgerConfig;
use optimizer::router::RouterConfig;
use optimizer::{Engine, EngineConfig};
use state::{AppState, Limits};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

/// Everything `omniroute serve` can be told.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub data: PathBuf,
    pub state_dir: PathBuf,
    /// PostgreSQL instead of the embedded store (`postgres://...`).
    pub database_url: Option<String>,
    /// Concurrent reservation transactions of this replica (PostgreSQL backend).
    pub db_batchers: usize,
    pub bind: String,
    pub keys: ApiKeys,
    pub router: RouterConfig,
    pub cost: CostModel,
    pub ledger: LedgerConfig,
    pub limits: Limits,
    /// How often held reservations are checked for expiry.
    pub expiry_every: Duration,
    /// HTTP worker threads (default: one per core).
    pub workers: Option<usize>,
}

/// A built, listening service.
pub struct Application {
    server: Server,
    addr: SocketAddr,
    state: web::Data<AppState>,
    expiry_every: Duration,
}

impl Application {
    /// Loads the network, opens and recovers state, binds the listener. Call inside an actix
    /// system (`actix_web::rt::System`).
    pub fn build(config: ServeConfig) -> anyhow::Result<Application> {
        let engine_config = EngineConfig { ledger: config.ledger, ..EngineConfig::default() };
        let state = match &config.database_url {
            None => {
                let (engine, load_s) = load_engine(&config.data, engine_config)?;
                let storage: Box<dyn Storage> = Box::new(
                    Embedded::open(&config.state_dir)
                        .with_context(|| format!("opening state in {}", config.state_dir.display()))?,
                );
                let state = web::Data::new(AppState::new(engine, &config, Backend::Embedded(storage)));
                let t = Instant::now();
                let (cells, orders) =
                    state.recover().map_err(|e| anyhow::anyhow!("recovering state: {e}"))?;
                log::info!(
                    "loaded {} stores from {} in {load_s:.2} s; recovered {cells} stock cells and {orders} orders from {} in {:.2} s",
                    state.engine.network().stores().len(),
                    config.data.display(),
                    config.state_dir.display(),
                    t.elapsed().as_secs_f64()
                );
                state
            }
            Some(url) => build_postgres(&config, url, engine_config)?,
        };
        let listener = TcpListener::bind(&config.bind).with_context(|| format!("binding {}", config.bind))?;
        let addr = listener.local_addr()?;
        let app_state = state.clone();
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(app_state.clone())
                .wrap_fn(|req, srv| {
                    let start = Instant::now();
                    let fut = srv.call(req);
                    async move {
                        let res = fut.await?;
                        if let Some(state) = res.request().app_data::<web::Data<AppState>>() {
                            let route = res.request().match_pattern().unwrap_or_else(|| "unmatched".into());
                            let method = res.request().method().as_str().to_owned();
                            state
                                .metrics
                                .http
                                .with_label_values(&[method.as_str(), route.as_str(), res.status().as_str()])
                                .observe(start.elapsed().as_secs_f64());
                        }
                        Ok(res)
                    }
                })
                .configure(routes_config)
        })
        .listen(listener)?
        .shutdown_timeout(30);
        if let Some(w) = config.workers {
            server = server.workers(w);
        }
        Ok(Application { server: server.run(), addr, state, expiry_every: config.expiry_every })
    }

    /// The address the service listens on (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until SIGINT/SIGTERM, then lets in-flight requests finish.
    pub async fn run(self) -> std::io::Result<()> {
        let state = self.state.clone();
        let every = self.expiry_every;
        actix_web::rt::spawn(async move {
            let mut tick = actix_web::rt::time::interval(every);
            loop {
                tick.tick().await;
                state.expire_due().await;
            }
        });
        let result = self.server.await;
        log::info!("stopped; every acknowledged write was already durable");
        result
    }
}

/// A replica over PostgreSQL: the network from the dataset, stock from the database (read after
/// LISTEN is in place, so no change is missed), then the notifications keep the cache fresh.
fn build_postgres(
    config: &ServeConfig,
    url: &str,
    engine_config: EngineConfig,
) -> anyhow::Result<web::Data<AppState>> {
    let t = Instant::now();
    let pg = Postgres::connect(url, config.db_batchers).map_err(|e| anyhow::anyhow!("{e}"))?;
    let sink = CacheSink::new();
    pg.listen(sink.callback()).map_err(|e| anyhow::anyhow!("listening for stock changes: {e}"))?;
    let cells = pg.stock_snapshot().map_err(|e| anyhow::anyhow!("reading stock: {e}"))?;
    let loaded = crate::data::load_network_with_stock(
        &config.data,
        cells.iter().map(|c| (c.store_id, c.sku, c.free, c.safety_stock)),
    )
    .with_context(|| {
        format!("loading the network of {} against the database's stock", config.data.display())
    })?;
    check_stores(&pg, &loaded.network, &config.data)?;
    let engine = Engine::new(loaded.network, loaded.stock, engine_config);
    for c in cells.iter().filter(|c| c.version > 0) {
        backend::sync_cell(&engine, c);
    }
    let state = web::Data::new(AppState::new(engine, config, Backend::Postgres(pg)));
    sink.go_live(&state.clone().into_inner());
    log::info!(
        "loaded {} stores from {} and {} stock cells from the database in {:.2} s",
        state.engine.network().stores().len(),
        config.data.display(),
        cells.len(),
        t.elapsed().as_secs_f64()
    );
    Ok(state)
}

/// The database must hold the dataset's stores, at the same places: the replica routes on the
/// dataset's network and reserves in the database by store id.
fn check_stores(
    pg: &Postgres,
    network: &optimizer::model::Network,
    data: &std::path::Path,
) -> anyhow::Result<()> {
    let import =
        || format!("import this dataset with `omniroute db import --data {} --replace`", data.display());
    let located = pg.store_locations().map_err(|e| anyhow::anyhow!("reading stores: {e}"))?;
    anyhow::ensure!(
        located.len() == network.stores().len(),
        "the database holds {} stores but {} has {}: {}",
        located.len(),
        data.display(),
        network.stores().len(),
        import()
    );
    for (id, lon, lat) in located {
        let same = network
            .store_idx(optimizer::model::StoreId(id))
            .map(|i| network.store(i).location)
            .is_some_and(|at| (at.lon() - lon).abs() < 1e-6 && (at.lat() - lat).abs() < 1e-6);
        anyhow::ensure!(
            same,
            "store {id} in the database is missing from {} or elsewhere: {}",
            data.display(),
            import()
        );
    }
    Ok(())
}

fn routes_config(cfg: &mut web::ServiceConfig) {
    use routes::{health, orders, plans, stock, stores};
    cfg.route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(health::metrics))
        .service(SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", openapi::ApiDoc::openapi()))
        .route(
            "/docs",
            web::get().to(|| async {
                HttpResponse::PermanentRedirect().insert_header(("Location", "/docs/")).finish()
            }),
        )
        .service(
            web::scope("/v1")
                .route("/orders/route", web::post().to(orders::route))
                .route("/orders/route-batch", web::post().to(orders::route_batch))
                .route("/orders/{order_id}", web::get().to(orders::get))
                .route("/orders/{order_id}/cancel", web::post().to(orders::cancel))
                .route("/orders/{order_id}/ship", web::post().to(orders::ship))
                .route("/stores/nearby", web::get().to(stores::nearby))
                .route("/stores/{store_id}", web::get().to(stores::get))
                .route("/stock", web::put().to(stock::put))
                .route("/stock/{store_id}/{sku}", web::get().to(stock::get))
                .route("/plans", web::post().to(plans::create))
                .route("/plans/{plan_id}", web::get().to(plans::get)),
        )
        .default_service(web::to(|| async {
            ApiError::NotFound { what: "route", field: None }.error_response()
        }));
}
