//! Process-wide store of per-call logs: what each function run printed (stdout, stderr)
//! and its traceback, kept by call id so a client or the dashboard can fetch it from the
//! node that ran it. Bounded in bytes: the oldest logs go first once [`STORE_BYTES`] is
//! reached (the executor's own log keeps every line anyway).

use crate::ids::CallId;
use crate::protocol::observe::{CallLog, MAX_CALL_LOG_BYTES};
use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, OnceLock};

/// Bytes of logs one node keeps: a few hundred calls' worth of prints at the per-call
/// bound, a small part of a node's memory.
pub const STORE_BYTES: usize = 8 * 1024 * 1024;

/// The logs of the newest calls, bounded by total bytes.
#[derive(Debug)]
pub struct LogStore {
    limit: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    bytes: usize,
    /// Calls by their first log, oldest first; a call's logs are evicted together.
    order: VecDeque<CallId>,
    by_call: HashMap<CallId, Vec<CallLog>>,
}

impl LogStore {
    /// A store that keeps at most `limit` bytes of text.
    pub fn new(limit: usize) -> Self {
        LogStore {
            limit,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Keep `log` (cut to [`MAX_CALL_LOG_BYTES`]); evicts the oldest calls beyond the limit.
    pub fn add(&self, mut log: CallLog) {
        cut(&mut log, MAX_CALL_LOG_BYTES);
        let bytes = log.bytes();
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let call = log.call;
        match inner.by_call.get_mut(&call) {
            Some(logs) => logs.push(log),
            None => {
                inner.by_call.insert(call, vec![log]);
                inner.order.push_back(call);
            }
        }
        inner.bytes += bytes;
        while inner.bytes > self.limit && inner.order.len() > 1 {
            let Some(old) = inner.order.pop_front() else {
                break;
            };
            let freed: usize = inner
                .by_call
                .remove(&old)
                .map_or(0, |logs| logs.iter().map(CallLog::bytes).sum());
            inner.bytes -= freed;
        }
    }

    /// The logs of `call` kept here, in the order they finished.
    pub fn get(&self, call: CallId) -> Vec<CallLog> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.by_call.get(&call).cloned().unwrap_or_default()
    }

    /// Bytes of text held.
    pub fn bytes(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).bytes
    }
}

/// Cut the text of `log` to `max` bytes in all (traceback first kept, then stderr, then
/// stdout, each cut at a character boundary), marking it truncated when anything went.
fn cut(log: &mut CallLog, max: usize) {
    if log.bytes() <= max {
        return;
    }
    log.truncated = true;
    let mut left = max;
    if let Some(tb) = &mut log.traceback {
        truncate(tb, left);
        left -= tb.len();
    }
    truncate(&mut log.stderr, left);
    left -= log.stderr.len();
    truncate(&mut log.stdout, left);
}

fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

/// The process-wide store.
pub fn global() -> &'static LogStore {
    static STORE: OnceLock<LogStore> = OnceLock::new();
    STORE.get_or_init(|| LogStore::new(STORE_BYTES))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(call: u64, stdout: &str) -> CallLog {
        CallLog {
            call: CallId(call),
            function: "f".into(),
            stdout: stdout.into(),
            ..CallLog::default()
        }
    }

    #[test]
    fn logs_are_kept_by_call_and_the_oldest_go_first() {
        let store = LogStore::new(100);
        store.add(log(1, &"a".repeat(40)));
        store.add(log(2, &"b".repeat(40)));
        store.add(log(2, "second function"));
        assert_eq!(store.get(CallId(2)).len(), 2);
        assert_eq!(store.get(CallId(1))[0].stdout.len(), 40);
        store.add(log(3, &"c".repeat(40)));
        assert!(store.get(CallId(1)).is_empty(), "the oldest call went");
        assert_eq!(store.get(CallId(3)).len(), 1);
        assert!(store.bytes() <= 100, "{}", store.bytes());
    }

    #[test]
    fn one_log_is_cut_to_its_bound_keeping_the_traceback() {
        let store = LogStore::new(STORE_BYTES);
        let mut big = log(1, &"é".repeat(MAX_CALL_LOG_BYTES));
        big.traceback = Some("Traceback: boom".into());
        store.add(big);
        let kept = &store.get(CallId(1))[0];
        assert!(kept.truncated && kept.bytes() <= MAX_CALL_LOG_BYTES);
        assert_eq!(kept.traceback.as_deref(), Some("Traceback: boom"));
        assert!(!store.get(CallId(1)).is_empty());
    }
}
