//! The `Node` service every node runs whatever its roles: it answers with this node's own
//! figures (the call series and recent calls this process recorded, its Python pool) and
//! the logs of the calls it ran. A gateway's dashboard gathers every node's figures once
//! per tick; a client's `logs` request is answered from every node's logs.

use crate::net::{NetError, Transport};
use crate::protocol::{CallLog, GetCallLogs, GetNodeStats, NodeStats, PoolStats};
use crate::pyrt::PythonPool;
use actix::prelude::*;

/// Bytes of a call's output the dashboard's recent calls show (the whole is a `logs`
/// request away): a glance, while 50 rows stay a small snapshot.
pub const LOG_PREVIEW_BYTES: usize = 2048;

/// Answers [`GetNodeStats`] and [`GetCallLogs`] for this node.
pub struct NodeService {
    node: String,
    pool: Option<PythonPool>,
}

impl NodeService {
    /// Start the service and register it on the transport (instance 0).
    pub fn start(transport: &Transport, pool: Option<PythonPool>) -> Result<Addr<Self>, NetError> {
        let node = transport.local_node().id.to_string();
        let addr = Actor::start(NodeService { node, pool });
        transport.register::<GetNodeStats>(0, addr.clone().recipient())?;
        transport.register::<GetCallLogs>(0, addr.clone().recipient())?;
        Ok(addr)
    }

    /// This node's figures now.
    pub fn stats(&self) -> NodeStats {
        let registry = crate::metrics::global();
        let mut recent = registry.recent();
        for r in &mut recent {
            r.node.clone_from(&self.node);
            r.log = r
                .call_id
                .and_then(|c| preview(&crate::calllog::global().get(c), &r.name));
        }
        NodeStats {
            node: self.node.clone(),
            calls: registry.snapshot(),
            recent,
            pool: self.pool.as_ref().map(|p| PoolStats {
                workers: p.workers() as u64,
                extra_workers: p.extra_workers() as u64,
                utilisation: p.utilisation(),
            }),
        }
    }
}

/// The start of what a recent call printed here: its function's runs (or, for a DAG, every
/// run of the call on this node), stdout then stderr then the traceback, cut at
/// [`LOG_PREVIEW_BYTES`].
fn preview(logs: &[CallLog], name: &str) -> Option<String> {
    let own: Vec<&CallLog> = logs.iter().filter(|l| l.function == name).collect();
    let runs = if own.is_empty() {
        logs.iter().collect()
    } else {
        own
    };
    let mut text = String::new();
    for l in runs {
        for part in [&l.stdout, &l.stderr] {
            text.push_str(part);
        }
        if let Some(tb) = &l.traceback {
            text.push_str(tb);
        }
    }
    if text.is_empty() {
        return None;
    }
    if text.len() > LOG_PREVIEW_BYTES {
        let mut end = LOG_PREVIEW_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    Some(text)
}

impl Actor for NodeService {
    type Context = Context<Self>;
}

impl Handler<GetNodeStats> for NodeService {
    type Result = MessageResult<GetNodeStats>;
    fn handle(&mut self, _: GetNodeStats, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.stats())
    }
}

impl Handler<GetCallLogs> for NodeService {
    type Result = MessageResult<GetCallLogs>;
    fn handle(&mut self, msg: GetCallLogs, _: &mut Context<Self>) -> Self::Result {
        let mut logs: Vec<CallLog> = crate::calllog::global().get(msg.call);
        for l in &mut logs {
            l.node.clone_from(&self.node);
        }
        MessageResult(logs)
    }
}
