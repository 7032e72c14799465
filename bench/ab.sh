#!/usr/bin/env bash
# bench/ab.sh REV [ROUNDS]
# This build against the binary built from REV (in target/ab-REV, a git worktree), on
# SQLite, interleaved in one run: each round measures new orders, then replays of one
# key, with each binary in turn (the order of the two alternates between rounds), wrk
# -t1 -c32 -d10s, a fresh database per measurement. Prints one line per round and
# the medians with their ratio (this build / REV): requests a second, and the server's
# own CPU per request (user + system time of its process over the wrk run, which
# drifts much less than throughput on a shared machine). Needs wrk.
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

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

measure() { # BINARY SCRIPT: "requests/s server-CPU-us/request"
  local db="$dir/ab.db"
  rm -f "$db"*
  RUST_LOG=warn $1 serve --listen $addr --database "sqlite://$db" 2>>"$dir/server.log" & local pid=$!
  wait_up $addr
  curl -sf -X POST "http://$addr/orders" -H 'Idempotency-Key: bench-replay' \
    -H 'Content-Type: application/json' -d '{"symbol":"AAPL","side":"buy","quantity":100}' >/dev/null
  local before after out
  before=$(cpu_ticks $pid)
  out=$(wrk -t1 -c32 -d10s -s "bench/$2" "http://$addr/orders")
  after=$(cpu_ticks $pid)
  echo "$out" | awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" '
    /requests in/ {n = $1} /Requests\/sec/ {rps = $2}
    END {printf "%s %.1f\n", rps, t * 1e6 / hz / n}'
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
    read -r ar ac <<<"$a"; read -r br bc <<<"$b"
    echo "$ar" >>"$dir/current-$scenario"; echo "$br" >>"$dir/baseline-$scenario"
    echo "$ac" >>"$dir/current-cpu-$scenario"; echo "$bc" >>"$dir/baseline-cpu-$scenario"
    echo "round $round ${scenario%.lua}: this build $ar req/s $ac CPU-us/req, $rev $br req/s $bc CPU-us/req ($(ratio "$ar" "$br")×, CPU $(ratio "$ac" "$bc")×)"
  done
done
for scenario in new-orders.lua replay.lua; do
  a=$(median <"$dir/current-$scenario") b=$(median <"$dir/baseline-$scenario")
  ac=$(median <"$dir/current-cpu-$scenario") bc=$(median <"$dir/baseline-cpu-$scenario")
  echo "median ${scenario%.lua}: this build $a req/s $ac CPU-us/req, $rev $b req/s $bc CPU-us/req ($(ratio "$a" "$b")×, CPU $(ratio "$ac" "$bc")×)"
done
