#!/usr/bin/env bash
# bench/run-edge-size.sh: the size of the static wsreactor (make static) under each of
# the link-time savings, one build directory per variant under build/size/, so that
# docs/edge.md can say which of -Os, --gc-sections, LTO and simdjson's kernels pay, on
# glibc (without and with TLS) and on musl (without TLS). Prints, per variant, the
# stripped size in bytes and KiB.
#
# usage: bench/run-edge-size.sh   (after `make static`, which fetches simdjson's source and
#                                  builds the musl libraries)
set -euo pipefail
cd "$(dirname "$0")/.."
SIMDJSON_DIR=$(ls -d build/simdjson-*/singleheader 2>/dev/null | head -1)
[ -n "$SIMDJSON_DIR" ] || { echo "$0: run make static first (it fetches simdjson's source)" >&2; exit 2; }
MUSL_NATIVE=build/musl/native.ini
[ -f "$MUSL_NATIVE" ] || { echo "$0: run make static first (it builds the musl libraries)" >&2; exit 2; }

# name: meson options. The static option always asks for --gc-sections; the "no gc"
# variants undo it with a later --no-gc-sections. "k2" keeps simdjson's westmere and
# fallback kernels (what make static does), "k1" the fallback alone; the others all four.
# Each variant: "libc tls-list name: options".
variants=(
    "glibc disabled,enabled O2:-Doptimization=2 -Db_lto=false -Dcpp_link_args=-Wl,--no-gc-sections -Dc_link_args=-Wl,--no-gc-sections"
    "glibc disabled,enabled Os:-Doptimization=s -Db_lto=false -Dcpp_link_args=-Wl,--no-gc-sections -Dc_link_args=-Wl,--no-gc-sections"
    "glibc disabled,enabled Os+gc:-Doptimization=s -Db_lto=false"
    "glibc disabled,enabled Os+gc+lto:-Doptimization=s -Db_lto=true"
    "glibc disabled O2+gc+lto:-Doptimization=2 -Db_lto=true"
    "glibc disabled,enabled Os+gc+k2:-Doptimization=s -Db_lto=false -Dsimdjson_kernels=westmere,fallback"
    "musl disabled Os+gc:-Doptimization=s -Db_lto=false"
    "musl disabled Os+gc+lto+k2:-Doptimization=s -Db_lto=true -Dsimdjson_kernels=westmere,fallback"
    "musl disabled Os+gc+k2:-Doptimization=s -Db_lto=false -Dsimdjson_kernels=westmere,fallback"
    "musl disabled Os+gc+k2h:-Doptimization=s -Db_lto=false -Dsimdjson_kernels=haswell,fallback"
    "musl disabled Os+gc+k1:-Doptimization=s -Db_lto=false -Dsimdjson_kernels=fallback"
)
mkdir -p build/size
printf '%-6s %-14s %-6s %10s %8s\n' libc variant tls bytes KiB
for v in "${variants[@]}"; do
    head=${v%%:*} opts=${v#*:}
    read -r libc tlss name <<<"$head"
    native=()
    [ "$libc" = musl ] && native=(--native-file "$MUSL_NATIVE")
    for tls in ${tlss//,/ }; do
        d=build/size/$libc-$name-$tls
        if [ ! -f "$d/build.ninja" ]; then
            # shellcheck disable=SC2086
            meson setup "$d" "${native[@]}" --buildtype=release -Dstatic=true -Dtests=false \
                -Ddefault_library=static -Db_pie=false -Dsimdjson_src="$SIMDJSON_DIR" -Dtls=$tls $opts \
                >"$d.log" 2>&1 || { tail -20 "$d.log"; exit 1; }
        fi
        nice -n 10 ninja -C "$d" -j2 wsreactor >>"$d.log" 2>&1 || { tail -20 "$d.log"; exit 1; }
        strip -o "$d/wsreactor.stripped" "$d/wsreactor"
        n=$(stat -c %s "$d/wsreactor.stripped")
        printf '%-6s %-14s %-6s %10d %8d\n' "$libc" "$name" "${tls%abled}" "$n" $((n / 1024))
    done
done
