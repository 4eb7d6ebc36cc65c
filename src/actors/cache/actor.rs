//! The cache actor: thin glue around the shared [`super::core::CacheCore`]. It receives the
//! KVS shards' [`KeyUpdates`] pushes, answers [`GetCacheStats`] and repeatable-read session
//! requests, follows the membership view to know the live schedulers, and every
//! `report_interval` tells each of them which keys this node holds ([`CacheKeysReport`]).
//! Reads and writes do not pass through it: they go through [`CacheHandle`] directly.

use super::handle::{CacheHandle, Inner};
use super::messages::GetCacheStats;
use super::{MAILBOX_CAPACITY, MAX_REPORT_KEYS, MAX_REPORT_KEY_BYTES};
use crate::actors::kvs::{KeyUpdates, KvsClient};
use crate::config::Config;
use crate::net::membership::{Membership, Subscribe, ViewChanged};
use crate::net::{ActorRef, NetError, ServiceId, Transport};
use crate::protocol::{CacheKeysReport, ReleaseSession, SessionRead};
use actix::prelude::*;
use std::sync::Arc;
use std::time::Duration;

/// The cache of one executor node (service `Cache`, instance 0).
pub struct CacheActor {
    inner: Arc<Inner>,
    transport: Transport,
    schedulers: Vec<ActorRef>,
    report_every: Duration,
    /// Pins of a session unused this long are dropped.
    session_ttl: Duration,
}

impl CacheHandle {
    /// Start this node's cache: the actor on the current arbiter, registered on `transport`
    /// as `(Cache, 0)` for [`KeyUpdates`] and [`GetCacheStats`], subscribed to `membership`
    /// for the schedulers. Capacity and report interval come from `cfg.executor`. Must run
    /// inside an actix `System`.
    pub fn start(
        transport: &Transport,
        membership: &Addr<Membership>,
        kvs: KvsClient,
        cfg: &Config,
    ) -> Result<CacheHandle, NetError> {
        let me = ActorRef::new(transport.local_node().clone(), ServiceId::Cache, 0);
        let inner = Arc::new(Inner::new(
            cfg.executor.cache_capacity_bytes,
            kvs,
            me,
            Arbiter::current(),
        ));
        let actor = CacheActor {
            inner: inner.clone(),
            transport: transport.clone(),
            schedulers: Vec::new(),
            report_every: Duration::from_millis(cfg.executor.cache_report_interval_ms),
            session_ttl: Duration::from_millis(cfg.consistency.session_ttl_ms),
        }
        .start();
        transport.register::<KeyUpdates>(0, actor.clone().recipient())?;
        transport.register::<GetCacheStats>(0, actor.clone().recipient())?;
        transport.register::<SessionRead>(0, actor.clone().recipient())?;
        transport.register::<ReleaseSession>(0, actor.clone().recipient())?;
        membership.do_send(Subscribe(actor.recipient()));
        tracing::info!(
            capacity = cfg.executor.cache_capacity_bytes,
            "cache started"
        );
        Ok(CacheHandle { inner })
    }
}

impl CacheActor {
    /// Send the held keys to every live scheduler, one-way. A full peer queue skips that
    /// scheduler this round: the next report replaces this one anyway.
    fn report(&self) {
        if self.schedulers.is_empty() {
            return;
        }
        let keys = self
            .inner
            .lock()
            .held_keys(MAX_REPORT_KEYS, MAX_REPORT_KEY_BYTES);
        let msg = CacheKeysReport {
            node: self.inner.me.node.clone(),
            keys,
        };
        for s in &self.schedulers {
            match self
                .transport
                .handle::<CacheKeysReport>(s.clone())
                .tell(msg.clone())
            {
                Ok(()) => {}
                Err(NetError::QueueFull) => {
                    tracing::debug!(scheduler = %s, "cache report skipped: queue full")
                }
                Err(e) => tracing::debug!(scheduler = %s, cause = %e, "cache report not sent"),
            }
        }
    }
}

impl Actor for CacheActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
        ctx.run_interval(self.report_every, |act, _| {
            act.report();
            let expired = act
                .inner
                .lock()
                .expire_pins(std::time::Instant::now(), act.session_ttl);
            if expired > 0 {
                tracing::info!(sessions = expired, "dropped the pins of unused sessions");
            }
        });
    }
}

impl Handler<KeyUpdates> for CacheActor {
    type Result = ();

    fn handle(&mut self, msg: KeyUpdates, _: &mut Context<Self>) {
        let evicted: Vec<_> = {
            let mut core = self.inner.lock();
            msg.entries
                .into_iter()
                .flat_map(|(k, v)| core.merge_update(k, v).evicted)
                .collect()
        };
        self.inner.release(evicted);
    }
}

impl Handler<ViewChanged> for CacheActor {
    type Result = ();

    fn handle(&mut self, msg: ViewChanged, _: &mut Context<Self>) {
        self.schedulers = msg.view.live_schedulers();
    }
}

impl Handler<GetCacheStats> for CacheActor {
    type Result = MessageResult<GetCacheStats>;

    fn handle(&mut self, _: GetCacheStats, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.inner.lock().stats())
    }
}

impl Handler<SessionRead> for CacheActor {
    type Result = ResponseFuture<Result<Vec<Option<crate::lattice::LatticeValue>>, String>>;

    fn handle(&mut self, msg: SessionRead, _: &mut Context<Self>) -> Self::Result {
        let cache = CacheHandle {
            inner: self.inner.clone(),
        };
        Box::pin(async move {
            cache
                .session_read(msg.session, &msg.keys)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

impl Handler<ReleaseSession> for CacheActor {
    type Result = ();

    fn handle(&mut self, msg: ReleaseSession, _: &mut Context<Self>) {
        let n = self.inner.lock().unpin_session(msg.session);
        tracing::trace!(session = %msg.session, keys = n, "session released");
    }
}
