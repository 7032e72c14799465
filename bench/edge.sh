#!/usr/bin/env bash
# The edge build beside the old worker, in one run, on two runners:
# - `bare` (the fair runner): crates/ordergate-edge/serve-bare.mjs, one workerd through
#   Miniflare's API with the options wrangler derives from each wrangler.toml, without
#   wrangler dev's proxy workerd, inspector and file watcher;
# - `wrangler` (the reference row): `wrangler dev` in local mode, as dev.sh runs it.
# `ordergate bench` (release build) sends new orders, replays and the race scenario to
# each target in turn (CONNECTIONS keep-alive connections, DURATION each, defaults 32
# and 20s), with the same client on the same 2 cores. Reported per target: requests/s,
# p99, violations, the CPU seconds each process kind (workerd, node) spent per 1,000
# new orders, the fsync-family calls per new order (strace -c on workerd during a
# separate 5 s pass, so that tracing slows no measured run), and workerd's peak RSS.
#
# Then ordergate-edge on the bare runner with delivery on, to a receiver on loopback
# that verifies every signature (examples/webhook_receiver.rs): new orders and replays
# at full load, every delivery awaited; then DURATION at half the measured rate of new
# orders with delivery on, and the delivery lag (arrival less acceptedAt) p50/p99.
#
# The old worker (bench/old-worker) has no lookup, so its violations are what its
# clients saw: keys whose answers named two or more orders (`--no-lookup`).
# ordergate-edge is checked against `GET /orders?idempotencyKey=K` as well.
set -euo pipefail
cd "$(dirname "$0")/.."
connections=${CONNECTIONS:-32}
duration=${DURATION:-20s}
runners=${RUNNERS:-bare wrangler}
dir=target/bench-edge
secret=whsec_YmVuY2htYXJr
receiver_addr=127.0.0.1:18195
cargo build --release --locked -q -p ordergate --bin ordergate --example webhook_receiver
crates/ordergate-edge/build.sh >/dev/null 2>&1
command -v strace >/dev/null || { apt-get update -qq && apt-get install -y -qq strace; }
command -v sqlite3 >/dev/null || { apt-get update -qq && apt-get install -y -qq sqlite3; }
rm -rf "$dir"; mkdir -p "$dir"
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT
ticks_per_second=$(getconf CLK_TCK)

# A process and every process below it.
tree() { # PID
  local pids=("$1") i=0
  while [ "$i" -lt "${#pids[@]}" ]; do
    pids+=($(ps -o pid= --ppid "${pids[$i]}" 2>/dev/null || true)); i=$((i + 1))
  done
  echo "${pids[@]}"
}

# CPU ticks (user + system) of a process tree, summed by process name: "name ticks".
cpu_by_name() { # PID
  for pid in $(tree "$1"); do
    # After "pid (comm) ", utime and stime are the 12th and 13th fields.
    sed -E 's/^[0-9]+ \((.*)\) /\1\t/' "/proc/$pid/stat" 2>/dev/null |
      awk -F'\t' '{ split($2, f, " "); print $1, f[12] + f[13] }' || true
  done | awk '{ t[$1] += $2 } END { for (n in t) print n, t[n] }' | sort
}

# Peak RSS (MiB) of every workerd process while the file $dir/sampling exists.
sample_memory() { # OUT
  local peak=0 now
  while [ -e "$dir/sampling" ]; do
    now=$(ps -C workerd -o rss= | awk '{s += $1} END {print int(s / 1024)}')
    [ "$now" -gt "$peak" ] && peak=$now
    sleep 0.5
  done
  echo "$peak" >"$1"
}

bench() { # ADDR OUT ARGS...
  local addr=$1 out=$2; shift 2
  ./target/release/ordergate bench --url "http://$addr" --connections "$connections" --json "$@" \
    >"$out" 2>/dev/null || true
}

# fsync, fdatasync and friends made by workerd per new order, over a 5 s pass.
count_syncs() { # RUNNER_PID ADDR OUT LOOKUP...
  local root=$1 addr=$2 out=$3; shift 3
  local attach=() pid
  for pid in $(tree "$root"); do
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = workerd ] && attach+=(-p "$pid")
  done
  strace -f -qq -c -e trace=fsync,fdatasync,sync_file_range,msync -o "$out.strace" "${attach[@]}" &
  local tracer=$!
  sleep 1
  bench "$addr" "$out.json" --scenario new --duration 5s "$@"
  kill -INT $tracer; wait $tracer 2>/dev/null || true
  local calls answered
  calls=$(awk '$NF == "total" {print $4}' "$out.strace")   # % time, seconds, usecs/call, calls
  answered=$(field "$out.json" "r['answered']")
  awk -v c="${calls:-0}" -v a="$answered" 'BEGIN {printf "%.2f", (a > 0 ? c / a : 0)}' >"$out"
}

field() { python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print($2)" "$1"; }

run_target() { # RUNNER NAME SCRIPT ARGS... (served on 127.0.0.1:18900)
  local runner=$1 name=$2; shift 2
  local addr=127.0.0.1:18900 lookup=() out="$dir/$runner-$name"
  [ "$name" = old-worker ] && lookup=(--no-lookup)
  ORDERGATE_EDGE_RUNNER=$runner "$@" --listen $addr --state "$out.state" >"$out.log" 2>&1 &
  local pid=$!
  until curl -s -o /dev/null "http://$addr/"; do sleep 0.2; done
  touch "$dir/sampling"
  sample_memory "$out.rss" & local sampler=$!
  for scenario in new replay race; do
    local before; before=$(cpu_by_name $pid)
    bench $addr "$out-$scenario.json" --scenario $scenario --duration "$duration" "${lookup[@]}"
    join <(echo "$before") <(cpu_by_name $pid) | awk -v hz="$ticks_per_second" \
      '{printf "%s %.2f\n", $1, ($3 - $2) / hz}' >"$out-$scenario.cpu"
  done
  rm "$dir/sampling"; wait $sampler
  count_syncs $pid $addr "$out.syncs" "${lookup[@]}"
  kill -TERM $pid; wait $pid || true
}

# CPU seconds of process kind NAME per 1,000 new orders.
cpu_per_k() { # OUT NAME
  local seconds answered
  seconds=$(awk -v n="$2" '$1 == n {print $2}' "$1-new.cpu")
  answered=$(field "$1-new.json" "r['answered']")
  awk -v s="${seconds:-0}" -v a="$answered" 'BEGIN {printf "%.2f", (a > 0 ? s * 1000 / a : 0)}'
}

pending_deliveries() { # STATE
  local total=0 n file
  for file in "$1"/data/v3/do/ordergate-edge-KeyShard/*.sqlite; do
    n=$(sqlite3 -readonly "$file" "SELECT count(*) FROM deliveries WHERE state = 'pending'" 2>/dev/null || echo 0)
    total=$((total + n))
  done
  echo $total
}

receiver_stats() { curl -s "http://$receiver_addr/stats"; }

# Waits (up to 5 minutes) until no delivery is pending; the seconds it took.
drain() { # STATE
  local started=$SECONDS
  while [ "$(pending_deliveries "$1")" != 0 ] && [ $((SECONDS - started)) -lt 300 ]; do sleep 0.5; done
  echo $((SECONDS - started))
}

start_receiver() {
  ./target/release/examples/webhook_receiver $receiver_addr $secret & receiver=$!
  until curl -s -o /dev/null "http://$receiver_addr/stats"; do sleep 0.1; done
}

with_delivery() {
  local out="$dir/bare-delivering" addr=127.0.0.1:18900
  local deliver=(--deliver "http://$receiver_addr/hook" --deliver-secret $secret)
  start_receiver
  ORDERGATE_EDGE_RUNNER=bare crates/ordergate-edge/dev.sh --open "${deliver[@]}" \
    --listen $addr --state "$out.state" >"$out.log" 2>&1 &
  local pid=$!
  until curl -s -o /dev/null "http://$addr/"; do sleep 0.2; done
  touch "$dir/sampling"
  sample_memory "$out.rss" & local sampler=$!
  for scenario in new replay; do
    bench $addr "$out-$scenario.json" --scenario $scenario --duration "$duration"
  done
  rm "$dir/sampling"; wait $sampler
  echo "$(drain "$out.state")" >"$out.drain"
  receiver_stats >"$out-receiver.json"
  kill $receiver; wait $receiver 2>/dev/null || true
  local half
  half=$(field "$out-new.json" "int(r['requests_per_second'] / 2)")
  start_receiver
  bench $addr "$out-half.json" --scenario new --rate "$half" --duration "$duration"
  drain "$out.state" >/dev/null
  receiver_stats >"$out-half-receiver.json"
  kill $receiver; wait $receiver 2>/dev/null || true
  kill -TERM $pid; wait $pid || true
}

for runner in $runners; do
  run_target "$runner" old-worker bench/old-worker/run.sh
  run_target "$runner" ordergate-edge crates/ordergate-edge/dev.sh --open
done
with_delivery

for runner in $runners; do
  old="$dir/$runner-old-worker" new="$dir/$runner-ordergate-edge"
  echo
  echo "runner: $runner"
  echo "| | old worker | ordergate-edge | ratio |"
  echo "|---|---|---|---|"
  for scenario in new replay race; do
    for metric in "requests/s:round(r['requests_per_second'])" "p99 ms:round(r['latency_ms']['p99'], 1)" \
                  "violations:r['violations']" "duplicate orders:r.get('duplicate_orders', 0)" \
                  "most orders for one key:r.get('most_orders_for_one_key', 1)"; do
      label=${metric%%:*} expr=${metric#*:}
      case "$scenario/$label" in new/duplicate*|new/most*|replay/duplicate*|replay/most*) continue ;; esac
      a=$(field "$old-$scenario.json" "$expr") b=$(field "$new-$scenario.json" "$expr") ratio=""
      [ "$label" = requests/s ] && ratio=$(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.2f×", (a > 0 ? b / a : 0)}')
      echo "| $scenario: $label | $a | $b | $ratio |"
    done
  done
  for kind in workerd node; do
    echo "| CPU s per 1,000 new orders, $kind | $(cpu_per_k "$old" $kind) | $(cpu_per_k "$new" $kind) | |"
  done
  echo "| fsync-family calls per new order (workerd) | $(cat "$old.syncs") | $(cat "$new.syncs") | |"
  echo "| workerd peak RSS, MiB | $(cat "$old.rss") | $(cat "$new.rss") | |"
done

d="$dir/bare-delivering"
echo
echo "ordergate-edge with delivery on (bare runner), receiver on loopback verifying signatures"
echo "| | value | against the old worker |"
echo "|---|---|---|"
for scenario in new replay; do
  a=$(field "$dir/bare-old-worker-$scenario.json" "round(r['requests_per_second'])")
  b=$(field "$d-$scenario.json" "round(r['requests_per_second'])")
  echo "| $scenario: requests/s | $b | $(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.2f×", (a > 0 ? b / a : 0)}') |"
  echo "| $scenario: p99 ms | $(field "$d-$scenario.json" "round(r['latency_ms']['p99'], 1)") | |"
done
echo "| orders delivered / bad signatures / requests | $(field "$d-receiver.json" "f\"{r['orders']} / {r['bad_signatures']} / {r['requests']}\"") | |"
echo "| seconds to deliver what was left after the load | $(cat "$d.drain") | |"
echo "| lag at $(field "$d-half.json" "round(r['requests_per_second'])") new orders/s (half the rate): p50 / p99 / max ms | $(field "$d-half-receiver.json" "f\"{r['lag_ms']['p50']} / {r['lag_ms']['p99']} / {r['lag_ms']['max']}\"") | |"
echo "| workerd peak RSS, MiB | $(cat "$d.rss") | |"
