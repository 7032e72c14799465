# Helpers shared by the bench scripts; `source bench/lib.sh` from the repository root.

# Waits until a server answers on ADDR: ordergate's /healthz, or any answer to
# POST /orders from the bare handler, which has no other route.
wait_up() { until curl -sf "http://$1/healthz" >/dev/null 2>&1 || curl -sf -o /dev/null -X POST "http://$1/orders" 2>/dev/null; do sleep 0.1; done; }

# A / B to two decimals.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }

# Spreads the expiries of a stopped store's records over SPAN_MS from START_MS, in the
# order the records were accepted (N records), so the purge deletes them at an even rate.
spread_expiries() { # DB START_MS SPAN_MS N
  sqlite3 "$1" "PRAGMA journal_mode = DELETE; PRAGMA journal_mode = OFF;
    PRAGMA synchronous = OFF; PRAGMA cache_size = -2000000;
    UPDATE idempotency_keys SET expires_at_ms = $2 + (rowid - 1) * $3 / max($4, 1);
    PRAGMA journal_mode = WAL;" >/dev/null
}

# The median of the numbers on standard input, one a line.
median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

# The bare handler on $bare_addr and ordergate on SQLite in DIR on $addr, both killed on
# exit ($bare and $pid hold their process ids), with the order replay.lua replays placed.
# The addresses are set here, not when this file is sourced, so a script's own $addr stays.
start_servers() { # DIR
  bare_addr=127.0.0.1:18180
  addr=127.0.0.1:18181
  ./target/release/examples/bare_handler $bare_addr & bare=$!
  RUST_LOG=warn ./target/release/ordergate serve --listen $addr --database "sqlite://$1/b.db" 2>"$1/server.log" &
  pid=$!
  trap 'kill $pid $bare 2>/dev/null || true' EXIT
  wait_up $bare_addr
  wait_up $addr
  curl -sf -X POST "http://$addr/orders" -H 'Idempotency-Key: bench-replay' \
    -H 'Content-Type: application/json' -d '{"symbol":"AAPL","side":"buy","quantity":100}' >/dev/null
}

# Builds the release binaries and the bare handler, and empties DIR for this run.
build_into_empty() { # DIR
  cargo build --release --locked -q --bins --examples
  rm -rf "$1"; mkdir -p "$1"
}

# New orders with fresh random keys (bench/random-keys.lua), wrk -t1 -c32 for SECONDS
# against ADDR; prints "req/s p99_ms".
wrk_random_keys() { # ADDR SECONDS
  wrk -t1 -c32 -d"$2"s --latency -s bench/random-keys.lua "http://$1/orders" | awk '
    /Requests\/sec/ {rps = $2}
    $1 == "99%" {v = $2; ms = v + 0; if (v ~ /us$/) ms /= 1000; else if (v ~ /[0-9]s$/) ms *= 1000; p99 = ms}
    END {printf "%d %.1f\n", rps, p99}'
}
