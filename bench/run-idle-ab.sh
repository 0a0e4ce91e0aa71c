#!/usr/bin/env bash
# bench/run-idle-ab.sh: idle memory per WebSocket connection of two wsreactor builds, side
# by side in one invocation. Every run starts a fresh server (an old one would have its
# pools warm), opens C connections with `wsbench idle`, holds them, and reads the
# server's VmRSS; runs alternate OLD and NEW (which goes first alternates by round). It
# prints the medians of bytes per connection ((VmRSS after the hold - before) / C), of
# VmRSS after the hold, and of the per-added-connection figure between the smallest and
# the largest C ((VmRSS at C2 - VmRSS at C1) / (C2 - C1), paired within a round), and
# NEW/OLD.
#
# usage: bench/run-idle-ab.sh OLD_WSREACTOR NEW_WSREACTOR [-n ROUNDS] [-b BUILD_DIR] [-q]
#   -n ROUNDS    rounds (default 3); each round runs every C against both builds
#   -b DIR       meson build dir holding bench/wsbench (default build/release)
#   -q           no per-run lines, only the table
# env: IDLE_CONNS ("10000 19000"), HOLD (5 s); WSBENCH; SERVER_CPU (0) and CLIENT_CPU (1);
#      KEEP=1 keeps the raw results. The descriptor limit (ulimit -n) must exceed the
#      largest C for both the server and wsbench.
# Exit status: 0, or 1 when any run failed, counted an error or opened fewer than C.
set -u
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

[ $# -ge 2 ] || bench_usage
OLD=$1 NEW=$2
shift 2
RUNS=3 # the other options default in bench_options
bench_options "$@"
IDLE_CONNS=${IDLE_CONNS:-10000 19000}
HOLD=${HOLD:-5}
bench_need "meson setup DIR --buildtype=release -Dtests=false && ninja -C DIR" "$WSBENCH" "$OLD" "$NEW"

max=0
for c in $IDLE_CONNS; do [ "$c" -gt "$max" ] && max=$c; done
ulimit -n "$(ulimit -Hn)" 2>/dev/null
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -le $((max + 50)) ]; then
    echo "$ME: ulimit -n is $(ulimit -n) (hard $(ulimit -Hn)); $max connections need more" >&2
    exit 2
fi

bench_pin
bench_workdir idle INT TERM HUP PIPE

echo "# idle memory per connection, old $OLD vs new $NEW, $(date -u +%Y-%m-%dT%H:%MZ)"
echo "# $(bench_machine); server on CPU ${SERVER_CPU}, wsbench on CPU ${CLIENT_CPU}; ulimit -n $(ulimit -n)"
echo "# $RUNS rounds x {${IDLE_CONNS// /, }} connections, ${HOLD} s hold, a fresh server each run; loadavg at start: $(bench_loadavg)"

FAILED=0
RES=$WORK/results
: >"$RES"
# run_one NAME BINARY CONNS ROUND
run_one() {
    local name=$1 bin=$2 c=$3 round=$4
    bench_start_server "$name" "$bin"
    DUR=1 WARM=0 bench_wsbench $((HOLD + 120)) "$SPID" idle --url "ws://127.0.0.1:$SPORT/echo" \
        --conns "$c" --hold "$HOLD"
    bench_wsbench_check "round $round $name $c conns: wsbench"
    if ! kill -0 "$SPID" 2>/dev/null; then
        FAILED=1
        echo "$ME: $name died in round $round, $c conns:" >&2
        tail -5 "$WORK/$name.log" >&2
    fi
    kill "$SPID" 2>/dev/null
    wait "$SPID" 2>/dev/null
    [ -n "$LINE" ] || return
    case " $LINE " in *" open=$c "*) ;; *) FAILED=1; echo "$ME: round $round $name: not all $c opened" >&2 ;; esac
    echo "build=$name round=$round $LINE" >>"$RES"
    [ "$QUIET" = 1 ] || printf '  round %s %-3s %5s conns: %s\n' "$round" "$name" "$c" \
        "$(printf '%s\n' "$LINE" | grep -o ' open=[^ ]*\| rss_before_kb=[^ ]*\| rss_hold_kb=[^ ]*\| bytes_per_conn=[^ ]*\| msgs_per_s=[^ ]*\| errors=[^ ]*' | tr -d ' ' | tr '\n' ' ')" >&2
}

for round in $(seq "$RUNS"); do
    for c in $IDLE_CONNS; do
        if [ $((round % 2)) = 1 ]; then
            run_one old "$OLD" "$c" "$round"; run_one new "$NEW" "$c" "$round"
        else
            run_one new "$NEW" "$c" "$round"; run_one old "$OLD" "$c" "$round"
        fi
    done
done

echo "# loadavg at end: $(bench_loadavg)"
awk -v conns="$IDLE_CONNS" "$BENCH_AWK_MEDIAN"'
function med(b, c, k,    n, v, r) {
    n = 0
    for (r = 1; r <= maxr; r++) if ((b, c, r, k) in val) v[++n] = val[b, c, r, k] + 0
    return median(v, n, -1)
}
# bytes per added connection between c1 and c2, in one round, then the median; with
# growth, from the growth of each run (after hold - before) rather than its VmRSS after the
# hold, so that the different baselines of fresh servers cancel.
function added(b, c1, c2, growth,    n, v, r, d) {
    n = 0
    for (r = 1; r <= maxr; r++)
        if ((b, c1, r, "rss_hold_kb") in val && (b, c2, r, "rss_hold_kb") in val)
        {
            d = val[b, c2, r, "rss_hold_kb"] - val[b, c1, r, "rss_hold_kb"]
            if (growth) d -= val[b, c2, r, "rss_before_kb"] - val[b, c1, r, "rss_before_kb"]
            v[++n] = d * 1024 / (c2 - c1)
        }
    return median(v, n, NONE)
}
function num(x, fmt) { return x < 0 ? "-" : sprintf(fmt, x) }
function rat(a, b) { return a == NONE || b <= 0 ? "-" : sprintf("%.2f", a / b) }
function sig(x) { return x == NONE ? "-" : sprintf("%.0f", x) }
BEGIN { NONE = -1e18 } # no figure (the added figure may be negative)
{
    for (i = 1; i <= NF; i++) { eq = index($i, "="); f[substr($i, 1, eq - 1)] = substr($i, eq + 1) }
    b = f["build"]; c = f["conns"]; r = f["round"]; if (r > maxr) maxr = r
    for (k in f) val[b, c, r, k] = f[k]
    n[b, c]++
    delete f
}
END {
    nc = split(conns, cs, " ")
    print ""
    print "| connections | build | runs | VmRSS before KiB | VmRSS after hold KiB | bytes per connection | new / old |"
    print "|---:|---|---:|---:|---:|---:|---:|"
    for (i = 1; i <= nc; i++) {
        c = cs[i]
        for (j = 1; j <= 2; j++) {
            b = j == 1 ? "old" : "new"
            printf "| %s | %s | %d | %s | %s | %s | %s |\n", c, b, n[b, c], num(med(b, c, "rss_before_kb"), "%.0f"),
                num(med(b, c, "rss_hold_kb"), "%.0f"), num(med(b, c, "bytes_per_conn"), "%.0f"),
                b == "new" ? (med("old", c, "bytes_per_conn") < 0 ? "-" : rat(med("new", c, "bytes_per_conn"), med("old", c, "bytes_per_conn"))) : ""
        }
    }
    if (nc >= 2) {
        lo = cs[1]; hi = cs[nc]
        ao = added("old", lo, hi, 0); an = added("new", lo, hi, 0)
        print ""
        printf "bytes per added connection, (VmRSS after hold at %s - at %s) / %d, median over rounds: old %s, new %s (new / old %s)\n",
            hi, lo, hi - lo, sig(ao), sig(an), rat(an, ao)
        ao = added("old", lo, hi, 1); an = added("new", lo, hi, 1)
        printf "the same from the growth of each run (after hold - before): old %s, new %s (new / old %s)\n",
            sig(ao), sig(an), rat(an, ao)
    }
}' "$RES"

if [ "$FAILED" = 1 ] || grep -q ' errors=[1-9]' "$RES"; then
    echo "$ME: some runs failed or reported errors (see above)" >&2
    exit 1
fi
exit 0
