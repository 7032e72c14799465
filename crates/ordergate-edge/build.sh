#!/usr/bin/env bash
# Builds the Worker (build/worker/shim.mjs + build/index_bg.wasm) with worker-build.
# Its tools come only from the registries, installed here when missing: the wasm32
# target (rustup), worker-build and wasm-bindgen-cli (crates.io, exact versions: the
# CLI must match the wasm-bindgen that Cargo.lock pins), wrangler and esbuild (npm,
# package-lock.json). worker-build would otherwise download wasm-bindgen, wasm-opt and
# esbuild from GitHub: WASM_BINDGEN_BIN and ESBUILD_BIN point it at ours, and wasm-opt
# is off (Cargo.toml).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"

WORKER_BUILD_VERSION=0.8.7
BINDGEN_VERSION=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock)

installed_version() { command -v "$1" >/dev/null 2>&1 && "$1" --version 2>/dev/null | awk '{ print $NF }'; }

rustup target list --installed | grep -qx wasm32-unknown-unknown ||
    rustup target add wasm32-unknown-unknown >&2
[ "$(installed_version worker-build)" = "$WORKER_BUILD_VERSION" ] ||
    cargo install worker-build --version "$WORKER_BUILD_VERSION" --locked >&2
[ "$(installed_version wasm-bindgen)" = "$BINDGEN_VERSION" ] ||
    cargo install wasm-bindgen-cli --version "$BINDGEN_VERSION" --locked >&2
[ -x node_modules/.bin/esbuild ] && [ -x node_modules/.bin/wrangler ] ||
    npm ci --no-audit --no-fund --loglevel=error >&2

export WASM_BINDGEN_BIN="$(command -v wasm-bindgen)"
export ESBUILD_BIN="$here/node_modules/.bin/esbuild"
worker-build --release
