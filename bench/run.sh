#!/usr/bin/env bash
# bench/run.sh: wsreactor and a raw TCP echo (the physical limit) side by side, in one
# invocation, on loopback. Each case runs against both servers back to back, N times
# (alternating which goes first), and the script prints a table of medians and the
# wsreactor/raw ratios. Ratios are the median of the per-run paired ratios: the machine
# is shared and drifts, and a pair run seconds apart drifts together.
#
# usage: bench/run.sh [-n RUNS] [-d SECONDS] [-w WARMUP] [-b BUILD_DIR] [-r] [-q]
#   -n RUNS      repetitions of every case (default 3)
#   -d SECONDS   measured seconds per run (default 5)
#   -w SECONDS   warmup per run (default 1)
#   -b DIR       meson build dir holding wsreactor and bench/{wsbench,rawecho}
#                (default build/release)
#   -r           run servers and client SCHED_FIFO (chrt -f 10): other work on a shared
#                machine no longer preempts them (it is starved while this runs). The
#                kernel's RT throttle (sched_rt_runtime_us, 95 %) still pauses a process
#                that is busy all the time, which shows in p99.9/max
#   -q           no per-run lines, only the tables
# env: WSBENCH, RAWECHO, WSREACTOR override the binaries; SERVER_CPU (default 0) and
#      CLIENT_CPU (default 1) pick the cores; KEEP=1 keeps the raw results directory.
# Exit status: 0, or 1 when any run reported errors or failed.
set -u
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

RUNS=3 # the other options default in bench_options
bench_options "$@"
RAWECHO=${RAWECHO:-$BUILD/bench/rawecho}
bench_need "meson setup $BUILD --buildtype=release && ninja -C $BUILD" "$WSBENCH" "$RAWECHO" "$WSREACTOR"

# The cases: scenario | wsbench options | label. Raw runs get the same options plus --raw.
CASES=(
    "echo|--conns 100 --depth 1 --size 32 --text|echo 100 conns x 1 x 32 B"
    "echo|--conns 100 --depth 16 --size 32 --text|echo 100 conns x 16 x 32 B"
    "echo|--conns 10 --depth 1 --size 16k --binary|echo 10 conns x 1 x 16 KiB"
    "latency|--conns 100 --rate 20000 --size 32 --text|latency 20k msg/s, 100 conns, 32 B"
)

bench_pin
bench_workdir run INT TERM

bench_start_server wsreactor "$WSREACTOR"
PID_wsr=$SPID PORT_wsr=$SPORT
bench_start_server rawecho "$RAWECHO"
PID_raw=$SPID PORT_raw=$SPORT

echo "# wsbench: wsreactor vs raw TCP echo, $(date -u +%Y-%m-%dT%H:%MZ)"
echo "# $(bench_machine); server on CPU ${SERVER_CPU}, client on CPU ${CLIENT_CPU}$([ "$RT" = 1 ] && echo ", SCHED_FIFO")"
echo "# $RUNS runs x ${DUR} s (+${WARM} s warmup) per case and server; loadavg at start: $(bench_loadavg)"

FAILED=0
RES=$WORK/results
: >"$RES"
# run_one CASE_INDEX NAME RUN
run_one() {
    local i=$1 name=$2 run=$3
    IFS='|' read -r sc opts _ <<<"${CASES[$i]}"
    local url pid extra=""
    if [ "$name" = raw ]; then
        url=tcp://127.0.0.1:$PORT_raw pid=$PID_raw extra=--raw
    else
        url=ws://127.0.0.1:$PORT_wsr/echo pid=$PID_wsr
    fi
    # shellcheck disable=SC2086 # options are word lists on purpose
    bench_wsbench $((${DUR%.*} + ${WARM%.*} + 30)) "$pid" "$sc" $opts $extra --url "$url"
    bench_wsbench_check "case $i $name run $run:"
    [ -n "$LINE" ] && echo "case=$i server=$name run=$run $LINE" >>"$RES"
    [ "$QUIET" = 1 ] || printf '  %-4s run %s case %s: %s\n' "$name" "$run" "$i" \
        "$(printf '%s\n' "$LINE" | grep -o 'msgs_per_s=[^ ]*\|p99_us=[^ ]*\|errors=[^ ]*\|server_cpu_pct=[^ ]*\|client_cpu_pct=[^ ]*' | tr '\n' ' ')" >&2
}

for run in $(seq "$RUNS"); do
    for i in "${!CASES[@]}"; do
        # Alternate the order so neither server always runs on a warmer (or cooler) machine.
        if [ $((run % 2)) = 1 ]; then
            run_one "$i" wsr "$run"; run_one "$i" raw "$run"
        else
            run_one "$i" raw "$run"; run_one "$i" wsr "$run"
        fi
    done
done

# Medians per case and server, and the median of the per-run wsreactor/raw ratios.
awk -v ncases="${#CASES[@]}" -v labels="$(printf '%s\n' "${CASES[@]}" | cut -d'|' -f3 | paste -sd'|')" "$BENCH_AWK_MEDIAN"'
function med(c, s, k,    n, v, r) {
    n = 0
    for (r = 1; r <= maxrun; r++) if ((c, s, r, k) in val) v[++n] = val[c, s, r, k]
    return median(v, n, "-")
}
function ratio(c, k,    n, v, r, a, b) {
    n = 0
    for (r = 1; r <= maxrun; r++)
        if ((c, "wsr", r, k) in val && (c, "raw", r, k) in val && val[c, "raw", r, k] > 0)
            v[++n] = val[c, "wsr", r, k] / val[c, "raw", r, k]
    return median(v, n, "-")
}
{
    for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
    c = f["case"]; s = f["server"]; r = f["run"]; if (r > maxrun) maxrun = r
    for (k in f) val[c, s, r, k] = f[k]
    if (f["msgs_per_s"] > 0) val[c, s, r, "cpu_us_per_msg"] = f["server_cpu_pct"] * 1e4 / f["msgs_per_s"]
    errs[c, s] += f["errors"]
    delete f
}
END {
    split(labels, label, "|")
    print ""
    print "| case | server | msg/s | MB/s | p50 us | p99 us | p99.9 us | server CPU % | server CPU us/msg | client CPU % | errors |"
    print "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for (c = 0; c < ncases; c++)
        for (si = 1; si <= 2; si++) {
            s = si == 1 ? "wsr" : "raw"
            printf "| %s | %s | %.0f | %.1f | %.1f | %.1f | %.1f | %.1f | %.2f | %.1f | %d |\n", label[c + 1],
                s == "wsr" ? "wsreactor" : "raw echo", med(c, s, "msgs_per_s"), med(c, s, "mb_per_s"),
                med(c, s, "p50_us"), med(c, s, "p99_us"), med(c, s, "p999_us"), med(c, s, "server_cpu_pct"),
                med(c, s, "cpu_us_per_msg"), med(c, s, "client_cpu_pct"), errs[c, s]
        }
    print ""
    print "wsreactor / raw echo (median of per-run paired ratios; throughput: higher is better, the rest: lower):"
    print ""
    print "| case | msg/s | p50 | p99 | p99.9 | server CPU us/msg |"
    print "|---|---:|---:|---:|---:|---:|"
    for (c = 0; c < ncases; c++)
        printf "| %s | %.2f | %.2f | %.2f | %.2f | %.2f |\n", label[c + 1], ratio(c, "msgs_per_s"), ratio(c, "p50_us"),
            ratio(c, "p99_us"), ratio(c, "p999_us"), ratio(c, "cpu_us_per_msg")
}' "$RES"

if [ "$FAILED" = 1 ] || grep -q ' errors=[1-9]' "$RES"; then
    echo "run.sh: some runs failed or reported errors (see above)" >&2
    exit 1
fi
exit 0
