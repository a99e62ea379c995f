//! The routing rules every command that routes or plans shares (`serve`, `route`, `replay`,
//! `bench`, `optimize`, `simulate`): the travel-cost model, the radii per mode, the DC policy,
//! splits, and the planner's weights and candidates. One TOML file (`--routing FILE`) or flags,
//! with the same defaults everywhere; see `Routing`.

use clap::ValueEnum;
use optimizer::model::City;
use optimizer::plan::{CostWeights, PlanConfig};
use optimizer::router::RouterConfig;
use optimizer::travel::{GreatCircle, HubNetwork, HubNetworkConfig, TravelCost};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Which travel-cost model gives ETAs (and, for plans, the leg costs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
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

    pub fn as_str(self) -> &'static str {
        match self {
            CostModel::GreatCircle => "great-circle",
            CostModel::Hub => "hub",
        }
    }
}

/// The routing rules, as a routing file holds them (every key optional):
///
/// ```toml
/// cost = "hub"              # or "great-circle"
/// ship_radius_km = 50.0     # farthest a store ships from
/// pickup_radius_km = 10.0   # farthest an alternative pickup store is from the named one
/// dc_fallback = true        # ship orders no store can serve go to the nearest DC
/// allow_split = true        # a multi-line order may ship from several stores
/// k = 16                    # planner: candidate stores per order and per line
/// [weights]                 # planner: money per km, per hour, per shipment, ...
/// per_km = 1.0
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Routing {
    pub cost: CostModel,
    pub ship_radius_km: f64,
    pub pickup_radius_km: f64,
    pub dc_fallback: bool,
    pub allow_split: bool,
    #[serde(deserialize_with = "optimizer::model::whole::usize")]
    pub k: usize,
    pub weights: CostWeights,
}

impl Default for Routing {
    fn default() -> Self {
        let (router, plan) = (RouterConfig::default(), PlanConfig::default());
        Routing {
            cost: CostModel::Hub,
            ship_radius_km: router.ship_radius_m / 1000.0,
            pickup_radius_km: router.pickup_radius_m / 1000.0,
            dc_fallback: router.dc_fallback,
            allow_split: plan.allow_split,
            k: plan.k,
            weights: plan.weights,
        }
    }
}

impl Routing {
    /// Reads a routing file; an error names the file, and the line and key at fault.
    pub fn read(path: &Path) -> anyhow::Result<Routing> {
        let text =
            std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    /// Parses and checks routing rules from TOML text.
    pub fn parse(text: &str) -> Result<Routing, String> {
        let r: Routing = toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())?;
        r.validate()?;
        Ok(r)
    }

    /// Names the first setting out of range.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.ship_radius_km.is_finite() && self.ship_radius_km > 0.0) {
            return Err(format!(
                "ship_radius_km must be a positive number of kilometres, got {}",
                self.ship_radius_km
            ));
        }
        if !(self.pickup_radius_km.is_finite() && self.pickup_radius_km >= 0.0) {
            return Err(format!(
                "pickup_radius_km must be a number of kilometres, 0 or more (0: only the named store), got {}",
                self.pickup_radius_km
            ));
        }
        self.plan_config().validate().map_err(|e| e.to_string())
    }

    /// The checkout router's settings.
    pub fn router_config(&self) -> RouterConfig {
        self.plan_config().router_config()
    }

    /// The planner's settings under the same rules.
    pub fn plan_config(&self) -> PlanConfig {
        PlanConfig {
            weights: self.weights,
            k: self.k,
            allow_split: self.allow_split,
            dc_fallback: self.dc_fallback,
            ship_radius_m: self.ship_radius_km * 1000.0,
            pickup_radius_m: self.pickup_radius_km * 1000.0,
        }
    }

    /// The travel-cost model over `cities`.
    pub fn travel_cost(&self, cities: &[City]) -> Box<dyn TravelCost> {
        self.cost.build(cities)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_is_the_defaults_and_the_router_and_planner_agree() {
        let r = Routing::parse("").unwrap();
        assert_eq!(r, Routing::default());
        assert_eq!(r.cost, CostModel::Hub);
        assert_eq!(r.router_config(), RouterConfig::default());
        let p = r.plan_config();
        assert_eq!((p.ship_radius_m, p.pickup_radius_m), (50_000.0, 10_000.0));
    }

    #[test]
    fn keys_are_read_and_turned_into_both_configs() {
        let r = Routing::parse(
            "cost = \"great-circle\"\nship_radius_km = 30\npickup_radius_km = 0\ndc_fallback = false\n\
             allow_split = false\nk = 4\n[weights]\nper_km = 2.5\n",
        )
        .unwrap();
        assert_eq!(r.cost, CostModel::GreatCircle);
        let rc = r.router_config();
        assert_eq!(
            (rc.ship_radius_m, rc.pickup_radius_m, rc.dc_fallback, rc.max_shipments),
            (30_000.0, 0.0, false, 1)
        );
        let p = r.plan_config();
        assert_eq!((p.k, p.allow_split, p.dc_fallback, p.weights.per_km), (4, false, false, 2.5));
    }

    #[test]
    fn bad_files_name_the_line_and_key() {
        let e = Routing::parse("ship_radius_km = 30\nshipradius = 3\n").unwrap_err();
        assert!(e.contains("line 2") && e.contains("shipradius"), "{e}");
        let e = Routing::parse("ship_radius_km = -1\n").unwrap_err();
        assert!(e.contains("ship_radius_km"), "{e}");
        let e = Routing::parse("cost = \"road\"\n").unwrap_err();
        assert!(e.contains("cost") || e.contains("road"), "{e}");
        let e = Routing::parse("[weights]\nper_km = -2\n").unwrap_err();
        assert!(e.contains("per_km"), "{e}");
        let e = Routing::parse("k = 0\n").unwrap_err();
        assert!(e.contains('k'), "{e}");
    }
}
