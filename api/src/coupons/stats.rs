//! Attribution: what a campaign's coupons did, credited to the store (and so the city) whose
//! poster they were captured from, as JSON, CSV or a GeoJSON layer for the maps.

use super::campaign::Campaign;
use super::discount::Cents;
use optimizer::model::Network;
use rustc_hash::FxHashMap;
use serde::Serialize;

/// Coupons of one campaign captured at one store's posters and redeemed since (live: held or
/// shipped orders), by store number.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreTally {
    pub captured: u64,
    pub redeemed: u64,
    pub discount_cents: Cents,
}

/// What the stats are grouped by.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum By {
    Store,
    City,
}

/// One row of the stats: a store or a city.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row {
    /// The store's id, or the city's name.
    pub key: String,
    /// The store's city (the city itself when grouped by city).
    pub city: String,
    /// The store's position, or the city's.
    pub lon: f64,
    pub lat: f64,
    pub captured: u64,
    pub redeemed: u64,
    pub discount_cents: Cents,
    /// Redeemed per captured, in percent (0 when nothing was captured).
    pub conversion_pct: f64,
}

/// The stats of a campaign.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Stats {
    pub campaign_id: u32,
    pub captured: u64,
    pub redeemed: u64,
    pub discount_cents: Cents,
    pub conversion_pct: f64,
    /// `store` or `city`.
    pub by: &'static str,
    /// Stores (or cities) with a capture or redemption, most redeemed first.
    pub rows: Vec<Row>,
}

fn pct(redeemed: u64, captured: u64) -> f64 {
    if captured == 0 {
        0.0
    } else {
        (redeemed as f64 * 1_000.0 / captured as f64).round() / 10.0
    }
}

/// The stats of `c` from its per-store tallies.
pub fn stats(c: &Campaign, net: &Network, tally: &FxHashMap<u32, StoreTally>, by: By) -> Stats {
    let mut rows: FxHashMap<String, Row> = FxHashMap::default();
    for (&number, t) in tally {
        let Some(id) = c.stores.get(number as usize) else { continue };
        let Some(idx) = net.store_idx(id) else { continue };
        let store = net.store(idx);
        let city = &net.cities()[store.city.0 as usize];
        let (key, at) = match by {
            By::Store => (id.to_string(), store.location),
            By::City => (city.name.clone(), city.location),
        };
        let row = rows.entry(key.clone()).or_insert_with(|| Row {
            key,
            city: city.name.clone(),
            lon: at.lon(),
            lat: at.lat(),
            captured: 0,
            redeemed: 0,
            discount_cents: 0,
            conversion_pct: 0.0,
        });
        row.captured += t.captured;
        row.redeemed += t.redeemed;
        row.discount_cents += t.discount_cents;
    }
    let mut rows: Vec<Row> = rows.into_values().collect();
    for r in &mut rows {
        r.conversion_pct = pct(r.redeemed, r.captured);
    }
    rows.sort_by(|a, b| {
        b.redeemed.cmp(&a.redeemed).then(b.captured.cmp(&a.captured)).then(a.key.cmp(&b.key))
    });
    let (captured, redeemed, discount_cents) =
        tally.values().fold((0, 0, 0), |(c, r, d), t| (c + t.captured, r + t.redeemed, d + t.discount_cents));
    Stats {
        campaign_id: c.id,
        captured,
        redeemed,
        discount_cents,
        conversion_pct: pct(redeemed, captured),
        by: match by {
            By::Store => "store",
            By::City => "city",
        },
        rows,
    }
}

/// The rows as CSV, with a header.
pub fn csv(s: &Stats) -> String {
    let mut out = format!("{},city,lon,lat,captured,redeemed,discount_cents,conversion_pct\n", s.by);
    for r in &s.rows {
        let quote = |t: &str| {
            if t.contains([',', '"', '\n']) {
                format!("\"{}\"", t.replace('"', "\"\""))
            } else {
                t.to_string()
            }
        };
        out.push_str(&format!(
            "{},{},{:.6},{:.6},{},{},{},{:.1}\n",
            quote(&r.key),
            quote(&r.city),
            r.lon,
            r.lat,
            r.captured,
            r.redeemed,
            r.discount_cents,
            r.conversion_pct
        ));
    }
    out
}

/// The rows as a GeoJSON FeatureCollection of points, a layer for the maps.
pub fn geojson(s: &Stats) -> serde_json::Value {
    let features: Vec<serde_json::Value> = s
        .rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [r.lon, r.lat]},
                "properties": {
                    "layer": "coupon_redemptions",
                    "campaign_id": s.campaign_id,
                    s.by: r.key,
                    "city": r.city,
                    "captured": r.captured,
                    "redeemed": r.redeemed,
                    "discount_cents": r.discount_cents,
                    "conversion_pct": r.conversion_pct,
                },
            })
        })
        .collect();
    serde_json::json!({"type": "FeatureCollection", "features": features})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversion_is_a_percentage_with_one_decimal() {
        assert_eq!(pct(1, 3), 33.3);
        assert_eq!(pct(0, 0), 0.0);
        assert_eq!(pct(5, 5), 100.0);
    }
}
