// A real `cloudburst local` for the tests: the binary named by $CLOUDBURST_BIN (default
// target/debug/cloudburst of this repository) on free loopback ports, ready once it prints
// its readiness line; and the repository's Python (the .venv) to act as the Python client.

import { spawn, execFile } from "node:child_process";
import { mkdtempSync } from "node:fs";
import os from "node:os";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import path from "node:path";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const READY = /^cloudburst local ready: client (\S+)$/;
/** A loaded CI machine starts the Python workers slowly. */
const READY_TIMEOUT_MS = 60_000;
/** One run of the Python side (it connects, registers or checks, and exits). */
const PYTHON_TIMEOUT_MS = 60_000;

// The tests' config directory, where `cloudburst local` keeps the client token and both
// clients find it: a temporary one, so the developer's own token file is neither read nor
// made (set before any server or client of these tests exists; children inherit it).
process.env.XDG_CONFIG_HOME = mkdtempSync(path.join(os.tmpdir(), "cloudburst-js-config-"));
delete process.env.CLOUDBURST_TOKEN;

/** The `cloudburst` binary the tests run. */
export const BIN = process.env.CLOUDBURST_BIN || path.join(ROOT, "target/debug/cloudburst");

/** Start `cloudburst local` (with `extra` arguments); resolves to { url, stop() } once it is
 * ready. */
export function startLocal(extra = []) {
  const bin = BIN;
  const args = ["local", "--ephemeral", "--listen", "127.0.0.1:0",
    "--dashboard-listen", "127.0.0.1:0", "--client-listen", "127.0.0.1:0", ...extra];
  const env = { ...process.env, NO_COLOR: "1", RUST_LOG: process.env.RUST_LOG || "warn",
    PYTHONPATH: path.join(ROOT, "python") };
  const child = spawn(bin, args, { env, stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d) => { stderr = (stderr + d).slice(-20_000); });
  const exited = new Promise((resolve) => child.once("exit", (code) => resolve(code)));
  const stop = async () => {
    if (child.exitCode === null) child.kill("SIGTERM");
    return exited;
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      stop();
      reject(new Error(`cloudburst local not ready in ${READY_TIMEOUT_MS} ms:\n${stderr}`));
    }, READY_TIMEOUT_MS);
    createInterface({ input: child.stdout }).on("line", (line) => {
      const m = READY.exec(line);
      if (m) {
        clearTimeout(timer);
        resolve({ url: m[1], stop });
      }
    });
    exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`cloudburst local exited (${code}):\n${stderr}`));
    });
  });
}

/** Run test/python_side.py with `args`; resolves to its stdout parsed as JSON. */
export function python(...args) {
  const py = process.env.CLOUDBURST_PYTHON || path.join(ROOT, ".venv/bin/python3");
  const script = path.join(ROOT, "clients/js/test/python_side.py");
  return new Promise((resolve, reject) => {
    execFile(py, [script, ...args], { timeout: PYTHON_TIMEOUT_MS, maxBuffer: 1 << 24 },
      (err, stdout, stderr) => {
        if (err) return reject(new Error(`python_side.py ${args[0]}: ${err.message}\n${stderr}`));
        try {
          resolve(JSON.parse(stdout));
        } catch (e) {
          reject(new Error(`python_side.py printed no JSON: ${stdout}\n${stderr}`));
        }
      });
  });
}
