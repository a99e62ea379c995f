use super::*;
use crate::ledger::StockEntry;
use crate::model::{OrderLine, Qty, Sku, StoreId};
use crate::testkit;
use crate::travel::GreatCircle;
use crate::EngineConfig;
use proptest::prelude::*;
use std::sync::atomic::{AtomicU32, Ordering};

const NOW: Timestamp = Timestamp(1_794_326_400 + 12 * 3600);

fn line(sku: u32, qty: i64) -> OrderLine {
    OrderLine::new(Sku::numbered(sku), Qty::parse(qty).unwrap())
}

fn ship(id: &str, lon: f64, lat: f64, lines: Vec<OrderLine>) -> Order {
    Order::new(OrderId::parse(id).unwrap(), NOW, LonLat::new(lon, lat).unwrap(), Mode::Ship, None, lines)
        .unwrap()
}

fn pickup(id: &str, store: u32, lines: Vec<OrderLine>) -> Order {
    let at = LonLat::new(121.0, 31.0).unwrap();
    Order::new(OrderId::parse(id).unwrap(), NOW, at, Mode::Pickup, Some(StoreId::numbered(store)), lines)
        .unwrap()
}

fn rows(spec: &[(u32, u32, u32)]) -> Vec<StockEntry> {
    spec.iter()
        .map(|&(store, sku, on_hand)| StockEntry {
            store: StoreIdx(store),
            sku: SkuIdx(sku),
            on_hand,
            safety_stock: 0,
        })
        .collect()
}

/// The stock of one cell by external ids; the cell must exist.
fn level(engine: &Engine, store: StoreId, sku: Sku) -> crate::ledger::StockLevel {
    let net = engine.network();
    let (s, k) = (net.store_idx(&store).unwrap(), net.catalog().get(&sku).unwrap());
    engine.ledger().level(s, k).unwrap()
}

fn router() -> Router<GreatCircle> {
    Router::new(RouterConfig::default(), GreatCircle::default())
}

/// Stores 1..=4 east of (121.0, 31.0) at about 1, 2, 3 and 100 km.
fn line_of_stores() -> Vec<crate::model::Store> {
    vec![
        testkit::store(1, 121.01, 31.0),
        testkit::store(2, 121.02, 31.0),
        testkit::store(3, 121.03, 31.0),
        testkit::store(4, 122.05, 31.0),
    ]
}

mod ship_mode {
    use super::*;

    #[test]
    fn nearest_capable_store_wins_and_nearer_ones_are_explained() {
        let mut stores = line_of_stores();
        stores[1].capabilities.ship = false;
        let engine = Engine::new(
            testkit::network(stores, 3),
            rows(&[(0, 0, 1), (1, 0, 9), (2, 0, 9)]),
            EngineConfig::default(),
        );
        let d = router().route(&engine, &ship("o1", 121.0, 31.0, vec![line(0, 2)])).unwrap();
        assert_eq!(d.status, Status::Assigned);
        assert_eq!(d.store_id(engine.network(), 0).cloned(), Some(StoreId::numbered(3)));
        let reasons: Vec<(StoreId, Rejection)> = d
            .explanation
            .rejected
            .iter()
            .map(|r| (engine.network().store_id(r.store).clone(), r.rejection.clone()))
            .collect();
        assert_eq!(
            reasons,
            vec![
                (StoreId::numbered(1), Rejection::ShortOfSku { sku: SkuIdx(0), missing: 1 }),
                (StoreId::numbered(2), Rejection::ShipDisabled)
            ]
        );
        assert!(d.reservation_expires_at.is_some());
        assert_eq!(level(&engine, StoreId::numbered(3), Sku::numbered(0)).reserved, 2);
    }

    #[test]
    fn full_capacity_is_a_reason_to_move_on() {
        let mut stores = line_of_stores();
        stores[0].capacity_per_day = 1;
        let engine =
            Engine::new(testkit::network(stores, 1), rows(&[(0, 0, 9), (1, 0, 9)]), EngineConfig::default());
        let r = router();
        let d = r.route(&engine, &ship("a", 121.0, 31.0, vec![line(0, 1)])).unwrap();
        assert_eq!(d.store_id(engine.network(), 0).cloned(), Some(StoreId::numbered(1)));
        let d = r.route(&engine, &ship("b", 121.0, 31.0, vec![line(0, 1)])).unwrap();
        assert_eq!(d.store_id(engine.network(), 0).cloned(), Some(StoreId::numbered(2)));
        assert_eq!(d.explanation.rejected[0].rejection, Rejection::CapacityFull { capacity_per_day: 1 });
    }

    #[test]
    fn split_uses_fewest_shipments_then_the_dc_beyond_the_radius() {
        let engine = Engine::new(
            testkit::network(line_of_stores(), 3),
            rows(&[(0, 0, 5), (1, 1, 5), (2, 0, 5), (2, 1, 5), (3, 2, 5)]),
            EngineConfig::default(),
        );
        let r = router();
        // Store 3 has both lines: one shipment beats two nearer ones.
        let d = r.route(&engine, &ship("s1", 121.0, 31.0, vec![line(0, 1), line(1, 1)])).unwrap();
        assert_eq!((d.status, d.shipments.len()), (Status::Assigned, 1));
        assert_eq!(d.store_id(engine.network(), 0).cloned(), Some(StoreId::numbered(3)));
        // Now store 3 cannot give 5 of SKU 0: split between 1 (SKU 0) and 2/3 (SKU 1).
        let d = r.route(&engine, &ship("s2", 121.0, 31.0, vec![line(0, 5), line(1, 1)])).unwrap();
        assert_eq!(d.status, Status::Split);
        assert_eq!(d.shipments.len(), 2);
        assert_eq!(d.store_id(engine.network(), 0).cloned(), Some(StoreId::numbered(1)));
        assert_eq!(d.shipments[0].lines, vec![ShipLine { sku: SkuIdx(0), qty: 5 }]);
        assert_eq!(d.store_id(engine.network(), 1).cloned(), Some(StoreId::numbered(2)));
        // SKU 2 is only 100 km away: outside the 50 km radius, so the DC serves it.
        let d = r.route(&engine, &ship("s3", 121.0, 31.0, vec![line(2, 1)])).unwrap();
        assert_eq!(d.status, Status::Dc);
        assert!(d.reservation_expires_at.is_none());
        assert!(matches!(d.explanation.rejected.last().unwrap().rejection, Rejection::OutsideRadius { .. }));
        assert_eq!(level(&engine, StoreId::numbered(4), Sku::numbered(2)).reserved, 0);
    }

    #[test]
    fn a_split_never_counts_on_a_store_whose_capacity_is_used_up() {
        let mut stores = line_of_stores();
        stores[2].capacity_per_day = 1;
        let engine = Engine::new(
            testkit::network(stores, 2),
            rows(&[(0, 0, 5), (1, 1, 5), (2, 0, 5), (2, 1, 5)]),
            EngineConfig::default(),
        );
        let r = router();
        // Store 3 takes its one order of the day.
        let d = r.route(&engine, &ship("c0", 121.03, 31.0, vec![line(1, 1)])).unwrap();
        assert_eq!(d.store_id(engine.network(), 0).cloned(), Some(StoreId::numbered(3)));
        // Its stock bits still say it has both lines, but it is full: 1 and 2 split the order.
        let d = r.route(&engine, &ship("c1", 121.0, 31.0, vec![line(0, 1), line(1, 1)])).unwrap();
        assert_eq!(d.status, Status::Split);
        let from: Vec<_> = (0..d.shipments.len()).map(|i| d.store_id(engine.network(), i).cloned()).collect();
        assert_eq!(from, vec![Some(StoreId::numbered(1)), Some(StoreId::numbered(2))]);
        assert!(d
            .explanation
            .rejected
            .iter()
            .any(|x| *engine.network().store_id(x.store) == StoreId::numbered(3)
                && x.rejection == Rejection::CapacityFull { capacity_per_day: 1 }));
        assert_eq!(engine.ledger().orders_today(StoreIdx(2), NOW), 1);
    }

    #[test]
    fn unknown_skus_and_missing_dcs_are_unfulfillable_with_reasons() {
        let net = testkit::network(line_of_stores(), 2);
        let net = crate::model::Network::new(
            net.cities().to_vec(),
            net.stores().to_vec(),
            vec![],
            net.catalog().clone(),
        )
        .unwrap();
        let engine = Engine::new(net, rows(&[(0, 0, 1)]), EngineConfig::default());
        let d = router().route(&engine, &ship("u1", 121.0, 31.0, vec![line(0, 1), line(77, 1)])).unwrap();
        assert_eq!(d.status, Status::Unfulfillable);
        assert_eq!(
            d.unfulfilled,
            vec![LineFailure { sku: Sku::numbered(77), reason: LineReason::UnknownSku }]
        );
        assert_eq!(level(&engine, StoreId::numbered(1), Sku::numbered(0)).reserved, 0);
        let d = router().route(&engine, &ship("u2", 121.0, 31.0, vec![line(1, 1)])).unwrap();
        assert_eq!(d.unfulfilled[0].reason, LineReason::NoStockWithinRadius { radius_m: 50_000.0 });
    }

    #[test]
    fn a_learned_sku_ships_from_the_dc_until_a_feed_stocks_it_then_from_the_store() {
        let engine =
            Engine::new(testkit::network(line_of_stores(), 1), rows(&[(0, 0, 9)]), EngineConfig::default());
        let red = Sku::parse("SKU-8834-RED").unwrap();
        let k = engine.learn_sku(&red).unwrap();
        assert_eq!((k, engine.learn_sku(&red).unwrap()), (SkuIdx(1), SkuIdx(1)));
        assert_eq!(engine.network().catalog().get("SKU-8834-RED"), Some(k));
        assert_eq!(engine.network().catalog().sku(k), &red);
        let order = |id: &str| {
            let l = OrderLine::new(red.clone(), Qty::parse(2).unwrap());
            ship(id, 121.0, 31.0, vec![l])
        };
        let d = router().route(&engine, &order("l1")).unwrap();
        assert_eq!((d.status, d.shipments[0].source), (Status::Dc, Source::Dc(0)));
        // A feed stocks it at store 3: the next order takes it there.
        let far = engine.network().store_idx(&StoreId::numbered(3)).unwrap();
        let feed = [crate::ledger::FeedRow {
            store: far,
            sku: k,
            change: crate::ledger::StockChange::Set { on_hand: 2, safety_stock: None },
        }];
        assert!(engine.apply_feed(&feed).unwrap()[0].new_row);
        let d = router().route(&engine, &order("l2")).unwrap();
        assert_eq!(d.status, Status::Assigned);
        assert_eq!(d.store_id(engine.network(), 0).cloned(), Some(StoreId::numbered(3)));
        assert_eq!(level(&engine, StoreId::numbered(3), red.clone()).reserved, 2);
        // Sold out there: the DC again.
        let d = router().route(&engine, &order("l3")).unwrap();
        assert_eq!(d.status, Status::Dc);
    }

    /// Capacity counts the network's local days: 23:30 and 00:30 Tokyo time are two days there
    /// (one day in China, 22:30 and 23:30).
    #[test]
    fn store_capacity_counts_the_days_of_the_networks_time_zone() {
        let tokyo = crate::model::TimeZone::fixed("Asia/Tokyo", 9 * 3600).unwrap();
        let late = Timestamp(1_794_326_400 + 3600 * 23 + 1800 - 3600); // 2026-11-11T23:30+09:00
        let after_midnight = Timestamp(late.0 + 3600);
        for (zone, second_store) in [(tokyo, 1), (crate::model::TimeZone::china(), 2)] {
            let mut stores = line_of_stores();
            stores[0].capacity_per_day = 1;
            let net = testkit::network(stores, 1).with_zone(zone.clone());
            let engine = Engine::new(net, rows(&[(0, 0, 9), (1, 0, 9)]), EngineConfig::default());
            let r = router();
            let d = r.route_at(&engine, &ship("z1", 121.0, 31.0, vec![line(0, 1)]), late).unwrap();
            assert_eq!(d.store_id(engine.network(), 0).cloned(), Some(StoreId::numbered(1)));
            let d = r.route_at(&engine, &ship("z2", 121.0, 31.0, vec![line(0, 1)]), after_midnight).unwrap();
            assert_eq!(
                d.store_id(engine.network(), 0).cloned(),
                Some(StoreId::numbered(second_store)),
                "in {}",
                zone.name()
            );
            // The answer speaks the zone's time.
            let json = serde_json::to_value(d.on(engine.network())).unwrap();
            let expires = json["reservation_expires_at"].as_str().unwrap().to_string();
            let offset = if zone.name() == "Asia/Tokyo" { "+09:00" } else { "+08:00" };
            assert!(expires.ends_with(offset), "{expires}");
        }
    }

    /// Opening hours are the network's local hours: a store open 09:00-21:00 is closed at 08:30
    /// Berlin time (15:30 in China) and its pickup waits until it opens.
    #[test]
    fn opening_hours_are_local_to_the_networks_time_zone() {
        let berlin = crate::model::TimeZone::fixed("Europe/Berlin", 3600).unwrap();
        let mut stores = line_of_stores();
        stores[0].hours = crate::model::OpeningHours::new(9 * 60, 21 * 60).unwrap();
        let engine = Engine::new(
            testkit::network(stores, 1).with_zone(berlin),
            rows(&[(0, 0, 9)]),
            EngineConfig::default(),
        );
        let at = Timestamp(1_794_355_200 + 8 * 3600 + 1800 - 3600); // 2026-11-11T08:30+01:00
        let d = router().route_at(&engine, &pickup("h1", 1, vec![line(0, 1)]), at).unwrap();
        let json = serde_json::to_value(d.on(engine.network())).unwrap();
        assert_eq!(json["status"], "assigned", "{json}");
        let eta = json["shipments"][0]["eta_s"].as_u64().unwrap();
        assert!(eta >= 1800, "the pickup waits for 09:00 local: eta {eta} s");
    }

    #[test]
    fn routing_the_same_order_twice_is_refused() {
        let engine =
            Engine::new(testkit::network(line_of_stores(), 1), rows(&[(0, 0, 9)]), EngineConfig::default());
        let o = ship("dup", 121.0, 31.0, vec![line(0, 1)]);
        router().route(&engine, &o).unwrap();
        assert_eq!(router().route(&engine, &o), Err(RouteError::AlreadyReserved(o.id().clone())));
        assert_eq!(level(&engine, StoreId::numbered(1), Sku::numbered(0)).reserved, 1);
    }
}

mod pickup_mode {
    use super::*;

    #[test]
    fn named_store_alternative_or_unfulfillable() {
        let engine = Engine::new(
            testkit::network(line_of_stores(), 2),
            rows(&[(0, 0, 1), (2, 0, 5)]),
            EngineConfig::default(),
        );
        let r = router();
        let d = r.route(&engine, &pickup("p1", 1, vec![line(0, 1)])).unwrap();
        assert_eq!(
            (d.status, d.store_id(engine.network(), 0).cloned()),
            (Status::Assigned, Some(StoreId::numbered(1)))
        );
        assert_eq!(d.shipments[0].eta_s, r.config().pickup_prep_s);
        // Store 1 is now empty: store 3 is offered as an alternative, never silently.
        let d = r.route(&engine, &pickup("p2", 1, vec![line(0, 1)])).unwrap();
        assert_eq!(
            (d.status, d.store_id(engine.network(), 0).cloned()),
            (Status::Alternative, Some(StoreId::numbered(3)))
        );
        assert_eq!(*engine.network().store_id(d.explanation.rejected[0].store), StoreId::numbered(1));
        let d = r.route(&engine, &pickup("p3", 1, vec![line(1, 1)])).unwrap();
        assert_eq!(d.status, Status::Unfulfillable);
        let d = r.route(&engine, &pickup("p4", 999, vec![line(0, 1)])).unwrap();
        assert_eq!(
            d.unfulfilled[0].reason,
            LineReason::UnknownPickupStore { store_id: StoreId::numbered(999) }
        );
    }

    #[test]
    fn closed_store_waits_until_opening() {
        let mut stores = line_of_stores();
        stores[0].hours = crate::model::OpeningHours::new(13 * 60, 22 * 60).unwrap();
        let engine = Engine::new(testkit::network(stores, 1), rows(&[(0, 0, 1)]), EngineConfig::default());
        let d = router().route(&engine, &pickup("h1", 1, vec![line(0, 1)])).unwrap();
        assert_eq!(d.shipments[0].eta_s, 3600 + 1800);
    }
}

mod concurrency {
    use super::*;

    #[test]
    fn eight_threads_never_oversell_a_hot_sku() {
        let stores: Vec<_> =
            (0..20).map(|i| testkit::store(i + 1, 121.0 + 0.001 * f64::from(i), 31.0)).collect();
        let stock: Vec<_> = (0..20).map(|s| (s, 0, 5)).collect();
        let engine = Engine::new(testkit::network(stores, 1), rows(&stock), EngineConfig::default());
        let from_stores = AtomicU32::new(0);
        std::thread::scope(|s| {
            for t in 0..8 {
                let (engine, from_stores) = (&engine, &from_stores);
                s.spawn(move || {
                    let r = router();
                    for i in 0..40 {
                        let d = r
                            .route(engine, &ship(&format!("t{t}-{i}"), 121.005, 31.0, vec![line(0, 1)]))
                            .unwrap();
                        if d.status == Status::Assigned {
                            from_stores.fetch_add(1, Ordering::Relaxed);
                        } else {
                            assert_eq!(d.status, Status::Dc);
                        }
                    }
                });
            }
        });
        assert_eq!(from_stores.load(Ordering::Relaxed), 100);
        assert_eq!(engine.ledger().totals(), (100, 100));
    }
}

/// An engine over generated stores `(lon, lat, ships)` and stock rows `(store, sku, on_hand)`
/// (store positions taken modulo the store count), with `skus` SKUs.
/// `compact_after` 1 builds stocked trees at the first drained store a walk steps past.
fn random_engine(
    stores: &[(f64, f64, bool)],
    stock: &[(usize, u32, u32)],
    skus: u32,
    sparse: f64,
    compact_after: u64,
) -> Engine {
    let n = stores.len();
    let net = testkit::network(
        stores
            .iter()
            .enumerate()
            .map(|(i, (lon, lat, ship))| {
                let mut s = testkit::store(i as u32, *lon, *lat);
                s.capabilities.ship = *ship;
                s
            })
            .collect(),
        skus,
    );
    let rows = stock
        .iter()
        .map(|&(s, k, q)| StockEntry {
            store: StoreIdx((s % n) as u32),
            sku: SkuIdx(k),
            on_hand: q,
            safety_stock: 0,
        })
        .collect();
    let cfg = EngineConfig {
        index: crate::index::IndexConfig { sparse_fraction: sparse, compact_after },
        ..EngineConfig::default()
    };
    Engine::new(net, rows, cfg)
}

/// Brute force: the nearest ship-capable store within the radius that has every line.
fn oracle(engine: &Engine, order: &Order, radius: f64) -> Option<f64> {
    let net = engine.network();
    net.stores()
        .iter()
        .enumerate()
        .filter(|(_, s)| s.capabilities.ship)
        .filter(|(i, _)| {
            order.lines().iter().all(|l| {
                let k = net.catalog().get(&l.sku).unwrap();
                engine.ledger().level(StoreIdx(*i as u32), k).is_some_and(|v| v.available >= l.qty.get())
            })
        })
        .map(|(_, s)| s.location.distance_m(order.customer()))
        .filter(|d| *d <= radius)
        .min_by(f64::total_cmp)
}

proptest! {
    #![proptest_config(testkit::seeded(48))]

    /// The chosen store is exactly as near as the brute-force nearest capable store, and the
    /// router never assigns a single store when none qualifies; holds across a stream of orders
    /// that deplete stock.
    #[test]
    fn filtered_nearest_matches_brute_force(
        stores in proptest::collection::vec((120.5f64..121.5, 30.5f64..31.5, any::<bool>()), 2..60),
        stock in proptest::collection::vec((0usize..60, 0u32..6, 0u32..4), 1..200),
        orders in proptest::collection::vec((120.5f64..121.5, 30.5f64..31.5, proptest::collection::btree_set(0u32..6, 1..4), 1i64..3), 1..30),
        sparse in prop_oneof![Just(0.0), Just(1.01)],
        compact_after in prop_oneof![Just(1u64), Just(4096)],
    ) {
        let engine = random_engine(&stores, &stock, 6, sparse, compact_after);
        let r = Router::new(RouterConfig { ship_radius_m: 40_000.0, ..RouterConfig::default() }, GreatCircle::default());
        for (i, (lon, lat, skus, qty)) in orders.into_iter().enumerate() {
            let o = ship(&format!("p{i}"), lon, lat, skus.into_iter().map(|k| line(k, qty)).collect());
            let want = oracle(&engine, &o, 40_000.0);
            let d = r.route(&engine, &o).unwrap();
            match want {
                Some(dist) => {
                    prop_assert_eq!(d.status, Status::Assigned);
                    prop_assert!((d.shipments[0].distance_m - dist).abs() < 1e-3);
                }
                None => prop_assert_ne!(d.status, Status::Assigned),
            }
        }
    }
}

/// Brute force for the split stage, on exact stock levels: per line, the `k` nearest
/// ship-capable stores within `radius` holding any of it; then, over every set of at most
/// `max_shipments` of those stores, the fewest stores that can supply all lines, then the least
/// total distance. Returns (stores, total distance).
fn split_oracle(
    engine: &Engine,
    order: &Order,
    radius: f64,
    k: usize,
    max_shipments: usize,
) -> Option<(usize, f64)> {
    let net = engine.network();
    let level =
        |s: usize, sku: SkuIdx| engine.ledger().level(StoreIdx(s as u32), sku).map_or(0, |v| v.available);
    let lines: Vec<(SkuIdx, u32)> =
        order.lines().iter().map(|l| (net.catalog().get(&l.sku).unwrap(), l.qty.get())).collect();
    let distance = |s: usize| net.stores()[s].location.distance_m(order.customer());
    let mut cands: Vec<usize> = Vec::new();
    for &(sku, _) in &lines {
        let mut near: Vec<usize> = (0..net.stores().len())
            .filter(|&s| net.stores()[s].capabilities.ship && level(s, sku) > 0 && distance(s) <= radius)
            .collect();
        near.sort_by(|a, b| distance(*a).total_cmp(&distance(*b)));
        cands.extend(near.into_iter().take(k));
    }
    cands.sort_unstable();
    cands.dedup();
    let mask = |s: usize| {
        lines
            .iter()
            .enumerate()
            .filter(|(_, (sku, q))| level(s, *sku) >= *q)
            .fold(0u32, |m, (i, _)| m | 1 << i)
    };
    let full = (1u32 << lines.len()) - 1;
    let mut best: Option<(usize, f64)> = None;
    // Every subset of the candidates with at most `max_shipments` members, as index lists.
    let mut stack: Vec<Vec<usize>> = vec![Vec::new()];
    while let Some(set) = stack.pop() {
        if !set.is_empty() && set.iter().fold(0, |m, &c| m | mask(cands[c])) == full {
            let cost = (set.len(), set.iter().map(|&c| distance(cands[c])).sum::<f64>());
            if best.is_none_or(|b| (cost.0, cost.1) < b) {
                best = Some(cost);
            }
        }
        if set.len() < max_shipments {
            let from = set.last().map_or(0, |l| l + 1);
            for c in from..cands.len() {
                let mut next = set.clone();
                next.push(c);
                stack.push(next);
            }
        }
    }
    best
}

proptest! {
    #![proptest_config(testkit::seeded(64))]

    /// Multi-line orders: a split has exactly as few shipments and as short a total distance as
    /// the brute-force cover over exact stock levels (the router starts from the availability
    /// bits, which claim too much when a line wants several units; this checks that what it
    /// reserves is still the exact optimum), and the stock it holds never exceeds what was there.
    #[test]
    fn split_matches_brute_force(
        stores in proptest::collection::vec((120.8f64..121.2, 30.8f64..31.2, prop::bool::weighted(0.85)), 2..40),
        stock in proptest::collection::vec((0usize..40, 0u32..5, 0u32..4), 1..160),
        orders in proptest::collection::vec((120.8f64..121.2, 30.8f64..31.2, proptest::collection::btree_set(0u32..5, 2..4), 1i64..4), 1..25),
        k in prop_oneof![Just(1usize), Just(2), Just(8)],
        sparse in prop_oneof![Just(0.0), Just(1.01)],
        compact_after in prop_oneof![Just(1u64), Just(4096)],
    ) {
        let engine = random_engine(&stores, &stock, 5, sparse, compact_after);
        let config = RouterConfig { ship_radius_m: 30_000.0, split_candidates_per_line: k, ..RouterConfig::default() };
        let r = Router::new(config, GreatCircle::default());
        for (i, (lon, lat, skus, qty)) in orders.into_iter().enumerate() {
            let o = ship(&format!("s{i}"), lon, lat, skus.into_iter().map(|k| line(k, qty)).collect());
            let single = oracle(&engine, &o, config.ship_radius_m);
            let want = split_oracle(&engine, &o, config.ship_radius_m, k, config.max_shipments);
            let d = r.route(&engine, &o).unwrap();
            match want {
                _ if single.is_some() => prop_assert_eq!(d.status, Status::Assigned),
                Some((stores, dist)) => {
                    prop_assert_eq!(d.status, Status::Split);
                    prop_assert_eq!(d.shipments.len(), stores);
                    let got: f64 = d.shipments.iter().map(|s| s.distance_m).sum();
                    prop_assert!((got - dist).abs() < 1e-3, "split distance {} vs brute force {}", got, dist);
                }
                None => prop_assert_eq!(d.status, Status::Dc),
            }
        }
        let (on_hand, reserved) = engine.ledger().totals();
        prop_assert!(reserved <= on_hand);
    }
}

mod priced {
    use super::*;
    use crate::router::BidPrices;

    /// The leg in km plus a worth per unit of (store position, SKU); the DC at a fixed price.
    struct Prices<'a> {
        engine: &'a Engine,
        worth: &'a [(u32, u32, f64)],
        dc: f64,
    }

    impl BidPrices for Prices<'_> {
        fn store(&self, store: StoreIdx, lines: &[(SkuIdx, u32)], _: bool, origin: LonLat) -> f64 {
            let km = self.engine.network().store(store).location.distance_m(origin) / 1000.0;
            let worth = |&(k, q): &(SkuIdx, u32)| {
                let unit: f64 = self.worth.iter().filter(|w| (w.0, w.1) == (store.0, k.0)).map(|w| w.2).sum();
                unit * f64::from(q)
            };
            km + lines.iter().map(worth).sum::<f64>()
        }

        fn dc(&self, _: usize, _: LonLat) -> f64 {
            self.dc
        }

        fn split_penalty(&self) -> f64 {
            1.0
        }
    }

    #[test]
    fn a_split_takes_the_parts_of_least_price_or_yields_to_a_cheaper_dc() {
        // No store holds both SKUs: SKU 0 at stores 1 (1 km) and 3 (3 km), SKU 1 at store 2.
        let engine = || {
            Engine::new(
                testkit::network(line_of_stores(), 3),
                rows(&[(0, 0, 5), (2, 0, 5), (1, 1, 5)]),
                EngineConfig::default(),
            )
        };
        let order = || ship("p", 121.0, 31.0, vec![line(0, 1), line(1, 1)]);
        let r = router();
        let stores = |e: &Engine, d: &Decision| -> Vec<Option<StoreId>> {
            let mut v: Vec<_> = (0..d.shipments.len()).map(|i| d.store_id(e.network(), i).cloned()).collect();
            v.sort();
            v
        };
        // The router's own rule: two shipments either way, the nearer store 1 for SKU 0.
        let e = engine();
        let d = r.route(&e, &order()).unwrap();
        assert_eq!(stores(&e, &d), vec![Some(StoreId::numbered(1)), Some(StoreId::numbered(2))]);
        // Store 1's unit of SKU 0 is worth 10 to later orders: SKU 0 comes from store 3.
        let e = engine();
        let d = r.route_priced(&e, &order(), &Prices { engine: &e, worth: &[(0, 0, 10.0)], dc: 100.0 });
        assert_eq!(d.status, Status::Split);
        assert_eq!(stores(&e, &d), vec![Some(StoreId::numbered(2)), Some(StoreId::numbered(3))]);
        assert_eq!(level(&e, StoreId::numbered(3), Sku::numbered(0)).reserved, 1);
        assert_eq!(level(&e, StoreId::numbered(1), Sku::numbered(0)).reserved, 0);
        // The cheapest split costs about 1 + 2 km and the penalty: a DC at 2 ships the order
        // and no store holds anything for it.
        let e = engine();
        let d = r.route_priced(&e, &order(), &Prices { engine: &e, worth: &[], dc: 2.0 });
        assert_eq!(d.status, Status::Dc);
        for (store, sku) in [(1, 0), (3, 0), (2, 1)] {
            assert_eq!(level(&e, StoreId::numbered(store), Sku::numbered(sku)).reserved, 0);
        }
        // At 5 the split is cheaper again.
        let e = engine();
        let d = r.route_priced(&e, &order(), &Prices { engine: &e, worth: &[], dc: 5.0 });
        assert_eq!(d.status, Status::Split);
    }
}
