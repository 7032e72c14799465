#!/usr/bin/env bash
# bench/ab.sh REV [ROUNDS]
# This build against the binary built from REV (in target/ab-REV, a git worktree), on
# SQLite, interleaved in one run: each round measures new orders, then replays of one
# key, with each binary in turn (the order of the two alternates between rounds), wrk
# -t1 -c32 -d10s, a fresh database per measurement. Prints one line per round and
# the medians with their ratio (this build / REV). Needs wrk.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
rev=${1:?usage: bench/ab.sh REV [ROUNDS]}
rounds=${2:-6}
dir=target/bench-ab
cargo build --release --locked -q --bin ordergate
base=target/ab-$rev
if [ ! -x "$base/target/release/ordergate" ]; then
  rm -rf "$base"; git worktree prune
  git worktree add -q --detach "$base" "$rev"
  (cd "$base" && cargo build --release --locked -q --bin ordergate)
fi
rm -rf "$dir"; mkdir -p "$dir"
addr=127.0.0.1:18185
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT

measure() { # BINARY SCRIPT: requests/s
  local db="$dir/ab.db"
  rm -f "$db"*
  RUST_LOG=warn $1 serve --listen $addr --database "sqlite://$db" 2>>"$dir/server.log" & local pid=$!
  wait_up $addr
  curl -sf -X POST "http://$addr/orders" -H 'Idempotency-Key: bench-replay' \
    -H 'Content-Type: application/json' -d '{"symbol":"AAPL","side":"buy","quantity":100}' >/dev/null
  wrk -t1 -c32 -d10s -s "bench/$2" "http://$addr/orders" | awk '/Requests\/sec/ {print $2}'
  kill $pid; wait $pid 2>/dev/null || true
}

current=./target/release/ordergate baseline=$base/target/release/ordergate
for round in $(seq "$rounds"); do
  for scenario in new-orders.lua replay.lua; do
    if [ $((round % 2)) -eq 1 ]; then
      a=$(measure $current $scenario); b=$(measure $baseline $scenario)
    else
      b=$(measure $baseline $scenario); a=$(measure $current $scenario)
    fi
    echo "$a" >>"$dir/current-$scenario"; echo "$b" >>"$dir/baseline-$scenario"
    echo "round $round ${scenario%.lua}: this build $a req/s, $rev $b req/s ($(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.2f", a / b}')×)"
  done
done
for scenario in new-orders.lua replay.lua; do
  a=$(median <"$dir/current-$scenario") b=$(median <"$dir/baseline-$scenario")
  echo "median ${scenario%.lua}: this build $a req/s, $rev $b req/s ($(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.2f", a / b}')×)"
done
