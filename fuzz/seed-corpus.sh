#!/usr/bin/env bash
# Makes the committed seed corpus of every fuzz target, fuzz/seeds/<target>/, from the
# fixtures in testdata/ (the working corpus, fuzz/corpus/, is not committed). A target's first
# input byte is a mode byte (see the target); seeds get the modes that decode them whole.
# Re-run after regenerating the fixtures.
set -euo pipefail
cd "$(dirname "$0")"
data=../testdata
seed() { # seed <target> <name> <mode byte in hex or ""> <file> [dd skip]
  local dir="seeds/$1" out="seeds/$1/$2"
  mkdir -p "$dir"
  { if [ -n "$3" ]; then printf "\\x$3"; fi
    if [ -n "${5:-}" ]; then tail -c "+$(( $5 + 1 ))" "$4"; else cat "$4"; fi; } > "$out"
}
for f in metadata-v1 metadata-v1-zstd; do
  seed metadata_decode "$f" 00 "$data/$f.csmd"
done
for f in keyed-v2 keyed-v2-zstd; do
  seed keyed_decode "$f" 02 "$data/$f.cskg"
done
# The version 1 streams are inline in the encoded handles of keyed-v1*.bin: a count (8),
# a variant (4), a range (8), 128 offsets with their count (8 + 1024), the stream's variant
# (4) and length (8).
for f in keyed-v1 keyed-v1-zstd; do
  seed keyed_decode "$f" 03 "$data/$f.bin" 1064
  seed handles_decode "$f" 01 "$data/$f.bin"
done
# A subtask's handles: the keyed handles and an empty list of operator handles.
{ printf '\x00'; cat "$data/keyed-v1-zstd.bin"; printf '\x00\x00\x00\x00\x00\x00\x00\x00'; } \
  > seeds/handles_decode/subtask-keyed-v1-zstd
seed operator_decode operator-v1 "" "$data/operator-v1.csop"
seed incremental_decode incremental-v1 00 "$data/incremental-v1.csri"
ls -l seeds/*
