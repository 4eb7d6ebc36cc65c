//! A call request the client sent again after it lost the gateway that took it (marked
//! `resent`), for a call this gateway does not know: before running it, the gateway asks
//! every live executor about it ([`ClaimCall`], all at once, each for at most
//! [`CLAIM_WAIT`]). If one held its outcome, that is the call's outcome here; if a function
//! of it runs or waits somewhere, its result now comes here and the call is awaited like
//! one of this gateway's; otherwise it runs here. The common call path asks nobody.

use super::results::Outcome;
use super::router::{lock, settle};
use super::GatewayState;
use crate::config::Role;
use crate::ids::CallId;
use crate::net::{ActorRef, ServiceId};
use crate::protocol::limits::MAX_CALL_TIMEOUT_MS;
use crate::protocol::{ClaimCall, Claimed, MAX_DAG_FUNCTIONS};
use std::time::{Duration, Instant};

/// How long an executor's answer to a claim is waited for: an executor that is slower
/// (frozen, partitioned) is taken as not knowing the call, which then runs here.
pub const CLAIM_WAIT: Duration = Duration::from_secs(1);
/// Added to the time the executors say their functions of a claimed call may still take:
/// the way of the result to this gateway.
pub const CLAIM_SLACK: Duration = Duration::from_secs(1);

/// The longest a claimed call is awaited, whatever the executors say (their figures come
/// from peers): a DAG of [`MAX_DAG_FUNCTIONS`] functions each at the longest call timeout.
pub const MAX_CLAIM_WAIT: Duration =
    Duration::from_millis(MAX_CALL_TIMEOUT_MS * MAX_DAG_FUNCTIONS as u64);

/// What the executors know of a claimed call, together.
#[derive(Debug, PartialEq)]
pub enum Found {
    /// One held its outcome.
    Ended(Outcome),
    /// Functions of it run or wait; together they may take this long.
    Running(Duration),
    /// None knows it.
    Unknown,
}

/// The executors' answers, together: an outcome wins; else the call runs if a function of
/// it runs anywhere, for the sum of their times (a chain of functions runs one after the
/// other).
pub fn combine(answers: impl IntoIterator<Item = Claimed>) -> Found {
    let mut within: Option<u64> = None;
    for a in answers {
        match a {
            Claimed::Ended(outcome) => return Found::Ended(outcome),
            Claimed::Running { within_ms } => {
                within = Some(within.unwrap_or(0).saturating_add(within_ms))
            }
            Claimed::Unknown => {}
        }
    }
    match within {
        Some(ms) => Found::Running(Duration::from_millis(ms).min(MAX_CLAIM_WAIT)),
        None => Found::Unknown,
    }
}

/// Claim `call` from every live executor: what they know of it.
pub async fn claim(state: &GatewayState, call: CallId) -> Found {
    let executors: Vec<ActorRef> = {
        let view = state.view.read().unwrap_or_else(|p| p.into_inner());
        view.live_with_role(Role::Executor)
            .map(|m| ActorRef::new(m.node.clone(), ServiceId::Executor, 0))
            .collect()
    };
    let asks = executors.into_iter().map(|e| {
        let msg = ClaimCall {
            call,
            gateway: state.me.clone(),
        };
        let handle = state.transport.handle::<ClaimCall>(e.clone());
        async move {
            match handle.send_timeout(msg, CLAIM_WAIT).await {
                Ok(answer) => answer,
                Err(err) => {
                    tracing::warn!(call = %call, executor = %e, cause = %err,
                        "an executor did not answer a claim: taken as not knowing the call");
                    Claimed::Unknown
                }
            }
        }
    });
    combine(futures::future::join_all(asks).await)
}

/// Claim `call` (a request sent again after a failover) and record what was found: `true`
/// if the call ended or runs elsewhere (it is now in this gateway's book, its value kept
/// like a future's), `false` if it must run here.
pub async fn take_over(state: &GatewayState, call: CallId) -> bool {
    match claim(state, call).await {
        Found::Ended(outcome) => {
            tracing::debug!(call = %call, "a call sent again had ended: its held outcome answers");
            settle(&state.results, call, outcome);
            true
        }
        Found::Running(within) => {
            tracing::debug!(call = %call, "a call sent again runs on: its result comes here");
            let deadline = Instant::now() + within + CLAIM_SLACK;
            lock(&state.results).adopt(call, true, deadline);
            true
        }
        Found::Unknown => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{CallFailure, ErrorCode};
    use crate::pyrt::PyValue;

    #[test]
    fn an_outcome_wins_running_times_add_up_and_none_is_unknown() {
        let v = Ok(PyValue::Packed(bytes::Bytes::from_static(b"x")));
        let running = |ms| Claimed::Running { within_ms: ms };
        assert_eq!(combine([]), Found::Unknown);
        assert_eq!(
            combine([Claimed::Unknown, Claimed::Unknown]),
            Found::Unknown
        );
        assert_eq!(
            combine([running(10), Claimed::Unknown, running(5)]),
            Found::Running(Duration::from_millis(15))
        );
        assert_eq!(
            combine([running(10), Claimed::Ended(v.clone())]),
            Found::Ended(v)
        );
        let f = Err(CallFailure::new(ErrorCode::FunctionError, "boom"));
        assert_eq!(combine([Claimed::Ended(f.clone())]), Found::Ended(f));
        // A peer's figure cannot push the deadline past the bound (nor overflow it).
        assert_eq!(
            combine([running(u64::MAX), running(u64::MAX)]),
            Found::Running(MAX_CLAIM_WAIT)
        );
    }
}
