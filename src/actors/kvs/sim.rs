//! A simulated network for the shard cores: deterministic (seeded), it drops, duplicates,
//! delays and reorders gossip messages, and checks that every replica converges to the
//! merge of all writes. A dropped batch is reported to its sender after a delay (as a
//! failed request is by the transport) and the sender gossips those keys again.

use super::core::{Origin, ShardCore};
use crate::ids::{Key, WriterId};
use crate::lattice::{LatticeValue, Lww, SetUnion, Timestamp};
use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;

type Core = ShardCore<u32, usize>;

enum Event {
    Deliver {
        to: usize,
        batch: Vec<(Key, LatticeValue)>,
    },
    Nack {
        to: usize,
        keys: Vec<Key>,
    },
}

struct Sim {
    rng: StdRng,
    shards: Vec<Core>,
    /// In flight: (delivery step, event).
    network: Vec<(u64, Event)>,
    step: u64,
    expected: HashMap<Key, LatticeValue>,
    replication: usize,
}

impl Sim {
    fn new(seed: u64, shards: usize, replication: usize) -> Self {
        Sim {
            rng: StdRng::seed_from_u64(seed),
            shards: (0..shards).map(|_| Core::new(1 << 20)).collect(),
            network: Vec::new(),
            step: 0,
            expected: HashMap::new(),
            replication,
        }
    }

    fn replicas(&self, key: &Key) -> Vec<usize> {
        replicas_of(self.replication, self.shards.len(), key)
    }

    fn random_write(&mut self) {
        let key = Key::new(format!("k{}", self.rng.gen_range(0..6)));
        let value = if key.as_str() < "k3" {
            let t = self.rng.gen_range(0..50);
            let w = WriterId(self.rng.gen_range(0..4));
            let v: u8 = self.rng.gen();
            LatticeValue::Lww(Lww::new(Timestamp::new(t, w), Bytes::from(vec![v])))
        } else {
            let item: u8 = self.rng.gen_range(0..40);
            LatticeValue::SetUnion(
                [Bytes::from(vec![item])]
                    .into_iter()
                    .collect::<SetUnion<_>>(),
            )
        };
        let replicas = self.replicas(&key);
        let at = replicas[self.rng.gen_range(0..replicas.len())];
        match self.expected.get_mut(&key) {
            Some(e) => {
                e.merge(value.clone()).expect("same kind");
            }
            None => {
                self.expected.insert(key.clone(), value.clone());
            }
        }
        self.shards[at]
            .put(key, value, Origin::Client)
            .expect("put accepted");
    }

    fn gossip_round(&mut self, lossy: bool) {
        for from in 0..self.shards.len() {
            let (replication, n) = (self.replication, self.shards.len());
            let repl = |k: &Key| -> Vec<usize> {
                replicas_of(replication, n, k)
                    .into_iter()
                    .filter(|&p| p != from)
                    .collect()
            };
            let batches = self.shards[from].take_gossip(repl);
            for (to, batch) in batches {
                self.send(from, to, batch, lossy);
            }
        }
    }

    fn send(&mut self, from: usize, to: usize, batch: Vec<(Key, LatticeValue)>, lossy: bool) {
        let delay = self.rng.gen_range(1..6);
        let at = self.step + delay;
        if lossy && self.rng.gen_bool(0.25) {
            let keys = batch.into_iter().map(|(k, _)| k).collect();
            self.network.push((at + 3, Event::Nack { to: from, keys }));
            return;
        }
        if lossy && self.rng.gen_bool(0.15) {
            let later = at + self.rng.gen_range(0..8);
            self.network.push((
                later,
                Event::Deliver {
                    to,
                    batch: batch.clone(),
                },
            ));
        }
        self.network.push((at, Event::Deliver { to, batch }));
    }

    /// Deliver everything due, in a random order.
    fn deliver_due(&mut self) {
        let (mut due, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.network)
            .into_iter()
            .partition(|(t, _)| *t <= self.step);
        self.network = rest;
        while !due.is_empty() {
            let i = self.rng.gen_range(0..due.len());
            match due.swap_remove(i).1 {
                Event::Deliver { to, batch } => {
                    for (k, v) in batch {
                        self.shards[to]
                            .put(k, v, Origin::Replica)
                            .expect("same kind");
                    }
                }
                Event::Nack { to, keys } => self.shards[to].requeue(keys),
            }
        }
    }

    fn tick(&mut self, lossy: bool) {
        self.step += 1;
        self.gossip_round(lossy);
        self.deliver_due();
    }

    fn quiet(&self) -> bool {
        self.network.is_empty() && self.shards.iter().all(|s| s.dirty_count() == 0)
    }

    fn assert_converged(&mut self) {
        let expected: Vec<(Key, LatticeValue)> = self
            .expected
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (key, want) in expected {
            for r in self.replicas(&key) {
                assert_eq!(
                    self.shards[r].get(&key).as_ref(),
                    Some(&want),
                    "replica {r} of {key} diverged"
                );
            }
        }
    }
}

/// Replicas of a key: `replication` consecutive shards from a hash of the key.
fn replicas_of(replication: usize, shards: usize, key: &Key) -> Vec<usize> {
    let h = key
        .as_str()
        .bytes()
        .fold(7usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize));
    (0..replication).map(|i| (h + i) % shards).collect()
}

fn run(seed: u64) {
    let mut sim = Sim::new(seed, 4, 3);
    for _ in 0..400 {
        for _ in 0..sim.rng.gen_range(0..4) {
            sim.random_write();
        }
        sim.tick(true);
    }
    // Heal: no new writes, a reliable network, until nothing is in flight.
    let mut rounds = 0;
    while !sim.quiet() {
        sim.tick(false);
        rounds += 1;
        assert!(rounds < 1_000, "no convergence after healing");
    }
    sim.assert_converged();
}

#[test]
fn replicas_converge_despite_drops_duplicates_delays_and_reordering() {
    for seed in 0..20 {
        run(seed);
    }
}
