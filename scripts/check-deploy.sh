#!/usr/bin/env bash
# Checks deploy/: renders every overlay with kustomize (kubectl's), validates
# each manifest strictly against Kubernetes' schemas, runs each rendered
# switchyard.toml through `switchyard config check`, and validates the
# plugins ConfigMap built from plugins/*.wasm. Installs its tools first.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/k8s-tools.sh
kubectl="$root/tools/k8s/bin/kubectl"
validate=("$root/tools/k8s/venv/bin/kubernetes-validate" --strict --quiet -k 1.32.0)
python="$root/tools/k8s/venv/bin/python"
switchyard="${SWITCHYARD_BIN:-$root/target/debug/switchyard}"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

for overlay in deploy/overlays/*/; do
  name="$(basename "$overlay")"
  "$kubectl" kustomize "$overlay" > "$out/$name.yaml"
  "${validate[@]}" "$out/$name.yaml"
  # Every config the overlay ships, with the SWITCHYARD_* values its
  # Deployment sets literally, must be one Switchyard accepts.
  "$python" - "$out/$name.yaml" "$out/$name.toml" "$out/$name.env" <<'PY'
import shlex, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
configs = [d for d in docs if d["kind"] == "ConfigMap" and "switchyard.toml" in d.get("data", {})]
if len(configs) != 1:
    sys.exit(f"{sys.argv[1]}: expected one ConfigMap with switchyard.toml, found {len(configs)}")
open(sys.argv[2], "w").write(configs[0]["data"]["switchyard.toml"])
deployment = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "switchyard")
env = deployment["spec"]["template"]["spec"]["containers"][0].get("env", [])
with open(sys.argv[3], "w") as out:
    out.writelines(f"{e['name']}={shlex.quote(e['value'])}\n" for e in env if "value" in e and e["name"].startswith("SWITCHYARD_"))
PY
  (set -a; . "$out/$name.env"; set +a; "$switchyard" config check --strict --config "$out/$name.toml" >/dev/null)
  echo "deploy/overlays/$name: $(grep -c '^kind:' "$out/$name.yaml") manifests valid, config accepted"
done

KUBECTL="$kubectl" bash deploy/plugins-configmap.sh > "$out/plugins.yaml"
"${validate[@]}" "$out/plugins.yaml"
echo "deploy/plugins-configmap.sh: valid"

# Alert rules and dashboard: every expression must be valid PromQL. (That
# every series they name is exported is host/tests/metrics.rs's check.)
"$python" - deploy/prometheus/alerts.yaml deploy/grafana/switchyard.json <<'PY'
import json, sys, yaml, promql_parser
rules = [r for g in yaml.safe_load(open(sys.argv[1]))["groups"] for r in g["rules"]]
for rule in rules:
    missing = {"alert", "expr", "labels", "annotations"} - rule.keys()
    if missing:
        sys.exit(f"{sys.argv[1]}: rule {rule.get('alert')} lacks {sorted(missing)}")
    promql_parser.parse(rule["expr"])
panels = [p for p in json.load(open(sys.argv[2]))["panels"] if p["type"] != "row"]
exprs = [t["expr"] for p in panels for t in p["targets"]]
for expr in exprs:
    promql_parser.parse(expr.replace("$__rate_interval", "5m"))
print(f"{sys.argv[1]}: {len(rules)} rules parse; {sys.argv[2]}: {len(exprs)} queries parse")
PY

# Compose: no Docker engine here, so docker-compose (v1, Debian's) checks the
# file and resolves it; the config it gives Switchyard must be accepted.
if ! command -v docker-compose >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker-compose >/dev/null
  else
    echo "docker-compose is needed: apt-get install docker-compose" >&2
    exit 1
  fi
fi
compose=(docker-compose -f docker/docker-compose.yaml)
for profile in "" sqs; do
  "${compose[@]}" ${profile:+--profile "$profile"} config > "$out/compose.yaml"
  "$python" - "$out/compose.yaml" "$out/compose-env" <<'PY'
import shlex, sys, yaml
services = yaml.safe_load(open(sys.argv[1]))["services"]
for name, service in services.items():
    if name.startswith("switchyard"):
        env = service.get("environment", {})
        with open(f"{sys.argv[2]}-{name}", "w") as out:
            out.writelines(f"{k}={shlex.quote(str(v))}\n" for k, v in env.items())
PY
done
for envfile in "$out"/compose-env-*; do
  (set -a; . "$envfile"; set +a; "$switchyard" config check --strict --config docker/switchyard.toml >/dev/null)
  echo "docker/docker-compose.yaml: ${envfile##*/compose-env-} config accepted"
done
