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

async fn create_key(app: &TestApp, body: Value) -> crate::service::Reply {
    send("POST", &app.url("/v1/admin/keys"), Some(ADMIN), Some(("application/json", body.to_string())))
        .await
        .unwrap()
}

/// Status of a feed of one row (store `store`, SKU 1) sent with `key`.
async fn feed_status(app: &TestApp, key: &str, store: &str) -> u16 {
    put_stock(app, key, json!([{"store_id": store, "sku": "1", "on_hand": 9}])).await.status
}

/// Keys created over the API: scoped like bootstrap keys, stored as hashes, durable across a
/// restart, rotated with an overlap, revoked at once; only admin manages them; bad requests name
/// the field.
#[actix_rt::test]
async fn admin_creates_rotates_and_revokes_keys_that_survive_a_restart() {
    let mut app = spawn_app();
    let (mine, other) = (store_of("1"), store_of("4"));
    let r = create_key(&app, json!({"role": "store-system", "brands": ["1"]})).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let created = r.json();
    let key = created["key"].as_str().unwrap().to_string();
    let id = created["id"].as_str().unwrap().to_string();
    assert!(key.starts_with("omr_") && key.contains(&id));
    assert_eq!((created["role"].clone(), created["brands"].clone()), (json!("store-system"), json!(["1"])));
    assert_eq!(feed_status(&app, &key, &mine).await, 200);
    assert_eq!(feed_status(&app, &key, &other).await, 403);
    assert_eq!(feed_status(&app, &format!("{key}x"), &mine).await, 401, "a key that differs is no key");

    let list = get(&app, "/v1/admin/keys", ADMIN).await;
    let text = String::from_utf8_lossy(&list.body).to_string();
    assert!(
        !text.contains(&key[key.len() - 20..]) && !text.contains("sha256"),
        "no key or hash listed: {text}"
    );
    assert_eq!(list.json()[0]["id"], id.as_str());
    assert_eq!(list.json()[0]["active"], true);
    let state_file = std::fs::read(app.state.path().join("db").join("state.redb")).unwrap();
    assert!(!state_file.windows(key.len()).any(|w| w == key.as_bytes()), "the key itself is not stored");

    // Durable: the same key works after a kill -9 and a restart.
    app.kill();
    app.restart();
    let mut ok = false;
    for _ in 0..100 {
        if feed_status(&app, &key, &mine).await == 200 {
            ok = true;
            break;
        }
        actix_rt::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ok, "the key works again after a restart");

    // Rotation: both keys work during the overlap; revoking the old one stops it at once.
    let rotate = |body: Value| {
        let url = app.url(&format!("/v1/admin/keys/{id}/rotate"));
        async move { send("POST", &url, Some(ADMIN), Some(("application/json", body.to_string()))).await.unwrap() }
    };
    let r = rotate(json!({"overlap_s": 600})).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let new_key = r.json()["key"].as_str().unwrap().to_string();
    assert_eq!(r.json()["brands"], json!(["1"]));
    assert_eq!(feed_status(&app, &new_key, &mine).await, 200);
    assert_eq!(feed_status(&app, &new_key, &other).await, 403, "the new key keeps the scope");
    assert_eq!(feed_status(&app, &key, &mine).await, 200, "the old key works during the overlap");
    let revoke =
        send("POST", &app.url(&format!("/v1/admin/keys/{id}/revoke")), Some(ADMIN), None).await.unwrap();
    assert_eq!(revoke.status, 200);
    assert_eq!(revoke.json()["active"], false);
    assert_eq!(feed_status(&app, &key, &mine).await, 401);
    assert_eq!(feed_status(&app, &new_key, &mine).await, 200);
    let again =
        send("POST", &app.url(&format!("/v1/admin/keys/{id}/revoke")), Some(ADMIN), None).await.unwrap();
    assert_eq!(again.json()["revoked_at"], revoke.json()["revoked_at"], "revoking twice changes nothing");
    assert_eq!(rotate(json!({})).await.status, 409, "a revoked key cannot be rotated");

    // Only admin manages keys; bad requests name the field.
    let r = send("GET", &app.url("/v1/admin/keys"), Some(&new_key), None).await.unwrap();
    assert_eq!(r.status, 403);
    for (body, field) in [
        (json!({"role": "boss"}), "role"),
        (json!({"role": "checkout", "brands": ["1"]}), "brands"),
        (json!({"role": "store-system", "brands": []}), "brands"),
        (json!({"role": "planner", "expires_in_s": 5}), "expires_in_s"),
        (json!({"role": "planner", "colour": "red"}), "colour"),
    ] {
        let r = create_key(&app, body.clone()).await;
        assert_eq!(r.status, 400, "{body}");
        assert!(
            r.json()["field"].as_str().unwrap_or("").contains(field)
                || r.json()["message"].as_str().unwrap().contains(field),
            "{body}: {}",
            r.json()
        );
    }
    let r = send("POST", &app.url("/v1/admin/keys/nope/revoke"), Some(ADMIN), None).await.unwrap();
    assert_eq!(r.status, 404);
    // An expiring key stops working by itself.
    let r = create_key(&app, json!({"role": "planner", "expires_in_s": 60})).await;
    assert_eq!(r.status, 201);
    assert!(r.json()["expires_at"].is_string());
}

/// Every stock feed is in the audit log, accepted or refused, per brand, with the key's id; a
/// store system reads its own brands' entries only; admin reads all, also as CSV; entries
/// survive a restart.
#[actix_rt::test]
async fn the_audit_log_records_every_feed_and_each_brand_reads_its_own() {
    let mut app = spawn_app();
    let (mine, also_mine, other) = (store_of("1"), store_of("2"), store_of("4"));
    assert_eq!(feed_status(&app, SCOPED_STORE_SYSTEM, &mine).await, 200);
    assert_eq!(feed_status(&app, SCOPED_STORE_SYSTEM, &other).await, 403);
    let r = put_stock(
        &app,
        crate::server::STORE_SYSTEM,
        json!([
            {"store_id": mine, "sku": "1", "on_hand": 3},
            {"store_id": also_mine, "sku": "1", "on_hand": 3},
            {"store_id": other, "sku": "1", "on_hand": 3},
            {"store_id": other, "sku": "2", "on_hand": 3},
        ]),
    )
    .await;
    assert_eq!(r.status, 200);
    // Refused by the ledger: on_hand would go below zero.
    let r = put_stock(&app, SCOPED_STORE_SYSTEM, json!([{"store_id": mine, "sku": "1", "delta": -1000000}]))
        .await;
    assert_eq!(r.status, 422, "{}", String::from_utf8_lossy(&r.body));

    let all = get(&app, "/v1/audit/stock", ADMIN).await.json();
    let entries = all["entries"].as_array().unwrap();
    let summary: Vec<(String, String, u64, bool)> = entries
        .iter()
        .map(|e| {
            (
                e["key_id"].as_str().unwrap().to_string(),
                e["brand"].as_str().unwrap().to_string(),
                e["rows"].as_u64().unwrap(),
                e["accepted"].as_bool().unwrap(),
            )
        })
        .collect();
    let scoped = "bootstrap-5".to_string();
    let plain = "bootstrap-3".to_string();
    assert_eq!(
        summary,
        vec![
            (scoped.clone(), "1".into(), 1, true),
            (scoped.clone(), "4".into(), 1, false),
            (plain.clone(), "1".into(), 1, true),
            (plain.clone(), "2".into(), 1, true),
            (plain, "4".into(), 2, true),
            (scoped, "1".into(), 1, false),
        ]
    );
    assert!(entries[1]["reason"].as_str().unwrap().contains("brand 4"));
    assert!(
        entries[5]["reason"].as_str().unwrap().contains("below zero")
            || entries[5]["reason"].as_str().unwrap().contains("negative"),
        "{}",
        entries[5]
    );
    let seqs: Vec<u64> = entries.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(all["next_after"], seqs[5]);

    // A scoped store system reads its brands' entries only, and not another brand's.
    let own = send("GET", &app.url("/v1/audit/stock"), Some(SCOPED_STORE_SYSTEM), None).await.unwrap().json();
    let brands: Vec<&str> =
        own["entries"].as_array().unwrap().iter().map(|e| e["brand"].as_str().unwrap()).collect();
    assert_eq!(brands, vec!["1", "1", "2", "1"]);
    let r = send("GET", &app.url("/v1/audit/stock?brand=4"), Some(SCOPED_STORE_SYSTEM), None).await.unwrap();
    assert_eq!(r.status, 403);
    let r = send("GET", &app.url("/v1/audit/stock"), Some(crate::server::CHECKOUT), None).await.unwrap();
    assert_eq!(r.status, 403);
    // Pages, CSV.
    let page = get(&app, &format!("/v1/audit/stock?after={}&limit=2", seqs[1]), ADMIN).await.json();
    assert_eq!(page["entries"].as_array().unwrap().len(), 2);
    assert_eq!(page["entries"][0]["seq"], seqs[2]);
    let csv = get(&app, "/v1/audit/stock?format=csv&brand=4", ADMIN).await;
    let text = String::from_utf8(csv.body.to_vec()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "seq,at,key_id,brand,rows,accepted,reason");
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[2].contains(",bootstrap-3,4,2,true,"), "{text}");
    for bad in ["?limit=0", "?format=xml", "?colour=red"] {
        assert_eq!(get(&app, &format!("/v1/audit/stock{bad}"), ADMIN).await.status, 400, "{bad}");
    }
    // Durable.
    app.kill();
    app.restart();
    let again = get(&app, "/v1/audit/stock", ADMIN).await.json();
    assert_eq!(again["entries"], all["entries"]);
}
