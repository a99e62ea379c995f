//! Fuzz harnesses: every parser of outside input, and the router with the ledger against a
//! simple model. Each takes arbitrary bytes and panics only on a real defect (a parser that
//! panics, accepts something it then cannot round-trip, or a ledger that disagrees with the
//! model). They run twice over: briefly under `cargo test` through bolero (tests below), and for
//! as long as wanted under libFuzzer through the targets in `fuzz/` (`cargo fuzz run NAME`).

use crate::data::cities::CityList;
use crate::data::order_json::{parse_order, OrderJson};
use optimizer::ledger::{FeedRow, StockChange, StockEntry, StockLevel};
use optimizer::model::{
    BrandId, Capabilities, CityId, Dc, DcId, LonLat, Mode, Network, OpeningHours, Order, OrderId, OrderLine,
    Qty, Sku, SkuCatalog, SkuIdx, Store, StoreId, StoreIdx, Timestamp,
};
use optimizer::router::{Router, RouterConfig, Source};
use optimizer::travel::GreatCircle;
use optimizer::{Engine, EngineConfig};
use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;

fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

/// An order from JSON: refused with a field-named error, or accepted and then written and read
/// back to the same order.
pub fn order_json(data: &[u8]) {
    let Ok(order) = parse_order(&text(data)) else { return };
    let again = serde_json::to_string(&OrderJson::from_order(&order)).expect("an order serialises");
    let back = parse_order(&again).unwrap_or_else(|e| panic!("{again} does not read back: {e}"));
    assert_eq!(back, order, "{again}");
}

/// A small network every stateful harness shares: 6 stores on a line east of Shanghai (every
/// third without pickups, one with a capacity of 2 orders a day), SKUs `0` to `3`, one DC.
fn network() -> Network {
    let city = optimizer::model::City {
        name: "Shanghai".into(),
        region: String::new(),
        location: LonLat::new(121.4, 31.2).unwrap(),
        population: 1,
    };
    let stores = (0..6u32)
        .map(|i| Store {
            id: StoreId::numbered(i + 1),
            brand: BrandId::numbered(1),
            city: CityId(0),
            location: LonLat::new(121.4 + 0.01 * f64::from(i), 31.2).unwrap(),
            capabilities: Capabilities { pickup: i % 3 != 2, ship: true },
            capacity_per_day: if i == 1 { 2 } else { 1_000 },
            hours: OpeningHours::ALWAYS,
        })
        .collect();
    let dc = Dc { id: DcId::numbered(1), city: CityId(0), location: LonLat::new(121.0, 31.0).unwrap() };
    let catalog = SkuCatalog::new((0..4).map(Sku::numbered).collect()).unwrap();
    Network::new(vec![city], stores, vec![dc], catalog).unwrap()
}

/// A stock feed body against the small network: refused with a named error, or parsed into rows
/// that the ledger then applies all or none, leaving every cell as the rows say.
pub fn feed_json(data: &[u8]) {
    let engine = Engine::new(network(), Vec::<StockEntry>::new(), EngineConfig::default());
    let Ok(rows) = crate::server::routes::stock::parse_feed(
        &engine,
        data,
        1_000,
        &crate::server::auth::Caller::unscoped(crate::server::auth::Role::StoreSystem),
    ) else {
        return;
    };
    let before: Vec<Option<StockLevel>> = cells(&engine).collect();
    match engine.apply_feed(&rows) {
        Ok(outcomes) => {
            assert_eq!(outcomes.len(), rows.len());
            let mut want: HashMap<(StoreIdx, SkuIdx), (u32, u32)> = HashMap::new();
            for r in &rows {
                let (on_hand, safety) = want.entry((r.store, r.sku)).or_default();
                match r.change {
                    StockChange::Set { on_hand: v, safety_stock } => {
                        *on_hand = v;
                        *safety = safety_stock.unwrap_or(*safety);
                    }
                    StockChange::Add(d) => {
                        *on_hand = u32::try_from(i64::from(*on_hand) + d).expect("checked")
                    }
                }
            }
            for ((store, sku), (on_hand, safety)) in want {
                let level = engine.ledger().level(store, sku).expect("a fed cell exists");
                assert_eq!((level.on_hand, level.safety_stock, level.reserved), (on_hand, safety, 0));
            }
        }
        Err(_) => assert!(cells(&engine).eq(before), "a refused feed changed nothing"),
    }
}

fn cells(engine: &Engine) -> impl Iterator<Item = Option<StockLevel>> + '_ {
    let skus = engine.network().catalog().len() as u32;
    (0..6u32).flat_map(move |s| (0..skus).map(move |k| engine.ledger().level(StoreIdx(s), SkuIdx(k))))
}

fn file_harness<T>(
    data: &[u8],
    parse: impl Fn(&Path, &[u8]) -> Result<T, crate::data::DataError>,
) -> Option<T> {
    match parse(Path::new("fuzz.csv"), data) {
        Ok(v) => Some(v),
        Err(e) => {
            let message = e.to_string();
            assert!(message.starts_with("fuzz.csv"), "errors name the file: {message}");
            None
        }
    }
}

/// `cities.csv`: refused naming the file, or a list in which every city is found by its name.
pub fn cities_csv(data: &[u8]) {
    if let Some(list) = file_harness(data, CityList::parse) {
        for (i, c) in list.cities.iter().enumerate() {
            let found = list.find(&c.name).expect("a city is found by its name");
            assert_eq!(list.cities[usize::from(found.0)].name, c.name, "city {i}");
        }
    }
}

fn bundled() -> &'static CityList {
    static CITIES: OnceLock<CityList> = OnceLock::new();
    CITIES.get_or_init(CityList::bundled)
}

/// `stores.csv` with the bundled cities: refused naming the file, or stores with distinct ids
/// and cities of the list.
pub fn stores_csv(data: &[u8]) {
    let cities = bundled();
    if let Some((stores, placed)) = file_harness(data, |p, b| crate::data::stores::parse_stores(p, b, cities))
    {
        let ids: std::collections::HashSet<&StoreId> = stores.iter().map(|s| &s.id).collect();
        assert_eq!(ids.len(), stores.len());
        assert!(placed <= stores.len());
        assert!(stores.iter().all(|s| usize::from(s.city.0) < cities.cities.len()));
    }
}

/// `dcs.csv` with the bundled cities.
pub fn dcs_csv(data: &[u8]) {
    let cities = bundled();
    if let Some(dcs) = file_harness(data, |p, b| crate::data::stores::parse_dcs(p, b, cities)) {
        assert!(dcs.iter().all(|d| usize::from(d.city.0) < cities.cities.len()));
    }
}

/// `stock.csv` for the small network's stores: refused naming the file, or rows of those stores,
/// one per (store, SKU), with a sorted catalogue of distinct SKUs.
pub fn stock_csv(data: &[u8]) {
    let net = network();
    if let Some((rows, skus)) =
        file_harness(data, |p, b| crate::data::stock::parse_stock(p, b.to_vec(), net.stores()))
    {
        assert!(skus.windows(2).all(|w| w[0] < w[1]), "catalogue sorted and distinct");
        let mut seen = std::collections::HashSet::new();
        for (r, _) in &rows {
            assert!((r.store as usize) < net.stores().len() && (r.sku as usize) < skus.len());
            assert!(seen.insert((r.store, r.sku)), "one row per cell");
        }
    }
}

/// `dataset.toml`: refused naming the file and line, or settings with a reach above zero.
pub fn dataset_toml(data: &[u8]) {
    if let Ok(s) = crate::data::dataset::parse(Path::new("dataset.toml"), &text(data)) {
        assert!(s.max_customer_distance_m > 0.0);
    }
}

/// The planner's settings (a routing file's planner keys, TOML; the same shape `POST /v1/plans` takes
/// as JSON): refused with a reason, or settings every plan can use, that read back the same
/// after writing them as JSON.
pub fn plan_config(data: &[u8]) {
    let Ok(config) = toml::from_str::<optimizer::plan::PlanConfig>(&text(data)) else { return };
    if config.validate().is_err() {
        return;
    }
    let json = serde_json::to_string(&config).expect("a config serialises");
    let back: optimizer::plan::PlanConfig =
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("{json} does not read back: {e}"));
    assert_eq!(back, config, "{json}");
    assert!(back.validate().is_ok());
}

/// The API keys file: refused with a reason, or keys that each authenticate as their role.
pub fn api_keys(data: &[u8]) {
    let text = text(data);
    let Ok(keys) = crate::server::auth::ApiKeys::parse(&text) else { return };
    for pair in text.split([',', '\n']).map(str::trim).filter(|p| !p.is_empty() && !p.starts_with('#')) {
        let (_, key) = pair.split_once(':').expect("parsed");
        assert!(keys.role_of(key.trim().as_bytes()).is_some(), "{key} authenticates");
    }
}

/// Reads the next byte of the input, 0 past its end.
struct Bytes<'a>(std::slice::Iter<'a, u8>);

impl Bytes<'_> {
    fn next(&mut self) -> u8 {
        self.0.next().copied().unwrap_or(0)
    }
    fn more(&self) -> bool {
        self.0.len() > 0
    }
}

/// What the model expects of one cell.
#[derive(Clone, Copy, Default, Debug, PartialEq)]
struct Cell {
    on_hand: u32,
    reserved: u32,
    safety: u32,
}

/// The router and ledger against a model: the input is the initial stock and then a sequence
/// of routes (ship or pickup, one to three lines), cancels, ships, feeds and clock steps. After
/// every step each cell's on_hand, reserved and safety stock equal the model's; a store
/// shipment only ever takes units the model says were available, a store never takes more
/// orders in a day than its capacity, and a refused feed changes nothing.
pub fn router_ledger(data: &[u8]) {
    let mut b = Bytes(data.iter());
    let mut model: HashMap<(u32, u32), Cell> = HashMap::new();
    let mut stock = Vec::new();
    for s in 0..6u32 {
        for k in 0..4u32 {
            let v = b.next();
            if v % 3 != 0 {
                let cell = Cell { on_hand: u32::from(v % 7), reserved: 0, safety: u32::from(v / 128) };
                model.insert((s, k), cell);
                stock.push(StockEntry {
                    store: StoreIdx(s),
                    sku: SkuIdx(k),
                    on_hand: cell.on_hand,
                    safety_stock: cell.safety,
                });
            }
        }
    }
    let engine = Engine::new(network(), stock, EngineConfig::default());
    let router = Router::new(RouterConfig::default(), GreatCircle::default());
    let mut now = Timestamp(1_794_326_400);
    // Order number -> what it holds; `active` while held.
    struct Held {
        cells: Vec<((u32, u32), u32)>,
        stores: Vec<(u32, i64)>,
        active: bool,
    }
    let mut orders: HashMap<u8, Held> = HashMap::new();
    // Orders counted against each store's capacity on each day.
    let mut day_orders: HashMap<(u32, i64), u32> = HashMap::new();
    let day = |t: Timestamp| engine.network().zone().local_day(t);
    // A release or an expiry gives back the units and the capacity slot.
    let give_back =
        |h: &mut Held, model: &mut HashMap<(u32, u32), Cell>, day_orders: &mut HashMap<(u32, i64), u32>| {
            for (c, q) in &h.cells {
                model.get_mut(c).expect("held cell").reserved -= q;
            }
            for key in &h.stores {
                *day_orders.get_mut(key).expect("counted") -= 1;
            }
            h.active = false;
        };
    while b.more() {
        let op = b.next();
        let n = b.next() % 16;
        let id = OrderId::parse(&format!("F-{n}")).unwrap();
        match op % 6 {
            0 | 1 => {
                let o = order(&id, &mut b, now);
                if orders.contains_key(&n) {
                    // An id that holds (or held) a reservation never reserves again.
                    if let Ok(d) = router.route_at(&engine, &o, now) {
                        assert!(d.reservation_expires_at.is_none(), "an id reserves once");
                    }
                    continue;
                }
                let d = router.route_at(&engine, &o, now).expect("a new id routes");
                let mut held = Held { cells: Vec::new(), stores: Vec::new(), active: true };
                for s in &d.shipments {
                    let Source::Store(store) = s.source else { continue };
                    let count = day_orders.entry((store.0, day(now))).or_default();
                    *count += 1;
                    assert!(*count <= engine.network().store(store).capacity_per_day, "capacity kept");
                    held.stores.push((store.0, day(now)));
                    for l in &s.lines {
                        let cell =
                            model.get_mut(&(store.0, l.sku.0)).expect("a store ships only what it stocks");
                        let free = cell.on_hand.saturating_sub(cell.reserved).saturating_sub(cell.safety);
                        assert!(l.qty <= free, "store {} sku {}: {} of {free} free", store.0, l.sku.0, l.qty);
                        cell.reserved += l.qty;
                        held.cells.push(((store.0, l.sku.0), l.qty));
                    }
                }
                assert_eq!(d.reservation_expires_at.is_some(), !held.stores.is_empty());
                if !held.stores.is_empty() {
                    orders.insert(n, held);
                }
            }
            2 => {
                let r = engine.ledger().release(&id);
                if let Some(h) = orders.get_mut(&n).filter(|h| h.active) {
                    assert!(r.is_ok());
                    give_back(h, &mut model, &mut day_orders);
                }
            }
            3 => {
                let r = engine.ledger().commit(&id);
                if let Some(h) = orders.get_mut(&n).filter(|h| h.active) {
                    assert!(r.is_ok());
                    for (c, q) in &h.cells {
                        let cell = model.get_mut(c).expect("held cell");
                        cell.reserved -= q;
                        cell.on_hand = cell.on_hand.saturating_sub(*q);
                    }
                    h.active = false;
                }
            }
            4 => {
                let (s, k) = (u32::from(n % 6), u32::from(b.next() % 4));
                let v = b.next();
                let change = if v % 2 == 0 {
                    StockChange::Set { on_hand: u32::from(v / 8), safety_stock: (v % 4 == 0).then_some(1) }
                } else {
                    StockChange::Add(i64::from(v / 8) - 8)
                };
                let row = FeedRow { store: StoreIdx(s), sku: SkuIdx(k), change };
                let cell = model.get(&(s, k)).copied().unwrap_or_default();
                match (engine.apply_feed(&[row]), change) {
                    (Ok(_), StockChange::Set { on_hand, safety_stock }) => {
                        let c = model.entry((s, k)).or_default();
                        c.on_hand = on_hand;
                        c.safety = safety_stock.unwrap_or(c.safety);
                    }
                    (Ok(_), StockChange::Add(d)) => {
                        model.entry((s, k)).or_default().on_hand =
                            u32::try_from(i64::from(cell.on_hand) + d).expect("not below zero");
                    }
                    (Err(_), StockChange::Add(d)) => {
                        assert!(i64::from(cell.on_hand) + d < 0, "refused only below zero")
                    }
                    (Err(e), _) => panic!("an absolute feed was refused: {e}"),
                }
            }
            _ => {
                now = Timestamp(now.0 + i64::from(b.next()) * 60);
                for expired in engine.ledger().expire(now) {
                    let n: u8 = expired.as_str()[2..].parse().expect("our ids");
                    let h = orders.get_mut(&n).expect("a known order");
                    assert!(h.active, "only held reservations expire");
                    give_back(h, &mut model, &mut day_orders);
                }
            }
        }
        for (&(s, k), cell) in &model {
            let level = engine.ledger().level(StoreIdx(s), SkuIdx(k)).expect("the cell exists");
            assert_eq!(
                (level.on_hand, level.reserved, level.safety_stock),
                (cell.on_hand, cell.reserved, cell.safety),
                "store {s} sku {k}"
            );
        }
    }
}

/// An order of one to three distinct SKUs from the input: shipped near the stores or picked up
/// at one of them.
fn order(id: &OrderId, b: &mut Bytes<'_>, now: Timestamp) -> Order {
    let spec = b.next();
    let mut skus: Vec<u32> = (0..1 + u32::from(spec % 3)).map(|i| (u32::from(spec / 4) + i) % 4).collect();
    skus.dedup();
    let lines = skus
        .iter()
        .map(|&k| OrderLine::new(Sku::numbered(k), Qty::parse(i64::from(1 + b.next() % 3)).unwrap()))
        .collect();
    let at = LonLat::new(121.39 + 0.012 * f64::from(b.next() % 8), 31.2).unwrap();
    let pickup = spec.is_multiple_of(5);
    let (mode, store) = if pickup {
        (Mode::Pickup, Some(StoreId::numbered(1 + u32::from(b.next() % 6))))
    } else {
        (Mode::Ship, None)
    };
    Order::new(id.clone(), now, at, mode, store, lines).expect("a valid order")
}

#[cfg(test)]
mod tests {
    //! Short fuzz runs on every `cargo test`: the seeds of `fuzz/seeds/<harness>/` and 3,000
    //! mutations of each (a fixed seed, so every run checks the same inputs), then bolero's
    //! random inputs (a failure prints BOLERO_RANDOM_SEED to replay it). Long runs under
    //! libFuzzer: `fuzz/README.md`.

    use rand::{Rng, SeedableRng};

    /// Fragments that parsers treat specially, spliced into seeds.
    const TOKENS: &[&[u8]] = &[
        b",",
        b"\"",
        b"\n",
        b"\r\n",
        b"{",
        b"}",
        b"[",
        b"]",
        b":",
        b"0",
        b"-1",
        b"1.5",
        b"1e309",
        b"null",
        b"true",
        b"9007199254740993",
        b"2147483648",
        b"\\u0000",
        "\u{e9}".as_bytes(),
        "\u{5e97}".as_bytes(),
        b"\x00",
        b"\xff",
        b"#",
        b"=",
        b"24:00",
        b"|",
    ];

    fn mutate(rng: &mut rand_chacha::ChaCha8Rng, seed: &[u8]) -> Vec<u8> {
        let mut v = seed.to_vec();
        for _ in 0..rng.random_range(1..6) {
            let at = rng.random_range(0..=v.len());
            match rng.random_range(0..5) {
                0 if at < v.len() => v[at] = rng.random(),
                1 if at < v.len() => {
                    v.remove(at);
                }
                2 => v.insert(at, rng.random()),
                3 => {
                    let t = TOKENS[rng.random_range(0..TOKENS.len())];
                    v.splice(at..at, t.iter().copied());
                }
                _ => {
                    let end = (at + rng.random_range(0..16)).min(v.len());
                    let piece = v[at..end].to_vec();
                    v.splice(at..at, piece);
                }
            }
        }
        v
    }

    fn seeds(name: &str) -> Vec<Vec<u8>> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds").join(name);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files.iter().map(|f| std::fs::read(f).unwrap()).collect()
    }

    macro_rules! fuzz {
        ($($name:ident),* $(,)?) => {$(
            #[test]
            fn $name() {
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x5eed_0111);
                for seed in seeds(stringify!($name)) {
                    super::$name(&seed);
                    for _ in 0..3_000 {
                        let input = mutate(&mut rng, &seed);
                        let caught = std::panic::catch_unwind(|| super::$name(&input));
                        assert!(caught.is_ok(), "input {:?}", String::from_utf8_lossy(&input));
                    }
                }
                bolero::check!().with_iterations(20_000).with_max_len(4_096).for_each(|data: &[u8]| super::$name(data));
            }
        )*};
    }

    fuzz!(
        order_json,
        feed_json,
        cities_csv,
        stores_csv,
        dcs_csv,
        stock_csv,
        dataset_toml,
        plan_config,
        api_keys,
        router_ledger,
    );
}
