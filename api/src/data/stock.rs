//! `stock.csv`: the largest file (about 18 million rows for 180,000 stores), so it is parsed in
//! parallel chunks. Rows are `store_id,sku,on_hand,safety_stock`; ids are text (CSV quoting is
//! understood, and a line without quotes takes a fast path). Ids are never copied per row: each
//! chunk numbers the SKUs it meets against the file's bytes, and the chunks' numbers are merged
//! into one catalogue at the end.

use super::DataError;
use optimizer::model::{Sku, Store, StoreId};
use rayon::prelude::*;
use rustc_hash::FxHashMap;
use std::path::Path;

pub(super) const HEADER: &str = "store_id,sku,on_hand,safety_stock";
const FIELDS: [&str; 4] = ["store_id", "sku", "on_hand", "safety_stock"];
const CHUNK: usize = 4 << 20;

/// One parsed row: the store as a dense index into the stores of `stores.csv`, the SKU as a
/// position in the catalogue [`read_stock`] returns.
#[derive(Copy, Clone)]
pub(crate) struct RawStock {
    pub store: u32,
    pub sku: u32,
    pub on_hand: u32,
    pub safety_stock: u32,
}

/// A parsed row and its line in the file.
pub(crate) type Row = (RawStock, u64);

/// Stock units: a whole number in `0..=MAX_ON_HAND`.
fn parse_units(raw: &[u8]) -> Option<u32> {
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
    u32::try_from(v).ok().filter(|v| *v <= optimizer::ledger::MAX_ON_HAND)
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
/// its line in the file; returns them with the catalogue (every SKU named, sorted by text).
pub(super) fn read_stock(path: &Path, stores: &[Store]) -> Result<(Vec<Row>, Vec<Sku>), DataError> {
    parse_stock(path, super::stores::file_bytes(path)?, stores)
}

/// As [`read_stock`], from the file's bytes (`path` names it in errors).
pub(crate) fn parse_stock(
    path: &Path,
    bytes: Vec<u8>,
    stores: &[Store],
) -> Result<(Vec<Row>, Vec<Sku>), DataError> {
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
    let by_id: FxHashMap<&str, u32> =
        stores.iter().enumerate().map(|(i, s)| (s.id.as_str(), i as u32)).collect();
    let parts = chunks(body, CHUNK);
    let newlines: Vec<u64> = parts.par_iter().map(|c| memchr::memchr_iter(b'\n', c).count() as u64).collect();
    let mut first_line = Vec::with_capacity(parts.len());
    let mut line = 2u64;
    for n in &newlines {
        first_line.push(line);
        line += n;
    }
    let parsed: Vec<Result<Chunk, DataError>> = parts
        .par_iter()
        .zip(first_line)
        .map(|(chunk, first)| parse_chunk(path, chunk, first, &by_id))
        .collect();
    // The first bad row in file order, whichever thread came across one first.
    let mut parsed: Vec<Chunk> = parsed.into_iter().collect::<Result<_, _>>()?;
    // One catalogue, sorted by text; each chunk's SKU numbers become catalogue positions.
    let mut names: Vec<String> = parsed.iter().flat_map(|c| c.skus.iter().cloned()).collect();
    names.par_sort_unstable();
    names.dedup();
    let position: FxHashMap<&str, u32> =
        names.iter().enumerate().map(|(i, n)| (n.as_str(), i as u32)).collect();
    parsed.par_iter_mut().for_each(|c| {
        let global: Vec<u32> = c.skus.iter().map(|n| position[n.as_str()]).collect();
        for (r, _) in &mut c.rows {
            r.sku = global[r.sku as usize];
        }
    });
    let catalog: Vec<Sku> = names.iter().map(|n| Sku::parse(n).expect("checked while parsing")).collect();
    drop(position);
    let parsed: Vec<Vec<Row>> = parsed.into_iter().map(|c| c.rows).collect();
    drop(parts);
    drop(bytes);
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
        let store = &stores[w[1].0.store as usize].id;
        let sku = &catalog[w[1].0.sku as usize];
        let problem = format!("store {store} already has a row for sku {sku} on line {}", w[0].1);
        return Err(DataError::row(path, w[1].1, "sku", problem));
    }
    Ok((rows, catalog))
}

/// The rows of one chunk, their SKUs numbered in order of first appearance in it.
struct Chunk {
    rows: Vec<Row>,
    skus: Vec<String>,
}

/// Splits a line into its fields, at most five (a fifth means too many): the fast path splits at
/// commas without allocating; a line with a quote goes through a CSV parser into `owned`.
fn fields<'a>(raw: &'a [u8], owned: &'a mut Vec<Vec<u8>>) -> Result<([&'a [u8]; 5], usize), String> {
    let mut out: [&[u8]; 5] = [&[]; 5];
    let mut n = 0;
    if memchr::memchr(b'"', raw).is_none() {
        for f in raw.split(|&b| b == b',').take(5) {
            out[n] = f.trim_ascii();
            n += 1;
        }
        return Ok((out, n));
    }
    let mut rdr = csv::ReaderBuilder::new().has_headers(false).from_reader(raw);
    let mut record = csv::ByteRecord::new();
    rdr.read_byte_record(&mut record).map_err(|e| e.to_string())?;
    *owned = record.iter().take(5).map(|f| f.trim_ascii().to_vec()).collect();
    for f in owned.iter() {
        out[n] = f;
        n += 1;
    }
    Ok((out, n))
}

fn parse_chunk(
    path: &Path,
    chunk: &[u8],
    first_line: u64,
    by_id: &FxHashMap<&str, u32>,
) -> Result<Chunk, DataError> {
    let mut rows = Vec::with_capacity(chunk.len() / 20);
    let mut skus: Vec<String> = Vec::new();
    let mut sku_of: FxHashMap<Vec<u8>, u32> = FxHashMap::default();
    let mut owned = Vec::new();
    for (i, raw) in chunk.split(|&b| b == b'\n').enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.is_empty() {
            continue;
        }
        let line = first_line + i as u64;
        let (f, n) = fields(raw, &mut owned).map_err(|e| DataError::row(path, line, "row", e))?;
        if n < 4 {
            return Err(DataError::row(path, line, FIELDS[n], "missing value"));
        }
        if n > 4 {
            return Err(DataError::row(path, line, "row", "more than 4 fields"));
        }
        let text = |k: usize| {
            std::str::from_utf8(f[k]).map_err(|_| DataError::row(path, line, FIELDS[k], "not UTF-8"))
        };
        let store_text = text(0)?;
        let store = match by_id.get(store_text) {
            Some(s) => *s,
            None => {
                let e = StoreId::parse(store_text)
                    .err()
                    .map_or_else(|| format!("store {store_text} is not in stores.csv"), |e| e.to_string());
                return Err(DataError::row(path, line, "store_id", e));
            }
        };
        let sku = match sku_of.get(f[1]) {
            Some(k) => *k,
            None => {
                let t = text(1)?;
                Sku::parse(t).map_err(|e| DataError::row(path, line, "sku", e))?;
                let k = skus.len() as u32;
                skus.push(t.to_owned());
                sku_of.insert(f[1].to_vec(), k);
                k
            }
        };
        let units = |k: usize| {
            parse_units(f[k]).ok_or_else(|| {
                DataError::row(
                    path,
                    line,
                    FIELDS[k],
                    format!(
                        "`{}` is not a whole number in 0..={}",
                        String::from_utf8_lossy(f[k]),
                        optimizer::ledger::MAX_ON_HAND
                    ),
                )
            })
        };
        rows.push((RawStock { store, sku, on_hand: units(2)?, safety_stock: units(3)? }, line));
    }
    Ok(Chunk { rows, skus })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_whole_numbers_up_to_the_maximum() {
        assert_eq!(parse_units(b"0"), Some(0));
        assert_eq!(parse_units(b"2147483647"), Some(2_147_483_647));
        assert_eq!(parse_units(b"2147483648"), None);
        assert_eq!(parse_units(b"-1"), None);
        assert_eq!(parse_units(b""), None);
        assert_eq!(parse_units(b"1.5"), None);
    }

    #[test]
    fn quoted_fields_are_read_as_csv_and_plain_ones_fast() {
        let mut owned = Vec::new();
        let (f, n) = fields(br#""SH,0042","SKU ""red""",3,0"#, &mut owned).unwrap();
        assert_eq!(&f[..n], [&b"SH,0042"[..], b"SKU \"red\"", b"3", b"0"]);
        let mut owned = Vec::new();
        let (f, n) = fields(b"A-1, x ,3,0,9,9", &mut owned).unwrap();
        assert_eq!((f[1], n), (&b"x"[..], 5));
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
