#!/usr/bin/env bash
# bench/run-scaling.sh: publish-to-delivery through Redis (--broker, docs/scaling.md) next
# to one node without it, in one invocation (bench/msgbench fanout, 100-byte payloads,
# closed loop at depth 1 and 16):
#   one    one node, the in-process broker: SUBS subscribers and the publisher on it;
#   redis1 one node with --broker: the same clients, every publication through Redis;
#   redis2 two nodes with --broker on one Redis: SUBS/2 subscribers on each, the
#          publisher on the first (msgbench --url2).
# Cases alternate their order from run to run; the tables give the median of RUNS runs of
# deliveries/s, delivery p50/p99 and the ratio to `one` of the same run. Nodes and Redis
# are started fresh for every run (redis-server on a free port, no persistence).
#
# usage: bench/run-scaling.sh [-n RUNS] [-d SECONDS] [-w WARMUP] [-b BUILD_DIR] [-o OUT_DIR] [-r] [-q]
#   -n RUNS      repetitions of every case (default 3)
#   -d SECONDS   measured seconds per run (default 5)
#   -w SECONDS   warmup per run (default 1)
#   -b DIR       meson build dir holding wsreactor and bench/msgbench (default build/release)
#   -o DIR       where results go (default bench/results/scaling): results.txt, table.md
#   -r           daemons and client SCHED_FIFO (chrt -f 10)
#   -q           no per-run lines, only the table
# env: SUBS (1000) subscribers; DEPTHS ("1 16"); SERVER_CPU (0), CLIENT_CPU (1). The
# nodes and redis-server share SERVER_CPU: on 2 cores the client needs the other one.
# Duration with the defaults: about 2 minutes.
# Exit status: 0; 1 when a run failed or counted errors; 2 for bad usage or no build.
set -u
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

RUNS=3 DUR=5 WARM=1 BUILD=build/release OUT=bench/results/scaling RT=0 QUIET=0
while getopts "n:d:w:b:o:rqh" opt; do
    case $opt in
    o) OUT=$OPTARG ;;
    *) bench_opt "$opt" "${OPTARG-}" ;;
    esac
done
bench_paths
RES=$OUT/results.txt
MSGBENCH=${MSGBENCH:-$BUILD/bench/msgbench}
SUBS=${SUBS:-1000} DEPTHS=${DEPTHS:-"1 16"}
bench_need "meson setup $BUILD --buildtype=release -Dtests=false && ninja -C $BUILD" "$WSREACTOR" "$MSGBENCH"
REDIS=$(command -v redis-server || echo /usr/bin/redis-server)
if [ ! -x "$REDIS" ]; then
    echo "$ME: redis-server not found (apt-get install redis-server; make test-deps)" >&2
    exit 2
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null

bench_pin
bench_workdir scaling INT TERM
mkdir -p "$OUT"
: >"$RES"
FAILED=0
say() { [ "$QUIET" = 1 ] || echo "$ME: $*" >&2; }

# A free loopback port: bound to 0 by python, then released.
free_port() { /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# redis_start: RPID, RPORT.
redis_start() {
    RPORT=$(free_port)
    mkdir -p "$WORK/redis"
    "${PIN_S[@]}" "$REDIS" --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK/redis" \
        --daemonize no --loglevel warning >"$WORK/redis.log" 2>&1 &
    RPID=$!
    PIDS+=("$RPID")
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$RPORT") 2>/dev/null; then return; fi
        sleep 0.05
    done
    echo "$ME: redis-server did not start" >&2
    cat "$WORK/redis.log" >&2
    exit 1
}

# until_up PORT: waits until the node on PORT says wsreactor_broker_up 1.
until_up() {
    for _ in $(seq 100); do
        if /usr/bin/python3 - "$1" <<'PY' 2>/dev/null; then return 0; fi
import sys, urllib.request
text = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=1).read().decode()
sys.exit(0 if "\nwsreactor_broker_up 1\n" in text else 1)
PY
        sleep 0.1
    done
    echo "$ME: the node on port $1 did not say wsreactor_broker_up 1 in 10 s; its log and Redis's:" >&2
    tail -5 "$WORK"/n*.log "$WORK/redis.log" >&2
    FAILED=1
}

stop() { for p in "$@"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; }

# one_case CASE DEPTH RUN: starts what the case needs, runs msgbench, stops everything.
one_case() {
    local c=$1 d=$2 r=$3 url2=() n1 n2=""
    case $c in
    one)
        bench_start_server n1 "$WSREACTOR"
        n1=$SPID
        ;;
    redis1 | redis2)
        redis_start
        bench_start_server n1 "$WSREACTOR" --broker "redis://127.0.0.1:$RPORT/0"
        n1=$SPID
        until_up "$SPORT"
        local p1=$SPORT
        if [ "$c" = redis2 ]; then
            bench_start_server n2 "$WSREACTOR" --broker "redis://127.0.0.1:$RPORT/0"
            n2=$SPID
            until_up "$SPORT"
            url2=(--url2 "ws://127.0.0.1:$SPORT/ws")
        fi
        SPORT=$p1
        ;;
    esac
    local out
    out=$(timeout 120 "${PIN_C[@]}" "${PRIO[@]}" "$MSGBENCH" fanout --url "ws://127.0.0.1:$SPORT/ws" "${url2[@]}" \
        --subs "$SUBS" --depth "$d" --payload 100 --duration "$DUR" --warmup "$WARM" --settle 1 --server-pid "$n1" \
        --quiet 2>"$WORK/err")
    local rc=$?
    LINE=$(printf '%s\n' "$out" | grep '^mode=' | tail -1)
    if [ "$rc" -ne 0 ] || [ -z "$LINE" ]; then
        FAILED=1
        echo "$ME: $c depth $d run $r: msgbench exit $rc" >&2
        head -5 "$WORK/err" >&2
    fi
    [ -n "$LINE" ] && echo "case=$c depth=$d run=$r $LINE" >>"$RES"
    say "$c depth $d run $r: $(printf '%s\n' "$LINE" | tr ' ' '\n' | grep -E '^(deliveries_per_s|p50_us|p99_us|errors)=' | tr '\n' ' ')"
    stop $n2 "$n1"
    [ "$c" != one ] && stop "$RPID"
    return 0
}

{
    echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
    echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo -)"
    echo "machine: $(bench_machine)"
    echo "redis: $("$REDIS" --version | sed 's/ sha=.*//')"
    echo "pinning: nodes and redis on CPU $SERVER_CPU, client on CPU $CLIENT_CPU$([ "$RT" = 1 ] && echo ", SCHED_FIFO")"
    echo "runs: $RUNS x ${DUR} s (+${WARM} s warmup); subscribers: $SUBS; depths: $DEPTHS"
    echo "loadavg at start: $(bench_loadavg)"
} >"$OUT/meta.txt"
sed 's/^/# /' "$OUT/meta.txt" >&2

for run in $(seq "$RUNS"); do
    for d in $DEPTHS; do
        if [ $((run % 2)) = 1 ]; then order="one redis1 redis2"; else order="redis2 redis1 one"; fi
        for c in $order; do one_case "$c" "$d" "$run"; done
    done
done
echo "loadavg at end: $(bench_loadavg)" >>"$OUT/meta.txt"

{
    sed 's/^/# /' "$OUT/meta.txt"
    echo
    echo "| case | depth | deliveries/s | p50 us | p99 us | deliveries/s vs one |"
    echo "|---|---:|---:|---:|---:|---:|"
    awk "$BENCH_AWK_MEDIAN"'
    {
        delete f
        for (i = 1; i <= NF; i++) { k = $i; sub(/=.*/, "", k); v = $i; sub(/^[^=]*=/, "", v); f[k] = v }
        key = f["case"] SUBSEP f["depth"]; r = f["run"]; if (r > maxrun) maxrun = r
        dps[key, r] = f["deliveries_per_s"]; p50[key, r] = f["p50_us"]; p99[key, r] = f["p99_us"]
        depths[f["depth"]] = 1
    }
    function med(arr, key,    n, v, r) {
        n = 0
        for (r = 1; r <= maxrun; r++) if ((key, r) in arr) v[++n] = arr[key, r] + 0
        return median(v, n, 0)
    }
    function ratio(c, d,    n, v, r) {
        n = 0
        for (r = 1; r <= maxrun; r++)
            if ((c SUBSEP d, r) in dps && ("one" SUBSEP d, r) in dps && dps["one" SUBSEP d, r] > 0)
                v[++n] = dps[c SUBSEP d, r] / dps["one" SUBSEP d, r]
        return median(v, n, 0)
    }
    END {
        split("one redis1 redis2", cs, " ")
        for (d in depths) for (i = 1; i <= 3; i++) {
            k = cs[i] SUBSEP d
            printf "| %s | %s | %.0f | %.0f | %.0f | %.2f |\n", cs[i], d, med(dps, k), med(p50, k), med(p99, k), ratio(cs[i], d)
        }
    }' "$RES" | sort -t'|' -k3,3n -s
} | tee "$OUT/table.md"

if [ "$FAILED" = 1 ] || grep -q ' errors=[1-9]' "$RES"; then
    echo "$ME: some runs failed or counted errors (see above)" >&2
    exit 1
fi
exit 0
