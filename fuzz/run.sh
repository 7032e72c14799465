#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (FUZZ_SECONDS each, default 60), starting
# from the corpus kept in fuzz/corpus/. New inputs go to a scratch folder; a failure
# leaves its input in fuzz/artifacts/ and exits non-zero.
#
#   fuzz/run.sh [TARGET ...]
#
# cargo fuzz runs on the stable toolchain here with --sanitizer none: the targets
# check invariants (assertions), which need no sanitizer to fail.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${FUZZ_SECONDS:-60}
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz@0.13.2
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(key_header json_payload order_validation fix_frames)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for target in "${targets[@]}"; do
  mkdir -p "$scratch/$target"
  echo "== fuzz $target for ${seconds}s"
  log="$scratch/$target.log"
  if ! cargo fuzz run --sanitizer none "$target" "$scratch/$target" "corpus/$target" -- \
    -max_total_time="$seconds" >"$log" 2>&1; then
    tail -40 "$log"
    echo "fuzz target $target failed; its input is in fuzz/artifacts/$target/" >&2
    exit 1
  fi
  grep -E "^(INFO: seed corpus|Done)" "$log"
done
