#!/usr/bin/env bash
# The edge build beside the old worker, on the same local workerd, in one run:
# `ordergate bench` (release build) sends new orders, replays and the race scenario to
# each in turn (CONNECTIONS keep-alive connections, DURATION each, defaults 32 and
# 20s), with the same client on the same 2 cores. workerd's memory (the sum of the RSS
# of its processes, sampled every 0.5 s) is reported at its peak per target.
#
# The old worker (bench/old-worker) has no lookup, so its violations are what its
# clients saw: keys whose answers named two or more orders (`--no-lookup`).
# ordergate-edge is checked against `GET /orders?idempotencyKey=K` as well.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
connections=${CONNECTIONS:-32}
duration=${DURATION:-20s}
dir=target/bench-edge
cargo build --release --locked -q -p ordergate --bin ordergate
crates/ordergate-edge/build.sh >/dev/null 2>&1
rm -rf "$dir"; mkdir -p "$dir"
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT

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

run_target() { # NAME RUNNER ARGS... (the runner is started on 127.0.0.1:18900)
  local name=$1; shift
  local addr=127.0.0.1:18900 lookup=()
  [ "$name" = old-worker ] && lookup=(--no-lookup)
  "$@" --listen $addr --state "$dir/$name" >"$dir/$name.log" 2>&1 & local runner=$!
  until curl -s -o /dev/null "http://$addr/"; do sleep 0.2; done
  touch "$dir/sampling"
  sample_memory "$dir/$name.rss" & local sampler=$!
  for scenario in new replay race; do
    ./target/release/ordergate bench --url "http://$addr" --scenario $scenario \
      --connections "$connections" --duration "$duration" --json "${lookup[@]}" \
      >"$dir/$name-$scenario.json" 2>/dev/null || true
  done
  rm "$dir/sampling"; wait $sampler
  kill -TERM $runner; wait $runner || true
}

run_target old-worker bench/old-worker/run.sh
run_target ordergate-edge crates/ordergate-edge/dev.sh --open

field() { python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print($2)" "$1"; }
echo "| | old worker | ordergate-edge |"
echo "|---|---|---|"
for scenario in new replay race; do
  for metric in "requests/s:round(r['requests_per_second'])" "p99 ms:round(r['latency_ms']['p99'], 1)" \
                "violations:r['violations']" "duplicate orders:r.get('duplicate_orders', 0)" \
                "most orders for one key:r.get('most_orders_for_one_key', 1)"; do
    label=${metric%%:*} expr=${metric#*:}
    case "$scenario/$label" in new/duplicate*|new/most*|replay/duplicate*|replay/most*) continue ;; esac
    echo "| $scenario: $label | $(field "$dir/old-worker-$scenario.json" "$expr") | $(field "$dir/ordergate-edge-$scenario.json" "$expr") |"
  done
done
echo "| workerd peak RSS, MiB | $(cat "$dir/old-worker.rss") | $(cat "$dir/ordergate-edge.rss") |"
