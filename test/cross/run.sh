#!/usr/bin/env bash
# test/cross/run.sh ARCH: builds wsreactor for ARCH (aarch64, armhf, s390x) with Debian's
# cross compiler against the sysroot of test/cross/sysroot.sh, without TLS (the edge
# build: nettle, no libcrypto), and runs its tests under qemu-user:
#   aarch64, armhf: every cmocka unit test, the fuzz corpus replays of src/proto, and the
#                   echo integration test (the daemon under qemu, python3-websockets and
#                   raw-socket clients on the host);
#   s390x:          the src/proto unit tests and replays: a big-endian CPU shows that the
#                   frame, deflate, UTF-8 and handshake code do not depend on byte order.
# The last line is "ARCH (...): N passed, N failed", counting test programs (each runs many
# cmocka cases or corpus inputs) and the echo integration script.
set -euo pipefail

ARCH=${1:?usage: $0 aarch64|armhf|s390x}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=$ROOT/build/cross/$ARCH
B=$OUT/build
cd "$ROOT"

"$ROOT/test/cross/sysroot.sh" "$ARCH"
if [ ! -f "$B/build.ninja" ]; then
    meson setup "$B" --cross-file "test/cross/$ARCH.ini" --cross-file "$OUT/sysroot.ini" \
        --buildtype=debugoptimized -Dtls=disabled >"$OUT/setup.log" || { tail -30 "$OUT/setup.log"; exit 1; }
fi

# `meson test --list` prints "wsreactor:SUITE / NAME"; meson test takes the bare NAME.
list_tests() { meson test -C "$B" --list 2>/dev/null | sed -n 's|^[^ ]* / ||p' | grep -E "$1" || true; }
PROTO_TESTS=$(list_tests '^(proto/|fuzz/replay_(frame|utf8|handshake|extensions|inflate|proxy)$)')
if [ "$ARCH" = s390x ]; then
    # Only what the proto tests need: the daemon and the rest are not run here.
    targets=$(meson introspect "$B" --targets | /usr/bin/python3 -c '
import json, sys
for t in json.load(sys.stdin):
    if t["name"].startswith("test_proto_") or t["name"].startswith("replay_") and t["name"][7:] in ("frame", "utf8", "handshake", "extensions", "inflate", "proxy"):
        print(t["filename"][0])')
    ninja -C "$B" -j2 $(for t in $targets; do realpath --relative-to="$B" "$t"; done)
    TESTS=$PROTO_TESTS
else
    ninja -C "$B" -j2
    # app/metrics_parse starts a cross-built helper from the host's python, and the docs
    # suite compiles examples with the host compiler: both stay with the native build.
    TESTS=$(list_tests '^(proto/|core/|msg/|app/config_file$|app/metrics$|fuzz/replay_)')
fi

# shellcheck disable=SC2086
meson test -C "$B" --no-rebuild --print-errorlogs --num-processes 2 --timeout-multiplier 4 $TESTS \
    >"$OUT/unit.log" 2>&1 || true
# One line per test program (meson repeats the failed ones after the list; show each once).
grep -E '^ *[0-9]+/[0-9]+ ' "$OUT/unit.log" | sed 's/^ *//' | sort -u -t/ -k1,1n
summary() { sed -n "s/^$1: *\([0-9]*\).*/\1/p" "$OUT/unit.log" | tail -1; }
pass=$(( $(summary Ok) + 0 ))
fail=$(( $(summary Fail) + $(summary Timeout) + $(summary 'Unexpected Pass') + 0 ))
[ -n "$TESTS" ] || fail=$((fail + 1)) # nothing selected is a failure, not a pass

if [ "$ARCH" != s390x ]; then
    # The echo integration test against the daemon running under qemu.
    if WSR_BIN="$OUT/wsreactor-qemu" WSR_HAS_TLS=0 WSR_HAS_JWT=0 WSR_BUDGET_SCALE=4 \
        timeout 600 /usr/bin/python3 test/integration/test_echo.py >"$OUT/echo.log" 2>&1; then
        echo "integration/echo under qemu: $(tail -1 "$OUT/echo.log")"
        pass=$((pass + 1))
    else
        echo "integration/echo under qemu FAILED:"; grep -E '^not ok|^#' "$OUT/echo.log" | head -40
        fail=$((fail + 1))
    fi
fi
# What was tested, as file(1) sees it (s390x builds no daemon: a test program then).
exe=$B/wsreactor; [ -f "$exe" ] || exe=$B/test/test_proto_frame
echo "$ARCH ($(file -b "$exe" | cut -d, -f1-2)): $pass passed, $fail failed"
[ "$fail" = 0 ]
