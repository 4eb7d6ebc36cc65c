#!/usr/bin/env bash
# Run every test, Rust, Python and JavaScript, from a fresh checkout: set-up, format and
# lint checks, cargo tests (unit + integration with real processes on 127.0.0.1), pytest,
# then the JavaScript client's tests.
# The dashboard's browser tests save screenshots under test-artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
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
