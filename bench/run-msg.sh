#!/usr/bin/env bash
# bench/run-msg.sh: the messaging benchmarks (bench/msgbench), in one invocation.
#   1. fan-out: one publish on /ws to SUBS subscribers of one channel (100-byte payload),
#      and the same on /broadcast (SUBS receivers, one sender, a message as long as the
#      /ws delivery), back to back on one daemon, alternating which goes first, each
#      case RUNS times: deliveries/s, publish-to-delivery p50/p99, and the median of the
#      per-run /ws / /broadcast ratios;
#   2. memory: CLIENTS clients on /ws with no subscription, then with 10 each over 1,000
#      channels: the daemon's VmRSS difference per subscription (a fresh daemon per run);
#   3. instructions: the daemon under callgrind (perf has no counters here); user-space
#      instructions per publish round trip = (I(R2) - I(R1)) / (R2 - R1), so start-up and
#      connection set-up cancel; the same for /broadcast and an /echo round trip; and the
#      top functions of a publish to SUBS subscribers.
#
# usage: bench/run-msg.sh [-n RUNS] [-d SECONDS] [-w WARMUP] [-b BUILD_DIR] [-o OUT_DIR] [-C] [-r] [-q]
#   -n RUNS      repetitions of every fan-out case and of the memory run (default 3)
#   -d SECONDS   measured seconds per fan-out run (default 5)
#   -w SECONDS   warmup per fan-out run (default 1)
#   -b DIR       meson build dir holding wsreactor and bench/msgbench (default build/release)
#   -o DIR       where results go (default bench/results/msg): results.txt (every run's
#                key=value line), table.md (what stdout shows), callgrind-top.txt
#   -C           no callgrind part
#   -T           run nothing: print the tables again from OUT_DIR's results.txt and meta.txt
#   -r           daemon and client SCHED_FIFO (chrt -f 10), as bench/run.sh -r
#   -q           no per-run lines, only the tables
# env: SUBS (1000) subscribers; DEPTHS ("1 16") closed-loop publishes in flight;
#      CLIENTS (10000) for the memory part; SERVER_CPU (0), CLIENT_CPU (1); KEEP=1.
# Duration with the defaults on 2 cores: about 4 minutes (2 depths x 2 endpoints x 3 runs
# of ~8 s, 3 memory runs of ~30 s, callgrind ~1 min).
# Exit status: 0; 1 when a run failed or counted errors; 2 for bad usage or no build.
set -u
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

RUNS=3 DUR=5 WARM=1 BUILD=build/release OUT=bench/results/msg RT=0 QUIET=0 CG=1 TABLES_ONLY=0
while getopts "n:d:w:b:o:CTrqh" opt; do
    case $opt in
    o) OUT=$OPTARG ;;
    C) CG=0 ;;
    T) TABLES_ONLY=1 ;;
    *) bench_opt "$opt" "${OPTARG-}" ;;
    esac
done
bench_paths
RES=$OUT/results.txt

# tables: the Markdown tables from $OUT/meta.txt and $OUT/results.txt, on stdout and
# in $OUT/table.md.
tables() {
    {
        sed 's/^/# /' "$OUT/meta.txt"
        awk "$BENCH_AWK_MEDIAN"'
    {
        delete f
        for (i = 1; i <= NF; i++) { k = $i; sub(/=.*/, "", k); v = $i; sub(/^[^=]*=/, "", v); f[k] = v }
        if (f["case"] == "probe") wire = sprintf("%.0f", f["delivery_bytes"])
        if (f["case"] == "fanout") {
            if (f["ep"] == "ws") subs = f["subs"]
            key = f["depth"] SUBSEP f["ep"]; r = f["run"]; if (r > maxrun) maxrun = r
            depths[f["depth"]] = 1
            for (k in f) val[key, r, k] = f[k]
            errs[key] += f["errors"]
        } else if (f["case"] == "subs") {
            ns++; sub_b[ns] = f["bytes_per_sub"] + 0; conn_b[ns] = f["bytes_per_conn"] + 0; sub_s[ns] = f["subscribe_s"] + 0
            rss0[ns] = f["rss_conns_kb"] + 0; rss1[ns] = f["rss_subs_kb"] + 0; nsubs = f["subscriptions"]; serr += f["errors"]
        } else if (f["case"] == "cg") {
            ir[f["name"], f["count"]] = f["ir"]; cnt[f["name"]] = cnt[f["name"]] " " f["count"]
        }
    }
    function med(key, k,    n, v, r) {
        n = 0
        for (r = 1; r <= maxrun; r++) if ((key, r, k) in val) v[++n] = val[key, r, k] + 0 # numbers, not strings
        return median(v, n, 0)
    }
    function ratio(d, k,    n, v, r) {
        n = 0
        for (r = 1; r <= maxrun; r++)
            if ((d SUBSEP "ws", r, k) in val && (d SUBSEP "bc", r, k) in val && val[d SUBSEP "bc", r, k] > 0)
                v[++n] = val[d SUBSEP "ws", r, k] / val[d SUBSEP "bc", r, k]
        return median(v, n, 0)
    }
    function per(name, unit,    a, n, lo, hi) {
        n = split(cnt[name], a, " ")
        if (n < 2) return "-"
        lo = a[1] < a[2] ? a[1] : a[2]; hi = a[1] < a[2] ? a[2] : a[1]
        return sprintf("%.0f", (ir[name, hi] - ir[name, lo]) / (hi - lo) / unit)
    }
    END {
        print ""
        printf "Fan-out: one publish to %d subscribers (/ws: 100-byte payload, %d-byte delivery; /broadcast: %d-byte message), medians of %d runs\n\n", subs, wire, wire, maxrun
        print "| closed loop, in flight | endpoint | deliveries/s | publishes/s | p50 us | p99 us | p99.9 us | all subscribers p99 us | server CPU % | client CPU % | errors |"
        print "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        for (d in depths) for (e = 1; e <= 2; e++) {
            ep = e == 1 ? "ws" : "bc"; key = d SUBSEP ep
            printf "| %s | %s | %.0f | %.0f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %d |\n", d, ep == "ws" ? "/ws publish" : "/broadcast",
                med(key, "deliveries_per_s"), med(key, "published_per_s"), med(key, "p50_us"), med(key, "p99_us"),
                med(key, "p999_us"), med(key, "all_p99_us"), med(key, "server_cpu_pct"), med(key, "client_cpu_pct"), errs[key]
        }
        print ""
        print "/ws / /broadcast, median of the per-run paired ratios (deliveries/s: goal >= 0.9):"
        print ""
        print "| in flight | deliveries/s | p50 | p99 |"
        print "|---:|---:|---:|---:|"
        for (d in depths)
            printf "| %s | %.2f | %.2f | %.2f |\n", d, ratio(d, "deliveries_per_s"), ratio(d, "p50_us"), ratio(d, "p99_us")
        if (ns) {
            print ""
            printf "Memory: %d subscriptions (10 per client, 1,000 channels), %d runs (goal <= 64 B per subscription)\n\n", nsubs, ns
            print "| | median | runs |"
            print "|---|---:|---|"
            l1 = l2 = l3 = l4 = l5 = ""
            for (i = 1; i <= ns; i++) { l1 = l1 " " sub_b[i]; l2 = l2 " " conn_b[i]; l3 = l3 " " rss0[i]; l4 = l4 " " rss1[i]; l5 = l5 " " sub_s[i] }
            printf "| bytes per subscription | %.1f |%s |\n", median(sub_b, ns, 0), l1
            printf "| bytes per idle /ws connection | %.0f |%s |\n", median(conn_b, ns, 0), l2
            printf "| VmRSS connected, KiB | %.0f |%s |\n", median(rss0, ns, 0), l3
            printf "| VmRSS subscribed, KiB | %.0f |%s |\n", median(rss1, ns, 0), l4
            printf "| seconds to subscribe all | %.1f |%s |\n", median(sub_s, ns, 0), l5
            if (serr) printf "\nmemory runs counted %d errors\n", serr
        }
        if (length(cnt)) {
            print ""
            print "Instructions (callgrind, user space of the daemon), per round trip = (I(R2) - I(R1)) / (R2 - R1):"
            print ""
            print "| round trip | R1, R2 | instructions |"
            print "|---|---|---:|"
            printf "| /ws publish + ack, 4 subscribers | 200, 2200 | %s |\n", per("ws4", 1)
            printf "| /broadcast, 4 receivers + own copy | 200, 2200 | %s |\n", per("bc4", 1)
            printf "| /echo, 155 bytes | 200, 2200 | %s |\n", per("echo", 1)
            printf "| /ws publish to %d subscribers, per delivery | 20, 120 | %s |\n", subs, per("ws" subs, subs)
            printf "| /broadcast to %d receivers, per delivery | 20, 120 | %s |\n", subs, per("bc" subs, subs + 1)
        }
    }' "$RES"
    } | tee "$OUT/table.md"
    if [ -s "$OUT/callgrind-top.txt" ]; then
        {
            echo
            echo "Top functions (self instructions per publish, callgrind: 120-publish run minus 20-publish run), $(head -1 "$OUT/callgrind-top.txt"):"
            echo
            echo '```'
            sed -n '2,26p' "$OUT/callgrind-top.txt"
            echo '```'
        } | tee -a "$OUT/table.md"
    fi
}

if [ "$TABLES_ONLY" = 1 ]; then
    tables
    exit 0
fi
MSGBENCH=${MSGBENCH:-$BUILD/bench/msgbench}
SUBS=${SUBS:-1000} DEPTHS=${DEPTHS:-"1 16"} CLIENTS=${CLIENTS:-10000}
if [ ! -x "$WSREACTOR" ] || [ ! -x "$MSGBENCH" ]; then
    if [ -f "$BUILD/build.ninja" ]; then ninja -C "$BUILD" >&2 || exit 2; fi
fi
bench_need "meson setup $BUILD --buildtype=release -Dtests=false && ninja -C $BUILD" "$WSREACTOR" "$MSGBENCH"
if [ "$CG" = 1 ] && ! command -v valgrind >/dev/null; then
    echo "$ME: valgrind not found; the instruction counts are skipped" >&2
    CG=0
fi

# 10,000 clients need 10,000 descriptors in the client and in the daemon (each takes
# the limit it starts with).
ulimit -n "$(ulimit -Hn)" 2>/dev/null
if [ "$(ulimit -n)" -lt $((CLIENTS + 64)) ]; then
    echo "$ME: ulimit -n is $(ulimit -n); $CLIENTS clients need more (CLIENTS=N for fewer)" >&2
    exit 2
fi

bench_pin
bench_workdir msg INT TERM
mkdir -p "$OUT"
: >"$RES"
FAILED=0
START_TS=$(date +%s)

say() { [ "$QUIET" = 1 ] || echo "$ME: $*" >&2; }

# msg ARG...: runs msgbench pinned as a client; appends its line, prefixed, to RES.
# PREFIX is set by the caller. Sets LINE.
msg() {
    local out
    out=$(timeout 300 "${PIN_C[@]}" "${PRIO[@]}" "$MSGBENCH" "$@" --quiet 2>"$WORK/err")
    RC=$?
    LINE=$(printf '%s\n' "$out" | grep '^mode=' | tail -1)
    if [ "$RC" -ne 0 ] || [ -z "$LINE" ]; then
        FAILED=1
        echo "$ME: msgbench $* exit $RC" >&2
        head -5 "$WORK/err" >&2
    fi
    [ -n "$LINE" ] && echo "$PREFIX $LINE" >>"$RES"
}

# field KEY: the value of KEY in LINE.
field() { printf '%s\n' "$LINE" | tr ' ' '\n' | sed -n "s/^$1=//p"; }

{
    echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
    echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo -)"
    echo "machine: $(bench_machine)"
    echo "pinning: daemon on CPU $SERVER_CPU, client on CPU $CLIENT_CPU$([ "$RT" = 1 ] && echo ", SCHED_FIFO")"
    echo "runs: $RUNS x ${DUR} s (+${WARM} s warmup); subscribers: $SUBS; depths: $DEPTHS; memory: $CLIENTS clients"
    echo "loadavg at start: $(bench_loadavg)"
} >"$OUT/meta.txt"
sed 's/^/# /' "$OUT/meta.txt" >&2

# The daemon's per-connection and per-address rate limits stop a runaway client; here
# they would stop the benchmark (1,000 subscribers from one address, thousands of
# publishes in a closed loop), so every run turns them off.
NO_LIMITS=(--rate-handshakes 0 --rate-publish 0 --rate-messages 0 --rate-bytes 0)

# --- 1. fan-out -------------------------------------------------------------------------
bench_start_server wsreactor "$WSREACTOR" "${NO_LIMITS[@]}"
# shellcheck disable=SC2153 # SPORT is set by bench_start_server
PID=$SPID PORT=$SPORT
# The /broadcast message is as long as what a /ws subscriber receives: a short probe
# learns that length (it grows by a byte or two as offsets gain digits).
PREFIX="case=probe run=0 ep=ws"
msg fanout --url "ws://127.0.0.1:$PORT/ws" --subs 10 --pubs 1 --count 100
WIRE=$(printf '%.0f' "$(field delivery_bytes)")
[ -n "$WIRE" ] && [ "$WIRE" -gt 0 ] || WIRE=250
say "a /ws delivery of a 100-byte payload is $WIRE bytes of text; /broadcast sends $WIRE-byte messages"

fan_one() { # DEPTH RUN EP
    PREFIX="case=fanout depth=$1 run=$2 ep=$3"
    if [ "$3" = ws ]; then
        msg fanout --url "ws://127.0.0.1:$PORT/ws" --subs "$SUBS" --depth "$1" --payload 100 \
            --duration "$DUR" --warmup "$WARM" --server-pid "$PID"
    else
        msg fanout --url "ws://127.0.0.1:$PORT/broadcast" --subs "$SUBS" --depth "$1" --size "$WIRE" \
            --duration "$DUR" --warmup "$WARM" --server-pid "$PID"
    fi
    say "depth $1 run $2 $3: $(field deliveries_per_s) deliveries/s, p50 $(field p50_us) us, p99 $(field p99_us) us, server CPU $(field server_cpu_pct) %, errors $(field errors)"
}
for run in $(seq "$RUNS"); do
    for d in $DEPTHS; do
        if [ $((run % 2)) = 1 ]; then fan_one "$d" "$run" ws; fan_one "$d" "$run" bc; else fan_one "$d" "$run" bc; fan_one "$d" "$run" ws; fi
    done
done
kill "$PID" 2>/dev/null
wait "$PID" 2>/dev/null

# --- 2. memory per subscription ---------------------------------------------------------
for run in $(seq "$RUNS"); do
    bench_start_server wsreactor "$WSREACTOR" "${NO_LIMITS[@]}"
    PREFIX="case=subs run=$run ep=ws"
    msg subs --url "ws://127.0.0.1:$SPORT/ws" --clients "$CLIENTS" --per-client 10 --channels 1000 --server-pid "$SPID"
    say "memory run $run: $(field bytes_per_sub) B per subscription, $(field bytes_per_conn) B per connection, errors $(field errors)"
    kill "$SPID" 2>/dev/null
    wait "$SPID" 2>/dev/null
done

# --- 3. instructions (callgrind) --------------------------------------------------------
# cg NAME EP SUBS COUNT ARG...: the daemon under callgrind serves one msgbench run of
# COUNT round trips; its total instructions (Ir) go to RES as case=cg.
cg() {
    local name=$1 ep=$2 subs=$3 count=$4 file=$WORK/callgrind.$1.$4 log=$WORK/cg.log pid port
    shift 4
    valgrind --tool=callgrind --callgrind-out-file="$file" "$WSREACTOR" --listen 127.0.0.1:0 "${NO_LIMITS[@]}" 2>"$log" &
    pid=$!
    PIDS+=("$pid")
    port=$(bench_listen_port "$log" "$pid" 300 0.1)
    if [ -z "$port" ]; then
        echo "$ME: wsreactor under callgrind did not start" >&2
        FAILED=1
        return
    fi
    PREFIX="case=cgrun name=$name count=$count"
    msg fanout --url "ws://127.0.0.1:$port/$ep" --subs "$subs" --pubs 1 --count "$count" --per-source 0 "$@"
    kill -TERM "$pid"
    wait "$pid"
    echo "case=cg name=$name count=$count subs=$subs ir=$(sed -n 's/^totals: *//p' "$file")" >>"$RES"
}
if [ "$CG" = 1 ]; then
    say "callgrind: round trips with 4 subscribers, and publishes to $SUBS"
    # A publish envelope of a 100-byte payload is about 155 bytes: the /echo message.
    for c in 200 2200; do
        cg ws4 ws 4 "$c" --payload 100
        cg bc4 broadcast 4 "$c" --size "$WIRE"
        cg echo echo 0 "$c" --size 155
    done
    for c in 20 120; do
        cg "bc$SUBS" broadcast "$SUBS" "$c" --size "$WIRE"
        cg "ws$SUBS" ws "$SUBS" "$c" --payload 100
    done
    # Where a publish to SUBS subscribers goes: per function, the instructions of the
    # 120-publish run minus those of the 20-publish run, over the 100 publishes between
    # (start-up, upgrades and subscribing cancel, as in the totals).
    prof_diff() { # INCLUSIVE: yes or no
        local f
        for f in "$WORK/callgrind.ws$SUBS.20" "$WORK/callgrind.ws$SUBS.120"; do
            callgrind_annotate --inclusive="$1" --threshold=100 "$f" 2>/dev/null |
                sed -n 's/^ *\([0-9,]*\) ([ 0-9.]*%)  *\(.*\)$/\1\t\2/p' | tr -d ,
            echo "--"
        done | awk -F'\t' -v n=100 -v subs="$SUBS" '
            $0 == "--" { part++; next }
            part == 0 { a[$2] = $1; next }
            { d = $1 - a[$2]; if ($2 !~ /PROGRAM TOTALS/) { v[$2] = d } else total = d }
            END {
                printf "per publish to %d subscribers: %.0f instructions (%.0f per delivery)\n", subs, total / n,
                    total / n / subs >head
                for (k in v) if (v[k] > 0) printf "%12.0f %5.1f%%  %s\n", v[k] / n, 100 * v[k] / total, k
            }' head="$WORK/prof-head" | sort -k1,1nr | head -32 >"$WORK/prof-body"
        cat "$WORK/prof-head" "$WORK/prof-body"
    }
    prof_diff no >"$OUT/callgrind-top.txt"
    prof_diff yes >"$OUT/callgrind-inclusive.txt"
fi

echo "elapsed: $(($(date +%s) - START_TS)) s; loadavg at end: $(bench_loadavg)" >>"$OUT/meta.txt"
tables

if [ "$FAILED" = 1 ] || grep -q ' errors=[1-9]' "$RES"; then
    echo "$ME: some runs failed or counted errors (see above)" >&2
    exit 1
fi
exit 0
