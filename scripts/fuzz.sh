#!/usr/bin/env bash
# Coverage-guided fuzzing of the decoders of outside input (fuzz/fuzz_targets/) with
# libFuzzer, on the stable toolchain: libfuzzer-sys links libFuzzer, and the coverage
# instrumentation cargo-fuzz would add is passed here as plain -C flags (no nightly, no
# RUSTC_BOOTSTRAP, no sanitizer runtime: safe Rust needs no AddressSanitizer to turn a
# memory error into a crash; a panic or a failed assertion is the crash).
#
#   scripts/fuzz.sh SECONDS [TARGET...]        each target for SECONDS
#   scripts/fuzz.sh -runs=N [TARGET...]        each target for N inputs
#
# New interesting inputs go to fuzz/work/<target>/ (not committed); the committed seeds are
# fuzz/corpus/<target>/ (recorded traffic: CLOUDBURST_RECORD_FRAMES) and fuzz/regressions/
# <target>/ (every crash found, replayed by tests/it/fuzz_corpus.rs). A crash is written to
# fuzz/artifacts/<target>/ and stops the run with exit code 1.
set -euo pipefail
cd "$(dirname "$0")/.."
limit=${1:?usage: scripts/fuzz.sh SECONDS|-runs=N [TARGET...]}
shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(client_request peer_frame worker_frame lattice_merge)
case "$limit" in
  -runs=*) budget=("$limit") ;;
  *) budget=("-max_total_time=$limit") ;;
esac
# The instrumentation cargo-fuzz passes (inline 8-bit counters, the PC table for coverage
# reports, comparison tracing so the fuzzer learns magic values), with debug assertions
# and overflow checks on. --target keeps these flags off build scripts and proc macros.
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
triple=$(rustc -vV | sed -n 's/^host: //p')
cargo build --release --manifest-path fuzz/Cargo.toml --target "$triple" \
  --target-dir fuzz/target --bins
for t in "${targets[@]}"; do
  mkdir -p "fuzz/work/$t" "fuzz/corpus/$t" "fuzz/regressions/$t" "fuzz/artifacts/$t"
  echo "== $t"
  # -max_len: the frames that matter are small; -rss_limit_mb bounds what one input may
  # make a decoder allocate; -timeout: a decoder stuck on one input is a crash too.
  "fuzz/target/$triple/release/$t" "${budget[@]}" -max_len=65536 -rss_limit_mb=1024 \
    -timeout=10 -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$t/" \
    "fuzz/work/$t" "fuzz/corpus/$t" "fuzz/regressions/$t"
done
