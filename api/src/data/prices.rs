//! `prices.csv`: a dataset's catalogue of unit prices (`sku,unit_price_cents`), optional. An order
//! that redeems coupons needs its value: a line without `unit_price_cents` takes its SKU's price
//! from here.

use super::order_json::MAX_UNIT_PRICE_CENTS;
use super::DataError;
use optimizer::model::Sku;
use rustc_hash::FxHashMap;
use std::path::Path;

/// The file's name inside a dataset directory.
pub const FILE: &str = "prices.csv";

const HEADER: [&str; 2] = ["sku", "unit_price_cents"];

/// Unit prices in cents by SKU.
pub type Prices = FxHashMap<Sku, u64>;

/// Reads `dir/prices.csv`; an empty catalogue when the dataset has none.
pub fn read(dir: &Path) -> Result<Prices, DataError> {
    let path = dir.join(FILE);
    if !path.exists() {
        return Ok(Prices::default());
    }
    let mut r = csv::ReaderBuilder::new().from_path(&path).map_err(|e| DataError::file(&path, e))?;
    let header = r.headers().map_err(|e| DataError::file(&path, e))?.clone();
    if header.iter().collect::<Vec<_>>() != HEADER {
        return Err(DataError::row(&path, 1, "header", format!("must be `{}`", HEADER.join(","))));
    }
    let mut prices = Prices::default();
    for (i, record) in r.records().enumerate() {
        let line = i as u64 + 2;
        let record = record.map_err(|e| DataError::row(&path, line, "row", e))?;
        if record.len() != 2 {
            return Err(DataError::row(&path, line, "row", "must have 2 fields: sku,unit_price_cents"));
        }
        let sku = Sku::parse(&record[0]).map_err(|e| DataError::row(&path, line, "sku", e))?;
        let price: u64 = record[1].parse().ok().filter(|p| *p <= MAX_UNIT_PRICE_CENTS).ok_or_else(|| {
            DataError::row(
                &path,
                line,
                "unit_price_cents",
                format!("`{}` is not a whole number of cents from 0 to {MAX_UNIT_PRICE_CENTS}", &record[1]),
            )
        })?;
        if prices.insert(sku.clone(), price).is_some() {
            return Err(DataError::row(&path, line, "sku", format!("{sku} is priced twice")));
        }
    }
    Ok(prices)
}

/// A generated SKU's price: from 9.90 to 999.90 (always ending in .90), a function of the seed
/// and the SKU only, so that it draws nothing from the generator's random stream.
pub fn generated_price(seed: u64, sku: &Sku) -> u64 {
    use std::hash::BuildHasher;
    let h = rustc_hash::FxBuildHasher.hash_one((seed, sku.as_str()));
    // splitmix64's finaliser spreads FxHash's low bits.
    let mut z = h.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    990 + (z % 100) * 1_000
}

/// Writes `dir/prices.csv` for `skus`.
pub fn write(dir: &Path, skus: impl Iterator<Item = (Sku, u64)>) -> Result<(), DataError> {
    let path = dir.join(FILE);
    let mut w = csv::Writer::from_path(&path).map_err(|e| DataError::file(&path, e))?;
    w.write_record(HEADER).map_err(|e| DataError::file(&path, e))?;
    for (sku, price) in skus {
        w.write_record([sku.as_str(), &price.to_string()]).map_err(|e| DataError::file(&path, e))?;
    }
    w.flush().map_err(|e| DataError::io(&path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_catalogue_reads_back_and_bad_rows_name_line_and_field() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(dir.path()).unwrap().is_empty(), "no file: no prices");
        let skus = (1..=3).map(|k| {
            let s = Sku::numbered(k);
            let p = generated_price(11, &s);
            (s, p)
        });
        write(dir.path(), skus.clone()).unwrap();
        let prices = read(dir.path()).unwrap();
        for (s, p) in skus {
            assert_eq!(prices.get(&s), Some(&p));
            assert!((990..=99_990).contains(&p) && p % 1_000 == 990, "{p}");
        }
        for (text, want) in [
            ("sku,price\n1,5\n", "prices.csv:1: field `header`"),
            ("sku,unit_price_cents\n1,-5\n", "prices.csv:2: field `unit_price_cents`"),
            ("sku,unit_price_cents\n1,5\n1,6\n", "prices.csv:3: field `sku`"),
        ] {
            std::fs::write(dir.path().join(FILE), text).unwrap();
            let e = read(dir.path()).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
    }
}
