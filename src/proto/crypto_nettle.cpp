// The crypto.h backend for builds without TLS: nettle for SHA-1, base64 and the
// constant-time compare (random bytes: crypto_random.cpp). No libcrypto.
#include <nettle/base64.h>
#include <nettle/memops.h>
#include <nettle/sha1.h>
#include <string.h>

#include "proto/base64_shape.h"
#include "proto/crypto.h"

void crypto_sha1(const void *data, size_t len, uint8_t out[CRYPTO_SHA1_LEN]) {
    sha1_ctx ctx;
    sha1_init(&ctx);
    sha1_update(&ctx, len, (const uint8_t *)data);
    sha1_digest(&ctx, CRYPTO_SHA1_LEN, out);
}

size_t crypto_base64_encode(const void *in, size_t len, char *out) {
    base64_encode_raw(out, len, (const uint8_t *)in);
    size_t n = BASE64_ENCODE_RAW_LENGTH(len);
    out[n] = '\0';
    return n;
}

ssize_t crypto_base64_decode(const char *in, size_t len, uint8_t *out, size_t cap) {
    size_t pad = 0;
    if (!base64_shape_ok(in, len, &pad) || len / 4 * 3 - pad > cap) return -1;
    base64_decode_ctx ctx;
    base64_decode_init(&ctx);
    size_t n = cap;
    if (!base64_decode_update(&ctx, &n, out, len, in) || !base64_decode_final(&ctx)) return -1;
    return (ssize_t)n;
}

bool crypto_equal(const void *a, const void *b, size_t n) { return memeql_sec(a, b, n) != 0; }

void crypto_wipe(void *p, size_t n) { explicit_bzero(p, n); }
