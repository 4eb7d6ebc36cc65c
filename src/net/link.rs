//! Outbound links: one per peer node, owning a bounded frame queue, the table of pending
//! requests and a task that connects on demand, drives the connection, and reconnects with
//! exponential backoff after a loss.
//!
//! When a connection breaks or cannot be made, every pending request fails at once
//! (`ConnectionLost`, or `Refused` with the peer's reason) and queued frames are dropped, so
//! a caller that got an error is (almost always) not executed later. The exception: a frame
//! queued in the instant between the failure and the drain goes out on the next connection
//! and its reply is ignored. `ConnectionLost` therefore means "may or may not have run".
//!
//! Membership marks a link down while it holds the peer suspect or dead
//! ([`Link::set_down`]): its pending requests fail at once with `PeerDown` and new requests
//! fail without being queued, so nobody waits out the request timeout on a frozen peer
//! whose connection stays open, nor the reconnect backoff on a dead one. One-way messages
//! are still queued (nobody waits on them, and a merely slow peer must get them).

use crate::ids::NodeId;
use crate::net::conn::{drive, Conn, Ended, Outbound};
use crate::net::error::NetError;
use crate::net::handshake::{self, HandshakeError, HANDSHAKE_MAX_FRAME};
use crate::net::metrics::{add, bump};
use crate::net::pending::{self, Pending};
use crate::net::transport::Shared;
use crate::net::wire::codec;
use bytes::Bytes;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite};

/// The sending side of one peer.
pub(crate) struct Link {
    pub node: NodeId,
    addr: Mutex<SocketAddr>,
    pub tx: mpsc::Sender<Bytes>,
    pub pending: Pending,
    /// Membership holds the peer suspect or dead.
    down: AtomicBool,
}

impl Link {
    /// Create the link to `node` at `addr` and start its task and its deadline sweeper.
    pub(crate) fn start(shared: &Arc<Shared>, node: NodeId, addr: SocketAddr) -> Arc<Link> {
        let (tx, rx) = mpsc::channel(shared.cfg.peer_queue_depth);
        let link = Arc::new(Link {
            node,
            addr: Mutex::new(addr),
            tx,
            pending: Pending::default(),
            down: AtomicBool::new(false),
        });
        let task = run(shared.clone(), link.clone(), rx);
        shared.spawn(task);
        let (link2, shutdown) = (link.clone(), shared.shutdown.clone());
        shared.spawn(async move { pending::sweep(&link2.pending, &shutdown).await });
        link
    }

    /// Where to connect next time.
    pub(crate) fn set_addr(&self, addr: SocketAddr) {
        *self.addr.lock().unwrap_or_else(|p| p.into_inner()) = addr;
    }

    /// Mark the peer down (suspect or dead: every pending request fails now with
    /// `PeerDown`) or up again. Returns how many requests were failed.
    pub(crate) fn set_down(&self, shared: &Shared, down: bool) -> usize {
        // SeqCst pairs with the load in `is_down` after a request is inserted: either the
        // sender sees the flag, or its request is in the table `fail_all` drains.
        let was = self.down.swap(down, Ordering::SeqCst);
        match (was, down) {
            (false, true) => shared.down_links.fetch_add(1, Ordering::SeqCst),
            (true, false) => shared.down_links.fetch_sub(1, Ordering::SeqCst),
            _ => 0,
        };
        if !down || was {
            return 0;
        }
        let failed = self
            .pending
            .fail_all(&NetError::PeerDown(self.node.clone()));
        add(&shared.metrics.peer_down_failed, failed as u64);
        failed
    }

    /// Whether membership holds the peer suspect or dead.
    pub(crate) fn is_down(&self) -> bool {
        self.down.load(Ordering::SeqCst)
    }

    fn addr(&self) -> SocketAddr {
        *self.addr.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Fail every pending request and drop queued frames.
    fn fail(&self, shared: &Shared, rx: &mut mpsc::Receiver<Bytes>, err: &NetError) {
        let mut dropped = 0;
        while rx.try_recv().is_ok() {
            dropped += 1;
        }
        let failed = self.pending.fail_all(err);
        add(&shared.metrics.connection_lost, failed as u64);
        add(
            &shared.metrics.dropped_one_way,
            (dropped as u64).saturating_sub(failed as u64),
        );
    }
}

/// The link task: idle until there is work, then connect (with backoff after failures),
/// drive the connection, and start over when it ends.
async fn run(shared: Arc<Shared>, link: Arc<Link>, mut rx: mpsc::Receiver<Bytes>) {
    let min = Duration::from_millis(shared.cfg.reconnect_min_ms);
    let max = Duration::from_millis(shared.cfg.reconnect_max_ms);
    let mut backoff = min;
    let mut was_connected = false;
    loop {
        let first = tokio::select! {
            _ = shared.shutdown.cancelled() => break,
            f = rx.recv() => match f { Some(f) => f, None => break },
        };
        let addr = link.addr();
        let connected = tokio::select! {
            _ = shared.shutdown.cancelled() => break,
            c = connect(&shared, &link, addr) => c,
        };
        let conn = match connected {
            Ok(c) => c,
            Err(e) => {
                bump(&shared.metrics.connect_failures);
                let retry_in_ms = backoff.as_millis() as u64;
                if backoff == min {
                    tracing::warn!(peer = %addr, node = %link.node, cause = %e, retry_in_ms, "cannot connect");
                } else {
                    tracing::debug!(peer = %addr, node = %link.node, cause = %e, retry_in_ms, "cannot connect");
                }
                link.fail(&shared, &mut rx, &e);
                tokio::select! {
                    _ = shared.shutdown.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(max);
                continue;
            }
        };
        backoff = min;
        bump(&shared.metrics.connects);
        if was_connected {
            bump(&shared.metrics.reconnects);
        }
        was_connected = true;
        tracing::debug!(peer = %addr, node = %conn.peer.node, "connected");
        let out = Outbound {
            queue: &mut rx,
            pending: &link.pending,
            first: Some(first),
        };
        match drive(&shared, conn, Some(out)).await {
            Ended::Shutdown => break,
            Ended::Closed => tracing::info!(peer = %addr, node = %link.node, "connection closed"),
            Ended::Failed(cause) => {
                tracing::warn!(peer = %addr, node = %link.node, cause = %cause, "connection lost")
            }
        }
        link.fail(&shared, &mut rx, &NetError::ConnectionLost);
    }
    link.fail(&shared, &mut rx, &NetError::Shutdown);
}

/// Connect to `addr` and run the dialer's handshake, checking the peer is `link.node`.
async fn connect(shared: &Shared, link: &Link, addr: SocketAddr) -> Result<Conn, NetError> {
    let conn = dial(shared, addr).await?;
    if conn.peer.node.id != link.node {
        return Err(NetError::Refused(format!(
            "{addr} is now node {}, not {}",
            conn.peer.node.id, link.node
        )));
    }
    Ok(conn)
}

/// TCP connect plus handshake, bounded by `connect_timeout_ms`.
pub(crate) async fn dial(shared: &Shared, addr: SocketAddr) -> Result<Conn, NetError> {
    let limit = Duration::from_millis(shared.cfg.connect_timeout_ms);
    match tokio::time::timeout(limit, dial_inner(shared, addr)).await {
        Ok(r) => r,
        Err(_) => Err(NetError::Timeout),
    }
}

async fn dial_inner(shared: &Shared, addr: SocketAddr) -> Result<Conn, NetError> {
    let stream = connect_from(shared.identity.listen.ip(), addr)
        .await
        .map_err(|_| NetError::ConnectionLost)?;
    crate::net::transport::tune_socket(&stream).map_err(|_| NetError::ConnectionLost)?;
    let (r, w) = stream.into_split();
    let mut reader = FramedRead::new(r, codec(HANDSHAKE_MAX_FRAME));
    let mut writer = FramedWrite::new(w, codec(HANDSHAKE_MAX_FRAME));
    let peer = handshake::dial(
        &mut reader,
        &mut writer,
        &shared.identity,
        &shared.secret,
        &shared.cluster,
    )
    .await
    .map_err(|e| handshake_failed(shared, addr, e))?;
    reader
        .decoder_mut()
        .set_max_frame_length(shared.cfg.max_frame_bytes);
    Ok(Conn {
        reader,
        writer: writer.into_inner(),
        peer,
        addr,
    })
}

/// Connect to `addr` from the address this node listens on, when that is a specific one of
/// the same kind (both loopback or both not): a node's traffic then comes from its own
/// address in both directions (loopback addresses other than 127.0.0.1 would otherwise
/// send from 127.0.0.1), so per-node firewall rules and peer logs see the node itself.
async fn connect_from(local: IpAddr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let same_kind = local.is_loopback() == addr.ip().is_loopback();
    // 127.0.0.1 is what the kernel picks for loopback anyway.
    let default = local.is_unspecified() || local == IpAddr::V4(Ipv4Addr::LOCALHOST);
    if default || local.is_ipv4() != addr.is_ipv4() || !same_kind {
        return TcpStream::connect(addr).await;
    }
    let socket = match local {
        IpAddr::V4(_) => TcpSocket::new_v4()?,
        IpAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(local, 0))?;
    socket.connect(addr).await
}

/// Count and log a failed handshake; refusals (either way) become `Refused`.
pub(crate) fn handshake_failed(shared: &Shared, addr: SocketAddr, e: HandshakeError) -> NetError {
    match e {
        HandshakeError::RefusedByUs(reason) | HandshakeError::RefusedByPeer(reason) => {
            bump(&shared.metrics.refused_handshakes);
            tracing::warn!(peer = %addr, cause = %reason, "handshake refused");
            NetError::Refused(reason)
        }
        other => {
            tracing::debug!(peer = %addr, cause = %other, "handshake failed");
            NetError::ConnectionLost
        }
    }
}
