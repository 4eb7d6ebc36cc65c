//! The KvsShard actor: thin actix glue around [`ShardCore`]. It answers requests, and on a
//! timer (or when enough keys changed) sends gossip to the other replicas and pushes to
//! subscribers; when the routing changes it hands keys to their new owners.

use super::core::{Origin, ShardCore};
use super::messages::{KeyUpdates, KvsError, KvsReply, KvsRequest, ShardAddr};
use super::routing::{Routing, RoutingTable};
use crate::ids::Key;
use crate::lattice::LatticeValue;
use crate::net::{ActorRef, NetError, Transport};
use actix::prelude::*;
use std::sync::Arc;
use std::time::Duration;

/// Hot keys reported in stats.
pub const HOT_KEYS: usize = 10;
/// Gossip early, before the timer, once this many keys changed (bounds batch size).
pub const GOSSIP_EARLY_KEYS: usize = 1024;
/// Split gossip and hand-off batches above this many payload bytes, so one frame stays far
/// below the transport's maximum and one peer's batch does not delay others for long.
pub const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Requests queued in a shard's mailbox before senders wait (back-pressure).
pub const MAILBOX_CAPACITY: usize = 4096;

type Batch = Vec<(Key, LatticeValue)>;

/// One shard of the key space on this node.
pub struct KvsShard {
    me: ShardAddr,
    core: ShardCore<ActorRef, ShardAddr>,
    transport: Transport,
    routing: RoutingTable,
    gossip_every: Duration,
}

impl KvsShard {
    pub fn new(
        me: ShardAddr,
        max_value_bytes: usize,
        transport: Transport,
        routing: RoutingTable,
        gossip_every: Duration,
    ) -> Self {
        KvsShard {
            me,
            core: ShardCore::new(max_value_bytes),
            transport,
            routing,
            gossip_every,
        }
    }

    /// Send changed keys to the other replicas and owed values to subscribers.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        let routing = self.routing.get();
        let me = self.me.clone();
        let gossip = self.core.take_gossip(|k| {
            routing
                .replicas(k)
                .into_iter()
                .filter(|r| *r != me)
                .collect()
        });
        for (peer, batch) in gossip {
            for chunk in split(batch) {
                self.send_gossip(&routing, &peer, chunk, None, ctx);
            }
        }
        for (sub, entries) in self.core.take_pushes() {
            let keys: Vec<Key> = entries.iter().map(|(k, _)| k.clone()).collect();
            let handle = self.transport.handle::<KeyUpdates>(sub.clone());
            match handle.tell(KeyUpdates { entries }) {
                Ok(()) => {}
                Err(NetError::QueueFull) => self.core.requeue_push(sub, keys),
                Err(e) => {
                    tracing::debug!(subscriber = %sub, cause = %e, "dropping subscriber");
                    self.core.drop_subscriber(&sub);
                }
            }
        }
    }

    /// Send one batch to a peer replica; on failure the keys are gossiped again later.
    /// With `release`, the listed keys are dropped once the peer acknowledged.
    fn send_gossip(
        &self,
        routing: &Routing,
        peer: &ShardAddr,
        batch: Batch,
        release: Option<Arc<HandoffTracker>>,
        ctx: &mut Context<Self>,
    ) {
        let keys: Vec<Key> = batch.iter().map(|(k, _)| k.clone()).collect();
        let Some(target) = routing.actor(peer) else {
            ctx.notify(Requeue(keys));
            return;
        };
        let handle = self.transport.handle::<KvsRequest>(target);
        let me = ctx.address();
        let peer = peer.clone();
        actix::spawn(async move {
            match handle.send(KvsRequest::Gossip { entries: batch }).await {
                Ok(Ok(_)) => {
                    if let Some(t) = release {
                        t.acked(&me);
                    }
                }
                Ok(Err(e)) => {
                    tracing::warn!(peer = %peer, cause = %e, "replica refused gossip");
                    if let Some(t) = release {
                        t.failed();
                    }
                }
                Err(e) => {
                    tracing::debug!(peer = %peer, cause = %e, "gossip not delivered; will retry");
                    if let Some(t) = release {
                        t.failed();
                    }
                    me.do_send(Requeue(keys));
                }
            }
        });
    }

    /// The routing changed: send every key to the owners it gained, then drop the keys
    /// this shard no longer owns once all of that was acknowledged.
    fn handoff(&mut self, previous: &Routing, current: &Routing, ctx: &mut Context<Self>) {
        let me = self.me.clone();
        let (batches, disowned) = self.core.handoff(|k| {
            let now = current.replicas(k);
            let mine = now.contains(&me);
            let gained = now
                .into_iter()
                .filter(|r| *r != me)
                .filter(|r| {
                    let was = previous.replicas(k).contains(r);
                    let same_incarnation = previous.node(&r.node) == current.node(&r.node);
                    !(was && same_incarnation)
                })
                .collect();
            (gained, mine)
        });
        let chunks: Vec<(ShardAddr, Batch)> = batches
            .into_iter()
            .flat_map(|(p, b)| split(b).into_iter().map(move |c| (p.clone(), c)))
            .collect();
        if chunks.is_empty() && disowned.is_empty() {
            return;
        }
        tracing::info!(shard = %self.me, batches = chunks.len(), disowned = disowned.len(), "handing off keys after a routing change");
        let tracker = Arc::new(HandoffTracker::new(chunks.len(), disowned));
        if chunks.is_empty() {
            tracker.finish(&ctx.address());
        }
        for (peer, batch) in chunks {
            self.send_gossip(current, &peer, batch, Some(tracker.clone()), ctx);
        }
    }
}

/// Splits a batch so no chunk exceeds [`MAX_BATCH_BYTES`] (a single larger entry travels
/// alone).
fn split(batch: Batch) -> Vec<Batch> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    let mut bytes = 0;
    for (k, v) in batch {
        let size = v.size_bytes() + k.as_str().len();
        if !cur.is_empty() && bytes + size > MAX_BATCH_BYTES {
            out.push(std::mem::take(&mut cur));
            bytes = 0;
        }
        bytes += size;
        cur.push((k, v));
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Counts hand-off acknowledgements; releases the disowned keys when all arrived, and
/// keeps them (to be handed off at the next change) if any failed.
struct HandoffTracker {
    remaining: std::sync::atomic::AtomicUsize,
    failed: std::sync::atomic::AtomicBool,
    disowned: std::sync::Mutex<Vec<Key>>,
}

impl HandoffTracker {
    fn new(batches: usize, disowned: Vec<Key>) -> Self {
        HandoffTracker {
            remaining: batches.into(),
            failed: false.into(),
            disowned: std::sync::Mutex::new(disowned),
        }
    }

    fn acked(&self, shard: &Addr<KvsShard>) {
        use std::sync::atomic::Ordering::SeqCst;
        if self.remaining.fetch_sub(1, SeqCst) == 1 && !self.failed.load(SeqCst) {
            self.finish(shard);
        }
    }

    fn failed(&self) {
        self.failed.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    fn finish(&self, shard: &Addr<KvsShard>) {
        let keys = match self.disowned.lock() {
            Ok(mut g) => std::mem::take(&mut *g),
            Err(p) => std::mem::take(&mut *p.into_inner()),
        };
        if !keys.is_empty() {
            shard.do_send(Release(keys));
        }
    }
}

impl Actor for KvsShard {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
        ctx.run_interval(self.gossip_every, |act, ctx| act.flush(ctx));
        tracing::debug!(shard = %self.me, "kvs shard started");
    }
}

impl Handler<KvsRequest> for KvsShard {
    type Result = Result<KvsReply, KvsError>;

    fn handle(&mut self, msg: KvsRequest, ctx: &mut Context<Self>) -> Self::Result {
        match msg {
            KvsRequest::Get { keys } => Ok(KvsReply::Values(
                keys.iter().map(|k| self.core.get(k)).collect(),
            )),
            KvsRequest::Put { entries } => {
                let results = entries
                    .into_iter()
                    .map(|(k, v)| self.core.put(k, v, Origin::Client))
                    .collect();
                if self.core.dirty_count() >= GOSSIP_EARLY_KEYS {
                    self.flush(ctx);
                }
                Ok(KvsReply::Put(results))
            }
            KvsRequest::Gossip { entries } => {
                for (k, v) in entries {
                    if let Err(e) = self.core.put(k, v, Origin::Replica) {
                        tracing::warn!(shard = %self.me, cause = %e, "gossiped value refused");
                    }
                }
                Ok(KvsReply::Ack)
            }
            KvsRequest::Subscribe { subscriber, keys } => {
                self.core.subscribe(subscriber, keys);
                Ok(KvsReply::Ack)
            }
            KvsRequest::Unsubscribe { subscriber, keys } => {
                self.core.unsubscribe(&subscriber, keys);
                Ok(KvsReply::Ack)
            }
            KvsRequest::List { prefix } => Ok(KvsReply::Keys(self.core.keys_with_prefix(&prefix))),
            KvsRequest::Stats => Ok(KvsReply::Stats(self.core.stats(HOT_KEYS))),
        }
    }
}

/// Local: the routing changed from `previous` to `current`.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct RoutingChanged {
    pub previous: Arc<Routing>,
    pub current: Arc<Routing>,
}

impl Handler<RoutingChanged> for KvsShard {
    type Result = ();
    fn handle(&mut self, msg: RoutingChanged, ctx: &mut Context<Self>) {
        self.handoff(&msg.previous, &msg.current, ctx);
    }
}

/// Local: gossip these keys again (a batch was not acknowledged).
#[derive(Message)]
#[rtype(result = "()")]
struct Requeue(Vec<Key>);

impl Handler<Requeue> for KvsShard {
    type Result = ();
    fn handle(&mut self, msg: Requeue, _: &mut Context<Self>) {
        self.core.requeue(msg.0);
    }
}

/// Local: drop keys whose hand-off was acknowledged.
#[derive(Message)]
#[rtype(result = "()")]
struct Release(Vec<Key>);

impl Handler<Release> for KvsShard {
    type Result = ();
    fn handle(&mut self, msg: Release, _: &mut Context<Self>) {
        // A key may have become ours again since: keep what the current routing assigns us.
        let routing = self.routing.get();
        let keys: Vec<Key> = msg
            .0
            .into_iter()
            .filter(|k| !routing.replicas(k).contains(&self.me))
            .collect();
        self.core.release(&keys);
    }
}
