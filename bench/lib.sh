# bench/lib.sh: what the benchmark scripts (run.sh, run-flood.sh, run-peers.sh) share.
# Sourced, not run: it defines functions and ME, and starts nothing. The functions read
# and set the scripts' globals by these names: RUNS DUR WARM BUILD RT QUIET (the common
# options), SERVER_CPU CLIENT_CPU PIN_S PIN_C PRIO, WORK PIDS, SPID SPORT, WSBENCH,
# FAILED, RC LINE.
# shellcheck shell=bash disable=SC2034 # it sets globals of the scripts that source it

ME=$(basename "$0") # every message starts "$ME: "

# bench_usage: prints the script's header comment (from line 2 to `set -u`); exits 2.
bench_usage() {
    sed -n '2,/^set -u/p' "$0" | sed 's/^# \{0,1\}//;/^set -u/d'
    exit 2
}

# bench_opt OPT ARG: one of the options every script takes, as getopts gives it:
# -n RUNS, -d SECONDS, -w WARMUP, -b BUILD_DIR, -r (SCHED_FIFO), -q (quiet); anything
# else (-h, or an option getopts did not know) prints the usage.
bench_opt() {
    case $1 in
    n) RUNS=$2 ;;
    d) DUR=$2 ;;
    w) WARM=$2 ;;
    b) BUILD=$2 ;;
    r) RT=1 ;;
    q) QUIET=1 ;;
    *) bench_usage ;;
    esac
}

# bench_options ARG...: the options every script takes, from the script's arguments
# (RUNS keeps the script's own default; DUR 5, WARM 1, BUILD build/release, RT 0,
# QUIET 0 otherwise); then bench_paths.
bench_options() {
    DUR=5 WARM=1 BUILD=build/release RT=0 QUIET=0
    local opt OPTIND=1
    while getopts "n:d:w:b:rqh" opt; do bench_opt "$opt" "${OPTARG-}"; done
    bench_paths
}

# bench_paths: WSBENCH and WSREACTOR in BUILD, SERVER_CPU 0 and CLIENT_CPU 1, unless the
# environment says otherwise.
bench_paths() {
    WSBENCH=${WSBENCH:-$BUILD/bench/wsbench}
    WSREACTOR=${WSREACTOR:-$BUILD/wsreactor}
    SERVER_CPU=${SERVER_CPU:-0}
    CLIENT_CPU=${CLIENT_CPU:-1}
}

# bench_need HINT BINARY...: exits 2, saying how to build them (HINT), unless every
# BINARY is there.
bench_need() {
    local hint=$1 b
    shift
    for b in "$@"; do
        if [ ! -x "$b" ]; then
            echo "$ME: $b not found; build first ($hint)" >&2
            exit 2
        fi
    done
}

# bench_pin: PIN_S and PIN_C, the command prefixes that run a server on SERVER_CPU and a
# client on CLIENT_CPU (none with one CPU or without taskset); PRIO, SCHED_FIFO with -r.
bench_pin() {
    PIN_S=() PIN_C=() PRIO=()
    if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
        PIN_S=(taskset -c "$SERVER_CPU") PIN_C=(taskset -c "$CLIENT_CPU")
    fi
    if [ "$RT" = 1 ]; then PRIO=(chrt -f 10); fi
}

# bench_machine: "N CPUs (MODEL), KERNEL", for the headers.
bench_machine() {
    echo "$(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)), $(uname -sr)"
}

# bench_loadavg: the 1, 5 and 15 minute load averages.
bench_loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# bench_workdir NAME SIGNAL...: WORK, a scratch directory /tmp/wsbench-NAME.XXXXXX, and
# PIDS, the processes the script starts. At exit they are stopped and WORK is removed
# (KEEP=1 keeps it); each SIGNAL ends the script (status 130), so that happens then too.
bench_workdir() {
    WORK=$(mktemp -d "/tmp/wsbench-$1.XXXXXX")
    PIDS=()
    shift
    trap bench_cleanup EXIT
    trap 'exit 130' "$@"
}

# shellcheck disable=SC2317 # called by the trap
bench_cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
    if [ "${KEEP:-0}" = 1 ]; then echo "$ME: results kept in $WORK" >&2; else rm -rf "$WORK"; fi
}

# bench_listen_port LOG PID TRIES PAUSE: the port a server (PID) says it listens on in
# LOG ("listening on ...:PORT"), looked for TRIES times PAUSE seconds apart while it
# lives; nothing when it does not come.
bench_listen_port() {
    local port="" _
    for _ in $(seq "$3"); do
        port=$(sed -n 's/.*listening on .*:\([0-9][0-9]*\)$/\1/p' "$1" | head -1)
        [ -n "$port" ] && break
        kill -0 "$2" 2>/dev/null || break
        sleep "$4"
    done
    echo "$port"
}

# bench_start_server NAME BINARY [ARG...]: starts BINARY on an ephemeral loopback port
# (with ARGs), pinned as a server, its log in $WORK/NAME.log; sets SPID and SPORT. Exits
# 1 when it does not start. SERVER_WRAP (an array: a tool the server runs under) and
# SERVER_WAIT (tenths of a second to wait for its port, 50) may be set.
bench_start_server() {
    local name=$1 bin=$2 log=$WORK/$1.log
    shift 2
    "${PIN_S[@]}" "${PRIO[@]}" "${SERVER_WRAP[@]}" "$bin" --listen 127.0.0.1:0 "$@" 2>"$log" &
    SPID=$!
    PIDS+=("$SPID")
    SPORT=$(bench_listen_port "$log" "$SPID" "${SERVER_WAIT:-50}" 0.1)
    if [ -z "$SPORT" ]; then
        echo "$ME: $name did not start:" >&2
        cat "$log" >&2
        exit 1
    fi
}

# bench_wsbench LIMIT SERVER_PID ARG...: runs `wsbench ARG...` pinned as a client, for
# the run's --duration and --warmup, --quiet, with --server-pid; killed after LIMIT
# seconds. Its stderr goes to $WORK/err. Sets RC, its exit status, and LINE, its
# key=value line ("" when there is none).
bench_wsbench() {
    local limit=$1 pid=$2 out
    shift 2
    out=$(timeout "$limit" "${PIN_C[@]}" "${PRIO[@]}" "$WSBENCH" "$@" --duration "$DUR" --warmup "$WARM" \
        --server-pid "$pid" --quiet 2>"$WORK/err")
    RC=$?
    LINE=$(printf '%s\n' "$out" | grep '^scenario=' | tail -1)
}

# bench_wsbench_check WHAT: after bench_wsbench, when it failed or printed no key=value
# line, sets FAILED=1 and says "$ME: WHAT exit RC" with the first lines of its stderr.
bench_wsbench_check() {
    if [ "$RC" -ne 0 ] || [ -z "$LINE" ]; then
        FAILED=1
        echo "$ME: $1 exit $RC" >&2
        head -5 "$WORK/err" >&2
    fi
}

# The awk function the tables are made with: median(arr, n, none), the median of
# arr[1..n] (n % 2 == 0: the mean of the middle two), none when n is 0.
BENCH_AWK_MEDIAN='
function median(arr, n, none,    i, j, t, a) {
    if (n == 0) return none
    for (i = 1; i <= n; i++) a[i] = arr[i]
    for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
'
