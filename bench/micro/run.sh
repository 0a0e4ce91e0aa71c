#!/usr/bin/env bash
# bench/micro/run.sh: builds and runs the protocol-layer microbenchmarks (Google
# Benchmark) and prints a compact table: each benchmark's median throughput, its
# spread, and its ratio to the plain reference implementation measured in the same
# run (the figure to quote: these machines are shared and noisy, absolute numbers
# drift, a ratio measured side by side much less).
#
# usage: bench/micro/run.sh [BUILD_DIR] [--benchmark_* flags...]
#        bench/micro/run.sh --table RESULTS.json     (reprint a table from a past run)
#   BUILD_DIR   a configured meson build dir of this tree (default build/release);
#               `make` configures it. The microbench target is built here on demand.
#   flags       passed to the binary, e.g. --benchmark_filter=utf8
# env: CPU (default 1) pins the run to that core with taskset; REPS (default 5)
#      repetitions of every benchmark, of which the table shows the median; MIN_TIME
#      (default 0.25) seconds per repetition; INTERLEAVE (default 1) shuffles the
#      repetitions of all benchmarks together, so a burst of load from elsewhere on
#      the machine hits a few repetitions of many benchmarks, not all five of one.
# Results: BUILD_DIR/bench/micro/results.json (Google Benchmark JSON) and micro.log.
set -u

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

table() {
    "$PY" - "$1" <<'PYEOF'
import json, sys

with open(sys.argv[1]) as f:
    doc = json.load(f)
ctx = doc.get("context", {})
med, cv = {}, {}
for b in doc["benchmarks"]:
    if b.get("run_type") != "aggregate":
        continue
    name = b["run_name"]
    if b.get("aggregate_name") == "median":
        med[name] = b
    elif b.get("aggregate_name") == "cv":
        cv[name] = b
if not med:
    sys.exit("no medians in %s (run with --benchmark_repetitions=N, N > 1)" % sys.argv[1])

ITEMS = {"frame": "frames/s", "handshake": "req/s"}  # groups counted in items, not bytes

def si(v, unit):
    for f, p in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if v >= f:
            return "%.3g %s%s" % (v / f, p, unit)
    return "%.3g %s" % (v, unit)

def metric(name, b):
    group = name.split("/", 1)[0]
    if group in ITEMS and "items_per_second" in b:
        return b["items_per_second"], ITEMS[group]
    return b.get("bytes_per_second", 0.0), "B/s"

# The reference of a benchmark "group/case/impl" is the "group/case/ref*" beside it.
refs = {}
for name in med:
    key, impl = name.rsplit("/", 1)
    if impl.startswith("ref"):
        refs[key] = name

print("# %s, %s CPUs at %s MHz, load %s, Google Benchmark %s build; CPU time; "
      "median of %s repetitions; B = bytes, G/M/k decimal" % (
          ctx.get("date", "?"), ctx.get("num_cpus", "?"), ctx.get("mhz_per_cpu", "?"),
          " ".join("%.2f" % x for x in ctx.get("load_avg", [])), ctx.get("library_build_type", "?"),
          next(iter(med.values())).get("repetitions", "?")))
w = max(len(n) for n in med)
print("%-*s  %15s  %5s  %8s  %s" % (w, "benchmark", "median", "cv", "vs ref", "note"))
last_group = None
# Registration order (with interleaving, the file holds them shuffled).
for name in sorted(med, key=lambda n: (med[n].get("family_index", 0), med[n].get("per_family_instance_index", 0))):
    b = med[name]
    key, impl = name.rsplit("/", 1)
    group = name.split("/", 1)[0]
    if last_group is not None and group != last_group:
        print()
    last_group = group
    v, unit = metric(name, b)
    spread = cv.get(name, {}).get("cpu_time")
    spread = "%4.1f%%" % (100 * spread) if spread is not None else "    -"
    if impl.startswith("ref"):
        vs = "ref"
    elif key in refs:
        rv, _ = metric(refs[key], med[refs[key]])
        vs = "%.3gx" % (v / rv) if rv else "-"
    else:
        vs = "-"
    notes = []
    # A variant of a sibling ("frame_parse_1B_slices" of "frame_parse"): its ratio to it.
    base = [o for o in med if o.rsplit("/", 1)[0] == key and impl.startswith(o.rsplit("/", 1)[1] + "_")]
    if base:
        o = max(base, key=len)
        ov, _ = metric(o, med[o])
        if ov:
            notes.append("%.3gx %s" % (v / ov, o.rsplit("/", 1)[1]))
    if unit != "B/s" and "bytes_per_second" in b:
        notes.append(si(b["bytes_per_second"], "B/s"))
    if "ratio" in b:
        notes.append("compression %.2f:1" % b["ratio"])
    if b.get("error_occurred"):
        notes.append("ERROR: " + b.get("error_message", ""))
    print("%-*s  %15s  %5s  %8s  %s" % (w, name, si(v, unit), spread, vs, ", ".join(notes)))
PYEOF
}

if [ "${1:-}" = "--table" ]; then
    [ -f "${2:-}" ] || { echo "usage: $0 --table RESULTS.json" >&2; exit 2; }
    table "$2"
    exit
fi

BUILD=build/release
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
    BUILD=$1
    shift
fi
case $BUILD in /*) ;; *) BUILD=$root/$BUILD ;; esac
CPU=${CPU:-1} REPS=${REPS:-5} MIN_TIME=${MIN_TIME:-0.25} INTERLEAVE=${INTERLEAVE:-1}
TARGET=bench/micro/microbench

if [ ! -f "$BUILD/build.ninja" ]; then
    echo "run.sh: $BUILD is not a configured build dir (make build, or meson setup $BUILD --buildtype=release -Dtests=false)" >&2
    exit 2
fi
has_target() { ninja -C "$BUILD" -t targets all 2>/dev/null | grep -q "^$TARGET:"; }
if ! has_target; then
    # The dir was configured before Google Benchmark was installed: meson keeps the
    # not-found answer until it reconfigures.
    if ! pkg-config --exists benchmark; then
        echo "run.sh: Google Benchmark is not installed (apt-get install libbenchmark-dev)" >&2
        exit 2
    fi
    meson setup --reconfigure "$BUILD" >/dev/null || exit 2
    has_target || { echo "run.sh: meson did not define $TARGET" >&2; exit 2; }
fi
ninja -C "$BUILD" "$TARGET" >/dev/null || { ninja -C "$BUILD" "$TARGET"; exit 2; }

out=$BUILD/bench/micro
PIN=()
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then PIN=(taskset -c "$CPU"); fi
flags=(--benchmark_repetitions="$REPS" --benchmark_report_aggregates_only=true
       --benchmark_min_time="$MIN_TIME" --benchmark_out="$out/results.json" --benchmark_out_format=json)
[ "$INTERLEAVE" = 1 ] && flags+=(--benchmark_enable_random_interleaving=true)
n=$("$BUILD/$TARGET" --benchmark_list_tests "$@" | wc -l)
mins=$(awk -v n="$n" -v r="$REPS" -v t="$MIN_TIME" 'BEGIN { printf "%.0f", n * r * t * 1.6 / 60 + 0.5 }')
echo "running $n microbenchmarks x $REPS repetitions x ${MIN_TIME}s${PIN:+ on CPU $CPU}, about $mins min; log: $out/micro.log" >&2
if ! "${PIN[@]}" "$BUILD/$TARGET" "${flags[@]}" "$@" >"$out/micro.log" 2>&1; then
    tail -5 "$out/micro.log" >&2
    exit 1
fi
table "$out/results.json"
