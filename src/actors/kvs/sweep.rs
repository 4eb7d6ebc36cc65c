//! The shard's sweep, on a timer: values whose expiry time has come become tombstones, and
//! tombstones are collected by the rule in [`super::deletes`]: the shard asks every other
//! current replica about its old tombstones ([`KvsRequest::CheckTombstones`]) and drops
//! those all of them confirmed ([`Collect`]). One round is under way at a time.

use super::client::REBALANCE_WINDOW;
use super::core::Origin;
use super::durable;
use super::messages::{KvsReply, KvsRequest, ShardAddr};
use super::shard::KvsShard;
use crate::ids::Key;
use crate::lattice::{LatticeValue, Tombstone};
use actix::prelude::*;
use std::collections::BTreeMap;
use std::time::Duration;

/// How often a shard expires values and looks for tombstones to collect: expiry is this
/// late at most, and a collection round costs one request per peer replica.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// Tombstones one round asks about: with keys of at most 4 KiB a question stays within a
/// few MiB, far below the frame limit.
pub const COLLECT_BATCH_KEYS: usize = 1024;

impl KvsShard {
    /// Expire what is due (logging it), then start a collection round if the KVS is
    /// settled and none is under way.
    pub(super) fn sweep(&mut self, ctx: &mut Context<Self>) {
        self.core.advance(crate::clock::now_micros());
        durable::expire_logged(&mut self.core, self.durable.as_ref());
        self.flush_pushes();
        if self.collecting || !self.routing.settled(REBALANCE_WINDOW) {
            return;
        }
        let grace_us = u64::try_from(self.tombstone_grace.as_micros()).unwrap_or(u64::MAX);
        let due = self.core.collectable(grace_us, COLLECT_BATCH_KEYS);
        if due.is_empty() {
            return;
        }
        self.collecting = true;
        let questions = self.questions(&due);
        let me = ctx.address();
        actix::spawn(async move {
            let confirmed = ask(questions, due).await;
            me.do_send(Collect(confirmed));
        });
    }

    /// Per other replica, the request about the tombstones of `due` it holds a replica of
    /// (with the index of each entry in `due`).
    fn questions(&self, due: &[(Key, Tombstone)]) -> Vec<(Vec<usize>, Question)> {
        let routing = self.routing.get();
        let mut per_peer: BTreeMap<ShardAddr, Vec<usize>> = BTreeMap::new();
        for (i, (k, _)) in due.iter().enumerate() {
            for r in routing.replicas(k).into_iter().filter(|r| *r != self.me) {
                per_peer.entry(r).or_default().push(i);
            }
        }
        per_peer
            .into_iter()
            .map(|(peer, idx)| {
                let entries = idx.iter().map(|&i| due[i].clone()).collect();
                let target = routing.actor(&peer);
                let handle = target.map(|t| self.transport.handle::<KvsRequest>(t));
                (idx, Question { handle, entries })
            })
            .collect()
    }

    /// Answer another replica's question about its tombstones; one this shard is behind on
    /// is merged here (and the answer is no).
    pub(super) fn check(&mut self, entries: Vec<(Key, Tombstone)>) -> Vec<bool> {
        let mut answers = Vec::with_capacity(entries.len());
        for (k, t) in entries {
            let covered = self.core.covers(&k, t);
            if !covered {
                if let Err(e) = self.put(k, LatticeValue::Tombstone(t), Origin::Replica) {
                    tracing::warn!(shard = %self.me, cause = %e, "tombstone refused");
                }
            }
            answers.push(covered);
        }
        if self.core.pending_push_count() > 0 {
            self.flush_pushes();
        }
        answers
    }
}

/// One request of a collection round (no handle: the peer left the routing).
struct Question {
    handle: Option<crate::net::Handle<KvsRequest>>,
    entries: Vec<(Key, Tombstone)>,
}

/// Ask every peer; the entries of `due` every peer confirmed.
async fn ask(
    questions: Vec<(Vec<usize>, Question)>,
    due: Vec<(Key, Tombstone)>,
) -> Vec<(Key, Tombstone)> {
    let mut confirmed = vec![true; due.len()];
    let replies = futures::future::join_all(questions.into_iter().map(|(idx, q)| async move {
        let reply = match q.handle {
            Some(h) => {
                h.send(KvsRequest::CheckTombstones { entries: q.entries })
                    .await
            }
            None => return (idx, None),
        };
        match reply {
            Ok(Ok(KvsReply::Covered(answers))) if answers.len() == idx.len() => {
                (idx, Some(answers))
            }
            _ => (idx, None),
        }
    }))
    .await;
    for (idx, answers) in replies {
        for (n, i) in idx.into_iter().enumerate() {
            let yes = answers.as_ref().and_then(|a| a.get(n)).copied() == Some(true);
            confirmed[i] &= yes;
        }
    }
    due.into_iter()
        .zip(confirmed)
        .filter_map(|(entry, ok)| ok.then_some(entry))
        .collect()
}

/// Local: a collection round's outcome: the tombstones every other replica confirmed.
#[derive(Message)]
#[rtype(result = "()")]
struct Collect(Vec<(Key, Tombstone)>);

impl Handler<Collect> for KvsShard {
    type Result = ();
    fn handle(&mut self, msg: Collect, _: &mut Context<Self>) {
        self.collecting = false;
        let dropped = durable::collect_logged(&mut self.core, self.durable.as_ref(), &msg.0);
        if dropped > 0 {
            tracing::debug!(shard = %self.me, keys = dropped, "tombstones collected");
        }
    }
}
