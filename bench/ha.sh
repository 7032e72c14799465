#!/usr/bin/env bash
# High availability on Patroni, measured:
# 1. seconds without a 201 for each failure case, median of RUNS runs (default 3) of
#    the tests in crates/ordergate/tests/api/high_availability.rs (two gateways, eight
#    clients, a local three-member cluster in strict synchronous mode);
# 2. new orders/s on that cluster (the multi-host URL) against a single PostgreSQL of
#    the same version and settings on the same machine, release build, wrk -t1 -c32
#    -d10s, ROUNDS interleaved rounds (default 2): the cost of synchronous replication.
# Needs patroni, etcd (Debian's patroni, etcd-server), wrk, and root (the servers run
# as the postgres user).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
runs=${RUNS:-3}
rounds=${ROUNDS:-2}
parts=${PARTS:-1 2}
dir=$PWD/target/bench-ha

if [[ " $parts " == *" 1 "* ]]; then
echo "== 1. seconds without a 201, median of $runs runs"
mkdir -p "$(dirname "$dir")"; : >"$dir.gaps"; : >"$dir.log"
for run in $(seq "$runs"); do
  cargo test -q -p ordergate --test api high_availability:: -- --nocapture --test-threads 1 2>/dev/null \
    | tee -a "$dir.log" | grep -oE '(Switchover|NodeCrash|PostmasterCrash|Zombie|ZombieCancelled): [0-9]+ acknowledged, longest gap without a 201: [0-9.]+[mµ]?s' >>"$dir.gaps" || true
done
for case in Switchover NodeCrash PostmasterCrash Zombie ZombieCancelled; do
  values=$(grep "^$case:" "$dir.gaps" || true)
  [ -n "$values" ] || { echo "$case: no figure"; continue; }
  values=$(echo "$values" | sed 's/.*a 201: //' \
    | awk '/ms$/ {sub("ms", ""); print $1 / 1000; next} /µs$/ {sub("µs", ""); print $1 / 1e6; next} {sub("s", ""); print $1}')
  echo "$case: $(echo "$values" | tr '\n' ' ')-> median $(echo "$values" | median) s"
done
echo "test runs: $(grep -c '^test result: ok' "$dir.log" || true) passed, $(grep -c '^test result: FAILED' "$dir.log" || true) failed (all output in $dir.log)"
fi

if [[ " $parts " == *" 2 "* ]]; then
echo "== 2. new orders/s: the Patroni cluster against a single PostgreSQL"
build_into_empty "$dir"
chown postgres: "$dir"
bin=$(ls -d /usr/lib/postgresql/*/bin | sort | tail -1)
as_pg() { runuser -u postgres -- "$@"; }
# Patroni runs under runuser: stop it by its command line, then its servers by PID.
trap 'kill $(jobs -p) 2>/dev/null || true; pkill -f "patroni $dir/" || true; sleep 2
  for p in "$dir"/*/data/postmaster.pid "$dir"/single/data/postmaster.pid; do
    [ -f "$p" ] && kill -9 "$(head -1 "$p")" 2>/dev/null || true; done' EXIT
etcd --name e1 --data-dir "$dir/etcd" --listen-client-urls http://127.0.0.1:12479 \
  --advertise-client-urls http://127.0.0.1:12479 --listen-peer-urls http://127.0.0.1:12480 \
  --initial-advertise-peer-urls http://127.0.0.1:12480 --initial-cluster e1=http://127.0.0.1:12480 \
  >"$dir/etcd.log" 2>&1 &
sleep 1
hosts=""
for i in 1 2 3; do
  m="$dir/m$i"; mkdir -p "$m"
  cat >"$m/patroni.yml" <<YML
scope: ordergate-bench
name: m$i
restapi: {listen: 127.0.0.1:1850$i, connect_address: 127.0.0.1:1850$i}
etcd3: {hosts: 127.0.0.1:12479}
bootstrap:
  dcs:
    ttl: 10
    loop_wait: 1
    retry_timeout: 3
    synchronous_mode: true
    synchronous_mode_strict: true
    postgresql: {use_pg_rewind: true, parameters: {wal_log_hints: "on"}}
  initdb: [{encoding: UTF8}, {auth: trust}]
  pg_hba: [local all all trust, host all all 127.0.0.1/32 trust, host replication all 127.0.0.1/32 trust]
postgresql:
  listen: 127.0.0.1:1550$i
  connect_address: 127.0.0.1:1550$i
  data_dir: $m/data
  bin_dir: $bin
  pgpass: $m/pgpass
  authentication: {superuser: {username: postgres}, replication: {username: postgres}}
  parameters: {unix_socket_directories: $m}
YML
  chown -R postgres: "$m"
  as_pg patroni "$m/patroni.yml" >"$m/patroni.log" 2>&1 &
  [ "$i" = 1 ] && until curl -sf http://127.0.0.1:18501/primary >/dev/null; do sleep 0.5; done
  hosts="$hosts${hosts:+,}127.0.0.1:1550$i"
done
until curl -s http://127.0.0.1:18501/cluster | grep -q sync_standby; do sleep 0.5; done
mkdir -p "$dir/single"; chown postgres: "$dir/single"
as_pg "$bin/initdb" -A trust -U postgres -D "$dir/single/data" >/dev/null
as_pg "$bin/postgres" -D "$dir/single/data" -p 15510 -c listen_addresses=127.0.0.1 -k "$dir/single" \
  >"$dir/single/log" 2>&1 &
until "$bin/pg_isready" -h 127.0.0.1 -p 15510 -q; do sleep 0.2; done
addr=127.0.0.1:18195
rps() { # DATABASE-URL
  RUST_LOG=warn ./target/release/ordergate serve --listen $addr --database "$1" 2>>"$dir/server.log" & local pid=$!
  wait_up $addr
  wrk -t1 -c32 -d10s -s bench/new-orders.lua "http://$addr/orders" | awk '/Requests\/sec/ {print $2}'
  kill $pid; wait $pid 2>/dev/null || true
}
for round in $(seq "$rounds"); do
  single=$(rps "postgres://postgres@127.0.0.1:15510/postgres")
  cluster=$(rps "postgres://postgres@$hosts/postgres?target_session_attrs=read-write")
  echo "round $round: single $single req/s, cluster $cluster req/s (ratio $(ratio "$cluster" "$single"))"
done
fi
