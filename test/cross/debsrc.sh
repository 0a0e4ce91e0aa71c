# test/cross/debsrc.sh: sourced by the scripts that build a library from Debian's source
# package for a static daemon (musl.sh for the musl build, libjwt.sh for the TLS build).
# The caller sets OUT, its folder under build/: tarballs are kept and unpacked in
# SRC=$OUT/src, archives, headers and pkg-config files go to PREFIX=$OUT/prefix. Before
# calling pc it sets PC_DESC (the Description of its .pc files), before archive LIB_CC
# and LIB_CFLAGS (JOBS, the compilers run at once, defaults to 2: the machine is shared).
# shellcheck shell=bash

PREFIX=$OUT/prefix
SRC=$OUT/src
JOBS=${JOBS:-2}
mkdir -p "$PREFIX/lib/pkgconfig" "$PREFIX/include" "$SRC"

POOL=http://deb.debian.org/debian/pool/main
SNAPSHOT=https://snapshot.debian.org/archive/debian/20240601T000000Z/pool/main

# fetch FILE SHA256 POOLDIR: FILE from Debian's pool (snapshot.debian.org when the pool has
# moved on), kept in SRC and checked every time.
fetch() {
    local f=$1 sum=$2 dir=$3
    if ! echo "$sum  $SRC/$f" | sha256sum -c --status 2>/dev/null; then
        for u in "$POOL/$dir/$f" "$SNAPSHOT/$dir/$f"; do
            echo "fetching $u"
            curl -fsSL --retry 3 -o "$SRC/$f.part" "$u" && mv "$SRC/$f.part" "$SRC/$f" && break
        done
    fi
    echo "$sum  $SRC/$f" | sha256sum -c --quiet
}

# unpack NAME ORIG DEBIAN: a fresh tree in SRC/NAME with Debian's patches
# (debian/patches/series, in order) applied when DEBIAN is given.
unpack() {
    local name=$1 orig=$2 deb=${3:-}
    rm -rf "${SRC:?}/$name" "$SRC/$name.tmp"
    mkdir -p "$SRC/$name.tmp"
    tar -xf "$SRC/$orig" -C "$SRC/$name.tmp"
    mv "$SRC/$name.tmp"/* "$SRC/$name"
    rmdir "$SRC/$name.tmp"
    if [ -n "$deb" ]; then
        tar -xf "$SRC/$deb" -C "$SRC/$name"
        if [ -f "$SRC/$name/debian/patches/series" ]; then
            grep -v '^[[:space:]]*\(#\|$\)' "$SRC/$name/debian/patches/series" | while read -r p _; do
                patch -s -p1 -d "$SRC/$name" <"$SRC/$name/debian/patches/$p"
            done
        fi
    fi
}

# pc NAME VERSION LIBS [CFLAGS [REQUIRES_PRIVATE]]: a pkg-config file for an archive in
# PREFIX.
pc() {
    cat >"$PREFIX/lib/pkgconfig/$1.pc" <<PC
prefix=$PREFIX
libdir=\${prefix}/lib
Name: $1
Description: $1 $PC_DESC
Version: $2
Libs: -L\${libdir} $3
Cflags: -I\${prefix}/include ${4:-}
PC
    [ -z "${5:-}" ] || echo "Requires.private: $5" >>"$PREFIX/lib/pkgconfig/$1.pc"
}

# archive NAME OBJDIR SRCDIR FLAGS FILES...: compiles FILES (relative to SRCDIR) with
# LIB_CC and LIB_CFLAGS into PREFIX/lib/libNAME.a, for the libraries whose build system
# we do not need; JOBS files at a time.
archive() {
    local name=$1 obj=$2 dir=$3 flags=$4
    shift 4
    rm -rf "$obj"
    mkdir -p "$obj"
    local f
    for f in "$@"; do
        # shellcheck disable=SC2086
        "$LIB_CC" $LIB_CFLAGS $flags -c "$dir/$f" -o "$obj/$(echo "$f" | tr / _).o" &
        # JOBS at a time: the machine is shared
        [ "$(jobs -rp | wc -l)" -lt "$JOBS" ] || wait -n
    done
    wait
    rm -f "$PREFIX/lib/lib$name.a"
    gcc-ar rcs "$PREFIX/lib/lib$name.a" "$obj"/*.o
}
