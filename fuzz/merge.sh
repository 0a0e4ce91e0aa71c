#!/bin/sh
# Adds to the committed corpus fuzz/corpus/<target>/ only those inputs from the scratch
# corpus (fuzz/run.sh writes $FUZZ_WORK/<target>/corpus) that reach coverage the
# committed corpus does not; libFuzzer's -merge=1 picks them and names them by SHA-1.
#
#   fuzz/merge.sh               every target
#   fuzz/merge.sh frame         one target
#
# The committed corpus should stay at tens of files that a reviewer can still look at,
# so the merge counts less than the fuzzer does: edges only (-use_counters=0, no hit-count
# buckets), and only in our code: the merge binaries ($OUT/merge, built here) leave
# llhttp uninstrumented. The hand-written seeds (fuzz/seeds.py) always stay. Inputs that
# crash the target (open findings) are left out; keep those in fuzz/regression/.
set -eu

# shellcheck source=fuzz/lib.sh
. "$(dirname "$0")/lib.sh"
fuzz_dirs "$ROOT/build/fuzz"

targets=$(fuzz_targets "$@")

echo "merge: building merge binaries in $OUT/merge"
FUZZ_INSTRUMENT_LLHTTP=0 OUT="$OUT/merge" "$ROOT/fuzz/build.sh" >"$OUT/merge-build.log" 2>&1 || {
  echo "merge: build failed; see $OUT/merge-build.log" >&2
  exit 1
}

for t in $targets; do
  corpus="$ROOT/fuzz/corpus/$t"
  scratch="$FUZZ_WORK/$t/corpus"
  mkdir -p "$corpus"
  if [ ! -d "$scratch" ]; then
    echo "merge $t: no scratch corpus at $scratch (run fuzz/run.sh $t first)"
    continue
  fi
  before=$(find "$corpus" -type f | wc -l)
  mkdir -p "$FUZZ_WORK/$t/merge-artifacts"
  "$OUT/merge/fuzz_$t" -merge=1 -use_counters=0 -artifact_prefix="$FUZZ_WORK/$t/merge-artifacts/" \
    "$corpus" "$scratch" >"$FUZZ_WORK/$t/merge.log" 2>&1 || {
    echo "merge $t failed; see $FUZZ_WORK/$t/merge.log" >&2
    exit 1
  }
  after=$(find "$corpus" -type f | wc -l)
  echo "merge $t: $before -> $after files in fuzz/corpus/$t"
done
