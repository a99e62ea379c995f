//! Preparing a database: the versioned migrations (refinery, embedded in the binary) and the
//! bulk import of a dataset's stores and stock with COPY.

use super::{chain, StorageError};
use crate::data::regions::Regions;
use crate::data::Loaded;
use bytes::Bytes;
use futures_util::SinkExt;
use optimizer::progress::Progress;
use tokio_postgres::NoTls;

mod migrations {
    refinery::embed_migrations!("migrations");
}

/// Rows per COPY message.
const ROWS_PER_CHUNK: usize = 20_000;

/// Connects once, outside any pool (migrations, import).
pub async fn connect(url: &str) -> Result<tokio_postgres::Client, StorageError> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(|e| StorageError(format!("connecting to {url}: {}", chain(&e).0)))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            log::warn!("database connection closed: {e}");
        }
    });
    Ok(client)
}

/// Applies the versioned migrations that are missing, up to version `to` when given; returns the
/// versions applied.
pub async fn migrate(
    client: &mut tokio_postgres::Client,
    to: Option<u32>,
) -> Result<Vec<String>, StorageError> {
    let mut runner = migrations::migrations::runner();
    if let Some(v) = to {
        runner = runner.set_target(refinery::Target::Version(v));
    }
    let report = runner.run_async(client).await.map_err(|e| chain(&e))?;
    let mut applied: Vec<String> = report.applied_migrations().iter().map(|m| m.to_string()).collect();
    if to.is_none() && is_citus(client).await? {
        if !distributed(client).await? {
            let tx = client.transaction().await.map_err(db)?;
            tx.batch_execute(DISTRIBUTE).await.map_err(db)?;
            tx.commit().await.map_err(db)?;
            applied.push("citus: tables distributed by region".into());
        }
        client.batch_execute(CITUS_FUNCTIONS).await.map_err(db)?;
    }
    Ok(applied)
}

/// Distributes the tables by region on a Citus coordinator (run once, after the migrations).
const DISTRIBUTE: &str = include_str!("../../../citus/distribute.sql");
/// The functions that change stock by region (re-applied by every `db migrate` on Citus).
const CITUS_FUNCTIONS: &str = include_str!("../../../citus/functions.sql");

/// Whether the database has the Citus extension (a coordinator).
pub async fn is_citus(client: &tokio_postgres::Client) -> Result<bool, StorageError> {
    let row = client
        .query_one("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')", &[])
        .await
        .map_err(db)?;
    Ok(row.get(0))
}

/// Whether `stock` is a distributed table (Citus, after `db migrate`).
pub async fn distributed(client: &tokio_postgres::Client) -> Result<bool, StorageError> {
    if !is_citus(client).await? {
        return Ok(false);
    }
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'stock'::regclass)",
            &[],
        )
        .await
        .map_err(db)?;
    Ok(row.get(0))
}

/// What an import wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Imported {
    pub stores: usize,
    pub stock_rows: usize,
}

fn db(e: tokio_postgres::Error) -> StorageError {
    chain(&e)
}

fn csv_error(e: csv::Error) -> StorageError {
    StorageError(e.to_string())
}

/// Loads `loaded`'s stores and stock into a migrated database in one transaction (stages
/// `stores`, `stock`, `indexes`). Refuses a database that already holds stores unless `replace`,
/// which wipes stores, stock, orders and reservations first.
///
/// Bulk load: no per-row notifications (replicas restart after an import), the stock key and
/// index dropped and built once, COPY with `FREEZE` into tables truncated in the same
/// transaction (rows arrive frozen, so the first reservations do not rewrite every page).
pub async fn import(
    client: &mut tokio_postgres::Client,
    loaded: Loaded,
    regions: &Regions,
    replace: bool,
    progress: &dyn Progress,
) -> Result<Imported, StorageError> {
    let net = &loaded.network;
    let citus = distributed(client).await?;
    let tx = client.transaction().await.map_err(db)?;
    let existing: i64 = tx.query_one("SELECT count(*) FROM stores", &[]).await.map_err(db)?.get(0);
    if existing > 0 && !replace {
        return Err(StorageError(format!(
            "the database already holds {existing} stores; pass --replace to wipe its stores, stock, orders and reservations"
        )));
    }
    // On Citus the tables keep their keys (a distributed table's constraints stay) and have no
    // triggers; COPY goes through the coordinator to each row's shard.
    tx.batch_execute(if citus {
        "TRUNCATE stores, stock, store_days, reservations, orders, stock_changes;"
    } else {
        "TRUNCATE stores, stock, store_days, reservations, orders;
         ALTER TABLE stock DISABLE TRIGGER stock_notify_insert;
         ALTER TABLE stores DISABLE TRIGGER stores_notify;
         ALTER TABLE stock DROP CONSTRAINT stock_pkey;
         DROP INDEX stock_sku;"
    })
    .await
    .map_err(db)?;
    let freeze = if citus { "" } else { ", FREEZE" };

    progress.stage("stores", net.stores().len() as u64);
    let sink = tx
        .copy_in(&format!("COPY stores (store_id, brand, city, geom, pickup, ship, capacity_per_day, opens_min, closes_min, region) FROM STDIN WITH (FORMAT csv{freeze})"))
        .await
        .map_err(db)?;
    futures_util::pin_mut!(sink);
    for chunk in net.stores().chunks(ROWS_PER_CHUNK) {
        let mut w = csv::Writer::from_writer(Vec::with_capacity(chunk.len() * 96));
        for s in chunk {
            let city = &net.cities()[usize::from(s.city.0)].name;
            let geom = format!("SRID=4326;POINT({} {})", s.location.lon(), s.location.lat());
            w.write_record([
                s.id.as_str(),
                s.brand.as_str(),
                city,
                &geom,
                if s.capabilities.pickup { "true" } else { "false" },
                if s.capabilities.ship { "true" } else { "false" },
                &s.capacity_per_day.to_string(),
                &s.hours.opens_min.to_string(),
                &s.hours.closes_min.to_string(),
                regions.of_city(s.city),
            ])
            .map_err(csv_error)?;
        }
        sink.send(Bytes::from(w.into_inner().map_err(|e| StorageError(e.to_string()))?)).await.map_err(db)?;
        progress.advance(chunk.len() as u64);
    }
    sink.finish().await.map_err(db)?;

    // The last row of a repeated (store, SKU) wins, as when the service loads the files.
    let mut stock = loaded.stock;
    stock.sort_by_key(|r| (r.store, r.sku));
    let rows: Vec<_> = stock
        .chunk_by(|a, b| (a.store, a.sku) == (b.store, b.sku))
        .map(|g| *g.last().expect("chunks are not empty"))
        .collect();
    progress.stage("stock", rows.len() as u64);
    let sink = tx
        .copy_in(&format!(
            "COPY stock (store_id, sku, on_hand, safety_stock, region) FROM STDIN WITH (FORMAT csv{freeze})"
        ))
        .await
        .map_err(db)?;
    futures_util::pin_mut!(sink);
    for chunk in rows.chunks(ROWS_PER_CHUNK) {
        let mut w = csv::Writer::from_writer(Vec::with_capacity(chunk.len() * 24));
        for r in chunk {
            let (store, sku) = (net.store_id(r.store), net.catalog().sku(r.sku));
            w.write_record([
                store.as_str(),
                sku.as_str(),
                &r.on_hand.to_string(),
                &r.safety_stock.to_string(),
                regions.of_store(net, r.store),
            ])
            .map_err(csv_error)?;
        }
        sink.send(Bytes::from(w.into_inner().map_err(|e| StorageError(e.to_string()))?)).await.map_err(db)?;
        progress.advance(chunk.len() as u64);
    }
    sink.finish().await.map_err(db)?;
    progress.stage("indexes", 1);
    if !citus {
        tx.batch_execute(
            "ALTER TABLE stock ADD PRIMARY KEY (store_id, sku);
             CREATE INDEX stock_sku ON stock (sku, store_id);
             ALTER TABLE stock ENABLE TRIGGER stock_notify_insert;
             ALTER TABLE stores ENABLE TRIGGER stores_notify;",
        )
        .await
        .map_err(db)?;
    }
    tx.commit().await.map_err(db)?;
    client.batch_execute("ANALYZE stores; ANALYZE stock;").await.map_err(db)?;
    progress.advance(1);
    Ok(Imported { stores: net.stores().len(), stock_rows: rows.len() })
}
