#!/usr/bin/env bash
# serve-local.sh CONFIG STATE HOST:PORT [ENV_FILE]
# Runs `wrangler dev` (local mode: workerd on this machine) in the foreground with
# CONFIG, persisting under STATE/data. Offline: no metrics, no Cloudflare lookups.
# SIGTERM or SIGINT stops workerd and every child, then exits 0. Shared by dev.sh and
# the old worker's runner (bench/old-worker/run.sh).
#
# With ORDERGATE_EDGE_RUNNER=bare, the same Worker runs on the same workerd through
# Miniflare's API instead (serve-bare.mjs: no dev proxy, no inspector), on the same
# state. It needs ENV_FILE to be CONFIG's .dev.vars, as dev.sh writes it.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
config="$1" state="$2" listen="$3" env_file="${4:-}"
host="${listen%:*}" port="${listen##*:}"

[ -x "$here/node_modules/.bin/wrangler" ] ||
    (cd "$here" && npm ci --no-audit --no-fund --loglevel=error >&2)

export CLOUDFLARE_CF_FETCH_ENABLED=false WRANGLER_SEND_METRICS=false
export WRANGLER_LOG_PATH="$state/logs" XDG_CONFIG_HOME="$state/config"
export NO_UPDATE_NOTIFIER=1 CI=1

if [ "${ORDERGATE_EDGE_RUNNER:-wrangler}" = bare ]; then
    if [ -n "$env_file" ] && [ "$env_file" != "$(dirname "$config")/.dev.vars" ]; then
        echo "serve-local.sh: the bare runner reads CONFIG's .dev.vars, not $env_file" >&2
        exit 2
    fi
    command=(node "$here/serve-bare.mjs" "$config" "$state" "$listen")
else
    command=("$here/node_modules/.bin/wrangler" dev --config "$config" --ip "$host" --port "$port" --inspector-port 0
      --persist-to "$state/data" --show-interactive-dev-session=false
      --log-level "${ORDERGATE_EDGE_LOG:-warn}")
    [ -n "$env_file" ] && command+=(--env-file "$env_file")
fi

# Its own process group, so that a signal reaches workerd and every helper.
set -m
"${command[@]}" &
child=$!
set +m

stop() {
    kill -TERM -- "-$child" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 -- "-$child" 2>/dev/null || exit 0
        sleep 0.1
    done
    kill -KILL -- "-$child" 2>/dev/null || true
    exit 0
}
trap stop TERM INT
# wait returns early when a trapped signal arrives; then `stop` ends the script.
wait "$child" || true
wait "$child"
