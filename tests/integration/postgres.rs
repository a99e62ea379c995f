//! The PostgreSQL + PostGIS backend: three replicas on one database, parity with the embedded
//! store, and durability across an immediate database stop.
//!
//! These tests need PostgreSQL 15 with PostGIS (`scripts/test` installs and starts it). They fail,
//! never skip, when it is missing. `OMNIROUTE_TEST_DATABASE_URL` names a database the tests may
//! create databases from (default `postgres://postgres@127.0.0.1:5432/postgres`).

use crate::server::{sample, spawn_app, spawn_app_with, TestApp, ADMIN, CHECKOUT, STORE_SYSTEM};
use crate::service::{post, send, Reply};
use futures_util::future::join_all;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn admin_url() -> String {
    std::env::var("OMNIROUTE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Runs one SQL statement with psql; returns its unaligned output.
pub(crate) fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .arg(url)
        .args(["-v", "ON_ERROR_STOP=1", "-X", "-q", "-At", "-c", sql])
        .output()
        .expect("psql runs (PostgreSQL client installed by scripts/setup)");
    assert!(
        out.status.success(),
        "psql {url} `{sql}` failed (is PostgreSQL with PostGIS running? scripts/test starts it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

pub(crate) fn with_db(url: &str, name: &str) -> String {
    let base = url.rsplit_once('/').map_or(url, |(b, _)| b);
    format!("{base}/{name}")
}

/// Imports `data` into the database at `url` with the real binary.
pub(crate) fn import(url: &str, data: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_omniroute"))
        .args(["db", "--database-url", url, "import", "--data"])
        .arg(data)
        .output()
        .unwrap();
    assert!(out.status.success(), "db import failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// A fresh database on the shared server, dropped afterwards.
pub(crate) struct TestDb {
    admin: String,
    name: String,
    pub(crate) url: String,
}

impl TestDb {
    pub(crate) fn create() -> TestDb {
        TestDb::create_with(&sample())
    }

    /// A fresh database holding the dataset `data`.
    pub(crate) fn create_with(data: &Path) -> TestDb {
        let db = TestDb::empty();
        import(&db.url, data);
        db
    }

    /// A fresh database with nothing in it.
    fn empty() -> TestDb {
        static N: AtomicUsize = AtomicUsize::new(0);
        let admin = admin_url();
        let name = format!("omniroute_t{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        psql(&admin, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        psql(&admin, &format!("CREATE DATABASE {name}"));
        let url = with_db(&admin, &name);
        TestDb { admin, name, url }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .arg(&self.admin)
            .args(["-X", "-q", "-c", &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)])
            .output();
    }
}

pub(crate) fn replica(url: &str) -> TestApp {
    replica_on(&sample(), url)
}

/// A replica serving the dataset `data` (imported into the database at `url`).
pub(crate) fn replica_on(data: &Path, url: &str) -> TestApp {
    spawn_app_with(data, &["--database-url", url])
}

/// A replica running one reservation transaction at a time (what three replicas on a 2-core
/// database are advised to run).
pub(crate) fn replica_one_batcher(url: &str) -> TestApp {
    spawn_app_with(&sample(), &["--database-url", url, "--db-batchers", "1"])
}

pub(crate) async fn route(app: &TestApp, order: &Value) -> Reply {
    post(app, "/v1/orders/route", CHECKOUT, order.to_string()).await
}

pub(crate) fn ship(id: &str, at: (f64, f64), skus: &[&str]) -> Value {
    json!({
        "order_id": id, "created_at": "2026-11-11T00:00:00+08:00",
        "customer": {"lon": at.0, "lat": at.1}, "mode": "ship",
        "lines": skus.iter().map(|s| json!({"sku": s, "qty": 1})).collect::<Vec<_>>(),
    })
}

pub(crate) fn pickup(id: &str, store: &str, sku: &str) -> Value {
    json!({
        "order_id": id, "created_at": "2026-11-11T00:00:00+08:00",
        "customer": {"lon": 109.6, "lat": 23.0}, "mode": "pickup", "pickup_store_id": store,
        "lines": [{"sku": sku, "qty": 1}],
    })
}

/// Cells whose reserved count differs from what the held reservations hold, plus cells that
/// promise more than they have: both must be zero.
fn ledger_mismatches(url: &str) -> (i64, i64) {
    let held = psql(
        url,
        "SELECT count(*) FROM stock k FULL JOIN (
            SELECT s, q, sum(n) AS n FROM reservations r, unnest(r.stores, r.skus, r.qtys) u(s, q, n)
            WHERE r.state = 1 GROUP BY 1, 2) h ON h.s = k.store_id AND h.q = k.sku
         WHERE COALESCE(h.n, 0) <> COALESCE(k.reserved, 0)",
    );
    let over =
        psql(url, "SELECT count(*) FROM stock WHERE reserved > on_hand - safety_stock AND reserved > 0");
    (held.parse().unwrap(), over.parse().unwrap())
}

/// The units each store shipment of a decision takes: (store_id, sku) -> qty.
pub(crate) fn units(decision: &Value) -> Vec<(String, String, u64)> {
    let mut out = vec![];
    for s in decision["shipments"].as_array().unwrap() {
        if let Some(store) = s["store_id"].as_str() {
            for l in s["lines"].as_array().unwrap() {
                let sku = l["sku"].as_str().unwrap().to_string();
                out.push((store.to_string(), sku, l["qty"].as_u64().unwrap()));
            }
        }
    }
    out
}

pub(crate) fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// The store that alone holds the hot SKUs (ships, capacity 332/day) and where the orders come from.
pub(crate) const HOT_STORE: &str = "6";
pub(crate) const HOT_AT: (f64, f64) = (114.845305, 30.384286);
/// (sku, units at HOT_STORE); every other store's stock of them is set to zero.
pub(crate) const HOT: [(&str, u64); 3] = [("192", 10), ("198", 6), ("190", 4)];
/// A pickup store far from HOT_STORE.
const FEED_STORE: &str = "7";

/// Sends a stock feed to replica 0 that leaves `units` of each SKU at HOT_STORE and none
/// anywhere else, then waits until every other replica's cache has applied it.
pub(crate) async fn only_hot_store_holds(apps: &[TestApp], units: &[(&str, u64)]) {
    let stock = std::fs::read_to_string(sample().join("stock.csv")).unwrap();
    let mut rows = vec![];
    for line in stock.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        if units.iter().any(|(sku, _)| *sku == f[1]) {
            rows.push(json!({"store_id": f[0], "sku": f[1], "on_hand": 0}));
        }
    }
    for (sku, n) in units {
        rows.push(json!({"store_id": HOT_STORE, "sku": sku, "on_hand": n, "safety_stock": 0}));
    }
    let r = send(
        "PUT",
        &apps[0].url("/v1/stock"),
        Some(STORE_SYSTEM),
        Some(("application/json", json!(rows).to_string())),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    // The other replicas learn the feed from the database's notifications.
    let t = Instant::now();
    for app in &apps[1..] {
        loop {
            let text =
                String::from_utf8(send("GET", &app.url("/metrics"), None, None).await.unwrap().body.to_vec())
                    .unwrap();
            if metric(&text, "omniroute_cache_updates_total") >= rows.len() as f64 {
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(10), "replica cache never caught up with the feed");
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Asserts that HOT_STORE's cells of the hot SKUs hold exactly their stock reserved.
fn assert_hot_stock_all_reserved(url: &str) {
    for (sku, n) in HOT {
        let reserved = psql(
            url,
            &format!("SELECT reserved FROM stock WHERE store_id = '{HOT_STORE}' AND sku = '{sku}'"),
        );
        assert_eq!(reserved, n.to_string(), "units of sku {sku} reserved");
    }
}

/// Sends three times the hot SKUs' supply (and some two-line orders), round-robin over `apps` at
/// once: every unit is taken, at HOT_STORE, none twice. The orders and their answers.
pub(crate) async fn oversubscribe_the_hot_store(apps: &[TestApp], url: &str) -> (Vec<Value>, Vec<Reply>) {
    let mut orders = vec![];
    for (sku, n) in HOT {
        for j in 0..3 * n {
            orders.push(ship(&format!("HOT-{sku}-{j}"), HOT_AT, &[sku]));
        }
    }
    for j in 0..10 {
        orders.push(ship(&format!("HOT-MIX-{j}"), HOT_AT, &["192", "198"]));
    }
    let replies = join_all(orders.iter().enumerate().map(|(i, o)| route(&apps[i % apps.len()], o))).await;
    let mut taken: HashMap<String, u64> = HashMap::new();
    for r in &replies {
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        for (store, sku, qty) in units(&r.json()) {
            assert_eq!(store, HOT_STORE, "only the hot store has stock");
            *taken.entry(sku).or_default() += qty;
        }
    }
    for (sku, n) in HOT {
        assert_eq!(taken.get(sku).copied().unwrap_or(0), n, "units of sku {sku} taken");
    }
    assert_hot_stock_all_reserved(url);
    (orders, replies)
}

/// Retries every order on the next replica: the same bytes, and nothing more reserved.
pub(crate) async fn retries_elsewhere_answer_the_same(
    apps: &[TestApp],
    orders: &[Value],
    replies: &[Reply],
    url: &str,
) {
    let retries =
        join_all(orders.iter().enumerate().map(|(i, o)| route(&apps[(i + 1) % apps.len()], o))).await;
    for (first, retry) in replies.iter().zip(&retries) {
        assert_eq!(retry.status, 200);
        assert_eq!(first.body, retry.body, "a retry on another replica answers the same");
    }
    assert_hot_stock_all_reserved(url);
}

#[actix_rt::test]
async fn three_replicas_never_oversell_agree_on_retries_and_see_feeds_within_a_second() {
    let db = TestDb::create();
    let apps: Vec<TestApp> = (0..3).map(|_| replica_one_batcher(&db.url)).collect();

    // Only HOT_STORE holds the hot SKUs.
    only_hot_store_holds(&apps, &HOT).await;

    // Demand three times the supply, spread over the three replicas at once.
    let (orders, replies) = oversubscribe_the_hot_store(&apps, &db.url).await;
    assert_eq!(ledger_mismatches(&db.url), (0, 0));
    let reservations = psql(&db.url, "SELECT count(*) FROM reservations");
    let answered = psql(&db.url, "SELECT count(*) FROM orders");
    assert_eq!(answered, orders.len().to_string());

    // A retry on another replica gets the same bytes and reserves nothing more.
    retries_elsewhere_answer_the_same(&apps, &orders, &replies, &db.url).await;
    assert_eq!(psql(&db.url, "SELECT count(*) FROM reservations"), reservations);
    assert_eq!(ledger_mismatches(&db.url), (0, 0));

    // A feed sent to replica 0 is routed on by replicas 1 and 2 within a second.
    let before = route(&apps[1], &pickup("VIS-before", FEED_STORE, "192")).await.json();
    assert_ne!(before["status"], "assigned", "no stock of 192 at store {FEED_STORE} yet: {before}");
    let feed = json!([{"store_id": FEED_STORE, "sku": "192", "on_hand": 5}]).to_string();
    let r = send("PUT", &apps[0].url("/v1/stock"), Some(STORE_SYSTEM), Some(("application/json", feed)))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let t = Instant::now();
    for (k, app) in apps[1..].iter().enumerate() {
        let mut n = 0;
        loop {
            let d = route(app, &pickup(&format!("VIS-{k}-{n}"), FEED_STORE, "192")).await.json();
            if d["status"] == "assigned" && d["shipments"][0]["store_id"] == FEED_STORE {
                break;
            }
            n += 1;
            assert!(
                t.elapsed() < Duration::from_secs(1),
                "replica {} did not see the feed within 1 s",
                k + 1
            );
            actix_rt::time::sleep(Duration::from_millis(10)).await;
        }
    }
    assert_eq!(ledger_mismatches(&db.url), (0, 0));
}

#[actix_rt::test]
async fn a_key_created_on_one_replica_works_on_the_others_and_a_revocation_too() {
    let db = TestDb::create();
    let (a, b) = (replica(&db.url), replica(&db.url));
    let body = json!({"role": "planner"}).to_string();
    let r =
        send("POST", &a.url("/v1/admin/keys"), Some(ADMIN), Some(("application/json", body))).await.unwrap();
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let (key, id) =
        (r.json()["key"].as_str().unwrap().to_string(), r.json()["id"].as_str().unwrap().to_string());
    assert_eq!(psql(&db.url, "SELECT count(*) FROM api_keys"), "1");
    assert!(!psql(&db.url, "SELECT record::text FROM api_keys").contains(&key), "only the hash is stored");
    // Replica B knows the key within seconds (404: an unknown plan, past authorisation).
    assert!(answers_within(&b, &key, 404).await, "replica B accepts a key created through A");
    let r = send("POST", &b.url(&format!("/v1/admin/keys/{id}/revoke")), Some(ADMIN), None).await.unwrap();
    assert_eq!(r.status, 200);
    assert!(answers_within(&a, &key, 401).await, "replica A refuses the key revoked through B");
}

/// Whether `app` answers `want` to a plan read with `key` within 10 s.
async fn answers_within(app: &TestApp, key: &str, want: u16) -> bool {
    for _ in 0..100 {
        if send("GET", &app.url("/v1/plans/none"), Some(key), None).await.unwrap().status == want {
            return true;
        }
        actix_rt::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    false
}

/// The audit log on PostgreSQL: an accepted feed's entries are written with it, a refused one's
/// alone, and every replica reads the same log.
#[actix_rt::test]
async fn stock_feeds_are_audited_in_the_database() {
    let db = TestDb::create();
    let (a, b) = (replica(&db.url), replica(&db.url));
    let feed = |app: &TestApp, rows: Value| {
        let url = app.url("/v1/stock");
        async move {
            send("PUT", &url, Some(STORE_SYSTEM), Some(("application/json", rows.to_string()))).await.unwrap()
        }
    };
    let r = feed(&a, json!([{"store_id": FEED_STORE, "sku": "1", "on_hand": 5}])).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let r = feed(&b, json!([{"store_id": FEED_STORE, "sku": "1", "delta": -1000}])).await;
    assert_eq!(r.status, 422);
    assert_eq!(
        psql(&db.url, "SELECT string_agg(accepted::text, ',' ORDER BY seq) FROM stock_audit"),
        "true,false"
    );
    let log = send("GET", &b.url("/v1/audit/stock"), Some(ADMIN), None).await.unwrap().json();
    let entries = log["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!((entries[0]["key_id"].clone(), entries[0]["rows"].clone()), (json!("bootstrap-3"), json!(1)));
    assert!(entries[1]["reason"].as_str().unwrap().len() > 5);
}

#[actix_rt::test]
async fn a_stores_daily_capacity_holds_across_replicas() {
    let db = TestDb::create();
    let apps: Vec<TestApp> = (0..3).map(|_| replica(&db.url)).collect();
    let capacity: u64 =
        psql(&db.url, &format!("SELECT capacity_per_day FROM stores WHERE store_id = '{HOT_STORE}'"))
            .parse()
            .unwrap();
    // More units than the store may ship in a day, and nowhere else.
    only_hot_store_holds(&apps, &[("192", capacity + 50)]).await;

    // More orders than its capacity, all at once over the three replicas: they meet in the same
    // batches, so the database sees the store's day counter contested.
    let orders: Vec<Value> =
        (0..capacity + 20).map(|j| ship(&format!("CAP-{j}"), HOT_AT, &["192"])).collect();
    let replies = join_all(orders.iter().enumerate().map(|(i, o)| route(&apps[i % 3], o))).await;
    let mut from_hot = 0;
    for r in &replies {
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let d = r.json();
        if units(&d).iter().any(|(store, _, _)| *store == HOT_STORE) {
            from_hot += 1;
        } else {
            assert_eq!(d["status"], "dc", "past its capacity the order goes to a DC: {d}");
        }
    }
    assert_eq!(from_hot, capacity, "orders taken by the store");
    let day_count =
        psql(&db.url, &format!("SELECT sum(orders) FROM store_days WHERE store_id = '{HOT_STORE}'"));
    assert_eq!(day_count, capacity.to_string());
    let reserved =
        psql(&db.url, &format!("SELECT reserved FROM stock WHERE store_id = '{HOT_STORE}' AND sku = '192'"));
    assert_eq!(reserved, capacity.to_string());
    assert_eq!(ledger_mismatches(&db.url), (0, 0));

    // One more after the rush (a replica that has not met the full counter yet learns it from
    // the refusal): the DC again, nothing held.
    let d = route(&apps[1], &ship("CAP-late", HOT_AT, &["192"])).await.json();
    assert_eq!(d["status"], "dc", "{d}");
    assert_eq!(ledger_mismatches(&db.url), (0, 0));
}

/// (status, [(store_id, dc_id, lines)]) of a decision: what must agree between backends.
fn summary(d: &Value) -> Value {
    let shipments: Vec<Value> = d["shipments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| json!([s["store_id"], s["dc_id"], s["lines"]]))
        .collect();
    json!([d["status"], shipments])
}

/// Routes the sample's first 400 orders on a fresh embedded service and on `app`: the same
/// decisions, of at least three kinds.
pub(crate) async fn same_decisions_as_embedded(app: &TestApp) {
    let embedded = spawn_app();
    let text = std::fs::read_to_string(sample().join("orders.jsonl")).unwrap();
    let mut statuses: HashMap<String, usize> = HashMap::new();
    for line in text.lines().take(400) {
        let order: Value = serde_json::from_str(line).unwrap();
        let (a, b) = (route(&embedded, &order).await, route(app, &order).await);
        assert_eq!((a.status, b.status), (200, 200), "{}", String::from_utf8_lossy(&b.body));
        let (a, b) = (a.json(), b.json());
        assert_eq!(summary(&a), summary(&b), "order {}", order["order_id"]);
        *statuses.entry(a["status"].as_str().unwrap().to_string()).or_default() += 1;
    }
    // The stream exercises more than one kind of decision.
    assert!(statuses.len() >= 3, "{statuses:?}");
}

#[actix_rt::test]
async fn the_same_stream_gets_the_same_decisions_on_both_backends() {
    let db = TestDb::create();
    same_decisions_as_embedded(&replica(&db.url)).await;
    assert_eq!(ledger_mismatches(&db.url), (0, 0));
}

#[actix_rt::test]
async fn cancel_ship_read_and_feed_errors_go_through_the_database() {
    let db = TestDb::create();
    let (a, b) = (replica(&db.url), replica(&db.url));
    let text = std::fs::read_to_string(sample().join("orders.jsonl")).unwrap();
    let mut held = vec![];
    let mut unheld = None;
    for line in text.lines().take(60) {
        let order: Value = serde_json::from_str(line).unwrap();
        let d = route(&a, &order).await.json();
        let id = order["order_id"].as_str().unwrap().to_string();
        if units(&d).is_empty() {
            unheld.get_or_insert(id);
        } else {
            held.push((id, units(&d)));
        }
    }
    let level = |store: &str, sku: &str| {
        let v = psql(
            &db.url,
            &format!(
                "SELECT on_hand || ',' || reserved FROM stock WHERE store_id = '{store}' AND sku = '{sku}'"
            ),
        );
        let (h, r) = v.split_once(',').unwrap();
        (h.parse::<u64>().unwrap(), r.parse::<u64>().unwrap())
    };
    // Ship on the other replica: the stock leaves; again is a no-op; cancel is then refused.
    let (id, u) = &held[0];
    let (store, sku, qty) = u[0].clone();
    let before = level(&store, &sku);
    let r = post(&b, &format!("/v1/orders/{id}/ship"), CHECKOUT, String::new()).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["state"], "committed");
    assert_eq!(level(&store, &sku), (before.0 - qty, before.1 - qty));
    assert_eq!(post(&b, &format!("/v1/orders/{id}/ship"), CHECKOUT, String::new()).await.status, 200);
    assert_eq!(level(&store, &sku), (before.0 - qty, before.1 - qty));
    let r = post(&a, &format!("/v1/orders/{id}/cancel"), CHECKOUT, String::new()).await;
    assert_eq!((r.status, r.json()["code"].clone()), (409, json!("invalid_state")));
    // Cancel: stock comes back; the read on either replica says released.
    let (id, u) = &held[1];
    let (store, sku, qty) = u[0].clone();
    let before = level(&store, &sku);
    assert_eq!(post(&a, &format!("/v1/orders/{id}/cancel"), CHECKOUT, String::new()).await.status, 200);
    assert_eq!(level(&store, &sku), (before.0, before.1 - qty));
    let r = send("GET", &b.url(&format!("/v1/orders/{id}")), Some(CHECKOUT), None).await.unwrap();
    assert_eq!(r.json()["state"], "released");
    // Nothing reserved, or unknown.
    if let Some(id) = unheld {
        let r = post(&b, &format!("/v1/orders/{id}/cancel"), CHECKOUT, String::new()).await;
        assert_eq!((r.status, r.json()["code"].clone()), (409, json!("no_reservation")));
    }
    let r = post(&b, "/v1/orders/NOPE-1/ship", CHECKOUT, String::new()).await;
    assert_eq!(r.status, 404);
    // A feed whose second row would go negative changes nothing and names the row.
    let (h, _) = level(&store, &sku);
    let feed = json!([{"store_id": store, "sku": sku, "delta": 5}, {"store_id": store, "sku": sku, "delta": -100000}]);
    let r =
        send("PUT", &b.url("/v1/stock"), Some(STORE_SYSTEM), Some(("application/json", feed.to_string())))
            .await
            .unwrap();
    assert_eq!(r.status, 422);
    assert_eq!(
        (r.json()["code"].clone(), r.json()["field"].clone()),
        (json!("negative_on_hand"), json!("[1].delta"))
    );
    assert_eq!(level(&store, &sku).0, h);
    let s = send("GET", &a.url(&format!("/v1/stock/{store}/{sku}")), Some(STORE_SYSTEM), None)
        .await
        .unwrap()
        .json();
    assert_eq!(s["on_hand"], h);
    assert_eq!(ledger_mismatches(&db.url), (0, 0));
}

/// (store_id, sku, qty) of one line of a reservation.
type Hold<'a> = (&'a str, &'a str, i64);

/// Calls `omniroute_reserve` directly with `orders` as (id, holds) for day 20000; returns each
/// order's outcome in batch order.
fn reserve_sql(url: &str, orders: &[(&str, Vec<Hold<'_>>)]) -> Vec<String> {
    reserve_sql_cells(url, orders).into_iter().map(|(outcome, _)| outcome).collect()
}

/// As `reserve_sql`, with the cells each outcome reports (what the replicas' caches take).
fn reserve_sql_cells(url: &str, orders: &[(&str, Vec<Hold<'_>>)]) -> Vec<(String, Value)> {
    let batch: Vec<Value> = orders
        .iter()
        .map(|(id, h)| json!({"id": id, "day": 20000, "exp": 4_000_000_000i64, "h": h.iter().map(|c| json!([c.0, c.1, c.2])).collect::<Vec<_>>()}))
        .collect();
    let blanks = vec!["'{}'"; orders.len()].join(",");
    let out = psql(
        url,
        &format!(
            "SELECT json_agg(json_build_array(outcome, cells) ORDER BY ord) FROM omniroute_reserve('{}'::jsonb, ARRAY[{blanks}], ARRAY[{blanks}])",
            Value::Array(batch)
        ),
    );
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// A cell as the database holds it, in the shape outcomes report it: [store_id, sku,
/// on_hand - reserved, safety_stock, version].
fn cell_row(url: &str, (store, sku): (&str, &str)) -> Value {
    let out = psql(
        url,
        &format!(
            "SELECT json_build_array(store_id, sku, on_hand - reserved, safety_stock, version) FROM stock
             WHERE store_id = '{store}' AND sku = '{sku}'"
        ),
    );
    serde_json::from_str(&out).unwrap()
}

/// (reserved, day counter) of a cell and its store after the calls above.
fn cell_and_counter(url: &str, (store, sku): (&str, &str)) -> (i64, i64) {
    let reserved =
        psql(url, &format!("SELECT reserved FROM stock WHERE store_id = '{store}' AND sku = '{sku}'"));
    let counter = psql(
        url,
        &format!(
            "SELECT COALESCE((SELECT orders FROM store_days WHERE store_id = '{store}' AND day = 20000), -1)"
        ),
    );
    (reserved.parse().unwrap(), counter.parse().unwrap())
}

/// The database's own reservation function, one batch at a time: orders that cannot all go in
/// bulk (a cell short of stock, a store without room for the batch) go one by one, and the day
/// counters count exactly the orders reserved, whichever path they took.
#[test]
fn a_batch_counts_each_reserved_order_once_on_its_stores_day() {
    let db = TestDb::create();
    // Four cells with at least 3 units free, at four different stores.
    let rows = psql(
        &db.url,
        "SELECT store_id || ':' || sku || ':' || (on_hand - safety_stock) FROM (
           SELECT DISTINCT ON (store_id) * FROM stock WHERE on_hand - safety_stock >= 3
           ORDER BY store_id, sku) c ORDER BY store_id LIMIT 4",
    );
    let cells: Vec<(&str, &str, i64)> = rows
        .lines()
        .map(|l| {
            let v: Vec<&str> = l.split(':').collect();
            (v[0], v[1], v[2].parse().unwrap())
        })
        .collect();
    assert_eq!(cells.len(), 4, "the sample has four stores with stock: {rows}");
    let [(a, qa, free_a), (b, qb, _), (c, qc, free_c), (d, qd, _)] = cells[..] else { unreachable!() };

    // x1 asks A for more than it has (and B for one): it goes one by one and is refused; x2 takes
    // one at B in bulk. B's counter counts x2 only; A's counts nothing.
    // x2's outcome reports B as the database now holds it (what the replicas' caches take).
    let out = reserve_sql_cells(
        &db.url,
        &[("x1", vec![(a, qa, free_a + 1), (b, qb, 1)]), ("x2", vec![(b, qb, 1)])],
    );
    assert_eq!(out.iter().map(|(o, _)| o.as_str()).collect::<Vec<_>>(), ["refused", "reserved"]);
    assert_eq!(cell_and_counter(&db.url, (a, qa)), (0, 0));
    assert_eq!(cell_and_counter(&db.url, (b, qb)), (1, 1));
    assert_eq!(out[1].1, json!([cell_row(&db.url, (b, qb))]));

    // w1 and w2 fit C one at a time but not together: w1 (first in the batch) takes all of C's
    // free units, w2 is refused, and C's counter counts w1 once.
    assert_eq!(
        reserve_sql(&db.url, &[("w1", vec![(c, qc, free_c)]), ("w2", vec![(c, qc, 1)])]),
        ["reserved", "refused"]
    );
    assert_eq!(cell_and_counter(&db.url, (c, qc)), (free_c, 1));

    // D takes one order a day: of two in one batch the first is reserved, the second refused.
    psql(&db.url, &format!("UPDATE stores SET capacity_per_day = 1 WHERE store_id = '{d}'"));
    assert_eq!(
        reserve_sql(&db.url, &[("y1", vec![(d, qd, 1)]), ("y2", vec![(d, qd, 1)])]),
        ["reserved", "refused"]
    );
    assert_eq!(cell_and_counter(&db.url, (d, qd)), (1, 1));
    // Full now: a batch of one more is refused and changes nothing.
    assert_eq!(reserve_sql(&db.url, &[("y3", vec![(d, qd, 1)])]), ["refused"]);
    assert_eq!(cell_and_counter(&db.url, (d, qd)), (1, 1));
    // In one batch: an order answered before gets its stored answer and reserves nothing again;
    // an order without holds (shipped from a DC) is recorded with nothing to reserve.
    assert_eq!(reserve_sql(&db.url, &[("x2", vec![(b, qb, 1)]), ("e1", vec![])]), ["existing", "reserved"]);
    assert_eq!(cell_and_counter(&db.url, (b, qb)), (1, 1));
    // Answered orders are recorded; refused ones are not.
    assert_eq!(
        psql(&db.url, "SELECT string_agg(order_id, ',' ORDER BY order_id) FROM orders"),
        "e1,w1,x2,y1"
    );
    assert_eq!(ledger_mismatches(&db.url), (0, 0));
}

/// Sends each item with `send` until it is acknowledged (200), retrying those answered 503 (the
/// database is down) for up to a minute: each item with its answer, and how many 503s came.
pub(crate) async fn until_acknowledged<T: Copy, F, Fut>(mut todo: Vec<T>, send: F) -> (Vec<(T, Reply)>, usize)
where
    F: Fn(T) -> Fut,
    Fut: std::future::Future<Output = Reply>,
{
    let (mut done, mut unavailable) = (Vec::new(), 0);
    let t = Instant::now();
    while !todo.is_empty() {
        let replies = join_all(todo.iter().map(|o| send(*o))).await;
        let mut again = vec![];
        for (o, r) in todo.into_iter().zip(replies) {
            match r.status {
                200 => done.push((o, r)),
                503 => {
                    unavailable += 1;
                    again.push(o);
                }
                s => panic!("unexpected {s}: {}", String::from_utf8_lossy(&r.body)),
            }
        }
        todo = again;
        if !todo.is_empty() {
            assert!(t.elapsed() < Duration::from_secs(60), "the service did not recover from the restart");
            actix_rt::time::sleep(Duration::from_millis(100)).await;
        }
    }
    (done, unavailable)
}

/// A private PostgreSQL cluster that a test may stop and start.
struct Cluster {
    dir: tempfile::TempDir,
    port: u16,
}

/// PostgreSQL's server programs: `OMNIROUTE_PG_BIN` (scripts/test sets it), else the newest
/// version under /usr/lib/postgresql.
pub(crate) fn pg_bin(prog: &str) -> PathBuf {
    let dir = std::env::var("OMNIROUTE_PG_BIN").map(PathBuf::from).unwrap_or_else(|_| {
        let mut versions: Vec<u32> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        versions.sort_unstable();
        let v = versions.last().map_or("15".to_string(), |v| v.to_string());
        PathBuf::from(format!("/usr/lib/postgresql/{v}/bin"))
    });
    dir.join(prog)
}

pub(crate) fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

impl Cluster {
    /// PostgreSQL refuses to run as root: as root the cluster runs as the `postgres` user.
    fn cmd(prog: &str) -> Command {
        if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(pg_bin(prog));
            c
        } else {
            Command::new(pg_bin(prog))
        }
    }

    fn run(mut c: Command, what: &str) {
        let out = c.output().unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(
            out.status.success(),
            "{what} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn init() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        if is_root() {
            Cluster::run(
                {
                    let mut c = Command::new("chown");
                    c.args(["-R", "postgres"]).arg(dir.path());
                    c
                },
                "chown",
            );
        }
        let mut c = Cluster::cmd("initdb");
        c.arg("-D").arg(dir.path().join("data")).args(["-A", "trust", "-U", "postgres", "--no-sync"]);
        Cluster::run(c, "initdb");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let cluster = Cluster { dir, port };
        cluster.start();
        cluster
    }

    fn start(&self) {
        let mut c = Cluster::cmd("pg_ctl");
        c.arg("-D").arg(self.dir.path().join("data")).arg("-l").arg(self.dir.path().join("log")).args([
            "-w",
            "-o",
            &format!("-p {} -k {} -c listen_addresses=127.0.0.1", self.port, self.dir.path().display()),
            "start",
        ]);
        Cluster::run(c, "pg_ctl start");
    }

    fn stop_immediate(&self) {
        let mut c = Cluster::cmd("pg_ctl");
        c.arg("-D").arg(self.dir.path().join("data")).args(["-m", "immediate", "-w", "stop"]);
        Cluster::run(c, "pg_ctl stop -m immediate");
    }

    fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let mut c = Cluster::cmd("pg_ctl");
        c.arg("-D").arg(self.dir.path().join("data")).args(["-m", "immediate", "stop"]);
        let _ = c.output();
    }
}

#[actix_rt::test]
async fn acknowledged_reservations_survive_an_immediate_database_stop() {
    let cluster = std::sync::Arc::new(Cluster::init());
    psql(&cluster.url("postgres"), "CREATE DATABASE omniroute");
    let url = cluster.url("omniroute");
    import(&url, &sample());
    let on_hand_before = psql(&url, "SELECT sum(on_hand) FROM stock");
    let app = replica(&url);

    // Stop the database without a shutdown checkpoint while orders stream in, then restart it.
    let crash = {
        let cluster = cluster.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(800));
            cluster.stop_immediate();
            std::thread::sleep(Duration::from_millis(1500));
            cluster.start();
        })
    };
    let text = std::fs::read_to_string(sample().join("orders.jsonl")).unwrap();
    let orders: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let mut acknowledged: HashMap<String, Value> = HashMap::new();
    let (mut refused, mut after) = (0, 0);
    for group in orders.chunks(8) {
        if crash.is_finished() {
            after += group.len();
            if after > 200 {
                break;
            }
        }
        // Each order is retried until acknowledged: 503 while the database is down.
        let (answered, unavailable) = until_acknowledged(group.iter().collect(), |o| route(&app, o)).await;
        refused += unavailable;
        for (o, r) in answered {
            acknowledged.insert(o["order_id"].as_str().unwrap().to_string(), r.json());
        }
    }
    crash.join().unwrap();
    assert!(refused > 0, "the stop happened while orders were streaming");
    assert!(after > 0, "orders were routed after the restart");

    // Every acknowledged reservation is in the database, with its holds; nothing else is held.
    let stored = psql(
        &url,
        "SELECT r.order_id || ':' || string_agg(u.s || '/' || u.q || '/' || u.n, ',' ORDER BY u.s COLLATE \"C\", u.q COLLATE \"C\")
         FROM reservations r, unnest(r.stores, r.skus, r.qtys) u(s, q, n) WHERE r.state = 1 GROUP BY r.order_id",
    );
    let stored: HashMap<&str, &str> = stored.lines().filter_map(|l| l.split_once(':')).collect();
    let mut with_holds = 0;
    for (id, d) in &acknowledged {
        let mut u = units(d);
        if u.is_empty() {
            assert!(!stored.contains_key(id.as_str()), "{id} holds nothing");
            continue;
        }
        with_holds += 1;
        u.sort();
        let want: Vec<String> = u.iter().map(|(s, k, q)| format!("{s}/{k}/{q}")).collect();
        assert_eq!(stored.get(id.as_str()).copied(), Some(want.join(",").as_str()), "reservation of {id}");
    }
    assert_eq!(stored.len(), with_holds, "only acknowledged orders hold stock");
    assert_eq!(psql(&url, "SELECT count(*) FROM orders"), acknowledged.len().to_string());
    // Stock is conserved: nothing shipped, so on_hand is as imported, and reserved = held.
    assert_eq!(psql(&url, "SELECT sum(on_hand) FROM stock"), on_hand_before);
    assert_eq!(ledger_mismatches(&url), (0, 0));
}

#[test]
fn a_replica_refuses_a_dataset_the_database_does_not_hold() {
    let db = TestDb::create();
    // The sample with its first store moved.
    let dir = tempfile::tempdir().unwrap();
    for f in ["stores.csv", "stock.csv", "dcs.csv"] {
        std::fs::copy(sample().join(f), dir.path().join(f)).unwrap();
    }
    let stores = std::fs::read_to_string(dir.path().join("stores.csv")).unwrap();
    let mut lines: Vec<String> = stores.lines().map(String::from).collect();
    let mut f: Vec<String> = lines[1].split(',').map(String::from).collect();
    let lat: f64 = f[3].parse().unwrap();
    f[3] = format!("{:.6}", lat + 0.01);
    let moved = f[0].clone();
    lines[1] = f.join(",");
    std::fs::write(dir.path().join("stores.csv"), lines.join("\n") + "\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_omniroute"))
        .args(["serve", "--bind", "127.0.0.1:0", "--database-url", &db.url, "--data"])
        .arg(dir.path())
        .env("OMNIROUTE_API_KEYS", format!("checkout:{CHECKOUT}"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("store {moved} in the database")) && err.contains("db import"), "{err}");
}

/// A database written by the versions with numeric ids keeps its stores, stock, day counters,
/// orders and reservations through the migration to text ids, and works on after it.
#[test]
fn numeric_ids_of_an_existing_database_become_their_text() {
    let db = TestDb::empty();
    let migrate = |to: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_omniroute"))
            .args(["db", "--database-url", &db.url, "migrate"])
            .args(to)
            .output()
            .unwrap();
        assert!(out.status.success(), "db migrate failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(migrate(&["--to", "6"]).contains("V6"));
    psql(
        &db.url,
        "INSERT INTO stores VALUES (1886, 12, 'Chengdu', 'SRID=4326;POINT(103.9 30.7)', true, true, 100, 0, 0);
         INSERT INTO stock (store_id, sku, on_hand, reserved, safety_stock, version) VALUES (1886, 2, 10, 3, 1, 4), (1886, 7, 5, 0, 0, 1);
         INSERT INTO store_days VALUES (1886, 20000, 1);
         INSERT INTO orders (order_id, request, response) VALUES ('OLD-1', '{}', '{\"status\":\"assigned\"}');
         INSERT INTO reservations VALUES ('OLD-1', 1, 20000, 4000000000, '{1886}', '{2}', '{3}');",
    );
    let out = migrate(&[]);
    assert!(out.contains("V7"), "{out}");
    assert_eq!(
        psql(&db.url, "SELECT string_agg(store_id || '/' || sku || '/' || on_hand || '/' || reserved, ' ' ORDER BY sku) FROM stock"),
        "1886/2/10/3 1886/7/5/0"
    );
    assert_eq!(psql(&db.url, "SELECT pg_typeof(store_id)::text || ' ' || brand FROM stores"), "text 12");
    assert_eq!(
        psql(&db.url, "SELECT stores[1] || '/' || skus[1] || ' ' || pg_typeof(skus)::text FROM reservations"),
        "1886/2 text[]"
    );
    assert_eq!(psql(&db.url, "SELECT orders FROM store_days WHERE store_id = '1886'"), "1");
    assert_eq!(
        psql(&db.url, "SELECT response FROM orders WHERE order_id = 'OLD-1'"),
        "{\"status\":\"assigned\"}"
    );
    // The functions work on the migrated rows: the old reservation is finished by its text ids,
    // a new one reserves by them.
    assert_eq!(reserve_sql(&db.url, &[("NEW-1", vec![("1886", "7", 2)])]), ["reserved"]);
    assert_eq!(psql(&db.url, "SELECT reserved FROM stock WHERE store_id = '1886' AND sku = '7'"), "2");
    assert_eq!(ledger_mismatches(&db.url), (0, 0));
}

#[actix_rt::test]
async fn redemption_counters_equal_a_recount_after_an_immediate_database_stop() {
    use crate::coupons::{
        campaign, capture, coupon_order, create, first_coupon, open_now, poster_token, stock_coupon_sku,
    };
    let cluster = std::sync::Arc::new(Cluster::init());
    psql(&cluster.url("postgres"), "CREATE DATABASE omniroute");
    let url = cluster.url("omniroute");
    import(&url, &sample());
    let app = spawn_app_with(&sample(), &["--database-url", &url, "--captures-per-address-per-s", "0"]);
    let c =
        create(&app, campaign("1", json!({"budgets": {"redeemed": 150}, "redemption": open_now()}))).await;
    let id = c["id"].as_u64().unwrap();
    let token = poster_token(&app, id, &crate::coupons::beijing_store("1"), 0).await;
    stock_coupon_sku(&app).await;
    for group in (0..400).collect::<Vec<_>>().chunks(50) {
        let replies = join_all(group.iter().map(|i| {
            let (app, token, customer) = (&app, &token, format!("crash-{i}"));
            async move { capture(app, token, &customer).await }
        }))
        .await;
        assert!(replies.iter().all(|r| r.status == 200));
    }

    // Stop the database without a shutdown checkpoint while redemptions stream in.
    let crash = {
        let cluster = cluster.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(500));
            cluster.stop_immediate();
            std::thread::sleep(Duration::from_millis(1500));
            cluster.start();
        })
    };
    let mut applied: Vec<String> = Vec::new();
    let mut refused = 0;
    for group in (0..400).collect::<Vec<usize>>().chunks(8) {
        let (answered, unavailable) = until_acknowledged(group.to_vec(), |i| {
            let body = coupon_order(&format!("co-{i}"), &format!("crash-{i}"), json!([id]));
            post(&app, "/v1/orders/route", CHECKOUT, body)
        })
        .await;
        refused += unavailable;
        for (i, r) in answered {
            if first_coupon(&r.json())["applied"] == true {
                applied.push(format!("co-{i}"));
            }
        }
    }
    crash.join().unwrap();
    assert!(refused > 0, "the stop happened while redemptions were streaming");
    assert_eq!(applied.len(), 150, "the cap held through the stop");
    let recount = || {
        (
            psql(
                &url,
                &format!("SELECT redeemed FROM coupon_redeemed WHERE campaign = {id} AND store_number = -1"),
            ),
            psql(
                &url,
                &format!("SELECT count(*) FROM coupon_redemptions WHERE campaign = {id} AND NOT ended"),
            ),
            psql(&url, &format!("SELECT sum(redeemed) FROM coupon_customers WHERE campaign = {id}")),
        )
    };
    assert_eq!(recount(), ("150".into(), "150".into(), "150".into()));
    let live = psql(&url, &format!("SELECT string_agg(order_id, ',' ORDER BY order_id) FROM coupon_redemptions WHERE campaign = {id}"));
    let mut want = applied.clone();
    want.sort();
    assert_eq!(live, want.join(","), "exactly the acknowledged redemptions are recorded");
    for o in &applied[..20] {
        assert_eq!(post(&app, &format!("/v1/orders/{o}/cancel"), CHECKOUT, String::new()).await.status, 200);
    }
    assert_eq!(recount(), ("130".into(), "130".into(), "130".into()));
}
