//! Plan and simulation jobs: `POST /v1/plans` and `POST /v1/simulations` queue one, a worker
//! thread runs it against a snapshot of live stock, `GET /v1/plans/{id}` and
//! `GET /v1/simulations/{id}` report status, progress and the result.
//!
//! Jobs run one at a time (a plan already uses both cores through rayon) in submission order,
//! on one worker thread behind a bounded queue: a full queue refuses new jobs (429) rather than
//! holding a thread or unbounded memory for each.
//! Plans are computations, not state: they reserve nothing, and the book keeps the last
//! [`KEEP_FINISHED`] finished plans in memory only (a restart forgets them; planners re-submit).

use crate::scenario::{Base, Scenario};
use crate::service::{now, Checkout};
use optimizer::model::Order;
use optimizer::plan::{Comparison, LedgerView, PlanConfig, PlanReport, Planning, SolveOptions, Solver};
use optimizer::progress::Progress;
use parking_lot::Mutex;
use serde::Serialize;
use serde_json::value::RawValue;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Finished plans kept for `GET /v1/plans/{id}`.
pub const KEEP_FINISHED: usize = 64;

/// Where a job is.
#[derive(Clone, Debug)]
pub enum JobState {
    Queued,
    Running,
    /// The result as JSON: `{kpis, lp, shadow_prices, greedy_comparison, assignments, unfilled}`.
    Done(Arc<Box<RawValue>>),
    Failed(String),
}

/// What a job computes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum JobKind {
    Plan,
    Simulation,
}

/// One plan or simulation job.
pub struct PlanJob {
    pub id: String,
    pub kind: JobKind,
    /// Plans only.
    pub solver: Option<Solver>,
    pub orders: usize,
    pub created_at: String,
    pub state: Mutex<JobState>,
    stage: Mutex<&'static str>,
    done: AtomicU64,
    total: AtomicU64,
    finished_at: Mutex<Option<String>>,
}

impl Progress for PlanJob {
    fn stage(&self, name: &'static str, total: u64) {
        *self.stage.lock() = name;
        self.total.store(total, Ordering::Relaxed);
        self.done.store(0, Ordering::Relaxed);
    }
    fn advance(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }
}

/// The status document of a job.
#[derive(Serialize)]
pub struct JobView<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    plan_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    simulation_id: Option<&'a str>,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    solver: Option<&'static str>,
    orders: usize,
    created_at: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    finished_at: Option<String>,
    progress: ProgressView,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<Arc<Box<RawValue>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Serialize)]
struct ProgressView {
    stage: &'static str,
    done: u64,
    total: u64,
}

impl PlanJob {
    pub fn view(&self) -> JobView<'_> {
        let state = self.state.lock().clone();
        let (status, result, error) = match state {
            JobState::Queued => ("queued", None, None),
            JobState::Running => ("running", None, None),
            JobState::Done(r) => ("done", Some(r), None),
            JobState::Failed(e) => ("failed", None, Some(e)),
        };
        JobView {
            plan_id: (self.kind == JobKind::Plan).then_some(self.id.as_str()),
            simulation_id: (self.kind == JobKind::Simulation).then_some(self.id.as_str()),
            status,
            solver: self.solver.map(Solver::as_str),
            orders: self.orders,
            created_at: &self.created_at,
            finished_at: self.finished_at.lock().clone(),
            progress: ProgressView {
                stage: *self.stage.lock(),
                done: self.done.load(Ordering::Relaxed),
                total: self.total.load(Ordering::Relaxed),
            },
            result,
            error,
        }
    }
}

/// Jobs by id, and ids in submission order.
type Jobs = (rustc_hash::FxHashMap<String, Arc<PlanJob>>, VecDeque<String>);

/// What a queued job computes.
enum Work {
    Plan(Vec<Order>, Solver, PlanConfig),
    Simulation(Box<Scenario>),
}

/// A job waiting for the worker: the job and its work.
type Queued = (Arc<PlanJob>, Work);

/// Plan jobs: a bounded queue in front of one worker thread, and the jobs known by id.
pub struct PlanBook {
    jobs: Arc<Mutex<Jobs>>,
    queue: std::sync::mpsc::SyncSender<Queued>,
    /// The thread that runs the jobs; it holds the checkout service until it ends.
    worker: std::thread::JoinHandle<()>,
    /// The dataset's time zone, in which job times are written.
    zone: optimizer::model::TimeZone,
}

/// Why a plan was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueFull {
    /// Jobs waiting behind the running one.
    pub queued: usize,
}

impl PlanBook {
    /// Plans against `checkout`'s network and a snapshot of its stock, one job at a time (a plan
    /// already uses every core through rayon), with at most `max_queued` waiting.
    pub fn new(checkout: Arc<dyn Checkout>, max_queued: usize) -> PlanBook {
        let (queue, rx) = std::sync::mpsc::sync_channel::<Queued>(max_queued);
        let zone = checkout.core().engine().network().zone().clone();
        let worker = std::thread::Builder::new()
            .name("plan-worker".into())
            .spawn(move || {
                while let Ok((job, w)) = rx.recv() {
                    match w {
                        Work::Plan(orders, solver, config) => {
                            work(&*checkout, &job, &orders, solver, &config)
                        }
                        Work::Simulation(scenario) => simulate(&*checkout, &job, &scenario),
                    }
                }
            })
            .expect("plan worker starts");
        PlanBook { jobs: Default::default(), queue, worker, zone }
    }

    /// Stops taking jobs and waits for the one running (if any) to end, so that the worker no
    /// longer holds the checkout service.
    pub fn close(self) {
        let PlanBook { queue, worker, .. } = self;
        drop(queue);
        let _ = worker.join();
    }

    /// The job `id` if it is of `kind`.
    pub fn get(&self, id: &str, kind: JobKind) -> Option<Arc<PlanJob>> {
        self.jobs.lock().0.get(id).filter(|j| j.kind == kind).cloned()
    }

    /// Queues a simulation of `scenario` on a snapshot of the live network and stock.
    ///
    /// # Errors
    /// The queue is full; nothing was registered.
    pub fn submit_simulation(&self, scenario: Scenario, orders: usize) -> Result<Arc<PlanJob>, QueueFull> {
        self.enqueue(JobKind::Simulation, None, orders, Work::Simulation(Box::new(scenario)))
    }

    /// Queues a job. Holds no thread and no more memory than the job's orders while it waits.
    ///
    /// # Errors
    /// The queue is full; nothing was registered.
    pub fn submit(
        &self,
        orders: Vec<Order>,
        solver: Solver,
        config: PlanConfig,
    ) -> Result<Arc<PlanJob>, QueueFull> {
        let n = orders.len();
        self.enqueue(JobKind::Plan, Some(solver), n, Work::Plan(orders, solver, config))
    }

    fn enqueue(
        &self,
        kind: JobKind,
        solver: Option<Solver>,
        orders: usize,
        work: Work,
    ) -> Result<Arc<PlanJob>, QueueFull> {
        let prefix = if kind == JobKind::Plan { "plan" } else { "sim" };
        let id = format!("{prefix}-{:016x}", rand::random::<u64>());
        let job = Arc::new(PlanJob {
            id: id.clone(),
            kind,
            solver,
            orders,
            created_at: self.zone.rfc3339(now()),
            state: Mutex::new(JobState::Queued),
            stage: Mutex::new("queued"),
            done: AtomicU64::new(0),
            total: AtomicU64::new(0),
            finished_at: Mutex::new(None),
        });
        let mut jobs = self.jobs.lock();
        self.queue.try_send((job.clone(), work)).map_err(|_| QueueFull {
            queued: jobs.0.values().filter(|j| matches!(*j.state.lock(), JobState::Queued)).count(),
        })?;
        jobs.0.insert(id.clone(), job.clone());
        jobs.1.push_back(id);
        // Forget the oldest finished plans beyond the limit.
        while jobs.1.len() > KEEP_FINISHED {
            let oldest = jobs.1[0].clone();
            let finished = jobs
                .0
                .get(&oldest)
                .is_none_or(|j| matches!(*j.state.lock(), JobState::Done(_) | JobState::Failed(_)));
            if !finished {
                break;
            }
            jobs.1.pop_front();
            jobs.0.remove(&oldest);
        }
        Ok(job)
    }
}

/// Runs one job on the worker thread and records its outcome.
fn work(checkout: &dyn Checkout, job: &PlanJob, orders: &[Order], solver: Solver, config: &PlanConfig) {
    *job.state.lock() = JobState::Running;
    let t = std::time::Instant::now();
    let outcome = run(checkout, job, orders, solver, config);
    let status = if outcome.is_ok() { "done" } else { "failed" };
    checkout.core().metrics().plans.with_label_values(&[solver.as_str(), status]).inc();
    log::info!(
        "plan {} ({} orders, {}) {status} in {:.2} s",
        job.id,
        orders.len(),
        solver.as_str(),
        t.elapsed().as_secs_f64()
    );
    *job.finished_at.lock() = Some(checkout.core().engine().network().zone().rfc3339(now()));
    *job.state.lock() = match outcome {
        Ok(raw) => JobState::Done(raw),
        Err(e) => JobState::Failed(e),
    };
}

/// Runs a simulation job on the worker thread and records its outcome.
fn simulate(checkout: &dyn Checkout, job: &PlanJob, scenario: &Scenario) {
    *job.state.lock() = JobState::Running;
    let t = std::time::Instant::now();
    let outcome = (|| -> Result<Arc<Box<RawValue>>, String> {
        job.stage("snapshot", 1);
        let base = Base::snapshot(checkout.core().engine());
        let changes = scenario.resolve(&base.network).map_err(|e| e.to_string())?;
        let orders = scenario.orders(&base.network).map_err(|e| e.to_string())?;
        let done = scenario.simulate(&base, &changes, &orders, job).map_err(|e| e.to_string())?;
        let json = serde_json::to_string(&scenario.result(&done.run.report)).map_err(|e| e.to_string())?;
        RawValue::from_string(json).map(Arc::new).map_err(|e| e.to_string())
    })();
    let status = if outcome.is_ok() { "done" } else { "failed" };
    checkout.core().metrics().plans.with_label_values(&["simulation", status]).inc();
    log::info!("simulation {} ({}) {status} in {:.2} s", job.id, scenario.name, t.elapsed().as_secs_f64());
    *job.finished_at.lock() = Some(checkout.core().engine().network().zone().rfc3339(now()));
    *job.state.lock() = match outcome {
        Ok(raw) => JobState::Done(raw),
        Err(e) => JobState::Failed(e),
    };
}

/// Plans `orders` against the live network and a snapshot of its stock.
fn run(
    checkout: &dyn Checkout,
    job: &PlanJob,
    orders: &[Order],
    solver: Solver,
    config: &PlanConfig,
) -> Result<Arc<Box<RawValue>>, String> {
    let core = checkout.core();
    let engine = core.engine();
    let view = LedgerView { network: engine.network(), ledger: engine.ledger(), now: now() };
    let planning = Planning::new(engine, &view, core.router().cost(), orders, config, job);
    let options = SolveOptions { solver, ..SolveOptions::default() };
    let outcome = planning.solve(options, job).map_err(|e| e.to_string())?;
    result_json(&outcome).map(Arc::new)
}

/// A finished plan as the API gives it: the report with the greedy comparison beside it.
pub fn result_json(outcome: &optimizer::plan::PlanOutcome) -> Result<Box<RawValue>, String> {
    #[derive(Serialize)]
    struct Out<'a> {
        #[serde(flatten)]
        report: &'a PlanReport,
        #[serde(skip_serializing_if = "Option::is_none")]
        greedy_comparison: &'a Option<Comparison>,
    }
    let out = Out { report: &outcome.report, greedy_comparison: &outcome.greedy_comparison };
    let json = serde_json::to_string(&out).map_err(|e| e.to_string())?;
    RawValue::from_string(json).map_err(|e| e.to_string())
}
