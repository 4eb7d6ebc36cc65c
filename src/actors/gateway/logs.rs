//! The `logs` op: a call's per-function output, gathered from the nodes that ran it. The
//! gateway does not know which nodes those were (the schedulers placed the functions, and
//! an attempt may have re-run elsewhere), so it asks every live executor node at once;
//! each answers from its own bounded store.

use super::GatewayState;
use crate::config::Role;
use crate::ids::CallId;
use crate::net::{ActorRef, ServiceId};
use crate::protocol::{CallLog, GetCallLogs};

/// The logs of `call` every live executor node holds, in the order the runs finished. A
/// node that does not answer (within the transport's request timeout) adds nothing.
pub async fn gather(state: &GatewayState, call: CallId) -> Vec<CallLog> {
    let nodes: Vec<ActorRef> = {
        let view = state.view.read().unwrap_or_else(|p| p.into_inner());
        view.live_with_role(Role::Executor)
            .map(|m| ActorRef::new(m.node.clone(), ServiceId::Node, 0))
            .collect()
    };
    let asks = nodes.into_iter().map(|target| {
        let h = state.transport.handle::<GetCallLogs>(target);
        async move { h.send(GetCallLogs { call }).await.unwrap_or_default() }
    });
    let mut logs: Vec<CallLog> = futures::future::join_all(asks)
        .await
        .into_iter()
        .flatten()
        .collect();
    logs.sort_by_key(|l| (l.at_ms, l.attempt));
    logs
}
