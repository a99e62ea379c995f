//! `omniroute map` (layers, HTML, pictures), the HTML map in headless Chromium with the network
//! blocked, and the live map of the service.

use crate::helpers::{read, run, small_dataset, stderr, stdout, Dataset};
use crate::server::{spawn_app, CHECKOUT, PLANNER};
use crate::service::{post, send, ship_order};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn features(path: &Path) -> Vec<Value> {
    let v: Value = serde_json::from_str(&read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(v["type"], "FeatureCollection");
    v["features"].as_array().unwrap().clone()
}

fn sum(fs: &[Value], key: &str) -> u64 {
    fs.iter().map(|f| f["properties"][key].as_u64().unwrap()).sum()
}

/// Open stores of a dataset's stores.csv (ship or pickup).
fn open_stores(d: &Path) -> usize {
    read(&d.join("stores.csv"))
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split(',').collect();
            f[5] == "true" || f[6] == "true"
        })
        .count()
}

/// The greedy plan of a dataset's orders, written beside it by `omniroute optimize --out`.
fn greedy_plan(d: &Dataset) -> PathBuf {
    let plan = d.dir.parent().unwrap().join("plan.json");
    let o = run(
        &[
            "optimize",
            "--solver",
            "greedy",
            "--data",
            d.dir.to_str().unwrap(),
            "--out",
            plan.to_str().unwrap(),
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    plan
}

fn map_ok(args: &[&str]) -> Vec<PathBuf> {
    let o = run(args, None);
    assert!(o.status.success(), "map failed: {}", stderr(&o));
    stdout(&o).lines().map(PathBuf::from).collect()
}

/// A plan and a replay of the same orders, mapped: every order is in a flow or an unfilled
/// cell, every open store is on the map, the kepler configuration loads files that exist, and
/// the pictures are PNG and SVG.
#[test]
fn a_plan_and_a_replay_map_to_layers_html_and_pictures() {
    let d: Dataset = small_dataset(51);
    let root = d.dir.parent().unwrap();
    let plan = greedy_plan(&d);
    let layers = root.join("layers");
    let html = root.join("map.html");
    let png = root.join("pictures").join("map.png");
    std::fs::create_dir_all(png.parent().unwrap()).unwrap();
    let files = map_ok(&[
        "map",
        "--data",
        d.dir.to_str().unwrap(),
        "--plan",
        &format!("greedy={}", plan.display()),
        "--replay",
        "--out",
        layers.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
        "--png",
        png.to_str().unwrap(),
        "--svg",
        root.join("pictures").join("map.svg").to_str().unwrap(),
    ]);
    assert!(files.iter().all(|f| f.exists()), "{files:?}");
    let plan_json: Value = serde_json::from_str(&read(&plan)).unwrap();
    let planned_unfilled = plan_json["unfilled"].as_array().unwrap().len() as u64;
    for view in ["greedy", "replay"] {
        let dir = layers.join(view);
        let flows = features(&dir.join("flows.geojson"));
        let unfilled = features(&dir.join("unfilled.geojson"));
        assert_eq!(sum(&flows, "orders") + sum(&unfilled, "orders"), 800, "{view}: every order once");
        let stores = features(&dir.join("stores.geojson"));
        assert_eq!(stores.len(), open_stores(&d.dir), "{view}");
        let dcs = features(&dir.join("dcs.geojson"));
        let from_dcs: u64 = flows
            .iter()
            .filter(|f| f["properties"]["from"].as_str().unwrap().starts_with("DC:"))
            .map(|f| f["properties"]["orders"].as_u64().unwrap())
            .sum();
        assert_eq!(sum(&dcs, "orders"), from_dcs, "{view}");
        assert_eq!(sum(&stores, "orders") + from_dcs + sum(&unfilled, "orders"), 800, "{view}");
        for s in &stores {
            let p = &s["properties"];
            let (orders, cap) = (p["orders"].as_f64().unwrap(), p["capacity"].as_f64().unwrap());
            assert!(orders <= cap, "{view}: no store over its capacity: {p}");
            let c = s["geometry"]["coordinates"].as_array().unwrap();
            assert!((-180.0..=180.0).contains(&c[0].as_f64().unwrap()), "(lon, lat) order");
        }
        if view == "greedy" {
            assert_eq!(sum(&unfilled, "orders"), planned_unfilled);
        }
    }
    // The replay is compared with the plan, store by store.
    let change = features(&layers.join("replay").join("change.stores.geojson"));
    for c in &change {
        let p = &c["properties"];
        assert_eq!(
            p["orders_change"].as_i64().unwrap(),
            p["orders"].as_i64().unwrap() - p["orders_base"].as_i64().unwrap()
        );
    }
    let kepler: Value = serde_json::from_str(&read(&layers.join("kepler.json"))).unwrap();
    assert_eq!(kepler["version"], "v1");
    for l in kepler["config"]["visState"]["layers"].as_array().unwrap() {
        let id = l["config"]["dataId"].as_str().unwrap();
        assert!(layers.join(format!("{id}.geojson")).exists(), "kepler layer {id} has its file");
    }
    let page = read(&html);
    assert!(page.contains("L.map(") && page.contains("\"greedy\"") && page.contains("\"replay\""));
    assert_eq!(&std::fs::read(&png).unwrap()[1..4], b"PNG");
    for chart in ["hourly", "distance", "comparison"] {
        assert!(root.join("pictures").join(format!("map.{chart}.png")).exists());
        let svg = read(&root.join("pictures").join(format!("map.{chart}.svg")));
        assert!(svg.starts_with("<svg"), "{chart}");
    }
}

/// Scenarios of a simulation map one view each: a closed store serves nothing and is left off
/// its scenario's stores layer, and the change layers name where orders moved.
#[test]
fn a_simulation_maps_one_view_per_scenario_with_its_changes() {
    let d = small_dataset(52);
    let root = d.dir.parent().unwrap();
    let city = {
        let mut n = std::collections::BTreeMap::<String, usize>::new();
        for l in read(&d.dir.join("stores.csv")).lines().skip(1) {
            *n.entry(l.split(',').nth(2).unwrap().to_string()).or_default() += 1;
        }
        n.into_iter().max_by_key(|(c, k)| (*k, std::cmp::Reverse(c.clone()))).unwrap().0
    };
    std::fs::write(root.join("base.toml"), "name = \"base\"\nbase = \"data\"\n").unwrap();
    std::fs::write(
        root.join("closed.toml"),
        format!("name = \"closed\"\nbase = \"data\"\n[[changes]]\nclose = {{ city = \"{city}\" }}\n"),
    )
    .unwrap();
    let first_store =
        read(&d.dir.join("stores.csv")).lines().nth(1).unwrap().split(',').next().unwrap().to_string();
    std::fs::write(
        root.join("added.toml"),
        format!(
            "name = \"added\"\nbase = \"data\"\n[[changes]]\nnew_store = {{ id = \"N-1\", city = \"{city}\", lat = 31.23, lon = 121.47, capacity_per_day = 300, copy_stock_from = \"{first_store}\" }}\n"
        ),
    )
    .unwrap();
    let out = root.join("sim");
    let o = run(
        &[
            "simulate",
            root.join("base.toml").to_str().unwrap(),
            root.join("closed.toml").to_str().unwrap(),
            root.join("added.toml").to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let layers = root.join("layers");
    map_ok(&[
        "map",
        "--data",
        d.dir.to_str().unwrap(),
        "--simulation",
        out.to_str().unwrap(),
        "--replay",
        "--out",
        layers.to_str().unwrap(),
        "--html",
        root.join("sim.html").to_str().unwrap(),
    ]);
    // A store a scenario adds is on that scenario's layer only, also beside a replay.
    let has_new = |v: &str| {
        features(&layers.join(v).join("stores.geojson")).iter().any(|f| f["properties"]["store_id"] == "N-1")
    };
    assert!(has_new("added"));
    assert!(!has_new("base") && !has_new("replay"));
    let base = features(&layers.join("base").join("stores.geojson"));
    let closed = features(&layers.join("closed").join("stores.geojson"));
    let in_city = |fs: &[Value]| fs.iter().filter(|f| f["properties"]["city"] == city.as_str()).count();
    assert!(in_city(&base) > 0);
    assert_eq!(in_city(&closed), 0, "the closed city's stores are off the map");
    let change = features(&layers.join("closed").join("change.stores.geojson"));
    let lost: Vec<&Value> = change.iter().filter(|f| f["properties"]["city"] == city.as_str()).collect();
    assert!(!lost.is_empty());
    assert!(lost
        .iter()
        .all(|f| f["properties"]["orders"] == 0 && f["properties"]["orders_change"].as_i64().unwrap() < 0));
    for v in ["base", "closed"] {
        let flows = features(&layers.join(v).join("flows.geojson"));
        let unfilled = features(&layers.join(v).join("unfilled.geojson"));
        let report: Value = serde_json::from_str(&read(&out.join(v).join("report.json"))).unwrap();
        assert_eq!(
            sum(&flows, "orders") + sum(&unfilled, "orders"),
            report["kpis"]["orders"].as_u64().unwrap()
        );
        assert_eq!(
            sum(&unfilled, "orders"),
            report["kpis"]["of_orders"]["unfilled"]["count"].as_u64().unwrap()
        );
    }
    // diff still reads the richer orders.csv.
    let o = run(&["diff", out.join("base").to_str().unwrap(), out.join("closed").to_str().unwrap()], None);
    assert!(o.status.success() && stdout(&o).contains("moved"), "{}", stderr(&o));
}

#[test]
fn map_refuses_bad_input_with_a_clear_message() {
    let d = small_dataset(53);
    let root = d.dir.parent().unwrap();
    let data = d.dir.to_str().unwrap();
    let html = root.join("m.html");
    let html = html.to_str().unwrap();
    let bad_plan = root.join("bad.json");
    std::fs::write(
        &bad_plan,
        r#"{"assignments":[{"order_id":"nope","shipments":[],"cost":0}],"unfilled":[]}"#,
    )
    .unwrap();
    let wrong_type = root.join("wrong.json");
    std::fs::write(&wrong_type, r#"{"assignments":7,"unfilled":[]}"#).unwrap();
    let no_sim = root.join("nothing");
    for (args, expected) in [
        (vec!["map", "--data", data], "nothing to write"),
        (vec!["map", "--data", data, "--html", html, "--grid-km", "0"], "--grid-km"),
        (vec!["map", "--data", data, "--html", html, "--plan", bad_plan.to_str().unwrap()], "order nope"),
        (vec!["map", "--data", data, "--html", html, "--plan", wrong_type.to_str().unwrap()], "assignments"),
        (
            vec!["map", "--data", data, "--html", html, "--simulation", no_sim.to_str().unwrap()],
            "comparison.json",
        ),
        (vec!["map", "--data", data, "--png", html, "--view", "other"], "--view other"),
    ] {
        let o = run(&args, None);
        assert!(!o.status.success(), "{args:?}");
        assert!(stderr(&o).contains(expected), "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    }
}

/// Chromium, from the machine (scripts/setup --browser installs Debian's package) or
/// `OMNIROUTE_CHROMIUM`.
fn chromium() -> PathBuf {
    if let Some(p) = std::env::var_os("OMNIROUTE_CHROMIUM") {
        return PathBuf::from(p);
    }
    ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("the browser test needs Chromium: run scripts/setup --browser (Debian's chromium) or set OMNIROUTE_CHROMIUM")
}

/// Runs headless Chromium on `url` with every network request refused.
fn headless(args: &[&str], url: &str) -> std::process::Output {
    let profile = tempfile::tempdir().unwrap();
    std::process::Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            // No network but this machine's own servers: every host resolves to nothing, and
            // every request but those to 127.0.0.1 goes to a dead proxy.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--proxy-server=127.0.0.1:9",
            "--proxy-bypass-list=127.0.0.1",
            "--virtual-time-budget=30000",
            "--window-size=1400,1000",
            &format!("--user-data-dir={}", profile.path().display()),
        ])
        .args(args)
        .arg(url)
        .output()
        .expect("chromium runs")
}

/// What the page reported in `#status` once drawn.
fn page_status(html: &Path, hash: &str) -> Value {
    status_at(&format!("file://{}#{hash}", html.display()))
}

/// What the page at `url` reported in `#status` once drawn.
fn status_at(url: &str) -> Value {
    let o = headless(&["--dump-dom"], url);
    let dom = String::from_utf8_lossy(&o.stdout);
    let start =
        dom.find("<pre id=\"status\"").unwrap_or_else(|| panic!("no status in the page: {}", stderr(&o)));
    let text = &dom[start..];
    let text = &text[text.find('>').unwrap() + 1..text.find("</pre>").unwrap()];
    serde_json::from_str(&text.replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))
        .unwrap_or_else(|e| panic!("status `{text}`: {e}"))
}

/// The HTML map opens from a file with the network blocked, and every layer draws its features:
/// all open stores, every DC, flow and unfilled cell, the land; with a comparison selected, the
/// changed stores and flows. A screenshot is kept in the target directory.
#[test]
fn the_html_map_draws_every_layer_in_headless_chromium_offline() {
    let d = small_dataset(54);
    let root = d.dir.parent().unwrap();
    let plan = greedy_plan(&d);
    let html = root.join("map.html");
    let layers = root.join("layers");
    map_ok(&[
        "map",
        "--data",
        d.dir.to_str().unwrap(),
        "--plan",
        &format!("plan={}", plan.display()),
        "--replay",
        "--html",
        html.to_str().unwrap(),
        "--out",
        layers.to_str().unwrap(),
    ]);
    let s = page_status(&html, "view=1");
    assert_eq!(s["ready"], true, "{s}");
    let drawn = &s["drawn"];
    let count = |view: &str, layer: &str| features(&layers.join(view).join(format!("{layer}.geojson"))).len();
    assert_eq!(drawn["stores"].as_u64().unwrap() as usize, count("replay", "stores"));
    assert_eq!(drawn["dcs"].as_u64().unwrap() as usize, count("replay", "dcs"));
    assert_eq!(drawn["flows"].as_u64().unwrap() as usize, count("replay", "flows"));
    assert_eq!(drawn["unfilled"].as_u64().unwrap() as usize, count("replay", "unfilled"));
    assert!(drawn["land"].as_u64().unwrap() > 0);
    assert_eq!(drawn["change_flows"], 0, "no comparison chosen");

    let s = page_status(&html, "view=1&compare=0");
    let drawn = &s["drawn"];
    assert_eq!(drawn["change_stores"].as_u64().unwrap() as usize, count("replay", "change.stores"));
    assert_eq!(drawn["change_flows"].as_u64().unwrap() as usize, count("replay", "change.flows"));

    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("map-screenshot.png");
    let _ = std::fs::remove_file(&shot);
    let o = headless(
        &[&format!("--screenshot={}", shot.display())],
        &format!("file://{}#view=1&compare=0", html.display()),
    );
    assert!(shot.exists(), "screenshot written: {}", stderr(&o));
    assert_eq!(&std::fs::read(&shot).unwrap()[1..4], b"PNG");
    eprintln!("screenshot: {}", shot.display());
}

/// The live map in Chromium: the planner's key as Basic credentials opens the page, which
/// fetches its data and draws every open store of the sample and its DCs.
#[actix_rt::test]
async fn the_live_map_draws_in_headless_chromium() {
    let app = spawn_app();
    let url = app.url("/map").replacen("http://", &format!("http://planner:{PLANNER}@"), 1);
    let s = status_at(&url);
    assert_eq!(s["ready"], true, "{s}");
    let open = open_stores(&crate::server::sample());
    assert_eq!(s["drawn"]["stores"].as_u64().unwrap() as usize, open, "{s}");
    assert!(s["drawn"]["dcs"].as_u64().unwrap() > 0 && s["drawn"]["land"].as_u64().unwrap() > 0);
}

/// `GET /map` asks a browser for the key (Basic), serves the page to planners, and its data is
/// the live state: a routed order shows at its store.
#[actix_rt::test]
async fn the_live_map_serves_planners_the_stores_as_they_stand() {
    let app = spawn_app();
    let r = send("GET", &app.url("/map"), None, None).await.unwrap();
    assert_eq!(r.status, 401);
    let client = awc::Client::default();
    let res = client.get(app.url("/map")).send().await.unwrap();
    let challenge = res.headers().get("www-authenticate").unwrap().to_str().unwrap().to_string();
    assert!(challenge.starts_with("Basic "), "{challenge}");
    assert_eq!(send("GET", &app.url("/map"), Some(CHECKOUT), None).await.unwrap().status, 403);

    use base64::Engine as _;
    let basic =
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("anyone:{PLANNER}")));
    let mut res =
        client.get(app.url("/map")).insert_header(("Authorization", basic.as_str())).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let page = String::from_utf8(res.body().limit(8 << 20).await.unwrap().to_vec()).unwrap();
    assert!(page.contains("/v1/map/data") && page.contains("L.map("));

    let order = ship_order("MAP-1", 0);
    let routed = post(&app, "/v1/orders/route", CHECKOUT, order.to_string()).await.json();
    let store = routed["shipments"][0]["store_id"].as_str().map(str::to_string);
    let mut res = client
        .get(app.url("/v1/map/data"))
        .insert_header(("Authorization", basic.as_str()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let data: Value = serde_json::from_slice(&res.body().limit(64 << 20).await.unwrap()).unwrap();
    let n = data["stores"]["n"].as_u64().unwrap() as usize;
    assert_eq!(data["views"][0]["name"], "live");
    let gz = base64::engine::general_purpose::STANDARD
        .decode(data["views"][0]["stores"]["orders"].as_str().unwrap())
        .unwrap();
    let mut orders = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut orders).unwrap();
    let orders: Vec<u32> = orders.chunks(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    assert_eq!(orders.len(), n);
    if let Some(store) = store {
        let gz = base64::engine::general_purpose::STANDARD
            .decode(data["stores"]["ids"].as_str().unwrap())
            .unwrap();
        let mut ids = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut ids).unwrap();
        let i = ids.split('\n').position(|x| x == store).unwrap();
        assert_eq!(orders[i], 1, "the routed order counts at its store");
        assert_eq!(orders.iter().sum::<u32>(), 1);
    } else {
        panic!("the sample's first ship order ships from a store: {routed}");
    }
}
