//! The local registry: which actor receives inbound messages for `(service, tag, instance)`,
//! with the type-erased decoder `Transport::register` installs for the message type.
//!
//! An inbound frame is decoded once, here, into the typed message and sent to the actor's
//! `Recipient`; the reply is encoded back to bytes for the response frame.
//!
//! A `(service, tag)` pair names one message type: a frame carries only the pair, so a
//! second type registered for it would have frames decoded as the wrong type. Registering
//! another type for a pair that is held (on any instance) is refused. Registering the same
//! type again for a slot replaces its recipient (an actor restarted in place).

use crate::net::error::NetError;
use crate::net::frame::ReplyTo;
use crate::net::service::{RemoteMessage, ServiceId};
use crate::net::wire::decode_payload;
use actix::Recipient;
use bytes::Bytes;
use futures::future::BoxFuture;
use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::RwLock;

/// The delivery of one inbound message: resolves to the response frame (none for one-way).
pub(crate) type Delivery = BoxFuture<'static, Option<Bytes>>;

type Dispatch = dyn Fn(&[u8], Option<ReplyTo>) -> Result<Delivery, NetError> + Send + Sync;

/// Registry key: service, message tag, instance.
type Slot = (ServiceId, u16, u32);

struct Entry {
    /// The message type the slot decodes, and its name for errors.
    type_id: TypeId,
    type_name: &'static str,
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
    /// Route inbound `M` for `(M::SERVICE, M::TAG, instance)` to `r`, replacing the
    /// recipient of `M` registered there before; `TagTaken` when another type holds the
    /// pair.
    pub(crate) fn register<M: RemoteMessage>(
        &self,
        instance: u32,
        r: Recipient<M>,
    ) -> Result<(), NetError> {
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
            type_id: TypeId::of::<M>(),
            type_name: std::any::type_name::<M>(),
            dispatch: Box::new(dispatch),
            recipient: Box::new(r),
        };
        let mut slots = self.slots.write().unwrap_or_else(|p| p.into_inner());
        let held = slots.iter().find(|((service, tag, _), e)| {
            (*service, *tag) == (M::SERVICE, M::TAG) && e.type_id != entry.type_id
        });
        if let Some((_, e)) = held {
            return Err(NetError::TagTaken {
                service: M::SERVICE,
                tag: M::TAG,
                held: e.type_name.to_string(),
                offered: entry.type_name.to_string(),
            });
        }
        if slots
            .insert((M::SERVICE, M::TAG, instance), entry)
            .is_some()
        {
            tracing::debug!(service = %M::SERVICE, tag = M::TAG, instance, "recipient replaced");
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::echo::{Note, NoteCount};
    use actix::prelude::*;
    use serde::{Deserialize, Serialize};

    /// A test-only type claiming the pair of [`Note`] (`Echo`, 1): what a duplicate row in
    /// the tag table, or a type declared outside it, would do.
    #[derive(Debug, Clone, Copy, Message, Serialize, Deserialize)]
    #[rtype(result = "()")]
    struct Impostor;

    impl RemoteMessage for Impostor {
        const SERVICE: ServiceId = ServiceId::Echo;
        const TAG: u16 = 1;
    }

    struct Sink;

    impl Actor for Sink {
        type Context = Context<Self>;
    }

    impl Handler<Note> for Sink {
        type Result = ();
        fn handle(&mut self, _: Note, _: &mut Context<Self>) {}
    }

    impl Handler<Impostor> for Sink {
        type Result = ();
        fn handle(&mut self, _: Impostor, _: &mut Context<Self>) {}
    }

    impl Handler<NoteCount> for Sink {
        type Result = MessageResult<NoteCount>;
        fn handle(&mut self, _: NoteCount, _: &mut Context<Self>) -> Self::Result {
            MessageResult(crate::net::echo::NoteStats {
                count: 0,
                last_seq: None,
            })
        }
    }

    #[test]
    fn a_second_type_for_a_pair_is_refused_and_the_same_type_may_register_again() {
        actix::System::new().block_on(async {
            let registry = Registry::default();
            let sink = Sink.start();
            registry
                .register::<Note>(0, sink.clone().recipient())
                .expect("first");
            let refused = registry.register::<Impostor>(1, sink.clone().recipient());
            match refused {
                Err(NetError::TagTaken {
                    service: ServiceId::Echo,
                    tag: 1,
                    held,
                    offered,
                }) => assert!(held.ends_with("Note") && offered.ends_with("Impostor")),
                other => panic!("expected TagTaken, got {other:?}"),
            }
            // The pair still routes to the first type.
            assert!(registry.recipient::<Note>(0).is_some());
            assert!(registry.recipient::<Impostor>(1).is_none());
            // The same type again: a restarted actor in place, or another instance.
            let again = Sink.start();
            registry
                .register::<Note>(0, again.clone().recipient())
                .expect("replace");
            registry
                .register::<Note>(1, again.recipient())
                .expect("another instance");
            // Another pair of the same service is free.
            registry
                .register::<NoteCount>(0, sink.recipient())
                .expect("other tag");
            // Once the type is gone from every instance, the pair is free again.
            registry.unregister(ServiceId::Echo, 1, 0);
            registry.unregister(ServiceId::Echo, 1, 1);
            registry
                .register::<Impostor>(0, Sink.start().recipient())
                .expect("free pair");
        });
    }
}
