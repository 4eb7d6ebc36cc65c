// wss:// against a real `cloudburst local` serving a test certificate from `cloudburst cert`:
// the client that trusts the test authority (caFile) connects; one that does not is refused.

import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { connect } from "../src/index.js";
import { BIN, startLocal } from "./cluster.js";

test("wss: with the CA file a client connects and stores; without it, a certificate error", async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "cloudburst-js-tls-"));
  execFileSync(BIN, ["cert", "--out", dir, "--hosts", "127.0.0.1"], { timeout: 30_000 });
  const local = await startLocal(["--tls-cert", path.join(dir, "cert.pem"),
    "--tls-key", path.join(dir, "key.pem")]);
  try {
    assert.match(local.url, /^wss:\/\//);
    const cb = await connect(local.url, { caFile: path.join(dir, "ca.pem") });
    try {
      await cb.put("js-tls", { n: 1 });
      assert.deepEqual(await cb.get("js-tls"), { n: 1 });
    } finally {
      await cb.close();
    }
    await assert.rejects(connect(local.url), (e) => e.code === "connection_failed"
      && /certificate/i.test(e.message));
  } finally {
    await local.stop();
  }
});
