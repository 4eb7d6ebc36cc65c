#!/usr/bin/env bash
# Build (release) and start the whole cluster in one process: `cloudburst local`.
# Extra arguments are passed on, e.g. `scripts/local.sh --dump-config`.
set -euo pipefail
cd "$(dirname "$0")/.."
CLOUDBURST_SKIP_BROWSER=1 CLOUDBURST_SKIP_FN_ENV=1 scripts/setup.sh
cargo build --release --bin cloudburst
exec target/release/cloudburst local "$@"
