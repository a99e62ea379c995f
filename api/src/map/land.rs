//! The land outline: Natural Earth's 1:50m land polygons (public domain) from the npm package
//! world-atlas (ISC), vendored by `scripts/vendor-map`, decoded from TopoJSON.

use serde::Deserialize;

/// The vendored TopoJSON file.
const LAND_50M: &str = include_str!("../../assets/vendor/land-50m.json");

#[derive(Deserialize)]
struct Topology {
    transform: Transform,
    arcs: Vec<Vec<[i64; 2]>>,
    objects: Objects,
}

#[derive(Deserialize)]
struct Transform {
    scale: [f64; 2],
    translate: [f64; 2],
}

#[derive(Deserialize)]
struct Objects {
    land: Collection,
}

#[derive(Deserialize)]
struct Collection {
    geometries: Vec<Geometry>,
}

#[derive(Deserialize)]
#[serde(tag = "type")]
enum Geometry {
    Polygon { arcs: Vec<Vec<i64>> },
    MultiPolygon { arcs: Vec<Vec<Vec<i64>>> },
}

/// A closed ring of (lon, lat) points.
pub type Ring = Vec<[f64; 2]>;

/// Every ring of the land outline (outer rings and holes alike; drawn with the even-odd rule)
/// whose bounding box meets `bounds` (`[west, south, east, north]`).
pub fn rings(bounds: [f64; 4]) -> Vec<Ring> {
    let [w, s, e, n] = bounds;
    all_rings()
        .iter()
        .filter(|(r, [x0, y0, x1, y1])| r.len() >= 3 && *x1 >= w && *x0 <= e && *y1 >= s && *y0 <= n)
        .map(|(r, _)| r.clone())
        .collect()
}

/// Every ring of the outline with its bounding box, decoded once per process (the live map's
/// data endpoint and every picture read it).
fn all_rings() -> &'static [(Ring, [f64; 4])] {
    static RINGS: std::sync::OnceLock<Vec<(Ring, [f64; 4])>> = std::sync::OnceLock::new();
    RINGS.get_or_init(decode)
}

fn decode() -> Vec<(Ring, [f64; 4])> {
    let topo: Topology = serde_json::from_str(LAND_50M).expect("the vendored land outline is valid TopoJSON");
    let [sx, sy] = topo.transform.scale;
    let [tx, ty] = topo.transform.translate;
    // Arcs are delta-encoded, quantized positions.
    let arcs: Vec<Vec<[f64; 2]>> = topo
        .arcs
        .iter()
        .map(|arc| {
            let (mut x, mut y) = (0i64, 0i64);
            arc.iter()
                .map(|[dx, dy]| {
                    x += dx;
                    y += dy;
                    [x as f64 * sx + tx, y as f64 * sy + ty]
                })
                .collect()
        })
        .collect();
    let ring = |refs: &[i64]| -> Ring {
        let mut out: Ring = Vec::new();
        for &r in refs {
            // A negative reference is the one's complement of an arc walked backwards.
            let (i, reversed) = if r < 0 { (!r as usize, true) } else { (r as usize, false) };
            let arc = &arcs[i];
            let points: Box<dyn Iterator<Item = &[f64; 2]>> =
                if reversed { Box::new(arc.iter().rev()) } else { Box::new(arc.iter()) };
            // Consecutive arcs share their joining point.
            for (k, p) in points.enumerate() {
                if k > 0 || out.is_empty() {
                    out.push(*p);
                }
            }
        }
        out
    };
    let mut polygons: Vec<&Vec<Vec<i64>>> = Vec::new();
    for g in &topo.objects.land.geometries {
        match g {
            Geometry::Polygon { arcs } => polygons.push(arcs),
            Geometry::MultiPolygon { arcs } => polygons.extend(arcs.iter()),
        }
    }
    polygons
        .into_iter()
        .flatten()
        .map(|refs| {
            let r = ring(refs);
            let (mut x0, mut y0, mut x1, mut y1) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
            for [x, y] in &r {
                (x0, y0, x1, y1) = (x0.min(*x), y0.min(*y), x1.max(*x), y1.max(*y));
            }
            (r, [x0, y0, x1, y1])
        })
        .collect()
}

/// `bounds` grown by `margin` of its size on every side (at least `min_deg` degrees), clamped
/// to the world.
pub fn around(bounds: [f64; 4], margin: f64, min_deg: f64) -> [f64; 4] {
    let dx = ((bounds[2] - bounds[0]) * margin).max(min_deg);
    let dy = ((bounds[3] - bounds[1]) * margin).max(min_deg);
    [
        (bounds[0] - dx).max(-180.0),
        (bounds[1] - dy).max(-85.0),
        (bounds[2] + dx).min(180.0),
        (bounds[3] + dy).min(85.0),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Even-odd point in polygon over every ring.
    fn on_land(rings: &[Ring], lon: f64, lat: f64) -> bool {
        let mut inside = false;
        for r in rings {
            let mut j = r.len() - 1;
            for i in 0..r.len() {
                let ([xi, yi], [xj, yj]) = (r[i], r[j]);
                if (yi > lat) != (yj > lat) && lon < (xj - xi) * (lat - yi) / (yj - yi) + xi {
                    inside = !inside;
                }
                j = i;
            }
        }
        inside
    }

    #[test]
    fn the_outline_puts_cities_on_land_and_seas_off_it() {
        let rings = rings([100.0, 18.0, 125.0, 45.0]);
        assert!(!rings.is_empty());
        // Wuhan, Chengdu and Beijing on land; the East China Sea and the South China Sea not.
        assert!(on_land(&rings, 114.3, 30.6));
        assert!(on_land(&rings, 104.07, 30.67));
        assert!(on_land(&rings, 116.4, 39.9));
        assert!(!on_land(&rings, 125.0, 29.0));
        assert!(!on_land(&rings, 115.0, 15.0));
        // Far-away land is left out.
        assert!(rings.iter().all(|r| r.iter().any(|p| p[0] >= 90.0)));
    }
}
