// Frame parsing (RFC 6455 §5.2): frame_parse, the incremental parser, over a buffer of
// many small masked client frames and over one large frame; all at once, and fed one
// byte per call (what a parser that may be handed any split pays for being incremental).
// The reference is the plain one-shot parser one writes when every frame is known to
// be whole in the buffer: the same checks, a bytewise unmask, no state between calls.
// Throughput in frames/s and bytes/s.
#include <stdlib.h>
#include <string.h>

#include "micro.h"
#include "proto/frame.h"

static const frame_limits LIMITS = {64ull << 20, false, true, 0};

struct frame_case {
    uint8_t *buf;
    size_t len;
    uint64_t frames;
    uint64_t payload; // payload bytes in the buffer
};

struct parse_total {
    uint64_t frames, payload;
};

// All of buf, as many events as it yields. False on FRAME_ERROR.
static bool parse_at_once(frame_parser *p, uint8_t *buf, size_t len, parse_total *t) {
    frame_event ev;
    size_t off = 0;
    for (;;) {
        off += frame_parse(p, &LIMITS, buf + off, len - off, &ev);
        switch (ev.type) {
        case FRAME_NEED_MORE:
            return off == len;
        case FRAME_PAYLOAD:
            t->payload += ev.len;
            break;
        case FRAME_END:
            t->frames++;
            break;
        case FRAME_ERROR:
            return false;
        }
    }
}

// The same bytes, one per call (each slice's events drained until FRAME_NEED_MORE, as a
// connection does with every read).
static bool parse_bytewise(frame_parser *p, uint8_t *buf, size_t len, parse_total *t) {
    frame_event ev;
    for (size_t i = 0; i < len; i++) {
        size_t have = 1;
        uint8_t *at = buf + i;
        for (;;) {
            size_t n = frame_parse(p, &LIMITS, at, have, &ev);
            at += n;
            have -= n;
            if (ev.type == FRAME_NEED_MORE) break;
            if (ev.type == FRAME_PAYLOAD) t->payload += ev.len;
            else if (ev.type == FRAME_END) t->frames++;
            else if (ev.type == FRAME_ERROR) return false;
        }
    }
    return true;
}

static bool opcode_known(uint8_t op) { return op <= WS_OP_BINARY || (op >= WS_OP_CLOSE && op <= WS_OP_PONG); }

static uint64_t load_be(const uint8_t *b, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v = (v << 8) | b[i];
    return v;
}

// The reference: whole frames only; the checks of frame_parse (opcode, RSV bits, mask
// bit, control frame rules, minimal lengths, fragmentation order, message size).
__attribute__((noinline)) static bool ref_parse_oneshot(uint8_t *buf, size_t len, parse_total *t) {
    size_t i = 0;
    bool in_message = false;
    uint64_t msg_len = 0;
    while (i < len) {
        if (len - i < 2) return false;
        uint8_t b0 = buf[i], b1 = buf[i + 1];
        uint8_t op = b0 & 0x0F;
        bool fin = b0 & 0x80;
        if ((b0 & 0x70) || !opcode_known(op) || !(b1 & 0x80)) return false;
        size_t h = 2;
        uint64_t plen = b1 & 0x7F;
        if (plen == 126) {
            if (len - i < 4) return false;
            plen = load_be(buf + i + 2, 2);
            if (plen < 126) return false;
            h = 4;
        } else if (plen == 127) {
            if (len - i < 10) return false;
            plen = load_be(buf + i + 2, 8);
            if ((plen >> 63) || plen < 65536) return false;
            h = 10;
        }
        if (ws_opcode_is_control(op)) {
            if (!fin || plen > 125) return false;
        } else {
            if ((op == WS_OP_CONT) != in_message) return false;
            msg_len = (op == WS_OP_CONT ? msg_len : 0) + plen;
            if (msg_len > LIMITS.max_message) return false;
            in_message = !fin;
        }
        if (len - i - h < 4 || len - i - h - 4 < plen) return false;
        const uint8_t *key = buf + i + h;
        uint8_t *p = buf + i + h + 4;
        for (uint64_t j = 0; j < plen; j++) p[j] ^= key[j & 3];
        t->payload += plen;
        t->frames++;
        i += h + 4 + plen;
    }
    return true;
}

static frame_case small_frames, large_frame;

// count masked, final frames of `size` payload bytes each, each with its own key.
static void build(frame_case *c, size_t count, size_t size, uint8_t opcode, micro_rng *r) {
    c->len = count * (FRAME_MAX_HEADER + size);
    c->buf = micro_alloc(c->len);
    size_t off = 0;
    for (size_t f = 0; f < count; f++) {
        uint8_t key[4];
        for (int k = 0; k < 4; k++) key[k] = (uint8_t)micro_rand(r);
        off += frame_write_header(c->buf + off, opcode, true, false, size, key);
        for (size_t j = 0; j < size; j++) c->buf[off + j] = (uint8_t)('a' + micro_below(r, 26));
        frame_mask(c->buf + off, size, key, 0);
        off += size;
    }
    c->len = off;
    c->frames = count;
    c->payload = count * size;
}

// The payload is unmasked in place each iteration (the buffer toggles between masked
// and clear); headers are never written, so every pass parses the same frames.
static void bm_at_once(benchmark::State &st, const frame_case *c) {
    frame_parser p;
    frame_parser_init(&p);
    for (auto _ : st) {
        parse_total t = {0, 0};
        if (!parse_at_once(&p, c->buf, c->len, &t) || t.frames != c->frames) st.SkipWithError("parse failed");
        benchmark::DoNotOptimize(t);
        benchmark::ClobberMemory();
    }
    st.SetItemsProcessed((int64_t)(st.iterations() * c->frames));
    st.SetBytesProcessed((int64_t)(st.iterations() * c->len));
}

static void bm_bytewise(benchmark::State &st, const frame_case *c) {
    frame_parser p;
    frame_parser_init(&p);
    for (auto _ : st) {
        parse_total t = {0, 0};
        if (!parse_bytewise(&p, c->buf, c->len, &t) || t.frames != c->frames) st.SkipWithError("parse failed");
        benchmark::DoNotOptimize(t);
        benchmark::ClobberMemory();
    }
    st.SetItemsProcessed((int64_t)(st.iterations() * c->frames));
    st.SetBytesProcessed((int64_t)(st.iterations() * c->len));
}

static void bm_ref_oneshot(benchmark::State &st, const frame_case *c) {
    for (auto _ : st) {
        parse_total t = {0, 0};
        if (!ref_parse_oneshot(c->buf, c->len, &t) || t.frames != c->frames) st.SkipWithError("parse failed");
        benchmark::DoNotOptimize(t);
        benchmark::ClobberMemory();
    }
    st.SetItemsProcessed((int64_t)(st.iterations() * c->frames));
    st.SetBytesProcessed((int64_t)(st.iterations() * c->len));
}

// All three parsers give the same frame count, payload total and unmasked bytes.
static bool check(const frame_case *c) {
    uint8_t *a = micro_alloc(c->len), *b = micro_alloc(c->len), *x = micro_alloc(c->len);
    memcpy(a, c->buf, c->len);
    memcpy(b, c->buf, c->len);
    memcpy(x, c->buf, c->len);
    parse_total ta = {0, 0}, tb = {0, 0}, tx = {0, 0};
    frame_parser pa, pb;
    frame_parser_init(&pa);
    frame_parser_init(&pb);
    bool ok = parse_at_once(&pa, a, c->len, &ta) && parse_bytewise(&pb, b, c->len, &tb) &&
              ref_parse_oneshot(x, c->len, &tx);
    ok = ok && ta.frames == c->frames && tb.frames == c->frames && tx.frames == c->frames;
    ok = ok && ta.payload == c->payload && tb.payload == c->payload && tx.payload == c->payload;
    ok = ok && memcmp(a, x, c->len) == 0 && memcmp(b, x, c->len) == 0;
    free(a);
    free(b);
    free(x);
    return ok || micro_fail("frame_parse (at once or bytewise) differs from the one-shot reference");
}

bool micro_register_frame(void) {
    micro_rng r = {0x5eed0201};
    build(&small_frames, 1000, 32, WS_OP_TEXT, &r);
    build(&large_frame, 1, 1024 * 1024, WS_OP_BINARY, &r);
    if (!check(&small_frames) || !check(&large_frame)) return false;
    const frame_case *cs[] = {&small_frames, &large_frame};
    const char *names[] = {"1000x32B", "1x1MiB"};
    for (int i = 0; i < 2; i++) {
        micro_add("frame", names[i], "frame_parse", bm_at_once, cs[i]);
        micro_add("frame", names[i], "frame_parse_1B_slices", bm_bytewise, cs[i]);
        micro_add("frame", names[i], "ref_oneshot", bm_ref_oneshot, cs[i]);
    }
    return true;
}
