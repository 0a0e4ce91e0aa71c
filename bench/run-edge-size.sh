#!/usr/bin/env bash
# bench/run-edge-size.sh: the size of the static wsreactor (make static) under each of
# the link-time savings, one build directory per variant under build/size/, so that
# docs/edge.md can say which of -Os, --gc-sections and LTO pay. Prints, per variant and
# for builds without and with TLS, the stripped size in bytes and KiB.
#
# usage: bench/run-edge-size.sh   (after `make static`, which fetches simdjson's source)
set -euo pipefail
cd "$(dirname "$0")/.."
SIMDJSON_DIR=$(ls -d build/simdjson-*/singleheader 2>/dev/null | head -1)
[ -n "$SIMDJSON_DIR" ] || { echo "$0: run make static first (it fetches simdjson's source)" >&2; exit 2; }

# name: meson options. The static option always asks for --gc-sections; the "no gc"
# variants undo it with a later --no-gc-sections.
variants=(
    "O2:-Doptimization=2 -Db_lto=false -Dcpp_link_args=-Wl,--no-gc-sections -Dc_link_args=-Wl,--no-gc-sections"
    "Os:-Doptimization=s -Db_lto=false -Dcpp_link_args=-Wl,--no-gc-sections -Dc_link_args=-Wl,--no-gc-sections"
    "Os+gc:-Doptimization=s -Db_lto=false"
    "Os+gc+lto:-Doptimization=s -Db_lto=true"
    "O2+gc+lto:-Doptimization=2 -Db_lto=true"
)
mkdir -p build/size
printf '%-12s %-6s %10s %8s\n' variant tls bytes KiB
for v in "${variants[@]}"; do
    name=${v%%:*} opts=${v#*:}
    for tls in disabled enabled; do
        d=build/size/$name-$tls
        if [ ! -f "$d/build.ninja" ]; then
            # shellcheck disable=SC2086
            meson setup "$d" --buildtype=release -Dstatic=true -Dtests=false -Ddefault_library=static \
                -Db_pie=false -Dsimdjson_src="$SIMDJSON_DIR" -Dtls=$tls $opts >"$d.log" 2>&1 ||
                { tail -20 "$d.log"; exit 1; }
        fi
        ninja -C "$d" -j2 wsreactor >>"$d.log" 2>&1 || { tail -20 "$d.log"; exit 1; }
        strip -o "$d/wsreactor.stripped" "$d/wsreactor"
        n=$(stat -c %s "$d/wsreactor.stripped")
        printf '%-12s %-6s %10d %8d\n' "$name" "${tls%abled}" "$n" $((n / 1024))
    done
done
