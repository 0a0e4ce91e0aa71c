#!/usr/bin/env bash
# bench/run-flood.sh: what one flooding client does to everybody else's latency.
#
# 50 WebSocket clients send 2,000 small messages/s in total to wsreactor's /echo, open
# loop (wsbench latency: a message delayed by a stalled server is charged from when it
# was due), in three situations, each run N times in one invocation (the order reversed
# every other run, so no situation always runs on a warmer machine):
#   alone    nothing else
#   plain    plus one client (bench/flood) sending 1 MiB uncompressed binary messages
#   deflate  plus one client sending ~1 KB permessage-deflate messages that inflate to
#            1 MiB of zeros (the server inflates, and deflates again to echo, 1 MiB each)
# The flooders keep 256 messages in flight and read every echo. One server serves every
# run. Prints a table of medians (latency p50/p99/p99.9/max, the flooder's rate, the
# server's CPU) and p99 under each flood divided by p99 alone (median of the per-run
# paired ratios), and whether p99 stays within the goal (5 ms) under both floods.
#
# usage: bench/run-flood.sh [-n RUNS] [-d SECONDS] [-w WARMUP] [-b BUILD_DIR] [-r] [-q]
#   -n RUNS      runs of every situation (default 5)
#   -d SECONDS   measured seconds per run (default 5)
#   -w SECONDS   warmup per run (default 1)
#   -b DIR       meson build dir holding wsreactor and bench/{wsbench,flood}
#                (default build/release)
#   -r           server and latency clients SCHED_FIFO (chrt -f 10), as bench/run.sh -r;
#                the flooder stays at normal priority, nice 19
#   -q           no per-run lines, only the table
# env: WSBENCH, FLOOD, WSREACTOR override the binaries; SERVER_CPU (default 0) and
#      CLIENT_CPU (default 1) pick the cores, FLOOD_CPU (default CLIENT_CPU) the flooder's
#      (it runs at nice 19 so that it does not delay the clients beside it); CONNS (50),
#      RATE (2000), SIZE (32) shape the latency clients; FLOOD_DEPTH (256) and FLOOD_SIZE
#      (1m) the flooders; GOAL_MS (5) is the p99 goal; KEEP=1 keeps the raw results.
# Exit status: 0 (whether or not the goal is met), or 1 when any run failed, counted an
# error (a wrong or missing echo, a connection the server closed), or the server died.
set -u
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

RUNS=5 # the other options default in bench_options
bench_options "$@"
FLOOD=${FLOOD:-$BUILD/bench/flood}
FLOOD_CPU=${FLOOD_CPU:-$CLIENT_CPU}
CONNS=${CONNS:-50}
RATE=${RATE:-2000}
SIZE=${SIZE:-32}
FLOOD_DEPTH=${FLOOD_DEPTH:-256}
FLOOD_SIZE=${FLOOD_SIZE:-1m}
GOAL_MS=${GOAL_MS:-5}
bench_need "make build, or ninja -C $BUILD" "$WSBENCH" "$FLOOD" "$WSREACTOR"

bench_pin
PIN_F=()
[ ${#PIN_C[@]} -gt 0 ] && PIN_F=(taskset -c "$FLOOD_CPU")

bench_workdir flood INT TERM HUP PIPE # the EXIT trap then stops what we started

# The server: one for every run, on an ephemeral loopback port.
bench_start_server wsreactor "$WSREACTOR"
URL=ws://127.0.0.1:$SPORT/echo

# The source tree the build dir was configured from, and its commit.
src=$(sed -n 's/.*"directories": {"source": "\([^"]*\)".*/\1/p' "$BUILD/meson-info/meson-info.json" 2>/dev/null)
[ -n "$src" ] || src=$(dirname "$0")/..
if commit=$(git -C "$src" rev-parse --short HEAD 2>/dev/null); then
    [ -n "$(git -C "$src" status --porcelain -- src include 2>/dev/null)" ] && commit="$commit + uncommitted changes in src/ or include/"
else
    commit="unknown (source $src is not a git checkout)"
fi
echo "# latency under a flood: $WSREACTOR /echo, $(date -u +%Y-%m-%dT%H:%MZ), commit $commit"
echo "# $(bench_machine); server on CPU ${SERVER_CPU}, clients on CPU ${CLIENT_CPU}, flooder on CPU ${FLOOD_CPU}$([ "$RT" = 1 ] && echo ", SCHED_FIFO")"
echo "# latency: $CONNS conns, $RATE msg/s in total, $SIZE B text, open loop; flood: 1 client, $FLOOD_SIZE binary, $FLOOD_DEPTH in flight"
echo "# $RUNS runs x ${DUR} s (+${WARM} s warmup) per situation; loadavg at start: $(bench_loadavg)"

FAILED=0
RES=$WORK/results
: >"$RES"

# start_flooder MODE: starts bench/flood and waits for its first echo; sets FPID.
start_flooder() {
    local mode=$1
    : >"$WORK/flood.err"
    # It floods past its own window (--linger) until we stop it after the latency run,
    # so the server is under load for all of that run, its drain included.
    "${PIN_F[@]}" nice -n 19 "$FLOOD" --url "$URL" "--$mode" --size "$FLOOD_SIZE" --depth "$FLOOD_DEPTH" \
        --warmup "$WARM" --duration "$DUR" --linger 60 --quiet >"$WORK/flood.out" 2>"$WORK/flood.err" &
    FPID=$!
    PIDS+=("$FPID")
    for _ in $(seq 100); do
        grep -q '^flood: flooding' "$WORK/flood.err" && return 0
        kill -0 "$FPID" 2>/dev/null || break
        sleep 0.1
    done
    echo "run-flood.sh: the $mode flooder did not start flooding:" >&2
    head -5 "$WORK/flood.err" >&2
    return 1
}

# stop_flooder: SIGTERM, then it closes (echoes still owed, close handshake; it gives up
# after 30 s on its own); sets FRC.
stop_flooder() {
    kill -TERM "$FPID" 2>/dev/null
    local i
    for i in $(seq 400); do
        kill -0 "$FPID" 2>/dev/null || break
        sleep 0.1
    done
    [ "$i" = 400 ] && kill -KILL "$FPID" 2>/dev/null
    wait "$FPID"
    FRC=$?
}

# run_one SITUATION RUN
run_one() {
    local sit=$1 run=$2 fline="" frc=0
    if [ "$sit" != alone ]; then
        if ! start_flooder "$sit"; then
            FAILED=1
            stop_flooder
            return
        fi
    fi
    bench_wsbench $((${DUR%.*} + ${WARM%.*} + 30)) "$SPID" latency --conns "$CONNS" --rate "$RATE" --size "$SIZE" \
        --text --url "$URL"
    if [ "$sit" != alone ]; then
        stop_flooder
        frc=$FRC
        # Its fields get an f_ prefix beside wsbench's.
        fline=$(grep '^scenario=flood' "$WORK/flood.out" | tail -1 | sed 's/\([^ =]*\)=/f_\1=/g')
        if [ "$frc" -ne 0 ] || [ -z "$fline" ]; then
            FAILED=1
            echo "run-flood.sh: run $run $sit: flooder exit $frc" >&2
            grep -v '^flood: flooding' "$WORK/flood.err" | head -5 >&2
        fi
    fi
    bench_wsbench_check "run $run $sit: wsbench"
    if ! kill -0 "$SPID" 2>/dev/null; then
        echo "run-flood.sh: wsreactor died during run $run $sit:" >&2
        tail -5 "$WORK/wsreactor.log" >&2
        exit 1
    fi
    [ -n "$LINE" ] && echo "sit=$sit run=$run $LINE $fline" >>"$RES"
    [ "$QUIET" = 1 ] || printf '  run %s %-7s: %s\n' "$run" "$sit" \
        "$(printf '%s %s\n' "$LINE" "$fline" | grep -o ' p99_us=[^ ]*\| p999_us=[^ ]*\| errors=[^ ]*\| server_cpu_pct=[^ ]*\|f_msgs_per_s=[^ ]*\|f_errors=[^ ]*' | tr -d ' ' | tr '\n' ' ')" >&2
}

for run in $(seq "$RUNS"); do
    if [ $((run % 2)) = 1 ]; then order=(alone plain deflate); else order=(deflate plain alone); fi
    for sit in "${order[@]}"; do run_one "$sit" "$run"; done
done

echo "# loadavg at end: $(bench_loadavg)"
awk -v goal="$GOAL_MS" -v depth="$FLOOD_DEPTH" "$BENCH_AWK_MEDIAN"'
function med(s, k,    n, v, r) {
    n = 0
    for (r = 1; r <= maxrun; r++) if ((s, r, k) in val) v[++n] = val[s, r, k] + 0 # numbers, not strings
    return median(v, n, -1)
}
# p99 under flood s divided by p99 alone, run by run (a pair runs seconds apart and
# drifts together), then the median.
function ratio(s,    n, v, r) {
    n = 0
    for (r = 1; r <= maxrun; r++)
        if ((s, r, "p99_us") in val && ("alone", r, "p99_us") in val && val["alone", r, "p99_us"] + 0 > 0)
            v[++n] = (val[s, r, "p99_us"] + 0) / val["alone", r, "p99_us"]
    return median(v, n, -1)
}
function ms(us) { return us < 0 ? "-" : sprintf(us < 10000 ? "%.2f" : "%.1f", us / 1000) }
function num(x, fmt) { return x < 0 ? "-" : sprintf(fmt, x) }
{
    for (i = 1; i <= NF; i++) { eq = index($i, "="); f[substr($i, 1, eq - 1)] = substr($i, eq + 1) }
    s = f["sit"]; r = f["run"]; if (r > maxrun) maxrun = r
    for (k in f) val[s, r, k] = f[k]
    nruns[s]++
    errs[s] += f["errors"] + f["f_errors"]
    delete f
}
END {
    name["alone"] = "alone"
    name["plain"] = "1 MiB plain flood"
    name["deflate"] = "1 KB -> 1 MiB deflate flood"
    print ""
    print "| situation | runs | p50 ms | p99 ms | p99.9 ms | max ms | flood msg/s | flood MB/s (payload) | flood MB/s sent | server CPU % | errors |"
    print "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    split("alone plain deflate", order, " ")
    for (i = 1; i <= 3; i++) {
        s = order[i]
        fl = s != "alone"
        printf "| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %d |\n", name[s], nruns[s], ms(med(s, "p50_us")),
            ms(med(s, "p99_us")), ms(med(s, "p999_us")), ms(med(s, "max_us")),
            fl ? num(med(s, "f_msgs_per_s"), "%.0f") : "-", fl ? num(med(s, "f_mb_per_s"), "%.0f") : "-",
            fl ? num(med(s, "f_wire_out_mb_per_s"), "%.2f") : "-", num(med(s, "server_cpu_pct"), "%.0f"), errs[s]
    }
    print ""
    printf "p99 under the flood / p99 alone (median of per-run paired ratios): plain %s, deflate %s\n",
        num(ratio("plain"), "%.1f"), num(ratio("deflate"), "%.1f")
    p = med("plain", "p99_us"); d = med("deflate", "p99_us")
    met = p >= 0 && d >= 0 && p <= goal * 1000 && d <= goal * 1000
    printf "goal: p99 <= %s ms during either flood: %s (median p99: plain %s ms, deflate %s ms)\n", goal,
        met ? "met" : "NOT met", ms(p), ms(d)
}' "$RES"

if [ "$FAILED" = 1 ] || grep -q ' errors=[1-9]\| f_errors=[1-9]' "$RES"; then
    echo "run-flood.sh: some runs failed or reported errors (see above)" >&2
    exit 1
fi
exit 0
