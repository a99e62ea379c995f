//! Coupons over HTTP: campaigns (marketing, brand-scoped), posters with signed tokens, captures
//! into wallets with their budgets, on the embedded store and across PostgreSQL replicas.

use crate::postgres::{psql, TestDb};
use crate::server::{sample, spawn_app_with, TestApp, CHECKOUT, MARKETING, SCOPED_MARKETING};
use crate::service::{get, post, send, Reply};
use futures_util::future::join_all;
use serde_json::{json, Value};

fn campaign(brand: &str, extra: Value) -> String {
    let mut c = json!({
        "brand": brand,
        "name": "Singles' Day 50 off 300",
        "stores": {"cities": ["Beijing"]},
        "discount": {"kind": "amount_off", "off_cents": 5000, "min_spend_cents": 30000},
        "posters_per_store": 2,
    });
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c.to_string()
}

/// A server without capture rate limits (the concurrency tests capture from one address).
fn app() -> TestApp {
    spawn_app_with(&sample(), &["--captures-per-address-per-s", "0"])
}

async fn create(app: &TestApp, body: String) -> Value {
    let r = post(app, "/v1/campaigns", MARKETING, body).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

/// The capture URL of a store's poster (from the header that repeats the QR code).
async fn poster_token(app: &TestApp, campaign: u64, store: &str, serial: u16) -> String {
    let r = send(
        "GET",
        &app.url(&format!("/v1/campaigns/{campaign}/posters/{store}.svg?serial={serial}")),
        Some(MARKETING),
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let svg = String::from_utf8(r.body.to_vec()).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("50.00 off on orders of 300.00 or more"));
    // The token is not in the picture's text, only in its QR code and the header.
    let awc_client = awc::Client::default();
    let res = awc_client
        .get(app.url(&format!("/v1/campaigns/{campaign}/posters/{store}.png?serial={serial}")))
        .insert_header(("Authorization", format!("Bearer {MARKETING}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers().get("content-type").unwrap(), "image/png");
    let url = res.headers().get("omniroute-capture-url").unwrap().to_str().unwrap().to_string();
    let token = url.rsplit('/').next().unwrap().to_string();
    assert_eq!(token.len(), 52, "{url}");
    token
}

async fn capture(app: &TestApp, token: &str, customer: &str) -> Reply {
    post(app, "/v1/coupons/capture", CHECKOUT, json!({"token": token, "customer_id": customer}).to_string())
        .await
}

/// A store of brand `brand` in Beijing in the sample.
fn beijing_store(brand: &str) -> String {
    let text = std::fs::read_to_string(sample().join("stores.csv")).unwrap();
    text.lines()
        .map(|l| l.split(',').collect::<Vec<_>>())
        .find(|f| f[1] == brand && f[2] == "Beijing")
        .map(|f| f[0].to_string())
        .expect("a Beijing store of the brand")
}

#[actix_rt::test]
async fn marketing_runs_campaigns_of_its_own_brands_only() {
    let app = app();
    // A scoped key: its brand yes, another no; other roles not at all.
    let r = post(&app, "/v1/campaigns", SCOPED_MARKETING, campaign("1", json!({}))).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let c = r.json();
    assert_eq!(c["status"], "active");
    assert_eq!(c["offer"], "50.00 off on orders of 300.00 or more");
    assert!(c["store_count"].as_u64().unwrap() >= 1);
    assert_eq!(c["redemption"]["from"].as_str().unwrap()[5..], *"11-11T00:00:00+08:00");
    let r = post(&app, "/v1/campaigns", SCOPED_MARKETING, campaign("2", json!({}))).await;
    assert_eq!((r.status, r.json()["code"].as_str().unwrap()), (403, "brand_out_of_scope"));
    let r = post(&app, "/v1/campaigns", CHECKOUT, campaign("1", json!({}))).await;
    assert_eq!(r.status, 403);
    let other = create(&app, campaign("2", json!({}))).await;
    let listed = get(&app, "/v1/campaigns", SCOPED_MARKETING).await.json();
    let ids: Vec<u64> = listed.as_array().unwrap().iter().map(|c| c["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, vec![c["id"].as_u64().unwrap()], "only brand 1's");
    let r = get(&app, &format!("/v1/campaigns/{}", other["id"]), SCOPED_MARKETING).await;
    assert_eq!(r.status, 404, "another brand's campaign is not found");

    // Bad specs name their field.
    for (extra, status, field) in [
        (
            json!({"discount": {"kind": "percent_off", "percent": 0, "max_off_cents": 100}}),
            400,
            "discount.percent",
        ),
        (json!({"stores": {"cities": ["Atlantis"]}}), 422, "stores.cities[0]"),
        (json!({"stores": {"store_ids": ["1"]}}), 422, "stores.store_ids[0]"),
        (json!({"per_customer": 0}), 400, "per_customer"),
        (json!({"budgets": {"issued": 0}}), 400, "budgets.issued"),
        (
            json!({"redemption": {"from": "2026-11-11T00:00:00+08:00", "until": "2026-11-10T00:00:00+08:00"}}),
            400,
            "redemption.until",
        ),
        (
            json!({"capture": {"from": "yesterday", "until": "2026-11-10T00:00:00+08:00"}}),
            400,
            "capture.from",
        ),
    ] {
        let r = post(&app, "/v1/campaigns", MARKETING, campaign("1", extra.clone())).await;
        assert_eq!(r.status, status, "{extra}: {}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["field"], field, "{extra}");
    }

    // Pause, resume, end; ended is final.
    let path = format!("/v1/campaigns/{}", c["id"]);
    let r = post(&app, &format!("{path}/pause"), SCOPED_MARKETING, String::new()).await;
    assert_eq!(
        (r.status, r.json()["status"].as_str().unwrap(), r.json()["version"].as_u64().unwrap()),
        (200, "paused", 2)
    );
    assert_eq!(
        post(&app, &format!("{path}/resume"), SCOPED_MARKETING, String::new()).await.json()["status"],
        "active"
    );
    assert_eq!(
        post(&app, &format!("{path}/end"), SCOPED_MARKETING, String::new()).await.json()["status"],
        "ended"
    );
    let r = post(&app, &format!("{path}/resume"), SCOPED_MARKETING, String::new()).await;
    assert_eq!((r.status, r.json()["code"].as_str().unwrap()), (409, "invalid_state"));
    assert_eq!(get(&app, &path, MARKETING).await.json()["status"], "ended");
}

#[actix_rt::test]
async fn a_poster_token_captures_once_per_customer_and_every_refusal_looks_the_same() {
    let mut app = app();
    let c = create(&app, campaign("1", json!({"budgets": {"issued_per_poster": 2}}))).await;
    let id = c["id"].as_u64().unwrap();
    let store = beijing_store("1");
    let token = poster_token(&app, id, &store, 1).await;

    let r = capture(&app, &token, "alice").await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        (r.json()["new"].as_bool(), r.json()["coupon"]["store_id"].as_str()),
        (Some(true), Some(store.as_str()))
    );
    let again = capture(&app, &token.to_lowercase(), "alice").await.json();
    assert_eq!(again["new"], false, "idempotent per customer and campaign");
    assert_eq!(again["coupon"]["captured_at"], r.json()["coupon"]["captured_at"]);
    assert_eq!(capture(&app, &token, "bob").await.json()["new"], true);

    // Refusals: over the poster's budget, tampered, unknown key, paused. One uniform answer.
    let over = capture(&app, &token, "carol").await;
    assert_eq!(over.status, 422);
    let mut tampered = token.clone().into_bytes();
    tampered[10] = if tampered[10] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let forged = "A".repeat(52);
    for t in [tampered.as_str(), forged.as_str(), "not a token"] {
        let r = capture(&app, t, "carol").await;
        assert_eq!((r.status, &r.body), (422, &over.body), "{t}");
    }
    // The other poster of the store has its own budget.
    let second = poster_token(&app, id, &store, 0).await;
    assert_eq!(capture(&app, &second, "carol").await.json()["new"], true);
    post(&app, &format!("/v1/campaigns/{id}/pause"), MARKETING, String::new()).await;
    let r = capture(&app, &second, "dave").await;
    assert_eq!((r.status, &r.body), (422, &over.body), "paused");

    // The wallet, and what survives a kill -9: entries and the budgets they took.
    let wallet = get(&app, "/v1/customers/alice/wallet", CHECKOUT).await.json();
    assert_eq!(wallet.as_array().unwrap().len(), 1);
    assert_eq!((wallet[0]["campaign_id"].as_u64(), wallet[0]["active"].as_bool()), (Some(id), Some(false)));
    assert_eq!(get(&app, "/v1/customers/nobody/wallet", CHECKOUT).await.json(), json!([]));
    assert_eq!(get(&app, "/v1/customers/a%20b/wallet", CHECKOUT).await.status, 400);
    app.kill();
    app.restart();
    post(&app, &format!("/v1/campaigns/{id}/resume"), MARKETING, String::new()).await;
    assert_eq!(capture(&app, &token, "bob").await.json()["new"], false);
    assert_eq!(capture(&app, &token, "erin").await.status, 422, "the poster's budget is still spent");
    assert_eq!(get(&app, "/v1/customers/carol/wallet", CHECKOUT).await.json().as_array().unwrap().len(), 1);
}

#[actix_rt::test]
async fn captures_are_rate_limited_per_customer_with_retry_after() {
    let app = spawn_app_with(&sample(), &["--captures-per-customer-per-min", "3"]);
    let c = create(&app, campaign("1", json!({}))).await;
    let token = poster_token(&app, c["id"].as_u64().unwrap(), &beijing_store("1"), 0).await;
    for _ in 0..3 {
        assert_eq!(capture(&app, &token, "frank").await.status, 200);
    }
    let client = awc::Client::default();
    let mut res = client
        .post(app.url("/v1/coupons/capture"))
        .insert_header(("Authorization", format!("Bearer {CHECKOUT}")))
        .send_json(&json!({"token": token, "customer_id": "frank"}))
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    let wait: u64 = res.headers().get("retry-after").unwrap().to_str().unwrap().parse().unwrap();
    assert!((1..=20).contains(&wait), "{wait}");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], "rate_limited");
    assert_eq!(capture(&app, &token, "grace").await.status, 200, "another customer is not held up");
}

/// 2,000 concurrent captures by distinct customers against an issue cap of 100 on `apps`
/// (round robin): exactly 100 get a coupon.
async fn cap_holds(apps: &[&TestApp]) -> u64 {
    let c = create(apps[0], campaign("1", json!({"budgets": {"issued": 100}}))).await;
    let id = c["id"].as_u64().unwrap();
    let token = poster_token(apps[0], id, &beijing_store("1"), 0).await;
    let replies = join_all((0..2_000).map(|i| {
        let (app, token) = (apps[i % apps.len()], token.clone());
        async move { capture(app, &token, &format!("cust-{i}")).await.status }
    }))
    .await;
    let granted = replies.iter().filter(|s| **s == 200).count();
    assert_eq!(replies.iter().filter(|s| **s == 422).count(), 2_000 - granted, "{replies:?}");
    assert_eq!(granted, 100);
    id
}

#[actix_rt::test]
async fn concurrent_captures_never_pass_the_issue_cap_on_the_embedded_store() {
    let mut app = app();
    let id = cap_holds(&[&app]).await;
    app.kill();
    app.restart();
    let token = poster_token(&app, id, &beijing_store("1"), 1).await;
    assert_eq!(capture(&app, &token, "late").await.status, 422, "the counts are rebuilt from the wallets");
}

#[actix_rt::test]
async fn concurrent_captures_never_pass_the_issue_cap_across_postgres_replicas() {
    let db = TestDb::create();
    let args = ["--database-url", db.url.as_str(), "--captures-per-address-per-s", "0"];
    let (a, b) = (spawn_app_with(&sample(), &args), spawn_app_with(&sample(), &args));
    let id = cap_holds(&[&a, &b]).await;
    assert_eq!(psql(&db.url, &format!("SELECT count(*) FROM wallet_entries WHERE campaign = {id}")), "100");
    assert_eq!(
        psql(
            &db.url,
            &format!("SELECT issued FROM coupon_issues WHERE campaign = {id} AND store_number = -1")
        ),
        "100"
    );
    // A campaign paused on one replica refuses captures on the other within a second.
    post(&a, &format!("/v1/campaigns/{id}/pause"), MARKETING, String::new()).await;
    actix_rt::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let token = poster_token(&b, id, &beijing_store("1"), 0).await;
    assert_eq!(capture(&b, &token, "new-customer").await.status, 422);
}
