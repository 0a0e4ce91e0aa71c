#!/usr/bin/env bash
# bench/run-edge-memory.sh: resident memory of the static daemons (make static) at 0,
# 1,000 and 10,000 idle WebSocket connections, without and with permessage-deflate and
# TLS, and of the glibc daemon without TLS (make static-glibc) when it is built: the
# memory profile of docs/edge.md. With 0 connections VmRSS is read 2 s after the start. Every run starts a fresh server, opens the
# connections with `wsbench idle` (from a normal build: the static builds have no bench
# tools), holds them and reads the server's VmRSS; medians over the rounds.
#
# usage: bench/run-edge-memory.sh [-n ROUNDS] [-b BUILD_DIR] [-q]
#   -b DIR   meson build dir holding bench/wsbench (default build/release)
# env: EDGE_CONNS ("0 1000 10000"), HOLD (3 s), STATIC (build/static-musl/wsreactor),
#      STATIC_TLS (build/static-tls/wsreactor), STATIC_GLIBC (build/static-glibc/wsreactor;
#      its case is left out when it is missing), EDGE_ARGS (extra daemon options, e.g. the
#      64 MB profile of docs/edge.md), WSBENCH_ARGS (extra wsbench options, e.g.
#      --concurrency under --max-handshakes), SERVER_CPU (0), CLIENT_CPU (1), KEEP=1.
set -u
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

RUNS=3
bench_options "$@"
EDGE_CONNS=${EDGE_CONNS:-0 1000 10000}
HOLD=${HOLD:-3}
STATIC=${STATIC:-build/static-musl/wsreactor}
STATIC_TLS=${STATIC_TLS:-build/static-tls/wsreactor}
STATIC_GLIBC=${STATIC_GLIBC:-build/static-glibc/wsreactor}
EDGE_ARGS=${EDGE_ARGS:-}
WSBENCH_ARGS=${WSBENCH_ARGS:-}
bench_need "make static" "$STATIC" "$STATIC_TLS"
bench_need "meson setup DIR --buildtype=release -Dtests=false && ninja -C DIR" "$WSBENCH"

ulimit -n "$(ulimit -Hn)" 2>/dev/null
bench_pin
bench_workdir edge-memory INT TERM HUP PIPE
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null || { echo "$ME: openssl req failed" >&2; exit 1; }

echo "# edge memory profile, $(date -u +%Y-%m-%dT%H:%MZ); $(bench_machine)"
echo "# $RUNS rounds, ${HOLD} s hold, a fresh server each run; extra daemon options: ${EDGE_ARGS:-none};" \
    "extra wsbench options: ${WSBENCH_ARGS:-none}"

# case: name, binary, daemon options, scheme, wsbench options
CASES=(
    "plain|$STATIC|--deflate off|ws|"
    "deflate shared|$STATIC|--deflate shared|ws|--offer-deflate"
    "deflate dedicated|$STATIC|--deflate dedicated|ws|--offer-deflate"
    "TLS|$STATIC_TLS|--deflate off|wss|--insecure"
    "TLS + deflate dedicated|$STATIC_TLS|--deflate dedicated|wss|--insecure --offer-deflate"
)
[ -x "$STATIC_GLIBC" ] && CASES+=("plain, glibc|$STATIC_GLIBC|--deflate off|ws|")
RES=$WORK/results
: >"$RES"
FAILED=0
for round in $(seq "$RUNS"); do
    for cs in "${CASES[@]}"; do
        IFS='|' read -r name bin dopts scheme wopts <<<"$cs"
        for c in $EDGE_CONNS; do
            log=$WORK/server.log
            listen=(--listen 127.0.0.1:0)
            [ "$scheme" = wss ] && listen=(--listen-tls 127.0.0.1:0 --tls-cert "$WORK/cert.pem" --tls-key "$WORK/key.pem")
            # shellcheck disable=SC2086
            "${PIN_S[@]}" "$bin" "${listen[@]}" $dopts $EDGE_ARGS 2>"$log" &
            SPID=$!
            PIDS+=("$SPID")
            # With a TLS listener the plain default one is served too: take the TLS port.
            port=""
            for _ in $(seq 50); do
                port=$(grep 'listening on' "$log" | grep -i "$([ "$scheme" = wss ] && echo tls || echo .)" |
                    sed -n 's/.*listening on [^ ]*:\([0-9][0-9]*\).*/\1/p' | tail -1)
                [ -n "$port" ] && break
                sleep 0.1
            done
            if [ -z "$port" ]; then echo "$ME: $name did not start:" >&2; cat "$log" >&2; exit 1; fi
            if [ "$c" = 0 ]; then
                sleep 2
                rss=$(sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$SPID/status")
                LINE="open=0 rss_before_kb=$rss rss_hold_kb=$rss"
            else
                # shellcheck disable=SC2086
                DUR=1 WARM=0 bench_wsbench $((HOLD + 180)) "$SPID" idle --url "$scheme://127.0.0.1:$port/echo" \
                    --conns "$c" --hold "$HOLD" $wopts $WSBENCH_ARGS
                case " $LINE " in *" open=$c "*) ;; *) FAILED=1; echo "$ME: $name $c: not all opened: $LINE $(cat "$WORK/err")" >&2 ;; esac
            fi
            kill "$SPID" 2>/dev/null
            wait "$SPID" 2>/dev/null
            echo "case=${name// /_} conns=$c round=$round $LINE" >>"$RES"
            [ "$QUIET" = 1 ] || echo "  round $round $name $c: $(echo "$LINE" | grep -o 'open=[^ ]*\|rss_hold_kb=[^ ]*' | tr '\n' ' ')" >&2
        done
    done
done

awk -v conns="$EDGE_CONNS" "$BENCH_AWK_MEDIAN"'
{
    for (i = 1; i <= NF; i++) { eq = index($i, "="); f[substr($i, 1, eq - 1)] = substr($i, eq + 1) }
    k = f["case"]; c = f["conns"]
    if (!(k in seen)) { seen[k] = 1; order[++nk] = k }
    n[k, c]++; v[k, c, n[k, c]] = f["rss_hold_kb"]
    delete f
}
END {
    nc = split(conns, cs, " ")
    printf "\n| case |"; for (i = 1; i <= nc; i++) printf " %s conns: VmRSS KiB |", cs[i]
    if (nc >= 2) printf " bytes per idle conn (%s to %s) |", cs[nc - 1], cs[nc]
    printf "\n|---|"; for (i = 1; i <= nc; i++) printf "---:|"; if (nc >= 2) printf "---:|"; printf "\n"
    for (j = 1; j <= nk; j++) {
        k = order[j]; name = k; gsub(/_/, " ", name)
        printf "| %s |", name
        for (i = 1; i <= nc; i++) {
            m = 0; for (r = 1; r <= n[k, cs[i]]; r++) a[++m] = v[k, cs[i], r]
            med[i] = median(a, m, -1); delete a
            printf " %s |", med[i] < 0 ? "-" : sprintf("%.0f", med[i])
        }
        if (nc >= 2) printf " %.0f |", (med[nc] - med[nc - 1]) * 1024 / (cs[nc] - cs[nc - 1])
        printf "\n"
    }
}' "$RES"
[ "$FAILED" = 0 ]
