#!/bin/sh
# Runs each AFL++ target built by fuzz/build-afl.sh for FUZZ_SECONDS (default 60), one
# after the other, with the dictionary and the committed corpus as input.
#
#   fuzz/run-afl.sh               every target in $OUT (default build/fuzz-afl)
#   fuzz/run-afl.sh frame         one target
#
# afl-fuzz's output (queue, crashes, hangs) goes to $FUZZ_WORK/<target> (default
# build/fuzz-afl/work), never into fuzz/. A crash found by AFL++ replays the same way as
# one found by libFuzzer: build/fuzz/fuzz_<target> <file>. Prints execs, execs/s, edge
# coverage and crash count per target; exits 1 if any target crashed or hung.
set -u

# shellcheck source=fuzz/lib.sh
. "$(dirname "$0")/lib.sh"
fuzz_dirs "$ROOT/build/fuzz-afl"
FUZZ_SECONDS=${FUZZ_SECONDS:-60}

targets=$(fuzz_targets "$@")

# Shared CI machines: no CPU governor or core_pattern changes, no UI, no CPU binding
# (other jobs run there too); ASan needs no memory limit.
export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1 AFL_NO_AFFINITY=1
export AFL_SKIP_CRASHES=1
# Regression inputs that still fail must not stop the run; abort() is the harness's signal.
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:symbolize=0:detect_leaks=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1}"

status=0
summary=""
for t in $targets; do
  fuzz_bin "$t" build-afl.sh || exit 2
  work="$FUZZ_WORK/$t"
  rm -rf "$work"
  mkdir -p "$work"
  dict=$(fuzz_dict "$t")
  cmplog=""
  [ -x "$bin.cmplog" ] && cmplog="-c $bin.cmplog"
  echo "== $t (AFL++): ${FUZZ_SECONDS}s, output $work"
  # shellcheck disable=SC2086 # cmplog is a flag pair or nothing
  afl-fuzz -V "$FUZZ_SECONDS" -m none -i "$ROOT/fuzz/corpus/$t" -o "$work" -x "$dict" $cmplog \
    -- "$bin" >"$work/afl.log" 2>&1
  stats="$work/default/fuzzer_stats"
  if [ ! -f "$stats" ]; then
    echo "   afl-fuzz did not start; see $work/afl.log"
    tail -n 5 "$work/afl.log"
    status=1
    continue
  fi
  get() { sed -n "s/^$1 *: *//p" "$stats"; }
  crashes=$(get saved_crashes)
  [ -n "$crashes" ] || crashes=$(get unique_crashes)
  hangs=$(get saved_hangs)
  [ -n "$hangs" ] || hangs=$(get unique_hangs)
  line=$(printf '%-10s execs %-11s execs/s %-9s edges %s/%s (%s) corpus %s crashes %s hangs %s' \
    "$t" "$(get execs_done)" "$(get execs_per_sec)" "$(get edges_found)" "$(get total_edges)" \
    "$(get bitmap_cvg)" "$(get corpus_count)" "${crashes:-0}" "${hangs:-0}")
  echo "$line"
  if [ "${crashes:-0}" != 0 ] || [ "${hangs:-0}" != 0 ]; then
    status=1
    for c in "$work"/default/crashes/id:* "$work"/default/hangs/id:*; do
      [ -e "$c" ] && echo "   reproducer: $c   (replay: build/fuzz/fuzz_$t '$c')"
    done
  fi
  summary="$summary$line
"
done
echo
echo "== AFL++ summary (FUZZ_SECONDS=$FUZZ_SECONDS)"
printf '%s' "$summary"
exit $status
