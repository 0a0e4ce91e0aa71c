#!/bin/sh
# Builds the libFuzzer targets fuzz/fuzz_*.cpp into $OUT, one executable per harness.
#
#   fuzz/build.sh               every target
#   fuzz/build.sh messaging     only the targets named (frame, utf8, ..., messaging)
#
# OSS-Fuzz conventions: CC, CXX, CFLAGS, CXXFLAGS, LIB_FUZZING_ENGINE and OUT come from
# the environment, so an OSS-Fuzz build.sh can just call this script. Defaults:
#   CC=clang CXX=clang++ LIB_FUZZING_ENGINE=-fsanitize=fuzzer OUT=build/fuzz
#   CFLAGS/CXXFLAGS="-O1 -g -fno-omit-frame-pointer"
# When the flags name no sanitizer, FUZZ_SANITIZE (default address,undefined; "none" for
# none) is added, with -fno-sanitize-recover so that undefined behaviour is a crash the
# fuzzer records. When the engine is libFuzzer and the flags do not ask for coverage,
# -fsanitize=fuzzer-no-link is added so the protocol code (not only the harness) is
# instrumented. Next to each target it writes <target>.dict (fuzz/dict/<short>.dict
# if there is one, else fuzz/dict/ws.dict) and, if zip exists,
# <target>_seed_corpus.zip, the names OSS-Fuzz looks for.
#
# The protocol sources are every src/proto/*.cpp but crypto_nettle.cpp; llhttp's C sources come from
# LLHTTP_SRC (default /usr/share/llhttp) and its header from LLHTTP_INC. fuzz_connection
# (the whole server read path) and fuzz_tls (the same through real TLS) also link
# src/core/*.cpp, the echo and broadcast handlers of src/app, libuv (-luv; pkg-config
# libuv when it is there) and libssl. fuzz_envelope links src/msg/envelope.cpp and
# simdjson (a shared library: pkg-config simdjson, else -lsimdjson).
# fuzz_messaging and fuzz_bus link the core as fuzz_connection does, every src/msg/*.cpp (by glob, so
# new files there are picked up) and simdjson; when a src/msg source includes <jwt.h>,
# <ini.h>, <crypt.h> or <hiredis/async.h>, also libjwt, inih, libcrypt or hiredis (pkg-config, else -ljwt, -linih,
# -lcrypt, -lhiredis).
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CC=${CC:-clang}
CXX=${CXX:-clang++}
LIB_FUZZING_ENGINE=${LIB_FUZZING_ENGINE:--fsanitize=fuzzer}
OUT=${OUT:-$ROOT/build/fuzz}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd) # absolute: some steps run in other directories
LLHTTP_SRC=${LLHTTP_SRC:-/usr/share/llhttp}
LLHTTP_INC=${LLHTTP_INC:-/usr/share/include/llhttp}
FUZZ_SANITIZE=${FUZZ_SANITIZE:-address,undefined}
CFLAGS=${CFLAGS:--O1 -g -fno-omit-frame-pointer}
CXXFLAGS=${CXXFLAGS:--O1 -g -fno-omit-frame-pointer}

# True when the flags already choose a sanitizer (fuzzer-no-link is coverage, not one).
has_sanitizer() { printf '%s\n' "$1" | sed 's/-fsanitize=fuzzer-no-link//g' | grep -q -- '-fsanitize='; }
has_coverage() { printf '%s\n' "$1" | grep -Eq -- '-fsanitize=(fuzzer|fuzzer-no-link)([ ,]|$)|-fsanitize-coverage='; }

if [ "$FUZZ_SANITIZE" != none ]; then
  san="-fsanitize=$FUZZ_SANITIZE -fno-sanitize-recover=all"
  has_sanitizer "$CFLAGS" || CFLAGS="$CFLAGS $san"
  has_sanitizer "$CXXFLAGS" || CXXFLAGS="$CXXFLAGS $san"
fi
case "$LIB_FUZZING_ENGINE" in
  *-fsanitize=fuzzer*)
    has_coverage "$CFLAGS" || CFLAGS="$CFLAGS -fsanitize=fuzzer-no-link"
    has_coverage "$CXXFLAGS" || CXXFLAGS="$CXXFLAGS -fsanitize=fuzzer-no-link" ;;
esac

# The project's own language settings (meson.build): not negotiable per build.
PROJ_CXX="-std=c++20 -fno-exceptions -fno-rtti -D_GNU_SOURCE -I$ROOT/include -I$ROOT/src -I$LLHTTP_INC"
# llhttp is generated code: no warnings; strict mode as in meson.build.
PROJ_C="-std=c11 -D_GNU_SOURCE -DLLHTTP_STRICT_MODE=1 -I$LLHTTP_INC -w"
LIBS="-lcrypto"
[ -e "$ROOT/src/proto/deflate.cpp" ] && LIBS="$LIBS -lz"

# Intermediate objects: OSS-Fuzz's $WORK when it is set (its $OUT should hold only what
# it ships), else next to the targets.
OBJ=${WORK:+$WORK/wsreactor-fuzz-obj}
OBJ=${OBJ:-$OUT/obj}
mkdir -p "$OUT" "$OBJ"
# The targets to build: the ones named, else every fuzz/fuzz_*.cpp.
if [ $# -gt 0 ]; then
  harnesses=""
  for t in "$@"; do
    [ -e "$ROOT/fuzz/fuzz_$t.cpp" ] || { echo "fuzz/build.sh: no target $t (fuzz/fuzz_$t.cpp)" >&2; exit 2; }
    harnesses="$harnesses $ROOT/fuzz/fuzz_$t.cpp"
  done
else
  harnesses=$(echo "$ROOT"/fuzz/fuzz_*.cpp)
fi
wants() { case " $harnesses " in *"/fuzz_$1.cpp "*) return 0 ;; esac; return 1; }

echo "fuzz/build.sh: CXX=$CXX CXXFLAGS=$CXXFLAGS LIB_FUZZING_ENGINE=$LIB_FUZZING_ENGINE OUT=$OUT"

# FUZZ_INSTRUMENT_LLHTTP=0 builds llhttp without coverage feedback, so that only our
# code (and the harness) counts as coverage: fuzz/merge.sh uses it to keep the committed
# corpus to the inputs that matter for src/proto. Fuzzing itself keeps it on: llhttp's
# states are good guidance towards unusual request shapes.
LLHTTP_CFLAGS=$CFLAGS
if [ "${FUZZ_INSTRUMENT_LLHTTP:-1}" = 0 ]; then
  LLHTTP_CFLAGS=$(printf '%s\n' "$CFLAGS" | sed -e 's/-fsanitize=fuzzer-no-link//g' -e 's/-fsanitize-coverage=[^ ]*//g')
fi

objs=""
for f in llhttp api http; do
  # shellcheck disable=SC2086 # flag lists are meant to split
  $CC $LLHTTP_CFLAGS $PROJ_C -c "$LLHTTP_SRC/$f.c" -o "$OBJ/llhttp_$f.o"
  objs="$objs $OBJ/llhttp_$f.o"
done
for src in "$ROOT"/src/proto/*.cpp; do
  # One backend of the crypto seam (src/proto/crypto.h): OpenSSL's, as libcrypto is
  # linked anyway; the nettle one defines the same functions for builds without TLS.
  [ "$(basename "$src")" = crypto_nettle.cpp ] && continue
  o="$OBJ/proto_$(basename "$src" .cpp).o"
  # shellcheck disable=SC2086
  $CXX $CXXFLAGS $PROJ_CXX -c "$src" -o "$o"
  objs="$objs $o"
done

# The server core and the two handlers, for fuzz_connection only.
UV_CFLAGS=$(pkg-config --cflags libuv 2>/dev/null || true)
UV_LIBS=$(pkg-config --libs libuv 2>/dev/null || echo -luv)
# src/core/tls.cpp: OpenSSL's libssl (libcrypto is in LIBS already).
SSL_LIBS=$(pkg-config --libs libssl 2>/dev/null || echo -lssl)
core_objs=""
core_srcs=""
if wants connection || wants tls || wants messaging || wants bus; then
  core_srcs=$(echo "$ROOT"/src/core/*.cpp "$ROOT"/src/app/echo.cpp "$ROOT"/src/app/broadcast.cpp)
fi
for src in $core_srcs; do
  # TLS is fuzzed (fuzz_tls): tls.cpp, not its stand-in for builds without TLS.
  [ "$(basename "$src")" = tls_disabled.cpp ] && continue
  o="$OBJ/$(basename "$(dirname "$src")")_$(basename "$src" .cpp).o"
  # shellcheck disable=SC2086
  $CXX $CXXFLAGS $PROJ_CXX $UV_CFLAGS -c "$src" -o "$o"
  core_objs="$core_objs $o"
done

# The messaging envelope (src/msg/envelope.cpp) and simdjson, for fuzz_envelope only.
SIMDJSON_CFLAGS=$(pkg-config --cflags simdjson 2>/dev/null || true)
SIMDJSON_LIBS=$(pkg-config --libs simdjson 2>/dev/null || echo -lsimdjson)
if wants envelope || wants messaging || wants bus; then
  # shellcheck disable=SC2086
  $CXX $CXXFLAGS $PROJ_CXX $SIMDJSON_CFLAGS -c "$ROOT/src/msg/envelope.cpp" -o "$OBJ/msg_envelope.o"
fi
# The whole messaging layer (src/msg/*.cpp), for fuzz_messaging: with the core and simdjson,
# and the libraries its sources include (auth: libjwt; configuration: inih; the Redis
# broker: hiredis).
msg_objs="$OBJ/msg_envelope.o"
MSG_CFLAGS=""
MSG_LIBS=""
if wants messaging || wants bus; then
  # header, pkg-config module, the flag without pkg-config
  for dep in "jwt.h libjwt -ljwt" "ini.h inih -linih" "crypt.h libcrypt -lcrypt" "hiredis/async.h hiredis -lhiredis"; do
    # shellcheck disable=SC2086 # split the triple
    set -- $dep
    hdr=$(printf '%s' "$1" | sed 's/\./\\./g')
    if grep -Eqs "#[[:space:]]*include[[:space:]]*[<\"]$hdr[>\"]" "$ROOT"/src/msg/*.cpp "$ROOT"/src/msg/*.h; then
      MSG_CFLAGS="$MSG_CFLAGS $(pkg-config --cflags "$2" 2>/dev/null || true)"
      MSG_LIBS="$MSG_LIBS $(pkg-config --libs "$2" 2>/dev/null || echo "$3")"
    fi
  done
  for src in "$ROOT"/src/msg/*.cpp; do
    [ "$(basename "$src")" = envelope.cpp ] && continue
    o="$OBJ/msg_$(basename "$src" .cpp).o"
    # shellcheck disable=SC2086
    $CXX $CXXFLAGS $PROJ_CXX $UV_CFLAGS $SIMDJSON_CFLAGS $MSG_CFLAGS -c "$src" -o "$o"
    msg_objs="$msg_objs $o"
  done
fi

for h in $harnesses; do
  name=$(basename "$h" .cpp)         # fuzz_frame
  short=${name#fuzz_}                # frame
  extra=""
  extra_libs=""
  if [ "$short" = connection ] || [ "$short" = tls ]; then
    extra=$core_objs
    extra_libs="$UV_LIBS $SSL_LIBS"
  elif [ "$short" = messaging ] || [ "$short" = bus ]; then
    extra="$core_objs $msg_objs"
    extra_libs="$UV_LIBS $SSL_LIBS $SIMDJSON_LIBS $MSG_LIBS"
  elif [ "$short" = envelope ]; then
    extra="$OBJ/msg_envelope.o"
    extra_libs=$SIMDJSON_LIBS
  fi
  # shellcheck disable=SC2086
  $CXX $CXXFLAGS $PROJ_CXX $UV_CFLAGS $SIMDJSON_CFLAGS -c "$h" -o "$OBJ/$name.o"
  # shellcheck disable=SC2086
  $CXX $CXXFLAGS "$OBJ/$name.o" $extra $objs $LIB_FUZZING_ENGINE $extra_libs $LIBS -o "$OUT/$name"
  dict="$ROOT/fuzz/dict/$short.dict"
  [ -e "$dict" ] || dict="$ROOT/fuzz/dict/ws.dict"
  cp "$dict" "$OUT/$name.dict"
  if command -v zip >/dev/null 2>&1 && [ -d "$ROOT/fuzz/corpus/$short" ]; then
    rm -f "$OUT/${name}_seed_corpus.zip"
    (cd "$ROOT/fuzz/corpus/$short" && zip -q -j "$OUT/${name}_seed_corpus.zip" ./* -x 'README*')
  fi
  echo "built $OUT/$name"
done
