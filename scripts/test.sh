#!/usr/bin/env bash
# The whole test suite: the README's test command, and what CI runs.
# Installs what a fresh machine lacks (the wasm32-wasip2 toolchain, the npm
# tools: anvil and OpenZeppelin's relayer SDK; moto_server and schemathesis from PyPI; kubectl
# and kubernetes-validate for deploy/, docker-compose from Debian for
# docker/); every step is cheap when already done.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
step() { printf '\n==> %s\n' "$*" >&2; }
# A fresh clone builds once: incremental caches would only cost disk.
[ "${CI:-}" = true ] && export CARGO_INCREMENTAL=0

step "wasm32-wasip2 toolchain"
eval "$(bash scripts/wasm-toolchain.sh --print-env)"
wasm_cargo=(cargo)
[ -n "${WASM_RUST_TOOLCHAIN:-}" ] && wasm_cargo=(cargo "+$WASM_RUST_TOOLCHAIN")

step "npm tools (anvil, @openzeppelin/relayer-sdk)"
bash scripts/npm-tools.sh

step "Python tools: moto_server (the SQS of the queue suite), schemathesis (the API fuzzer)"
bash scripts/python-tool.sh moto
bash scripts/python-tool.sh schemathesis

step "formatting"
cargo fmt --all --check
(cd plugins && cargo fmt --all --check)
(cd host/tests/hostile && cargo fmt --all --check)

step "example plugins -> plugins/*.wasm"
bash scripts/build-plugins.sh

step "host and its tests (one build: dev-dependencies change shared features)"
cargo test --workspace --no-run
export SWITCHYARD_BIN="$root/target/debug/switchyard"

step "deploy/ and docker/: kustomize overlays, schemas, alert rules, compose, their configs"
bash scripts/check-deploy.sh

step "plugin unit tests, native"
(cd plugins && cargo test --workspace)

step "plugin unit tests, inside the sandbox (wasm32-wasip2, runner: switchyard plugin test-runner)"
(cd plugins && "${wasm_cargo[@]}" test --workspace --target wasm32-wasip2)

step "lints"
cargo clippy --workspace --all-targets -- -D warnings

step "benchmark harness, short run (figures: cargo bench -p switchyard --bench plugins)"
cargo bench -p switchyard --bench plugins -- --quick

step "host and SDK tests (real components, real runtime)"
cargo test --workspace

step "disk used by the builds"
du -sh target plugins/target 2>/dev/null || true
