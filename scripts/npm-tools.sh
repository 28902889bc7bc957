#!/usr/bin/env bash
# Installs the npm tools Switchyard uses (tools/npm: anvil, the dev chain;
# OpenZeppelin's relayer SDK, for the compatibility test; OpenZeppelin
# Contracts and solc, for the gasless test) at the versions
# package-lock.json pins. Cheap when they are already installed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$root/tools/npm"
stamp="$tools/node_modules/.installed-lock"
if [ -f "$stamp" ] && cmp -s "$stamp" "$tools/package-lock.json"; then
  exit 0
fi
command -v npm >/dev/null || { echo "npm is needed (Node.js 20+): apt-get install nodejs npm" >&2; exit 1; }
npm ci --prefix "$tools" --no-audit --no-fund --loglevel=error >&2
cp "$tools/package-lock.json" "$stamp"
