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
use actix_web::dev::{Server, Service, ServiceResponse};
use actix_web::http::{header, Method};
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers};
use actix_web::{web, App, HttpResponse, HttpServer, ResponseError};
use anyhow::Context;
use auth::ApiKeys;
use error::ApiError;
use state::{AppState, Limits};
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
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
    /// Stock feeds in and events out through NATS JetStream.
    pub broker: Option<crate::broker::BrokerConfig>,
    /// Poster signing keys; without them posters and captures answer 501.
    pub coupons: Option<crate::coupons::CouponConfig>,
}

/// How often each replica reads the managed keys from storage.
const KEY_REFRESH: Duration = Duration::from_secs(5);

/// A built, listening service.
pub struct Application {
    server: Server,
    addr: SocketAddr,
    state: web::Data<AppState>,
    expiry_every: Duration,
    broker: Option<crate::broker::BrokerConfig>,
}

impl Application {
    /// Binds the listener (so that a port in use is reported before anything loads), loads the
    /// network, opens and recovers state. Call inside an actix system (`actix_web::rt::System`).
    pub fn build(config: ServeConfig) -> anyhow::Result<Application> {
        let listener = bind(&config.bind, config.limits.listen_backlog)
            .with_context(|| format!("binding {}", config.bind))?;
        let addr = listener.local_addr()?;
        let checkout: Arc<dyn Checkout> = service::open(&config.service)?;
        if let Some(b) = config.broker.as_ref().filter(|b| b.events) {
            // Before the first request: every change from here on has its event.
            checkout.event_stream().map_err(|e| anyhow::anyhow!("--nats-url: {e}; add --no-events"))?;
            checkout.core().set_events(b.events);
        }
        let state = web::Data::new(
            AppState::new(checkout, config.keys.clone(), config.limits).with_coupons(config.coupons.clone()),
        );
        let app_state = state.clone();
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(app_state.clone())
                .app_data(web::PathConfig::default().error_handler(|e, _| {
                    ApiError::invalid("path", format!("the path could not be read: {e}")).into()
                }))
                .wrap(ErrorHandlers::new().default_handler(json_error_body))
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
        .client_request_timeout(config.limits.header_timeout)
        .shutdown_timeout(30);
        if let Some(w) = config.workers {
            server = server.workers(w);
        }
        Ok(Application {
            server: server.run(),
            addr,
            state,
            expiry_every: config.expiry_every,
            broker: config.broker,
        })
    }

    /// The address the service listens on (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until SIGINT/SIGTERM, then lets in-flight requests finish and closes the storage.
    pub async fn run(self) -> std::io::Result<()> {
        let state = self.state.clone();
        let every = self.expiry_every;
        let expiry = actix_web::rt::spawn(async move {
            let mut tick = actix_web::rt::time::interval(every);
            loop {
                tick.tick().await;
                if let Err(e) = state.checkout().expire_due(service::now()).await {
                    log::error!("expiring reservations failed: {e}");
                }
            }
        });
        // Keys managed over the API: every few seconds from storage, so that a key created or
        // revoked through another replica takes effect here too.
        let state = self.state.clone();
        let keys = actix_web::rt::spawn(async move {
            let mut tick = actix_web::rt::time::interval(KEY_REFRESH);
            loop {
                tick.tick().await;
                match routes::admin::load_keys(&state).await {
                    Ok(k) => state.keys().set_managed(k),
                    Err(e) => log::error!("reading the managed keys failed: {e}"),
                }
            }
        });
        let broker = self.broker.map(|b| actix_web::rt::spawn(crate::broker::run(b, self.state.clone())));
        let result = self.server.await;
        expiry.abort();
        keys.abort();
        let _ = expiry.await;
        let _ = keys.await;
        if let Some(b) = broker {
            b.abort();
            let _ = b.await;
        }
        close(self.state).await;
        log::info!("stopped; every acknowledged write was already durable");
        result
    }
}

/// Waits (up to 30 s) for the workers to let go of the state, then closes it on this thread: the
/// process must not end while another thread is still closing the storage (redb would find its
/// file not closed cleanly and walk all of it at the next start).
async fn close(state: web::Data<AppState>) {
    let mut state = state.into_inner();
    for _ in 0..3000 {
        match Arc::try_unwrap(state) {
            Ok(state) => {
                if !state.close() {
                    log::warn!("the checkout service is still in use at shutdown");
                }
                return;
            }
            Err(shared) => state = shared,
        }
        actix_web::rt::time::sleep(Duration::from_millis(10)).await;
    }
    log::warn!("the service's state was still in use 30 s after shutdown; not closed");
}

/// A listening socket with `backlog` pending connections (the standard library's bind uses 128).
fn bind(addr: &str, backlog: u32) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let addr: SocketAddr = addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address to bind"))?;
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    Ok(socket.into())
}

/// Gives every error response that carries no body of its own (errors raised by actix before
/// a handler runs) the API's JSON error shape.
fn json_error_body<B>(res: ServiceResponse<B>) -> actix_web::Result<ErrorHandlerResponse<B>> {
    if res.headers().contains_key(header::CONTENT_TYPE) {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let body = error::ErrorBody {
        code: error::code_for_status(status),
        message: status.canonical_reason().unwrap_or("error").to_lowercase(),
        field: None,
    };
    let (req, res) = res.into_parts();
    let mut out = HttpResponse::build(status);
    for (name, value) in res.headers() {
        if name != header::CONTENT_LENGTH {
            out.insert_header((name.clone(), value.clone()));
        }
    }
    let res = out.json(body);
    Ok(ErrorHandlerResponse::Response(ServiceResponse::new(req, res).map_into_right_body()))
}

/// A resource that answers `routes`; any other method is 405 `method_not_allowed` with an
/// `Allow` header naming the methods it answers.
fn resource(path: &str, routes: Vec<(Method, actix_web::Route)>) -> actix_web::Resource {
    let allow = routes.iter().map(|(m, _)| m.as_str()).collect::<Vec<_>>().join(", ");
    let mut r = web::resource(path);
    for (_, route) in routes {
        r = r.route(route);
    }
    r.default_service(web::to(move || {
        let allow = allow.clone();
        async move { ApiError::MethodNotAllowed { allow }.error_response() }
    }))
}

/// GET and HEAD by the same handler.
fn get<F, Args>(handler: F) -> Vec<(Method, actix_web::Route)>
where
    F: actix_web::Handler<Args> + Clone,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    vec![(Method::GET, web::get().to(handler.clone())), (Method::HEAD, web::head().to(handler))]
}

fn routes_config(cfg: &mut web::ServiceConfig) {
    use routes::{
        admin, campaigns, coupons, health, map, orders, plans, recommend, simulations, stock, stores,
    };
    cfg.service(resource("/healthz", get(health::healthz)))
        .service(resource("/readyz", get(health::readyz)))
        .service(resource("/metrics", get(health::metrics)))
        .service(resource("/map", get(map::page)))
        .service(SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", openapi::ApiDoc::openapi()))
        .route(
            "/docs",
            web::get().to(|| async {
                HttpResponse::PermanentRedirect().insert_header(("Location", "/docs/")).finish()
            }),
        )
        .service(
            web::scope("/v1")
                .service(resource("/orders/route", vec![(Method::POST, web::post().to(orders::route))]))
                .service(resource(
                    "/orders/route-batch",
                    vec![(Method::POST, web::post().to(orders::route_batch))],
                ))
                .service(resource("/orders/{order_id}", get(orders::get)))
                .service(resource(
                    "/orders/{order_id}/cancel",
                    vec![(Method::POST, web::post().to(orders::cancel))],
                ))
                .service(resource(
                    "/orders/{order_id}/ship",
                    vec![(Method::POST, web::post().to(orders::ship))],
                ))
                .service(resource("/stores/nearby", get(stores::nearby)))
                .service(resource("/stores/{store_id}", get(stores::get)))
                .service(resource("/stores/{store_id}/recommendations", get(recommend::list)))
                .service(resource(
                    "/stores/{store_id}/scan",
                    vec![(Method::POST, web::post().to(recommend::scan))],
                ))
                .service(resource(
                    "/customers/{customer_id}/token",
                    vec![(Method::POST, web::post().to(recommend::token))],
                ))
                .service(resource("/stock", vec![(Method::PUT, web::put().to(stock::put))]))
                .service(resource("/stock/{store_id}/{sku}", get(stock::get)))
                .service(resource("/audit/stock", get(stock::audit)))
                .service(resource("/plans", vec![(Method::POST, web::post().to(plans::create))]))
                .service(resource("/plans/{plan_id}", get(plans::get)))
                .service(resource("/simulations", vec![(Method::POST, web::post().to(simulations::create))]))
                .service(resource("/simulations/{simulation_id}", get(simulations::get)))
                .service(resource("/map/data", get(map::data)))
                .service(resource(
                    "/admin/keys",
                    vec![
                        (Method::POST, web::post().to(admin::create_key)),
                        (Method::GET, web::get().to(admin::list_keys)),
                        (Method::HEAD, web::head().to(admin::list_keys)),
                    ],
                ))
                .service(resource(
                    "/admin/keys/{key_id}/revoke",
                    vec![(Method::POST, web::post().to(admin::revoke_key))],
                ))
                .service(resource(
                    "/admin/keys/{key_id}/rotate",
                    vec![(Method::POST, web::post().to(admin::rotate_key))],
                ))
                .service(resource("/admin/backup", vec![(Method::POST, web::post().to(admin::backup))]))
                .service(resource(
                    "/campaigns",
                    vec![
                        (Method::POST, web::post().to(campaigns::create)),
                        (Method::GET, web::get().to(campaigns::list)),
                        (Method::HEAD, web::head().to(campaigns::list)),
                    ],
                ))
                .service(resource("/campaigns/{campaign_id}", get(campaigns::get)))
                .service(resource(
                    "/campaigns/{campaign_id}/pause",
                    vec![(Method::POST, web::post().to(campaigns::pause))],
                ))
                .service(resource(
                    "/campaigns/{campaign_id}/resume",
                    vec![(Method::POST, web::post().to(campaigns::resume))],
                ))
                .service(resource(
                    "/campaigns/{campaign_id}/end",
                    vec![(Method::POST, web::post().to(campaigns::end))],
                ))
                .service(resource("/campaigns/{campaign_id}/posters/{poster}", get(campaigns::poster)))
                .service(resource("/campaigns/{campaign_id}/stats", get(campaigns::stats)))
                .service(resource("/coupons/capture", vec![(Method::POST, web::post().to(coupons::capture))]))
                .service(resource("/coupons/keys", get(coupons::public_keys)))
                .service(resource("/customers/{customer_id}/wallet", get(coupons::wallet))),
        )
        .default_service(web::to(|| async {
            ApiError::NotFound { what: "route", field: None }.error_response()
        }));
}
