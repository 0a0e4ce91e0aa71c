# Shell code shared by fuzz/run.sh, merge.sh, run-afl.sh and coverage.sh. Sourced, not
# run: `. "$(dirname "$0")/lib.sh"`. Sets ROOT (the checkout) and defines:
#   fuzz_dirs DEFAULT_OUT   OUT (absolute when it exists; DEFAULT_OUT unless set) and
#                           FUZZ_WORK (default $OUT/work)
#   fuzz_targets [NAME...]  the targets named, else every fuzz/fuzz_<name>.cpp's <name>
#   fuzz_dict NAME          fuzz/dict/<name>.dict when there is one, else fuzz/dict/ws.dict
#   fuzz_bin NAME BUILDER   sets bin=$OUT/fuzz_<name>; false (and says to run fuzz/BUILDER)
#                           when it is not built
# shellcheck shell=sh

ROOT=$(cd "$(dirname "$0")/.." && pwd)

fuzz_dirs() {
  OUT=${OUT:-$1}
  if [ -d "$OUT" ]; then OUT=$(cd "$OUT" && pwd); fi
  FUZZ_WORK=${FUZZ_WORK:-$OUT/work}
}

fuzz_targets() {
  if [ $# -gt 0 ]; then
    echo "$*"
    return
  fi
  for f in "$ROOT"/fuzz/fuzz_*.cpp; do
    n=$(basename "$f" .cpp)
    printf '%s ' "${n#fuzz_}"
  done
  echo
}

fuzz_dict() {
  if [ -e "$ROOT/fuzz/dict/$1.dict" ]; then
    echo "$ROOT/fuzz/dict/$1.dict"
  else
    echo "$ROOT/fuzz/dict/ws.dict"
  fi
}

fuzz_bin() {
  bin="$OUT/fuzz_$1"
  [ -x "$bin" ] && return 0
  echo "fuzz/$(basename "$0"): $bin is missing; run fuzz/$2 first" >&2
  return 1
}
