#!/usr/bin/env bash
# Reproduces the table in BENCHMARKS.md from a clean checkout: the bare axum handler
# and ordergate on SQLite under the same wrk load (1 thread, 32 connections, 10 s,
# loopback, open mode), the server's peak RSS, the disk's fsync rate, ordergate bench's
# invariant check, and (with --retained) new orders with 0 / 1 M / 10 M retained keys.
#
# A shared machine drifts by ±20% from minute to minute, so the three loads run in
# interleaved rounds (ROUNDS, default 3): each round measures the bare handler, new
# orders and replays back to back, its ratios are taken within the round, and the table
# shows the median of the rounds.
# Needs wrk (apt-get install wrk); --retained also needs sqlite3 and ~14 GB of disk.
# Usage: [ROUNDS=n] bench/run-all.sh [--retained]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
dir=target/bench-all; build_into_empty "$dir"
rounds=${ROUNDS:-3}
wrk_run() { # URL SCRIPT -> "req/s p99_ms"
  local out; out=$(wrk -t1 -c32 -d10s --latency -s "$2" "$1")
  echo "$out" | awk '
    /Requests\/sec/ {rps = $2}
    $1 == "99%" {v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
                 p99 = (u == "us") ? v / 1000 : (u == "s") ? v * 1000 : v}
    END {printf "%s %.2f\n", rps, p99}'
}
# The server's own latency histogram for OUTCOME (created, replayed): "le count" lines.
buckets() {
  curl -sf "http://$addr/metrics" | awk -F'[{}"]' -v o="outcome=\"$1\"" \
    '/duration_seconds_bucket/ && /post_orders/ && index($0, o) {print $3, $NF + 0}'
}
# p99 per request from two bucket snapshots: the upper bound of the bucket that holds it.
server_p99() { # BEFORE AFTER -> ms
  awk 'FILENAME == ARGV[1] {before[$1] = $2; next}
       {d[$1] = $2 - before[$1]; if ($1 == "+Inf") total = d[$1]}
       END {best = ""; for (le in d) if (le != "+Inf" && total > 0 && d[le] >= 0.99 * total && (best == "" || le + 0 < best + 0)) best = le
            if (best == "") print "inf"; else printf "%.1f\n", best * 1000}' "$1" "$2"
}

echo "machine: $(nproc) cores, $(free -g | awk '/Mem/ {print $2}') GiB, $(uname -r)"
echo "filesystem of $dir: $(df -T "$dir" | awk 'NR==2 {print $2}')"
start=$(date +%s.%N)
dd if=/dev/zero of="$dir/fsync.test" bs=4k count=2000 oflag=dsync 2>/dev/null
end=$(date +%s.%N)
echo "fsync rate (dd 4 KiB oflag=dsync): $(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.0f", 2000 / (b - a)}')/s"
rm -f "$dir/fsync.test"

start_servers "$dir"

echo "round: bare req/s p99 ms | new orders req/s p99 ms, server p99 ms | replays req/s p99 ms, server p99 ms"
for round in $(seq "$rounds"); do
  read -r bare_rps bare_p99 < <(wrk_run "http://$bare_addr/orders" bench/new-orders.lua)
  buckets created >"$dir/before"
  read -r new_rps new_p99 < <(wrk_run "http://$addr/orders" bench/new-orders.lua)
  buckets created >"$dir/after"
  new_server=$(server_p99 "$dir/before" "$dir/after")
  buckets replayed >"$dir/before"
  read -r rep_rps rep_p99 < <(wrk_run "http://$addr/orders" bench/replay.lua)
  buckets replayed >"$dir/after"
  rep_server=$(server_p99 "$dir/before" "$dir/after")
  echo "$round: $bare_rps $bare_p99 | $new_rps $new_p99, $new_server | $rep_rps $rep_p99, $rep_server"
  echo "$bare_rps $bare_p99 $new_rps $new_p99 $rep_rps $rep_p99 $new_server $rep_server" >>"$dir/rounds"
done
kill $bare
per_request=$(./target/release/ordergate bench --url "http://$addr" --scenario new --connections 32 --duration 10s 2>/dev/null | grep -E '^(answers|latency)' | tr -s ' ' | tr '\n' ' ')
check=$(./target/release/ordergate bench --url "http://$addr" --scenario race --duration 5s --json 2>/dev/null)
rss_kib=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)

col() { awk -v c="$1" '{print $c}' "$dir/rounds" | median; }
ratio_col() { awk -v c="$1" '{printf "%.3f\n", $c / $1}' "$dir/rounds" | median; }
echo
echo "Medians of $rounds rounds; each ratio is taken within its round."
echo
echo "| figure | req/s | p99 (wrk) | p99 per request (server) | ratio to bare | target |"
echo "|---|---|---|---|---|---|"
echo "| bare axum handler | $(col 1) | $(col 2) ms | | 1.00 | |"
echo "| durable new orders, SQLite | $(col 3) | $(col 4) ms | <= $(col 7) ms | $(ratio_col 3) | >= 0.40, p99 <= 5 ms |"
echo "| replays of one key | $(col 5) | $(col 6) ms | <= $(col 8) ms | $(ratio_col 5) | >= 0.70 |"
echo "| peak RSS of ordergate | $((rss_kib / 1024)) MiB | | | | <= 64 MiB |"
echo
echo "wrk 4.1's percentiles are corrected for coordinated omission: each answer slower than"
echo "the mean interval between two requests on a connection adds made-up samples, so one"
echo "pause of the writer counts as thousands of slow requests. The server column is the"
echo "bucket bound of ordergate's own histogram for the same run, one sample per request."
echo
echo "ordergate bench --scenario new (32 connections, 10 s, per-request HdrHistogram): $per_request"
echo
echo "ordergate bench --scenario race: $(echo "$check" | tr -d '\n ' | grep -o '"violations":[0-9]*'), $(echo "$check" | tr -d '\n ' | grep -o '"answered":[0-9]*')"
if [ "${1:-}" = "--retained" ]; then
  kill $pid; wait $pid 2>/dev/null || true
  bench/retained.sh
fi
