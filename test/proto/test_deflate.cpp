// Unit tests for the permessage-deflate data path (src/proto/deflate.*).
//
// What the server relies on: every window size 8..15 round-trips (a raw deflater
// cannot use 8 and runs as 9, whose output a window-8 inflater still takes); context
// takeover carries the window between messages and reset drops it; the RFC 7692
// §7.2.3 examples inflate to "Hello"; the trailer is stripped on deflate and appended
// on inflate; a BFINAL block with its 0x00 byte ends a message and the stream goes on;
// the inflated size is capped with the buffer never growing past cap + 1; corrupt data
// fails, and the stream serves a fresh message afterwards.
#include <stdlib.h>
#include <string.h>

#include "unit.h"

#include "proto/deflate.h"

static const size_t MiB = 1 << 20;
static const uint8_t TRAILER[4] = {0x00, 0x00, 0xff, 0xff};

// --- data ------------------------------------------------------------------------------

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint32_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

enum kind { K_TEXT, K_RANDOM, K_ZEROS, K_REPEAT200, K_REPEAT300, K_REPEAT5000, K_MIXED };

// Message bodies of several shapes. The REPEAT kinds repeat a random block at that
// distance: matches at 300 are out of reach of a 256-byte window, those at 5000 are
// out of reach of windows below 2^13.
static uint8_t *make(kind k, size_t n, uint32_t seed) {
    uint8_t *d = (uint8_t *)malloc(n ? n : 1);
    rng_state = 0x9E3779B97F4A7C15ull ^ ((uint64_t)seed * 0x100000001B3ull) ^ k;
    static const char *words[] = {"alpha ", "beta ", "gamma ", "delta ", "{\"id\":", "\"name\":\"x\",", "\n", "42"};
    size_t i = 0;
    switch (k) {
    case K_TEXT:
        while (i < n) {
            const char *w = words[rnd() % 8];
            for (size_t j = 0; w[j] && i < n; j++) d[i++] = (uint8_t)w[j];
        }
        break;
    case K_RANDOM:
        for (; i < n; i++) d[i] = (uint8_t)rnd();
        break;
    case K_ZEROS:
        memset(d, 0, n);
        break;
    case K_REPEAT200:
    case K_REPEAT300:
    case K_REPEAT5000: {
        size_t period = k == K_REPEAT200 ? 200 : k == K_REPEAT300 ? 300 : 5000;
        for (; i < n; i++) d[i] = i < period ? (uint8_t)rnd() : d[i - period];
        break;
    }
    case K_MIXED:
        while (i < n) {
            size_t run = 1 + rnd() % 700;
            uint32_t how = rnd() % 3;
            for (size_t j = 0; j < run && i < n; j++, i++)
                d[i] = how == 0 ? (uint8_t)rnd() : how == 1 ? (uint8_t)'a' : (i > 300 ? d[i - 300] : (uint8_t)j);
        }
        break;
    }
    return d;
}

static void buf_free(pmd_buf *b) {
    free(b->data);
    *b = pmd_buf{};
}

static void hex(const uint8_t *d, size_t n, char *out, size_t cap) {
    size_t o = 0;
    for (size_t i = 0; i < n && o + 4 < cap; i++) o += (size_t)snprintf(out + o, cap - o, "%02x ", d[i]);
    if (o) out[o - 1] = '\0';
    else out[0] = '\0';
}

// Inflates bytes into a fresh buffer and returns the result code.
static int inflate_bytes(pmd_stream *s, const uint8_t *in, size_t n, pmd_buf *out, size_t max, bool reset) {
    *out = pmd_buf{};
    return pmd_inflate_message(s, in, n, out, max, reset);
}

static void expect_inflates_to(pmd_stream *s, const uint8_t *in, size_t n, const char *want, bool reset) {
    pmd_buf out;
    int r = inflate_bytes(s, in, n, &out, 1 << 16, reset);
    if (r != PMD_OK) fail_msg("inflate returned %d, want \"%s\"", r, want);
    if (out.len != strlen(want) || memcmp(out.data, want, out.len) != 0)
        fail_msg("inflated %zu bytes \"%.*s\", want \"%s\"", out.len, (int)out.len, out.data ? (char *)out.data : "",
                 want);
    buf_free(&out);
}

// --- init ------------------------------------------------------------------------------

static void test_init_all_window_bits(void **) {
    for (int wb = 8; wb <= 15; wb++) {
        pmd_stream d, i;
        assert_int_equal(pmd_deflater_init(&d, wb, 8, 1), PMD_OK);
        assert_true(d.ready);
        assert_int_equal(d.window_bits, wb < 9 ? 9 : wb); // zlib refuses raw 8: it runs as 9
        assert_int_equal(pmd_inflater_init(&i, wb), PMD_OK);
        assert_true(i.ready);
        assert_int_equal(i.window_bits, wb);
        pmd_deflater_free(&d);
        pmd_inflater_free(&i);
        assert_false(d.ready);
        pmd_deflater_free(&d); // freeing twice is harmless
        pmd_inflater_free(&i);
    }
    // Small-device settings: memLevel 1, any level.
    pmd_stream d;
    assert_int_equal(pmd_deflater_init(&d, 9, 1, 9), PMD_OK);
    pmd_deflater_free(&d);
    assert_true(pmd_deflater_bytes(8, 8) == pmd_deflater_bytes(9, 8));
    assert_true(pmd_deflater_bytes(15, 8) > pmd_deflater_bytes(9, 1));
    assert_true(pmd_inflater_bytes(15) > pmd_inflater_bytes(8));
}

// --- round trips -----------------------------------------------------------------------

struct pair {
    pmd_stream d, i;
};

static void pair_init(pair *p, int deflate_bits, int inflate_bits, int mem_level, int level) {
    assert_int_equal(pmd_deflater_init(&p->d, deflate_bits, mem_level, level), PMD_OK);
    assert_int_equal(pmd_inflater_init(&p->i, inflate_bits), PMD_OK);
}

static void pair_free(pair *p) {
    pmd_deflater_free(&p->d);
    pmd_inflater_free(&p->i);
}

// Deflates and inflates one message; returns the compressed size.
static size_t round_trip(pair *p, const uint8_t *msg, size_t n, bool reset, const char *what) {
    pmd_buf z = {}, out = {};
    int r = pmd_deflate_message(&p->d, msg, n, &z, reset);
    if (r != PMD_OK) fail_msg("%s: deflate returned %d", what, r);
    if (z.len >= 4 && memcmp(z.data + z.len - 4, TRAILER, 4) == 0)
        fail_msg("%s: deflate output still ends with 00 00 ff ff", what);
    if (n > 0 && z.len == 0) fail_msg("%s: deflate produced nothing", what);
    r = pmd_inflate_message(&p->i, z.data, z.len, &out, n + 16, reset);
    if (r != PMD_OK) fail_msg("%s: inflate of %zu compressed bytes returned %d", what, z.len, r);
    if (out.len != n || (n && memcmp(out.data, msg, n) != 0))
        fail_msg("%s: inflated %zu bytes, want %zu (or bytes differ)", what, out.len, n);
    size_t zlen = z.len;
    buf_free(&z);
    buf_free(&out);
    return zlen;
}

static void test_round_trip_window_bits(void **) {
    static const kind kinds[] = {K_TEXT, K_RANDOM, K_ZEROS, K_REPEAT200, K_REPEAT300, K_REPEAT5000, K_MIXED};
    static const size_t sizes[] = {1, 2, 100, 257, 1000, 4096, 70000};
    char what[128];
    for (int wb = 8; wb <= 15; wb++) {
        for (int reset = 0; reset <= 1; reset++) {
            for (int level = 1; level <= 9; level += 8) {
                pair p;
                pair_init(&p, wb, wb, 8, level);
                uint32_t seed = 0;
                for (kind k : kinds) {
                    for (size_t n : sizes) {
                        uint8_t *m = make(k, n, seed++);
                        snprintf(what, sizeof what, "bits %d level %d %s kind %d size %zu", wb, level,
                                 reset ? "reset" : "takeover", (int)k, n);
                        round_trip(&p, m, n, reset, what);
                        free(m);
                    }
                }
                pair_free(&p);
            }
        }
    }
}

// The inflater's window is the one negotiated: a message that refers further back
// into the previous one than the window reaches is corrupt for it. (Within one message
// zlib may resolve longer distances from the output it holds, so the check is across
// messages.) This also makes the 8-as-9 test below meaningful.
static void test_inflate_window_is_enforced(void **) {
    uint8_t *m = make(K_RANDOM, 5000, 7);
    pmd_stream d;
    assert_int_equal(pmd_deflater_init(&d, 15, 8, 6), PMD_OK);
    pmd_buf z1 = {}, z2 = {};
    assert_int_equal(pmd_deflate_message(&d, m, 5000, &z1, false), PMD_OK);
    assert_int_equal(pmd_deflate_message(&d, m, 5000, &z2, false), PMD_OK);
    assert_true(z2.len < 100); // the second refers 5000 bytes back
    for (int wb = 12; wb <= 13; wb++) {
        pmd_stream i;
        pmd_buf out = {};
        assert_int_equal(pmd_inflater_init(&i, wb), PMD_OK);
        assert_int_equal(pmd_inflate_message(&i, z1.data, z1.len, &out, 1 << 20, false), PMD_OK);
        assert_int_equal(out.len, 5000);
        out.len = 0;
        int r = pmd_inflate_message(&i, z2.data, z2.len, &out, 1 << 20, false);
        if (wb == 12 && r != PMD_CORRUPT) fail_msg("window 12 took a reference 5000 bytes back: %d", r);
        if (wb == 13) {
            assert_int_equal(r, PMD_OK);
            assert_int_equal(out.len, 5000);
            assert_memory_equal(out.data, m, 5000);
        }
        pmd_inflater_free(&i);
        buf_free(&out);
    }
    pmd_deflater_free(&d);
    buf_free(&z1);
    buf_free(&z2);
    free(m);

    // Window 8: zlib's raw deflater runs as 9 (512 bytes) but never emits a distance
    // beyond 250, so a 256-byte inflater takes its output. Each message is repeated
    // whole as the next, so the repeat could only refer s bytes back into the previous
    // message: allowed for s <= 250, literals beyond. A 15-bit deflater does refer
    // back and breaks the 8-bit inflater, which shows the check has teeth.
    for (int deflate_bits = 8; deflate_bits <= 15; deflate_bits += 7) {
        pair p;
        pair_init(&p, deflate_bits, 8, 8, 9);
        bool broke = false;
        for (size_t sz = 200; sz <= 400 && !broke; sz += 5) {
            uint8_t *a = make(K_RANDOM, sz, (uint32_t)sz);
            for (int rep = 0; rep < 2 && !broke; rep++) {
                pmd_buf z = {}, out = {};
                assert_int_equal(pmd_deflate_message(&p.d, a, sz, &z, false), PMD_OK);
                int r = pmd_inflate_message(&p.i, z.data, z.len, &out, 1000, false);
                if (deflate_bits == 8) {
                    if (r != PMD_OK) fail_msg("8-as-9 deflater, %zu-byte message repeated: inflate(8) = %d", sz, r);
                    assert_int_equal(out.len, sz);
                    assert_memory_equal(out.data, a, sz);
                } else if (r != PMD_OK) {
                    broke = true;
                }
                buf_free(&z);
                buf_free(&out);
            }
            free(a);
        }
        if (deflate_bits == 15 && !broke) fail_msg("a 15-bit deflater never broke a window-8 inflater");
        pair_free(&p);
    }
}

// --- context takeover ------------------------------------------------------------------

static void test_takeover_helps(void **) {
    uint8_t *m = make(K_MIXED, 3000, 99);
    for (int wb = 9; wb <= 15; wb++) {
        pair p;
        pair_init(&p, wb, wb, 8, 6);
        size_t first = round_trip(&p, m, 3000, false, "takeover first");
        size_t second = round_trip(&p, m, 3000, false, "takeover second");
        if (wb >= 12 && second * 4 > first)
            fail_msg("bits %d: the second identical message took %zu bytes, the first %zu: no takeover?", wb, second,
                     first);
        pair_free(&p);
        pair_init(&p, wb, wb, 8, 6);
        first = round_trip(&p, m, 3000, true, "reset first");
        second = round_trip(&p, m, 3000, true, "reset second");
        if (first != second) fail_msg("bits %d: with reset the same message took %zu then %zu bytes", wb, first, second);
        pair_free(&p);
    }
    free(m);
}

static void test_takeover_many_messages(void **) {
    pair p;
    pair_init(&p, 15, 15, 8, 1);
    char msg[256], what[64];
    size_t total_plain = 0, total_z = 0;
    for (int n = 0; n < 500; n++) {
        int len = snprintf(msg, sizeof msg, "{\"seq\":%d,\"type\":\"update\",\"payload\":\"%0*d\",\"ok\":true}", n,
                           n % 50 + 1, n * 7);
        snprintf(what, sizeof what, "message %d", n);
        total_z += round_trip(&p, (const uint8_t *)msg, (size_t)len, false, what);
        total_plain += (size_t)len;
    }
    if (total_z * 3 > total_plain) fail_msg("500 similar messages: %zu bytes from %zu", total_z, total_plain);
    pair_free(&p);
}

// A deflater that keeps its window and an inflater that resets disagree: the second
// message refers to the first and cannot be inflated alone.
static void test_reset_drops_the_window(void **) {
    uint8_t *m = make(K_RANDOM, 2000, 3);
    pmd_stream d, i;
    assert_int_equal(pmd_deflater_init(&d, 15, 8, 6), PMD_OK);
    assert_int_equal(pmd_inflater_init(&i, 15), PMD_OK);
    pmd_buf z = {}, out = {};
    assert_int_equal(pmd_deflate_message(&d, m, 2000, &z, false), PMD_OK);
    assert_int_equal(pmd_inflate_message(&i, z.data, z.len, &out, 4096, true), PMD_OK);
    assert_int_equal(out.len, 2000);
    z.len = out.len = 0;
    assert_int_equal(pmd_deflate_message(&d, m, 2000, &z, false), PMD_OK);
    assert_true(z.len < 100);
    assert_int_equal(pmd_inflate_message(&i, z.data, z.len, &out, 4096, true), PMD_CORRUPT);
    pmd_deflater_free(&d);
    pmd_inflater_free(&i);
    buf_free(&z);
    buf_free(&out);
    free(m);
}

// --- the empty message and the RFC 7692 §7.2.3 examples ------------------------------------

// Deflates an empty message and checks it is the single byte 0x00 (§7.2.1: the
// output ends with an empty stored block, whose 00 00 ff ff is then removed).
static void expect_empty_deflates_to_00(pmd_stream *d, bool reset, const char *what) {
    pmd_buf z = {};
    assert_int_equal(pmd_deflate_message(d, nullptr, 0, &z, reset), PMD_OK);
    char h[64];
    hex(z.data, z.len, h, sizeof h);
    if (z.len != 1 || z.data[0] != 0x00)
        fail_msg("%s: the empty message deflated to %zu bytes [%s], want [00]; with nothing after the "
                 "trailer is appended the peer's inflater is left inside a stored block header",
                 what, z.len, h);
    buf_free(&z);
}

static void test_empty_message(void **) {
    static const uint8_t empty[] = {0x00};
    uint8_t *m = make(K_TEXT, 500, 1);

    // Inflating: 0x00 is the empty message, alone or between messages with takeover.
    pair p;
    pair_init(&p, 15, 15, 8, 1);
    expect_inflates_to(&p.i, empty, 1, "", false);
    round_trip(&p, m, 500, false, "before an inflated empty message");
    expect_inflates_to(&p.i, empty, 1, "", false);
    expect_inflates_to(&p.i, empty, 1, "", false);
    // The deflater's window still matches the inflater's: 0x00 added nothing.
    round_trip(&p, m, 500, false, "after an inflated empty message");
    expect_inflates_to(&p.i, empty, 1, "", true);
    pmd_inflater_free(&p.i);
    assert_int_equal(pmd_inflater_init(&p.i, 15), PMD_OK);
    pmd_deflater_free(&p.d);
    assert_int_equal(pmd_deflater_init(&p.d, 15, 8, 1), PMD_OK);
    round_trip(&p, m, 500, true, "after an empty message with reset");
    pair_free(&p);

    // Deflating: a fresh stream, a reset one, and one that just flushed a message.
    pmd_stream d;
    assert_int_equal(pmd_deflater_init(&d, 15, 8, 1), PMD_OK);
    expect_empty_deflates_to_00(&d, true, "fresh deflater");
    expect_empty_deflates_to_00(&d, true, "second empty message, reset");
    pmd_deflater_free(&d);
    assert_int_equal(pmd_deflater_init(&d, 15, 8, 1), PMD_OK);
    pmd_buf z = {};
    assert_int_equal(pmd_deflate_message(&d, m, 500, &z, false), PMD_OK);
    buf_free(&z);
    expect_empty_deflates_to_00(&d, false, "empty message after a message with takeover");
    expect_empty_deflates_to_00(&d, false, "second empty message with takeover");
    pmd_deflater_free(&d);

    // End to end with takeover: message, empty, message.
    pair_init(&p, 15, 15, 8, 1);
    round_trip(&p, m, 500, false, "before empty");
    round_trip(&p, nullptr, 0, false, "empty");
    round_trip(&p, m, 500, false, "after empty");
    pair_free(&p);
    free(m);
}

static void test_rfc7692_examples(void **) {
    static const uint8_t hello[] = {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};           // §7.2.3.1
    static const uint8_t hello_again[] = {0xf2, 0x00, 0x11, 0x00, 0x00};                  // §7.2.3.2
    static const uint8_t stored[] = {0x00, 0x05, 0x00, 0xfa, 0xff, 'H', 'e', 'l', 'l', 'o', 0x00}; // §7.2.3.3
    static const uint8_t bfinal[] = {0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00};     // §7.2.3.4
    static const uint8_t two_blocks[] = {0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff,
                                         0xca, 0xc9, 0xc9, 0x07, 0x00};                   // §7.2.3.5
    pmd_stream i;
    for (int wb = 8; wb <= 15; wb++) {
        assert_int_equal(pmd_inflater_init(&i, wb), PMD_OK);
        expect_inflates_to(&i, hello, sizeof hello, "Hello", true);
        expect_inflates_to(&i, stored, sizeof stored, "Hello", true);
        expect_inflates_to(&i, bfinal, sizeof bfinal, "Hello", true);
        expect_inflates_to(&i, bfinal, sizeof bfinal - 1, "Hello", true); // BFINAL without the 0x00
        expect_inflates_to(&i, two_blocks, sizeof two_blocks, "Hello", true);
        pmd_inflater_free(&i);
    }

    // §7.2.3.2: the second "Hello" refers to the first through the shared window.
    assert_int_equal(pmd_inflater_init(&i, 15), PMD_OK);
    expect_inflates_to(&i, hello, sizeof hello, "Hello", false);
    expect_inflates_to(&i, hello_again, sizeof hello_again, "Hello", false);
    expect_inflates_to(&i, hello_again, sizeof hello_again, "Hello", false);
    // A BFINAL message ends the zlib stream; with takeover its window stays usable.
    expect_inflates_to(&i, bfinal, sizeof bfinal, "Hello", false);
    expect_inflates_to(&i, hello_again, sizeof hello_again, "Hello", false);
    expect_inflates_to(&i, stored, sizeof stored, "Hello", false);
    expect_inflates_to(&i, bfinal, sizeof bfinal, "Hello", false);
    expect_inflates_to(&i, bfinal, sizeof bfinal, "Hello", false);
    expect_inflates_to(&i, two_blocks, sizeof two_blocks, "Hello", false);
    expect_inflates_to(&i, hello_again, sizeof hello_again, "Hello", false);
    pmd_inflater_free(&i);

    // Without takeover the second form has nothing to refer to.
    assert_int_equal(pmd_inflater_init(&i, 15), PMD_OK);
    expect_inflates_to(&i, hello, sizeof hello, "Hello", true);
    pmd_buf out;
    assert_int_equal(inflate_bytes(&i, hello_again, sizeof hello_again, &out, 100, true), PMD_CORRUPT);
    buf_free(&out);
    expect_inflates_to(&i, bfinal, sizeof bfinal, "Hello", true);
    assert_int_equal(inflate_bytes(&i, hello_again, sizeof hello_again, &out, 100, true), PMD_CORRUPT);
    buf_free(&out);
    pmd_inflater_free(&i);

    // Our deflater produces §7.2.3.1 exactly, then §7.2.3.2 with takeover.
    pmd_stream d;
    assert_int_equal(pmd_deflater_init(&d, 15, 8, 1), PMD_OK);
    pmd_buf z = {};
    char h[128], w[128];
    assert_int_equal(pmd_deflate_message(&d, (const uint8_t *)"Hello", 5, &z, false), PMD_OK);
    hex(z.data, z.len, h, sizeof h);
    hex(hello, sizeof hello, w, sizeof w);
    if (strcmp(h, w) != 0) fail_msg("deflate(\"Hello\") = %s, want %s", h, w);
    z.len = 0;
    assert_int_equal(pmd_deflate_message(&d, (const uint8_t *)"Hello", 5, &z, true), PMD_OK);
    hex(z.data, z.len, h, sizeof h);
    hex(hello_again, sizeof hello_again, w, sizeof w);
    if (strcmp(h, w) != 0) fail_msg("deflate(\"Hello\") with takeover = %s, want %s", h, w);
    z.len = 0; // that call reset the stream: the next "Hello" stands alone again
    assert_int_equal(pmd_deflate_message(&d, (const uint8_t *)"Hello", 5, &z, true), PMD_OK);
    hex(z.data, z.len, h, sizeof h);
    hex(hello, sizeof hello, w, sizeof w);
    if (strcmp(h, w) != 0) fail_msg("deflate(\"Hello\") after reset = %s, want %s", h, w);
    buf_free(&z);
    pmd_deflater_free(&d);
}

// Output is appended: a buffer that already holds data keeps it.
static void test_output_is_appended(void **) {
    pair p;
    pair_init(&p, 15, 15, 8, 1);
    pmd_buf z = {}, out = {};
    assert_int_equal(pmd_deflate_message(&p.d, (const uint8_t *)"first ", 6, &z, true), PMD_OK);
    size_t one = z.len;
    assert_int_equal(pmd_deflate_message(&p.d, (const uint8_t *)"second", 6, &z, true), PMD_OK);
    assert_int_equal(pmd_inflate_message(&p.i, z.data, one, &out, 100, true), PMD_OK);
    assert_int_equal(pmd_inflate_message(&p.i, z.data + one, z.len - one, &out, 100, true), PMD_OK);
    assert_int_equal(out.len, 12);
    assert_memory_equal(out.data, "first second", 12);
    buf_free(&z);
    buf_free(&out);
    pair_free(&p);
}

// --- big messages and the cap ---------------------------------------------------------------

static void test_large_message(void **) {
    static const size_t sizes[] = {MiB + 12345, 3 * MiB};
    for (size_t n : sizes) {
        for (int k = 0; k < 3; k++) {
            kind kk = k == 0 ? K_MIXED : k == 1 ? K_RANDOM : K_TEXT;
            uint8_t *m = make(kk, n, (uint32_t)k);
            pair p;
            pair_init(&p, 15, 15, 8, 1);
            pmd_buf z = {}, out = {};
            assert_int_equal(pmd_deflate_message(&p.d, m, n, &z, false), PMD_OK);
            int r = pmd_inflate_message(&p.i, z.data, z.len, &out, n, false);
            if (r != PMD_OK) fail_msg("%zu bytes kind %d: inflate returned %d", n, (int)kk, r);
            assert_int_equal(out.len, n);
            assert_memory_equal(out.data, m, n);
            // ... and the stream goes on with takeover.
            out.len = 0;
            z.len = 0;
            assert_int_equal(pmd_deflate_message(&p.d, m, 5000, &z, false), PMD_OK);
            assert_int_equal(pmd_inflate_message(&p.i, z.data, z.len, &out, n, false), PMD_OK);
            assert_int_equal(out.len, 5000);
            assert_memory_equal(out.data, m, 5000);
            buf_free(&z);
            buf_free(&out);
            pair_free(&p);
            free(m);
        }
    }
}

// Inflating in steps (a server spreads a large message over several rounds) gives the
// same bytes as inflating at once, each step writes at most its share, and the stream
// goes on with takeover afterwards, whatever the step size.
static void test_steps_equal_whole(void **) {
    static const size_t steps[] = {1, 7, 4096, 65536};
    static const kind kinds[] = {K_MIXED, K_ZEROS, K_TEXT, K_RANDOM};
    const size_t n = 300000;
    for (size_t step : steps) {
        for (kind k : kinds) {
            pair p;
            pair_init(&p, 15, 15, 8, 1);
            for (uint32_t msg = 0; msg < 3; msg++) {
                uint8_t *m = make(k, step == 1 ? 5000 : n, msg);
                size_t len = step == 1 ? 5000 : n;
                pmd_buf z = {}, out = {};
                assert_int_equal(pmd_deflate_message(&p.d, m, len, &z, false), PMD_OK);
                pmd_inflate_pos pos = {};
                int r, calls = 0;
                do {
                    size_t before = out.len;
                    r = pmd_inflate_step(&p.i, &pos, z.data, z.len, &out, len, step, false);
                    assert_true(out.len - before <= step);
                    calls++;
                } while (r == PMD_MORE && calls < 1000000);
                if (r != PMD_OK) fail_msg("step %zu kind %d message %u: %d", step, (int)k, msg, r);
                assert_int_equal(out.len, len);
                assert_memory_equal(out.data, m, len);
                assert_true((size_t)calls >= len / step);
                buf_free(&z);
                buf_free(&out);
                free(m);
            }
            pair_free(&p);
        }
    }
}

// A compressed message whose inflated size is `n` zeros.
static void zeros_compressed(size_t n, pmd_buf *z) {
    uint8_t *m = make(K_ZEROS, n, 0);
    pmd_stream d;
    assert_int_equal(pmd_deflater_init(&d, 15, 8, 9), PMD_OK);
    *z = pmd_buf{};
    assert_int_equal(pmd_deflate_message(&d, m, n, z, true), PMD_OK);
    pmd_deflater_free(&d);
    free(m);
}

static void test_bomb_is_capped(void **) {
    pmd_buf z;
    zeros_compressed(10 * MiB, &z);
    assert_true(z.len < 20000); // ~1000:1
    for (int takeover = 0; takeover <= 1; takeover++) {
        pmd_stream i;
        assert_int_equal(pmd_inflater_init(&i, 15), PMD_OK);
        pmd_buf out = {};
        int r = pmd_inflate_message(&i, z.data, z.len, &out, MiB, !takeover);
        assert_int_equal(r, PMD_TOO_BIG);
        if (out.cap > MiB + 1) fail_msg("output buffer grew to %zu bytes for a cap of %zu", out.cap, MiB);
        if (out.len > MiB + 1) fail_msg("output holds %zu bytes for a cap of %zu", out.len, MiB);
        buf_free(&out);
        // The stream serves a fresh message afterwards.
        static const uint8_t hello[] = {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
        expect_inflates_to(&i, hello, sizeof hello, "Hello", !takeover);
        // A small cap fails just as early.
        assert_int_equal(pmd_inflate_message(&i, z.data, z.len, &out, 1000, !takeover), PMD_TOO_BIG);
        assert_true(out.cap <= 1001);
        buf_free(&out);
        pmd_inflater_free(&i);
    }
    buf_free(&z);
}

static void test_cap_boundaries(void **) {
    static const size_t sizes[] = {0, 1, 1000, 4095, 4096, 4097, 65536, 300000};
    for (size_t n : sizes) {
        uint8_t *m = make(K_MIXED, n, (uint32_t)n);
        pmd_stream d, i;
        assert_int_equal(pmd_deflater_init(&d, 15, 8, 1), PMD_OK);
        assert_int_equal(pmd_inflater_init(&i, 15), PMD_OK);
        pmd_buf z = {}, out = {};
        assert_int_equal(pmd_deflate_message(&d, m, n, &z, true), PMD_OK);
        // Exactly at the cap: fine.
        int r = pmd_inflate_message(&i, z.data, z.len, &out, n, true);
        if (r != PMD_OK) fail_msg("%zu bytes with cap %zu: %d", n, n, r);
        assert_int_equal(out.len, n);
        if (n) assert_memory_equal(out.data, m, n);
        if (out.cap > n + 1 && out.cap > 1024)
            fail_msg("%zu bytes with cap %zu: buffer of %zu", n, n, out.cap);
        buf_free(&out);
        if (n > 0) {
            // One byte over: too big.
            r = pmd_inflate_message(&i, z.data, z.len, &out, n - 1, true);
            if (r != PMD_TOO_BIG) fail_msg("%zu bytes with cap %zu: %d, want PMD_TOO_BIG", n, n - 1, r);
            if (out.cap > n && out.cap > 1024) fail_msg("%zu bytes with cap %zu: buffer of %zu", n, n - 1, out.cap);
            buf_free(&out);
        }
        buf_free(&z);
        pmd_deflater_free(&d);
        pmd_inflater_free(&i);
        free(m);
    }
}

// --- corrupt data ----------------------------------------------------------------------

static void test_corrupt_input(void **) {
    static const struct {
        const char *what;
        uint8_t bytes[8];
        size_t n;
    } bad[] = {
        {"reserved block type 3", {0x06}, 1},
        {"reserved block type 3, final", {0x07, 0x12, 0x34}, 3},
        {"stored block with LEN != ~NLEN", {0x00, 0x05, 0x00, 0x00, 0x00, 'H', 'e', 'l'}, 8},
        {"distance before the start of the stream", {0xf2, 0x00, 0x11, 0x00, 0x00}, 5},
        {"all ones", {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 8},
        {"bad dynamic header", {0xfc, 0xff, 0xff, 0xff, 0xff}, 5},
    };
    static const uint8_t hello[] = {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
    for (int takeover = 0; takeover <= 1; takeover++) {
        for (const auto &b : bad) {
            pmd_stream i;
            assert_int_equal(pmd_inflater_init(&i, 15), PMD_OK);
            pmd_buf out;
            int r = inflate_bytes(&i, b.bytes, b.n, &out, 1 << 20, !takeover);
            if (r != PMD_CORRUPT) fail_msg("%s: inflate returned %d, want PMD_CORRUPT", b.what, r);
            buf_free(&out);
            // The stream is usable for a fresh message.
            expect_inflates_to(&i, hello, sizeof hello, "Hello", !takeover);
            pmd_inflater_free(&i);
        }
    }

    // Corruption after good output in the same message, and after earlier messages.
    pair p;
    pair_init(&p, 15, 15, 8, 1);
    uint8_t *m = make(K_TEXT, 5000, 5);
    round_trip(&p, m, 5000, false, "before corruption");
    pmd_buf z = {}, out = {};
    assert_int_equal(pmd_deflate_message(&p.d, m, 5000, &z, true), PMD_OK);
    uint8_t *bad_msg = (uint8_t *)malloc(z.len + 1);
    memcpy(bad_msg, z.data, z.len);
    bad_msg[z.len] = 0x06; // a block with the reserved type after the sync point
    int r = pmd_inflate_message(&p.i, bad_msg, z.len + 1, &out, 1 << 20, false);
    if (r != PMD_CORRUPT) fail_msg("valid data then a bad block: %d", r);
    buf_free(&out);
    buf_free(&z);
    pmd_deflater_free(&p.d);
    assert_int_equal(pmd_deflater_init(&p.d, 15, 8, 1), PMD_OK);
    round_trip(&p, m, 5000, false, "fresh message after corruption");
    round_trip(&p, m, 5000, false, "second message after corruption");
    free(bad_msg);
    free(m);
    pair_free(&p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_all_window_bits),
        cmocka_unit_test(test_round_trip_window_bits),
        cmocka_unit_test(test_inflate_window_is_enforced),
        cmocka_unit_test(test_takeover_helps),
        cmocka_unit_test(test_takeover_many_messages),
        cmocka_unit_test(test_reset_drops_the_window),
        cmocka_unit_test(test_empty_message),
        cmocka_unit_test(test_rfc7692_examples),
        cmocka_unit_test(test_output_is_appended),
        cmocka_unit_test(test_large_message),
        cmocka_unit_test(test_steps_equal_whole),
        cmocka_unit_test(test_bomb_is_capped),
        cmocka_unit_test(test_cap_boundaries),
        cmocka_unit_test(test_corrupt_input),
    };
    return unit_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
