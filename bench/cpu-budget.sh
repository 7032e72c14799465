#!/usr/bin/env bash
# How much CPU the whole machine spends per request (server, wrk and the kernel's
# network and block work together), for the bare handler, new orders and replays under
# the same wrk load as run-all.sh. wrk shares the 2 cores with the server, so a ratio
# of two loads can never exceed the inverse ratio of their CPU per request: this prints
# that ceiling, and what a new order may cost for the ratio to reach 0.40.
#
# Busy time is every non-idle, non-iowait jiffy of /proc/stat over the wrk run.
# Needs wrk. Usage: [ROUNDS=n] bench/cpu-budget.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
dir=target/bench-cpu; build_into_empty "$dir"
rounds=${ROUNDS:-3}
start_servers "$dir"

jiffies() { head -1 /proc/stat | awk '{print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6}'; }
# URL SCRIPT -> "req/s busy_fraction cpu_us_per_request"
measure() {
  local b1 i1 b2 i2 out
  read -r b1 i1 < <(jiffies)
  out=$(wrk -t1 -c32 -d10s -s "$2" "$1")
  read -r b2 i2 < <(jiffies)
  echo "$out" | awk -v b=$((b2 - b1)) -v i=$((i2 - i1)) -v hz="$(getconf CLK_TCK)" '
    /requests in/ {n = $1} /Requests\/sec/ {rps = $2}
    END {printf "%.0f %.3f %.1f\n", rps, b / (b + i), b * 1e6 / hz / n}'
}

echo "machine: $(nproc) cores, $(uname -r)"
echo "round: load req/s busy CPU-us/request"
for round in $(seq "$rounds"); do
  read -r br bb bk < <(measure "http://$bare_addr/orders" bench/new-orders.lua)
  read -r nr nb nk < <(measure "http://$addr/orders" bench/new-orders.lua)
  read -r rr rb rk < <(measure "http://$addr/orders" bench/replay.lua)
  echo "$round: bare $br $bb $bk | new $nr $nb $nk | replay $rr $rb $rk"
  echo "$br $bb $bk $nr $nb $nk $rr $rb $rk" >>"$dir/rounds"
done

col() { awk -v c="$1" '{print $c}' "$dir/rounds" | median; }
# Ceiling of new/bare at equal utilisation; the CPU a new order may cost for 0.40 at the
# utilisation each load reached (new orders wait on fsync, so their cores idle more).
ceiling=$(awk '{printf "%.3f\n", $3 / $6}' "$dir/rounds" | median)
allowed=$(awk '{printf "%.1f\n", $3 / 0.40 * $5 / $2}' "$dir/rounds" | median)
echo
echo "Medians of $rounds rounds (CPU per request: all processes and the kernel, both cores)."
echo
echo "| load | req/s | cores busy | CPU per request |"
echo "|---|---|---|---|"
echo "| bare axum handler | $(col 1) | $(awk -v v="$(col 2)" 'BEGIN {printf "%.0f%%", v * 100}') | $(col 3) us |"
echo "| durable new orders, SQLite | $(col 4) | $(awk -v v="$(col 5)" 'BEGIN {printf "%.0f%%", v * 100}') | $(col 6) us |"
echo "| replays of one key | $(col 7) | $(awk -v v="$(col 8)" 'BEGIN {printf "%.0f%%", v * 100}') | $(col 9) us |"
echo
echo "new/bare ceiling at equal utilisation: $ceiling"
echo "CPU per new order that 0.40 x bare needs at the measured utilisation: $allowed us"
