// Fuzz target for the incremental UTF-8 validator (src/proto/utf8.*).
//
// Input layout: [0] largest chunk (0 = one byte at a time), [1..2] splitter seed, then
// the text.
//
// utf8_validate is a table-driven DFA with an ASCII fast path; the reference here is the
// opposite: it decodes code points one by one with the arithmetic of RFC 3629 §3 and
// rejects overlongs, surrogates and values above U+10FFFF by comparing the decoded
// value. For a sequence cut short by the end of the input it asks a table built by
// *encoding* every Unicode scalar value whether the bytes seen are the start of some
// valid encoding. The two must agree after every chunk on one of three answers:
//   reject        (UTF8_REJECT: no continuation can make the text valid),
//   complete      (UTF8_ACCEPT: valid and at a code point boundary),
//   incomplete    (any other state: valid so far, inside a sequence).
// "Reject as soon as a byte rules the text out" (AB 6.4.x fail-fast) is what the third
// answer checks: a prefix that no continuation can save must already be rejected.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "proto/utf8.h"

enum { SETTINGS_LEN = 3 };
enum ref_answer { REF_REJECT, REF_COMPLETE, REF_INCOMPLETE };

// Bit sets of the 1-, 2- and 3-byte proper prefixes of valid UTF-8 encodings. Index of a
// 3-byte prefix: b0 << 16 | b1 << 8 | b2, so 2 MiB of bits for that one.
static uint8_t g_prefix1[256 / 8];
static uint8_t g_prefix2[65536 / 8];
static uint8_t *g_prefix3;

static void bit_set(uint8_t *set, uint32_t i) { set[i >> 3] = (uint8_t)(set[i >> 3] | 1u << (i & 7)); }
static bool bit_get(const uint8_t *set, uint32_t i) { return set[i >> 3] >> (i & 7) & 1; }

static void build_prefix_sets(void) {
    g_prefix3 = (uint8_t *)calloc((1u << 24) / 8, 1);
    FUZZ_CHECK(g_prefix3 != nullptr, "out of memory");
    for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
        if (cp >= 0xD800 && cp <= 0xDFFF) continue; // surrogates are not scalar values
        uint8_t e[4];
        size_t n = utf8_encode(cp, e);
        if (n > 1) bit_set(g_prefix1, e[0]);
        if (n > 2) bit_set(g_prefix2, (uint32_t)e[0] << 8 | e[1]);
        if (n > 3) bit_set(g_prefix3, (uint32_t)e[0] << 16 | (uint32_t)e[1] << 8 | e[2]);
    }
}

// True when s[0..n) (n = 1..3) is where the encoding of some scalar value begins.
static bool is_valid_prefix(const uint8_t *s, size_t n) {
    if (n == 1) return bit_get(g_prefix1, s[0]);
    if (n == 2) return bit_get(g_prefix2, (uint32_t)s[0] << 8 | s[1]);
    return bit_get(g_prefix3, (uint32_t)s[0] << 16 | (uint32_t)s[1] << 8 | s[2]);
}

static ref_answer ref_utf8(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t b = s[i];
        size_t more;
        uint32_t cp, min;
        if (b < 0x80) {
            i++;
            continue;
        } else if ((b & 0xE0) == 0xC0) {
            more = 1, cp = b & 0x1F, min = 0x80;
        } else if ((b & 0xF0) == 0xE0) {
            more = 2, cp = b & 0x0F, min = 0x800;
        } else if ((b & 0xF8) == 0xF0) {
            more = 3, cp = b & 0x07, min = 0x10000;
        } else {
            return REF_REJECT; // a continuation byte or F8..FF where a sequence must start
        }
        if (n - i < 1 + more) return is_valid_prefix(s + i, n - i) ? REF_INCOMPLETE : REF_REJECT;
        for (size_t k = 1; k <= more; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return REF_REJECT;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if (cp < min) return REF_REJECT;                    // overlong
        if (cp >= 0xD800 && cp <= 0xDFFF) return REF_REJECT; // surrogate
        if (cp > 0x10FFFF) return REF_REJECT;               // beyond Unicode
        i += 1 + more;
    }
    return REF_COMPLETE;
}

static ref_answer answer_of(uint8_t state) {
    if (state == UTF8_REJECT) return REF_REJECT;
    return state == UTF8_ACCEPT ? REF_COMPLETE : REF_INCOMPLETE;
}

static const char *answer_name(ref_answer a) {
    return a == REF_REJECT ? "reject" : a == REF_COMPLETE ? "complete" : "incomplete";
}

// Compares at every chunk boundary; returns the final state.
static uint8_t run_split(const uint8_t *s, size_t n, fuzz_splitter *split, bool check_each) {
    uint8_t st = UTF8_ACCEPT;
    size_t pos = 0;
    while (pos < n) {
        size_t c = split ? fuzz_splitter_next(split, n - pos) : n - pos;
        uint8_t before = st;
        st = utf8_validate(st, s + pos, c);
        pos += c;
        if (before == UTF8_REJECT) FUZZ_CHECK(st == UTF8_REJECT, "REJECT is not sticky");
        if (check_each) {
            ref_answer want = ref_utf8(s, pos);
            FUZZ_CHECK(answer_of(st) == want, "after %zu of %zu bytes: validator says %s (state %u), reference %s", pos,
                       n, answer_name(answer_of(st)), st, answer_name(want));
        }
        // An empty slice changes nothing, in any state.
        FUZZ_CHECK(utf8_validate(st, s + pos, 0) == st, "empty slice changed the state");
    }
    return st;
}

// Called once by libFuzzer, AFL++'s driver and replay_main (before it forks per input),
// so the 2 MiB table is built once per process tree rather than per input.
extern "C" int LLVMFuzzerInitialize(int *, char ***) {
    if (!g_prefix3) build_prefix_sets();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_prefix3) build_prefix_sets(); // a driver that skips LLVMFuzzerInitialize
    if (size < SETTINGS_LEN) return 0;
    const uint8_t *s = data + SETTINGS_LEN;
    size_t n = size - SETTINGS_LEN;

    // The validator reads 8 bytes at a time; a heap copy of exactly n bytes lets ASan
    // catch a read past the end that the fuzzer's own buffer might hide.
    uint8_t *copy = (uint8_t *)malloc(n ? n : 1);
    FUZZ_CHECK(copy != nullptr, "out of memory");
    if (n) memcpy(copy, s, n);

    uint8_t whole = utf8_validate(UTF8_ACCEPT, copy, n);
    ref_answer want = ref_utf8(copy, n);
    FUZZ_CHECK(answer_of(whole) == want, "whole input: validator says %s (state %u), reference %s",
               answer_name(answer_of(whole)), whole, answer_name(want));

    fuzz_splitter split;
    fuzz_splitter_init(&split, (uint32_t)data[1] | (uint32_t)data[2] << 8, data[0]);
    uint8_t st = run_split(copy, n, &split, true);
    FUZZ_CHECK(st == whole, "split run ends in state %u, whole run in %u", st, whole);

    // Byte by byte for short inputs: every prefix is a boundary (quadratic, so bounded).
    if (n <= 256) {
        fuzz_splitter one;
        fuzz_splitter_init(&one, 0, 1);
        st = run_split(copy, n, &one, true);
        FUZZ_CHECK(st == whole, "byte-by-byte run ends in state %u, whole run in %u", st, whole);
    }
    free(copy);
    return 0;
}
