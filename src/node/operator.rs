//! Operator commands that talk to a running cluster as a short-lived peer (the cluster
//! secret proves who may): `cloudburst declare-lost NODE_ID --join ADDR`.
//!
//! A KVS node that crashed without handing its keys off makes the keys only it held read
//! as `unavailable` until it returns. When it will not return with its data (its disk is
//! gone), an operator declares its data lost: every live node is told, and those keys
//! read as missing from then on.

use crate::actors::kvs::DeclareLost;
use crate::config::Config;
use crate::ids::NodeId;
use crate::net::membership::{GetView, View};
use crate::net::{ActorRef, NetError, ServiceId, Transport};
use std::fmt;
use std::time::Duration;

/// How long each node may take to answer the declaration (it is a table update).
const ANSWER_LIMIT: Duration = Duration::from_secs(2);

/// Why a declaration did not reach the whole cluster.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("cannot start a peer listener: {0}")]
    Start(NetError),
    #[error("no member answered at {0}: {1}")]
    NoMember(String, NetError),
    #[error("{0} is alive in the cluster's view: only a crashed node's data can be declared lost")]
    Alive(String),
    #[error("{done}; but {failed} node(s) did not take it (run the command again): {reasons}")]
    Partial {
        done: Declared,
        failed: usize,
        reasons: String,
    },
}

/// What a declaration did.
#[derive(Debug)]
pub struct Declared {
    pub node: String,
    /// Live nodes that took the declaration.
    pub told: usize,
    /// Of those, the nodes that held the node as crashed (the others never saw it crash:
    /// they had no keys waiting for it).
    pub held: usize,
}

impl fmt::Display for Declared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "declared the data of {} lost on {} live node(s) ({} held it as crashed); keys only it held now read as missing",
            self.node, self.told, self.held
        )
    }
}

/// Declare `node`'s data lost on every live member of the cluster reached through
/// `cfg.node.join`.
pub fn declare_lost(cfg: &Config, node: &str) -> Result<Declared, AdminError> {
    actix::System::new().block_on(async {
        let me = NodeId::new(format!("admin-{}", std::process::id()));
        let t = Transport::start(cfg, Some(me))
            .await
            .map_err(AdminError::Start)?;
        let outcome = declare(&t, cfg, NodeId::new(node)).await;
        t.shutdown().await;
        outcome
    })
}

async fn declare(t: &Transport, cfg: &Config, node: NodeId) -> Result<Declared, AdminError> {
    let view = view_through(t, cfg).await?;
    if view.get(&node).is_some_and(|m| m.state.is_live()) {
        return Err(AdminError::Alive(node.to_string()));
    }
    let members: Vec<_> = view.live().cloned().collect();
    let answers = futures::future::join_all(members.iter().map(|m| {
        t.connect_hint(&m.node.id, m.addr);
        let to = ActorRef::new(m.node.clone(), ServiceId::KvsShard, 0);
        let msg = DeclareLost { node: node.clone() };
        async move {
            (
                m.node.id.clone(),
                t.handle::<DeclareLost>(to)
                    .send_timeout(msg, ANSWER_LIMIT)
                    .await,
            )
        }
    }))
    .await;
    let mut done = Declared {
        node: node.to_string(),
        told: 0,
        held: 0,
    };
    let mut reasons = Vec::new();
    for (who, answer) in answers {
        match answer {
            Ok(Ok(held)) => {
                done.told += 1;
                done.held += usize::from(held);
            }
            Ok(Err(refused)) => reasons.push(format!("{who}: {refused}")),
            Err(e) => reasons.push(format!("{who}: {e}")),
        }
    }
    if reasons.is_empty() {
        Ok(done)
    } else {
        Err(AdminError::Partial {
            done,
            failed: reasons.len(),
            reasons: reasons.join("; "),
        })
    }
}

/// The view of the first seed that answers.
async fn view_through(t: &Transport, cfg: &Config) -> Result<View, AdminError> {
    let mut last = (String::from("no seed given"), NetError::ConnectionLost);
    for seed in &cfg.node.join {
        let addrs = match crate::net::seed::resolve(seed).await {
            Ok(addrs) => addrs,
            Err(why) => {
                last = (seed.clone(), NetError::Refused(why));
                continue;
            }
        };
        for addr in addrs {
            let asked = async {
                let member = t.identify(addr).await?;
                t.handle::<GetView>(ActorRef::new(member, ServiceId::Membership, 0))
                    .send(GetView)
                    .await
            };
            match asked.await {
                Ok(view) => return Ok(view),
                Err(e) => last = (format!("{seed} ({addr})"), e),
            }
        }
    }
    Err(AdminError::NoMember(last.0, last.1))
}
