//! The KvsShard actor: thin actix glue around [`ShardCore`]. It answers requests, and on a
//! timer (or when enough keys changed) sends gossip to the other replicas and pushes to
//! subscribers; when the routing changes it hands keys (and their subscriptions) to the
//! owners they gained, and drops disowned keys once that was acknowledged and they did not
//! change meanwhile. Before a node leaves, [`Drain`] hands everything to the remaining
//! owners. On another timer it expires values and collects tombstones (`sweep.rs`).

use super::core::{Handoff, Origin, ShardCore};
use super::deletes::Expiry;
use super::durable::{self, Durable, Step};
use super::load::LoadMeter;
use super::messages::{HandoffConfirmed, KeyUpdates, KvsError, KvsReply, KvsRequest, ShardAddr};
use super::routing::{Routing, RoutingId, RoutingTable};
use crate::config::Config;
use crate::ids::Key;
use crate::lattice::LatticeValue;
use crate::net::{ActorRef, NetError, ServiceId, Transport};
use crate::protocol::RESULT_PREFIX;
use actix::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Hot keys reported in stats.
pub const HOT_KEYS: usize = 10;
/// Gossip early, before the timer, once this many keys changed (bounds batch size).
pub const GOSSIP_EARLY_KEYS: usize = 1024;
/// Split gossip, hand-off and push batches above this many payload bytes, so one frame stays
/// far below the transport's maximum and one peer's batch does not delay others for long.
pub const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Requests queued in a shard's mailbox before senders wait (back-pressure).
pub const MAILBOX_CAPACITY: usize = 4096;
/// A hand-off with a failed batch is tried again after this long.
pub const HANDOFF_RETRY: Duration = Duration::from_secs(1);
/// A snapshot whose writer is behind is fed again after this pause.
pub const SNAPSHOT_PAUSE: Duration = Duration::from_millis(5);

type Batch = Vec<(Key, LatticeValue)>;

/// What a shard is configured with.
#[derive(Clone, Debug)]
pub struct ShardOptions {
    /// Largest value a put may carry.
    pub max_value_bytes: usize,
    /// Changed keys are gossiped at least this often.
    pub gossip_every: Duration,
    /// Which values expire (future results), if any.
    pub expiry: Option<Expiry>,
    /// How long a tombstone is held at least before it may be collected.
    pub tombstone_grace: Duration,
}

impl ShardOptions {
    /// The options `cfg` gives every shard.
    pub fn from_config(cfg: &Config) -> ShardOptions {
        let k = &cfg.kvs;
        ShardOptions {
            max_value_bytes: k.max_value_bytes,
            gossip_every: Duration::from_millis(k.gossip_interval_ms),
            expiry: (k.result_ttl_ms > 0).then(|| Expiry {
                prefix: RESULT_PREFIX.to_string(),
                ttl_us: k.result_ttl_ms.saturating_mul(1000),
            }),
            tombstone_grace: Duration::from_millis(k.tombstone_grace_ms),
        }
    }
}

/// One shard of the key space on this node.
pub struct KvsShard {
    pub(super) me: ShardAddr,
    pub(super) core: ShardCore<ActorRef, ShardAddr>,
    pub(super) transport: Transport,
    pub(super) routing: RoutingTable,
    gossip_every: Duration,
    pub(super) tombstone_grace: Duration,
    /// A round of tombstone collection is waiting for the other replicas' answers.
    pub(super) collecting: bool,
    /// The log and snapshots, with a data directory (`none` durability: no log).
    pub(super) durable: Option<Durable>,
    /// This shard's load since the node last reported it.
    pub(super) meter: LoadMeter,
}

impl KvsShard {
    pub fn new(
        me: ShardAddr,
        opts: ShardOptions,
        transport: Transport,
        routing: RoutingTable,
    ) -> Self {
        KvsShard {
            me,
            core: ShardCore::new(opts.max_value_bytes).with_expiry(opts.expiry),
            transport,
            routing,
            gossip_every: opts.gossip_every,
            tombstone_grace: opts.tombstone_grace,
            collecting: false,
            durable: None,
            meter: LoadMeter::new(crate::clock::now_micros()),
        }
    }

    /// This shard with the store recovered from its directory (opened with the same
    /// expiry), logging from now on.
    pub fn with_durable(mut self, core: ShardCore<ActorRef, ShardAddr>, durable: Durable) -> Self {
        self.core = core;
        self.durable = Some(durable);
        self
    }

    /// Merge one entry, logging it if it changed the key.
    pub(super) fn put(
        &mut self,
        key: Key,
        value: LatticeValue,
        origin: Origin,
    ) -> Result<bool, KvsError> {
        durable::put_logged(&mut self.core, self.durable.as_ref(), key, value, origin)
    }

    /// `reply` now, or in `always` mode once the log holds everything before it.
    fn when_durable(
        &self,
        reply: Result<KvsReply, KvsError>,
    ) -> Response<Result<KvsReply, KvsError>> {
        let Some(synced) = self.durable.as_ref().and_then(|d| d.sync_point()) else {
            return Response::reply(reply);
        };
        Response::fut(async move {
            match synced.await {
                Ok(Ok(())) => reply,
                Ok(Err(e)) => Err(KvsError::Storage(e.to_string())),
                Err(_) => Err(KvsError::Storage("the log stopped".into())),
            }
        })
    }

    /// Start a snapshot if one is due, and feed it between requests.
    fn snapshot_if_due(&mut self, ctx: &mut Context<Self>) {
        if let Some(d) = &mut self.durable {
            if d.maybe_snapshot(&self.core) {
                ctx.notify(SnapshotStep);
            }
        }
    }

    /// Send changed keys to the other replicas and owed values to subscribers.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        self.snapshot_if_due(ctx);
        self.flush_pushes();
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
                self.send_batch(&routing, &peer, chunk, None, ctx);
            }
        }
    }

    /// Send subscribers the new values they are owed. Done right after each write (caches
    /// stay fresh to within one message) as well as on the timer (retries).
    pub(super) fn flush_pushes(&mut self) {
        for (sub, entries) in self.core.take_pushes() {
            let handle = self.transport.handle::<KeyUpdates>(sub.clone());
            for chunk in split(entries) {
                let keys: Vec<Key> = chunk.iter().map(|(k, _)| k.clone()).collect();
                match handle.tell(KeyUpdates { entries: chunk }) {
                    Ok(()) => {}
                    Err(NetError::QueueFull) => self.core.requeue_push(sub.clone(), keys),
                    Err(e) if e.is_transient() => self.core.requeue_push(sub.clone(), keys),
                    Err(e) => {
                        tracing::debug!(subscriber = %sub, cause = %e, "dropping subscriber");
                        self.core.drop_subscriber(&sub);
                        break;
                    }
                }
            }
        }
    }

    /// Send one batch to a peer replica as gossip. A transient failure gossips the keys
    /// again later; with a tracker, the outcome is also counted for the hand-off.
    fn send_batch(
        &self,
        routing: &Routing,
        peer: &ShardAddr,
        batch: Batch,
        tracker: Option<Arc<HandoffTracker>>,
        ctx: &mut Context<Self>,
    ) {
        let mut keys: Vec<Key> = batch.iter().map(|(k, _)| k.clone()).collect();
        let Some(target) = routing.actor(peer) else {
            if let Some(t) = tracker {
                t.done(false, keys);
            }
            return;
        };
        let handle = self.transport.handle::<KvsRequest>(target);
        let me = ctx.address();
        let peer = peer.clone();
        actix::spawn(async move {
            let outcome = handle.send(KvsRequest::Gossip { entries: batch }).await;
            let ok = matches!(outcome, Ok(Ok(_)));
            match outcome {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(peer = %peer, cause = %e, "replica refused gossip"),
                Err(e) if e.is_transient() => {
                    tracing::debug!(peer = %peer, cause = %e, "gossip not delivered; will retry");
                    if tracker.is_none() {
                        me.do_send(Requeue(std::mem::take(&mut keys)));
                    }
                }
                Err(e) => {
                    tracing::warn!(peer = %peer, cause = %e, "gossip batch cannot be delivered; dropped")
                }
            }
            if let Some(t) = tracker {
                t.done(ok, keys);
            }
        });
    }

    /// Carry out a hand-off: values and subscriptions to the new owners, then (via
    /// [`HandoffDone`]) release or retry. `reply` learns when it is complete; with
    /// `confirm`, the hand-off after a change to that routing, the cluster does too.
    fn run_handoff(
        &mut self,
        routing: &Routing,
        h: Handoff<ActorRef, ShardAddr>,
        reply: Option<tokio::sync::oneshot::Sender<bool>>,
        confirm: Option<RoutingId>,
        ctx: &mut Context<Self>,
    ) {
        for (peer, sub, keys) in h.subscriptions {
            if let Some(target) = routing.actor(&peer) {
                let handle = self.transport.handle::<KvsRequest>(target);
                actix::spawn(async move {
                    let _ = handle
                        .send(KvsRequest::Subscribe {
                            subscriber: sub,
                            keys,
                        })
                        .await;
                });
            }
        }
        let chunks: Vec<(ShardAddr, Batch)> = h
            .batches
            .into_iter()
            .flat_map(|(p, b)| split(b).into_iter().map(move |c| (p.clone(), c)))
            .collect();
        if chunks.is_empty() && h.disowned.is_empty() {
            if let Some(r) = reply {
                let _ = r.send(true);
            }
            self.confirm_handoff(confirm);
            return;
        }
        tracing::info!(shard = %self.me, batches = chunks.len(), disowned = h.disowned.len(), "handing off keys");
        let tracker = Arc::new(HandoffTracker::new(
            chunks.len(),
            h.disowned,
            ctx.address(),
            (reply, confirm),
        ));
        if chunks.is_empty() {
            tracker.finish();
        }
        for (peer, batch) in chunks {
            self.send_batch(routing, &peer, batch, Some(tracker.clone()), ctx);
        }
    }

    /// Tell this node's routing watcher (which tells every member) that the hand-off for
    /// routing `to` is complete, if the routing is still that one.
    fn confirm_handoff(&self, to: Option<RoutingId>) {
        let Some(to) = to.filter(|to| self.routing.get().id() == *to) else {
            return;
        };
        let watcher = ActorRef::new(self.transport.local_node().clone(), ServiceId::KvsShard, 0);
        let confirmed = HandoffConfirmed {
            to,
            shard: self.me.clone(),
        };
        if let Err(e) = self
            .transport
            .handle::<HandoffConfirmed>(watcher)
            .tell(confirmed)
        {
            tracing::debug!(shard = %self.me, cause = %e, "hand-off confirmation not delivered");
        }
    }

    /// Hand `keys` (or every key) to all their current owners other than this shard;
    /// `confirm` as in [`Self::run_handoff`].
    fn handoff_to_current(
        &mut self,
        keys: Option<&[Key]>,
        confirm: Option<RoutingId>,
        ctx: &mut Context<Self>,
    ) {
        let routing = self.routing.get();
        let me = self.me.clone();
        let h = self.core.handoff(keys, |k| {
            let owners = routing.replicas(k);
            let mine = owners.contains(&me);
            (owners.into_iter().filter(|r| *r != me).collect(), mine)
        });
        self.run_handoff(&routing, h, None, confirm, ctx);
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

/// Counts a hand-off's batch outcomes; when all are in, tells the shard.
struct HandoffTracker {
    remaining: AtomicUsize,
    /// The keys of the batches that were not acknowledged.
    failed: Mutex<Vec<Key>>,
    disowned: Mutex<Vec<(Key, u64)>>,
    shard: Addr<KvsShard>,
    reply: Mutex<Option<tokio::sync::oneshot::Sender<bool>>>,
    confirm: Option<RoutingId>,
}

impl HandoffTracker {
    fn new(
        batches: usize,
        disowned: Vec<(Key, u64)>,
        shard: Addr<KvsShard>,
        (reply, confirm): (
            Option<tokio::sync::oneshot::Sender<bool>>,
            Option<RoutingId>,
        ),
    ) -> Self {
        HandoffTracker {
            remaining: batches.into(),
            failed: Mutex::default(),
            disowned: Mutex::new(disowned),
            shard,
            reply: Mutex::new(reply),
            confirm,
        }
    }

    /// One batch's outcome; `keys`: what it carried.
    fn done(&self, ok: bool, keys: Vec<Key>) {
        if !ok {
            match self.failed.lock() {
                Ok(mut g) => g.extend(keys),
                Err(p) => p.into_inner().extend(keys),
            }
        }
        if self.remaining.fetch_sub(1, SeqCst) == 1 {
            self.finish();
        }
    }

    fn finish(&self) {
        fn take<T>(m: &Mutex<Vec<T>>) -> Vec<T> {
            match m.lock() {
                Ok(mut g) => std::mem::take(&mut *g),
                Err(p) => std::mem::take(&mut *p.into_inner()),
            }
        }
        let reply = match self.reply.lock() {
            Ok(mut g) => g.take(),
            Err(p) => p.into_inner().take(),
        };
        self.shard.do_send(HandoffDone {
            disowned: take(&self.disowned),
            failed: take(&self.failed),
            reply,
            confirm: self.confirm.clone(),
        });
    }
}

impl Actor for KvsShard {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
        ctx.run_interval(self.gossip_every, |act, ctx| act.flush(ctx));
        // Values recovered past their expiry go before the first request is answered.
        self.sweep(ctx);
        ctx.run_interval(super::sweep::SWEEP_INTERVAL, |act, ctx| act.sweep(ctx));
        tracing::debug!(shard = %self.me, "kvs shard started");
    }
}

impl Handler<KvsRequest> for KvsShard {
    type Result = Response<Result<KvsReply, KvsError>>;

    fn handle(&mut self, msg: KvsRequest, ctx: &mut Context<Self>) -> Self::Result {
        // One clock read starts the request for both the store's clock and the meter.
        let started_us = crate::clock::now_micros();
        self.core.advance(started_us);
        self.meter_accesses(&msg);
        let writes = matches!(
            msg,
            KvsRequest::Put { .. }
                | KvsRequest::PutUser { .. }
                | KvsRequest::Gossip { .. }
                | KvsRequest::CheckTombstones { .. }
        );
        let reply = self.answer(msg, ctx);
        let service = crate::clock::now_micros().saturating_sub(started_us);
        self.meter.served(service);
        match writes && reply.is_ok() {
            true => self.when_durable(reply),
            false => Response::reply(reply),
        }
    }
}

impl KvsShard {
    /// Count the keys a client reads or writes (gossip and hand-off are not accesses).
    fn meter_accesses(&mut self, msg: &KvsRequest) {
        match msg {
            KvsRequest::Get { keys } => keys.iter().for_each(|k| self.meter.read(k)),
            KvsRequest::Put { entries } | KvsRequest::PutUser { entries } => {
                entries.iter().for_each(|(k, _)| self.meter.wrote(k))
            }
            _ => {}
        }
    }

    /// A client's writes; `user`: on behalf of user code, so reserved keys are refused.
    fn client_put(
        &mut self,
        entries: Vec<(Key, LatticeValue)>,
        user: bool,
        ctx: &mut Context<Self>,
    ) -> Result<KvsReply, KvsError> {
        // A write the log cannot take is not applied.
        if let Some(d) = &self.durable {
            d.admit()?;
        }
        let results = entries
            .into_iter()
            .map(|(k, v)| match user {
                true => self
                    .core
                    .check_user_key(&k)
                    .and_then(|()| self.put(k, v, Origin::Client)),
                false => self.put(k, v, Origin::Client),
            })
            .collect();
        if self.core.dirty_count() >= GOSSIP_EARLY_KEYS {
            self.flush(ctx);
        } else if self.core.pending_push_count() > 0 {
            self.flush_pushes();
        }
        Ok(KvsReply::Put(results))
    }

    fn answer(&mut self, msg: KvsRequest, ctx: &mut Context<Self>) -> Result<KvsReply, KvsError> {
        match msg {
            KvsRequest::Get { keys } => Ok(KvsReply::Values(
                keys.iter().map(|k| self.core.get(k)).collect(),
            )),
            KvsRequest::Put { entries } => self.client_put(entries, false, ctx),
            KvsRequest::PutUser { entries } => self.client_put(entries, true, ctx),
            KvsRequest::Gossip { entries } => {
                for (k, v) in entries {
                    if let Err(e) = self.put(k, v, Origin::Replica) {
                        tracing::warn!(shard = %self.me, cause = %e, "gossiped value refused");
                    }
                }
                if self.core.pending_push_count() > 0 {
                    self.flush_pushes();
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
            KvsRequest::CheckTombstones { entries } => Ok(KvsReply::Covered(self.check(entries))),
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
        let (previous, current, me) = (&msg.previous, &msg.current, self.me.clone());
        let h = self.core.handoff(None, |k| {
            let now = current.replicas(k);
            let mine = now.contains(&me);
            let was = previous.replicas(k);
            let gained = now
                .into_iter()
                .filter(|r| *r != me)
                .filter(|r| !was.contains(r) || previous.node(&r.node) != current.node(&r.node))
                .collect();
            (gained, mine)
        });
        self.run_handoff(current, h, None, Some(current.id()), ctx);
    }
}

/// Local: a hot key's replicas changed (the monitor's overrides): hand these keys to
/// their current replicas (filling new ones) and release the copies this shard no longer
/// owns once they were acknowledged.
#[derive(Message)]
#[rtype(result = "()")]
pub struct HandOffKeys(pub Vec<Key>);

impl Handler<HandOffKeys> for KvsShard {
    type Result = ();
    fn handle(&mut self, msg: HandOffKeys, ctx: &mut Context<Self>) {
        self.handoff_to_current(Some(&msg.0), None, ctx);
    }
}

/// Local: this node is leaving. Hand every key to its owners in the routing without this
/// node; resolves to whether every batch was acknowledged.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct Drain;

impl Handler<Drain> for KvsShard {
    type Result = ResponseFuture<bool>;
    fn handle(&mut self, _: Drain, ctx: &mut Context<Self>) -> Self::Result {
        let remaining = self.routing.get().without(&self.me.node);
        let me = self.me.clone();
        let h = self.core.handoff(None, |k| (remaining.replicas(k), false));
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.run_handoff(&remaining, h, Some(tx), None, ctx);
        Box::pin(async move {
            let ok = rx.await.unwrap_or(false);
            tracing::info!(shard = %me, complete = ok, "drained before leaving");
            ok
        })
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

/// Local: every batch of a hand-off has an outcome.
#[derive(Message)]
#[rtype(result = "()")]
struct HandoffDone {
    disowned: Vec<(Key, u64)>,
    /// The keys of the batches not acknowledged (none: the hand-off is complete).
    failed: Vec<Key>,
    reply: Option<tokio::sync::oneshot::Sender<bool>>,
    confirm: Option<RoutingId>,
}

impl Handler<HandoffDone> for KvsShard {
    type Result = ();
    fn handle(&mut self, msg: HandoffDone, ctx: &mut Context<Self>) {
        if let Some(r) = msg.reply {
            let _ = r.send(msg.failed.is_empty());
        }
        if !msg.failed.is_empty() {
            // Again: the keys given up, and those of failed batches (which this shard may
            // keep: a new owner still lacks them).
            let mut keys = msg.failed;
            keys.extend(msg.disowned.into_iter().map(|(k, _)| k));
            keys.sort();
            keys.dedup();
            let confirm = msg.confirm;
            ctx.run_later(HANDOFF_RETRY, move |act, ctx| {
                act.handoff_to_current(Some(&keys), confirm, ctx)
            });
            return;
        }
        // Every owner gained acknowledged the keys: readers need not ask this shard as a
        // previous owner any more.
        self.confirm_handoff(msg.confirm);
        // A key may have become ours again since: keep what the current routing assigns us.
        let routing = self.routing.get();
        let release: Vec<(Key, u64)> = msg
            .disowned
            .into_iter()
            .filter(|(k, _)| !routing.replicas(k).contains(&self.me))
            .collect();
        let changed = self.core.release(&release);
        if let Some(d) = &self.durable {
            let kept = |k: &Key| changed.contains(k);
            d.released(release.into_iter().map(|(k, _)| k).filter(|k| !kept(k)));
        }
        if !changed.is_empty() {
            self.handoff_to_current(Some(&changed), None, ctx);
        }
    }
}

/// Local: feed the running snapshot its next chunk.
#[derive(Message)]
#[rtype(result = "()")]
struct SnapshotStep;

impl Handler<SnapshotStep> for KvsShard {
    type Result = ();
    fn handle(&mut self, _: SnapshotStep, ctx: &mut Context<Self>) {
        let Some(d) = &mut self.durable else {
            return;
        };
        match d.step(&self.core) {
            Step::Again => ctx.notify(SnapshotStep),
            Step::Later => {
                ctx.notify_later(SnapshotStep, SNAPSHOT_PAUSE);
            }
            Step::Idle => {}
        }
    }
}
