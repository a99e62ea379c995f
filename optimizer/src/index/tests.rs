use super::*;
use crate::ledger::AtomicBitset;
use crate::testkit;
use proptest::prelude::*;

fn brute_force(net: &Network, at: LonLat) -> Vec<(StoreIdx, f64)> {
    let mut all: Vec<(StoreIdx, f64)> = net
        .stores()
        .iter()
        .enumerate()
        .map(|(i, s)| (StoreIdx(i as u32), at.distance_m(s.location)))
        .collect();
    all.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    all
}

fn points() -> impl Strategy<Value = Vec<(f64, f64)>> {
    proptest::collection::vec((73.0f64..135.0, 18.0f64..53.0), 1..200)
}

proptest! {
    #![proptest_config(testkit::seeded(64))]

    #[test]
    fn nearest_matches_brute_force(pts in points(), qlon in 73.0f64..135.0, qlat in 18.0f64..53.0, k in 1usize..20) {
        let stores = pts.iter().enumerate().map(|(i, (lon, lat))| testkit::store(i as u32, *lon, *lat)).collect();
        let net = testkit::network(stores, 1);
        let idx = StoreIndex::build(&net, &[vec![]], IndexConfig::default());
        let at = LonLat::new(qlon, qlat).unwrap();
        let got = idx.nearest(at, k);
        let want = brute_force(&net, at);
        prop_assert_eq!(got.len(), k.min(want.len()));
        for (g, w) in got.iter().zip(&want) {
            // Ties may come in any order; distances must agree to the millimetre.
            prop_assert!((g.1 - w.1).abs() < 1e-3, "{:?} vs {:?}", g, w);
        }
    }

    #[test]
    fn within_radius_matches_brute_force(pts in points(), qlon in 73.0f64..135.0, qlat in 18.0f64..53.0, r_km in 1.0f64..2000.0) {
        let stores = pts.iter().enumerate().map(|(i, (lon, lat))| testkit::store(i as u32, *lon, *lat)).collect();
        let net = testkit::network(stores, 1);
        let idx = StoreIndex::build(&net, &[vec![]], IndexConfig::default());
        let at = LonLat::new(qlon, qlat).unwrap();
        let got: Vec<StoreIdx> = idx.within(at, r_km * 1000.0).into_iter().map(|p| p.0).collect();
        let want: Vec<StoreIdx> = brute_force(&net, at).into_iter().filter(|p| p.1 <= r_km * 1000.0).map(|p| p.0).collect();
        let (mut g, mut w) = (got.clone(), want.clone());
        g.sort();
        w.sort();
        prop_assert_eq!(g, w);
    }

    /// Walking a sparse SKU's own tree visits exactly its carriers, nearest first.
    #[test]
    fn carrier_walk_visits_only_carriers_in_distance_order(pts in points(), mask in proptest::collection::vec(any::<bool>(), 200), qlon in 73.0f64..135.0, qlat in 18.0f64..53.0) {
        let stores = pts.iter().enumerate().map(|(i, (lon, lat))| testkit::store(i as u32, *lon, *lat)).collect();
        let net = testkit::network(stores, 1);
        let carriers: Vec<StoreIdx> = (0..pts.len() as u32).filter(|i| mask[*i as usize]).map(StoreIdx).collect();
        let idx = StoreIndex::build(&net, std::slice::from_ref(&carriers), IndexConfig { sparse_fraction: 1.01, ..IndexConfig::default() });
        prop_assert!(idx.is_sparse(SkuIdx(0)));
        let at = LonLat::new(qlon, qlat).unwrap();
        let mut seen = vec![];
        idx.walk::<()>(Walk::Carriers(SkuIdx(0)), at, 0.0, f64::INFINITY, |c| { seen.push((c.store, c.distance_m())); ControlFlow::Continue(()) });
        let want: Vec<(StoreIdx, f64)> = brute_force(&net, at).into_iter().filter(|p| carriers.contains(&p.0)).collect();
        prop_assert_eq!(seen.len(), want.len());
        for (g, w) in seen.iter().zip(&want) {
            prop_assert!((g.1 - w.1).abs() < 1e-3);
        }
    }
}

#[test]
fn added_carriers_become_visible_to_sparse_walks() {
    let net = testkit::network(vec![testkit::store(1, 121.0, 31.0), testkit::store(2, 121.1, 31.0)], 1);
    let idx = StoreIndex::build(
        &net,
        &[vec![StoreIdx(0)]],
        IndexConfig { sparse_fraction: 1.0, ..IndexConfig::default() },
    );
    let at = LonLat::new(121.1, 31.0).unwrap();
    let first =
        |idx: &StoreIndex| idx.walk(Walk::Carriers(SkuIdx(0)), at, 0.0, 1e7, |c| ControlFlow::Break(c.store));
    assert_eq!(first(&idx), Some(StoreIdx(0)));
    idx.add_carrier(SkuIdx(0), StoreIdx(1));
    assert_eq!(first(&idx), Some(StoreIdx(1)));
}

#[test]
fn walk_visits_only_the_distance_band() {
    let stores = (0..50).map(|i| testkit::store(i, 121.0 + 0.01 * f64::from(i), 31.0)).collect();
    let net = testkit::network(stores, 1);
    let idx = StoreIndex::build(&net, &[vec![]], IndexConfig::default());
    let at = LonLat::new(121.0, 31.0).unwrap();
    let mut seen = vec![];
    idx.walk::<()>(Walk::All, at, 10_000.0, 20_000.0, |c| {
        seen.push(c.distance_m());
        ControlFlow::Continue(())
    });
    let want: Vec<f64> = (0..50)
        .map(|i| at.distance_m(LonLat::new(121.0 + 0.01 * f64::from(i), 31.0).unwrap()))
        .filter(|d| (10_000.0..=20_000.0).contains(d))
        .collect();
    assert_eq!(seen.len(), want.len());
    assert!(seen.windows(2).all(|w| w[0] <= w[1]));
    assert!(seen.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-3));
}

#[test]
fn walk_stops_at_the_radius() {
    let net = testkit::network(vec![testkit::store(1, 121.0, 31.0), testkit::store(2, 122.0, 31.0)], 1);
    let idx = StoreIndex::build(&net, &[vec![]], IndexConfig::default());
    let at = LonLat::new(121.0, 31.0).unwrap();
    let mut n = 0;
    idx.walk::<()>(Walk::All, at, 0.0, 50_000.0, |_| {
        n += 1;
        ControlFlow::Continue(())
    });
    assert_eq!(n, 1);
}

/// Carriers added one by one (past the point where the flat copy is rebuilt, and twice each)
/// are walked exactly once each, nearest first, like a brute-force scan.
#[test]
fn many_added_carriers_are_walked_once_in_distance_order() {
    let stores = (0..300)
        .map(|i| {
            testkit::store(
                i,
                100.0 + 0.11 * f64::from(i % 17) + 0.013 * f64::from(i),
                25.0 + 0.07 * f64::from(i % 23),
            )
        })
        .collect();
    let net = testkit::network(stores, 1);
    let idx = StoreIndex::build(
        &net,
        &[(0..10).map(StoreIdx).collect()],
        IndexConfig { sparse_fraction: 1.0, ..IndexConfig::default() },
    );
    for _ in 0..2 {
        for i in (10..300).rev() {
            idx.add_carrier(SkuIdx(0), StoreIdx(i));
        }
    }
    let at = LonLat::new(101.0, 26.0).unwrap();
    let mut seen = vec![];
    idx.walk::<()>(Walk::Carriers(SkuIdx(0)), at, 0.0, f64::INFINITY, |c| {
        seen.push(c.store);
        ControlFlow::Continue(())
    });
    let want: Vec<StoreIdx> = brute_force(&net, at).into_iter().map(|(s, _)| s).collect();
    assert_eq!(seen, want);
}

/// A change to the availability bits or a checkout walk, for the stocked-walk property.
#[derive(Clone, Debug)]
enum Step {
    Set(usize, bool),
    Walk(f64, f64, f64),
}

proptest! {
    #![proptest_config(testkit::seeded(64))]

    /// Whatever the bits did before (drained, set again, drained again), a stocked walk visits
    /// every store whose bit is set, once, nearest first, within its radius: its stocked tree
    /// (built at the first drained store stepped past) never loses one.
    #[test]
    fn stocked_walks_visit_every_set_store_in_distance_order(
        pts in points(),
        initial in proptest::collection::vec(any::<bool>(), 200),
        steps in proptest::collection::vec(prop_oneof![
            3 => (0usize..200, any::<bool>()).prop_map(|(i, on)| Step::Set(i, on)),
            1 => (73.0f64..135.0, 18.0f64..53.0, 10.0f64..3000.0).prop_map(|(lon, lat, r)| Step::Walk(lon, lat, r)),
        ], 1..120),
        sparse in prop_oneof![Just(0.0), Just(1.01)],
    ) {
        let stores = pts.iter().enumerate().map(|(i, (lon, lat))| testkit::store(i as u32, *lon, *lat)).collect();
        let net = testkit::network(stores, 1);
        let n = pts.len();
        let carriers: Vec<StoreIdx> = (0..n as u32).map(StoreIdx).collect();
        let idx = StoreIndex::build(&net, &[carriers], IndexConfig { sparse_fraction: sparse, compact_after: 1 });
        let bits = AtomicBitset::new(n);
        for (i, on) in initial.iter().take(n).enumerate() {
            bits.set(i as u32, *on);
        }
        for step in steps {
            match step {
                Step::Set(i, on) => bits.set((i % n) as u32, on),
                Step::Walk(lon, lat, r_km) => {
                    let at = LonLat::new(lon, lat).unwrap();
                    let mut seen = vec![];
                    idx.walk_stocked::<()>(SkuIdx(0), Some(&bits), at, 0.0, r_km * 1000.0, |c| {
                        seen.push((c.store, c.distance_m()));
                        ControlFlow::Continue(())
                    });
                    prop_assert!(seen.windows(2).all(|w| w[0].1 <= w[1].1 + 1e-6), "nearest first");
                    let mut stores: Vec<StoreIdx> = seen.iter().map(|p| p.0).collect();
                    stores.sort();
                    stores.dedup();
                    prop_assert_eq!(stores.len(), seen.len(), "each store once");
                    let got: Vec<f64> = seen.iter().filter(|p| bits.get(p.0 .0)).map(|p| p.1).collect();
                    let want: Vec<f64> = brute_force(&net, at)
                        .into_iter()
                        .filter(|p| bits.get(p.0 .0) && p.1 <= r_km * 1000.0)
                        .map(|p| p.1)
                        .collect();
                    prop_assert_eq!(got.len(), want.len());
                    for (g, w) in got.iter().zip(&want) {
                        prop_assert!((g - w).abs() < 1e-3);
                    }
                }
            }
        }
    }
}

/// Once most carriers are drained, a stocked walk steps past none of them.
#[test]
fn drained_carriers_leave_the_stocked_walk() {
    let stores = (0..400).map(|i| testkit::store(i, 121.0 + 0.001 * f64::from(i), 31.0)).collect();
    let net = testkit::network(stores, 1);
    let idx = StoreIndex::build(
        &net,
        &[(0..400).map(StoreIdx).collect()],
        IndexConfig { sparse_fraction: 1.0, compact_after: 64 },
    );
    let bits = AtomicBitset::new(400);
    bits.set(399, true);
    let at = LonLat::new(121.0, 31.0).unwrap();
    let walked = || {
        let mut n = 0;
        idx.walk_stocked(SkuIdx(0), Some(&bits), at, 0.0, f64::INFINITY, |c| {
            n += 1;
            if c.store == StoreIdx(399) {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        n
    };
    assert_eq!(walked(), 400, "before: every drained carrier on the way");
    assert_eq!(walked(), 1, "after: only the stocked one");
    // A store whose bit is set again is met again, nearest first.
    bits.set(5, true);
    let first =
        idx.walk_stocked(SkuIdx(0), Some(&bits), at, 0.0, f64::INFINITY, |c| ControlFlow::Break(c.store));
    assert_eq!(first, Some(StoreIdx(5)));
    assert_eq!(
        idx.walk_stocked::<()>(SkuIdx(0), None, at, 0.0, f64::INFINITY, |_| panic!("nothing to visit")),
        None
    );
}
