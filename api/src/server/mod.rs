//! The HTTP layer: actix-web over a [`Checkout`] service. Handlers authorise, parse, call the
//! service and render; they never name a storage backend.
//!
//! [`Application::build`] is the one place that wires everything together.

pub mod auth;
pub mod error;
pub mod openapi;
pub mod plans;
pub mod routes;
pub mod state;

use crate::service::{self, Checkout, ServiceConfig};
use actix_web::dev::{Server, Service};
use actix_web::{web, App, HttpResponse, HttpServer, ResponseError};
use anyhow::Context;
use auth::ApiKeys;
use error::ApiError;
use state::{AppState, Limits};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

/// Everything `omniroute serve` can be told.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Dataset, routing settings and storage.
    pub service: ServiceConfig,
    pub bind: String,
    pub keys: ApiKeys,
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
        let checkout: Arc<dyn Checkout> = service::open(&config.service)?;
        let state = web::Data::new(AppState::new(checkout, config.keys.clone(), config.limits));
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
                                .metrics()
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
                if let Err(e) = state.checkout().expire_due(service::now()).await {
                    log::error!("expiring reservations failed: {e}");
                }
            }
        });
        let result = self.server.await;
        log::info!("stopped; every acknowledged write was already durable");
        result
    }
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
