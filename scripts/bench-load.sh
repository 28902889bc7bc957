#!/usr/bin/env bash
# The load proof of BENCHMARKS.md: installs what it needs (wrk from Debian,
# anvil), then runs host/benches/load.rs, which builds the example plugins.
# Usage: scripts/bench-load.sh [accept] [api-only] [confirmed] [swap]   (none: all)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
if ! command -v wrk >/dev/null; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get install -y wrk >&2 || { $sudo apt-get update >&2 && $sudo apt-get install -y wrk >&2; }
fi
bash scripts/npm-tools.sh
exec cargo bench -p switchyard --bench load -- "$@"
