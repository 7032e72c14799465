#!/usr/bin/env bash
# New orders on PostgreSQL with 0 and N retained orders and live keys (default 10 M),
# fresh random keys (bench/random-keys.lua), wrk -t1 -c32, in two states:
#
#   warm   the gateway's 10th to 30th second on the database;
#   purge  the retained records' expiries spread so that they fall due at the empty
#          database's rate in the round, the gateway's --result-ttl the same span, so
#          the purge deletes about as many records a second as are inserted; measured
#          from the 10th to the 30th second. The expiries are moved by one UPDATE of
#          every record followed by a VACUUM, so autovacuum starts from a clean table
#          and what it does during the run is the purge's own doing.
#
# The retained database is filled once with bench/fill-pg.sql (10 M: ~5 minutes, ~7 GB)
# as ordergate_retained_N and kept; each round works on a copy (CREATE DATABASE ...
# TEMPLATE). The sizes alternate within each round (ROUNDS, default 2), and each ratio
# is taken within its round. The server's own settings are what they are (printed).
# Usage: [ROUNDS=n] bench/retained-pg.sh [N] [postgres://postgres@127.0.0.1:5432/postgres]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
cargo build --release --locked -q
n=${1:-10000000}
admin=${2:-${ORDERGATE_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/postgres}}
base=${admin%/*}
rounds=${ROUNDS:-2}
dir=target/bench-retained-pg
addr=127.0.0.1:18185
template=ordergate_retained_$n
mkdir -p "$dir"; rm -f "$dir/rounds"
trap 'kill $pid 2>/dev/null || true' EXIT
pid=

sql() { psql "$admin" -qAtc "$1"; }
serve() { # DATABASE [ARGS...]
  local db=$1; shift
  RUST_LOG=warn ./target/release/ordergate serve --listen $addr --database "$base/$db" "$@" 2>>"$dir/server.log" &
  pid=$!; wait_up $addr
}
stop() { kill $pid; wait $pid || true; }
record() { # ROUND N STATE "rps p99"
  echo "$1 $2 $3 $4" >>"$dir/rounds"
  echo "  $3: $4 (req/s, p99 ms)"
}
fresh() { # DATABASE [TEMPLATE]
  sql "DROP DATABASE IF EXISTS $1 WITH (FORCE)"
  sql "CREATE DATABASE $1${2:+ TEMPLATE $2}"
}

echo "shared_buffers $(sql 'SHOW shared_buffers'), synchronous_commit $(sql 'SHOW synchronous_commit'), autovacuum $(sql 'SHOW autovacuum')"
if [ -z "$(sql "SELECT 1 FROM pg_database WHERE datname = '$template'")" ]; then
  echo "filling $template"
  fresh "$template"; serve "$template"; stop
  psql "$base/$template" -q -v n="$n" -f bench/fill-pg.sql
fi

for round in $(seq "$rounds"); do
  rate=0
  for size in 0 "$n"; do
    echo "round $round, $size retained"
    if [ "$size" -eq 0 ]; then fresh ordergate_retained_work; else fresh ordergate_retained_work "$template"; fi
    serve ordergate_retained_work
    wrk_random_keys $addr 10 >/dev/null
    record "$round" "$size" warm "$(wrk_random_keys $addr 20)"
    stop
    [ "$rate" -gt 0 ] || rate=$(awk -v r="$round" '$1 == r && $2 == 0 && $3 == "warm" {print $4}' "$dir/rounds")
    span_ms=$(( size > 0 ? size * 1000 / rate : 60000 ))
    [ "$span_ms" -ge 60000 ] || span_ms=60000
    start_ms=$(( $(date +%s%3N) + 10000 ))
    psql "$base/ordergate_retained_work" -qc "SET synchronous_commit = off;
      UPDATE idempotency_keys k SET expires_at = to_timestamp(($start_ms + (o.accepted_seq - 1) * $span_ms / greatest($size, 1)) / 1000.0)
      FROM (SELECT order_id, row_number() OVER (ORDER BY order_id) AS accepted_seq FROM idempotency_keys) o
      WHERE k.order_id = o.order_id" -c "VACUUM ANALYZE idempotency_keys"
    serve ordergate_retained_work --result-ttl "$((span_ms / 1000))s"
    wrk_random_keys $addr 10 >/dev/null
    record "$round" "$size" purge "$(wrk_random_keys $addr 20)"
    stop
    echo "  database $(sql "SELECT pg_database_size('ordergate_retained_work') / 1000000") MB, purge span $((span_ms / 1000)) s"
  done
done
sql "DROP DATABASE IF EXISTS ordergate_retained_work WITH (FORCE)"

echo
echo "Medians of $rounds rounds; each ratio is to the empty database's warm figure in its round."
echo
echo "| retained keys | state | new orders/s | ratio to empty | p99 |"
echo "|---|---|---|---|---|"
for size in 0 "$n"; do
  for state in warm purge; do
    rps=$(awk -v n="$size" -v s="$state" '$2 == n && $3 == s {print $4}' "$dir/rounds" | median)
    p99=$(awk -v n="$size" -v s="$state" '$2 == n && $3 == s {print $5}' "$dir/rounds" | median)
    ratio=$(awk -v n="$size" -v s="$state" '$2 == 0 && $3 == "warm" {base[$1] = $4} $2 == n && $3 == s {r[$1] = $4}
       END {for (k in r) printf "%.3f\n", r[k] / base[k]}' "$dir/rounds" | median)
    echo "| $size | $state | $rps | $ratio | $p99 ms |"
  done
done
