//! The problem model: identifiers, coordinates, stores, orders and the network that holds them.

mod geo;
mod ids;
mod network;
mod order;
mod store;
pub mod whole;
mod zone;

pub use self::geo::{chord2_to_m, m_to_chord2, GeoError, LonLat, EARTH_RADIUS_M};
pub use ids::{
    BrandId, CityId, CustomerId, DcId, IdError, OrderId, Qty, Sku, StoreId, Timestamp, MAX_ID_LEN,
    MAX_WHOLE_NUMBER_ID,
};
pub use network::{CatalogFull, Network, NetworkError, OrderMismatch, SkuCatalog, SkuIdx, StoreIdx};
pub use order::{BestWord, CouponChoice, Mode, Order, OrderError, OrderLine};
pub use store::{sort_spatially, Capabilities, City, Dc, OpeningHours, Store};
pub use zone::{TimeZone, ZoneError};

/// The rows of `parts`, one part after the other, ordered by `bucket(row)` (each below
/// `buckets`), keeping that order within a bucket: a counting sort, O(rows + buckets), that also
/// concatenates (a parallel parser's chunks are grouped without being joined first).
///
/// Stock rows are grouped by store with it. Loaders number stores in map order
/// ([`sort_spatially`]), so rows that a file lists store by store arrive grouped but with their
/// stores in random order, and a comparison sort of 18 M rows pays O(r log r) for that.
///
/// # Panics
/// If a bucket is `buckets` or more.
pub fn group_by_bucket<T: Copy>(parts: &[Vec<T>], buckets: usize, bucket: impl Fn(&T) -> usize) -> Vec<T> {
    let mut next = vec![0usize; buckets + 1];
    for r in parts.iter().flatten() {
        next[bucket(r) + 1] += 1;
    }
    for i in 0..buckets {
        next[i + 1] += next[i];
    }
    let Some(&fill) = parts.iter().flatten().next() else {
        return Vec::new();
    };
    let mut out = vec![fill; next[buckets]];
    for r in parts.iter().flatten() {
        let at = &mut next[bucket(r)];
        out[*at] = *r;
        *at += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn group_by_bucket_is_a_stable_counting_sort() {
        let rows = vec![(2, 'a'), (0, 'b'), (2, 'c'), (1, 'd'), (0, 'e')];
        let out = super::group_by_bucket(std::slice::from_ref(&rows), 3, |r| r.0);
        assert_eq!(out, vec![(0, 'b'), (0, 'e'), (1, 'd'), (2, 'a'), (2, 'c')]);
        // Parts are taken one after the other, so their order survives within a bucket.
        let parts = vec![vec![(1, 'a'), (0, 'b')], Vec::new(), vec![(1, 'c'), (0, 'd'), (2, 'e')]];
        let out = super::group_by_bucket(&parts, 3, |r| r.0);
        assert_eq!(out, vec![(0, 'b'), (0, 'd'), (1, 'a'), (1, 'c'), (2, 'e')]);
        assert!(super::group_by_bucket(&[Vec::<(usize, char)>::new()], 0, |r| r.0).is_empty());
        assert!(super::group_by_bucket(&[] as &[Vec<(usize, char)>], 4, |r| r.0).is_empty());
    }
}
