//! Store systems through a message broker, and events out: NATS JetStream.
//!
//! * **Stock feeds in.** A store system publishes a feed (the body of `PUT /v1/stock`) to
//!   `<prefix>.feeds.<brand>` with a `Nats-Msg-Id` header. The consumer applies it as that brand
//!   (a row of another brand's store refuses the whole message), records the message id in the
//!   same commit as the stock and the audit entry, and acknowledges the message only after that
//!   commit is durable. A redelivered message whose id is recorded is acknowledged without being
//!   applied again. A message that can never apply (malformed, unknown store, brand out of scope,
//!   on_hand below zero, no message id) goes to `<prefix>.dead.feeds.<brand>` with the error's
//!   code, message and field in headers, and is then acknowledged. A storage failure leaves the
//!   message unacknowledged: it comes again.
//! * **Events out.** Every route decision, ship, cancel, expiry and accepted feed is written to the
//!   outbox in the commit that makes the change (`crate::service::events`). One publisher drains
//!   the outbox in sequence order to `<prefix>.events.orders` and `<prefix>.events.stock.<brand>`,
//!   waits for JetStream to store each message before the next, and deletes rows once published.
//!   After a crash it publishes again from the first row not deleted: at least once, in order.
//!
//! Why NATS JetStream rather than RabbitMQ: subjects carry the brand (`feeds.<brand>`) so that the
//! broker's own per-user permissions scope each brand's store systems to their subject; streams
//! are durable logs with publish-side deduplication by message id (a store system's retry within
//! the window is dropped by the broker, a redelivery by our message table); a pull consumer hands
//! out batches, which the consumer folds into one group commit; and one Rust client
//! (`async-nats`) on tokio serves both directions.

use crate::server::auth::{Caller, Role};
use crate::server::error::ApiError;
use crate::server::state::AppState;
use crate::storage::NumberedEvents;
use actix_web::web;
use async_nats::jetstream::{self, consumer::pull, stream, AckKind};
use async_nats::HeaderMap;
use futures_util::stream::FuturesOrdered;
use futures_util::StreamExt;
use std::cell::RefCell;
use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

/// How omniroute talks to the broker.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// NATS server URL (`nats://127.0.0.1:4222`).
    pub url: String,
    /// Root of subjects and stream names (`omniroute`: subjects `omniroute.feeds.<brand>`, streams
    /// `OMNIROUTE_FEEDS`).
    pub prefix: String,
    /// Consume stock feeds.
    pub feeds: bool,
    /// Write and publish events.
    pub events: bool,
    /// Feed messages taken into one group commit at most.
    pub batch: usize,
    /// Events in one published message at most (consecutive events of one subject).
    pub events_per_message: usize,
}

/// The header that carries a message's id (JetStream deduplicates on it too).
pub const MSG_ID: &str = "Nats-Msg-Id";
/// How long the feed stream keeps a message (acknowledged or not).
pub const FEED_RETENTION: Duration = Duration::from_secs(86_400);
/// How long the publisher lets events gather after each round.
const EVENT_LINGER: Duration = Duration::from_millis(10);
/// Largest event message body (NATS refuses over 1 MiB by default).
const MAX_EVENT_MESSAGE: usize = 512 << 10;

impl BrokerConfig {
    /// Checks the prefix: letters, digits, `_` and `-` (one subject token, one stream name part).
    pub fn check(&self) -> Result<(), String> {
        let ok = !self.prefix.is_empty()
            && self.prefix.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !ok {
            return Err(format!("--nats-prefix {:?}: use letters, digits, '_' and '-' only", self.prefix));
        }
        if self.batch == 0 || self.events_per_message == 0 {
            return Err("--nats-batch and --events-per-message must be at least 1".into());
        }
        Ok(())
    }

    fn stream(&self, what: &str) -> String {
        format!("{}_{what}", self.prefix.to_ascii_uppercase().replace('-', "_"))
    }

    /// The subject a brand's store systems publish feeds to.
    pub fn feed_subject(&self, brand: &str) -> String {
        format!("{}.feeds.{brand}", self.prefix)
    }

    /// Names of the streams of feeds, dead letters and events.
    pub fn streams(&self) -> [String; 3] {
        [self.stream("FEEDS"), self.stream("DEAD"), self.stream("EVENTS")]
    }
}

/// Connects (retrying until the broker is there), makes the streams if missing, and runs the
/// feed consumer and the event publisher until the process ends.
pub async fn run(config: BrokerConfig, state: web::Data<AppState>) {
    let client = loop {
        let options = async_nats::ConnectOptions::new()
            .name("omniroute")
            .retry_on_initial_connect()
            .event_callback(|e| async move { log::info!("broker: {e}") });
        match options.connect(config.url.as_str()).await {
            Ok(c) => break c,
            Err(e) => {
                log::error!("broker {}: {e}; retrying", config.url);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    let js = jetstream::new(client);
    let streams = loop {
        match ensure_streams(&js, &config).await {
            Ok(s) => break s,
            Err(e) => {
                log::error!("broker {}: setting up streams: {e}; retrying", config.url);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    log::info!("broker {}: streams {} ready", config.url, config.streams().join(", "));
    let publisher = config.events.then(|| {
        let (js, config, state) = (js.clone(), config.clone(), state.clone());
        tokio::spawn(async move { publish_events(&js, &config, &state).await })
    });
    if config.feeds {
        consume_feeds(&js, streams, &config, &state).await;
    }
    if let Some(p) = publisher {
        let _ = p.await;
    }
}

async fn ensure_streams(js: &jetstream::Context, config: &BrokerConfig) -> Result<stream::Stream, String> {
    let [feeds, dead, events] = config.streams();
    let p = &config.prefix;
    let make = |name: String, subject: String, max_age: Duration| async move {
        let config = stream::Config {
            name,
            subjects: vec![subject],
            max_age,
            storage: stream::StorageType::File,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        };
        js.get_or_create_stream(config).await.map_err(|e| e.to_string())
    };
    // Feeds are kept for a day, not deleted as acknowledged: a deletion per acknowledgement is
    // most of the broker's work on small messages (BENCHMARKS.md). Dead letters and events are
    // kept until the operator's limits say otherwise.
    let feeds = make(feeds, format!("{p}.feeds.*"), FEED_RETENTION).await?;
    make(dead, format!("{p}.dead.>"), Duration::ZERO).await?;
    if config.events {
        make(events, format!("{p}.events.>"), Duration::ZERO).await?;
    }
    Ok(feeds)
}

/// What became of one feed message.
enum Fate {
    Applied,
    /// Applied before (its id is recorded): acknowledged again.
    Duplicate,
    /// Can never apply: to the dead-letter subject, then acknowledged.
    Dead(ApiError),
    /// Could not apply now (storage): redelivered later.
    Retry(String),
}

async fn consume_feeds(
    js: &jetstream::Context,
    feeds: stream::Stream,
    config: &BrokerConfig,
    state: &web::Data<AppState>,
) {
    let name = format!("{}-feeds", config.prefix);
    loop {
        let consumer = feeds
            .get_or_create_consumer(
                &name,
                pull::Config {
                    durable_name: Some(name.clone()),
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    ack_wait: Duration::from_secs(30),
                    max_ack_pending: 20_000,
                    ..Default::default()
                },
            )
            .await;
        let messages = match consumer {
            Ok(c) => c.messages().await,
            Err(e) => {
                log::error!("broker: feed consumer: {e}; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let mut messages = match messages {
            Ok(m) => m.ready_chunks(config.batch),
            Err(e) => {
                log::error!("broker: feed consumer: {e}; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        // Batches are applied in delivery order; while one's commit is on its way, the next is
        // taken and applied in memory (its commit folds with the first's or follows it), and each
        // batch is acknowledged when its own commit is durable.
        let in_flight = RefCell::new(HashSet::new());
        let mut committing = FuturesOrdered::new();
        // Messages taken but not yet finished: bounds what is applied ahead of its commit.
        let mut pending = 0;
        loop {
            tokio::select! {
                chunk = messages.next(), if pending < MAX_MESSAGES_IN_FLIGHT => {
                    let Some(chunk) = chunk else { break };
                    let mut batch = Vec::with_capacity(chunk.len());
                    for m in chunk {
                        match m {
                            Ok(m) => batch.push(m),
                            Err(e) => log::warn!("broker: feed consumer: {e}"),
                        }
                    }
                    if let Some(steps) = begin_batch(state, &batch, &in_flight).await {
                        pending += batch.len();
                        committing.push_back(finish_batch(js, config, state, batch, steps, &in_flight));
                    }
                }
                Some(done) = committing.next(), if !committing.is_empty() => pending -= done,
            }
        }
        while committing.next().await.is_some() {}
        log::warn!("broker: the feed consumer's stream ended; subscribing again");
    }
}

fn header<'a>(m: &'a async_nats::Message, name: &str) -> Option<&'a str> {
    m.headers.as_ref()?.get(name).map(|v| v.as_str())
}

type Pending<'a> = Pin<Box<dyn Future<Output = Result<Vec<crate::service::FedCell>, ApiError>> + 'a>>;

/// A feed message on its way: decided already, or waiting for its commit.
enum Step<'a> {
    Done(Fate),
    Running { id: String, commit: Pending<'a> },
}

/// Feed messages that may be applied in memory ahead of their commits (all of them fold into a
/// few group commits, however small the batches the broker hands out).
const MAX_MESSAGES_IN_FLIGHT: usize = 4096;

/// Starts a batch of feed messages in delivery order: each new one is parsed, checked and applied
/// in memory, and its commit queued, before the next. `None` (every message negatively
/// acknowledged) when the recorded ids cannot be read. `in_flight` holds the ids whose commits
/// are on their way.
async fn begin_batch<'a>(
    state: &'a web::Data<AppState>,
    batch: &[jetstream::Message],
    in_flight: &RefCell<HashSet<String>>,
) -> Option<Vec<Step<'a>>> {
    let checkout = state.checkout();
    let ids: Vec<Option<&str>> =
        batch.iter().map(|m| header(&m.message, MSG_ID).filter(|s| !s.is_empty())).collect();
    let known: Vec<&str> = ids.iter().flatten().copied().collect();
    let seen = match checkout.messages_seen(&known).await {
        Ok(seen) => seen,
        Err(e) => {
            log::error!("broker: reading applied message ids: {e}; {} messages come again", batch.len());
            for m in batch {
                let _ = m.ack_with(AckKind::Nak(Some(Duration::from_secs(1)))).await;
            }
            return None;
        }
    };
    let mut seen_ids: HashSet<&str> =
        known.iter().zip(&seen).filter(|(_, s)| **s).map(|(id, _)| *id).collect();
    let max_rows = state.limits().max_feed_rows;
    let mut steps = Vec::with_capacity(batch.len());
    for (m, id) in batch.iter().zip(&ids) {
        let brand = m.message.subject.as_str().rsplit('.').next().unwrap_or_default().to_string();
        let Some(id) = *id else {
            let e = ApiError::invalid(
                "headers.Nats-Msg-Id",
                "a feed message needs a Nats-Msg-Id header (its id)",
            );
            steps.push(Step::Done(Fate::Dead(e)));
            continue;
        };
        // The same id twice in one batch, or in a batch still committing: a redelivery.
        if !seen_ids.insert(id) || in_flight.borrow().contains(id) {
            steps.push(Step::Done(Fate::Duplicate));
            continue;
        }
        let caller = Caller::scoped(Role::StoreSystem, vec![brand.clone()], format!("nats:{brand}"));
        let (payload, owned) = (m.message.payload.clone(), id.to_string());
        let mut commit: Pending<'a> = Box::pin(async move {
            crate::server::routes::stock::feed(checkout, &payload, max_rows, &caller, Some(&owned)).await
        });
        // Polled once now, in delivery order: the feed is parsed and applied in memory and its
        // commit queued before the next message's.
        match std::future::poll_fn(|cx| Poll::Ready(commit.as_mut().poll(cx))).await {
            Poll::Ready(r) => steps.push(Step::Done(fate(r))),
            Poll::Pending => {
                in_flight.borrow_mut().insert(id.to_string());
                steps.push(Step::Running { id: id.to_string(), commit })
            }
        }
    }
    Some(steps)
}

/// Waits for a batch's commits, then acknowledges, dead-letters or gives back each message;
/// returns how many it had.
async fn finish_batch(
    js: &jetstream::Context,
    config: &BrokerConfig,
    state: &web::Data<AppState>,
    batch: Vec<jetstream::Message>,
    steps: Vec<Step<'_>>,
    in_flight: &RefCell<HashSet<String>>,
) -> usize {
    let checkout = state.checkout();
    let mut fates = Vec::with_capacity(steps.len());
    for step in steps {
        fates.push(match step {
            Step::Done(f) => f,
            Step::Running { id, commit } => {
                let f = fate(commit.await);
                in_flight.borrow_mut().remove(&id);
                f
            }
        });
    }
    let metrics = checkout.core().metrics();
    for (m, fate) in batch.iter().zip(fates) {
        let outcome = match fate {
            Fate::Applied => "applied",
            Fate::Duplicate => "duplicate",
            Fate::Dead(e) => match dead_letter(js, config, &m.message, &e).await {
                Ok(()) => "dead",
                Err(problem) => {
                    log::error!("broker: dead-lettering a feed message: {problem}; it comes again");
                    let _ = m.ack_with(AckKind::Nak(Some(Duration::from_secs(1)))).await;
                    continue;
                }
            },
            Fate::Retry(why) => {
                log::error!("broker: a feed message could not be applied now ({why}); it comes again");
                let _ = m.ack_with(AckKind::Nak(Some(Duration::from_secs(1)))).await;
                metrics.broker_messages.with_label_values(&["retried"]).inc();
                continue;
            }
        };
        if let Err(e) = m.ack().await {
            log::warn!(
                "broker: acknowledging a feed message: {e} (it will be recognised when it comes again)"
            );
        }
        metrics.broker_messages.with_label_values(&[outcome]).inc();
    }
    batch.len()
}

fn fate(result: Result<Vec<crate::service::FedCell>, ApiError>) -> Fate {
    match result {
        Ok(_) => Fate::Applied,
        Err(ApiError::DuplicateMessage { .. }) => Fate::Duplicate,
        Err(e) if e.status_and_code().0.is_client_error() => Fate::Dead(e),
        Err(e) => Fate::Retry(e.to_string()),
    }
}

/// Publishes `m` with why it failed to `<prefix>.dead.feeds.<brand>` and waits for the broker to
/// store it (deduplicated by the original's id when it has one).
async fn dead_letter(
    js: &jetstream::Context,
    config: &BrokerConfig,
    m: &async_nats::Message,
    error: &ApiError,
) -> Result<(), String> {
    let tail = m.subject.as_str().strip_prefix(&format!("{}.", config.prefix)).unwrap_or(m.subject.as_str());
    let subject = format!("{}.dead.{tail}", config.prefix);
    let mut headers = HeaderMap::new();
    if let Some(id) = header(m, MSG_ID) {
        headers.insert(MSG_ID, id);
    }
    let body = error.body();
    headers.insert("Omniroute-Error-Code", body.code);
    headers.insert("Omniroute-Error", body.message.replace(['\r', '\n'], " ").as_str());
    if let Some(field) = &body.field {
        headers.insert("Omniroute-Error-Field", field.as_str());
    }
    headers.insert("Omniroute-Subject", m.subject.as_str());
    let ack = js
        .send_publish(
            subject,
            jetstream::message::PublishMessage::build().headers(headers).payload(m.payload.clone()),
        )
        .await
        .map_err(|e| e.to_string())?;
    ack.await.map_err(|e| e.to_string())?;
    log::warn!("broker: feed message on {} dead-lettered: {} ({})", m.subject, body.message, body.code);
    Ok(())
}

/// One message of events: consecutive events of one subject, as JSON lines, each with its
/// sequence number and the event source.
struct EventMessage {
    subject: String,
    first: u64,
    last: u64,
    body: Vec<u8>,
}

fn event_messages(source: &str, rows: &[(u64, NumberedEvents)], config: &BrokerConfig) -> Vec<EventMessage> {
    let mut out: Vec<EventMessage> = Vec::new();
    for (seq, e) in rows.iter().flat_map(|(_, events)| events) {
        let subject = format!("{}.events.{}", config.prefix, e.subject);
        let fits = out.last().is_some_and(|m| {
            m.subject == subject
                && (m.last - m.first + 1) < config.events_per_message as u64
                && m.body.len() + e.json.len() < MAX_EVENT_MESSAGE
        });
        if !fits {
            out.push(EventMessage { subject, first: *seq, last: *seq, body: Vec::new() });
        }
        let m = out.last_mut().expect("pushed");
        m.last = *seq;
        // `{"seq":N,"source":"..",` + the event's own fields.
        m.body.extend_from_slice(format!("{{\"seq\":{seq},\"source\":\"{source}\",").as_bytes());
        m.body.extend_from_slice(e.json.get(1..).unwrap_or_default());
        m.body.push(b'\n');
    }
    out
}

/// Drains the outbox to the broker forever: in sequence order, one message stored before the next
/// is sent, rows deleted once all their events are stored.
async fn publish_events(js: &jetstream::Context, config: &BrokerConfig, state: &web::Data<AppState>) {
    let checkout = state.checkout();
    let (source, written) = match checkout.event_stream() {
        Ok(s) => s,
        Err(e) => {
            log::error!("broker: events are not published: {e}");
            return;
        }
    };
    let metrics = checkout.core().metrics();
    let mut after = None;
    loop {
        let rows = match checkout.outbox(after, 1024).await {
            Ok(rows) => rows,
            Err(e) => {
                log::error!("broker: reading the outbox: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let Some(last_row) = rows.last().map(|(k, _)| *k) else {
            // Woken by the next commit with events; the timeout only bounds a missed wake-up.
            let _ = tokio::time::timeout(Duration::from_millis(500), written.notified()).await;
            continue;
        };
        for m in event_messages(&source, &rows, config) {
            let mut backoff = Duration::from_millis(50);
            loop {
                match publish_one(js, &source, &m).await {
                    Ok(()) => break,
                    Err(e) => {
                        log::error!("broker: publishing events {}..={}: {e}; retrying", m.first, m.last);
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
            metrics.events_published.inc_by(m.last - m.first + 1);
        }
        if let Err(e) = checkout.outbox_published(last_row).await {
            log::error!("broker: clearing published events: {e}");
        }
        after = Some(last_row);
        // Events that come meanwhile go out together: fewer, fuller messages (the broker's work
        // is per message) for a few milliseconds more before an event leaves.
        tokio::time::sleep(EVENT_LINGER).await;
    }
}

async fn publish_one(js: &jetstream::Context, source: &str, m: &EventMessage) -> Result<(), String> {
    let mut headers = HeaderMap::new();
    headers.insert(MSG_ID, format!("{source}-{}-{}", m.first, m.last).as_str());
    headers.insert("Omniroute-Source", source);
    headers.insert("Omniroute-First-Seq", m.first.to_string().as_str());
    headers.insert("Omniroute-Last-Seq", m.last.to_string().as_str());
    headers.insert("Content-Type", "application/x-ndjson");
    let publish = jetstream::message::PublishMessage::build().headers(headers).payload(m.body.clone().into());
    let ack = js.send_publish(m.subject.clone(), publish).await.map_err(|e| e.to_string())?;
    ack.await.map_err(|e| e.to_string())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::OutboxEvent;

    fn config(per_message: usize) -> BrokerConfig {
        BrokerConfig {
            url: String::new(),
            prefix: "t".into(),
            feeds: true,
            events: true,
            batch: 16,
            events_per_message: per_message,
        }
    }

    fn event(subject: &str, n: u32) -> OutboxEvent {
        OutboxEvent { subject: subject.into(), json: format!("{{\"type\":\"x\",\"n\":{n}}}").into_bytes() }
    }

    #[test]
    fn events_are_grouped_by_subject_in_order_with_their_numbers() {
        let rows = vec![
            (1, vec![(1, event("orders", 1)), (2, event("orders", 2))]),
            (
                3,
                vec![
                    (3, event("stock.7", 3)),
                    (4, event("orders", 4)),
                    (5, event("orders", 5)),
                    (6, event("orders", 6)),
                ],
            ),
        ];
        let messages = event_messages("src", &rows, &config(2));
        let shape: Vec<(&str, u64, u64)> =
            messages.iter().map(|m| (m.subject.as_str(), m.first, m.last)).collect();
        assert_eq!(
            shape,
            [
                ("t.events.orders", 1, 2),
                ("t.events.stock.7", 3, 3),
                ("t.events.orders", 4, 5),
                ("t.events.orders", 6, 6)
            ]
        );
        let lines: Vec<serde_json::Value> = messages[2]
            .body
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["seq"], 4);
        assert_eq!(lines[0]["source"], "src");
        assert_eq!(lines[1]["n"], 5);
    }

    #[test]
    fn a_prefix_must_be_one_subject_token() {
        assert!(config(1).check().is_ok());
        for bad in ["", "a.b", "a b", "a*", ">"] {
            let c = BrokerConfig { prefix: bad.into(), ..config(1) };
            assert!(c.check().is_err(), "{bad}");
        }
        assert_eq!(BrokerConfig { prefix: "my-app".into(), ..config(1) }.streams()[0], "MY_APP_FEEDS");
    }
}
