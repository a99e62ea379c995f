//! Coupons over HTTP: campaigns (marketing, brand-scoped), posters with signed tokens, captures
//! into wallets with their budgets, on the embedded store and across PostgreSQL replicas.

use crate::postgres::{psql, TestDb};
use crate::server::{sample, spawn_app_with, TestApp, CHECKOUT, MARKETING, SCOPED_MARKETING, STORE_SYSTEM};
use crate::service::{get, post, send, Reply};
use futures_util::future::join_all;
use futures_util::StreamExt;
use serde_json::{json, Value};

pub(crate) fn campaign(brand: &str, extra: Value) -> String {
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

pub(crate) async fn create(app: &TestApp, body: String) -> Value {
    let r = post(app, "/v1/campaigns", MARKETING, body).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

/// The capture URL of a store's poster (from the header that repeats the QR code).
pub(crate) async fn poster_token(app: &TestApp, campaign: u64, store: &str, serial: u16) -> String {
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

pub(crate) async fn capture(app: &TestApp, token: &str, customer: &str) -> Reply {
    post(app, "/v1/coupons/capture", CHECKOUT, json!({"token": token, "customer_id": customer}).to_string())
        .await
}

/// A store of brand `brand` in Beijing in the sample.
pub(crate) fn beijing_store(brand: &str) -> String {
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
        (json!({"budgets": {"redeemed": u64::MAX}}), 400, "budgets.redeemed"),
        (json!({"per_customer": 4_000_000_000u64}), 400, "per_customer"),
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

/// Brand 1's stores in Beijing in the sample.
fn beijing_stores(brand: &str) -> Vec<String> {
    let text = std::fs::read_to_string(sample().join("stores.csv")).unwrap();
    text.lines()
        .map(|l| l.split(',').collect::<Vec<_>>())
        .filter(|f| f[1] == brand && f[2] == "Beijing" && f[6] == "true")
        .map(|f| f[0].to_string())
        .collect()
}

/// A redemption window around now (RFC 3339).
pub(crate) fn open_now() -> Value {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let at = |t: i64| jiff::Timestamp::from_second(t).unwrap().to_string();
    json!({"from": at(now - 3_600), "until": at(now + 86_400)})
}

/// Gives brand 1's Beijing stores plenty of a SKU no other store has: orders of it ship from
/// them (while their day's capacity lasts).
pub(crate) async fn stock_coupon_sku(app: &TestApp) {
    let rows: Vec<Value> = beijing_stores("1")
        .iter()
        .map(|s| json!({"store_id": s, "sku": "CPN", "on_hand": 100_000}))
        .collect();
    let r = send(
        "PUT",
        &app.url("/v1/stock"),
        Some(STORE_SYSTEM),
        Some(("application/json", json!(rows).to_string())),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
}

/// An order of `customer` redeeming `coupons`, worth 400.00, to central Beijing.
pub(crate) fn coupon_order(id: &str, customer: &str, coupons: Value) -> String {
    json!({
        "order_id": id, "created_at": "2026-11-11T10:00:00+08:00",
        "customer": {"lon": 116.40, "lat": 39.90}, "mode": "ship",
        "lines": [{"sku": "CPN", "qty": 1, "unit_price_cents": 40_000}],
        "customer_id": customer, "coupons": coupons,
    })
    .to_string()
}

/// Runs `n` calls of `f`, at most 256 at a time.
async fn many<F, Fut>(n: usize, f: F) -> Vec<Reply>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Reply>,
{
    many_at(256, n, f).await
}

/// Runs `n` calls of `f`, at most `k` at a time.
async fn many_at<F, Fut>(k: usize, n: usize, f: F) -> Vec<Reply>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Reply>,
{
    futures_util::stream::iter((0..n).map(f)).buffered(k).collect().await
}

/// The first coupon's line of a decision.
pub(crate) fn first_coupon(decision: &Value) -> &Value {
    &decision["coupons"]["coupons"][0]
}

/// 10,000 concurrent orders of distinct customers, each redeeming a coupon of a campaign capped
/// at 100 redemptions, on `apps` (round robin): exactly 100 are applied. Returns the campaign
/// id and the orders that redeemed it.
async fn redemption_cap_holds(apps: &[&TestApp]) -> (u64, Vec<String>) {
    let c =
        create(apps[0], campaign("1", json!({"budgets": {"redeemed": 100}, "redemption": open_now()}))).await;
    let id = c["id"].as_u64().unwrap();
    let token = poster_token(apps[0], id, &beijing_store("1"), 0).await;
    stock_coupon_sku(apps[0]).await;
    let captured = many(10_050, |i| {
        let (app, token) = (apps[i % apps.len()], token.clone());
        async move { capture(app, &token, &format!("shopper-{i}")).await }
    })
    .await;
    assert!(captured.iter().all(|r| r.status == 200));
    let replies = many(10_000, |i| {
        let app = apps[i % apps.len()];
        let body = coupon_order(&format!("cpn-{i}"), &format!("shopper-{i}"), json!([id]));
        async move { post(app, "/v1/orders/route", CHECKOUT, body).await }
    })
    .await;
    let mut redeemed = Vec::new();
    for (i, r) in replies.iter().enumerate() {
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let d = r.json();
        let line = first_coupon(&d);
        if line["applied"] == true {
            assert_eq!(
                (line["off_cents"].as_u64(), d["coupons"]["pay_cents"].as_u64()),
                (Some(5_000), Some(35_000))
            );
            assert_eq!(
                d["shipments"][0]["store_id"].as_str().map(|s| beijing_stores("1").contains(&s.to_string())),
                Some(true)
            );
            redeemed.push(format!("cpn-{i}"));
        } else {
            let reason = line["reason"].as_str().unwrap();
            assert!(["budget_spent", "store_not_in_campaign"].contains(&reason), "{d}");
        }
    }
    let spent = replies.iter().filter(|r| first_coupon(&r.json())["reason"] == "budget_spent").count();
    assert!(spent > 0, "enough orders reached the campaign's stores to spend its budget");
    assert_eq!(redeemed.len(), 100);
    (id, redeemed)
}

#[actix_rt::test]
async fn concurrent_redemptions_never_pass_the_cap_and_cancels_give_back_on_the_embedded_store() {
    let mut app = app();
    let (id, redeemed) = redemption_cap_holds(&[&app]).await;
    let order =
        |n: usize| coupon_order(&format!("late-{n}"), &format!("shopper-{}", 10_000 + n), json!([id]));
    // (The campaign's stores are full for the day by now, so the reason may be that too.)
    let r = post(&app, "/v1/orders/route", CHECKOUT, order(0)).await.json();
    assert_eq!(first_coupon(&r)["applied"], false);
    // A retry gets the answer given, byte for byte; the wallet shows the redemption.
    let again = post(&app, "/v1/orders/route", CHECKOUT, coupon_order(&redeemed[0], "x", json!([id]))).await;
    assert_eq!(again.status, 409, "another body under the same id");
    // A line without a price takes its SKU's from the dataset's prices.csv; without one there
    // either, the order is refused naming the line.
    let catalogue = std::fs::read_to_string(sample().join("prices.csv")).unwrap();
    let price: u64 = catalogue.lines().find_map(|l| l.strip_prefix("1,")).unwrap().parse().unwrap();
    let unpriced = |sku: &str| {
        let mut o: Value =
            serde_json::from_str(&coupon_order("unpriced", "shopper-0", json!("best"))).unwrap();
        o["lines"] = json!([{"sku": sku, "qty": 1}]);
        o.to_string()
    };
    let r = post(&app, "/v1/orders/route", CHECKOUT, unpriced("CPN")).await;
    assert_eq!((r.status, r.json()["field"].as_str()), (400, Some("lines[0].unit_price_cents")));
    let r = post(&app, "/v1/orders/route", CHECKOUT, unpriced("1")).await;
    assert_eq!(r.json()["coupons"]["value_cents"], price, "{}", String::from_utf8_lossy(&r.body));
    let wallet = get(&app, "/v1/customers/shopper-0/wallet", CHECKOUT).await.json();
    let shopper = redeemed[0].trim_start_matches("cpn-");
    let w = get(&app, &format!("/v1/customers/shopper-{shopper}/wallet"), CHECKOUT).await.json();
    assert_eq!(w[0]["redeemed"], 1, "{w}");
    assert!(wallet[0]["redeemed"].as_u64().unwrap() <= 1);

    // Cancels give coupons back (and their stores' slots: the only stores with the SKU are the
    // campaign's); ships keep them; both survive a kill -9.
    for o in &redeemed[..10] {
        let r = post(&app, &format!("/v1/orders/{o}/cancel"), CHECKOUT, String::new()).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }
    for o in &redeemed[10..20] {
        assert_eq!(post(&app, &format!("/v1/orders/{o}/ship"), CHECKOUT, String::new()).await.status, 200);
    }
    let w = get(&app, &format!("/v1/customers/shopper-{shopper}/wallet"), CHECKOUT).await.json();
    assert_eq!(w[0]["redeemed"], 0, "a cancelled order's coupon is the customer's again");
    app.kill();
    app.restart();
    let late = many(20, |n| {
        let app = &app;
        let body = order(n + 1);
        async move { post(app, "/v1/orders/route", CHECKOUT, body).await }
    })
    .await;
    let applied = late.iter().filter(|r| first_coupon(&r.json())["applied"] == true).count();
    assert_eq!(applied, 10, "exactly the 10 cancelled coupons went back, after a restart");
    check_stats(&app, id).await;
}

/// The campaign's stats credit every capture and redemption to the poster's store.
async fn check_stats(app: &TestApp, id: u64) {
    let s = get(app, &format!("/v1/campaigns/{id}/stats"), MARKETING).await.json();
    assert_eq!(
        (s["captured"].as_u64(), s["redeemed"].as_u64(), s["discount_cents"].as_u64()),
        (Some(10_050), Some(100), Some(500_000)),
        "{s}"
    );
    assert_eq!(s["rows"][0]["key"], beijing_store("1"));
    assert_eq!(s["conversion_pct"], 1.0);
    let by_city = get(app, &format!("/v1/campaigns/{id}/stats?by=city"), MARKETING).await.json();
    assert_eq!(
        (by_city["rows"][0]["key"].as_str(), by_city["rows"][0]["redeemed"].as_u64()),
        (Some("Beijing"), Some(100))
    );
    let csv = get(app, &format!("/v1/campaigns/{id}/stats?format=csv"), MARKETING).await;
    let text = String::from_utf8(csv.body.to_vec()).unwrap();
    assert!(
        text.starts_with("store,city,lon,lat,captured,redeemed,discount_cents,conversion_pct\n"),
        "{text}"
    );
    assert!(text.contains(",10050,100,500000,1.0"), "{text}");
    let geo = get(app, &format!("/v1/campaigns/{id}/stats?format=geojson"), MARKETING).await.json();
    assert_eq!(geo["features"][0]["properties"]["redeemed"], 100);
    let r = get(app, &format!("/v1/campaigns/{id}/stats?by=brand"), MARKETING).await;
    assert_eq!((r.status, r.json()["field"].as_str()), (400, Some("by")));
}

#[actix_rt::test]
async fn concurrent_redemptions_never_pass_the_cap_across_postgres_replicas() {
    let db = TestDb::create();
    let args = ["--database-url", db.url.as_str(), "--captures-per-address-per-s", "0"];
    let (a, b) = (spawn_app_with(&sample(), &args), spawn_app_with(&sample(), &args));
    let (id, redeemed) = redemption_cap_holds(&[&a, &b]).await;
    let recount = |db: &TestDb| {
        (
            psql(
                &db.url,
                &format!("SELECT redeemed FROM coupon_redeemed WHERE campaign = {id} AND store_number = -1"),
            ),
            psql(
                &db.url,
                &format!("SELECT count(*) FROM coupon_redemptions WHERE campaign = {id} AND NOT ended"),
            ),
        )
    };
    assert_eq!(recount(&db), ("100".to_string(), "100".to_string()));
    for o in &redeemed[..10] {
        assert_eq!(post(&b, &format!("/v1/orders/{o}/cancel"), CHECKOUT, String::new()).await.status, 200);
    }
    assert_eq!(recount(&db), ("90".to_string(), "90".to_string()));
    // A replica started now counts the stores' day from the database (a running replica's
    // cache keeps counting cancelled orders' slots until it restarts).
    let c = spawn_app_with(&sample(), &args);
    let late = many(20, |n| {
        let app = &c;
        let body = coupon_order(&format!("late-{n}"), &format!("shopper-{}", 10_000 + n), json!([id]));
        async move { post(app, "/v1/orders/route", CHECKOUT, body).await }
    })
    .await;
    let applied = late.iter().filter(|r| first_coupon(&r.json())["applied"] == true).count();
    assert_eq!(applied, 10);
    assert_eq!(recount(&db), ("100".to_string(), "100".to_string()));
    check_stats(&a, id).await;
}

/// Reservations that expire give their coupons back: to the customer, the budgets and the stats.
async fn expiry_gives_back(app: &TestApp) -> u64 {
    let c = create(app, campaign("1", json!({"budgets": {"redeemed": 5}, "redemption": open_now()}))).await;
    let id = c["id"].as_u64().unwrap();
    let token = poster_token(app, id, &beijing_store("1"), 0).await;
    stock_coupon_sku(app).await;
    for i in 0..5 {
        assert_eq!(capture(app, &token, &format!("ttl-{i}")).await.status, 200);
    }
    let route = |round: usize, i: usize| {
        let body = coupon_order(&format!("ttl-{round}-{i}"), &format!("ttl-{i}"), json!([id]));
        async move { post(app, "/v1/orders/route", CHECKOUT, body).await.json() }
    };
    for i in 0..5 {
        assert_eq!(first_coupon(&route(0, i).await)["applied"], true);
    }
    assert_eq!(first_coupon(&route(0, 5).await)["reason"], "not_in_wallet");
    let mut redeemed = json!(null);
    for _ in 0..50 {
        actix_rt::time::sleep(std::time::Duration::from_millis(200)).await;
        redeemed = get(app, &format!("/v1/campaigns/{id}/stats"), MARKETING).await.json()["redeemed"].clone();
        if redeemed == 0 {
            break;
        }
    }
    assert_eq!(redeemed, 0, "expired reservations gave their coupons back");
    assert_eq!(get(app, "/v1/customers/ttl-0/wallet", CHECKOUT).await.json()[0]["redeemed"], 0);
    // The same customers may redeem again: per customer and the campaign's budget are free.
    for i in 0..5 {
        assert_eq!(first_coupon(&route(1, i).await)["applied"], true);
    }
    id
}

#[actix_rt::test]
async fn expired_reservations_give_coupons_back_on_the_embedded_store() {
    let app = spawn_app_with(&sample(), &["--reservation-ttl-s", "1"]);
    expiry_gives_back(&app).await;
}

#[actix_rt::test]
async fn expired_reservations_give_coupons_back_on_postgres() {
    let db = TestDb::create();
    let app = spawn_app_with(&sample(), &["--database-url", db.url.as_str(), "--reservation-ttl-s", "1"]);
    let id = expiry_gives_back(&app).await;
    let live = psql(
        &db.url,
        &format!("SELECT count(*) FROM coupon_redemptions WHERE campaign = {id} AND NOT ended"),
    );
    let counted = psql(
        &db.url,
        &format!("SELECT redeemed FROM coupon_redeemed WHERE campaign = {id} AND store_number = -1"),
    );
    // (The second round may be expiring meanwhile: both move in one transaction.)
    assert_eq!(live, counted, "counters equal a recount");
}

#[actix_rt::test]
async fn ed25519_posters_verify_offline_with_the_published_public_key() {
    let ed = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    let keys = format!("{},3:ed25519:{ed}", crate::server::COUPON_KEYS);
    let app = spawn_app_with(&sample(), &["--coupon-keys", &keys, "--captures-per-address-per-s", "0"]);
    let c = create(&app, campaign("1", json!({}))).await;
    let id = c["id"].as_u64().unwrap();
    let res = awc::Client::default()
        .get(app.url(&format!("/v1/campaigns/{id}/posters/{}.png", beijing_store("1"))))
        .insert_header(("Authorization", format!("Bearer {MARKETING}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let url = res.headers().get("omniroute-capture-url").unwrap().to_str().unwrap().to_string();
    let token = url.rsplit('/').next().unwrap().to_string();
    assert_eq!(token.len(), 128, "{url}");
    // A device fetches the public keys (no key needed) and checks the poster offline.
    let r = send("GET", &app.url("/v1/coupons/keys"), None, None).await.unwrap();
    let published = r.json();
    assert_eq!(
        (published[0]["key_id"].as_u64(), published[0]["algorithm"].as_str()),
        (Some(3), Some("ed25519"))
    );
    let hex = published[0]["public_key"].as_str().unwrap();
    let public: Vec<u8> = (0..32).map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap()).collect();
    let keys = [(3u8, <[u8; 32]>::try_from(public).unwrap())];
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let claim = omniroute::coupons::token::verify_public(&token, &keys, now).unwrap();
    assert_eq!(u64::from(claim.campaign), id);
    // The server captures it like any other; a flipped character is refused.
    assert_eq!(capture(&app, &token, "eve").await.json()["new"], true);
    let mut bad = token.into_bytes();
    bad[40] = if bad[40] == b'A' { b'B' } else { b'A' };
    assert_eq!(capture(&app, std::str::from_utf8(&bad).unwrap(), "eve").await.status, 422);
}

/// One customer's concurrent orders never pass her per-customer limit, and cancels racing with
/// other customers' redemptions give back exactly what they took, on `apps` (round robin).
async fn limits_hold_while_cancels_race(apps: &[&TestApp]) -> (u64, usize) {
    let spec = json!({"budgets": {"redeemed": 30}, "per_customer": 2, "redemption": open_now()});
    let c = create(apps[0], campaign("1", spec)).await;
    let id = c["id"].as_u64().unwrap();
    let token = poster_token(apps[0], id, &beijing_store("1"), 0).await;
    stock_coupon_sku(apps[0]).await;
    for who in std::iter::once("solo".to_string()).chain((0..80).map(|i| format!("race-{i}"))) {
        assert_eq!(capture(apps[0], &token, &who).await.status, 200);
    }
    let solo = many(40, |i| {
        let app = apps[i % apps.len()];
        let body = coupon_order(&format!("solo-{i}"), "solo", json!([id]));
        async move { post(app, "/v1/orders/route", CHECKOUT, body).await }
    })
    .await;
    let applied =
        |replies: &[Reply]| replies.iter().filter(|r| first_coupon(&r.json())["applied"] == true).count();
    assert_eq!(applied(&solo), 2, "her limit of two, however many orders at once");
    // Other customers redeem, 8 at a time, while every other applied order is cancelled as soon
    // as it is answered (its coupon then serves a later order).
    let raced = many_at(8, 80, |i| {
        let app = apps[i % apps.len()];
        let id_ = format!("race-{i}");
        let body = coupon_order(&id_, &id_, json!([id]));
        async move {
            let r = post(app, "/v1/orders/route", CHECKOUT, body).await;
            if i % 2 == 0 && first_coupon(&r.json())["applied"] == true {
                let c = post(app, &format!("/v1/orders/{id_}/cancel"), CHECKOUT, String::new()).await;
                assert_eq!(c.status, 200);
                return Reply { status: 299, body: r.body };
            }
            r
        }
    })
    .await;
    let cancelled = raced.iter().filter(|r| r.status == 299).count();
    let kept = applied(&raced) - cancelled;
    assert!(cancelled > 0 && kept > 0);
    assert!(2 + kept <= 30, "the budget holds");
    assert!(applied(&raced) > 28, "cancelled coupons were redeemed again");
    let stats = get(apps[0], &format!("/v1/campaigns/{id}/stats"), MARKETING).await.json();
    assert_eq!(stats["redeemed"], 2 + kept, "the counters equal what the answers say is held");
    (id, 2 + kept)
}

#[actix_rt::test]
async fn per_customer_limits_and_racing_cancels_hold_on_the_embedded_store() {
    limits_hold_while_cancels_race(&[&app()]).await;
}

#[actix_rt::test]
async fn per_customer_limits_and_racing_cancels_hold_across_postgres_replicas() {
    let db = TestDb::create();
    let args = ["--database-url", db.url.as_str(), "--captures-per-address-per-s", "0"];
    let (a, b) = (spawn_app_with(&sample(), &args), spawn_app_with(&sample(), &args));
    let (id, held) = limits_hold_while_cancels_race(&[&a, &b]).await;
    let recount = psql(
        &db.url,
        &format!("SELECT count(*) FROM coupon_redemptions WHERE campaign = {id} AND NOT ended"),
    );
    assert_eq!(recount, held.to_string());
    assert_eq!(
        psql(
            &db.url,
            &format!("SELECT redeemed FROM coupon_customers WHERE campaign = {id} AND customer_id = 'solo'")
        ),
        "2"
    );
}
