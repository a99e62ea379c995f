//! Writing a generated dataset directory.

use super::order_json::OrderJson;
use super::stock::HEADER;
use super::stores::{DC_COLUMNS, STORE_COLUMNS};
use super::DataError;
use optimizer::generate::Dataset;
use optimizer::model::City;
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

/// Writes `stores.csv`, `stock.csv`, `dcs.csv` and `orders.jsonl` into `dir` (created if needed).
pub fn write_dataset(
    dir: &Path,
    data: &Dataset,
    cities: &[City],
    progress: &dyn Progress,
) -> Result<(), DataError> {
    std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;

    let path = dir.join("stores.csv");
    let mut w = create(&path)?;
    writeln!(w, "{}", STORE_COLUMNS.join(",")).map_err(io(&path))?;
    for s in &data.stores {
        let (opens, closes) = if s.hours.opens_min == s.hours.closes_min {
            (String::new(), String::new())
        } else {
            (hhmm(s.hours.opens_min), hhmm(s.hours.closes_min))
        };
        writeln!(
            w,
            "{},{},{},{:.6},{:.6},{},{},{},{},{}",
            s.id,
            s.brand,
            cities[usize::from(s.city.0)].name,
            s.location.lat(),
            s.location.lon(),
            s.capabilities.pickup,
            s.capabilities.ship,
            s.capacity_per_day,
            opens,
            closes
        )
        .map_err(io(&path))?;
    }
    w.flush().map_err(io(&path))?;

    let path = dir.join("dcs.csv");
    let mut w = create(&path)?;
    writeln!(w, "{}", DC_COLUMNS.join(",")).map_err(io(&path))?;
    for d in &data.dcs {
        let city = &cities[usize::from(d.city.0)].name;
        writeln!(w, "{},{},{:.6},{:.6}", d.id, city, d.location.lat(), d.location.lon())
            .map_err(io(&path))?;
    }
    w.flush().map_err(io(&path))?;

    progress.stage("stock.csv", data.stock.len() as u64);
    let path = dir.join("stock.csv");
    let mut w = create(&path)?;
    writeln!(w, "{HEADER}").map_err(io(&path))?;
    for (i, r) in data.stock.iter().enumerate() {
        writeln!(w, "{},{},{},{}", r.store, r.sku, r.on_hand, r.safety_stock).map_err(io(&path))?;
        if i % 100_000 == 99_999 {
            progress.advance(100_000);
        }
    }
    w.flush().map_err(io(&path))?;

    progress.stage("orders.jsonl", data.orders.len() as u64);
    let path = dir.join("orders.jsonl");
    let mut w = create(&path)?;
    for o in &data.orders {
        serde_json::to_writer(&mut w, &OrderJson::from_order(o)).map_err(|e| DataError::file(&path, e))?;
        w.write_all(b"\n").map_err(io(&path))?;
    }
    w.flush().map_err(io(&path))?;
    Ok(())
}
