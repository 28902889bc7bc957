#!/usr/bin/env bash
# wasm-toolchain.sh - make `cargo build --target wasm32-wasip2` work for
# Switchyard's plugins on a fresh machine (Debian 12 x86_64, rustup present;
# rustup's dist server may or may not answer; crates.io and the Debian
# archive are reachable). Derived from the workplace's proven recipe; see
# docs/architecture/plugins.md. scripts/build-plugins.sh calls it.
#
# Strategy (first that works wins):
#   0. the active rustup toolchain already has wasm32-wasip2     -> use it
#   1. a locally built toolchain is already cached               -> use it (fast path)
#   2. `rustup target add wasm32-wasip2` with a short timeout    -> use it
#   3. build a local toolchain "wasip2-local":
#        Debian bookworm-security rustc-web/cargo-web/rust-web-src (1.96),
#        rust-web-llvm (ships wasm-component-ld),
#        libllvmNN + lld-NN, extracted with dpkg -x into a private prefix
#        (nothing installed system-wide), RUNPATHs fixed with patchelf,
#        std for wasm32-wasip2 built with `cargo -Zbuild-std` from the
#        matching Debian source (+ std's deps from crates.io), wasi-libc taken
#        from Debian's `wasi-libc` package (trixie's has a real wasm32-wasip2
#        build; bookworm's is wasip1-only and is the fallback), and
#        wasm-component-ld from rust-web-llvm. Registered with
#        `rustup toolchain link wasip2-local <dir>`.
#
# Usage: setup.sh [--force] [--local] [--print-env] [--targets "T1 T2"] [-h]
#   --force      rebuild the local toolchain even if it is cached (implies --local)
#   --local      skip steps 0 and 2 (always use / build the local toolchain)
#   --print-env  print only `WASM_RUST_TOOLCHAIN=<name>` (+ SYSROOT) on stdout,
#                e.g.  eval "$(setup.sh --print-env)"; cargo +"$WASM_RUST_TOOLCHAIN" ...
#   --targets    wasm targets to provide std for (default: wasm32-wasip2;
#                also supported: wasm32-wasip1 wasm32-unknown-unknown)
# Environment:
#   WASM_TOOLCHAIN_CACHE    cache root (default ${XDG_CACHE_HOME:-~/.cache}/wasm-toolchain)
#   WASM_TOOLCHAIN_NAME     rustup toolchain name to link (default wasip2-local)
#   WASM_TOOLCHAIN_TARGETS  same as --targets
#   WASM_TOOLCHAIN_RUSTUP_TIMEOUT  seconds for `rustup target add` (default 20)
#   WASM_TOOLCHAIN_WASI_LIBC_SUITE Debian suite to take wasi-libc from
#                           (default trixie; "bookworm" = old wasip1-only libc)
set -euo pipefail
# Under pipefail, a reader that stops early (awk's exit, head -1, grep -q)
# kills its writer with SIGPIPE and fails the pipeline: every reader below
# consumes all of its input.

RECIPE_VERSION=1
TOOLCHAIN_NAME="${WASM_TOOLCHAIN_NAME:-wasip2-local}"
CACHE_ROOT="${WASM_TOOLCHAIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/wasm-toolchain}"
SYSROOT="$CACHE_ROOT/sysroot"
TARGETS="${WASM_TOOLCHAIN_TARGETS:-wasm32-wasip2}"
RUSTUP_TIMEOUT="${WASM_TOOLCHAIN_RUSTUP_TIMEOUT:-20}"
WASI_LIBC_SUITE="${WASM_TOOLCHAIN_WASI_LIBC_SUITE:-trixie}"
HOST=x86_64-unknown-linux-gnu
FORCE=0 LOCAL_ONLY=0 PRINT_ENV=0

while [ $# -gt 0 ]; do
  case "$1" in
    --force) FORCE=1 ;;
    --local) LOCAL_ONLY=1 ;;
    --print-env) PRINT_ENV=1 ;;
    --targets) TARGETS="$2"; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done

case " $TARGETS " in *" wasm32-wasip2 "*) ;; *) TARGETS="wasm32-wasip2 $TARGETS" ;; esac

log() { echo "[wasm-toolchain] $*" >&2; }
die() { echo "[wasm-toolchain] ERROR: $*" >&2; exit 1; }
now() { date +%s; }

have_rustup() { command -v rustup >/dev/null 2>&1; }

finish() { # $1 = toolchain name ("" = no rustup: use PATH), $2 = how
  local tc="$1" how="$2"
  if [ "$PRINT_ENV" = 1 ]; then
    echo "WASM_RUST_TOOLCHAIN=$tc"
    [ "$how" = local ] && echo "WASM_RUST_SYSROOT=$SYSROOT"
  fi
  {
    echo
    echo "=== wasm32-wasip2 toolchain ready ($how) ==="
    if [ "$how" = local ]; then
      echo "rustc: $("$SYSROOT/bin/rustc" -V)   (Debian rustc-web, std for [$(cat "$SYSROOT/.targets")] built locally)"
      echo "sysroot: $SYSROOT"
    fi
    if [ -n "$tc" ]; then
      echo "Build a guest component:"
      echo "  cargo +$tc build --release --target wasm32-wasip2"
      echo "  # or: RUSTUP_TOOLCHAIN=$tc cargo build --release --target wasm32-wasip2"
    else
      echo "Build a guest component (no rustup found):"
      echo "  PATH=$SYSROOT/bin:\$PATH cargo build --release --target wasm32-wasip2"
    fi
    echo "Output: target/wasm32-wasip2/release/<crate>.wasm is already a component (no wasm-tools step)."
    echo "Hosts (wasmtime) build with the normal toolchain: cargo build."
    if [ "$how" = local ]; then
      echo "If a guest build later fails with E0463 (can't find crate) after std was rebuilt: cargo clean."
    fi
  } >&2
  exit 0
}

# ---------------------------------------------------------------- fast paths
local_ready() {
  [ -f "$SYSROOT/.stamp" ] && [ "$(cat "$SYSROOT/.stamp")" = "recipe=$RECIPE_VERSION" ] || return 1
  "$SYSROOT/bin/rustc" -V >/dev/null 2>&1 || return 1
  local t
  for t in $TARGETS; do [ -f "$SYSROOT/lib/rustlib/$t/lib/.built" ] || return 1; done
  return 0
}

link_local() {
  if have_rustup; then
    # idempotent: re-linking an existing name just repoints it
    rustup toolchain link "$TOOLCHAIN_NAME" "$SYSROOT" >&2 || die "rustup toolchain link failed"
    echo "$TOOLCHAIN_NAME"
  else
    echo ""
  fi
}

if [ "$LOCAL_ONLY" = 0 ] && [ "$FORCE" = 0 ] && have_rustup; then
  ACTIVE_TC="$(rustup show active-toolchain 2>/dev/null | awk 'NR==1{print $1}')"
  if [ -n "$ACTIVE_TC" ] && [ "$ACTIVE_TC" != "$TOOLCHAIN_NAME" ] \
     && rustup target list --installed --toolchain "$ACTIVE_TC" 2>/dev/null | grep -x wasm32-wasip2 >/dev/null; then
    log "rustup toolchain '$ACTIVE_TC' already has wasm32-wasip2"
    finish "$ACTIVE_TC" rustup
  fi
fi

if [ "$FORCE" = 0 ] && local_ready; then
  log "using cached local toolchain at $SYSROOT"
  TC="$(link_local)" || exit 1
  finish "$TC" local
fi

if [ "$LOCAL_ONLY" = 0 ] && [ "$FORCE" = 0 ] && have_rustup && [ -n "${ACTIVE_TC:-}" ]; then
  log "trying: rustup target add wasm32-wasip2 (timeout ${RUSTUP_TIMEOUT}s)"
  RUSTUP_LOG_FILE="$(mktemp)"
  if RUST_BACKTRACE=0 timeout -k 5 "$RUSTUP_TIMEOUT" rustup target add --toolchain "$ACTIVE_TC" wasm32-wasip2 \
       >"$RUSTUP_LOG_FILE" 2>&1 </dev/null \
     && rustup target list --installed --toolchain "$ACTIVE_TC" 2>/dev/null | grep -x wasm32-wasip2 >/dev/null; then
    rm -f "$RUSTUP_LOG_FILE"
    finish "$ACTIVE_TC" rustup
  fi
  log "rustup failed or timed out: $(grep -m1 -E 'error|timed out' "$RUSTUP_LOG_FILE" || echo "no answer in ${RUSTUP_TIMEOUT}s")"
  rm -f "$RUSTUP_LOG_FILE"
  log "building the local toolchain instead"
fi

# ---------------------------------------------------------------- build
command -v apt-get >/dev/null && command -v dpkg >/dev/null || die "needs Debian's apt-get and dpkg"
mkdir -p "$CACHE_ROOT"
exec 9>"$CACHE_ROOT/.lock"
flock 9
T_START=$(now)

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
cand() { apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ && !c {c=$2} END{print c}'; }
if [ -z "$(cand rustc-web)" ] || [ "$(cand rustc-web)" = "(none)" ]; then
  log "apt-get update (package lists missing)"
  $SUDO apt-get update -qq >&2 || die "apt-get update failed"
fi
VER="$(cand rustc-web)"
[ -n "$VER" ] && [ "$VER" != "(none)" ] || die "no rustc-web package (is bookworm-security in sources.list?)"
deps_of() { # direct Depends (first alternative) of "pkg=ver" or "pkg"
  apt-cache depends --no-recommends --no-suggests --no-conflicts --no-breaks \
    --no-replaces --no-enhances "$1" 2>/dev/null \
    | awk '/^ *\|?Depends:/{ if (!skip) print $2; skip = ($1 ~ /^\|/) }' | grep -v '^<' | sort -u
}
LIBSTD_PKG="$(deps_of "libstd-rust-web-dev=$VER" | awk '/^libstd-rust-web-[0-9]/ && !f {f=$0} END{print f}')"
[ -n "$LIBSTD_PKG" ] || die "cannot find the libstd-rust-web-X.Y package for rustc-web $VER"
LLVM_PKG="$(deps_of "$LIBSTD_PKG=$VER" | awk '/^libllvm[0-9]+$/ && !f {f=$0} END{print f}')"
[ -n "$LLVM_PKG" ] || die "cannot find the libllvmNN dependency of $LIBSTD_PKG"
LLVM_MAJOR="${LLVM_PKG#libllvm}"
log "rustc-web $VER ($LIBSTD_PKG, LLVM $LLVM_MAJOR)"

WORK="$CACHE_ROOT/work"
rm -rf "$WORK" "$SYSROOT"
mkdir -p "$WORK/debs" "$WORK/x"
cd "$WORK/debs"

# Packages to extract, plus every shared-library dependency that is not
# already installed on this machine (e.g. libgit2-1.5 for cargo).
want="rustc-web=$VER cargo-web=$VER rust-web-src=$VER rust-web-llvm=$VER libstd-rust-web-dev=$VER $LIBSTD_PKG=$VER $LLVM_PKG lld-$LLVM_MAJOR"
command -v patchelf >/dev/null || want="$want patchelf"
[ "$WASI_LIBC_SUITE" = bookworm ] && want="$want wasi-libc"
declare -A seen=()
queue="$want"
todo=""
while [ -n "$queue" ]; do
  next=""
  for spec in $queue; do
    p="${spec%%=*}"
    [ -n "${seen[$p]:-}" ] && continue
    seen[$p]=1
    todo="$todo $spec"
    for d in $(deps_of "$spec"); do
      case "$d" in lib*) ;; *) continue ;; esac
      [ -n "${seen[$d]:-}" ] && continue
      if [ "$(dpkg-query -W -f='${db:Status-Status}' "$d" 2>/dev/null)" = installed ]; then
        seen[$d]=1
      else
        next="$next $d"
      fi
    done
  done
  queue="$next"
done
log "downloading:$todo"
apt-get download $todo >"$WORK/apt-download.log" 2>&1 || { cat "$WORK/apt-download.log" >&2; die "apt-get download failed"; }

if [ "$WASI_LIBC_SUITE" != bookworm ]; then
  # wasi-libc is Architecture: all (static wasm libraries only), so the newer
  # suite's package is safe to unpack here. Use a private apt state dir; the
  # system's sources.list is not touched.
  A="$WORK/apt-$WASI_LIBC_SUITE"
  mkdir -p "$A/lists/partial" "$A/cache/archives/partial"
  echo "deb http://deb.debian.org/debian $WASI_LIBC_SUITE main" >"$A/sources.list"
  APTOPT=(-o "Dir::Etc::SourceList=$A/sources.list" -o Dir::Etc::SourceParts=/dev/null
          -o "Dir::State::Lists=$A/lists" -o "Dir::Cache=$A/cache" -o APT::Sandbox::User=root)
  if apt-get "${APTOPT[@]}" update -qq >"$WORK/apt-wasi.log" 2>&1 \
     && apt-get "${APTOPT[@]}" download wasi-libc >>"$WORK/apt-wasi.log" 2>&1; then
    log "wasi-libc from $WASI_LIBC_SUITE: $(ls wasi-libc_*.deb)"
  else
    log "WARNING: could not get wasi-libc from $WASI_LIBC_SUITE; using bookworm's (wasip1-only: std::net will not link on wasip2)"
    apt-get download wasi-libc >>"$WORK/apt-wasi.log" 2>&1 || die "cannot download wasi-libc"
  fi
fi
for f in *.deb; do
  case "$f" in # of rust-web-src only library/ is needed (69 of 340 MB)
    rust-web-src_*) dpkg-deb --fsys-tarfile "$f" | tar -x -C "$WORK/x" --wildcards './usr/src/rustc-*/library' ;;
    *) dpkg -x "$f" "$WORK/x" ;;
  esac
done
X="$WORK/x"
PATCHELF="$(command -v patchelf || echo "$X/usr/bin/patchelf")"

# ---- assemble the sysroot (rustup-toolchain layout)
RUSTVER="$(ls -d "$X"/usr/src/rustc-* | awk 'NR==1')"; RUSTVER="${RUSTVER##*/rustc-}"
[ -x "$X/usr/lib/rustlib/$HOST/bin/wasm-component-ld" ] || die "this rustc-web has no wasm-component-ld"
B="$SYSROOT/lib/rustlib/$HOST/bin"
mkdir -p "$SYSROOT/bin" "$B/gcc-ld" "$SYSROOT/lib/rustlib/src/rust"
cp "$X/usr/bin/rustc" "$X/usr/bin/rustdoc" "$X/usr/bin/cargo" "$SYSROOT/bin/"
for d in "$X/usr/lib/x86_64-linux-gnu" "$X/lib/x86_64-linux-gnu"; do
  [ -d "$d" ] && find "$d" -maxdepth 1 -name '*.so*' -exec cp -a {} "$SYSROOT/lib/" \;
done
cp -a "$X/usr/lib/rustlib/$HOST/lib" "$SYSROOT/lib/rustlib/$HOST/"
cp "$X/usr/lib/rustlib/$HOST/bin/wasm-component-ld" "$B/"
cp "$X/usr/lib/llvm-$LLVM_MAJOR/bin/lld" "$B/rust-lld"
for n in ld.lld ld64.lld lld-link wasm-ld; do ln -sf ../rust-lld "$B/gcc-ld/$n"; done
cp -a "$X/usr/src/rustc-$RUSTVER/library" "$SYSROOT/lib/rustlib/src/rust/"
for f in "$SYSROOT/bin/rustc" "$SYSROOT/bin/rustdoc" "$SYSROOT/bin/cargo"; do
  "$PATCHELF" --set-rpath '$ORIGIN/../lib' "$f"
done
"$PATCHELF" --set-rpath '$ORIGIN/../../../../lib' "$B/rust-lld"
find "$SYSROOT/lib" -maxdepth 1 -type f -name '*.so*' -exec "$PATCHELF" --set-rpath '$ORIGIN' {} \;
"$SYSROOT/bin/rustc" -V >/dev/null || die "rustc does not run"
"$SYSROOT/bin/cargo" -V >/dev/null || die "cargo does not run (missing shared library?): $(ldd "$SYSROOT/bin/cargo" | grep 'not found')"
"$B/rust-lld" -flavor wasm --version >/dev/null || die "rust-lld does not run"
COMMIT="$("$SYSROOT/bin/rustc" -vV | awk '/^commit-hash:/{print $2}')"
log "toolchain assembled: $("$SYSROOT/bin/rustc" -V); $("$SYSROOT/bin/cargo" -V); $("$B/wasm-component-ld" --version)"

# ---- build std for each wasm target
SRC="$SYSROOT/lib/rustlib/src/rust"
build_std() {
  local t="$1" t0; t0=$(now)
  local wd="$WORK/std-$t" out="$SYSROOT/lib/rustlib/$t/lib"
  mkdir -p "$wd/src"
  printf '[package]\nname = "std-build-dummy"\nversion = "0.0.0"\nedition = "2021"\n[profile.release]\ndebug = 0\n' >"$wd/Cargo.toml"
  : >"$wd/src/lib.rs"
  log "building std for $t (cargo -Zbuild-std; ~1-2 min on 2 cores)"
  # -Cembed-bitcode=yes: like the official std, so guests may use `lto = true`.
  # std's own crates.io deps (libc, wasi, wit-bindgen 0.45.1, ...) are fetched
  # from crates.io as pinned by library/Cargo.lock. (Debian's library/vendor
  # copies can NOT be used: its wit-bindgen 0.45.1 lacks the prebuilt
  # src/rt/libwit_bindgen_cabi.a that std needs on wasip2.)
  ( cd "$wd" && env -u RUSTFLAGS -u RUSTC_WRAPPER -u RUSTC_WORKSPACE_WRAPPER -u CARGO_BUILD_TARGET \
      -u CARGO_TARGET_DIR -u CARGO_BUILD_RUSTFLAGS -u RUSTUP_TOOLCHAIN \
      PATH="$SYSROOT/bin:$PATH" RUSTC="$SYSROOT/bin/rustc" RUSTDOC="$SYSROOT/bin/rustdoc" \
      RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR="$wd/target" \
      CARGO_ENCODED_RUSTFLAGS="$(printf '%s\x1f%s' -Cembed-bitcode=yes "--remap-path-prefix=$SRC=/rustc/$COMMIT")" \
      "$SYSROOT/bin/cargo" build --release --target "$t" -Zbuild-std=std,panic_abort \
  ) >"$wd/build.log" 2>&1 || { tail -40 "$wd/build.log" >&2; die "std build for $t failed (log: $wd/build.log)"; }
  mkdir -p "$out"
  find "$wd/target/$t/release/deps" -name '*.rlib' ! -name 'libstd_build_dummy-*' -exec cp {} "$out/" \;
  case "$t" in
    wasm32-wasip2|wasm32-wasip1)
      local libdir="$X/usr/lib/wasm32-wasi"   # bookworm/trixie wasip1 build
      [ "$t" = wasm32-wasip2 ] && [ -d "$X/usr/lib/wasm32-wasip2" ] && libdir="$X/usr/lib/wasm32-wasip2"
      mkdir -p "$out/self-contained"
      cp "$libdir/libc.a" "$libdir/crt1-command.o" "$libdir/crt1-reactor.o" "$out/self-contained/"
      echo "wasi-libc: $(ls "$WORK/debs"/wasi-libc_*.deb | xargs -n1 basename) (/${libdir#"$X"/})" >"$out/self-contained/SOURCE"
      ;;
  esac
  touch "$out/.built"
  log "std for $t done in $(( $(now) - t0 ))s"
}
for t in $TARGETS; do build_std "$t"; done
echo "$TARGETS" >"$SYSROOT/.targets"
echo "recipe=$RECIPE_VERSION" >"$SYSROOT/.stamp"
{ echo "rustc-web $VER"; echo "llvm $LLVM_MAJOR"; ls "$WORK/debs"; } >"$SYSROOT/.debian-packages"
cd "$CACHE_ROOT"
rm -rf "$WORK"
TC="$(link_local)" || exit 1

# ---- smoke test: a std-using cdylib must come out as a component
SMOKE="$(mktemp -d)"
mkdir -p "$SMOKE/src"
printf '[package]\nname = "smoke"\nversion = "0.0.0"\nedition = "2021"\n[lib]\ncrate-type = ["cdylib"]\n' >"$SMOKE/Cargo.toml"
printf '#[no_mangle]\npub extern "C" fn f(n: u32) -> u32 { let v: Vec<String> = (0..n).map(|i| i.to_string()).collect(); eprintln!("{}", v.join(",")); v.len() as u32 }\n' >"$SMOKE/src/lib.rs"
( cd "$SMOKE" && env -u RUSTFLAGS -u CARGO_TARGET_DIR -u RUSTUP_TOOLCHAIN PATH="$SYSROOT/bin:$PATH" \
    cargo build -q --release --target wasm32-wasip2 ) >&2 || die "smoke test build failed"
MAGIC="$(od -An -tx1 -N8 "$SMOKE/target/wasm32-wasip2/release/smoke.wasm" | tr -d ' \n')"
rm -rf "$SMOKE"
[ "$MAGIC" = 0061736d0d000100 ] || die "smoke test output is not a component (magic $MAGIC)"
log "smoke test OK (component produced); total setup $(( $(now) - T_START ))s"
finish "$TC" local
