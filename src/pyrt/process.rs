//! The supervisor side of one worker process: spawn it, complete the handshake, forward its
//! output to the log, drive one call (answering its user-library requests), kill and reap.

use super::wire::{
    decode, encode, CallOutput, FrameError, FromWorker, LibReply, LibRequest, ToWorker,
    ToWorkerRef, WireCallRef, PROTOCOL_VERSION,
};
use super::{
    CallError, LibError, PoolConfig, PyCall, PyEnvironment, PyRuntimeError, PyValue, UserLibrary,
};
use crate::protocol::ErrorCode;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use std::collections::HashSet;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::process::{Child, Command};
use tokio_util::codec::{Framed, LengthDelimitedCodec};
use tracing::{info, warn};

/// Time for a new worker to connect and report ready: process start, interpreter start
/// (8–16 ms) and `import cloudpickle`, generous because a loaded 2-core machine is slow.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait for a worker that hung up to report its exit status (for the error).
const EXIT_STATUS_GRACE: Duration = Duration::from_millis(200);
/// How long to wait for a killed worker to be reaped before leaving it to tokio's reaper.
const REAP_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest line of worker output logged as one event; longer lines are split.
const MAX_LOG_LINE: usize = 8 * 1024;

/// A supervised worker process, idle between calls.
pub(super) struct Worker {
    pub index: usize,
    pub pid: u32,
    /// Started beyond the pool's size while workers waited on the platform: retired, not
    /// replaced, once nothing waits for it.
    pub extra: bool,
    child: Child,
    framed: Framed<UnixStream, LengthDelimitedCodec>,
    max_frame: usize,
    /// Functions this worker has cached, so their bodies are sent once.
    loaded: HashSet<(String, u64)>,
    /// The number of this worker's last call (every frame of a call carries it).
    seq: u64,
}

/// Told after every user-library request of a call whether the function is now waiting on
/// the platform: its `recv` found nothing, or its `get` found a key missing (it is likely
/// to ask again until another function acts).
pub(super) trait Waiting: Sync {
    fn waiting(&self, on_platform: bool);
}

/// Whether `reply` found nothing the function was looking for.
fn found_nothing(reply: &LibReply) -> bool {
    match reply {
        LibReply::Messages(m) => m.is_empty(),
        LibReply::Values(v) => v.iter().any(Option::is_none),
        _ => false,
    }
}

/// The worker can no longer be trusted (died, hung up, broke the protocol): kill it.
#[derive(Debug)]
pub(super) struct Broken(pub String);

/// Start worker `index` (`seq` makes its socket name unique) and wait until it is ready.
pub(super) async fn spawn(
    cfg: &PoolConfig,
    sockdir: &Path,
    index: usize,
    seq: u64,
) -> Result<(Worker, PyEnvironment), PyRuntimeError> {
    let path = sockdir.join(format!("w{index}-{seq}.sock"));
    let listener = UnixListener::bind(&path).map_err(PyRuntimeError::Socket)?;
    let mut command = Command::new(&cfg.worker_exe);
    command
        .arg("worker")
        .arg("--socket")
        .arg(&path)
        .arg("--max-frame-bytes")
        .arg(cfg.max_frame_bytes.to_string());
    if let Some(python) = &cfg.python {
        command.arg("--python").arg(python);
    }
    if let Some(bytes) = cfg.memory_bytes {
        command.arg("--memory-bytes").arg(bytes.to_string());
    }
    if let Some(user) = &cfg.confinement.user {
        command.arg("--user").arg(user);
    }
    for path in &cfg.confinement.hide {
        command.arg("--hide").arg(path);
    }
    // Functions run in the worker: they see only the variables allowed, never the
    // platform's secrets (the token, the cluster secret) in this process's environment.
    command.env_clear().envs(allowed_env(&cfg.env_allow));
    let mut child = command
        .env("NO_COLOR", "1") // its log lines are re-logged by us: no escape codes
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| PyRuntimeError::Spawn {
            exe: cfg.worker_exe.display().to_string(),
            source,
        })?;
    let pid = child.id().unwrap_or_default();
    if let Some(out) = child.stdout.take() {
        tokio::spawn(forward_output(out, index, pid, "stdout"));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(forward_output(err, index, pid, "stderr"));
    }
    let handshake = tokio::select! {
        r = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(&listener, cfg.max_frame_bytes)) => {
            r.unwrap_or_else(|_| Err(format!("not ready after {HANDSHAKE_TIMEOUT:?}")))
        }
        _ = child.wait() => Err("exited before connecting".into()),
    };
    let _ = std::fs::remove_file(&path);
    let handshake = match handshake {
        Err(why) => Err(with_exit_status(&mut child, why).await),
        ok => ok,
    };
    let (framed, env) = handshake.map_err(|reason| PyRuntimeError::Handshake {
        worker: index,
        reason,
    })?;
    info!(worker = index, pid, python = %env.python, "python worker ready");
    let worker = Worker {
        index,
        pid,
        extra: false,
        child,
        framed,
        max_frame: cfg.max_frame_bytes,
        loaded: HashSet::new(),
        seq: 0,
    };
    Ok((worker, env))
}

/// The variables of this process's environment named in `allow` (never a `CLOUDBURST_*`
/// one, whatever `allow` says).
pub(super) fn allowed_env(allow: &[String]) -> Vec<(std::ffi::OsString, std::ffi::OsString)> {
    std::env::vars_os()
        .filter(|(name, _)| {
            let name = name.to_string_lossy();
            !name.starts_with(crate::config::PLATFORM_ENV_PREFIX)
                && allow.iter().any(|a| *a == name)
        })
        .collect()
}

/// "why (exit status: 1); its stderr is in the log", for a worker that failed to start.
async fn with_exit_status(child: &mut Child, why: String) -> String {
    match tokio::time::timeout(EXIT_STATUS_GRACE, child.wait()).await {
        Ok(Ok(status)) => format!("{why} ({status}); its stderr is in the log"),
        _ => why,
    }
}

async fn handshake(
    listener: &UnixListener,
    max_frame: usize,
) -> Result<(Framed<UnixStream, LengthDelimitedCodec>, PyEnvironment), String> {
    let (stream, _) = listener.accept().await.map_err(|e| e.to_string())?;
    let codec = LengthDelimitedCodec::builder()
        .max_frame_length(max_frame)
        .new_codec();
    let mut framed = Framed::new(stream, codec);
    let frame = framed
        .next()
        .await
        .ok_or("closed its socket before ready")?
        .map_err(|e| e.to_string())?;
    match decode::<FromWorker>(&frame).map_err(|e| e.to_string())? {
        FromWorker::Ready { protocol, env } if protocol == PROTOCOL_VERSION => Ok((framed, env)),
        FromWorker::Ready { protocol, .. } => Err(format!(
            "speaks protocol {protocol}, this pool {PROTOCOL_VERSION} (a different build?)"
        )),
        FromWorker::Refused(why) => Err(why),
        _ => Err("sent something other than ready".into()),
    }
}

/// Keep what the call printed and its traceback, by call id, in the node's log store
/// (nothing when it printed nothing and did not raise).
fn keep_log(call: &PyCall, output: Option<CallOutput>, outcome: &Result<PyValue, CallError>) {
    let traceback = match outcome {
        Err(CallError::Exception { traceback, .. }) => Some(traceback.clone()),
        _ => None,
    };
    if output.is_none() && traceback.is_none() {
        return;
    }
    let out = output.unwrap_or_default();
    crate::calllog::global().add(crate::protocol::CallLog {
        call: crate::ids::CallId(call.call),
        attempt: call.attempt,
        function: call.function.name.clone(),
        node: String::new(),
        stdout: out.stdout,
        stderr: out.stderr,
        traceback,
        truncated: out.truncated,
        at_ms: crate::metrics::unix_ms(),
    });
}

impl Worker {
    /// Run one call to completion. `Ok(Err(..))` is a failed call on a healthy worker.
    pub async fn call(
        &mut self,
        call: &PyCall,
        lib: &dyn UserLibrary,
        waits: &dyn Waiting,
    ) -> Result<Result<PyValue, CallError>, Broken> {
        let f = &call.function;
        let key = (f.name.clone(), f.hash);
        let send_body = !self.loaded.contains(&key);
        self.seq += 1;
        let seq = self.seq;
        let msg = ToWorkerRef::Call(WireCallRef {
            seq,
            name: &f.name,
            hash: f.hash,
            kind: f.kind,
            body: send_body.then_some(&f.body),
            args: &call.args,
            upstream: call.upstream,
            call: call.call,
            attempt: call.attempt,
            warm: call.warm,
        });
        match self.encode_checked(&msg) {
            Ok(frame) => self.send(frame).await?,
            Err(e) => return Ok(Err(e)),
        }
        loop {
            match self.recv().await? {
                FromWorker::Done { seq: s, .. } | FromWorker::Lib { seq: s, .. } if s != seq => {
                    return Err(self.broken(format!(
                        "sent a frame of call {s} during call {seq} (a forked process, or a function writing to the socket)"
                    )));
                }
                FromWorker::Done {
                    outcome,
                    loaded,
                    output,
                    ..
                } => {
                    if loaded && !self.loaded.contains(&key) {
                        // The worker dropped the other versions of this name as it loaded it.
                        self.loaded.retain(|(name, _)| *name != key.0);
                        self.loaded.insert(key);
                    }
                    keep_log(call, output, &outcome);
                    return Ok(outcome);
                }
                FromWorker::Lib { req, .. } => {
                    let reply = serve_lib(req, lib).await;
                    waits.waiting(found_nothing(&reply));
                    let frame = self
                        .encode_checked(&ToWorker::LibReply { seq, reply })
                        .or_else(|e| {
                            let reply = LibReply::Error(unsendable(e));
                            encode(&ToWorker::LibReply { seq, reply })
                        })
                        .map_err(|e| Broken(e.to_string()))?;
                    self.send(frame).await?;
                }
                FromWorker::Ready { .. } | FromWorker::Refused(_) => {
                    return Err(self.broken("sent a handshake frame during a call".into()))
                }
            }
        }
    }

    fn encode_checked<T: serde::Serialize>(&self, msg: &T) -> Result<Vec<u8>, CallError> {
        let frame = encode(msg).map_err(|e| CallError::Pickle(e.to_string()))?;
        if frame.len() > self.max_frame {
            return Err(CallError::TooLarge {
                bytes: frame.len(),
                max: self.max_frame,
            });
        }
        Ok(frame)
    }

    async fn send(&mut self, frame: Vec<u8>) -> Result<(), Broken> {
        self.framed
            .send(Bytes::from(frame))
            .await
            .map_err(|e| self.broken(format!("cannot write to worker: {e}")))
    }

    async fn recv(&mut self) -> Result<FromWorker, Broken> {
        match self.framed.next().await {
            Some(Ok(frame)) => {
                crate::fuzz::record::frame(crate::fuzz::Target::WorkerFrame, &frame);
                decode(&frame).map_err(|e: FrameError| self.broken(e.to_string()))
            }
            Some(Err(e)) => Err(self.broken(format!("bad frame from worker: {e}"))),
            None => Err(Broken(self.exit_description().await)),
        }
    }

    fn broken(&self, why: String) -> Broken {
        Broken(format!("worker {} (pid {}): {why}", self.index, self.pid))
    }

    /// "worker 1 (pid 123) exited (exit status: 3)" for a worker that hung up.
    async fn exit_description(&mut self) -> String {
        let status = match tokio::time::timeout(EXIT_STATUS_GRACE, self.child.wait()).await {
            Ok(Ok(s)) => s.to_string(),
            Ok(Err(e)) => format!("status unknown: {e}"),
            Err(_) => "closed its socket but is still running".into(),
        };
        format!("worker {} (pid {}) exited ({status})", self.index, self.pid)
    }

    /// Whether the worker can no longer take a call (checked before giving it one): its
    /// end of the socket is closed (it exited: a process a function forked holds
    /// `/dev/null` in the socket's place, so only the worker itself keeps it open), or it
    /// wrote while idle. A non-blocking peek rather than `waitpid`: this runs on every
    /// call, and `waitpid` costs several times a plain system call.
    pub fn has_exited(&mut self) -> bool {
        if !self.framed.read_buffer().is_empty() {
            return true;
        }
        let fd = std::os::fd::AsRawFd::as_raw_fd(self.framed.get_ref());
        let mut byte = 0u8;
        // SAFETY: a one-byte peek into a buffer of this frame, on a socket this worker owns.
        let n = unsafe {
            libc::recv(
                fd,
                (&mut byte as *mut u8).cast(),
                1,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error().kind();
            return !matches!(
                e,
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
            );
        }
        // 0: the worker closed its end; more: it wrote while no call was running.
        true
    }

    /// Kill the process, and every process its functions started (it is their subreaper,
    /// so they are all below it), and reap it.
    pub async fn kill(mut self) {
        let pid = self.pid;
        let tree = tokio::task::spawn_blocking(move || super::sandbox::kill_tree(pid)).await;
        if let Ok(n @ 1..) = tree {
            info!(
                worker = self.index,
                pid,
                killed = n,
                "killed the processes its functions started"
            );
        }
        let _ = self.child.start_kill();
        match tokio::time::timeout(REAP_TIMEOUT, self.child.wait()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                warn!(worker = self.index, pid = self.pid, cause = %e, "reaping worker failed")
            }
            Err(_) => warn!(
                worker = self.index,
                pid = self.pid,
                "killed worker not reaped in time"
            ),
        }
    }
}

/// The error a function sees when the library's answer cannot be sent to its worker.
fn unsendable(e: CallError) -> LibError {
    let code = match e {
        CallError::TooLarge { .. } | CallError::Pickle(_) => e.code(),
        _ => ErrorCode::InternalError,
    };
    LibError::new(code, e.to_string())
}

async fn serve_lib(req: LibRequest, lib: &dyn UserLibrary) -> LibReply {
    let done = |r: Result<(), LibError>| r.map_or_else(LibReply::Error, |()| LibReply::Done);
    match req {
        LibRequest::Get(keys) => lib
            .get(keys)
            .await
            .map_or_else(LibReply::Error, LibReply::Values),
        LibRequest::Put(key, value) => done(lib.put(key, value).await),
        LibRequest::Send(dest, payload) => done(lib.send(dest, payload).await),
        LibRequest::Recv => LibReply::Messages(lib.recv()),
        LibRequest::Id => LibReply::Id(lib.id()),
        LibRequest::Delete(key) => done(lib.delete(key).await),
    }
}

/// Log a worker's output line by line (a user's `print`, Python warnings, the worker's own
/// log), tagged with the worker index and pid: stdout at INFO, stderr at WARN, under the
/// target `cloudburst::python`. Ends when the process closes the pipe.
async fn forward_output(mut pipe: impl AsyncRead + Unpin, index: usize, pid: u32, stream: &str) {
    let mut pending: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; MAX_LOG_LINE];
    loop {
        let n = match pipe.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        pending.extend_from_slice(&chunk[..n]);
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            log_line(&line[..end], index, pid, stream);
        }
        if pending.len() >= MAX_LOG_LINE {
            log_line(&pending, index, pid, stream);
            pending.clear();
        }
    }
    if !pending.is_empty() {
        log_line(&pending, index, pid, stream);
    }
}

fn log_line(line: &[u8], index: usize, pid: u32, stream: &str) {
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end_matches('\r');
    if stream == "stderr" {
        warn!(target: "cloudburst::python", worker = index, pid, stream, "{text}");
    } else {
        info!(target: "cloudburst::python", worker = index, pid, stream, "{text}");
    }
}
