// The JavaScript client against a real `cloudburst local`: every operation, futures and
// direct results, errors with their codes, and the round-trip matrix of plain values
// between this client and the Python client (test/python_side.py).

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { ROOT, startLocal, python } from "./cluster.js";
import { CloudburstError, Concurrent, Pickle, Ref, connect, resolveToken } from "../src/index.js";

let local;
let cb;

before(async () => {
  local = await startLocal();
  cb = await connect(local.url);
  await python("register", local.url);
});

after(async () => {
  await cb?.close();
  if (local) assert.equal(await local.stop(), 0, "cloudburst local exits 0 on SIGTERM");
});

/** Rejects with a CloudburstError whose code is `code`. */
async function failsWith(promise, code) {
  await assert.rejects(promise, (e) => {
    assert.ok(e instanceof CloudburstError, `${e}`);
    assert.equal(e.code, code, e.message);
    return true;
  });
}

describe("objects", () => {
  test("hello told the server's limit", () => {
    assert.ok(cb.maxMessageBytes > 1024 * 1024);
    assert.match(cb.server, /^cloudburst /);
  });

  test("put and get, missing keys, sets", async () => {
    assert.equal(await cb.ping(), null);
    await cb.put("obj/a", { n: 1, tags: ["x"] });
    assert.deepEqual(await cb.get("obj/a"), { n: 1, tags: ["x"] });
    assert.equal(await cb.get("obj/missing"), null);
    await cb.put("obj/set", new Set([1, 2]));
    await cb.put("obj/set", new Set([3]));
    assert.deepEqual(await cb.get("obj/set"), new Set([1, 2, 3]), "concurrent puts merge");
    await cb.delete("obj/a");
    assert.equal(await cb.get("obj/a"), null, "deleted");
  });

  test("bad requests fail with their codes", async () => {
    await failsWith(cb.put("", 1), "invalid_request");
    await failsWith(cb.put("__cloudburst/x", 1), "invalid_request");
    await failsWith(cb.put("obj/set", 1), "kind_mismatch");
    await failsWith(cb.request("fly"), "unknown_op");
  });

  test("a request over the server's limit is refused before it is sent", async () => {
    const big = new Uint8Array(cb.maxMessageBytes + 1);
    await failsWith(cb.put("obj/big", big), "message_too_large");
    assert.equal(await cb.ping(), null, "the connection stays usable");
  });
});

describe("functions and DAGs", () => {
  test("list", async () => {
    const fns = await cb.list("functions");
    for (const f of ["echo", "incr", "square", "raises"]) assert.ok(fns.includes(f), f);
    assert.deepEqual(await cb.list("functions", "squ"), ["square"]);
    assert.ok((await cb.list("dags")).includes("pipeline"));
  });

  test("direct and future calls of a function", async () => {
    assert.equal(await cb.callFunction("square", [7], { direct: true }), 49);
    const fut = await cb.callFunction("square", [8]);
    assert.ok(Number.isSafeInteger(fut.call), `call id ${fut.call} fits in 53 bits`);
    assert.equal(await fut.get({ timeoutMs: 30_000 }), 64);
  });

  test("DAG calls: direct, future, output key, references", async () => {
    assert.equal(await cb.callDag("pipeline", { incr: [1] }, { direct: true }), 4);
    const fut = await cb.callDag("pipeline", { incr: [2] });
    assert.equal(await fut.get({ timeoutMs: 30_000 }), 9);
    await cb.put("dag/in", 4);
    const named = await cb.callDag("pipeline", { incr: [new Ref("dag/in")] },
      { outputKey: "dag/out", consistency: "repeatable_read" });
    assert.equal(named.key, "dag/out");
    assert.equal(await named.get({ timeoutMs: 30_000 }), 25);
    assert.equal(await cb.get("dag/out"), 25);
  });

  test("errors of calls", async () => {
    await failsWith(cb.callFunction("nope", [1], { direct: true }), "unknown_function");
    await failsWith(cb.callDag("nope", {}, { direct: true }), "unknown_dag");
    await failsWith(cb.registerDag("cyclic", ["incr", "square"],
      [["incr", "square"], ["square", "incr"]]), "bad_dag");
    await assert.rejects(cb.callFunction("raises", [5], { direct: true }), (e) => {
      assert.equal(e.code, "function_error");
      assert.equal(e.exceptionType, "ValueError");
      assert.match(e.traceback, /bad 5/);
      assert.equal(e.retryable, false);
      return true;
    });
    const slow = await cb.callFunction("sleepy", [2]);
    await assert.rejects(slow.get({ timeoutMs: 50 }), (e) => e.code === "timeout" && e.retryable);
    assert.equal(await slow.get({ timeoutMs: 30_000 }), 2);
  });

  test("cancel: a running call stops, an ended one is not, an unknown one is refused", async () => {
    const fut = await cb.callFunction("sleepy", [30]);
    assert.equal(await fut.cancel(), true);
    for (let i = 0; i < 2; i++) await failsWith(fut.get({ timeoutMs: 30_000 }), "cancelled");
    assert.equal(await fut.cancel(), false, "it ended already");
    await failsWith(cb.cancel(0x1234), "unknown_call");
    const unknown = { call: 0x1234, key: "__cloudburst/results/call-0000000000001234" };
    await failsWith(cb.request("await", unknown), "unknown_call");
  });

  test("call options: a deadline, re-runs, and their bounds", async () => {
    await failsWith(cb.callFunction("sleepy", [30], { direct: true, timeoutMs: 300 }), "timeout");
    const fut = await cb.callFunction("first_fails", ["x"], { retries: 1, retryErrors: true });
    assert.deepEqual(await fut.get({ timeoutMs: 30_000 }), ["x", fut.call, 1]);
    await assert.rejects(cb.callDag("js-nothing", {}, { direct: true, retries: 11 }),
      (e) => e.code === "invalid_request" && /retries/.test(e.message));
    await failsWith(cb.callFunction("first_fails", ["y"], { direct: true, retries: 1 }),
      "function_error");
  });

  test("register and delete a DAG", async () => {
    await cb.registerDag("js-dag", ["square", "incr"], [["square", "incr"]]);
    assert.equal(await cb.callDag("js-dag", { square: [3] }, { direct: true }), 10);
    await cb.deleteDag("js-dag");
    await failsWith(cb.deleteDag("js-dag"), "unknown_dag");
  });
});

/** The matrix of test/python_side.py, in JavaScript. */
const MATRIX = {
  none: null,
  true: true,
  false: false,
  zero: 0,
  int: 7,
  neg: -3,
  int32: -40000,
  max_safe: Number.MAX_SAFE_INTEGER,
  i64_min: -(2n ** 63n),
  u64_max: 2n ** 64n - 1n,
  float: 1.5,
  tiny: 5e-324,
  inf: Infinity,
  str: "héllo ✓ 🚀",
  empty_str: "",
  bytes: new Uint8Array([0, 255, 128]),
  empty_bytes: new Uint8Array(),
  list: [1, "a", null, 2.5],
  empty_list: [],
  dict: { a: 1, b: [true, null] },
  empty_dict: {},
  nested: { x: { y: [new Uint8Array([122]), { w: [] }] } },
  unicode_keys: { ключ: "значение" },
};

describe("round trips between JavaScript and Python", () => {
  let fromPython;

  before(async () => {
    for (const [name, v] of Object.entries(MATRIX)) await cb.put(`js/${name}`, v);
    await cb.put("js/set", new Set([1, "a"]));
    fromPython = await python("check", local.url);
  });

  test("Python reads every value JavaScript put as the same Python value", () => {
    const bad = Object.entries(fromPython.verdicts).filter(([, v]) => v !== "ok");
    assert.deepEqual(bad, []);
    assert.equal(Object.keys(fromPython.verdicts).length, Object.keys(MATRIX).length + 1);
  });

  test("JavaScript reads every value Python put as the same JavaScript value", async () => {
    for (const [name, v] of Object.entries(MATRIX)) {
      assert.deepEqual(await cb.get(`py/${name}`), v, name);
    }
    assert.deepEqual(await cb.get("py/set"), new Set([3, "b"]));
  });

  test("arguments and results follow the same rule", async () => {
    for (const [name, v] of Object.entries(MATRIX)) {
      const seen = await cb.callFunction("pyrepr", [v], { direct: true });
      assert.equal(seen, fromPython.reprs[name], `${name} as a Python argument`);
      assert.deepEqual(await cb.callFunction("echo", [v], { direct: true }), v, `${name} echoed`);
    }
  });

  test("Python-only values arrive as pickles and go back unchanged", async () => {
    const t = await cb.get("py/tuple");
    assert.ok(t instanceof Pickle);
    assert.equal(await cb.callFunction("pyrepr", [t], { direct: true }), "(1, 'two')");
    await cb.put("js/tuple", t);
    const back = await cb.get("js/tuple");
    assert.deepEqual(back.data, t.data);
    const made = await cb.callFunction("make_tuple", [1, "two"], { direct: true });
    assert.ok(made instanceof Pickle, "a tuple result is a pickle");
  });
});

test("the protocol document's 50-line client works as written", async () => {
  const doc = readFileSync(path.join(ROOT, "docs/protocol.md"), "utf8");
  const code = /## Write a client in 50 lines[\s\S]*?```js\n([\s\S]*?)```/.exec(doc)[1];
  assert.ok(code.split("\n").length <= 50, "it is 50 lines at most");
  // Beside node_modules, so that its imports resolve.
  const file = path.join(ROOT, "clients/js/.walkthrough.mjs");
  writeFileSync(file, code);
  try {
    const { connect: connect50 } = await import(file);
    const small = await connect50(local.url, resolveToken(local.url));
    await small.put("walk/k", [1, "a"]);
    assert.deepEqual(await small.get("walk/k"), [1, "a"]);
    assert.equal(await small.call("square", [3], true), 9);
    const result = await small.call("square", [4]);
    assert.equal(await result(), 16);
    small.close();
  } finally {
    rmSync(file, { force: true });
  }
});

test("Concurrent is exported for causal reads", () => {
  assert.deepEqual(new Concurrent([1, 2]).versions, [1, 2]);
});
