// The crypto.h backend over OpenSSL's libcrypto: the default build, which links it for
// TLS and JWT anyway. Random bytes come from crypto_random.cpp (getrandom(2)) in both
// backends.
//
// SHA-1 through OpenSSL's direct functions (SHA1_Init/Update/Final), which OpenSSL 3
// marks deprecated but keeps: the EVP route initialises the library (configuration file,
// default provider, its algorithm tables), about 2.2 MB of resident pages in a process
// that otherwise never needs them, where the direct functions cost about 0.1 MB. The
// accept key is a fixed transform of the client's nonce, not a security function, so
// that it bypasses providers (and a FIPS configuration) loses nothing.
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "proto/crypto.h"
#include "proto/base64_shape.h"

void crypto_sha1(const void *data, size_t len, uint8_t out[CRYPTO_SHA1_LEN]) {
    static_assert(CRYPTO_SHA1_LEN == SHA_DIGEST_LENGTH, "the same digest");
    SHA_CTX ctx;
    SHA1_Init(&ctx);
    SHA1_Update(&ctx, data, len);
    SHA1_Final(out, &ctx);
}

size_t crypto_base64_encode(const void *in, size_t len, char *out) {
    return (size_t)EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)in, (int)len);
}

ssize_t crypto_base64_decode(const char *in, size_t len, uint8_t *out, size_t cap) {
    size_t pad = 0;
    if (!base64_shape_ok(in, len, &pad) || len / 4 * 3 - pad > cap) return -1;
    if (len == 0) return 0;
    // EVP_DecodeBlock writes whole groups of 3, padding included as zero bytes.
    uint8_t tmp[3];
    size_t head = len - 4;
    if (head && EVP_DecodeBlock(out, (const unsigned char *)in, (int)head) < 0) return -1;
    if (EVP_DecodeBlock(tmp, (const unsigned char *)in + head, 4) != 3) return -1;
    size_t last = 3 - pad;
    for (size_t i = 0; i < last; i++) out[head / 4 * 3 + i] = tmp[i];
    return (ssize_t)(head / 4 * 3 + last);
}

bool crypto_equal(const void *a, const void *b, size_t n) { return CRYPTO_memcmp(a, b, n) == 0; }

void crypto_wipe(void *p, size_t n) { OPENSSL_cleanse(p, n); }

