#!/usr/bin/env bash
# A soak on SQLite at N retained keys (default 10 M) with the purge running: new orders
# with random keys for MINUTES (default 30), one wrk run a minute, each minute's
# req/s and p99 printed with the gateway's RSS and the WAL's size. The retained records'
# expiries are spread over N / RATE seconds (RATE, default 12000 a second, about what
# this machine takes at 10 M) and --result-ttl is the same span, so the purge deletes
# about as many records as are inserted and the store stays near N keys.
# Uses the store bench/retained.sh fills (target/bench-retained/rN.db); run that first.
# Usage: [RATE=r] bench/soak-retained.sh [N] [MINUTES]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
cargo build --release --locked -q
n=${1:-10000000}; minutes=${2:-30}; rate=${RATE:-12000}
dir=target/bench-retained
addr=127.0.0.1:18187
[ -f "$dir/r$n.db" ] || { echo "no $dir/r$n.db: run bench/retained.sh $n first" >&2; exit 1; }
rm -f "$dir"/soak.db*; cp "$dir/r$n.db" "$dir/soak.db"
span_ms=$(( n * 1000 / rate ))
start_ms=$(( $(date +%s%3N) + 10000 ))
spread_expiries "$dir/soak.db" "$start_ms" "$span_ms" "$n"
RUST_LOG=warn ./target/release/ordergate serve --listen $addr --database "sqlite://$dir/soak.db" \
  --result-ttl "$((span_ms / 1000))s" 2>"$dir/soak.log" &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
wait_up $addr
echo "| minute | new orders/s | p99 ms | RSS MiB | WAL MiB | database MB |"
echo "|---|---|---|---|---|---|"
for m in $(seq "$minutes"); do
  read -r rps p99 <<<"$(wrk_random_keys $addr 60)"
  rss=$(awk '/VmRSS/ {printf "%d", $2 / 1024}' /proc/$pid/status)
  wal=$(( $(stat -c %s "$dir/soak.db-wal") / 1048576 ))
  db=$(( $(stat -c %s "$dir/soak.db") / 1000000 ))
  echo "| $m | $rps | $p99 | $rss | $wal | $db |"
done
kill $pid; wait $pid || true
rm -f "$dir"/soak.db*
