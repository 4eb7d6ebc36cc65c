//! The user library (`cb`) of one invocation: state through its [`Session`] (the node's
//! cache, under the call's consistency mode), direct messages through the transport and
//! this executor's mailboxes.

use super::env::ExecEnv;
use super::mailbox::InvocationId;
use super::session::{Session, SessionError};
use crate::ids::Key;
use crate::net::{ActorRef, ServiceId};
use crate::protocol::{to_python, Deliver, ErrorCode, RESERVED_PREFIX};
use crate::pyrt::{LibError, PyValue, UserLibrary};
use bytes::Bytes;
use futures::future::BoxFuture;
use std::sync::Arc;

/// `cb` for one running function.
pub struct Invocation {
    env: Arc<ExecEnv>,
    id: String,
    session: Arc<Session>,
}

impl Invocation {
    /// The library of the invocation named `id` (already opened in the mailboxes).
    pub fn new(env: Arc<ExecEnv>, id: String, session: Arc<Session>) -> Self {
        Invocation { env, id, session }
    }
}

impl UserLibrary for Invocation {
    fn get(&self, keys: Vec<Key>) -> BoxFuture<'static, Result<Vec<Option<PyValue>>, LibError>> {
        let session = self.session.clone();
        Box::pin(async move {
            let values = session.get(&keys).await.map_err(session_error)?;
            keys.iter()
                .zip(values)
                .map(|(k, v)| {
                    to_python(k.as_str(), v)
                        .map_err(|e| LibError::new(ErrorCode::UnsupportedValue, e))
                })
                .collect()
        })
    }

    fn put(&self, key: Key, value: PyValue) -> BoxFuture<'static, Result<(), LibError>> {
        // Whatever the Python layer did: a function can write raw frames to its worker's
        // socket, so this handler is where a function's writes are checked.
        if key.is_reserved() {
            let refused = LibError::new(
                ErrorCode::InvalidRequest,
                format!("keys under `{RESERVED_PREFIX}` are reserved for the platform: `{key}`"),
            );
            return Box::pin(async move { Err(refused) });
        }
        let session = self.session.clone();
        Box::pin(async move { session.put(key, value).await.map_err(session_error) })
    }

    fn delete(&self, key: Key) -> BoxFuture<'static, Result<(), LibError>> {
        let session = self.session.clone();
        Box::pin(async move { session.delete(key).await.map_err(session_error) })
    }

    fn send(&self, dest: String, payload: Bytes) -> BoxFuture<'static, Result<(), LibError>> {
        let sent = match InvocationId::parse(&dest) {
            None => Err(LibError::new(
                ErrorCode::InvalidRequest,
                format!("`{dest}` is not an id returned by getid()"),
            )),
            Some(to) => {
                let target = ActorRef::new(to.node, ServiceId::Executor, 0);
                let msg = Deliver {
                    to: dest,
                    from: self.id.clone(),
                    payload,
                };
                self.env
                    .transport
                    .handle::<Deliver>(target)
                    .tell(msg)
                    .map_err(|e| LibError::new(ErrorCode::Unavailable, format!("cannot send: {e}")))
            }
        };
        Box::pin(async move { sent })
    }

    fn recv(&self) -> Vec<(String, Bytes)> {
        self.env.mailboxes.drain(&self.id)
    }

    fn id(&self) -> String {
        self.id.clone()
    }
}

/// A session's error as the function sees it: its code kept.
fn session_error(e: SessionError) -> LibError {
    LibError::new(e.code, e.message)
}
