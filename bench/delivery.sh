#!/usr/bin/env bash
# Delivery, measured on SQLite with the release build, loopback only:
# 1. new orders with delivery to JetStream against delivery off, and with the sink
#    down (wrk -t1 -c32 -d10s, ROUNDS interleaved rounds, default 2);
# 2. the delivery lag (delivered_at - accepted_at) at a steady load of half the
#    measured intake with delivery on, p50/p99/max (`ordergate bench --rate`);
# 3. the deliverer alone draining a backlog of BACKLOG pending orders (default
#    1,000,000): to JetStream, and to a local webhook receiver (the bare handler,
#    which answers 201 to every POST).
# 4. a backlog of RECOVERY pending orders (default 100,000) left by a gateway killed
#    with kill -9, drained after the restart to examples/webhook_receiver (which
#    verifies every signature), and to the same receiver with 1 % of its requests
#    taking 10 s (SLOW_SHARES, default "none 1:10000"): orders/s and the seconds until
#    the last arrived. With BASELINE=REV, the same drains with the binary built from
#    REV (in target/baseline), alternating.
# Ends with one table of every figure the parts measured.
# Runs a nats-server -js of its own on port 14222. Needs wrk, sqlite3, nats-server.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
rounds=${ROUNDS:-2}
parts=${PARTS:-1 2 3 4}   # which of the four to run
backlog=${BACKLOG:-1000000}
dir=target/bench-delivery
build_into_empty "$dir"
nats-server -js -a 127.0.0.1 -p 14222 -sd "$dir/nats" >/dev/null 2>&1 & nats=$!
trap 'kill $nats 2>/dev/null || true; kill $(jobs -p) 2>/dev/null || true' EXIT
sleep 0.5
addr=127.0.0.1:18191
# One row of the closing table.
summary() { echo "| $1 | $2 |" >>"$dir/summary"; }

serve() { # DB [FLAGS...]
  local db=$1; shift
  RUST_LOG=warn ./target/release/ordergate serve --listen $addr --database "sqlite://$db" "$@" \
    2>>"$dir/server.log" & pid=$!
  wait_up $addr
}
rps() { wrk -t1 -c32 -d10s -s bench/new-orders.lua "http://$addr/orders" | awk '/Requests\/sec/ {print $2}'; }

half=${HALF:-10000}
if [[ " $parts " == *" 1 "* ]]; then
echo "== 1. intake, delivery off vs on (JetStream)"
for round in $(seq "$rounds"); do
  serve "$dir/off-$round.db"; off=$(rps); kill $pid; wait $pid 2>/dev/null || true
  serve "$dir/on-$round.db" --deliver nats://127.0.0.1:14222/bench; on=$(rps); kill $pid; wait $pid 2>/dev/null || true
  # Nothing listens on 14299: the sink is down for the whole run.
  serve "$dir/down-$round.db" --deliver nats://127.0.0.1:14299/bench; down=$(rps); kill $pid; wait $pid 2>/dev/null || true
  on_ratio=$(ratio "$on" "$off"); down_ratio=$(ratio "$down" "$off")
  echo "round $round: off $off req/s, on $on req/s (ratio $on_ratio), sink down $down req/s (ratio $down_ratio)"
  echo "$off" >>"$dir/off"; echo "$on" >>"$dir/on"
  echo "$on_ratio" >>"$dir/ratio-on"; echo "$down_ratio" >>"$dir/ratio-down"
done
summary "intake, JetStream delivery on / off: median of $rounds rounds (each round)" \
  "$(median <"$dir/ratio-on") ($(paste -sd' ' "$dir/ratio-on"))"
summary "intake, sink down / off: median (each round)" \
  "$(median <"$dir/ratio-down") ($(paste -sd' ' "$dir/ratio-down"))"
half=$(median <"$dir/on" | awk '{printf "%d", $1 / 2}')
fi

if [[ " $parts " == *" 2 "* ]]; then
echo "== 2. delivery lag at half the intake with delivery on ($half orders/s, 20 s)"
serve "$dir/lag.db" --deliver nats://127.0.0.1:14222/bench
./target/release/ordergate bench --url "http://$addr" --scenario new --rate "$half" --duration 20s --json >"$dir/lag.json"
sleep 2
kill $pid; wait $pid 2>/dev/null || true
sqlite3 "$dir/lag.db" "SELECT count(*) FROM orders WHERE delivery_state = 'delivered'" | sed 's/^/delivered: /'
sqlite3 "$dir/lag.db" "SELECT delivered_at_ms - accepted_at_ms FROM orders WHERE delivery_state = 'delivered' ORDER BY 1" \
  | awk '{v[NR] = $1} END {printf "lag ms: p50 %d, p99 %d, max %d\n", v[int(NR * 0.5)], v[int(NR * 0.99)], v[NR]}' \
  | tee "$dir/lag"
summary "delivery lag at $half orders/s for 20 s (JetStream)" "$(cat "$dir/lag")"
fi

drain() { # NAME DELIVER-URL [FLAGS...]
  local name=$1; shift
  local db="$dir/backlog-$name.db"
  serve "$db"; kill $pid; wait $pid 2>/dev/null || true   # the schema
  sqlite3 "$db" -cmd ".param set :n $backlog" <bench/fill.sql >/dev/null
  sqlite3 "$db" "UPDATE orders SET delivery_state = 'pending', delivery_due_ms = 0; PRAGMA wal_checkpoint(TRUNCATE);" >/dev/null
  local started=$(date +%s.%N)
  serve "$db" --deliver "$@"
  until [ "$(sqlite3 "$db" "SELECT count(*) FROM orders WHERE delivery_state = 'pending'")" = "0" ]; do sleep 0.5; done
  local took=$(echo "$(date +%s.%N) - $started" | bc)
  kill $pid; wait $pid 2>/dev/null || true
  echo "$name: $backlog deliveries in ${took}s = $(echo "$backlog / $took" | bc) per second"
  summary "the deliverer alone, $backlog pending, to $name" \
    "$(printf %.1f "$took") s, $(echo "$backlog / $took" | bc) deliveries/s"
}

if [[ " $parts " == *" 3 "* ]]; then
echo "== 3. the deliverer alone, from a backlog of $backlog pending orders"
drain jetstream nats://127.0.0.1:14222/backlog
./target/release/examples/bare_handler 127.0.0.1:18192 & bare=$!
drain webhook http://127.0.0.1:18192/orders --deliver-secret whsec_YmVuY2htYXJr
kill $bare
fi

# Part 4: the binary in $1 drains a backlog left by a killed gateway to the receiver
# on 18195 (started with the slow share $3, if any); prints a table row.
recover() { # BINARY NAME [SLOW]
  local binary=$1 name=$2 slow=${3:-}
  local db="$dir/recover-$name.db" receiver_addr=127.0.0.1:18195 secret=whsec_YmVuY2htYXJr
  rm -f "$db"*
  RUST_LOG=warn $binary serve --listen $addr --database "sqlite://$db" 2>>"$dir/server.log" & pid=$!
  wait_up $addr; kill $pid; wait $pid 2>/dev/null || true   # the schema
  sqlite3 "$db" -cmd ".param set :n $recovery" <bench/fill.sql >/dev/null
  sqlite3 "$db" "UPDATE orders SET delivery_state = 'pending', delivery_due_ms = 0; PRAGMA wal_checkpoint(TRUNCATE);" >/dev/null
  ./target/release/examples/webhook_receiver $receiver_addr $secret $slow & local receiver=$!
  until curl -s -o /dev/null "http://$receiver_addr/stats"; do sleep 0.1; done
  # The gateway dies with its first deliveries in flight; the restart does the rest.
  RUST_LOG=warn $binary serve --listen $addr --database "sqlite://$db" --deliver "http://$receiver_addr/hook" \
    --deliver-secret $secret 2>>"$dir/server.log" & pid=$!
  until [ "$(curl -s "http://$receiver_addr/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["requests"])')" -gt 0 ]; do sleep 0.05; done
  kill -9 $pid; wait $pid 2>/dev/null || true
  local started=$(date +%s.%N)
  RUST_LOG=warn $binary serve --listen $addr --database "sqlite://$db" --deliver "http://$receiver_addr/hook" \
    --deliver-secret $secret 2>>"$dir/server.log" & pid=$!
  until [ "$(sqlite3 "$db" "SELECT count(*) FROM orders WHERE delivery_state = 'pending'")" = "0" ]; do sleep 0.2; done
  local took=$(echo "$(date +%s.%N) - $started" | bc)
  local stats=$(curl -s "http://$receiver_addr/stats")
  kill $pid $receiver; wait $pid $receiver 2>/dev/null || true
  local received=$(echo "$stats" | python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["orders"], "/", r["bad_signatures"])')
  echo "| $name | ${slow:-none} | $(printf %.1f "$took") | $(echo "$recovery / $took" | bc) | $received |"
  summary "$recovery left by kill -9, to a verifying receiver, slow share ${slow:-none}, $name" \
    "the last arrived after $(printf %.1f "$took") s: $(echo "$recovery / $took" | bc) orders/s; received / bad signatures $received"
}

if [[ " $parts " == *" 4 "* ]]; then
recovery=${RECOVERY:-100000}
echo "== 4. a backlog of $recovery left by kill -9, drained after the restart to a verifying receiver"
binaries=("current:./target/release/ordergate")
if [ -n "${BASELINE:-}" ]; then
  rm -rf target/baseline; git worktree prune
  git worktree add -q --detach target/baseline "$BASELINE"
  (cd target/baseline && cargo build --release --locked -q --bin ordergate)
  binaries+=("baseline $BASELINE:./target/baseline/target/release/ordergate")
fi
echo "| binary | slow share | seconds until the last arrived | orders/s | orders received / bad signatures |"
echo "|---|---|---|---|---|"
for slow in ${SLOW_SHARES:-none 1:10000}; do
  [ "$slow" = none ] && slow=""
  for entry in "${binaries[@]}"; do
    recover "${entry#*:}" "${entry%%:*}" $slow
  done
done
fi

echo "== summary"
echo "| figure | result |"
echo "|---|---|"
cat "$dir/summary" 2>/dev/null || true
