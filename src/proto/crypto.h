// The few cryptographic primitives used outside TLS: SHA-1 and base64 for the opening
// handshake, base64 for Basic credentials, constant-time compares for secrets, wiping
// secrets, and random bytes for client ids and hash seeds.
//
// Two backends behind one interface, chosen at build time (meson option tls): OpenSSL
// (crypto_openssl.cpp), which the TLS build links anyway, and nettle plus getrandom(2)
// (crypto_nettle.cpp), so a build without TLS carries no libcrypto. Neither backend
// implements an algorithm itself; both call the library. Random bytes come from the
// kernel (getrandom(2), crypto_random.cpp) in both.
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum { CRYPTO_SHA1_LEN = 20 };

// The SHA-1 digest of len bytes.
void crypto_sha1(const void *data, size_t len, uint8_t out[CRYPTO_SHA1_LEN]);

// Standard base64 (RFC 4648 §4) with padding: writes 4 * ceil(len / 3) characters and a
// NUL to out, returns the number of characters.
size_t crypto_base64_encode(const void *in, size_t len, char *out);

// Decodes standard base64 whose length is a multiple of 4, with at most two '=' at the
// end. Whitespace is an error, not skipped. Returns the number of bytes written to out
// (padding not counted), or -1 for malformed input or when the result exceeds cap.
ssize_t crypto_base64_decode(const char *in, size_t len, uint8_t *out, size_t cap);

// Whether n bytes at a and b are equal, in time that depends on n only.
bool crypto_equal(const void *a, const void *b, size_t n);

// Overwrites n bytes with zeros in a way the compiler cannot drop as a dead store.
void crypto_wipe(void *p, size_t n);

// Fills buf with n bytes from the system's cryptographically secure generator.
// False when none could be had (the caller decides what that means).
bool crypto_random(void *buf, size_t n);
