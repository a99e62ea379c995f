//! The PostgreSQL backend on Citus (stock and orders distributed by region): the same guarantees
//! as on one PostgreSQL server, on a real cluster of a coordinator and two workers.
//!
//! `OMNIROUTE_TEST_CITUS_URL` names the coordinator of a running cluster (`scripts/test` starts
//! one with `scripts/citus start` when Citus is installed or can be built, and says so in one line
//! when it cannot); each test creates its own database on every node. Without it these tests
//! return at once. The worker-stop test starts a private cluster of its own.

use crate::postgres::{
    import, is_root, only_hot_store_holds, oversubscribe_the_hot_store, pickup, psql, replica_one_batcher,
    retries_elsewhere_answer_the_same, route, same_decisions_as_embedded, units, until_acknowledged, HOT,
};
use crate::server::{sample, spawn_app_with, TestApp};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The coordinator of the shared test cluster, when there is one.
fn cluster_url() -> Option<String> {
    let url = std::env::var("OMNIROUTE_TEST_CITUS_URL").ok().filter(|u| !u.is_empty());
    if url.is_none() {
        eprintln!("no Citus cluster (OMNIROUTE_TEST_CITUS_URL unset): skipped");
    }
    url
}

fn base(url: &str) -> &str {
    url.rsplit_once('/').map_or(url, |(b, _)| b)
}

/// A database of the same name on the coordinator and on every worker, with Citus and PostGIS,
/// the workers registered; dropped afterwards.
struct CitusDb {
    /// The `postgres` database of each node, coordinator first.
    nodes: Vec<String>,
    name: String,
    url: String,
}

impl CitusDb {
    /// A fresh database holding the sample dataset, distributed by `db import` (which migrates).
    fn create(coordinator: &str) -> CitusDb {
        let db = CitusDb::empty(coordinator);
        import(&db.url, &sample());
        db
    }

    fn empty(coordinator: &str) -> CitusDb {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!("omniroute_c{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        let workers = psql(
            coordinator,
            "SELECT nodename || ':' || nodeport FROM pg_dist_node WHERE groupid > 0 ORDER BY nodeport",
        );
        let mut nodes = vec![coordinator.to_string()];
        nodes.extend(workers.lines().map(|hp| format!("postgres://postgres@{hp}/postgres")));
        for node in &nodes {
            psql(node, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
            psql(node, &format!("CREATE DATABASE {name}"));
            let url = format!("{}/{name}", base(node));
            psql(&url, "CREATE EXTENSION citus");
            psql(&url, "CREATE EXTENSION postgis");
        }
        let url = format!("{}/{name}", base(coordinator));
        let (host, port) = host_port(coordinator);
        psql(&url, &format!("SELECT citus_set_coordinator_host('{host}', {port})"));
        for node in &nodes[1..] {
            let (h, p) = host_port(node);
            psql(&url, &format!("SELECT citus_add_node('{h}', {p})"));
        }
        CitusDb { nodes, name, url }
    }
}

impl Drop for CitusDb {
    fn drop(&mut self) {
        for node in &self.nodes {
            let _ = Command::new("psql")
                .arg(node)
                .args(["-X", "-q", "-c", &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)])
                .output();
        }
    }
}

fn host_port(url: &str) -> (String, u16) {
    let hp = url.split('@').nth(1).and_then(|r| r.split('/').next()).expect("postgres://user@host:port/db");
    let (h, p) = hp.rsplit_once(':').expect("url names a port");
    (h.to_string(), p.parse().expect("port"))
}

/// Cells whose reserved count differs from what the held reservations hold, and cells that
/// promise more than they have (both must be zero); read with queries Citus runs on every shard.
fn ledger_mismatches(url: &str) -> (usize, usize) {
    let mut want: HashMap<(String, String), i64> = HashMap::new();
    let held = psql(
        url,
        "SELECT u.s || ',' || u.q || ',' || u.n FROM reservations r, unnest(r.stores, r.skus, r.qtys) u(s, q, n) WHERE r.state = 1",
    );
    for l in held.lines() {
        let f: Vec<&str> = l.split(',').collect();
        *want.entry((f[0].into(), f[1].into())).or_default() += f[2].parse::<i64>().unwrap();
    }
    let cells = psql(url, "SELECT store_id || ',' || sku || ',' || reserved FROM stock WHERE reserved > 0");
    let mut got: HashMap<(String, String), i64> = HashMap::new();
    for l in cells.lines() {
        let f: Vec<&str> = l.split(',').collect();
        got.insert((f[0].into(), f[1].into()), f[2].parse().unwrap());
    }
    let keys: std::collections::HashSet<_> = want.keys().chain(got.keys()).cloned().collect();
    let held = keys
        .iter()
        .filter(|k| want.get(*k).copied().unwrap_or(0) != got.get(*k).copied().unwrap_or(0))
        .count();
    let over: usize =
        psql(url, "SELECT count(*) FROM stock WHERE reserved > on_hand - safety_stock AND reserved > 0")
            .parse()
            .unwrap();
    (held, over)
}

/// Orders whose holds touch a store outside the order's region, and orders with holds.
fn cross_region(url: &str) -> (usize, usize) {
    let regions: HashMap<String, String> = psql(url, "SELECT store_id || ',' || region FROM stores")
        .lines()
        .filter_map(|l| l.split_once(',').map(|(a, b)| (a.to_string(), b.to_string())))
        .collect();
    let rows = psql(url, "SELECT region || ';' || array_to_string(stores, ',') FROM reservations");
    let (mut cross, mut all) = (0, 0);
    for l in rows.lines() {
        let (region, stores) = l.split_once(';').unwrap();
        all += 1;
        if stores.split(',').any(|s| regions[s] != region) {
            cross += 1;
        }
    }
    (cross, all)
}

#[actix_rt::test]
async fn two_replicas_on_citus_never_oversell_a_hot_sku_and_agree_on_retries() {
    let Some(cluster) = cluster_url() else { return };
    let db = CitusDb::create(&cluster);
    assert_eq!(
        psql(&db.url, "SELECT count(*) FROM pg_dist_partition WHERE logicalrelid::text = 'stock'"),
        "1"
    );
    let apps: Vec<TestApp> = (0..2).map(|_| replica_one_batcher(&db.url)).collect();
    only_hot_store_holds(&apps, &HOT).await;

    // Demand three times the supply, over both replicas at once.
    let (orders, replies) = oversubscribe_the_hot_store(&apps, &db.url).await;
    assert_eq!(ledger_mismatches(&db.url), (0, 0));
    assert_eq!(psql(&db.url, "SELECT count(*) FROM orders"), orders.len().to_string());
    let reservations = psql(&db.url, "SELECT count(*) FROM reservations");

    // A retry on the other replica gets the same bytes and reserves nothing more; a read finds
    // the order whichever shard holds it.
    retries_elsewhere_answer_the_same(&apps, &orders, &replies, &db.url).await;
    assert_eq!(psql(&db.url, "SELECT count(*) FROM reservations"), reservations);
    let id = orders[0]["order_id"].as_str().unwrap();
    let read = crate::service::send(
        "GET",
        &apps[1].url(&format!("/v1/orders/{id}")),
        Some(crate::server::CHECKOUT),
        None,
    )
    .await
    .unwrap();
    assert_eq!(read.status, 200, "{}", String::from_utf8_lossy(&read.body));
    assert_eq!(read.json()["decision"]["order_id"], id);
    assert_eq!(ledger_mismatches(&db.url), (0, 0));

    // A feed on replica 0 reaches replica 1's cache through the change log.
    let feed = serde_json::json!([{"store_id": "7", "sku": "192", "on_hand": 5}]).to_string();
    let r = crate::service::send(
        "PUT",
        &apps[0].url("/v1/stock"),
        Some(crate::server::STORE_SYSTEM),
        Some(("application/json", feed)),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);
    let t = Instant::now();
    let mut n = 0;
    loop {
        let d = route(&apps[1], &pickup(&format!("VIS-{n}"), "7", "192")).await.json();
        if d["status"] == "assigned" && d["shipments"][0]["store_id"] == "7" {
            break;
        }
        n += 1;
        assert!(t.elapsed() < Duration::from_secs(2), "replica 1 did not see the feed within 2 s");
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
}

#[actix_rt::test]
async fn the_same_stream_gets_the_same_decisions_on_citus_and_embedded() {
    let Some(cluster) = cluster_url() else { return };
    let db = CitusDb::create(&cluster);
    same_decisions_as_embedded(&spawn_app_with(&sample(), &["--database-url", &db.url])).await;
    assert_eq!(ledger_mismatches(&db.url), (0, 0));
    // Regions follow provinces: most orders stay on one node.
    let (cross, all) = cross_region(&db.url);
    assert!(all > 100 && cross * 20 <= all, "{cross} of {all} orders cross a region border");
}

#[actix_rt::test]
async fn an_order_across_regions_reserves_ships_and_cancels_on_both_workers() {
    let Some(cluster) = cluster_url() else { return };
    let db = CitusDb::create(&cluster);
    // Two stores of different regions on different workers, and one SKU each holds.
    let pick = psql(
        &db.url,
        "WITH r AS (SELECT DISTINCT ON (n.nodeport) s.region, n.nodeport, s.store_id
                    FROM stores s
                    JOIN pg_dist_shard_placement n ON n.shardid = get_shard_id_for_distribution_column('stock', s.region)
                    ORDER BY n.nodeport, s.store_id)
         SELECT string_agg(region || ':' || store_id, ',' ORDER BY nodeport) FROM r",
    );
    let stores: Vec<(&str, &str)> = pick.split(',').filter_map(|p| p.split_once(':')).collect();
    assert_eq!(stores.len(), 2, "two workers hold regions: {pick}");
    let (a, b) = (stores[0], stores[1]);
    for (_, s) in [a, b] {
        psql(&db.url, &format!("UPDATE stock SET on_hand = 4 WHERE store_id = '{s}' AND sku = '1'"));
        psql(&db.url, &format!("INSERT INTO stock (region, store_id, sku, on_hand) SELECT region, store_id, '1', 4 FROM stores WHERE store_id = '{s}' ON CONFLICT DO NOTHING"));
    }
    let batch =
        format!(r#"[{{"id":"X1","day":1,"exp":4102444800,"h":[["{}","1",1],["{}","1",2]]}}]"#, a.1, b.1);
    let out = psql(
        &db.url,
        &format!("SELECT outcome FROM omniroute_reserve_r('{}', '{batch}', ARRAY['q'], ARRAY['a'])", a.0),
    );
    assert_eq!(out, "reserved");
    let reserved =
        |s: &str| psql(&db.url, &format!("SELECT reserved FROM stock WHERE store_id = '{s}' AND sku = '1'"));
    assert_eq!((reserved(a.1), reserved(b.1)), ("1".to_string(), "2".to_string()));
    assert_eq!(ledger_mismatches(&db.url), (0, 0));
    assert_eq!(cross_region(&db.url), (1, 1));
    // A retry of the same id is answered from the record and changes nothing.
    let again = psql(&db.url, &format!("SELECT outcome || ':' || response FROM omniroute_reserve_r('{}', '{batch}', ARRAY['q'], ARRAY['a'])", a.0));
    assert_eq!(again, "existing:a");
    // Shipping releases both regions' holds and takes the units off hand, atomically.
    let done = psql(
        &db.url,
        &format!("SELECT state || ',' || changed FROM omniroute_finish_r('{}', 'X1', 2::smallint)", a.0),
    );
    assert_eq!(done, "2,true");
    assert_eq!((reserved(a.1), reserved(b.1)), ("0".to_string(), "0".to_string()));
    let on_hand =
        |s: &str| psql(&db.url, &format!("SELECT on_hand FROM stock WHERE store_id = '{s}' AND sku = '1'"));
    assert_eq!((on_hand(a.1), on_hand(b.1)), ("3".to_string(), "2".to_string()));
    // A refused order (one side short) changes neither side.
    let batch =
        format!(r#"[{{"id":"X2","day":1,"exp":4102444800,"h":[["{}","1",1],["{}","1",3]]}}]"#, a.1, b.1);
    let out = psql(
        &db.url,
        &format!("SELECT outcome FROM omniroute_reserve_r('{}', '{batch}', ARRAY['q'], ARRAY['a'])", a.0),
    );
    assert_eq!(out, "refused");
    assert_eq!((reserved(a.1), reserved(b.1)), ("0".to_string(), "0".to_string()));
    assert_eq!(psql(&db.url, "SELECT count(*) FROM orders WHERE order_id = 'X2'"), "0");
}

/// A private Citus cluster that a test may stop a worker of.
struct PrivateCluster {
    dir: tempfile::TempDir,
    port: u16,
}

fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts")
}

impl PrivateCluster {
    fn start() -> PrivateCluster {
        let dir = tempfile::tempdir().unwrap();
        // Three consecutive free ports.
        let port = (0..200)
            .map(|i| 20_000 + (std::process::id() as u16 % 300) * 3 + i * 7)
            .find(|p| (0..3).all(|k| std::net::TcpListener::bind(("127.0.0.1", p + k)).is_ok()))
            .expect("free ports");
        let out = Command::new(scripts().join("citus"))
            .arg("start")
            .arg(dir.path())
            .arg(port.to_string())
            .output()
            .unwrap();
        assert!(out.status.success(), "scripts/citus start: {}", String::from_utf8_lossy(&out.stderr));
        PrivateCluster { dir, port }
    }

    fn pg_ctl(&self, node: u16, args: &[&str]) {
        let data = self.dir.path().join(format!("n{node}"));
        let mut c = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(crate::postgres::pg_bin("pg_ctl"));
            c
        } else {
            Command::new(crate::postgres::pg_bin("pg_ctl"))
        };
        let log = data.join("server.log");
        let out = c.arg("-D").arg(&data).arg("-l").arg(log).args(args).output().unwrap();
        assert!(out.status.success(), "pg_ctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let _ = Command::new(scripts().join("citus")).arg("stop").arg(self.dir.path()).output();
    }
}

#[actix_rt::test]
async fn a_stopped_worker_refuses_its_regions_with_503_and_keeps_acknowledged_reservations() {
    if cluster_url().is_none() {
        return;
    }
    let cluster = std::sync::Arc::new(PrivateCluster::start());
    let url = cluster.url();
    import(&url, &sample());
    let on_hand_before = psql(&url, "SELECT sum(on_hand) FROM stock");
    // The regions the second worker holds.
    let down: std::collections::HashSet<String> = psql(
        &url,
        &format!(
            "SELECT s.store_id FROM stores s JOIN pg_dist_shard_placement n
               ON n.shardid = get_shard_id_for_distribution_column('stock', s.region)
             WHERE n.nodeport = {}",
            cluster.port + 2
        ),
    )
    .lines()
    .map(String::from)
    .collect();
    assert!(!down.is_empty());
    let app = spawn_app_with(&sample(), &["--database-url", &url]);

    let text = std::fs::read_to_string(sample().join("orders.jsonl")).unwrap();
    let orders: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    // Stop the worker without a shutdown checkpoint while orders stream in.
    let mut acknowledged: HashMap<String, Value> = HashMap::new();
    let mut stream = orders.iter();
    for o in stream.by_ref().take(150) {
        let r = route(&app, o).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        acknowledged.insert(o["order_id"].as_str().unwrap().to_string(), r.json());
    }
    cluster.pg_ctl(2, &["-m", "immediate", "-w", "stop"]);
    let (mut refused, mut served, mut pending) = (0, 0, vec![]);
    for o in stream.by_ref().take(300) {
        let r = route(&app, o).await;
        match r.status {
            200 => {
                let d = r.json();
                for (store, _, _) in units(&d) {
                    assert!(!down.contains(&store), "served from store {store} of the stopped worker");
                }
                served += 1;
                acknowledged.insert(o["order_id"].as_str().unwrap().to_string(), d);
            }
            503 => {
                assert_eq!(r.json()["code"], "storage_unavailable", "{}", String::from_utf8_lossy(&r.body));
                refused += 1;
                pending.push(o);
            }
            s => panic!("unexpected {s}: {}", String::from_utf8_lossy(&r.body)),
        }
    }
    assert!(refused > 0, "orders of the stopped worker's regions were refused");
    assert!(served > 0, "the other regions were served while a worker was down");
    cluster.pg_ctl(2, &["-w", "start"]);
    let (answered, _) = until_acknowledged(pending, |o| route(&app, o)).await;
    for (o, r) in answered {
        acknowledged.insert(o["order_id"].as_str().unwrap().to_string(), r.json());
    }

    // Every acknowledged reservation is in the database with its holds; nothing else is held.
    let stored = psql(
        &url,
        "SELECT r.order_id || ':' || array_to_string(r.stores, ',') || '/' || array_to_string(r.skus, ',') || '/' || array_to_string(r.qtys, ',')
         FROM reservations r WHERE r.state = 1",
    );
    let stored: HashMap<&str, &str> = stored.lines().filter_map(|l| l.split_once(':')).collect();
    let mut with_holds = 0;
    for (id, d) in &acknowledged {
        let u = units(d);
        if u.is_empty() {
            assert!(!stored.contains_key(id.as_str()), "{id} holds nothing");
            continue;
        }
        with_holds += 1;
        assert!(stored.contains_key(id.as_str()), "acknowledged reservation of {id} is stored");
    }
    assert_eq!(stored.len(), with_holds, "only acknowledged orders hold stock");
    assert_eq!(psql(&url, "SELECT count(*) FROM orders"), acknowledged.len().to_string());
    assert_eq!(psql(&url, "SELECT sum(on_hand) FROM stock"), on_hand_before);
    assert_eq!(ledger_mismatches(&url), (0, 0));
}

#[actix_rt::test]
async fn held_reservations_expire_region_by_region() {
    let Some(cluster) = cluster_url() else { return };
    let db = CitusDb::create(&cluster);
    let app = spawn_app_with(&sample(), &["--database-url", &db.url, "--reservation-ttl-s", "1"]);
    let text = std::fs::read_to_string(sample().join("orders.jsonl")).unwrap();
    let mut held = 0;
    for line in text.lines().take(20) {
        let r = route(&app, &serde_json::from_str(line).unwrap()).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        held += usize::from(!units(&r.json()).is_empty());
    }
    assert!(held > 0);
    let t = Instant::now();
    while psql(&db.url, "SELECT count(*) FROM reservations WHERE state = 4") != held.to_string() {
        assert!(t.elapsed() < Duration::from_secs(20), "held reservations did not expire");
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(psql(&db.url, "SELECT count(*) FROM stock WHERE reserved <> 0"), "0");
    assert_eq!(ledger_mismatches(&db.url), (0, 0));
}
