// UTF-8 validation (RFC 3629, as RFC 6455 §8.1 requires of text messages): utf8_validate,
// a byte-class DFA with an ASCII fast path, against a straightforward decoder that
// decodes one code point at a time and checks it. Throughput in bytes/s, on ASCII,
// on mixed text (~30 % of the characters multi-byte) and on 4-byte-heavy text (emoji).
//
// Each iteration takes the next text from a pool of distinct texts (256 KiB in all, or
// the one 1 MiB text): timing one short text over and over lets the branch predictor
// learn its every branch, which flatters the branchy reference several times over
// on mixed text and is not what a server sees.
#include <stdlib.h>
#include <string.h>

#include "micro.h"
#include "proto/utf8.h"

// The reference: decode each code point from its lead byte, check the continuation
// bytes, then reject overlongs, surrogates and anything above U+10FFFF. Whole buffers
// only (it has no state to carry across fragments, which flatters it slightly).
__attribute__((noinline)) static bool ref_utf8_decode(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint32_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        uint32_t cp, min;
        if ((c & 0xE0) == 0xC0) {
            len = 2, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (n - i < len) return false;
        for (size_t k = 1; k < len; k++) {
            uint8_t b = s[i + k];
            if ((b & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (b & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        i += len;
    }
    return true;
}

enum text_kind { TEXT_ASCII, TEXT_MIXED, TEXT_EMOJI, TEXT_KINDS };
static const char *const KIND_NAMES[TEXT_KINDS] = {"ascii", "mixed", "4byte"};

// One character of the given kind of text.
static uint32_t next_char(micro_rng *r, int kind) {
    static const char ASCII[] = "etaoinshrdlu etaoinshrdlucmfwyp ,.ETAOIN0123456789\"{}:";
    uint32_t ascii = (uint8_t)ASCII[micro_below(r, sizeof ASCII - 1)];
    uint32_t p = micro_below(r, 100);
    switch (kind) {
    case TEXT_MIXED: // 70 % ASCII, 12 % Cyrillic, 13 % CJK, 5 % emoji
        if (p < 70) return ascii;
        if (p < 82) return 0x0410 + micro_below(r, 64);
        if (p < 95) return 0x4E00 + micro_below(r, 0x5000);
        return 0x1F300 + micro_below(r, 0x350);
    case TEXT_EMOJI: // 85 % emoji and other 4-byte characters, 15 % spaces and ASCII
        if (p < 85) return 0x1F300 + micro_below(r, 0x350);
        return ascii;
    default:
        return ascii;
    }
}

// Valid text of exactly n bytes: characters until the next would not fit, then ASCII.
static void fill_text(uint8_t *out, size_t n, int kind, micro_rng *r) {
    size_t i = 0;
    uint8_t tmp[4];
    while (i < n) {
        size_t k = utf8_encode(next_char(r, kind), tmp);
        if (i + k > n) k = utf8_encode('x', tmp);
        memcpy(out + i, tmp, k);
        i += k;
    }
}

struct utf8_case {
    const uint8_t *text; // count texts of len bytes, back to back
    size_t len;
    size_t count;
};

enum { POOL_BYTES = 256 * 1024 };

static const size_t SIZES[] = {64, 4096, 1024 * 1024};
static utf8_case cases[TEXT_KINDS][sizeof SIZES / sizeof SIZES[0]];

static void bm_utf8_validate(benchmark::State &st, const utf8_case *c) {
    size_t i = 0;
    for (auto _ : st) {
        uint8_t s = utf8_validate(UTF8_ACCEPT, c->text + i * c->len, c->len);
        benchmark::DoNotOptimize(s);
        i = i + 1 == c->count ? 0 : i + 1;
    }
    st.SetBytesProcessed((int64_t)st.iterations() * (int64_t)c->len);
}

static void bm_ref_decode(benchmark::State &st, const utf8_case *c) {
    size_t i = 0;
    for (auto _ : st) {
        bool ok = ref_utf8_decode(c->text + i * c->len, c->len);
        benchmark::DoNotOptimize(ok);
        i = i + 1 == c->count ? 0 : i + 1;
    }
    st.SetBytesProcessed((int64_t)st.iterations() * (int64_t)c->len);
}

static bool agree(const uint8_t *s, size_t n) {
    return utf8_complete(utf8_validate(UTF8_ACCEPT, s, n)) == ref_utf8_decode(s, n);
}

static bool check(void) {
    // The classic invalid and edge sequences, alone and after ASCII (past the fast path).
    static const char *const SAMPLES[] = {
        "\xC0\x80", "\xC1\xBF", "\xC2\x80", "\xDF\xBF", "\xE0\x9F\xBF", "\xE0\xA0\x80", "\xED\x9F\xBF",
        "\xED\xA0\x80", "\xEF\xBF\xBF", "\xF0\x8F\xBF\xBF", "\xF0\x90\x80\x80", "\xF4\x8F\xBF\xBF",
        "\xF4\x90\x80\x80", "\xF5\x80\x80\x80", "\xFF", "\x80", "\xBF", "\xE2\x82", "\xF0\x9F\x98",
        "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5", "\xE2\x82\xAC\x80",
    };
    uint8_t buf[64];
    for (const char *s : SAMPLES) {
        size_t n = strlen(s);
        if (!agree((const uint8_t *)s, n)) return micro_fail("utf8_validate differs from the reference on a sample");
        memset(buf, 'a', 20);
        memcpy(buf + 20, s, n);
        if (!agree(buf, 20 + n)) return micro_fail("utf8_validate differs from the reference after ASCII");
    }
    // Every timed text is valid to both; each, with one byte broken at many places,
    // gets the same answer from both.
    micro_rng r = {0x5eed0103};
    for (int k = 0; k < TEXT_KINDS; k++) {
        for (size_t i = 0; i < sizeof SIZES / sizeof SIZES[0]; i++) {
            const utf8_case *c = &cases[k][i];
            for (size_t j = 0; j < c->count; j++) {
                const uint8_t *t = c->text + j * c->len;
                if (!ref_utf8_decode(t, c->len) || !utf8_complete(utf8_validate(UTF8_ACCEPT, t, c->len)))
                    return micro_fail("generated text is not valid UTF-8");
            }
        }
        uint8_t *t = micro_alloc(4096);
        memcpy(t, cases[k][1].text, 4096);
        for (int trial = 0; trial < 2000; trial++) {
            size_t at = micro_below(&r, 4096);
            uint8_t old = t[at];
            t[at] = (uint8_t)micro_rand(&r);
            if (!agree(t, 4096)) return micro_fail("utf8_validate differs from the reference on broken text");
            t[at] = old;
        }
        free(t);
    }
    return true;
}

bool micro_register_utf8(void) {
    micro_rng r = {0x5eed0101};
    for (int k = 0; k < TEXT_KINDS; k++) {
        for (size_t i = 0; i < sizeof SIZES / sizeof SIZES[0]; i++) {
            size_t count = SIZES[i] < POOL_BYTES ? POOL_BYTES / SIZES[i] : 1;
            uint8_t *t = micro_alloc(count * SIZES[i]);
            for (size_t j = 0; j < count; j++) fill_text(t + j * SIZES[i], SIZES[i], k, &r);
            cases[k][i] = {t, SIZES[i], count};
        }
    }
    if (!check()) return false;
    for (int k = 0; k < TEXT_KINDS; k++) {
        for (size_t i = 0; i < sizeof SIZES / sizeof SIZES[0]; i++) {
            char kase[48];
            snprintf(kase, sizeof kase, "%s/%s", KIND_NAMES[k], micro_size_name(SIZES[i]));
            const utf8_case *c = &cases[k][i];
            micro_add("utf8", kase, "utf8_validate", bm_utf8_validate, c);
            micro_add("utf8", kase, "ref_decode", bm_ref_decode, c);
        }
    }
    return true;
}
