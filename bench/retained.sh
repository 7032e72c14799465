#!/usr/bin/env bash
# New orders/s on SQLite with 0, 1 M and 10 M retained orders and live keys:
# wrk -t1 -c32 -d10s, a fresh key per request, loopback, open mode. The databases are
# filled with bench/fill.sql (needs the sqlite3 shell: apt-get install sqlite3) on the
# machine's disk under target/bench-retained; 10 M takes about 6 GB and a minute.
#
# The machine drifts by ±20% from minute to minute, so the sizes run in interleaved
# rounds (ROUNDS, default 3): each round measures every size back to back, its ratios
# are taken within the round, and the table shows the medians. The empty database is
# made afresh each round; the filled ones are reused (a round adds ~0.3 M orders).
# Usage: [ROUNDS=n] bench/retained.sh [COUNTS...]   (default: 0 1000000 10000000)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
cargo build --release --locked -q
counts=("$@"); [ ${#counts[@]} -gt 0 ] || counts=(0 1000000 10000000)
rounds=${ROUNDS:-3}
dir=target/bench-retained
addr=127.0.0.1:18184
rm -rf "$dir"; mkdir -p "$dir"
trap 'kill $pid 2>/dev/null || true' EXIT
pid=

serve() { # DB
  RUST_LOG=warn ./target/release/ordergate serve --listen $addr --database "sqlite://$1" 2>/dev/null &
  pid=$!; wait_up $addr
}
stop() { kill $pid; wait $pid || true; }

for n in "${counts[@]}"; do
  [ "$n" -eq 0 ] && continue
  # Let the gateway create its schema, then fill it while it is stopped.
  serve "$dir/r$n.db"; stop
  sqlite3 "$dir/r$n.db" -cmd ".param set :n $n" < bench/fill.sql >/dev/null
done

for round in $(seq "$rounds"); do
  line="$round:"
  for n in "${counts[@]}"; do
    [ "$n" -eq 0 ] && rm -f "$dir/r0.db"*
    serve "$dir/r$n.db"
    result=$(wrk -t1 -c32 -d10s --latency -s bench/new-orders.lua "http://$addr/orders")
    stop
    rps=$(echo "$result" | awk '/Requests\/sec/ {print $2}')
    p99=$(echo "$result" | awk '$1 == "99%" {print $2}')
    echo "$round $n $rps $p99 $(stat -c %s "$dir/r$n.db")" >>"$dir/rounds"
    line="$line retained=$n ${rps} req/s (wrk p99 $p99)"
  done
  echo "$line"
done

echo
echo "Medians of $rounds rounds; each ratio is taken within its round."
echo
echo "| retained keys | new orders/s | ratio to empty | database |"
echo "|---|---|---|---|"
first=${counts[0]}
for n in "${counts[@]}"; do
  rps=$(awk -v n="$n" '$2 == n {print $3}' "$dir/rounds" | median)
  ratio=$(awk -v n="$n" -v f="$first" '$2 == f {base[$1] = $3} $2 == n {r[$1] = $3}
    END {for (k in r) printf "%.3f\n", r[k] / base[k]}' "$dir/rounds" | median)
  bytes=$(awk -v n="$n" '$2 == n {b = $5} END {print b}' "$dir/rounds")
  echo "| $n | $rps | $ratio | $((bytes / 1000000)) MB |"
done
rm -rf "$dir"
