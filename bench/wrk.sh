#!/usr/bin/env bash
# Measures ordergate on SQLite with wrk: new orders (a fresh key per request) and
# replays of one key; 1 thread, 32 connections, 10 s each, loopback, open mode.
# Prints wrk's summary (requests/s, latency percentiles) and the server's peak RSS.
# The database lives on the machine's disk in ./target/bench, never on tmpfs.
# Usage: bench/wrk.sh            (needs wrk: apt-get install wrk)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q
dir=target/bench; rm -rf "$dir"; mkdir -p "$dir"
addr=127.0.0.1:18181
./target/release/ordergate serve --listen $addr --database "sqlite://$dir/bench.db" 2>"$dir/server.log" &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
until curl -sf "http://$addr/healthz" >/dev/null; do sleep 0.1; done
echo "filesystem: $(df -T "$dir" | awk 'NR==2 {print $2}')"
echo "== new orders"
wrk -t1 -c32 -d10s --latency -s bench/new-orders.lua "http://$addr/orders"
curl -sf -X POST "http://$addr/orders" -H 'Idempotency-Key: bench-replay' \
  -H 'Content-Type: application/json' -d '{"symbol":"AAPL","side":"buy","quantity":100}' >/dev/null
echo "== replays of one key"
wrk -t1 -c32 -d10s --latency -s bench/replay.lua "http://$addr/orders"
echo "peak RSS: $(grep VmHWM /proc/$pid/status)"
curl -s "http://$addr/metrics" | grep -E '^ordergate_requests_total' || true
