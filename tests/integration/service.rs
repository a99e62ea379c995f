//! The checkout service over HTTP: idempotency, errors, lifecycle, durability.

use crate::server::{sample, spawn_app, TestApp, ADMIN, CHECKOUT, PLANNER, STORE_SYSTEM};
use futures_util::future::join_all;
use futures_util::stream::StreamExt;
use serde_json::{json, Value};
use std::collections::HashMap;

pub(crate) struct Reply {
    pub status: u16,
    pub body: bytes::Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

pub(crate) async fn send(
    method: &str,
    url: &str,
    key: Option<&str>,
    body: Option<(&str, String)>,
) -> Result<Reply, String> {
    let client = awc::Client::builder().timeout(std::time::Duration::from_secs(30)).finish();
    let mut req = client.request(method.parse().unwrap(), url);
    if let Some(k) = key {
        req = req.insert_header(("Authorization", format!("Bearer {k}")));
    }
    let res = match body {
        Some((ct, b)) => req.insert_header(("Content-Type", ct)).send_body(b).await,
        None => req.send().await,
    };
    let mut res = res.map_err(|e| e.to_string())?;
    let body = res.body().limit(64 << 20).await.map_err(|e| e.to_string())?;
    Ok(Reply { status: res.status().as_u16(), body })
}

pub(crate) async fn post(app: &TestApp, path: &str, key: &str, body: String) -> Reply {
    send("POST", &app.url(path), Some(key), Some(("application/json", body))).await.unwrap()
}

pub(crate) async fn get(app: &TestApp, path: &str, key: &str) -> Reply {
    send("GET", &app.url(path), Some(key), None).await.unwrap()
}

/// A ship order from the sample, renamed.
pub fn ship_order(id: &str, n: usize) -> Value {
    let text = std::fs::read_to_string(sample().join("orders.jsonl")).unwrap();
    let mut o: Value = text
        .lines()
        .filter(|l| l.contains("\"ship\""))
        .nth(n)
        .map(|l| serde_json::from_str(l).unwrap())
        .unwrap();
    o["order_id"] = json!(id);
    o
}

async fn stock(app: &TestApp, store: &str, sku: &str) -> Value {
    get(app, &format!("/v1/stock/{store}/{sku}"), ADMIN).await.json()
}

/// (store_id, sku) -> qty held by the store shipments of a decision.
fn held(decision: &Value) -> Vec<((String, String), u64)> {
    let mut out = vec![];
    for s in decision["shipments"].as_array().unwrap() {
        if let Some(store) = s["store_id"].as_str() {
            for l in s["lines"].as_array().unwrap() {
                let sku = l["sku"].as_str().unwrap().to_string();
                out.push(((store.to_string(), sku), l["qty"].as_u64().unwrap()));
            }
        }
    }
    out
}

mod idempotency {
    use super::*;

    #[actix_rt::test]
    async fn fifty_identical_requests_make_one_reservation_and_identical_bodies() {
        let app = spawn_app();
        let order = ship_order("same-50", 0).to_string();
        let replies =
            join_all((0..50).map(|_| post(&app, "/v1/orders/route", CHECKOUT, order.clone()))).await;
        assert!(replies.iter().all(|r| r.status == 200), "{}", String::from_utf8_lossy(&replies[0].body));
        assert!(replies.iter().all(|r| r.body == replies[0].body));
        let decision = replies[0].json();
        let holds = held(&decision);
        assert!(!holds.is_empty(), "the sample order is served by a store: {decision}");
        for ((store, sku), qty) in holds {
            assert_eq!(stock(&app, &store, &sku).await["reserved"].as_u64().unwrap(), qty);
        }
        let metrics = send("GET", &app.url("/metrics"), None, None).await.unwrap();
        let text = String::from_utf8_lossy(&metrics.body).to_string();
        assert!(text.contains("omniroute_reservations_total 1"), "{text}");
    }

    #[actix_rt::test]
    async fn same_id_with_another_body_is_a_conflict_and_changes_nothing() {
        let app = spawn_app();
        let first = post(&app, "/v1/orders/route", CHECKOUT, ship_order("dup-1", 1).to_string()).await;
        assert_eq!(first.status, 200);
        let mut other = ship_order("dup-1", 1);
        other["lines"][0]["qty"] = json!(other["lines"][0]["qty"].as_u64().unwrap() + 1);
        let r = post(&app, "/v1/orders/route", CHECKOUT, other.to_string()).await;
        assert_eq!((r.status, r.json()["code"].as_str().unwrap()), (409, "idempotency_mismatch"));
        let view = get(&app, "/v1/orders/dup-1", CHECKOUT).await.json();
        assert_eq!(view["decision"], first.json());
    }
}

mod bad_input {
    use super::*;

    /// (name, path, content type, key, body, status, code, field)
    type Case<'a> = (&'a str, &'a str, &'a str, Option<&'a str>, String, u16, &'a str, Option<&'a str>);

    #[actix_rt::test]
    async fn a_table_of_bad_requests_gets_statuses_codes_fields_and_changes_no_state() {
        let app = spawn_app();
        let good = ship_order("bad-1", 2);
        let (store, sku) = ("1", "1");
        let before = stock(&app, store, sku).await;
        let with = |f: &dyn Fn(&mut Value)| {
            let mut o = good.clone();
            f(&mut o);
            o.to_string()
        };
        let big_batch =
            json!({"orders": (0..10_001).map(|i| ship_order(&format!("b{i}"), 0)).collect::<Vec<_>>()})
                .to_string();
        #[rustfmt::skip]
        let cases: Vec<Case<'_>> = vec![
            ("lat out of range", "/v1/orders/route", "application/json", Some(CHECKOUT), with(&|o| o["customer"]["lat"] = json!(91.0)), 400, "invalid_field", Some("customer")),
            ("NaN is not JSON", "/v1/orders/route", "application/json", Some(CHECKOUT), with(&|_| {}).replace("\"lat\":", "\"lat\":NaN,\"x\":"), 400, "malformed_json", Some("body")),
            ("empty sku", "/v1/orders/route", "application/json", Some(CHECKOUT), with(&|o| o["lines"][0]["sku"] = json!("")), 400, "invalid_field", Some("lines[0].sku")),
            ("sku too long", "/v1/orders/route", "application/json", Some(CHECKOUT), with(&|o| o["lines"][0]["sku"] = json!("x".repeat(65))), 400, "invalid_field", Some("lines[0].sku")),
            ("sku with a control character", "/v1/orders/route", "application/json", Some(CHECKOUT), with(&|o| o["lines"][0]["sku"] = json!("A\nB")), 400, "invalid_field", Some("lines[0].sku")),
            ("negative number as sku", "/v1/orders/route", "application/json", Some(CHECKOUT), with(&|o| o["lines"][0]["sku"] = json!(-4)), 400, "invalid_field", Some("lines[0].sku")),
            ("unknown pickup store", "/v1/orders/route", "application/json", Some(CHECKOUT), with(&|o| { o["mode"] = json!("pickup"); o["pickup_store_id"] = json!(77_777); }), 422, "unknown_store", Some("pickup_store_id")),
            ("qty zero", "/v1/orders/route", "application/json", Some(CHECKOUT), with(&|o| o["lines"][0]["qty"] = json!(0)), 400, "invalid_field", Some("lines[0].qty")),
            ("qty absurd", "/v1/orders/route", "application/json", Some(CHECKOUT), with(&|o| o["lines"][0]["qty"] = json!(1_000_000_000u64)), 400, "invalid_field", Some("lines[0].qty")),
            ("no lines", "/v1/orders/route", "application/json", Some(CHECKOUT), with(&|o| o["lines"] = json!([])), 400, "invalid_field", Some("lines")),
            ("same sku twice", "/v1/orders/route", "application/json", Some(CHECKOUT), with(&|o| { let l = o["lines"][0].clone(); o["lines"] = json!([l.clone(), l]); }), 400, "invalid_field", Some("lines[1].sku")),
            ("malformed json", "/v1/orders/route", "application/json", Some(CHECKOUT), "{\"order_id\":".into(), 400, "malformed_json", Some("body")),
            ("unknown field", "/v1/orders/route", "application/json", Some(CHECKOUT), with(&|o| o["colour"] = json!("red")), 400, "invalid_field", Some("colour")),
            ("bad order id", "/v1/orders/route", "application/json", Some(CHECKOUT), with(&|o| o["order_id"] = json!("has space")), 400, "invalid_field", Some("order_id")),
            ("body too large", "/v1/orders/route", "application/json", Some(CHECKOUT), format!("{{\"pad\":\"{}\"}}", "x".repeat(70_000)), 413, "payload_too_large", None),
            ("batch too large", "/v1/orders/route-batch", "application/json", Some(CHECKOUT), big_batch, 413, "too_many_items", Some("orders")),
            ("wrong content type", "/v1/orders/route", "text/plain", Some(CHECKOUT), with(&|_| {}), 415, "unsupported_media_type", None),
            ("no key", "/v1/orders/route", "application/json", None, with(&|_| {}), 401, "unauthorized", None),
            ("wrong key", "/v1/orders/route", "application/json", Some("not-a-real-key"), with(&|_| {}), 401, "unauthorized", None),
            ("wrong role", "/v1/orders/route", "application/json", Some(PLANNER), with(&|_| {}), 403, "forbidden", None),
            ("feed by checkout", "/v1/stock", "application/json", Some(CHECKOUT), json!([{"store_id": store, "sku": sku, "delta": 1}]).to_string(), 403, "forbidden", None),
            ("feed unknown store", "/v1/stock", "application/json", Some(STORE_SYSTEM), json!([{"store_id": store, "sku": sku, "delta": 1}, {"store_id": 99_999, "sku": sku, "on_hand": 1}]).to_string(), 422, "unknown_store", Some("[1].store_id")),
            ("feed both kinds", "/v1/stock", "application/json", Some(STORE_SYSTEM), json!([{"store_id": store, "sku": sku, "delta": 1, "on_hand": 3}]).to_string(), 400, "invalid_field", Some("[0].delta")),
            ("feed negative", "/v1/stock", "application/json", Some(STORE_SYSTEM), json!([{"store_id": store, "sku": sku, "delta": 5}, {"store_id": store, "sku": sku, "delta": -1_000_000}]).to_string(), 422, "negative_on_hand", Some("[1].delta")),
        ];
        for (name, path, ct, key, body, status, code, field) in cases {
            let r =
                send(if path == "/v1/stock" { "PUT" } else { "POST" }, &app.url(path), key, Some((ct, body)))
                    .await
                    .unwrap();
            assert_eq!(r.status, status, "{name}: {}", String::from_utf8_lossy(&r.body));
            let v = r.json();
            assert_eq!(v["code"], json!(code), "{name}: {v}");
            assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{name}");
            if let Some(f) = field {
                assert_eq!(v["field"], json!(f), "{name}: {v}");
            }
        }
        assert_eq!(stock(&app, store, sku).await, before, "rejected requests changed stock");
        assert_eq!(get(&app, "/v1/orders/bad-1", CHECKOUT).await.status, 404);
        let r = get(&app, "/v1/stores/nearby?lat=31&lon=500", CHECKOUT).await;
        assert_eq!((r.status, r.json()["field"].clone()), (400, json!("lon")));
        assert_eq!(get(&app, "/v1/no/such/route", CHECKOUT).await.json()["code"], json!("not_found"));
        assert!(!app.log().contains("panicked"), "{}", app.log());
    }
}

mod lifecycle {
    use super::*;

    #[actix_rt::test]
    async fn ship_commits_cancel_releases_and_both_are_idempotent() {
        let app = spawn_app();
        let d = post(&app, "/v1/orders/route", CHECKOUT, ship_order("life-1", 3).to_string()).await.json();
        let ((store, sku), qty) = held(&d)[0].clone();
        let before = stock(&app, &store, &sku).await;
        for _ in 0..2 {
            let r = post(&app, "/v1/orders/life-1/ship", CHECKOUT, String::new()).await;
            assert_eq!((r.status, r.json()["state"].clone()), (200, json!("committed")));
        }
        let after = stock(&app, &store, &sku).await;
        assert_eq!(after["on_hand"].as_u64().unwrap(), before["on_hand"].as_u64().unwrap() - qty);
        assert_eq!(after["reserved"].as_u64().unwrap(), before["reserved"].as_u64().unwrap() - qty);
        let r = post(&app, "/v1/orders/life-1/cancel", CHECKOUT, String::new()).await;
        assert_eq!((r.status, r.json()["code"].clone()), (409, json!("invalid_state")));

        post(&app, "/v1/orders/route", CHECKOUT, ship_order("life-2", 4).to_string()).await;
        for _ in 0..2 {
            let r = post(&app, "/v1/orders/life-2/cancel", CHECKOUT, String::new()).await;
            assert_eq!((r.status, r.json()["state"].clone()), (200, json!("released")));
        }
        assert_eq!(post(&app, "/v1/orders/nope/cancel", CHECKOUT, String::new()).await.status, 404);
    }

    /// Ended reservations leave memory once durable: repeated ships and cancels, reads, route
    /// retries and each store's count of the day's orders still answer as before, before and
    /// after a restart.
    #[actix_rt::test]
    async fn ended_orders_answer_from_the_state_file_before_and_after_a_restart() {
        let mut app = spawn_app();
        let mut stores = Vec::new();
        let mut bodies = Vec::new();
        let mut n = 10;
        for id in ["gone-ship", "gone-cancel", "gone-held"] {
            // The next sample order a store serves (some go to a DC).
            loop {
                n += 1;
                let body = ship_order(&format!("{id}-{n}"), n).to_string();
                let d = post(&app, "/v1/orders/route", CHECKOUT, body.clone()).await.json();
                if !held(&d).is_empty() {
                    let body = ship_order(id, n).to_string();
                    let d = post(&app, "/v1/orders/route", CHECKOUT, body.clone()).await.json();
                    stores.extend(held(&d).into_iter().map(|((store, _), _)| store));
                    bodies.push((id.to_string(), body));
                    break;
                }
            }
        }
        assert_eq!(bodies.len(), 3);
        assert_eq!(post(&app, "/v1/orders/gone-ship/ship", CHECKOUT, String::new()).await.status, 200);
        let r = post(&app, "/v1/orders/gone-cancel/cancel", CHECKOUT, String::new()).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let orders_today = |app: &TestApp| {
            let (app, stores) = (app.url(""), stores.clone());
            async move {
                let mut out = Vec::new();
                for s in stores {
                    let r = send("GET", &format!("{app}/v1/stores/{s}"), Some(PLANNER), None).await.unwrap();
                    out.push((s, r.json()["orders_today"].clone()));
                }
                out
            }
        };
        let counts = orders_today(&app).await;
        for round in 0..2 {
            for (end, state) in [("ship", "committed"), ("cancel", "released")] {
                let id = if end == "ship" { "gone-ship" } else { "gone-cancel" };
                let r = post(&app, &format!("/v1/orders/{id}/{end}"), CHECKOUT, String::new()).await;
                assert_eq!((r.status, r.json()["state"].clone()), (200, json!(state)), "round {round}");
                let r = get(&app, &format!("/v1/orders/{id}"), CHECKOUT).await.json();
                assert_eq!((r["state"].clone(), r["expires_at"].clone()), (json!(state), json!(null)));
            }
            let r = post(&app, "/v1/orders/gone-ship/cancel", CHECKOUT, String::new()).await;
            assert_eq!((r.status, r.json()["code"].clone()), (409, json!("invalid_state")), "round {round}");
            let r = post(&app, "/v1/orders/gone-cancel/ship", CHECKOUT, String::new()).await;
            assert_eq!((r.status, r.json()["code"].clone()), (409, json!("invalid_state")), "round {round}");
            for (id, body) in &bodies {
                let r = post(&app, "/v1/orders/route", CHECKOUT, body.clone()).await;
                let want = match id.as_str() {
                    "gone-ship" => "committed",
                    "gone-cancel" => "released",
                    _ => "held",
                };
                assert_eq!((r.status, r.json()["reservation_state"].clone()), (200, json!(want)), "{id}");
            }
            assert_eq!(orders_today(&app).await, counts, "round {round}");
            app.restart();
        }
    }

    #[actix_rt::test]
    async fn reservations_expire_after_their_ttl() {
        let mut app = crate::server::spawn_app_with(&sample(), &["--reservation-ttl-s", "1"]);
        let d = post(&app, "/v1/orders/route", CHECKOUT, ship_order("ttl-1", 5).to_string()).await.json();
        let ((store, sku), _) = held(&d)[0].clone();
        let mut state = json!(null);
        for _ in 0..50 {
            state = get(&app, "/v1/orders/ttl-1", CHECKOUT).await.json()["state"].clone();
            if state == json!("expired") {
                break;
            }
            actix_rt::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(state, json!("expired"));
        assert_eq!(stock(&app, &store, &sku).await["reserved"], json!(0));
        app.restart();
        assert_eq!(get(&app, "/v1/orders/ttl-1", CHECKOUT).await.json()["state"], json!("expired"));
    }

    #[actix_rt::test]
    async fn feeds_are_applied_durably_and_oversubscription_is_flagged() {
        let mut app = spawn_app();
        let d = post(&app, "/v1/orders/route", CHECKOUT, ship_order("feed-1", 6).to_string()).await.json();
        let ((store, sku), qty) = held(&d)[0].clone();
        let body = json!([{"store_id": store, "sku": sku, "on_hand": 0}]).to_string();
        let r = send("PUT", &app.url("/v1/stock"), Some(STORE_SYSTEM), Some(("application/json", body)))
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["oversubscribed"][0]["reserved"].as_u64(), Some(qty));
        app.restart();
        let s = stock(&app, &store, &sku).await;
        assert_eq!(
            (s["on_hand"].as_u64(), s["reserved"].as_u64(), s["oversubscribed"].clone()),
            (Some(0), Some(qty), json!(true))
        );
    }
}

mod durability {
    use super::*;

    /// Initial on_hand per (store, sku) from the sample's stock.csv.
    fn initial_stock() -> HashMap<(String, String), u64> {
        std::fs::read_to_string(sample().join("stock.csv"))
            .unwrap()
            .lines()
            .skip(1)
            .map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                ((f[0].to_string(), f[1].to_string()), f[2].parse().unwrap())
            })
            .collect()
    }

    /// A crash leaves the state file for redb to check at the next start (and says so); a clean
    /// stop closes it, so the next start need not; with `--quick-repair` a crash needs no check
    /// either. Acknowledged orders are there every time.
    #[actix_rt::test]
    async fn a_clean_stop_closes_the_state_file_and_quick_repair_spares_the_check_after_a_crash() {
        let checked = |app: &TestApp| app.log().contains("not closed cleanly");
        for (flags, checked_after_crash) in [(&[][..], true), (&["--quick-repair"][..], false)] {
            let mut app = crate::server::spawn_app_with(&sample(), flags);
            for (n, end) in ["crash", "stop"].iter().enumerate() {
                let id = format!("{end}-{}", flags.len());
                let r = post(&app, "/v1/orders/route", CHECKOUT, ship_order(&id, n).to_string()).await;
                assert_eq!(r.status, 200);
                if *end == "crash" {
                    app.kill();
                } else {
                    app.stop();
                }
                app.restart();
                let want = *end == "crash" && checked_after_crash;
                assert_eq!(checked(&app), want, "{flags:?} after a {end}: {}", app.log());
                assert_eq!(
                    get(&app, &format!("/v1/orders/{id}"), CHECKOUT).await.json()["decision"],
                    r.json()
                );
            }
        }
    }

    #[actix_rt::test]
    async fn sigkill_mid_stream_loses_no_acknowledged_reservation_and_conserves_stock() {
        let mut app = spawn_app();
        let pid = app.pid().to_string();
        let orders: Vec<(String, String)> = (0..600)
            .map(|i| {
                let id = format!("crash-{i}");
                (id.clone(), ship_order(&id, i % 400).to_string())
            })
            .collect();
        let mut acked: HashMap<String, Value> = HashMap::new();
        let url = app.url("/v1/orders/route");
        // Four full waves of 80, then a stream of 100 with at most 8 in flight, during which the
        // server is killed once ten answers are back.
        let (before, during) = orders.split_at(320);
        for chunk in before.chunks(80) {
            let replies = join_all(
                chunk
                    .iter()
                    .map(|(_, b)| send("POST", &url, Some(CHECKOUT), Some(("application/json", b.clone())))),
            )
            .await;
            for ((id, _), r) in chunk.iter().zip(replies) {
                let r = r.unwrap();
                assert_eq!(r.status, 200);
                acked.insert(id.clone(), r.json());
            }
        }
        let mut in_flight = futures_util::stream::iter(during[..100].iter().map(|(id, b)| {
            let url = url.clone();
            async move {
                (id.clone(), send("POST", &url, Some(CHECKOUT), Some(("application/json", b.clone()))).await)
            }
        }))
        .buffer_unordered(8);
        let (mut answered, mut failed) = (0, 0);
        while let Some((id, r)) = in_flight.next().await {
            match r {
                Ok(r) if r.status == 200 => {
                    acked.insert(id, r.json());
                    answered += 1;
                    if answered == 10 {
                        std::process::Command::new("kill").args(["-9", &pid]).status().unwrap();
                    }
                }
                _ => failed += 1,
            }
        }
        assert!(failed > 0, "every request finished before the kill; nothing was in flight");
        app.restart();

        let initial = initial_stock();
        let mut expected_reserved: HashMap<(String, String), u64> = HashMap::new();
        let mut present = 0;
        for (id, _) in &orders[..420] {
            let r = get(&app, &format!("/v1/orders/{id}"), CHECKOUT).await;
            if let Some(decision) = acked.get(id) {
                assert_eq!(r.status, 200, "acknowledged order {id} lost after SIGKILL");
                assert_eq!(&r.json()["decision"], decision, "order {id} changed");
            }
            if r.status == 200 {
                present += 1;
                let v = r.json();
                if v["state"] == json!("held") {
                    for (cell, qty) in held(&v["decision"]) {
                        *expected_reserved.entry(cell).or_default() += qty;
                    }
                }
            }
        }
        assert!(present >= acked.len());
        assert!(!expected_reserved.is_empty(), "no held reservation to check");
        for ((store, sku), reserved) in &expected_reserved {
            let s = stock(&app, store, sku).await;
            let (on_hand, res, safety, available) = (
                s["on_hand"].as_u64().unwrap(),
                s["reserved"].as_u64().unwrap(),
                s["safety_stock"].as_u64().unwrap(),
                s["available"].as_u64().unwrap(),
            );
            assert_eq!(res, *reserved, "reserved of ({store}, {sku})");
            assert_eq!(
                on_hand,
                initial[&(store.clone(), sku.clone())],
                "on_hand of ({store}, {sku}) changed without feeds or shipments"
            );
            assert_eq!(
                available + res + safety,
                on_hand.max(res + safety),
                "conservation at ({store}, {sku})"
            );
        }
        // A retry of an acknowledged order after the restart returns the stored answer.
        let (id, body) = orders.iter().find(|(id, _)| acked.contains_key(id)).unwrap();
        let r = post(&app, "/v1/orders/route", CHECKOUT, body.clone()).await;
        assert_eq!((r.status, r.json()), (200, acked[id].clone()));
    }
}

mod reads {
    use super::*;

    #[actix_rt::test]
    async fn batch_routes_with_per_order_results_stores_and_docs_answer() {
        let app = spawn_app();
        let mut bad = ship_order("batch-bad", 1);
        bad["lines"][0]["qty"] = json!(0);
        let batch = json!({"orders": [ship_order("batch-1", 7), bad, ship_order("batch-1", 7)]}).to_string();
        let r = post(&app, "/v1/orders/route-batch", CHECKOUT, batch).await;
        assert_eq!(r.status, 200);
        let results = r.json()["results"].as_array().unwrap().clone();
        assert_eq!(results.len(), 3);
        assert_eq!(results[0]["order_id"], json!("batch-1"));
        assert_eq!(results[1]["error"]["field"], json!("orders[1].lines[0].qty"));
        assert_eq!(results[2]["error"]["field"], json!("orders[2].order_id"));
        // A retry through the single endpoint gets the same answer.
        let single = post(&app, "/v1/orders/route", CHECKOUT, ship_order("batch-1", 7).to_string()).await;
        assert_eq!(single.json(), results[0]);

        let near = get(&app, "/v1/stores/nearby?lat=31.2&lon=121.45&k=3&sku=1", PLANNER).await.json();
        let near = near.as_array().unwrap();
        assert_eq!(near.len(), 3);
        assert!(near.windows(2).all(|w| w[0]["distance_m"].as_f64() <= w[1]["distance_m"].as_f64()));
        assert!(near.iter().all(|s| s["available"].as_u64().unwrap() > 0));
        let store =
            get(&app, &format!("/v1/stores/{}", near[0]["store_id"].as_str().unwrap()), PLANNER).await;
        assert_eq!(store.status, 200);
        assert_eq!(store.json()["store_id"], near[0]["store_id"]);

        let spec = send("GET", &app.url("/openapi.json"), None, None).await.unwrap().json();
        for path in ["/v1/orders/route", "/v1/orders/route-batch", "/v1/stock", "/v1/stores/nearby"] {
            assert!(spec["paths"][path].is_object(), "{path} missing from the spec");
        }
        let docs = send("GET", &app.url("/docs/"), None, None).await.unwrap();
        assert_eq!(docs.status, 200);
        assert!(String::from_utf8_lossy(&docs.body).contains("swagger"), "docs page is served offline");
        assert_eq!(send("GET", &app.url("/readyz"), None, None).await.unwrap().status, 200);
    }
}

mod plans {
    use super::*;

    async fn wait_done(app: &TestApp, location: &str) -> Value {
        for _ in 0..600 {
            let r = get(app, location, PLANNER).await;
            assert_eq!(r.status, 200);
            let v = r.json();
            match v["status"].as_str().unwrap() {
                "done" | "failed" => return v,
                "queued" | "running" => {}
                other => panic!("unexpected status {other}"),
            }
            actix_rt::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("plan did not finish within a minute");
    }

    #[actix_rt::test]
    async fn planners_run_lp_and_greedy_plans_that_reserve_nothing_and_bad_input_is_refused() {
        let app = spawn_app();
        let orders: Vec<Value> = (0..200).map(|i| ship_order(&format!("plan-{i}"), i)).collect();
        let body = json!({
            "orders": orders,
            "solver": "lp",
            "config": {"k": 8, "weights": {"per_km": 1.0, "dc_flat": 500.0, "unfilled": 100000.0}}
        })
        .to_string();

        let r = post(&app, "/v1/plans", CHECKOUT, body.clone()).await;
        assert_eq!((r.status, r.json()["code"].clone()), (403, json!("forbidden")));

        let r = send("POST", &app.url("/v1/plans"), Some(PLANNER), Some(("application/json", body)))
            .await
            .unwrap();
        assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
        let id = r.json()["plan_id"].as_str().unwrap().to_string();
        let plan = wait_done(&app, &format!("/v1/plans/{id}")).await;
        assert_eq!(plan["status"], json!("done"), "{plan}");
        let result = &plan["result"];
        assert_eq!(result["kpis"]["orders"], json!(200));
        let served = result["assignments"].as_array().unwrap();
        assert_eq!(served.len() + result["unfilled"].as_array().unwrap().len(), 200);
        let cost = result["kpis"]["cost"].as_f64().unwrap();
        assert!(result["lp"]["lower_bound"].as_f64().unwrap() <= cost + 1e-6);
        assert!(result["greedy_comparison"]["greedy_cost"].as_f64().unwrap() >= cost - 1e-6);
        // Planning reserves nothing.
        let first = &served[0]["shipments"][0];
        if let Some(store) = first["store_id"].as_str() {
            let sku = first["lines"][0]["sku"].as_str().unwrap();
            assert_eq!(stock(&app, store, sku).await["reserved"], json!(0));
        }

        let greedy = json!({"orders": [ship_order("g-1", 1), ship_order("g-2", 2)], "solver": "greedy"});
        let r = post(&app, "/v1/plans", PLANNER, greedy.to_string()).await;
        assert_eq!(r.status, 202);
        let plan = wait_done(&app, &format!("/v1/plans/{}", r.json()["plan_id"].as_str().unwrap())).await;
        assert_eq!((plan["status"].clone(), plan["solver"].clone()), (json!("done"), json!("greedy")));
        assert!(plan["result"]["lp"].is_null());

        for (body, status, code, field) in [
            (json!({"orders": [ship_order("x", 1)], "config": {"k": 0}}), 400, "invalid_field", "config.k"),
            (
                json!({"orders": [ship_order("x", 1)], "config": {"weights": {"per_km": -1.0}}}),
                400,
                "invalid_field",
                "config.weights.per_km",
            ),
            (
                json!({"orders": [ship_order("x", 1)], "config": {"speed": 1}}),
                400,
                "invalid_field",
                "config.speed",
            ),
            (
                json!({"orders": [ship_order("x", 1), ship_order("x", 2)]}),
                400,
                "invalid_field",
                "orders[1].order_id",
            ),
            (json!({"orders": []}), 400, "invalid_field", "orders"),
            (json!({"orders": [ship_order("x", 1)], "solver": "magic"}), 400, "invalid_field", "solver"),
        ] {
            let r = post(&app, "/v1/plans", PLANNER, body.to_string()).await;
            let v = r.json();
            assert_eq!((r.status, v["code"].as_str().unwrap()), (status, code), "{body}: {v}");
            assert!(v["field"].as_str().unwrap_or("").starts_with(field), "{body}: {v}");
        }
        assert_eq!(get(&app, "/v1/plans/plan-nope", PLANNER).await.status, 404);
        let metrics = String::from_utf8_lossy(&get(&app, "/metrics", ADMIN).await.body).into_owned();
        assert!(metrics.contains("omniroute_plans_total{solver=\"lp\",status=\"done\"} 1"), "{metrics}");
    }
}
