#!/usr/bin/env bash
# Set up everything the build and the tests need on a fresh machine with only Rust and
# Python 3.11: the project venv (pyo3 builds against it and the executors embed it; see
# .cargo/config.toml) with the Python client and its test dependencies, and Debian's
# chromium + chromedriver for the dashboard's browser tests. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; assert sys.version_info[:2] == (3, 11)' 2>/dev/null; then
    echo "error: Python 3.11 is needed as \`$PY\` (set PYTHON=/path/to/python3.11)" >&2
    exit 2
fi
if [ ! -x .venv/bin/python3 ]; then
    echo "setup: creating .venv with $("$PY" --version)"
    "$PY" -m venv .venv
fi
# `--venv`: only the venv itself, all the Rust build needs (scripts/test.sh runs the rest
# while cargo compiles).
if [ "${1:-}" = --venv ]; then
    exit 0
fi
stamp=.venv/.cloudburst-setup
want="$(cat python/pyproject.toml scripts/requirements-dev.txt $(find python/cloudburst -name '*.py' | sort) | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "setup: installing the Python client and test dependencies into .venv"
    .venv/bin/python3 -m pip install --quiet --upgrade pip
    .venv/bin/python3 -m pip install --quiet -r scripts/requirements-dev.txt
    .venv/bin/python3 -m pip install --quiet ./python
    echo "$want" > "$stamp"
fi

# A second environment for functions, with numpy: the test of `--python` runs executors on
# it. cloudpickle is pinned to the client's version (registrations are checked against it);
# workers encode values with msgpack.
# Skipped with CLOUDBURST_SKIP_FN_ENV=1, as scripts/local.sh does: running needs none.
if [ "${CLOUDBURST_SKIP_FN_ENV:-0}" != 1 ]; then
    cp_version="$(.venv/bin/python3 -c 'import cloudpickle; print(cloudpickle.__version__)')"
    fn_want="numpy msgpack cloudpickle==$cp_version"
    if [ ! -x .venv-numpy/bin/python3 ] || [ "$(cat .venv-numpy/.cloudburst-setup 2>/dev/null)" != "$fn_want" ]; then
        echo "setup: creating .venv-numpy (numpy, $fn_want) for the executors' --python test"
        .venv/bin/python3 -m venv --clear .venv-numpy
        .venv-numpy/bin/python3 -m pip install --quiet $fn_want
        echo "$fn_want" > .venv-numpy/.cloudburst-setup
    fi
fi

# The Kubernetes manifests are validated offline against the API's schemas, which
# kubernetes-validate ships in its wheel (scripts/validate-k8s.sh); pinned, so a new
# release's schemas change nothing by surprise.
k8s_want="kubernetes-validate==1.37.0"
if [ ! -x .venv-k8s/bin/kubernetes-validate ] || [ "$(cat .venv-k8s/.cloudburst-setup 2>/dev/null)" != "$k8s_want" ]; then
    echo "setup: creating .venv-k8s ($k8s_want) for the manifests' validation"
    "$PY" -m venv --clear .venv-k8s
    .venv-k8s/bin/python3 -m pip install --quiet "$k8s_want"
    echo "$k8s_want" > .venv-k8s/.cloudburst-setup
fi

# The dashboard's browser tests drive headless Chromium through Debian's chromedriver
# (skipped with CLOUDBURST_SKIP_BROWSER=1, as scripts/local.sh does: running needs no browser).
if [ "${CLOUDBURST_SKIP_BROWSER:-0}" != 1 ] \
    && { ! command -v chromium >/dev/null 2>&1 || [ ! -x /usr/bin/chromedriver ]; }; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "setup: installing chromium and chromium-driver (dashboard browser tests)"
        apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver
    else
        echo "setup: warning: chromium / chromedriver missing and cannot apt-get install them" \
            "(not root, or not Debian): the dashboard browser tests will fail" >&2
    fi
fi
# The partition test stages partitions with nftables rules in a network namespace of its
# own (`unshare`, `ip` and `nft`).
if ! command -v nft >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "setup: installing nftables (the partition test)"
        apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q nftables
    else
        echo "setup: warning: nft missing and cannot apt-get install it (not root, or not" \
            "Debian): the partition test is skipped, saying why" >&2
    fi
fi
# The JavaScript client (clients/js) is tested with Node and its packages from npm: Node
# from Debian's packages when the machine has none.
for tool in node npm; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            pkg=$([ "$tool" = node ] && echo nodejs || echo npm)
            echo "setup: installing $pkg (the JavaScript client's tests)"
            apt-get update -q
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$pkg"
        else
            echo "setup: error: $tool is missing and cannot apt-get install it" >&2
            exit 2
        fi
    fi
done
js_want="$(cat clients/js/package.json clients/js/package-lock.json | sha256sum | cut -d' ' -f1)"
if [ "$(cat clients/js/node_modules/.cloudburst-setup 2>/dev/null)" != "$js_want" ]; then
    echo "setup: installing the JavaScript client's packages (npm ci)"
    (cd clients/js && npm ci --no-audit --no-fund --loglevel=error)
    echo "$js_want" > clients/js/node_modules/.cloudburst-setup
fi
mkdir -p test-artifacts
