//! The bundled city list (`data/cities_cn.csv`, from GeoNames, CC BY 4.0), compiled into the
//! binary so that every command has it wherever it runs.

use optimizer::model::{City, LonLat};

const CITIES_CSV: &str = include_str!("../../../data/cities_cn.csv");

/// The 330 most populous cities of mainland China, largest first.
pub fn bundled() -> Vec<City> {
    let mut rdr = csv::Reader::from_reader(CITIES_CSV.as_bytes());
    rdr.deserialize::<(String, String, f64, f64, u64)>()
        .map(|row| {
            let (name, province_code, lat, lon, population) = row.expect("bundled cities_cn.csv is valid");
            let location = LonLat::new(lon, lat).expect("bundled coordinates are valid");
            City { name, province_code, location, population }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn bundled_list_has_330_unique_cities_in_china() {
        let cities = super::bundled();
        assert_eq!(cities.len(), 330);
        let mut names: Vec<&str> = cities.iter().map(|c| c.name.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 330);
        assert!(cities
            .iter()
            .all(|c| (73.0..136.0).contains(&c.location.lon()) && (18.0..54.0).contains(&c.location.lat())));
        assert_eq!(cities[0].name, "Shanghai");
    }
}
