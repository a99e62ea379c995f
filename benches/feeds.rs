//! Broker feed ingestion: publishes stock-feed messages to NATS JetStream for a running
//! `omniroute serve --nats-url ...` and measures how fast it applies them (rows per second, from
//! the server's `omniroute_stock_feed_rows_total`).
//!
//! The messages are published first, while the server is not consuming (`--publish-only`), or
//! while it is (default); the rate is taken from the first sample of the counter that moved to
//! the sample that reached the total, so publishing speed does not count when the backlog is
//! published first. Rows are absolute (`on_hand`), spread over a brand's stores and SKUs, or all
//! on a few hot cells (`--hot-cells`).
//!
//! ```sh
//! cargo bench -p omniroute --bench feeds -- --data data/large/n180k --url http://127.0.0.1:8181 \
//!     --key KEY --messages 400 --rows 1000
//! ```

use async_nats::jetstream;
use clap::Parser;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
struct Args {
    /// Dataset directory (stores.csv: store ids and brands; stock.csv: SKUs).
    #[arg(long)]
    data: std::path::PathBuf,
    /// The server's base URL (its /metrics is polled); none with --publish-only.
    #[arg(long)]
    url: Option<String>,
    /// Bearer key allowed to read /metrics.
    #[arg(long, default_value = "")]
    key: String,
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    #[arg(long, default_value = "omniroute")]
    prefix: String,
    /// Messages to publish.
    #[arg(long, default_value_t = 200)]
    messages: usize,
    /// Rows per message.
    #[arg(long, default_value_t = 1000)]
    rows: usize,
    /// All rows on this many cells (0: spread).
    #[arg(long, default_value_t = 0)]
    hot_cells: usize,
    /// Publish, then exit (the server is started afterwards and drains the backlog).
    #[arg(long)]
    publish_only: bool,
    /// Publish nothing: wait until the server has applied this many rows more than at start
    /// (the backlog a `--publish-only` run left).
    #[arg(long)]
    wait_rows: Option<u64>,
    /// Message ids start with this (a new one per run).
    #[arg(long, default_value = "bench")]
    run: String,
    /// Criterion passes --bench; ignore it.
    #[arg(long, hide = true)]
    bench: bool,
}

fn stores_by_brand(data: &std::path::Path) -> Vec<(String, Vec<String>)> {
    let mut r = csv::Reader::from_path(data.join("stores.csv")).expect("stores.csv");
    let h = r.headers().unwrap().clone();
    let (id, brand) =
        (h.iter().position(|c| c == "store_id").unwrap(), h.iter().position(|c| c == "brand").unwrap());
    let mut by: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for rec in r.records() {
        let rec = rec.unwrap();
        by.entry(rec[brand].to_string()).or_default().push(rec[id].to_string());
    }
    by.into_iter().collect()
}

fn skus(data: &std::path::Path) -> Vec<String> {
    let mut r = csv::Reader::from_path(data.join("stock.csv")).expect("stock.csv");
    let h = r.headers().unwrap().clone();
    let sku = h.iter().position(|c| c == "sku").unwrap();
    let mut set = std::collections::BTreeSet::new();
    for rec in r.records().take(500_000) {
        set.insert(rec.unwrap()[sku].to_string());
    }
    set.into_iter().collect()
}

async fn applied_rows(client: &awc::Client, url: &str, key: &str) -> u64 {
    let mut r = client.get(format!("{url}/metrics")).bearer_auth(key).send().await.expect("metrics");
    let body = r.body().limit(16 << 20).await.expect("metrics body");
    let text = String::from_utf8_lossy(&body);
    text.lines()
        .find_map(|l| l.strip_prefix("omniroute_stock_feed_rows_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0) as u64
}

fn main() {
    let a = Args::parse();
    actix_rt::System::new().block_on(run(a));
}

async fn run(a: Args) {
    let brands = stores_by_brand(&a.data);
    let skus = skus(&a.data);
    let client = async_nats::connect(&a.nats_url).await.expect("NATS");
    let js = jetstream::new(client);
    let http = awc::Client::builder().timeout(Duration::from_secs(30)).finish();
    let before = match &a.url {
        Some(url) => applied_rows(&http, url, &a.key).await,
        None => 0,
    };
    if let Some(total) = a.wait_rows {
        measure(&http, a.url.as_deref().expect("--url"), &a.key, 0, total).await;
        return;
    }
    // The stream as the server makes it, so that a backlog can be published before it starts.
    js.get_or_create_stream(jetstream::stream::Config {
        name: format!("{}_FEEDS", a.prefix.to_ascii_uppercase().replace('-', "_")),
        subjects: vec![format!("{}.feeds.*", a.prefix)],
        max_age: Duration::from_secs(86_400),
        storage: jetstream::stream::StorageType::File,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    })
    .await
    .expect("feed stream");
    let total = (a.messages * a.rows) as u64;
    println!(
        "publishing {} messages of {} rows ({} rows, {}) over {} brands",
        a.messages,
        a.rows,
        total,
        if a.hot_cells > 0 { format!("{} hot cells", a.hot_cells) } else { "spread".into() },
        brands.len()
    );
    let t_publish = Instant::now();
    let mut acks = Vec::new();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for m in 0..a.messages {
        // One brand per message, round-robin; hot cells all on the first brand's first stores.
        let (brand, stores) = if a.hot_cells > 0 { &brands[0] } else { &brands[m % brands.len()] };
        let mut body = String::with_capacity(a.rows * 64);
        body.push('[');
        for r in 0..a.rows {
            let (store, sku) = if a.hot_cells > 0 {
                let c = (next() as usize) % a.hot_cells;
                (&stores[c % stores.len()], &skus[c % skus.len()])
            } else {
                (&stores[(next() as usize) % stores.len()], &skus[(next() as usize) % skus.len()])
            };
            if r > 0 {
                body.push(',');
            }
            body.push_str(&format!(
                "{{\"store_id\":{},\"sku\":{},\"on_hand\":{}}}",
                serde_json::to_string(store).unwrap(),
                serde_json::to_string(sku).unwrap(),
                next() % 500
            ));
        }
        body.push(']');
        let publish = jetstream::message::PublishMessage::build()
            .payload(body.into())
            .message_id(format!("{}-{m}", a.run));
        acks.push(js.send_publish(format!("{}.feeds.{brand}", a.prefix), publish).await.expect("publish"));
        if acks.len() >= 256 {
            for ack in acks.drain(..) {
                ack.await.expect("stored");
            }
        }
    }
    for ack in acks.drain(..) {
        ack.await.expect("stored");
    }
    let publish_s = t_publish.elapsed().as_secs_f64();
    println!("published in {publish_s:.2} s ({:.0} rows/s)", total as f64 / publish_s);
    let Some(url) = a.url.filter(|_| !a.publish_only) else { return };
    measure(&http, &url, &a.key, before, total).await;
}

async fn measure(http: &awc::Client, url: &str, key: &str, before: u64, total: u64) {
    // The rate between the first sample that moved and the one that reached the total.
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut first: Option<(Instant, u64)> = None;
    loop {
        let now = applied_rows(http, url, key).await.saturating_sub(before);
        let t = Instant::now();
        if now > 0 && first.is_none() {
            first = Some((t, now));
        }
        if now >= total {
            let (t0, r0) = first.expect("moved");
            let secs = t.duration_since(t0).as_secs_f64();
            println!(
                "applied {} rows; {} after the first sample in {secs:.2} s: {:.0} rows/s",
                now,
                now - r0,
                (now - r0) as f64 / secs.max(1e-9)
            );
            return;
        }
        assert!(Instant::now() < deadline, "only {now} of {total} rows applied in 10 minutes");
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
}
