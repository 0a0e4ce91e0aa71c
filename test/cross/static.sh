#!/usr/bin/env bash
# test/cross/static.sh: the integration tests that apply to a daemon without TLS and JWT,
# run against the static musl binary (make test-static, docs/edge.md). The unit tests are
# not built for musl (cmocka is Debian's, built for glibc); what the musl build changes is
# the C library, the libraries built by test/cross/musl.sh and the start-up and C++ run
# time of src/app/musl_runtime.cpp, which these scripts exercise through the real binary.
#
# usage: test/cross/static.sh [BINARY]   (default build/wsreactor-static)
# The last line is "N passed, N failed" (", N skipped" when some were), as make test's.
set -u
cd "$(dirname "$0")/../.." || exit 2
BIN=$(realpath "${1:-build/wsreactor-static}")
[ -x "$BIN" ] || { echo "$0: $BIN is missing: run make static first" >&2; exit 2; }
# Every script of test/integration that starts the daemon, less those that need TLS, JWT,
# a browser or an installed tree: those skip or fail for reasons that are not the binary's.
SCRIPTS="echo handshake protocol lifecycle hardening http listeners proxy ops deflate messaging
         auth scaling status_page seed"
LOGS=build/test-static
mkdir -p "$LOGS"
pass=0 fail=0 skip=0
for s in $SCRIPTS; do
    log=$LOGS/$s.log
    WSR_BIN=$BIN WSR_HAS_TLS=0 WSR_HAS_JWT=0 timeout 600 /usr/bin/python3 "test/integration/test_$s.py" >"$log" 2>&1
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
