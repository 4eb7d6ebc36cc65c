//! What the KVS nodes tell the monitor about their load (it adds and removes KVS nodes
//! on it), and the request that makes a KVS node leave.

use crate::ids::NodeRef;
use serde::{Deserialize, Serialize};

/// Hot keys one report names at most: bounds a report's size whatever a peer sends.
pub const MAX_REPORTED_HOT_KEYS: usize = 64;
/// Kinds of decision (action, reason) counted apart at most; later kinds are counted under
/// their action with the reason `other`. A failed launch's reason is the provider's error
/// text, so without a bound the counts (and the `/metrics` series) could grow forever.
pub const MAX_DECISION_KINDS: usize = 32;

/// Keys the monitor's replication table names at most (replicated ones and those recently
/// returned to the default): bounds the table every node holds and the message carrying it,
/// whatever a peer sends. Far more than a skewed workload has hot keys.
pub const MAX_REPLICATION_OVERRIDES: usize = 256;

/// The longest settle time a node takes from the monitor's table (a larger one from a peer
/// is cut to it): minutes would leave a cooled key's copies around for no reason.
pub const MAX_SETTLE_MS: u64 = 600_000;

/// One of a node's hot keys: its estimated accesses in the window and how many KVS nodes
/// hold it now (the routing's replica set: `kvs.replication`, or more while the monitor
/// replicates it as hot).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HotKey {
    pub key: String,
    pub count: u64,
    pub replicas: u32,
}

/// A key's replication override, a last-writer-wins register: the acting monitor writes
/// `(epoch, factor)`, and every node keeps the entry with the highest `(epoch, factor)`
/// (equal epochs, from two monitors both acting for a moment, resolve to the larger factor:
/// the safe side). A monitor that takes over continues above the highest epoch its node
/// holds. `factor` at or below `kvs.replication` means the default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ReplicationOverride {
    pub epoch: u64,
    pub factor: u32,
}

/// Sent by the acting monitor to every live node whenever its replication table changes,
/// and again every tick (a node that missed one, or joined since, catches up): each node's
/// routing merges the entries, register by register.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, actix::Message)]
#[rtype(result = "()")]
pub struct ReplicationOverrides {
    pub entries: Vec<(String, ReplicationOverride)>,
    /// How long a node waits after a change before it reads from a key's new replicas or
    /// drops the copies a key no longer needs (`kvs_autoscale.hot_key_settle_ms`).
    pub settle_ms: u64,
}

/// A KVS node's load over its last report window, summed over its shards.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KvsNodeStatus {
    pub node: NodeRef,
    pub shards: u32,
    pub keys: u64,
    /// Bytes the node's shards hold, and what it may hold (`kvs.memory_budget_bytes`).
    pub bytes: u64,
    pub budget_bytes: u64,
    /// Length of the window the figures cover, in milliseconds.
    pub window_ms: u64,
    /// Mean over the shards of their busy time over the window, `0.0..=1.0`; and the
    /// busiest shard's.
    pub occupancy: f64,
    pub occupancy_max: f64,
    /// Keys read and written by clients in the window, and requests served.
    pub gets: u64,
    pub puts: u64,
    pub requests: u64,
    /// Service time of a request inside a shard (from taking it to answering), µs.
    pub service_us_mean: f64,
    pub service_us_max: u64,
    /// The node's hottest keys of the window with their estimated access counts and
    /// replica counts, hottest first; at most [`MAX_REPORTED_HOT_KEYS`].
    pub hot_keys: Vec<HotKey>,
    /// The node is leaving (handing its keys off).
    pub draining: bool,
}

impl KvsNodeStatus {
    /// The status with figures from a peer made safe to compute with: fractions in
    /// `0..=1`, means finite, the hot keys bounded.
    pub fn sanitized(mut self) -> KvsNodeStatus {
        let fraction = |x: f64| {
            if x.is_finite() {
                x.clamp(0.0, 1.0)
            } else {
                0.0
            }
        };
        self.occupancy = fraction(self.occupancy);
        self.occupancy_max = fraction(self.occupancy_max);
        if !self.service_us_mean.is_finite() || self.service_us_mean < 0.0 {
            self.service_us_mean = 0.0;
        }
        self.hot_keys.truncate(MAX_REPORTED_HOT_KEYS);
        self
    }
}

/// A KVS node's status, sent to every live monitor once per report window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, actix::Message)]
#[rtype(result = "()")]
pub struct KvsReport {
    pub status: KvsNodeStatus,
}

/// Sent by the acting monitor to a KVS node it removes: the node drains (hands every key
/// to the owners that remain), leaves the cluster and exits, as on SIGTERM.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, actix::Message)]
#[rtype(result = "()")]
pub struct DrainKvsNode {
    /// The monitor's node (for the log line).
    pub by: NodeRef,
}

/// The numbers one tick computed (shown with every decision and on the dashboard).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KvsNumbers {
    pub active: u32,
    pub starting: u32,
    pub draining: u32,
    pub pending: u32,
    pub counted: u32,
    /// Fewest nodes the policy keeps: max(replication, min_kvs).
    pub floor: u32,
    pub bytes: u64,
    pub budget_bytes: u64,
    /// Bytes over the counted nodes' budget.
    pub storage: f64,
    /// Over the stable window: the least busy node's and the mean occupancy, and the mean
    /// service time (µs).
    pub occupancy_min: f64,
    pub occupancy_mean: f64,
    pub service_us: f64,
}

/// One KVS decision (or provider action), as people see it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KvsDecisionRecord {
    pub at_ms: u64,
    /// `launch`, `drain`, `terminate`, `relaunch`, `give_up`, `launch_failed`,
    /// `replicate`, `dereplicate`.
    pub action: String,
    pub node: Option<String>,
    /// `storage`, `busy`, `latency`, `underused`, `drained`, `drain_overran`, `hot`,
    /// `cooled`, ...
    pub reason: String,
    pub numbers: KvsNumbers,
    /// For a replication decision (`replicate`, `dereplicate`): the key, its new replica
    /// count, and the figures behind it (`rate 850.0/s vs mean 2.1/s, threshold 40.3/s`).
    pub key: Option<String>,
    pub replicas: Option<u32>,
    pub detail: String,
}

/// How many decisions (or provider actions) of one kind the monitor took.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvsDecisionCount {
    pub action: String,
    pub reason: String,
    pub count: u64,
}

/// The KVS side of what a monitor shows.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KvsAutoscaleState {
    /// `kvs_autoscale.enabled`, `min_kvs`, `max_kvs`.
    pub enabled: bool,
    pub min_kvs: u32,
    pub max_kvs: u32,
    /// `kvs.replication`: the replication factor of a key with no override of its own.
    pub replication: u32,
    /// Decisions taken so far (ever, by this monitor) by action and reason, sorted.
    pub decision_counts: Vec<KvsDecisionCount>,
    /// The last tick's numbers.
    pub last: KvsNumbers,
    /// The newest decisions, oldest first.
    pub decisions: Vec<KvsDecisionRecord>,
    /// Each KVS node's last report: bytes against its budget, occupancy, hot keys.
    pub nodes: Vec<KvsNodeStatus>,
}

/// A KVS node's own figures for its admin port's `/metrics`: its last report, and its
/// clients' reads and writes since the node started.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KvsNodeMetrics {
    /// `None` until the node's first report window ended.
    pub status: Option<KvsNodeStatus>,
    pub gets_total: u64,
    pub puts_total: u64,
}

impl KvsNodeMetrics {
    /// Take in the report of the window that just ended.
    pub fn add(&mut self, status: KvsNodeStatus) {
        self.gets_total = self.gets_total.saturating_add(status.gets);
        self.puts_total = self.puts_total.saturating_add(status.puts);
        self.status = Some(status);
    }
}
