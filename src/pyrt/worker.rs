//! The `cloudburst worker` process mode: one embedded interpreter serving calls from its
//! supervisor (a [`super::PythonPool`]) over a Unix socket, one call at a time.
//!
//! The worker connects to `--socket`, initialises the venv's Python, sends `Ready` with its
//! environment, then loops: read a call, run it through the glue, send `Done`. A function's
//! user-library calls go through [`Link`], which releases the GIL while it waits for the
//! supervisor. The worker exits when the supervisor closes the socket; it is killed on
//! timeout. Its stdout/stderr are piped to the supervisor, which logs them line by line.
//!
//! A function may fork. A child process it makes is cut off from the socket at once (the
//! socket's descriptors become `/dev/null` in the child, see [`super::sandbox`]), cannot
//! use the user library, and exits as soon as it returns from the function: only the
//! worker itself ever answers a call.

use super::confine::{confine, ConfineError, Confinement};
use super::interp::{self, CallRef, Glue, InterpError};
use super::sandbox;
use super::wire::{
    decode, encode_frame, read_frame, FrameError, FromWorker, LibReply, LibRequest, ToWorker,
    PROTOCOL_VERSION,
};
use crate::ids::Key;
use crate::protocol::ErrorCode;
use pyo3::exceptions::PyRuntimeError as PyRuntimeErr;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};
use std::io::{BufReader, ErrorKind, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Why a worker stopped other than by its supervisor closing the socket.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The supervisor's socket is not there (the pool is gone).
    #[error("cannot connect to the supervisor at {path}: {source}")]
    Connect {
        /// The `--socket` path.
        path: String,
        /// The connect error.
        #[source]
        source: std::io::Error,
    },
    /// The interpreter could not start.
    #[error(transparent)]
    Interp(#[from] InterpError),
    /// The socket failed or carried a bad frame.
    #[error("supervisor link: {0}")]
    Frame(#[from] FrameError),
    /// The supervisor sent something out of turn.
    #[error("protocol violation: {0}")]
    Protocol(&'static str),
    /// The memory limit could not be set.
    #[error("cannot limit the worker's memory: {0}")]
    Limit(std::io::Error),
    /// The worker could not be confined.
    #[error(transparent)]
    Confine(#[from] ConfineError),
}

/// The worker's socket: buffered reads, whole-frame writes.
struct Channel {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    max_frame: usize,
}

impl Channel {
    fn send(&mut self, msg: &FromWorker) -> Result<(), FrameError> {
        let frame = encode_frame(msg, self.max_frame)?;
        self.writer.write_all(&frame)?;
        Ok(())
    }

    fn recv(&mut self) -> Result<ToWorker, FrameError> {
        decode(&read_frame(&mut self.reader, self.max_frame)?)
    }
}

/// Ask Linux to kill this process when its supervisor dies, so a function spinning in a
/// loop never outlives a crashed executor (a closed socket is only noticed between calls).
/// The signal follows the thread that spawned us: pools spawn from runtime threads, which
/// live as long as the pool.
fn die_with_parent() {
    // SAFETY: prctl(PR_SET_PDEATHSIG) only sets a flag on this process.
    let set = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    // (If the supervisor died before this, its socket is gone and `connect` fails.)
    if set != 0 {
        tracing::warn!("python worker may outlive its supervisor: prctl failed");
    }
}

type SharedChannel = Arc<Mutex<Channel>>;

fn lock(chan: &SharedChannel) -> MutexGuard<'_, Channel> {
    // A panic while holding the lock leaves the channel usable: frames are written whole.
    chan.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What a worker process is told on its command line by its pool.
#[derive(Clone, Debug)]
pub struct WorkerOptions {
    /// The supervisor's Unix socket.
    pub socket: PathBuf,
    /// Largest frame sent or accepted.
    pub max_frame: usize,
    /// The Python program to embed.
    pub python: PathBuf,
    /// The worker's address-space limit, if any (`executor.worker_memory_bytes`).
    pub memory_bytes: Option<u64>,
    /// Who functions run as and what they must not see.
    pub confinement: Confinement,
}

/// Run the worker until the supervisor hangs up.
pub fn run(opts: &WorkerOptions) -> Result<(), WorkerError> {
    die_with_parent();
    sandbox::become_subreaper();
    let stream = UnixStream::connect(&opts.socket).map_err(|source| WorkerError::Connect {
        path: opts.socket.display().to_string(),
        source,
    })?;
    let writer = stream.try_clone().map_err(FrameError::Io)?;
    let chan: SharedChannel = Arc::new(Mutex::new(Channel {
        reader: BufReader::new(stream),
        writer,
        max_frame: opts.max_frame,
    }));
    {
        let ch = lock(&chan);
        sandbox::cut_off_in_forks(&[ch.reader.get_ref().as_raw_fd(), ch.writer.as_raw_fd()]);
    }
    interp::initialize_with(&opts.python)?;
    Python::attach(|py| {
        let glue = Glue::load(py)?;
        // After the interpreter and the glue are in place, before any user code.
        if let Err(e) = prepare(py, opts) {
            let _ = lock(&chan).send(&FromWorker::Refused(e.to_string()));
            return Err(e);
        }
        serve(py, &glue, &chan)
    })
}

/// Confine the worker and limit its memory (see [`super::confine`], [`sandbox`]).
fn prepare(py: Python<'_>, opts: &WorkerOptions) -> Result<(), WorkerError> {
    let runtime = interp::runtime_paths(py);
    let confined = confine(&opts.confinement, &runtime)?;
    if let Some((user, home)) = &confined.user {
        interp::set_environ(
            py,
            &[
                ("HOME", home.to_string_lossy().as_ref()),
                ("USER", user),
                ("LOGNAME", user),
            ],
        )
        .map_err(|e| InterpError::Glue(interp::describe(py, &e)))?;
        tracing::debug!(user = %user, "python worker runs functions as");
    }
    if let Some(why) = &confined.unhidden {
        tracing::warn!(cause = %why, "functions can read paths that should be hidden from them");
    }
    if let Some(bytes) = opts.memory_bytes {
        sandbox::limit_memory(bytes).map_err(WorkerError::Limit)?;
    }
    Ok(())
}

fn serve(py: Python<'_>, glue: &Glue, chan: &SharedChannel) -> Result<(), WorkerError> {
    let env = glue.environment(py)?;
    lock(chan).send(&FromWorker::Ready {
        protocol: PROTOCOL_VERSION,
        env,
    })?;
    let link = Bound::new(
        py,
        Link {
            chan: chan.clone(),
            seq: AtomicU64::new(0),
        },
    )
    .map_err(|e| InterpError::Glue(interp::describe(py, &e)))?;
    loop {
        let msg = py.detach(|| lock(chan).recv());
        let call = match msg {
            Ok(ToWorker::Call(call)) => call,
            Ok(ToWorker::LibReply { .. }) => {
                return Err(WorkerError::Protocol("reply without request"))
            }
            Err(FrameError::Io(e)) if e.kind() == ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let seq = call.seq;
        link.get().seq.store(seq, Ordering::Relaxed);
        let out = glue.run(
            py,
            CallRef {
                name: &call.name,
                hash: call.hash,
                kind: call.kind,
                body: call.body.as_deref(),
                args: &call.args,
                upstream: call.upstream,
                call: call.call,
                attempt: call.attempt,
                warm: call.warm,
            },
            link.as_any(),
        );
        drop(call);
        // A process the function forked that returned from it: never answer for the worker.
        sandbox::exit_if_forked();
        let done = FromWorker::Done {
            seq,
            outcome: out.outcome,
            loaded: out.loaded,
            output: glue.take_output(py),
        };
        py.detach(|| send_done(chan, done))?;
    }
}

/// Send the outcome; a result too large for a frame becomes an error the caller can read.
fn send_done(chan: &SharedChannel, done: FromWorker) -> Result<(), FrameError> {
    let mut ch = lock(chan);
    match ch.send(&done) {
        Err(FrameError::TooLarge { bytes, max }) => {
            let FromWorker::Done {
                seq,
                loaded,
                output,
                ..
            } = done
            else {
                return Err(FrameError::TooLarge { bytes, max });
            };
            ch.send(&FromWorker::Done {
                seq,
                outcome: Err(super::CallError::TooLarge { bytes, max }),
                loaded,
                output,
            })
        }
        other => other,
    }
}

/// The user library's way out of Python: each method sends one request to the supervisor
/// and waits for its reply with the GIL released. Errors raise `RuntimeError(code,
/// message)`; the glue turns it into the client package's class for `code`.
#[pyclass(frozen, module = "cloudburst_worker")]
pub struct Link {
    chan: SharedChannel,
    /// The running call's number, carried by every request.
    seq: AtomicU64,
}

#[pymethods]
impl Link {
    fn get<'py>(&self, py: Python<'py>, keys: Vec<String>) -> PyResult<Bound<'py, PyList>> {
        let keys = keys.into_iter().map(Key::new).collect();
        match self.request(py, LibRequest::Get(keys))? {
            LibReply::Values(values) => {
                let items = values
                    .iter()
                    .map(|v| interp::value_to_py(py, v.as_ref()))
                    .collect::<PyResult<Vec<_>>>()?;
                PyList::new(py, items)
            }
            _ => Err(unexpected()),
        }
    }

    fn put(&self, py: Python<'_>, key: String, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let value = interp::value_from_py(value)?;
        match self.request(py, LibRequest::Put(Key::new(key), value))? {
            LibReply::Done => Ok(()),
            _ => Err(unexpected()),
        }
    }

    fn delete(&self, py: Python<'_>, key: String) -> PyResult<()> {
        match self.request(py, LibRequest::Delete(Key::new(key)))? {
            LibReply::Done => Ok(()),
            _ => Err(unexpected()),
        }
    }

    fn send(&self, py: Python<'_>, dest: String, payload: &Bound<'_, PyBytes>) -> PyResult<()> {
        let payload = bytes::Bytes::copy_from_slice(payload.as_bytes());
        match self.request(py, LibRequest::Send(dest, payload))? {
            LibReply::Done => Ok(()),
            _ => Err(unexpected()),
        }
    }

    fn recv<'py>(&self, py: Python<'py>) -> PyResult<Vec<(String, Bound<'py, PyBytes>)>> {
        match self.request(py, LibRequest::Recv)? {
            LibReply::Messages(msgs) => Ok(msgs
                .into_iter()
                .map(|(from, payload)| (from, PyBytes::new(py, &payload)))
                .collect()),
            _ => Err(unexpected()),
        }
    }

    fn getid(&self, py: Python<'_>) -> PyResult<String> {
        match self.request(py, LibRequest::Id)? {
            LibReply::Id(id) => Ok(id),
            _ => Err(unexpected()),
        }
    }
}

impl Link {
    fn request(&self, py: Python<'_>, req: LibRequest) -> PyResult<LibReply> {
        if sandbox::is_forked() {
            return Err(lib_error(
                ErrorCode::InvalidRequest,
                "the user library cannot be used from a process the function forked".into(),
            ));
        }
        let seq = self.seq.load(Ordering::Relaxed);
        let msg = FromWorker::Lib { seq, req };
        let reply = py.detach(|| -> Result<ToWorker, FrameError> {
            let mut ch = lock(&self.chan);
            ch.send(&msg)?;
            ch.recv()
        });
        match reply {
            Ok(ToWorker::LibReply { seq: s, .. }) if s != seq => Err(lib_error(
                ErrorCode::InternalError,
                format!("protocol violation (the reply of call {s} during call {seq})"),
            )),
            Ok(ToWorker::LibReply {
                reply: LibReply::Error(e),
                ..
            }) => Err(lib_error(e.code, e.message)),
            Ok(ToWorker::LibReply { reply, .. }) => Ok(reply),
            Ok(ToWorker::Call(_)) => Err(lib_error(
                ErrorCode::InternalError,
                "protocol violation (a call arrived during a library request)".into(),
            )),
            Err(FrameError::TooLarge { bytes, max }) => Err(lib_error(
                ErrorCode::TooLarge,
                format!("the request of {bytes} bytes exceeds the limit of {max} bytes"),
            )),
            Err(e) => Err(lib_error(
                ErrorCode::InternalError,
                format!("cloudburst: {e}"),
            )),
        }
    }
}

/// The exception of a failed library request, as the glue expects it.
fn lib_error(code: ErrorCode, message: String) -> PyErr {
    PyRuntimeErr::new_err((code.as_str(), message))
}

fn unexpected() -> PyErr {
    lib_error(
        ErrorCode::InternalError,
        "unexpected reply kind from the executor".into(),
    )
}
