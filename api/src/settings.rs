//! Settings shared by every command that routes or plans: which travel-cost model prices legs
//! and gives ETAs.

use clap::ValueEnum;
use optimizer::model::City;
use optimizer::travel::{GreatCircle, HubNetwork, HubNetworkConfig, TravelCost};

/// Which travel-cost model gives ETAs (and, for plans, the leg costs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CostModel {
    /// Great-circle distance at courier speed.
    GreatCircle,
    /// Line haul over the city hub network (petgraph, all pairs precomputed).
    Hub,
}

impl CostModel {
    /// The travel-cost strategy for this choice, over `cities`.
    pub fn build(self, cities: &[City]) -> Box<dyn TravelCost> {
        match self {
            CostModel::GreatCircle => Box::new(GreatCircle::default()),
            CostModel::Hub => Box::new(HubNetwork::new(cities, HubNetworkConfig::default())),
        }
    }
}
