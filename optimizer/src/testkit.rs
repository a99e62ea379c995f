//! Helpers shared by this crate's unit tests.

use proptest::test_runner::{Config, RngAlgorithm, RngSeed};

/// A proptest configuration with a fixed seed, so that every run checks the same cases.
pub fn seeded(cases: u32) -> Config {
    Config {
        cases,
        rng_algorithm: RngAlgorithm::ChaCha,
        rng_seed: RngSeed::Fixed(0x5eed_0111),
        failure_persistence: None,
        ..Config::default()
    }
}

use crate::model::{
    BrandId, Capabilities, City, CityId, Dc, DcId, LonLat, Network, OpeningHours, Sku, SkuCatalog, Store,
    StoreId,
};

/// One city (Shanghai) that every fixture store belongs to.
pub fn city() -> City {
    City {
        name: "Shanghai".into(),
        region: "23".into(),
        location: LonLat::new(121.458, 31.222).unwrap(),
        population: 24_874_500,
    }
}

/// A store with both capabilities, always open, with ample capacity.
pub fn store(id: u32, lon: f64, lat: f64) -> Store {
    Store {
        id: StoreId::numbered(id),
        brand: BrandId::numbered(1),
        city: CityId(0),
        location: LonLat::new(lon, lat).unwrap(),
        capabilities: Capabilities { pickup: true, ship: true },
        capacity_per_day: 1_000_000,
        hours: OpeningHours::ALWAYS,
    }
}

/// A network of the given stores, one DC and SKUs `0..skus`.
pub fn network(stores: Vec<Store>, skus: u32) -> Network {
    let catalog = SkuCatalog::new((0..skus).map(Sku::numbered).collect()).unwrap();
    let dc = Dc { id: DcId::numbered(1), city: CityId(0), location: LonLat::new(121.2, 31.0).unwrap() };
    Network::new(vec![city()], stores, vec![dc], catalog).unwrap()
}
