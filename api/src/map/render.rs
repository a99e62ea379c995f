//! Pictures for reports, drawn with plotters: the map of one view (land, unfilled cells, flows,
//! stores by utilisation, DCs) and KPI charts (hourly fill rate and saturation, distance
//! histogram, scenario comparison bars), as PNG or SVG.
//!
//! Text needs a TrueType font: DejaVu Sans from Debian's `fonts-dejavu-core` (which
//! `scripts/setup` installs) or the file `OMNIROUTE_FONT` names.

use super::{land, MapData, Site, View, DISTANCE_BIN_KM};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Where the font is looked for when `OMNIROUTE_FONT` is unset.
const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

/// Registers the font once per process as plotters' `sans-serif`.
pub(crate) fn font() -> anyhow::Result<()> {
    static FONT: OnceLock<Result<(), String>> = OnceLock::new();
    FONT.get_or_init(|| {
        let path = match std::env::var_os("OMNIROUTE_FONT") {
            Some(p) => PathBuf::from(p),
            None => FONT_PATHS.iter().map(PathBuf::from).find(|p| p.exists()).ok_or_else(|| {
                "pictures need a TrueType font: install fonts-dejavu-core (scripts/setup does) or set \
                 OMNIROUTE_FONT to a .ttf file"
                    .to_string()
            })?,
        };
        let bytes = std::fs::read(&path).map_err(|e| format!("reading the font {}: {e}", path.display()))?;
        // plotters keeps fonts for the life of the process.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
            .map_err(|_| format!("{} is not a TrueType font OMNIROUTE_FONT can use", path.display()))
    })
    .clone()
    .map_err(anyhow::Error::msg)
}

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("drawing: {e:?}")
}

/// The picture kinds.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Format {
    Png,
    Svg,
}

/// Writes the map of `map.views[view]` to `path` and the charts beside it
/// (`<stem>.hourly.<ext>`, `<stem>.distance.<ext>`, `<stem>.comparison.<ext>`). Returns the files.
pub fn write_all(map: &MapData, view: usize, path: &Path, format: Format) -> anyhow::Result<Vec<PathBuf>> {
    font()?;
    let ext = match format {
        Format::Png => "png",
        Format::Svg => "svg",
    };
    let stem = path.with_extension("");
    let beside = |name: &str| PathBuf::from(format!("{}.{name}.{ext}", stem.display()));
    let files = vec![path.to_path_buf(), beside("hourly"), beside("distance"), beside("comparison")];
    macro_rules! each {
        ($backend:ident) => {{
            draw_map(&$backend::new(&files[0], (1400, 1000)).into_drawing_area(), map, view)?;
            hourly(&$backend::new(&files[1], (1100, 520)).into_drawing_area(), map)?;
            distance(&$backend::new(&files[2], (1100, 520)).into_drawing_area(), map)?;
            comparison(&$backend::new(&files[3], (1100, 620)).into_drawing_area(), map)?;
        }};
    }
    match format {
        Format::Png => each!(BitMapBackend),
        Format::Svg => each!(SVGBackend),
    }
    Ok(files)
}

/// Mercator y, normalised like x to [0, 1].
fn merc_y(lat: f64) -> f64 {
    let s = lat.clamp(-85.0, 85.0).to_radians().sin();
    0.5 - ((1.0 + s) / (1.0 - s)).ln() / (4.0 * std::f64::consts::PI)
}

/// Utilisation classes: label, colour, upper bound (%).
const CLASSES: [(&str, RGBColor, f64); 5] = [
    ("unused", RGBColor(154, 163, 171), 0.0),
    ("under 50%", RGBColor(42, 157, 92), 50.0),
    ("50 to 90%", RGBColor(233, 196, 106), 90.0),
    ("90 to 100%", RGBColor(244, 162, 97), 100.0),
    ("at capacity", RGBColor(214, 40, 40), f64::INFINITY),
];

fn class_of(u: f64, orders: u32) -> usize {
    if orders == 0 {
        return 0;
    }
    CLASSES.iter().position(|c| u < c.2).unwrap_or(CLASSES.len() - 1).max(1)
}

fn draw_map<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    map: &MapData,
    view: usize,
) -> anyhow::Result<()> {
    let v: &View = &map.views[view];
    root.fill(&RGBColor(219, 231, 241)).map_err(err)?;
    let (w, h) = root.dim_in_pixel();
    let (w, h) = (f64::from(w), f64::from(h));
    let b = land::around(map.bounds(), 0.05, 0.5);
    let (x0, x1) = ((b[0] + 180.0) / 360.0, (b[2] + 180.0) / 360.0);
    let (y0, y1) = (merc_y(b[3]), merc_y(b[1]));
    let top = 60.0;
    let scale = ((w - 20.0) / (x1 - x0)).min((h - top - 10.0) / (y1 - y0));
    let (ox, oy) =
        (10.0 + ((w - 20.0) - (x1 - x0) * scale) / 2.0, top + ((h - top - 10.0) - (y1 - y0) * scale) / 2.0);
    let px = |lon: f64, lat: f64| -> (i32, i32) {
        (
            (ox + ((lon + 180.0) / 360.0 - x0) * scale).round() as i32,
            (oy + (merc_y(lat) - y0) * scale).round() as i32,
        )
    };
    for ring in land::rings(b) {
        let pts: Vec<(i32, i32)> = ring.iter().map(|p| px(p[0], p[1])).collect();
        root.draw(&Polygon::new(pts.clone(), RGBColor(243, 240, 232).filled())).map_err(err)?;
        root.draw(&PathElement::new(pts, RGBColor(185, 179, 166).stroke_width(1))).map_err(err)?;
    }
    let g = map.grid_deg;
    let max_unfilled = v.unfilled.iter().map(|c| c.orders).max().unwrap_or(1).max(1);
    for c in &v.unfilled {
        let (lon, lat) = (f64::from(c.x) * g, f64::from(c.y) * g);
        let a = 0.15 + 0.6 * (f64::from(c.orders)).ln_1p() / f64::from(max_unfilled).ln_1p();
        root.draw(&Rectangle::new(
            [px(lon, lat + g), px(lon + g, lat)],
            RGBColor(214, 40, 40).mix(a).filled(),
        ))
        .map_err(err)?;
    }
    let at = |s: Site| match s {
        Site::Store(i) => (map.stores[i as usize].lon, map.stores[i as usize].lat),
        Site::Dc(i) => (map.dcs[i as usize].lon, map.dcs[i as usize].lat),
    };
    let max_flow = v.flows.iter().map(|f| f.orders).max().unwrap_or(1).max(1);
    for f in &v.flows {
        let (lon, lat) = at(f.from);
        let c = &map.cities[usize::from(f.to)];
        let width = 1 + (2.0 * f64::from(f.orders).ln_1p() / f64::from(max_flow).ln_1p()) as u32;
        root.draw(&PathElement::new(
            vec![px(lon, lat), px(c.lon, c.lat)],
            RGBColor(231, 111, 81).mix(0.35).stroke_width(width),
        ))
        .map_err(err)?;
    }
    for (s, f) in map.stores.iter().zip(&v.stores) {
        if !f.open && f.orders == 0 {
            continue;
        }
        let (x, y) = px(s.lon, s.lat);
        let color = CLASSES[class_of(f.utilisation_pct(), f.orders)].1;
        root.draw(&Rectangle::new([(x - 1, y - 1), (x + 2, y + 2)], color.filled())).map_err(err)?;
    }
    for d in &map.dcs {
        let (x, y) = px(d.lon, d.lat);
        root.draw(&Rectangle::new([(x - 5, y - 5), (x + 5, y + 5)], RGBColor(106, 61, 154).filled()))
            .map_err(err)?;
        root.draw(&Rectangle::new([(x - 5, y - 5), (x + 5, y + 5)], WHITE.stroke_width(1))).map_err(err)?;
    }
    // Title, KPIs, legend.
    let k = &v.kpis;
    let title = format!("{}: {}", map.title, v.name);
    root.draw(&Text::new(title, (12, 8), ("sans-serif", 24).into_font())).map_err(err)?;
    let line = format!(
        "{} orders, fill rate {:.2}%, from DCs {:.2}%, unfilled {}, mean {:.2} km; {} stores used, {} at capacity",
        k.orders,
        k.fill_rate_pct(),
        if k.orders > 0 { 100.0 * k.from_dcs as f64 / k.orders as f64 } else { 0.0 },
        k.unfilled,
        k.mean_km,
        k.stores_used,
        k.stores_at_capacity
    );
    root.draw(&Text::new(line, (12, 36), ("sans-serif", 16).into_font())).map_err(err)?;
    let mut y = h as i32 - 20 - 18 * (CLASSES.len() as i32 + 2);
    root.draw(&Rectangle::new([(8, y - 6), (200, h as i32 - 8)], WHITE.mix(0.9).filled())).map_err(err)?;
    let mut entry = |label: &str, color: RGBColor| -> anyhow::Result<()> {
        root.draw(&Rectangle::new([(14, y), (26, y + 12)], color.filled())).map_err(err)?;
        root.draw(&Text::new(label.to_string(), (32, y - 1), ("sans-serif", 14).into_font())).map_err(err)?;
        y += 18;
        Ok(())
    };
    for (label, color, _) in CLASSES {
        entry(&format!("store {label}"), color)?;
    }
    entry("DC", RGBColor(106, 61, 154))?;
    entry("flow / unfilled", RGBColor(231, 111, 81))?;
    root.present().map_err(err)
}

fn palette(i: usize) -> RGBColor {
    const P: [RGBColor; 6] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
    ];
    P[i % P.len()]
}

/// Hourly fill rate (left) and stores saturated so far (right), one line per view.
fn hourly<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, map: &MapData) -> anyhow::Result<()> {
    root.fill(&WHITE).map_err(err)?;
    let (left, right) = root.split_horizontally(root.dim_in_pixel().0 / 2);
    let hours = map.views.iter().map(|v| v.kpis.hourly.len()).max().unwrap_or(1).max(1);
    let mut c = ChartBuilder::on(&left)
        .caption("Fill rate per hour, % of orders", ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(36)
        .y_label_area_size(46)
        .build_cartesian_2d(0f64..hours as f64, 0f64..100.5)
        .map_err(err)?;
    c.configure_mesh().x_desc("hour of the day").disable_x_mesh().draw().map_err(err)?;
    for (i, v) in map.views.iter().enumerate() {
        let pts = v
            .kpis
            .hourly
            .iter()
            .enumerate()
            .filter(|(_, x)| x.orders > 0)
            .map(|(hh, x)| (hh as f64 + 0.5, 100.0 * f64::from(x.filled) / f64::from(x.orders)));
        c.draw_series(LineSeries::new(pts, palette(i).stroke_width(2)))
            .map_err(err)?
            .label(v.name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], palette(i).stroke_width(2)));
    }
    c.configure_series_labels().border_style(BLACK).background_style(WHITE.mix(0.8)).draw().map_err(err)?;
    let max_sat =
        map.views.iter().flat_map(|v| v.kpis.hourly.iter().map(|h| h.stores_saturated)).max().unwrap_or(0);
    let mut c = ChartBuilder::on(&right)
        .caption("Stores at capacity, by the end of each hour", ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..hours as f64, 0f64..(f64::from(max_sat) * 1.05).max(1.0))
        .map_err(err)?;
    c.configure_mesh().x_desc("hour of the day").disable_x_mesh().draw().map_err(err)?;
    for (i, v) in map.views.iter().enumerate() {
        let pts =
            v.kpis.hourly.iter().enumerate().map(|(hh, x)| (hh as f64 + 1.0, f64::from(x.stores_saturated)));
        c.draw_series(LineSeries::new(pts, palette(i).stroke_width(2))).map_err(err)?;
    }
    root.present().map_err(err)
}

/// Orders served per distance bin, % of each view's served orders.
fn distance<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, map: &MapData) -> anyhow::Result<()> {
    root.fill(&WHITE).map_err(err)?;
    let bins = super::DISTANCE_BINS;
    let shares: Vec<Vec<f64>> = map
        .views
        .iter()
        .map(|v| {
            let total = v.kpis.distance_hist.iter().sum::<u64>().max(1) as f64;
            v.kpis.distance_hist.iter().map(|&n| 100.0 * n as f64 / total).collect()
        })
        .collect();
    let top = shares.iter().flatten().copied().fold(1.0, f64::max);
    let mut c = ChartBuilder::on(root)
        .caption(
            format!("Distance per order served (bins of {DISTANCE_BIN_KM} km; the last holds the rest)"),
            ("sans-serif", 18),
        )
        .margin(10)
        .x_label_area_size(36)
        .y_label_area_size(46)
        .build_cartesian_2d(0f64..bins as f64 * DISTANCE_BIN_KM, 0f64..top * 1.08)
        .map_err(err)?;
    c.configure_mesh().x_desc("km").y_desc("% of orders served").disable_x_mesh().draw().map_err(err)?;
    let n = map.views.len().max(1) as f64;
    for (i, (v, s)) in map.views.iter().zip(&shares).enumerate() {
        let width = DISTANCE_BIN_KM / n;
        let bars = s.iter().enumerate().map(|(b, &y)| {
            let x = b as f64 * DISTANCE_BIN_KM + i as f64 * width;
            Rectangle::new([(x, 0.0), (x + width * 0.9, y)], palette(i).mix(0.85).filled())
        });
        c.draw_series(bars)
            .map_err(err)?
            .label(v.name.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], palette(i).filled()));
    }
    c.configure_series_labels().border_style(BLACK).background_style(WHITE.mix(0.8)).draw().map_err(err)?;
    root.present().map_err(err)
}

/// Four panels of bars, one bar per view: fill rate, from DCs, mean distance, stores at capacity.
fn comparison<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, map: &MapData) -> anyhow::Result<()> {
    root.fill(&WHITE).map_err(err)?;
    let panels = root.split_evenly((2, 2));
    type Metric = (&'static str, fn(&View) -> f64);
    let metrics: [Metric; 4] = [
        ("fill rate, % of orders", |v| v.kpis.fill_rate_pct()),
        ("from DCs, % of orders", |v| {
            if v.kpis.orders > 0 {
                100.0 * v.kpis.from_dcs as f64 / v.kpis.orders as f64
            } else {
                0.0
            }
        }),
        ("mean distance, km per order served", |v| v.kpis.mean_km),
        ("stores at capacity", |v| v.kpis.stores_at_capacity as f64),
    ];
    let n = map.views.len();
    for (panel, (name, f)) in panels.iter().zip(metrics) {
        let values: Vec<f64> = map.views.iter().map(f).collect();
        let max = values.iter().copied().fold(0.0, f64::max);
        let top = if max > 0.0 { max * 1.15 } else { 1.0 };
        let mut c = ChartBuilder::on(panel)
            .caption(name, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(52)
            .build_cartesian_2d((0..n.saturating_sub(1).max(1)).into_segmented(), 0f64..top)
            .map_err(err)?;
        let names: Vec<String> = map.views.iter().map(|v| v.name.clone()).collect();
        c.configure_mesh()
            .disable_x_mesh()
            .x_label_formatter(&|x| match x {
                SegmentValue::CenterOf(i) => names.get(*i).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .draw()
            .map_err(err)?;
        c.draw_series(values.iter().enumerate().map(|(i, &y)| {
            let mut bar = Rectangle::new(
                [(SegmentValue::Exact(i), 0.0), (SegmentValue::Exact(i + 1), y)],
                palette(i).mix(0.85).filled(),
            );
            bar.set_margin(0, 0, 12, 12);
            bar
        }))
        .map_err(err)?;
        c.draw_series(values.iter().enumerate().map(|(i, &y)| {
            Text::new(format!("{y:.2}"), (SegmentValue::CenterOf(i), y), ("sans-serif", 13).into_font())
        }))
        .map_err(err)?;
    }
    root.present().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pictures_are_written_as_png_and_svg() {
        let map = super::super::tests_support::tiny();
        let dir = tempfile::tempdir().unwrap();
        let files = write_all(&map, 0, &dir.path().join("map.png"), Format::Png).unwrap();
        assert_eq!(files.len(), 4);
        for f in &files {
            let bytes = std::fs::read(f).unwrap();
            assert_eq!(&bytes[1..4], b"PNG", "{}", f.display());
        }
        let map_png = image_size(&std::fs::read(&files[0]).unwrap());
        assert_eq!(map_png, (1400, 1000));
        let files = write_all(&map, 0, &dir.path().join("map.svg"), Format::Svg).unwrap();
        let svg = std::fs::read_to_string(&files[0]).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("base") && svg.contains("<polygon"));
        let cmp = std::fs::read_to_string(&files[3]).unwrap();
        assert!(cmp.contains("fill rate") && cmp.contains("75.00"), "fill rate of the view: 3 of 4");
    }

    /// Width and height from a PNG's IHDR chunk.
    fn image_size(png: &[u8]) -> (u32, u32) {
        let be = |i: usize| u32::from_be_bytes([png[i], png[i + 1], png[i + 2], png[i + 3]]);
        (be(16), be(20))
    }
}
