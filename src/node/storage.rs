//! A node's data directory from start to stop: lock it, take the identity it records (node
//! id, KVS shard count), recover the KVS shards before the node joins the ring, keep the
//! node file's member list current, and turn a failed sync into a stop of the node.
//!
//! Without a data directory every step does nothing.

use crate::actors::kvs::node::{disk, open_shards, OpenedShard};
use crate::config::{Config, Role};
use crate::ids::NodeId;
use crate::net::cluster::{ClusterGate, ClusterId, ClusterState};
use crate::net::membership::{Membership, Subscribe, View, ViewChanged};
use crate::storage::datadir::{identity, KnownMember, NODE_FILE_FORMAT};
use crate::storage::log::FatalHook;
use crate::storage::{DataDir, NodeFile, StorageError};
use actix::prelude::*;
use std::sync::Arc;
use tokio::sync::watch;

/// The data directory of a running node (if it has one), held locked until dropped.
pub struct NodeStorage {
    data: Option<Arc<DataDir>>,
    recorded: Option<NodeFile>,
    fatal: FatalHook,
    /// Becomes `Some(why)` when a log failed to sync: the node must stop.
    pub failed: watch::Receiver<Option<String>>,
}

impl NodeStorage {
    /// Lock `cfg.node.data_dir` and read what it records. Returns the storage, the config
    /// to run with (the recorded shard count in place of "one per core") and the node id
    /// to take (the recorded one, when `node.id` is not set).
    pub fn open(cfg: &Config) -> Result<(NodeStorage, Config, Option<NodeId>), StorageError> {
        let (tx, failed) = watch::channel(None);
        let fatal: FatalHook = Arc::new(move |e: &StorageError| {
            tx.send_replace(Some(e.to_string()));
        });
        let mut cfg = cfg.clone();
        let Some(path) = cfg.node.data_dir.clone() else {
            let id = (!cfg.node.id.is_empty()).then(|| NodeId::new(&cfg.node.id));
            let storage = NodeStorage {
                data: None,
                recorded: None,
                fatal,
                failed,
            };
            return Ok((storage, cfg, id));
        };
        let data = DataDir::open(&path)?;
        let recorded = data.node_file()?;
        let (id, shards) = identity(
            &path,
            recorded.as_ref(),
            &cfg.node.id,
            cfg.kvs.shards_per_node,
        )?;
        cfg.kvs.shards_per_node = shards;
        let storage = NodeStorage {
            data: Some(Arc::new(data)),
            recorded,
            fatal,
            failed,
        };
        Ok((storage, cfg, id.map(NodeId::new)))
    }

    /// The cluster this node starts in: the one its data directory records (it rejoins it,
    /// whatever the flags say), else a new one if it may form one (`node.bootstrap`), else
    /// the one its seeds belong to. `None`: nothing to join and no leave to form a cluster.
    pub fn cluster_state(&self, cfg: &Config) -> Option<ClusterState> {
        let recorded = self.recorded.as_ref();
        if let Some(id) = recorded.and_then(|n| n.cluster_id.as_deref()) {
            if cfg.node.bootstrap {
                tracing::info!(cluster = id, "the data directory belongs to a cluster: rejoining it (--bootstrap only forms a cluster on a new directory)");
            }
            return Some(ClusterState::Member(ClusterId::new(id)));
        }
        if cfg.node.bootstrap {
            return Some(ClusterState::Fresh(ClusterId::random()));
        }
        let recorded_members = recorded.is_some_and(|n| !n.members.is_empty());
        (!cfg.node.join.is_empty() || recorded_members).then_some(ClusterState::Joining)
    }

    /// Record this node's id, shard count and cluster id (first start; later starts find
    /// them; an id learnt later is recorded with the members).
    pub async fn record_identity(
        &mut self,
        id: &NodeId,
        cfg: &Config,
        cluster: &ClusterGate,
    ) -> Result<(), StorageError> {
        let Some(data) = self.data.clone() else {
            return Ok(());
        };
        let cluster_id = cluster.state().id().map(|c| c.to_string());
        if let Some(n) = &self.recorded {
            if n.cluster_id.is_some() || cluster_id.is_none() {
                return Ok(());
            }
        }
        let node = NodeFile {
            format: NODE_FILE_FORMAT,
            node_id: id.to_string(),
            cluster_id,
            kvs_shards: u32::try_from(cfg.kvs_shards()).unwrap_or(u32::MAX),
            members: self
                .recorded
                .as_ref()
                .map(|n| n.members.clone())
                .unwrap_or_default(),
        };
        let file = node.clone();
        blocking(move || data.write_node_file(&file)).await?;
        self.recorded = Some(node);
        Ok(())
    }

    /// Recover this node's KVS shards (if it plays `kvs` and logs).
    pub async fn open_shards(&self, cfg: &Config) -> Result<Vec<OpenedShard>, StorageError> {
        match &self.data {
            Some(data) if cfg.node.roles.contains(&Role::Kvs) => {
                open_shards(data, cfg, disk(), self.fatal.clone()).await
            }
            _ => Ok(Vec::new()),
        }
    }

    /// The peer addresses of the members the data directory recorded (other than this
    /// node): a restarted node joins its cluster through them as through `--join` seeds.
    pub fn recorded_peers(&self, me: &NodeId) -> Vec<std::net::SocketAddr> {
        let Some(node) = &self.recorded else {
            return Vec::new();
        };
        node.members
            .iter()
            .filter(|m| m.id != me.as_str())
            .map(|m| m.addr)
            .collect()
    }

    /// Keep the node file's member list and cluster id current as the view changes.
    pub fn watch_members(&self, membership: &Addr<Membership>, cluster: &ClusterGate) {
        let (Some(data), Some(node)) = (&self.data, &self.recorded) else {
            return;
        };
        let recorder = MembersRecorder {
            data: data.clone(),
            node: node.clone(),
            cluster: cluster.clone(),
        }
        .start();
        membership.do_send(Subscribe(recorder.recipient()));
    }

    /// The directory, if any.
    pub fn data_dir(&self) -> Option<&DataDir> {
        self.data.as_deref()
    }
}

async fn blocking(
    f: impl FnOnce() -> Result<(), StorageError> + Send + 'static,
) -> Result<(), StorageError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StorageError::Io {
            path: "data directory".into(),
            message: format!("task failed: {e}"),
        })?
}

/// Writes the live members into the node file whenever they change (one write at a time,
/// off the actix threads).
struct MembersRecorder {
    data: Arc<DataDir>,
    node: NodeFile,
    cluster: ClusterGate,
}

fn live_members(view: &View) -> Vec<KnownMember> {
    view.live()
        .map(|m| KnownMember {
            id: m.node.id.to_string(),
            addr: m.addr,
        })
        .collect()
}

impl Actor for MembersRecorder {
    type Context = Context<Self>;
}

impl Handler<ViewChanged> for MembersRecorder {
    type Result = ();
    fn handle(&mut self, msg: ViewChanged, ctx: &mut Context<Self>) {
        let mut members = live_members(&msg.view);
        if members.len() <= 1 && !self.node.members.is_empty() {
            // Alone (just started, not joined yet, or refused): the members recorded
            // before are still where to find the cluster.
            members = self.node.members.clone();
        }
        let cluster_id = self.cluster.state().id().map(|c| c.to_string());
        if members == self.node.members && cluster_id == self.node.cluster_id {
            return;
        }
        self.node.members = members;
        self.node.cluster_id = cluster_id;
        let (data, node) = (self.data.clone(), self.node.clone());
        // `wait`: the next view waits until this one is written, so writes never reorder.
        ctx.wait(
            async move {
                if let Err(e) = blocking(move || data.write_node_file(&node)).await {
                    tracing::warn!(cause = %e, "cannot record the members in the data directory");
                }
            }
            .into_actor(self),
        );
    }
}
