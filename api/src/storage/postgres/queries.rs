//! Single calls against the database: stock feeds, ending reservations, expiry, reads, and the
//! start-up reads a replica builds its cache from.

use super::{chain, err, sqlstate, DbCell, Inner, Postgres, StorageError};
use futures_util::StreamExt;
use optimizer::ledger::ReservationState;
use optimizer::model::{Sku, StoreId};

/// One stock feed row for the database (values checked at the edge).
#[derive(Debug, Clone, Copy)]
pub enum FeedChange {
    Set { on_hand: u32, safety_stock: Option<u32> },
    Add(i64),
}

/// A stock feed row's result.
#[derive(Debug, Clone, Copy)]
pub struct FeedRowResult {
    pub on_hand: u32,
    pub reserved: u32,
    pub safety_stock: u32,
    pub version: u32,
    pub new_row: bool,
}

/// Why the database refused a feed (nothing was applied).
#[derive(Debug, Clone, thiserror::Error)]
pub enum DbFeedError {
    #[error("row {row}: on_hand would go below zero")]
    Negative { row: usize },
    #[error("row {row}: on_hand would exceed the maximum")]
    TooLarge { row: usize },
    /// The broker message was applied before (by another replica, meanwhile).
    #[error("the message was applied before")]
    Duplicate,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// The state of an order's reservation after a ship or cancel: `None` when it has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finished {
    pub state: Option<ReservationState>,
    pub expires_at: Option<i64>,
    pub changed: bool,
}

/// An answered order as stored.
#[derive(Debug, Clone)]
pub struct StoredOrder {
    pub request: String,
    pub response: String,
    /// (state, expires_at) when the decision reserved something.
    pub reservation: Option<(ReservationState, i64)>,
}

/// A reservation state as the schema stores it: 1 held, 2 committed, 3 released, 4 expired.
fn state_code(s: ReservationState) -> i16 {
    match s {
        ReservationState::Held => 1,
        ReservationState::Committed => 2,
        ReservationState::Released => 3,
        ReservationState::Expired => 4,
    }
}

fn state_of(code: i16) -> Result<Option<ReservationState>, StorageError> {
    Ok(Some(match code {
        0 => return Ok(None),
        1 => ReservationState::Held,
        2 => ReservationState::Committed,
        3 => ReservationState::Released,
        4 => ReservationState::Expired,
        other => return Err(err(format!("unknown reservation state {other} in the database"))),
    }))
}

/// A non-negative database integer as `u32` (the schema's checks keep them so).
fn count(v: i64) -> u32 {
    u32::try_from(v.max(0)).unwrap_or(u32::MAX)
}

impl Postgres {
    /// Applies a stock feed, all rows or none. `rows` are (store_id, sku, change).
    pub async fn feed(
        &self,
        rows: Vec<(StoreId, Sku, FeedChange)>,
        audit: &[crate::service::AuditEntry],
        message: Option<&str>,
    ) -> Result<Vec<FeedRowResult>, DbFeedError> {
        let message = message.map(str::to_string);
        let audit = serde_json::to_string(audit).map_err(err)?;
        let json: Vec<serde_json::Value> = rows
            .iter()
            .map(|(store, sku, change)| match change {
                FeedChange::Set { on_hand, safety_stock } => {
                    serde_json::json!([store, sku, on_hand, serde_json::Value::Null, safety_stock])
                }
                FeedChange::Add(d) => serde_json::json!([store, sku, serde_json::Value::Null, d, null]),
            })
            .collect();
        let json = serde_json::to_string(&json).map_err(err)?;
        self.run(move |inner| async move {
            let client = inner.client().await?;
            // The audit entries and the broker message's id go in with the feed, in the same
            // statement: all or nothing.
            let sql = "WITH audit AS (INSERT INTO stock_audit (at, key_id, brand, rows, accepted, reason) \
                       SELECT at, key_id, brand, rows, accepted, reason FROM jsonb_to_recordset($2::text::jsonb) \
                       AS x(at bigint, key_id text, brand text, rows int, accepted boolean, reason text) RETURNING 1), \
                       msg AS (INSERT INTO feed_messages (id, applied_at) \
                       SELECT $3::text, extract(epoch FROM now())::bigint WHERE $3::text IS NOT NULL RETURNING 1) \
                       SELECT on_hand, reserved, safety_stock, version, new_row FROM omniroute_feed($1::text::jsonb)";
            // On Citus, each row in its store's region.
            let sql = if inner.citus { sql.replace("omniroute_feed(", "omniroute_feed_r(") } else { sql.to_owned() };
            Ok(match client.query(&sql, &[&json, &audit, &message]).await {
                Ok(rows) => Ok(rows
                    .iter()
                    .map(|r| FeedRowResult {
                        on_hand: count(r.get::<_, i32>(0).into()),
                        reserved: count(r.get::<_, i32>(1).into()),
                        safety_stock: count(r.get::<_, i32>(2).into()),
                        version: count(r.get::<_, i64>(3)),
                        new_row: r.get(4),
                    })
                    .collect()),
                Err(e) if matches!(sqlstate(&e), Some("OR001" | "OR002")) => {
                    let row = e.as_db_error().and_then(|d| d.detail()).and_then(|d| d.parse().ok()).unwrap_or(0);
                    if sqlstate(&e) == Some("OR001") {
                        Err(DbFeedError::Negative { row })
                    } else {
                        Err(DbFeedError::TooLarge { row })
                    }
                }
                Err(e) if sqlstate(&e) == Some("23505") => Err(DbFeedError::Duplicate),
                Err(e) => Err(DbFeedError::Storage(inner.failed(e))),
            })
        })
        .await?
    }

    /// Ends a held reservation as `target` (`Committed` or `Released`). Idempotent: the state
    /// after the call, whichever call ended it.
    pub async fn finish(&self, order_id: &str, target: ReservationState) -> Result<Finished, StorageError> {
        let order_id = order_id.to_owned();
        let code = state_code(target);
        self.run(move |inner| async move {
            let client = inner.client().await?;
            let row = if inner.citus {
                // Found on whichever shard holds it, then ended on that shard's worker.
                let region: String = client
                    .query_opt("SELECT region FROM reservations WHERE order_id = $1", &[&order_id])
                    .await
                    .map_err(|e| inner.failed(e))?
                    .map_or_else(String::new, |r| r.get(0));
                client
                    .query_one(
                        "SELECT state, expires_at, changed FROM omniroute_finish_r($3, $1, $2)",
                        &[&order_id, &code, &region],
                    )
                    .await
            } else {
                client
                    .query_one(
                        "SELECT state, expires_at, changed FROM omniroute_finish($1, $2)",
                        &[&order_id, &code],
                    )
                    .await
            }
            .map_err(|e| inner.failed(e))?;
            Ok(Finished { state: state_of(row.get(0))?, expires_at: row.get(1), changed: row.get(2) })
        })
        .await
    }

    /// Reads an answered order and its reservation state.
    pub async fn order(&self, order_id: &str) -> Result<Option<StoredOrder>, StorageError> {
        let order_id = order_id.to_owned();
        self.run(move |inner| async move {
            let client = inner.client().await?;
            let row = client
                .query_opt(
                    "SELECT o.request, o.response, r.state, r.expires_at
                     FROM orders o LEFT JOIN reservations r ON r.region = o.region AND r.order_id = o.order_id
                     WHERE o.order_id = $1",
                    &[&order_id],
                )
                .await
                .map_err(|e| inner.failed(e))?;
            let Some(r) = row else { return Ok(None) };
            let reservation = match (r.get::<_, Option<i16>>(2), r.get::<_, Option<i64>>(3)) {
                (Some(code), Some(expires_at)) => state_of(code)?.map(|s| (s, expires_at)),
                _ => None,
            };
            Ok(Some(StoredOrder { request: r.get(0), response: r.get(1), reservation }))
        })
        .await
    }

    /// One stock row: (on_hand, reserved, safety_stock).
    pub async fn stock_level(
        &self,
        store_id: &StoreId,
        sku: &Sku,
    ) -> Result<Option<(u32, u32, u32)>, StorageError> {
        let (store_id, sku) = (store_id.as_str().to_owned(), sku.as_str().to_owned());
        self.run(move |inner| async move {
            let client = inner.client().await?;
            let row = client
                .query_opt(
                    "SELECT on_hand, reserved, safety_stock FROM stock WHERE store_id = $1 AND sku = $2",
                    &[&store_id, &sku],
                )
                .await
                .map_err(|e| inner.failed(e))?;
            Ok(row.map(|r| {
                let v = |i| count(r.get::<_, i32>(i).into());
                (v(0), v(1), v(2))
            }))
        })
        .await
    }

    /// Orders counted against a store's capacity on local `day`.
    pub async fn orders_on_day(&self, store_id: &StoreId, day: i64) -> Result<u32, StorageError> {
        let store_id = store_id.as_str().to_owned();
        self.run(move |inner| async move {
            let client = inner.client().await?;
            let row = client
                .query_opt(
                    "SELECT orders FROM store_days WHERE store_id = $1 AND day = $2",
                    &[&store_id, &day],
                )
                .await
                .map_err(|e| inner.failed(e))?;
            Ok(row.map_or(0, |r| count(r.get::<_, i32>(0).into())))
        })
        .await
    }

    /// Appends audit entries (of a refused feed).
    pub async fn record_audit(&self, entries: &[crate::service::AuditEntry]) -> Result<(), StorageError> {
        let json = serde_json::to_string(entries).map_err(err)?;
        self.run(move |inner| async move {
            let client = inner.client().await?;
            client
                .execute(
                    "INSERT INTO stock_audit (at, key_id, brand, rows, accepted, reason) \
                     SELECT at, key_id, brand, rows, accepted, reason FROM jsonb_to_recordset($1::text::jsonb) \
                     AS x(at bigint, key_id text, brand text, rows int, accepted boolean, reason text)",
                    &[&json],
                )
                .await
                .map_err(|e| inner.failed(e))?;
            Ok(())
        })
        .await
    }

    /// For each broker message id, whether it was recorded.
    pub async fn messages_seen(&self, ids: &[&str]) -> Result<Vec<bool>, StorageError> {
        let owned: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
        self.run(move |inner| async move {
            let client = inner.client().await?;
            let rows = client
                .query("SELECT id FROM feed_messages WHERE id = ANY($1)", &[&owned])
                .await
                .map_err(|e| inner.failed(e))?;
            let seen: std::collections::HashSet<String> = rows.iter().map(|r| r.get(0)).collect();
            Ok(owned.iter().map(|id| seen.contains(id)).collect())
        })
        .await
    }

    /// Audit entries after `after`, oldest first, at most `limit`, of `brands` when given.
    pub async fn audit_log(
        &self,
        brands: Option<&[String]>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<crate::service::AuditEntry>, StorageError> {
        let brands: Option<Vec<String>> = brands.map(<[String]>::to_vec);
        let (after, limit) = (after.min(i64::MAX as u64) as i64, limit as i64);
        self.run(move |inner| async move {
            let client = inner.client().await?;
            let rows = client
                .query(
                    "SELECT seq, at, key_id, brand, rows, accepted, reason FROM stock_audit \
                     WHERE seq > $1 AND ($2::text[] IS NULL OR brand = ANY($2)) ORDER BY seq LIMIT $3",
                    &[&after, &brands, &limit],
                )
                .await
                .map_err(|e| inner.failed(e))?;
            Ok(rows
                .iter()
                .map(|r| crate::service::AuditEntry {
                    seq: r.get::<_, i64>(0) as u64,
                    at: r.get(1),
                    key_id: r.get(2),
                    brand: r.get(3),
                    rows: count(r.get::<_, i32>(4).into()),
                    accepted: r.get(5),
                    reason: r.get(6),
                })
                .collect())
        })
        .await
    }

    /// Writes a campaign record: with `expect` `None` only if no campaign has `id` yet, else only
    /// over the stored record of version `expect`. Whether it was written.
    pub async fn put_campaign(
        &self,
        id: u32,
        brand: &str,
        record: &serde_json::Value,
        expect: Option<u64>,
    ) -> Result<bool, StorageError> {
        let (id, brand, record) = (i64::from(id), brand.to_owned(), record.clone());
        self.run(move |inner| async move {
            let client = inner.client().await?;
            let n = match expect {
                None => client
                    .execute(
                        "INSERT INTO campaigns (id, brand, record) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING",
                        &[&id, &brand, &record],
                    )
                    .await,
                Some(v) => client
                    .execute(
                        "UPDATE campaigns SET record = $2 WHERE id = $1 AND (record->>'version')::bigint = $3",
                        &[&id, &record, &(v as i64)],
                    )
                    .await,
            }
            .map_err(|e| inner.failed(e))?;
            Ok(n == 1)
        })
        .await
    }

    /// One capture ([`omniroute_capture` in migration V11]): the outcome (`new`, `already`,
    /// `over_budget`) and the entry the customer holds.
    #[allow(clippy::too_many_arguments)]
    pub async fn capture(
        &self,
        customer: &str,
        campaign: u32,
        store_number: u32,
        serial: u16,
        entry: &serde_json::Value,
        caps: [Option<u64>; 3],
    ) -> Result<(String, Option<serde_json::Value>), StorageError> {
        let (customer, entry) = (customer.to_owned(), entry.clone());
        let caps = caps.map(|c| c.map(|n| n.min(i64::MAX as u64) as i64));
        self.run(move |inner| async move {
            let client = inner.client().await?;
            let row = client
                .query_one(
                    "SELECT outcome, entry FROM omniroute_capture($1, $2, $3, $4, $5, $6, $7, $8)",
                    &[
                        &customer,
                        &i64::from(campaign),
                        &(store_number as i32),
                        &i32::from(serial),
                        &entry,
                        &caps[0],
                        &caps[1],
                        &caps[2],
                    ],
                )
                .await
                .map_err(|e| inner.failed(e))?;
            Ok((row.get(0), row.get(1)))
        })
        .await
    }

    /// A customer's wallet entries, by campaign id.
    /// A campaign's coupons by capture store number: (store, captured, redeemed, discount cents),
    /// each store's captures and redemptions in rows of their own.
    pub async fn campaign_tally(&self, campaign: u32) -> Result<Vec<(u32, u64, u64, u64)>, StorageError> {
        self.run(move |inner| async move {
            let client = inner.client().await?;
            let rows = client
                .query(
                    "SELECT store_number, count(*), 0::bigint, 0::bigint FROM wallet_entries \
                     WHERE campaign = $1 GROUP BY 1 \
                     UNION ALL SELECT store_number, 0, redeemed, discount_cents FROM coupon_redeemed \
                     WHERE campaign = $1 AND store_number >= 0 AND serial = -1",
                    &[&i64::from(campaign)],
                )
                .await
                .map_err(|e| inner.failed(e))?;
            Ok(rows
                .iter()
                .map(|r| {
                    let n = |i: usize| r.get::<_, i64>(i).max(0) as u64;
                    (r.get::<_, i32>(0).max(0) as u32, n(1), n(2), n(3))
                })
                .collect())
        })
        .await
    }

    pub async fn wallet(&self, customer: &str) -> Result<Vec<serde_json::Value>, StorageError> {
        let customer = customer.to_owned();
        self.run(move |inner| async move {
            let client = inner.client().await?;
            let rows = client
                .query(
                    "SELECT w.entry || jsonb_build_object('redeemed', COALESCE(u.redeemed, 0)) \
                     FROM wallet_entries w LEFT JOIN coupon_customers u \
                       ON u.customer_id = w.customer_id AND u.campaign = w.campaign \
                     WHERE w.customer_id = $1 ORDER BY w.campaign",
                    &[&customer],
                )
                .await
                .map_err(|e| inner.failed(e))?;
            Ok(rows.iter().map(|r| r.get::<_, serde_json::Value>(0)).collect())
        })
        .await
    }

    /// One campaign record.
    pub async fn campaign(&self, id: u32) -> Result<Option<serde_json::Value>, StorageError> {
        self.run(move |inner| async move {
            let client = inner.client().await?;
            let row = client
                .query_opt("SELECT record FROM campaigns WHERE id = $1", &[&i64::from(id)])
                .await
                .map_err(|e| inner.failed(e))?;
            Ok(row.map(|r| r.get::<_, serde_json::Value>(0)))
        })
        .await
    }

    /// Every campaign record, by id.
    pub async fn campaigns(&self) -> Result<Vec<serde_json::Value>, StorageError> {
        self.json_column("SELECT record FROM campaigns ORDER BY id").await
    }

    /// The one JSON column of every row `sql` selects.
    async fn json_column(&self, sql: &'static str) -> Result<Vec<serde_json::Value>, StorageError> {
        self.run(move |inner| async move {
            let client = inner.client().await?;
            let rows = client.query(sql, &[]).await.map_err(|e| inner.failed(e))?;
            Ok(rows.iter().map(|r| r.get::<_, serde_json::Value>(0)).collect())
        })
        .await
    }

    /// Inserts or replaces an API key record (JSON) by id.
    pub async fn save_key(&self, id: &str, record: &serde_json::Value) -> Result<(), StorageError> {
        let (id, record) = (id.to_owned(), record.clone());
        self.run(move |inner| async move {
            let client = inner.client().await?;
            client
                .execute(
                    "INSERT INTO api_keys (id, record) VALUES ($1, $2) \
                     ON CONFLICT (id) DO UPDATE SET record = EXCLUDED.record",
                    &[&id, &record],
                )
                .await
                .map_err(|e| inner.failed(e))?;
            Ok(())
        })
        .await
    }

    /// Every API key record.
    pub async fn keys(&self) -> Result<Vec<serde_json::Value>, StorageError> {
        self.json_column("SELECT record FROM api_keys ORDER BY id").await
    }

    /// Expires held reservations due at `now`; returns how many.
    pub async fn expire(&self, now: i64) -> Result<u64, StorageError> {
        self.run(move |inner| async move {
            let client = inner.client().await?;
            if inner.citus {
                return expire_by_region(&inner, &client, now).await;
            }
            let mut total = 0u64;
            loop {
                let row = client
                    .query_one("SELECT omniroute_expire($1, 1000)", &[&now])
                    .await
                    .map_err(|e| inner.failed(e))?;
                let n = u64::from(count(row.get::<_, i32>(0).into()));
                total += n;
                if n < 1000 {
                    return Ok(total);
                }
            }
        })
        .await
    }

    /// Every store's id, location (lon, lat) and region as the database holds it (PostGIS geography, read
    /// as EWKB through the `postgis` crate). Blocks (start-up).
    pub fn store_locations(&self) -> Result<Vec<(String, f64, f64, String)>, StorageError> {
        self.block_on(|inner| async move {
            let client = inner.client().await?;
            let rows = client
                .query("SELECT store_id, geom::geometry, region FROM stores", &[])
                .await
                .map_err(|e| chain(&e))?;
            Ok(rows
                .iter()
                .map(|r| {
                    let p: postgis::ewkb::Point = r.get(1);
                    (r.get::<_, String>(0), p.x, p.y, r.get::<_, String>(2))
                })
                .collect())
        })
    }

    /// Every stock row (external ids), read in one COPY. Blocks (start-up and resync).
    pub fn stock_snapshot(&self) -> Result<Vec<DbCell>, StorageError> {
        self.block_on(|inner| async move { snapshot(&inner).await })
    }
}

/// On Citus: each region's due reservations on its worker; a region whose worker is down waits
/// for the next round (the others are expired).
async fn expire_by_region(
    inner: &Inner,
    client: &tokio_postgres::Client,
    now: i64,
) -> Result<u64, StorageError> {
    // The regions read at start (a full read of `stores` every tick would cost the coordinator).
    let mut regions: Vec<&String> = inner.shards.keys().collect();
    regions.sort_unstable();
    let mut total = 0u64;
    let mut failed = None;
    for region in &regions {
        loop {
            match client.query_one("SELECT omniroute_expire_r($1, $2, 1000)", &[*region, &now]).await {
                Ok(row) => {
                    let n = u64::from(count(row.get::<_, i32>(0).into()));
                    total += n;
                    if n < 1000 {
                        break;
                    }
                }
                Err(e) => {
                    log::warn!("expiring reservations of region {region:?}: {}", chain(&e));
                    failed = Some(e);
                    break;
                }
            }
        }
    }
    match failed {
        Some(e) if total == 0 => Err(inner.failed(e)),
        _ => Ok(total),
    }
}

async fn snapshot(inner: &Inner) -> Result<Vec<DbCell>, StorageError> {
    let client = inner.client().await?;
    let stream = client
        .copy_out(
            "COPY (SELECT store_id, sku, on_hand - reserved, safety_stock, version FROM stock) TO STDOUT (FORMAT csv)",
        )
        .await
        .map_err(|e| chain(&e))?;
    futures_util::pin_mut!(stream);
    let mut cells = Vec::new();
    let mut rest: Vec<u8> = Vec::new();
    let mut more = true;
    while more {
        match stream.next().await {
            Some(chunk) => rest.extend_from_slice(&chunk.map_err(|e| chain(&e))?),
            None => more = false,
        }
        // Whole lines only (ids hold no line breaks, so a line is a record).
        let end = if more { rest.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1) } else { rest.len() };
        if end == 0 || (more && rest.len() < 1 << 20) {
            continue;
        }
        let mut rdr = csv::ReaderBuilder::new().has_headers(false).from_reader(&rest[..end]);
        for row in rdr.deserialize::<(String, String, i64, i64, i64)>() {
            let (store, sku, free, safety, version) = row.map_err(err)?;
            let cell = DbCell::new(&store, &sku, free, safety, version)
                .ok_or_else(|| err(format!("a stock row with invalid ids ({store:?}, {sku:?})")))?;
            cells.push(cell);
        }
        rest.drain(..end);
    }
    Ok(cells)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservation_states_round_trip_through_their_codes() {
        use ReservationState::*;
        for s in [Held, Committed, Released, Expired] {
            assert_eq!(state_of(state_code(s)).unwrap(), Some(s));
        }
        assert_eq!(state_of(0).unwrap(), None);
        assert!(state_of(9).is_err());
    }
}
