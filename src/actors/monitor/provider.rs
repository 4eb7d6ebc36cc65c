//! The node provider seam: how the monitor's decisions become nodes. A provider launches
//! and terminates nodes of a kind and lists the ones it launched; the monitor reconciles
//! that list with membership every tick (see [`super::launches`]). Only nodes a provider
//! launched are ever terminated by the monitor.

use super::launches::ProvidedNode;
use crate::ids::NodeId;
use std::collections::BTreeSet;

/// What kind of node to launch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeKind {
    Executor,
    /// A node playing only `kvs` (storage elasticity).
    Kvs,
}

impl NodeKind {
    pub fn name(self) -> &'static str {
        match self {
            NodeKind::Executor => "executor",
            NodeKind::Kvs => "kvs",
        }
    }
}

/// Why a provider could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("cannot launch a node: {0}")]
    Launch(String),
    #[error("cannot terminate node {node}: {cause}")]
    Terminate { node: NodeId, cause: String },
    #[error("launching {asked} more would exceed the provider's limit of {limit} nodes")]
    AtLimit { asked: u32, limit: usize },
}

/// Launches and terminates nodes. The monitor's actor calls it off its own thread: a
/// provider may block briefly (spawning a process, an API call).
pub trait NodeProvider: Send {
    /// Start `count` nodes of `kind`, each loading the `warm` functions before it reports
    /// ready; returns the ids they will join the cluster as.
    fn launch(
        &mut self,
        kind: NodeKind,
        count: u32,
        warm: &[String],
    ) -> Result<Vec<NodeId>, ProviderError>;
    /// Stop `node` (after the monitor drained it, or because its launch failed).
    fn terminate(&mut self, node: &NodeId) -> Result<(), ProviderError>;
    /// The nodes this provider launched and has not yet reaped, and whether each runs.
    fn list(&mut self) -> Vec<ProvidedNode>;
    /// Whether the nodes outlive this monitor (pods of a Deployment): stopping the monitor
    /// then leaves them running, for the next monitor to manage.
    fn nodes_outlive_monitor(&self) -> bool {
        false
    }

    /// The nodes of `kind` among [`NodeProvider::list`] (a provider of one kind of node
    /// need not say).
    fn list_of(&mut self, kind: NodeKind) -> Vec<ProvidedNode> {
        match kind {
            NodeKind::Executor => self.list(),
            NodeKind::Kvs => Vec::new(),
        }
    }

    /// Which of the KVS nodes it launched (`provided`) the provider can remove one by one
    /// (all of them for child processes; a StatefulSet removes only its highest ordinal).
    fn kvs_removable(&mut self, provided: &[ProvidedNode]) -> BTreeSet<NodeId> {
        provided.iter().map(|p| p.node.clone()).collect()
    }

    /// Whether to keep nodes started ahead of launches (standbys), if the provider can:
    /// only the acting monitor's provider does.
    fn keep_standbys(&mut self, _on: bool) {}
}

/// How often [`stop_all`] looks again at the nodes it terminated.
const STOP_POLL: std::time::Duration = std::time::Duration::from_millis(20);

/// Terminate every node `provider` launched and wait up to `limit` for them to go;
/// returns how many were still there (the provider's drop deals with them). Nodes that
/// outlive the monitor are left alone.
pub async fn stop_all(provider: &mut dyn NodeProvider, limit: std::time::Duration) -> usize {
    if provider.nodes_outlive_monitor() {
        return 0;
    }
    let deadline = tokio::time::Instant::now() + limit;
    for p in provider.list() {
        if let Err(e) = provider.terminate(&p.node) {
            tracing::warn!(cause = %e, "cannot terminate an executor node");
        }
    }
    loop {
        let left = provider.list().len();
        if left == 0 || tokio::time::Instant::now() >= deadline {
            return left;
        }
        tokio::time::sleep(STOP_POLL).await;
    }
}
