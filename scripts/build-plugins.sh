#!/usr/bin/env bash
# Builds every plugin crate in plugins/ to a wasm32-wasip2 component and
# copies it to plugins/<crate_name>.wasm, where the host loads it. Installs
# the wasm toolchain first when missing. `switchyard plugin build` runs this.
#
#   scripts/build-plugins.sh [--workspace DIR] [--out DIR]
#     --workspace  the plugin workspace to build (default: plugins/)
#     --out        where to copy the components (default: the workspace)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
workspace="$root/plugins"
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --workspace) workspace="$(cd "$2" && pwd)"; shift ;;
    --out) out="$2"; shift ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done
out="${out:-$workspace}"
mkdir -p "$out"

echo "==> wasm32-wasip2 toolchain" >&2
eval "$(bash "$root/scripts/wasm-toolchain.sh" --print-env 2>/dev/null)" || {
  bash "$root/scripts/wasm-toolchain.sh" >&2 || true
  echo "error: no wasm32-wasip2 toolchain (see the output above)" >&2
  exit 1
}
cargo=(cargo)
[ -n "${WASM_RUST_TOOLCHAIN:-}" ] && cargo=(cargo "+$WASM_RUST_TOOLCHAIN")

echo "==> building $(basename "$workspace")/ with ${WASM_RUST_TOOLCHAIN:-cargo on PATH}" >&2
# A cargo that runs this script (a test, a cargo runner) must not leak its
# toolchain or target dir into the wasm build.
(cd "$workspace" && env -u RUSTUP_TOOLCHAIN -u CARGO_TARGET_DIR -u CARGO_BUILD_TARGET -u RUSTC -u RUSTFLAGS \
  "${cargo[@]}" build --release --target wasm32-wasip2 --workspace)

for wasm in "$workspace"/target/wasm32-wasip2/release/*.wasm; do
  name="$(basename "$wasm")"
  # Copy then rename: a host watching $out never reads a half-written file.
  cp "$wasm" "$out/.$name.tmp" && mv -f "$out/.$name.tmp" "$out/$name"
  echo "  $out/$name" >&2
done
