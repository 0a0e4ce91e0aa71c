#!/bin/sh
# Source-level coverage of src/proto reached by the fuzz inputs: builds the replay
# runners with clang's -fprofile-instr-generate, replays the committed corpus, the
# regression inputs and (if present) the scratch corpus of the last fuzz/run.sh, and
# prints llvm-cov's line/branch table for src/proto.
#
#   fuzz/coverage.sh              every target
#   fuzz/coverage.sh frame        one target
#   FUZZ_WORK=build/fuzz/work     where fuzz/run.sh left its scratch corpora
#
# Output in $OUT (default build/fuzz-cov): <target>.profdata, and an HTML report per
# target in $OUT/html/<target>/index.html.
set -eu

# shellcheck source=fuzz/lib.sh
. "$(dirname "$0")/lib.sh"
OUT=${OUT:-$ROOT/build/fuzz-cov}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
FUZZ_WORK=${FUZZ_WORK:-$ROOT/build/fuzz/work}
CC=${CC:-clang}
CXX=${CXX:-clang++}
LLVM_PROFDATA=${LLVM_PROFDATA:-llvm-profdata}
LLVM_COV=${LLVM_COV:-llvm-cov}
LLHTTP_SRC=${LLHTTP_SRC:-/usr/share/llhttp}
LLHTTP_INC=${LLHTTP_INC:-/usr/share/include/llhttp}

targets=$(fuzz_targets "$@")

COV="-fprofile-instr-generate -fcoverage-mapping"
CXXF="-O1 -g -std=c++20 -fno-exceptions -fno-rtti -D_GNU_SOURCE -I$ROOT/include -I$ROOT/src -I$LLHTTP_INC"
LIBS="-lcrypto"
[ -e "$ROOT/src/proto/deflate.cpp" ] && LIBS="$LIBS -lz"
mkdir -p "$OUT/obj"
llhttp=""
for f in llhttp api http; do
  # llhttp is not ours: built without coverage so it stays out of the report.
  $CC -O1 -g -std=c11 -w -I"$LLHTTP_INC" -c "$LLHTTP_SRC/$f.c" -o "$OUT/obj/llhttp_$f.o"
  llhttp="$llhttp $OUT/obj/llhttp_$f.o"
done

for t in $targets; do
  # fuzz_connection and fuzz_tls run the server core and the echo/broadcast handlers on
  # libuv (and OpenSSL's libssl, for src/core/tls.cpp).
  extra=""
  extra_libs=""
  if [ "$t" = connection ] || [ "$t" = tls ]; then
    extra="$ROOT/src/core/*.cpp $ROOT/src/app/echo.cpp $ROOT/src/app/broadcast.cpp"
    extra_libs="$(pkg-config --libs libuv 2>/dev/null || echo -luv) $(pkg-config --libs libssl 2>/dev/null || echo -lssl)"
  elif [ "$t" = envelope ]; then
    # the messaging envelope: src/msg/envelope.cpp on simdjson (a shared library)
    extra="$ROOT/src/msg/envelope.cpp"
    extra_libs="$(pkg-config --libs simdjson 2>/dev/null || echo -lsimdjson)"
  fi
  # shellcheck disable=SC2086 # flag lists
  $CXX $CXXF $COV "$ROOT/fuzz/fuzz_$t.cpp" "$ROOT/fuzz/replay_main.cpp" "$ROOT"/src/proto/*.cpp $extra $llhttp \
    $extra_libs $LIBS -o "$OUT/replay_$t"
  rm -f "$OUT/$t"-*.profraw
  dirs="$ROOT/fuzz/corpus/$t $ROOT/fuzz/regression/$t"
  [ -d "$FUZZ_WORK/$t/corpus" ] && dirs="$dirs $FUZZ_WORK/$t/corpus"
  # %p: the runner forks per input, and each child writes its own profile at exit.
  # shellcheck disable=SC2086
  LLVM_PROFILE_FILE="$OUT/$t-%p.profraw" "$OUT/replay_$t" $dirs >"$OUT/$t.tap" 2>"$OUT/$t.stderr" || true
  n=$(grep -c '^ok' "$OUT/$t.tap" || true)
  bad=$(grep -c '^not ok' "$OUT/$t.tap" || true)
  "$LLVM_PROFDATA" merge -sparse "$OUT/$t"-*.profraw -o "$OUT/$t.profdata"
  rm -f "$OUT/$t"-*.profraw
  # The file the target is named for, when there is one; else all of src/proto.
  case $t in
    inflate) srcs="$ROOT/src/proto/deflate.cpp" ;;
    envelope) srcs="$ROOT/src/msg/envelope.cpp" ;;
    tls) srcs="$ROOT/src/core/tls.cpp $ROOT/src/core/conn.cpp $ROOT/src/core/server.cpp" ;;
    connection) srcs="$ROOT/src/core/conn.cpp $ROOT/src/core/http.cpp $ROOT/src/core/server.cpp $ROOT/src/core/compression.cpp $ROOT/src/proto/proxy.cpp $ROOT/src/proto/origin.cpp" ;;
    *) srcs="$ROOT/src/proto/$t.cpp" ;;
  esac
  [ -e "${srcs%% *}" ] || srcs="$ROOT/src/proto/*.cpp"
  echo "== $t: $n inputs ok, $bad failing (see $OUT/$t.tap); coverage:"
  # shellcheck disable=SC2086
  "$LLVM_COV" report "$OUT/replay_$t" -instr-profile="$OUT/$t.profdata" $srcs
  html="$ROOT/src/proto/*.cpp"
  [ "$t" = envelope ] && html=$srcs
  # shellcheck disable=SC2086
  "$LLVM_COV" show "$OUT/replay_$t" -instr-profile="$OUT/$t.profdata" -format=html \
    -output-dir="$OUT/html/$t" $html >/dev/null
done
