#!/usr/bin/env bash
# Soak: mixed load (ordergate bench --scenario mixed, paced) for a while with a short
# --result-ttl, so the purge runs all along. Every 30 s it prints the server's RSS,
# the WAL and database sizes, and how many idempotency records are live: memory and
# the WAL must stay bounded. Needs the sqlite3 shell for the record count.
# Usage: bench/soak.sh [DURATION=10m] [RATE=4000] [RESULT_TTL=30s]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10m}; rate=${2:-4000}; ttl=${3:-30s}
cargo build --release --locked -q
dir=target/bench-soak; rm -rf "$dir"; mkdir -p "$dir"
addr=127.0.0.1:18185
RUST_LOG=warn ./target/release/ordergate serve --listen $addr --database "sqlite://$dir/s.db" \
  --result-ttl "$ttl" 2>"$dir/server.log" &
pid=$!
trap 'kill $pid $bench 2>/dev/null || true' EXIT
until curl -sf "http://$addr/healthz" >/dev/null; do sleep 0.1; done
./target/release/ordergate bench --url "http://$addr" --scenario mixed --duration "$duration" \
  --rate "$rate" --connections 16 --json >"$dir/report.json" 2>/dev/null &
bench=$!
echo "elapsed_s rss_mib wal_mib db_mib live_keys"
start=$(date +%s)
while kill -0 $bench 2>/dev/null; do
  sleep 30
  rss=$(awk '/VmRSS/ {printf "%.1f", $2 / 1024}' /proc/$pid/status)
  wal=$(stat -c %s "$dir/s.db-wal" 2>/dev/null || echo 0)
  db=$(stat -c %s "$dir/s.db")
  live=$(sqlite3 -readonly "$dir/s.db" "SELECT count(*) FROM idempotency_keys" 2>/dev/null || echo "?")
  echo "$(( $(date +%s) - start )) $rss $(awk -v b="$wal" 'BEGIN {printf "%.1f", b / 1048576}') $(awk -v b="$db" 'BEGIN {printf "%.1f", b / 1048576}') $live"
done
wait $bench && status=0 || status=$?
echo "bench exit status: $status (non-zero means an invariant violation or an error)"
grep -E '"(answered|requests_per_second|violations|keys_checked)"' "$dir/report.json" || true
echo "peak RSS: $(awk '/VmHWM/ {printf "%.1f MiB", $2 / 1024}' /proc/$pid/status)"
