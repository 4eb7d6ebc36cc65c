//! The KVS tier's series: each KVS node's last load report (and, on its own admin port, its
//! get and put totals), and the monitor's KVS nodes by state, storage and decisions.

use super::{NodeKvs, Text};
use crate::metrics as m;
use crate::protocol::{KvsAutoscaleState, KvsNodeStatus};

/// A node's own KVS series: its gauges and totals (a node playing `kvs`) and its monitor's
/// KVS state (a node playing `monitor`).
pub(super) fn node_kvs_series(t: &mut Text, node: &str, kvs: &NodeKvs) {
    if let Some(k) = &kvs.kvs {
        kvs_node_gauges(t, k.status.as_slice());
        for (name, help, total) in [
            (
                m::KVS_NODE_GETS,
                "Keys clients read from the node.",
                k.gets_total,
            ),
            (
                m::KVS_NODE_PUTS,
                "Keys clients wrote to the node.",
                k.puts_total,
            ),
        ] {
            t.family(name, "counter", help);
            t.sample(name, &[("node", node)], total);
        }
    }
    if let Some(a) = &kvs.monitor {
        kvs_autoscale_series(t, a);
    }
}

/// Each KVS node's last report: bytes, budget, keys, occupancy.
pub(super) fn kvs_node_gauges(t: &mut Text, nodes: &[KvsNodeStatus]) {
    type Get = fn(&KvsNodeStatus) -> f64;
    let gauges: [(&str, &str, Get); 4] = [
        (m::KVS_NODE_BYTES, "Bytes the node's shards hold.", |s| {
            s.bytes as f64
        }),
        (
            m::KVS_NODE_BUDGET,
            "The node's memory budget in bytes.",
            |s| s.budget_bytes as f64,
        ),
        (m::KVS_NODE_KEYS, "Keys the node's shards hold.", |s| {
            s.keys as f64
        }),
        (
            m::KVS_NODE_OCCUPANCY,
            "Mean busy time of the node's shards over its last report window.",
            |s| s.occupancy,
        ),
    ];
    for (name, help, get) in gauges {
        t.family(name, "gauge", help);
        for s in nodes {
            t.sample(name, &[("node", s.node.id.as_str())], get(s));
        }
    }
}

/// The monitor's KVS tier: nodes by state, storage, decisions by action and reason.
pub(super) fn kvs_autoscale_series(t: &mut Text, a: &KvsAutoscaleState) {
    let n = &a.last;
    t.family(
        m::KVS_AUTOSCALE_NODES,
        "gauge",
        "KVS nodes by state, as the acting monitor counts them.",
    );
    for (state, count) in [
        ("active", n.active),
        ("starting", n.starting),
        ("draining", n.draining),
        ("pending", n.pending),
    ] {
        t.sample(m::KVS_AUTOSCALE_NODES, &[("state", state)], count);
    }
    t.family(
        m::KVS_AUTOSCALE_STORAGE,
        "gauge",
        "Bytes of the KVS tier over its counted nodes' memory budget.",
    );
    t.sample(m::KVS_AUTOSCALE_STORAGE, &[], n.storage);
    t.family(
        m::KVS_AUTOSCALE_DECISIONS,
        "counter",
        "KVS decisions and provider actions the monitor took.",
    );
    for d in &a.decision_counts {
        let labels = [("action", d.action.as_str()), ("reason", d.reason.as_str())];
        t.sample(m::KVS_AUTOSCALE_DECISIONS, &labels, d.count);
    }
}
