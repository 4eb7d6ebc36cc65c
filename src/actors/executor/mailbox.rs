//! Direct messages between running functions (`cb.send` / `cb.recv`), no I/O.
//!
//! Every running invocation has an id (`cb.getid()`) naming its node, call and function,
//! so a `send` can be routed to the executor hosting it. That executor queues the message
//! in the invocation's inbox (bounded); `recv` drains it. Messages for an invocation that
//! is not running yet are held for [`HOLD_FOR`], then dropped.

use crate::ids::{CallId, Generation, NodeId, NodeRef};
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Messages one inbox holds; beyond it `send` fails (the receiver is not reading).
pub const MAX_INBOX_MESSAGES: usize = 1024;
/// Inboxes one executor holds (running invocations plus held ones): bounds the memory
/// unknown destinations can pin.
pub const MAX_INBOXES: usize = 16_384;
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
    #[error("this executor holds too many inboxes ({MAX_INBOXES})")]
    TooManyInboxes,
}

struct Inbox {
    messages: VecDeque<(String, Bytes)>,
    running: bool,
    since: Instant,
}

/// The inboxes of one executor; shared by the actor (deliveries) and running calls.
#[derive(Default)]
pub struct Mailboxes {
    inboxes: Mutex<HashMap<String, Inbox>>,
}

impl Mailboxes {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Inbox>> {
        self.inboxes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `id` starts running: its inbox (with any held messages) is kept until `close`.
    pub fn open(&self, id: &str, now: Instant) {
        let mut all = self.lock();
        match all.get_mut(id) {
            Some(inbox) => inbox.running = true,
            None => {
                all.insert(
                    id.to_string(),
                    Inbox {
                        messages: VecDeque::new(),
                        running: true,
                        since: now,
                    },
                );
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
        if !all.contains_key(to) && all.len() >= MAX_INBOXES {
            return Err(MailError::TooManyInboxes);
        }
        let inbox = all.entry(to.to_string()).or_insert_with(|| Inbox {
            messages: VecDeque::new(),
            running: false,
            since: now,
        });
        if inbox.messages.len() >= MAX_INBOX_MESSAGES {
            return Err(MailError::InboxFull(to.to_string()));
        }
        inbox.messages.push_back((from, payload));
        Ok(())
    }

    /// Take every message waiting for `id`.
    pub fn drain(&self, id: &str) -> Vec<(String, Bytes)> {
        match self.lock().get_mut(id) {
            Some(inbox) => inbox.messages.drain(..).collect(),
            None => Vec::new(),
        }
    }

    /// Drop held inboxes of invocations that never started within [`HOLD_FOR`].
    pub fn expire(&self, now: Instant) -> usize {
        let mut all = self.lock();
        let before = all.len();
        all.retain(|_, i| i.running || now.saturating_duration_since(i.since) < HOLD_FOR);
        before - all.len()
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
}
