#!/usr/bin/env bash
# New orders/s on SQLite with 0, 1 M and 10 M retained orders and live keys:
# wrk -t1 -c32 -d10s, a fresh key per request, loopback, open mode. The database is
# filled with bench/fill.sql (needs the sqlite3 shell: apt-get install sqlite3) on the
# machine's disk under target/bench-retained; 10 M takes about 6 GB and a minute.
# Usage: bench/retained.sh [COUNTS...]   (default: 0 1000000 10000000)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q
counts=("$@"); [ ${#counts[@]} -gt 0 ] || counts=(0 1000000 10000000)
dir=target/bench-retained
addr=127.0.0.1:18184
for n in "${counts[@]}"; do
  rm -rf "$dir"; mkdir -p "$dir"
  # Let the gateway create its schema, then fill it while it is stopped.
  ./target/release/ordergate serve --listen $addr --database "sqlite://$dir/r.db" 2>/dev/null &
  pid=$!; until curl -sf "http://$addr/healthz" >/dev/null; do sleep 0.1; done
  kill $pid; wait $pid || true
  [ "$n" -eq 0 ] || sqlite3 "$dir/r.db" -cmd ".param set :n $n" < bench/fill.sql >/dev/null
  RUST_LOG=warn ./target/release/ordergate serve --listen $addr --database "sqlite://$dir/r.db" 2>/dev/null &
  pid=$!; until curl -sf "http://$addr/healthz" >/dev/null; do sleep 0.1; done
  result=$(wrk -t1 -c32 -d10s --latency -s bench/new-orders.lua "http://$addr/orders")
  rps=$(echo "$result" | awk '/Requests\/sec/ {print $2}')
  p99=$(echo "$result" | awk '$1 == "99%" {print $2}')
  echo "retained=$n new_orders_per_s=$rps p99=$p99 db_bytes=$(stat -c %s "$dir/r.db")"
  kill $pid; wait $pid || true
done
rm -rf "$dir"
