//! `/metrics`: the Prometheus text exposition format (version 0.0.4), no I/O.
//!
//! Everything comes from the sampler's latest [`Sample`]: the call series of every node
//! (labelled `node`), nodes, KVS shards, caches, executors, this node's transport. A node's
//! admin port renders its own call series with [`node_series`].
//! Names are the constants of [`crate::metrics`]; docs/metrics.md lists them all.

use super::core::{CacheSample, NodeCalls, Sample, ShardSample};
use crate::metrics::{self as m, CallKind, CallSnapshot, BUCKETS_US};
use crate::net::NetMetricsSnapshot;
use crate::protocol::{KvsAutoscaleState, KvsNodeMetrics};
use std::fmt::Write;

/// Content type of the exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Builds the text: one `# HELP`/`# TYPE` header per family, then its samples.
struct Text {
    out: String,
}

impl Text {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }
}

/// Label values escape backslash, double quote and newline.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Render every series of the cluster as last sampled. `node` names this node (the label
/// of its transport counters).
pub fn render(node: &str, sample: Option<&Sample>, dashboard_clients: usize) -> String {
    let mut t = Text { out: String::new() };
    // The call families are declared even before the first sample (with no series).
    calls(&mut t, sample.map_or(&[], |s| &s.node_calls[..]));
    if let Some(s) = sample {
        cluster_series(&mut t, s);
        if let Some(a) = &s.autoscale {
            autoscale_series(&mut t, a);
            if let Some(kvs) = &a.kvs {
                kvs::kvs_autoscale_series(&mut t, kvs);
                kvs::kvs_node_gauges(&mut t, &kvs.nodes);
            }
        }
        if let Some(net) = &s.transport {
            transport_series(&mut t, node, net);
        }
    }
    t.family(
        m::DASHBOARD_CLIENTS,
        "gauge",
        "Dashboards connected to this gateway's live event stream.",
    );
    t.sample(m::DASHBOARD_CLIENTS, &[], dashboard_clients);
    t.out
}

/// What a node's admin port renders beyond its calls and transport: its KVS figures (a
/// node playing `kvs`) and its monitor's KVS state (a node playing `monitor`).
#[derive(Clone, Debug, Default)]
pub struct NodeKvs {
    pub kvs: Option<KvsNodeMetrics>,
    pub monitor: Option<KvsAutoscaleState>,
}

/// One node's own series (its admin port's `/metrics`): the calls it ran, its transport
/// counters and its KVS figures, every per-node series labelled `node`.
pub fn node_series(
    node: &str,
    calls_here: &[CallSnapshot],
    net: &NetMetricsSnapshot,
    kvs: &NodeKvs,
) -> String {
    let mut t = Text { out: String::new() };
    calls(
        &mut t,
        &[NodeCalls {
            node: node.to_string(),
            calls: calls_here.to_vec(),
        }],
    );
    transport_series(&mut t, node, net);
    kvs::node_kvs_series(&mut t, node, kvs);
    t.out
}

/// Function and DAG call families, each node's series labelled with it.
fn calls(t: &mut Text, nodes: &[NodeCalls]) {
    for (kind, label, counter, hist) in [
        (
            CallKind::Function,
            "function",
            m::FUNCTION_CALLS,
            m::FUNCTION_LATENCY,
        ),
        (CallKind::Dag, "dag", m::DAG_CALLS, m::DAG_LATENCY),
    ] {
        let rows: Vec<(&str, &CallSnapshot)> = nodes
            .iter()
            .flat_map(|n| n.calls.iter().map(move |c| (n.node.as_str(), c)))
            .filter(|(_, c)| c.kind == kind)
            .collect();
        call_series(t, &rows, label, counter, hist);
    }
}

/// The gateway's own call counters: failed calls by code, duplicate results dropped.
pub fn gateway_series(counts: &m::GatewayCounts) -> String {
    let mut t = Text { out: String::new() };
    t.family(
        m::CALL_FAILURES,
        "counter",
        "Calls this gateway answered with an error, by error code.",
    );
    for (code, n) in &counts.failures {
        t.sample(m::CALL_FAILURES, &[("code", code)], n);
    }
    t.family(
        m::DUPLICATE_RESULTS,
        "counter",
        "Results dropped because their call had ended already.",
    );
    t.sample(m::DUPLICATE_RESULTS, &[], counts.duplicates);
    t.out
}

fn call_series(
    t: &mut Text,
    rows: &[(&str, &CallSnapshot)],
    label: &str,
    counter: &str,
    hist: &str,
) {
    t.family(
        counter,
        "counter",
        &format!("Finished {label} calls by status."),
    );
    for (node, c) in rows {
        let name = [("node", *node), (label, c.name.as_str())];
        t.sample(counter, &[name[0], name[1], ("status", "ok")], c.ok);
        t.sample(counter, &[name[0], name[1], ("status", "error")], c.errors);
    }
    t.family(
        hist,
        "histogram",
        &format!("Latency of {label} calls in seconds."),
    );
    let bucket = format!("{hist}_bucket");
    for (node, c) in rows {
        let name = [("node", *node), (label, c.name.as_str())];
        let mut cumulative = 0;
        for (i, n) in c.buckets.iter().enumerate() {
            cumulative += n;
            let le = match BUCKETS_US.get(i) {
                Some(us) => (*us as f64 / 1e6).to_string(),
                None => "+Inf".to_string(),
            };
            t.sample(&bucket, &[name[0], name[1], ("le", &le)], cumulative);
        }
        let sum = c.sum_us as f64 / 1e6;
        t.sample(&format!("{hist}_sum"), &name, sum);
        t.sample(&format!("{hist}_count"), &name, c.count());
    }
}

fn cluster_series(t: &mut Text, s: &Sample) {
    t.family(m::NODE_UP, "gauge", "1 while a member is alive or suspect.");
    for n in &s.nodes {
        let up = u8::from(n.state == "alive" || n.state == "suspect");
        t.sample(m::NODE_UP, &[("node", &n.id)], up);
    }
    t.family(m::NODE_ROLE, "gauge", "1 for every role a member plays.");
    for n in &s.nodes {
        for r in &n.roles {
            t.sample(m::NODE_ROLE, &[("node", &n.id), ("role", r)], 1);
        }
    }
    kvs_series(t, s);
    cache_series(t, s);
    t.family(
        m::EXECUTOR_UTILISATION,
        "gauge",
        "Fraction of Python workers busy.",
    );
    for e in &s.executors {
        t.sample(m::EXECUTOR_UTILISATION, &[("node", &e.node)], e.utilisation);
    }
    t.family(m::EXECUTOR_WORKERS, "gauge", "Python worker processes.");
    for e in &s.executors {
        t.sample(m::EXECUTOR_WORKERS, &[("node", &e.node)], e.workers);
    }
    t.family(
        m::EXECUTOR_EXTRA_WORKERS,
        "gauge",
        "Python workers started beyond the pool's size while functions wait on the platform.",
    );
    for e in &s.executors {
        t.sample(
            m::EXECUTOR_EXTRA_WORKERS,
            &[("node", &e.node)],
            e.extra_workers,
        );
    }
}

/// The acting monitor's last tick and its decisions.
fn autoscale_series(t: &mut Text, a: &crate::protocol::AutoscaleState) {
    let n = a.last.unwrap_or_default();
    t.family(
        m::AUTOSCALE_DESIRED,
        "gauge",
        "Executor nodes the monitor's stable window asks for.",
    );
    t.sample(m::AUTOSCALE_DESIRED, &[], n.desired);
    t.family(
        m::AUTOSCALE_EXECUTORS,
        "gauge",
        "Executor nodes by state, as the acting monitor counts them.",
    );
    for (state, count) in [
        ("active", n.active),
        ("starting", n.starting),
        ("draining", n.draining),
        ("pending", n.pending),
    ] {
        t.sample(m::AUTOSCALE_EXECUTORS, &[("state", state)], count);
    }
    t.family(
        m::AUTOSCALE_DEMAND,
        "gauge",
        "Calls in flight plus queued on active executors.",
    );
    t.sample(m::AUTOSCALE_DEMAND, &[], n.demand_now);
    t.family(
        m::AUTOSCALE_CAPACITY,
        "gauge",
        "Workers of active executor nodes.",
    );
    t.sample(m::AUTOSCALE_CAPACITY, &[], n.capacity);
    t.family(
        m::AUTOSCALE_DECISIONS,
        "counter",
        "Decisions the acting monitor took.",
    );
    t.sample(m::AUTOSCALE_DECISIONS, &[], a.decisions_total);
    t.family(
        m::AUTOSCALE_COLD_STARTS,
        "counter",
        "Cold starts: calls waited with no executor until one was ready.",
    );
    t.sample(m::AUTOSCALE_COLD_STARTS, &[], a.cold_starts);
    t.family(
        m::AUTOSCALE_WAITING,
        "gauge",
        "Calls the schedulers hold because no executor runs.",
    );
    t.sample(m::AUTOSCALE_WAITING, &[], n.waiting);
}

/// Reads one number off a shard sample.
type ShardGet = fn(&ShardSample) -> u64;

fn kvs_series(t: &mut Text, s: &Sample) {
    let answered: Vec<_> = s.shards.iter().filter(|x| x.keys.is_some()).collect();
    let shard_labels = |x: &ShardSample| (x.node.clone(), x.shard.to_string());
    t.family(
        m::KVS_SHARD_UP,
        "gauge",
        "1 when the shard answered the last poll.",
    );
    for x in &s.shards {
        let (node, shard) = shard_labels(x);
        let up = u8::from(x.keys.is_some());
        t.sample(m::KVS_SHARD_UP, &[("node", &node), ("shard", &shard)], up);
    }
    let gauges: [(&str, &str, ShardGet); 3] = [
        (
            m::KVS_KEYS,
            "Keys stored by the shard (tombstones included).",
            |x| x.keys.unwrap_or(0),
        ),
        (
            m::KVS_TOMBSTONES,
            "Keys holding a tombstone not collected yet.",
            |x| x.tombstones,
        ),
        (m::KVS_BYTES, "Bytes of values stored by the shard.", |x| {
            x.bytes
        }),
    ];
    for (name, help, get) in gauges {
        t.family(name, "gauge", help);
        for x in &answered {
            let (node, shard) = shard_labels(x);
            t.sample(name, &[("node", &node), ("shard", &shard)], get(x));
        }
    }
    let counters: [(&str, &str, ShardGet); 5] = [
        ("gets", "Keys read from the shard.", |x| x.gets),
        ("puts", "Keys written by clients.", |x| x.puts),
        ("gossip_in", "Keys merged from replicas.", |x| x.gossip_in),
        ("gossip_out", "Keys sent to replicas.", |x| x.gossip_out),
        ("rejected", "Writes refused.", |x| x.rejected),
    ];
    for (op, help, get) in counters {
        let name = format!("{}{op}_total", m::KVS_OPS_PREFIX);
        t.family(&name, "counter", help);
        for x in &answered {
            let (node, shard) = shard_labels(x);
            t.sample(&name, &[("node", &node), ("shard", &shard)], get(x));
        }
    }
}

fn cache_series(t: &mut Text, s: &Sample) {
    type Get = fn(&CacheSample) -> u64;
    let families: [(&str, &str, &str, Get); 7] = [
        (
            m::CACHE_HITS,
            "counter",
            "Cache reads served from memory.",
            |c| c.hits,
        ),
        (
            m::CACHE_MISSES,
            "counter",
            "Cache reads sent to the KVS.",
            |c| c.misses,
        ),
        (m::CACHE_EVICTIONS, "counter", "Keys evicted.", |c| {
            c.evictions
        }),
        (m::CACHE_KEYS, "gauge", "Keys held.", |c| c.keys),
        (m::CACHE_BYTES, "gauge", "Bytes held.", |c| c.bytes),
        (m::CACHE_CAPACITY, "gauge", "Capacity in bytes.", |c| {
            c.capacity
        }),
        (
            m::CACHE_PINNED,
            "gauge",
            "Keys pinned by repeatable-read sessions.",
            |c| c.pinned,
        ),
    ];
    for (name, kind, help, get) in families {
        t.family(name, kind, help);
        for c in &s.caches {
            t.sample(name, &[("node", &c.node)], get(c));
        }
    }
}

fn transport_series(t: &mut Text, node: &str, net: &NetMetricsSnapshot) {
    let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(net) else {
        return;
    };
    for (field, value) in fields {
        let name = format!("{}{field}_total", m::TRANSPORT_PREFIX);
        t.family(&name, "counter", &format!("Transport counter `{field}`."));
        t.sample(&name, &[("node", node)], value);
    }
}

#[path = "prometheus_kvs.rs"]
mod kvs;

#[cfg(test)]
#[path = "prometheus_tests.rs"]
mod tests;
