#!/usr/bin/env bash
# bench/json/run.sh: the JSON library measurement (docs/benchmarks.md, "JSON library").
# Builds bench/json's programs in a meson build dir of this tree, then, in one invocation:
#   1. check    every implementation's output for the sample envelopes is valid JSON
#               with the same value (jansson compares them)
#   2. hostile  accept/reject of hostile inputs, each in a child process (CRASH shows)
#   3. time     ns per round (parse + validate + build), implementations interleaved and
#               rotated, median of RUNS runs of ITERS rounds each, pinned to one CPU
#   4. allocs   heap calls and bytes per round (malloc interposed, jsonbench-count)
#   5. instr    instructions per round: callgrind totals of 12000 minus 2000 rounds
#   6. size     stripped minimal program per library minus a baseline without JSON
#   7. flags    each implementation compiled by g++ and clang++ with -std=c++20
#               -fno-exceptions -fno-rtti -Wall -Wextra -Werror, with the library's headers
#               as system headers (as in the build) and as user headers (-I copy)
# and prints a Markdown table of the medians.
#
# usage: bench/json/run.sh [BUILD_DIR]      (default build/release; set up if missing)
# env: RUNS (default 7), ITERS (default 200000), CPU (default 1), VALGRIND=0 skips step 5,
#      VERBOSE=1 prints the check's outputs
# Needs: apt-get install rapidjson-dev libsimdjson-dev libjansson-dev valgrind clang
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:-build/release}
case $build in /*) ;; *) build=$root/$build ;; esac
RUNS=${RUNS:-7}
ITERS=${ITERS:-200000}
CPU=${CPU:-1}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [ ! -f "$build/build.ninja" ]; then
    meson setup "$build" "$root" --buildtype=release -Dtests=false >"$tmp/setup.log" 2>&1 ||
        { cat "$tmp/setup.log"; exit 1; }
fi
targets="jsonbench jsonbench-count jsonsize-none jsonsize-rj jsonsize-sj jsonsize-js"
ninja -C "$build" $(for t in $targets; do echo bench/json/$t; done) >"$tmp/ninja.log" 2>&1 ||
    { cat "$tmp/ninja.log"; echo "build failed (are rapidjson-dev libsimdjson-dev libjansson-dev installed?)"; exit 1; }
B=$build/bench/json
pin=""
command -v taskset >/dev/null && taskset -c "$CPU" true 2>/dev/null && pin="taskset -c $CPU"
impls=$("$B/jsonbench" list | cut -f1)

echo "# $(date -u +%FT%TZ), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), $(g++ --version | head -1)"
echo "# rapidjson-dev $(dpkg-query -W -f='${Version}' rapidjson-dev 2>/dev/null), libsimdjson-dev $(dpkg-query -W -f='${Version}' libsimdjson-dev 2>/dev/null), libjansson-dev $(dpkg-query -W -f='${Version}' libjansson-dev 2>/dev/null)"
echo
"$B/jsonbench" list | sed 's/^/#   /'
echo

# 1. check
if [ "${VERBOSE:-0}" = 1 ]; then "$B/jsonbench" check; else "$B/jsonbench" check >"$tmp/check.txt"; fi
if [ $? -ne 0 ]; then cat "$tmp/check.txt" 2>/dev/null; echo "check FAILED"; exit 1; fi
grep -q 'DIFFERENT VALUE' "$tmp/check.txt" 2>/dev/null && { cat "$tmp/check.txt"; echo "check FAILED"; exit 1; }
echo "check: every output is valid JSON with the same value"
echo

# 2. hostile
"$B/jsonbench" hostile | tee "$tmp/hostile.txt"
echo "(* = not what the server needs; either = a policy choice RFC 8259 allows)"
echo

# 3. time
$pin "$B/jsonbench" time "$RUNS" "$ITERS" >"$tmp/time.txt"

# 4. allocs
for i in $impls; do "$B/jsonbench-count" allocs "$i" 20000; done >"$tmp/allocs.txt"

# 5. instructions
: >"$tmp/instr.txt"
if [ "${VALGRIND:-1}" != 0 ] && command -v valgrind >/dev/null; then
    ir() { valgrind --tool=callgrind --callgrind-out-file=/dev/null "$B/jsonbench" rounds "$1" "$2" 2>&1 |
        awk '/Collected/ {print $4}'; }
    for i in $impls; do
        a=$(ir "$i" 2000); b=$(ir "$i" 12000)
        echo "instr $i $(( (b - a) / 10000 ))" >>"$tmp/instr.txt"
    done
fi

# 6. size
for l in none rj sj js; do
    strip -o "$tmp/size-$l" "$B/jsonsize-$l"
    echo "size $l $(stat -c %s "$tmp/size-$l")"
done >"$tmp/size.txt"
simd_so=$(ldd "$B/jsonsize-sj" | awk '/libsimdjson/ {print $3}')

# 7. flags
mkdir -p "$tmp/inc"
cp -r /usr/include/rapidjson /usr/include/simdjson.h /usr/include/jansson.h /usr/include/jansson_config.h "$tmp/inc/" 2>/dev/null
for cxx in g++ clang++; do
    command -v $cxx >/dev/null || continue
    for f in rj sj js; do
        for mode in sys user; do
            inc=""; [ $mode = user ] && inc="-I$tmp/inc"
            if $cxx -std=c++20 -O2 -DNDEBUG -fno-exceptions -fno-rtti -Wall -Wextra -Werror $inc \
                -c "$here/$f.cpp" -o /dev/null 2>"$tmp/err"; then r=ok
            else r=$(grep -o '\[-W[a-zA-Z0-9=,-]*\]' "$tmp/err" | sort -u | tr '\n' ' '); r="FAIL ${r:-?}"; fi
            echo "flags $f $cxx $mode $r"
        done
    done
done >"$tmp/flags.txt"

lib_of() { case $1 in rj-*) echo rj ;; sj-*) echo sj ;; js*) echo js ;; esac; }
echo "| implementation | ns/round (median of $RUNS) | min-max | instr/round | heap calls/round | heap bytes/round | hostile cases wrong | code added (stripped) |"
echo "|---|---|---|---|---|---|---|---|"
base=$(awk '$2=="none"{print $3}' "$tmp/size.txt")
col=0
for i in $impls; do
    col=$((col + 1))
    t=$(awk -v n="$i" '$2==n {printf "%.0f | %.0f-%.0f", $4, $6, $8}' "$tmp/time.txt")
    ins=$(awk -v n="$i" '$2==n {print $3}' "$tmp/instr.txt"); ins=${ins:-n/a}
    al=$(awk -v n="$i" '$2==n {printf "%s | %s", $4, $6}' "$tmp/allocs.txt")
    wrong=$(awk -v c="$col" '/^wrong/ {print $(c + 2)}' "$tmp/hostile.txt")
    l=$(lib_of "$i")
    sz=$(awk -v l="$l" -v b="$base" '$2==l {printf "%+.1f KiB", ($3 - b) / 1024}' "$tmp/size.txt")
    [ "$l" = sj ] && [ -n "$simd_so" ] && sz="$sz + $(( $(stat -L -c %s "$simd_so") / 1024 )) KiB libsimdjson.so"
    echo "| $i | $t | $ins | $al | $wrong | $sz |"
done
echo
echo "Builds with -std=c++20 -fno-exceptions -fno-rtti -Wall -Wextra -Werror (sys = headers from"
echo "/usr/include as in the build; user = the same headers as -I, their own warnings shown):"
echo
echo "| file | compiler | sys | user |"
echo "|---|---|---|---|"
awk '{k=$2" | "$3; v=$5; for (i=6;i<=NF;i++) v=v" "$i; if ($4=="sys") s[k]=v; else u[k]=v; if (!(k in o)) {o[k]=++n; key[n]=k}}
     END {for (i=1;i<=n;i++) print "| " key[i] " | " s[key[i]] " | " u[key[i]] " |"}' "$tmp/flags.txt"
