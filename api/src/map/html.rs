//! The self-contained HTML map: leaflet (vendored), the land outline and every view's layers
//! packed as base64 typed arrays in one file that opens from `file://` with no network.

use super::{land, MapData};
use base64::Engine as _;
use serde::Serialize;
use serde_json::json;

const TEMPLATE: &str = include_str!("../../assets/map.html");
const APP_JS: &str = include_str!("../../assets/map.js");
const LEAFLET_JS: &str = include_str!("../../assets/vendor/leaflet.js");
const LEAFLET_CSS: &str = include_str!("../../assets/vendor/leaflet.css");

/// Bytes as the page carries them: gzip (the browser's `DecompressionStream` inflates it), then
/// base64. Counts and indexes compress to a third or less.
fn packed(bytes: &[u8]) -> String {
    use std::io::Write;
    let mut z =
        flate2::write::GzEncoder::new(Vec::with_capacity(bytes.len() / 3), flate2::Compression::fast());
    z.write_all(bytes).expect("writing to memory");
    base64::engine::general_purpose::STANDARD.encode(z.finish().expect("writing to memory"))
}

fn b64<T: Copy>(values: &[T], to_bytes: impl Fn(T) -> Vec<u8>) -> String {
    let mut bytes = Vec::with_capacity(std::mem::size_of_val(values));
    for v in values {
        bytes.extend(to_bytes(*v));
    }
    packed(&bytes)
}

fn f32s(v: &[f32]) -> String {
    b64(v, |x| x.to_le_bytes().to_vec())
}
fn u32s(v: &[u32]) -> String {
    b64(v, |x| x.to_le_bytes().to_vec())
}
fn i32s(v: &[i32]) -> String {
    b64(v, |x| x.to_le_bytes().to_vec())
}
fn u16s(v: &[u16]) -> String {
    b64(v, |x| x.to_le_bytes().to_vec())
}

/// The page's data: what `map.js` reads (from the page itself, or from `GET /v1/map/data`).
pub fn data_json(map: &MapData) -> serde_json::Value {
    let bounds = map.bounds();
    let rings = land::rings(land::around(bounds, 0.3, 3.0));
    let (mut points, mut starts) = (Vec::<f32>::new(), Vec::<u32>::new());
    for r in &rings {
        starts.push((points.len() / 2) as u32);
        for [x, y] in r {
            points.extend([*x as f32, *y as f32]);
        }
    }
    let mut city_names: Vec<&str> = Vec::new();
    let mut city_of: rustc_hash::FxHashMap<&str, u16> = Default::default();
    let store_city: Vec<u16> = map
        .stores
        .iter()
        .map(|s| {
            *city_of.entry(s.city.as_str()).or_insert_with(|| {
                city_names.push(s.city.as_str());
                (city_names.len() - 1).min(usize::from(u16::MAX)) as u16
            })
        })
        .collect();
    let coords: Vec<f32> = map.stores.iter().flat_map(|s| [s.lon as f32, s.lat as f32]).collect();
    let views: Vec<serde_json::Value> = map
        .views
        .iter()
        .map(|v| {
            let open: Vec<u8> = v.stores.iter().map(|f| u8::from(f.open)).collect();
            let cap: Vec<u16> = v.stores.iter().map(|f| f.capacity.min(u32::from(u16::MAX)) as u16).collect();
            let orders: Vec<u32> = v.stores.iter().map(|f| f.orders).collect();
            let stockouts: Vec<u16> = v.stores.iter().map(|f| f.stockouts.min(u32::from(u16::MAX)) as u16).collect();
            let from: Vec<i32> = v
                .flows
                .iter()
                .map(|f| match f.from {
                    super::Site::Store(s) => s as i32,
                    super::Site::Dc(d) => -(d as i32) - 1,
                })
                .collect();
            let to: Vec<u16> = v.flows.iter().map(|f| f.to).collect();
            let forders: Vec<u32> = v.flows.iter().map(|f| f.orders).collect();
            let km: Vec<f32> = v.flows.iter().map(|f| f.mean_km as f32).collect();
            #[derive(Serialize)]
            struct Cell<'a>(i32, i32, u32, u32, &'a str);
            let cells: Vec<Cell> = v.unfilled.iter().map(|c| Cell(c.x, c.y, c.orders, c.skus, &c.top_sku)).collect();
            json!({
                "name": v.name,
                "kpis": v.kpis,
                "stores": {
                    "open": packed(&open),
                    "capacity": u16s(&cap),
                    "orders": u32s(&orders),
                    "stockouts": u16s(&stockouts),
                },
                "dcs": v.dcs,
                "flows": {"n": v.flows.len(), "from": i32s(&from), "to": u16s(&to), "orders": u32s(&forders), "km": f32s(&km)},
                "unfilled": cells,
            })
        })
        .collect();
    json!({
        "title": map.title,
        "grid_deg": map.grid_deg,
        "bounds": bounds,
        "land": {"rings": rings.len(), "points": f32s(&points), "starts": u32s(&starts)},
        "stores": {
            "n": map.stores.len(),
            // Ids have no control characters: one string, a line per store.
            "ids": packed(map.stores.iter().map(|s| s.id.as_str()).collect::<Vec<_>>().join("\n").as_bytes()),
            "lonlat": f32s(&coords),
            "city": u16s(&store_city),
            "cities": city_names,
        },
        "dcs": map.dcs,
        "cities": map.cities,
        "distance_bin_km": super::DISTANCE_BIN_KM,
        "views": views,
    })
}

/// JSON safe to embed in a `<script>` element: `<` is escaped, so no `</script>` can close it.
fn script_safe(json: &str) -> String {
    json.replace('<', "\\u003c")
}

/// The page with its data in it: the file `omniroute map --html` writes.
pub fn page(map: &MapData) -> String {
    let data = script_safe(&serde_json::to_string(&data_json(map)).expect("map data serialises"));
    render(&map.title, &data, "")
}

/// The page that loads its data from `url` (the service's `GET /map`).
pub fn live_page(title: &str, url: &str) -> String {
    render(title, "null", url)
}

fn render(title: &str, data: &str, url: &str) -> String {
    let title = title.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    // One pass over the template, so that nothing inserted is searched again.
    let mut out = String::with_capacity(TEMPLATE.len() + data.len() + LEAFLET_JS.len() + APP_JS.len() + 64);
    let mut rest = TEMPLATE;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let end = rest[i..].find("}}").expect("template placeholders close") + i;
        match &rest[i + 2..end] {
            "TITLE" => out.push_str(&title),
            "LEAFLET_CSS" => out.push_str(LEAFLET_CSS),
            "LEAFLET_JS" => out.push_str(LEAFLET_JS),
            "APP_JS" => out.push_str(APP_JS),
            "DATA" => out.push_str(data),
            "DATA_URL" => out.push_str(&script_safe(&serde_json::to_string(url).expect("a string"))),
            other => panic!("unknown template placeholder {other}"),
        }
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unpack(s: &str) -> Vec<u8> {
        use std::io::Read;
        let gz = base64::engine::general_purpose::STANDARD.decode(s).unwrap();
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&gz[..]).read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn arrays_are_packed_aligned_with_the_stores_and_flows() {
        let map = super::super::tests_support::tiny();
        let d = data_json(&map);
        let ids = String::from_utf8(unpack(d["stores"]["ids"].as_str().unwrap())).unwrap();
        assert_eq!(ids, "a\nb");
        let lonlat = unpack(d["stores"]["lonlat"].as_str().unwrap());
        let f = |i: usize| f32::from_le_bytes(lonlat[4 * i..4 * i + 4].try_into().unwrap());
        assert_eq!((f(0), f(1), f(2), f(3)), (121.0, 31.0, 116.0, 40.0));
        let v = &d["views"][0];
        let orders = unpack(v["stores"]["orders"].as_str().unwrap());
        assert_eq!(orders, [2, 0, 0, 0, 0, 0, 0, 0]);
        let from = unpack(v["flows"]["from"].as_str().unwrap());
        let from: Vec<i32> = from.chunks(4).map(|c| i32::from_le_bytes(c.try_into().unwrap())).collect();
        assert_eq!(from, vec![0, -1], "a store by index, a DC as -(index + 1)");
        assert_eq!(v["unfilled"][0], serde_json::json!([200, 50, 1, 1, "s1"]));
        assert!(d["land"]["rings"].as_u64().unwrap() > 0);
    }

    #[test]
    fn embedded_data_cannot_close_its_script_element() {
        let mut map = super::super::tests_support::tiny();
        map.stores[0].city = "</script><script>alert(1)</script>".into();
        let html = page(&map);
        assert_eq!(html.matches("</script>").count(), html.matches("<script").count());
        assert!(html.contains("\\u003c/script>\\u003cscript>alert(1)"));
        // Nothing is loaded from elsewhere: no remote script, style sheet or image (leaflet's
        // attribution links to its site, which loads nothing).
        for remote in ["src=\"http", "url(http", "url(\"http", "@import", "fetch(\"http"] {
            assert!(!html.contains(remote), "{remote}");
        }
    }
}
