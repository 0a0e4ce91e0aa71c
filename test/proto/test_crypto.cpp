// Unit tests for the crypto seam (src/proto/crypto.*), run against whichever backend the
// build links (OpenSSL, or nettle and getrandom with -Dtls=disabled).
//
// What a server relies on: the handshake's SHA-1 and base64 give the published answers
// (a wrong byte and no browser connects), base64 decoding refuses what is not base64
// instead of guessing, the constant-time compare says equal exactly when it is, and the
// random source fills the buffer.
#include <string.h>

#include "unit.h"

#include "proto/crypto.h"

static void hex(const uint8_t *in, size_t n, char *out) {
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

// FIPS 180 / RFC 3174 test vectors.
static void test_sha1_vectors(void **) {
    uint8_t md[CRYPTO_SHA1_LEN];
    char h[2 * CRYPTO_SHA1_LEN + 1];
    crypto_sha1("abc", 3, md);
    hex(md, sizeof md, h);
    assert_string_equal(h, "a9993e364706816aba3e25717850c26c9cd0d89d");
    crypto_sha1("", 0, md);
    hex(md, sizeof md, h);
    assert_string_equal(h, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    crypto_sha1(two, strlen(two), md);
    hex(md, sizeof md, h);
    assert_string_equal(h, "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
}

// RFC 4648 §10.
static const char *const PLAIN[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
static const char *const CODED[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};

static void test_base64_encode_vectors(void **) {
    for (size_t i = 0; i < 7; i++) {
        char out[16];
        memset(out, 'x', sizeof out);
        size_t n = crypto_base64_encode(PLAIN[i], strlen(PLAIN[i]), out);
        assert_int_equal(n, strlen(CODED[i]));
        assert_string_equal(out, CODED[i]);
    }
    // The alphabet's last two characters, '+' and '/' (62 and 63).
    uint8_t ff[3] = {0xfb, 0xff, 0xbf};
    char out[8];
    crypto_base64_encode(ff, 3, out);
    assert_string_equal(out, "+/+/");
}

static void test_base64_decode_vectors(void **) {
    for (size_t i = 0; i < 7; i++) {
        uint8_t out[16];
        ssize_t n = crypto_base64_decode(CODED[i], strlen(CODED[i]), out, sizeof out);
        assert_int_equal(n, (ssize_t)strlen(PLAIN[i]));
        assert_memory_equal(out, PLAIN[i], (size_t)n);
    }
    uint8_t out[8];
    assert_int_equal(crypto_base64_decode("+/+/", 4, out, sizeof out), 3);
    assert_memory_equal(out, "\xfb\xff\xbf", 3);
}

static void test_base64_decode_refuses(void **) {
    uint8_t out[16];
    static const char *const bad[] = {
        "Zg=",      // not a multiple of 4
        "Zg",       // unpadded
        "Z===",     // three '='
        "Z=g=",     // '=' inside
        "=Zg=",     // '=' first
        "Zm 9v",    // whitespace inside, which nettle would skip
        " Zm9",     // leading whitespace, which OpenSSL would trim
        "Zm9v\n",   // trailing newline
        "Zm-v",     // the URL-safe alphabet is not this one
        "Zm9\x80",  // not ASCII
    };
    for (const char *b : bad) assert_int_equal(crypto_base64_decode(b, strlen(b), out, sizeof out), -1);
    // The result must fit: "foobar" is 6 bytes.
    assert_int_equal(crypto_base64_decode("Zm9vYmFy", 8, out, 5), -1);
    assert_int_equal(crypto_base64_decode("Zm9vYmFy", 8, out, 6), 6);
    // Padding does not count against the room: "foob" needs 4, not 6.
    memset(out, 0xAA, sizeof out);
    assert_int_equal(crypto_base64_decode("Zm9vYg==", 8, out, 4), 4);
    assert_memory_equal(out, "foob", 4);
    assert_int_equal(out[4], 0xAA); // nothing written past the room given
}

static void test_equal(void **) {
    assert_true(crypto_equal("secret-key", "secret-key", 10));
    assert_false(crypto_equal("secret-key", "secret-kez", 10));
    assert_false(crypto_equal("Secret-key", "secret-key", 10));
    assert_true(crypto_equal("a", "b", 0));
}

static void test_wipe(void **) {
    char buf[32];
    memset(buf, 'k', sizeof buf);
    crypto_wipe(buf, 16);
    for (int i = 0; i < 16; i++) assert_int_equal(buf[i], 0);
    for (int i = 16; i < 32; i++) assert_int_equal(buf[i], 'k');
}

static void test_random(void **) {
    // Two 32-byte draws that agree, or one that leaves the buffer untouched, mean the
    // source is broken (the odds of either by chance are 2^-256).
    uint8_t a[32], b[32], zero[32] = {0};
    memset(a, 0, sizeof a);
    memset(b, 0, sizeof b);
    assert_true(crypto_random(a, sizeof a));
    assert_true(crypto_random(b, sizeof b));
    assert_memory_not_equal(a, zero, sizeof a);
    assert_memory_not_equal(a, b, sizeof a);
    // More than getrandom's 256-byte single-call guarantee.
    static uint8_t big[4096];
    assert_true(crypto_random(big, sizeof big));
    size_t zeros = 0;
    for (uint8_t v : big) zeros += v == 0;
    assert_true(zeros < 64); // about 16 expected
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha1_vectors),
        cmocka_unit_test(test_base64_encode_vectors),
        cmocka_unit_test(test_base64_decode_vectors),
        cmocka_unit_test(test_base64_decode_refuses),
        cmocka_unit_test(test_equal),
        cmocka_unit_test(test_wipe),
        cmocka_unit_test(test_random),
    };
    return unit_exit(cmocka_run_group_tests(tests, nullptr, nullptr));
}
