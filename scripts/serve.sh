#!/usr/bin/env bash
# Starts Switchyard on the embedded default: installs what a fresh machine
# lacks (the wasm32-wasip2 toolchain, anvil from npm), builds the example
# plugins and the host, then runs `switchyard serve` with switchyard.toml.
# With no SWITCHYARD_RPC_URL it starts a local dev chain itself.
# Extra arguments go to `serve` (e.g. --listen 127.0.0.1:9090).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/npm-tools.sh
bash scripts/build-plugins.sh >&2
cargo build -p switchyard --bin switchyard >&2
exec target/debug/switchyard serve --config switchyard.toml "$@"
