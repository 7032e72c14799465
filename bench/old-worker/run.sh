#!/usr/bin/env bash
# run.sh --listen HOST:PORT --state DIR
# Serves the old worker (worker.ts) on local workerd, its KV namespace
# ("old-worker-orders") kept under DIR/data. SIGTERM/SIGINT stop it, exit 0.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
listen="" state=""
while [ $# -gt 0 ]; do
    case "$1" in
        --listen) listen="$2"; shift 2 ;;
        --state) state="$2"; shift 2 ;;
        *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
[ -n "$listen" ] && [ -n "$state" ] || { echo "usage: run.sh --listen HOST:PORT --state DIR" >&2; exit 2; }
mkdir -p "$state"
state="$(cd "$state" && pwd)"
config="$state/old-worker.toml"
sed "s|^main = \"worker.ts\"|main = \"$here/worker.ts\"|" "$here/wrangler.toml" >"$config"
exec "$here/../../crates/ordergate-edge/serve-local.sh" "$config" "$state" "$listen"
