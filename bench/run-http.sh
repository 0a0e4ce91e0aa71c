#!/usr/bin/env bash
# bench/run-http.sh: plain HTTP requests beside WebSocket. wrk asks GET /healthz over
# HTTP/1.1 keep-alive, from 1 connection and from 50 (-t1 -c1, -t1 -c50), of wsreactor
# (which answers it itself, 200 {"status":"ok"}) and of HAProxy answering the same fixed
# response itself (`http-request return`, mode http, keep-alive, one thread): the
# reference, run in the same invocation. Each run measures every case against both
# servers back to back (alternating which goes first); the script prints a table of
# medians (requests/s, wrk's p50/p99 latency, the server's CPU) and wsreactor/HAProxy,
# the median of the per-run paired ratios.
#
# usage: bench/run-http.sh [-n RUNS] [-d SECONDS] [-w WARMUP] [-b BUILD_DIR] [-r] [-q]
#   -n RUNS      runs of every case and server (default 5)
#   -d SECONDS   measured seconds per run (default 5)
#   -w SECONDS   a wrk run of this long before each measured one, not counted (default 1)
#   -b DIR       meson build dir holding wsreactor (default build/release)
#   -r           servers and wrk SCHED_FIFO (chrt -f 10), as bench/run.sh -r
#   -q           no per-run lines, only the tables
# env: WSREACTOR overrides the binary, WSR_ARGS adds options to it (e.g.
#      "--http-max-requests 100000"); SERVER_CPU (0) and CLIENT_CPU (1) pick the cores;
#      CONNS ("1 50") the wrk connection counts; KEEP=1 keeps the raw results.
# Installs wrk (Debian's `wrk`) and haproxy with apt-get when they are missing.
# Exit status: 0, or 1 when any run failed, got a socket error or a non-2xx answer, or a
# server died.
set -u
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

RUNS=5 # the other options default in bench_options
bench_options "$@"
WSR_ARGS=${WSR_ARGS:-}
CONNS=${CONNS:-1 50}
bench_need "make build, or ninja -C $BUILD" "$WSREACTOR"

# wrk and haproxy from Debian, installed when missing.
missing="" # words: the packages to install
command -v wrk >/dev/null || missing="$missing wrk"
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || missing="$missing haproxy"
# shellcheck disable=SC2086 # $missing is a word list on purpose
if [ -n "$missing" ]; then
    echo "$ME: installing:$missing" >&2
    SUDO=()
    [ "$(id -u)" = 0 ] || SUDO=(sudo)
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >&2 ||
        { "${SUDO[@]}" apt-get update -qq && "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >&2; } ||
        { echo "$ME: could not install$missing" >&2; exit 2; }
fi
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)

bench_pin
bench_workdir http INT TERM HUP PIPE # the EXIT trap then stops what we started

# free_port: a loopback TCP port below the ephemeral range that nothing listens on.
free_port() {
    local p
    for _ in $(seq 100); do
        p=$((20000 + RANDOM % 10000))
        ss -Hltn "sport = :$p" 2>/dev/null | grep -q . || { echo "$p"; return 0; }
    done
    return 1
}

# http_get PORT PATH: the answer to one GET (Connection: close), over bash's /dev/tcp.
# shellcheck disable=SC2016 # the inner script expands its own arguments
http_get() {
    timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/$0 && printf "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" "$1" >&3 && cat <&3' "$1" "$2" 2>/dev/null
}

# wait_healthz NAME PORT PID: waits until PORT answers /healthz with 200 {"status":"ok"}.
wait_healthz() {
    local ans=""
    for _ in $(seq 50); do
        ans=$(http_get "$2" /healthz)
        case $ans in "HTTP/1.1 200"*'{"status":"ok"}') return 0 ;; esac
        kill -0 "$3" 2>/dev/null || break
        sleep 0.1
    done
    echo "$ME: $1 does not answer /healthz on port $2 (answer: ${ans:-none}):" >&2
    cat "$WORK/$1.log" >&2
    exit 1
}

# The daemon, as a user starts it.
PORT_wsr=$(free_port) || { echo "$ME: no free port" >&2; exit 1; }
# shellcheck disable=SC2086 # WSR_ARGS is a word list on purpose
"${PIN_S[@]}" "${PRIO[@]}" "$WSREACTOR" --listen "127.0.0.1:$PORT_wsr" --log-level warn $WSR_ARGS \
    >"$WORK/wsreactor.log" 2>&1 &
PID_wsr=$!
PIDS+=("$PID_wsr")

# The reference: HAProxy answering the fixed response itself, with the Date and
# Cache-Control headers wsreactor sends, so both answers carry the same fields.
PORT_hap=$(free_port) || { echo "$ME: no free port" >&2; exit 1; }
cat >"$WORK/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 4096
defaults
    mode http
    option http-keep-alive
    timeout client 30s
    timeout connect 5s
    timeout server 30s
    timeout http-keep-alive 5s
frontend healthz
    bind 127.0.0.1:$PORT_hap
    http-request return status 200 content-type application/json string '{"status":"ok"}' hdr date "%[date,http_date]" hdr cache-control no-store if { path /healthz }
    http-request return status 404
EOF
"${PIN_S[@]}" "${PRIO[@]}" "$HAPROXY" -db -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 &
PID_hap=$!
PIDS+=("$PID_hap")

wait_healthz wsreactor "$PORT_wsr" "$PID_wsr"
wait_healthz haproxy "$PORT_hap" "$PID_hap"

# The source tree the build dir was configured from, and its commit.
src=$(sed -n 's/.*"directories": {"source": "\([^"]*\)".*/\1/p' "$BUILD/meson-info/meson-info.json" 2>/dev/null)
[ -n "$src" ] || src=$(dirname "$0")/..
if commit=$(git -C "$src" rev-parse --short HEAD 2>/dev/null); then
    [ -n "$(git -C "$src" status --porcelain -- src include 2>/dev/null)" ] && commit="$commit + uncommitted changes in src/ or include/"
else
    commit="unknown (source $src is not a git checkout)"
fi
echo "# HTTP keep-alive GET /healthz: $WSREACTOR${WSR_ARGS:+ $WSR_ARGS} vs HAProxy, $(date -u +%Y-%m-%dT%H:%MZ), commit $commit"
echo "# $(bench_machine); servers on CPU ${SERVER_CPU}, wrk on CPU ${CLIENT_CPU}$([ "$RT" = 1 ] && echo ", SCHED_FIFO")"
echo "# $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2), $("$HAPROXY" -v | head -1 | cut -d' ' -f1-3)"
echo "# $RUNS runs x ${DUR} s (+${WARM} s warmup) per case and server; loadavg at start: $(bench_loadavg)"

TCK=$(getconf CLK_TCK)
# cpu_ticks PID: utime + stime of PID, in clock ticks.
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
# accepted: wsreactor's connections accepted so far, minus the one that asks (from /metrics).
accepted() {
    http_get "$PORT_wsr" /metrics | awk '$1 == "wsreactor_connections_accepted_total" { print $2 - 1; f = 1 } END { if (!f) print -1 }'
}

# to_us VALUE: wrk's latency ("53.00us", "1.20ms", "2.00s") in microseconds.
to_us() {
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/) m = 1; else if (v ~ /ms$/) m = 1000; else if (v ~ /m$/) m = 60e6; else if (v ~ /s$/) m = 1e6; else m = -1
        sub(/[a-z]+$/, "", v); print m < 0 ? -1 : v * m }'
}

FAILED=0
RES=$WORK/results
: >"$RES"
# run_one CONNS NAME RUN
run_one() {
    local c=$1 name=$2 run=$3 port pid out rc t0 t1 w0 w1 a0=-1 a1=-1
    if [ "$name" = wsr ]; then port=$PORT_wsr pid=$PID_wsr; else port=$PORT_hap pid=$PID_hap; fi
    local url=http://127.0.0.1:$port/healthz
    if [ "${WARM%.*}" != 0 ]; then
        timeout $((${WARM%.*} + 30)) "${PIN_C[@]}" "${PRIO[@]}" wrk -t1 -c"$c" -d"${WARM}s" "$url" >/dev/null 2>&1
    fi
    [ "$name" = wsr ] && a0=$(accepted)
    t0=$(cpu_ticks "$pid") w0=$(date +%s.%N)
    out=$(timeout $((${DUR%.*} + 30)) "${PIN_C[@]}" "${PRIO[@]}" wrk -t1 -c"$c" -d"${DUR}s" --latency "$url" 2>&1)
    rc=$?
    w1=$(date +%s.%N) t1=$(cpu_ticks "$pid")
    [ "$name" = wsr ] && a1=$(accepted)
    printf '%s\n' "$out" >"$WORK/wrk-$name-c$c-run$run.txt"
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "$ME: $name died during run $run, $c conns:" >&2
        tail -5 "$WORK/$name.log" >&2
        exit 1
    fi
    local rps reqs p50 p99 sockerr non2xx
    rps=$(printf '%s\n' "$out" | awk '/^Requests\/sec:/ { print $2 }')
    reqs=$(printf '%s\n' "$out" | awk '/ requests in / { print $1 }')
    p50=$(to_us "$(printf '%s\n' "$out" | awk '$1 == "50%" { print $2 }')")
    p99=$(to_us "$(printf '%s\n' "$out" | awk '$1 == "99%" { print $2 }')")
    sockerr=$(printf '%s\n' "$out" | awk '/Socket errors:/ { gsub(/,/, ""); print $4 + $6 + $8 + $10; f = 1 } END { if (!f) print 0 }')
    non2xx=$(printf '%s\n' "$out" | awk '/Non-2xx or 3xx responses:/ { print $NF; f = 1 } END { if (!f) print 0 }')
    if [ "$rc" -ne 0 ] || [ -z "$rps" ] || [ -z "$reqs" ] || [ "$p50" = -1 ] || [ "$p99" = -1 ]; then
        FAILED=1
        echo "$ME: run $run $name $c conns: wrk exit $rc" >&2
        printf '%s\n' "$out" | head -5 >&2
        return
    fi
    local errs=$((sockerr + non2xx)) newc=-1
    [ "$a0" -ge 0 ] && [ "$a1" -ge 0 ] && newc=$((a1 - a0 - 1)) # minus the scrape before
    local line
    line=$(awk -v c="$c" -v n="$name" -v r="$run" -v rps="$rps" -v reqs="$reqs" -v p50="$p50" -v p99="$p99" \
        -v dt=$((t1 - t0)) -v tck="$TCK" -v w0="$w0" -v w1="$w1" -v e="$errs" -v nc="$newc" 'BEGIN {
        cpu = dt / tck
        printf "conns=%s server=%s run=%s rps=%s reqs=%s p50_us=%s p99_us=%s cpu_pct=%.1f cpu_us_per_req=%.2f newconns=%s errors=%s\n",
            c, n, r, rps, reqs, p50, p99, 100 * cpu / (w1 - w0), (reqs > 0 ? cpu * 1e6 / reqs : -1), nc, e }')
    echo "$line" >>"$RES"
    [ "$errs" -gt 0 ] && FAILED=1
    [ "$QUIET" = 1 ] || printf '  run %s c%-3s %-3s: %s\n' "$run" "$c" "$name" "${line#* * * }" >&2
}

for run in $(seq "$RUNS"); do
    for c in $CONNS; do
        # Alternate the order so neither server always runs on a warmer (or cooler) machine.
        if [ $((run % 2)) = 1 ]; then
            run_one "$c" wsr "$run"; run_one "$c" hap "$run"
        else
            run_one "$c" hap "$run"; run_one "$c" wsr "$run"
        fi
    done
done

echo "# loadavg at end: $(bench_loadavg)"
awk -v conns="$CONNS" "$BENCH_AWK_MEDIAN"'
function med(c, s, k,    n, v, r) {
    n = 0
    for (r = 1; r <= maxrun; r++) if ((c, s, r, k) in val && val[c, s, r, k] + 0 >= 0) v[++n] = val[c, s, r, k] + 0
    return median(v, n, -1)
}
# wsreactor / HAProxy, run by run, then the median.
function ratio(c, k,    n, v, r) {
    n = 0
    for (r = 1; r <= maxrun; r++)
        if ((c, "wsr", r, k) in val && (c, "hap", r, k) in val && val[c, "hap", r, k] + 0 > 0)
            v[++n] = (val[c, "wsr", r, k] + 0) / val[c, "hap", r, k]
    return median(v, n, -1)
}
function num(x, fmt) { return x < 0 ? "-" : sprintf(fmt, x) }
{
    for (i = 1; i <= NF; i++) { eq = index($i, "="); f[substr($i, 1, eq - 1)] = substr($i, eq + 1) }
    c = f["conns"]; s = f["server"]; r = f["run"]; if (r > maxrun) maxrun = r
    for (k in f) val[c, s, r, k] = f[k]
    nruns[c, s]++
    errs[c, s] += f["errors"]
    delete f
}
END {
    name["wsr"] = "wsreactor"; name["hap"] = "HAProxy"
    nc = split(conns, cs, " ")
    print ""
    print "| wrk | server | runs | requests/s | p50 us | p99 us | server CPU % | CPU us/request | new connections per run | errors |"
    print "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    for (i = 1; i <= nc; i++) {
        c = cs[i]
        for (j = 1; j <= 2; j++) {
            s = j == 1 ? "wsr" : "hap"
            printf "| -t1 -c%s | %s | %d | %s | %s | %s | %s | %s | %s | %d |\n", c, name[s], nruns[c, s],
                num(med(c, s, "rps"), "%.0f"), num(med(c, s, "p50_us"), "%.0f"), num(med(c, s, "p99_us"), "%.0f"),
                num(med(c, s, "cpu_pct"), "%.0f"), num(med(c, s, "cpu_us_per_req"), "%.2f"),
                num(med(c, s, "newconns"), "%.0f"), errs[c, s]
        }
    }
    print ""
    print "wsreactor / HAProxy (median of the per-run paired ratios; requests/s above 1 is faster, the others above 1 is more):"
    print ""
    print "| wrk | requests/s | p50 | p99 | CPU us/request |"
    print "|---|---:|---:|---:|---:|"
    for (i = 1; i <= nc; i++) {
        c = cs[i]
        printf "| -t1 -c%s | %s | %s | %s | %s |\n", c, num(ratio(c, "rps"), "%.2f"), num(ratio(c, "p50_us"), "%.2f"),
            num(ratio(c, "p99_us"), "%.2f"), num(ratio(c, "cpu_us_per_req"), "%.2f")
    }
}' "$RES"

if [ "$FAILED" = 1 ]; then
    echo "$ME: some runs failed or reported errors (see above)" >&2
    exit 1
fi
exit 0
