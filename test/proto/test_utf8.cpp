// Unit tests for the incremental UTF-8 validator (src/proto/utf8.*).
//
// What a server relies on: every valid text message is accepted whatever the
// fragmentation, every invalid one is rejected, and the rejection happens on the call
// that carries the first bad byte (AB 6.4.x), not at the end of the message.
#include <string.h>

#include "unit.h"

#include "proto/utf8.h"

// Expected verdict for a byte string that may stop mid code point.
enum verdict { V_ACCEPT, V_PARTIAL, V_REJECT };

static verdict verdict_of(uint8_t state) {
    if (state == UTF8_ACCEPT) return V_ACCEPT;
    return state == UTF8_REJECT ? V_REJECT : V_PARTIAL;
}

static uint8_t validate_whole(const uint8_t *s, size_t n) { return utf8_validate(UTF8_ACCEPT, s, n); }

static uint8_t validate_bytewise(const uint8_t *s, size_t n) {
    uint8_t st = UTF8_ACCEPT;
    for (size_t i = 0; i < n; i++) st = utf8_validate(st, s + i, 1);
    return st;
}

// Reference from the definition (RFC 3629 §3-4), written independently of the DFA:
// decode each sequence to the interval of code points it can still become, and
// reject as soon as that interval holds no scalar value of the sequence's length.
static verdict reference(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t b = s[i];
        size_t len;
        uint32_t cp, min;
        if (b < 0x80) {
            i++;
            continue;
        } else if (b >= 0xC0 && b < 0xE0) {
            len = 2, cp = b & 0x1F, min = 0x80;
        } else if (b >= 0xE0 && b < 0xF0) {
            len = 3, cp = b & 0x0F, min = 0x800;
        } else if (b >= 0xF0 && b < 0xF8) {
            len = 4, cp = b & 0x07, min = 0x10000;
        } else {
            return V_REJECT; // continuation byte where a lead is due, or F8..FF
        }
        size_t have = 1;
        for (; have < len && i + have < n; have++) {
            if ((s[i + have] & 0xC0) != 0x80) return V_REJECT;
            cp = cp << 6 | (s[i + have] & 0x3F);
        }
        // The completions of this prefix span [lo, hi].
        uint32_t lo = cp, hi = cp;
        for (size_t k = have; k < len; k++) {
            lo = lo << 6;
            hi = hi << 6 | 0x3F;
        }
        if (lo < min) lo = min;
        if (hi > 0x10FFFF) hi = 0x10FFFF;
        if (lo > hi) return V_REJECT;                       // all overlong or all too large
        if (lo >= 0xD800 && hi <= 0xDFFF) return V_REJECT; // all surrogates
        if (have < len) return V_PARTIAL; // a truncated tail that can still complete
        i += len;
    }
    return V_ACCEPT;
}

struct sample {
    const char *name;
    const char *bytes;
    size_t n;
    verdict want;
};

#define S(name, lit, want) {name, lit, sizeof(lit) - 1, want}

static const sample samples[] = {
    S("empty", "", V_ACCEPT),
    S("ascii", "Hello, world", V_ACCEPT),
    S("NUL and DEL are ASCII", "a\x00\x7F" "b", V_ACCEPT),
    S("U+0080 smallest 2-byte", "\xC2\x80", V_ACCEPT),
    S("U+07FF largest 2-byte", "\xDF\xBF", V_ACCEPT),
    S("U+0800 smallest 3-byte", "\xE0\xA0\x80", V_ACCEPT),
    S("U+D7FF below surrogates", "\xED\x9F\xBF", V_ACCEPT),
    S("U+E000 above surrogates", "\xEE\x80\x80", V_ACCEPT),
    S("U+FFFD replacement char", "\xEF\xBF\xBD", V_ACCEPT),
    S("U+FFFF noncharacter is valid", "\xEF\xBF\xBF", V_ACCEPT),
    S("U+10000 smallest 4-byte", "\xF0\x90\x80\x80", V_ACCEPT),
    S("U+10FFFF largest", "\xF4\x8F\xBF\xBF", V_ACCEPT),
    S("mixed text", "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5 \xF0\x9F\x98\x80 ok", V_ACCEPT),
    S("overlong C0 80", "\xC0\x80", V_REJECT),
    S("overlong C1 BF", "\xC1\xBF", V_REJECT),
    S("overlong E0 80 80", "\xE0\x80\x80", V_REJECT),
    S("overlong E0 9F BF", "\xE0\x9F\xBF", V_REJECT),
    S("overlong F0 80 80 80", "\xF0\x80\x80\x80", V_REJECT),
    S("overlong F0 8F BF BF", "\xF0\x8F\xBF\xBF", V_REJECT),
    S("surrogate U+D800", "\xED\xA0\x80", V_REJECT),
    S("surrogate U+DFFF", "\xED\xBF\xBF", V_REJECT),
    S("surrogate pair as CESU-8", "\xED\xA0\xBD\xED\xB8\x80", V_REJECT),
    S("U+110000", "\xF4\x90\x80\x80", V_REJECT),
    S("F5 lead", "\xF5\x80\x80\x80", V_REJECT),
    S("F8 lead", "\xF8\x88\x80\x80\x80", V_REJECT),
    S("FF byte", "ab\xFF", V_REJECT),
    S("FE byte", "\xFE", V_REJECT),
    S("lone continuation 80", "\x80", V_REJECT),
    S("lone continuation BF after text", "abc\xBF", V_REJECT),
    S("too many continuations", "\xC2\x80\x80", V_REJECT),
    S("lead then ASCII", "\xC2" "a", V_REJECT),
    S("3-byte lead then ASCII", "\xE1\x80" "a", V_REJECT),
    S("4-byte lead then new lead", "\xF0\x90\xC2\x80", V_REJECT),
    S("truncated 2-byte", "\xC2", V_PARTIAL),
    S("truncated 3-byte after 1", "\xE0", V_PARTIAL),
    S("truncated 3-byte after 2", "ab\xE0\xA0", V_PARTIAL),
    S("truncated ED 9F", "\xED\x9F", V_PARTIAL),
    S("truncated 4-byte after 3", "\xF4\x8F\xBF", V_PARTIAL),
    S("truncated F0 90", "\xF0\x90", V_PARTIAL),
};

static void test_samples(void **) {
    for (const sample &c : samples) {
        const uint8_t *b = (const uint8_t *)c.bytes;
        verdict whole = verdict_of(validate_whole(b, c.n));
        verdict bytewise = verdict_of(validate_bytewise(b, c.n));
        if (whole != c.want || bytewise != c.want)
            fail_msg("%s: whole %d, byte-at-a-time %d, want %d", c.name, whole, bytewise, c.want);
        if (reference(b, c.n) != c.want) fail_msg("%s: the test's own reference disagrees", c.name);
        // A truncated message must not pass as complete text.
        if (utf8_complete(validate_whole(b, c.n)) != (c.want == V_ACCEPT)) fail_msg("%s: utf8_complete", c.name);
    }
}

// Every split into two calls, and byte at a time, ends in the same state as one call.
static void test_samples_split_everywhere(void **) {
    for (const sample &c : samples) {
        const uint8_t *b = (const uint8_t *)c.bytes;
        uint8_t whole = validate_whole(b, c.n);
        for (size_t cut = 0; cut <= c.n; cut++) {
            uint8_t st = utf8_validate(utf8_validate(UTF8_ACCEPT, b, cut), b + cut, c.n - cut);
            if (st != whole) fail_msg("%s: split at %zu gives state %u, whole gives %u", c.name, cut, st, whole);
        }
        assert_int_equal(validate_bytewise(b, c.n), whole);
    }
}

// Fail fast, from the definition: a byte string whose every prefix is fed one byte at
// a time must be REJECT exactly from the first byte that rules out every completion.
// Strings of up to 4 bytes over an alphabet holding each class boundary cover every
// DFA edge, including the edges into REJECT.
static const uint8_t alphabet[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF,
                                   0xE0, 0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xF7, 0xFF};
enum { ALPHA = sizeof alphabet, MAXLEN = 4 };

static void test_exhaustive_prefixes_match_reference(void **) {
    size_t total = 1;
    for (int i = 0; i < MAXLEN; i++) total *= ALPHA;
    size_t rejects = 0, partials = 0;
    for (size_t idx = 0; idx < total; idx++) {
        uint8_t s[MAXLEN];
        size_t x = idx;
        for (int i = 0; i < MAXLEN; i++, x /= ALPHA) s[i] = alphabet[x % ALPHA];
        uint8_t st = UTF8_ACCEPT;
        for (size_t n = 1; n <= MAXLEN; n++) {
            st = utf8_validate(st, s + n - 1, 1);
            verdict want = reference(s, n);
            if (verdict_of(st) != want)
                fail_msg("%02X %02X %02X %02X, prefix %zu: got %d, want %d", s[0], s[1], s[2], s[3], n,
                         verdict_of(st), want);
            rejects += want == V_REJECT;
            partials += want == V_PARTIAL;
        }
        // The whole string in one call agrees with the byte-at-a-time run.
        if (validate_whole(s, MAXLEN) != st) fail_msg("%02X %02X %02X %02X: whole vs bytewise", s[0], s[1], s[2], s[3]);
    }
    // Guard against a degenerate reference that never says REJECT or PARTIAL.
    assert_true(rejects > 0 && partials > 0);
}

// The state is REJECT after the call that holds the first bad byte, and not before:
// chunk boundaries around the bad byte must not delay the verdict.
static void test_fail_fast_per_chunk(void **) {
    static const struct {
        const char *name;
        const char *bytes;
        size_t n;
        size_t bad_at; // index of the first byte that makes the text invalid
    } cases[] = {
        {"FF after text", "hello\xFFworld", 12, 5},
        {"overlong second byte", "ab\xE0\x80\x80", 5, 3},
        {"surrogate second byte", "ab\xED\xA0\x80", 5, 3},
        {"above U+10FFFF second byte", "\xF4\x90\x80\x80", 4, 1},
        {"ASCII where a continuation is due", "\xF0\x9F\x98" "a", 4, 3},
        {"C0 lead", "xyz\xC0\x80", 5, 3},
    };
    for (const auto &c : cases) {
        const uint8_t *b = (const uint8_t *)c.bytes;
        for (size_t cut = 0; cut <= c.n; cut++) {
            uint8_t st1 = utf8_validate(UTF8_ACCEPT, b, cut);
            bool first_has_bad = cut > c.bad_at;
            if ((st1 == UTF8_REJECT) != first_has_bad)
                fail_msg("%s: first %zu bytes give state %u", c.name, cut, st1);
            uint8_t st2 = utf8_validate(st1, b + cut, c.n - cut);
            if (st2 != UTF8_REJECT) fail_msg("%s: not rejected after cut %zu", c.name, cut);
        }
        // Once rejected, valid text afterwards does not revive the state.
        uint8_t st = utf8_validate(UTF8_ACCEPT, b, c.n);
        assert_int_equal(utf8_validate(st, (const uint8_t *)"ok", 2), UTF8_REJECT);
    }
}

// The 16-bytes-at-a-time ASCII path must hand over to the byte DFA at the right
// place: a bad or multi-byte sequence anywhere in a long run, including across a
// 16-byte block boundary, and a truncated lead as the last byte.
static void test_long_ascii_fast_path(void **) {
    enum { N = 80 };
    uint8_t buf[N];
    for (size_t at = 0; at < N; at++) {
        memset(buf, 'a', N);
        buf[at] = 0xFF;
        assert_int_equal(validate_whole(buf, N), UTF8_REJECT);
        // Everything before the bad byte is still fine.
        assert_int_equal(validate_whole(buf, at), UTF8_ACCEPT);

        memset(buf, 'a', N);
        buf[at] = 0x80; // lone continuation
        assert_int_equal(validate_whole(buf, N), UTF8_REJECT);
    }
    static const uint8_t emoji[] = {0xF0, 0x9F, 0x98, 0x80};
    for (size_t at = 0; at + 4 <= N; at++) {
        memset(buf, 'a', N);
        memcpy(buf + at, emoji, 4);
        if (validate_whole(buf, N) != UTF8_ACCEPT) fail_msg("U+1F600 at offset %zu rejected", at);
        // Cut just after the lead: the long ASCII tail arrives while a sequence is open.
        uint8_t st = utf8_validate(UTF8_ACCEPT, buf, at + 1);
        assert_false(utf8_complete(st));
        assert_int_equal(utf8_validate(st, buf + at + 1, N - at - 1), UTF8_ACCEPT);
        // A truncated sequence followed by 16+ ASCII bytes must be rejected, not skipped.
        memset(buf, 'a', N);
        buf[at] = 0xE2;
        assert_int_equal(validate_whole(buf, N), UTF8_REJECT);
    }
    memset(buf, 'a', N);
    buf[N - 1] = 0xC3;
    uint8_t st = validate_whole(buf, N);
    assert_int_not_equal(st, UTF8_REJECT);
    assert_false(utf8_complete(st));
    assert_int_equal(utf8_validate(st, (const uint8_t *)"\xA9", 1), UTF8_ACCEPT);
}

// Every scalar value encodes to bytes the validator accepts, split at any point.
static void test_every_code_point(void **) {
    for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
        uint8_t b[4];
        size_t n = utf8_encode(cp, b);
        bool surrogate = cp >= 0xD800 && cp <= 0xDFFF;
        uint8_t want = surrogate ? UTF8_REJECT : UTF8_ACCEPT;
        if (validate_whole(b, n) != want) fail_msg("U+%04X: whole", cp);
        if (n > 1 && utf8_validate(utf8_validate(UTF8_ACCEPT, b, 1), b + 1, n - 1) != want)
            fail_msg("U+%04X: split after the lead", cp);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_samples),
        cmocka_unit_test(test_samples_split_everywhere),
        cmocka_unit_test(test_exhaustive_prefixes_match_reference),
        cmocka_unit_test(test_fail_fast_per_chunk),
        cmocka_unit_test(test_long_ascii_fast_path),
        cmocka_unit_test(test_every_code_point),
    };
    return unit_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
