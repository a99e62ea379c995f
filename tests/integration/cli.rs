use crate::helpers::{read, run, small_dataset, stderr, stdout};
use serde_json::Value;

mod generate {
    use super::*;

    #[test]
    fn same_seed_writes_identical_files_and_another_seed_does_not() {
        let (a, b, c) = (small_dataset(5), small_dataset(5), small_dataset(6));
        for f in ["stores.csv", "stock.csv", "dcs.csv", "orders.jsonl"] {
            assert_eq!(read(&a.dir.join(f)), read(&b.dir.join(f)), "{f} differs");
        }
        assert_ne!(read(&a.dir.join("stock.csv")), read(&c.dir.join("stock.csv")));
    }

    #[test]
    fn refuses_nonsense_settings_with_a_message() {
        let tmp = tempfile::tempdir().unwrap();
        let out = run(&["generate", "--stores", "0", "--out", tmp.path().to_str().unwrap()], None);
        assert!(!out.status.success());
        assert!(stderr(&out).contains("stores must be at least 1"), "{}", stderr(&out));
        let out = run(&["generate", "--lines", "99", "--out", tmp.path().to_str().unwrap()], None);
        assert!(!out.status.success());
        assert!(stderr(&out).contains("--lines"), "{}", stderr(&out));
        let out = run(&["serve", "--db-batchers", "0"], None);
        assert!(!out.status.success());
        assert!(
            stderr(&out).contains("--db-batchers") && stderr(&out).contains("1..=64"),
            "{}",
            stderr(&out)
        );
    }
}

mod route {
    use super::*;

    fn first_order(dir: &std::path::Path) -> String {
        read(&dir.join("orders.jsonl")).lines().find(|l| l.contains("\"ship\"")).unwrap().to_string()
    }

    #[test]
    fn prints_an_explained_decision_for_an_order_on_stdin() {
        let d = small_dataset(7);
        let out =
            run(&["route", "--data", d.dir.to_str().unwrap(), "--order", "-"], Some(&first_order(&d.dir)));
        assert!(out.status.success(), "{}", stderr(&out));
        let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
        let status = v["status"].as_str().unwrap();
        assert!(["assigned", "split", "dc"].contains(&status), "{v}");
        let s = &v["shipments"][0];
        assert!(s["distance_m"].as_f64().unwrap() >= 0.0);
        assert!(s["eta_s"].as_u64().unwrap() > 0);
        assert!(["same_day", "next_day", "later"].contains(&s["promise"].as_str().unwrap()));
        assert!(v["explanation"]["stages"].as_array().unwrap().contains(&Value::from("single_store")));
    }

    #[test]
    fn a_bad_order_names_the_field_and_exits_non_zero() {
        let d = small_dataset(7);
        let bad = first_order(&d.dir).replacen("\"qty\":", "\"qty\":-", 1);
        let out = run(&["route", "--data", d.dir.to_str().unwrap(), "--order", "-"], Some(&bad));
        assert!(!out.status.success());
        assert!(stderr(&out).contains("lines[0].qty"), "{}", stderr(&out));
    }
}

mod replay {
    use super::*;

    #[test]
    fn replays_the_stream_and_reports_kpis() {
        let d = small_dataset(8);
        let out = run(&["replay", "--data", d.dir.to_str().unwrap(), "--json"], None);
        assert!(out.status.success(), "{}", stderr(&out));
        let k: Value = serde_json::from_str(&stdout(&out)).unwrap();
        assert_eq!(k["orders"], 800);
        let o = &k["of_orders"];
        let counts: u64 =
            ["from_stores", "from_dcs", "unfilled"].iter().map(|f| o[f]["count"].as_u64().unwrap()).sum();
        assert_eq!(counts, 800, "{k}");
        let pcts: f64 =
            ["from_stores", "from_dcs", "unfilled"].iter().map(|f| o[f]["pct"].as_f64().unwrap()).sum();
        assert!((pcts - 100.0).abs() < 1e-3, "{k}");
        assert!(o["from_stores"]["pct"].as_f64().unwrap() > 50.0, "{k}");
        let dist = &k["distance"];
        assert!(dist["p95_km"].as_f64().unwrap() >= dist["p50_km"].as_f64().unwrap());
        let mix = &k["promises_of_shipments"];
        let total: f64 =
            ["same_day", "next_day", "later"].iter().map(|p| mix[p]["pct"].as_f64().unwrap()).sum();
        assert!((total - 100.0).abs() < 1e-3);
        // Per city and per hour, the orders add up.
        let by_city: u64 =
            k["by_city"].as_array().unwrap().iter().map(|c| c["orders"].as_u64().unwrap()).sum();
        let by_hour: u64 =
            k["hourly"].as_array().unwrap().iter().map(|h| h["orders"].as_u64().unwrap()).sum();
        assert_eq!((by_city, by_hour), (800, 800), "{k}");
    }

    /// The pickup radius is a flag: a wider one fills at least as many pickup orders (an
    /// alternative store farther from the named one may serve them), and a bad one is refused.
    #[test]
    fn the_pickup_radius_is_set_by_a_flag() {
        let d = small_dataset(8);
        let filled = |km: &str| {
            let out =
                run(&["replay", "--data", d.dir.to_str().unwrap(), "--json", "--pickup-radius-km", km], None);
            assert!(out.status.success(), "{}", stderr(&out));
            let k: Value = serde_json::from_str(&stdout(&out)).unwrap();
            100.0 - k["of_orders"]["unfilled"]["pct"].as_f64().unwrap()
        };
        let (none, default, wide) = (filled("0"), filled("10"), filled("500"));
        assert!(none <= default && default <= wide, "{none} {default} {wide}");
        assert!(none < wide, "a 500 km radius finds alternatives that none does: {none} {wide}");
        let out = run(&["replay", "--data", d.dir.to_str().unwrap(), "--pickup-radius-km=-1"], None);
        assert!(!out.status.success());
        assert!(stderr(&out).contains("--pickup-radius-km"), "{}", stderr(&out));
    }

    #[test]
    fn replaying_twice_gives_the_same_kpis_but_wall_time() {
        let d = small_dataset(9);
        let kpis = || {
            let out =
                run(&["replay", "--data", d.dir.to_str().unwrap(), "--json", "--cost", "great-circle"], None);
            let mut v: Value = serde_json::from_str(&stdout(&out)).unwrap();
            v.as_object_mut()
                .unwrap()
                .retain(|k, _| !["load_s", "replay_s", "orders_per_s"].contains(&k.as_str()));
            v
        };
        assert_eq!(kpis(), kpis());
    }
}

mod bad_rows {
    use super::*;

    /// Corrupts one line of one file and expects an error naming file, line and field.
    fn expect_error(file: &str, line: usize, edit: impl Fn(&str) -> String, field: &str) {
        let d = small_dataset(3);
        let path = d.dir.join(file);
        let text = read(&path);
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        lines[line - 1] = edit(&lines[line - 1]);
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        let out = run(&["replay", "--data", d.dir.to_str().unwrap()], None);
        assert!(!out.status.success(), "{file}:{line} should fail");
        let err = stderr(&out);
        let want = format!("{file}:{line}: field `{field}`");
        assert!(err.contains(&want), "wanted `{want}` in: {err}");
        assert!(stdout(&out).is_empty(), "nothing is reported from a half-loaded dataset");
    }

    fn set_field(row: &str, index: usize, value: &str) -> String {
        let mut f: Vec<&str> = row.split(',').collect();
        f[index] = value;
        f.join(",")
    }

    #[test]
    fn stores_csv() {
        expect_error("stores.csv", 5, |r| set_field(r, 3, "95.0"), "lat");
        expect_error("stores.csv", 6, |r| set_field(r, 4, "abc"), "lon");
        expect_error("stores.csv", 7, |r| set_field(r, 2, "Atlantis"), "city");
        expect_error("stores.csv", 8, |r| set_field(r, 5, "maybe"), "pickup");
        expect_error("stores.csv", 9, |r| set_field(r, 0, "1"), "store_id");
        expect_error("stores.csv", 10, |r| set_field(r, 7, "-4"), "capacity_per_day");
        expect_error("stores.csv", 1, |r| r.replace("ship,", "shop,"), "ship");
    }

    #[test]
    fn stock_csv() {
        expect_error("stock.csv", 4, |r| set_field(r, 0, "999999"), "store_id");
        expect_error("stock.csv", 5, |r| set_field(r, 2, "-1"), "on_hand");
        expect_error("stock.csv", 6, |r| set_field(r, 3, "x"), "safety_stock");
        expect_error("stock.csv", 7, |r| r.split(',').take(2).collect::<Vec<_>>().join(","), "on_hand");
    }

    #[test]
    fn duplicate_stock_rows_name_the_later_line() {
        let d = small_dataset(3);
        let path = d.dir.join("stock.csv");
        let mut lines: Vec<String> = read(&path).lines().map(str::to_string).collect();
        let dup = lines[1].clone();
        lines.push(dup);
        let n = lines.len();
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        let out = run(&["replay", "--data", d.dir.to_str().unwrap()], None);
        assert!(!out.status.success());
        assert!(stderr(&out).contains(&format!("stock.csv:{n}: field `sku`")), "{}", stderr(&out));
    }

    #[test]
    fn dcs_and_orders() {
        expect_error("dcs.csv", 2, |r| set_field(r, 1, "Nowhere"), "city");
        expect_error("orders.jsonl", 3, |r| r.replace("\"mode\":", "\"mood\":"), "mood");
        expect_error(
            "orders.jsonl",
            4,
            |r| r.replace("\"lines\":[", "\"lines\":[{\"sku\":1,\"qty\":0},"),
            "lines[0].qty",
        );
    }
}

mod optimize {
    use super::*;

    fn plan(dir: &std::path::Path, extra: &[&str]) -> Value {
        let mut args = vec!["optimize", "--data", dir.to_str().unwrap(), "--check", "--json"];
        args.extend_from_slice(extra);
        let out = run(&args, None);
        assert!(out.status.success(), "optimize failed: {}", stderr(&out));
        serde_json::from_str(&stdout(&out)).expect("JSON summary")
    }

    #[test]
    fn lp_plans_validate_beat_greedy_and_write_the_plan_file() {
        let d = small_dataset(21);
        let out_file = d.dir.join("plan.json");
        let lp = plan(&d.dir, &["--out", out_file.to_str().unwrap()]);
        assert_eq!(lp["violations"], 0);
        let cost = lp["kpis"]["cost"].as_f64().unwrap();
        assert!(lp["lp"]["lower_bound"].as_f64().unwrap() <= cost + 1e-6);
        assert!(lp["greedy_comparison"]["greedy_cost"].as_f64().unwrap() >= cost - 1e-6);
        let greedy = plan(&d.dir, &["--solver", "greedy"]);
        assert_eq!(greedy["violations"], 0);
        assert!(greedy["kpis"]["cost"].as_f64().unwrap() >= cost - 1e-6);
        let written: Value = serde_json::from_str(&read(&out_file)).unwrap();
        let n =
            written["assignments"].as_array().unwrap().len() + written["unfilled"].as_array().unwrap().len();
        assert_eq!(n, 800, "every order appears once");
        // The same run gives the same plan.
        let again = plan(&d.dir, &[]);
        assert_eq!(again["kpis"]["cost"], lp["kpis"]["cost"]);
    }

    #[test]
    fn a_bad_config_names_the_field_and_exits_non_zero() {
        let d = small_dataset(22);
        let cfg = d.dir.join("weights.toml");
        std::fs::write(&cfg, "k = 8\n[weights]\nper_km = -2.0\n").unwrap();
        let out =
            run(&["optimize", "--data", d.dir.to_str().unwrap(), "--routing", cfg.to_str().unwrap()], None);
        assert!(!out.status.success());
        assert!(stderr(&out).contains("weights.per_km"), "{}", stderr(&out));
        std::fs::write(&cfg, "k = 8\nspeed = 3\n").unwrap();
        let out =
            run(&["optimize", "--data", d.dir.to_str().unwrap(), "--routing", cfg.to_str().unwrap()], None);
        assert!(!out.status.success());
        assert!(stderr(&out).contains("speed"), "{}", stderr(&out));
        let mcf = d.dir.join("x.mcf");
        let out = run(
            &["optimize", "--data", d.dir.to_str().unwrap(), "--export-mcf", mcf.to_str().unwrap()],
            None,
        );
        assert!(!out.status.success());
        assert!(stderr(&out).contains("single-line"), "{}", stderr(&out));
    }
}
