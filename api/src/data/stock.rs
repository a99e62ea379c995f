//! `stock.csv`: the largest file (about 18 million rows for 180,000 stores), so it is parsed in
//! parallel chunks. The format is plain comma-separated integers without quoting.

use super::DataError;
use optimizer::model::{Sku, Store, StoreId};
use rayon::prelude::*;
use rustc_hash::{FxHashMap, FxHashSet};
use std::path::Path;

pub(super) const HEADER: &str = "store_id,sku,on_hand,safety_stock";
const FIELDS: [&str; 4] = ["store_id", "sku", "on_hand", "safety_stock"];
const CHUNK: usize = 4 << 20;

/// One parsed row: store as a dense index into the stores of `stores.csv`.
#[derive(Copy, Clone)]
pub(super) struct RawStock {
    pub store: u32,
    pub sku: Sku,
    pub on_hand: u32,
    pub safety_stock: u32,
}

/// A parsed row and its line in the file.
pub(super) type Row = (RawStock, u64);

fn parse_u32(raw: &[u8]) -> Option<u32> {
    if raw.is_empty() || raw.len() > 10 {
        return None;
    }
    let mut v: u64 = 0;
    for &b in raw {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u64::from(b - b'0');
    }
    u32::try_from(v).ok()
}

/// Splits `body` at line ends into chunks of roughly `size` bytes.
fn chunks(body: &[u8], size: usize) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < body.len() {
        let mut end = (start + size).min(body.len());
        if end < body.len() {
            end = memchr::memchr(b'\n', &body[end..]).map_or(body.len(), |i| end + i + 1);
        }
        out.push(&body[start..end]);
        start = end;
    }
    out
}

/// Reads stock rows, grouped by store (dense index) and ordered by SKU within a store, each with
/// its line in the file; returns them with the sorted list of distinct SKUs.
pub(super) fn read_stock(path: &Path, stores: &[Store]) -> Result<(Vec<Row>, Vec<Sku>), DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let header_end = memchr::memchr(b'\n', &bytes).unwrap_or(bytes.len());
    let header = String::from_utf8_lossy(&bytes[..header_end]);
    if header.trim() != HEADER {
        return Err(DataError::row(
            path,
            1,
            "header",
            format!("expected `{HEADER}`, found `{}`", header.trim()),
        ));
    }
    let body = &bytes[(header_end + 1).min(bytes.len())..];
    let by_id: FxHashMap<StoreId, u32> = stores.iter().enumerate().map(|(i, s)| (s.id, i as u32)).collect();
    let parts = chunks(body, CHUNK);
    let newlines: Vec<u64> = parts.par_iter().map(|c| memchr::memchr_iter(b'\n', c).count() as u64).collect();
    let mut first_line = Vec::with_capacity(parts.len());
    let mut line = 2u64;
    for n in &newlines {
        first_line.push(line);
        line += n;
    }
    let parsed: Vec<Result<Vec<Row>, DataError>> = parts
        .par_iter()
        .zip(first_line)
        .map(|(chunk, first)| parse_chunk(path, chunk, first, &by_id))
        .collect();
    // The first bad row in file order, whichever thread came across one first.
    let parsed: Vec<Vec<Row>> = parsed.into_iter().collect::<Result<_, _>>()?;
    drop(parts);
    drop(bytes);
    let skus = parsed
        .par_iter()
        .map(|part| part.iter().map(|(r, _)| r.sku).collect::<FxHashSet<Sku>>())
        .reduce(FxHashSet::default, |mut a, b| {
            a.extend(b);
            a
        });
    let mut skus: Vec<Sku> = skus.into_iter().collect();
    skus.sort_unstable();
    // Grouped by store (stores are numbered in map order, so a file's store-by-store rows come
    // with their stores shuffled), then each store's rows by SKU and line.
    let mut rows = optimizer::model::group_by_bucket(&parsed, stores.len(), |(r, _)| r.store as usize);
    drop(parsed);
    rows.par_chunk_by_mut(|a, b| a.0.store == b.0.store).for_each(|run| {
        if !run.is_sorted_by_key(|(r, line)| (r.sku, *line)) {
            run.sort_unstable_by_key(|(r, line)| (r.sku, *line));
        }
    });
    let repeated =
        rows.par_windows(2).find_first(|w| w[0].0.store == w[1].0.store && w[0].0.sku == w[1].0.sku);
    if let Some(w) = repeated {
        let store = stores[w[1].0.store as usize].id;
        let problem = format!("store {store} already has a row for sku {} on line {}", w[1].0.sku, w[0].1);
        return Err(DataError::row(path, w[1].1, "sku", problem));
    }
    Ok((rows, skus))
}

fn parse_chunk(
    path: &Path,
    chunk: &[u8],
    first_line: u64,
    by_id: &FxHashMap<StoreId, u32>,
) -> Result<Vec<Row>, DataError> {
    let mut out = Vec::with_capacity(chunk.len() / 20);
    for (i, raw) in chunk.split(|&b| b == b'\n').enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.is_empty() {
            continue;
        }
        let line = first_line + i as u64;
        let mut values = [0u32; 4];
        let mut fields = raw.split(|&b| b == b',');
        for (k, name) in FIELDS.iter().enumerate() {
            let f = fields.next().ok_or_else(|| DataError::row(path, line, *name, "missing value"))?;
            let f = f.trim_ascii();
            values[k] = parse_u32(f).ok_or_else(|| {
                DataError::row(
                    path,
                    line,
                    *name,
                    format!("`{}` is not a whole number in 0..=4294967295", String::from_utf8_lossy(f)),
                )
            })?;
        }
        if fields.next().is_some() {
            return Err(DataError::row(path, line, "row", "more than 4 fields"));
        }
        let store = *by_id.get(&StoreId(values[0])).ok_or_else(|| {
            DataError::row(path, line, "store_id", format!("store {} is not in stores.csv", values[0]))
        })?;
        out.push((
            RawStock { store, sku: Sku(values[1]), on_hand: values[2], safety_stock: values[3] },
            line,
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_u32_accepts_digits_only() {
        assert_eq!(parse_u32(b"0"), Some(0));
        assert_eq!(parse_u32(b"4294967295"), Some(u32::MAX));
        assert_eq!(parse_u32(b"4294967296"), None);
        assert_eq!(parse_u32(b"-1"), None);
        assert_eq!(parse_u32(b""), None);
        assert_eq!(parse_u32(b"1.5"), None);
    }

    #[test]
    fn chunks_end_on_line_boundaries_and_cover_everything() {
        let body: Vec<u8> = (0..3_000).flat_map(|i| format!("{i},1,2,3\n").into_bytes()).collect();
        let parts = chunks(&body, 1000);
        assert!(parts.len() > 1);
        assert!(parts.iter().all(|p| p.ends_with(b"\n")));
        assert_eq!(parts.iter().map(|p| p.len()).sum::<usize>(), body.len());
    }
}
