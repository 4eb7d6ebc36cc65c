//! Direct messages between running functions (`cb.send` / `cb.recv`), no I/O.
//!
//! Every running invocation has an id (`cb.getid()`) naming its node, call and function,
//! so a `send` can be routed to the executor hosting it. That executor queues the message
//! in the invocation's inbox (bounded in messages and bytes, and so are all inboxes of the
//! executor together); `recv` drains it. Messages for an invocation that
//! is not running yet are held for [`HOLD_FOR`], then dropped.

use crate::ids::{CallId, Generation, NodeId, NodeRef};
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Messages one inbox holds; beyond it `send` fails (the receiver is not reading).
pub const MAX_INBOX_MESSAGES: usize = 1024;
/// Bytes of payload one inbox holds; beyond it `send` fails. A message may be as large as
/// a value (tens of MiB), so a count alone would let a few senders pin gigabytes.
pub const MAX_INBOX_BYTES: usize = 64 << 20;
/// Inboxes one executor holds (running invocations plus held ones): bounds the memory
/// unknown destinations can pin.
pub const MAX_INBOXES: usize = 16_384;
/// Bytes of payload all inboxes of one executor hold together: what receivers that do not
/// read may cost the node.
pub const MAX_MAILBOX_BYTES: usize = 256 << 20;
/// How long messages for an invocation that is not running (yet) are kept.
pub const HOLD_FOR: Duration = Duration::from_secs(30);

/// Where a running function can be reached: `<node id>/<generation>/<call>/<function>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvocationId {
    pub node: NodeRef,
    pub call: CallId,
    pub function: String,
}

impl fmt::Display for InvocationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = &self.node;
        write!(
            f,
            "{}/{}/{:x}/{}",
            n.id, n.generation.0, self.call.0, self.function
        )
    }
}

impl InvocationId {
    /// Parse an id made by `Display` (function names never contain `/`).
    pub fn parse(s: &str) -> Option<InvocationId> {
        let mut parts = s.rsplitn(4, '/');
        let function = parts.next()?;
        let call = u64::from_str_radix(parts.next()?, 16).ok()?;
        let generation = parts.next()?.parse().ok()?;
        let id = parts.next()?;
        if function.is_empty() || id.is_empty() {
            return None;
        }
        Some(InvocationId {
            node: NodeRef {
                id: NodeId::new(id),
                generation: Generation(generation),
            },
            call: CallId(call),
            function: function.to_string(),
        })
    }
}

/// Why a message could not be queued.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MailError {
    #[error("the inbox of {0} is full ({MAX_INBOX_MESSAGES} messages)")]
    InboxFull(String),
    #[error("the inbox of {0} is full ({MAX_INBOX_BYTES} bytes)")]
    InboxBytes(String),
    #[error("this executor holds too many inboxes ({MAX_INBOXES})")]
    TooManyInboxes,
    #[error("this executor's inboxes hold {MAX_MAILBOX_BYTES} bytes: receivers are not reading")]
    MailboxBytes,
}

struct Inbox {
    messages: VecDeque<(String, Bytes)>,
    /// Payload bytes in `messages`.
    bytes: usize,
    running: bool,
    since: Instant,
}

impl Inbox {
    fn new(running: bool, since: Instant) -> Self {
        Inbox {
            messages: VecDeque::new(),
            bytes: 0,
            running,
            since,
        }
    }
}

#[derive(Default)]
struct Boxes {
    inboxes: HashMap<String, Inbox>,
    /// Payload bytes over every inbox.
    bytes: usize,
}

impl Boxes {
    fn get_mut(&mut self, id: &str) -> Option<&mut Inbox> {
        self.inboxes.get_mut(id)
    }

    fn remove(&mut self, id: &str) {
        if let Some(inbox) = self.inboxes.remove(id) {
            self.bytes -= inbox.bytes;
        }
    }
}

/// The inboxes of one executor; shared by the actor (deliveries) and running calls.
#[derive(Default)]
pub struct Mailboxes {
    inboxes: Mutex<Boxes>,
}

impl Mailboxes {
    fn lock(&self) -> std::sync::MutexGuard<'_, Boxes> {
        self.inboxes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `id` starts running: its inbox (with any held messages) is kept until `close`.
    pub fn open(&self, id: &str, now: Instant) {
        let mut all = self.lock();
        match all.get_mut(id) {
            Some(inbox) => inbox.running = true,
            None => {
                all.inboxes.insert(id.to_string(), Inbox::new(true, now));
            }
        }
    }

    /// `id` finished: drop its inbox.
    pub fn close(&self, id: &str) {
        self.lock().remove(id);
    }

    /// Queue a message for `to`.
    pub fn deliver(
        &self,
        to: &str,
        from: String,
        payload: Bytes,
        now: Instant,
    ) -> Result<(), MailError> {
        let mut all = self.lock();
        if !all.inboxes.contains_key(to) && all.inboxes.len() >= MAX_INBOXES {
            return Err(MailError::TooManyInboxes);
        }
        let n = payload.len();
        if all.bytes + n > MAX_MAILBOX_BYTES {
            return Err(MailError::MailboxBytes);
        }
        let inbox = all
            .inboxes
            .entry(to.to_string())
            .or_insert_with(|| Inbox::new(false, now));
        if inbox.messages.len() >= MAX_INBOX_MESSAGES {
            return Err(MailError::InboxFull(to.to_string()));
        }
        if inbox.bytes + n > MAX_INBOX_BYTES {
            return Err(MailError::InboxBytes(to.to_string()));
        }
        inbox.messages.push_back((from, payload));
        inbox.bytes += n;
        all.bytes += n;
        Ok(())
    }

    /// Take every message waiting for `id`.
    pub fn drain(&self, id: &str) -> Vec<(String, Bytes)> {
        let mut all = self.lock();
        let Some(inbox) = all.get_mut(id) else {
            return Vec::new();
        };
        let taken = std::mem::take(&mut inbox.bytes);
        let messages = inbox.messages.drain(..).collect();
        all.bytes -= taken;
        messages
    }

    /// Drop held inboxes of invocations that never started within [`HOLD_FOR`].
    pub fn expire(&self, now: Instant) -> usize {
        let mut all = self.lock();
        let expired: Vec<String> = all
            .inboxes
            .iter()
            .filter(|(_, i)| !i.running && now.saturating_duration_since(i.since) >= HOLD_FOR)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &expired {
            all.remove(id);
        }
        expired.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        let id = InvocationId {
            node: NodeRef {
                id: NodeId::new("127.0.0.1:6100"),
                generation: Generation(42),
            },
            call: CallId(0xabc),
            function: "ping".into(),
        };
        let s = id.to_string();
        assert_eq!(s, "127.0.0.1:6100/42/abc/ping");
        assert_eq!(InvocationId::parse(&s), Some(id));
        for bad in ["", "a/b", "n/x/1/f", "n/1/zz/f", "/1/1/f", "n/1/1/"] {
            assert_eq!(InvocationId::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn held_then_drained_bounded_and_expired() {
        let m = Mailboxes::default();
        let now = Instant::now();
        m.deliver("a", "b".into(), Bytes::from_static(b"early"), now)
            .expect("held");
        m.open("a", now);
        m.deliver("a", "b".into(), Bytes::from_static(b"late"), now)
            .expect("queued");
        let got: Vec<_> = m.drain("a").into_iter().map(|(_, p)| p).collect();
        assert_eq!(
            got,
            vec![Bytes::from_static(b"early"), Bytes::from_static(b"late")]
        );
        assert!(m.drain("a").is_empty());
        for _ in 0..MAX_INBOX_MESSAGES {
            m.deliver("a", "b".into(), Bytes::new(), now).expect("room");
        }
        assert!(matches!(
            m.deliver("a", "b".into(), Bytes::new(), now),
            Err(MailError::InboxFull(_))
        ));
        m.deliver("never", "b".into(), Bytes::new(), now)
            .expect("held");
        assert_eq!(m.expire(now + HOLD_FOR), 1, "only the held inbox expires");
        m.close("a");
        assert!(m.drain("a").is_empty());
    }

    #[test]
    fn inboxes_are_bounded_in_bytes_each_and_together() {
        let m = Mailboxes::default();
        let now = Instant::now();
        let big = Bytes::from(vec![0u8; MAX_INBOX_BYTES / 2]);
        m.open("a", now);
        m.deliver("a", "s".into(), big.clone(), now).expect("half");
        m.deliver("a", "s".into(), big.clone(), now).expect("full");
        assert!(matches!(
            m.deliver("a", "s".into(), Bytes::from_static(b"x"), now),
            Err(MailError::InboxBytes(_))
        ));
        assert_eq!(m.drain("a").len(), 2);
        m.deliver("a", "s".into(), Bytes::from_static(b"x"), now)
            .expect("room again once read");
        m.close("a");
        let per_inbox = MAX_MAILBOX_BYTES / MAX_INBOX_BYTES;
        for i in 0..per_inbox {
            let to = format!("r{i}");
            m.deliver(&to, "s".into(), big.clone(), now).expect("room");
            m.deliver(&to, "s".into(), big.clone(), now).expect("room");
        }
        assert_eq!(
            m.deliver("b", "s".into(), big.clone(), now),
            Err(MailError::MailboxBytes)
        );
        m.close("r0");
        assert_eq!(m.expire(now + HOLD_FOR), per_inbox - 1);
        m.deliver("b", "s".into(), big, now)
            .expect("freed by close and expiry");
    }
}
