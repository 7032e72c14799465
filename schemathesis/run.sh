#!/usr/bin/env bash
# Runs Schemathesis against a live ordergate on one backend, driven by docs/openapi.json:
# every check, positive and negative (invalid) inputs, and the stateful links (POST,
# then GET by the answer's orderId and key).
#
#   schemathesis/run.sh sqlite|postgres [MAX_EXAMPLES]
#
# Needs target/debug/ordergate (cargo build), python3, and for postgres a server at
# $ORDERGATE_TEST_POSTGRES (default postgres://postgres@127.0.0.1:5432/postgres).
set -euo pipefail
cd "$(dirname "$0")/.."
backend=${1:?usage: schemathesis/run.sh sqlite|postgres [MAX_EXAMPLES]}
examples=${2:-100}
venv=${SCHEMATHESIS_VENV:-target/schemathesis-venv}
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$(cut -d= -f3 schemathesis/requirements.txt)"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r schemathesis/requirements.txt
fi

work=$(mktemp -d)
admin=${ORDERGATE_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/postgres}
dbname="ordergate_schemathesis_$$"
case "$backend" in
  sqlite) database="sqlite://$work/ordergate.db" ;;
  postgres)
    psql -q "$admin" -c "CREATE DATABASE $dbname"
    database="${admin%/*}/$dbname"
    ;;
  *) echo "unknown backend $backend" >&2; exit 2 ;;
esac
cleanup() {
  if [ -n "${server:-}" ]; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  if [ "$backend" = postgres ]; then
    psql -q "$admin" -c "DROP DATABASE IF EXISTS $dbname WITH (FORCE)" || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# Delivery is on (to a port where nothing listens, so deliveries stay pending), so
# that GET /orders/{orderId}/delivery answers for every order placed. Pre-trade
# controls are on with limits that generated orders cross now and then (a quantity or
# notional above them), so their refusals meet the document too.
cat >"$work/limits.toml" <<'LIMITS'
[default]
max_quantity = 1_000_000_000_000
max_notional = "100000000000000"
orders_per_second = 100000
LIMITS
RUST_LOG=warn,ordergate::server=info,ordergate::delivery=error target/debug/ordergate serve \
  --listen 127.0.0.1:0 --database "$database" --api-key schemathesis:st-token \
  --deliver http://127.0.0.1:9/orders --deliver-secret whsec_c2NoZW1hdGhlc2lz \
  --limits-file "$work/limits.toml" \
  2> >(tee "$work/log" >&2) &
server=$!
for _ in $(seq 200); do
  addr=$(grep -o 'addr=[0-9.:]*' "$work/log" 2>/dev/null | head -1 | cut -d= -f2 || true)
  [ -n "$addr" ] && break
  sleep 0.05
done
[ -n "$addr" ] || { echo "ordergate did not start" >&2; exit 1; }

"$venv/bin/schemathesis" --config-file schemathesis/schemathesis.toml run docs/openapi.json \
  --url "http://$addr" -H "Authorization: Bearer st-token" \
  --checks all --mode all --max-examples "$examples" --seed 20261130 \
  --generation-database none --no-color
