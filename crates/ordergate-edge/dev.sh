#!/usr/bin/env bash
# Serves ordergate-edge on local workerd (`wrangler dev`, local mode), in the
# foreground, with its Durable Objects' state kept under --state DIR.
#
#   dev.sh --listen HOST:PORT --state DIR [--api-key TENANT:TOKEN ...]
#          [--result-ttl D] [--lease-ttl D] [--max-body N] [--open]
#          [--shards N [--previous-shards N[,N…] --shards-changed-at RFC3339]]
#          [--legacy-kv NAMESPACE_ID --legacy-tenant TENANT] [--limits-file PATH]
#          [--deliver URL --deliver-secret whsec_… [--deliver-max-age D]]
#
# Builds the Worker first if its sources changed. Prints nothing secret: API keys and
# the webhook secret go to a 0600 file under DIR, never to a command line. SIGTERM or SIGINT stops workerd
# and every child, then exits 0. Nothing reaches the network: no metrics, no
# Cloudflare lookups, no remote bindings.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

usage() { sed -n '5,9p' "$0" | sed 's/^# *//' >&2; exit 2; }
listen="" state="" keys="" open="" legacy_kv="" legacy_tenant="" limits_file=""
declare -a vars=()
while [ $# -gt 0 ]; do
    case "$1" in
        --listen) listen="$2"; shift 2 ;;
        --state) state="$2"; shift 2 ;;
        --api-key) keys="${keys:+$keys,}$2"; shift 2 ;;
        --result-ttl) vars+=(ORDERGATE_RESULT_TTL "$2"); shift 2 ;;
        --lease-ttl) vars+=(ORDERGATE_LEASE_TTL "$2"); shift 2 ;;
        --max-body) vars+=(ORDERGATE_MAX_BODY "$2"); shift 2 ;;
        --shards) vars+=(ORDERGATE_SHARDS "$2"); shift 2 ;;
        --previous-shards) vars+=(ORDERGATE_PREVIOUS_SHARDS "$2"); shift 2 ;;
        --shards-changed-at) vars+=(ORDERGATE_SHARDS_CHANGED_AT "$2"); shift 2 ;;
        --open) open=1; shift ;;
        --legacy-kv) legacy_kv="$2"; shift 2 ;;
        --legacy-tenant) legacy_tenant="$2"; shift 2 ;;
        --limits-file) limits_file="$2"; shift 2 ;;
        --deliver) vars+=(ORDERGATE_DELIVER "$2"); shift 2 ;;
        --deliver-secret) vars+=(ORDERGATE_DELIVER_SECRET "$2"); shift 2 ;;
        --deliver-max-age) vars+=(ORDERGATE_DELIVER_MAX_AGE "$2"); shift 2 ;;
        *) echo "dev.sh: unknown argument $1" >&2; usage ;;
    esac
done
[ -n "$listen" ] && [ -n "$state" ] || usage
# The limits file becomes the variable ORDERGATE_LIMITS: a single-quoted .dev.vars
# value keeps its lines and double quotes as they are, so it may hold no single quote.
if [ -n "$limits_file" ]; then
    limits="$(cat "$limits_file")"
    case "$limits" in *"'"*) echo "dev.sh: $limits_file: no single quotes, please (use TOML's double-quoted strings)" >&2; exit 2 ;; esac
fi
host="${listen%:*}" port="${listen##*:}"
mkdir -p "$state"
state="$(cd "$state" && pwd)"

# One build at a time, and only when a source is newer than the build.
(
    flock 9
    stamp="$here/build/worker/shim.mjs"
    if [ ! -f "$stamp" ] || [ -n "$(find "$here/src" "$here/Cargo.toml" "$here/Cargo.lock" \
            "$here/../ordergate-core/src" "$here/../../docs/openapi.json" -newer "$stamp" -print -quit)" ]; then
        "$here/build.sh" >&2
    fi
) 9>"$here/.build.lock"

# Settings for the Worker: variables and the secret, in a file only we can read.
umask 077
env_file="$state/.dev.vars"
{
    [ -n "$keys" ] && echo "ORDERGATE_API_KEYS=$keys"
    [ -n "$open" ] && echo "ORDERGATE_OPEN_MODE=allow"
    for ((i = 0; i < ${#vars[@]}; i += 2)); do echo "${vars[i]}=${vars[i+1]}"; done
    [ -n "$legacy_tenant" ] && echo "ORDERGATE_LEGACY_TENANT=$legacy_tenant"
    [ -n "$limits_file" ] && printf "ORDERGATE_LIMITS='%s'\n" "$limits"
    true
} >"$env_file"

# The crate's wrangler.toml, with absolute paths, and the legacy namespace if asked.
config="$state/wrangler.toml"
sed "s|^main = \"build/worker/shim.mjs\"|main = \"$here/build/worker/shim.mjs\"|" \
    "$here/wrangler.toml" >"$config"
if [ -n "$legacy_kv" ]; then
    printf '\n[[kv_namespaces]]\nbinding = "LEGACY_ORDERS"\nid = "%s"\n' "$legacy_kv" >>"$config"
fi

exec "$here/serve-local.sh" "$config" "$state" "$listen" "$env_file"
