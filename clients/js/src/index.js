// A minimal client for Cloudburst's websocket protocol, version 2 (docs/protocol.md in the
// repository): put/get values, list, call Python-registered functions and DAGs, await
// futures, cancel calls, and errors with their stable codes. Functions are registered from Python.
//
// Values: null, booleans, numbers, strings, Uint8Array, arrays and plain objects travel as
// native MessagePack and reach Python as None, bool, int/float, str, bytes, list and dict.
// A JS Set is put as a Python set. Integers beyond +-(2^53 - 1) arrive as BigInt. Python
// objects that are none of these (a tuple, a class instance) arrive as a `Pickle`, which
// can be put or passed back unchanged.

import WebSocket from "ws";
import { Decoder, Encoder, ExtensionCodec } from "@msgpack/msgpack";
import { readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";

export const PROTOCOL_VERSION = 2;
/** The MessagePack extension type of a Python pickle. */
export const PICKLE_EXT = 1;
export const CLIENT_NAME = "cloudburst-js/0.1.0";
/** Largest message accepted from the server (a 64 MiB value plus framing fits). */
export const MAX_MESSAGE_BYTES = 256 * 1024 * 1024;
/** How long `connect` waits for the websocket and the server's hello. */
export const CONNECT_TIMEOUT_MS = 10_000;

/** Codes for which sending the same request again later may succeed (docs/protocol.md). */
export const RETRYABLE = new Set([
  "storage_error", "unavailable", "timeout", "no_executors", "overloaded", "shut_down",
  "stale_function", "session_expired", "executor_lost", "scheduler_lost",
  "connection_failed", "connection_closed",
]);

/** A failed request: `code` is the protocol's error code. */
export class CloudburstError extends Error {
  constructor(code, message, exceptionType = null, traceback = null) {
    super(`${code}: ${message}`);
    this.name = "CloudburstError";
    this.code = code;
    this.exceptionType = exceptionType;
    this.traceback = traceback;
    this.retryable = RETRYABLE.has(code);
  }
}

/** A Python object that has no JavaScript form: its pickle, kept as bytes. */
export class Pickle {
  constructor(data) {
    this.data = data;
  }
}

/** A call argument naming a KVS key, resolved by the executor right before the call. */
export class Ref {
  constructor(key) {
    this.key = key;
  }
}

/** Concurrent versions of a key written by causal calls (read only). */
export class Concurrent {
  constructor(versions) {
    this.versions = versions;
  }
}

const extensions = new ExtensionCodec();
extensions.register({
  type: PICKLE_EXT,
  encode: (v) => (v instanceof Pickle ? v.data : null),
  decode: (data) => new Pickle(data.slice()),
});
const encoder = new Encoder({ extensionCodec: extensions, useBigInt64: true });
const decoder = new Decoder({ extensionCodec: extensions, useBigInt64: true });

const SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** BigInts that a number holds exactly become numbers (64-bit ints decode as BigInt). */
function numbers(v) {
  if (typeof v === "bigint") return v >= -SAFE && v <= SAFE ? Number(v) : v;
  if (Array.isArray(v)) return v.map(numbers);
  if (v !== null && typeof v === "object" && Object.getPrototypeOf(v) === Object.prototype) {
    for (const k of Object.keys(v)) v[k] = numbers(v[k]);
  }
  return v;
}

const U32 = 2 ** 32;
const I32 = -(2 ** 31);

/** Integers a number holds beyond 32 bits become BigInt, which the encoder writes as 64-bit
 * integers (it writes such numbers as floats, and Python would read a float). */
function wide(v) {
  if (typeof v === "number") return Number.isSafeInteger(v) && (v >= U32 || v < I32) ? BigInt(v) : v;
  if (Array.isArray(v)) return v.map(wide);
  if (v !== null && typeof v === "object" && Object.getPrototypeOf(v) === Object.prototype) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, wide(x)]));
  }
  return v;
}

/** A value as the protocol carries it: `{"set": [...]}` for a Set, else `{"value": v}`. */
export function packValue(v) {
  return v instanceof Set ? { set: [...v] } : { value: v };
}

/** The JavaScript value of a wire value (`null` stays `null`). */
export function unpackValue(wire) {
  if (wire === null || wire === undefined) return null;
  if ("set" in wire) return new Set(wire.set);
  if ("concurrent" in wire) return new Concurrent(wire.concurrent);
  return wire.value;
}

function packArgs(args) {
  return args.map((a) => (a instanceof Ref ? { ref: a.key } : { value: a }));
}

/** A call accepted as a future: `get()` sends one `await` and resolves to the result. */
export class Future {
  constructor(conn, call, key) {
    this.conn = conn;
    this.call = call;
    this.key = key;
  }

  async get({ timeoutMs } = {}) {
    const fields = { call: this.call, key: this.key };
    if (timeoutMs !== undefined) fields.timeout_ms = timeoutMs;
    return unpackValue(await this.conn.request("await", fields));
  }

  /** Stop the call: `true` if it was stopped (its awaits then fail with `cancelled`),
   * `false` if it had ended already. */
  cancel() {
    return this.conn.cancel(this.call);
  }
}

/** One websocket to a gateway. Open it with `connect`. */
export class Connection {
  constructor(ws) {
    this.ws = ws;
    this.pending = new Map();
    this.nextId = 1;
    this.closed = null;
    this.maxMessageBytes = 80 * 1024 * 1024;
    this.server = null;
    ws.on("message", (data, isBinary) => this.#receive(data, isBinary));
    ws.on("close", (code, reason) => {
      const why = reason.length ? `: ${reason}` : "";
      this.#failAll(new CloudburstError("connection_closed", `closed with ${code}${why}`));
    });
    ws.on("error", (e) => this.#failAll(new CloudburstError("connection_closed", e.message)));
  }

  /** Send one request; resolves to its `ok` result, rejects with a CloudburstError. */
  request(op, fields = {}) {
    if (this.closed) return Promise.reject(this.closed);
    const id = this.nextId++;
    let frame;
    try {
      frame = encoder.encode(wide({ v: PROTOCOL_VERSION, id, op, ...fields }));
    } catch (e) {
      return Promise.reject(new CloudburstError("invalid_request", `cannot encode: ${e.message}`));
    }
    if (frame.byteLength > this.maxMessageBytes) {
      const why = `${op} request of ${frame.byteLength} bytes is over the server's limit`;
      return Promise.reject(new CloudburstError("message_too_large", why));
    }
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.ws.send(frame, (err) => {
        if (err) this.#settle(id, new CloudburstError("connection_closed", err.message));
      });
    });
  }

  ping() {
    return this.request("ping");
  }

  async put(key, value) {
    await this.request("put_object", { key, value: packValue(value) });
  }

  async get(key) {
    return unpackValue(await this.request("get_object", { key }));
  }

  /** Delete a key: reads answer null until a later write. */
  async delete(key) {
    await this.request("delete_object", { key });
  }

  /** Names of registered functions (`what` = "functions") or DAGs ("dags"). */
  list(what = "functions", prefix = undefined) {
    return this.request("list", prefix === undefined ? { what } : { what, prefix });
  }

  async registerDag(name, functions, connections) {
    await this.request("register_dag", { name, functions, connections });
  }

  async deleteDag(name) {
    await this.request("delete_dag", { name });
  }

  /** Call one function with positional `args` (values or `Ref`s). With `direct: true` the
   * result itself; otherwise a `Future`. Options: consistency, outputKey, and the call
   * options timeoutMs (the call's deadline), retries (re-runs after an executor or worker
   * died) and retryErrors (the function's own errors re-run it too). */
  callFunction(name, args = [], options = {}) {
    return this.#call("call_function", { function: name, args: packArgs(args) }, options);
  }

  /** Call a DAG; `args` maps source function names to their argument arrays. */
  callDag(name, args = {}, options = {}) {
    const packed = Object.fromEntries(Object.entries(args).map(([f, a]) => [f, packArgs(a)]));
    return this.#call("call_dag", { dag: name, args: packed }, options);
  }

  /** Stop a running call by its id (a `Future`'s `call`): `true` if it was stopped,
   * `false` if it had ended already; `unknown_call` if this gateway did not make it. */
  cancel(call) {
    return this.request("cancel", { call });
  }

  async #call(op, fields, options = {}) {
    const { direct = false, consistency, outputKey, timeoutMs, retries, retryErrors } = options;
    const all = { ...fields, direct };
    if (consistency !== undefined) all.consistency = consistency;
    if (outputKey !== undefined) all.output_key = outputKey;
    if (timeoutMs !== undefined) all.timeout_ms = timeoutMs;
    if (retries !== undefined) all.retries = retries;
    if (retryErrors !== undefined) all.retry_errors = retryErrors;
    const ok = await this.request(op, all);
    return direct ? unpackValue(ok) : new Future(this, ok.call, ok.key);
  }

  /** Close the websocket; requests still waiting fail with `connection_closed`. */
  close() {
    this.#failAll(new CloudburstError("connection_closed", "closed by the client"));
    return new Promise((resolve) => {
      if (this.ws.readyState === WebSocket.CLOSED) return resolve();
      this.ws.once("close", () => resolve());
      this.ws.close(1000);
    });
  }

  #receive(data, isBinary) {
    if (!isBinary) return;
    let msg;
    try {
      // A plain Uint8Array view, so that bin values decode as Uint8Array, not Buffer.
      msg = decoder.decode(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    } catch {
      return; // an undecodable frame cannot be matched to a request
    }
    if (msg === null || typeof msg !== "object" || msg.id === undefined || msg.id === null) {
      return;
    }
    const id = numbers(msg.id);
    if (msg.err !== undefined) {
      const e = msg.err;
      this.#settle(id, new CloudburstError(e.code, e.message, e.exception_type, e.traceback));
    } else {
      this.#settle(id, null, numbers(msg.ok));
    }
  }

  #settle(id, err, ok) {
    const waiter = this.pending.get(id);
    if (!waiter) return;
    this.pending.delete(id);
    if (err) waiter.reject(err);
    else waiter.resolve(ok);
  }

  #failAll(err) {
    if (!this.closed) this.closed = err;
    const waiting = [...this.pending.values()];
    this.pending.clear();
    for (const w of waiting) w.reject(err);
  }
}

/** Environment variable holding the client token (as the server reads it). */
export const TOKEN_ENV = "CLOUDBURST_TOKEN";
/** Longest token file read: a token is one line. */
const MAX_TOKEN_FILE_BYTES = 4096;

/** The token to present to `url`, as the Python client finds it: the `token` option, else
 * $CLOUDBURST_TOKEN, else for a gateway on this machine (a loopback host) the token file
 * that `cloudburst local` writes: $XDG_CONFIG_HOME/cloudburst/token, else
 * ~/.config/cloudburst/token. `undefined` when there is none. */
export function resolveToken(url, token) {
  if (token) return token;
  if (process.env[TOKEN_ENV]) return process.env[TOKEN_ENV];
  let host;
  try {
    host = new URL(url).hostname.replace(/^\[|\]$/g, "");
  } catch {
    return undefined;
  }
  if (!(host === "localhost" || host === "::1" || host.startsWith("127."))) return undefined;
  const base = process.env.XDG_CONFIG_HOME || path.join(os.homedir(), ".config");
  try {
    const text = readFileSync(path.join(base, "cloudburst", "token"), "utf8");
    return text.slice(0, MAX_TOKEN_FILE_BYTES).trim() || undefined;
  } catch {
    return undefined; // no file: the gateway may run without a token
  }
}

/** Environment variable naming the PEM file of the authority that signed a `wss://`
 * gateway's certificate (a test cluster's `ca.pem` from `cloudburst cert`). */
export const CA_FILE_ENV = "CLOUDBURST_CA_FILE";

/** The TLS options of `url`: for `wss://`, the `caFile` option (else $CLOUDBURST_CA_FILE)
 * as the only trusted authority; without either, Node's trusted authorities. */
function tlsOptions(url, caFile) {
  const file = caFile ?? (process.env[CA_FILE_ENV] || undefined);
  if (!url.startsWith("wss://") || file === undefined) return {};
  try {
    return { ca: readFileSync(file) };
  } catch (e) {
    throw new CloudburstError("invalid_request", `CA file ${file}: ${e.message}`);
  }
}

/** Open a connection and say hello (learning the server's message limit). Options:
 * `token` (sent as `Authorization: Bearer`; found by `resolveToken` when not given),
 * `caFile` (for `wss://`: see `tlsOptions`), `timeoutMs`. */
export async function connect(url, { token, caFile, timeoutMs = CONNECT_TIMEOUT_MS } = {}) {
  const found = resolveToken(url, token);
  const headers = found ? { Authorization: `Bearer ${found}` } : {};
  const ws = new WebSocket(url, {
    ...tlsOptions(url, caFile),
    headers,
    maxPayload: MAX_MESSAGE_BYTES,
    perMessageDeflate: false,
    handshakeTimeout: timeoutMs,
  });
  await new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("unexpected-response", (_req, res) => {
      const code = res.statusCode === 401 ? "unauthorized" : "connection_failed";
      reject(new CloudburstError(code, `${url} answered HTTP ${res.statusCode}`));
    });
    ws.once("error", (e) => reject(new CloudburstError("connection_failed", `${url}: ${e.message}`)));
  });
  const conn = new Connection(ws);
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(
      () => reject(new CloudburstError("connection_failed", `${url} did not answer hello`)),
      timeoutMs,
    );
  });
  try {
    const hello = await Promise.race([conn.request("hello", { client: CLIENT_NAME }), late]);
    conn.maxMessageBytes = hello.max_message_bytes;
    conn.server = hello.server;
  } catch (e) {
    await conn.close();
    throw e;
  } finally {
    clearTimeout(timer);
  }
  return conn;
}
