//! Transport counters: plain atomics bumped on the I/O path, read as a serialisable snapshot.

use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// Live counters of one transport (monotonic since start).
        #[derive(Debug, Default)]
        pub struct NetMetrics { $($(#[$doc])* pub $name: AtomicU64,)* }

        /// A point-in-time copy of [`NetMetrics`].
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
        pub struct NetMetricsSnapshot { $($(#[$doc])* pub $name: u64,)* }

        impl NetMetrics {
            /// Read every counter (each read is atomic, the set is not).
            pub fn snapshot(&self) -> NetMetricsSnapshot {
                NetMetricsSnapshot { $($name: self.$name.load(Ordering::Relaxed),)* }
            }
        }
    };
}

counters! {
    /// Frames received after the handshake.
    frames_in,
    /// Frames written after the handshake.
    frames_out,
    /// Bytes received in frames (without length prefixes).
    bytes_in,
    /// Bytes written in frames (without length prefixes).
    bytes_out,
    /// Frames dropped because they could not be decoded or routed (bad envelope, payload,
    /// unexpected kind, unknown correlation id).
    bad_frames,
    /// Connections closed because of an unreadable or oversized frame.
    bad_connections,
    /// Messages for an unknown (service, tag, instance).
    no_such_actor,
    /// Messages addressed to another generation of this node.
    stale_generation,
    /// Handshakes refused, by us or by the peer (secret, version).
    refused_handshakes,
    /// Inbound connections accepted (after the handshake).
    accepted,
    /// Outbound connections established (the first one and every reconnect).
    connects,
    /// Outbound connections re-established after a loss or failure.
    reconnects,
    /// Outbound connection attempts that failed.
    connect_failures,
    /// Requests failed because their connection broke.
    connection_lost,
    /// Requests that timed out.
    timeouts,
    /// One-way sends refused because the peer queue was full.
    queue_full,
    /// One-way messages dropped (connection lost before they were written, or refused).
    dropped_one_way,
    /// Requests failed, or refused before they were queued, because membership holds the
    /// peer suspect or dead.
    peer_down_failed,
}

/// Add one to a counter.
pub(crate) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Add `n` to a counter.
pub(crate) fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}
