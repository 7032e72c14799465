#!/usr/bin/env bash
# New orders/s on PostgreSQL: the gateway (wrk, 1 thread, 32 connections, 10 s, a
# fresh key per request) against pgbench running the gateway's own per-order
# statement (bench/pgbench/order.sql, 32 clients, -M prepared, 10 s), same machine,
# each in a fresh database. Prints SHOW fsync / synchronous_commit and the ratio.
# Usage: bench/pgbench.sh [postgres://postgres@127.0.0.1:5432/postgres]
set -euo pipefail
cd "$(dirname "$0")/.."
admin=${1:-${ORDERGATE_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/postgres}}
base=${admin%/*}
cargo build --release --locked -q
psql "$admin" -Atc "SHOW fsync" | sed 's/^/fsync: /'
psql "$admin" -Atc "SHOW synchronous_commit" | sed 's/^/synchronous_commit: /'

fresh_db() {
  psql "$admin" -qc "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1"
}

echo "== pgbench: the gateway's statement, 32 clients, -M prepared"
fresh_db ordergate_pgbench
psql "$base/ordergate_pgbench" -q -f crates/ordergate/src/store/postgres/schema.sql
body='{"orderId":"019acb1e-6a0e-7d3b-9c3e-2f0b6b1d9a41","status":"accepted","symbol":"AAPL","side":"buy","quantity":100,"acceptedAt":"2026-11-28T03:00:00.000Z","idempotencyKey":"1234567890123"}'
pgbench -n -c 32 -j 2 -T 10 -M prepared -f bench/pgbench/order.sql \
  -D tenant=default -D fp='\x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f' \
  -D loc=/orders/019acb1e-6a0e-7d3b-9c3e-2f0b6b1d9a41 -D ttl=86400000 -D symbol=AAPL \
  -D side=buy -D qty=100 -D accepted=1795834800000 -D body="$body" \
  "$base/ordergate_pgbench" | grep -E "^(tps|latency|number of (transactions|failed))"

echo "== ordergate on PostgreSQL: wrk -t1 -c32 -d10s, new orders"
fresh_db ordergate_bench
addr=127.0.0.1:18182
./target/release/ordergate serve --listen $addr --database "$base/ordergate_bench" 2>target/pg-bench.log &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
until curl -sf "http://$addr/healthz" >/dev/null; do sleep 0.1; done
wrk -t1 -c32 -d10s --latency -s bench/new-orders.lua "http://$addr/orders" \
  | grep -E "Requests/sec|99%|50%"
echo "peak RSS: $(grep VmHWM /proc/$pid/status)"
