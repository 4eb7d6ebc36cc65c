//! The scheduler's cache of call plans (no I/O).
//!
//! A call never reads the registry from the KVS while its plan is cached. Plans change
//! when a registration does, and every scheduler hears of that before it is acknowledged
//! ([`RegistryChange`], applied by [`PlanCache::apply`]), so entries are not re-read on a
//! short timer: only after [`REGISTRY_REFRESH`], in case a change was missed (the
//! scheduler was cut off when it was announced). A miss loads the plan once however many
//! calls wait for it (single flight: they share one [`Loading`] future); a change while a
//! load is under way keeps that load's result out of the cache (an epoch counter).

use super::core::CallPlan;
use super::dag::{plan, DagPlan};
use crate::protocol::{FunctionError, RegistryChange};
use futures::future::{LocalBoxFuture, Shared};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a cached plan is used before it is read again from the KVS. Changes are
/// announced to every scheduler, so this only bounds how long one that missed an
/// announcement calls an old registration.
pub const REGISTRY_REFRESH: Duration = Duration::from_secs(30);

/// Call plans cached at most (emptied when full; a miss costs a few KVS reads).
pub const MAX_CACHED_PLANS: usize = 4096;

/// Which registration a call plan comes from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PlanKey {
    Dag(String),
    Function(String),
}

/// A plan being read from the KVS, shared by every call waiting for it.
pub type Loading = Shared<LocalBoxFuture<'static, Result<Arc<CallPlan>, FunctionError>>>;

/// Cached plans and the loads under way.
#[derive(Default)]
pub struct PlanCache {
    ready: HashMap<PlanKey, (Instant, Arc<CallPlan>)>,
    loading: HashMap<PlanKey, (u64, Loading)>,
    /// Bumped by every invalidation: a load started before it is not cached.
    epoch: u64,
}

impl PlanCache {
    /// The cached plan of `key`, unless it is older than [`REGISTRY_REFRESH`].
    pub fn get(&self, key: &PlanKey, now: Instant) -> Option<Arc<CallPlan>> {
        self.ready
            .get(key)
            .filter(|(at, _)| now.saturating_duration_since(*at) < REGISTRY_REFRESH)
            .map(|(_, p)| p.clone())
    }

    /// The load of `key` under way (its epoch and future), if any.
    pub fn loading(&self, key: &PlanKey) -> Option<(u64, Loading)> {
        self.loading.get(key).cloned()
    }

    /// Record a load of `key` now under way; returns its epoch for [`Self::finish`].
    pub fn start(&mut self, key: PlanKey, load: Loading) -> u64 {
        self.loading.insert(key, (self.epoch, load));
        self.epoch
    }

    /// A load of `key` started at `epoch` ended: cache its plan unless the registry changed
    /// meanwhile. Every waiter may call this; the first does the work.
    pub fn finish(
        &mut self,
        key: &PlanKey,
        epoch: u64,
        loaded: &Result<Arc<CallPlan>, FunctionError>,
        now: Instant,
    ) {
        if epoch != self.epoch {
            return;
        }
        if self.loading.get(key).is_some_and(|(e, _)| *e == epoch) {
            self.loading.remove(key);
        }
        if let Ok(plan) = loaded {
            self.insert(key.clone(), plan.clone(), now);
        }
    }

    /// Cache `plan` as `key`'s (a registration this scheduler made, or announced).
    pub fn insert(&mut self, key: PlanKey, plan: Arc<CallPlan>, now: Instant) {
        if self.ready.len() >= MAX_CACHED_PLANS {
            self.ready.clear();
        }
        self.ready.insert(key, (now, plan));
    }

    /// Forget every plan calling function `name` (its own, and DAGs': they hold its hash)
    /// and every load under way (one may be reading its old registration).
    pub fn drop_function(&mut self, name: &str) {
        self.epoch += 1;
        self.ready
            .retain(|_, (_, plan)| !plan.dag.functions.iter().any(|f| f == name));
        self.loading.clear();
    }

    /// Forget `key`'s plan and any load of it under way.
    pub fn remove(&mut self, key: &PlanKey) {
        self.epoch += 1;
        self.ready.remove(key);
        self.loading.remove(key);
    }

    /// Bring the cache up to date with a registry change.
    pub fn apply(&mut self, change: &RegistryChange, now: Instant) {
        match change {
            RegistryChange::Function { name, .. } | RegistryChange::FunctionDeleted { name } => {
                self.drop_function(name)
            }
            RegistryChange::Dag { spec, .. } => self.remove(&PlanKey::Dag(spec.name.clone())),
            RegistryChange::DagDeleted { name } => self.remove(&PlanKey::Dag(name.clone())),
        }
        // An announcement of a DAG that does not fit is only an invalidation: the next call
        // reads the DAG from the KVS.
        if let Some((key, plan)) = plan_of(change) {
            self.insert(key, Arc::new(plan), now);
        }
    }
}

/// The plan a registration installs (`None` for a deletion, or a DAG announced with a spec
/// that does not validate or does not match its functions' metadata).
pub fn plan_of(change: &RegistryChange) -> Option<(PlanKey, CallPlan)> {
    match change {
        RegistryChange::Function { name, meta } => {
            let plan = CallPlan {
                dag: DagPlan::single(name),
                functions: vec![meta.clone()],
                is_dag: false,
            };
            Some((PlanKey::Function(name.clone()), plan))
        }
        RegistryChange::Dag { spec, functions } => {
            let dag = plan(spec).ok()?;
            (dag.functions.len() == functions.len()).then(|| {
                let plan = CallPlan {
                    dag,
                    functions: functions.clone(),
                    is_dag: true,
                };
                (PlanKey::Dag(spec.name.clone()), plan)
            })
        }
        RegistryChange::FunctionDeleted { .. } | RegistryChange::DagDeleted { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{DagSpec, FunctionMeta};
    use futures::FutureExt;

    fn meta(hash: u64) -> FunctionMeta {
        FunctionMeta {
            hash,
            timeout_ms: None,
            retries: 0,
            retry_errors: false,
            class: false,
        }
    }

    fn single(name: &str, hash: u64) -> Arc<CallPlan> {
        Arc::new(CallPlan {
            dag: DagPlan::single(name),
            functions: vec![meta(hash)],
            is_dag: false,
        })
    }

    fn load(plan: Arc<CallPlan>) -> Loading {
        async move { Ok(plan) }.boxed_local().shared()
    }

    fn pipeline() -> DagSpec {
        DagSpec {
            name: "p".into(),
            functions: vec!["f".into(), "g".into()],
            connections: vec![("f".into(), "g".into())],
        }
    }

    #[test]
    fn concurrent_misses_share_one_load_and_its_result_is_cached() {
        let mut c = PlanCache::default();
        let (key, t0) = (PlanKey::Function("f".into()), Instant::now());
        assert!(c.get(&key, t0).is_none() && c.loading(&key).is_none());
        let epoch = c.start(key.clone(), load(single("f", 1)));
        let (e2, _) = c.loading(&key).expect("the second miss finds the load");
        assert_eq!(e2, epoch);
        let loaded = Ok(single("f", 1));
        c.finish(&key, epoch, &loaded, t0);
        c.finish(&key, epoch, &loaded, t0); // every waiter reports; no harm
        assert!(c.loading(&key).is_none());
        assert_eq!(c.get(&key, t0), Some(single("f", 1)));
        let stale = t0 + REGISTRY_REFRESH;
        assert!(
            c.get(&key, stale).is_none(),
            "re-read after the refresh period"
        );
    }

    #[test]
    fn a_change_during_a_load_keeps_the_old_plan_out() {
        let mut c = PlanCache::default();
        let (key, t0) = (PlanKey::Function("f".into()), Instant::now());
        let epoch = c.start(key.clone(), load(single("f", 1)));
        let change = RegistryChange::Function {
            name: "f".into(),
            meta: meta(2),
        };
        c.apply(&change, t0);
        assert!(
            c.loading(&key).is_none(),
            "later calls do not join the old load"
        );
        c.finish(&key, epoch, &Ok(single("f", 1)), t0);
        assert_eq!(c.get(&key, t0), Some(single("f", 2)));
    }

    #[test]
    fn failed_loads_are_not_cached() {
        let mut c = PlanCache::default();
        let (key, t0) = (PlanKey::Dag("p".into()), Instant::now());
        let epoch = c.start(key.clone(), load(single("f", 1)));
        c.finish(&key, epoch, &Err(FunctionError::UnknownDag("p".into())), t0);
        assert!(c.get(&key, t0).is_none() && c.loading(&key).is_none());
    }

    #[test]
    fn announcements_install_and_remove_plans() {
        let mut c = PlanCache::default();
        let t0 = Instant::now();
        let dag = PlanKey::Dag("p".into());
        c.apply(
            &RegistryChange::Dag {
                spec: pipeline(),
                functions: vec![meta(1), meta(2)],
            },
            t0,
        );
        let p = c.get(&dag, t0).expect("installed");
        assert_eq!(p.dag.functions, vec!["f".to_string(), "g".to_string()]);
        assert!(p.is_dag);
        // A function change keeps the plans that do not call it.
        c.insert(PlanKey::Function("h".into()), single("h", 9), t0);
        c.apply(
            &RegistryChange::Function {
                name: "x".into(),
                meta: meta(4),
            },
            t0,
        );
        assert!(c.get(&dag, t0).is_some() && c.get(&PlanKey::Function("h".into()), t0).is_some());
        // A function change drops DAG plans calling it: they hold its hash.
        c.apply(
            &RegistryChange::Function {
                name: "g".into(),
                meta: meta(3),
            },
            t0,
        );
        assert!(c.get(&dag, t0).is_none());
        assert!(c.get(&PlanKey::Function("g".into()), t0).is_some());
        c.apply(&RegistryChange::FunctionDeleted { name: "g".into() }, t0);
        assert!(c.get(&PlanKey::Function("g".into()), t0).is_none());
        // A DAG announced with the wrong number of metas only invalidates.
        c.apply(
            &RegistryChange::Dag {
                spec: pipeline(),
                functions: vec![meta(1)],
            },
            t0,
        );
        assert!(c.get(&dag, t0).is_none());
        c.insert(dag.clone(), p, t0);
        c.apply(&RegistryChange::DagDeleted { name: "p".into() }, t0);
        assert!(c.get(&dag, t0).is_none());
    }
}
