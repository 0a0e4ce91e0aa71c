#include "proto/frame.h"

#include <string.h>

#include "proto/utf8.h"

enum : uint8_t { ST_HEADER, ST_PAYLOAD, ST_END, ST_ERROR };

void frame_parser_init(frame_parser *p) {
    memset(p, 0, sizeof *p);
    p->state = ST_HEADER;
}

static size_t fail(frame_parser *p, frame_event *ev, uint16_t code, const char *reason) {
    p->state = ST_ERROR;
    ev->type = FRAME_ERROR;
    ev->close_code = code;
    ev->reason = reason;
    return 0;
}

static bool opcode_known(uint8_t op) {
    return op <= WS_OP_BINARY || (op >= WS_OP_CLOSE && op <= WS_OP_PONG);
}

// Rules decidable from the first header byte alone, checked as soon as it arrives so
// a bad frame fails before the rest of its header is even sent.
static const char *check_byte0(const frame_parser *p, const frame_limits *lim, uint8_t b0) {
    uint8_t op = b0 & 0x0F;
    bool fin = b0 & 0x80;
    if (!opcode_known(op)) return "reserved opcode";
    if (b0 & 0x30) return "RSV2/RSV3 set";
    if (b0 & 0x40) {
        // RFC 7692 §6: RSV1 marks a compressed message, so only its first frame has it.
        if (!lim->allow_rsv1) return "RSV1 set without a negotiated extension";
        if (op != WS_OP_TEXT && op != WS_OP_BINARY) return "RSV1 set on a control or continuation frame";
    }
    if (ws_opcode_is_control(op)) {
        if (!fin) return "fragmented control frame";
    } else if (op == WS_OP_CONT) {
        if (!p->in_message) return "continuation frame without a message";
    } else if (p->in_message) {
        return "new data frame inside a fragmented message";
    }
    return nullptr;
}

static const char *check_byte1(const frame_parser *p, const frame_limits *lim, uint8_t b1) {
    bool masked = b1 & 0x80;
    if (masked != lim->expect_masked) return lim->expect_masked ? "unmasked client frame" : "masked server frame";
    if (ws_opcode_is_control(p->hdr[0] & 0x0F) && (b1 & 0x7F) > 125) return "control frame payload over 125 bytes";
    return nullptr;
}

static uint64_t load_be(const uint8_t *b, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v = (v << 8) | b[i];
    return v;
}

// The header is complete: decode the length, apply the size rules, start the frame.
static size_t header_done(frame_parser *p, const frame_limits *lim, frame_event *ev) {
    const uint8_t *h = p->hdr;
    uint8_t op = h[0] & 0x0F;
    uint8_t len7 = h[1] & 0x7F;
    uint64_t len = len7;
    int ext = 0;
    if (len7 == 126) {
        ext = 2;
        len = load_be(h + 2, 2);
        if (len < 126) return fail(p, ev, WS_CLOSE_PROTOCOL, "non-minimal 16-bit length");
    } else if (len7 == 127) {
        ext = 8;
        len = load_be(h + 2, 8);
        if (len >> 63) return fail(p, ev, WS_CLOSE_PROTOCOL, "64-bit length with the top bit set");
        if (len < 65536) return fail(p, ev, WS_CLOSE_PROTOCOL, "non-minimal 64-bit length");
    }
    if (lim->expect_masked) memcpy(p->mask, h + 2 + ext, 4);
    if (!ws_opcode_is_control(op)) {
        uint64_t so_far = op == WS_OP_CONT ? p->msg_len : 0;
        bool compressed = op == WS_OP_CONT ? p->msg_rsv1 : (h[0] & 0x40) != 0;
        uint64_t cap = compressed && lim->max_compressed ? lim->max_compressed : lim->max_message;
        // Checked from the header, before any payload is buffered (RFC 6455 §10.4).
        if (len > cap || so_far + len > cap) return fail(p, ev, WS_CLOSE_TOO_BIG, "message exceeds the size limit");
        if (op != WS_OP_CONT) {
            p->msg_opcode = op;
            p->msg_rsv1 = (h[0] & 0x40) != 0;
        }
        p->msg_len = so_far + len;
        p->in_message = !(h[0] & 0x80);
    }
    p->opcode = op;
    p->fin = (h[0] & 0x80) != 0;
    p->rsv1 = (h[0] & 0x40) != 0;
    p->remaining = len;
    p->mask_off = 0;
    p->hdr_have = 0;
    p->state = len ? ST_PAYLOAD : ST_END;
    ev->type = FRAME_HEADER;
    ev->opcode = op;
    ev->fin = p->fin;
    ev->rsv1 = p->rsv1;
    ev->frame_len = len;
    return 0;
}

static size_t header_length(uint8_t b1, const frame_limits *lim) {
    uint8_t len7 = b1 & 0x7F;
    return 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + (lim->expect_masked ? 4 : 0);
}

static size_t parse_header(frame_parser *p, const frame_limits *lim, const uint8_t *data, size_t len,
                           frame_event *ev) {
    // Fast path: a whole valid header at the start of the input is checked and decoded
    // in place. Anything invalid takes the byte-by-byte path below, so errors are
    // reported at the same byte with the same parser state either way.
    if (p->hdr_have == 0 && len >= 2) {
        size_t need = header_length(data[1], lim);
        if (len >= need) {
            p->hdr[0] = data[0];
            bool ok = !check_byte0(p, lim, data[0]) && !check_byte1(p, lim, data[1]) &&
                      !((data[1] & 0x7F) == 127 && (data[2] & 0x80));
            if (ok) {
                memcpy(p->hdr, data, need);
                p->hdr_have = p->hdr_need = (uint8_t)need; // as the byte path leaves them
                return need + header_done(p, lim, ev);
            }
        }
    }
    size_t used = 0;
    while (used < len) {
        uint8_t b = data[used++];
        p->hdr[p->hdr_have++] = b;
        const char *bad = nullptr;
        if (p->hdr_have == 1) {
            bad = check_byte0(p, lim, b);
        } else if (p->hdr_have == 2) {
            bad = check_byte1(p, lim, b);
            p->hdr_need = (uint8_t)header_length(b, lim);
        } else if (p->hdr_have == 3 && (p->hdr[1] & 0x7F) == 127 && (b & 0x80)) {
            bad = "64-bit length with the top bit set";
        }
        if (bad) return used + fail(p, ev, WS_CLOSE_PROTOCOL, bad);
        if (p->hdr_have >= 2 && p->hdr_have == p->hdr_need) return used + header_done(p, lim, ev);
    }
    ev->type = FRAME_NEED_MORE;
    return used;
}

size_t frame_parse(frame_parser *p, const frame_limits *lim, uint8_t *data, size_t len, frame_event *ev) {
    ev->type = FRAME_NEED_MORE;
    switch (p->state) {
    case ST_HEADER:
        return parse_header(p, lim, data, len, ev);
    case ST_PAYLOAD: {
        size_t n = len < p->remaining ? len : (size_t)p->remaining;
        if (n == 0) return 0;
        if (lim->expect_masked) {
            frame_mask(data, n, p->mask, p->mask_off);
            p->mask_off = (uint8_t)((p->mask_off + n) & 3);
        }
        p->remaining -= n;
        if (p->remaining == 0) p->state = ST_END;
        ev->type = FRAME_PAYLOAD;
        ev->opcode = p->opcode;
        ev->data = data;
        ev->len = n;
        return n;
    }
    case ST_END:
        p->state = ST_HEADER;
        if (!ws_opcode_is_control(p->opcode) && p->fin) p->msg_len = 0;
        ev->type = FRAME_END;
        ev->opcode = p->opcode;
        ev->fin = p->fin;
        ev->rsv1 = p->rsv1;
        return 0;
    default:
        ev->type = FRAME_ERROR;
        ev->close_code = WS_CLOSE_PROTOCOL;
        ev->reason = "stream already failed";
        return 0;
    }
}

size_t frame_parse_whole(frame_parser *p, const frame_limits *lim, uint8_t *data, size_t len, frame_event *ev) {
    if (p->state != ST_HEADER || p->hdr_have || p->in_message || len < 2) return 0;
    uint8_t b0 = data[0], b1 = data[1];
    uint8_t op = b0 & 0x0F;
    // FIN set, RSV2/RSV3 clear, text or binary; RSV1 only with an extension.
    if ((b0 & 0xB0) != 0x80 || (op != WS_OP_TEXT && op != WS_OP_BINARY)) return 0;
    bool rsv1 = (b0 & 0x40) != 0;
    if (rsv1 && !lim->allow_rsv1) return 0;
    bool masked = (b1 & 0x80) != 0;
    if (masked != lim->expect_masked) return 0;
    uint8_t len7 = b1 & 0x7F;
    size_t hl = 2;
    uint64_t plen = len7;
    if (len7 == 126) {
        if (len < 4) return 0;
        plen = (uint64_t)data[2] << 8 | data[3];
        if (plen < 126) return 0; // non-minimal: the slow path reports it
        hl = 4;
    } else if (len7 == 127) {
        return 0;
    }
    uint64_t cap = rsv1 && lim->max_compressed ? lim->max_compressed : lim->max_message;
    if (plen > cap) return 0;
    if (masked) hl += 4;
    if (len < hl || len - hl < plen) return 0;
    uint8_t *payload = data + hl;
    uint8_t ascii = 0;
    if (masked) {
        memcpy(p->mask, data + hl - 4, 4);
        if (plen >= 64) {
            frame_mask(payload, (size_t)plen, p->mask, 0);
        } else {
            // A small payload, key offset 0: words in place, without frame_mask's call
            // and set-up (the same XOR, whatever the byte order). The unmasked words are
            // looked at on the way: most short text is ASCII, which is valid UTF-8 as it
            // stands, and the caller then needs no validator.
            uint32_t k32;
            memcpy(&k32, p->mask, 4);
            uint64_t k64 = (uint64_t)k32 << 32 | k32, high = 0;
            uint8_t *q = payload;
            for (size_t words = (size_t)plen / 8; words; words--, q += 8) {
                uint64_t d;
                memcpy(&d, q, 8);
                d ^= k64;
                high |= d;
                memcpy(q, &d, 8);
            }
            for (size_t i = (size_t)plen & ~(size_t)7; i < plen; i++) high |= payload[i] ^= p->mask[i & 3];
            ascii = !(high & 0x8080808080808080ull);
        }
    }
    // As header_done, the payload and FRAME_END leave the parser for a whole frame.
    p->msg_opcode = op;
    p->msg_rsv1 = rsv1;
    p->msg_len = 0;
    p->opcode = op;
    p->fin = 1;
    p->rsv1 = rsv1;
    p->remaining = 0;
    p->hdr_need = (uint8_t)hl;
    p->mask_off = masked ? (uint8_t)(plen & 3) : 0;
    ev->type = FRAME_PAYLOAD;
    ev->opcode = op;
    ev->fin = 1;
    ev->rsv1 = rsv1;
    ev->ascii = ascii;
    ev->frame_len = plen;
    ev->data = payload;
    ev->len = (size_t)plen;
    return hl + (size_t)plen;
}

size_t frame_write_header(uint8_t *out, uint8_t opcode, bool fin, bool rsv1, uint64_t len,
                          const uint8_t *mask_key) {
    size_t n = 0;
    out[n++] = (uint8_t)((fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | (opcode & 0x0F));
    uint8_t m = mask_key ? 0x80 : 0;
    if (len < 126) {
        out[n++] = (uint8_t)(m | len);
    } else if (len <= 0xFFFF) {
        out[n++] = m | 126;
        out[n++] = (uint8_t)(len >> 8);
        out[n++] = (uint8_t)len;
    } else {
        out[n++] = m | 127;
        for (int i = 7; i >= 0; i--) out[n++] = (uint8_t)(len >> (8 * i));
    }
    if (mask_key) {
        memcpy(out + n, mask_key, 4);
        n += 4;
    }
    return n;
}

typedef uint32_t v4u32 __attribute__((vector_size(16)));
typedef uint32_t v8u32 __attribute__((vector_size(32)));

// Large payloads are masked 64 bytes per step. On x86-64 with GCC the step is built
// twice, for AVX2 and for the baseline (SSE2), and the loader picks one by the CPU (an
// ifunc); elsewhere the generic vectors lower to what the target has (NEON on ARM), or to
// plain words. XOR with a 4-byte pattern repeated is the same whatever the byte order.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("avx2", "default")))
#endif
size_t frame_mask_bulk(uint8_t *data, size_t len, uint32_t k32) {
    v8u32 kv = {k32, k32, k32, k32, k32, k32, k32, k32};
    size_t i = 0;
    for (; i + 64 <= len; i += 64) {
        v8u32 a, b;
        memcpy(&a, data + i, 32);
        memcpy(&b, data + i + 32, 32);
        a ^= kv;
        b ^= kv;
        memcpy(data + i, &a, 32);
        memcpy(data + i + 32, &b, 32);
    }
    return i;
}

void frame_mask(uint8_t *data, size_t len, const uint8_t key[4], unsigned offset) {
    // Rotate the key so that its first byte lines up with data[0]; then every 4-, 8-
    // and 16-byte block uses the same bits. The vector type lowers to SSE2 on x86-64
    // and NEON on ARM, with no intrinsics to port.
    uint8_t rot[8];
    memcpy(rot, key, 4);
    memcpy(rot + 4, key, 4);
    uint32_t k32;
    memcpy(&k32, rot + (offset & 3), 4);
    memcpy(rot, &k32, 4);
    size_t i = len >= 64 ? frame_mask_bulk(data, len, k32) : 0;
    if (len - i >= 16) {
        v4u32 kv = {k32, k32, k32, k32};
        for (; i + 16 <= len; i += 16) {
            v4u32 d;
            memcpy(&d, data + i, 16);
            d ^= kv;
            memcpy(data + i, &d, 16);
        }
    }
    uint64_t k64 = (uint64_t)k32 << 32 | k32;
    if (i + 8 <= len) {
        uint64_t d;
        memcpy(&d, data + i, 8);
        d ^= k64;
        memcpy(data + i, &d, 8);
        i += 8;
    }
    if (i + 4 <= len) {
        uint32_t d;
        memcpy(&d, data + i, 4);
        d ^= k32;
        memcpy(data + i, &d, 4);
        i += 4;
    }
    for (; i < len; i++) data[i] ^= rot[i & 3];
}

bool frame_close_code_valid(uint16_t code) {
    if (code >= 1000 && code <= 1003) return true;
    if (code >= 1007 && code <= 1014) return true; // 1012-1014 were added by IANA
    return code >= 3000 && code <= 4999;
}

uint16_t frame_close_parse(const uint8_t *payload, size_t len, uint16_t *code) {
    if (len == 0) {
        *code = WS_CLOSE_NO_STATUS;
        return 0;
    }
    if (len == 1) return WS_CLOSE_PROTOCOL;
    uint16_t c = (uint16_t)(payload[0] << 8 | payload[1]);
    if (!frame_close_code_valid(c)) return WS_CLOSE_PROTOCOL;
    if (!utf8_complete(utf8_validate(UTF8_ACCEPT, payload + 2, len - 2))) return WS_CLOSE_BAD_DATA;
    *code = c;
    return 0;
}
