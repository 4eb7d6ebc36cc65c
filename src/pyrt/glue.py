"""Python side of a Cloudburst worker (embedded by src/pyrt/interp.rs).

Unpickles functions (cached per process by (name, hash)), unpickles arguments, calls the
function with the user-library object, formats exceptions and pickles the result. The
user-library object forwards to a Rust `link` whose methods release the GIL while they wait
on the supervisor; a failed request raises the client package's error class for its code
(`cloudburst.errors`, the same classes the client raises).

Values cross the boundary as: None, bytes (one encoded value), list[bytes] (a set, one
encoded value per element) or tuple[bytes] (concurrent versions of a causal key, read
only). A value is encoded as the client protocol carries it (docs/protocol.md): native
MessagePack for None, bool, int, float, str, bytes, list and dict, and anything else (a
tuple, a set inside a list, an object) pickled inside MessagePack extension type 1. Values
stored by protocol 1 are plain pickles and still read. Messages between functions
(`send`/`recv`) are pickled objects, so any picklable value arrives as it was sent.
"""

import gc
import pickle
import sys
import threading
import traceback

import cloudpickle
import msgpack

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

#: Characters of one call's output kept (stdout and stderr together); the rest is cut. The
#: supervisor bounds the bytes again; the process's own streams get every line.
MAX_OUTPUT_CHARS = 64 * 1024


class _Capture:
    """What the current call wrote to sys.stdout and sys.stderr, bounded."""

    def __init__(self):
        self.parts = ([], [])
        self.size = 0
        self.truncated = False

    def add(self, which, text):
        if not isinstance(text, str) or not text:
            return
        room = MAX_OUTPUT_CHARS - self.size
        if room <= 0:
            self.truncated = True
            return
        if len(text) > room:
            text = text[:room]
            self.truncated = True
        self.parts[which].append(text)
        self.size += len(text)

    def take(self):
        """(stdout, stderr, truncated) of the call that ended, or None if it wrote nothing;
        starts afresh for the next call."""
        if not self.size and not self.truncated:
            return None  # the common case: nothing to hand over, nothing to reset
        out = ("".join(self.parts[0]), "".join(self.parts[1]), self.truncated)
        self.__init__()
        return out


class _Tee:
    """A text stream that writes through to the process's stream (so the executor's log
    keeps every line) and into the call's capture."""

    def __init__(self, stream, capture, which):
        self._stream = stream
        self._capture = capture
        self._which = which

    def write(self, text):
        n = self._stream.write(text)
        self._capture.add(self._which, text)
        return n

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def __getattr__(self, name):
        return getattr(self._stream, name)


_capture = _Capture()


def install_capture():
    """Route sys.stdout and sys.stderr through the capture (once, at worker start)."""
    if not isinstance(sys.stdout, _Tee):
        sys.stdout = _Tee(sys.stdout, _capture, 0)
        sys.stderr = _Tee(sys.stderr, _capture, 1)


def take_output():
    return _capture.take()


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


#: The MessagePack extension type of a pickled value.
PICKLE_EXT = 1

#: How deep lists and dicts may nest in a value the gateway accepts; a value nested
#: deeper is pickled whole.
MAX_DEPTH = 512


def _deeper(value, limit):
    """Whether `value` nests more than `limit` lists and dicts (a loop, not any(), to stay
    within Python's recursion limit)."""
    if type(value) is list:
        items = value
    elif type(value) is dict:
        items = value.values()
    else:
        return False
    if limit == 0:
        return True
    for item in items:
        if _deeper(item, limit - 1):
            return True
    return False


def _pickle_ext(obj):
    """msgpack's `default`: what is not a plain value travels as a pickle."""
    return msgpack.ExtType(PICKLE_EXT, _dumps(obj))


def _ext(code, data):
    if code == PICKLE_EXT:
        return pickle.loads(data)
    return msgpack.ExtType(code, data)


_packers = threading.local()


def _packer():
    """This thread's Packer: making one per value (as `msgpack.packb` does) costs more than
    packing a small value. One per thread, as `default` may release the GIL mid-value; a
    Packer empties its buffer when packing fails."""
    packer = getattr(_packers, "packer", None)
    if packer is None:
        packer = msgpack.Packer(default=_pickle_ext, strict_types=True, use_bin_type=True)
        _packers.packer = packer
    return packer


def _pack(obj):
    """One value as stored and carried: plain values as themselves (exact types only, so a
    tuple or a dict subclass is pickled and reads back as itself)."""
    try:
        packed = _packer().pack(obj)
        # a value needs at least one byte per level: only a long one can nest too deep
        if len(packed) <= MAX_DEPTH or not _deeper(obj, MAX_DEPTH):
            return packed
    except ValueError:
        pass  # nested deeper than msgpack packs, or a str that is not valid UTF-8
    return msgpack.packb(_pickle_ext(obj), use_bin_type=True)


def _unpack(data):
    if not data:
        return b""  # empty bytes stored by a protocol-1 client of the raw protocol
    # A value stored by protocol 1 is a pickle: it starts with the PROTO opcode 0x80, which
    # alone is a whole MessagePack value ({}), so a longer one cannot be MessagePack.
    if len(data) > 1 and data[0] == 0x80:
        return pickle.loads(data)
    return msgpack.unpackb(data, raw=False, strict_map_key=False, ext_hook=_ext)


def _loads(value):
    if value is None:
        return None
    if isinstance(value, list):
        return {_unpack(v) for v in value}
    if isinstance(value, tuple):
        return Concurrent(_unpack(v) for v in value)
    return _unpack(value)


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
        return [_pack(v) for v in obj]
    return _pack(obj)


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
        (the encoded value; a set's or concurrent versions' as a list or tuple)."""
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


def run(name, hash_, kind, body, args, upstream, link, call_id=0, attempt=0, warm=False):
    """Run one call; the last `upstream` of `args` are upstream results (tuples among them
    are spread). Returns ("ok", bytes, loaded) or ("exc", type, message, traceback, loaded)
    or ("pickle", message, loaded), or ("memory", message, loaded) when the call ran out of
    the worker's memory limit. With `warm`, the function is only loaded (a class function's
    ``__init__`` runs) and ("ok", None-packed, True) is returned."""
    try:
        if warm:
            return _warm(name, hash_, kind, body, link, call_id, attempt)
        return _run(name, hash_, kind, body, args, upstream, link, call_id, attempt)
    except MemoryError:
        # Raised anywhere: unpickling, the function, pickling the result. The worker's
        # address space is limited (executor.worker_memory_bytes); it is replaced after.
        return ("memory", "the call ran out of the worker's memory limit", False)


def _warm(name, hash_, kind, body, link, call_id, attempt):
    if _functions.get((name, hash_)) is None:
        fn = _load(name, hash_, kind, body, Cloudburst(link, call_id, attempt))
        if isinstance(fn, tuple):
            return fn
    return ("ok", _pack(None), True)


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
        return ("ok", _pack(result), True)
    except MemoryError:
        raise
    except BaseException as e:
        return ("pickle", "cannot pickle the result: %s: %s" % (type(e).__name__, e), True)
