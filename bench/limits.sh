#!/usr/bin/env bash
# Pre-trade controls, measured:
# 1. New limit orders on SQLite with a limits file of 10,000 tenants, every control on
#    for the tenant under load (halt off, 3 allowed symbols, max quantity, max notional,
#    a rate it never reaches), against the same server without a file. wrk, 1 thread,
#    32 connections, 10 s a round; the two servers alternate, ROUNDS rounds each.
# 2. The kill switch: time from SIGHUP (after halted = true was written) to the first
#    new order answered 403, polled back to back; TRIALS trials.
# Usage: bench/limits.sh [ROUNDS] [TRIALS]       (needs wrk: apt-get install wrk)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
rounds=${1:-3} trials=${2:-20}
cargo build --release --locked -q
dir=target/bench-limits; rm -rf "$dir"; mkdir -p "$dir"

tenants() { # HALTED: 10,000 sections, the one under load (t5000) included
  echo '[default]'
  echo 'max_quantity = 1_000_000'
  for i in $(seq 1 10000); do
    printf '[tenant.t%d]\nmax_quantity = 1_000_000\nmax_notional = "100000000.00"\n' "$i"
    printf 'orders_per_second = 1_000_000\nsymbols = ["AAPL", "MSFT", "SYM%d"]\n' "$i"
    if [ "$i" = 5000 ]; then echo "halted = $1"; else echo 'halted = false'; fi
  done
}
tenants false >"$dir/limits-off.toml"
tenants true >"$dir/limits-on.toml"
cp "$dir/limits-off.toml" "$dir/limits.toml"

serve() { # NAME ADDR [ARGS…]
  local name=$1 addr=$2; shift 2
  RUST_LOG=info ./target/release/ordergate serve --listen "$addr" \
    --database "sqlite://$dir/$name.db" --api-key t5000:bench-token "$@" >/dev/null 2>"$dir/$name.log" &
  echo $!
}
plain_addr=127.0.0.1:18281 limits_addr=127.0.0.1:18282
plain=$(serve plain $plain_addr)
limited=$(serve limits $limits_addr --limits-file "$dir/limits.toml")
trap 'kill $plain $limited 2>/dev/null || true' EXIT
wait_up $plain_addr; wait_up $limits_addr

rate() { wrk -t1 -c32 -d10s -s bench/limit-orders.lua "http://$1/orders" | awk '/Requests\/sec/ {print $2}'; }
echo "== new limit orders, req/s (no file | 10,000-tenant file)"
: >"$dir/plain.rates"; : >"$dir/limits.rates"
for r in $(seq 1 "$rounds"); do
  p=$(rate $plain_addr); l=$(rate $limits_addr)
  echo "$p" >>"$dir/plain.rates"; echo "$l" >>"$dir/limits.rates"
  echo "round $r: $p | $l"
done
p=$(median <"$dir/plain.rates"); l=$(median <"$dir/limits.rates")
echo "median: $p | $l  ratio $(awk -v a="$l" -v b="$p" 'BEGIN {printf "%.3f", a / b}')"
curl -s "http://$limits_addr/metrics" | grep -E '^ordergate_requests_total\{route="post_orders"' || true

echo "== kill switch: SIGHUP to the first 403, ms"
python3 - "$limits_addr" "$limited" "$dir" "$trials" <<'PY'
import http.client, os, shutil, signal, statistics, sys, time
addr, pid, d, trials = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
host, port = addr.split(":")
conn = http.client.HTTPConnection(host, int(port))
body = '{"symbol":"AAPL","side":"buy","quantity":1}'
n = 0
def status():
    global n
    n += 1
    conn.request("POST", "/orders", body, {"Authorization": "Bearer bench-token",
        "Content-Type": "application/json", "Idempotency-Key": f"kill-{os.getpid()}-{n}"})
    r = conn.getresponse(); r.read(); return r.status
def switch(name, until):
    shutil.copy(f"{d}/{name}", f"{d}/limits.tmp")
    os.replace(f"{d}/limits.tmp", f"{d}/limits.toml")
    sent = time.monotonic()
    os.kill(pid, signal.SIGHUP)
    while status() != until:
        pass
    return (time.monotonic() - sent) * 1000
halts = []
for _ in range(trials):
    halts.append(switch("limits-on.toml", 403))
    switch("limits-off.toml", 201)
halts.sort()
print(f"{trials} trials: median {statistics.median(halts):.1f} ms, "
      f"max {halts[-1]:.1f} ms, min {halts[0]:.1f} ms")
PY
