//! Where the dashboard's numbers come from: [`DashboardSources`], a set of optional probes
//! the node plugs in (membership view, KVS shard stats, transport counters, caches,
//! executors; call series from [`crate::metrics`] by default). A source that is absent
//! leaves its table empty; one that does not answer within [`PROBE_TIMEOUT`] counts as
//! empty for that tick (and a KVS shard that fails reports its error).

use super::core::{CacheSample, ExecutorSample, NodeCalls, NodeRow, Sample, ShardSample};
use crate::actors::kvs::KvsClient;
use crate::config::Role;
use crate::metrics::{CallSnapshot, RecentCall, RECENT_CALLS};
use crate::net::membership::{GetView, MemberState, View};
use crate::net::metrics::NetMetricsSnapshot;
use crate::net::Transport;
use crate::protocol::{AutoscaleState, NodeStats};
use actix::Recipient;
use futures::future::BoxFuture;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Longest wait for one source in one tick: below the 1 s sampling interval, so a slow
/// source delays the page by at most one tick and never piles up requests.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(800);

/// An async source: called once per tick.
pub type Probe<T> = Arc<dyn Fn() -> BoxFuture<'static, T> + Send + Sync>;

/// A synchronous source (cheap reads of atomics).
pub type Reader<T> = Arc<dyn Fn() -> T + Send + Sync>;

/// The sources of one dashboard. Build with [`DashboardSources::new`] and the `with_*`
/// methods; every field is public so a caller may also set a probe directly.
#[derive(Clone)]
pub struct DashboardSources {
    /// The membership view: nodes, roles, liveness.
    pub view: Option<Recipient<GetView>>,
    /// KVS shard counters, cluster-wide.
    pub kvs: Option<Probe<Vec<ShardSample>>>,
    /// Cache counters of every executor node known here.
    pub caches: Option<Probe<Vec<CacheSample>>>,
    /// Python pool utilisation of every executor node known here.
    pub executors: Option<Probe<Vec<ExecutorSample>>>,
    /// Every live node's own figures (calls, recent calls, pool): when set, the call
    /// series, recent calls and executors come from it instead.
    pub nodes: Option<Probe<Vec<NodeStats>>>,
    /// This node's transport counters.
    pub transport: Option<Reader<NetMetricsSnapshot>>,
    /// The acting monitor's state (none without a monitor in the cluster).
    pub autoscale: Option<Probe<Option<AutoscaleState>>>,
    /// Function and DAG call series (default: this process's registry).
    pub calls: Reader<Vec<CallSnapshot>>,
    /// The most recent calls, newest first (default: this process's registry).
    pub recent: Reader<Vec<RecentCall>>,
    /// The node serving the dashboard (labels `calls` when no `nodes` probe is set).
    pub here: String,
}

impl Default for DashboardSources {
    fn default() -> Self {
        Self::new()
    }
}

impl DashboardSources {
    /// Call series from [`crate::metrics::global`]; nothing else.
    pub fn new() -> Self {
        DashboardSources {
            view: None,
            kvs: None,
            caches: None,
            executors: None,
            nodes: None,
            transport: None,
            autoscale: None,
            calls: Arc::new(|| crate::metrics::global().snapshot()),
            recent: Arc::new(|| crate::metrics::global().recent()),
            here: String::new(),
        }
    }

    /// Nodes from this membership actor (`Addr<Membership>::recipient()`).
    pub fn with_view(mut self, view: Recipient<GetView>) -> Self {
        self.view = Some(view);
        self
    }

    /// Shard counters through this KVS client.
    pub fn with_kvs(mut self, client: KvsClient) -> Self {
        self.kvs = Some(Arc::new(move || {
            let c = client.clone();
            Box::pin(async move { shard_samples(&c).await })
        }));
        self
    }

    /// This node's transport counters.
    pub fn with_transport(mut self, transport: Transport) -> Self {
        self.transport = Some(Arc::new(move || transport.metrics()));
        self
    }

    /// Cache counters, e.g. `move || { let h = handle.clone(); async move { ... } }`.
    pub fn with_caches<F, Fut>(mut self, probe: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<CacheSample>> + Send + 'static,
    {
        self.caches = Some(Arc::new(move || Box::pin(probe())));
        self
    }

    /// Executor utilisation, e.g. from each executor's `PythonPool::utilisation()`.
    pub fn with_executors<F, Fut>(mut self, probe: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<ExecutorSample>> + Send + 'static,
    {
        self.executors = Some(Arc::new(move || Box::pin(probe())));
        self
    }

    /// Every node's own figures, e.g. asked of each live node's `Node` service.
    pub fn with_nodes<F, Fut>(mut self, probe: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<NodeStats>> + Send + 'static,
    {
        self.nodes = Some(Arc::new(move || Box::pin(probe())));
        self
    }

    /// The autoscaler's state, e.g. asked of the acting monitor.
    pub fn with_autoscale<F, Fut>(mut self, probe: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Option<AutoscaleState>> + Send + 'static,
    {
        self.autoscale = Some(Arc::new(move || Box::pin(probe())));
        self
    }

    /// Read every source once (concurrently, each bounded by [`PROBE_TIMEOUT`]).
    pub fn gather(&self) -> impl Future<Output = Sample> + 'static {
        let view = self.view.clone();
        let kvs = self.kvs.as_ref().map(|p| p());
        let caches = self.caches.as_ref().map(|p| p());
        let executors = self.executors.as_ref().map(|p| p());
        let nodes = self.nodes.as_ref().map(|p| p());
        let transport = self.transport.as_ref().map(|r| r());
        let autoscale = self.autoscale.as_ref().map(|p| p());
        let (calls, recent) = ((self.calls)(), (self.recent)());
        let nodes_asked = nodes.is_some();
        let here = self.here.clone();
        async move {
            let view = async {
                match view {
                    Some(v) => bounded("view", v.send(GetView)).await.and_then(Result::ok),
                    None => None,
                }
            };
            let autoscale = async {
                match autoscale {
                    Some(p) => bounded("autoscale", p).await.flatten(),
                    None => None,
                }
            };
            let (view, shards, caches, executors, stats, autoscale) = futures::join!(
                view,
                optional("kvs", kvs),
                optional("caches", caches),
                optional("executors", executors),
                optional("nodes", nodes),
                autoscale,
            );
            let mut sample = Sample {
                at_ms: crate::metrics::unix_ms(),
                nodes: view.as_ref().map(node_rows).unwrap_or_default(),
                node_calls: Vec::new(),
                calls,
                recent,
                shards,
                caches,
                executors,
                transport,
                autoscale,
            };
            if nodes_asked {
                from_nodes(&mut sample, stats);
            } else {
                sample.node_calls = vec![NodeCalls {
                    node: here,
                    calls: sample.calls.clone(),
                }];
            }
            if let Some(v) = &view {
                mark_down(&mut sample, v);
            }
            sample
        }
    }
}

/// Calls, recent calls and executors from every node's own figures.
pub fn from_nodes(sample: &mut Sample, mut stats: Vec<NodeStats>) {
    stats.sort_by(|a, b| a.node.cmp(&b.node));
    sample.calls = crate::metrics::merge_calls(stats.iter().map(|s| &s.calls[..]));
    sample.recent =
        crate::metrics::merge_recent(stats.iter().map(|s| s.recent.clone()), RECENT_CALLS);
    sample.executors = stats
        .iter()
        .filter_map(|s| {
            s.pool.map(|p| ExecutorSample {
                node: s.node.clone(),
                workers: p.workers,
                extra_workers: p.extra_workers,
                utilisation: p.utilisation,
                down: false,
            })
        })
        .collect();
    sample.node_calls = stats
        .into_iter()
        .map(|s| NodeCalls {
            node: s.node,
            calls: s.calls,
        })
        .collect();
}

/// Dead members keep their rows, shown down: their executor, cache and KVS shards (those
/// no shard answered for), so a failure is seen rather than a row that vanished.
pub fn mark_down(sample: &mut Sample, view: &View) {
    for m in view
        .members
        .values()
        .filter(|m| m.state == MemberState::Dead)
    {
        let node = m.node.id.to_string();
        if m.roles.contains(&Role::Executor) {
            if !sample.executors.iter().any(|e| e.node == node) {
                sample.executors.push(ExecutorSample {
                    node: node.clone(),
                    down: true,
                    ..ExecutorSample::default()
                });
            }
            if !sample.caches.iter().any(|c| c.node == node) {
                sample.caches.push(CacheSample {
                    node: node.clone(),
                    down: true,
                    ..CacheSample::default()
                });
            }
        }
        for shard in 0..m.kvs_shards {
            if !sample
                .shards
                .iter()
                .any(|s| s.node == node && s.shard == shard)
            {
                sample.shards.push(ShardSample {
                    node: node.clone(),
                    shard,
                    error: Some(format!("node {node} is down")),
                    ..ShardSample::default()
                });
            }
        }
    }
    sample.executors.sort_by(|a, b| a.node.cmp(&b.node));
    sample.caches.sort_by(|a, b| a.node.cmp(&b.node));
    sample
        .shards
        .sort_by(|a, b| (&a.node, a.shard).cmp(&(&b.node, b.shard)));
}

/// Await `fut` for at most [`PROBE_TIMEOUT`].
async fn bounded<T>(source: &'static str, fut: impl Future<Output = T>) -> Option<T> {
    match tokio::time::timeout(PROBE_TIMEOUT, fut).await {
        Ok(v) => Some(v),
        Err(_) => {
            tracing::debug!(source, "dashboard source did not answer in time");
            None
        }
    }
}

async fn optional<T>(source: &'static str, fut: Option<BoxFuture<'static, Vec<T>>>) -> Vec<T> {
    match fut {
        Some(f) => bounded(source, f).await.unwrap_or_default(),
        None => Vec::new(),
    }
}

/// One row per member of the view, ordered by node id.
pub fn node_rows(view: &View) -> Vec<NodeRow> {
    view.members
        .values()
        .map(|m| NodeRow {
            id: m.node.id.to_string(),
            generation: m.node.generation.0,
            addr: m.addr.to_string(),
            roles: m.roles.iter().map(|r| r.name().to_string()).collect(),
            state: m.state.to_string(),
            kvs_shards: m.kvs_shards,
            draining: m.draining,
        })
        .collect()
}

async fn shard_samples(client: &KvsClient) -> Vec<ShardSample> {
    client
        .stats()
        .await
        .into_iter()
        .map(|(addr, r)| {
            let base = ShardSample {
                node: addr.node.to_string(),
                shard: addr.shard,
                ..ShardSample::default()
            };
            match r {
                Ok(st) => ShardSample {
                    keys: Some(st.keys),
                    bytes: st.bytes,
                    tombstones: st.tombstones,
                    gets: st.gets,
                    puts: st.puts,
                    gossip_in: st.gossip_in,
                    gossip_out: st.gossip_out,
                    rejected: st.rejected,
                    ..base
                },
                Err(e) => ShardSample {
                    error: Some(e.to_string()),
                    ..base
                },
            }
        })
        .collect()
}

#[cfg(test)]
#[path = "sources_tests.rs"]
mod tests;
