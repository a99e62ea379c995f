use super::*;
use crate::model::TimeZone;
use proptest::prelude::*;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

fn oid(s: &str) -> OrderId {
    OrderId::parse(s).unwrap()
}

fn entry(store: u32, sku: u32, on_hand: u32, safety: u32) -> StockEntry {
    StockEntry { store: StoreIdx(store), sku: SkuIdx(sku), on_hand, safety_stock: safety }
}

/// Two stores, three SKUs; store 0 has 10 of SKU 0 (safety 2) and 5 of SKU 1; store 1 has 3 of SKU 2.
fn small() -> StockLedger {
    StockLedger::new(
        &[100, 2],
        3,
        vec![entry(0, 0, 10, 2), entry(0, 1, 5, 0), entry(1, 2, 3, 0)],
        LedgerConfig { reservation_ttl_s: 60, ..LedgerConfig::default() },
    )
}

const NOW: Timestamp = Timestamp(1_794_326_400);

#[test]
fn initial_rows_load_in_any_store_order_and_the_last_row_of_a_cell_wins() {
    let rows =
        vec![entry(2, 1, 5, 0), entry(2, 0, 3, 0), entry(0, 1, 7, 1), entry(1, 0, 1, 0), entry(2, 1, 9, 0)];
    let l = StockLedger::new(&[10, 10, 10], 2, rows, LedgerConfig::default());
    let on_hand = |store, sku| l.level(StoreIdx(store), SkuIdx(sku)).map(|v| v.on_hand);
    assert_eq!(
        (on_hand(2, 1), on_hand(2, 0), on_hand(0, 1), on_hand(1, 0)),
        (Some(9), Some(3), Some(7), Some(1))
    );
    assert_eq!((on_hand(0, 0), on_hand(1, 1)), (None, None));
    assert_eq!(l.skus_of(StoreIdx(2)), vec![SkuIdx(0), SkuIdx(1)]);
    assert_eq!((l.carrier_count(SkuIdx(0)), l.carrier_count(SkuIdx(1))), (2, 2));
    assert!(l.maybe_available(StoreIdx(0), SkuIdx(1)) && !l.maybe_available(StoreIdx(0), SkuIdx(0)));
}

mod reservation {
    use super::*;

    #[test]
    fn all_lines_or_none() {
        let l = small();
        let lines = [(SkuIdx(0), 8), (SkuIdx(1), 6)];
        let refused = l.reserve(&oid("a"), &[(StoreIdx(0), &lines)], NOW).unwrap().unwrap_err();
        assert_eq!(refused.shortfall, Shortfall::Line { line: 1, missing: 1 });
        assert_eq!(l.level(StoreIdx(0), SkuIdx(0)).unwrap().reserved, 0);
        assert!(l.reservation(&oid("a")).is_none());

        let lines = [(SkuIdx(0), 8), (SkuIdx(1), 5)];
        l.reserve(&oid("a"), &[(StoreIdx(0), &lines)], NOW).unwrap().unwrap();
        let lvl = l.level(StoreIdx(0), SkuIdx(0)).unwrap();
        assert_eq!((lvl.reserved, lvl.available), (8, 0));
        assert!(!l.maybe_available(StoreIdx(0), SkuIdx(0)));
    }

    #[test]
    fn multi_store_reservation_is_atomic() {
        let l = small();
        let a = [(SkuIdx(0), 1)];
        let b = [(SkuIdx(2), 4)];
        let r = l.reserve(&oid("s"), &[(StoreIdx(0), &a), (StoreIdx(1), &b)], NOW).unwrap();
        assert_eq!(
            r.unwrap_err(),
            Refused { shipment: 1, shortfall: Shortfall::Line { line: 0, missing: 1 } }
        );
        assert_eq!(l.level(StoreIdx(0), SkuIdx(0)).unwrap().reserved, 0);
        assert_eq!(l.totals(), (18, 0));
    }

    #[test]
    fn duplicate_order_id_is_refused_without_taking_stock() {
        let l = small();
        let a = [(SkuIdx(0), 1)];
        l.reserve(&oid("d"), &[(StoreIdx(0), &a)], NOW).unwrap().unwrap();
        assert_eq!(
            l.reserve(&oid("d"), &[(StoreIdx(0), &a)], NOW),
            Err(LedgerError::DuplicateOrder(oid("d")))
        );
        assert_eq!(l.level(StoreIdx(0), SkuIdx(0)).unwrap().reserved, 1);
    }

    #[test]
    fn capacity_counts_reservations_per_local_day() {
        let l = small();
        let b = [(SkuIdx(2), 1)];
        for i in 0..2 {
            l.reserve(&oid(&format!("c{i}")), &[(StoreIdx(1), &b)], NOW).unwrap().unwrap();
        }
        let r = l.reserve(&oid("c2"), &[(StoreIdx(1), &b)], NOW).unwrap();
        assert_eq!(r.unwrap_err().shortfall, Shortfall::Capacity { capacity_per_day: 2 });
        // Releasing frees the slot; the next local day starts from zero.
        l.release(&oid("c0")).unwrap();
        assert!(l.reserve(&oid("c3"), &[(StoreIdx(1), &b)], NOW).unwrap().is_ok());
        assert_eq!(l.orders_today(StoreIdx(1), NOW.plus(86_400)), 0);
    }
}

mod lifecycle {
    use super::*;

    #[test]
    fn release_and_commit_are_idempotent() {
        let l = small();
        let a = [(SkuIdx(1), 2)];
        l.reserve(&oid("r"), &[(StoreIdx(0), &a)], NOW).unwrap().unwrap();
        assert_eq!(l.release(&oid("r")), Ok(Transition::Applied));
        assert_eq!(l.release(&oid("r")), Ok(Transition::AlreadyDone));
        assert_eq!(l.level(StoreIdx(0), SkuIdx(1)).unwrap().available, 5);
        assert!(matches!(l.commit(&oid("r")), Err(LedgerError::WrongState { .. })));

        l.reserve(&oid("c"), &[(StoreIdx(0), &a)], NOW).unwrap().unwrap();
        assert_eq!(l.commit(&oid("c")), Ok(Transition::Applied));
        assert_eq!(l.commit(&oid("c")), Ok(Transition::AlreadyDone));
        let lvl = l.level(StoreIdx(0), SkuIdx(1)).unwrap();
        assert_eq!((lvl.on_hand, lvl.reserved, lvl.available), (3, 0, 3));
        assert!(matches!(l.release(&oid("c")), Err(LedgerError::WrongState { .. })));
        assert_eq!(l.release(&oid("zz")), Err(LedgerError::UnknownOrder(oid("zz"))));
    }

    #[test]
    fn reservations_expire_after_ttl_unless_committed() {
        let l = small();
        let a = [(SkuIdx(0), 3)];
        l.reserve(&oid("e1"), &[(StoreIdx(0), &a)], NOW).unwrap().unwrap();
        l.reserve(&oid("e2"), &[(StoreIdx(0), &a)], NOW).unwrap().unwrap();
        l.commit(&oid("e2")).unwrap();
        assert!(l.expire(NOW.plus(59)).is_empty());
        assert_eq!(l.expire(NOW.plus(60)), vec![oid("e1")]);
        assert_eq!(l.reservation(&oid("e1")).unwrap().state, ReservationState::Expired);
        assert_eq!(l.release(&oid("e1")), Ok(Transition::AlreadyDone));
        let lvl = l.level(StoreIdx(0), SkuIdx(0)).unwrap();
        assert_eq!((lvl.on_hand, lvl.reserved), (7, 0));
    }

    /// Only ended records are forgotten; forgetting changes no stock and no day's count, and
    /// an expiry still due for a forgotten order finds nothing to do.
    #[test]
    fn ended_records_are_forgotten_and_held_ones_stay() {
        let l = small();
        let a = [(SkuIdx(0), 2)];
        for id in ["held", "shipped", "cancelled"] {
            l.reserve(&oid(id), &[(StoreIdx(0), &a)], NOW).unwrap().unwrap();
        }
        l.commit(&oid("shipped")).unwrap();
        l.release(&oid("cancelled")).unwrap();
        let before = (l.level(StoreIdx(0), SkuIdx(0)), l.orders_today(StoreIdx(0), NOW));
        assert!(!l.forget_ended(&oid("held")));
        assert!(l.forget_ended(&oid("shipped")) && l.forget_ended(&oid("cancelled")));
        assert!(!l.forget_ended(&oid("shipped")) && !l.forget_ended(&oid("never")));
        assert_eq!((l.level(StoreIdx(0), SkuIdx(0)), l.orders_today(StoreIdx(0), NOW)), before);
        assert!(l.reservation(&oid("shipped")).is_none());
        assert_eq!(l.reservation(&oid("held")).unwrap().state, ReservationState::Held);
        assert_eq!(l.expire(NOW.plus(60)), vec![oid("held")]);
        assert!(l.forget_ended(&oid("held")));
        assert_eq!(l.totals(), (16, 0), "the shipped 2 units left");
    }
}

mod recovery {
    use super::*;

    #[test]
    fn restored_state_matches_the_original() {
        let a = small();
        let lines = [(SkuIdx(0), 3)];
        a.reserve(&oid("h"), &[(StoreIdx(0), &lines)], NOW).unwrap().unwrap();
        let (_, changes) = {
            a.reserve(&oid("c"), &[(StoreIdx(0), &lines)], NOW).unwrap().unwrap();
            a.commit_with_changes(&oid("c")).unwrap()
        };
        let feed = a.add_on_hand(StoreIdx(1), SkuIdx(0), 4).unwrap();
        assert!(feed.new_row && feed.previous_on_hand == 0);

        let b = small();
        for c in changes.iter().chain([&feed.change]) {
            b.restore_cell(c.store, c.sku, c.on_hand, c.safety_stock, c.version);
        }
        for id in ["h", "c"] {
            b.restore_reservation(oid(id), a.reservation(&oid(id)).unwrap()).unwrap();
        }
        for (s, k) in [(0, 0), (0, 1), (1, 0), (1, 2)] {
            assert_eq!(a.level(StoreIdx(s), SkuIdx(k)), b.level(StoreIdx(s), SkuIdx(k)), "({s}, {k})");
        }
        assert_eq!(a.orders_today(StoreIdx(0), NOW), b.orders_today(StoreIdx(0), NOW));
        assert_eq!(b.release(&oid("h")), Ok(Transition::Applied));
        assert_eq!(b.commit(&oid("c")), Ok(Transition::AlreadyDone));
    }

    #[test]
    fn restoring_an_older_day_after_today_keeps_todays_count() {
        let l = small();
        let hold = |day| Reservation {
            holds: vec![Hold { store: StoreIdx(1), sku: SkuIdx(2), qty: 1 }],
            day,
            expires_at: NOW,
            state: ReservationState::Committed,
        };
        l.restore_reservation(oid("today"), hold(TimeZone::china().local_day(NOW))).unwrap();
        l.restore_reservation(oid("yesterday"), hold(TimeZone::china().local_day(NOW) - 1)).unwrap();
        assert_eq!(l.orders_today(StoreIdx(1), NOW), 1);
    }

    #[test]
    fn versions_grow_with_every_change_of_a_store() {
        let l = small();
        let v1 = l.set_on_hand(StoreIdx(0), SkuIdx(0), 5, None).unwrap().change.version;
        let v2 = l.add_on_hand(StoreIdx(0), SkuIdx(1), 1).unwrap().change.version;
        assert!(v2 > v1);
    }
}

mod feeds {
    use super::*;

    #[test]
    fn absolute_feed_below_reserved_is_kept_and_flagged() {
        let l = small();
        let a = [(SkuIdx(0), 6)];
        l.reserve(&oid("f"), &[(StoreIdx(0), &a)], NOW).unwrap().unwrap();
        let out = l.set_on_hand(StoreIdx(0), SkuIdx(0), 4, None).unwrap();
        assert_eq!(out.level.on_hand, 4);
        assert!(out.level.oversubscribed);
        assert_eq!(out.level.available, 0);
        // Committing still works and never drives on_hand below zero.
        l.commit(&oid("f")).unwrap();
        assert_eq!(l.level(StoreIdx(0), SkuIdx(0)).unwrap().on_hand, 0);
    }

    #[test]
    fn delta_feed_refuses_negative_on_hand_and_creates_new_rows() {
        let l = small();
        assert!(matches!(
            l.add_on_hand(StoreIdx(0), SkuIdx(1), -6),
            Err(LedgerError::NegativeOnHand { on_hand: 5, delta: -6 })
        ));
        assert_eq!(l.level(StoreIdx(0), SkuIdx(1)).unwrap().on_hand, 5);
        assert_eq!(l.carrier_count(SkuIdx(2)), 1);
        let out = l.add_on_hand(StoreIdx(0), SkuIdx(2), 7).unwrap();
        assert!(out.new_row);
        assert_eq!(l.carrier_count(SkuIdx(2)), 2);
        assert!(l.maybe_available(StoreIdx(0), SkuIdx(2)));
        assert!(matches!(
            l.set_on_hand(StoreIdx(0), SkuIdx(2), -1, None),
            Err(LedgerError::NegativeOnHand { .. })
        ));
    }
}

mod multi_row_feeds {
    use super::*;

    fn set(store: u32, sku: u32, on_hand: u32, safety: Option<u32>) -> FeedRow {
        FeedRow {
            store: StoreIdx(store),
            sku: SkuIdx(sku),
            change: StockChange::Set { on_hand, safety_stock: safety },
        }
    }

    fn add(store: u32, sku: u32, delta: i64) -> FeedRow {
        FeedRow { store: StoreIdx(store), sku: SkuIdx(sku), change: StockChange::Add(delta) }
    }

    /// A cell's (on_hand, reserved, safety) if it exists, and its availability bit.
    type Seen = (Option<(u32, u32, u32)>, bool);

    /// Every cell as [`Seen`], then the carrier counts.
    fn snapshot(l: &StockLedger) -> Vec<Seen> {
        let mut out = vec![];
        for store in 0..2 {
            for sku in 0..3 {
                let lvl =
                    l.level(StoreIdx(store), SkuIdx(sku)).map(|v| (v.on_hand, v.reserved, v.safety_stock));
                out.push((lvl, l.maybe_available(StoreIdx(store), SkuIdx(sku))));
            }
        }
        out.extend((0..3).map(|k| (Some((l.carrier_count(SkuIdx(k)), 0, 0)), false)));
        out
    }

    #[test]
    fn a_refused_feed_changes_nothing_not_even_safety_stock_or_new_cells() {
        let l = small();
        let before = snapshot(&l);
        let feed = [set(0, 0, 1000, Some(7)), add(1, 0, 4), set(0, 2, 9, None), add(0, 1, -6)];
        let e = l.apply_feed(&feed).unwrap_err();
        assert_eq!((e.row, e.error), (3, LedgerError::NegativeOnHand { on_hand: 5, delta: -6 }));
        assert_eq!(snapshot(&l), before);
    }

    #[test]
    fn rows_of_one_cell_see_the_rows_before_them() {
        let l = small();
        // 5 + 3 - 7 = 1: fine in this order ...
        let out = l.apply_feed(&[add(0, 1, 3), add(0, 1, -7)]).unwrap();
        assert_eq!(out.iter().map(|o| o.previous_on_hand).collect::<Vec<_>>(), [5, 8]);
        assert_eq!(l.level(StoreIdx(0), SkuIdx(1)).unwrap().on_hand, 1);
        // ... refused in the other, where the first row alone goes below zero.
        assert_eq!(l.apply_feed(&[add(0, 1, -7), add(0, 1, 9)]).unwrap_err().row, 0);
        // A new cell is new for its first row only; versions grow row by row.
        let out = l.apply_feed(&[add(1, 0, 2), set(1, 0, 5, None)]).unwrap();
        assert_eq!((out[0].new_row, out[1].new_row), (true, false));
        assert!(out[1].change.version > out[0].change.version);
        assert_eq!(l.carrier_count(SkuIdx(0)), 2);
    }

    /// A feed that raises a cell to 1000 and is then refused by a later row, raced by routes
    /// reserving from that cell: no route ever sees the 1000.
    #[test]
    fn routes_racing_a_refused_feed_never_see_its_rows() {
        let l = Arc::new(StockLedger::new(
            &[u32::MAX, u32::MAX],
            3,
            vec![entry(0, 0, 10, 0), entry(1, 1, 5, 0)],
            LedgerConfig::default(),
        ));
        let feed: Vec<FeedRow> = std::iter::once(set(0, 0, 1000, None))
            .chain((0..2000).map(|_| add(1, 1, 0)))
            .chain(std::iter::once(add(1, 1, -6)))
            .collect();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let feeder = {
            let (l, stop, feed) = (l.clone(), stop.clone(), feed.clone());
            std::thread::spawn(move || {
                for _ in 0..300 {
                    assert_eq!(l.apply_feed(&feed).unwrap_err().row, feed.len() - 1);
                }
                stop.store(true, Ordering::Relaxed);
            })
        };
        let taken = Arc::new(AtomicUsize::new(0));
        let routers: Vec<_> = (0..3)
            .map(|t| {
                let (l, stop, taken) = (l.clone(), stop.clone(), taken.clone());
                std::thread::spawn(move || {
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let lines = [(SkuIdx(0), 1)];
                        let id = oid(&format!("t{t}-{n}"));
                        if let Ok(Ok(_)) = l.reserve(&id, &[(StoreIdx(0), &lines)], NOW) {
                            taken.fetch_add(1, Ordering::Relaxed);
                        }
                        n += 1;
                    }
                })
            })
            .collect();
        feeder.join().unwrap();
        for r in routers {
            r.join().unwrap();
        }
        let lvl = l.level(StoreIdx(0), SkuIdx(0)).unwrap();
        let taken = taken.load(Ordering::Relaxed) as u32;
        assert!(taken <= 10, "{taken} units reserved of the 10 that exist");
        assert_eq!((lvl.on_hand, lvl.reserved, lvl.oversubscribed), (10, taken, false));
    }
}

mod concurrency {
    use super::*;

    #[test]
    fn eight_threads_on_a_hot_sku_with_100_units_take_exactly_100() {
        let l = Arc::new(StockLedger::new(
            &[u32::MAX; 4],
            1,
            vec![entry(0, 0, 40, 0), entry(1, 0, 30, 0), entry(2, 0, 30, 0)],
            LedgerConfig::default(),
        ));
        let ok = Arc::new(AtomicUsize::new(0));
        std::thread::scope(|s| {
            for t in 0..8 {
                let (l, ok) = (l.clone(), ok.clone());
                s.spawn(move || {
                    for i in 0..100 {
                        let id = oid(&format!("t{t}-{i}"));
                        let line = [(SkuIdx(0), 1)];
                        for store in 0..3 {
                            if let Ok(Ok(_)) = l.reserve(&id, &[(StoreIdx(store), &line)], NOW) {
                                ok.fetch_add(1, Ordering::Relaxed);
                                break;
                            }
                        }
                    }
                });
            }
        });
        assert_eq!(ok.load(Ordering::Relaxed), 100);
        assert_eq!(l.totals(), (100, 100));
        for s in 0..3 {
            assert_eq!(l.level(StoreIdx(s), SkuIdx(0)).unwrap().available, 0);
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Reserve { order: u8, store: u32, sku: u32, qty: u32 },
    Release { order: u8 },
    Commit { order: u8 },
    Set { store: u32, sku: u32, on_hand: u32 },
    Delta { store: u32, sku: u32, delta: i32 },
    Expire { after_s: u32 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..20, 0u32..3, 0u32..3, 1u32..6).prop_map(|(order, store, sku, qty)| Op::Reserve { order, store, sku, qty }),
        1 => (0u8..20).prop_map(|order| Op::Release { order }),
        1 => (0u8..20).prop_map(|order| Op::Commit { order }),
        1 => (0u32..3, 0u32..3, 0u32..12).prop_map(|(store, sku, on_hand)| Op::Set { store, sku, on_hand }),
        1 => (0u32..3, 0u32..3, -6i32..6).prop_map(|(store, sku, delta)| Op::Delta { store, sku, delta }),
        1 => (0u32..120).prop_map(|after_s| Op::Expire { after_s }),
    ]
}

proptest! {
    #![proptest_config(crate::testkit::seeded(200))]

    /// Whatever happens, reserved equals what held reservations hold, and no order was ever
    /// granted more than was available at the time.
    #[test]
    fn reserved_always_matches_held_reservations(ops in proptest::collection::vec(op(), 1..80)) {
        let rows = (0..3).flat_map(|s| (0..3).map(move |k| entry(s, k, 5, 1))).collect();
        let l = StockLedger::new(&[1000; 3], 3, rows, LedgerConfig { reservation_ttl_s: 60, ..LedgerConfig::default() });
        let mut clock = NOW;
        for op in ops {
            match op {
                Op::Reserve { order, store, sku, qty } => {
                    let before = l.level(StoreIdx(store), SkuIdx(sku)).unwrap();
                    let line = [(SkuIdx(sku), qty)];
                    if let Ok(Ok(_)) = l.reserve(&oid(&format!("o{order}")), &[(StoreIdx(store), &line)], clock) {
                        prop_assert!(before.available >= qty);
                    }
                }
                Op::Release { order } => { let _ = l.release(&oid(&format!("o{order}"))); }
                Op::Commit { order } => { let _ = l.commit(&oid(&format!("o{order}"))); }
                Op::Set { store, sku, on_hand } => { l.set_on_hand(StoreIdx(store), SkuIdx(sku), on_hand.into(), None).unwrap(); }
                Op::Delta { store, sku, delta } => { let _ = l.add_on_hand(StoreIdx(store), SkuIdx(sku), delta.into()); }
                Op::Expire { after_s } => { clock = clock.plus(after_s.into()); l.expire(clock); }
            }
            let mut held = [0u32; 9];
            for order in 0..20u8 {
                if let Some(r) = l.reservation(&oid(&format!("o{order}"))) {
                    if r.state == ReservationState::Held {
                        for h in &r.holds {
                            held[(h.store.0 * 3 + h.sku.0) as usize] += h.qty;
                        }
                    }
                }
            }
            for s in 0..3u32 {
                for k in 0..3u32 {
                    let lvl = l.level(StoreIdx(s), SkuIdx(k)).unwrap();
                    prop_assert_eq!(lvl.reserved, held[(s * 3 + k) as usize]);
                    prop_assert_eq!(lvl.available, lvl.on_hand.saturating_sub(lvl.reserved).saturating_sub(lvl.safety_stock));
                    prop_assert_eq!(l.maybe_available(StoreIdx(s), SkuIdx(k)), lvl.available > 0);
                }
            }
        }
    }
}

mod cache_mode {
    use super::*;

    #[test]
    fn sync_keeps_the_newest_version_and_adds_new_rows() {
        let l = small();
        assert_eq!(l.sync_cell(StoreIdx(0), SkuIdx(0), 7, 1, 3), (true, false));
        // An older notification arriving late changes nothing.
        assert_eq!(l.sync_cell(StoreIdx(0), SkuIdx(0), 9, 1, 2), (false, false));
        assert_eq!(l.sync_cell(StoreIdx(0), SkuIdx(0), 9, 1, 3), (false, false));
        let lvl = l.level(StoreIdx(0), SkuIdx(0)).unwrap();
        assert_eq!((lvl.on_hand, lvl.safety_stock, lvl.available), (7, 1, 6));
        // A cell the store never had becomes a carrier.
        assert_eq!(l.carrier_count(SkuIdx(2)), 1);
        assert_eq!(l.sync_cell(StoreIdx(0), SkuIdx(2), 4, 0, 1), (true, true));
        assert_eq!(l.carrier_count(SkuIdx(2)), 2);
        assert!(l.maybe_available(StoreIdx(0), SkuIdx(2)));
        // Down to zero clears the availability bit.
        l.sync_cell(StoreIdx(0), SkuIdx(2), 0, 0, 2);
        assert!(!l.maybe_available(StoreIdx(0), SkuIdx(2)));
    }

    #[test]
    fn settle_keeps_the_slot_and_abandon_gives_everything_back() {
        let l = small();
        let lines = [(SkuIdx(2), 1)];
        l.reserve(&oid("a"), &[(StoreIdx(1), &lines)], NOW).unwrap().unwrap();
        l.reserve(&oid("b"), &[(StoreIdx(1), &lines)], NOW).unwrap().unwrap();
        assert_eq!(l.orders_today(StoreIdx(1), NOW), 2);
        // The database took "a": its free count (3 - 1) arrives, the local hold goes.
        l.sync_cell(StoreIdx(1), SkuIdx(2), 2, 0, 1);
        assert!(l.settle(&oid("a")).is_some());
        assert!(l.reservation(&oid("a")).is_none());
        let lvl = l.level(StoreIdx(1), SkuIdx(2)).unwrap();
        assert_eq!((lvl.on_hand, lvl.reserved), (2, 1), "b is still in flight");
        assert_eq!(l.orders_today(StoreIdx(1), NOW), 2);
        // The database refused "b": stock and slot come back and "b" can be routed again.
        assert!(l.abandon(&oid("b")).is_some());
        assert_eq!(l.level(StoreIdx(1), SkuIdx(2)).unwrap().reserved, 0);
        assert_eq!(l.orders_today(StoreIdx(1), NOW), 1);
        assert!(l.abandon(&oid("b")).is_none());
        l.reserve(&oid("b"), &[(StoreIdx(1), &lines)], NOW).unwrap().unwrap();
    }

    #[test]
    fn synced_day_counts_only_grow_within_a_day() {
        let l = small();
        let day = TimeZone::china().local_day(NOW);
        l.sync_orders(StoreIdx(1), day, 2);
        assert_eq!(l.orders_today(StoreIdx(1), NOW), 2);
        l.sync_orders(StoreIdx(1), day, 1);
        assert_eq!(l.orders_today(StoreIdx(1), NOW), 2);
        let lines = [(SkuIdx(2), 1)];
        let r = l.reserve(&oid("c"), &[(StoreIdx(1), &lines)], NOW).unwrap();
        assert_eq!(r.unwrap_err().shortfall, Shortfall::Capacity { capacity_per_day: 2 });
    }
}
