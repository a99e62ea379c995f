//! Magic Mirror over HTTP: recommendations from the sample's history, only items the store can
//! give now, the scan with a customer token and her coupons, and learning from shipped orders.

use crate::coupons::{beijing_store, campaign, capture, create, poster_token};
use crate::server::{sample, spawn_app, TestApp, ADMIN, CHECKOUT, STORE_SYSTEM};
use crate::service::{get, post, send, Reply};
use serde_json::{json, Value};
use std::collections::HashMap;

/// The sample history's customers with the store each bought in most, busiest first.
fn regulars() -> Vec<(String, String, usize)> {
    let text = std::fs::read_to_string(sample().join("history.csv")).unwrap();
    let mut visits: HashMap<(String, String), usize> = HashMap::new();
    for l in text.lines().skip(1) {
        let f: Vec<&str> = l.split(',').collect();
        if f[3] == "store" {
            *visits.entry((f[0].to_string(), f[4].to_string())).or_default() += 1;
        }
    }
    let mut v: Vec<(String, String, usize)> = visits.into_iter().map(|((c, s), n)| (c, s, n)).collect();
    v.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
    v
}

/// What `customer` bought, by SKU.
fn bought(customer: &str) -> Vec<String> {
    let text = std::fs::read_to_string(sample().join("history.csv")).unwrap();
    text.lines()
        .skip(1)
        .filter(|l| l.starts_with(&format!("{customer},")))
        .map(|l| l.split(',').nth(1).unwrap().to_string())
        .collect()
}

async fn list(app: &TestApp, store: &str, query: &str) -> Reply {
    get(app, &format!("/v1/stores/{store}/recommendations{query}"), CHECKOUT).await
}

async fn available(app: &TestApp, store: &str, sku: &str) -> i64 {
    let r = get(app, &format!("/v1/stock/{store}/{sku}"), ADMIN).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()["available"].as_i64().unwrap()
}

fn skus(r: &Value) -> Vec<String> {
    r["items"].as_array().unwrap().iter().map(|i| i["sku"].as_str().unwrap().to_string()).collect()
}

#[actix_rt::test]
async fn a_regular_gets_ten_items_the_store_can_give_with_reasons_and_never_a_short_list() {
    let app = spawn_app();
    let (customer, store, _) = regulars().into_iter().next().unwrap();
    let r = list(&app, &store, &format!("?customer_id={customer}&k=10")).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let body = r.json();
    assert_eq!(body["known_customer"], true);
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 10);
    for i in items {
        let sku = i["sku"].as_str().unwrap();
        assert!(i["available"].as_i64().unwrap() >= 1, "{i}");
        assert_eq!(available(&app, &store, sku).await, i["available"].as_i64().unwrap());
        assert!(!i["reason_text"].as_str().unwrap().is_empty());
        assert!(i["product"]["name"].as_str().unwrap().ends_with(sku), "{i}");
    }
    // Her own items come first, said to be hers.
    let mine = bought(&customer);
    let first = &items[0];
    assert!(mine.contains(&first["sku"].as_str().unwrap().to_string()), "{first}");
    assert!(["habit", "bought_before"].contains(&first["reason"].as_str().unwrap()), "{first}");

    // Her first item runs out here: it leaves the list, which stays ten long.
    let gone = first["sku"].as_str().unwrap().to_string();
    let feed = json!([{"store_id": store, "sku": gone, "on_hand": 0}]).to_string();
    let r = send("PUT", &app.url("/v1/stock"), Some(STORE_SYSTEM), Some(("application/json", feed)))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let after = list(&app, &store, &format!("?customer_id={customer}")).await.json();
    assert_eq!(after["items"].as_array().unwrap().len(), 10);
    assert!(!skus(&after).contains(&gone), "{after}");

    // A shopper the history does not know gets what is popular here.
    let anon = list(&app, &store, "?customer_id=NOBODY-1").await.json();
    assert_eq!(anon["known_customer"], false);
    assert_eq!(anon["items"].as_array().unwrap().len(), 10);
    assert!(anon["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["reason"] != "habit" && i["reason"] != "bought_before"));
    assert_eq!(list(&app, &store, "").await.json()["items"], anon["items"]);
}

#[actix_rt::test]
async fn bad_queries_name_their_field() {
    let app = spawn_app();
    let (customer, store, _) = regulars().into_iter().next().unwrap();
    for (query, field) in [
        ("?k=0".to_string(), "k"),
        ("?k=101".to_string(), "k"),
        ("?k=ten".to_string(), "k"),
        (format!("?customer_id={customer}%20x"), "customer_id"),
        ("?shop=1".to_string(), "shop"),
    ] {
        let r = list(&app, &store, &query).await;
        assert_eq!(r.status, 400, "{query}: {}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["field"], field, "{query}");
    }
    let r = list(&app, "NO-SUCH-STORE", "").await;
    assert_eq!((r.status, r.json()["code"].clone()), (404, json!("not_found")));
    // Reading a shopper's list is a checkout (shopper-facing) key's right.
    let r = get(&app, &format!("/v1/stores/{store}/recommendations"), STORE_SYSTEM).await;
    assert_eq!(r.status, 403);
}

#[actix_rt::test]
async fn the_scan_answers_her_list_and_her_coupons_usable_in_this_store() {
    let app = spawn_app();
    // A Beijing store of a brand, and a customer of the history.
    let brand = "1";
    let store = beijing_store(brand);
    let (customer, _, _) = regulars().into_iter().next().unwrap();
    let c = create(&app, campaign(brand, json!({}))).await;
    let id = c["id"].as_u64().unwrap();
    let token = poster_token(&app, id, &store, 0).await;
    assert_eq!(capture(&app, &token, &customer).await.status, 200);

    let t = post(&app, &format!("/v1/customers/{customer}/token"), CHECKOUT, String::new()).await;
    assert_eq!(t.status, 200, "{}", String::from_utf8_lossy(&t.body));
    let ct = t.json()["customer_token"].as_str().unwrap().to_string();
    let scan = |store: String, token: String| {
        let app = &app;
        async move {
            post(
                app,
                &format!("/v1/stores/{store}/scan"),
                STORE_SYSTEM,
                json!({"customer_token": token}).to_string(),
            )
            .await
        }
    };
    let r = scan(store.clone(), ct.clone()).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let body = r.json();
    assert_eq!(body["customer_id"], customer.as_str());
    assert_eq!(body["items"].as_array().unwrap().len(), 10);
    let coupons = body["coupons"].as_array().unwrap();
    assert_eq!(coupons.len(), 1, "{body}");
    assert_eq!(coupons[0]["campaign_id"], id);
    // The same list as the recommendations call.
    let same = list(&app, &store, &format!("?customer_id={customer}")).await.json();
    assert_eq!(skus(&same), skus(&body));

    // In a store outside the campaign (Shanghai), her list but no coupon.
    let text = std::fs::read_to_string(sample().join("stores.csv")).unwrap();
    let shanghai =
        text.lines().map(|l| l.split(',').collect::<Vec<_>>()).find(|f| f[2] == "Shanghai").unwrap()[0]
            .to_string();
    let r = scan(shanghai, ct.clone()).await.json();
    assert_eq!(r["coupons"].as_array().unwrap().len(), 0, "{r}");

    // A token altered in any way is refused, naming the field.
    let forged = ct.replacen(&customer, "C-999999", 1);
    for bad in [forged, format!("{ct}A"), "nonsense".to_string()] {
        let r = scan(store.clone(), bad.clone()).await;
        assert_eq!(r.status, 422, "{bad}");
        assert_eq!(
            (r.json()["code"].clone(), r.json()["field"].clone()),
            (json!("invalid_customer_token"), json!("customer_token"))
        );
    }
    let r =
        post(&app, &format!("/v1/stores/{store}/scan"), STORE_SYSTEM, json!({"token": ct}).to_string()).await;
    assert_eq!(r.status, 400);
}

#[actix_rt::test]
async fn a_shipped_order_teaches_the_model_its_customer() {
    let app = spawn_app();
    let mut o = crate::service::ship_order("REC-1", 0);
    o["customer_id"] = json!("NEW-SHOPPER");
    let r = post(&app, "/v1/orders/route", CHECKOUT, o.to_string()).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let decision = r.json();
    let Some(store) = decision["shipments"][0]["store_id"].as_str().map(str::to_string) else {
        panic!("the sample's first ship order is served by a store: {decision}")
    };
    let before = list(&app, &store, "?customer_id=NEW-SHOPPER").await.json();
    assert_eq!(before["known_customer"], false);
    assert_eq!(post(&app, "/v1/orders/REC-1/ship", CHECKOUT, String::new()).await.status, 200);
    let after = list(&app, &store, "?customer_id=NEW-SHOPPER").await.json();
    assert_eq!(after["known_customer"], true);
    let sku = decision["shipments"][0]["lines"][0]["sku"].as_str().unwrap().to_string();
    assert!(available(&app, &store, &sku).await > 0, "the store still has {sku}");
    let first = &after["items"][0];
    assert_eq!(first["sku"], sku.as_str(), "{after}");
    assert_eq!(first["reason"], "bought_before");
    // A cancelled order teaches nothing.
    let mut o = crate::service::ship_order("REC-2", 1);
    o["customer_id"] = json!("OTHER-SHOPPER");
    assert_eq!(post(&app, "/v1/orders/route", CHECKOUT, o.to_string()).await.status, 200);
    assert_eq!(post(&app, "/v1/orders/REC-2/cancel", CHECKOUT, String::new()).await.status, 200);
    assert_eq!(list(&app, &store, "?customer_id=OTHER-SHOPPER").await.json()["known_customer"], false);
}
