#!/usr/bin/env bash
# Installs moto_server (tools/moto/venv), the SQS the queue suite starts on
# loopback, at the versions tools/moto/requirements.txt pins. Cheap when it
# is already installed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$root/tools/moto"
stamp="$tools/venv/.installed-requirements"
if [ -f "$stamp" ] && cmp -s "$stamp" "$tools/requirements.txt"; then
  exit 0
fi
command -v python3 >/dev/null || { echo "python3 is needed: apt-get install python3 python3-venv" >&2; exit 1; }
python3 -m venv "$tools/venv" >&2 || { echo "python3 cannot make a venv: apt-get install python3-venv" >&2; exit 1; }
"$tools/venv/bin/pip" install --quiet --disable-pip-version-check -r "$tools/requirements.txt" >&2
cp "$tools/requirements.txt" "$stamp"
