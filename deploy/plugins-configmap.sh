#!/usr/bin/env bash
# Prints the ConfigMap `switchyard-plugins` holding the built plugins
# (plugins/*.wasm, from scripts/build-plugins.sh). Apply it to hot-swap them
# in every running pod:
#   deploy/plugins-configmap.sh | kubectl apply -n switchyard-production -f -
# The kubelet refreshes the mounted folder within its sync period (about a
# minute) and each pod's plugin watcher loads what changed; a plugin the
# host refuses leaves the running one in place. A ConfigMap holds at most
# 1 MiB, so the script refuses a larger set.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
kubectl="${KUBECTL:-kubectl}"
shopt -s nullglob
wasm=("$root"/plugins/*.wasm)
[ ${#wasm[@]} -gt 0 ] || { echo "no plugins/*.wasm: run scripts/build-plugins.sh first" >&2; exit 1; }
total=$(cat "${wasm[@]}" | wc -c)
# binaryData is base64: 4/3 of the bytes, under the 1 MiB object limit.
[ $((total * 4 / 3)) -lt 1000000 ] || { echo "plugins total ${total} bytes: too large for one ConfigMap" >&2; exit 1; }
args=()
for file in "${wasm[@]}"; do args+=("--from-file=$file"); done
"$kubectl" create configmap switchyard-plugins "${args[@]}" --dry-run=client -o yaml
