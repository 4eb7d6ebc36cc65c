//! Wall-clock time and the Lww write clock of a node.
//!
//! Every Lww write is timestamped `(time, writer)` and ties are broken by the writer id, so
//! two writes by one writer must never carry the same time. One node incarnation is one
//! writer ([`writer_of`]), and every part of the node that writes (gateway, scheduler,
//! executor, the in-process harness) takes its timestamps from the one [`LwwClock`] of that
//! writer: [`node_clock`] hands out that clock, never a second counter for the same writer.

use crate::ids::{hash64, NodeRef, WriterId};
use crate::lattice::Timestamp;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// Microseconds since the Unix epoch (0 if the clock is before it).
pub fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Lww timestamps of one writer: wall-clock microseconds, strictly increasing even if the
/// clock stalls or steps back, and safe to share between threads.
#[derive(Debug)]
pub struct LwwClock {
    writer: WriterId,
    last: AtomicU64,
}

impl LwwClock {
    /// A counter of its own for `writer`: only [`writer_clock`] makes one, so a writer
    /// never has two.
    fn new(writer: WriterId) -> Self {
        LwwClock {
            writer,
            last: AtomicU64::new(0),
        }
    }

    /// The writer this clock stamps.
    pub fn writer(&self) -> WriterId {
        self.writer
    }

    /// The next timestamp: `max(now, last + 1)`.
    pub fn next(&self) -> Timestamp {
        self.next_at(now_micros())
    }

    /// The next timestamp given the wall clock `now_us`: `max(now_us, last + 1)`.
    pub fn next_at(&self, now_us: u64) -> Timestamp {
        let mut last = self.last.load(Ordering::Relaxed);
        loop {
            let t = now_us.max(last.saturating_add(1));
            match self
                .last
                .compare_exchange_weak(last, t, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return Timestamp::new(t, self.writer),
                Err(seen) => last = seen,
            }
        }
    }
}

/// The clock of node incarnation `node`, shared by every writer of that node.
pub fn node_clock(node: &NodeRef) -> Arc<LwwClock> {
    writer_clock(writer_of(node))
}

/// The one clock of `writer` in this process. The table holds one entry per writer that
/// ever wrote here: one per node incarnation started in the process (one for `cloudburst
/// node`, a handful for `cloudburst local` and the tests), a few dozen bytes each. Entries
/// are kept for the process's life: a clock made anew for the same writer would restart
/// from zero and could repeat a timestamp its predecessor gave ahead of the wall clock.
pub fn writer_clock(writer: WriterId) -> Arc<LwwClock> {
    static CLOCKS: OnceLock<Mutex<HashMap<WriterId, Arc<LwwClock>>>> = OnceLock::new();
    let mut clocks = CLOCKS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    clocks
        .entry(writer)
        .or_insert_with(|| Arc::new(LwwClock::new(writer)))
        .clone()
}

/// The writer id of one incarnation of a node (a restarted node writes as a new writer).
pub fn writer_of(node: &NodeRef) -> WriterId {
    WriterId(hash64(&[
        node.id.as_str().as_bytes(),
        &node.generation.0.to_le_bytes(),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{Generation, NodeId};
    use std::collections::HashSet;

    fn node(name: &str) -> NodeRef {
        NodeRef {
            id: NodeId::new(name),
            generation: Generation(42),
        }
    }

    #[test]
    fn timestamps_increase_when_the_wall_clock_stalls_or_steps_back() {
        let c = LwwClock::new(WriterId(7));
        let a = c.next_at(100);
        let b = c.next_at(100);
        let d = c.next_at(50);
        assert_eq!((a.time, b.time, d.time), (100, 101, 102));
        assert_eq!(c.next_at(500).time, 500);
        assert_eq!(d.writer, WriterId(7));
        let mut last = c.next();
        for _ in 0..1000 {
            let t = c.next();
            assert!(t > last);
            last = t;
        }
    }

    #[test]
    fn one_node_has_one_clock() {
        let a = node_clock(&node("clock-one"));
        let b = node_clock(&node("clock-one"));
        assert!(Arc::ptr_eq(&a, &b));
        let restarted = NodeRef {
            generation: Generation(43),
            ..node("clock-one")
        };
        assert_ne!(node_clock(&restarted).writer(), a.writer());
        assert_ne!(node_clock(&node("clock-two")).writer(), a.writer());
    }

    /// Timestamps given twice when `threads` threads each take `each` timestamps, thread
    /// `t` from `clocks[t % clocks.len()]` at the wall-clock time `now()`.
    fn repeats(clocks: &[Arc<LwwClock>], threads: usize, each: usize, now: fn() -> u64) -> usize {
        let all: Vec<Timestamp> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let clock = clocks[t % clocks.len()].clone();
                    s.spawn(move || (0..each).map(|_| clock.next_at(now())).collect::<Vec<_>>())
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("writer thread"))
                .collect()
        });
        let distinct: HashSet<(u64, WriterId)> = all.iter().map(|t| (t.time, t.writer)).collect();
        all.len() - distinct.len()
    }

    /// A wall clock that stands still: every writer asks at the same microsecond, the
    /// hardest case for a counter shared between threads.
    fn frozen() -> u64 {
        1_000_000
    }

    #[test]
    fn concurrent_writers_of_one_node_never_tie() {
        // The checker sees the fault it guards against: two counters for one writer (as
        // when gateway, scheduler and executor each built their own) hand out the same
        // (time, writer) when they write within the same microsecond.
        let w = WriterId(0xC10C);
        let split = [Arc::new(LwwClock::new(w)), Arc::new(LwwClock::new(w))];
        assert_eq!(repeats(&split, 2, 1_000, frozen), 1_000);
        // Every writer of one node asks for its clock separately: they all get the same one,
        // and its timestamps never repeat, whether the clock stands still or runs.
        let n = node("clock-concurrent");
        let shared: Vec<_> = (0..8).map(|_| node_clock(&n)).collect();
        assert_eq!(repeats(&shared, 8, 20_000, frozen), 0);
        assert_eq!(repeats(&shared, 8, 20_000, now_micros), 0);
    }
}
