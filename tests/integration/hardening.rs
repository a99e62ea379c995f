//! What a hostile client or a careless operator meets: limits that hold before memory is spent,
//! errors in the API's shape for every request, state that is never lost without a word, and
//! answers that say what is true now.

use crate::helpers::{bin, run, stderr, stdout};
use crate::server::{sample, spawn_app, spawn_app_with, TestApp, ADMIN, CHECKOUT, PLANNER, STORE_SYSTEM};
use crate::service::{get, post, send, ship_order};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// Sends raw bytes on a fresh connection and reads what comes back within `wait`.
fn raw(app: &TestApp, bytes: &[u8], wait: Duration) -> String {
    let addr = app.base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(wait)).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if out.windows(4).any(|w| w == b"\r\n\r\n") && out.ends_with(b"}") {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

mod answers {
    use super::*;

    #[actix_rt::test]
    async fn a_retry_after_a_cancel_says_the_reservation_was_released_and_nothing_else_changes() {
        let app = spawn_app();
        let o = ship_order("H-RETRY", 0).to_string();
        let first = post(&app, "/v1/orders/route", CHECKOUT, o.clone()).await;
        let first_json = first.json();
        assert_eq!(first_json["reservation_state"], "held", "{first_json}");
        assert!(first_json["reservation_expires_at"].is_string());
        assert_eq!(post(&app, "/v1/orders/route", CHECKOUT, o.clone()).await.body, first.body);
        assert_eq!(post(&app, "/v1/orders/H-RETRY/cancel", CHECKOUT, String::new()).await.status, 200);
        let retry = post(&app, "/v1/orders/route", CHECKOUT, o).await;
        assert_eq!(retry.status, 200);
        let mut want = first_json.clone();
        want["reservation_state"] = json!("released");
        want["reservation_expires_at"] = Value::Null;
        assert_eq!(retry.json(), want);
    }

    /// The decision a read returns is the one acknowledged, to the last digit.
    #[actix_rt::test]
    async fn reading_an_order_returns_the_acknowledged_bytes() {
        #[derive(serde::Deserialize)]
        struct View<'a> {
            #[serde(borrow)]
            decision: &'a serde_json::value::RawValue,
        }
        let app = spawn_app();
        for n in 0..60 {
            let id = format!("H-EXACT-{n}");
            let routed = post(&app, "/v1/orders/route", CHECKOUT, ship_order(&id, n).to_string()).await;
            assert_eq!(routed.status, 200);
            let read = get(&app, &format!("/v1/orders/{id}"), CHECKOUT).await;
            let view: View = serde_json::from_slice(&read.body).unwrap();
            assert_eq!(view.decision.get().as_bytes(), &routed.body[..], "order {id}");
        }
    }
}

mod limits {
    use super::*;

    #[actix_rt::test]
    async fn a_declared_body_over_the_limit_is_refused_before_it_is_read() {
        let app = spawn_app();
        let head = format!(
            "POST /v1/plans HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {PLANNER}\r\nContent-Type: application/json\r\nContent-Length: 4294967296\r\n\r\n{{"
        );
        let t = Instant::now();
        let reply = raw(&app, head.as_bytes(), Duration::from_secs(10));
        assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
        assert!(reply.contains("payload_too_large"), "{reply}");
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[actix_rt::test]
    async fn a_body_that_trickles_in_is_cut_off_with_408() {
        let app = spawn_app_with(&sample(), &["--body-timeout-s", "1"]);
        let head = format!(
            "POST /v1/orders/route HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {CHECKOUT}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
        );
        let t = Instant::now();
        let reply = raw(&app, head.as_bytes(), Duration::from_secs(10));
        assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
        assert!(reply.contains("request_timeout"), "{reply}");
        assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
    }

    #[actix_rt::test]
    async fn methods_head_and_content_types_are_answered_as_http_says() {
        let app = spawn_app();
        let r = send("GET", &app.url("/v1/orders/route"), Some(CHECKOUT), None).await.unwrap();
        assert_eq!((r.status, r.json()["code"].clone()), (405, json!("method_not_allowed")));
        let res = awc::Client::new().delete(app.url("/v1/stock/1/1")).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 405);
        assert_eq!(res.headers().get("allow").unwrap(), "GET, HEAD");
        let head = awc::Client::new()
            .head(app.url("/v1/stores/1"))
            .insert_header(("Authorization", format!("Bearer {CHECKOUT}")))
            .send()
            .await
            .unwrap();
        assert_eq!(head.status().as_u16(), 200);
        let o = ship_order("H-CT", 0).to_string();
        let r = send(
            "POST",
            &app.url("/v1/orders/route"),
            Some(CHECKOUT),
            Some(("application/jsonx", o.clone())),
        )
        .await
        .unwrap();
        assert_eq!((r.status, r.json()["code"].clone()), (415, json!("unsupported_media_type")));
        let r = send(
            "POST",
            &app.url("/v1/orders/route"),
            Some(CHECKOUT),
            Some(("application/json; charset=utf-8", o)),
        )
        .await
        .unwrap();
        assert_eq!(r.status, 200);
    }

    #[actix_rt::test]
    async fn errors_raised_before_a_handler_still_have_the_api_shape() {
        let app = spawn_app();
        // A header actix cannot read (a bad Content-Length).
        let reply = raw(
            &app,
            b"POST /v1/orders/route HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
            Duration::from_secs(5),
        );
        assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
        // A path that does not decode.
        let r = send("GET", &app.url("/v1/orders/%FF%FE"), Some(CHECKOUT), None).await.unwrap();
        assert!(r.status == 400 || r.status == 404, "{}", r.status);
        assert!(r.json()["code"].is_string());
        // Nothing of that is logged as an error.
        assert!(!app.log().contains("ERROR"), "{}", app.log());
    }

    #[actix_rt::test]
    async fn plan_weights_are_bounded_and_a_full_plan_queue_answers_429() {
        let app = spawn_app_with(&sample(), &["--plan-queue", "0"]);
        let orders: Vec<Value> = (0..2000).map(|i| ship_order(&format!("P{i}"), i)).collect();
        let bad = json!({"orders": orders[..2], "config": {"weights": {"per_km": 1e308}}});
        let r = post(&app, "/v1/plans", PLANNER, bad.to_string()).await;
        assert_eq!((r.status, r.json()["field"].clone()), (400, json!("config.weights.per_km")));
        let body = json!({"orders": orders, "solver": "lp"}).to_string();
        let replies =
            futures_util::future::join_all((0..6).map(|_| post(&app, "/v1/plans", PLANNER, body.clone())))
                .await;
        let accepted = replies.iter().filter(|r| r.status == 202).count();
        let refused: Vec<_> = replies.iter().filter(|r| r.status == 429).collect();
        assert!(
            accepted >= 1 && !refused.is_empty(),
            "{:?}",
            replies.iter().map(|r| r.status).collect::<Vec<_>>()
        );
        assert_eq!(refused[0].json()["code"], "too_many_requests");
    }
}

mod operators {
    use super::*;

    #[test]
    fn serve_needs_data_and_keys_unless_in_development_mode() {
        let out = bin()
            .args(["serve", "--bind", "127.0.0.1:0"])
            .env("OMNIROUTE_API_KEYS", "admin:abcdefgh1")
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("--data"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = bin()
            .args(["serve", "--bind", "127.0.0.1:0", "--data"])
            .arg(sample())
            .env_remove("OMNIROUTE_API_KEYS")
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("no API keys"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn a_port_in_use_is_reported_at_once() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let t = Instant::now();
        let out = bin()
            .args(["serve", "--bind", &format!("127.0.0.1:{port}"), "--dev", "--data"])
            .arg(sample())
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("binding") && !err.contains("loaded"), "{err}");
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    }
}

mod state {
    use super::*;

    fn serve(state: &std::path::Path, data: &std::path::Path, extra: &[&str]) -> std::process::Output {
        // Starts and stops at once when the state is refused; otherwise stopped by the timeout.
        let mut c = bin();
        c.args(["serve", "--bind", "127.0.0.1:0", "--dev", "--data"])
            .arg(data)
            .arg("--state")
            .arg(state)
            .args(extra);
        let mut child =
            c.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(20) {
            if child.try_wait().unwrap().is_some() {
                return child.wait_with_output().unwrap();
            }
            std::thread::sleep(Duration::from_millis(50));
            let mut line = String::new();
            if let Some(out) = child.stdout.as_mut() {
                let mut b = [0u8; 64];
                if let Ok(n) = out.read(&mut b) {
                    line.push_str(&String::from_utf8_lossy(&b[..n]));
                }
            }
            if line.contains("listening") {
                let _ = child.kill();
                return child.wait_with_output().unwrap();
            }
        }
        let _ = child.kill();
        child.wait_with_output().unwrap()
    }

    #[test]
    fn a_state_of_another_dataset_or_an_empty_state_file_stops_the_start_with_a_message() {
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path().join("state");
        // A state written for the sample...
        let out = serve(&state, &sample(), &[]);
        assert!(state.join("state.redb").exists(), "{}", String::from_utf8_lossy(&out.stderr));
        // ... is refused with another dataset.
        let other = crate::helpers::small_dataset(3);
        let out = serve(&state, &other.dir, &[]);
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("belongs to another dataset"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // An empty state file is refused, and kept; --new-state sets it aside.
        std::fs::write(state.join("state.redb"), b"").unwrap();
        let out = serve(&state, &sample(), &[]);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success() && err.contains("empty") && err.contains("--new-state"), "{err}");
        assert_eq!(std::fs::metadata(state.join("state.redb")).unwrap().len(), 0);
        serve(&state, &sample(), &["--new-state"]);
        let aside = std::fs::read_dir(&state)
            .unwrap()
            .filter_map(|e| e.ok())
            .any(|e| e.file_name().to_string_lossy().contains("damaged-"));
        assert!(aside);
        assert!(std::fs::metadata(state.join("state.redb")).unwrap().len() > 0);
    }

    #[actix_rt::test]
    async fn a_backup_taken_while_serving_verifies_and_holds_the_acknowledged_orders() {
        let app = spawn_app();
        for n in 0..20 {
            assert_eq!(
                post(&app, "/v1/orders/route", CHECKOUT, ship_order(&format!("B{n}"), n).to_string())
                    .await
                    .status,
                200
            );
        }
        let r = post(&app, "/v1/admin/backup", CHECKOUT, String::new()).await;
        assert_eq!(r.status, 403);
        let r = send("POST", &app.url("/v1/admin/backup"), Some(ADMIN), None).await.unwrap();
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let b = r.json();
        assert_eq!(b["orders"], 20);
        let path = b["path"].as_str().unwrap().to_string();
        let out = run(&["state", "verify", "--file", &path, "--data", sample().to_str().unwrap()], None);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            stdout(&out).contains("20 answered orders") && stdout(&out).contains("belongs to the dataset"),
            "{}",
            stdout(&out)
        );
        // A damaged copy does not verify.
        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n / 4..3 * n / 4].fill(0x5a);
        std::fs::write(&path, bytes).unwrap();
        let out = run(&["state", "verify", "--file", &path], None);
        assert!(!out.status.success());
    }
}

/// A stock feed that raises a cell to 1,000 and is then refused by its last row, sent again and
/// again while pickups race for that cell: no route may ever see the 1,000.
mod feeds_race_routes {
    use super::*;
    use crate::postgres::{replica, TestDb};

    const STORE: &str = "3";
    const SKU: &str = "1";
    const REAL: u64 = 5;

    async fn race(app: &TestApp) {
        let url = app.url("/v1/stock");
        let feed =
            |rows: Value| send("PUT", &url, Some(STORE_SYSTEM), Some(("application/json", rows.to_string())));
        let r =
            feed(json!([{"store_id": STORE, "sku": SKU, "on_hand": REAL, "safety_stock": 0}])).await.unwrap();
        assert_eq!(r.status, 200);
        // The refused feed: the phantom, 20,000 rows that change nothing, a row that cannot apply.
        let stock = std::fs::read_to_string(sample().join("stock.csv")).unwrap();
        let mut rows = vec![json!({"store_id": STORE, "sku": SKU, "on_hand": 1000})];
        for line in stock.lines().skip(1).take(20_000) {
            let f: Vec<&str> = line.split(',').collect();
            rows.push(json!({"store_id": f[0], "sku": f[1], "delta": 0}));
        }
        rows.push(json!({"store_id": STORE, "sku": "2", "delta": -1_000_000}));
        let refused = Value::Array(rows);
        let feeds = async {
            for _ in 0..8 {
                let r = feed(refused.clone()).await.unwrap();
                assert_eq!((r.status, r.json()["code"].clone()), (422, json!("negative_on_hand")));
            }
        };
        let routes = async {
            let mut taken = 0;
            for round in 0..20 {
                let replies = futures_util::future::join_all((0..4).map(|k| {
                    let o = json!({
                        "order_id": format!("RACE-{round}-{k}"), "created_at": "2026-11-11T00:00:00+08:00",
                        "customer": {"lon": 121.7, "lat": 38.85}, "mode": "pickup", "pickup_store_id": STORE,
                        "lines": [{"sku": SKU, "qty": 1}],
                    });
                    post(app, "/v1/orders/route", CHECKOUT, o.to_string())
                }))
                .await;
                for r in replies {
                    assert_eq!(r.status, 200);
                    let d = r.json();
                    if d["status"] == "assigned" && d["shipments"][0]["store_id"] == STORE {
                        taken += 1;
                    }
                }
            }
            taken
        };
        let ((), taken) = futures_util::future::join(feeds, routes).await;
        assert!(taken <= REAL, "{taken} pickups took the store's {REAL} units");
        let level = get(app, &format!("/v1/stock/{STORE}/{SKU}"), ADMIN).await.json();
        assert_eq!(
            (level["on_hand"].as_u64(), level["reserved"].as_u64()),
            (Some(REAL), Some(taken)),
            "{level}"
        );
        assert_eq!(level["oversubscribed"], false);
    }

    #[actix_rt::test]
    async fn on_the_embedded_store() {
        race(&spawn_app()).await;
    }

    #[actix_rt::test]
    async fn on_postgresql() {
        let db = TestDb::create();
        race(&replica(&db.url)).await;
    }
}
