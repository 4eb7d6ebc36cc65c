//! The scheduler's logic, no I/O: what it knows of executors (status reports, cached keys,
//! the membership view), the Python version check, placement, and turning one call of a
//! validated DAG into one [`Schedule`] per function.
//!
//! Placement of one function: among executors with a fresh status at or below the
//! utilisation threshold (all fresh executors when every one is above it), the one whose
//! cache holds the most keys referenced by the function's arguments; ties broken uniformly
//! at random by the injected RNG. Executors of draining nodes are never placed on (they
//! finish what they hold, then leave).
//!
//! The membership view decides which nodes exist: reports (executor status, cached keys)
//! are taken only from nodes it holds live. A status an executor sent just before its node
//! left (or was declared dead) can arrive after the view said so; taken, it would make the
//! node placeable again for a while, and a call placed there would be lost: no later view
//! change names that node gone, so nothing runs the call again.

use super::dag::DagPlan;
use crate::ids::{CallId, Key, NodeId, NodeRef};
use crate::net::ActorRef;
use crate::protocol::{
    Arg, Consistency, Downstream, ExecutorStatus, FunctionError, NodeState, Reply, Schedule,
};
use rand::Rng;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

pub use crate::protocol::FunctionMeta;

/// A validated DAG with the registration of each of its functions (same order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallPlan {
    pub dag: DagPlan,
    pub functions: Vec<FunctionMeta>,
    /// `false` for `CallFunction` (a one-function call is not recorded as a DAG call).
    pub is_dag: bool,
}

/// One call to place.
#[derive(Clone, Debug)]
pub struct CallRequest {
    pub call: CallId,
    pub args: BTreeMap<String, Vec<Arg>>,
    pub consistency: Consistency,
    pub reply: Reply,
    pub started_us: u64,
}

struct Known {
    status: ExecutorStatus,
    seen: Instant,
}

/// The scheduler's state.
pub struct SchedulerCore {
    /// The nodes the membership view holds live (this generation of each): reports from
    /// any other node are ignored.
    live: BTreeSet<NodeRef>,
    executors: BTreeMap<NodeId, Known>,
    /// Nodes draining (as the membership view says): no placement there.
    draining: BTreeSet<NodeId>,
    cached: HashMap<NodeId, (NodeRef, HashSet<Key>)>,
    threshold: f64,
    stale_after: Duration,
    /// The Python and cloudpickle versions the last executor reported: registrations are
    /// checked against them while no executor runs.
    last_env: Option<(String, String)>,
    /// Functions registered while no executor ran, with the versions they were pickled
    /// on: checked against the first executor that reports.
    unverified: BTreeMap<String, (String, String)>,
}

/// Registrations accepted with no executor to check them against, at most: a mismatch is
/// reported for these when an executor starts (beyond, only logged as unchecked).
pub const MAX_UNVERIFIED: usize = 4096;

/// A registration made with no executor running that the first executor cannot run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    pub function: String,
    /// Pickled on (Python, cloudpickle).
    pub registered: (String, String),
    /// The executor's (Python, cloudpickle).
    pub executor: (String, String),
}

impl SchedulerCore {
    /// Executors above `threshold` utilisation are avoided; a status older than
    /// `stale_after` makes its executor unplaceable until the next one.
    pub fn new(threshold: f64, stale_after: Duration) -> Self {
        SchedulerCore {
            live: BTreeSet::new(),
            executors: BTreeMap::new(),
            draining: BTreeSet::new(),
            cached: HashMap::new(),
            threshold,
            stale_after,
            last_env: None,
            unverified: BTreeMap::new(),
        }
    }

    /// An executor reported its status. Ignored unless the view holds its node live (this
    /// generation): a node that left, died or restarted is never placed on again on the
    /// strength of a report that arrived late, and one not in the view yet is taken from
    /// its next report on, once the view has it. Returns the functions registered while no
    /// executor ran that this one cannot run.
    pub fn on_status(&mut self, status: ExecutorStatus, now: Instant) -> Vec<Mismatch> {
        if !self.live.contains(&status.executor.node) {
            return vec![];
        }
        let id = status.executor.node.id.clone();
        if let Some(k) = self.executors.get(&id) {
            if k.status.executor.node.generation > status.executor.node.generation {
                return vec![];
            }
        }
        let env = (status.python.clone(), status.cloudpickle.clone());
        let mismatches = std::mem::take(&mut self.unverified)
            .into_iter()
            .filter(|(_, registered)| *registered != env)
            .map(|(function, registered)| Mismatch {
                function,
                registered,
                executor: env.clone(),
            })
            .collect();
        self.last_env = Some(env);
        self.executors.insert(id, Known { status, seen: now });
        mismatches
    }

    /// A node's cache reported the keys it holds (replacing its previous report); ignored
    /// unless the view holds the node live.
    pub fn on_cache_keys(&mut self, node: NodeRef, keys: Vec<Key>) {
        if !self.live.contains(&node) {
            return;
        }
        self.cached
            .insert(node.id.clone(), (node, keys.into_iter().collect()));
    }

    /// Nodes whose caches last reported holding `key`, sorted.
    pub fn holders_of(&self, key: &Key) -> Vec<NodeId> {
        let mut out: Vec<NodeId> = self
            .cached
            .iter()
            .filter(|(_, (_, keys))| keys.contains(key))
            .map(|(id, _)| id.clone())
            .collect();
        out.sort();
        out
    }

    /// The membership view changed: `live` are the executor nodes it holds live (replacing
    /// the previous set). Executors and caches of other nodes (gone, or live as another
    /// generation) are forgotten, and their reports ignored from now on.
    pub fn set_live(&mut self, live: BTreeSet<NodeRef>) {
        self.executors
            .retain(|_, k| live.contains(&k.status.executor.node));
        self.cached.retain(|_, (node, _)| live.contains(node));
        self.live = live;
    }

    /// The nodes now draining (replacing the previous set).
    pub fn set_draining(&mut self, nodes: BTreeSet<NodeId>) {
        self.draining = nodes;
    }

    fn fresh(&self, now: Instant) -> impl Iterator<Item = &ExecutorStatus> {
        self.executors
            .iter()
            .filter(|(id, _)| !self.draining.contains(*id))
            // A node reports it drains before every scheduler's view may say so.
            .filter(|(_, k)| k.status.load.state != NodeState::Draining)
            .filter(move |(_, k)| now.saturating_duration_since(k.seen) <= self.stale_after)
            .map(|(_, k)| &k.status)
    }

    /// Whether placement may use any executor now (the first fresh one answers).
    pub fn any_executor(&self, now: Instant) -> bool {
        self.fresh(now).next().is_some()
    }

    /// Executors placement may use now.
    pub fn executor_count(&self, now: Instant) -> usize {
        self.fresh(now).count()
    }

    /// The latest status of every executor placement may use now.
    pub fn executors(&self, now: Instant) -> Vec<ExecutorStatus> {
        self.fresh(now).cloned().collect()
    }

    /// Refuse a function pickled on another Python (major.minor) or cloudpickle version than
    /// an executor runs. With no executor running: when one will be launched (`embedded`:
    /// the Python the workers embed), check against the versions the last executor
    /// reported, else the Python alone, and keep the function to check against the first
    /// executor that reports ([`SchedulerCore::on_status`]); otherwise `NoExecutors` (a
    /// client retries).
    pub fn check_environment(
        &mut self,
        name: &str,
        python: &str,
        cloudpickle: &str,
        embedded: Option<&str>,
        now: Instant,
    ) -> Result<(), FunctionError> {
        let mismatch = |server_python: &str, server_cloudpickle: &str| {
            Err(FunctionError::VersionMismatch {
                client_python: python.to_string(),
                client_cloudpickle: cloudpickle.to_string(),
                server_python: server_python.to_string(),
                server_cloudpickle: server_cloudpickle.to_string(),
            })
        };
        let mut any = false;
        for s in self.fresh(now) {
            any = true;
            if s.python != python || s.cloudpickle != cloudpickle {
                return mismatch(&s.python, &s.cloudpickle);
            }
        }
        let Some(embedded) = embedded.filter(|_| !any) else {
            return if any {
                Ok(())
            } else {
                Err(FunctionError::NoExecutors)
            };
        };
        match &self.last_env {
            Some((p, c)) if p != python || c != cloudpickle => return mismatch(p, c),
            Some(_) => return Ok(()),
            None if embedded != python => return mismatch(embedded, "(not known yet)"),
            None => {}
        }
        if self.unverified.len() < MAX_UNVERIFIED || self.unverified.contains_key(name) {
            let env = (python.to_string(), cloudpickle.to_string());
            self.unverified.insert(name.to_string(), env);
        } else {
            tracing::warn!(
                function = name,
                "registered with no executor to check its cloudpickle version against"
            );
        }
        Ok(())
    }

    fn locality(&self, node: &NodeId, refs: &[&Key]) -> usize {
        match self.cached.get(node) {
            Some((_, keys)) if !refs.is_empty() => {
                refs.iter().filter(|k| keys.contains(**k)).count()
            }
            _ => 0,
        }
    }

    /// The executor for a function whose arguments reference `refs`.
    pub fn place(
        &self,
        refs: &[&Key],
        now: Instant,
        rng: &mut impl Rng,
    ) -> Result<ActorRef, FunctionError> {
        self.place_for(None, refs, now, rng)
    }

    /// The executor for `function` (if named) whose arguments reference `refs`: the most
    /// referenced keys cached first, then one holding the function warm (loaded), then at
    /// random. Only class functions are named: a plain one loads in microseconds, and
    /// preferring where it ran would send all its calls to the first executor that did.
    pub fn place_for(
        &self,
        function: Option<&str>,
        refs: &[&Key],
        now: Instant,
        rng: &mut impl Rng,
    ) -> Result<ActorRef, FunctionError> {
        let below = self.fresh(now).any(|s| s.utilisation <= self.threshold);
        // With one executor there is nothing to prefer (the call path's common case).
        let function = function.filter(|_| self.executors.len() > 1);
        let mut best: Option<(&ExecutorStatus, (usize, bool))> = None;
        let mut ties = 0u32;
        for s in self.fresh(now) {
            if below && s.utilisation > self.threshold {
                continue;
            }
            let warm = function.is_some_and(|f| s.load.warm.iter().any(|w| w == f));
            let score = (self.locality(&s.executor.node.id, refs), warm);
            match best {
                Some((_, b)) if score < b => {}
                Some((_, b)) if score == b => {
                    ties += 1;
                    if rng.gen_range(0..ties) == 0 {
                        best = Some((s, score));
                    }
                }
                _ => {
                    best = Some((s, score));
                    ties = 1;
                }
            }
        }
        best.map(|(s, _)| s.executor.clone())
            .ok_or(FunctionError::NoExecutors)
    }

    /// Place every function of `plan` for attempt `attempt` of `req` and build its
    /// schedule; `scheduler` is told when the attempt ends. Arguments may be given for any
    /// function of the DAG; a function receives its own arguments, then its upstreams'
    /// results in edge-list order.
    pub fn schedules(
        &self,
        plan: &CallPlan,
        req: &CallRequest,
        attempt: u32,
        scheduler: Option<&ActorRef>,
        now: Instant,
        rng: &mut impl Rng,
    ) -> Result<Vec<(ActorRef, Schedule)>, FunctionError> {
        let dag = &plan.dag;
        check_args(plan, req)?;
        let mut args: Vec<Vec<Arg>> = dag
            .functions
            .iter()
            .map(|f| req.args.get(f).cloned().unwrap_or_default())
            .collect();
        let placed = args
            .iter()
            .zip(dag.functions.iter().zip(&plan.functions))
            .map(|(a, (f, meta))| {
                let class = meta.class.then_some(f.as_str());
                self.place_for(class, &references(a), now, rng)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let dag_name = plan.is_dag.then(|| dag.name.clone());
        // Repeatable read pins at the node of the first function that runs (a source).
        let home = (req.consistency == Consistency::RepeatableRead)
            .then(|| {
                let first = (0..dag.functions.len())
                    .find(|&i| dag.upstream[i].is_empty())
                    .unwrap_or(0);
                placed.get(first).map(|e| e.node.clone())
            })
            .flatten();
        let mut out = Vec::with_capacity(dag.functions.len());
        for (i, executor) in placed.iter().enumerate() {
            let schedule = Schedule {
                call: req.call,
                dag: dag_name.clone(),
                function: dag.functions[i].clone(),
                hash: plan.functions[i].hash,
                timeout_ms: plan.functions[i].timeout_ms,
                args: std::mem::take(&mut args[i]),
                upstream: dag.upstream[i]
                    .iter()
                    .map(|&u| dag.functions[u].clone())
                    .collect(),
                downstream: dag.downstream[i]
                    .iter()
                    .map(|&d| Downstream {
                        function: dag.functions[d].clone(),
                        executor: placed[d].clone(),
                    })
                    .collect(),
                sink: i == dag.sink,
                reply: req.reply.clone(),
                consistency: req.consistency,
                home: home.clone(),
                started_us: req.started_us,
                attempt,
                scheduler: scheduler.cloned(),
            };
            out.push((executor.clone(), schedule));
        }
        Ok(out)
    }
}

/// Refuse arguments for a function the DAG does not have.
pub fn check_args(plan: &CallPlan, req: &CallRequest) -> Result<(), FunctionError> {
    match req.args.keys().find(|f| plan.dag.index(f).is_none()) {
        Some(f) => Err(FunctionError::Invalid(format!(
            "arguments for `{f}`, which is not a function of `{}`",
            plan.dag.name
        ))),
        None => Ok(()),
    }
}

fn references(args: &[Arg]) -> Vec<&Key> {
    args.iter()
        .filter_map(|a| match a {
            Arg::Reference(k) => Some(k),
            Arg::Value(_) => None,
        })
        .collect()
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;
