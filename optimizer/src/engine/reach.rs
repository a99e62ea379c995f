//! Whether a customer is within the network's area: no farther than
//! [`crate::model::Network::reach_m`] from
//! every store and DC, so that nobody is routed across an ocean.
//!
//! A coarse grid answers most points at once: a 1° cell whose centre's nearest site, plus the
//! cell's half diagonal, is within reach holds only points within reach; one whose nearest site,
//! minus the half diagonal, is beyond reach holds none (triangle inequality). Only points in the
//! cells between are measured exactly.

use super::Engine;
use crate::model::LonLat;

/// Cells of a 1° grid: 360 columns of longitude by 180 rows of latitude.
const COLS: usize = 360;
const ROWS: usize = 180;

#[derive(Copy, Clone, PartialEq, Eq)]
enum Cell {
    Inside,
    Outside,
    Border,
}

/// The grid, built on first use.
pub(super) struct ReachGrid {
    cells: Vec<Cell>,
}

fn cell_of(at: LonLat) -> usize {
    let col = ((at.lon() + 180.0).floor() as usize).min(COLS - 1);
    let row = ((at.lat() + 90.0).floor() as usize).min(ROWS - 1);
    row * COLS + col
}

impl ReachGrid {
    fn build(engine: &Engine) -> ReachGrid {
        let reach = engine.network().reach_m();
        use rayon::prelude::*;
        let cells = (0..COLS * ROWS)
            .into_par_iter()
            .map(|i| {
                let (row, col) = (i / COLS, i % COLS);
                let (lat0, lon0) = (row as f64 - 90.0, col as f64 - 180.0);
                let centre = LonLat::new(lon0 + 0.5, lat0 + 0.5).expect("in range");
                let corner =
                    LonLat::new(lon0, if lat0 + 1.0 > 0.0 { lat0 } else { lat0 + 1.0 }.clamp(-90.0, 90.0))
                        .expect("in range");
                // The corner nearest the equator is the farthest from the centre.
                let half = centre.distance_m(corner);
                let d = engine.nearest_site_m(centre);
                if d + half <= reach {
                    Cell::Inside
                } else if d - half > reach {
                    Cell::Outside
                } else {
                    Cell::Border
                }
            })
            .collect();
        ReachGrid { cells }
    }
}

impl Engine {
    /// Whether `at` is within [`crate::model::Network::reach_m`] of some store or DC.
    ///
    /// # Runtime
    /// O(1) for most points; O(log n) near the edge of the area. The first call builds a 1° grid
    /// (64,800 nearest-site queries, in parallel).
    pub fn within_reach(&self, at: LonLat) -> bool {
        let grid = self.reach.get_or_init(|| ReachGrid::build(self));
        match grid.cells[cell_of(at)] {
            Cell::Inside => true,
            Cell::Outside => false,
            Cell::Border => self.nearest_site_m(at) <= self.network().reach_m(),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::ledger::StockEntry;
    use crate::model::LonLat;
    use crate::{testkit, Engine, EngineConfig};

    proptest::proptest! {
        #![proptest_config(crate::testkit::seeded(256))]
        /// The grid answers as the exact distance does, everywhere on the globe.
        #[test]
        fn the_grid_agrees_with_the_exact_distance(lon in -180.0f64..180.0, lat in -90.0f64..90.0) {
            let net = testkit::network(vec![testkit::store(1, 121.4, 31.2), testkit::store(2, 2.35, 48.86)], 1)
                .with_reach(1_500_000.0);
            let engine = Engine::new(net, Vec::<StockEntry>::new(), EngineConfig::default());
            let at = LonLat::new(lon, lat).unwrap();
            proptest::prop_assert_eq!(engine.within_reach(at), engine.nearest_site_m(at) <= 1_500_000.0);
        }
    }
}
