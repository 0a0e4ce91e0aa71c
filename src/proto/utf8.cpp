#include "proto/utf8.h"

#include <string.h>

// A byte-class DFA. Classes split the byte range exactly where the legal second-byte
// ranges of RFC 3629 §4 change, so every rule is a table entry rather than a branch.
enum : uint8_t {
    C_ASCII,   // 00..7F
    C_CONT_LO, // 80..8F
    C_CONT_MI, // 90..9F
    C_CONT_HI, // A0..BF
    C_BAD,     // C0, C1, F5..FF: never valid
    C_LEAD2,   // C2..DF
    C_E0,      // E0: second byte A0..BF (no overlongs)
    C_LEAD3,   // E1..EC, EE..EF
    C_ED,      // ED: second byte 80..9F (no surrogates)
    C_F0,      // F0: second byte 90..BF (no overlongs)
    C_LEAD4,   // F1..F3
    C_F4,      // F4: second byte 80..8F (nothing above U+10FFFF)
    C_COUNT
};

enum : uint8_t { S_OK = UTF8_ACCEPT, S_BAD = UTF8_REJECT, S_NEED1, S_NEED2, S_E0, S_ED, S_NEED3, S_F0, S_F4, S_COUNT };

static constexpr uint8_t byte_class(uint8_t b) {
    if (b < 0x80) return C_ASCII;
    if (b < 0x90) return C_CONT_LO;
    if (b < 0xA0) return C_CONT_MI;
    if (b < 0xC0) return C_CONT_HI;
    if (b < 0xC2) return C_BAD;
    if (b < 0xE0) return C_LEAD2;
    if (b == 0xE0) return C_E0;
    if (b == 0xED) return C_ED;
    if (b < 0xF0) return C_LEAD3;
    if (b == 0xF0) return C_F0;
    if (b < 0xF4) return C_LEAD4;
    if (b == 0xF4) return C_F4;
    return C_BAD;
}

// The transition function, as next[state][class].
struct utf8_next {
    uint8_t next[S_COUNT][C_COUNT];
};

static constexpr utf8_next make_next() {
    utf8_next t{};
    for (int st = 0; st < S_COUNT; st++)
        for (int c = 0; c < C_COUNT; c++) t.next[st][c] = S_BAD;
    t.next[S_OK][C_ASCII] = S_OK;
    t.next[S_OK][C_LEAD2] = S_NEED1;
    t.next[S_OK][C_E0] = S_E0;
    t.next[S_OK][C_LEAD3] = S_NEED2;
    t.next[S_OK][C_ED] = S_ED;
    t.next[S_OK][C_F0] = S_F0;
    t.next[S_OK][C_LEAD4] = S_NEED3;
    t.next[S_OK][C_F4] = S_F4;
    for (int c = C_CONT_LO; c <= C_CONT_HI; c++) {
        t.next[S_NEED1][c] = S_OK;
        t.next[S_NEED2][c] = S_NEED1;
        t.next[S_NEED3][c] = S_NEED2;
    }
    t.next[S_E0][C_CONT_HI] = S_NEED1;
    t.next[S_ED][C_CONT_LO] = S_NEED1;
    t.next[S_ED][C_CONT_MI] = S_NEED1;
    t.next[S_F0][C_CONT_MI] = S_NEED2;
    t.next[S_F0][C_CONT_HI] = S_NEED2;
    t.next[S_F4][C_CONT_LO] = S_NEED2;
    return t;
}

// A "shift" DFA: a state is held as 6 * its number, and the entry for a byte packs, at
// bit 6*s for every state s, the next state (again times 6). One step is then a load
// and a shift, and the load does not depend on the previous step; a two-level
// next[state][class[byte]] lookup makes each byte wait for two dependent loads.
static constexpr int BITS = 6;
static_assert((int)S_COUNT * 6 <= 64, "states must fit one 64-bit row");

struct utf8_rows {
    uint64_t row[256];
};

static constexpr utf8_rows make_rows() {
    constexpr utf8_next t = make_next();
    utf8_rows r{};
    for (int b = 0; b < 256; b++) {
        uint64_t row = 0;
        for (int st = 0; st < S_COUNT; st++)
            row |= (uint64_t)(t.next[st][byte_class((uint8_t)b)] * BITS) << (st * BITS);
        r.row[b] = row;
    }
    return r;
}

static constexpr utf8_rows R = make_rows();

uint8_t utf8_validate(uint8_t state, const uint8_t *s, size_t n) {
    const uint8_t *end = s + n;
    uint64_t sh = (uint64_t)state * BITS;
    while (s < end) {
        if (sh == 0 && *s < 0x80) {
            // ASCII fast path, taken only when the next byte is ASCII: most text is,
            // and a run is cleared 16 bytes per test.
            while (end - s >= 16) {
                uint64_t a, b;
                memcpy(&a, s, 8);
                memcpy(&b, s + 8, 8);
                if ((a | b) & 0x8080808080808080ull) break;
                s += 16;
            }
            while (s < end && *s < 0x80) s++;
            continue;
        }
        // Multi-byte text: step the DFA until back at a boundary before ASCII. REJECT
        // is a sink, so one test per run is enough to stop at the first bad byte's run.
        do sh = (R.row[*s++] >> sh) & 63;
        while (s < end && (sh != 0 || *s >= 0x80));
        if (sh == (uint64_t)S_BAD * BITS) return UTF8_REJECT;
    }
    return (uint8_t)(sh / BITS);
}

size_t utf8_encode(uint32_t cp, uint8_t out[4]) {
    if (cp < 0x80) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xC0 | cp >> 6);
        out[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xE0 | cp >> 12);
        out[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (uint8_t)(0xF0 | cp >> 18);
    out[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}
