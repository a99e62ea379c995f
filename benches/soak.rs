//! Soak driver for `omniroute serve`: mixed load (routes, ships, cancels, stock feeds, reads)
//! interrupted by failures, with every acknowledged write checked afterwards.
//!
//! Modes:
//! - `kill`: the embedded store; each cycle restarts the server, verifies, runs load and sends
//!   the server `kill -9` at a random moment of it.
//! - `pg`: a PostgreSQL server; the service keeps running while each cycle stops the database
//!   with `--pg-stop` (an immediate stop) at a random moment of the load, starts it again with
//!   `--pg-start`, waits until routes succeed again and verifies.
//! - `memory`: the embedded store under load for `--seconds`, the server's resident memory
//!   sampled every 10 s, verified every `--verify-every` seconds.
//!
//! What "verified" means: every acknowledged route reads back with the decision it was answered;
//! every acknowledged ship or cancel reads back in that state; a refused route is unknown; the
//! stock feeds that applied are exactly the acknowledged ones (plus at most the one in flight at
//! the failure, resolved by a marker cell each feed sets to its sequence number), and refused
//! feeds left nothing behind; and for every stock cell
//! `on_hand = initial + applied deltas - shipped`, `reserved = Σ held`, safety stock unchanged and
//! `available = max(0, on_hand - reserved - safety)`. A route, ship or cancel found done although
//! its answer was lost is sent again, as a client would, and must answer the same without
//! reserving or shipping twice. Any difference is printed and the driver exits with status 1.
//! `benches/soak.sh` prepares the dataset (and the database) and runs it.

use clap::{Parser, ValueEnum};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, ValueEnum)]
enum Mode {
    Kill,
    Pg,
    Memory,
}

#[derive(Parser, Debug)]
struct Args {
    #[arg(long, value_enum)]
    mode: Mode,
    /// The omniroute binary.
    #[arg(long)]
    bin: PathBuf,
    /// Dataset directory (stock.csv and orders.jsonl are read from it).
    #[arg(long)]
    data: PathBuf,
    /// State directory of the embedded store (kill and memory modes).
    #[arg(long, default_value = "soak-state")]
    state: PathBuf,
    /// More arguments for `omniroute serve` (repeat for each), such as `--quick-repair`.
    #[arg(long, allow_hyphen_values = true)]
    server_arg: Vec<String>,
    /// Database the service uses (pg mode; imported beforehand with `omniroute db import`).
    #[arg(long)]
    database_url: Option<String>,
    /// Shell command that stops the database at once (pg mode).
    #[arg(long)]
    pg_stop: Option<String>,
    /// Shell command that starts the database again (pg mode).
    #[arg(long)]
    pg_start: Option<String>,
    /// Failures to inject (kill and pg modes).
    #[arg(long, default_value_t = 100)]
    cycles: u32,
    /// Longest load before a failure (kill, pg), or the whole run (memory), seconds.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Concurrent load connections.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Operations per second; 0 runs as fast as the connections allow.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Seconds between verifications (memory mode).
    #[arg(long, default_value_t = 120.0)]
    verify_every: f64,
    /// Held orders above which the load ships or cancels instead of routing.
    #[arg(long, default_value_t = 3000)]
    max_held: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Criterion passes --bench; ignore it.
    #[arg(long, hide = true)]
    bench: bool,
}

const KEY: &str = "soak-admin-key-0123456789";

type CellKey = (String, String);

#[derive(Clone, Copy, Debug, PartialEq)]
enum Finish {
    Ship,
    Cancel,
}

impl Finish {
    fn path(self) -> &'static str {
        match self {
            Finish::Ship => "ship",
            Finish::Cancel => "cancel",
        }
    }
    fn state(self) -> &'static str {
        match self {
            Finish::Ship => "committed",
            Finish::Cancel => "released",
        }
    }
}

/// What the client knows of a write: answered with success, refused with a 4xx, or not known
/// (the connection failed, a 5xx or the process died before the answer).
#[derive(Clone, Debug, PartialEq)]
enum Known<T> {
    Acked(T),
    Refused(u16),
    Unknown,
}

#[derive(Debug)]
struct OrderRec {
    /// The acknowledged decision's shipments and unfulfilled lines, as JSON text (the rest of
    /// a decision, its explanation, is large and not kept).
    route: Known<String>,
    /// Store stock the decision holds.
    cells: Vec<(CellKey, i64)>,
    finish: Option<(Finish, Known<()>)>,
    /// The request, kept while its answer is unknown (a write found done is sent again).
    body: Option<String>,
    /// Resolved state at the last verification ("held", "committed", "released", "expired",
    /// "none", or "absent" when unknown to the server).
    state: &'static str,
}

#[derive(Debug)]
struct Feed {
    seq: i64,
    rows: Vec<(CellKey, i64)>,
    valid: bool,
    result: Known<()>,
}

#[derive(Default)]
struct Model {
    initial: HashMap<CellKey, (i64, i64)>,
    cells: Vec<CellKey>,
    marker: CellKey,
    /// Marker value before any feed.
    marker_base: i64,
    /// Deltas of feeds known to have applied.
    applied: HashMap<CellKey, i64>,
    shipped: HashMap<CellKey, i64>,
    orders: HashMap<String, OrderRec>,
    /// Orders written since the last verification.
    touched: HashSet<String>,
    /// Acknowledged, store-holding orders with no finish sent yet.
    held: Vec<String>,
    /// Feeds verified so far: (acknowledged, all).
    feeds_checked: (u64, u64),
    /// Routes answered 200 so far.
    routes_acked: u64,
    /// Orders the server holds, verified and then forgotten by the model once final: (all,
    /// those that held store stock).
    orders_checked: (u64, u64),
    /// Feeds sent since the last verification.
    pending_feeds: Vec<Feed>,
    next_seq: i64,
    /// The feeder waits for a verification after a feed with an unknown outcome.
    feeder_blocked: bool,
    ops: BTreeMap<&'static str, u64>,
    errors: BTreeMap<String, u64>,
    /// Violations seen in answers during the load (the next verification reports them).
    seen: Vec<String>,
    /// Writes whose answer was lost, by what the verification found: (done, not done).
    unknown_routes: (u64, u64),
    unknown_finishes: (u64, u64),
    unknown_feeds: (u64, u64),
    /// Writes found done although their answer was lost, sent again: (routes, ships or cancels).
    retried: (u64, u64),
}

fn read_stock(path: &std::path::Path) -> HashMap<CellKey, (i64, i64)> {
    let text = std::fs::read_to_string(path).expect("stock.csv");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let col = |n: &str| header.iter().position(|h| *h == n).unwrap_or_else(|| panic!("stock.csv has no {n}"));
    let (s, k, o, f) = (col("store_id"), col("sku"), col("on_hand"), col("safety_stock"));
    lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let v: Vec<&str> = l.split(',').collect();
            ((v[s].to_string(), v[k].to_string()), (v[o].parse().unwrap(), v[f].parse().unwrap()))
        })
        .collect()
}

/// Ship orders as JSON without their id (`"created_at":...}`), leaving out those with `skip_sku`.
fn templates(path: &std::path::Path, skip_sku: &str) -> Vec<String> {
    let text = std::fs::read_to_string(path).expect("orders.jsonl");
    let skip = format!("\"sku\":\"{skip_sku}\"");
    text.lines()
        .filter(|l| l.contains("\"mode\":\"ship\"") && !l.contains(&skip))
        .map(|l| format!("\"created_at\"{}", l.split_once(",\"created_at\"").expect("orders.jsonl line").1))
        .collect()
}

struct Server {
    child: Child,
    url: String,
}

fn start_server(a: &Args) -> Server {
    let mut cmd = Command::new(&a.bin);
    cmd.arg("serve").arg("--data").arg(&a.data).args(["--bind", "127.0.0.1:0", "--workers", "2"]);
    cmd.args(["--reservation-ttl-s", "86400"]).args(&a.server_arg);
    match &a.database_url {
        Some(url) if a.mode == Mode::Pg => cmd.args(["--database-url", url]),
        _ => cmd.arg("--state").arg(&a.state),
    };
    cmd.env("OMNIROUTE_API_KEYS", format!("admin:{KEY}"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = cmd.spawn().expect("start omniroute");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).expect("server output");
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("server said {line:?}"))
        .to_string();
    // Keep draining stdout so that the server never blocks on a full pipe.
    std::thread::spawn(move || {
        let mut sink = String::new();
        while out.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
            sink.clear();
        }
    });
    Server { child, url }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(|l| l.split_whitespace().nth(1).unwrap().parse().unwrap())
        })
        .unwrap_or(0)
}

fn client(connections: usize) -> awc::Client {
    awc::Client::builder()
        .timeout(Duration::from_secs(60))
        .connector(awc::Connector::new().limit(connections))
        .finish()
}

/// Status and JSON body of a request; `None` when no answer came.
async fn call(c: &awc::Client, method: &str, url: &str, body: Option<String>) -> Option<(u16, Value)> {
    let req = match method {
        "GET" => c.get(url),
        "PUT" => c.put(url),
        _ => c.post(url),
    }
    .insert_header(("Authorization", format!("Bearer {KEY}")));
    let res = match body {
        Some(b) => req.insert_header(("Content-Type", "application/json")).send_body(b).await,
        None => req.send().await,
    };
    let mut r = res.ok()?;
    let status = r.status().as_u16();
    let bytes = r.body().limit(64 << 20).await.ok()?;
    Some((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
}

/// What must read back exactly of a decision: its shipments (sources, lines, distances, promises)
/// and its unfulfilled lines.
fn essence(decision: &Value) -> String {
    json!([decision["shipments"], decision["unfulfilled"]]).to_string()
}

fn held_cells(decision: &Value) -> Vec<(CellKey, i64)> {
    let mut out = Vec::new();
    for s in decision["shipments"].as_array().into_iter().flatten() {
        if let Some(store) = s["store_id"].as_str() {
            for l in s["lines"].as_array().into_iter().flatten() {
                out.push((
                    (store.to_string(), l["sku"].as_str().unwrap().to_string()),
                    l["qty"].as_i64().unwrap(),
                ));
            }
        }
    }
    out
}

fn note_error(m: &RefCell<Model>, what: &str, status: Option<u16>) {
    let key = match status {
        Some(s) => format!("{what} HTTP {s}"),
        None => format!("{what} no answer"),
    };
    *m.borrow_mut().errors.entry(key).or_default() += 1;
}

struct Load {
    stop: Rc<Cell<bool>>,
    tasks: Vec<actix_rt::task::JoinHandle<()>>,
}

/// Starts `connections` load tasks and one feeder against `url`.
fn start_load(
    a: &Args,
    url: &str,
    m: &Rc<RefCell<Model>>,
    tpl: &Rc<Vec<String>>,
    rng: &mut StdRng,
    prefix: &str,
) -> Load {
    let stop = Rc::new(Cell::new(false));
    let c = client(a.connections + 1);
    let counter = Rc::new(Cell::new(0u64));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..a.connections {
        let (c, m, tpl, stop, counter) = (c.clone(), m.clone(), tpl.clone(), stop.clone(), counter.clone());
        let (url, prefix, rate, max_held) = (url.to_string(), prefix.to_string(), a.rate, a.max_held);
        let mut rng = StdRng::seed_from_u64(rng.random());
        tasks.push(actix_rt::spawn(async move {
            let mut n = 0u64;
            while !stop.get() {
                let i = counter.get();
                counter.set(i + 1);
                if rate > 0 {
                    let at = start + Duration::from_secs_f64(i as f64 / rate as f64);
                    if let Some(w) = at.checked_duration_since(Instant::now()) {
                        actix_rt::time::sleep(w).await;
                    }
                }
                let held = m.borrow().held.len();
                let p: f64 = rng.random();
                // Routes while few orders are held; then a ship or cancel for 3 operations in 10
                // (about as many as the routes that hold stock), all of them above --max-held.
                let ok = if held > max_held || (held > 1000 && p < 0.3) {
                    let kind = if rng.random_bool(0.6) { Finish::Ship } else { Finish::Cancel };
                    finish(&c, &url, &m, &mut rng, kind).await
                } else if p < 0.9 {
                    n += 1;
                    let id = format!("{prefix}-{t}-{n}");
                    route(&c, &url, &m, &tpl[rng.random_range(0..tpl.len())], id).await
                } else {
                    read(&c, &url, &m, &mut rng).await
                };
                if !ok {
                    actix_rt::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }));
    }
    let (c, m, feeder_stop) = (c.clone(), m.clone(), stop.clone());
    let url = url.to_string();
    let mut rng = StdRng::seed_from_u64(rng.random());
    tasks.push(actix_rt::spawn(async move {
        while !feeder_stop.get() {
            if m.borrow().feeder_blocked {
                actix_rt::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            feed(&c, &url, &m, &mut rng).await;
            actix_rt::time::sleep(Duration::from_millis(5)).await;
        }
    }));
    Load { stop, tasks }
}

async fn stop_load(l: Load) {
    l.stop.set(true);
    for t in l.tasks {
        let _ = t.await;
    }
}

/// Whether the server answered below 500 (the load backs off a little when it did not).
fn answered(res: &Option<(u16, Value)>) -> bool {
    matches!(res, Some((s, _)) if *s < 500)
}

async fn route(c: &awc::Client, url: &str, m: &RefCell<Model>, tpl: &str, id: String) -> bool {
    {
        let mut mm = m.borrow_mut();
        mm.orders.insert(
            id.clone(),
            OrderRec { route: Known::Unknown, cells: vec![], finish: None, body: None, state: "absent" },
        );
        mm.touched.insert(id.clone());
        *mm.ops.entry("route").or_default() += 1;
    }
    let body = format!("{{\"order_id\":\"{id}\",{tpl}");
    let res = call(c, "POST", &format!("{url}/v1/orders/route"), Some(body.clone())).await;
    let ok = answered(&res);
    let mut mm = m.borrow_mut();
    match res {
        Some((200, d)) => {
            let cells = held_cells(&d);
            let holds = !cells.is_empty();
            mm.routes_acked += 1;
            let rec = mm.orders.get_mut(&id).unwrap();
            rec.cells = cells;
            rec.route = Known::Acked(essence(&d));
            if holds {
                mm.held.push(id);
            }
        }
        Some((s, _)) if (400..500).contains(&s) => {
            mm.orders.get_mut(&id).unwrap().route = Known::Refused(s);
            drop(mm);
            note_error(m, "route", Some(s));
        }
        other => {
            mm.orders.get_mut(&id).unwrap().body = Some(body);
            drop(mm);
            note_error(m, "route", other.map(|o| o.0));
        }
    }
    ok
}

async fn finish(c: &awc::Client, url: &str, m: &RefCell<Model>, rng: &mut StdRng, kind: Finish) -> bool {
    let id = {
        let mut mm = m.borrow_mut();
        let i = rng.random_range(0..mm.held.len());
        let id = mm.held.swap_remove(i);
        mm.orders.get_mut(&id).unwrap().finish = Some((kind, Known::Unknown));
        mm.touched.insert(id.clone());
        *mm.ops.entry(kind.path()).or_default() += 1;
        id
    };
    let res = call(c, "POST", &format!("{url}/v1/orders/{id}/{}", kind.path()), None).await;
    let outcome = match &res {
        Some((200, v)) if v["state"] == kind.state() => Known::Acked(()),
        Some((s, _)) if (400..500).contains(s) => Known::Refused(*s),
        _ => Known::Unknown,
    };
    let ok = answered(&res);
    if outcome != Known::Acked(()) {
        note_error(m, kind.path(), res.map(|r| r.0));
    }
    m.borrow_mut().orders.get_mut(&id).unwrap().finish = Some((kind, outcome));
    ok
}

async fn read(c: &awc::Client, url: &str, m: &RefCell<Model>, rng: &mut StdRng) -> bool {
    let cell = {
        let mut mm = m.borrow_mut();
        *mm.ops.entry("read").or_default() += 1;
        mm.cells[rng.random_range(0..mm.cells.len())].clone()
    };
    let res = call(c, "GET", &format!("{url}/v1/stock/{}/{}", cell.0, cell.1), None).await;
    if !matches!(res, Some((200, _))) {
        note_error(m, "read", res.as_ref().map(|r| r.0));
    }
    answered(&res)
}

async fn feed(c: &awc::Client, url: &str, m: &RefCell<Model>, rng: &mut StdRng) {
    let (seq, body, valid) = {
        let mut mm = m.borrow_mut();
        mm.next_seq += 1;
        let seq = mm.next_seq;
        let valid = !rng.random_bool(0.1);
        let mut rows = Vec::new();
        let mut seen = HashSet::new();
        for _ in 0..20 {
            let cell = mm.cells[rng.random_range(0..mm.cells.len())].clone();
            if seen.insert(cell.clone()) {
                rows.push((cell, rng.random_range(1..=4i64)));
            }
        }
        let mut json_rows: Vec<Value> =
            rows.iter().map(|((s, k), d)| json!({"store_id": s, "sku": k, "delta": d})).collect();
        json_rows.push(json!({"store_id": mm.marker.0, "sku": mm.marker.1, "on_hand": seq}));
        if !valid {
            // A sale larger than any stock: the whole feed must be refused.
            let (s, k) = mm.cells[rng.random_range(0..mm.cells.len())].clone();
            let at = rng.random_range(0..=json_rows.len());
            json_rows.insert(at, json!({"store_id": s, "sku": k, "delta": -1_000_000_000i64}));
        }
        mm.pending_feeds.push(Feed { seq, rows, valid, result: Known::Unknown });
        *mm.ops.entry("feed").or_default() += 1;
        (seq, Value::Array(json_rows).to_string(), valid)
    };
    let res = call(c, "PUT", &format!("{url}/v1/stock"), Some(body)).await;
    let outcome = match res {
        Some((200, _)) => Known::Acked(()),
        Some((s, _)) if (400..500).contains(&s) => Known::Refused(s),
        _ => Known::Unknown,
    };
    let mut mm = m.borrow_mut();
    let f = mm.pending_feeds.iter_mut().find(|f| f.seq == seq).unwrap();
    f.result = outcome.clone();
    match outcome {
        Known::Acked(()) if !valid => mm.seen.push(format!("invalid feed {seq} acknowledged")),
        Known::Refused(s) if valid => mm.seen.push(format!("valid feed {seq} refused with {s}")),
        Known::Unknown => {
            mm.feeder_blocked = true;
            drop(mm);
            note_error(m, "feed", res.map(|r| r.0));
        }
        _ => {}
    }
}

/// Checks the server against the model; returns the violations found.
async fn verify(url: &str, m: &RefCell<Model>, connections: usize) -> Vec<String> {
    let c = client(connections);
    let mut bad = std::mem::take(&mut m.borrow_mut().seen);
    // 1. Which feeds applied: the marker names the last one.
    let marker = m.borrow().marker.clone();
    let mark = match call(&c, "GET", &format!("{url}/v1/stock/{}/{}", marker.0, marker.1), None).await {
        Some((200, v)) => v["on_hand"].as_i64().unwrap(),
        Some((404, _)) => m.borrow().marker_base,
        other => return vec![format!("marker read failed: {other:?}")],
    };
    {
        let mut mm = m.borrow_mut();
        let pending = std::mem::take(&mut mm.pending_feeds);
        for f in pending {
            let applied = f.seq <= mark && f.valid && !matches!(f.result, Known::Refused(_));
            match (&f.result, f.seq <= mark) {
                (Known::Acked(()), false) => {
                    bad.push(format!("acknowledged feed {} lost (marker {mark})", f.seq))
                }
                (Known::Refused(s), true) if f.seq == mark => {
                    bad.push(format!("feed {} refused with {s} but applied", f.seq))
                }
                _ => {}
            }
            if f.result == Known::Unknown {
                if f.seq <= mark && f.valid {
                    mm.unknown_feeds.0 += 1;
                } else {
                    mm.unknown_feeds.1 += 1;
                }
            }
            if !f.valid && f.seq == mark {
                bad.push(format!("invalid feed {} applied", f.seq));
            }
            if applied {
                for (cell, d) in &f.rows {
                    *mm.applied.entry(cell.clone()).or_default() += d;
                }
            }
            mm.feeds_checked.0 += u64::from(f.result == Known::Acked(()));
            mm.feeds_checked.1 += 1;
        }
        mm.feeder_blocked = false;
    }
    // 2. Orders: every one written since the last check, and every one holding stock.
    let ids: Vec<String> = {
        let mm = m.borrow();
        let mut ids: HashSet<String> = mm.touched.iter().cloned().collect();
        ids.extend(mm.orders.iter().filter(|(_, o)| o.state == "held").map(|(k, _)| k.clone()));
        let mut ids: Vec<String> = ids.into_iter().collect();
        ids.sort();
        ids
    };
    let mut retry_routes: Vec<(String, String, String)> = Vec::new();
    let mut retry_finishes: Vec<(String, Finish)> = Vec::new();
    let views =
        fetch_all(&c, url, ids.iter().map(|id| format!("/v1/orders/{id}")).collect(), connections).await;
    {
        let mut mm = m.borrow_mut();
        let mm = &mut *mm;
        for (id, view) in ids.iter().zip(views) {
            let rec = mm.orders.get_mut(id).unwrap();
            let before = rec.state;
            let (status, v) = match view {
                Some(x) => x,
                None => {
                    bad.push(format!("order {id}: no answer"));
                    continue;
                }
            };
            let state: &'static str = match status {
                404 => "absent",
                200 => match v["state"].as_str() {
                    Some("held") => "held",
                    Some("committed") => "committed",
                    Some("released") => "released",
                    Some("expired") => "expired",
                    _ => "none",
                },
                s => {
                    bad.push(format!("order {id}: HTTP {s}"));
                    continue;
                }
            };
            match &rec.route {
                Known::Acked(d) => {
                    if status != 200 {
                        bad.push(format!("order {id}: acknowledged route lost"));
                        continue;
                    }
                    if essence(&v["decision"]) != *d {
                        bad.push(format!("order {id}: decision differs from the acknowledged one"));
                    }
                }
                Known::Refused(s) => {
                    if status != 404 {
                        bad.push(format!("order {id}: route refused with {s} but stored"));
                    }
                }
                Known::Unknown => {
                    if status == 200 {
                        rec.cells = held_cells(&v["decision"]);
                        rec.route = Known::Acked(essence(&v["decision"]));
                        mm.unknown_routes.0 += 1;
                        if let (Some(body), Known::Acked(e)) = (rec.body.take(), &rec.route) {
                            retry_routes.push((id.clone(), body, e.clone()));
                        }
                    } else {
                        mm.unknown_routes.1 += 1;
                    }
                }
            }
            if status == 404 {
                rec.state = "absent";
                continue;
            }
            let holds = !rec.cells.is_empty();
            if holds {
                let ok = match &rec.finish {
                    None => state == "held",
                    Some((k, Known::Acked(()))) => state == k.state(),
                    Some((k, Known::Unknown)) => state == "held" || state == k.state(),
                    Some((_, Known::Refused(_))) => state == "held",
                };
                if !ok {
                    bad.push(format!("order {id}: state {state} after {:?}", rec.finish));
                }
                if let Some((k, Known::Unknown)) = rec.finish {
                    if state == k.state() {
                        mm.unknown_finishes.0 += 1;
                        retry_finishes.push((id.clone(), k));
                    } else {
                        mm.unknown_finishes.1 += 1;
                    }
                }
                if state == "held" && rec.finish.is_some() {
                    // The finish did not happen; the order may be finished again later.
                    rec.finish = None;
                }
                if state == "committed" && before != "committed" {
                    for (cell, q) in &rec.cells {
                        *mm.shipped.entry(cell.clone()).or_default() += q;
                    }
                }
            }
            if before == "absent" {
                mm.orders_checked.0 += 1;
                mm.orders_checked.1 += u64::from(!rec.cells.is_empty());
            }
            rec.state = state;
        }
        mm.touched.clear();
        // Final states never change again: only held orders are checked again.
        mm.orders.retain(|_, o| o.state == "held");
        // The orders that may be finished next: those that read back as held.
        let mut held: Vec<String> =
            mm.orders.iter().filter(|(_, o)| o.state == "held").map(|(k, _)| k.clone()).collect();
        held.sort();
        mm.held = held;
    }
    // 2b. A write that happened although its answer was lost, sent again as a client would:
    //     the same answer, and (checked below) nothing reserved or shipped twice.
    for (id, body, want) in &retry_routes {
        match call(&c, "POST", &format!("{url}/v1/orders/route"), Some(body.clone())).await {
            Some((200, d)) if essence(&d) == *want => {}
            other => bad.push(format!("order {id}: route sent again answered {other:?}")),
        }
    }
    for (id, k) in &retry_finishes {
        match call(&c, "POST", &format!("{url}/v1/orders/{id}/{}", k.path()), None).await {
            Some((200, v)) if v["state"] == k.state() => {}
            other => bad.push(format!("order {id}: {} sent again answered {other:?}", k.path())),
        }
    }
    {
        let mut mm = m.borrow_mut();
        mm.retried.0 += retry_routes.len() as u64;
        mm.retried.1 += retry_finishes.len() as u64;
    }
    // 3. Every stock cell.
    let (cells, marker) = {
        let mm = m.borrow();
        (mm.cells.clone(), mm.marker.clone())
    };
    let levels =
        fetch_all(&c, url, cells.iter().map(|(s, k)| format!("/v1/stock/{s}/{k}")).collect(), connections)
            .await;
    let mm = m.borrow();
    let mut reserved: HashMap<&CellKey, i64> = HashMap::new();
    for o in mm.orders.values().filter(|o| o.state == "held") {
        for (cell, q) in &o.cells {
            *reserved.entry(cell).or_default() += q;
        }
    }
    for (cell, level) in cells.iter().zip(levels) {
        if *cell == marker {
            continue;
        }
        let Some((200, v)) = level else {
            bad.push(format!("stock {cell:?}: {level:?}"));
            continue;
        };
        let (on0, safety) = mm.initial[cell];
        let on_hand = on0 + mm.applied.get(cell).unwrap_or(&0) - mm.shipped.get(cell).unwrap_or(&0);
        let res = *reserved.get(cell).unwrap_or(&0);
        let available = (on_hand - res - safety).max(0);
        let got = (
            v["on_hand"].as_i64(),
            v["reserved"].as_i64(),
            v["safety_stock"].as_i64(),
            v["available"].as_i64(),
        );
        if got != (Some(on_hand), Some(res), Some(safety), Some(available)) {
            bad.push(format!(
                "stock {cell:?}: expected on_hand {on_hand} reserved {res} safety {safety} available {available}, read {v}"
            ));
        }
    }
    bad
}

/// GETs `paths` with `connections` requests in flight; answers in order.
async fn fetch_all(
    c: &awc::Client,
    url: &str,
    paths: Vec<String>,
    connections: usize,
) -> Vec<Option<(u16, Value)>> {
    let paths = Rc::new(paths);
    let out = Rc::new(RefCell::new(vec![None; paths.len()]));
    let next = Rc::new(Cell::new(0usize));
    let mut tasks = Vec::new();
    for _ in 0..connections.max(1) {
        let (c, paths, out, next, url) =
            (c.clone(), paths.clone(), out.clone(), next.clone(), url.to_string());
        tasks.push(actix_rt::spawn(async move {
            loop {
                let i = next.get();
                if i >= paths.len() {
                    break;
                }
                next.set(i + 1);
                let mut r = None;
                for _ in 0..3 {
                    r = call(&c, "GET", &format!("{url}{}", paths[i]), None).await;
                    if r.is_some() {
                        break;
                    }
                }
                out.borrow_mut()[i] = r;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    Rc::try_unwrap(out).unwrap().into_inner()
}

fn sh(cmd: &str) {
    let st = Command::new("sh").arg("-c").arg(cmd).status().expect("run shell command");
    assert!(st.success(), "`{cmd}` failed: {st}");
}

fn summary(m: &Model) -> String {
    let held = m.orders.values().filter(|o| o.state == "held").count();
    let shipped: i64 = m.shipped.values().sum();
    let u = |(done, not): (u64, u64)| format!("{done}/{}", done + not);
    format!(
        "orders_checked={} holding_store_stock={} held_now={held} units_shipped={shipped} \
         feeds_acked={}/{} unknown_done(routes={} finishes={} feeds={}) sent_again(routes={} \
         finishes={}) ops={:?} errors={:?}",
        m.orders_checked.0,
        m.orders_checked.1,
        m.feeds_checked.0,
        m.feeds_checked.1,
        u(m.unknown_routes),
        u(m.unknown_finishes),
        u(m.unknown_feeds),
        m.retried.0,
        m.retried.1,
        m.ops,
        m.errors
    )
}

fn main() {
    let a = Args::parse();
    let initial = read_stock(&a.data.join("stock.csv"));
    let mut cells: Vec<CellKey> = initial.keys().cloned().collect();
    cells.sort();
    let marker_sku = cells.iter().map(|c| c.1.clone()).max().unwrap();
    let marker = cells.iter().find(|c| c.1 == marker_sku).unwrap().clone();
    let tpl = Rc::new(templates(&a.data.join("orders.jsonl"), &marker_sku));
    assert!(!tpl.is_empty(), "no ship orders in {}", a.data.display());
    let marker_base = initial[&marker].0;
    let m = Rc::new(RefCell::new(Model {
        next_seq: marker_base + 1_000_000,
        initial,
        cells: cells.into_iter().filter(|c| *c != marker).collect(),
        marker,
        marker_base,
        ..Default::default()
    }));
    let mut rng = StdRng::seed_from_u64(a.seed);
    println!(
        "soak mode={:?} data={} cycles={} seconds={} connections={} rate={} templates={} cells={}",
        a.mode,
        a.data.display(),
        a.cycles,
        a.seconds,
        a.connections,
        a.rate,
        tpl.len(),
        m.borrow().cells.len()
    );
    let failed = actix_rt::System::new().block_on(async move {
        let t0 = Instant::now();
        let mut violations = 0usize;
        let mut report = |cycle: u32, bad: Vec<String>, extra: String, m: &Model| {
            for b in bad.iter().take(20) {
                println!("  VIOLATION {b}");
            }
            violations += bad.len();
            println!(
                "cycle {cycle:>3} t={:>6.1}s violations={} {extra} {}",
                t0.elapsed().as_secs_f64(),
                bad.len(),
                summary(m)
            );
        };
        match a.mode {
            Mode::Kill => {
                for cycle in 0..=a.cycles {
                    let t = Instant::now();
                    let mut srv = start_server(&a);
                    let up = t.elapsed().as_secs_f64();
                    let bad = verify(&srv.url, &m, a.connections).await;
                    report(cycle, bad, format!("restart={up:.2}s"), &m.borrow());
                    if cycle == a.cycles {
                        let _ = srv.child.kill();
                        let _ = srv.child.wait();
                        break;
                    }
                    let load = start_load(&a, &srv.url, &m, &tpl, &mut rng, &format!("k{}-{cycle}", a.seed));
                    let at = rng.random_range(0.2..a.seconds.max(0.3));
                    actix_rt::time::sleep(Duration::from_secs_f64(at)).await;
                    srv.child.kill().expect("kill -9");
                    let _ = srv.child.wait();
                    stop_load(load).await;
                }
            }
            Mode::Pg => {
                let (stop, start) =
                    (a.pg_stop.clone().expect("--pg-stop"), a.pg_start.clone().expect("--pg-start"));
                let mut srv = start_server(&a);
                for cycle in 0..=a.cycles {
                    let bad = verify(&srv.url, &m, a.connections).await;
                    report(cycle, bad, format!("rss={}KiB", rss_kib(srv.child.id())), &m.borrow());
                    if cycle == a.cycles {
                        break;
                    }
                    let load = start_load(&a, &srv.url, &m, &tpl, &mut rng, &format!("p{}-{cycle}", a.seed));
                    actix_rt::time::sleep(Duration::from_secs_f64(rng.random_range(0.2..a.seconds.max(0.3))))
                        .await;
                    let down = Instant::now();
                    sh(&stop);
                    actix_rt::time::sleep(Duration::from_secs_f64(rng.random_range(0.5..2.0))).await;
                    sh(&start);
                    // Load goes on until routes succeed again.
                    let ok_before = m.borrow().routes_acked;
                    loop {
                        actix_rt::time::sleep(Duration::from_millis(100)).await;
                        let ok = m.borrow().routes_acked;
                        if ok > ok_before + 10 || down.elapsed() > Duration::from_secs(120) {
                            break;
                        }
                    }
                    println!(
                        "  database back, routes succeed {:.1}s after the stop",
                        down.elapsed().as_secs_f64()
                    );
                    stop_load(load).await;
                }
                let _ = srv.child.kill();
                let _ = srv.child.wait();
            }
            Mode::Memory => {
                let mut srv = start_server(&a);
                let bad = verify(&srv.url, &m, a.connections).await;
                report(0, bad, format!("rss={}KiB", rss_kib(srv.child.id())), &m.borrow());
                let end = Instant::now() + Duration::from_secs_f64(a.seconds);
                let mut cycle = 0;
                while Instant::now() < end {
                    cycle += 1;
                    let load = start_load(&a, &srv.url, &m, &tpl, &mut rng, &format!("m{}-{cycle}", a.seed));
                    let until = (Instant::now() + Duration::from_secs_f64(a.verify_every)).min(end);
                    while Instant::now() < until {
                        actix_rt::time::sleep(Duration::from_secs(10).min(until - Instant::now())).await;
                        println!(
                            "  t={:>6.1}s rss={}KiB",
                            t0.elapsed().as_secs_f64(),
                            rss_kib(srv.child.id())
                        );
                    }
                    stop_load(load).await;
                    let bad = verify(&srv.url, &m, a.connections).await;
                    report(cycle, bad, format!("rss={}KiB", rss_kib(srv.child.id())), &m.borrow());
                }
                let _ = srv.child.kill();
                let _ = srv.child.wait();
            }
        }
        println!("total violations={violations} wall={:.1}s", t0.elapsed().as_secs_f64());
        violations > 0
    });
    std::process::exit(if failed { 1 } else { 0 });
}
