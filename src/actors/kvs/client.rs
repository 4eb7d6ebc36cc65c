//! The KVS client every other role uses (caches, scheduler, gateway, benchmarks): routes
//! each key to its replica set through the current [`Routing`] snapshot.
//!
//! Acknowledgement policy: a put returns `Ok` only when **every** replica of the key's
//! current replica set merged the value, so an acknowledged write survives the loss of
//! `k - 1` replicas. If any replica cannot be reached the put fails with a transient error
//! (the replicas that did merge keep the value — harmless, lattices merge idempotently —
//! and the caller may retry). While fewer KVS nodes live than the replication factor, puts
//! fail with `UnderReplicated` rather than being acknowledged on fewer copies. A put that
//! fails with `Unavailable` may therefore have been written (by the replicas that merged
//! it): it is "maybe written", never "not written".
//!
//! A get asks one replica (this node's first, if it holds one; replicas membership holds
//! suspect last) and falls over to the next on a network error; requests to a dead or
//! suspect node fail at once. A value answers. "Missing" answers only when it can be
//! trusted: after a routing change a new owner may not have received the key yet, so
//! every other current and previous replica is asked (at once; the first value wins) until
//! every shard of the new routing confirmed its hand-off (at most [`REBALANCE_WINDOW`]); and a key
//! every replica of which crashed without handing it off reads as `Unavailable`, never as
//! missing ([`RoutingTable::is_lost`]).
//!
//! A hot key the monitor replicates further ([`super::overrides`]) is written to all its
//! replicas, and its reads go round robin over its readable replicas (so its load spreads
//! over the nodes); an extra replica that answers "missing" (not filled yet, or already
//! dropped by a node that routes without it) is never trusted: the read goes on to the
//! next replica, and only a base replica's "missing" counts.

use super::core::validate_key;
use super::messages::{KvsError, KvsReply, KvsRequest, ShardAddr, ShardStats};
use super::routing::{Routing, RoutingTable};
use crate::ids::Key;
use crate::lattice::LatticeValue;
use crate::net::{ActorRef, NetError, Transport};
use futures::future::join_all;
use futures::stream::{FuturesUnordered, StreamExt};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// After a routing change, a read that finds a key missing asks every other current and
/// previous replica until the hand-off is confirmed, and for at most this long (the bound
/// for a confirmation that does not come: a lost message, a shard that failed to hand off).
pub const REBALANCE_WINDOW: Duration = Duration::from_secs(10);

/// Handle to the KVS tier. Cheap to clone.
#[derive(Clone)]
pub struct KvsClient {
    transport: Transport,
    routing: RoutingTable,
    /// Reads that found a key missing and asked the previous owners too.
    fanouts: Arc<AtomicU64>,
    /// Turns of the round robin over a hot key's replicas.
    turn: Arc<AtomicU64>,
}

impl KvsClient {
    pub fn new(transport: Transport, routing: RoutingTable) -> Self {
        KvsClient {
            transport,
            routing,
            fanouts: Arc::default(),
            turn: Arc::default(),
        }
    }

    /// How many reads (of this client and its clones) asked the previous owners too,
    /// since it was made.
    pub fn fanout_reads(&self) -> u64 {
        self.fanouts.load(Ordering::Relaxed)
    }

    /// The routing snapshot in use now.
    pub fn routing(&self) -> Arc<Routing> {
        self.routing.get()
    }

    /// Read one key; `None` when it is missing (see the module doc for when a missing
    /// answer is trusted).
    pub async fn get(&self, key: &Key) -> Result<Option<LatticeValue>, KvsError> {
        validate_key(key)?;
        let routing = self.routing.get();
        let mut last = KvsError::NoReplicas;
        let mut asked = Vec::new();
        let (order, base) = self.read_order(&routing, key);
        for shard in order {
            let reply = self.request(&routing, &shard, get(key)).await;
            let extra = base.as_ref().is_some_and(|b| !b.contains(&shard));
            asked.push(shard);
            match reply {
                Ok(KvsReply::Values(mut v)) if v.len() == 1 => match v.pop().flatten() {
                    Some(value) => return Ok(Some(value)),
                    // Only a base replica is sure to hold every write of the key.
                    None if extra => continue,
                    None => return self.confirm_missing(&routing, asked, key).await,
                },
                Ok(other) => return Err(unexpected(&other)),
                Err(e) if e.is_transient() => last = e,
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    /// A replica in `asked` found `key` missing: answer `None` only if no other replica of
    /// a routing change under way has it, and its range was not lost to crashes.
    async fn confirm_missing(
        &self,
        current: &Routing,
        asked: Vec<ShardAddr>,
        key: &Key,
    ) -> Result<Option<LatticeValue>, KvsError> {
        if let Some(previous) = self.routing.recent_previous(REBALANCE_WINDOW) {
            self.fanouts.fetch_add(1, Ordering::Relaxed);
            let mut others: Vec<(&Routing, ShardAddr)> = Vec::new();
            for r in [current, &previous] {
                for s in r.replicas(key) {
                    if !asked.contains(&s) && !others.iter().any(|(_, o)| *o == s) {
                        others.push((r, s));
                    }
                }
            }
            let mut replies: FuturesUnordered<_> = others
                .iter()
                .map(|(r, s)| self.request(r, s, get(key)))
                .collect();
            while let Some(reply) = replies.next().await {
                if let Ok(KvsReply::Values(mut v)) = reply {
                    if let Some(Some(value)) = v.pop() {
                        return Ok(Some(value));
                    }
                }
            }
        }
        if self.routing.is_lost(key) {
            return Err(KvsError::Unavailable(format!(
                "every replica of `{key}` crashed without handing it off; it reads as unavailable until one returns"
            )));
        }
        Ok(None)
    }

    /// Read several keys concurrently, in order.
    pub async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<LatticeValue>>, KvsError> {
        join_all(keys.iter().map(|k| self.get(k)))
            .await
            .into_iter()
            .collect()
    }

    /// Merge `value` into `key` on every replica (see the module doc for the policy).
    pub async fn put(&self, key: Key, value: LatticeValue) -> Result<(), KvsError> {
        self.put_as(key, value, false).await
    }

    /// [`Self::put`] on behalf of user code (a function, a client of the gateway): a key
    /// under the reserved prefix is refused here and by every replica.
    pub async fn put_user(&self, key: Key, value: LatticeValue) -> Result<(), KvsError> {
        if key.is_reserved() {
            return Err(KvsError::Reserved {
                key: key.to_string(),
            });
        }
        self.put_as(key, value, true).await
    }

    async fn put_as(&self, key: Key, value: LatticeValue, user: bool) -> Result<(), KvsError> {
        validate_key(&key)?;
        let routing = self.routing.get();
        let replicas = routing.replicas(&key);
        if replicas.is_empty() {
            return Err(KvsError::NoReplicas);
        }
        if replicas.len() < routing.replication() {
            return Err(KvsError::UnderReplicated {
                have: replicas.len(),
                want: routing.replication(),
            });
        }
        let sends = replicas.iter().map(|shard| {
            let entries = vec![(key.clone(), value.clone())];
            let req = match user {
                true => KvsRequest::PutUser { entries },
                false => KvsRequest::Put { entries },
            };
            self.request(&routing, shard, req)
        });
        for reply in join_all(sends).await {
            match reply? {
                KvsReply::Put(mut results) if results.len() == 1 => {
                    results.pop().unwrap_or(Ok(false))?;
                }
                other => return Err(unexpected(&other)),
            }
        }
        Ok(())
    }

    /// Delete `key`: a tombstone at `at` (the deleter's write clock) on every replica. Reads
    /// then answer missing, until a write later than `at`.
    pub async fn delete(&self, key: Key, at: crate::lattice::Timestamp) -> Result<(), KvsError> {
        let tombstone = crate::lattice::Tombstone::new(at);
        self.put(key, LatticeValue::Tombstone(tombstone)).await
    }

    /// Ask every shard holding a replica of `key` to push its changes to `subscriber`.
    pub async fn subscribe(&self, subscriber: &ActorRef, key: &Key) -> Result<(), KvsError> {
        self.on_replicas(key, |keys| KvsRequest::Subscribe {
            subscriber: subscriber.clone(),
            keys,
        })
        .await
    }

    /// Stop pushes of `key` to `subscriber`.
    pub async fn unsubscribe(&self, subscriber: &ActorRef, key: &Key) -> Result<(), KvsError> {
        self.on_replicas(key, |keys| KvsRequest::Unsubscribe {
            subscriber: subscriber.clone(),
            keys,
        })
        .await
    }

    /// Every key starting with `prefix`, from all shards, sorted and deduplicated.
    pub async fn list(&self, prefix: &str) -> Result<Vec<Key>, KvsError> {
        let routing = self.routing.get();
        let shards = routing.all_shards();
        if shards.is_empty() {
            return Err(KvsError::NoReplicas);
        }
        let replies = join_all(shards.iter().map(|s| {
            self.request(
                &routing,
                s,
                KvsRequest::List {
                    prefix: prefix.to_string(),
                },
            )
        }))
        .await;
        let mut keys = BTreeSet::new();
        for r in replies {
            match r? {
                KvsReply::Keys(k) => keys.extend(k),
                other => return Err(unexpected(&other)),
            }
        }
        Ok(keys.into_iter().collect())
    }

    /// Stats of every shard (a shard that does not answer reports its error).
    pub async fn stats(&self) -> Vec<(ShardAddr, Result<ShardStats, KvsError>)> {
        let routing = self.routing.get();
        let shards = routing.all_shards();
        let replies = join_all(
            shards
                .iter()
                .map(|s| self.request(&routing, s, KvsRequest::Stats)),
        )
        .await;
        shards
            .into_iter()
            .zip(replies)
            .map(|(s, r)| {
                let r = r.and_then(|reply| match reply {
                    KvsReply::Stats(st) => Ok(st),
                    other => Err(unexpected(&other)),
                });
                (s, r)
            })
            .collect()
    }

    /// Send the same single-key request to every replica of `key`.
    async fn on_replicas(
        &self,
        key: &Key,
        req: impl Fn(Vec<Key>) -> KvsRequest,
    ) -> Result<(), KvsError> {
        let routing = self.routing.get();
        let replicas = routing.replicas(key);
        if replicas.is_empty() {
            return Err(KvsError::NoReplicas);
        }
        let replies = join_all(
            replicas
                .iter()
                .map(|s| self.request(&routing, s, req(vec![key.clone()]))),
        )
        .await;
        for r in replies {
            r?;
        }
        Ok(())
    }

    /// Replicas of `key` to read from, those membership holds suspect last: this node's
    /// first, or for a key with extra replicas, the next in a round robin over them. With
    /// its base replicas (the first `k`) when it has others (None: every one is a base).
    fn read_order(&self, routing: &Routing, key: &Key) -> (Vec<ShardAddr>, Option<Vec<ShardAddr>>) {
        let mut reps = routing.read_replicas(key);
        let k = routing.replication().min(reps.len());
        let mut base = None;
        if reps.len() > k {
            base = Some(reps[..k].to_vec());
            let turn = self.turn.fetch_add(1, Ordering::Relaxed) % reps.len() as u64;
            reps.rotate_left(turn as usize);
        } else {
            let me = &self.transport.local_node().id;
            if let Some(i) = reps.iter().position(|s| &s.node == me) {
                reps.swap(0, i);
            }
        }
        if reps.len() > 1 && self.transport.any_down() {
            // Stable: the order among reachable replicas is kept.
            reps.sort_by_key(|s| !self.transport.is_reachable(&s.node));
        }
        (reps, base)
    }

    /// One request to one shard, with network errors mapped to `Unavailable`.
    async fn request(
        &self,
        routing: &Routing,
        shard: &ShardAddr,
        req: KvsRequest,
    ) -> Result<KvsReply, KvsError> {
        let Some(target) = routing.actor(shard) else {
            return Err(KvsError::Unavailable(format!(
                "shard {shard} left the ring"
            )));
        };
        self.transport
            .handle::<KvsRequest>(target)
            .send(req)
            .await
            .map_err(|e: NetError| KvsError::Unavailable(format!("{shard}: {e}")))?
    }
}

fn get(key: &Key) -> KvsRequest {
    KvsRequest::Get {
        keys: vec![key.clone()],
    }
}

fn unexpected(reply: &KvsReply) -> KvsError {
    KvsError::Malformed(format!("unexpected reply {}", reply_name(reply)))
}

fn reply_name(reply: &KvsReply) -> &'static str {
    match reply {
        KvsReply::Values(_) => "Values",
        KvsReply::Put(_) => "Put",
        KvsReply::Ack => "Ack",
        KvsReply::Keys(_) => "Keys",
        KvsReply::Stats(_) => "Stats",
        KvsReply::Covered(_) => "Covered",
    }
}
