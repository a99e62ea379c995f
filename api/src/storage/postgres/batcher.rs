//! Group commit of reservations: concurrent callers' decisions are folded into one
//! `omniroute_reserve` transaction per round trip, by a few batcher tasks.

use super::{chain, err, sqlstate, DbCell, Inner, Postgres, StorageError};
use optimizer::model::{CustomerId, Sku, StoreId};
use serde::Serialize;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, Mutex as AsyncMutex};

/// Most orders folded into one reservation transaction.
const MAX_BATCH: usize = 512;

/// A routing decision to make durable (external ids).
#[derive(Debug, Clone, Serialize)]
pub struct Pending {
    #[serde(rename = "id")]
    pub order_id: String,
    /// Sent as a separate text array (the database does not parse it).
    #[serde(skip)]
    pub request: String,
    #[serde(skip)]
    pub response: bytes::Bytes,
    pub day: i64,
    #[serde(rename = "exp")]
    pub expires_at: i64,
    /// (store_id, sku, qty); empty for a decision that holds nothing (DC, unfulfillable).
    #[serde(rename = "h")]
    pub holds: Vec<(StoreId, Sku, u32)>,
    /// Who placed the order, stored with it.
    #[serde(rename = "c", skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<CustomerId>,
    /// The coupons it redeems, taken in the same transaction as its stock.
    #[serde(rename = "r", skip_serializing_if = "Option::is_none")]
    pub coupons: Option<PendingCoupons>,
    /// The order's region (Citus: the distribution key of its rows; see `data::regions`).
    #[serde(rename = "g", skip_serializing_if = "String::is_empty")]
    pub region: String,
    /// The regions of its holds' stores, when any differs from `region` (Citus only).
    #[serde(skip)]
    pub hold_regions: Vec<String>,
}

/// An order's coupons as `omniroute_take_coupons` (migration V12) takes them.
#[derive(Debug, Clone, Serialize)]
pub struct PendingCoupons {
    #[serde(rename = "cust")]
    pub customer: String,
    /// Unix seconds.
    pub at: i64,
    /// Per coupon: campaign, capture store number, poster serial, cents off, then the caps on
    /// redeemed coupons, discount cents, per store and per poster (null: none), and the
    /// per-customer limit.
    #[serde(rename = "k")]
    pub items: Vec<CouponItem>,
}

/// One coupon of [`PendingCoupons`]: campaign, store number, serial, cents off, caps (redeemed,
/// discount cents, per store, per poster) and the per-customer limit.
pub type CouponItem = (u32, u32, u16, u64, Option<u64>, Option<u64>, Option<u64>, Option<u64>, u32);

/// What the database did with one pending decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Durable; the cells as they are now.
    Reserved { cells: Vec<DbCell> },
    /// Stock or capacity was no longer there; nothing changed. The cells as they are, and the
    /// stores that were full with their day's count.
    Refused { cells: Vec<DbCell>, full: Vec<(StoreId, u32)> },
    /// The order was answered before (by any replica): that answer.
    Existing { request: String, response: String },
    /// A budget or limit of this coupon refused it: nothing changed.
    CouponRefused { campaign: u32, reason: String },
}

type Reply = oneshot::Sender<Result<Vec<Outcome>, StorageError>>;
/// Queued reservation work: one caller's orders and where to send their outcomes.
pub(super) type ReserveJob = (Vec<Pending>, Reply);

impl Postgres {
    /// Makes `orders` durable (each all or nothing), folded with other callers' orders into as few
    /// transactions as possible. One outcome per order, in order.
    pub async fn reserve(&self, orders: Vec<Pending>) -> Result<Vec<Outcome>, StorageError> {
        let (tx, rx) = oneshot::channel();
        self.inner.batches.send((orders, tx)).map_err(|_| err("reservation batchers stopped"))?;
        rx.await.map_err(|_| err("reservation batch dropped"))?
    }
}

/// One batcher: takes queued jobs and runs them, folding concurrent callers into one transaction.
pub(super) async fn run(inner: Arc<Inner>, rx: Arc<AsyncMutex<mpsc::UnboundedReceiver<ReserveJob>>>) {
    loop {
        let mut jobs = Vec::new();
        {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else { return };
            let mut n = first.0.len();
            jobs.push(first);
            while n < MAX_BATCH {
                match rx.try_recv() {
                    Ok(job) => {
                        n += job.0.len();
                        jobs.push(job);
                    }
                    Err(_) => break,
                }
            }
        }
        let orders: Vec<&Pending> = jobs.iter().flat_map(|(o, _)| o.iter()).collect();
        if inner.citus {
            let mut outcomes = reserve_by_shard(&inner, &orders).await;
            for (orders, reply) in jobs.into_iter().rev() {
                let mine = outcomes.split_off(outcomes.len() - orders.len());
                let _ = reply.send(mine.into_iter().collect());
            }
            continue;
        }
        match reserve_batch(&inner, None, &orders).await {
            Ok(mut outcomes) => {
                inner.healthy.store(true, Ordering::Relaxed);
                for (orders, reply) in jobs.into_iter().rev() {
                    let mine = outcomes.split_off(outcomes.len() - orders.len());
                    let _ = reply.send(Ok(mine));
                }
            }
            Err(e) => {
                for (_, reply) in jobs {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// On Citus: the batch split by shard, one call per shard (all concurrent), each run by Citus on
/// the worker that holds the shard: `omniroute_reserve_s` for the orders whose rows all live in
/// that shard (set-based, a few statements for the whole group), `omniroute_reserve_r` per
/// region for the few whose stores lie in another shard (a distributed transaction). A shard
/// whose worker is down fails its own orders only.
async fn reserve_by_shard(inner: &Inner, orders: &[&Pending]) -> Vec<Result<Outcome, StorageError>> {
    let mut outcomes: Vec<Option<Result<Outcome, StorageError>>> = vec![None; orders.len()];
    // (function, key) -> orders: key is a shard for `s`, a region for `r`.
    let mut groups: std::collections::BTreeMap<(char, String), Vec<usize>> = Default::default();
    for (i, o) in orders.iter().enumerate() {
        if o.coupons.is_some() {
            outcomes[i] = Some(Err(err(
                "coupon redemption needs a PostgreSQL database: it is not available on Citus yet",
            )));
            continue;
        }
        let shard = inner.shard_of(&o.region);
        let local = shard.is_some() && o.hold_regions.iter().all(|r| inner.shard_of(r) == shard);
        let key = match (local, shard) {
            (true, Some(s)) => ('s', s.to_string()),
            _ => ('r', o.region.clone()),
        };
        groups.entry(key).or_default().push(i);
    }
    let calls = groups.into_iter().map(|((kind, _), idx)| async move {
        let group: Vec<&Pending> = idx.iter().map(|&i| orders[i]).collect();
        let key = group[0].region.as_str();
        let got = reserve_batch(inner, Some((kind == 's', key)), &group).await;
        if let Err(e) = &got {
            log::warn!("reservations of region {key:?} (and its shard) failed: {e}");
        }
        (idx, got)
    });
    for (idx, got) in futures_util::future::join_all(calls).await {
        match got {
            Ok(got) => {
                inner.healthy.store(true, Ordering::Relaxed);
                for (i, o) in idx.into_iter().zip(got) {
                    outcomes[i] = Some(Ok(o));
                }
            }
            Err(e) => {
                for i in idx {
                    outcomes[i] = Some(Err(e.clone()));
                }
            }
        }
    }
    outcomes.into_iter().map(|o| o.unwrap_or_else(|| Err(err("no outcome")))).collect()
}

/// One `omniroute_reserve` call (on Citus, `omniroute_reserve_s` for one shard's orders or
/// `omniroute_reserve_r` for one region's, keyed by `region`), retried when the database aborts
/// it for a deadlock or serialization failure (nothing was applied then).
async fn reserve_batch(
    inner: &Inner,
    region: Option<(bool, &str)>,
    orders: &[&Pending],
) -> Result<Vec<Outcome>, StorageError> {
    let json = serde_json::to_string(orders).map_err(err)?;
    let requests: Vec<&str> = orders.iter().map(|o| o.request.as_str()).collect();
    let responses = orders
        .iter()
        .map(|o| std::str::from_utf8(&o.response).map_err(err))
        .collect::<Result<Vec<&str>, _>>()?;
    let client = inner.client().await?;
    let sql = if let Some((set_based, _)) = region {
        if set_based {
            "SELECT ord, outcome, cells::text, full_stores::text, request, response \
             FROM omniroute_reserve_s($4, $1::text::jsonb, $2, $3)"
        } else {
            "SELECT ord, outcome, cells::text, full_stores::text, request, response \
             FROM omniroute_reserve_r($4, $1::text::jsonb, $2, $3)"
        }
    } else if orders.iter().any(|o| o.coupons.is_some()) {
        "SELECT ord, outcome, cells::text, full_stores::text, request, response \
         FROM omniroute_reserve_redeem($1::text::jsonb, $2, $3)"
    } else {
        "SELECT ord, outcome, cells::text, full_stores::text, request, response \
         FROM omniroute_reserve($1::text::jsonb, $2, $3)"
    };
    let stmt = client.prepare_cached(sql).await.map_err(|e| inner.failed(e))?;
    let mut attempt = 0;
    let rows = loop {
        let result = match region {
            Some((_, r)) => client.query(&stmt, &[&json, &requests, &responses, &r]).await,
            None => client.query(&stmt, &[&json, &requests, &responses]).await,
        };
        match result {
            Ok(rows) => break rows,
            Err(e) if matches!(sqlstate(&e), Some("40P01" | "40001")) && attempt < 5 => {
                attempt += 1;
                log::warn!("reservation batch retried after {}", chain(&e));
            }
            Err(e) => return Err(inner.failed(e)),
        }
    };
    let mut outcomes: Vec<Option<Outcome>> = vec![None; orders.len()];
    for r in rows {
        let ord = r.get::<_, i32>(0) as usize;
        let outcome = match r.get::<_, &str>(1) {
            "existing" => Outcome::Existing { request: r.get(4), response: r.get(5) },
            "coupon_refused" => {
                let (campaign, reason): (u32, String) =
                    serde_json::from_str(r.get::<_, &str>(2)).map_err(err)?;
                Outcome::CouponRefused { campaign, reason }
            }
            kind => {
                let cells: Vec<(String, String, i64, i64, i64)> =
                    serde_json::from_str(r.get::<_, &str>(2)).map_err(err)?;
                let cells = cells
                    .into_iter()
                    .map(|(a, b, c, d, e)| {
                        DbCell::new(&a, &b, c, d, e)
                            .ok_or_else(|| err(format!("a stock row with invalid ids ({a:?}, {b:?})")))
                    })
                    .collect::<Result<_, _>>()?;
                if kind == "reserved" {
                    Outcome::Reserved { cells }
                } else {
                    let full: Vec<(StoreId, u32)> = serde_json::from_str(r.get::<_, &str>(3)).map_err(err)?;
                    Outcome::Refused { cells, full }
                }
            }
        };
        if let Some(slot) = outcomes.get_mut(ord) {
            *slot = Some(outcome);
        }
    }
    outcomes
        .into_iter()
        .enumerate()
        .map(|(i, o)| {
            o.ok_or_else(|| err(format!("the database gave no outcome for order {}", orders[i].order_id)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_json_leaves_requests_and_responses_out() {
        let p = Pending {
            order_id: "o1".into(),
            request: "{\"big\":1}".into(),
            response: bytes::Bytes::from_static(b"{\"bigger\":2}"),
            day: 20_000,
            expires_at: 99,
            holds: vec![(StoreId::parse("S,1").unwrap(), Sku::numbered(2), 3)],
            customer_id: None,
            coupons: None,
            region: String::new(),
            hold_regions: Vec::new(),
        };
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"id":"o1","day":20000,"exp":99,"h":[["S,1","2",3]]}"#
        );
    }
}
