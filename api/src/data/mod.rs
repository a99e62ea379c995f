//! Dataset directories: `stores.csv`, `stock.csv`, `dcs.csv` and `orders.jsonl` (formats in
//! `data/README.md`). Loading checks every row and returns either everything or an error that
//! names file, line and field.

pub mod cities;
mod error;
pub mod order_json;
mod stock;
mod stores;
mod write;

pub use error::DataError;
pub use write::write_dataset;

use optimizer::ledger::StockEntry;
use optimizer::model::{Network, Order, SkuCatalog};
use optimizer::{Engine, EngineConfig};
use rayon::prelude::*;
use std::path::Path;
use std::time::Instant;

/// What a dataset directory holds, ready for [`optimizer::Engine::new`].
pub struct Loaded {
    pub network: Network,
    pub stock: Vec<StockEntry>,
}

/// Loads `stores.csv`, `dcs.csv` and `stock.csv` from `dir` against the bundled cities.
/// The SKU catalogue is every SKU that appears in `stock.csv`.
pub fn load_network(dir: &Path) -> Result<Loaded, DataError> {
    let cities = cities::bundled();
    let mut stores = stores::read_stores(&dir.join("stores.csv"), &cities)?;
    optimizer::model::sort_spatially(&mut stores);
    let dcs = stores::read_dcs(&dir.join("dcs.csv"), &cities)?;
    let (rows, skus) = stock::read_stock(&dir.join("stock.csv"), &stores)?;
    let catalog = SkuCatalog::new(skus).expect("distinct by construction");
    let network = Network::new(cities, stores, dcs, catalog).map_err(|e| DataError::file(dir, e))?;
    let stock = rows
        .par_iter()
        .map(|(r, _)| StockEntry {
            store: optimizer::model::StoreIdx(r.store),
            sku: network.catalog().get(r.sku).expect("catalogue built from these rows"),
            on_hand: r.on_hand,
            safety_stock: r.safety_stock,
        })
        .collect();
    Ok(Loaded { network, stock })
}

/// Loads `stores.csv` and `dcs.csv` from `dir` and takes the catalogue and stock from `rows`
/// (store_id, sku, on_hand, safety_stock), as a database holds them: a replica's network.
pub fn load_network_with_stock(
    dir: &Path,
    rows: impl IntoIterator<Item = (u32, u32, u32, u32)>,
) -> Result<Loaded, DataError> {
    let cities = cities::bundled();
    let mut stores = stores::read_stores(&dir.join("stores.csv"), &cities)?;
    optimizer::model::sort_spatially(&mut stores);
    let dcs = stores::read_dcs(&dir.join("dcs.csv"), &cities)?;
    let dense: rustc_hash::FxHashMap<u32, u32> =
        stores.iter().enumerate().map(|(i, s)| (s.id.0, i as u32)).collect();
    let mut raw = Vec::new();
    let mut skus = Vec::new();
    for (store_id, sku, on_hand, safety_stock) in rows {
        let store = *dense.get(&store_id).ok_or_else(|| {
            DataError::file(dir, format!("the stock names store {store_id}, which stores.csv lacks"))
        })?;
        raw.push((store, optimizer::model::Sku(sku), on_hand, safety_stock));
        skus.push(optimizer::model::Sku(sku));
    }
    skus.sort_unstable();
    skus.dedup();
    let catalog = SkuCatalog::new(skus).expect("deduplicated");
    let network = Network::new(cities, stores, dcs, catalog).map_err(|e| DataError::file(dir, e))?;
    let stock = raw
        .into_iter()
        .map(|(store, sku, on_hand, safety_stock)| StockEntry {
            store: optimizer::model::StoreIdx(store),
            sku: network.catalog().get(sku).expect("catalogue built from these rows"),
            on_hand,
            safety_stock,
        })
        .collect();
    Ok(Loaded { network, stock })
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
    optimizer::model::sort_spatially(&mut data.stores);
    let mut skus: Vec<_> = data.stock.iter().map(|r| r.sku).collect();
    skus.sort_unstable();
    skus.dedup();
    let catalog = SkuCatalog::new(skus).expect("deduplicated");
    let network = Network::new(cities::bundled(), data.stores, data.dcs, catalog)
        .map_err(|e| DataError::file(Path::new("generated dataset"), e))?;
    let stock = data
        .stock
        .iter()
        .map(|r| StockEntry {
            store: network.store_idx(r.store).expect("generated rows name generated stores"),
            sku: network.catalog().get(r.sku).expect("catalogue built from these rows"),
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
    let mut stores: Vec<_> = network.stores().iter().map(|s| (s.id, s.location)).collect();
    stores.sort_by_key(|(id, _)| *id);
    let mut dcs: Vec<_> = network.dcs().iter().map(|d| (d.id, d.location)).collect();
    dcs.sort_by_key(|(id, _)| *id);
    let mut h = Sha256::new();
    for (tag, list) in [
        (b's', stores),
        (b'd', dcs.into_iter().map(|(id, at)| (optimizer::model::StoreId(id.0), at)).collect()),
    ] {
        h.update([tag]);
        h.update((list.len() as u64).to_le_bytes());
        for (id, at) in list {
            h.update(id.0.to_le_bytes());
            h.update(at.lon().to_bits().to_le_bytes());
            h.update(at.lat().to_bits().to_le_bytes());
        }
    }
    let digest = h.finalize();
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
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
