#!/usr/bin/env bash
# bench/run-tls.sh: what TLS costs wsreactor, plain ws:// against wss:// in one invocation.
# One daemon listens twice, plain and TLS (a throwaway ECDSA P-256 certificate made with
# the openssl CLI, which wsbench verifies with --ca), pinned to SERVER_CPU; wsbench runs on
# CLIENT_CPU. Each timed case runs over both transports back to back, N times
# (alternating which goes first): echo 32 B at depth 1 and 16, echo 16 KiB binary, and
# connect (connect, upgrade, close; full TLS handshakes, and again with --resume, each
# connection slot offering the session ticket of its previous cycle). Then idle memory:
# C plain and C TLS connections, each set on a freshly started daemon. It prints tables
# of medians and TLS / plain as the median of the per-run paired ratios; for connect the
# server's CPU per handshake, for idle the bytes per connection and the TLS - plain
# difference per connection (what one idle TLS session costs).
#
# usage: bench/run-tls.sh [-n RUNS] [-d SECONDS] [-w WARMUP] [-b BUILD_DIR] [-r] [-q]
#   -n RUNS      repetitions of every case (default 3)
#   -d SECONDS   measured seconds per timed run (default 5)
#   -w SECONDS   warmup per timed run (default 1)
#   -b DIR       meson build dir holding wsreactor and bench/wsbench (default build/release)
#   -r           daemon and client SCHED_FIFO (chrt -f 10), as bench/run.sh -r
#   -q           no per-run lines, only the tables
# env: IDLE_CONNS (5000; 0 skips idle), HOLD (3 s); CONNECT_CONNS (50, connections
#      cycling at once); TLS_ARGS, more wsbench options for every wss run (e.g. --tls12);
#      WSBENCH, WSREACTOR; SERVER_CPU (0) and CLIENT_CPU (1); KEEP=1 keeps the raw results.
# Exit status: 0, or 1 when any run failed, counted an error, opened fewer than C idle
# connections, or a resumed run did not resume.
set -u
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

RUNS=3 # the other options default in bench_options
bench_options "$@"
IDLE_CONNS=${IDLE_CONNS:-5000}
HOLD=${HOLD:-3}
CONNECT_CONNS=${CONNECT_CONNS:-50}
TLS_ARGS=${TLS_ARGS:-}
bench_need "meson setup $BUILD --buildtype=release -Dtests=false && ninja -C $BUILD" "$WSBENCH" "$WSREACTOR"
command -v openssl >/dev/null || { echo "$ME: the openssl command is needed (Debian: openssl)" >&2; exit 2; }

ulimit -n "$(ulimit -Hn)" 2>/dev/null
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -le $((IDLE_CONNS + 50)) ]; then
    echo "$ME: ulimit -n is $(ulimit -n) (hard $(ulimit -Hn)); $IDLE_CONNS idle connections need more" >&2
    exit 2
fi

# The cases: scenario | wsbench options | label | transports (ws: plain; wss: TLS, full
# handshakes; wssr: TLS with --resume).
CASES=(
    "echo|--conns 100 --depth 1 --size 32 --text|echo 100 conns x 1 x 32 B|ws wss"
    "echo|--conns 100 --depth 16 --size 32 --text|echo 100 conns x 16 x 32 B|ws wss"
    "echo|--conns 10 --depth 1 --size 16k --binary|echo 10 conns x 1 x 16 KiB binary|ws wss"
    "connect|--conns $CONNECT_CONNS|connect, $CONNECT_CONNS at once|ws wss wssr"
)

bench_pin
bench_workdir tls INT TERM HUP PIPE

# A throwaway certificate: ECDSA P-256, for 127.0.0.1 and localhost, valid one day.
if ! openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -keyout "$WORK/key.pem" -out "$WORK/cert.pem" \
    >"$WORK/openssl.log" 2>&1; then
    echo "$ME: openssl could not make a certificate:" >&2
    cat "$WORK/openssl.log" >&2
    exit 1
fi

# start_daemon NAME: wsreactor with a plain and a TLS listener on ephemeral loopback
# ports, pinned as a server, its log in $WORK/NAME.log; sets SPID, PORT_ws, PORT_wss.
# Exits 1 when it does not start.
start_daemon() {
    local log=$WORK/$1.log
    "${PIN_S[@]}" "${PRIO[@]}" "$WSREACTOR" --listen 127.0.0.1:0 --listen-tls 127.0.0.1:0 \
        --tls-cert "$WORK/cert.pem" --tls-key "$WORK/key.pem" 2>"$log" &
    SPID=$!
    PIDS+=("$SPID")
    PORT_ws="" PORT_wss=""
    for _ in $(seq 50); do
        PORT_ws=$(sed -n 's/.*listening on .*:\([0-9][0-9]*\)$/\1/p' "$log" | head -1)
        PORT_wss=$(sed -n 's/.*listening on .*:\([0-9][0-9]*\) (TLS)$/\1/p' "$log" | head -1)
        [ -n "$PORT_ws" ] && [ -n "$PORT_wss" ] && return 0
        kill -0 "$SPID" 2>/dev/null || break
        sleep 0.1
    done
    echo "$ME: wsreactor did not start with both listeners:" >&2
    cat "$log" >&2
    exit 1
}

stop_daemon() {
    kill "$SPID" 2>/dev/null
    wait "$SPID" 2>/dev/null
}

# url_args TRANSPORT: the wsbench options that reach the daemon over TRANSPORT.
url_args() {
    case $1 in
    ws) echo "--url ws://127.0.0.1:$PORT_ws/echo" ;;
    wss) echo "--url wss://127.0.0.1:$PORT_wss/echo --ca $WORK/cert.pem $TLS_ARGS" ;;
    wssr) echo "--url wss://127.0.0.1:$PORT_wss/echo --ca $WORK/cert.pem --resume $TLS_ARGS" ;;
    esac
}

# kTLS: the kernel's TLS record layer (the tls ULP). The server does not ask for it
# (no SSL_OP_ENABLE_KTLS), so it is only noted here.
ktls_note() {
    local ulp=/proc/sys/net/ipv4/tcp_available_ulp
    grep -qw tls "$ulp" 2>/dev/null || { command -v modprobe >/dev/null && modprobe tls 2>/dev/null; }
    if grep -qw tls "$ulp" 2>/dev/null; then
        echo "kTLS: available (tls ULP in $ulp); not measured: the server does not enable it"
    else
        echo "kTLS: not available (no tls ULP in $ulp: $(tr '\n' ' ' <"$ulp" 2>/dev/null)); skipped"
    fi
}

start_daemon timed
PID_timed=$SPID

echo "# wsbench: wsreactor plain ws:// vs TLS wss://, $(date -u +%Y-%m-%dT%H:%MZ)"
echo "# $(bench_machine); server on CPU ${SERVER_CPU}, client on CPU ${CLIENT_CPU}$([ "$RT" = 1 ] && echo ", SCHED_FIFO")"
echo "# $(openssl version | cut -d' ' -f1-2); certificate ECDSA P-256 (self-signed, verified with --ca)${TLS_ARGS:+; wss options: $TLS_ARGS}"
echo "# $RUNS runs x ${DUR} s (+${WARM} s warmup) per case and transport; idle: $IDLE_CONNS connections, ${HOLD} s hold, a fresh server each run"
echo "# $(ktls_note)"
echo "# loadavg at start: $(bench_loadavg)"

FAILED=0
RES=$WORK/results
: >"$RES"
# run_one CASE_INDEX TRANSPORT RUN
run_one() {
    local i=$1 tr=$2 run=$3 sc opts
    IFS='|' read -r sc opts _ <<<"${CASES[$i]}"
    # shellcheck disable=SC2046,SC2086 # option lists are word lists on purpose
    bench_wsbench $((${DUR%.*} + ${WARM%.*} + 40)) "$PID_timed" "$sc" $opts $(url_args "$tr")
    bench_wsbench_check "case $i $tr run $run:"
    if [ "$tr" = wssr ] && [ -n "$LINE" ]; then
        case " $LINE " in
        *" tls_resumed=0 "*) FAILED=1; echo "$ME: case $i run $run: --resume resumed no session" >&2 ;;
        esac
    fi
    [ -n "$LINE" ] && echo "case=$i transport=$tr run=$run $LINE" >>"$RES"
    [ "$QUIET" = 1 ] || printf '  %-4s run %s case %s: %s\n' "$tr" "$run" "$i" \
        "$(printf '%s\n' "$LINE" | grep -o ' msgs_per_s=[^ ]*\| p99_us=[^ ]*\| errors=[^ ]*\| tls_resumed=[^ ]*\| server_cpu_pct=[^ ]*\| client_cpu_pct=[^ ]*' | tr -d ' ' | tr '\n' ' ')" >&2
}

# run_idle TRANSPORT RUN: C connections held on a fresh daemon.
run_idle() {
    local tr=$1 run=$2
    start_daemon "idle-$tr"
    # shellcheck disable=SC2046 # option lists are word lists on purpose
    DUR=1 WARM=0 bench_wsbench $((HOLD + 300)) "$SPID" idle --conns "$IDLE_CONNS" --hold "$HOLD" $(url_args "$tr")
    bench_wsbench_check "idle $tr run $run:"
    if ! kill -0 "$SPID" 2>/dev/null; then
        FAILED=1
        echo "$ME: the idle $tr daemon died in run $run:" >&2
        tail -5 "$WORK/idle-$tr.log" >&2
    fi
    stop_daemon
    [ -n "$LINE" ] || return
    case " $LINE " in *" open=$IDLE_CONNS "*) ;; *) FAILED=1; echo "$ME: idle $tr run $run: not all $IDLE_CONNS opened" >&2 ;; esac
    echo "case=idle transport=$tr run=$run $LINE" >>"$RES"
    [ "$QUIET" = 1 ] || printf '  %-4s run %s idle: %s\n' "$tr" "$run" \
        "$(printf '%s\n' "$LINE" | grep -o ' open=[^ ]*\| rss_before_kb=[^ ]*\| rss_hold_kb=[^ ]*\| bytes_per_conn=[^ ]*\| errors=[^ ]*' | tr -d ' ' | tr '\n' ' ')" >&2
}

for run in $(seq "$RUNS"); do
    for i in "${!CASES[@]}"; do
        IFS='|' read -r _ _ _ trs <<<"${CASES[$i]}"
        read -r -a order <<<"$trs"
        # Alternate the order so no transport always runs on a warmer (or cooler) machine.
        if [ $((run % 2)) = 1 ]; then
            for ((j = 0; j < ${#order[@]}; j++)); do run_one "$i" "${order[j]}" "$run"; done
        else
            for ((j = ${#order[@]} - 1; j >= 0; j--)); do run_one "$i" "${order[j]}" "$run"; done
        fi
    done
done
if ! kill -0 "$PID_timed" 2>/dev/null; then
    FAILED=1
    echo "$ME: the daemon died during the timed cases:" >&2
    tail -5 "$WORK/timed.log" >&2
fi
stop_daemon

if [ "$IDLE_CONNS" -gt 0 ]; then
    for run in $(seq "$RUNS"); do
        if [ $((run % 2)) = 1 ]; then run_idle ws "$run"; run_idle wss "$run"; else run_idle wss "$run"; run_idle ws "$run"; fi
    done
fi
echo "# loadavg at end: $(bench_loadavg)"

awk -v ncases="${#CASES[@]}" -v labels="$(printf '%s\n' "${CASES[@]}" | cut -d'|' -f3 | paste -sd'|')" \
    -v trlists="$(printf '%s\n' "${CASES[@]}" | cut -d'|' -f4 | paste -sd'|')" -v idle_conns="$IDLE_CONNS" \
    "$BENCH_AWK_MEDIAN"'
function med(c, t, k,    n, v, r) {
    n = 0
    for (r = 1; r <= maxrun; r++) if ((c, t, r, k) in val) v[++n] = val[c, t, r, k] + 0
    return median(v, n, NONE)
}
# the median of the per-run ratios (diff: differences) of transport t to plain
function paired(c, t, k, diff,    n, v, r, a, b) {
    n = 0
    for (r = 1; r <= maxrun; r++)
        if ((c, t, r, k) in val && (c, "ws", r, k) in val) {
            a = val[c, t, r, k] + 0; b = val[c, "ws", r, k] + 0
            if (diff) v[++n] = a - b
            else if (b > 0) v[++n] = a / b
        }
    return median(v, n, NONE)
}
function f(x, fmt) { return x == NONE ? "-" : sprintf(fmt, x) }
BEGIN {
    NONE = -1e18
    tname["ws"] = "plain ws://"; tname["wss"] = "TLS wss://"; tname["wssr"] = "TLS wss:// --resume"
}
{
    for (i = 1; i <= NF; i++) { eq = index($i, "="); kv[substr($i, 1, eq - 1)] = substr($i, eq + 1) }
    c = kv["case"]; t = kv["transport"]; r = kv["run"]; if (r > maxrun) maxrun = r
    for (k in kv) val[c, t, r, k] = kv[k]
    if (kv["msgs_per_s"] > 0 && kv["server_cpu_pct"] != "")
        val[c, t, r, "cpu_us"] = kv["server_cpu_pct"] * 1e4 / kv["msgs_per_s"]
    if (kv["msgs_per_s"] > 0) val[c, t, r, "client_cpu_us"] = kv["client_cpu_pct"] * 1e4 / kv["msgs_per_s"]
    errs[c, t] += kv["errors"]; runs[c, t]++
    if (t != "ws" && !tlsdesc) tlsdesc = kv["tls_version"] " " kv["tls_cipher"] ", key exchange " kv["tls_group"]
    if (kv["tls_handshakes"] > 0) { hs[c, t] += kv["tls_handshakes"]; resumed[c, t] += kv["tls_resumed"] }
    delete kv
}
END {
    split(labels, label, "|"); split(trlists, trl, "|")
    print ""
    print "| case | transport | msg/s | MB/s | p50 us | p99 us | server CPU % | server CPU us/msg | client CPU % | errors |"
    print "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    for (c = 0; c < ncases; c++) {
        if (label[c + 1] ~ /^connect/) continue
        nt = split(trl[c + 1], ts, " ")
        for (j = 1; j <= nt; j++) {
            t = ts[j]
            printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %d |\n", label[c + 1], tname[t], f(med(c, t, "msgs_per_s"), "%.0f"),
                f(med(c, t, "mb_per_s"), "%.1f"), f(med(c, t, "p50_us"), "%.1f"), f(med(c, t, "p99_us"), "%.1f"),
                f(med(c, t, "server_cpu_pct"), "%.1f"), f(med(c, t, "cpu_us"), "%.2f"), f(med(c, t, "client_cpu_pct"), "%.1f"), errs[c, t]
        }
    }
    print ""
    print "TLS / plain (median of per-run paired ratios; throughput: higher is better, the rest: lower):"
    print ""
    print "| case | msg/s | MB/s | p50 | p99 | server CPU us/msg |"
    print "|---|---:|---:|---:|---:|---:|"
    for (c = 0; c < ncases; c++) {
        if (label[c + 1] ~ /^connect/) continue
        printf "| %s | %s | %s | %s | %s | %s |\n", label[c + 1], f(paired(c, "wss", "msgs_per_s"), "%.2f"),
            f(paired(c, "wss", "mb_per_s"), "%.2f"), f(paired(c, "wss", "p50_us"), "%.2f"), f(paired(c, "wss", "p99_us"), "%.2f"),
            f(paired(c, "wss", "cpu_us"), "%.2f")
    }
    for (c = 0; c < ncases; c++) {
        if (label[c + 1] !~ /^connect/) continue
        print ""
        print "Connect (" label[c + 1] "): connect, upgrade, close handshake, again; CPU per handshake = CPU % x 10^4 / handshakes/s:"
        print ""
        print "| transport | handshakes/s | p50 us | p99 us | server CPU % | server CPU us/handshake | minus plain (paired) | client CPU us/handshake | TLS resumed | errors |"
        print "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        nt = split(trl[c + 1], ts, " ")
        for (j = 1; j <= nt; j++) {
            t = ts[j]
            printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %d |\n", tname[t], f(med(c, t, "msgs_per_s"), "%.0f"),
                f(med(c, t, "p50_us"), "%.0f"), f(med(c, t, "p99_us"), "%.0f"), f(med(c, t, "server_cpu_pct"), "%.1f"),
                f(med(c, t, "cpu_us"), "%.1f"), t == "ws" ? "" : f(paired(c, t, "cpu_us", 1), "%.1f"),
                f(med(c, t, "client_cpu_us"), "%.1f"), t == "ws" ? "" : hs[c, t] ? sprintf("%d of %d", resumed[c, t], hs[c, t]) : "-", errs[c, t]
        }
        printf "\nTLS / plain: handshakes/s %s (--resume %s), server CPU per handshake %s (--resume %s)\n",
            f(paired(c, "wss", "msgs_per_s"), "%.2f"), f(paired(c, "wssr", "msgs_per_s"), "%.2f"),
            f(paired(c, "wss", "cpu_us"), "%.2f"), f(paired(c, "wssr", "cpu_us"), "%.2f")
    }
    if (runs["idle", "ws"] + runs["idle", "wss"] > 0) {
        print ""
        print "Idle: " idle_conns " connections held on a fresh server; bytes per connection = (VmRSS after the hold - before) / connections:"
        print ""
        print "| transport | runs | VmRSS before KiB | VmRSS after hold KiB | bytes per connection | errors |"
        print "|---|---:|---:|---:|---:|---:|"
        for (j = 1; j <= 2; j++) {
            t = j == 1 ? "ws" : "wss"
            printf "| %s | %d | %s | %s | %s | %d |\n", tname[t], runs["idle", t], f(med("idle", t, "rss_before_kb"), "%.0f"),
                f(med("idle", t, "rss_hold_kb"), "%.0f"), f(med("idle", t, "bytes_per_conn"), "%.0f"), errs["idle", t]
        }
        d = paired("idle", "wss", "bytes_per_conn", 1)
        printf "\nTLS - plain, bytes per idle connection (median of per-run differences): %s (%s KiB); TLS / plain %s\n",
            f(d, "%.0f"), f(d == NONE ? NONE : d / 1024, "%.1f"), f(paired("idle", "wss", "bytes_per_conn"), "%.1f")
    }
    if (tlsdesc) print "\nTLS: " tlsdesc
}' "$RES"

if [ "$FAILED" = 1 ] || grep -q ' errors=[1-9]' "$RES"; then
    echo "$ME: some runs failed or reported errors (see above)" >&2
    exit 1
fi
exit 0
