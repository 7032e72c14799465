#!/usr/bin/env bash
# New orders on SQLite with 0, 1 M and 10 M retained orders and live keys, in the three
# states a desk's gateway lives in. wrk -t1 -c32, loopback, open mode, every request a
# fresh random key (bench/random-keys.lua), as clients send them.
#
#   restart  the gateway just started on the file with the OS page cache dropped (a
#            restart after an upgrade, a failover to another machine, a reboot): the
#            first 10 s, then the 10th to the 30th second, which is the figure to meet;
#   warm     the same gateway 30 s later, steady;
#   purge    steady state with records expiring as fast as orders arrive: the retained
#            records' expiries are spread so that they fall due at the empty store's
#            rate in this round, and the gateway's own --result-ttl is the same span, so
#            the purge deletes about as many records a second as are inserted.
#
# The stores are filled once with bench/fill.sql (random keys; needs the sqlite3 shell)
# under target/bench-retained and kept for the next run (10 M: ~6 GB, ~3 minutes to
# fill); every round works on a fresh copy of them. The machine drifts by ±20 % from
# minute to minute, so the sizes run in interleaved rounds (ROUNDS, default 3), each
# ratio is taken within its round, and the table shows medians. Dropping the page cache
# needs root; without it the restart state starts with a warm OS cache (printed).
# BIN=PATH measures another build of the gateway (another commit's, to compare).
# Usage: [ROUNDS=n] [BIN=path] bench/retained.sh [COUNTS...]   (default: 0 1000000 10000000)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
cargo build --release --locked -q
counts=("$@"); [ ${#counts[@]} -gt 0 ] || counts=(0 1000000 10000000)
rounds=${ROUNDS:-3}
bin=${BIN:-./target/release/ordergate}
dir=target/bench-retained
addr=127.0.0.1:18184
mkdir -p "$dir"; rm -f "$dir/rounds" "$dir"/work.db*
trap 'kill $pid 2>/dev/null || true' EXIT
pid=

serve() { # DB [ARGS...]
  local db=$1; shift
  RUST_LOG=warn "$bin" serve --listen $addr --database "sqlite://$db" "$@" 2>>"$dir/server.log" &
  pid=$!; wait_up $addr
}
stop() { kill $pid; wait $pid || true; }
drop_caches() {
  sync
  if ! echo 3 2>/dev/null >/proc/sys/vm/drop_caches; then echo "(page cache not dropped: not root)"; fi
}
load() { wrk_random_keys "$addr" "$1"; }
record() { # ROUND N STATE "rps p99"
  echo "$1 $2 $3 $4" >>"$dir/rounds"
  echo "  $3: $4 (req/s, p99 ms)"
}

for n in "${counts[@]}"; do
  [ "$n" -eq 0 ] || [ -f "$dir/r$n.db" ] && continue
  echo "filling $n random keys"
  # Let the gateway create its schema, then fill it while it is stopped.
  serve "$dir/r$n.db"; stop
  sqlite3 "$dir/r$n.db" -cmd ".param set :n $n" < bench/fill.sql >/dev/null
done

for round in $(seq "$rounds"); do
  rate=0
  for n in "${counts[@]}"; do
    echo "round $round, $n retained"
    rm -f "$dir"/work.db*
    if [ "$n" -eq 0 ]; then serve "$dir/work.db"; stop; else cp "$dir/r$n.db" "$dir/work.db"; fi
    drop_caches
    serve "$dir/work.db"
    record "$round" "$n" first10s "$(load 10)"
    record "$round" "$n" restart "$(load 20)"
    record "$round" "$n" warm "$(load 20)"
    stop
    [ "$rate" -gt 0 ] || rate=$(awk -v r="$round" -v n="$n" '$1 == r && $2 == n && $3 == "warm" {print $4}' "$dir/rounds")
    # Expiries spread over the span in which `rate` orders a second replace them all,
    # due from 10 s after the gateway starts, in the order the records were accepted.
    span_ms=$(( n > 0 ? n * 1000 / rate : 60000 ))
    [ "$span_ms" -ge 60000 ] || span_ms=60000
    start_ms=$(( $(date +%s%3N) + 10000 ))
    spread_expiries "$dir/work.db" "$start_ms" "$span_ms" "$n"
    serve "$dir/work.db" --result-ttl "$((span_ms / 1000))s"
    load 10 >/dev/null
    record "$round" "$n" purge "$(load 20)"
    stop
    echo "  database $(( $(stat -c %s "$dir/work.db") / 1000000 )) MB, purge span $((span_ms / 1000)) s"
  done
done
rm -f "$dir"/work.db*

echo
echo "Medians of $rounds rounds; each ratio is to the empty store's warm figure in its round."
echo "p99 in ms, from wrk's latency distribution; 'restart' is the 10th to the 30th second."
echo
echo "| retained keys | state | new orders/s | ratio to empty | p99 |"
echo "|---|---|---|---|---|"
for n in "${counts[@]}"; do
  for state in first10s restart warm purge; do
    rps=$(awk -v n="$n" -v s="$state" '$2 == n && $3 == s {print $4}' "$dir/rounds" | median)
    p99=$(awk -v n="$n" -v s="$state" '$2 == n && $3 == s {print $5}' "$dir/rounds" | median)
    ratio=$(awk -v n="$n" -v s="$state" -v f="${counts[0]}" \
      '$2 == f && $3 == "warm" {base[$1] = $4} $2 == n && $3 == s {r[$1] = $4}
       END {for (k in r) printf "%.3f\n", r[k] / base[k]}' "$dir/rounds" | median)
    echo "| $n | $state | $rps | $ratio | $p99 ms |"
  done
done
