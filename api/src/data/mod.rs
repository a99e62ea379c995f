//! Dataset directories: `stores.csv`, `stock.csv`, `dcs.csv` and `orders.jsonl` (formats in
//! `data/README.md`). Loading checks every row and returns either everything or an error that
//! names file, line and field.

pub mod cities;
pub mod dataset;
mod error;
pub mod order_json;
pub mod prices;
pub mod regions;
pub(crate) mod stock;
pub(crate) mod stores;
mod write;

pub use error::DataError;
pub use write::write_dataset;

use cities::CityList;
use optimizer::ledger::StockEntry;
use optimizer::model::{Network, Order, Sku, SkuCatalog, Store, StoreIdx};
use optimizer::{Engine, EngineConfig};
use rayon::prelude::*;
use std::path::Path;
use std::time::Instant;

/// What a dataset directory holds, ready for [`optimizer::Engine::new`].
pub struct Loaded {
    pub network: Network,
    pub stock: Vec<StockEntry>,
    /// Stores whose city was left empty and that were given the nearest city.
    pub placed_by_distance: usize,
}

/// The cities of a dataset: its own `cities.csv`, else the bundled list.
fn city_list(dir: &Path) -> Result<CityList, DataError> {
    let own = dir.join("cities.csv");
    if own.exists() {
        CityList::read(&own)
    } else {
        Ok(CityList::bundled())
    }
}

/// A dataset's settings, cities, stores (numbered in map order) and DCs.
struct Sites {
    settings: dataset::DatasetSettings,
    cities: CityList,
    stores: Vec<Store>,
    dcs: Vec<optimizer::model::Dc>,
    /// Stores whose city was left empty and that were given the nearest city.
    placed_by_distance: usize,
}

impl Sites {
    fn read(dir: &Path) -> Result<Sites, DataError> {
        let settings = dataset::read(dir)?;
        let cities = city_list(dir)?;
        let (mut stores, placed_by_distance) = stores::read_stores(&dir.join("stores.csv"), &cities)?;
        if placed_by_distance > 0 {
            log::info!(
                "{}: {placed_by_distance} stores name no city; each was given the nearest city of the list",
                dir.join("stores.csv").display()
            );
        }
        optimizer::model::sort_spatially(&mut stores);
        let dcs = stores::read_dcs(&dir.join("dcs.csv"), &cities)?;
        Ok(Sites { settings, cities, stores, dcs, placed_by_distance })
    }

    fn into_network(self, dir: &Path, catalog: SkuCatalog) -> Result<Network, DataError> {
        Ok(Network::new(self.cities.cities, self.stores, self.dcs, catalog)
            .map_err(|e| DataError::file(dir, e))?
            .with_zone(self.settings.zone)
            .with_reach(self.settings.max_customer_distance_m))
    }
}

/// Loads `dataset.toml`, `cities.csv` (or the bundled cities), `stores.csv`, `dcs.csv` and
/// `stock.csv` from `dir`. The SKU catalogue is every SKU that appears in `stock.csv`.
pub fn load_network(dir: &Path) -> Result<Loaded, DataError> {
    let sites = Sites::read(dir)?;
    let placed_by_distance = sites.placed_by_distance;
    let (rows, skus) = stock::read_stock(&dir.join("stock.csv"), &sites.stores)?;
    let catalog = SkuCatalog::new(skus).expect("distinct by construction");
    let network = sites.into_network(dir, catalog)?;
    let stock = rows
        .par_iter()
        .map(|(r, _)| StockEntry {
            store: StoreIdx(r.store),
            sku: optimizer::model::SkuIdx(r.sku),
            on_hand: r.on_hand,
            safety_stock: r.safety_stock,
        })
        .collect();
    Ok(Loaded { network, stock, placed_by_distance })
}

/// Loads the dataset's sites from `dir` and takes the catalogue and stock from `rows`
/// (store_id, sku, on_hand, safety_stock), as a database holds them: a replica's network.
pub fn load_network_with_stock<'a>(
    dir: &Path,
    rows: impl IntoIterator<Item = (&'a str, &'a str, u32, u32)>,
) -> Result<Loaded, DataError> {
    let sites = Sites::read(dir)?;
    let placed_by_distance = sites.placed_by_distance;
    let dense: rustc_hash::FxHashMap<&str, u32> =
        sites.stores.iter().enumerate().map(|(i, s)| (s.id.as_str(), i as u32)).collect();
    let mut raw = Vec::new();
    let mut skus: rustc_hash::FxHashMap<&str, u32> = rustc_hash::FxHashMap::default();
    for (store_id, sku, on_hand, safety_stock) in rows {
        let store = *dense.get(store_id).ok_or_else(|| {
            DataError::file(dir, format!("the stock names store {store_id}, which stores.csv lacks"))
        })?;
        let n = skus.len() as u32;
        let k = *skus.entry(sku).or_insert(n);
        raw.push((store, k, on_hand, safety_stock));
    }
    let mut names: Vec<(&str, u32)> = skus.into_iter().collect();
    names.sort_unstable();
    let mut position = vec![0u32; names.len()];
    let mut catalog = Vec::with_capacity(names.len());
    for (i, (name, k)) in names.iter().enumerate() {
        position[*k as usize] = i as u32;
        catalog.push(
            Sku::parse(name)
                .map_err(|e| DataError::file(dir, format!("the stock names sku `{name}`: {e}")))?,
        );
    }
    let catalog = SkuCatalog::new(catalog).expect("deduplicated");
    drop(dense);
    let network = sites.into_network(dir, catalog)?;
    let stock = raw
        .into_iter()
        .map(|(store, k, on_hand, safety_stock)| StockEntry {
            store: StoreIdx(store),
            sku: optimizer::model::SkuIdx(position[k as usize]),
            on_hand,
            safety_stock,
        })
        .collect();
    Ok(Loaded { network, stock, placed_by_distance })
}

/// Loads a dataset directory into an engine; returns it with the seconds it took.
pub fn load_engine(dir: &Path, config: EngineConfig) -> Result<(Engine, f64), DataError> {
    let t = Instant::now();
    let loaded = load_network(dir)?;
    let engine = Engine::new(loaded.network, loaded.stock, config);
    Ok((engine, t.elapsed().as_secs_f64()))
}

/// Builds an engine straight from a generated dataset (no files).
pub fn generated_engine(
    mut data: optimizer::generate::Dataset,
    config: EngineConfig,
) -> Result<Engine, DataError> {
    // Stock rows name stores by their generated position; keep the ids before sorting.
    let ids: Vec<optimizer::model::StoreId> = data.stores.iter().map(|s| s.id.clone()).collect();
    optimizer::model::sort_spatially(&mut data.stores);
    let mut numbers: Vec<u32> = data.stock.iter().map(|r| r.sku).collect();
    numbers.par_sort_unstable();
    numbers.dedup();
    let catalog = SkuCatalog::new(numbers.iter().map(|&n| data.sku(n)).collect()).expect("deduplicated");
    let network = Network::new(cities::bundled(), data.stores, data.dcs, catalog)
        .map_err(|e| DataError::file(Path::new("generated dataset"), e))?;
    let store_of: Vec<StoreIdx> = ids.iter().map(|id| network.store_idx(id).expect("generated")).collect();
    let max = numbers.last().copied().unwrap_or(0) as usize;
    let mut sku_of = vec![optimizer::model::SkuIdx(u32::MAX); max + 1];
    for (i, &n) in numbers.iter().enumerate() {
        sku_of[n as usize] = optimizer::model::SkuIdx(i as u32);
    }
    let stock = data
        .stock
        .iter()
        .map(|r| StockEntry {
            store: store_of[r.store as usize],
            sku: sku_of[r.sku as usize],
            on_hand: r.on_hand,
            safety_stock: r.safety_stock,
        })
        .collect();
    Ok(Engine::new(network, stock, config))
}

/// A fingerprint of the network's stores and DCs (ids and locations): what a state directory or
/// a database is bound to, so that state written for one dataset is never served with another.
/// Independent of row order in the files; a change of stock, capacity or hours keeps it.
pub fn fingerprint(network: &Network) -> String {
    use sha2::{Digest, Sha256};
    let mut sites: Vec<(u8, &str, optimizer::model::LonLat)> = network
        .stores()
        .iter()
        .map(|s| (b's', s.id.as_str(), s.location))
        .chain(network.dcs().iter().map(|d| (b'd', d.id.as_str(), d.location)))
        .collect();
    sites.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    let mut h = Sha256::new();
    for (kind, id, at) in sites {
        h.update([kind]);
        h.update((id.len() as u64).to_le_bytes());
        h.update(id.as_bytes());
        h.update(at.lon().to_bits().to_le_bytes());
        h.update(at.lat().to_bits().to_le_bytes());
    }
    h.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// Reads an `orders.jsonl` file (one order per line; blank lines are skipped).
pub fn read_orders(path: &Path) -> Result<Vec<Order>, DataError> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    parse_orders(path, &text)
}

/// Parses orders from JSON-lines text; `path` names the source in errors.
pub fn parse_orders(path: &Path, text: &str) -> Result<Vec<Order>, DataError> {
    let lines: Vec<(usize, &str)> = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()).collect();
    lines
        .par_iter()
        .map(|(i, l)| {
            order_json::parse_order(l).map_err(|e| DataError::row(path, *i as u64 + 1, e.field, e.message))
        })
        .collect()
}
