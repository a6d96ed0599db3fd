#!/usr/bin/env bash
# Builds the fuzz targets with libFuzzer on the *stable* toolchain and runs each briefly.
#
# cargo-fuzz needs nightly for its sanitizers; the SanitizerCoverage instrumentation libFuzzer
# needs is reachable on stable through `-Cpasses=sancov-module` and LLVM options, which is all
# this does. `--target` keeps the flags off build scripts and proc-macros. libfuzzer-sys
# compiles libFuzzer itself with the system C++ compiler.
#
# Usage: fuzz/run-smoke.sh [seconds per target, default 20]
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-20}"
host="$(rustc -vV | sed -n 's/^host: //p')"
export RUSTFLAGS="-Cpasses=sancov-module \
 -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
 -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares \
 --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
target_dir="${CARGO_TARGET_DIR:-target}"
cargo build --release --target "$host" --bins
for t in hash_parse_verify import_record import_lines usernames totp_input sealed_steps; do
  mkdir -p "corpus/$t"
  cp -n seeds/"$t"/* "corpus/$t/" 2>/dev/null || true
  echo "== fuzz $t (${secs}s)"
  "$target_dir/$host/release/$t" -max_total_time="$secs" -max_len=4096 -timeout=10 \
    -print_final_stats=1 "corpus/$t"
done
