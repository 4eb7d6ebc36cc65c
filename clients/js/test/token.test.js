// Which token the client presents, without a server: the option, the environment, and the
// token file of loopback gateways (as the Python client finds it).

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { TOKEN_ENV, resolveToken } from "../src/index.js";

test("token: option, then environment, then the local file for loopback URLs only", () => {
  const saved = { env: process.env[TOKEN_ENV], xdg: process.env.XDG_CONFIG_HOME };
  const dir = mkdtempSync(path.join(os.tmpdir(), "cloudburst-js-"));
  try {
    delete process.env[TOKEN_ENV];
    process.env.XDG_CONFIG_HOME = dir;
    assert.equal(resolveToken("ws://127.0.0.1:6200"), undefined, "no file yet");
    mkdirSync(path.join(dir, "cloudburst"));
    writeFileSync(path.join(dir, "cloudburst", "token"), "from-file\n");
    assert.equal(resolveToken("ws://127.0.0.1:6200"), "from-file");
    assert.equal(resolveToken("ws://localhost:1/ws"), "from-file");
    assert.equal(resolveToken("ws://[::1]:6200"), "from-file");
    assert.equal(resolveToken("ws://10.1.2.3:6200"), undefined, "not sent to other hosts");
    process.env[TOKEN_ENV] = "from-env";
    assert.equal(resolveToken("ws://10.1.2.3:6200"), "from-env");
    assert.equal(resolveToken("ws://127.0.0.1:6200", "given"), "given");
  } finally {
    if (saved.env === undefined) delete process.env[TOKEN_ENV];
    else process.env[TOKEN_ENV] = saved.env;
    if (saved.xdg === undefined) delete process.env.XDG_CONFIG_HOME;
    else process.env.XDG_CONFIG_HOME = saved.xdg;
  }
});
