//! Cities: the bundled list (`data/cities_cn.csv`, from GeoNames, CC BY 4.0, compiled into the
//! binary) or a dataset's own `cities.csv`. Stores and DCs name their city by name (or, for the
//! bundled list, by one of its Chinese names); a store without a city gets the nearest one.

use super::stores::{parse, read_csv};
use super::DataError;
use optimizer::model::{City, CityId, LonLat};
use rstar::primitives::GeomWithData;
use rstar::RTree;
use rustc_hash::FxHashMap;
use std::path::Path;

const CITIES_CSV: &str = include_str!("../../../data/cities_cn.csv");

/// A dataset's cities with the names (and other names) that find them.
pub struct CityList {
    pub cities: Vec<City>,
    names: FxHashMap<String, CityId>,
    tree: RTree<GeomWithData<[f64; 3], u16>>,
}

/// The 330 most populous cities of mainland China, largest first.
pub fn bundled() -> Vec<City> {
    CityList::bundled().cities
}

impl CityList {
    /// The bundled list, with the Chinese names GeoNames gives its cities.
    pub fn bundled() -> CityList {
        let mut rdr = csv::Reader::from_reader(CITIES_CSV.as_bytes());
        let mut cities = Vec::new();
        let mut aliases = Vec::new();
        for row in rdr.deserialize::<(String, String, f64, f64, u64, String)>() {
            let (name, region, lat, lon, population, alt) = row.expect("bundled cities_cn.csv is valid");
            let location = LonLat::new(lon, lat).expect("bundled coordinates are valid");
            aliases.push(alt.split('|').filter(|a| !a.is_empty()).map(String::from).collect::<Vec<_>>());
            cities.push(City { name, region, location, population });
        }
        CityList::new(cities, aliases).expect("bundled names are unique")
    }

    /// A dataset's `cities.csv`: `name`, `lat`, `lon`, `population`, and optionally `region` and
    /// `alt_names` (other names, `|`-separated). Names must be unique; at most 65,535 cities.
    pub fn read(path: &Path) -> Result<CityList, DataError> {
        CityList::parse(path, &super::stores::file_bytes(path)?)
    }

    /// As [`CityList::read`], from the file's bytes (`path` names it in errors).
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<CityList, DataError> {
        let mut seen: FxHashMap<String, u64> = FxHashMap::default();
        let columns = (["name", "lat", "lon", "population"], ["region", "alt_names"]);
        let rows = read_csv(path, bytes, &columns.0, &columns.1, |r, line| {
            let name = r.get("name").unwrap_or("").to_string();
            if name.is_empty() {
                return Err(DataError::row(path, line, "name", "must not be empty"));
            }
            if let Some(first) = seen.insert(name.clone(), line) {
                return Err(DataError::row(
                    path,
                    line,
                    "name",
                    format!("`{name}` already named on line {first}"),
                ));
            }
            let location = super::stores::location(path, line, r.get("lat"), r.get("lon"))?;
            let population = parse(path, line, "population", r.get("population"))?;
            let region = r.get("region").unwrap_or("").to_string();
            let alt: Vec<String> = r
                .get("alt_names")
                .unwrap_or("")
                .split('|')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(String::from)
                .collect();
            Ok((City { name, region, location, population }, alt))
        })?;
        if rows.is_empty() {
            return Err(DataError::file(path, "no cities"));
        }
        let (cities, aliases): (Vec<City>, Vec<Vec<String>>) = rows.into_iter().unzip();
        CityList::new(cities, aliases).map_err(|e| DataError::file(path, e))
    }

    fn new(cities: Vec<City>, aliases: Vec<Vec<String>>) -> Result<CityList, String> {
        if cities.len() > usize::from(u16::MAX) {
            return Err(format!("{} cities, more than the {} a dataset may have", cities.len(), u16::MAX));
        }
        let mut names = FxHashMap::default();
        for (i, c) in cities.iter().enumerate() {
            names.insert(c.name.clone(), CityId(i as u16));
        }
        // Other names never shadow a city's own name, nor an earlier city's other name.
        for (i, alt) in aliases.into_iter().enumerate() {
            for a in alt {
                names.entry(a).or_insert(CityId(i as u16));
            }
        }
        let tree = RTree::bulk_load(
            cities
                .iter()
                .enumerate()
                .map(|(i, c)| GeomWithData::new(c.location.unit_vector(), i as u16))
                .collect(),
        );
        Ok(CityList { cities, names, tree })
    }

    /// The city a name (or another name) refers to.
    pub fn find(&self, name: &str) -> Option<CityId> {
        self.names.get(name).copied()
    }

    /// The city nearest to `at` (great-circle).
    pub fn nearest(&self, at: LonLat) -> CityId {
        let p = self.tree.nearest_neighbor(&at.unit_vector()).expect("a city list is never empty");
        CityId(p.data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_list_has_330_unique_cities_in_china_with_their_chinese_names() {
        let list = CityList::bundled();
        let cities = &list.cities;
        assert_eq!(cities.len(), 330);
        let mut names: Vec<&str> = cities.iter().map(|c| c.name.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 330);
        assert!(cities
            .iter()
            .all(|c| (73.0..136.0).contains(&c.location.lon()) && (18.0..54.0).contains(&c.location.lat())));
        assert_eq!(cities[0].name, "Shanghai");
        assert_eq!(list.find("上海"), list.find("Shanghai"));
        assert_eq!(list.find("成都").map(|c| cities[usize::from(c.0)].name.as_str()), Some("Chengdu"));
        assert_eq!(list.find("Atlantis"), None);
        let near_shanghai = LonLat::new(121.46, 31.22).unwrap();
        assert_eq!(list.nearest(near_shanghai), list.find("Shanghai").unwrap());
    }
}
