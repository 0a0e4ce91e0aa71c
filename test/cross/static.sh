#!/usr/bin/env bash
# test/cross/static.sh: the integration tests against a static binary (make test-static,
# docs/edge.md). By default the musl daemon without TLS and JWT: the unit tests are not
# built for musl (cmocka is Debian's, built for glibc); what the musl build changes is the
# C library, the libraries built by test/cross/musl.sh and the start-up and C++ run time
# of src/app/musl_runtime.cpp, which these scripts exercise through the real binary.
# With --tls, the glibc daemon with TLS and JWT (build/wsreactor-static-tls): the same
# scripts with their TLS and JWT cases, and test_tls.py, through OpenSSL and the libjwt
# of test/cross/libjwt.sh linked in.
#
# usage: test/cross/static.sh [--tls] [BINARY]
#        (default build/wsreactor-static, with --tls build/wsreactor-static-tls)
# The last line is "N passed, N failed" (", N skipped" when some were), as make test's.
set -u
cd "$(dirname "$0")/../.." || exit 2
# Every script of test/integration that starts the daemon, less those that need a browser
# or an installed tree, and less TLS's without --tls: those skip or fail for reasons that
# are not the binary's.
SCRIPTS="echo handshake protocol lifecycle hardening http listeners proxy ops deflate messaging
         auth scaling status_page seed"
HAS=0 DEFAULT=build/wsreactor-static LOGS=build/test-static
if [ "${1:-}" = --tls ]; then
    shift
    HAS=1 DEFAULT=build/wsreactor-static-tls LOGS=build/test-static-tls SCRIPTS="$SCRIPTS tls"
fi
BIN=$(realpath "${1:-$DEFAULT}")
[ -x "$BIN" ] || { echo "$0: $BIN is missing: run make static first" >&2; exit 2; }
mkdir -p "$LOGS"
pass=0 fail=0 skip=0
for s in $SCRIPTS; do
    log=$LOGS/$s.log
    WSR_BIN=$BIN WSR_HAS_TLS=$HAS WSR_HAS_JWT=$HAS timeout 600 /usr/bin/python3 "test/integration/test_$s.py" >"$log" 2>&1
    rc=$?
    ok=$(grep -c '^ok' "$log")
    sk=$(grep -ci '^ok.*# skip' "$log")
    bad=$(grep -c '^not ok' "$log")
    # A script that died without a "not ok" line (a crash, a timeout) counts one failure.
    [ "$rc" != 0 ] && [ "$bad" = 0 ] && bad=1
    echo "integration/$s: $((ok - sk)) passed, $bad failed, $sk skipped"
    [ "$bad" = 0 ] || grep -A3 '^not ok' "$log" | head -20
    pass=$((pass + ok - sk)) fail=$((fail + bad)) skip=$((skip + sk))
done
file -b "$BIN" | cut -d, -f1-2
if [ "$skip" -gt 0 ]; then echo "$pass passed, $fail failed, $skip skipped"; else echo "$pass passed, $fail failed"; fi
[ "$fail" = 0 ]
