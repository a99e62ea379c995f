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

mod evaluate {
    use crate::helpers::{run, stderr, stdout};
    use crate::server::sample;
    use serde_json::Value;

    fn evaluate(args: &[&str]) -> Value {
        let tmp = tempfile::tempdir().unwrap();
        let json = tmp.path().join("eval.json");
        let mut all = vec!["recommend", "evaluate", "--json", json.to_str().unwrap()];
        all.extend_from_slice(args);
        let out = run(&all, None);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stdout(&out).contains("recall@"), "{}", stdout(&out));
        serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap()
    }

    fn report<'a>(v: &'a Value, method: &str) -> &'a Value {
        v["reports"].as_array().unwrap().iter().find(|r| r["method"] == method).unwrap()
    }

    #[test]
    fn every_model_is_scored_on_the_sample_and_no_list_holds_what_the_store_lacks() {
        let v = evaluate(&["--data", sample().to_str().unwrap()]);
        assert_eq!(v["reports"].as_array().unwrap().len(), 6);
        for r in v["reports"].as_array().unwrap() {
            assert_eq!(r["out_of_stock"], 0.0, "{r}");
            assert!(r["overall"]["customers"].as_u64().unwrap() > 1_000, "{r}");
            assert!(r["coverage"].as_f64().unwrap() > 0.0);
        }
        let recall = |m: &str| report(&v, m)["overall"]["recall"].as_f64().unwrap();
        // Her history beats what is popular; the personal models find repeat items that
        // popularity misses, and only models that look past her own items find new ones.
        assert!(recall("tifu-knn") > recall("popular-store") && recall("mirror") > recall("popular-city"));
        assert!(report(&v, "p-topfreq")["repeat"]["recall"].as_f64().unwrap() > 0.9);
        // Neighbours find new items that her own frequencies (filled with what is popular here)
        // miss; on the sample the mirror's additions lose none of them.
        let new = |m: &str| report(&v, m)["new"]["recall"].as_f64().unwrap();
        assert!(new("tifu-knn") > new("p-topfreq") * 1.5, "{v}");
        assert!(new("mirror") >= new("tifu-knn"), "{v}");
    }

    #[test]
    fn a_history_from_elsewhere_is_evaluated_with_every_item_available() {
        // Another process than the generator's: each customer buys her two staples weekly and
        // one item a cheap linear congruential generator picks.
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("theirs.csv");
        let mut text = String::from("customer_id,sku,timestamp,channel,store_id\n");
        let mut x: u64 = 7;
        for c in 0..300u64 {
            for week in 0..12u64 {
                let at = 1_780_000_000 + week * 7 * 86_400 + c * 60;
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                for sku in [format!("A{}", c % 17), format!("B{}", c % 5), format!("Z{}", (x >> 33) % 50)] {
                    text.push_str(&format!("u{c},{sku},{at},online,\n"));
                }
            }
        }
        std::fs::write(&path, text).unwrap();
        let v = evaluate(&["--history", path.to_str().unwrap(), "--no-stock", "--k", "5"]);
        assert_eq!(v["purchases"], 300 * 12 * 3);
        let staples = report(&v, "p-topfreq")["overall"]["recall"].as_f64().unwrap();
        assert!(staples > 0.6, "{v}");
        assert_eq!(report(&v, "tifu-knn")["overall"]["customers"], 300);
    }

    #[test]
    fn bad_files_and_settings_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("bad.csv");
        std::fs::write(
            &path,
            "customer_id,sku,timestamp,channel,store_id\nc1,1,1780000000,online,\nc1,2,last week,online,\n",
        )
        .unwrap();
        let out = run(&["recommend", "evaluate", "--history", path.to_str().unwrap(), "--no-stock"], None);
        assert!(!out.status.success());
        assert!(stderr(&out).contains("bad.csv:3: field `timestamp`"), "{}", stderr(&out));
        let out = run(&["recommend", "evaluate", "--alpha", "2"], None);
        assert!(!out.status.success());
        assert!(stderr(&out).contains("--alpha"), "{}", stderr(&out));
        let out = run(&["recommend", "evaluate", "--data", tmp.path().to_str().unwrap()], None);
        assert!(!out.status.success());
        assert!(stderr(&out).contains("no history file"), "{}", stderr(&out));
    }

    #[test]
    fn the_generator_writes_the_same_history_for_the_same_seed() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        for d in [&a, &b] {
            let out = run(
                &[
                    "generate",
                    "--stores",
                    "50",
                    "--skus",
                    "60",
                    "--orders",
                    "10",
                    "--customers",
                    "40",
                    "--out",
                    d.path().to_str().unwrap(),
                ],
                None,
            );
            assert!(out.status.success(), "{}", stderr(&out));
        }
        let read = |d: &tempfile::TempDir, f: &str| std::fs::read_to_string(d.path().join(f)).unwrap();
        assert_eq!(read(&a, "history.csv"), read(&b, "history.csv"));
        assert_eq!(read(&a, "catalogue.csv").lines().count(), 61);
        assert!(read(&a, "history.csv").lines().count() > 40 * 5);
    }
}

/// On PostgreSQL replicas: a list on one replica leaves out stock another replica's feed took
/// away, and the scan there shows a coupon captured through the other.
#[actix_rt::test]
async fn replicas_cut_lists_from_the_shared_stock_and_show_coupons_captured_elsewhere() {
    use crate::postgres::{replica, TestDb};
    let db = TestDb::create();
    let (a, b) = (replica(&db.url), replica(&db.url));
    let (customer, store, _) = regulars().into_iter().next().unwrap();
    let before = list(&b, &store, &format!("?customer_id={customer}")).await.json();
    assert_eq!(before["known_customer"], true);
    let gone = before["items"][0]["sku"].as_str().unwrap().to_string();
    let feed = json!([{"store_id": store, "sku": gone, "on_hand": 0}]).to_string();
    let r =
        send("PUT", &a.url("/v1/stock"), Some(STORE_SYSTEM), Some(("application/json", feed))).await.unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    // Replicas see each other's feeds within a second.
    actix_rt::time::sleep(std::time::Duration::from_millis(1_500)).await;
    let after = list(&b, &store, &format!("?customer_id={customer}")).await.json();
    assert_eq!(after["items"].as_array().unwrap().len(), 10);
    assert!(!skus(&after).contains(&gone), "{after}");

    let beijing = beijing_store("1");
    let c = create(&a, campaign("1", json!({}))).await;
    let token = poster_token(&a, c["id"].as_u64().unwrap(), &beijing, 0).await;
    assert_eq!(capture(&a, &token, &customer).await.status, 200);
    let t = post(&b, &format!("/v1/customers/{customer}/token"), CHECKOUT, String::new()).await.json();
    let r = post(
        &b,
        &format!("/v1/stores/{beijing}/scan"),
        STORE_SYSTEM,
        json!({"customer_token": t["customer_token"]}).to_string(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["coupons"].as_array().unwrap().len(), 1, "{}", r.json());
}
