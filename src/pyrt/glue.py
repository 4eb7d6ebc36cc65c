"""Python side of a Cloudburst worker (embedded by src/pyrt/interp.rs).

Unpickles functions (cached per process by (name, hash)), unpickles arguments, calls the
function with the user-library object, formats exceptions and pickles the result. The
user-library object forwards to a Rust `link` whose methods release the GIL while they wait
on the supervisor; a failed request raises the client package's error class for its code
(`cloudburst.errors`, the same classes the client raises).

Values cross the boundary as: None, bytes (one pickled object), list[bytes] (a set, one
pickle per element) or tuple[bytes] (concurrent versions of a causal key, read only).
Messages between functions (`send`/`recv`) are pickled objects too, so any picklable value
arrives as it was sent.
"""

import gc
import pickle
import sys
import traceback

import cloudpickle

try:
    # The client package's class, so a function may return it to a client.
    from cloudburst.shared import Concurrent
except ImportError:  # executors without the client package installed

    class Concurrent(tuple):
        """Concurrent versions of a key written under causal consistency."""

        __slots__ = ()

        def __reduce__(self):
            # Unpickles as a plain tuple where this module does not exist (the client).
            return (tuple, (tuple(self),))

try:
    # The client package's error classes, so a function catches `cloudburst.SessionError`
    # around `cb.get` as a client does around its calls.
    from cloudburst.errors import error_for
except ImportError:  # no client package (or one older than its errors module)
    # The same classes: the worker loaded the package's errors.py under this name.
    from cloudburst_errors import error_for

# (name, hash) -> callable taking (cb, *args): a function, or a class instance's `run`.
_functions = {}


def _library_error(e):
    """The client package's error for a failed library request: the link raises
    `RuntimeError(code, message)`."""
    if len(e.args) == 2:
        return error_for(*e.args)
    return error_for("internal_error", str(e))


def environment():
    return {
        "python": "%d.%d" % sys.version_info[:2],
        "version": sys.version,
        "prefix": sys.prefix,
        "executable": sys.executable,
        "cloudpickle": cloudpickle.__version__,
    }


def _loads(value):
    if value is None:
        return None
    if isinstance(value, list):
        return {pickle.loads(v) for v in value}
    if isinstance(value, tuple):
        return Concurrent(pickle.loads(v) for v in value)
    return pickle.loads(value)


def _raw(value):
    """A stored value's bytes, for `get(key, deserialize=False)`."""
    if isinstance(value, list):
        return [bytes(v) for v in value]
    if isinstance(value, tuple):
        return tuple(bytes(v) for v in value)
    return None if value is None else bytes(value)


def _spread(values, upstream):
    """The arguments with every tuple among the last `upstream` (results of upstream
    functions) spread into separate arguments, as the original Cloudburst did."""
    if not upstream:
        return values
    out = values[: len(values) - upstream]
    for v in values[len(values) - upstream :]:
        if type(v) is tuple:
            out.extend(v)
        else:
            out.append(v)
    return out


def _dumps(obj):
    try:
        return pickle.dumps(obj, protocol=5)
    except Exception:
        # lambdas, local classes, ...: what the client's cloudpickle.loads also reads.
        return cloudpickle.dumps(obj, protocol=5)


def _encode(obj):
    if isinstance(obj, (set, frozenset)):
        return [_dumps(v) for v in obj]
    return _dumps(obj)


class Cloudburst:
    """The user library: the first argument of every function.

    A function runs *at least once* per call: when an executor dies under a call (or its
    worker crashes), the call runs again, every function of it. ``call_id`` (the id the
    client's future has) and ``attempt`` (0 on the first run, n on the n-th re-run) let a
    function with side effects make them idempotent, e.g. by writing under a key derived
    from ``call_id``."""

    __slots__ = ("_link", "call_id", "attempt")

    def __init__(self, link, call_id=0, attempt=0):
        self._link = link
        self.call_id = call_id
        self.attempt = attempt

    def get(self, key, deserialize=True):
        """One key -> its value or None; a list of keys -> a dict {key: value or None}, as
        in the original Cloudburst. Under causal consistency a key with concurrent versions
        reads as a `Concurrent` tuple of them. `deserialize=False` returns the stored bytes
        (the pickle; a set's or concurrent versions' pickles as a list or tuple)."""
        load = _loads if deserialize else _raw
        try:
            if isinstance(key, (list, tuple)):
                values = self._link.get([str(k) for k in key])
                return {k: load(v) for k, v in zip(key, values)}
            return load(self._link.get([str(key)])[0])
        except RuntimeError as e:
            raise _library_error(e) from None

    def put(self, key, value):
        """Store a value (a set is stored as a set lattice)."""
        try:
            self._link.put(str(key), _encode(value))
        except RuntimeError as e:
            raise _library_error(e) from None

    def delete(self, key):
        """Delete a key: reads answer None until it is written again."""
        try:
            self._link.delete(str(key))
        except RuntimeError as e:
            raise _library_error(e) from None

    def getid(self):
        """This executor's address, for others to `send` to."""
        return self._link.getid()

    def send(self, dest, message):
        """Send any picklable object to the running function whose `getid()` is `dest`;
        it arrives as sent (bytes stay bytes)."""
        if not isinstance(dest, str):
            raise TypeError("send(dest, message): dest is a str returned by getid(), not %s"
                            % type(dest).__name__)
        payload = _dumps(message)
        try:
            self._link.send(dest, payload)
        except RuntimeError as e:
            raise _library_error(e) from None

    def recv(self):
        """Messages waiting for this function, without blocking: a list of
        (sender_id, message), [] if none."""
        return [(sender, pickle.loads(payload)) for sender, payload in self._link.recv()]


def _missing_module(e):
    """For an import that failed on the executors: which module, and how to add it."""
    module = getattr(e, "name", None) or "?"
    return (
        "%s: module %r is not installed in the executors' Python (%s). Install it there "
        "(%s -m pip install %s), or start the executors on a Python environment that has "
        "it: `cloudburst local --python PATH` (config: executor.python)"
        % (e, module, sys.prefix, sys.executable, module.split(".")[0])
    )


def _exception(e):
    tb = e.__traceback__
    while tb is not None and tb.tb_frame.f_globals is globals():
        tb = tb.tb_next  # the user's frames only, not this module's
    text = "".join(traceback.format_exception(type(e), e, tb))
    message = _missing_module(e) if isinstance(e, ModuleNotFoundError) else str(e)
    return ("exc", type(e).__qualname__, message, text, False)


def _load(name, hash_, kind, body, cb):
    """Returns the callable, or an error tuple."""
    if body is None:
        return ("pickle", "function %r is not loaded in this worker" % name, False)
    try:
        obj = cloudpickle.loads(body)
    except MemoryError:
        raise
    except ModuleNotFoundError as e:
        return ("pickle", "cannot unpickle function %r: %s" % (name, _missing_module(e)), False)
    except BaseException as e:
        return ("pickle", "cannot unpickle function %r: %s: %s" % (name, type(e).__name__, e), False)
    if kind == "class":
        try:
            cls, init_args = obj
            init_args = tuple(init_args)
        except Exception:
            return ("pickle", "class function %r is not a (Class, init_args) pair" % name, False)
        try:
            fn = cls(cb, *init_args).run
        except MemoryError:
            raise
        except BaseException as e:
            return _exception(e)
    else:
        fn = obj
    if not callable(fn):
        return ("pickle", "function %r unpickled to a non-callable %s" % (name, type(fn).__name__), False)
    _forget(name)
    _functions[(name, hash_)] = fn
    return fn


def _forget(name):
    """Drop the versions of ``name`` loaded before (it was registered again): whatever they
    hold (a model, a closure's data) is freed, not kept for every re-registration."""
    old = [key for key in _functions if key[0] == name]
    for key in old:
        del _functions[key]
    if old:
        gc.collect()  # functions and their globals refer to each other


def run(name, hash_, kind, body, args, upstream, link, call_id=0, attempt=0):
    """Run one call; the last `upstream` of `args` are upstream results (tuples among them
    are spread). Returns ("ok", bytes, loaded) or ("exc", type, message, traceback, loaded)
    or ("pickle", message, loaded), or ("memory", message, loaded) when the call ran out of
    the worker's memory limit."""
    try:
        return _run(name, hash_, kind, body, args, upstream, link, call_id, attempt)
    except MemoryError:
        # Raised anywhere: unpickling, the function, pickling the result. The worker's
        # address space is limited (executor.worker_memory_bytes); it is replaced after.
        return ("memory", "the call ran out of the worker's memory limit", False)


def _run(name, hash_, kind, body, args, upstream, link, call_id, attempt):
    cb = Cloudburst(link, call_id, attempt)
    fn = _functions.get((name, hash_))
    if fn is None:
        fn = _load(name, hash_, kind, body, cb)
        if isinstance(fn, tuple):
            return fn
    try:
        values = _spread([_loads(a) for a in args], upstream)
    except MemoryError:
        raise
    except ModuleNotFoundError as e:
        return ("pickle", "cannot unpickle an argument: %s" % _missing_module(e), True)
    except BaseException as e:
        return ("pickle", "cannot unpickle an argument: %s: %s" % (type(e).__name__, e), True)
    try:
        result = fn(cb, *values)
    except MemoryError:
        raise
    except BaseException as e:
        out = _exception(e)
        return out[:4] + (True,)
    try:
        return ("ok", _dumps(result), True)
    except MemoryError:
        raise
    except BaseException as e:
        return ("pickle", "cannot pickle the result: %s: %s" % (type(e).__name__, e), True)
