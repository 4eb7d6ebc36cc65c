#!/usr/bin/env bash
# Run every test, Rust, Python and JavaScript, from a fresh checkout: set-up, format and
# lint checks, cargo tests (unit + integration with real processes on 127.0.0.1), pytest,
# then the JavaScript client's tests.
# The dashboard's browser tests save screenshots under test-artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."

# The Rust build needs only the venv pyo3 builds against; the rest of the set-up (pip
# installs, the functions' and the manifests' venvs, npm and Debian packages: mostly
# downloads) runs meanwhile, its output kept until it is waited for, before the first step
# that needs it.
scripts/setup.sh --venv
mkdir -p target
scripts/setup.sh > target/setup.log 2>&1 &
setup_pid=$!
# A failed step ends the run: not left running behind it.
trap 'kill "$setup_pid" 2>/dev/null || true' EXIT
wait_for_setup() {
    local status=0
    wait "$setup_pid" || status=$?
    trap - EXIT
    cat target/setup.log
    if [ "$status" != 0 ]; then
        echo "error: scripts/setup.sh failed (exit $status)" >&2
        exit "$status"
    fi
}
# A CI machine builds once from nothing: incremental compilation would only spend time and
# disk writing caches that nobody reuses.
if [ "${CI:-}" = true ]; then
    export CARGO_INCREMENTAL=0
fi
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --all-targets -- -D warnings
echo "== cargo build"
cargo build --bins
wait_for_setup
echo "== Kubernetes manifests (strict schema validation, offline; the nodes load their configs)"
CLOUDBURST_BIN="$PWD/target/debug/cloudburst" scripts/validate-k8s.sh
echo "== cargo test"
cargo test --all-targets
echo "== mypy (the Python client's type hints)"
.venv/bin/python3 -m mypy --config-file python/pyproject.toml python/cloudburst
echo "== pytest"
# The pytest fixture starts `cloudburst local` from this binary (built above).
CLOUDBURST_BIN="$PWD/target/debug/cloudburst" .venv/bin/python3 -m pytest python/tests -q
echo "== node --test (the JavaScript client against cloudburst local)"
(cd clients/js && CLOUDBURST_BIN="$PWD/../../target/debug/cloudburst" npm test)
