#!/usr/bin/env bash
# Installs a Python tool the suite runs (moto: the SQS of the queue suite;
# schemathesis: the API fuzzer) into tools/<tool>/venv, at the versions
# tools/<tool>/requirements.txt pins. Cheap when it is already installed.
# Usage: scripts/python-tool.sh moto|schemathesis
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tool="${1:?usage: scripts/python-tool.sh <tool> (a folder of tools/ with a requirements.txt)}"
tools="$root/tools/$tool"
[ -f "$tools/requirements.txt" ] || { echo "no tools/$tool/requirements.txt" >&2; exit 1; }
stamp="$tools/venv/.installed-requirements"
if [ -f "$stamp" ] && cmp -s "$stamp" "$tools/requirements.txt"; then
  exit 0
fi
command -v python3 >/dev/null || { echo "python3 is needed: apt-get install python3 python3-venv" >&2; exit 1; }
python3 -m venv "$tools/venv" >&2 || { echo "python3 cannot make a venv: apt-get install python3-venv" >&2; exit 1; }
"$tools/venv/bin/pip" install --quiet --disable-pip-version-check -r "$tools/requirements.txt" >&2
cp "$tools/requirements.txt" "$stamp"
