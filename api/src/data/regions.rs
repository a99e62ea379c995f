//! Regions: groups of nearby cities, the unit by which a distributed database (Citus) places
//! stock and orders. A store belongs to its city's region; an order to the region of the city
//! nearest its delivery address (whichever store serves it, so that a retry names the same
//! region). By default a city's region is the one `cities.csv` names (a province), or the city
//! itself when it names none; a dataset's optional `regions.csv` (`city,region`) overrides it.

use super::DataError;
use optimizer::model::{CityId, LonLat, Network, StoreIdx};
use optimizer::travel::{HubNetwork, HubNetworkConfig};
use std::path::Path;
use std::sync::Arc;

/// The file's name inside a dataset directory.
pub const FILE: &str = "regions.csv";

const HEADER: [&str; 2] = ["city", "region"];

/// Longest region name.
const MAX_LEN: usize = 64;

/// Each city's region, by city index.
#[derive(Debug, Clone)]
pub struct Regions {
    of_city: Vec<Arc<str>>,
    /// The hub cities' exact nearest-city lookup (the routing's hub network).
    hubs: Arc<HubNetwork>,
}

impl Regions {
    /// The regions of `net`'s cities, with `dir/regions.csv` when the dataset has one.
    pub fn load(dir: &Path, net: &Network) -> Result<Regions, DataError> {
        let mut of_city: Vec<Arc<str>> = net
            .cities()
            .iter()
            .map(|c| Arc::from(if c.region.is_empty() { c.name.as_str() } else { c.region.as_str() }))
            .collect();
        let path = dir.join(FILE);
        if path.exists() {
            let mut r = csv::ReaderBuilder::new().from_path(&path).map_err(|e| DataError::file(&path, e))?;
            let header = r.headers().map_err(|e| DataError::file(&path, e))?.clone();
            if header.iter().collect::<Vec<_>>() != HEADER {
                return Err(DataError::row(&path, 1, "header", format!("must be `{}`", HEADER.join(","))));
            }
            let mut seen = vec![false; of_city.len()];
            for (i, record) in r.records().enumerate() {
                let line = i as u64 + 2;
                let record = record.map_err(|e| DataError::row(&path, line, "row", e))?;
                if record.len() != 2 {
                    return Err(DataError::row(&path, line, "row", "must have 2 fields: city,region"));
                }
                let city = net.cities().iter().position(|c| c.name == record[0]).ok_or_else(|| {
                    DataError::row(
                        &path,
                        line,
                        "city",
                        format!("`{}` is not a city of the dataset", &record[0]),
                    )
                })?;
                let region = record[1].trim();
                if region.is_empty() || region.len() > MAX_LEN || region.chars().any(char::is_control) {
                    return Err(DataError::row(
                        &path,
                        line,
                        "region",
                        format!("must be 1 to {MAX_LEN} characters without control characters"),
                    ));
                }
                if std::mem::replace(&mut seen[city], true) {
                    return Err(DataError::row(
                        &path,
                        line,
                        "city",
                        format!("`{}` is listed twice", &record[0]),
                    ));
                }
                of_city[city] = Arc::from(region);
            }
        }
        let hubs = Arc::new(HubNetwork::new(net.cities(), HubNetworkConfig::default()));
        Ok(Regions { of_city, hubs })
    }

    /// The region of a city.
    pub fn of_city(&self, city: CityId) -> &str {
        self.of_city.get(usize::from(city.0)).map_or("", |r| r)
    }

    /// The region of a store.
    pub fn of_store(&self, net: &Network, store: StoreIdx) -> &str {
        self.of_city(net.store(store).city)
    }

    /// The region of the hub city nearest `at`.
    pub fn of_location(&self, at: LonLat) -> &str {
        self.of_city(self.hubs.hub_of(at))
    }

    /// How many distinct regions.
    pub fn count(&self) -> usize {
        let mut names: Vec<&str> = self.of_city.iter().map(|r| &**r).collect();
        names.sort_unstable();
        names.dedup();
        names.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use optimizer::model::{
        BrandId, Capabilities, City, Dc, DcId, OpeningHours, Sku, SkuCatalog, Store, StoreId,
    };

    fn city(name: &str, region: &str, lon: f64, lat: f64) -> City {
        City {
            name: name.into(),
            region: region.into(),
            location: LonLat::new(lon, lat).unwrap(),
            population: 1,
        }
    }

    fn network() -> Network {
        let cities = vec![
            city("Shanghai", "23", 121.458, 31.222),
            city("Suzhou", "04", 120.619, 31.299),
            city("Nowhere", "", 100.0, 40.0),
        ];
        let stores = (0..3)
            .map(|i| Store {
                id: StoreId::numbered(i),
                brand: BrandId::numbered(1),
                city: CityId(i as u16),
                location: cities[i as usize].location,
                capabilities: Capabilities { pickup: true, ship: true },
                capacity_per_day: 10,
                hours: OpeningHours::ALWAYS,
            })
            .collect();
        let dc = Dc { id: DcId::numbered(1), city: CityId(0), location: LonLat::new(121.2, 31.0).unwrap() };
        let catalog = SkuCatalog::new(vec![Sku::numbered(1)]).unwrap();
        Network::new(cities, stores, vec![dc], catalog).unwrap()
    }

    #[test]
    fn cities_name_their_region_or_are_their_own_and_orders_take_the_nearest_citys() {
        let dir = tempfile::tempdir().unwrap();
        let net = network();
        let r = Regions::load(dir.path(), &net).unwrap();
        assert_eq!(r.of_store(&net, StoreIdx(0)), "23");
        assert_eq!(r.of_store(&net, StoreIdx(1)), "04");
        assert_eq!(r.of_store(&net, StoreIdx(2)), "Nowhere");
        assert_eq!(r.count(), 3);
        // Kunshan lies between the two, nearer Suzhou's centre.
        assert_eq!(r.of_location(LonLat::new(120.95, 31.38).unwrap()), "04");
        assert_eq!(r.of_location(LonLat::new(121.40, 31.20).unwrap()), "23");
    }

    #[test]
    fn a_regions_file_merges_cities_and_bad_lines_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let net = network();
        std::fs::write(dir.path().join(FILE), "city,region\nSuzhou,yangtze\nShanghai,yangtze\n").unwrap();
        let r = Regions::load(dir.path(), &net).unwrap();
        assert_eq!(r.of_store(&net, StoreIdx(0)), "yangtze");
        assert_eq!(r.of_store(&net, StoreIdx(1)), "yangtze");
        assert_eq!(r.count(), 2);
        for (text, want) in [
            ("town,region\n", "regions.csv:1: field `header`"),
            ("city,region\nAtlantis,x\n", "regions.csv:2: field `city`: `Atlantis` is not a city"),
            ("city,region\nSuzhou,a\nSuzhou,b\n", "regions.csv:3: field `city`: `Suzhou` is listed twice"),
            ("city,region\nSuzhou,\n", "regions.csv:2: field `region`"),
        ] {
            std::fs::write(dir.path().join(FILE), text).unwrap();
            let e = Regions::load(dir.path(), &net).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }
}
