//! Writing a generated dataset directory.

use super::order_json::OrderJson;
use super::stock::HEADER;
use super::stores::{DC_COLUMNS, STORE_COLUMNS};
use super::DataError;
use optimizer::generate::Dataset;
use optimizer::model::{City, TimeZone};
use optimizer::progress::Progress;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

fn create(path: &Path) -> Result<BufWriter<File>, DataError> {
    File::create(path).map(|f| BufWriter::with_capacity(1 << 20, f)).map_err(|e| DataError::io(path, e))
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> DataError + '_ {
    move |e| DataError::io(path, e)
}

fn hhmm(min: u16) -> String {
    format!("{:02}:{:02}", min / 60, min % 60)
}

fn csv_error(path: &Path) -> impl Fn(csv::Error) -> DataError + '_ {
    move |e| DataError::file(path, e)
}

/// Writes `stores.csv`, `stock.csv`, `dcs.csv` and `orders.jsonl` into `dir` (created if needed),
/// quoting ids as CSV needs. `cities` are the ones the dataset's stores and DCs name.
pub fn write_dataset(
    dir: &Path,
    data: &Dataset,
    cities: &[City],
    zone: &TimeZone,
    progress: &dyn Progress,
) -> Result<(), DataError> {
    std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;

    let path = dir.join("stores.csv");
    let mut w = csv::Writer::from_writer(create(&path)?);
    w.write_record(STORE_COLUMNS).map_err(csv_error(&path))?;
    for s in &data.stores {
        let (opens, closes) = if s.hours.opens_min == s.hours.closes_min {
            (String::new(), String::new())
        } else {
            (hhmm(s.hours.opens_min), hhmm(s.hours.closes_min))
        };
        w.write_record([
            s.id.as_str(),
            s.brand.as_str(),
            &cities[usize::from(s.city.0)].name,
            &format!("{:.6}", s.location.lat()),
            &format!("{:.6}", s.location.lon()),
            if s.capabilities.pickup { "true" } else { "false" },
            if s.capabilities.ship { "true" } else { "false" },
            &s.capacity_per_day.to_string(),
            &opens,
            &closes,
        ])
        .map_err(csv_error(&path))?;
    }
    w.flush().map_err(io(&path))?;

    let path = dir.join("dcs.csv");
    let mut w = csv::Writer::from_writer(create(&path)?);
    w.write_record(DC_COLUMNS).map_err(csv_error(&path))?;
    for d in &data.dcs {
        let city = &cities[usize::from(d.city.0)].name;
        w.write_record([
            d.id.as_str(),
            city,
            &format!("{:.6}", d.location.lat()),
            &format!("{:.6}", d.location.lon()),
        ])
        .map_err(csv_error(&path))?;
    }
    w.flush().map_err(io(&path))?;

    progress.stage("stock.csv", data.stock.len() as u64);
    let path = dir.join("stock.csv");
    let mut w = csv::Writer::from_writer(create(&path)?);
    w.write_record(HEADER.split(',')).map_err(csv_error(&path))?;
    let skus: rustc_hash::FxHashMap<u32, optimizer::model::Sku> = {
        let mut n: Vec<u32> = data.stock.iter().map(|r| r.sku).collect();
        n.sort_unstable();
        n.dedup();
        n.into_iter().map(|k| (k, data.sku(k))).collect()
    };
    for (i, r) in data.stock.iter().enumerate() {
        let store = &data.stores[r.store as usize].id;
        let mut on_hand = itoa::Buffer::new();
        let mut safety = itoa::Buffer::new();
        w.write_record([
            store.as_str().as_bytes(),
            skus[&r.sku].as_str().as_bytes(),
            on_hand.format(r.on_hand).as_bytes(),
            safety.format(r.safety_stock).as_bytes(),
        ])
        .map_err(csv_error(&path))?;
        if i % 100_000 == 99_999 {
            progress.advance(100_000);
        }
    }
    w.flush().map_err(io(&path))?;

    progress.stage("orders.jsonl", data.orders.len() as u64);
    let path = dir.join("orders.jsonl");
    let mut w = create(&path)?;
    for o in &data.orders {
        serde_json::to_writer(&mut w, &OrderJson::from_order_in(o, zone))
            .map_err(|e| DataError::file(&path, e))?;
        w.write_all(b"\n").map_err(io(&path))?;
    }
    w.flush().map_err(io(&path))?;
    Ok(())
}
