"""Headless-Chromium check of the Cloudburst dashboard (selenium + Debian's chromedriver).

Used by tests/it/dashboard_node.rs (as a script) and python/tests/test_dashboard.py (as a
module). It opens the page once, prints ``page ready`` when the first live snapshot has
been rendered, then waits -- without reloading -- until every expectation holds, checks the
page was never reloaded, and saves a screenshot.

    python3 dashboard_browser.py --url http://127.0.0.1:8080/ [--token T]
        [--expect-text TEXT]... [--expect-function NAME[=MIN_CALLS]]...
        [--expect-kvs-keys N] [--screenshot PATH] [--timeout SECONDS]
"""

import argparse
import os
import shutil
import sys
import tempfile
import time
import urllib.parse

from waiting import NotYet, wait_until

CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM = "/usr/bin/chromium"
# Flags for a sandbox-less, offline machine: no GPU, no network side-channels, fresh profile.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1500",
]
# Seconds between two reads of the page (each runs a script in the browser).
PAGE_POLL_SECONDS = 0.2

# Read the page: every table's text plus per-row data attributes, and the reload marker.
READ_PAGE_JS = """
const rows = (id) => [...document.querySelectorAll(`#${id} tbody tr`)];
return {
  text: document.body.innerText,
  status: document.getElementById('status').textContent,
  marker: window.__cloudburstMarker ?? null,
  functions: rows('functions').concat(rows('dags'))
    .filter((tr) => tr.dataset.name !== undefined)
    .map((tr) => [tr.dataset.name, Number(tr.dataset.calls)]),
  kvsKeys: rows('shards').reduce((a, tr) => a + Number(tr.dataset.keys || 0), 0),
  executors: rows('executors').filter((tr) => tr.dataset.node !== undefined)
    .map((tr) => [tr.dataset.node, tr.dataset.down === 'true']),
  kvsNodes: rows('kvs-nodes').filter((tr) => tr.dataset.node !== undefined)
    .map((tr) => ({node: tr.dataset.node, bytes: Number(tr.dataset.bytes),
                   budget: Number(tr.dataset.budget), requests: Number(tr.dataset.requests),
                   text: tr.innerText})),
  hotKeys: rows('hot-keys').filter((tr) => tr.dataset.key !== undefined)
    .map((tr) => ({key: tr.dataset.key, replicas: Number(tr.dataset.replicas),
                   text: tr.innerText})),
  kvsDecisions: rows('kvs-decisions').filter((tr) => tr.dataset.action !== undefined)
    .map((tr) => [tr.dataset.action, tr.dataset.reason]),
  kvsLegend: document.querySelector('.legend[data-chart="kvsnodes"]').textContent,
};
"""


def browser(flags=()):
    """A headless Chromium driven through Debian's chromedriver (no driver download), with
    `flags` added to its command line."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    for path in (CHROMEDRIVER, CHROMIUM):
        if not os.path.exists(path):
            raise RuntimeError(f"{path} is missing: run scripts/setup.sh (installs chromium)")
    profile = tempfile.mkdtemp(prefix="cloudburst-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS + list(flags) + [f"--user-data-dir={profile}"]:
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    driver._cloudburst_profile = profile
    return driver


def close(driver):
    try:
        driver.quit()
    finally:
        shutil.rmtree(getattr(driver, "_cloudburst_profile", ""), ignore_errors=True)


def page_url(url, token):
    return f"{url}?{urllib.parse.urlencode({'token': token})}" if token else url


def unmet(state, texts, functions, kvs_keys, executors=None):
    """What the page does not show yet (empty when everything holds)."""
    missing = [f"text {t!r}" for t in texts if t not in state["text"]]
    up = sorted(node for node, down in state["executors"] if not down)
    if executors is not None and up != sorted(executors):
        missing.append(f"executors {sorted(executors)} up (shows {up})")
    calls = dict(state["functions"])
    for name, least in functions:
        if calls.get(name, 0) < least:
            missing.append(f"{name} with >= {least} calls (has {calls.get(name)})")
    if kvs_keys is not None and state["kvsKeys"] != kvs_keys:
        missing.append(f"{kvs_keys} KVS keys (shows {state['kvsKeys']})")
    return missing


def page_shows(driver, what, deadline, check):
    """Wait until `check(state)` finds nothing missing on the page; the page's state."""

    def read():
        state = driver.execute_script(READ_PAGE_JS)
        missing = check(state)
        if missing:
            raise NotYet(f"still missing {missing}; status {state['status']!r}")
        return state

    remaining = max(0.0, deadline - time.monotonic())
    return wait_until(read, what, remaining, interval=PAGE_POLL_SECONDS)


def check_dashboard(url, token=None, texts=(), functions=(), kvs_keys=None,
                    screenshot=None, timeout=15.0, on_ready=None, executors=None, flags=(),
                    check=None):
    """Open the page and wait until it shows everything asked (`executors`: the node ids
    of exactly the executors shown up; `check(state)`: what else is missing, a list);
    returns the final state. `flags`: more Chromium flags."""
    driver = browser(flags)
    try:
        deadline = time.monotonic() + timeout
        driver.get(page_url(url, token))
        page_shows(driver, "first live snapshot", deadline,
                   lambda s: [] if s["status"] == "live" else ["live status"])
        driver.execute_script("window.__cloudburstMarker = 'loaded-once';")
        print("page ready", flush=True)
        if on_ready:
            on_ready()
        state = page_shows(driver, "live update", deadline,
                           lambda s: unmet(s, texts, functions, kvs_keys, executors)
                           + (check(s) if check else []))
        if state["marker"] != "loaded-once":
            raise AssertionError("the page was reloaded; updates must arrive live")
        if screenshot:
            os.makedirs(os.path.dirname(os.path.abspath(screenshot)), exist_ok=True)
            driver.save_screenshot(screenshot)
            print(f"screenshot saved to {screenshot}", flush=True)
        return state
    finally:
        close(driver)


def parse_function(spec):
    name, _, least = spec.partition("=")
    return name, int(least or 1)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True)
    p.add_argument("--token")
    p.add_argument("--expect-text", action="append", default=[])
    p.add_argument("--expect-function", action="append", default=[], type=parse_function)
    p.add_argument("--expect-kvs-keys", type=int)
    p.add_argument("--screenshot")
    p.add_argument("--timeout", type=float, default=15.0)
    a = p.parse_args(argv)
    state = check_dashboard(a.url, a.token, a.expect_text, a.expect_function,
                            a.expect_kvs_keys, a.screenshot, a.timeout)
    print(f"ok: kvs keys {state['kvsKeys']}, calls {state['functions']}", flush=True)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # report plainly for the Rust test's panic message
        print(f"FAILED: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
