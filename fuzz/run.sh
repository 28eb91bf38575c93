#!/usr/bin/env bash
# Fuzz every target for SECS seconds each (default 60), installing cargo-fuzz if it is missing.
# New inputs go to a scratch directory, so the committed seed corpora stay small.
# Usage: fuzz/run.sh [SECS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(route_decode frame_decode message_decode group_decode ha_decode trace_check)
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
cargo +nightly fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz --locked
scratch="${FUZZ_SCRATCH:-${TMPDIR:-/tmp}/sextant-fuzz}"
for t in "${targets[@]}"; do
  mkdir -p "$scratch/$t"
  echo "== $t for ${secs}s (new inputs in $scratch/$t)"
  cargo +nightly fuzz run "$t" "$scratch/$t" "corpus/$t" -- -max_total_time="$secs" -print_final_stats=1
done
