//! Carrying out one client request: object ops go straight to the KVS client, function-plane
//! ops to a scheduler, awaits to the gateway's call book (and the KVS). A call request that
//! fails, wherever it failed, ends its call in the book (one log line, one count).

use super::claim;
use super::core::{self, client_key, function_error};
use super::protocol::{
    ErrorBody, GatewayError, HelloReply, Reply, Request, WireArg, WireKind, WireListing,
    PROTOCOL_VERSION,
};
use super::results::{Outcome, Wait, UNACCEPTED_DEADLINE};
use super::router::{lock, settle};
use super::GatewayState;
use crate::actors::kvs::KvsError;
use crate::ids::{CallId, Key};
use crate::lattice::Timestamp;
use crate::net::{ActorRef, NetError, RemoteMessage, ServiceId};
use crate::protocol::records::result_key;
use crate::protocol::RESULT_PREFIX;
use crate::protocol::{
    Arg, CallAccepted, CallDag, CallFailure, CallFunction, CallOptions, CancelCall, DagSpec,
    DeleteDag, ErrorCode, FunctionError, FunctionRecord, List, Listing, RegisterDag,
    RegisterFunction, Reply as ReplyTo,
};
use crate::pyrt::FunctionKind;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The answer to one request.
pub type Answer = Result<Reply, ErrorBody>;

/// Carry out `req` (a dispatch: each op is a function below).
pub async fn execute(state: &GatewayState, req: Request) -> Answer {
    match req {
        Request::Hello { .. } => Ok(hello(state)),
        Request::Ping {} => Ok(Reply::Done(())),
        Request::PutObject { key, value } => {
            let key = client_key(key, true).map_err(|e| e.body())?;
            let lattice = core::to_lattice(value, state.timestamp()).map_err(|e| e.body())?;
            state.kvs.put_user(key, lattice).await.map_err(storage)?;
            Ok(Reply::Done(()))
        }
        Request::GetObject { key } => {
            let key = client_key(key, false).map_err(|e| e.body())?;
            get_value(state, &key).await
        }
        Request::DeleteObject { key } => {
            let key = client_key(key, true).map_err(|e| e.body())?;
            state
                .kvs
                .delete(key, state.timestamp())
                .await
                .map_err(storage)?;
            Ok(Reply::Done(()))
        }
        Request::RegisterFunction {
            name,
            body,
            kind,
            python,
            cloudpickle,
            timeout_ms,
            retries,
            retry_errors,
        } => {
            let kind = match kind {
                WireKind::Plain => FunctionKind::Plain,
                WireKind::Class => FunctionKind::Class,
            };
            let record = FunctionRecord {
                name,
                kind,
                body,
                python,
                cloudpickle,
                timeout_ms,
                retries,
                retry_errors,
            };
            schedule(state, RegisterFunction { record }).await?;
            Ok(Reply::Done(()))
        }
        Request::RegisterDag {
            name,
            functions,
            connections,
        } => {
            let spec = DagSpec {
                name,
                functions,
                connections,
            };
            schedule(state, RegisterDag { spec }).await?;
            Ok(Reply::Done(()))
        }
        Request::DeleteDag { name } => {
            schedule(state, DeleteDag { name }).await?;
            Ok(Reply::Done(()))
        }
        Request::List { what, prefix } => list(state, what, prefix).await,
        Request::CallFunction {
            function,
            args,
            consistency,
            direct,
            output_key,
            timeout_ms,
            retries,
            retry_errors,
            call,
            resent,
        } => {
            let options = CallOptions {
                timeout_ms,
                retries,
                retry_errors,
            };
            let args = core::to_args(args).map_err(|e| e.body());
            call_request(
                state,
                Minted::of(call, resent),
                direct,
                output_key,
                options,
                args,
                |call, reply, args| CallFunction {
                    call,
                    function,
                    args,
                    consistency: core::consistency(consistency),
                    reply,
                    options,
                },
            )
            .await
        }
        Request::CallDag {
            dag,
            args,
            consistency,
            direct,
            output_key,
            timeout_ms,
            retries,
            retry_errors,
            call,
            resent,
        } => {
            let options = CallOptions {
                timeout_ms,
                retries,
                retry_errors,
            };
            call_request(
                state,
                Minted::of(call, resent),
                direct,
                output_key,
                options,
                dag_args(args),
                |call, reply, args| CallDag {
                    call,
                    dag,
                    args,
                    consistency: core::consistency(consistency),
                    reply,
                    options,
                },
            )
            .await
        }
        Request::Cancel { call } => cancel(state, CallId(call)).await,
        Request::Logs { call } => Ok(Reply::Logs(super::logs::gather(state, CallId(call)).await)),
        Request::Await {
            call,
            key,
            timeout_ms,
            delete,
        } => {
            // With `delete`, the key is written: a client's own key or a stored result,
            // never another platform key.
            let writes = delete && !key.starts_with(RESULT_PREFIX);
            let key = client_key(key, writes).map_err(|e| e.body())?;
            let answer = await_result(state, CallId(call), key.clone(), timeout_ms).await;
            if delete && answer.is_ok() {
                // Deleted means gone here too: a later await finds no value to answer.
                lock(&state.results).drop_value(CallId(call));
                delete_read_result(state, key).await;
            }
            answer
        }
    }
}

fn hello(state: &GatewayState) -> Reply {
    Reply::Hello(HelloReply {
        protocol: PROTOCOL_VERSION,
        server: format!("cloudburst {}", env!("CARGO_PKG_VERSION")),
        max_message_bytes: state.limits.max_message_bytes,
        heartbeat_ms: state.limits.heartbeat.as_millis() as u64,
        client_timeout_ms: state.limits.client_timeout.as_millis() as u64,
    })
}

async fn list(state: &GatewayState, what: WireListing, prefix: Option<String>) -> Answer {
    let what = match what {
        WireListing::Functions => Listing::Functions,
        WireListing::Dags => Listing::Dags,
    };
    let prefix = prefix.unwrap_or_default();
    Ok(Reply::Names(schedule(state, List { what, prefix }).await?))
}

fn dag_args(args: BTreeMap<String, Vec<WireArg>>) -> Result<BTreeMap<String, Vec<Arg>>, ErrorBody> {
    args.into_iter()
        .map(|(f, a)| Ok((f, core::to_args(a).map_err(|e| e.body())?)))
        .collect()
}

/// Where a call's result goes: pushed to this gateway always; stored for futures (at the
/// client's output key, or the call's result key) and for direct calls with an output key.
fn reply_to(
    state: &GatewayState,
    call: CallId,
    direct: bool,
    output_key: Option<String>,
) -> Result<(ReplyTo, Key), ErrorBody> {
    let named = match output_key {
        Some(k) => Some(client_key(k, true).map_err(|e| e.body())?),
        None => None,
    };
    let key = named.clone().unwrap_or_else(|| result_key(call));
    let store_at = if direct { named } else { Some(key.clone()) };
    let reply = ReplyTo {
        push_to: Some(state.me.clone()),
        store_at,
    };
    Ok((reply, key))
}

/// Unregisters a waiter when its request ends, however it ends (answered, timed out, or
/// its session closed).
struct WaitGuard<'a> {
    state: &'a GatewayState,
    call: CallId,
}

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        lock(&self.state.results).give_up(self.call);
    }
}

/// A call request's answer; a failed one ends the call in the book if nothing else did
/// (so it is logged and counted once, and awaits of it answer the same).
fn settled(state: &GatewayState, call: CallId, answer: Answer) -> Answer {
    if let Err(e) = &answer {
        let failure = CallFailure {
            code: e.code,
            message: e.message.clone(),
            exception_type: e.exception_type.clone(),
            traceback: e.traceback.clone(),
        };
        settle(&state.results, call, Err(failure));
    }
    answer
}

/// The client's id of a call request, if it sent one, and whether it sent the request
/// again after losing the gateway that took it.
#[derive(Clone, Copy)]
struct Minted {
    id: Option<u64>,
    resent: bool,
}

impl Minted {
    fn of(id: Option<u64>, resent: bool) -> Self {
        Minted { id, resent }
    }
}

/// What `call_function` and `call_dag` share: the call id (the client's, else a fresh
/// one), where its result goes, the scheduler request `make` builds from them and the
/// arguments (already converted, so a bad argument is reported before a bad output key),
/// and the wait for the answer. A client's id this gateway knows already is a request sent
/// again: it is answered as the first was ([`resent`]), not run again; one it does not
/// know, sent again after the client lost its gateway, is claimed from the executors
/// first ([`claim::take_over`]): answered as there, if it ran or runs. A client's call no
/// scheduler took (none reachable, or it refused) is forgotten once answered, so the same
/// request sent later runs.
async fn call_request<A, M>(
    state: &GatewayState,
    minted: Minted,
    direct: bool,
    output_key: Option<String>,
    options: CallOptions,
    args: Result<A, ErrorBody>,
    make: impl FnOnce(CallId, ReplyTo, A) -> M,
) -> Answer
where
    M: RemoteMessage<Result = Result<CallAccepted, FunctionError>>,
{
    let call = match minted.id {
        Some(id) => {
            let call = core::client_call_id(id).map_err(|e| e.body())?;
            if let Some(answer) = resent(state, call, direct, &output_key).await {
                return answer;
            }
            if minted.resent && claim::take_over(state, call).await {
                if let Some(answer) = resent(state, call, direct, &output_key).await {
                    return answer;
                }
            }
            call
        }
        None => CallId::random(),
    };
    let minted = minted.id;
    let again = minted.and(output_key.clone());
    let answer = async {
        let args = args?;
        let (reply, key) = reply_to(state, call, direct, output_key)?;
        // A client's direct call keeps its value too: a request sent again answers it.
        let keep = !direct || minted.is_some();
        let msg = make(call, reply, args);
        match call_and_wait(state, call, keep, direct, key, options, msg).await {
            Ok(answer) => Ok(answer),
            Err(NotRun::Begun) if minted.is_some() => {
                match resent(state, call, direct, &again).await {
                    Some(answer) => Ok(answer),
                    None => Err(GatewayError::Invalid(format!("{call} ended at once")).body()),
                }
            }
            Err(NotRun::Begun) => Err(GatewayError::Invalid(format!("{call} is in use")).body()),
            Err(NotRun::Refused(e)) => Err(e),
        }
    };
    let (answer, refused) = match answer.await {
        Ok(answer) => (answer, false),
        Err(e) => (Err(e), true),
    };
    let answer = settled(state, call, answer);
    if refused && minted.is_some() {
        lock(&state.results).forget(call);
    }
    answer
}

/// The answer to a call request whose client-minted id this gateway knows (it began here
/// or ended here and is remembered): a direct call waits for the outcome, as the first
/// request did; a future is answered with itself. `None` when the id is new here.
async fn resent(
    state: &GatewayState,
    call: CallId,
    direct: bool,
    output_key: &Option<String>,
) -> Option<Answer> {
    if !lock(&state.results).knows(call) {
        return None;
    }
    tracing::debug!(call = %call, "a call request sent again: answered as the first");
    let key = match output_key {
        Some(k) => match client_key(k.clone(), true) {
            Ok(k) => k,
            Err(e) => return Some(Err(e.body())),
        },
        None => result_key(call),
    };
    Some(match direct {
        true => await_result(state, call, key, None).await,
        false => Ok(Reply::Future {
            call: call.0,
            key: key.to_string(),
        }),
    })
}

/// Why a call request did not lead to a call: its id is in the book already, or no
/// scheduler took it (the error says why).
enum NotRun {
    Begun,
    Refused(ErrorBody),
}

/// Send a call to a scheduler, keeping it in the book until it ends (its value kept for
/// later awaits when `keep`); for a direct call wait for its outcome (its result, a
/// failure, or `timeout` at its deadline), else answer with the future at once.
async fn call_and_wait<M>(
    state: &GatewayState,
    call: CallId,
    keep: bool,
    direct: bool,
    key: Key,
    options: CallOptions,
    msg: M,
) -> Result<Answer, NotRun>
where
    M: RemoteMessage<Result = Result<CallAccepted, FunctionError>>,
{
    let Some(target) = state.scheduler() else {
        let e = GatewayError::Unavailable("no scheduler is available".into());
        return Err(NotRun::Refused(e.body()));
    };
    let deadline = Instant::now()
        + options
            .timeout_ms
            .map_or(UNACCEPTED_DEADLINE, Duration::from_millis);
    // The guard is declared first so it drops last, after the receiver: `give_up` only
    // removes waiters whose receiver is gone.
    let _guard = WaitGuard { state, call };
    // Begun before the scheduler is asked: the result may come back before its answer.
    let waiting = {
        let mut book = lock(&state.results);
        if !book.begin(call, target.node.clone(), keep, deadline) {
            return Err(NotRun::Begun);
        }
        if direct {
            Some(book.wait(call))
        } else {
            None
        }
    };
    let accepted = schedule_at(state, target, msg)
        .await
        .map_err(NotRun::Refused)?;
    Ok(wait_accepted(state, call, accepted, key, waiting).await)
}

/// The scheduler accepted `call`: answer as [`call_and_wait`] says.
async fn wait_accepted(
    state: &GatewayState,
    call: CallId,
    accepted: CallAccepted,
    key: Key,
    waiting: Option<Wait>,
) -> Answer {
    let ends = Instant::now() + Duration::from_millis(accepted.deadline_ms);
    lock(&state.results).accepted(call, ends);
    match waiting {
        None => Ok(Reply::Future {
            call: call.0,
            key: key.to_string(),
        }),
        Some(Wait::Pending(rx)) => match rx.await {
            Ok(outcome) => outcome_reply(outcome),
            Err(_) => Err(GatewayError::Unavailable("the gateway is shutting down".into()).body()),
        },
        Some(Wait::Ended(outcome)) => outcome_reply(outcome),
        Some(Wait::Stored | Wait::Unknown) => {
            Err(GatewayError::Invalid(format!("{call} ended before it began")).body())
        }
    }
}

/// A future's result: from the book (every await of an ended call answers the same), else
/// the pushed outcome when it comes; a call the book does not hold is read where its
/// result is stored (default result keys only: a client-named key may hold another
/// value), else it is unknown here.
async fn await_result(
    state: &GatewayState,
    call: CallId,
    key: Key,
    timeout_ms: Option<u64>,
) -> Answer {
    // Declared before the receiver so it drops after it (see `call_and_wait`).
    let _guard = WaitGuard { state, call };
    let wait = lock(&state.results).wait(call);
    let rx = match wait {
        Wait::Ended(outcome) => return outcome_reply(outcome),
        Wait::Stored => return stored(state, call, &key, true).await,
        Wait::Unknown => return stored(state, call, &key, key == result_key(call)).await,
        Wait::Pending(rx) => rx,
    };
    let pushed = async {
        match rx.await {
            Ok(outcome) => outcome_reply(outcome),
            Err(_) => Err(GatewayError::Unavailable("the gateway is shutting down".into()).body()),
        }
    };
    match timeout_ms {
        None => pushed.await,
        Some(ms) => tokio::time::timeout(Duration::from_millis(ms), pushed)
            .await
            .unwrap_or_else(|_| Err(GatewayError::Timeout(ms).body())),
    }
}

/// The result of `call` as stored under `key` (when `readable`), else `unknown_call`.
async fn stored(state: &GatewayState, call: CallId, key: &Key, readable: bool) -> Answer {
    if readable {
        if let Some(value) = state.kvs.get(key).await.map_err(storage)? {
            let value = core::from_lattice(key, value).map_err(|e| e.body())?;
            return Ok(Reply::Value(value));
        }
    }
    Err(GatewayError::UnknownCall(call).body())
}

/// Cancel a call this gateway made: its scheduler stops its functions, and the call ends
/// with `cancelled`, unless it ended first.
async fn cancel(state: &GatewayState, call: CallId) -> Answer {
    let scheduler = lock(&state.results).scheduler_of(call).cloned();
    let Some(node) = scheduler else {
        return match lock(&state.results).has_ended(call) {
            true => Ok(Reply::Flag(false)),
            false => Err(GatewayError::UnknownCall(call).body()),
        };
    };
    let target = ActorRef::new(node, ServiceId::Scheduler, 0);
    let held = state
        .transport
        .handle::<CancelCall>(target)
        .send(CancelCall { call })
        .await;
    if let Ok(false) = held {
        // The scheduler no longer holds it: it ended, its outcome is on its way here.
        return Ok(Reply::Flag(false));
    }
    let f = CallFailure::new(ErrorCode::Cancelled, "the call was cancelled");
    Ok(Reply::Flag(settle(&state.results, call, Err(f))))
}

/// A result read with `delete`: its key is deleted. The default result key is written once,
/// possibly after the result was pushed here (a future's sink pushes before it stores), so
/// its tombstone is dated [`READ_RESULT_DELETE_AHEAD`] ahead to beat that write; a
/// client-named key was stored before the push. A failed delete is logged, not reported:
/// the read succeeded, and a result expires anyway.
async fn delete_read_result(state: &GatewayState, key: Key) {
    let mut at = state.timestamp();
    if key.as_str().starts_with(RESULT_PREFIX) {
        let ahead = READ_RESULT_DELETE_AHEAD.as_micros() as u64;
        at = Timestamp::new(at.time.saturating_add(ahead), at.writer);
    }
    if let Err(e) = state.kvs.delete(key.clone(), at).await {
        tracing::warn!(key = %key, cause = %e, "a result read with delete was not deleted");
    }
}

/// How far ahead of this gateway's clock a result read with `delete` is deleted: more than
/// a sink takes between pushing a result and storing it, plus the clock skew between nodes.
pub const READ_RESULT_DELETE_AHEAD: Duration = Duration::from_secs(60);

fn outcome_reply(outcome: Outcome) -> Answer {
    match outcome {
        Ok(v) => Ok(Reply::Value(Some(
            core::wire_value(v).map_err(|e| e.body())?,
        ))),
        Err(f) => Err(core::failure(f)),
    }
}

async fn get_value(state: &GatewayState, key: &Key) -> Answer {
    match state.kvs.get(key).await.map_err(storage)? {
        None => Ok(Reply::Value(None)),
        Some(v) => Ok(Reply::Value(
            core::from_lattice(key, v).map_err(|e| e.body())?,
        )),
    }
}

/// Send a function-plane message to a scheduler and unwrap its answer.
async fn schedule<M, T: Send + 'static>(state: &GatewayState, msg: M) -> Result<T, ErrorBody>
where
    M: RemoteMessage<Result = Result<T, FunctionError>>,
{
    let Some(target) = state.scheduler() else {
        return Err(GatewayError::Unavailable("no scheduler is available".into()).body());
    };
    schedule_at(state, target, msg).await
}

/// Send a function-plane message to the scheduler `target` and unwrap its answer.
async fn schedule_at<M, T: Send + 'static>(
    state: &GatewayState,
    target: ActorRef,
    msg: M,
) -> Result<T, ErrorBody>
where
    M: RemoteMessage<Result = Result<T, FunctionError>>,
{
    match state.transport.handle::<M>(target).send(msg).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(function_error(&e)),
        Err(e) => Err(unreachable_scheduler(&e).body()),
    }
}

fn unreachable_scheduler(e: &NetError) -> GatewayError {
    GatewayError::Unavailable(format!("scheduler unreachable: {e}"))
}

/// A KVS error as the client sees it.
pub fn storage(e: KvsError) -> ErrorBody {
    let code = match &e {
        KvsError::KindMismatch { .. } => ErrorCode::KindMismatch,
        KvsError::ValueTooLarge { .. } => ErrorCode::ValueTooLarge,
        KvsError::NoReplicas | KvsError::UnderReplicated { .. } | KvsError::Unavailable(_) => {
            ErrorCode::Unavailable
        }
        KvsError::Malformed(_) | KvsError::Storage(_) => ErrorCode::StorageError,
        KvsError::Reserved { .. } => ErrorCode::InvalidRequest,
    };
    GatewayError::Storage {
        code,
        message: e.to_string(),
    }
    .body()
}
