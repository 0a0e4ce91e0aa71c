#!/bin/sh
# Runs each libFuzzer target built by fuzz/build.sh for FUZZ_SECONDS (default 60), one
# after the other, with its dictionary, the committed corpus and the regression inputs
# as read-only seeds.
#
#   fuzz/run.sh                 every target in $OUT
#   fuzz/run.sh frame           one target (frame, utf8, handshake, ...)
#   FUZZ_SECONDS=600 fuzz/run.sh handshake
#
# New inputs go to a scratch corpus, $FUZZ_WORK/<target>/corpus (default
# build/fuzz/work), never to fuzz/corpus: committing them is a deliberate step
# (fuzz/merge.sh). Crashes, leaks and timeouts are written to
# $FUZZ_WORK/<target>/artifacts/ and printed with the command that reproduces them.
# Extra libFuzzer flags go in FUZZ_FLAGS (e.g. FUZZ_FLAGS="-max_len=16384").
# Prints per target: total execs, execs/s, coverage (cov/ft) and corpus size; exits 1 if
# any target found something.
set -u

# shellcheck source=fuzz/lib.sh
. "$(dirname "$0")/lib.sh"
fuzz_dirs "$ROOT/build/fuzz"
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FUZZ_FLAGS=${FUZZ_FLAGS:-}

targets=$(fuzz_targets "$@")

summary=""
status=0
for t in $targets; do
  fuzz_bin "$t" build.sh || exit 2
  work="$FUZZ_WORK/$t"
  mkdir -p "$work/corpus" "$work/artifacts"
  log="$work/fuzz.log"
  dict=$(fuzz_dict "$t")
  seeds="$ROOT/fuzz/corpus/$t"
  [ -d "$ROOT/fuzz/regression/$t" ] && seeds="$seeds $ROOT/fuzz/regression/$t"
  echo "== $t: ${FUZZ_SECONDS}s, log $log"
  # One process, one job: these machines are shared. The first directory receives new
  # inputs; the others are only read.
  # shellcheck disable=SC2086 # seeds and FUZZ_FLAGS are lists
  "$bin" -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 -dict="$dict" \
    -artifact_prefix="$work/artifacts/" $FUZZ_FLAGS "$work/corpus" $seeds >"$log" 2>&1
  rc=$?

  # libFuzzer's last status line: "#N DONE cov: C ft: F corp: U/SIZE lim: L exec/s: E rss: R"
  last=$(grep -E '^#[0-9]+' "$log" | grep 'cov:' | tail -n 1)
  cov=$(printf '%s\n' "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
  ft=$(printf '%s\n' "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
  corp=$(printf '%s\n' "$last" | sed -n 's/.* corp: \([0-9]*\/[0-9A-Za-z]*\).*/\1/p')
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -n 1)
  line=$(printf '%-10s execs %-11s execs/s %-7s cov %-5s ft %-6s corpus %-10s rss %sMB' \
    "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "${rss:-?}")
  echo "$line"
  if [ $rc -ne 0 ]; then
    status=1
    grep -E '^==[0-9]+==ERROR|check failed|^SUMMARY|deadly signal|ALARM|out-of-memory' "$log" | head -n 5
    art=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
    if [ -n "$art" ]; then
      echo "   reproducer: $art"
      echo "   replay:     $bin $art"
      echo "   keep it:    cp $art $ROOT/fuzz/regression/$t/   (then minimise: $bin -minimize_crash=1 -runs=100000 $art)"
    else
      echo "   libFuzzer exited $rc without an artifact; see $log"
    fi
    line="$line  FOUND: ${art:-see $log}"
  fi
  summary="$summary$line
"
done

echo
echo "== summary (FUZZ_SECONDS=$FUZZ_SECONDS)"
printf '%s' "$summary"
exit $status
