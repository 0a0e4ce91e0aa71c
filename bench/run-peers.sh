#!/usr/bin/env bash
# bench/run-peers.sh: wsreactor side by side with echo servers made from Debian-packaged
# peers and a raw TCP echo (the physical limit), in one invocation, on loopback.
#
# It builds the peers (bench/peers/: libwebsockets, Boost.Beast, websocketpp, node `ws`;
# missing Debian packages installed with apt-get, node's with `npm ci`), then runs in rounds:
# each round starts every server in turn, one at a time, pinned to one core, runs the same
# wsbench cases against it from the other core, and stops it; `idle` gets a freshly started
# server of its own. The order of the servers rotates from round to round, so that drift on
# a shared machine spreads over all of them. Ratios to wsreactor are the median of the
# per-round paired ratios. wsbench validates every frame and counts errors: a server with
# errors in a case is shown with them and left out of that case's ratios.
#
# usage: bench/run-peers.sh [-n RUNS] [-d SECONDS] [-w WARMUP] [-b BUILD_DIR] [-o OUT_DIR]
#                           [-s SERVERS] [-i IDLE_CONNS] [-H HOLD] [-r] [-q] [-P]
#   -n RUNS        rounds: repetitions of every case on every server (default 3)
#   -d SECONDS     measured seconds per timed run (default 5)
#   -w SECONDS     warmup per timed run (default 1)
#   -b DIR         meson build dir holding wsreactor and bench/{wsbench,rawecho}
#                  (default build/release)
#   -o DIR         where results go (default bench/results/latest): results.txt (every
#                  run's key=value line), meta.txt, table.md, and the plots (bench/plot.sh)
#   -s LIST        servers, comma-separated, from wsreactor,rawecho,lws,beast,wspp,node
#                  (default all; wsreactor is always run, as the reference)
#   -i N           connections of the idle case (default 10000; 0 skips it)
#   -H SECONDS     how long idle holds them (default 3)
#   -r             servers and client SCHED_FIFO (chrt -f 10), as bench/run.sh -r: other
#                  work no longer preempts them, and is starved for the whole run
#   -q             no per-run lines, only the tables
#   -P             no plots
# env: PEERS_BUILD (default build/peers) for the peers' binaries; SERVER_CPU (default 0)
#      and CLIENT_CPU (default 1); CXX (default g++); NO_INSTALL=1 installs nothing
#      (a peer whose packages are missing is reported and skipped).
# Duration with the defaults on 2 cores: about 9 minutes (6 servers x 3 rounds x 4 cases x
# ~6.5 s, plus 5 x 3 idle runs of ~5 s: 534-573 s measured), plus about 40 s of building
# the peers the first time.
# Exit status: 0; 1 when a run failed, counted errors, or a server could not be built or
# started; 2 for bad usage or a missing wsreactor build.
set -u
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

RUNS=3 DUR=5 WARM=1 BUILD=build/release OUT=bench/results/latest RT=0 QUIET=0 PLOT=1
SERVERS_ARG=wsreactor,rawecho,lws,beast,wspp,node IDLE_CONNS=10000 HOLD=3
while getopts "n:d:w:b:o:s:i:H:rqPh" opt; do
    case $opt in
    o) OUT=$OPTARG ;;
    s) SERVERS_ARG=$OPTARG ;;
    i) IDLE_CONNS=$OPTARG ;;
    H) HOLD=$OPTARG ;;
    P) PLOT=0 ;;
    *) bench_opt "$opt" "${OPTARG-}" ;; # -n -d -w -b -r -q, or the usage
    esac
done

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
PEERS_SRC=$HERE/peers
PEERS_BUILD=${PEERS_BUILD:-build/peers}
bench_paths
RAWECHO=${RAWECHO:-$BUILD/bench/rawecho}
CXX=${CXX:-g++}
bench_need "make build, or meson setup $BUILD --buildtype=release -Dtests=false && ninja -C $BUILD" \
    "$WSBENCH" "$RAWECHO" "$WSREACTOR"

say() { echo "run-peers.sh: $*" >&2; }
START_TS=$(date +%s)

# ---------------------------------------------------------------- the servers
# name|label|how it is built. The order is the order of the tables.
ALL_SERVERS=(wsreactor rawecho lws beast wspp node)
declare -A LABEL=(
    [wsreactor]=wsreactor [rawecho]="raw echo" [lws]=libwebsockets [beast]=Boost.Beast
    [wspp]=websocketpp [node]="node ws"
)
declare -A STATUS=()  # "" when usable, else why not
SERVERS=(wsreactor)
IFS=, read -r -a want <<<"$SERVERS_ARG"
for s in "${ALL_SERVERS[@]}"; do
    [ "$s" = wsreactor ] && continue
    for w in "${want[@]}"; do [ "$w" = "$s" ] && SERVERS+=("$s"); done
done
for w in "${want[@]}"; do
    [ -n "${LABEL[$w]+x}" ] || { say "unknown server '$w' (known: ${ALL_SERVERS[*]})"; exit 2; }
done
has() { local s; for s in "${SERVERS[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }

# ---------------------------------------------------------------- packages
# Debian packages each peer needs to build; installed when missing (we are root, or sudo).
declare -A PKGS=(
    [lws]="g++ pkg-config libwebsockets-dev"
    [beast]="g++ libboost-dev"
    [wspp]="g++ libwebsocketpp-dev libasio-dev"
)
missing_pkgs() {
    local p out=""
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || out="$out $p"
    done
    echo "$out"
}
APT_UPDATED=0
apt_install() {
    [ "${NO_INSTALL:-0}" = 1 ] && return 1
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    say "installing:$*"
    if [ $APT_UPDATED = 0 ]; then $sudo apt-get update -qq >&2 || return 1; APT_UPDATED=1; fi
    # shellcheck disable=SC2068
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $@ >&2
}
need=""
for s in lws beast wspp; do has "$s" && need="$need ${PKGS[$s]}"; done
[ "$PLOT" = 1 ] && need="$need gnuplot-nox"
command -v python3 >/dev/null || need="$need python3"
# shellcheck disable=SC2086
miss=$(missing_pkgs $need)
# shellcheck disable=SC2086
[ -n "$miss" ] && { apt_install $miss || say "could not install:$miss"; }
if has node && { ! command -v node >/dev/null || ! command -v npm >/dev/null; }; then
    # NodeSource's nodejs bundles npm and conflicts with Debian's npm: ask only if absent.
    apt_install nodejs npm || say "could not install nodejs npm"
fi
if ! command -v python3 >/dev/null; then say "python3 is needed for the tables"; exit 2; fi

# ---------------------------------------------------------------- building the peers
# Plain g++ -O2, one file each; rebuilt when the source is newer than the binary.
mkdir -p "$PEERS_BUILD"
WORK=$(mktemp -d /tmp/run-peers.XXXXXX)
build_one() { # NAME: compiles bench/peers/NAME_echo.cpp into $PEERS_BUILD/NAME_echo
    local s=$1 src=$PEERS_SRC/$1_echo.cpp bin=$PEERS_BUILD/$1_echo flags=()
    [ "$bin" -nt "$src" ] && return 0
    case $s in
    lws)   read -r -a flags <<<"-std=c++20 $src $(pkg-config --cflags --libs libwebsockets 2>/dev/null || echo -lwebsockets)" ;;
    beast) flags=(-std=c++20 "$src" -pthread) ;;
    wspp)  flags=(-std=c++17 "$src" -pthread) ;; # websocketpp 0.8.2 does not build as C++20
    esac
    "$CXX" -O2 -o "$bin.tmp" "${flags[@]}" >"$WORK/build-$s.log" 2>&1 && mv "$bin.tmp" "$bin"
}
bpids=() bnames=()
for s in lws beast wspp; do
    has "$s" || continue
    # shellcheck disable=SC2086
    miss=$(missing_pkgs ${PKGS[$s]})
    if [ -n "$miss" ]; then STATUS[$s]="not built: missing$miss"; continue; fi
    build_one "$s" & bpids+=($!) bnames+=("$s")
done
for k in "${!bpids[@]}"; do
    if ! wait "${bpids[$k]}"; then
        s=${bnames[$k]}
        STATUS[$s]="not built: $CXX failed"
        say "building $s failed:"; head -20 "$WORK/build-$s.log" >&2
    fi
done
if has node; then
    if ! command -v node >/dev/null; then
        STATUS[node]="not run: node not installed"
    elif [ ! -d "$PEERS_SRC/node/node_modules/ws" ] &&
        ! npm ci --prefix "$PEERS_SRC/node" --no-audit --no-fund >"$WORK/npm.log" 2>&1; then
        STATUS[node]="not run: npm ci failed"
        tail -5 "$WORK/npm.log" >&2
    fi
fi

# server_cmd NAME: the command line that starts it on an ephemeral loopback port
server_cmd() {
    case $1 in
    wsreactor) echo "$WSREACTOR --listen 127.0.0.1:0" ;;
    rawecho)   echo "$RAWECHO --listen 127.0.0.1:0" ;;
    lws | beast | wspp) echo "$PEERS_BUILD/$1_echo 0" ;;
    node)      echo "node $PEERS_SRC/node/echo.mjs 0" ;;
    esac
}

# ---------------------------------------------------------------- the cases
# scenario|wsbench options|label. rawecho gets the same options plus --raw; idle skips it.
CASES=(
    "echo|--conns 100 --depth 1 --size 32 --text|echo 100 conns x 1 x 32 B"
    "echo|--conns 100 --depth 16 --size 32 --text|echo 100 conns x 16 x 32 B"
    "echo|--conns 10 --depth 1 --size 16k --binary|echo 10 conns x 1 x 16 KiB binary"
    "latency|--conns 100 --rate 20000 --size 32 --text|latency 20k msg/s, 100 conns, 32 B"
)
IDLE_CASE=${#CASES[@]}
[ "$IDLE_CONNS" -gt 0 ] && CASES+=("idle|--conns $IDLE_CONNS --hold $HOLD|idle $IDLE_CONNS conns, ${HOLD} s hold")

bench_pin

mkdir -p "$OUT"
RES=$OUT/results.txt
: >"$RES"
rm -f "$OUT"/*.png "$OUT"/*.dat

SPID=""
# shellcheck disable=SC2317 # called by the trap
cleanup() {
    [ -n "$SPID" ] && { kill "$SPID" 2>/dev/null; wait "$SPID" 2>/dev/null; }
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_server NAME: sets SPID and SPORT, or returns 1
start_server() {
    local name=$1 log=$WORK/$1.log cmd
    read -r -a cmd <<<"$(server_cmd "$name")"
    "${PIN_S[@]}" "${PRIO[@]}" "${cmd[@]}" 2>"$log" >/dev/null &
    SPID=$!
    SPORT=$(bench_listen_port "$log" "$SPID" 100 0.05)
    [ -n "$SPORT" ] && return 0
    say "$name did not start:"; head -5 "$log" >&2
    stop_server
    return 1
}
stop_server() {
    [ -n "$SPID" ] || return 0
    kill "$SPID" 2>/dev/null
    for _ in $(seq 60); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.05; done
    kill -9 "$SPID" 2>/dev/null
    wait "$SPID" 2>/dev/null
    SPID=""
}

FAILED=0
# run_case NAME RUN CASE: one wsbench run against the running server
run_case() {
    local name=$1 run=$2 i=$3 sc opts url extra="" limit
    IFS='|' read -r sc opts _ <<<"${CASES[$i]}"
    if [ "$name" = rawecho ]; then
        url=tcp://127.0.0.1:$SPORT extra=--raw
    else
        url=ws://127.0.0.1:$SPORT/echo
    fi
    limit=$((${DUR%.*} + ${WARM%.*} + 30))
    [ "$sc" = idle ] && limit=$((${HOLD%.*} + 120))
    # shellcheck disable=SC2086 # options are word lists on purpose
    bench_wsbench "$limit" "$SPID" "$sc" $opts $extra --url "$url"
    bench_wsbench_check "$name run $run case $i:"
    if [ -n "$LINE" ]; then
        echo "server=$name run=$run case=$i exit=$RC $LINE" >>"$RES"
    else
        echo "server=$name run=$run case=$i exit=$RC scenario=$sc failed=1 errors=1" >>"$RES"
    fi
    [ "$QUIET" = 1 ] || printf '  %-9s run %s case %s: %s\n' "$name" "$run" "$i" \
        "$(printf '%s\n' "$LINE" | grep -o 'msgs_per_s=[^ ]*\|p99_us=[^ ]*\|errors=[^ ]*\|server_cpu_pct=[^ ]*\|client_cpu_pct=[^ ]*\|bytes_per_conn=[^ ]*' | tr '\n' ' ')" >&2
}

# ---------------------------------------------------------------- meta
commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no -- src include meson.build meson_options.txt bench/wsbench.cpp bench/client.cpp bench/client.h bench/rawecho.cpp bench/hdr.h 2>/dev/null)" ] && commit="$commit (with uncommitted changes to what is measured)"
# cpu_busy: how busy each CPU is over 1 s (before or after the runs: other sessions' work)
cpu_busy() {
    local a b
    a=$(grep '^cpu[0-9]' /proc/stat)
    sleep 1
    b=$(grep '^cpu[0-9]' /proc/stat)
    paste <(echo "$a") <(echo "$b") | awk '{ n = (NF / 2); busy = 0; all = 0
        for (i = 2; i <= n; i++) { d = $(i + n) - $i; all += d; if (i != 5 && i != 6) busy += d }
        printf "%s%s %.0f %%", (NR > 1 ? ", " : ""), $1, all ? 100 * busy / all : 0 }'
}
# Binaries older than the sources they come from measure another commit: say so.
wsr_abs=$(realpath "$WSREACTOR")
stale=$(cd "$ROOT" && find src include meson.build bench/wsbench.cpp bench/client.cpp bench/client.h bench/rawecho.cpp bench/hdr.h \
    -newer "$wsr_abs" -type f 2>/dev/null | head -3 | tr '\n' ' ')
[ -n "$stale" ] && { commit="$commit (BUILD OLDER THAN: ${stale% })"; say "$BUILD is older than $stale: rebuild first"; }
pkgver() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo '?'; }
wsver=$(sed -n 's/.*"version": "\(.*\)".*/\1/p' "$PEERS_SRC/node/node_modules/ws/package.json" 2>/dev/null | head -1)
{
    echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
    echo "commit: $commit"
    echo "machine: $(bench_machine), $(awk '/MemTotal/ {printf "%.0f GiB RAM", $2 / 1048576}' /proc/meminfo)"
    echo "pinning: server on CPU $SERVER_CPU, client on CPU $CLIENT_CPU$([ "$RT" = 1 ] && echo ", SCHED_FIFO")"
    echo "runs: $RUNS rounds x ${DUR} s (+${WARM} s warmup) per timed case and server; idle: $IDLE_CONNS conns held ${HOLD} s, fresh server"
    echo "loadavg at start: $(bench_loadavg); other work at start: $(cpu_busy)"
    echo "versions: libwebsockets $(pkgver libwebsockets-dev), Boost.Beast (Boost $(pkgver libboost-dev)), websocketpp $(pkgver libwebsocketpp-dev) on Asio $(pkgver libasio-dev), node $(node --version 2>/dev/null || echo '?') ws ${wsver:-?}"
} >"$OUT/meta.txt"
: >"$OUT/servers.txt"
for s in "${SERVERS[@]}"; do echo "$s|${LABEL[$s]}|${STATUS[$s]:-}" >>"$OUT/servers.txt"; done
: >"$OUT/cases.txt"
for i in "${!CASES[@]}"; do echo "$i|${CASES[$i]}" >>"$OUT/cases.txt"; done

echo "# wsbench: wsreactor vs Debian-packaged peers and a raw TCP echo, $(sed -n 's/^date: //p' "$OUT/meta.txt")"
sed 's/^/# /' "$OUT/meta.txt" | sed 1d
for s in "${SERVERS[@]}"; do
    [ -n "${STATUS[$s]:-}" ] && { echo "# ${LABEL[$s]}: ${STATUS[$s]}"; FAILED=1; }
done

# ---------------------------------------------------------------- the rounds
RUNNABLE=()
for s in "${SERVERS[@]}"; do [ -z "${STATUS[$s]:-}" ] && RUNNABLE+=("$s"); done
n=${#RUNNABLE[@]}
for run in $(seq "$RUNS"); do
    for k in $(seq 0 $((n - 1))); do
        s=${RUNNABLE[$(((k + run - 1) % n))]}
        if start_server "$s"; then
            for i in $(seq 0 $((IDLE_CASE - 1))); do run_case "$s" "$run" "$i"; done
            stop_server
        else
            FAILED=1
            echo "server=$s run=$run case=-1 failed=1 errors=1" >>"$RES"
            continue
        fi
        if [ "$IDLE_CONNS" -gt 0 ] && [ "$s" != rawecho ]; then
            if start_server "$s"; then
                run_case "$s" "$run" "$IDLE_CASE"
                stop_server
            fi
        fi
    done
done
echo "loadavg at end: $(bench_loadavg); other work at end: $(cpu_busy)" >>"$OUT/meta.txt"
echo "elapsed: $(($(date +%s) - START_TS)) s" >>"$OUT/meta.txt"

# ---------------------------------------------------------------- tables and plots
python3 "$PEERS_SRC/summarize.py" "$OUT" || FAILED=1
if [ "$PLOT" = 1 ]; then
    bash "$HERE/plot.sh" "$OUT" >&2 || say "plots failed (gnuplot-nox installed?)"
fi
say "results in $OUT (table.md, results.txt$([ "$PLOT" = 1 ] && echo ", *.png")); $(($(date +%s) - START_TS)) s"

if [ "$FAILED" = 1 ] || grep -q ' errors=[1-9]' "$RES"; then
    say "some runs failed or reported errors, or a server was not run (see above)"
    exit 1
fi
exit 0
