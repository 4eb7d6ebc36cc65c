//! A call sent again through another gateway after the first one was lost: the new gateway
//! asks every live executor whether it runs or ran the call ([`ClaimCall`]) before it runs
//! the call itself, so a call the cluster ran already is not run twice.
//!
//! Only a request the client marks as sent again after a failover is claimed: the common
//! call path asks nobody. An executor answers with the call's outcome if it still holds it
//! (a sink keeps the outcomes it delivered for a bounded while: the lost gateway may have
//! taken one and died before passing it on), or says the call is under way here (a
//! function of it runs or waits for its upstream results): from then on its result goes
//! to the claiming gateway. Once claimed, a call's schedules that push their result
//! elsewhere (late ones from the lost gateway's placement) are dropped.

use super::call::CallFailure;
use crate::ids::CallId;
use crate::net::ActorRef;
use crate::pyrt::PyValue;
use serde::{Deserialize, Serialize};

/// Claim `call` for `gateway` (a request to an executor, answered with [`Claimed`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, actix::Message)]
#[rtype(result = "Claimed")]
pub struct ClaimCall {
    pub call: CallId,
    /// The gateway results of the call go to from now on.
    pub gateway: ActorRef,
}

/// What an executor knows of a claimed call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Claimed {
    /// Nothing: no function of it runs or waits here, and no outcome is held.
    Unknown,
    /// A function of it runs or waits here; its result will go to the claiming gateway.
    /// `within_ms`: how long the functions held here may still take (their timeouts).
    Running { within_ms: u64 },
    /// The call ended here (its sink delivered this outcome to the lost gateway).
    Ended(Result<PyValue, CallFailure>),
}
