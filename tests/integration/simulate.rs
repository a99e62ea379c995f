//! `omniroute simulate` and `omniroute diff` on small generated datasets.

use crate::helpers::{read, run, small_dataset, stderr, stdout, Dataset};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Writes scenario `name` (TOML body after the `base` line) beside the dataset.
fn scenario(d: &Dataset, name: &str, body: &str) -> PathBuf {
    let path = d.dir.parent().unwrap().join(format!("{name}.toml"));
    std::fs::write(&path, format!("name = \"{name}\"\nbase = \"data\"\n{body}")).unwrap();
    path
}

fn simulate(files: &[&Path], out: &Path) -> std::process::Output {
    let mut args = vec!["simulate".to_string()];
    args.extend(files.iter().map(|f| f.to_str().unwrap().to_string()));
    args.extend(["--out".to_string(), out.to_str().unwrap().to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(&args, None)
}

fn simulate_ok(files: &[&Path], out: &Path) {
    let o = simulate(files, out);
    assert!(o.status.success(), "simulate failed: {}", stderr(&o));
}

fn report(out: &Path, name: &str) -> Value {
    serde_json::from_str(&read(&out.join(name).join("report.json"))).unwrap()
}

/// (order id, status, source) of every line of a result's orders.csv.
fn orders(out: &Path, name: &str) -> Vec<(String, String, String)> {
    read(&out.join(name).join("orders.csv"))
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].to_string(), f[1].to_string(), f[2].to_string())
        })
        .collect()
}

/// Store ids of a city in the dataset's stores.csv (its third column).
fn stores_of(d: &Dataset, city: &str) -> Vec<String> {
    read(&d.dir.join("stores.csv"))
        .lines()
        .skip(1)
        .filter(|l| l.split(',').nth(2) == Some(city))
        .map(|l| l.split(',').next().unwrap().to_string())
        .collect()
}

/// The city with the most stores.
fn biggest_city(d: &Dataset) -> String {
    let mut n = std::collections::BTreeMap::<String, usize>::new();
    for l in read(&d.dir.join("stores.csv")).lines().skip(1) {
        *n.entry(l.split(',').nth(2).unwrap().to_string()).or_default() += 1;
    }
    n.into_iter().max_by_key(|(c, k)| (*k, std::cmp::Reverse(c.clone()))).unwrap().0
}

#[test]
fn a_scenario_without_changes_equals_plain_replay() {
    let d = small_dataset(31);
    let s = scenario(&d, "plain", "[policy]\nkind = \"checkout\"\nship_after_s = 0\n");
    let out = d.dir.parent().unwrap().join("r");
    simulate_ok(&[&s], &out);
    let replay = run(&["replay", "--data", d.dir.to_str().unwrap(), "--json"], None);
    assert!(replay.status.success(), "{}", stderr(&replay));
    let mut r: Value = serde_json::from_str(&stdout(&replay)).unwrap();
    r.as_object_mut().unwrap().retain(|k, _| !["load_s", "replay_s", "orders_per_s"].contains(&k.as_str()));
    assert_eq!(report(&out, "plain")["kpis"], r);
}

#[test]
fn runs_are_byte_identical_and_a_scenario_compared_with_itself_shows_no_change() {
    let d = small_dataset(32);
    let body = "[policy]\nkind = \"checkout\"\nabandon_share = 0.1\nseed = 4\n\n\
                [demand.generate]\norders = 600\nseed = 9\nsurge = 1.5\n";
    let (a, b) = (scenario(&d, "a", body), scenario(&d, "b", body));
    let (out1, out2) = (d.dir.parent().unwrap().join("r1"), d.dir.parent().unwrap().join("r2"));
    simulate_ok(&[&a, &b], &out1);
    simulate_ok(&[&a, &b], &out2);
    for f in [
        "a/report.json",
        "a/orders.csv",
        "b/report.json",
        "comparison.md",
        "comparison.csv",
        "comparison.json",
    ] {
        assert_eq!(read(&out1.join(f)), read(&out2.join(f)), "{f} differs between runs");
    }
    assert_eq!(report(&out1, "a")["kpis"]["orders"], 900, "600 orders with a 1.5 surge");
    let cmp: Value = serde_json::from_str(&read(&out1.join("comparison.json"))).unwrap();
    for row in cmp["scenarios"]["b"].as_array().unwrap() {
        assert_eq!(row["delta"].as_f64().unwrap(), 0.0, "{row}");
    }
    let diff = run(&["diff", out1.join("a").to_str().unwrap(), out1.join("b").to_str().unwrap()], None);
    assert!(diff.status.success(), "{}", stderr(&diff));
    assert!(stdout(&diff).contains("moved                 0"), "{}", stdout(&diff));
}

#[test]
fn closed_stores_never_serve_and_the_diff_shows_where_their_orders_went() {
    let d = small_dataset(33);
    let city = biggest_city(&d);
    let closed = stores_of(&d, &city);
    let base = scenario(&d, "base", "");
    let drop = scenario(&d, "drop", &format!("[[changes]]\nclose = {{ city = \"{city}\" }}\n"));
    let out = d.dir.parent().unwrap().join("r");
    simulate_ok(&[&base, &drop], &out);
    let before = orders(&out, "base");
    assert!(before.iter().any(|o| closed.contains(&o.2)), "the city's stores served orders before");
    let after = orders(&out, "drop");
    assert!(!after.iter().any(|o| closed.contains(&o.2)), "a closed store was routed to");
    let moved = before.iter().zip(&after).filter(|(x, y)| x.2 != y.2 || x.1 != y.1).count();
    let csv = out.join("moved.csv");
    let diff = run(
        &[
            "diff",
            out.join("base").to_str().unwrap(),
            out.join("drop").to_str().unwrap(),
            "--out",
            csv.to_str().unwrap(),
        ],
        None,
    );
    assert!(diff.status.success(), "{}", stderr(&diff));
    assert!(stdout(&diff).contains(&format!("moved                 {moved}")), "{}", stdout(&diff));
    assert_eq!(read(&csv).lines().count(), moved + 1);
    // The comparison names the change in the figures.
    let cmp = read(&out.join("comparison.md"));
    assert!(cmp.contains("| fill rate, % of orders |"), "{cmp}");
}

/// Each change type moves the figure it should on a small instance.
#[test]
fn each_change_type_has_its_effect() {
    let d = small_dataset(34);
    let city = biggest_city(&d);
    let a_store = stores_of(&d, &city)[0].clone();
    let sku = read(&d.dir.join("stock.csv")).lines().nth(1).unwrap().split(',').nth(1).unwrap().to_string();
    let dc = read(&d.dir.join("dcs.csv")).lines().nth(1).unwrap().split(',').next().unwrap().to_string();
    let cases = [
        ("base", String::new()),
        ("no-stock", "[[changes]]\nstock = { factor = 0.0 }\n".to_string()),
        ("double-stock", "[[changes]]\nstock = { factor = 2.0, seed = 3 }\n".to_string()),
        ("set-stock", format!("[[changes]]\nset_stock = [{{ store = \"{a_store}\", sku = \"{sku}\", on_hand = 0 }}]\n")),
        ("no-capacity", "[[changes]]\ncapacity = { value = 0 }\n".to_string()),
        ("no-ship", "[[changes]]\nmodes = { ship = false }\n".to_string()),
        ("no-pickup", "[[changes]]\nmodes = { pickup = false }\n".to_string()),
        ("radius-5", "[[changes]]\nship_radius_km = 5.0\n".to_string()),
        ("no-dcs", "[[changes]]\nstock = { factor = 0.0 }\n\n[[changes]]\ndcs = { on = false }\n".to_string()),
        ("one-dc-off", format!("[[changes]]\ndcs = {{ off = [\"{dc}\"] }}\n")),
        (
            "new-store",
            format!(
                "[[changes]]\nclose = {{ ids = [\"{a_store}\"] }}\n\n[[changes]]\nnew_store = {{ id = \"NEW-1\", city = \"{city}\", \
                 lat = 0.0, lon = 0.0, capacity_per_day = 10000, copy_stock_from = \"{a_store}\" }}\n"
            ),
        ),
    ];
    // The new store stands where the closed one stood.
    let stores = read(&d.dir.join("stores.csv"));
    let row: Vec<&str> =
        stores.lines().find(|l| l.starts_with(&format!("{a_store},"))).unwrap().split(',').collect();
    let files: Vec<PathBuf> = cases
        .iter()
        .map(|(n, b)| {
            let b = b.replace("lat = 0.0, lon = 0.0", &format!("lat = {}, lon = {}", row[3], row[4]));
            scenario(&d, n, &b)
        })
        .collect();
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let out = d.dir.parent().unwrap().join("r");
    simulate_ok(&refs, &out);
    let k = |n: &str| report(&out, n)["kpis"].clone();
    let pct = |n: &str, f: &str| k(n)["of_orders"][f]["pct"].as_f64().unwrap();
    let base_stores = pct("base", "from_stores");
    assert_eq!(pct("no-stock", "from_stores"), 0.0);
    assert!(pct("double-stock", "from_stores") >= base_stores);
    assert!(pct("no-capacity", "from_stores") == 0.0);
    assert!(pct("no-ship", "from_stores") < base_stores);
    assert_eq!(k("no-ship")["of_orders"]["split"]["count"], 0);
    assert!(pct("no-pickup", "from_stores") < base_stores);
    assert!(pct("radius-5", "from_stores") < base_stores);
    assert!(pct("radius-5", "from_dcs") >= pct("base", "from_dcs"));
    assert_eq!(pct("no-dcs", "from_dcs"), 0.0);
    assert!(
        k("no-dcs")["fill_rate_pct"].as_f64().unwrap() < k("no-stock")["fill_rate_pct"].as_f64().unwrap()
    );
    assert!(!orders(&out, "one-dc-off").iter().any(|o| o.2 == format!("DC:{dc}")));
    assert!(!orders(&out, "set-stock").is_empty());
    // The new store takes the closed store's orders.
    let base_orders = orders(&out, "base");
    let new_orders = orders(&out, "new-store");
    let served_before = base_orders.iter().filter(|o| o.2 == a_store).count();
    let served_new = new_orders.iter().filter(|o| o.2 == "NEW-1").count();
    assert!(!new_orders.iter().any(|o| o.2 == a_store));
    assert!(served_new >= served_before.min(1), "{served_new} vs {served_before}");
}

#[test]
fn bad_scenarios_name_file_line_and_key_and_nothing_runs() {
    let d = small_dataset(35);
    let out = d.dir.parent().unwrap().join("r");
    let expect = |name: &str, body: &str, want: &[&str]| {
        let s = scenario(&d, name, body);
        let o = simulate(&[&s], &out);
        assert!(!o.status.success(), "{name} ran");
        let e = stderr(&o);
        for w in want {
            assert!(e.contains(w), "{name}: want `{w}` in: {e}");
        }
        assert!(!out.join(name).exists(), "{name}: nothing runs");
    };
    expect("typo", "[policy]\nkind = \"checkout\"\nship_afterr = 3\n", &["typo.toml:5", "ship_afterr"]);
    expect("city", "\n[[changes]]\nclose = { city = \"Atlantis\" }\n", &["city.toml:4", "Atlantis"]);
    expect(
        "store",
        "[[changes]]\nset_stock = [{ store = \"no-such\", sku = \"1\", on_hand = 3 }]\n",
        &["store.toml:3", "no-such"],
    );
    expect(
        "twice",
        "[[changes]]\nnew_store = { id = \"N\", city = \"Shanghai\", lat = 31.2, lon = 121.4, capacity_per_day = 5, stock = [] }\n\
         [[changes]]\nnew_store = { id = \"N\", city = \"Shanghai\", lat = 31.2, lon = 121.4, capacity_per_day = 5, stock = [] }\n",
        &["twice.toml:5", "already exists"],
    );
    expect("policy", "[policy]\nkind = \"magic\"\n", &["policy.toml:3", "magic"]);
    expect(
        "both",
        "[[changes]]\ncapacity = { factor = 2.0, value = 3 }\n",
        &["both.toml:3", "factor", "value"],
    );
    expect("routing", "[routing]\nship_radius_km = -3\n", &["routing.toml:3", "ship_radius_km"]);
}

/// `POST /v1/simulations` runs the scenario on a snapshot of the live network and returns what
/// the command line writes to report.json for the same scenario on the same dataset; bad
/// scenarios are refused with a line and key; the live stock is untouched.
#[actix_rt::test]
async fn the_api_job_returns_the_cli_results_and_leaves_live_stock_alone() {
    use crate::server::{spawn_app_with, CHECKOUT, PLANNER};
    use crate::service::{get, post};
    use serde_json::json;
    let d = small_dataset(36);
    let city = biggest_city(&d);
    let body = format!(
        "[routing]\ncost = \"great-circle\"\n\n[demand.generate]\norders = 500\nseed = 3\n\n\
         [[changes]]\nclose = {{ city = \"{city}\", fraction = 0.5, seed = 2 }}\n"
    );
    let file = scenario(&d, "api", &body);
    let out = d.dir.parent().unwrap().join("r");
    simulate_ok(&[&file], &out);
    let cli = report(&out, "api");

    // The test server runs with `--cost great-circle`: a scenario without [routing] takes the
    // service's own rules, the same as the CLI file states.
    let app = spawn_app_with(&d.dir, &[]);
    let text = format!("name = \"api\"\n{}", body.replace("[routing]\ncost = \"great-circle\"\n", ""));
    assert!(!text.contains("[routing]"));
    let r = post(&app, "/v1/simulations", CHECKOUT, json!({ "scenario": text }).to_string()).await;
    assert_eq!(r.status, 403, "checkout keys may not simulate");
    let r = post(&app, "/v1/simulations", PLANNER, json!({ "scenario": text }).to_string()).await;
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    let id = r.json()["simulation_id"].as_str().unwrap().to_string();
    let mut done = Value::Null;
    for _ in 0..600 {
        let v = get(&app, &format!("/v1/simulations/{id}"), PLANNER).await.json();
        if v["status"] == "done" || v["status"] == "failed" {
            done = v;
            break;
        }
        actix_rt::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["result"], cli, "the API job and the CLI give the same results");
    // A plan id is not a simulation, and bad scenarios name the line and key.
    assert_eq!(get(&app, "/v1/simulations/plan-0000000000000000", PLANNER).await.status, 404);
    for (bad, want) in [
        ("base = \"/etc\"\n[demand.generate]\norders = 5\n", "scenario:1"),
        ("[demand.generate]\norders = 5\n[[changes]]\nclose = { city = \"Atlantis\" }\n", "Atlantis"),
        ("[policy]\nkind = \"checkout\"\n", "demand"),
        ("[demand.generate]\norders = 50000000\n", "orders"),
    ] {
        let r = post(&app, "/v1/simulations", PLANNER, json!({ "scenario": bad }).to_string()).await;
        assert!(r.status == 400 || r.status == 413, "{bad}: {}", r.status);
        let e = r.json();
        assert!(
            e["message"].as_str().unwrap().contains(want) || e["field"].as_str().unwrap().contains(want),
            "{e}"
        );
    }
    // Nothing was reserved in the live ledger.
    let m = get(&app, "/metrics", PLANNER).await;
    let text = String::from_utf8_lossy(&m.body);
    assert!(
        !text.lines().any(|l| l.starts_with("omniroute_reservations_total ") && !l.ends_with(" 0")),
        "{text}"
    );
}

/// `policy = "waves"`: a wave as long as the day is the batch plan of the whole day, at the cost
/// `optimize` reports for it; shorter waves serve every order once and never oversell (the
/// ledger refuses what the stock cannot give).
#[test]
fn a_day_long_wave_is_the_days_lp_plan() {
    let d = small_dataset(37);
    let day = scenario(&d, "day", "[policy]\nkind = \"waves\"\nwave_minutes = 1440\n");
    let short = scenario(&d, "short", "[policy]\nkind = \"waves\"\nwave_minutes = 10\n");
    let out = d.dir.parent().unwrap().join("r");
    simulate_ok(&[&day, &short], &out);
    let r = report(&out, "day");
    assert_eq!(r["policy"], "waves");
    let plan = run(&["optimize", "--data", d.dir.to_str().unwrap(), "--json", "--no-compare"], None);
    assert!(plan.status.success(), "{}", stderr(&plan));
    let plan: Value = serde_json::from_str(&stdout(&plan)).unwrap();
    let (waves, lp) = (r["kpis"]["total_cost"].as_f64().unwrap(), plan["kpis"]["cost"].as_f64().unwrap());
    assert!((waves - lp).abs() <= 1e-6 * lp.max(1.0), "waves {waves} vs the day's LP plan {lp}");
    let ids: std::collections::BTreeSet<String> = orders(&out, "short").into_iter().map(|o| o.0).collect();
    assert_eq!(ids.len(), 800);
    let bad = scenario(&d, "bad", "[policy]\nkind = \"waves\"\n");
    let o = simulate(&[&bad], &out);
    assert!(!o.status.success() && stderr(&o).contains("wave_minutes"), "{}", stderr(&o));
}

/// `policy = "duals"`: every order decided once, the result says which policy ran, and the
/// policy's keys are checked like any other.
#[test]
fn the_duals_policy_replays_every_order_once_and_checks_its_keys() {
    let d = small_dataset(41);
    let duals =
        scenario(&d, "duals", "[policy]\nkind = \"duals\"\nrefresh_minutes = 30\nforecast_draws = 2\n");
    let out = d.dir.parent().unwrap().join("r");
    simulate_ok(&[&duals], &out);
    let r = report(&out, "duals");
    assert_eq!(r["policy"], "duals");
    assert_eq!(r["kpis"]["orders"], 800);
    let ids: std::collections::BTreeSet<String> = orders(&out, "duals").into_iter().map(|o| o.0).collect();
    assert_eq!(ids.len(), 800);
    for (body, key) in [
        ("[policy]\nkind = \"duals\"\nforecast_draws = 0\n", "forecast_draws"),
        ("[policy]\nkind = \"duals\"\nrefresh_minutes = 0\n", "refresh_minutes"),
        ("[policy]\nkind = \"duals\"\nwave_minutes = 10\n", "wave_minutes"),
        ("[policy]\nkind = \"checkout\"\nforecast_seed = 3\n", "forecast_seed"),
        ("[policy]\nkind = \"duals\"\nforecast_seed = 3\nforecast_orders = \"o.jsonl\"\n", "forecast_orders"),
    ] {
        let bad = scenario(&d, "bad", body);
        let o = simulate(&[&bad], &out);
        assert!(!o.status.success() && stderr(&o).contains(key), "{body}: {}", stderr(&o));
        assert!(stderr(&o).contains("bad.toml:"), "names the file and line: {}", stderr(&o));
    }
}
