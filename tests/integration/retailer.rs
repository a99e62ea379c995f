//! A retailer's own data: text ids as written (non-ASCII, numeric-looking, with spaces and `/`),
//! its own city list and time zone, customers out of the area, SKUs learned from feeds and orders.

use crate::helpers::{run, stderr, stdout};
use crate::parity::encode;
use crate::server::{sample_de, spawn_app_with, TestApp, ADMIN, CHECKOUT, STORE_SYSTEM};
use crate::service::{get, post, send};
use serde_json::{json, Value};
use std::path::Path;

const CITIES: &str = "name,lat,lon,population,region\n\
    Tokyo,35.6895,139.69171,8336599,40\n\
    Osaka,34.69374,135.50218,2592413,32\n\
    Sapporo,43.06417,141.34694,1883027,12\n";

const STORES: &str = "store_id,brand,city,lat,lon,pickup,ship,capacity_per_day,opens,closes\n\
    0001,ブランド,Tokyo,35.6900,139.7000,true,true,100,,\n\
    1,B-1,Tokyo,35.7000,139.7100,true,true,100,,\n\
    上海徐汇店,B-1,,34.7000,135.5100,true,true,100,09:00,21:00\n\
    SH/0042 east,B-2,Osaka,34.6900,135.4900,true,true,100,,\n";

const STOCK: &str = "store_id,sku,on_hand,safety_stock\n\
    0001,SKU-8834-RED,5,0\n\
    1,007,3,0\n\
    1,7,4,0\n\
    上海徐汇店,\"红色,L\",2,0\n\
    SH/0042 east,SKU-8834-RED,1,0\n";

const DCS: &str = "dc_id,city,lat,lon\nDC Nord,Sapporo,43.06,141.35\n";

/// Writes a dataset in Japan with the files above, each replaced by `edit` where it returns
/// `Some` for its name.
fn dataset(dir: &Path, edit: impl Fn(&str) -> Option<String>) {
    std::fs::create_dir_all(dir).unwrap();
    let files = [
        ("cities.csv", CITIES),
        ("stores.csv", STORES),
        ("stock.csv", STOCK),
        ("dcs.csv", DCS),
        ("dataset.toml", "time_zone = \"Asia/Tokyo\"\nmax_customer_distance_km = 400\n"),
    ];
    for (name, text) in files {
        std::fs::write(dir.join(name), edit(name).unwrap_or_else(|| text.to_string())).unwrap();
    }
    std::fs::write(dir.join("orders.jsonl"), "").unwrap();
}

fn order(id: &str, (lon, lat): (f64, f64), lines: Value) -> Value {
    json!({
        "order_id": id, "created_at": "2026-11-11T10:00:00+09:00",
        "customer": {"lon": lon, "lat": lat}, "mode": "ship", "lines": lines,
    })
}

async fn route(app: &TestApp, o: &Value) -> Value {
    let r = post(app, "/v1/orders/route", CHECKOUT, o.to_string()).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

async fn level(app: &TestApp, store: &str, sku: &str) -> Value {
    let r = get(app, &format!("/v1/stock/{}/{}", encode(store), encode(sku)), ADMIN).await;
    assert_eq!(r.status, 200, "{store}/{sku}: {}", String::from_utf8_lossy(&r.body));
    r.json()
}

async fn feed(app: &TestApp, rows: Value) -> Value {
    let r =
        send("PUT", &app.url("/v1/stock"), Some(STORE_SYSTEM), Some(("application/json", rows.to_string())))
            .await
            .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

#[actix_rt::test]
async fn a_retailers_ids_are_kept_as_written_everywhere() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("jp");
    dataset(&dir, |_| None);
    let mut app = spawn_app_with(&dir, &[]);
    // `0001` and `1` are two stores; `007` and `7` two SKUs.
    let tokyo = (139.695, 35.695);
    let d = route(&app, &order("JP-1", tokyo, json!([{"sku": "SKU-8834-RED", "qty": 2}]))).await;
    assert_eq!(
        (d["status"].as_str(), d["shipments"][0]["store_id"].as_str()),
        (Some("assigned"), Some("0001"))
    );
    assert!(d["reservation_expires_at"].as_str().unwrap().ends_with("+09:00"), "Tokyo time: {d}");
    let d =
        route(&app, &order("JP-2", tokyo, json!([{"sku": "007", "qty": 3}, {"sku": "7", "qty": 4}]))).await;
    assert_eq!(d["shipments"][0]["store_id"], "1", "{d}");
    assert_eq!(d["shipments"][0]["lines"], json!([{"sku": "007", "qty": 3}, {"sku": "7", "qty": 4}]));
    assert_eq!(level(&app, "0001", "SKU-8834-RED").await["reserved"], 2);
    assert_eq!(level(&app, "1", "007").await["reserved"], 3);
    // Non-ASCII, a quoted comma, a space and a slash, percent-encoded in paths.
    let osaka = (135.505, 34.695);
    let d = route(&app, &order("JP-3", osaka, json!([{"sku": "红色,L", "qty": 1}]))).await;
    assert_eq!(d["shipments"][0]["store_id"], "上海徐汇店", "{d}");
    let store = get(&app, &format!("/v1/stores/{}", encode("上海徐汇店")), ADMIN).await.json();
    assert_eq!(store["city"], "Osaka", "an empty city is the nearest one: {store}");
    let d = route(&app, &order("JP-4", osaka, json!([{"sku": "SKU-8834-RED", "qty": 1}]))).await;
    assert_eq!(d["shipments"][0]["store_id"], "SH/0042 east", "{d}");
    assert_eq!(level(&app, "SH/0042 east", "SKU-8834-RED").await["available"], 0);
    // Cancel and feed by those ids.
    let r = post(&app, "/v1/orders/JP-4/cancel", CHECKOUT, String::new()).await;
    assert_eq!(r.status, 200);
    assert_eq!(level(&app, "SH/0042 east", "SKU-8834-RED").await["available"], 1);
    let out = feed(&app, json!([{"store_id": "SH/0042 east", "sku": "红色,L", "on_hand": 6}])).await;
    assert_eq!((out["applied"].as_u64(), out["new_rows"].as_u64()), (Some(1), Some(1)));
    // A SKU no store had: learned from the feed, routed on, and still there after a restart.
    let out = feed(&app, json!([{"store_id": "0001", "sku": "NEU 新/ß", "on_hand": 4}])).await;
    assert_eq!(out["new_rows"], 1);
    let d = route(&app, &order("JP-5", tokyo, json!([{"sku": "NEU 新/ß", "qty": 1}]))).await;
    assert_eq!(d["shipments"][0]["store_id"], "0001", "{d}");
    // A SKU nobody stocks ships from the DC.
    let d = route(&app, &order("JP-6", tokyo, json!([{"sku": "ONLINE-ONLY", "qty": 1}]))).await;
    assert_eq!((d["status"].as_str(), d["shipments"][0]["dc_id"].as_str()), (Some("dc"), Some("DC Nord")));
    app.restart();
    let l = level(&app, "0001", "NEU 新/ß").await;
    assert_eq!((l["on_hand"].as_u64(), l["reserved"].as_u64()), (Some(4), Some(1)));
    assert_eq!(level(&app, "SH/0042 east", "红色,L").await["on_hand"], 6);
    let d = route(&app, &order("JP-7", tokyo, json!([{"sku": "NEU 新/ß", "qty": 3}]))).await;
    assert_eq!(d["shipments"][0]["store_id"], "0001", "{d}");
    let again = get(&app, "/v1/orders/JP-3", CHECKOUT).await.json();
    assert_eq!(again["decision"]["shipments"][0]["store_id"], "上海徐汇店");
    let ready = get(&app, "/readyz", ADMIN).await.json();
    assert_eq!(ready["stores"], 4);
    // A customer beyond the dataset's 400 km: refused, naming the field.
    let r = post(
        &app,
        "/v1/orders/route",
        CHECKOUT,
        order("JP-FAR", (127.0, 37.5), json!([{"sku": "7", "qty": 1}])).to_string(),
    )
    .await;
    assert_eq!(r.status, 422);
    assert_eq!(
        (r.json()["code"].clone(), r.json()["field"].clone()),
        (json!("out_of_area"), json!("customer"))
    );
}

#[test]
fn the_cli_reports_stores_placed_by_distance_and_routes_with_text_ids() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("jp");
    dataset(&dir, |_| None);
    let o = order("CLI-1", (135.505, 34.695), json!([{"sku": "红色,L", "qty": 1}]));
    let out = run(&["route", "--data", dir.to_str().unwrap(), "--order", "-"], Some(&o.to_string()));
    assert!(out.status.success(), "{}", stderr(&out));
    let d: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(d["shipments"][0]["store_id"], "上海徐汇店");
    assert!(stderr(&out).contains("1 stores name no city"), "{}", stderr(&out));
}

/// Every bad id or city stops the load with file, line and field, and nothing is served.
#[test]
fn bad_ids_are_refused_with_file_line_and_field() {
    let long = "x".repeat(65);
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "stores.csv",
            STORES.replace("\n1,B-1", "\n0001,B-1"),
            "stores.csv:3: field `store_id`: 0001 already defined on line 2",
        ),
        ("stores.csv", STORES.replace("\n1,B-1", "\n,B-1"), "stores.csv:3: field `store_id`"),
        ("stores.csv", STORES.replace("\n1,B-1", &format!("\n{long},B-1")), "stores.csv:3: field `store_id`"),
        ("stores.csv", STORES.replace("\n1,B-1", "\n\"a\u{7}b\",B-1"), "stores.csv:3: field `store_id`"),
        (
            "stores.csv",
            STORES.replace(",Osaka,", ",Kyoto,"),
            "stores.csv:5: field `city`: `Kyoto` is not in the dataset's city list",
        ),
        ("stock.csv", STOCK.replace("1,7,4", &format!("1,{long},4")), "stock.csv:4: field `sku`"),
        ("stock.csv", STOCK.replace("1,7,4", "1,\"a\tb\",4"), "stock.csv:4: field `sku`"),
        (
            "stock.csv",
            STOCK.replace("1,7,4", "01,7,4"),
            "stock.csv:4: field `store_id`: store 01 is not in stores.csv",
        ),
        ("stock.csv", STOCK.replace("1,7,4", "1,007,4"), "stock.csv"),
        (
            "dcs.csv",
            format!("{DCS}DC Nord,Tokyo,35.6,139.7\n"),
            "dcs.csv:3: field `dc_id`: DC Nord already defined on line 2",
        ),
        ("cities.csv", format!("{CITIES}Tokyo,35.0,139.0,5,1\n"), "cities.csv:5: field `name`"),
        ("dataset.toml", "time_zone = \"Asia/Atlantis\"\n".to_string(), "dataset.toml:1: field `time_zone`"),
    ];
    for (file, text, want) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("bad");
        dataset(&dir, |name| (name == file).then(|| text.clone()));
        let out = run(&["replay", "--data", dir.to_str().unwrap()], None);
        assert!(!out.status.success(), "{file} loaded: {want}");
        assert!(stderr(&out).contains(want), "{file}: want `{want}` in: {}", stderr(&out));
    }
}

/// The second bundled sample (German cities, Berlin time, text ids) serves and replays.
#[actix_rt::test]
async fn the_german_sample_routes_in_berlin_time() {
    let out = run(&["replay", "--data", sample_de().to_str().unwrap(), "--json"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let kpis: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert!(kpis["fill_rate_pct"].as_f64().unwrap() > 90.0, "{kpis}");
    let app = spawn_app_with(&sample_de(), &[]);
    let line = std::fs::read_to_string(sample_de().join("orders.jsonl")).unwrap();
    let o: Value = serde_json::from_str(line.lines().find(|l| l.contains("\"ship\"")).unwrap()).unwrap();
    assert!(o["created_at"].as_str().unwrap().ends_with("+01:00"), "{o}");
    let d = route(&app, &o).await;
    assert!(d["reservation_expires_at"].as_str().is_none_or(|t| t.ends_with("+01:00")), "{d}");
    let store = d["shipments"][0]["store_id"].as_str().unwrap();
    let s = get(&app, &format!("/v1/stores/{}", encode(store)), ADMIN).await.json();
    assert!(store.starts_with(s["city"].as_str().unwrap()), "{s}");
}

/// On PostgreSQL, a SKU one replica's feed brings is learned by the others from the database's
/// notifications and routed on within a second.
#[actix_rt::test]
async fn replicas_learn_a_new_sku_from_another_replicas_feed() {
    use crate::postgres::{replica_on, TestDb};
    let db = TestDb::create_with(&sample_de());
    let (a, b) = (replica_on(&sample_de(), &db.url), replica_on(&sample_de(), &db.url));
    let stores = std::fs::read_to_string(sample_de().join("stores.csv")).unwrap();
    let row: Vec<&str> =
        stores.lines().skip(1).map(|l| l.split(',').collect::<Vec<_>>()).find(|f| f[5] == "true").unwrap();
    let (store, at) = (row[0], (row[4].parse::<f64>().unwrap(), row[3].parse::<f64>().unwrap()));
    let pickup = |id: String| {
        json!({
            "order_id": id, "created_at": "2026-11-11T10:00:00+01:00",
            "customer": {"lon": at.0, "lat": at.1}, "mode": "pickup", "pickup_store_id": store,
            "lines": [{"sku": "Größe 42/rot", "qty": 1}],
        })
    };
    let out = feed(&a, json!([{"store_id": store, "sku": "Größe 42/rot", "on_hand": 3}])).await;
    assert_eq!(out["new_rows"], 1);
    let t = std::time::Instant::now();
    for n in 0.. {
        let d = route(&b, &pickup(format!("LEARN-{n}"))).await;
        if d["status"] == "assigned" {
            assert_eq!(d["shipments"][0]["store_id"], store);
            break;
        }
        assert!(t.elapsed() < std::time::Duration::from_secs(1), "replica b never routed the new SKU: {d}");
        actix_rt::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let l = level(&a, store, "Größe 42/rot").await;
    assert_eq!((l["on_hand"].as_u64(), l["reserved"].as_u64()), (Some(3), Some(1)), "{l}");
    // The shopper's id is stored with the order.
    let mut o = pickup("WITH-CUSTOMER".into());
    o["customer_id"] = json!("Kundin 7/α");
    route(&a, &o).await;
    let stored =
        crate::postgres::psql(&db.url, "SELECT customer_id FROM orders WHERE order_id = 'WITH-CUSTOMER'");
    assert_eq!(stored, "Kundin 7/α");
}
