//! The embedded interpreter: initialising the project venv's Python and running calls
//! through the Python glue (`glue.py`). Used by the worker process and by the in-process
//! benchmark.
//!
//! Which Python: the program named by the `CLOUDBURST_PYTHON` environment variable, else
//! the interpreter the crate was built against (`PYO3_PYTHON`, recorded by `build.rs` as
//! `CLOUDBURST_BUILD_PYTHON`). It is given to CPython as its program name through an
//! explicit `PyConfig`, so the `pyvenv.cfg` beside it is honoured (embedded CPython ignores
//! `VIRTUAL_ENV`: the program name is what selects the venv).

use super::wire::CallOutput;
use super::{CallError, FunctionKind, PyEnvironment, PyValue};
use bytes::Bytes;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};
use std::ffi::{CStr, CString};
use std::path::PathBuf;
use std::sync::OnceLock;

/// Environment variable overriding the Python program at run time.
pub const PYTHON_ENV: &str = "CLOUDBURST_PYTHON";
/// The Python the crate was built against (absolute path to the venv's `python3`).
pub const BUILD_PYTHON: &str = env!("CLOUDBURST_BUILD_PYTHON");

/// The glue module's source, compiled once per process.
const GLUE_SOURCE: &str = include_str!("glue.py");

/// The client package's error classes, loaded as the module `cloudburst_errors` for the glue
/// to raise where the worker's Python has no `cloudburst` package (one source for both).
const ERRORS_SOURCE: &str = include_str!("../../python/cloudburst/errors.py");

/// Why the interpreter could not be initialised or the glue loaded.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InterpError {
    /// The program path cannot be given to CPython.
    #[error("Python program path {0:?} contains a NUL byte")]
    BadPath(PathBuf),
    /// The program does not exist (no venv?).
    #[error("Python program {0:?} does not exist (set {PYTHON_ENV} or run scripts/setup.sh)")]
    Missing(PathBuf),
    /// `Py_InitializeFromConfig` failed.
    #[error("CPython initialisation failed: {0}")]
    Init(String),
    /// The glue did not compile or import (e.g. cloudpickle missing from the venv).
    #[error("loading the Python glue failed: {0}")]
    Glue(String),
}

/// The Python program this process embeds (see the module doc).
pub fn python_program() -> PathBuf {
    std::env::var_os(PYTHON_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(BUILD_PYTHON))
}

/// [`initialize_with`] the program of [`python_program`].
pub fn initialize() -> Result<(), InterpError> {
    initialize_with(&python_program())
}

/// Initialise CPython once for this process with `program` (a venv's python) as its
/// program name, no signal handlers (the supervisor kills us; Ctrl-C is not Python's
/// business) and unbuffered stdio (so `print` reaches the log line by line). Later calls
/// return the first outcome.
pub fn initialize_with(program: &std::path::Path) -> Result<(), InterpError> {
    static DONE: OnceLock<Result<(), InterpError>> = OnceLock::new();
    DONE.get_or_init(|| {
        let program = program.to_path_buf();
        if !program.exists() {
            return Err(InterpError::Missing(program));
        }
        let c_program = CString::new(program.as_os_str().as_encoded_bytes())
            .map_err(|_| InterpError::BadPath(program.clone()))?;
        // SAFETY: runs once per process (OnceLock), before any other use of Python; the
        // config is initialised by CPython before use and cleared after.
        unsafe { init_from_config(&c_program) }
    })
    .clone()
}

/// # Safety
/// Call at most once per process, before any other Python API.
unsafe fn init_from_config(program: &CStr) -> Result<(), InterpError> {
    let mut config = std::mem::MaybeUninit::<ffi::PyConfig>::zeroed();
    let cfg = config.as_mut_ptr();
    unsafe {
        ffi::PyConfig_InitPythonConfig(cfg);
        (*cfg).install_signal_handlers = 0;
        (*cfg).buffered_stdio = 0;
        let status = ffi::PyConfig_SetBytesString(cfg, &mut (*cfg).program_name, program.as_ptr());
        if ffi::PyStatus_Exception(status) != 0 {
            ffi::PyConfig_Clear(cfg);
            return Err(InterpError::Init(status_message(&status)));
        }
        let status = ffi::Py_InitializeFromConfig(cfg);
        ffi::PyConfig_Clear(cfg);
        if ffi::PyStatus_Exception(status) != 0 {
            return Err(InterpError::Init(status_message(&status)));
        }
        // Release the GIL taken by initialisation; `Python::attach` takes it when needed.
        ffi::PyEval_SaveThread();
    }
    Ok(())
}

fn status_message(status: &ffi::PyStatus) -> String {
    if status.err_msg.is_null() {
        return "unknown error".into();
    }
    // SAFETY: CPython sets err_msg to a static NUL-terminated string.
    unsafe { CStr::from_ptr(status.err_msg) }
        .to_string_lossy()
        .into_owned()
}

/// The loaded glue module's entry points.
pub struct Glue {
    run: Py<PyAny>,
    environment: Py<PyAny>,
    take_output: Py<PyAny>,
}

/// The outcome of one call, and whether the function is now cached in this interpreter.
pub struct RunOutcome {
    /// The encoded result (MessagePack, see `PyValue`), or why there is none.
    pub outcome: Result<PyValue, CallError>,
    /// The function is cached in this interpreter (its body need not be sent again).
    pub loaded: bool,
}

impl Glue {
    /// Compile the glue (imports cloudpickle) and the error classes it falls back on.
    pub fn load(py: Python<'_>) -> Result<Glue, InterpError> {
        let load = || -> PyResult<Glue> {
            let errors = CString::new(ERRORS_SOURCE)?;
            PyModule::from_code(py, &errors, c"cloudburst_errors.py", c"cloudburst_errors")?;
            let code = CString::new(GLUE_SOURCE)?;
            let module = PyModule::from_code(py, &code, c"cloudburst_glue.py", c"cloudburst_glue")?;
            module.getattr("install_capture")?.call0()?;
            Ok(Glue {
                run: module.getattr("run")?.unbind(),
                environment: module.getattr("environment")?.unbind(),
                take_output: module.getattr("take_output")?.unbind(),
            })
        };
        load().map_err(|e| InterpError::Glue(describe(py, &e)))
    }

    /// The interpreter's version, prefix and cloudpickle version.
    pub fn environment(&self, py: Python<'_>) -> Result<PyEnvironment, InterpError> {
        let read = || -> PyResult<PyEnvironment> {
            let d = self.environment.bind(py).call0()?;
            let field = |k: &str| -> PyResult<String> { d.get_item(k)?.extract() };
            Ok(PyEnvironment {
                python: field("python")?,
                version: field("version")?,
                prefix: field("prefix")?,
                executable: field("executable")?,
                cloudpickle: field("cloudpickle")?,
            })
        };
        read().map_err(|e| InterpError::Glue(describe(py, &e)))
    }

    /// Run one call: `link` is the object behind the user library (any Python object; the
    /// worker passes its Rust `Link`).
    pub fn run(&self, py: Python<'_>, call: CallRef<'_>, link: &Bound<'_, PyAny>) -> RunOutcome {
        match self.try_run(py, call, link) {
            Ok(out) => out,
            Err(e) => RunOutcome {
                outcome: Err(CallError::Pickle(format!(
                    "the Python glue failed: {}",
                    describe(py, &e)
                ))),
                loaded: false,
            },
        }
    }

    fn try_run(
        &self,
        py: Python<'_>,
        call: CallRef<'_>,
        link: &Bound<'_, PyAny>,
    ) -> PyResult<RunOutcome> {
        let kind = match call.kind {
            FunctionKind::Plain => "plain",
            FunctionKind::Class => "class",
        };
        let body = call.body.map(|b| PyBytes::new(py, b));
        let args = PyList::empty(py);
        for a in call.args {
            args.append(value_to_py(py, a.as_ref())?)?;
        }
        let out = self.run.bind(py).call1((
            call.name,
            call.hash,
            kind,
            body,
            args,
            call.upstream,
            link,
            call.call,
            call.attempt,
            call.warm,
        ))?;
        parse_outcome(&out.cast_into::<PyTuple>()?)
    }
}

/// The parts of a call the glue needs (borrowed, so the worker need not copy the body).
#[derive(Clone, Copy)]
pub struct CallRef<'a> {
    /// Registered name (with `hash`, the cache key).
    pub name: &'a str,
    /// Content hash of the body.
    pub hash: u64,
    /// Plain or class-based.
    pub kind: FunctionKind,
    /// The cloudpickle body; `None` when the function is already cached.
    pub body: Option<&'a [u8]>,
    /// Arguments after `cb`.
    pub args: &'a [Option<PyValue>],
    /// How many of `args` (the last ones) are upstream results (tuples among them are
    /// spread).
    pub upstream: usize,
    /// The call it belongs to and its attempt (`cb.call_id`, `cb.attempt`).
    pub call: u64,
    pub attempt: u32,
    /// Only load the function (see [`PyCall::warm`]).
    pub warm: bool,
}

fn parse_outcome(t: &Bound<'_, PyTuple>) -> PyResult<RunOutcome> {
    let tag: String = t.get_item(0)?.extract()?;
    let last = t.len().saturating_sub(1);
    let loaded: bool = t.get_item(last)?.extract()?;
    let outcome = match tag.as_str() {
        "ok" => Ok(PyValue::Packed(bytes_of(&t.get_item(1)?)?)),
        "exc" => Err(CallError::Exception {
            type_name: t.get_item(1)?.extract()?,
            message: t.get_item(2)?.extract()?,
            traceback: t.get_item(3)?.extract()?,
        }),
        "memory" => Err(CallError::MemoryLimit),
        _ => Err(CallError::Pickle(t.get_item(1)?.extract()?)),
    };
    Ok(RunOutcome { outcome, loaded })
}

impl Glue {
    /// What the call that just ran wrote to stdout and stderr (`None`: nothing), and the
    /// capture emptied for the next one.
    pub fn take_output(&self, py: Python<'_>) -> Option<CallOutput> {
        let out = self.take_output.bind(py).call0().ok()?;
        if out.is_none() {
            return None;
        }
        let (stdout, stderr, truncated) = out.extract::<(String, String, bool)>().ok()?;
        Some(CallOutput {
            stdout,
            stderr,
            truncated,
        })
    }
}

/// `None`, `bytes`, `list[bytes]` (a set) or `tuple[bytes]` (concurrent versions), as the
/// glue expects values.
pub fn value_to_py<'py>(py: Python<'py>, v: Option<&PyValue>) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        None => py.None().into_bound(py),
        Some(PyValue::Packed(b)) => PyBytes::new(py, b).into_any(),
        Some(PyValue::PackedSet(items)) => {
            PyList::new(py, items.iter().map(|b| PyBytes::new(py, b)))?.into_any()
        }
        Some(PyValue::Concurrent(items)) => {
            PyTuple::new(py, items.iter().map(|b| PyBytes::new(py, b)))?.into_any()
        }
    })
}

/// The inverse of [`value_to_py`] (for `put`): `bytes` or `list[bytes]`.
pub fn value_from_py(v: &Bound<'_, PyAny>) -> PyResult<PyValue> {
    if let Ok(list) = v.cast::<PyList>() {
        let items = list
            .iter()
            .map(|i| bytes_of(&i))
            .collect::<PyResult<Vec<_>>>()?;
        return Ok(PyValue::PackedSet(items));
    }
    Ok(PyValue::Packed(bytes_of(v)?))
}

/// Copy a Python `bytes` object.
fn bytes_of(v: &Bound<'_, PyAny>) -> PyResult<Bytes> {
    Ok(Bytes::copy_from_slice(v.cast::<PyBytes>()?.as_bytes()))
}

/// The directories this interpreter reads modules from: its prefixes and the existing
/// entries of `sys.path`.
pub fn runtime_paths(py: Python<'_>) -> Vec<PathBuf> {
    let read = || -> PyResult<Vec<PathBuf>> {
        let sys = py.import("sys")?;
        let mut out = Vec::new();
        for attr in ["prefix", "base_prefix", "exec_prefix", "base_exec_prefix"] {
            out.push(PathBuf::from(sys.getattr(attr)?.extract::<String>()?));
        }
        for entry in sys.getattr("path")?.try_iter()? {
            if let Ok(p) = entry?.extract::<String>() {
                out.push(PathBuf::from(p));
            }
        }
        Ok(out.into_iter().filter(|p| p.is_dir()).collect())
    };
    read().unwrap_or_default()
}

/// Set variables in `os.environ` (and so the process environment).
pub fn set_environ(py: Python<'_>, vars: &[(&str, &str)]) -> PyResult<()> {
    let environ = py.import("os")?.getattr("environ")?;
    for (k, v) in vars {
        environ.set_item(*k, *v)?;
    }
    Ok(())
}

/// `Type: message` of a Python error (for errors of the glue itself, not user code).
pub fn describe(py: Python<'_>, e: &PyErr) -> String {
    let type_name = e
        .get_type(py)
        .qualname()
        .map(|q| q.to_string())
        .unwrap_or_else(|_| "Exception".into());
    format!("{type_name}: {}", e.value(py))
}
