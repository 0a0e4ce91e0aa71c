#!/bin/sh
# Builds the same harnesses for AFL++ into $OUT (default build/fuzz-afl), through
# fuzz/build.sh: AFL++ 4.x's compilers accept -fsanitize=fuzzer and link AFL's own
# libFuzzer-compatible driver (persistent mode, shared-memory test cases), so the
# harness sources need no change. That includes fuzz_connection, which build.sh links
# with the server core (src/core, src/app/{echo,broadcast}.cpp) and libuv.
#
# The compiler is afl-clang-lto++ when it works here (collision-free edge coverage),
# else afl-clang-fast++; set AFL_CC/AFL_CXX to choose. ASan and UBSan are on, as in the
# libFuzzer build (FUZZ_SANITIZE=none to build without them, e.g. for a second,
# faster afl-fuzz instance). With AFL_CMPLOG=1 it also builds <target>.cmplog binaries
# for afl-fuzz -c (input-to-state comparison solving).
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$ROOT/build/fuzz-afl}

pick() {
  # Prefer LTO mode when the toolchain supports it; probe with a one-line program.
  probe=$(mktemp -d)
  echo 'int main(){return 0;}' >"$probe/t.cpp"
  if AFL_QUIET=1 afl-clang-lto++ "$probe/t.cpp" -o "$probe/t" >/dev/null 2>&1; then
    echo lto
  else
    echo fast
  fi
  rm -rf "$probe"
}

if [ -z "${AFL_CXX:-}" ]; then
  if ! command -v afl-clang-fast++ >/dev/null 2>&1; then
    echo "fuzz/build-afl.sh: afl++ is not installed (apt-get install afl++)" >&2
    exit 2
  fi
  mode=$(pick)
  AFL_CC=afl-clang-$mode
  AFL_CXX=afl-clang-$mode++
fi
AFL_CC=${AFL_CC:-afl-clang-fast}

export AFL_QUIET=1
CC=$AFL_CC CXX=$AFL_CXX LIB_FUZZING_ENGINE=-fsanitize=fuzzer OUT=$OUT \
  CFLAGS="${CFLAGS:--O2 -g}" CXXFLAGS="${CXXFLAGS:--O2 -g}" "$ROOT/fuzz/build.sh"

if [ "${AFL_CMPLOG:-0}" = 1 ]; then
  # A second build with comparison logging; only afl-fuzz -c runs it.
  AFL_LLVM_CMPLOG=1 CC=$AFL_CC CXX=$AFL_CXX LIB_FUZZING_ENGINE=-fsanitize=fuzzer OUT=$OUT/cmplog \
    CFLAGS="${CFLAGS:--O2 -g}" CXXFLAGS="${CXXFLAGS:--O2 -g}" FUZZ_SANITIZE=none "$ROOT/fuzz/build.sh"
  for b in "$OUT"/cmplog/fuzz_*; do
    case "$b" in *.dict|*.zip) continue ;; esac
    [ -x "$b" ] && [ -f "$b" ] && cp "$b" "$OUT/$(basename "$b").cmplog"
  done
fi
echo "AFL++ targets ($AFL_CXX) in $OUT"
