//! Layers as GeoJSON FeatureCollections, one folder per view, and a kepler.gl (`v1`) map
//! configuration that loads them.
//!
//! Coordinates are (lon, lat) in degrees with six decimals (about 0.1 m). Files are written by
//! hand rather than through a JSON tree: 180,000 stores and hundreds of thousands of flows are
//! written in a second or two.

use super::{Comparison, MapData, Site, View};
use anyhow::Context;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A JSON string literal.
fn js(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialise")
}

/// Writes a FeatureCollection with `features` (each a complete Feature object) to `path`.
fn collection(path: &Path, features: impl Iterator<Item = String>) -> anyhow::Result<()> {
    let file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    w.write_all(b"{\"type\":\"FeatureCollection\",\"features\":[\n")?;
    for (i, f) in features.enumerate() {
        if i > 0 {
            w.write_all(b",\n")?;
        }
        w.write_all(f.as_bytes())?;
    }
    w.write_all(b"\n]}\n")?;
    w.flush().with_context(|| format!("writing {}", path.display()))
}

fn point(lon: f64, lat: f64, props: &str) -> String {
    format!("{{\"type\":\"Feature\",\"geometry\":{{\"type\":\"Point\",\"coordinates\":[{lon:.6},{lat:.6}]}},\"properties\":{{{props}}}}}")
}

fn line(a: (f64, f64), b: (f64, f64), props: &str) -> String {
    format!(
        "{{\"type\":\"Feature\",\"geometry\":{{\"type\":\"LineString\",\"coordinates\":[[{:.6},{:.6}],[{:.6},{:.6}]]}},\"properties\":{{{props}}}}}",
        a.0, a.1, b.0, b.1
    )
}

fn site_at(map: &MapData, s: Site) -> (f64, f64, String) {
    match s {
        Site::Store(i) => {
            let x = &map.stores[i as usize];
            (x.lon, x.lat, x.id.clone())
        }
        Site::Dc(i) => {
            let x = &map.dcs[i as usize];
            (x.lon, x.lat, format!("DC:{}", x.id))
        }
    }
}

/// A view's folder name: its name with anything but letters, digits, `-` and `_` replaced.
pub fn folder_name(view: &str) -> String {
    view.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}

/// Writes every view's layers under `dir` (`<view>/stores.geojson`, `dcs.geojson`,
/// `flows.geojson`, `unfilled.geojson`; `<view>/change.*.geojson` against the first view) and
/// `kepler.json`. Returns the files written.
pub fn write(map: &MapData, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for (vi, v) in map.views.iter().enumerate() {
        let d = dir.join(folder_name(&v.name));
        std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
        write_view(map, v, &d, &mut written)?;
        if vi > 0 {
            write_change(map, &map.views[0], v, &d, &mut written)?;
        }
    }
    let k = dir.join("kepler.json");
    std::fs::write(&k, serde_json::to_string_pretty(&kepler_config(map))? + "\n")
        .with_context(|| format!("writing {}", k.display()))?;
    written.push(k);
    Ok(written)
}

fn write_view(map: &MapData, v: &View, d: &Path, written: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let p = d.join("stores.geojson");
    collection(
        &p,
        map.stores.iter().zip(&v.stores).filter(|(_, f)| f.open || f.orders > 0).map(|(s, f)| {
            point(
                s.lon,
                s.lat,
                &format!(
                    "\"store_id\":{},\"city\":{},\"orders\":{},\"capacity\":{},\"utilisation_pct\":{:.1},\"stockouts\":{}",
                    js(&s.id),
                    js(&s.city),
                    f.orders,
                    f.capacity,
                    f.utilisation_pct(),
                    f.stockouts
                ),
            )
        }),
    )?;
    written.push(p);
    let p = d.join("dcs.geojson");
    collection(
        &p,
        map.dcs
            .iter()
            .zip(&v.dcs)
            .map(|(x, n)| point(x.lon, x.lat, &format!("\"dc_id\":{},\"orders\":{n}", js(&x.id)))),
    )?;
    written.push(p);
    let p = d.join("flows.geojson");
    collection(
        &p,
        v.flows.iter().map(|f| {
            let (lon, lat, from) = site_at(map, f.from);
            let c = &map.cities[usize::from(f.to)];
            line(
                (lon, lat),
                (c.lon, c.lat),
                &format!(
                    "\"from\":{},\"to_city\":{},\"orders\":{},\"mean_km\":{:.2}",
                    js(&from),
                    js(&c.name),
                    f.orders,
                    f.mean_km
                ),
            )
        }),
    )?;
    written.push(p);
    let p = d.join("unfilled.geojson");
    let g = map.grid_deg;
    collection(
        &p,
        v.unfilled.iter().map(|c| {
            let (x0, y0) = (f64::from(c.x) * g, f64::from(c.y) * g);
            let (x1, y1) = (x0 + g, y0 + g);
            format!(
                "{{\"type\":\"Feature\",\"geometry\":{{\"type\":\"Polygon\",\"coordinates\":[[[{x0:.6},{y0:.6}],[{x1:.6},{y0:.6}],[{x1:.6},{y1:.6}],[{x0:.6},{y1:.6}],[{x0:.6},{y0:.6}]]]}},\"properties\":{{\"orders\":{},\"skus\":{},\"top_sku\":{}}}}}",
                c.orders,
                c.skus,
                js(&c.top_sku)
            )
        }),
    )?;
    written.push(p);
    Ok(())
}

fn write_change(
    map: &MapData,
    base: &View,
    v: &View,
    d: &Path,
    written: &mut Vec<PathBuf>,
) -> anyhow::Result<()> {
    let c = Comparison::new(base, v);
    let p = d.join("change.stores.geojson");
    collection(
        &p,
        map.stores.iter().zip(&c.store_orders).zip(base.stores.iter().zip(&v.stores)).filter(|(_, (a, b))| a.orders != b.orders).map(
            |((s, delta), (a, b))| {
                point(
                    s.lon,
                    s.lat,
                    &format!(
                        "\"store_id\":{},\"city\":{},\"orders_base\":{},\"orders\":{},\"orders_change\":{delta}",
                        js(&s.id),
                        js(&s.city),
                        a.orders,
                        b.orders
                    ),
                )
            },
        ),
    )?;
    written.push(p);
    let p = d.join("change.flows.geojson");
    collection(
        &p,
        c.flows.iter().map(|&(from, to, a, b)| {
            let (lon, lat, id) = site_at(map, from);
            let city = &map.cities[usize::from(to)];
            line(
                (lon, lat),
                (city.lon, city.lat),
                &format!(
                    "\"from\":{},\"to_city\":{},\"orders_base\":{a},\"orders\":{b},\"orders_change\":{}",
                    js(&id),
                    js(&city.name),
                    i64::from(b) - i64::from(a)
                ),
            )
        }),
    )?;
    written.push(p);
    Ok(())
}

/// A kepler.gl `v1` map configuration: one layer per file of the first view (and its changes
/// for the others), data ids `<view>/<layer>` as the files are named under the output folder.
pub fn kepler_config(map: &MapData) -> serde_json::Value {
    use serde_json::json;
    let [w, s, e, n] = map.bounds();
    let mut layers = Vec::new();
    let mut tooltips = serde_json::Map::new();
    for (vi, v) in map.views.iter().enumerate() {
        let f = folder_name(&v.name);
        let mut add = |name: &str, color: [u8; 3], fields: &[&str], visible: bool| {
            let id = format!("{f}/{name}");
            layers.push(json!({
                "id": id,
                "type": "geojson",
                "config": {
                    "dataId": id,
                    "label": format!("{} {name}", v.name),
                    "color": color,
                    "columns": {"geojson": "_geojson"},
                    "isVisible": visible,
                    "visConfig": {"opacity": 0.8, "thickness": 0.5, "radius": 2, "filled": true, "stroked": true}
                }
            }));
            tooltips.insert(
                id,
                serde_json::Value::Array(fields.iter().map(|x| json!({"name": x, "format": null})).collect()),
            );
        };
        let first = vi == 0;
        add(
            "stores",
            [30, 150, 190],
            &["store_id", "city", "orders", "capacity", "utilisation_pct", "stockouts"],
            first,
        );
        add("dcs", [120, 60, 170], &["dc_id", "orders"], first);
        add("flows", [240, 140, 40], &["from", "to_city", "orders", "mean_km"], first);
        add("unfilled", [220, 40, 40], &["orders", "skus", "top_sku"], first);
        if !first {
            add(
                "change.stores",
                [60, 60, 200],
                &["store_id", "orders_base", "orders", "orders_change"],
                false,
            );
            add(
                "change.flows",
                [200, 60, 160],
                &["from", "to_city", "orders_base", "orders", "orders_change"],
                false,
            );
        }
    }
    json!({
        "version": "v1",
        "config": {
            "visState": {
                "filters": [],
                "layers": layers,
                "interactionConfig": {"tooltip": {"enabled": true, "fieldsToShow": tooltips}}
            },
            "mapState": {
                "longitude": (w + e) / 2.0,
                "latitude": (s + n) / 2.0,
                "zoom": 4,
                "bearing": 0,
                "pitch": 0
            },
            "mapStyle": {"styleType": "light"}
        }
    })
}
