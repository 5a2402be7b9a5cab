#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (FUZZ_SECONDS each, default 60), starting from a
# copy of its seed corpus (so the repository's seeds stay as they are); exits non-zero on the
# first crash or failed check. cargo-fuzz is installed if missing. cargo-fuzz asks for
# nightly-only compiler flags; RUSTC_BOOTSTRAP=1 lets the stable toolchain take them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
seconds=${FUZZ_SECONDS:-60}

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz"
  cargo install cargo-fuzz --version 0.13.2 --locked
fi

export RUSTC_BOOTSTRAP=1
for target in head chunked; do
  work=$(mktemp -d)
  cp corpus/"$target"/* "$work"/
  echo "fuzz: $target for ${seconds}s from $(ls "$work" | wc -l) seeds"
  if ! cargo fuzz run "$target" "$work" -- -max_total_time="$seconds" -print_final_stats=1 2>"$work.log"; then
    tail -n 60 "$work.log"
    echo "fuzz: $target FAILED; the input that failed is under $(pwd)/artifacts/$target/" >&2
    exit 1
  fi
  grep -E '^(#[0-9]+\s+DONE|stat::number_of_executed_units)' "$work.log" || true
  rm -rf "$work" "$work.log"
done
echo "fuzz: every target ran ${seconds}s without a crash"
