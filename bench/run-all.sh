#!/usr/bin/env bash
# Reproduces the table in BENCHMARKS.md from a clean checkout: the bare axum handler
# and ordergate on SQLite under the same wrk load (1 thread, 32 connections, 10 s,
# loopback, open mode), the server's peak RSS, the disk's fsync rate, ordergate bench's
# invariant check, and (with --retained) new orders with 0 / 1 M / 10 M retained keys.
# Needs wrk (apt-get install wrk); --retained also needs sqlite3 and ~6 GB of disk.
# Usage: bench/run-all.sh [--retained]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q --bins --examples
dir=target/bench-all; rm -rf "$dir"; mkdir -p "$dir"
wrk_run() { # URL SCRIPT -> "req/s p99"
  local out; out=$(wrk -t1 -c32 -d10s --latency -s "$2" "$1")
  echo "$(echo "$out" | awk '/Requests\/sec/ {print $2}') $(echo "$out" | awk '$1 == "99%" {print $2}')"
}
wait_up() { until curl -sf "http://$1/healthz" >/dev/null 2>&1 || curl -sf -o /dev/null -X POST "http://$1/orders" 2>/dev/null; do sleep 0.1; done; }

echo "machine: $(nproc) cores, $(free -g | awk '/Mem/ {print $2}') GiB, $(uname -r)"
echo "filesystem of $dir: $(df -T "$dir" | awk 'NR==2 {print $2}')"
start=$(date +%s.%N)
dd if=/dev/zero of="$dir/fsync.test" bs=4k count=2000 oflag=dsync 2>/dev/null
end=$(date +%s.%N)
echo "fsync rate (dd 4 KiB oflag=dsync): $(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.0f", 2000 / (b - a)}')/s"
rm -f "$dir/fsync.test"

./target/release/examples/bare_handler 127.0.0.1:18180 & bare=$!
sleep 0.5
read -r bare_rps bare_p99 < <(wrk_run http://127.0.0.1:18180/orders bench/new-orders.lua)
kill $bare

addr=127.0.0.1:18181
RUST_LOG=warn ./target/release/ordergate serve --listen $addr --database "sqlite://$dir/b.db" 2>"$dir/server.log" &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
wait_up $addr
read -r new_rps new_p99 < <(wrk_run "http://$addr/orders" bench/new-orders.lua)
curl -sf -X POST "http://$addr/orders" -H 'Idempotency-Key: bench-replay' \
  -H 'Content-Type: application/json' -d '{"symbol":"AAPL","side":"buy","quantity":100}' >/dev/null
read -r rep_rps rep_p99 < <(wrk_run "http://$addr/orders" bench/replay.lua)
check=$(./target/release/ordergate bench --url "http://$addr" --scenario race --duration 5s --json 2>/dev/null)
rss_kib=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
echo
echo "| figure | req/s | p99 | ratio to bare | target |"
echo "|---|---|---|---|---|"
echo "| bare axum handler | $bare_rps | $bare_p99 | 1.00 | |"
echo "| durable new orders, SQLite | $new_rps | $new_p99 | $(ratio "$new_rps" "$bare_rps") | >= 0.40, p99 <= 5 ms |"
echo "| replays of one key | $rep_rps | $rep_p99 | $(ratio "$rep_rps" "$bare_rps") | >= 0.70 |"
echo "| peak RSS of ordergate | $((rss_kib / 1024)) MiB | | | <= 64 MiB |"
echo
echo "ordergate bench --scenario race: $(echo "$check" | tr -d '\n ' | grep -o '"violations":[0-9]*'), $(echo "$check" | tr -d '\n ' | grep -o '"answered":[0-9]*')"
if [ "${1:-}" = "--retained" ]; then
  kill $pid; wait $pid 2>/dev/null || true
  bench/retained.sh
fi
