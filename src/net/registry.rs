//! The local registry: which actor receives inbound messages for `(service, tag, instance)`,
//! with the type-erased decoder `Transport::register` installs for the message type.
//!
//! An inbound frame is decoded once, here, into the typed message and sent to the actor's
//! `Recipient`; the reply is encoded back to bytes for the response frame.

use crate::net::error::NetError;
use crate::net::frame::ReplyTo;
use crate::net::service::{RemoteMessage, ServiceId};
use crate::net::wire::decode_payload;
use actix::Recipient;
use bytes::Bytes;
use futures::future::BoxFuture;
use std::any::Any;
use std::collections::HashMap;
use std::sync::RwLock;

/// The delivery of one inbound message: resolves to the response frame (none for one-way).
pub(crate) type Delivery = BoxFuture<'static, Option<Bytes>>;

type Dispatch = dyn Fn(&[u8], Option<ReplyTo>) -> Result<Delivery, NetError> + Send + Sync;

/// Registry key: service, message tag, instance.
type Slot = (ServiceId, u16, u32);

struct Entry {
    dispatch: Box<Dispatch>,
    /// The `Recipient<M>`, for local handles (no serialisation on local sends).
    recipient: Box<dyn Any + Send + Sync>,
}

/// Local recipients by slot.
#[derive(Default)]
pub(crate) struct Registry {
    slots: RwLock<HashMap<Slot, Entry>>,
}

impl Registry {
    /// Route inbound `M` for `(M::SERVICE, M::TAG, instance)` to `r` (replacing any previous).
    pub(crate) fn register<M: RemoteMessage>(&self, instance: u32, r: Recipient<M>) {
        let to_actor = r.clone();
        let dispatch =
            move |payload: &[u8], reply: Option<ReplyTo>| -> Result<Delivery, NetError> {
                let msg: M = decode_payload(payload)?;
                let request = to_actor.send(msg);
                Ok(Box::pin(async move {
                    let result = request.await.map_err(NetError::from);
                    match reply {
                        Some(reply) => reply.frame(result),
                        None => {
                            if let Err(e) = result {
                                tracing::debug!(cause = %e, "one-way message not delivered");
                            }
                            None
                        }
                    }
                }) as Delivery)
            };
        let entry = Entry {
            dispatch: Box::new(dispatch),
            recipient: Box::new(r),
        };
        let mut slots = self.slots.write().unwrap_or_else(|p| p.into_inner());
        if slots
            .insert((M::SERVICE, M::TAG, instance), entry)
            .is_some()
        {
            tracing::debug!(service = %M::SERVICE, tag = M::TAG, instance, "recipient replaced");
        }
    }

    /// Stop routing `(service, tag, instance)`.
    pub(crate) fn unregister(&self, service: ServiceId, tag: u16, instance: u32) {
        let mut slots = self.slots.write().unwrap_or_else(|p| p.into_inner());
        slots.remove(&(service, tag, instance));
    }

    /// The local recipient for `M` on `instance`, if one is registered.
    pub(crate) fn recipient<M: RemoteMessage>(&self, instance: u32) -> Option<Recipient<M>> {
        let slots = self.slots.read().unwrap_or_else(|p| p.into_inner());
        slots
            .get(&(M::SERVICE, M::TAG, instance))
            .and_then(|e| e.recipient.downcast_ref::<Recipient<M>>())
            .cloned()
    }

    /// Decode `payload` for the slot and start delivering it; `reply` is where the answer
    /// goes (none for one-way messages).
    pub(crate) fn dispatch(
        &self,
        service: ServiceId,
        tag: u16,
        instance: u32,
        payload: &[u8],
        reply: Option<ReplyTo>,
    ) -> Result<Delivery, NetError> {
        let slots = self.slots.read().unwrap_or_else(|p| p.into_inner());
        match slots.get(&(service, tag, instance)) {
            Some(e) => (e.dispatch)(payload, reply),
            None => Err(NetError::NoSuchActor {
                service,
                tag,
                instance,
            }),
        }
    }
}
