//! HTTP load generator for `omniroute serve` (run from a second process on loopback).
//!
//! Sends ship orders taken from a dataset's orders.jsonl, each with a fresh order id, either one
//! per request (`/v1/orders/route`) or in batches (`/v1/orders/route-batch`), at a fixed rate or
//! as fast as the connections allow; or, with `--captures FILE` (poster tokens, one per line),
//! coupon captures (`/v1/coupons/capture`), each by a fresh customer; with `--coupons PREFIX`,
//! orders that redeem the best coupon of customer `PREFIX-<i>` (the customers a captures run
//! with `--prefix PREFIX` filled), each line priced. Latency is measured from each request's *scheduled* send
//! time, so a slow server cannot hide queueing (no coordinated omission).
//!
//! ```sh
//! cargo bench -p omniroute --bench load -- --url http://127.0.0.1:8080 --key KEY \
//!     --orders data/large/n180k/orders.jsonl --rate 20000 --duration 30
//! ```

use clap::Parser;
use hdrhistogram::Histogram;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
struct Args {
    /// Base URL of the service; several replicas comma-separated (requests go round-robin).
    #[arg(long, default_value = "http://127.0.0.1:8080", value_delimiter = ',')]
    url: Vec<String>,
    /// Bearer key with the checkout role.
    #[arg(long)]
    key: String,
    /// orders.jsonl to take customers and lines from (ship orders only are used).
    #[arg(long, required_unless_present = "captures")]
    orders: Option<std::path::PathBuf>,
    /// Capture coupons instead: poster tokens, one per line, taken in turn.
    #[arg(long, conflicts_with = "orders")]
    captures: Option<std::path::PathBuf>,
    /// Orders redeem `"best"` coupons of customers `<PREFIX>-<i>`, i counting from 0 (every
    /// line priced at 400.00).
    #[arg(long, requires = "orders")]
    coupons: Option<String>,
    /// Requests per second; 0 sends as fast as the connections allow.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Seconds to run.
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// Concurrent connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Orders per request; above 1 uses the batch endpoint.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Prefix of generated order ids (use a new one per run).
    #[arg(long, default_value = "load")]
    prefix: String,
    /// Criterion passes --bench; ignore it.
    #[arg(long, hide = true)]
    bench: bool,
}

/// Orders as JSON with the order id left out: `"created_at":...}`; with `priced`, each line
/// with a unit price.
fn templates(path: &std::path::Path, priced: bool) -> Vec<String> {
    let text = std::fs::read_to_string(path).expect("orders file");
    text.lines()
        .filter(|l| l.contains("\"mode\":\"ship\""))
        .take(200_000)
        .map(|l| {
            let rest = l.split_once(",\"created_at\"").expect("orders.jsonl line").1;
            let rest = if priced {
                rest.replace("},{\"sku\"", ",\"unit_price_cents\":40000},{\"sku\"")
                    .replace("}]", ",\"unit_price_cents\":40000}]")
            } else {
                rest.to_string()
            };
            format!("\"created_at\"{rest}")
        })
        .collect()
}

fn main() {
    let a = Args::parse();
    let (tpl, captures) = match (&a.orders, &a.captures) {
        (Some(orders), _) => {
            let tpl = templates(orders, a.coupons.is_some());
            assert!(!tpl.is_empty(), "no ship orders in {}", orders.display());
            (tpl, false)
        }
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path).expect("tokens file");
            let tokens: Vec<String> =
                text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
            assert!(!tokens.is_empty(), "no tokens in {}", path.display());
            (tokens, true)
        }
        (None, None) => unreachable!("clap requires one"),
    };
    let tpl = Rc::new(tpl);
    actix_rt::System::new().block_on(async move {
        let connector = awc::Connector::new().limit(a.connections);
        let client = awc::Client::builder().timeout(Duration::from_secs(30)).connector(connector).finish();
        let endpoint = if captures {
            "/v1/coupons/capture"
        } else if a.batch > 1 {
            "/v1/orders/route-batch"
        } else {
            "/v1/orders/route"
        };
        let urls: Rc<Vec<String>> = Rc::new(a.url.iter().map(|u| format!("{u}{endpoint}")).collect());
        let next = Rc::new(Cell::new(0u64));
        let hist = Rc::new(RefCell::new(Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).unwrap()));
        let errors = Rc::new(RefCell::new(std::collections::BTreeMap::<String, u64>::new()));
        let start = Instant::now();
        let stop = start + Duration::from_secs(a.duration);
        let mut tasks = Vec::new();
        for _ in 0..a.connections {
            let (client, urls, next, hist, errors, tpl) =
                (client.clone(), urls.clone(), next.clone(), hist.clone(), errors.clone(), tpl.clone());
            let (key, prefix, rate, batch) = (a.key.clone(), a.prefix.clone(), a.rate, a.batch);
            let coupons = a.coupons.clone();
            tasks.push(actix_rt::spawn(async move {
                loop {
                    let i = next.get();
                    next.set(i + 1);
                    let scheduled = if rate > 0 { start + Duration::from_secs_f64(i as f64 / rate as f64) } else { Instant::now() };
                    if scheduled >= stop {
                        break;
                    }
                    if let Some(wait) = scheduled.checked_duration_since(Instant::now()) {
                        actix_rt::time::sleep(wait).await;
                    }
                    let order = |k: u64| {
                        let n = i * batch as u64 + k;
                        let t = &tpl[(n % tpl.len() as u64) as usize];
                        match &coupons {
                            None => format!("{{\"order_id\":\"{prefix}-{n}\",{t}"),
                            Some(c) => format!(
                                "{{\"order_id\":\"{prefix}-{n}\",\"customer_id\":\"{c}-{n}\",\"coupons\":\"best\",{t}"
                            ),
                        }
                    };
                    let body = if captures {
                        format!("{{\"token\":\"{}\",\"customer_id\":\"{prefix}-{i}\"}}", tpl[(i % tpl.len() as u64) as usize])
                    } else if batch > 1 {
                        let orders: Vec<String> = (0..batch as u64).map(order).collect();
                        format!("{{\"orders\":[{}]}}", orders.join(","))
                    } else {
                        order(0)
                    };
                    let res = client
                        .post(urls[(i % urls.len() as u64) as usize].as_str())
                        .insert_header(("Authorization", format!("Bearer {key}")))
                        .insert_header(("Content-Type", "application/json"))
                        .send_body(body)
                        .await;
                    let outcome = match res {
                        Ok(mut r) => {
                            let ok = r.status().is_success();
                            let status = r.status().as_u16();
                            match r.body().limit(256 << 20).await {
                                Ok(_) if ok => None,
                                Ok(_) => Some(format!("HTTP {status}")),
                                Err(e) => Some(format!("body: {e}")),
                            }
                        }
                        Err(e) => Some(format!("send: {e}")),
                    };
                    match outcome {
                        None => {
                            let us = scheduled.elapsed().as_micros() as u64;
                            hist.borrow_mut().saturating_record(us.max(1));
                        }
                        Some(e) => *errors.borrow_mut().entry(e).or_default() += 1,
                    }
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
        let wall = start.elapsed().as_secs_f64();
        let h = hist.borrow();
        let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        let requests = h.len();
        println!(
            "endpoint={endpoint} batch={} rate={} connections={} duration={:.1}s ok_requests={} requests/s={:.0} orders/s={:.0} p50={:.2}ms p90={:.2}ms p99={:.2}ms p99.9={:.2}ms max={:.2}ms errors={:?}",
            a.batch,
            if a.rate == 0 { "max".to_string() } else { a.rate.to_string() },
            a.connections,
            wall,
            requests,
            requests as f64 / wall,
            (requests * a.batch as u64) as f64 / wall,
            ms(0.5),
            ms(0.9),
            ms(0.99),
            ms(0.999),
            h.max() as f64 / 1000.0,
            errors.borrow()
        );
    });
}
