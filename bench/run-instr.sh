#!/usr/bin/env bash
# bench/run-instr.sh: user-space instructions per message of the release daemon, counted
# by valgrind's callgrind, and syscalls per message, counted by strace. Each case runs
# twice against a fresh server, with a small and a large number of messages; start-up,
# handshakes and shutdown are the same in both runs, so the difference divided by the
# difference in messages is the cost of one message (bench/instr.py does the sums). The
# raw TCP echo (bench/rawecho) is measured the same way: the floor.
#
# Instruction counts do not depend on the machine's load, unlike times, so one run of
# each size is enough; they do depend on the compiler, the libraries and the kernel's
# batching (how many messages one read returns), so quote them with the machine.
#
# usage: bench/run-instr.sh [-b BUILD_DIR] [-c CASES] [-t TOP] [-s] [-S]
#   -b DIR     meson build dir holding wsreactor and bench/{wsbench,rawecho} [build/release]
#   -c CASES   comma-separated subset of: d1,d16,16k,fanout,raw1,raw16 [all]
#   -t TOP     functions listed per case [12]
#   -s         also count syscalls per message (strace -c -f, the same two runs, no valgrind)
#   -S         only syscalls, no callgrind
# env: WSBENCH, RAWECHO, WSREACTOR override the binaries; KEEP=1 keeps the profiles.
set -u
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

BUILD=build/release CASESEL=all TOP=12 STRACE=0 CALLGRIND=1
while getopts "b:c:t:sSh" opt; do
    case $opt in
    b) BUILD=$OPTARG ;;
    c) CASESEL=$OPTARG ;;
    t) TOP=$OPTARG ;;
    s) STRACE=1 ;;
    S) STRACE=1 CALLGRIND=0 ;;
    *) bench_usage ;;
    esac
done
bench_paths
RAWECHO=${RAWECHO:-$BUILD/bench/rawecho}
bench_need "meson setup $BUILD --buildtype=release && ninja -C $BUILD" "$WSBENCH" "$RAWECHO" "$WSREACTOR"
[ "$CALLGRIND" = 0 ] || command -v valgrind >/dev/null || { echo "$ME: valgrind not found" >&2; exit 2; }
[ "$STRACE" = 0 ] || command -v strace >/dev/null || { echo "$ME: strace not found" >&2; exit 2; }
PY=/usr/bin/python3
INSTR=$(dirname "$0")/instr.py

# name | server (wsr or raw) | wsbench scenario and options | small N | large N | deliveries per message
CASES=(
    "d1|wsr|echo --conns 10 --depth 1 --size 32 --text|20000|60000|1|echo 32 B text, 10 conns, depth 1"
    "d16|wsr|echo --conns 10 --depth 16 --size 32 --text|20000|60000|1|echo 32 B text, 10 conns, depth 16"
    "16k|wsr|echo --conns 10 --depth 1 --size 16k --binary|2000|6000|1|echo 16 KiB binary, 10 conns, depth 1"
    "fanout|wsr|fanout --conns 101 --depth 1 --size 32 --text|500|1500|100|/broadcast 32 B, 100 subscribers (per delivery)"
    "raw1|raw|echo --raw --conns 10 --depth 1 --size 32|20000|60000|1|raw TCP echo 32 B, 10 conns, depth 1"
    "raw16|raw|echo --raw --conns 10 --depth 16 --size 32|20000|60000|1|raw TCP echo 32 B, 10 conns, depth 16"
)

bench_workdir instr INT TERM

# Servers run unpinned (no taskset, which valgrind and strace would only wrap), patiently:
# valgrind takes seconds to start.
PIN_S=() PRIO=() SERVER_WAIT=600

# stop_server: SIGTERM (a graceful shutdown) and waits, so the profile is written. Under
# strace the signal goes to the traced server (strace itself would only detach).
stop_server() {
    local target=$SPID
    if [ "$1" = strace ]; then target=$(pgrep -P "$SPID" | head -1); fi
    kill -TERM "${target:-$SPID}" 2>/dev/null
    wait "$SPID" 2>/dev/null
}

# one_run NAME SERVER OPTS N TOOL: one server under TOOL (callgrind or strace), one wsbench
# run of N messages against it.
one_run() {
    local name=$1 srv=$2 opts=$3 n=$4 tool=$5 bin url path
    if [ "$srv" = raw ]; then bin=$RAWECHO; else bin=$WSREACTOR; fi
    local out=$WORK/$name.$n.$tool
    if [ "$tool" = callgrind ]; then
        SERVER_WRAP=(valgrind --tool=callgrind --callgrind-out-file="$out" --dump-line=no --compress-strings=yes -q)
    else
        SERVER_WRAP=(strace -c -f -o "$out")
    fi
    bench_start_server server "$bin"
    path=/echo
    case $opts in fanout*) path=/broadcast ;; esac
    if [ "$srv" = raw ]; then url=tcp://127.0.0.1:$SPORT; else url=ws://127.0.0.1:$SPORT$path; fi
    # shellcheck disable=SC2086 # options are word lists on purpose
    if ! timeout 900 "$WSBENCH" $opts --url "$url" --messages "$n" --warmup 0 --duration 600 --quiet \
        >"$WORK/bench.out" 2>"$WORK/bench.err"; then
        echo "$ME: $name: wsbench failed:" >&2
        head -5 "$WORK/bench.err" >&2
        stop_server "$tool"
        exit 1
    fi
    stop_server "$tool"
}

# syscalls OUT: "calls name" lines from a strace -c summary.
syscalls() {
    awk '$1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" { print $4, $NF }' "$1"
}

echo "# bench-instr: user-space instructions (callgrind) and syscalls (strace) per message, $(date -u +%Y-%m-%dT%H:%MZ)"
echo "# $(bench_machine); $(valgrind --version 2>/dev/null); wsreactor $(git -C "$(dirname "$0")" describe --always --dirty 2>/dev/null)"
for c in "${CASES[@]}"; do
    IFS='|' read -r name srv opts n1 n2 per label <<<"$c"
    if [ "$CASESEL" != all ] && ! [[ ",$CASESEL," == *",$name,"* ]]; then continue; fi
    echo
    echo "## $name: $label"
    echo "# wsbench $opts --messages $n1|$n2 --warmup 0"
    if [ "$CALLGRIND" = 1 ]; then
        one_run "$name" "$srv" "$opts" "$n1" callgrind
        one_run "$name" "$srv" "$opts" "$n2" callgrind
        "$PY" "$INSTR" --top "$TOP" "$WORK/$name.$n1.callgrind" $((n1 * per)) "$WORK/$name.$n2.callgrind" $((n2 * per))
    fi
    if [ "$STRACE" = 1 ]; then
        one_run "$name" "$srv" "$opts" "$n1" strace
        one_run "$name" "$srv" "$opts" "$n2" strace
        echo "syscalls per message:"
        join -1 2 -2 2 -a 1 -a 2 -e 0 -o 0,1.1,2.1 \
            <(syscalls "$WORK/$name.$n1.strace" | sort -k2) <(syscalls "$WORK/$name.$n2.strace" | sort -k2) |
            awk -v dn=$(((n2 - n1) * per)) '{ d = ($3 - $2) / dn; t += d; if (d > 0.001 || d < -0.001) printf "    %-20s %8.3f\n", $1, d }
                END { printf "    %-20s %8.3f\n", "total", t }'
    fi
done
