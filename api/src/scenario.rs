//! Scenario files (TOML) for `omniroute simulate`: a base dataset, demand, routing rules, a
//! policy and changes, read and resolved against the base network. Every error names the file,
//! the line and the key.

use crate::data;
use crate::settings::Routing;
use optimizer::generate::{GenConfig, LineMix};
use optimizer::ledger::StockEntry;
use optimizer::model::{
    BrandId, Capabilities, CityId, LonLat, Network, OpeningHours, Order, Sku, SkuIdx, Store, StoreId,
    StoreIdx,
};
use optimizer::sim::changes::{Change, NewStock, Selector};
use optimizer::sim::CheckoutPolicy;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// A scenario file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    name: Option<String>,
    /// Dataset directory, relative to the scenario file (the API's jobs run on a snapshot of
    /// the live network instead and refuse it).
    base: Option<Spanned<PathBuf>>,
    #[serde(default)]
    demand: Option<Spanned<DemandSpec>>,
    #[serde(default)]
    routing: Option<Spanned<Routing>>,
    #[serde(default)]
    policy: Option<Spanned<PolicySpec>>,
    #[serde(default)]
    changes: Vec<Spanned<ChangeSpec>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DemandSpec {
    /// An orders file (JSON lines), relative to the scenario file.
    orders: Option<PathBuf>,
    generate: Option<GenerateSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GenerateSpec {
    orders: usize,
    #[serde(default = "one")]
    seed: u64,
    /// "mixed" (1 to 5 lines) or a number of lines.
    #[serde(default)]
    lines: Option<Lines>,
    #[serde(default = "pickup_share")]
    pickup_share: f64,
    /// Multiplies the number of orders.
    #[serde(default = "unit")]
    surge: f64,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Lines {
    Word(String),
    Count(i64),
}

fn one() -> u64 {
    1
}
fn unit() -> f64 {
    1.0
}
fn pickup_share() -> f64 {
    0.2
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicySpec {
    kind: String,
    ship_after_s: Option<u32>,
    abandon_share: Option<f64>,
    seed: Option<u64>,
    /// `waves`: minutes each wave collects orders before it is planned.
    wave_minutes: Option<u32>,
    /// `duals`: minutes between two plans of the forecast (default 60).
    refresh_minutes: Option<u32>,
    /// `duals`: the seed of the forecast's draw of demand (default the demand's seed + 1).
    forecast_seed: Option<u64>,
    /// `duals`: an orders file to use as the forecast instead of a generated draw.
    forecast_orders: Option<String>,
    /// `duals`: days of demand the forecast draws, each planned on the stock left (default 16;
    /// 1 to 64).
    forecast_draws: Option<u32>,
}

/// Which stores a change applies to: ids, a city, a brand, or a seeded random fraction of a
/// city's stores.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Select {
    ids: Option<Vec<String>>,
    city: Option<String>,
    brand: Option<String>,
    fraction: Option<f64>,
    #[serde(default = "one")]
    seed: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
enum ChangeSpec {
    /// Stores stop shipping and taking pickups.
    Close(Select),
    /// Stock multiplied (randomised rounding), optionally for listed SKUs only.
    Stock {
        #[serde(flatten)]
        select: Select,
        factor: f64,
        skus: Option<Vec<String>>,
    },
    /// Absolute stock for listed cells.
    SetStock(Vec<CellSpec>),
    /// Capacity multiplied or set.
    Capacity {
        #[serde(flatten)]
        select: Select,
        factor: Option<f64>,
        value: Option<u32>,
    },
    /// Ship-from-store or pickup on or off.
    Modes {
        #[serde(flatten)]
        select: Select,
        ship: Option<bool>,
        pickup: Option<bool>,
    },
    /// The ship radius of the routing rules.
    ShipRadiusKm(f64),
    /// DCs on or off: all (`on = false`) or listed ones (`off = ["1"]`).
    Dcs {
        on: Option<bool>,
        off: Option<Vec<String>>,
    },
    NewStore(NewStoreSpec),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CellSpec {
    store: String,
    sku: String,
    on_hand: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewStoreSpec {
    id: String,
    city: String,
    lat: f64,
    lon: f64,
    capacity_per_day: u32,
    #[serde(default)]
    brand: Option<String>,
    #[serde(default = "yes")]
    ship: bool,
    #[serde(default = "yes")]
    pickup: bool,
    /// Stock copied from this store of the base.
    copy_stock_from: Option<String>,
    /// Or given as rows.
    stock: Option<Vec<NewCell>>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewCell {
    sku: String,
    on_hand: u32,
}

/// Where a scenario's orders come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Demand {
    File(PathBuf),
    Generate(GenConfig),
}

/// How a scenario's orders are decided.
#[derive(Debug, Clone, PartialEq)]
pub enum PolicyKind {
    /// Each order on arrival by the checkout router.
    Checkout,
    /// Each window of `wave_s` seconds planned together (LP).
    Waves { wave_s: u32 },
    /// Each order on arrival at leg cost plus the shadow prices of a plan of `forecast`,
    /// planned again every `refresh_s`.
    Duals { refresh_s: u32, draws: u32, forecast: Forecast },
}

/// Where the `duals` policy's forecast comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Forecast {
    /// The demand's generator settings (or, for an orders file, the generator's defaults with
    /// as many orders) with this seed.
    Draw {
        seed: u64,
    },
    File(PathBuf),
}

impl PolicyKind {
    pub fn name(&self) -> &'static str {
        match self {
            PolicyKind::Checkout => "checkout",
            PolicyKind::Waves { .. } => "waves",
            PolicyKind::Duals { .. } => "duals",
        }
    }
}

/// A scenario read from its file, its base not loaded yet.
#[derive(Debug)]
pub struct Scenario {
    pub name: String,
    pub path: PathBuf,
    /// `None` for a scenario sent to the API (its base is the live network).
    pub base: Option<PathBuf>,
    pub demand: Demand,
    pub routing: Routing,
    pub policy: CheckoutPolicy,
    /// Which policy decides: `checkout` (with `policy`), `waves` or `duals`.
    pub kind: PolicyKind,
    text: String,
    changes: Vec<Spanned<ChangeSpec>>,
}

/// An error at a place in a scenario file.
fn at(path: &Path, text: &str, span: std::ops::Range<usize>, msg: impl std::fmt::Display) -> anyhow::Error {
    let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
    anyhow::anyhow!("{}:{line}: {msg}", path.display())
}

impl Scenario {
    /// Reads and checks a scenario file (not its base: see [`Scenario::resolve`]).
    pub fn read(path: &Path) -> anyhow::Result<Scenario> {
        let text =
            std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        Self::parse(path, text, true, Routing::default())
    }

    /// Parses scenario text; errors name `path`. `files` allows a `base` and an orders file
    /// (the command line); without it (the API) both are refused and demand must be generated.
    /// A scenario without `[routing]` takes `defaults` (the API: the service's own rules).
    pub fn parse(path: &Path, text: String, files: bool, defaults: Routing) -> anyhow::Result<Scenario> {
        let file: File = toml::from_str(&text).map_err(|e| {
            let line = e.span().map_or(0, |s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            anyhow::anyhow!("{}:{line}: {}", path.display(), e.message())
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let name = file.name.clone().unwrap_or_else(|| {
            path.file_stem().map_or_else(|| "scenario".into(), |s| s.to_string_lossy().into_owned())
        });
        anyhow::ensure!(
            !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || "-_.".contains(c)),
            "{}: name `{name}` must be letters, digits, `-`, `_` or `.` (it names the result folder)",
            path.display()
        );
        let base = match (&file.base, files) {
            (Some(b), true) => Some(dir.join(b.get_ref())),
            (None, true) => anyhow::bail!("{}: missing key `base` (the dataset directory)", path.display()),
            (Some(b), false) => {
                return Err(at(
                    path,
                    &text,
                    b.span(),
                    "base: a simulation job runs on a snapshot of the live network; leave `base` out",
                ))
            }
            (None, false) => None,
        };
        let mut routing = match &file.routing {
            Some(r) => {
                r.get_ref().validate().map_err(|e| at(path, &text, r.span(), format!("routing.{e}")))?;
                *r.get_ref()
            }
            None => defaults,
        };
        let span = file.demand.as_ref().map_or(0..0, |d| d.span());
        let demand = match (file.demand.as_ref().map(|d| (&d.get_ref().orders, &d.get_ref().generate)), &base)
        {
            (Some((Some(_), Some(_))), _) => {
                return Err(at(path, &text, span, "demand: give `orders` or `generate`, not both"))
            }
            (Some((None, Some(g))), _) => {
                Demand::Generate(gen_config(g).map_err(|e| at(path, &text, span, e))?)
            }
            (Some((Some(f), None)), Some(_)) => Demand::File(dir.join(f)),
            (None | Some((None, None)), Some(base)) => Demand::File(base.join("orders.jsonl")),
            (_, None) => {
                return Err(at(
                    path,
                    &text,
                    span,
                    "demand: a simulation job needs [demand.generate] with `orders`",
                ))
            }
        };
        let mut kind = PolicyKind::Checkout;
        let policy = match &file.policy {
            None => CheckoutPolicy::default(),
            Some(p) => {
                let (span, p) = (p.span(), p.get_ref());
                let fail = |msg: &str| Err(at(path, &text, span.clone(), msg));
                let duals_keys = p.refresh_minutes.is_some()
                    || p.forecast_seed.is_some()
                    || p.forecast_orders.is_some()
                    || p.forecast_draws.is_some();
                if p.kind != "waves" && p.wave_minutes.is_some() {
                    return fail("policy.wave_minutes applies to kind = \"waves\" only");
                }
                if p.kind != "duals" && duals_keys {
                    return fail("policy.refresh_minutes, forecast_seed, forecast_draws and forecast_orders apply to kind = \"duals\" only");
                }
                match p.kind.as_str() {
                    "checkout" => {}
                    "waves" => match p.wave_minutes {
                        Some(m) if (1..=1440).contains(&m) => kind = PolicyKind::Waves { wave_s: m * 60 },
                        _ => return fail("policy.wave_minutes: waves need 1 to 1440 minutes"),
                    },
                    "duals" => {
                        let refresh = p.refresh_minutes.unwrap_or(60);
                        if !(1..=1440).contains(&refresh) {
                            return fail(
                                "policy.refresh_minutes: prices are refreshed every 1 to 1440 minutes",
                            );
                        }
                        let forecast = match (&p.forecast_orders, p.forecast_seed, files) {
                            (Some(_), Some(_), _) => {
                                return fail("policy: give `forecast_orders` or `forecast_seed`, not both")
                            }
                            (Some(_), None, false) => {
                                return fail("policy.forecast_orders: a simulation job draws its forecast; use forecast_seed")
                            }
                            (Some(f), None, true) => Forecast::File(dir.join(f)),
                            (None, seed, _) => Forecast::Draw {
                                seed: seed.unwrap_or(match &demand {
                                    Demand::Generate(g) => g.seed.wrapping_add(1),
                                    Demand::File(_) => 1,
                                }),
                            },
                        };
                        let draws = p.forecast_draws.unwrap_or(16);
                        if !(1..=64).contains(&draws) {
                            return fail("policy.forecast_draws: a forecast draws 1 to 64 days of demand");
                        }
                        kind = PolicyKind::Duals { refresh_s: refresh * 60, draws, forecast };
                    }
                    other => {
                        return Err(at(
                            path,
                            &text,
                            span,
                            format!(
                            "policy.kind: unknown policy `{other}`; use \"checkout\", \"waves\" or \"duals\""
                        ),
                        ))
                    }
                }
                let d = CheckoutPolicy::default();
                let policy = CheckoutPolicy {
                    ship_after_s: p.ship_after_s.unwrap_or(d.ship_after_s),
                    abandon_share: p.abandon_share.unwrap_or(d.abandon_share),
                    seed: p.seed.unwrap_or(d.seed),
                };
                if !(0.0..=1.0).contains(&policy.abandon_share) {
                    return Err(at(path, &text, span, "policy.abandon_share must be from 0 to 1"));
                }
                policy
            }
        };
        // Changes to the routing rules apply here; the others once the base is loaded.
        for c in &file.changes {
            if let ChangeSpec::ShipRadiusKm(km) = c.get_ref() {
                if !(km.is_finite() && *km > 0.0) {
                    return Err(at(
                        path,
                        &text,
                        c.span(),
                        "ship_radius_km must be a positive number of kilometres",
                    ));
                }
                routing.ship_radius_km = *km;
            }
        }
        Ok(Scenario {
            name,
            path: path.to_path_buf(),
            base,
            demand,
            routing,
            policy,
            kind,
            text,
            changes: file.changes,
        })
    }

    /// Resolves the changes against the base network (store ids, cities, brands, SKUs, DCs).
    ///
    /// # Errors
    /// An unknown store, city, brand, SKU or DC, or changes that conflict, named with the line.
    pub fn resolve(&self, network: &Network) -> anyhow::Result<Vec<Change>> {
        let mut out = Vec::new();
        let mut new_ids: Vec<String> = Vec::new();
        for c in &self.changes {
            let err = |msg: String| at(&self.path, &self.text, c.span(), msg);
            let sel = |s: &Select| select(network, s).map_err(err);
            let change = match c.get_ref() {
                ChangeSpec::Close(s) => Change::Close(sel(s)?),
                ChangeSpec::Stock { select: s, factor, skus } => {
                    if !(factor.is_finite() && *factor >= 0.0) {
                        return Err(err(format!("stock.factor must be 0 or more, got {factor}")));
                    }
                    let skus = match skus {
                        Some(v) => Some(
                            v.iter().map(|k| sku(network, k)).collect::<Result<Vec<_>, _>>().map_err(err)?,
                        ),
                        None => None,
                    };
                    Change::StockScale { stores: sel(s)?, skus, factor: *factor, seed: s.seed }
                }
                ChangeSpec::SetStock(cells) => Change::StockSet(
                    cells
                        .iter()
                        .map(|x| Ok((store(network, &x.store)?, sku(network, &x.sku)?, x.on_hand)))
                        .collect::<Result<Vec<_>, String>>()
                        .map_err(err)?,
                ),
                ChangeSpec::Capacity { select: s, factor, value } => {
                    match (factor, value) {
                        (Some(_), Some(_)) | (None, None) => {
                            return Err(err("capacity: give `factor` or `value`, one of them".into()))
                        }
                        (Some(f), None) if !(f.is_finite() && *f >= 0.0) => {
                            return Err(err(format!("capacity.factor must be 0 or more, got {f}")))
                        }
                        _ => {}
                    }
                    Change::Capacity { stores: sel(s)?, factor: *factor, value: *value }
                }
                ChangeSpec::Modes { select: s, ship, pickup } => {
                    if ship.is_none() && pickup.is_none() {
                        return Err(err("modes: give `ship` or `pickup` (true or false)".into()));
                    }
                    Change::Modes { stores: sel(s)?, ship: *ship, pickup: *pickup }
                }
                ChangeSpec::ShipRadiusKm(_) => continue,
                ChangeSpec::Dcs { on, off } => {
                    let keep = match (on, off) {
                        (Some(on), None) => vec![*on; network.dcs().len()],
                        (None, Some(off)) => {
                            for id in off {
                                if !network.dcs().iter().any(|d| d.id.as_str() == id) {
                                    return Err(err(format!("dcs.off: unknown DC `{id}`")));
                                }
                            }
                            network.dcs().iter().map(|d| !off.iter().any(|x| x == d.id.as_str())).collect()
                        }
                        _ => {
                            return Err(err(
                                "dcs: give `on` (true or false) or `off` (a list of DC ids)".into()
                            ))
                        }
                    };
                    Change::Dcs(keep)
                }
                ChangeSpec::NewStore(n) => {
                    if network
                        .store_idx(&StoreId::parse(&n.id).map_err(|e| err(format!("new_store.id: {e}")))?)
                        .is_some()
                        || new_ids.contains(&n.id)
                    {
                        return Err(err(format!("new_store.id: store `{}` already exists", n.id)));
                    }
                    new_ids.push(n.id.clone());
                    let city = city(network, &n.city).map_err(err)?;
                    let location = LonLat::new(n.lon, n.lat).map_err(|e| err(format!("new_store: {e}")))?;
                    let brand = match &n.brand {
                        Some(b) => BrandId::parse(b).map_err(|e| err(format!("new_store.brand: {e}")))?,
                        None => BrandId::numbered(0),
                    };
                    let stock = match (&n.copy_stock_from, &n.stock) {
                        (Some(from), None) => NewStock::CopyOf(store(network, from).map_err(err)?),
                        (None, Some(rows)) => NewStock::Rows(
                            rows.iter()
                                .map(|r| Ok((sku(network, &r.sku)?, r.on_hand)))
                                .collect::<Result<Vec<_>, String>>()
                                .map_err(err)?,
                        ),
                        _ => {
                            return Err(err(
                                "new_store: give `copy_stock_from` or `stock`, one of them".into()
                            ))
                        }
                    };
                    Change::NewStore {
                        store: Store {
                            id: StoreId::parse(&n.id).expect("checked"),
                            brand,
                            city,
                            location,
                            capabilities: Capabilities { pickup: n.pickup, ship: n.ship },
                            capacity_per_day: n.capacity_per_day,
                            hours: OpeningHours::ALWAYS,
                        },
                        stock,
                    }
                }
            };
            out.push(change);
        }
        Ok(out)
    }

    /// The scenario's orders, sorted by arrival.
    pub fn orders(&self, network: &Network) -> anyhow::Result<Vec<Order>> {
        self.demand_orders(network, &self.demand)
    }

    /// The `duals` policy's forecast, sorted by arrival: never the orders replayed, but another
    /// draw of the same demand (for an orders file of `count` orders, the generator's
    /// defaults with as many orders), or the forecast file.
    pub fn forecast(&self, network: &Network, count: usize) -> anyhow::Result<Vec<Order>> {
        let demand = match (&self.kind, &self.demand) {
            (PolicyKind::Duals { forecast: Forecast::File(p), .. }, _) => Demand::File(p.clone()),
            (PolicyKind::Duals { forecast: Forecast::Draw { seed }, draws, .. }, Demand::Generate(g)) => {
                Demand::Generate(GenConfig { seed: *seed, orders: g.orders * *draws as usize, ..g.clone() })
            }
            (PolicyKind::Duals { forecast: Forecast::Draw { seed }, draws, .. }, Demand::File(_)) => {
                Demand::Generate(GenConfig {
                    seed: *seed,
                    orders: count * *draws as usize,
                    ..GenConfig::default()
                })
            }
            _ => return Ok(Vec::new()),
        };
        self.demand_orders(network, &demand)
    }

    fn demand_orders(&self, network: &Network, demand: &Demand) -> anyhow::Result<Vec<Order>> {
        let mut orders = match demand {
            Demand::File(p) => data::read_orders(p)?,
            Demand::Generate(cfg) => {
                let mut cfg = cfg.clone();
                cfg.skus = network.catalog().len() as u32;
                cfg.text_ids =
                    network.catalog().iter().next().is_some_and(|s| s.as_str().starts_with("SKU-"));
                optimizer::generate::orders(
                    network.cities(),
                    network.stores(),
                    &cfg,
                    &optimizer::progress::NoProgress,
                )
                .map_err(|e| anyhow::anyhow!("{}: demand.generate: {e}", self.path.display()))?
            }
        };
        orders.sort_by(|a, b| a.created_at().cmp(&b.created_at()).then_with(|| a.id().cmp(b.id())));
        Ok(orders)
    }
}

fn gen_config(g: &GenerateSpec) -> Result<GenConfig, String> {
    if !(g.surge.is_finite() && g.surge > 0.0) {
        return Err(format!("demand.generate.surge must be above 0, got {}", g.surge));
    }
    if !(0.0..=1.0).contains(&g.pickup_share) {
        return Err(format!("demand.generate.pickup_share must be from 0 to 1, got {}", g.pickup_share));
    }
    let lines = match &g.lines {
        None => LineMix::Mixed,
        Some(Lines::Word(s)) if s == "mixed" => LineMix::Mixed,
        Some(Lines::Count(n)) if (1..=50).contains(n) => LineMix::Fixed(*n as u8),
        Some(v) => return Err(format!("demand.generate.lines must be \"mixed\" or 1 to 50, got {v:?}")),
    };
    Ok(GenConfig {
        orders: (g.orders as f64 * g.surge).round() as usize,
        seed: g.seed,
        lines,
        pickup_share: g.pickup_share,
        ..GenConfig::default()
    })
}

fn store(network: &Network, id: &str) -> Result<StoreIdx, String> {
    StoreId::parse(id).ok().and_then(|s| network.store_idx(&s)).ok_or_else(|| format!("unknown store `{id}`"))
}

fn sku(network: &Network, id: &str) -> Result<SkuIdx, String> {
    Sku::parse(id).ok().and_then(|s| network.catalog().get(&s)).ok_or_else(|| format!("unknown SKU `{id}`"))
}

fn city(network: &Network, name: &str) -> Result<CityId, String> {
    network
        .cities()
        .iter()
        .position(|c| c.name.eq_ignore_ascii_case(name))
        .map(|i| CityId(i as u16))
        .ok_or_else(|| format!("unknown city `{name}`"))
}

fn select(network: &Network, s: &Select) -> Result<Selector, String> {
    let given = [s.ids.is_some(), s.city.is_some(), s.brand.is_some()].iter().filter(|&&x| x).count();
    if given > 1 {
        return Err("choose stores by one of `ids`, `city` or `brand`".into());
    }
    if let Some(f) = s.fraction {
        if !(0.0..=1.0).contains(&f) {
            return Err(format!("fraction must be from 0 to 1, got {f}"));
        }
        let Some(c) = &s.city else { return Err("`fraction` needs a `city`".into()) };
        return Ok(Selector::RandomInCity { city: city(network, c)?, fraction: f, seed: s.seed });
    }
    if let Some(ids) = &s.ids {
        return Ok(Selector::Stores(ids.iter().map(|i| store(network, i)).collect::<Result<_, _>>()?));
    }
    if let Some(c) = &s.city {
        return Ok(Selector::City(city(network, c)?));
    }
    if let Some(b) = &s.brand {
        let b = BrandId::parse(b).map_err(|e| format!("brand: {e}"))?;
        if !network.stores().iter().any(|s| s.brand == b) {
            return Err(format!("no store has brand `{b}`"));
        }
        return Ok(Selector::Brand(b));
    }
    Ok(Selector::All)
}

/// The base of a scenario, loaded once and shared by every scenario on it.
pub struct Base {
    pub network: Network,
    pub stock: Vec<StockEntry>,
}

/// A scenario replayed: its engine (for names in the results) and what the replay measured.
pub struct Simulated {
    pub engine: optimizer::Engine,
    pub run: optimizer::sim::Run,
    /// Per store: its SKU cells with nothing available before the replay (what its stock-outs
    /// are counted from).
    pub empty_before: Vec<u32>,
}

/// What a scenario's result (`report.json`, and a simulation job's result) holds.
#[derive(serde::Serialize)]
pub struct ScenarioResult<'a> {
    pub scenario: &'a str,
    pub policy: &'static str,
    pub routing: &'a Routing,
    pub kpis: &'a optimizer::sim::Report,
}

impl Scenario {
    /// Builds the scenario's engine from `base` and its `changes`, and replays `orders`.
    ///
    /// # Errors
    /// The changes make an invalid network.
    pub fn simulate(
        &self,
        base: &Base,
        changes: &[Change],
        orders: &[Order],
        progress: &dyn optimizer::progress::Progress,
    ) -> anyhow::Result<Simulated> {
        progress.stage("build", 1);
        let changed = optimizer::sim::changes::apply(&base.network, &base.stock, changes)
            .map_err(|e| anyhow::anyhow!("{}: {e}", self.path.display()))?;
        let config = optimizer::EngineConfig {
            ledger: optimizer::ledger::LedgerConfig {
                expected_reservations: 0,
                ..optimizer::ledger::LedgerConfig::default()
            },
            ..optimizer::EngineConfig::default()
        };
        let empty_before = crate::map::source::empty_rows(changed.network.stores().len(), &changed.stock);
        let engine = optimizer::Engine::new(changed.network, changed.stock, config);
        for o in orders {
            // Orders may name SKUs the base lacks: they are learned (and ship from DCs).
            let _ = engine.admit(o);
        }
        let cost = self.routing.travel_cost(engine.network().cities());
        let router = optimizer::router::Router::new(self.routing.router_config(), cost);
        let plan = self.routing.plan_config();
        let run = match &self.kind {
            PolicyKind::Waves { wave_s } => {
                optimizer::sim::replay_waves(&engine, &router, orders, *wave_s, &plan, progress)
            }
            PolicyKind::Duals { refresh_s, draws, .. } => {
                let forecast = self.forecast(engine.network(), orders.len())?;
                let (refresh_s, draws) = (*refresh_s, *draws);
                optimizer::sim::replay_duals(
                    &engine, &router, orders, &forecast, draws, refresh_s, &plan, progress,
                )
            }
            PolicyKind::Checkout => {
                optimizer::sim::replay(&engine, &router, orders, &self.policy, &plan, progress)
            }
        };
        Ok(Simulated { engine, run, empty_before })
    }

    /// The result document of a replay of this scenario.
    pub fn result<'a>(&'a self, report: &'a optimizer::sim::Report) -> ScenarioResult<'a> {
        let policy = self.kind.name();
        ScenarioResult { scenario: &self.name, policy, routing: &self.routing, kpis: report }
    }
}

impl Base {
    /// A snapshot of a live engine: its network, and its stock as it stands (held reservations
    /// taken off on-hand); the simulation never touches the live ledger.
    pub fn snapshot(engine: &optimizer::Engine) -> Base {
        let ledger = engine.ledger();
        let stock = (0..engine.network().stores().len() as u32)
            .flat_map(|s| {
                let s = StoreIdx(s);
                ledger.skus_of(s).into_iter().filter_map(move |k| {
                    let l = ledger.level(s, k)?;
                    Some(StockEntry {
                        store: s,
                        sku: k,
                        on_hand: l.on_hand.saturating_sub(l.reserved),
                        safety_stock: l.safety_stock,
                    })
                })
            })
            .collect();
        Base { network: engine.network().clone(), stock }
    }

    pub fn load(dir: &Path) -> anyhow::Result<Base> {
        let loaded =
            data::load_network(dir).map_err(|e| anyhow::anyhow!("loading dataset {}: {e}", dir.display()))?;
        Ok(Base { network: loaded.network, stock: loaded.stock })
    }
}
