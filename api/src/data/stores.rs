//! `stores.csv` and `dcs.csv`.

use super::DataError;
use optimizer::model::{BrandId, Capabilities, City, CityId, Dc, DcId, LonLat, OpeningHours, Store, StoreId};
use rustc_hash::FxHashMap;
use std::path::Path;

pub(super) const STORE_COLUMNS: [&str; 10] =
    ["store_id", "brand", "city", "lat", "lon", "pickup", "ship", "capacity_per_day", "opens", "closes"];
pub(super) const DC_COLUMNS: [&str; 4] = ["dc_id", "city", "lat", "lon"];

/// One CSV record with its columns looked up by header name.
pub(super) struct Row<'a> {
    record: &'a csv::StringRecord,
    pos: &'a FxHashMap<&'a str, usize>,
}

impl<'a> Row<'a> {
    fn get(&self, name: &str) -> Option<&'a str> {
        self.pos.get(name).and_then(|&i| self.record.get(i))
    }
}

/// Reads a CSV file whose header must have the `required` columns (`optional` ones are used
/// when present); calls `row` with each record and its line number.
pub(super) fn read_csv<T>(
    path: &Path,
    required: &[&'static str],
    optional: &[&'static str],
    mut row: impl FnMut(&Row<'_>, u64) -> Result<T, DataError>,
) -> Result<Vec<T>, DataError> {
    let mut rdr = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(|e| DataError::file(path, e))?;
    let headers = rdr.headers().map_err(|e| DataError::file(path, e))?.clone();
    let mut pos: FxHashMap<&'static str, usize> = FxHashMap::default();
    for name in required.iter().chain(optional) {
        if let Some(i) = headers.iter().position(|h| h == *name) {
            pos.insert(name, i);
        } else if required.contains(name) {
            return Err(DataError::row(path, 1, *name, "missing column in the header"));
        }
    }
    let mut out = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        match rdr.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                return Err(DataError::row(path, line, "row", e));
            }
        }
        let line = record.position().map_or(0, |p| p.line());
        out.push(row(&Row { record: &record, pos: &pos }, line)?);
    }
    Ok(out)
}

pub(super) fn parse<T: std::str::FromStr>(
    path: &Path,
    line: u64,
    field: &str,
    raw: Option<&str>,
) -> Result<T, DataError>
where
    T::Err: std::fmt::Display,
{
    let raw = raw.ok_or_else(|| DataError::row(path, line, field, "missing value"))?;
    raw.parse::<T>().map_err(|e| DataError::row(path, line, field, format!("`{raw}`: {e}")))
}

fn parse_bool(path: &Path, line: u64, field: &str, raw: Option<&str>) -> Result<bool, DataError> {
    match raw {
        Some("true" | "1") => Ok(true),
        Some("false" | "0") => Ok(false),
        other => {
            Err(DataError::row(path, line, field, format!("`{}` is not true/false", other.unwrap_or(""))))
        }
    }
}

fn parse_hhmm(path: &Path, line: u64, field: &str, raw: Option<&str>) -> Result<Option<u16>, DataError> {
    let Some(raw) = raw.filter(|r| !r.is_empty()) else { return Ok(None) };
    let bad = || DataError::row(path, line, field, format!("`{raw}` is not a time HH:MM"));
    let (h, m) = raw.split_once(':').ok_or_else(bad)?;
    let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h >= 24 || m >= 60 {
        return Err(bad());
    }
    Ok(Some(h * 60 + m))
}

pub(super) fn location(
    path: &Path,
    line: u64,
    lat: Option<&str>,
    lon: Option<&str>,
) -> Result<LonLat, DataError> {
    let lat: f64 = parse(path, line, "lat", lat)?;
    let lon: f64 = parse(path, line, "lon", lon)?;
    LonLat::new(lon, lat).map_err(|e| {
        let field = if matches!(e, optimizer::model::GeoError::Lat(_)) { "lat" } else { "lon" };
        DataError::row(path, line, field, e)
    })
}

fn city_index(cities: &[City]) -> FxHashMap<&str, CityId> {
    cities.iter().enumerate().map(|(i, c)| (c.name.as_str(), CityId(i as u16))).collect()
}

pub(super) fn read_stores(path: &Path, cities: &[City]) -> Result<Vec<Store>, DataError> {
    let by_name = city_index(cities);
    let mut seen = FxHashMap::default();
    read_csv(path, &STORE_COLUMNS[..8], &STORE_COLUMNS[8..], |r, line| {
        let id = StoreId(parse(path, line, "store_id", r.get("store_id"))?);
        if let Some(first) = seen.insert(id, line) {
            return Err(DataError::row(
                path,
                line,
                "store_id",
                format!("{id} already defined on line {first}"),
            ));
        }
        let city_name = r.get("city").unwrap_or("");
        let city = *by_name.get(city_name).ok_or_else(|| {
            DataError::row(path, line, "city", format!("`{city_name}` is not in cities_cn.csv"))
        })?;
        let opens = parse_hhmm(path, line, "opens", r.get("opens"))?;
        let closes = parse_hhmm(path, line, "closes", r.get("closes"))?;
        let hours = match (opens, closes) {
            (Some(o), Some(c)) => OpeningHours::new(o, c).expect("validated above"),
            (None, None) => OpeningHours::ALWAYS,
            _ => return Err(DataError::row(path, line, "closes", "opens and closes must be given together")),
        };
        let capacity_per_day = parse(path, line, "capacity_per_day", r.get("capacity_per_day"))?;
        let capabilities = Capabilities {
            pickup: parse_bool(path, line, "pickup", r.get("pickup"))?,
            ship: parse_bool(path, line, "ship", r.get("ship"))?,
        };
        Ok(Store {
            id,
            brand: BrandId(parse(path, line, "brand", r.get("brand"))?),
            city,
            location: location(path, line, r.get("lat"), r.get("lon"))?,
            capabilities,
            capacity_per_day,
            hours,
        })
    })
}

pub(super) fn read_dcs(path: &Path, cities: &[City]) -> Result<Vec<Dc>, DataError> {
    let by_name = city_index(cities);
    let mut seen = FxHashMap::default();
    read_csv(path, &DC_COLUMNS, &[], |r, line| {
        let id = DcId(parse(path, line, "dc_id", r.get("dc_id"))?);
        if let Some(first) = seen.insert(id, line) {
            return Err(DataError::row(path, line, "dc_id", format!("{id} already defined on line {first}")));
        }
        let city_name = r.get("city").unwrap_or("");
        let city = *by_name.get(city_name).ok_or_else(|| {
            DataError::row(path, line, "city", format!("`{city_name}` is not in cities_cn.csv"))
        })?;
        Ok(Dc { id, city, location: location(path, line, r.get("lat"), r.get("lon"))? })
    })
}
