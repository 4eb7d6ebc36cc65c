//! Every `(service, tag)` pair of the crate, in one table: the [`RemoteMessage`] impls are
//! generated from it, so a message's wire address is declared nowhere else. The transport
//! routes an inbound frame by its pair, so a pair must name exactly one type; the test below
//! checks the table, and `Transport::register` refuses a second type for a registered pair.
//!
//! Tags are part of the peer wire format: a new message takes a new tag, and a tag is not
//! reused for another type while nodes of an older build may still be running.

use crate::net::{RemoteMessage, ServiceId};

/// Generates one `RemoteMessage` impl per row, and [`TAGS`] listing the rows.
macro_rules! wire_tags {
    ($($service:ident { $($tag:literal => $ty:ty,)* })*) => {
        $($(
            impl RemoteMessage for $ty {
                const SERVICE: ServiceId = ServiceId::$service;
                const TAG: u16 = $tag;
            }
        )*)*

        /// Every row of the table: service, tag, and the type's path as written.
        pub const TAGS: &[(ServiceId, u16, &str)] =
            &[$($((ServiceId::$service, $tag, stringify!($ty)),)*)*];

        /// Decode `payload` as the message `(service, tag)` names and as its reply, as the
        /// transport does with a request and a response (for the fuzz targets). `None`
        /// for a pair no type holds.
        pub fn decode_by_tag(service: ServiceId, tag: u16, payload: &[u8]) -> Option<[bool; 2]> {
            use crate::net::wire::decode_payload;
            $($(
                if service == ServiceId::$service && tag == $tag {
                    return Some([
                        decode_payload::<$ty>(payload).is_ok(),
                        decode_payload::<<$ty as actix::Message>::Result>(payload).is_ok(),
                    ]);
                }
            )*)*
            None
        }
    };
}

wire_tags! {
    Membership {
        0 => crate::net::membership::Join,
        1 => crate::net::membership::Gossip,
        2 => crate::net::membership::Leave,
        3 => crate::net::membership::GetView,
    }
    Echo {
        0 => crate::net::echo::Echo,
        1 => crate::net::echo::Note,
        2 => crate::net::echo::NoteCount,
        3 => crate::net::echo::Stats,
        4 => crate::net::echo::PingAll,
        5 => crate::net::echo::NoteAll,
    }
    KvsShard {
        0 => crate::actors::kvs::KvsRequest,
        1 => crate::actors::kvs::DeclareLost,
        2 => crate::actors::kvs::HandoffConfirmed,
        3 => super::ReplicationOverrides,
    }
    Cache {
        0 => crate::actors::kvs::KeyUpdates,
        1 => crate::actors::cache::GetCacheStats,
        2 => super::SessionRead,
        3 => super::ReleaseSession,
    }
    Executor {
        0 => super::Schedule,
        1 => super::Trigger,
        2 => super::Deliver,
        3 => super::Cancel,
        4 => super::DrainNode,
        5 => super::ClaimCall,
    }
    Scheduler {
        0 => super::RegisterFunction,
        1 => super::RegisterDag,
        2 => super::DeleteDag,
        3 => super::List,
        4 => super::CallDag,
        5 => super::CallFunction,
        6 => super::DeleteFunction,
        7 => super::AttemptEnded,
        8 => super::CancelCall,
        9 => super::AttemptsDelivered,
        10 => super::CacheKeysReport,
        11 => super::ExecutorStatus,
        20 => super::RegistryChanged,
        21 => super::LookupRegistration,
    }
    Gateway {
        0 => super::CallFinished,
    }
    Monitor {
        0 => super::MonitorReport,
        1 => super::GetAutoscale,
        2 => super::ExecutorsWanted,
        10 => super::KvsReport,
    }
    Node {
        0 => super::GetNodeStats,
        1 => super::GetCallLogs,
        10 => super::DrainKvsNode,
    }
}

/// The pairs of `table` that name more than one type, each with the types.
pub fn duplicates(table: &[(ServiceId, u16, &str)]) -> Vec<String> {
    let mut seen: std::collections::BTreeMap<(ServiceId, u16), Vec<&str>> = Default::default();
    for &(service, tag, ty) in table {
        seen.entry((service, tag)).or_default().push(ty);
    }
    seen.into_iter()
        .filter(|(_, types)| types.len() > 1)
        .map(|((service, tag), types)| format!("{service} tag {tag}: {}", types.join(", ")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pair_names_one_type() {
        assert_eq!(duplicates(TAGS), Vec::<String>::new());
    }

    #[test]
    fn a_duplicate_pair_is_caught() {
        let mut table = TAGS.to_vec();
        table.push((ServiceId::Scheduler, 10, "NewReport"));
        let found = duplicates(&table);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("CacheKeysReport") && found[0].contains("NewReport"));
    }

    #[test]
    fn the_impls_carry_the_table() {
        use crate::protocol::{CacheKeysReport, Trigger};
        assert_eq!(
            (CacheKeysReport::SERVICE, CacheKeysReport::TAG),
            (ServiceId::Scheduler, 10)
        );
        assert_eq!((Trigger::SERVICE, Trigger::TAG), (ServiceId::Executor, 1));
        assert!(TAGS.contains(&(ServiceId::Gateway, 0, "super::CallFinished")));
        for service in ServiceId::ALL {
            let rows = TAGS.iter().filter(|r| r.0 == service).count();
            assert!(
                rows > 0 || service == ServiceId::Monitor,
                "{service} has no messages"
            );
        }
    }
}
