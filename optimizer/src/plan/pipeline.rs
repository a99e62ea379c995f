//! The planning pipeline, written once for every caller (`omniroute optimize`, `POST
//! /v1/plans`, what-if runs): build the candidates, solve, report in external ids, compare with
//! greedy.

use super::{checkout, lp, Comparison, Instance, Plan, PlanConfig, PlanError, PlanReport, Solver, StockView};
use crate::engine::Engine;
use crate::model::Order;
use crate::progress::Progress;
use crate::travel::TravelCost;

/// How to solve a planning run.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct SolveOptions {
    pub solver: Solver,
    /// LP only: presolve and decomposition, min-cost flow for network components.
    pub lp: lp::LpOptions,
    /// LP only: also run greedy on the same instance and report how much dearer it is.
    pub compare_with_greedy: bool,
    /// Shadow prices listed per kind.
    pub top_prices: usize,
}

impl Default for SolveOptions {
    fn default() -> Self {
        SolveOptions {
            solver: Solver::Lp,
            lp: lp::LpOptions::default(),
            compare_with_greedy: true,
            top_prices: 10,
        }
    }
}

/// A wave of orders with its candidates built, ready to solve.
pub struct Planning<'a> {
    engine: &'a Engine,
    view: &'a dyn StockView,
    cost: &'a dyn TravelCost,
    config: PlanConfig,
    orders: &'a [Order],
    instance: Instance,
}

/// What one planning run produced.
#[derive(Clone, Debug)]
pub struct PlanOutcome {
    pub plan: Plan,
    /// The plan in external ids with KPIs, LP statistics and shadow prices.
    pub report: PlanReport,
    /// LP with `compare_with_greedy` only.
    pub greedy_comparison: Option<Comparison>,
}

impl<'a> Planning<'a> {
    /// Builds every order's priced options from the engine's index over `view`'s stock
    /// (stage `candidates`). `config` must be valid ([`PlanConfig::validate`]).
    pub fn new(
        engine: &'a Engine,
        view: &'a dyn StockView,
        cost: &'a dyn TravelCost,
        orders: &'a [Order],
        config: &PlanConfig,
        progress: &dyn Progress,
    ) -> Planning<'a> {
        let instance = Instance::build(engine, view, cost, orders, config, progress);
        Planning { engine, view, cost, config: *config, orders, instance }
    }

    /// The greedy plan: the checkout router over the orders in arrival order, on a scratch
    /// copy of the view's stock (stage `greedy`).
    pub fn greedy(&self, progress: &dyn Progress) -> Plan {
        checkout::greedy(
            self.engine,
            self.view,
            self.cost,
            &self.config,
            self.orders,
            &self.instance.arrival,
            progress,
        )
    }

    /// The instance the solvers work on.
    pub fn instance(&self) -> &Instance {
        &self.instance
    }

    /// Solves the wave (LP stages `presolve`, `solve`) and reports it.
    ///
    /// # Errors
    /// The LP solver failed on a component.
    pub fn solve(&self, options: SolveOptions, progress: &dyn Progress) -> Result<PlanOutcome, PlanError> {
        let plan = match options.solver {
            Solver::Greedy => self.greedy(progress),
            Solver::Lp => lp::solve(&self.instance, options.lp, None, progress)?,
        };
        let network = self.engine.network();
        let mut report = PlanReport::new(network, self.orders, &self.instance, &plan, options.top_prices);
        report.add_legs(network, self.cost, self.orders, self.config.router_config().pickup_prep_s);
        let greedy_comparison = (plan.solver == Solver::Lp && options.compare_with_greedy).then(|| {
            let t = std::time::Instant::now();
            let g = self.greedy(progress);
            let greedy_s = t.elapsed().as_secs_f64();
            Comparison::against_greedy(network, self.orders, &self.instance, &report, &g, greedy_s)
        });
        Ok(PlanOutcome { plan, report, greedy_comparison })
    }
}
