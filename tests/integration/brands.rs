//! Keys scoped to brands: a store system acts on its brands' stores only.

use crate::server::{sample, spawn_app, TestApp, ADMIN, SCOPED_STORE_SYSTEM};
use crate::service::{get, send};
use serde_json::{json, Value};

/// (store id, brand) of the sample's stores, in file order.
fn stores() -> Vec<(String, String)> {
    std::fs::read_to_string(sample().join("stores.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].to_string(), f[1].to_string())
        })
        .collect()
}

fn store_of(brand: &str) -> String {
    stores().into_iter().find(|(_, b)| b == brand).unwrap().0
}

async fn put_stock(app: &TestApp, key: &str, rows: Value) -> crate::service::Reply {
    send("PUT", &app.url("/v1/stock"), Some(key), Some(("application/json", rows.to_string()))).await.unwrap()
}

#[actix_rt::test]
async fn a_scoped_store_system_acts_on_its_brands_stores_only() {
    let app = spawn_app();
    let (mine, other) = (store_of("1"), store_of("4"));
    let r =
        put_stock(&app, SCOPED_STORE_SYSTEM, json!([{"store_id": mine, "sku": "1", "on_hand": 77}])).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let level = get(&app, &format!("/v1/stock/{mine}/1"), ADMIN).await.json();
    assert_eq!(level["on_hand"], 77);

    // One row of another brand's store refuses the whole feed: nothing applied, nothing learned.
    let learned_before = get(&app, "/readyz", ADMIN).await.json()["skus_learned"].clone();
    let r = put_stock(
        &app,
        SCOPED_STORE_SYSTEM,
        json!([
            {"store_id": mine, "sku": "1", "on_hand": 5},
            {"store_id": mine, "sku": "NEW-SKU-1", "on_hand": 5},
            {"store_id": other, "sku": "1", "on_hand": 5},
        ]),
    )
    .await;
    assert_eq!(r.status, 403);
    let body = r.json();
    assert_eq!(body["code"], "brand_out_of_scope");
    assert_eq!(body["field"], "[2].store_id");
    assert!(
        body["message"].as_str().unwrap().contains(&format!("store {other} belongs to brand 4")),
        "{body}"
    );
    assert_eq!(get(&app, &format!("/v1/stock/{mine}/1"), ADMIN).await.json()["on_hand"], 77);
    assert_eq!(get(&app, "/readyz", ADMIN).await.json()["skus_learned"], learned_before);

    // Reads of another brand's stock or store are refused; its own are answered.
    let r = send("GET", &app.url(&format!("/v1/stock/{other}/1")), Some(SCOPED_STORE_SYSTEM), None)
        .await
        .unwrap();
    assert_eq!((r.status, r.json()["code"].clone()), (403, json!("brand_out_of_scope")));
    let r =
        send("GET", &app.url(&format!("/v1/stores/{other}")), Some(SCOPED_STORE_SYSTEM), None).await.unwrap();
    assert_eq!(r.status, 403);
    let r =
        send("GET", &app.url(&format!("/v1/stores/{mine}")), Some(SCOPED_STORE_SYSTEM), None).await.unwrap();
    assert_eq!(r.status, 200);

    // Nearby lists the k nearest of its brands' stores, and only those.
    let brand: std::collections::HashMap<String, String> = stores().into_iter().collect();
    let all = get(&app, "/v1/stores/nearby?lat=31.2&lon=121.45&k=5", ADMIN).await.json();
    assert!(all
        .as_array()
        .unwrap()
        .iter()
        .any(|s| !["1", "2"].contains(&brand[s["store_id"].as_str().unwrap()].as_str())));
    let r =
        send("GET", &app.url("/v1/stores/nearby?lat=31.2&lon=121.45&k=5"), Some(SCOPED_STORE_SYSTEM), None)
            .await
            .unwrap();
    let scoped = r.json();
    let scoped = scoped.as_array().unwrap();
    assert_eq!(scoped.len(), 5);
    assert!(scoped.iter().all(|s| ["1", "2"].contains(&brand[s["store_id"].as_str().unwrap()].as_str())));
    let d: Vec<f64> = scoped.iter().map(|s| s["distance_m"].as_f64().unwrap()).collect();
    assert!(d.windows(2).all(|w| w[0] <= w[1]), "nearest first: {d:?}");
}
