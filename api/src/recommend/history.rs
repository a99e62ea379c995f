//! `history.csv` (customer_id, sku, timestamp, channel, store_id) and `catalogue.csv` (sku, name,
//! category, brand, unit_price_cents): a dataset's purchase history and product catalogue, both
//! optional.

use super::model::{Row, NO_STORE};
use crate::data::DataError;
use rustc_hash::FxHashMap;
use std::path::Path;

/// The history file's name inside a dataset directory.
pub const FILE: &str = "history.csv";
/// The catalogue file's name inside a dataset directory.
pub const CATALOGUE: &str = "catalogue.csv";

const HEADER: [&str; 5] = ["customer_id", "sku", "timestamp", "channel", "store_id"];
const CATALOGUE_HEADER: [&str; 5] = ["sku", "name", "category", "brand", "unit_price_cents"];

/// Text ids to dense numbers, in order of first appearance.
#[derive(Default, Debug, Clone)]
pub struct Names {
    pub names: Vec<Box<str>>,
    index: FxHashMap<Box<str>, u32>,
}

impl Names {
    pub fn intern(&mut self, name: &str) -> u32 {
        if let Some(&k) = self.index.get(name) {
            return k;
        }
        let k = self.names.len() as u32;
        self.names.push(name.into());
        self.index.insert(name.into(), k);
        k
    }

    pub fn get(&self, name: &str) -> Option<u32> {
        self.index.get(name).copied()
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// A purchase history read from a file: rows over dense customers; items and stores as the
/// caller's `item` and `store` functions number them.
pub struct History {
    pub rows: Vec<Row>,
    pub customers: Names,
    /// Rows whose SKU or store the caller did not know (left out).
    pub skipped: u64,
}

/// Reads a history file. `item(sku)` numbers a SKU (`None`: leave the row out), `store(id)`
/// numbers a store (`None`: the row is kept as an online purchase).
pub fn read(
    path: &Path,
    mut item: impl FnMut(&str) -> Option<u32>,
    mut store: impl FnMut(&str) -> Option<u32>,
) -> Result<History, DataError> {
    let mut r = csv::ReaderBuilder::new().from_path(path).map_err(|e| DataError::file(path, e))?;
    let header = r.byte_headers().map_err(|e| DataError::file(path, e))?.clone();
    if header.iter().map(|h| String::from_utf8_lossy(h).into_owned()).collect::<Vec<_>>() != HEADER {
        return Err(DataError::row(path, 1, "header", format!("must be `{}`", HEADER.join(","))));
    }
    let mut out = History { rows: Vec::new(), customers: Names::default(), skipped: 0 };
    let mut record = csv::ByteRecord::new();
    let mut line = 1u64;
    let text = |b: &[u8], line: u64, field: &str| -> Result<String, DataError> {
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| DataError::row(path, line, field, "is not UTF-8"))
    };
    while r.read_byte_record(&mut record).map_err(|e| DataError::row(path, line + 1, "row", e))? {
        line += 1;
        if record.len() != 5 {
            return Err(DataError::row(
                path,
                line,
                "row",
                "must have 5 fields: customer_id,sku,timestamp,channel,store_id",
            ));
        }
        let customer = std::str::from_utf8(&record[0])
            .map_err(|_| DataError::row(path, line, "customer_id", "is not UTF-8"))?;
        if customer.is_empty() || customer.len() > 64 || !customer.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(DataError::row(
                path,
                line,
                "customer_id",
                "must be 1 to 64 printable ASCII characters, no spaces",
            ));
        }
        let sku =
            std::str::from_utf8(&record[1]).map_err(|_| DataError::row(path, line, "sku", "is not UTF-8"))?;
        if sku.is_empty() {
            return Err(DataError::row(path, line, "sku", "is empty"));
        }
        let at = parse_timestamp(&record[2]).ok_or_else(|| {
            DataError::row(
                path,
                line,
                "timestamp",
                format!(
                    "`{}` is neither RFC 3339 nor seconds since 1970",
                    String::from_utf8_lossy(&record[2])
                ),
            )
        })?;
        let channel = &record[3];
        let online = match channel {
            b"online" => true,
            b"store" => false,
            other => {
                return Err(DataError::row(
                    path,
                    line,
                    "channel",
                    format!("`{}` is neither `online` nor `store`", String::from_utf8_lossy(other)),
                ))
            }
        };
        let store_id = text(&record[4], line, "store_id")?;
        if !online && store_id.is_empty() {
            return Err(DataError::row(path, line, "store_id", "is required when channel is `store`"));
        }
        let Some(item) = item(sku) else {
            out.skipped += 1;
            continue;
        };
        let store = if store_id.is_empty() { NO_STORE } else { store(&store_id).unwrap_or(NO_STORE) };
        let customer = out.customers.intern(customer);
        out.rows.push(Row { customer, at, item, store });
    }
    Ok(out)
}

fn parse_timestamp(b: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(b).ok()?;
    if let Ok(n) = s.parse::<i64>() {
        return (0..=253_402_300_799).contains(&n).then_some(n);
    }
    crate::data::order_json::parse_time(s).ok().map(|t| t.0)
}

/// One written purchase.
pub struct Written<'a> {
    pub customer: &'a str,
    pub sku: &'a str,
    pub at: i64,
    pub store: Option<&'a str>,
}

/// Writes a history file.
pub fn write<'a>(path: &Path, rows: impl Iterator<Item = Written<'a>>) -> Result<(), DataError> {
    let file = std::fs::File::create(path).map_err(|e| DataError::io(path, e))?;
    let mut w = csv::Writer::from_writer(std::io::BufWriter::with_capacity(1 << 20, file));
    w.write_record(HEADER).map_err(|e| DataError::file(path, e))?;
    for r in rows {
        let at = optimizer::model::Timestamp(r.at).to_rfc3339();
        let channel = if r.store.is_some() { "store" } else { "online" };
        w.write_record([r.customer, r.sku, &at, channel, r.store.unwrap_or("")])
            .map_err(|e| DataError::file(path, e))?;
    }
    w.flush().map_err(|e| DataError::io(path, e))
}

/// One product of the catalogue.
#[derive(Clone, Debug, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Product {
    pub name: String,
    pub category: String,
    pub brand: String,
    pub unit_price_cents: u64,
}

/// Reads `dir/catalogue.csv` by SKU; empty when the dataset has none.
pub fn read_catalogue(dir: &Path) -> Result<FxHashMap<String, Product>, DataError> {
    let path = dir.join(CATALOGUE);
    let mut out = FxHashMap::default();
    if !path.exists() {
        return Ok(out);
    }
    let mut r = csv::ReaderBuilder::new().from_path(&path).map_err(|e| DataError::file(&path, e))?;
    let header = r.headers().map_err(|e| DataError::file(&path, e))?.clone();
    if header.iter().collect::<Vec<_>>() != CATALOGUE_HEADER {
        return Err(DataError::row(&path, 1, "header", format!("must be `{}`", CATALOGUE_HEADER.join(","))));
    }
    for (i, rec) in r.records().enumerate() {
        let line = i as u64 + 2;
        let rec = rec.map_err(|e| DataError::row(&path, line, "row", e))?;
        if rec.len() != 5 {
            return Err(DataError::row(
                &path,
                line,
                "row",
                "must have 5 fields: sku,name,category,brand,unit_price_cents",
            ));
        }
        let price =
            rec[4].parse().ok().filter(|p| *p <= crate::data::order_json::MAX_UNIT_PRICE_CENTS).ok_or_else(
                || {
                    DataError::row(
                        &path,
                        line,
                        "unit_price_cents",
                        format!("`{}` is not a whole number of cents", &rec[4]),
                    )
                },
            )?;
        let p = Product {
            name: rec[1].into(),
            category: rec[2].into(),
            brand: rec[3].into(),
            unit_price_cents: price,
        };
        if out.insert(rec[0].to_owned(), p).is_some() {
            return Err(DataError::row(&path, line, "sku", format!("{} is listed twice", &rec[0])));
        }
    }
    Ok(out)
}

/// Writes `dir/catalogue.csv`.
pub fn write_catalogue<'a>(
    dir: &Path,
    rows: impl Iterator<Item = (&'a str, Product)>,
) -> Result<(), DataError> {
    let path = dir.join(CATALOGUE);
    let mut w = csv::Writer::from_path(&path).map_err(|e| DataError::file(&path, e))?;
    w.write_record(CATALOGUE_HEADER).map_err(|e| DataError::file(&path, e))?;
    for (sku, p) in rows {
        w.write_record([sku, &p.name, &p.category, &p.brand, &p.unit_price_cents.to_string()])
            .map_err(|e| DataError::file(&path, e))?;
    }
    w.flush().map_err(|e| DataError::io(&path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(FILE);
        std::fs::write(&p, text).unwrap();
        (dir, p)
    }

    #[test]
    fn reads_rows_and_names_the_bad_field() {
        let (_d, p) = file(
            "customer_id,sku,timestamp,channel,store_id\n\
             c1,7,2026-10-01T10:00:00+08:00,store,S1\nc2,8,1790000000,online,\nc1,99,1790000000,online,\n",
        );
        let h = read(&p, |s| s.parse().ok().filter(|&n| n < 50), |s| (s == "S1").then_some(0)).unwrap();
        assert_eq!(h.rows.len(), 2);
        assert_eq!(h.skipped, 1);
        assert_eq!(h.rows[0], Row { customer: 0, at: 1_790_820_000, item: 7, store: 0 });
        assert_eq!(h.rows[1].store, NO_STORE);
        for (bad, field) in [
            ("c1,7,yesterday,online,", "timestamp"),
            ("c1,7,1790000000,shop,", "channel"),
            ("c1,7,1790000000,store,", "store_id"),
            ("c 1,7,1790000000,online,", "customer_id"),
            ("c1,,1790000000,online,", "sku"),
            ("c1,7,1790000000", "row"),
        ] {
            let (_d, p) = file(&format!("customer_id,sku,timestamp,channel,store_id\n{bad}\n"));
            let e = read(&p, |_| Some(1), |_| Some(0)).err().expect(bad).to_string();
            assert!(e.contains(&format!("field `{field}`")), "{bad}: {e}");
            assert!(e.contains(":2:"), "{e}");
        }
    }

    #[test]
    fn written_history_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(FILE);
        let rows = [("c1", "5", 1_790_000_000, Some("S")), ("c2", "6", 1_790_000_100, None)];
        write(&p, rows.iter().map(|&(customer, sku, at, store)| Written { customer, sku, at, store }))
            .unwrap();
        let h = read(&p, |s| s.parse().ok(), |_| Some(3)).unwrap();
        assert_eq!(
            h.rows,
            vec![
                Row { customer: 0, at: 1_790_000_000, item: 5, store: 3 },
                Row { customer: 1, at: 1_790_000_100, item: 6, store: NO_STORE }
            ]
        );
        assert_eq!(&*h.customers.names[1], "c2");
    }
}
