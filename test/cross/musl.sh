#!/usr/bin/env bash
# test/cross/musl.sh: the toolchain and the libraries of the musl build (make static,
# docs/edge.md). Debian 12 has musl's C library (musl-dev) but none of our dependencies
# built against it, so this fetches the source packages of the versions Debian 12 ships
# (libuv1, zlib, nettle, hiredis, libxcrypt; inih from the pool's nearest version, see
# below), checks each against the SHA-256 its .dsc publishes, applies Debian's patches
# (libuv1 and hiredis carry CVE fixes there) and builds static archives with musl-gcc into
# build/musl/prefix, with a pkg-config file each, the names meson asks for.
#
# It also writes build/musl/native.ini, the meson native file of the build: musl-gcc for
# C, g++ on musl's headers and crt for C++ (bin/musl-c++ below says how), and a
# pkg-config that sees only build/musl/prefix, so that no glibc library can slip in.
#
# usage: test/cross/musl.sh   (re-running rebuilds only what is missing)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
OUT=$ROOT/build/musl
# fetch, unpack, archive and pc, and PREFIX and SRC under OUT (test/cross/debsrc.sh),
# shared with libjwt.sh.
# shellcheck source=test/cross/debsrc.sh
. "$ROOT/test/cross/debsrc.sh"
SPECS=/usr/lib/x86_64-linux-musl/musl-gcc.specs
# The same savings as the daemon's own static build (meson.build, -Dstatic=true).
CFLAGS_MUSL="-Os -ffunction-sections -fdata-sections -fno-asynchronous-unwind-tables"

[ -f "$SPECS" ] || { echo "$0: musl-gcc's specs are missing (apt-get install musl-tools musl-dev)" >&2; exit 2; }
mkdir -p "$OUT/bin"

# --- the toolchain ----------------------------------------------------------------------
# C: musl-gcc, Debian's wrapper (gcc with musl's specs: its headers, crt files and libc.a).
# C++: Debian has no libstdc++ built for musl, but our code and simdjson use little of it:
# templates that live in headers, and operator new/delete from libsupc++.a, which needs only
# malloc and abort from the C library. So g++ runs with the same specs, libstdc++'s headers
# searched before musl's (their <cstdlib> wraps musl's <stdlib.h> with #include_next).
# libstdc++'s <bits/os_defines.h> was configured for glibc and tests glibc's version with
# __GLIBC_PREREQ, which musl does not define: it answers "no" (0) here, the truth on musl;
# two more of its headers name glibc's locale types, which test/cross/musl-libstdcxx.h gives.
# Both link statically always: there is no musl libstdc++.so, and no musl loader on the
# targets this is for (meson's first check links a program, before any option applies).
# Linux's own headers (<linux/*.h>, <asm/*.h>; libxcrypt's yescrypt includes <linux/mman.h>)
# are not part of musl: they come from Debian's linux-libc-dev through a folder of links,
# searched last, so that none of glibc's headers beside them is ever seen.
mkdir -p "$OUT/kernel-include"
ln -sfn /usr/include/linux "$OUT/kernel-include/linux"
ln -sfn /usr/include/asm-generic "$OUT/kernel-include/asm-generic"
ln -sfn "/usr/include/$(gcc -dumpmachine)/asm" "$OUT/kernel-include/asm"
# put FILE [MODE]: stdin into FILE, leaving it (and its time) alone when unchanged, so that
# a second run does not make meson reconfigure.
put() {
    cat >"$1.new"
    [ -z "${2:-}" ] || chmod "$2" "$1.new"
    if cmp -s "$1.new" "$1"; then rm -f "$1.new"; else mv "$1.new" "$1"; fi
}
GXX_VER=$(g++ -dumpversion)
GXX_TRIPLET=$(g++ -dumpmachine)
put "$OUT/bin/musl-cc" 755 <<EOF
#!/bin/sh
exec gcc -specs $SPECS -static -idirafter $OUT/kernel-include "\$@"
EOF
put "$OUT/bin/musl-c++" 755 <<EOF
#!/bin/sh
exec g++ -specs $SPECS -static -isystem /usr/include/c++/$GXX_VER -isystem /usr/include/$GXX_TRIPLET/c++/$GXX_VER \\
  -isystem /usr/include/c++/$GXX_VER/backward '-D__GLIBC_PREREQ(maj,min)=0' \\
  -include $ROOT/test/cross/musl-libstdcxx.h -idirafter $OUT/kernel-include "\$@"
EOF
put "$OUT/bin/pkg-config" 755 <<EOF
#!/bin/sh
PKG_CONFIG_LIBDIR=$PREFIX/lib/pkgconfig exec pkg-config "\$@"
EOF
put "$OUT/native.ini" <<EOF
[binaries]
c = '$OUT/bin/musl-cc'
cpp = '$OUT/bin/musl-c++'
pkgconfig = '$OUT/bin/pkg-config'
ar = 'gcc-ar'
strip = 'strip'
EOF

# --- sources ----------------------------------------------------------------------------
# For pc and archive (test/cross/debsrc.sh).
PC_DESC="built against musl for wsreactor's static daemon"
LIB_CC=$OUT/bin/musl-cc
LIB_CFLAGS=$CFLAGS_MUSL

# zlib 1.2.13 (zlib_1.2.13.dfsg-1.dsc)
if [ ! -f "$PREFIX/lib/pkgconfig/zlib.pc" ]; then
    fetch zlib_1.2.13.dfsg.orig.tar.bz2 71feb7947e3c00ef125f83b79a4e529bde31171e5babe48b391f06758d1ab0a1 z/zlib
    fetch zlib_1.2.13.dfsg-1.debian.tar.xz f66cf3d4f2d7defcd4d1fd1fb0a11ee39f1e01b42ec7d059c9dc5c1695133c44 z/zlib
    unpack zlib zlib_1.2.13.dfsg.orig.tar.bz2 zlib_1.2.13.dfsg-1.debian.tar.xz
    # The gz* file functions are left out: the daemon compresses buffers, never files.
    archive z "$SRC/zlib.o" "$SRC/zlib" "-DHAVE_HIDDEN -DHAVE_UNISTD_H -DHAVE_STDARG_H" \
        adler32.c crc32.c deflate.c infback.c inffast.c inflate.c inftrees.c trees.c zutil.c \
        compress.c uncompr.c
    cp "$SRC/zlib/zlib.h" "$SRC/zlib/zconf.h" "$PREFIX/include/"
    pc zlib 1.2.13 -lz
fi

# libuv 1.44.2 (libuv1_1.44.2-1+deb12u1.dsc): the files its CMakeLists.txt builds on Linux.
if [ ! -f "$PREFIX/lib/pkgconfig/libuv-static.pc" ]; then
    fetch libuv1_1.44.2.orig.tar.gz d79b4b06ef04be85fb890bf39d55942cc64c2e15fd14eaa32dae5dce94485484 libu/libuv1
    fetch libuv1_1.44.2-1+deb12u1.debian.tar.xz 14fc605e7d1520137416fd8c097b58a191be9b07bdbb406f7b39c7894b7d66a5 libu/libuv1
    unpack libuv libuv1_1.44.2.orig.tar.gz libuv1_1.44.2-1+deb12u1.debian.tar.xz
    archive uv_a "$SRC/libuv.o" "$SRC/libuv" \
        "-I$SRC/libuv/include -I$SRC/libuv/src -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -D_LARGEFILE_SOURCE" \
        src/fs-poll.c src/idna.c src/inet.c src/random.c src/strscpy.c src/strtok.c src/threadpool.c \
        src/timer.c src/uv-common.c src/uv-data-getter-setters.c src/version.c \
        src/unix/async.c src/unix/core.c src/unix/dl.c src/unix/fs.c src/unix/getaddrinfo.c \
        src/unix/getnameinfo.c src/unix/loop-watcher.c src/unix/loop.c src/unix/pipe.c src/unix/poll.c \
        src/unix/process.c src/unix/random-devurandom.c src/unix/signal.c src/unix/stream.c \
        src/unix/tcp.c src/unix/thread.c src/unix/tty.c src/unix/udp.c src/unix/proctitle.c \
        src/unix/linux-core.c src/unix/linux-inotify.c src/unix/linux-syscalls.c \
        src/unix/procfs-exepath.c src/unix/random-getrandom.c src/unix/random-sysctl-linux.c src/unix/epoll.c
    cp -r "$SRC/libuv/include/." "$PREFIX/include/"
    pc libuv-static 1.44.2 -luv_a
fi

# nettle 3.8.1 (nettle_3.8.1-2.dsc): libnettle alone; the public-key half (hogweed) would
# need GMP, and only SHA-1, base64 and memeql_sec are used. No "fat" build: its run-time
# dispatch pulls the AES tables in (docs/edge.md), and SHA-1 of a handshake key is short.
if [ ! -f "$PREFIX/lib/pkgconfig/nettle.pc" ]; then
    fetch nettle_3.8.1.orig.tar.gz 364f3e2b77cd7dcde83fd7c45219c834e54b0c75e428b6f894a23d12dd41cbfe n/nettle
    fetch nettle_3.8.1-2.debian.tar.xz 8f1eae9c6afffe545de294140f33d53352261478268dafee5ef72d840e1b3d7b n/nettle
    unpack nettle nettle_3.8.1.orig.tar.gz nettle_3.8.1-2.debian.tar.xz
    (cd "$SRC/nettle" &&
        CC="$OUT/bin/musl-cc" CFLAGS="$CFLAGS_MUSL" ./configure -q --prefix="$PREFIX" --disable-shared \
            --disable-public-key --disable-openssl --disable-documentation --disable-fat >configure.out &&
        nice -n 10 make -s -j"$JOBS" libnettle.a >make.out &&
        make -s install-headers >/dev/null)
    cp "$SRC/nettle/libnettle.a" "$PREFIX/lib/"
    pc nettle 3.8.1 -lnettle
fi

# hiredis 0.14.1 (hiredis_0.14.1-3.dsc): its library files; the libuv adapter is a header.
# gcc warns that createArrayObject does not match read.h: Debian's CVE-2021-32765 patch
# widens the count to size_t in hiredis.c only. Debian's own libhiredis is built so too;
# the count is checked against its bounds before the call.
if [ ! -f "$PREFIX/lib/pkgconfig/hiredis.pc" ]; then
    fetch hiredis_0.14.1.orig.tar.gz 2663b2aed9fd430507e30fc5e63274ee40cdd1a296026e22eafd7d99b01c8913 h/hiredis
    fetch hiredis_0.14.1-3.debian.tar.xz be4e12bce6df66cf42c98386d18b7df4841a499d85a1a9cb909cc9104184260d h/hiredis
    unpack hiredis hiredis_0.14.1.orig.tar.gz hiredis_0.14.1-3.debian.tar.xz
    archive hiredis "$SRC/hiredis.o" "$SRC/hiredis" "" alloc.c net.c hiredis.c sds.c async.c read.c
    mkdir -p "$PREFIX/include/hiredis/adapters"
    cp "$SRC/hiredis"/{alloc.h,hiredis.h,async.h,read.h,sds.h} "$PREFIX/include/hiredis/"
    cp "$SRC/hiredis/adapters/libuv.h" "$PREFIX/include/hiredis/adapters/"
    pc hiredis 0.14.1 -lhiredis
fi

# inih: Debian 12 has version 55, but the pool no longer holds its source, so this takes
# version 59 (libinih_59-1.dsc), whose options default as 55's do. Debian's patches are not
# applied: one of them changes the handler's signature (INI_HANDLER_LINENO forced on),
# which Debian 12's headers, and so src/app/config.cpp, do not have.
if [ ! -f "$PREFIX/lib/pkgconfig/inih.pc" ]; then
    fetch libinih_59.orig.tar.gz 062279922805f5e9a369551a08d5ddb506140fe50774183ffdbb7c22bb97e3f4 libi/libinih
    unpack inih libinih_59.orig.tar.gz
    archive inih "$SRC/inih.o" "$SRC/inih" "" ini.c
    cp "$SRC/inih/ini.h" "$PREFIX/include/"
    pc inih 59 -linih
fi

# libxcrypt 4.4.33 (libxcrypt_4.4.33-2.dsc) with the hashes src/msg/auth.cpp accepts: the
# methods crypt_checksalt calls neither legacy nor disabled. yescrypt (Debian's passwd),
# bcrypt (htpasswd -B makes $2y$) and sha512-crypt; sha256-crypt, MD5 and DES are legacy to
# it, refused at start by every build, so they are not built. Methods left out (scrypt,
# gost-yescrypt) are refused at start too. Its tarball is the git tree, so autoreconf makes
# the configure script. The .pc file names the methods, so that a change rebuilds it.
XCRYPT_HASHES=yescrypt,bcrypt,bcrypt_y,bcrypt_a,sha512crypt
if ! grep -qx "hashes=$XCRYPT_HASHES" "$PREFIX/lib/pkgconfig/libcrypt.pc" 2>/dev/null; then
    fetch libxcrypt_4.4.33.orig.tar.xz 5e2da5cb5f263e9ac4c4b3f49c75e3b8523889210f45c60bb7e97b229c75a10b libx/libxcrypt
    fetch libxcrypt_4.4.33-2.debian.tar.xz 23194c9b0642533fb27fe8c33391d3fa838a55e17e5a88a419ed31548b0721c9 libx/libxcrypt
    unpack libxcrypt libxcrypt_4.4.33.orig.tar.xz libxcrypt_4.4.33-2.debian.tar.xz
    (cd "$SRC/libxcrypt" &&
        autoreconf -fi >autoreconf.out 2>&1 &&
        CC="$OUT/bin/musl-cc" CFLAGS="$CFLAGS_MUSL" ./configure -q --prefix="$PREFIX" --disable-shared \
            --enable-static --enable-hashes="$XCRYPT_HASHES" \
            --enable-obsolete-api=no --disable-failure-tokens --disable-werror >configure.out &&
        nice -n 10 make -s -j"$JOBS" libcrypt.la >make.out 2>&1)
    cp "$SRC/libxcrypt/.libs/libcrypt.a" "$PREFIX/lib/"
    cp "$SRC/libxcrypt/crypt.h" "$PREFIX/include/"
    pc libcrypt 4.4.33 -lcrypt
    echo "hashes=$XCRYPT_HASHES" >>"$PREFIX/lib/pkgconfig/libcrypt.pc"
fi

echo "musl toolchain and libraries: $OUT (native file $OUT/native.ini)"
