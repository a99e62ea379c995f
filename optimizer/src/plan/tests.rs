use super::lp::{self, LpOptions};
use super::report::PlanReport;
use super::validate::{validate, Violation};
use super::*;
use crate::ledger::StockEntry;
use crate::model::{LonLat, Mode, Order, OrderId, OrderLine, Qty, Sku, StoreId};
use crate::progress::NoProgress;
use crate::testkit;
use crate::travel::GreatCircle;
use crate::{Engine, EngineConfig};
use proptest::prelude::*;

const NOW: Timestamp = Timestamp(1_794_326_400 + 12 * 3600);

/// A small world: stores (lon, lat, capacity), stock (store, sku, on_hand), orders (lon, lat,
/// lines of (sku, qty)).
#[derive(Clone, Debug)]
struct Spec {
    stores: Vec<(f64, f64, u32)>,
    skus: u32,
    stock: Vec<(u32, u32, u32)>,
    orders: Vec<OrderSpec>,
}

/// (lon, lat, lines of (sku, qty)).
type OrderSpec = (f64, f64, Vec<(u32, u32)>);

struct World {
    engine: Engine,
    orders: Vec<Order>,
}

impl World {
    fn new(spec: &Spec) -> World {
        let stores = spec
            .stores
            .iter()
            .enumerate()
            .map(|(i, &(lon, lat, cap))| {
                let mut s = testkit::store(i as u32 + 1, lon, lat);
                s.capacity_per_day = cap;
                s
            })
            .collect();
        let network = testkit::network(stores, spec.skus);
        let stock = spec
            .stock
            .iter()
            .map(|&(store, sku, on_hand)| StockEntry {
                store: StoreIdx(store),
                sku: SkuIdx(sku),
                on_hand,
                safety_stock: 0,
            })
            .collect();
        let engine = Engine::new(network, stock, EngineConfig::default());
        let orders = spec
            .orders
            .iter()
            .enumerate()
            .map(|(i, (lon, lat, lines))| {
                let lines = lines
                    .iter()
                    .map(|&(sku, qty)| {
                        OrderLine::new(Sku::numbered(sku), Qty::parse(i64::from(qty)).unwrap())
                    })
                    .collect();
                Order::new(
                    OrderId::parse(&format!("o{i}")).unwrap(),
                    Timestamp(NOW.0 + i as i64),
                    LonLat::new(*lon, *lat).unwrap(),
                    Mode::Ship,
                    None,
                    lines,
                )
                .unwrap()
            })
            .collect();
        World { engine, orders }
    }

    fn view(&self) -> LedgerView<'_> {
        LedgerView { network: self.engine.network(), ledger: self.engine.ledger(), now: NOW }
    }

    fn instance(&self, config: &PlanConfig) -> Instance {
        Instance::build(
            &self.engine,
            &self.view(),
            &GreatCircle::default(),
            &self.orders,
            config,
            &NoProgress,
        )
    }

    fn report(&self, inst: &Instance, plan: &Plan) -> PlanReport {
        PlanReport::new(self.engine.network(), &self.orders, inst, plan, 10)
    }

    fn check(&self, inst: &Instance, plan: &Plan) -> f64 {
        let r = self.report(inst, plan);
        let v = validate(self.engine.network(), &self.view(), &self.orders, &r.assignments, &r.unfilled);
        assert!(v.is_empty(), "{:?} plan invalid: {v:?}", plan.solver);
        r.kpis.cost
    }
}

fn spec(max_stores: usize, max_orders: usize, max_lines: usize, max_qty: u32) -> impl Strategy<Value = Spec> {
    let pos = || (121.2f64..121.6, 31.0f64..31.4);
    (2..=max_stores, 1u32..=3, 1..=max_orders).prop_flat_map(move |(n_stores, skus, n_orders)| {
        let stores = prop::collection::vec((pos(), 1u32..=3), n_stores)
            .prop_map(|v| v.into_iter().map(|((lon, lat), c)| (lon, lat, c)).collect::<Vec<_>>());
        let stock = prop::collection::vec(0u32..=4, n_stores * skus as usize).prop_map(move |v| {
            v.into_iter()
                .enumerate()
                .filter(|(_, q)| *q > 0)
                .map(|(i, q)| ((i / skus as usize) as u32, (i % skus as usize) as u32, q))
                .collect::<Vec<_>>()
        });
        let order = (pos(), prop::collection::vec((0..skus, 1..=max_qty), 1..=max_lines)).prop_map(
            |((lon, lat), mut lines)| {
                lines.sort_by_key(|l| l.0);
                lines.dedup_by_key(|l| l.0);
                (lon, lat, lines)
            },
        );
        let orders = prop::collection::vec(order, n_orders);
        (stores, stock, orders).prop_map(move |(stores, stock, orders)| Spec { stores, skus, stock, orders })
    })
}

/// The cheapest feasible plan over the instance's options by exhaustive search.
fn brute_force(inst: &Instance) -> f64 {
    fn choices(inst: &Instance, o: usize) -> Vec<Choice> {
        let opts = inst.options(o);
        let mut out = Vec::new();
        for x in opts {
            match x.kind {
                OptKind::Whole => out.push(Choice::Whole(StoreIdx(x.store))),
                OptKind::Dc => out.push(Choice::Dc(x.store)),
                OptKind::Unfilled => out.push(Choice::Unfilled(UnfilledReason::NoCandidate)),
                OptKind::Line(_) => {}
            }
        }
        let n = inst.lines(o).len();
        let per_line: Vec<Vec<u32>> = (0..n)
            .map(|l| opts.iter().filter(|x| x.kind == OptKind::Line(l as u8)).map(|x| x.store).collect())
            .collect();
        if n > 1 && per_line.iter().all(|v| !v.is_empty()) {
            let mut combos: Vec<Vec<StoreIdx>> = vec![Vec::new()];
            for stores in &per_line {
                combos = combos
                    .into_iter()
                    .flat_map(|c| {
                        stores.iter().map(move |&s| {
                            let mut c = c.clone();
                            c.push(StoreIdx(s));
                            c
                        })
                    })
                    .collect();
            }
            out.extend(combos.into_iter().map(Choice::Split));
        }
        out
    }
    fn uses(inst: &Instance, o: usize, c: &Choice) -> Vec<(usize, f64)> {
        let opts = inst.options(o);
        let mut out = Vec::new();
        let picked: Vec<&Opt> = match c {
            Choice::Whole(s) => opts.iter().filter(|x| x.kind == OptKind::Whole && x.store == s.0).collect(),
            Choice::Split(ss) => ss
                .iter()
                .enumerate()
                .map(|(n, s)| {
                    opts.iter().find(|x| x.kind == OptKind::Line(n as u8) && x.store == s.0).unwrap()
                })
                .collect(),
            _ => Vec::new(),
        };
        for x in picked {
            inst.rows_of(o, x, |r, c| out.push((r, c)));
        }
        out
    }
    fn go(inst: &Instance, o: usize, left: &mut Vec<f64>, cost: f64, best: &mut f64) {
        if cost >= *best {
            return;
        }
        if o == inst.len() {
            *best = cost;
            return;
        }
        for c in choices(inst, o) {
            let u = uses(inst, o, &c);
            if u.iter().all(|&(r, q)| left[r] >= q) {
                for &(r, q) in &u {
                    left[r] -= q;
                }
                go(inst, o + 1, left, cost + inst.cost_of(o, &c).unwrap(), best);
                for &(r, q) in &u {
                    left[r] += q;
                }
            }
        }
    }
    let mut best = f64::INFINITY;
    go(inst, 0, &mut inst.bounds().to_vec(), 0.0, &mut best);
    best
}

/// Min-cost flow by successive shortest paths (Bellman-Ford), written independently of the
/// planner: source -> order -> (store, sku) cell -> store -> sink, plus order -> sink at the
/// fallback cost. For single-line, one-unit orders.
fn min_cost_flow(inst: &Instance) -> f64 {
    struct Edge {
        to: usize,
        cap: i64,
        cost: f64,
    }
    let n = inst.len();
    let (src, sink) = (0, 1);
    let order_node = |o: usize| 2 + o;
    let cell_node = |r: usize| 2 + n + r;
    let store_node = |s: usize| 2 + n + inst.cells() + s;
    let nodes = 2 + n + inst.cells() + inst.store_count();
    let mut edges: Vec<Edge> = Vec::new();
    let mut adj: Vec<Vec<usize>> = vec![Vec::new(); nodes];
    let mut add = |edges: &mut Vec<Edge>, a: usize, b: usize, cap: i64, cost: f64| {
        adj[a].push(edges.len());
        edges.push(Edge { to: b, cap, cost });
        adj[b].push(edges.len());
        edges.push(Edge { to: a, cap: 0, cost: -cost });
    };
    for o in 0..n {
        add(&mut edges, src, order_node(o), 1, 0.0);
        add(&mut edges, order_node(o), sink, 1, inst.fallback_cost(o));
        for x in inst.options(o).iter().filter(|x| x.kind == OptKind::Whole) {
            let sku = SkuIdx(inst.lines(o)[0].0);
            let r = inst.cell_row(StoreIdx(x.store), sku).unwrap();
            add(&mut edges, order_node(o), cell_node(r), 1, x.cost);
        }
    }
    for r in 0..inst.cells() {
        let (s, _) = inst.cell(r);
        add(&mut edges, cell_node(r), store_node(s.0 as usize), inst.bounds()[r] as i64, 0.0);
    }
    for s in 0..inst.store_count() {
        add(&mut edges, store_node(s), sink, inst.bounds()[inst.capacity_row(s as u32)] as i64, 0.0);
    }
    let mut total = 0.0;
    for _ in 0..n {
        let mut dist = vec![f64::INFINITY; nodes];
        let mut prev = vec![usize::MAX; nodes];
        dist[src] = 0.0;
        for _ in 0..nodes {
            let mut changed = false;
            for u in 0..nodes {
                if !dist[u].is_finite() {
                    continue;
                }
                for &e in &adj[u] {
                    let ed = &edges[e];
                    if ed.cap > 0 && dist[u] + ed.cost < dist[ed.to] - 1e-12 {
                        dist[ed.to] = dist[u] + ed.cost;
                        prev[ed.to] = e;
                        changed = true;
                    }
                }
            }
            if !changed {
                break;
            }
        }
        assert!(dist[sink].is_finite(), "every order reaches the sink");
        total += dist[sink];
        let mut v = sink;
        while v != src {
            let e = prev[v];
            edges[e].cap -= 1;
            edges[e ^ 1].cap += 1;
            v = edges[e ^ 1].to;
        }
    }
    total
}

fn lp_plan(inst: &Instance) -> Plan {
    lp::solve(inst, LpOptions::default(), None, &NoProgress).unwrap()
}

proptest! {
    #![proptest_config(testkit::seeded(48))]

    #[test]
    fn lp_plan_equals_brute_force_optimum_on_small_instances(spec in spec(4, 4, 2, 2)) {
        let w = World::new(&spec);
        let inst = w.instance(&PlanConfig::default());
        let plan = lp_plan(&inst);
        let cost = w.check(&inst, &plan);
        let best = brute_force(&inst);
        prop_assert!((cost - best).abs() <= 1e-6 * best.max(1.0), "lp {cost} vs brute force {best}");
        let stats = plan.lp.unwrap();
        prop_assert!(stats.lower_bound <= best + 1e-6, "bound {} above optimum {best}", stats.lower_bound);
    }

    #[test]
    fn mixed_lp_bound_equals_the_monolithic_lp(spec in spec(12, 60, 3, 3)) {
        // Components kept in a live HiGHS instance across lazy rounds (every component of two
        // or more orders in tests), with options priced in as they pay, reach the optimum of the
        // whole LP that a monolithic solve over every row and column finds.
        let w = World::new(&spec);
        let inst = w.instance(&PlanConfig::default());
        let plan = lp_plan(&inst);
        let stats = plan.lp.clone().unwrap();
        let mono = lp::solve(&inst, LpOptions { decompose: false, network: false, ..LpOptions::default() }, None, &NoProgress).unwrap();
        let bound = mono.lp.unwrap().lower_bound;
        prop_assert!((stats.lower_bound - bound).abs() <= 1e-6 * bound.abs().max(1.0), "components {} vs monolithic {bound}", stats.lower_bound);
        for &(r, d) in &stats.duals {
            prop_assert!(d <= 1e-9, "row {r}: a capacity row's dual is never positive, got {d}");
        }
        let cost = w.check(&inst, &plan);
        prop_assert!(cost >= stats.lower_bound - 1e-6 * cost.max(1.0));
    }

    #[test]
    fn integral_solves_never_cost_more_than_rounding(spec in spec(12, 60, 3, 3)) {
        // The LP-fractional orders of every component solved alone (as those of large
        // components are) never cost more than rounding the LP's values with repair, a
        // feasible plan of the same orders within the same rows; whole components solved by
        // branch and bound validate and respect the bound.
        let w = World::new(&spec);
        let inst = w.instance(&PlanConfig::default());
        let solve = |integral, whole_integral_max_orders| {
            let options = LpOptions { integral, whole_integral_max_orders, ..LpOptions::default() };
            lp::solve(&inst, options, None, &NoProgress).unwrap()
        };
        let rounding = w.check(&inst, &solve(false, 0));
        let fractional = w.check(&inst, &solve(true, 0));
        prop_assert!(fractional <= rounding + 1e-6 * rounding.max(1.0), "{fractional} > rounding {rounding}");
        let plan = solve(true, usize::MAX);
        let cost = w.check(&inst, &plan);
        let bound = plan.lp.unwrap().lower_bound;
        prop_assert!(cost >= bound - 1e-6 * cost.max(1.0), "{cost} below the bound {bound}");
        prop_assert!(fractional >= bound - 1e-6 * cost.max(1.0), "{fractional} below the bound {bound}");
    }

    #[test]
    fn lp_is_never_worse_than_greedy_and_both_validate(spec in spec(12, 40, 3, 3)) {
        let w = World::new(&spec);
        let inst = w.instance(&PlanConfig::default());
        let g = w.check(&inst, &greedy(&inst));
        let l = w.check(&inst, &lp_plan(&inst));
        prop_assert!(l <= g + 1e-6 * g.max(1.0), "lp {l} > greedy {g}");
    }

    #[test]
    fn greedy_planning_makes_the_replay_decisions(spec in spec(12, 40, 3, 3), radius_km in 5.0f64..60.0, dc in any::<bool>()) {
        // Two identical worlds: one planned greedily, the other replayed by the checkout router.
        let (planned, replayed) = (World::new(&spec), World::new(&spec));
        let config = PlanConfig {
            ship_radius_m: radius_km * 1000.0,
            dc_fallback: dc,
            ..PlanConfig::default()
        };
        let cost = GreatCircle::default();
        let router = crate::router::Router::new(config.router_config(), GreatCircle::default());
        // A third of the orders hold reservations in both worlds first: the plan must see the
        // stock they hold as gone.
        let held = spec.orders.len() / 3;
        for w in [&planned, &replayed] {
            for order in &w.orders[..held] {
                router.route(&w.engine, order).unwrap();
            }
        }
        let view = planned.view();
        let rest = &planned.orders[held..];
        let planning = Planning::new(&planned.engine, &view, &cost, rest, &config, &NoProgress);
        let options = SolveOptions { solver: Solver::Greedy, ..SolveOptions::default() };
        let outcome = planning.solve(options, &NoProgress).unwrap();
        for (o, order) in replayed.orders[held..].iter().enumerate() {
            let d = router.route(&replayed.engine, order).unwrap();
            if d.reservation_expires_at.is_some() {
                replayed.engine.ledger().commit(order.id()).unwrap();
            }
            let stores: Vec<StoreIdx> = d.shipments.iter().filter_map(|s| s.store()).collect();
            let same = match (&outcome.plan.choices[o], d.status) {
                (Choice::Whole(s), crate::router::Status::Assigned) => stores == vec![*s],
                (Choice::Split(per_line), crate::router::Status::Split) => {
                    let mut a = per_line.clone();
                    a.sort();
                    a.dedup();
                    let mut b = stores.clone();
                    b.sort();
                    a == b
                }
                (Choice::Dc(i), crate::router::Status::Dc) => d.shipments[0].source == crate::router::Source::Dc(*i),
                (Choice::Unfilled(_), crate::router::Status::Unfulfillable) => true,
                _ => false,
            };
            prop_assert!(same, "order {o}: plan {:?}, replay {:?} {stores:?}", outcome.plan.choices[o], d.status);
        }
        // And the plan is valid against the raw stock and capacity.
        let v = validate(
            planned.engine.network(),
            &view,
            rest,
            &outcome.report.assignments,
            &outcome.report.unfilled,
        );
        prop_assert!(v.is_empty(), "{v:?}");
    }

    #[test]
    fn single_line_lp_matches_min_cost_flow_and_is_integral(spec in spec(10, 40, 1, 1)) {
        let w = World::new(&spec);
        let config = PlanConfig { weights: CostWeights::peer(), ..PlanConfig::default() };
        let inst = w.instance(&config);
        let plan = lp_plan(&inst);
        let cost = w.check(&inst, &plan);
        let flow = min_cost_flow(&inst);
        prop_assert!((cost - flow).abs() <= 1e-6 * flow.max(1.0), "lp {cost} vs min-cost flow {flow}");
        let stats = plan.lp.unwrap();
        prop_assert_eq!(stats.fractional_orders, 0);
        prop_assert!((stats.lower_bound - cost).abs() <= 1e-6 * cost.max(1.0));
        // Its components are networks, solved as min-cost flows; HiGHS on the same components
        // finds the same optimum and bound.
        prop_assert_eq!(stats.components_by_flow, stats.components_solved);
        let by_highs = lp::solve(&inst, LpOptions { decompose: true, network: false, ..LpOptions::default() }, None, &NoProgress).unwrap();
        let highs_stats = by_highs.lp.as_ref().unwrap();
        prop_assert_eq!(highs_stats.components_by_flow, 0);
        prop_assert!((w.check(&inst, &by_highs) - cost).abs() <= 1e-6 * cost.max(1.0));
        prop_assert!((highs_stats.lower_bound - stats.lower_bound).abs() <= 1e-6 * cost.max(1.0));
        // The monolithic LP (no presolve, no components) agrees.
        let mono = lp::solve(&inst, LpOptions { decompose: false, network: false, ..LpOptions::default() }, None, &NoProgress).unwrap();
        let mono_cost = w.check(&inst, &mono);
        prop_assert!((mono_cost - flow).abs() <= 1e-6 * flow.max(1.0), "monolithic {mono_cost} vs {flow}");
    }

    /// Store capacities of 1 to 3 against up to 60 orders: capacity binds. Each min-cost flow
    /// solver alone reaches the optimum and HiGHS's bound, and its duals satisfy complementary
    /// slackness with its plan: a row priced below zero is used to its bound.
    #[test]
    fn each_flow_solver_reaches_the_optimum_with_slack_duals_when_capacity_binds(spec in spec(12, 60, 1, 1)) {
        let w = World::new(&spec);
        let config = PlanConfig { weights: CostWeights::peer(), ..PlanConfig::default() };
        let inst = w.instance(&config);
        let by_highs = lp::solve(&inst, LpOptions { network: false, ..LpOptions::default() }, None, &NoProgress).unwrap();
        let highs_bound = by_highs.lp.as_ref().unwrap().lower_bound;
        let flow = min_cost_flow(&inst);
        for solver in [lp::FlowSolver::ShortestPaths, lp::FlowSolver::Simplex, lp::FlowSolver::Auto] {
            let plan = lp::solve(&inst, LpOptions { flow: solver, ..LpOptions::default() }, None, &NoProgress).unwrap();
            let cost = w.check(&inst, &plan);
            prop_assert!((cost - flow).abs() <= 1e-6 * flow.max(1.0), "{solver:?}: {cost} vs min-cost flow {flow}");
            let stats = plan.lp.as_ref().unwrap();
            prop_assert!((stats.lower_bound - highs_bound).abs() <= 1e-6 * flow.max(1.0), "{solver:?}: bound {} vs HiGHS {highs_bound}", stats.lower_bound);
            let mut used = vec![0.0; inst.rows()];
            for (o, choice) in plan.choices.iter().enumerate() {
                // Single-line orders: a store's whole option, or the DC or nothing (no rows).
                if let Choice::Whole(st) = choice {
                    let x = inst.options(o).iter().find(|x| x.kind == OptKind::Whole && x.store == st.0).unwrap();
                    inst.rows_of(o, x, |r, q| used[r] += q);
                }
            }
            for &(r, d) in &stats.duals {
                prop_assert!(d < 0.0, "{solver:?}: row {r} dual {d} above zero");
                prop_assert!((used[r] - inst.bounds()[r]).abs() <= 1e-6, "{solver:?}: row {r} priced {d} but uses {} of {}", used[r], inst.bounds()[r]);
            }
        }
    }
}

/// Two orders at store A (capacity 1); store B 10 km east. One more order of capacity at A
/// saves the second order's 10 km, and the plan says so.
#[test]
fn capacity_shadow_price_is_the_saving_of_one_more_order() {
    let a = (121.40, 31.20);
    let b_lon = a.0 + 10_000.0 / (111_195.0 * (31.2f64).to_radians().cos());
    let spec = |cap_a: u32| Spec {
        stores: vec![(a.0, a.1, cap_a), (b_lon, a.1, 10)],
        skus: 1,
        stock: vec![(0, 0, 10), (1, 0, 10)],
        orders: vec![(a.0, a.1, vec![(0, 1)]), (a.0, a.1, vec![(0, 1)])],
    };
    let config = PlanConfig { weights: CostWeights::peer(), ..PlanConfig::default() };
    let w1 = World::new(&spec(1));
    let inst1 = w1.instance(&config);
    let plan1 = lp_plan(&inst1);
    let c1 = w1.check(&inst1, &plan1);
    let w2 = World::new(&spec(2));
    let inst2 = w2.instance(&config);
    let c2 = w2.check(&inst2, &lp_plan(&inst2));
    assert!((c1 - c2 - 10.0).abs() < 0.05, "{c1} - {c2}");
    let prices = w1.report(&inst1, &plan1).shadow_prices.unwrap();
    assert_eq!(prices.capacity.len(), 1, "{prices:?}");
    assert_eq!(prices.capacity[0].store_id, StoreId::numbered(1));
    assert!((prices.capacity[0].saving_per_order - (c1 - c2)).abs() < 1e-6, "{prices:?}");
    assert!(prices.stock.is_empty(), "stock is plentiful: {prices:?}");
}

/// Two far-apart clusters; a stock change in one re-solves only that cluster's components and
/// gives the same plan as a fresh solve.
#[test]
fn resolve_after_a_stock_change_solves_only_touched_components() {
    let mut spec = Spec { stores: Vec::new(), skus: 2, stock: Vec::new(), orders: Vec::new() };
    for (c, (lon, lat)) in [(116.40, 39.90), (121.47, 31.23)].into_iter().enumerate() {
        for i in 0..6 {
            let s = spec.stores.len() as u32;
            spec.stores.push((lon + 0.01 * f64::from(i), lat, 2));
            spec.stock.push((s, 0, 2));
            spec.stock.push((s, 1, 1));
        }
        for i in 0..20 {
            let sku = (i % 2) as u32;
            spec.orders.push((lon + 0.004 * f64::from(i % 7) + c as f64 * 1e-4, lat + 0.001, vec![(sku, 1)]));
        }
    }
    let w = World::new(&spec);
    let config = PlanConfig::default();
    let mut cache = LpCache::default();
    let inst = w.instance(&config);
    let first = lp::solve(&inst, LpOptions::default(), Some(&mut cache), &NoProgress).unwrap();
    let s1 = first.lp.clone().unwrap();
    assert!(s1.components >= 2, "{s1:?}");
    assert_eq!(s1.components_reused, 0);

    // Store 0 of the Shanghai cluster (index 6) loses its SKU 0.
    let base = w.view();
    let mut overlay = Overlay { base: &base, available: Default::default(), capacity: Default::default() };
    overlay.available.insert((StoreIdx(6), SkuIdx(0)), 0);
    let inst2 =
        Instance::build(&w.engine, &overlay, &GreatCircle::default(), &w.orders, &config, &NoProgress);
    let again = lp::solve(&inst2, LpOptions::default(), Some(&mut cache), &NoProgress).unwrap();
    let s2 = again.lp.as_ref().unwrap();
    assert!(s2.components_reused >= 1, "the Beijing cluster is untouched: {s2:?}");
    let solved_before = s1.components_solved;
    assert!(s2.components_solved < solved_before, "{s2:?} vs {solved_before}");
    let fresh = lp_plan(&inst2);
    assert!((s2.plan_cost - fresh.lp.unwrap().plan_cost).abs() < 1e-9);
    assert_eq!(again.choices, lp_plan(&inst2).choices);
}

#[test]
fn validator_reports_oversold_stock_capacity_repeats_gaps_and_wrong_lines() {
    let spec = Spec {
        stores: vec![(121.40, 31.20, 1), (121.45, 31.20, 5)],
        skus: 2,
        stock: vec![(0, 0, 1), (1, 0, 5), (1, 1, 5)],
        orders: vec![
            (121.40, 31.20, vec![(0, 1)]),
            (121.40, 31.20, vec![(0, 1)]),
            (121.41, 31.2, vec![(1, 1)]),
        ],
    };
    let w = World::new(&spec);
    let inst = w.instance(&PlanConfig::default());
    let plan = lp_plan(&inst);
    let report = w.report(&inst, &plan);
    let run =
        |a: &[report::Assignment], u: &[Unfilled]| validate(w.engine.network(), &w.view(), &w.orders, a, u);
    assert_eq!(run(&report.assignments, &report.unfilled), vec![]);

    // Both SKU-0 orders from store 1 (1 unit, capacity 1).
    let mut a = report.assignments.clone();
    for x in a.iter_mut().take(2) {
        x.shipments[0].store_id = Some(StoreId::numbered(1));
    }
    let v = run(&a, &report.unfilled);
    assert!(
        v.contains(&Violation::Stock {
            store: StoreId::numbered(1),
            sku: Sku::numbered(0),
            used: 2,
            available: 1
        }),
        "{v:?}"
    );
    assert!(v.contains(&Violation::Capacity { store: StoreId::numbered(1), used: 2, capacity: 1 }), "{v:?}");

    let mut a = report.assignments.clone();
    a.push(a[0].clone());
    assert!(matches!(run(&a, &report.unfilled)[0], Violation::Repeated(..)));
    assert!(matches!(run(&report.assignments[1..], &report.unfilled)[0], Violation::Missing(..)));

    let mut a = report.assignments.clone();
    a[2].shipments[0].lines[0].qty = Qty::parse(2).unwrap();
    assert!(run(&a, &report.unfilled).iter().any(|v| matches!(v, Violation::Lines { .. })));
}
