#!/usr/bin/env bash
# Delivery over FIX 4.4, measured on SQLite with the release build, loopback only,
# against QuickFIX's acceptor with the test executor (crates/ordergate/tests/fix), which
# answers every NewOrderSingle with an ExecutionReport:
# 1. new orders with the FIX sink on against delivery off (wrk -t1 -c32 -d10s, ROUNDS
#    interleaved rounds, default 2), with the gateway's CPU per order (from
#    /proc/PID/stat) and the acceptor's CPU: the Python acceptor shares the 2 cores;
# 2. confirmation latency at a steady RATE (default 500 orders/s, 20 s): from the
#    NewOrderSingle's sending time to the delivery recorded (delivered_at - sent_at),
#    and from acceptance (delivered_at - accepted_at), p50/p99/max;
# 3. the deliverer alone draining a backlog of BACKLOG pending orders (default
#    100,000) over FIX: orders/s.
# Makes target/quickfix-venv (QuickFIX from PyPI) if missing. Needs wrk and sqlite3.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
rounds=${ROUNDS:-2}
parts=${PARTS:-1 2 3}
backlog=${BACKLOG:-100000}
rate=${RATE:-500}
dir=target/bench-fix
build_into_empty "$dir"
venv=target/quickfix-venv
if ! "$venv/bin/python" -c 'import quickfix' 2>/dev/null; then
  python3 -m venv "$venv" && "$venv/bin/pip" install --quiet quickfix-py
fi
dictionary=$(find "$venv" -name FIX44.xml | head -1)
addr=127.0.0.1:18193
fix_port=19893
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT

acceptor() { # NAME: a fresh acceptor on $fix_port
  if [ -n "${acceptor_pid:-}" ]; then kill "$acceptor_pid" 2>/dev/null; wait "$acceptor_pid" 2>/dev/null || true; fi
  mkdir -p "$dir/acceptor-$1"
  "$venv/bin/python" crates/ordergate/tests/fix/executor.py "$dir/acceptor-$1" $fix_port OMS OG "$dictionary" \
    >"$dir/acceptor-$1/out" 2>&1 & acceptor_pid=$!
  until grep -q ready "$dir/acceptor-$1/out" 2>/dev/null; do sleep 0.1; done
}
fix_url="fix://127.0.0.1:$fix_port?sender=OG&target=OMS"
serve() { # DB [FLAGS...]
  local db=$1; shift
  RUST_LOG=warn ./target/release/ordergate serve --listen $addr --database "sqlite://$db" "$@" \
    2>>"$dir/server.log" & pid=$!
  wait_up $addr
}
session_up() { until curl -s "http://$addr/metrics" | grep -q '^ordergate_fix_session_up 1'; do sleep 0.1; done; }
rps() { wrk -t1 -c32 -d10s -s bench/new-orders.lua "http://$addr/orders" | awk '/Requests\/sec/ {print $2}'; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }   # user + system, in 1/100 s
measured() { # PID [ACCEPTOR-PID]: req/s, the gateway's CPU µs per order, the acceptor's CPU s
  local g0 a0=0 r g1 a1=0
  g0=$(ticks "$1"); [ -n "${2:-}" ] && a0=$(ticks "$2")
  r=$(rps)
  g1=$(ticks "$1"); [ -n "${2:-}" ] && a1=$(ticks "$2")
  awk -v r="$r" -v g=$((g1 - g0)) -v a=$((a1 - a0)) 'BEGIN {printf "%s %.1f %.1f", r, g * 10000 / (r * 10), a / 100}'
}
percentiles() { awk '{v[NR] = $1} END {printf "p50 %d, p99 %d, max %d (of %d)\n", v[int(NR * 0.5)], v[int(NR * 0.99)], v[NR], NR}'; }

if [[ " $parts " == *" 1 "* ]]; then
echo "== 1. intake, delivery off vs FIX on"
for round in $(seq "$rounds"); do
  serve "$dir/off-$round.db"; read -r off off_cpu _ <<<"$(measured $pid)"; kill $pid; wait $pid 2>/dev/null || true
  acceptor "on-$round"
  serve "$dir/on-$round.db" --deliver "$fix_url"; session_up
  read -r on on_cpu acceptor_cpu <<<"$(measured $pid "$acceptor_pid")"; kill $pid; wait $pid 2>/dev/null || true
  echo "round $round: off $off req/s, FIX on $on req/s (ratio $(ratio "$on" "$off")); gateway CPU per order: off ${off_cpu} µs, on ${on_cpu} µs; the acceptor used ${acceptor_cpu} CPU-s of the 20 the machine had"
done
fi

if [[ " $parts " == *" 2 "* ]]; then
echo "== 2. confirmation latency at $rate orders/s for 20 s"
acceptor latency
serve "$dir/latency.db" --deliver "$fix_url"; session_up
./target/release/ordergate bench --url "http://$addr" --scenario new --rate "$rate" --duration 20s --json >"$dir/latency.json"
until [ "$(sqlite3 "$dir/latency.db" "SELECT count(*) FROM orders WHERE delivery_state = 'pending'")" = "0" ]; do sleep 0.5; done
kill $pid; wait $pid 2>/dev/null || true
echo -n "sent to confirmed, ms: "
sqlite3 "$dir/latency.db" "SELECT o.delivered_at_ms - min(m.sent_at_ms) FROM orders o JOIN fix_messages m ON m.order_id = o.order_id
  WHERE o.delivery_state = 'delivered' GROUP BY o.order_id ORDER BY 1" | percentiles
echo -n "accepted to confirmed, ms: "
sqlite3 "$dir/latency.db" "SELECT delivered_at_ms - accepted_at_ms FROM orders WHERE delivery_state = 'delivered' ORDER BY 1" | percentiles
fi

if [[ " $parts " == *" 3 "* ]]; then
echo "== 3. the deliverer alone, from a backlog of $backlog pending orders"
db="$dir/backlog.db"
serve "$db"; kill $pid; wait $pid 2>/dev/null || true   # the schema
sqlite3 "$db" -cmd ".param set :n $backlog" <bench/fill.sql >/dev/null
sqlite3 "$db" "UPDATE orders SET delivery_state = 'pending', delivery_due_ms = 0; PRAGMA wal_checkpoint(TRUNCATE);" >/dev/null
acceptor backlog
started=$(date +%s.%N)
serve "$db" --deliver "$fix_url"
until [ "$(sqlite3 "$db" "SELECT count(*) FROM orders WHERE delivery_state = 'pending'")" = "0" ]; do sleep 0.5; done
took=$(echo "$(date +%s.%N) - $started" | bc)
kill $pid; wait $pid 2>/dev/null || true
echo "FIX: $backlog deliveries in ${took}s = $(echo "$backlog / $took" | bc) per second"
echo "received by the acceptor: $(wc -l <"$dir/acceptor-backlog/orders.jsonl"), flagged: $(grep -c '"poss_dup": "Y"\|"poss_resend": "Y"' "$dir/acceptor-backlog/orders.jsonl" || true)"
fi
