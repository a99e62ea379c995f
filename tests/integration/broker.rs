//! Stock feeds through NATS JetStream and events out, against the broker running on this machine
//! (`OMNIROUTE_TEST_NATS_URL`, default `nats://127.0.0.1:4222`; the test command starts it).
//! Each test uses a prefix of its own, so its streams are its own, and deletes them at the end.

use crate::server::{sample, spawn_app_with, TestApp, ADMIN, CHECKOUT};
use crate::service::{get, post, ship_order};
use async_nats::jetstream::{self, stream::Stream};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

fn nats_url() -> String {
    std::env::var("OMNIROUTE_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// A prefix no other test or run uses.
fn prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("t{}-{test}-{nanos}", std::process::id())
}

struct Broker {
    js: jetstream::Context,
    prefix: String,
}

impl Broker {
    async fn connect(prefix: String) -> Broker {
        let client =
            async_nats::connect(nats_url()).await.expect("the NATS server runs (scripts/test starts it)");
        Broker { js: jetstream::new(client), prefix }
    }

    fn stream_name(&self, what: &str) -> String {
        format!("{}_{what}", self.prefix.to_ascii_uppercase().replace('-', "_"))
    }

    /// Waits for omniroute to make its streams.
    async fn stream(&self, what: &str) -> Stream {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(s) = self.js.get_stream(self.stream_name(what)).await {
                return s;
            }
            assert!(Instant::now() < deadline, "stream {what} never appeared");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Publishes a feed message; `true` when the broker stored it, `false` when its own
    /// deduplication dropped it (an id seen within the stream's duplicate window).
    async fn publish_feed(&self, brand: &str, id: Option<&str>, body: &str) -> bool {
        let mut publish = jetstream::message::PublishMessage::build().payload(body.to_string().into());
        if let Some(id) = id {
            publish = publish.message_id(id);
        }
        let subject = format!("{}.feeds.{brand}", self.prefix);
        !self.js.send_publish(subject, publish).await.unwrap().await.unwrap().duplicate
    }

    /// Every message stored in a stream: (subject, headers, payload).
    async fn messages(&self, what: &str) -> Vec<(String, async_nats::HeaderMap, bytes::Bytes)> {
        let mut stream = self.stream(what).await;
        let info = stream.info().await.unwrap().state.clone();
        let mut out = Vec::new();
        for seq in info.first_sequence..=info.last_sequence {
            if info.messages == 0 {
                break;
            }
            if let Ok(m) = stream.get_raw_message(seq).await {
                out.push((m.subject.to_string(), m.headers, m.payload));
            }
        }
        out
    }

    /// Every event published, once each (by source and sequence number), in sequence order.
    async fn events(&self) -> Vec<Value> {
        let mut by_seq: BTreeMap<(String, u64), Value> = BTreeMap::new();
        for (_, _, payload) in self.messages("EVENTS").await {
            for line in payload.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                let v: Value = serde_json::from_slice(line).unwrap();
                let key = (v["source"].as_str().unwrap().to_string(), v["seq"].as_u64().unwrap());
                by_seq.insert(key, v);
            }
        }
        by_seq.into_values().collect()
    }

    /// A stream's messages once `done` says they are all there.
    async fn messages_until(
        &self,
        what: &str,
        secs: u64,
        done: impl Fn(&[(String, async_nats::HeaderMap, bytes::Bytes)]) -> bool,
    ) -> Vec<(String, async_nats::HeaderMap, bytes::Bytes)> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let m = self.messages(what).await;
            if done(&m) {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for messages in {what}: {} so far",
                m.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The events once `done` says they are all there.
    async fn events_until(&self, secs: u64, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let e = self.events().await;
            if done(&e) {
                return e;
            }
            assert!(Instant::now() < deadline, "timed out waiting for events: {} so far", e.len());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn cleanup(&self) {
        for what in ["FEEDS", "DEAD", "EVENTS"] {
            let _ = self.js.delete_stream(self.stream_name(what)).await;
        }
    }
}

fn serve(prefix: &str) -> TestApp {
    spawn_app_with(&sample(), &["--nats-url", &nats_url(), "--nats-prefix", prefix])
}

/// (store id, brand) of the sample's first store of `brand`.
fn store_of(brand: &str) -> String {
    std::fs::read_to_string(sample().join("stores.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_string).collect::<Vec<_>>())
        .find(|f| f[1] == brand)
        .unwrap()[0]
        .clone()
}

async fn on_hand(app: &TestApp, store: &str, sku: &str) -> Option<u64> {
    let r = get(app, &format!("/v1/stock/{store}/{sku}"), ADMIN).await;
    (r.status == 200).then(|| r.json()["on_hand"].as_u64().unwrap())
}

async fn until<F: std::future::Future<Output = bool>>(what: &str, secs: u64, mut check: impl FnMut() -> F) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_rt::test]
async fn broker_feeds_apply_as_their_brand_and_what_cannot_apply_is_dead_lettered_with_the_reason() {
    let broker = Broker::connect(prefix("feeds")).await;
    let app = serve(&broker.prefix);
    broker.stream("FEEDS").await;
    let (mine, other) = (store_of("1"), store_of("4"));
    let good =
        json!([{"store_id": mine, "sku": "1", "on_hand": 61}, {"store_id": mine, "sku": "2", "delta": 4}]);
    let before_sku2 = on_hand(&app, &mine, "2").await.unwrap_or(0);
    broker.publish_feed("1", Some("good-1"), &good.to_string()).await;
    // Another brand's store on brand 1's subject, a malformed body, an unknown store, no id.
    let out_of_scope =
        json!([{"store_id": mine, "sku": "1", "on_hand": 1}, {"store_id": other, "sku": "1", "on_hand": 1}]);
    broker.publish_feed("1", Some("scope-1"), &out_of_scope.to_string()).await;
    broker.publish_feed("1", Some("bad-json-1"), "[{\"store_id\":").await;
    broker
        .publish_feed(
            "1",
            Some("unknown-1"),
            &json!([{"store_id": "no-such-store", "sku": "1", "on_hand": 1}]).to_string(),
        )
        .await;
    broker.publish_feed("1", None, &good.to_string()).await;
    // The same store system on its own brand's subject.
    broker
        .publish_feed(
            "4",
            Some("good-4"),
            &json!([{"store_id": other, "sku": "1", "on_hand": 44}]).to_string(),
        )
        .await;

    until("the feeds to apply", 20, || async { on_hand(&app, &other, "1").await == Some(44) }).await;
    assert_eq!(on_hand(&app, &mine, "1").await, Some(61), "the refused feed changed nothing");
    assert_eq!(on_hand(&app, &mine, "2").await, Some(before_sku2 + 4));

    let dead = broker.messages_until("DEAD", 20, |d| d.len() >= 4).await;
    let reasons: HashMap<String, (String, String)> = dead
        .iter()
        .map(|(subject, h, _)| {
            let id = h.get("Nats-Msg-Id").map(|v| v.as_str().to_string()).unwrap_or_default();
            let code = h.get("Omniroute-Error-Code").unwrap().as_str().to_string();
            assert_eq!(subject, &format!("{}.dead.feeds.1", broker.prefix));
            (id, (code, h.get("Omniroute-Error").unwrap().as_str().to_string()))
        })
        .collect();
    assert_eq!(reasons["scope-1"].0, "brand_out_of_scope");
    assert!(
        reasons["scope-1"].1.contains(&format!("store {other} belongs to brand 4")),
        "{:?}",
        reasons["scope-1"]
    );
    assert_eq!(reasons["bad-json-1"].0, "malformed_json");
    assert_eq!(reasons["unknown-1"].0, "unknown_store");
    assert_eq!(reasons[""].0, "invalid_field", "a message without an id");
    assert_eq!(dead.len(), 4);

    // The audit log names the broker and the brand; the refusal is there too.
    let audit = get(&app, "/v1/audit/stock", ADMIN).await.json();
    let entries = audit["entries"].as_array().unwrap();
    let by_nats: Vec<(&str, &str, bool)> = entries
        .iter()
        .filter(|e| e["key_id"].as_str().unwrap().starts_with("nats:"))
        .map(|e| {
            (e["key_id"].as_str().unwrap(), e["brand"].as_str().unwrap(), e["accepted"].as_bool().unwrap())
        })
        .collect();
    assert!(by_nats.contains(&("nats:1", "1", true)), "{by_nats:?}");
    assert!(by_nats.contains(&("nats:4", "4", true)), "{by_nats:?}");
    assert!(by_nats.contains(&("nats:1", "4", false)), "{by_nats:?}");

    // Accepted feeds are published as events on their brand's subject, with their message id.
    let events =
        broker.events_until(20, |e| e.iter().filter(|e| e["type"] == "stock_fed").count() >= 2).await;
    let fed: Vec<&Value> = events.iter().filter(|e| e["type"] == "stock_fed").collect();
    assert_eq!(fed.len(), 2);
    assert_eq!(fed[0]["message_id"], "good-1");
    assert_eq!(fed[0]["brand"], "1");
    assert_eq!(fed[0]["cells"][0]["on_hand"], 61);
    assert_eq!(fed[1]["message_id"], "good-4");
    // Messages are counted once acknowledged, after they reach the dead-letter stream.
    until("the dead letters to be counted", 20, || async {
        let text = String::from_utf8_lossy(&get(&app, "/metrics", ADMIN).await.body).to_string();
        text.contains("omniroute_broker_feed_messages_total{outcome=\"dead\"} 4")
    })
    .await;
    broker.cleanup().await;
}

#[actix_rt::test]
async fn killed_mid_stream_every_feed_applies_exactly_once_and_every_committed_change_is_published() {
    let broker = Broker::connect(prefix("kill")).await;
    let mut app = serve(&broker.prefix);
    broker.stream("FEEDS").await;
    let store = store_of("1");
    let start = on_hand(&app, &store, "3").await.unwrap_or(0);
    const FEEDS: u64 = 400;
    // Relative feeds: one applied twice, or lost, shows in the total.
    let js = broker.js.clone();
    let subject = format!("{}.feeds.1", broker.prefix);
    let body = json!([{"store_id": store, "sku": "3", "delta": 1}]).to_string();
    let publisher = tokio::spawn(async move {
        for i in 0..FEEDS {
            let publish = jetstream::message::PublishMessage::build()
                .payload(body.clone().into())
                .message_id(format!("delta-{i}"));
            js.send_publish(subject.clone(), publish).await.unwrap().await.unwrap();
            // Spread over about a second, so that the kill lands while messages still come.
            if i % 4 == 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    });
    // Orders routed meanwhile, some cancelled: their events must all come out, in order.
    let mut answered = Vec::new();
    let mut cancelled = HashSet::new();
    for i in 0..60 {
        let id = format!("k-{i}");
        let r = post(&app, "/v1/orders/route", CHECKOUT, ship_order(&id, i).to_string()).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        if i % 3 == 0 {
            // 409 no_reservation for an order a DC serves: nothing to cancel.
            let c = post(&app, &format!("/v1/orders/{id}/cancel"), CHECKOUT, String::new()).await;
            if c.status == 200 {
                cancelled.insert(id.clone());
            }
        }
        answered.push(id);
    }
    until("some feeds to apply", 20, || async {
        on_hand(&app, &store, "3").await.unwrap_or(0) >= start + 40
    })
    .await;
    app.kill();
    let applied_before_restart = {
        // Read from the state the restarted server recovers.
        app.restart();
        on_hand(&app, &store, "3").await.unwrap_or(0) - start
    };
    publisher.await.unwrap();
    until("every feed to apply", 60, || async { on_hand(&app, &store, "3").await == Some(start + FEEDS) })
        .await;
    // Nothing more comes: no message is applied twice later either.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(on_hand(&app, &store, "3").await, Some(start + FEEDS));
    assert!(applied_before_restart < FEEDS, "the kill came after every feed was in");
    // Every message acknowledged. One the killed server applied but had not acknowledged stays
    // pending until the broker's 30 s ack wait sends it again, and the restarted server then
    // acknowledges it as seen (without applying it: on_hand above stays put).
    let feeds = broker.stream("FEEDS").await;
    let consumer_name = format!("{}-feeds", broker.prefix);
    until("every message acknowledged", 60, || async {
        let mut consumer: jetstream::consumer::PullConsumer =
            feeds.get_consumer(&consumer_name).await.unwrap();
        let info = consumer.info().await.unwrap();
        (info.num_pending, info.num_ack_pending) == (0, 0)
    })
    .await;
    assert_eq!(on_hand(&app, &store, "3").await, Some(start + FEEDS), "a redelivery applied nothing");

    // Every committed change has its event: each feed message's stock event, each answered
    // order's decision and each cancel, an order's events in order.
    let events = broker
        .events_until(30, |events| {
            let fed: HashSet<&str> = events
                .iter()
                .filter(|e| e["type"] == "stock_fed")
                .filter_map(|e| e["message_id"].as_str())
                .collect();
            fed.len() as u64 >= FEEDS
        })
        .await;
    let mut routed_at: HashMap<&str, u64> = HashMap::new();
    for e in &events {
        let seq = e["seq"].as_u64().unwrap();
        match e["type"].as_str().unwrap() {
            "routed" => {
                routed_at.insert(e["order_id"].as_str().unwrap(), seq);
            }
            "cancelled" => {
                let id = e["order_id"].as_str().unwrap();
                assert!(routed_at.get(id).is_some_and(|r| *r < seq), "{id}: cancelled before routed");
            }
            _ => {}
        }
    }
    for id in &answered {
        assert!(routed_at.contains_key(id.as_str()), "order {id} was answered but never published");
    }
    let cancels: HashSet<&str> =
        events.iter().filter(|e| e["type"] == "cancelled").map(|e| e["order_id"].as_str().unwrap()).collect();
    for id in &cancelled {
        assert!(cancels.contains(id.as_str()), "cancel of {id} never published");
    }
    let fed: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "stock_fed")
        .map(|e| e["message_id"].as_str().unwrap())
        .collect();
    let distinct: HashSet<&str> = fed.iter().copied().collect();
    assert_eq!(distinct.len() as u64, FEEDS);
    assert_eq!(fed.len(), distinct.len(), "a feed applied once has one event");
    broker.cleanup().await;
}

#[actix_rt::test]
async fn replicas_on_postgresql_share_the_feed_consumer_and_apply_each_message_once_through_a_kill() {
    let db = crate::postgres::TestDb::create();
    let broker = Broker::connect(prefix("pg")).await;
    let args = [
        "--database-url",
        &db.url,
        "--nats-url",
        &nats_url(),
        "--nats-prefix",
        &broker.prefix,
        "--no-events",
    ];
    let mut a = spawn_app_with(&sample(), &args);
    let b = spawn_app_with(&sample(), &args);
    broker.stream("FEEDS").await;
    let store = store_of("1");
    let start = on_hand(&b, &store, "3").await.unwrap_or(0);
    const FEEDS: u64 = 200;
    let body = json!([{"store_id": store, "sku": "3", "delta": 1}]).to_string();
    for i in 0..FEEDS / 2 {
        broker.publish_feed("1", Some(&format!("pg-{i}")), &body).await;
    }
    until("some feeds to apply", 20, || async { on_hand(&b, &store, "3").await.unwrap_or(0) >= start + 20 })
        .await;
    a.kill();
    for i in FEEDS / 2..FEEDS {
        broker.publish_feed("1", Some(&format!("pg-{i}")), &body).await;
    }
    a.restart();
    until("every feed to apply", 60, || async { on_hand(&b, &store, "3").await == Some(start + FEEDS) })
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(on_hand(&a, &store, "3").await, Some(start + FEEDS));
    assert_eq!(crate::postgres::psql(&db.url, "SELECT count(*) FROM feed_messages"), FEEDS.to_string());
    let accepted = crate::postgres::psql(
        &db.url,
        "SELECT count(*) FROM stock_audit WHERE key_id = 'nats:1' AND accepted",
    );
    assert_eq!(accepted, FEEDS.to_string(), "one audit entry per message");
    broker.cleanup().await;
}

#[test]
fn events_out_on_postgresql_are_refused_at_start_with_the_way_out() {
    let out = crate::helpers::bin()
        .args([
            "serve",
            "--database-url",
            "postgres://nobody@127.0.0.1:1/x",
            "--nats-url",
            "nats://127.0.0.1:4222",
        ])
        .arg("--data")
        .arg(sample())
        .env("OMNIROUTE_API_KEYS", "admin:some-admin-key")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = crate::helpers::stderr(&out);
    assert!(err.contains("events out need the embedded store") && err.contains("--no-events"), "{err}");
}

#[actix_rt::test]
async fn a_message_id_applied_before_is_acknowledged_without_being_applied_again() {
    let broker = Broker::connect(prefix("dedup")).await;
    // The stream made beforehand with a 1-second window, so that the broker's own deduplication
    // has forgotten the id when it comes again: only omniroute's record of it stands.
    broker
        .js
        .create_stream(jetstream::stream::Config {
            name: broker.stream_name("FEEDS"),
            subjects: vec![format!("{}.feeds.*", broker.prefix)],
            retention: jetstream::stream::RetentionPolicy::WorkQueue,
            duplicate_window: Duration::from_secs(1),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut app = serve(&broker.prefix);
    let store = store_of("1");
    broker
        .publish_feed("1", Some("once"), &json!([{"store_id": store, "sku": "1", "on_hand": 10}]).to_string())
        .await;
    until("the feed to apply", 20, || async { on_hand(&app, &store, "1").await == Some(10) }).await;
    // Across a restart too: the record is durable.
    app.restart();
    // The server purges expired ids on a timer, not the instant the window ends: publish again
    // until the broker stores the id instead of dropping it as its own duplicate.
    let again = json!([{"store_id": store, "sku": "1", "on_hand": 99}]).to_string();
    let started = std::time::Instant::now();
    while !broker.publish_feed("1", Some("once"), &again).await {
        assert!(started.elapsed() < Duration::from_secs(30), "the broker kept dropping the id");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // A value the sample cannot hold already, so that seeing it means the message applied.
    broker
        .publish_feed(
            "1",
            Some("then"),
            &json!([{"store_id": store, "sku": "2", "on_hand": 7777}]).to_string(),
        )
        .await;
    until("the next feed to apply", 20, || async { on_hand(&app, &store, "2").await == Some(7777) }).await;
    assert_eq!(on_hand(&app, &store, "1").await, Some(10), "the redelivered id was applied again");
    // Messages are counted once acknowledged, after their commits are visible.
    until("the redelivered id to be counted as a duplicate", 20, || async {
        let text = String::from_utf8_lossy(&get(&app, "/metrics", ADMIN).await.body).to_string();
        text.contains("omniroute_broker_feed_messages_total{outcome=\"duplicate\"} 1")
    })
    .await;
    broker.cleanup().await;
}

#[actix_rt::test]
async fn ships_and_expiries_are_published_after_their_decisions() {
    let broker = Broker::connect(prefix("ends")).await;
    let app = spawn_app_with(
        &sample(),
        &["--nats-url", &nats_url(), "--nats-prefix", &broker.prefix, "--reservation-ttl-s", "1"],
    );
    let mut held = Vec::new();
    for i in 0..20 {
        let id = format!("end-{i}");
        let r = post(&app, "/v1/orders/route", CHECKOUT, ship_order(&id, i).to_string()).await;
        assert_eq!(r.status, 200);
        if r.json()["shipments"].as_array().unwrap().iter().any(|s| s["store_id"].is_string()) {
            held.push(id);
        }
        if held.len() == 2 {
            break;
        }
    }
    let (shipped, expires) = (&held[0], &held[1]);
    assert_eq!(post(&app, &format!("/v1/orders/{shipped}/ship"), CHECKOUT, String::new()).await.status, 200);
    let events = broker
        .events_until(20, |e| e.iter().any(|e| e["type"] == "expired" && e["order_id"] == json!(expires)))
        .await;
    let kinds = |id: &str| -> Vec<String> {
        events
            .iter()
            .filter(|e| e["order_id"] == json!(id))
            .map(|e| e["type"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(kinds(shipped), ["routed", "shipped"]);
    assert_eq!(kinds(expires), ["routed", "expired"]);
    let routed = events.iter().find(|e| e["order_id"] == json!(shipped)).unwrap();
    assert!(routed["decision"]["shipments"].is_array(), "the decision as answered: {routed}");
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "numbered from 1 without gaps");
    broker.cleanup().await;
}
