#!/usr/bin/env bash
# test/cross/libjwt.sh: a static libjwt for the static TLS daemon (make static, docs/edge.md).
# Debian ships libjwt as a shared library only, but libssl.a, libcrypto.a and libjansson.a
# (libssl-dev, libjansson-dev). This fetches libjwt's source from Debian's pool (through
# test/cross/debsrc.sh, as musl.sh does), checks it against the SHA-256 its .dsc publishes,
# and compiles the library's two files (jwt.c and its OpenSSL half) with gcc against the
# system's OpenSSL and jansson headers into build/jwt/prefix/lib/libjwt.a, with a libjwt.pc
# whose Requires.private make pkg-config name jansson, libssl and libcrypto after it (the
# static link order).
#
# The version is 1.17.2 (libjwt_1.17.2-1.dsc, Debian 13's), not Debian 12's 1.10.2: the
# pool that make static fetched from served 1.10.2-1+deb12u1's .dsc and patches but not
# the upstream tarball they apply to (libjwt_1.10.2.orig.tar.xz), and snapshot.debian.org
# was out of reach. 1.17.2 has upstream the fix that 1.10.2-1+deb12u1 patches in: HMAC
# signatures compared by jwt_strcmp, in a time that does not depend on where they differ
# (CVE-2024-25189). Debian 13's own patches to it are not applied: its debian tarball was
# not served either. Debian's tarball leaves out upstream's base64.c and base64.h (their
# licence) and its packaging links libb64 instead; test/cross/libjwt-base64.h gives
# jwt.c the two functions it calls, on OpenSSL's base64.
#
# usage: test/cross/libjwt.sh   (re-running rebuilds only what is missing)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
OUT=$ROOT/build/jwt
# fetch, unpack, archive and pc, and PREFIX and SRC under OUT (test/cross/debsrc.sh),
# shared with musl.sh.
# shellcheck source=test/cross/debsrc.sh
. "$ROOT/test/cross/debsrc.sh"
VERSION=1.17.2
PC_DESC="built static for wsreactor's static TLS daemon"
LIB_CC=gcc
# The same savings as the daemon's own static build (meson.build, -Dstatic=true).
LIB_CFLAGS="-Os -ffunction-sections -fdata-sections -fno-asynchronous-unwind-tables -D_GNU_SOURCE"

for p in jansson libssl libcrypto; do
    pkg-config --exists "$p" || { echo "$0: $p's headers are missing (apt-get install libjansson-dev libssl-dev)" >&2; exit 2; }
done

# The .pc file names the version, so that a change of it rebuilds the archive.
if ! grep -qx "Version: $VERSION" "$PREFIX/lib/pkgconfig/libjwt.pc" 2>/dev/null; then
    fetch libjwt_$VERSION.orig.tar.xz 8d52fceba532317359eca8e920c6186577aed45504f47a9be0a13c70ef8586cc libj/libjwt
    unpack libjwt libjwt_$VERSION.orig.tar.xz
    # What its configure script would write: OpenSSL is the crypto half built.
    mkdir -p "$SRC/gen"
    echo '#define HAVE_OPENSSL 1' >"$SRC/gen/config.h"
    cp "$ROOT/test/cross/libjwt-base64.h" "$SRC/gen/base64.h"
    archive jwt "$SRC/libjwt.o" "$SRC/libjwt" "-I$SRC/gen -I$SRC/libjwt/include $(pkg-config --cflags jansson libssl)" \
        libjwt/jwt.c libjwt/jwt-openssl.c
    cp "$SRC/libjwt/include/jwt.h" "$PREFIX/include/"
    pc libjwt $VERSION -ljwt "" "jansson libssl libcrypto"
fi

echo "static libjwt: $PREFIX (pkg-config path $PREFIX/lib/pkgconfig)"
