//! The problem model: identifiers, coordinates, stores, orders and the network that holds them.

mod geo;
mod ids;
mod network;
mod order;
mod store;

pub use self::geo::{chord2_to_m, m_to_chord2, GeoError, LonLat, EARTH_RADIUS_M};
pub use ids::{BrandId, CityId, DcId, IdError, OrderId, Qty, Sku, StoreId, Timestamp};
pub use network::{Network, NetworkError, SkuCatalog, SkuIdx, StoreIdx};
pub use order::{Mode, Order, OrderError, OrderLine};
pub use store::{sort_spatially, Capabilities, City, Dc, OpeningHours, Store};
