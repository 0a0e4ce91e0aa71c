// Unit tests for the frame parser, header writer and masking (src/proto/frame.*).
//
// What a server relies on: each RFC 6455 §5 rule fails the stream with the close code
// the peer will see; sizes are checked from the header, before payload is taken;
// payload arrives unmasked and intact; and none of it depends on how TCP cut the bytes.
#include <stdlib.h>
#include <string.h>

#include "unit.h"

#include "proto/frame.h"

static const frame_limits SERVER = {1 << 20, false, true, 0};
static const frame_limits SERVER_DEFLATE = {1 << 20, true, true, 0};
static const frame_limits CLIENT = {1 << 20, false, false, 0};

// ---------------------------------------------------------------------------------
// Feeding driver: runs a fresh parser over the input cut into chunks and writes every
// event into a compact log, so runs can be compared as strings:
//   "H<op>,<fin>,<rsv1>,<len> "  FRAME_HEADER
//   "E<n> "                      FRAME_END, n = payload bytes delivered for the frame
//   "X<code> "                   FRAME_ERROR
// Payload bytes are collected separately, in delivery order. The driver also checks
// the calling contract on every call (see the fail_msg lines).

enum { LOG_CAP = 16384 };

struct run {
    char log[LOG_CAP];
    size_t log_len;
    uint8_t *payload; // every payload byte delivered, in order
    size_t payload_len;
    size_t consumed; // bytes the parser took in total
    uint16_t error;  // close code of the FRAME_ERROR, 0 if none
};

static void log_add(run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void log_add(run *r, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(r->log + r->log_len, LOG_CAP - r->log_len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= LOG_CAP - r->log_len) fail_msg("event log overflow");
    r->log_len += (size_t)n;
}

static void run_free(run *r) {
    free(r->payload);
    r->payload = nullptr;
}

// With g_fast, the driver offers each chunk to frame_parse_whole before frame_parse, as
// the server does, and logs a whole frame it takes as its header and end events;
// g_fast_hits counts the frames it took.
static bool g_fast;
static size_t g_fast_hits;

// cuts: ascending chunk end offsets (the last chunk always ends at n).
static void feed(const frame_limits *lim, const uint8_t *in, size_t n, const size_t *cuts, size_t ncuts, run *r) {
    memset(r, 0, sizeof *r);
    uint8_t *buf = (uint8_t *)malloc(n + 1); // the parser unmasks in place: work on a copy
    r->payload = (uint8_t *)malloc(n + 1);
    memcpy(buf, in, n);
    frame_parser p;
    frame_parser_init(&p);
    uint64_t frame_len = 0, got = 0;
    uint8_t op = 0;
    size_t start = 0;
    for (size_t c = 0; c <= ncuts && !r->error; c++) {
        size_t end = c < ncuts ? cuts[c] : n, off = start;
        for (size_t calls = 0;; calls++) {
            // Zero-byte events (END) may follow a consuming one, never two in a row.
            if (calls > 2 * (end - start) + 4) fail_msg("parser makes no progress at offset %zu", off);
            frame_event ev;
            memset(&ev, 0xA5, sizeof ev);
            if (g_fast) {
                size_t w = frame_parse_whole(&p, lim, buf + off, end - off, &ev);
                if (w) {
                    if (w > end - off || ev.type != FRAME_PAYLOAD || ev.len != ev.frame_len || !ev.fin ||
                        ev.data + ev.len != buf + off + w)
                        fail_msg("whole frame event off the input");
                    log_add(r, "H%u,%u,%u,%llu ", ev.opcode, ev.fin, ev.rsv1, (unsigned long long)ev.frame_len);
                    memcpy(r->payload + r->payload_len, ev.data, ev.len);
                    r->payload_len += ev.len;
                    log_add(r, "E%llu ", (unsigned long long)ev.len);
                    op = ev.opcode;
                    frame_len = got = ev.len;
                    off += w;
                    g_fast_hits++;
                    continue;
                }
                memset(&ev, 0xA5, sizeof ev);
            }
            size_t used = frame_parse(&p, lim, buf + off, end - off, &ev);
            if (used > end - off) fail_msg("consumed %zu of %zu bytes", used, end - off);
            switch (ev.type) {
            case FRAME_NEED_MORE:
                if (used != end - off) fail_msg("NEED_MORE but %zu bytes left unconsumed", end - off - used);
                break;
            case FRAME_HEADER:
                log_add(r, "H%u,%u,%u,%llu ", ev.opcode, ev.fin, ev.rsv1, (unsigned long long)ev.frame_len);
                op = ev.opcode;
                frame_len = ev.frame_len;
                got = 0;
                break;
            case FRAME_PAYLOAD:
                // In place: the event points at the bytes just consumed.
                if (ev.data != buf + off || ev.len != used || used == 0) fail_msg("payload event off the input");
                if (got + used > frame_len) fail_msg("payload beyond the frame length");
                memcpy(r->payload + r->payload_len, ev.data, ev.len);
                r->payload_len += ev.len;
                got += ev.len;
                break;
            case FRAME_END:
                if (used != 0 || got != frame_len || ev.opcode != op) fail_msg("END does not close the frame");
                log_add(r, "E%llu ", (unsigned long long)got);
                break;
            case FRAME_ERROR: {
                if (!ev.reason || !ev.reason[0]) fail_msg("error %u without a reason", ev.close_code);
                log_add(r, "X%u ", ev.close_code);
                r->error = ev.close_code;
                frame_event again;
                frame_parse(&p, lim, buf + off + used, end - off - used, &again);
                if (again.type != FRAME_ERROR) fail_msg("error is not sticky");
                break;
            }
            default:
                fail_msg("unknown event type %u", ev.type);
            }
            off += used;
            if (ev.type == FRAME_NEED_MORE || ev.type == FRAME_ERROR) break;
        }
        r->consumed = off;
        start = end;
    }
    free(buf);
}

static void feed_whole(const frame_limits *lim, const uint8_t *in, size_t n, run *r) { feed(lim, in, n, nullptr, 0, r); }

static void feed_bytewise(const frame_limits *lim, const uint8_t *in, size_t n, run *r) {
    size_t *cuts = (size_t *)malloc((n + 1) * sizeof *cuts);
    for (size_t i = 0; i < n; i++) cuts[i] = i + 1;
    feed(lim, in, n, cuts, n, r);
    free(cuts);
}

static void expect_same(const char *what, const run *want, const run *got) {
    if (strcmp(want->log, got->log) != 0) fail_msg("%s: events\n  %s\nvs whole\n  %s", what, got->log, want->log);
    if (got->payload_len != want->payload_len || memcmp(got->payload, want->payload, got->payload_len) != 0)
        fail_msg("%s: payload bytes differ", what);
    if (got->consumed != want->consumed) fail_msg("%s: consumed %zu vs %zu", what, got->consumed, want->consumed);
}

// ---------------------------------------------------------------------------------
// Stream builder: appends frames as a peer would send them, and the log and payload
// the parser should report for them.

struct stream {
    frame_limits lim;
    uint8_t *bytes;
    size_t len, cap;
    char expect[LOG_CAP];
    size_t expect_len;
    uint8_t *payload;
    size_t payload_len;
    unsigned seq; // varies payload and mask key from frame to frame
};

static void stream_init(stream *s, const frame_limits *lim, size_t cap) {
    memset(s, 0, sizeof *s);
    s->lim = *lim;
    s->cap = cap;
    s->bytes = (uint8_t *)malloc(cap);
    s->payload = (uint8_t *)malloc(cap);
}

static void stream_free(stream *s) {
    free(s->bytes);
    free(s->payload);
}

static void expect_add(stream *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void expect_add(stream *s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    s->expect_len += (size_t)vsnprintf(s->expect + s->expect_len, LOG_CAP - s->expect_len, fmt, ap);
    va_end(ap);
}

// A frame with `len` bytes of generated payload, masked with a fresh key when the
// stream is client-to-server. Masking here is the byte-at-a-time definition (§5.3),
// independent of frame_mask.
static void add(stream *s, uint8_t op, bool fin, bool rsv1, size_t len) {
    assert_true(s->len + FRAME_MAX_HEADER + len <= s->cap);
    s->seq++;
    uint8_t key[4] = {(uint8_t)(0x5A ^ s->seq), (uint8_t)(s->seq * 13), 0xC3, (uint8_t)(0x81 + s->seq)};
    const uint8_t *k = s->lim.expect_masked ? key : nullptr;
    s->len += frame_write_header(s->bytes + s->len, op, fin, rsv1, len, k);
    for (size_t i = 0; i < len; i++) {
        uint8_t b = (uint8_t)(s->seq * 31 + i * 7 + (i >> 8));
        s->payload[s->payload_len++] = b;
        s->bytes[s->len++] = k ? b ^ k[i & 3] : b;
    }
    expect_add(s, "H%u,%u,%u,%zu E%zu ", op, fin, rsv1, len, len);
}

// Raw bytes the parser must fail on with `code` before reporting a header for them.
static void add_bad(stream *s, const char *raw, size_t n, uint16_t code) {
    memcpy(s->bytes + s->len, raw, n);
    s->len += n;
    expect_add(s, "X%u ", code);
}

// The mask key used in hand-written frames below.
#define K "\x11\x22\x33\x44"

// ---------------------------------------------------------------------------------
// Header rules: each with the exact close code, and the events before it.

struct rule_case {
    const char *name;
    const frame_limits *lim;
    const char *bytes;
    size_t n;
    const char *log; // expected events, in the driver's log format
};

#define RAW(lit) lit, sizeof(lit) - 1

static const rule_case rule_cases[] = {
    {"RSV1 without a negotiated extension", &SERVER, RAW("\xC1\x80" K), "X1002 "},
    {"RSV2", &SERVER, RAW("\xA1\x80" K), "X1002 "},
    {"RSV3", &SERVER, RAW("\x91\x80" K), "X1002 "},
    {"RSV2 even with deflate", &SERVER_DEFLATE, RAW("\xA2\x80" K), "X1002 "},
    {"RSV3 even with deflate", &SERVER_DEFLATE, RAW("\x92\x80" K), "X1002 "},
    {"RSV1 on the first text frame with deflate", &SERVER_DEFLATE, RAW("\xC1\x80" K), "H1,1,1,0 E0 "},
    {"RSV1 on the first binary fragment with deflate", &SERVER_DEFLATE, RAW("\x42\x80" K "\x80\x80" K),
     "H2,0,1,0 E0 H0,1,0,0 E0 "},
    {"RSV1 on a continuation frame", &SERVER_DEFLATE, RAW("\x41\x80" K "\xC0\x80" K), "H1,0,1,0 E0 X1002 "},
    {"RSV1 on a ping", &SERVER_DEFLATE, RAW("\xC9\x80" K), "X1002 "},
    {"RSV1 on a close", &SERVER_DEFLATE, RAW("\xC8\x80" K), "X1002 "},
    {"RSV1 on a pong", &SERVER_DEFLATE, RAW("\xCA\x80" K), "X1002 "},
    {"unmasked client frame", &SERVER, RAW("\x81\x00"), "X1002 "},
    {"unmasked client ping", &SERVER, RAW("\x89\x00"), "X1002 "},
    {"masked frame from a server", &CLIENT, RAW("\x81\x80" K), "X1002 "},
    {"unmasked frame on a client is fine", &CLIENT, RAW("\x81\x02hi"), "H1,1,0,2 E2 "},
    {"ping of 125 bytes is the limit", &SERVER, RAW("\x89\xFD" K), "H9,1,0,125 "},
    {"ping with 16-bit length 126", &SERVER, RAW("\x89\xFE\x00\x7E" K), "X1002 "},
    {"close with 64-bit length", &SERVER, RAW("\x88\xFF\x00\x00\x00\x00\x00\x01\x00\x00" K), "X1002 "},
    {"pong with 7-bit length 126 marker", &SERVER, RAW("\x8A\xFE\x00\xFF" K), "X1002 "},
    {"fragmented ping", &SERVER, RAW("\x09\x80" K), "X1002 "},
    {"fragmented close", &SERVER, RAW("\x08\x80" K), "X1002 "},
    {"fragmented pong", &SERVER, RAW("\x0A\x80" K), "X1002 "},
    {"continuation without a message", &SERVER, RAW("\x80\x80" K), "X1002 "},
    {"unfinished continuation without a message", &SERVER, RAW("\x00\x80" K), "X1002 "},
    {"continuation after a finished message", &SERVER, RAW("\x81\x80" K "\x80\x80" K), "H1,1,0,0 E0 X1002 "},
    {"text inside a fragmented text", &SERVER, RAW("\x01\x80" K "\x81\x80" K), "H1,0,0,0 E0 X1002 "},
    {"binary inside a fragmented text", &SERVER, RAW("\x01\x80" K "\x02\x80" K), "H1,0,0,0 E0 X1002 "},
    {"text inside a fragmented binary", &SERVER, RAW("\x02\x80" K "\x00\x80" K "\x81\x80" K),
     "H2,0,0,0 E0 H0,0,0,0 E0 X1002 "},
    {"64-bit length with the top bit set", &SERVER, RAW("\x82\xFF\x80\x00\x00\x00\x00\x00\x00\x00" K), "X1002 "},
    {"64-bit length all ones", &SERVER, RAW("\x82\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF" K), "X1002 "},
    {"non-minimal 16-bit length 125", &SERVER, RAW("\x82\xFE\x00\x7D" K), "X1002 "},
    {"non-minimal 16-bit length 0", &SERVER, RAW("\x82\xFE\x00\x00" K), "X1002 "},
    {"non-minimal 64-bit length 65535", &SERVER, RAW("\x82\xFF\x00\x00\x00\x00\x00\x00\xFF\xFF" K), "X1002 "},
    {"non-minimal 64-bit length 5", &SERVER, RAW("\x82\xFF\x00\x00\x00\x00\x00\x00\x00\x05" K), "X1002 "},
    {"minimal 16-bit length 126", &SERVER, RAW("\x82\xFE\x00\x7E" K), "H2,1,0,126 "},
    {"minimal 64-bit length 65536", &SERVER, RAW("\x82\xFF\x00\x00\x00\x00\x00\x01\x00\x00" K), "H2,1,0,65536 "},
    {"64-bit length far over the message limit", &SERVER, RAW("\x82\xFF\x40\x00\x00\x00\x00\x00\x00\x00" K),
     "X1009 "},
};

static void test_header_rules(void **) {
    for (const rule_case &c : rule_cases) {
        run whole, bytewise;
        feed_whole(c.lim, (const uint8_t *)c.bytes, c.n, &whole);
        if (strcmp(whole.log, c.log) != 0) fail_msg("%s: got \"%s\", want \"%s\"", c.name, whole.log, c.log);
        feed_bytewise(c.lim, (const uint8_t *)c.bytes, c.n, &bytewise);
        if (strcmp(bytewise.log, c.log) != 0)
            fail_msg("%s, byte at a time: got \"%s\", want \"%s\"", c.name, bytewise.log, c.log);
        run_free(&whole);
        run_free(&bytewise);
    }
}

static void test_reserved_opcodes(void **) {
    static const uint8_t reserved[] = {0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF};
    for (uint8_t op : reserved) {
        for (int fin = 0; fin <= 1; fin++) {
            uint8_t frame[] = {(uint8_t)(fin << 7 | op), 0x81, 0x11, 0x22, 0x33, 0x44, 'x' ^ 0x11};
            run r;
            feed_whole(&SERVER, frame, sizeof frame, &r);
            if (strcmp(r.log, "X1002 ") != 0) fail_msg("opcode 0x%X fin %d: \"%s\"", op, fin, r.log);
            run_free(&r);
        }
    }
}

// Rules that the first byte decides fail on that byte alone: a server need not wait
// for (or buffer) the rest of a frame it will refuse anyway.
static void test_first_byte_errors_need_no_more_input(void **) {
    static const struct {
        uint8_t b0;
        bool in_message; // a fragmented text message is open first
    } cases[] = {{0x83, false}, {0x8F, false}, {0xC1, false}, {0xA1, false}, {0x91, false}, {0x09, false},
                 {0x80, false}, {0x81, true},  {0x82, true}};
    for (const auto &c : cases) {
        frame_parser p;
        frame_parser_init(&p);
        frame_event ev;
        if (c.in_message) {
            uint8_t open[] = {0x01, 0x80, 1, 2, 3, 4};
            assert_int_equal(frame_parse(&p, &SERVER, open, sizeof open, &ev), sizeof open);
            assert_int_equal(ev.type, FRAME_HEADER);
            assert_int_equal(frame_parse(&p, &SERVER, nullptr, 0, &ev), 0);
            assert_int_equal(ev.type, FRAME_END);
        }
        uint8_t b0 = c.b0;
        assert_int_equal(frame_parse(&p, &SERVER, &b0, 1, &ev), 1);
        if (ev.type != FRAME_ERROR || ev.close_code != WS_CLOSE_PROTOCOL)
            fail_msg("first byte 0x%02X: event %u code %u", c.b0, ev.type, ev.close_code);
    }
}

// ---------------------------------------------------------------------------------
// Message size limit (§10.4): 1009, decided from the header, never by taking payload.

static void test_message_limit(void **) {
    static const frame_limits LIM100 = {100, false, true, 0};
    stream s;

    // Exactly at the limit, single frame and summed over fragments, then a new message
    // starts from zero. Control frames in between do not count.
    stream_init(&s, &LIM100, 4096);
    add(&s, WS_OP_TEXT, true, false, 100);
    add(&s, WS_OP_BINARY, false, false, 60);
    add(&s, WS_OP_PING, true, false, 125);
    add(&s, WS_OP_CONT, false, false, 0);
    add(&s, WS_OP_CONT, true, false, 40);
    add(&s, WS_OP_TEXT, false, false, 99);
    add(&s, WS_OP_CONT, true, false, 1);
    run r;
    feed_whole(&s.lim, s.bytes, s.len, &r);
    assert_string_equal(r.log, s.expect);
    run_free(&r);
    stream_free(&s);

    static const struct {
        const char *name;
        size_t first, second; // second == 0: a single frame
    } over[] = {
        {"single frame one byte over", 101, 0},
        {"single frame far over", 5000, 0},
        {"fragments one byte over", 50, 51},
        {"small first fragment, big second", 1, 100},
    };
    for (const auto &c : over) {
        stream_init(&s, &LIM100, 16384);
        size_t ok_part = 0;
        if (c.second) {
            add(&s, WS_OP_TEXT, false, false, c.first);
            ok_part = s.len;
        }
        // The offending frame: header, then payload the parser must not take.
        size_t n = c.second ? c.second : c.first;
        uint8_t hdr[FRAME_MAX_HEADER];
        size_t hlen = frame_write_header(hdr, c.second ? WS_OP_CONT : WS_OP_BINARY, true, false, n,
                                         (const uint8_t *)K);
        memset(s.bytes + s.len + hlen, 'z', n);
        add_bad(&s, (const char *)hdr, hlen, WS_CLOSE_TOO_BIG);
        s.len += n;

        run whole, bytewise;
        feed_whole(&s.lim, s.bytes, s.len, &whole);
        if (strcmp(whole.log, s.expect) != 0) fail_msg("%s: got \"%s\", want \"%s\"", c.name, whole.log, s.expect);
        // Reported at the end of the header: none of the payload was taken.
        if (whole.consumed != ok_part + hlen) fail_msg("%s: consumed %zu, want %zu", c.name, whole.consumed, ok_part + hlen);
        feed_bytewise(&s.lim, s.bytes, s.len, &bytewise);
        expect_same(c.name, &whole, &bytewise);
        run_free(&whole);
        run_free(&bytewise);
        stream_free(&s);
    }
}

// ---------------------------------------------------------------------------------
// Differential: the same events and payload whatever the chunking.

typedef void (*scenario_fn)(stream *s);

static void sc_single_text(stream *s) { add(s, WS_OP_TEXT, true, false, 5); }

static void sc_fragmented_with_control_frames(stream *s) {
    add(s, WS_OP_TEXT, false, false, 3);
    add(s, WS_OP_PING, true, false, 4);
    add(s, WS_OP_CONT, false, false, 2);
    add(s, WS_OP_PONG, true, false, 0);
    add(s, WS_OP_PING, true, false, 125);
    add(s, WS_OP_CONT, true, false, 1);
    add(s, WS_OP_CLOSE, true, false, 5);
}

static void sc_zero_length_frames(stream *s) {
    add(s, WS_OP_TEXT, true, false, 0);
    add(s, WS_OP_BINARY, false, false, 0);
    add(s, WS_OP_CONT, false, false, 0);
    add(s, WS_OP_PING, true, false, 0);
    add(s, WS_OP_CONT, true, false, 0);
    add(s, WS_OP_PONG, true, false, 0);
    add(s, WS_OP_CLOSE, true, false, 0);
}

static void sc_length_classes(stream *s) {
    add(s, WS_OP_BINARY, true, false, 125);
    add(s, WS_OP_BINARY, true, false, 126);
    add(s, WS_OP_TEXT, false, false, 300);
    add(s, WS_OP_CONT, true, false, 17);
}

static void sc_many_small_frames(stream *s) {
    for (int i = 0; i < 24; i++) add(s, i % 3 ? WS_OP_CONT : WS_OP_BINARY, i % 3 == 2, false, (size_t)i);
}

static void sc_compressed_message(stream *s) {
    s->lim = SERVER_DEFLATE;
    add(s, WS_OP_TEXT, false, true, 7);
    add(s, WS_OP_PING, true, false, 1);
    add(s, WS_OP_CONT, true, false, 9);
    add(s, WS_OP_BINARY, true, true, 3);
    add(s, WS_OP_TEXT, true, false, 2);
}

static void sc_client_side(stream *s) {
    s->lim = CLIENT;
    add(s, WS_OP_TEXT, false, false, 130);
    add(s, WS_OP_PONG, true, false, 3);
    add(s, WS_OP_CONT, true, false, 4);
    add(s, WS_OP_CLOSE, true, false, 2);
}

static void sc_error_after_frames(stream *s) {
    add(s, WS_OP_TEXT, true, false, 2);
    add(s, WS_OP_PING, true, false, 3);
    add_bad(s, RAW("\x80\x85" K "hello"), WS_CLOSE_PROTOCOL);
}

static void sc_error_inside_header(stream *s) {
    add(s, WS_OP_BINARY, false, false, 10);
    add(s, WS_OP_PONG, true, false, 2);
    // A continuation whose 64-bit length has the top bit set: known at its third byte.
    add_bad(s, RAW("\x80\xFF\x80\x00\x00\x00\x00\x00\x00\x01" K "x"), WS_CLOSE_PROTOCOL);
}

static void sc_error_at_header_end(stream *s) {
    add(s, WS_OP_TEXT, false, false, 10);
    add_bad(s, RAW("\x80\xFE\x00\x05" K "hello"), WS_CLOSE_PROTOCOL); // non-minimal length
}

static void sc_too_big_after_fragments(stream *s) {
    s->lim.max_message = 64;
    add(s, WS_OP_BINARY, false, false, 30);
    add(s, WS_OP_PING, true, false, 100);
    add(s, WS_OP_CONT, false, false, 30);
    add_bad(s, RAW("\x80\x85" K "abcde"), WS_CLOSE_TOO_BIG);
}

static const struct {
    const char *name;
    scenario_fn fn;
} scenarios[] = {
    {"single text", sc_single_text},
    {"fragmented with control frames", sc_fragmented_with_control_frames},
    {"zero-length frames", sc_zero_length_frames},
    {"length classes", sc_length_classes},
    {"many small frames", sc_many_small_frames},
    {"compressed message", sc_compressed_message},
    {"client side", sc_client_side},
    {"error after frames", sc_error_after_frames},
    {"error inside a header", sc_error_inside_header},
    {"error at the end of a header", sc_error_at_header_end},
    {"too big after fragments", sc_too_big_after_fragments},
};

static void test_chunking_does_not_matter(void **) {
    for (const auto &sc : scenarios) {
        stream s;
        stream_init(&s, &SERVER, 8192);
        sc.fn(&s);
        run whole, other;
        feed_whole(&s.lim, s.bytes, s.len, &whole);
        if (strcmp(whole.log, s.expect) != 0) fail_msg("%s: got\n  %s\nwant\n  %s", sc.name, whole.log, s.expect);
        if (whole.payload_len != s.payload_len || memcmp(whole.payload, s.payload, s.payload_len) != 0)
            fail_msg("%s: payload not unmasked to the original bytes", sc.name);

        feed_bytewise(&s.lim, s.bytes, s.len, &other);
        expect_same(sc.name, &whole, &other);
        run_free(&other);

        char what[128];
        for (size_t cut = 0; cut <= s.len; cut++) {
            feed(&s.lim, s.bytes, s.len, &cut, 1, &other);
            snprintf(what, sizeof what, "%s, split at %zu", sc.name, cut);
            expect_same(what, &whole, &other);
            run_free(&other);
        }
        // Three chunks at pseudo-random points (fixed seed: failures reproduce).
        uint32_t x = 12345;
        for (int i = 0; i < 200; i++) {
            size_t cuts[2];
            x = x * 1103515245 + 12345;
            cuts[0] = (x >> 8) % (s.len + 1);
            x = x * 1103515245 + 12345;
            cuts[1] = cuts[0] + (x >> 8) % (s.len - cuts[0] + 1);
            feed(&s.lim, s.bytes, s.len, cuts, 2, &other);
            snprintf(what, sizeof what, "%s, cuts at %zu and %zu", sc.name, cuts[0], cuts[1]);
            expect_same(what, &whole, &other);
            run_free(&other);
        }
        run_free(&whole);
        stream_free(&s);
    }
}

// Payload lengths at and around each length-encoding boundary, with the header size
// each needs, fed whole, byte at a time and cut around the header.
static void test_payload_lengths(void **) {
    static const struct {
        size_t len;
        size_t header; // including the 4-byte mask key
    } cases[] = {{0, 6}, {1, 6}, {125, 6}, {126, 8}, {127, 8}, {65535, 8}, {65536, 14}, {70000, 14}};
    for (const auto &c : cases) {
        stream s;
        stream_init(&s, &SERVER, c.len + 64);
        add(&s, WS_OP_BINARY, true, false, c.len);
        if (s.len != c.header + c.len) fail_msg("len %zu: frame is %zu bytes, want header %zu", c.len, s.len, c.header);
        run whole, other;
        feed_whole(&s.lim, s.bytes, s.len, &whole);
        if (strcmp(whole.log, s.expect) != 0) fail_msg("len %zu: \"%s\" want \"%s\"", c.len, whole.log, s.expect);
        assert_int_equal(whole.payload_len, c.len);
        assert_memory_equal(whole.payload, s.payload, c.len);
        feed_bytewise(&s.lim, s.bytes, s.len, &other);
        expect_same("byte at a time", &whole, &other);
        run_free(&other);
        for (size_t cut = 1; cut <= c.header + 5 && cut <= s.len; cut++) {
            feed(&s.lim, s.bytes, s.len, &cut, 1, &other);
            expect_same("cut near the header", &whole, &other);
            run_free(&other);
        }
        run_free(&whole);
        stream_free(&s);
    }
}

// The whole-frame fast path (frame_parse_whole) changes nothing a peer can see: with it,
// every scenario, header rule and payload length gives the same events, payload bytes,
// errors and consumption as frame_parse alone, whole and cut anywhere. And it is taken:
// for whole unfragmented text and binary frames, and for nothing else.
static void test_whole_frame_path(void **) {
    g_fast_hits = 0;
    char what[160];
    for (const auto &sc : scenarios) {
        stream s;
        stream_init(&s, &SERVER, 8192);
        sc.fn(&s);
        run slow, fast;
        feed_whole(&s.lim, s.bytes, s.len, &slow);
        g_fast = true;
        feed_whole(&s.lim, s.bytes, s.len, &fast);
        g_fast = false;
        expect_same(sc.name, &slow, &fast);
        run_free(&fast);
        for (size_t cut = 0; cut <= s.len; cut++) {
            g_fast = true;
            feed(&s.lim, s.bytes, s.len, &cut, 1, &fast);
            g_fast = false;
            snprintf(what, sizeof what, "%s, fast path, split at %zu", sc.name, cut);
            expect_same(what, &slow, &fast);
            run_free(&fast);
        }
        run_free(&slow);
        stream_free(&s);
    }
    for (const rule_case &c : rule_cases) {
        run fast;
        g_fast = true;
        feed_whole(c.lim, (const uint8_t *)c.bytes, c.n, &fast);
        g_fast = false;
        if (strcmp(fast.log, c.log) != 0) fail_msg("%s, fast path: got \"%s\", want \"%s\"", c.name, fast.log, c.log);
        run_free(&fast);
    }
    static const size_t lens[] = {0, 1, 3, 64, 125, 126, 127, 1000, 65535, 65536};
    static const frame_limits *const lims[] = {&SERVER, &SERVER_DEFLATE, &CLIENT};
    for (const frame_limits *lim : lims)
        for (size_t len : lens)
            for (int rsv1 = 0; rsv1 <= (lim == &SERVER_DEFLATE); rsv1++) {
                stream s;
                stream_init(&s, lim, len + 128);
                add(&s, rsv1 ? WS_OP_TEXT : WS_OP_BINARY, true, rsv1, len);
                add(&s, WS_OP_TEXT, true, false, 2);
                run slow, fast;
                feed_whole(&s.lim, s.bytes, s.len, &slow);
                size_t before = g_fast_hits;
                g_fast = true;
                feed_whole(&s.lim, s.bytes, s.len, &fast);
                g_fast = false;
                snprintf(what, sizeof what, "length %zu rsv1 %d, fast path", len, rsv1);
                expect_same(what, &slow, &fast);
                // 7- and 16-bit lengths take the fast path; 64-bit ones do not.
                size_t want = len < 65536 ? 2 : 1;
                if (g_fast_hits - before != want) fail_msg("%s: %zu frames took it, want %zu", what, g_fast_hits - before, want);
                run_free(&slow);
                run_free(&fast);
                stream_free(&s);
            }
    // Not taken: a control frame, a fragment, a frame cut short, a non-minimal length,
    // a frame over the limit, RSV1 without an extension.
    static const frame_limits SMALL = {4, false, true, 0};
    const struct {
        const char *name;
        const frame_limits *lim;
        const char *bytes;
        size_t n;
    } refused[] = {
        {"ping", &SERVER, RAW("\x89\x80" K)},
        {"first fragment", &SERVER, RAW("\x01\x80" K)},
        {"payload not all here", &SERVER, RAW("\x81\x82" K "a")},
        {"mask key not all here", &SERVER, RAW("\x81\x80\x11\x22")},
        {"non-minimal 16-bit length", &SERVER, RAW("\x82\xFE\x00\x05" K "abcde")},
        {"over the message limit", &SMALL, RAW("\x82\x85" K "abcde")},
        {"RSV1 without an extension", &SERVER, RAW("\xC1\x80" K)},
        {"unmasked client frame", &SERVER, RAW("\x81\x00")},
    };
    for (const auto &c : refused) {
        uint8_t buf[64];
        memcpy(buf, c.bytes, c.n);
        frame_parser p;
        frame_parser_init(&p);
        frame_event ev;
        if (frame_parse_whole(&p, c.lim, buf, c.n, &ev) != 0) fail_msg("%s: took the fast path", c.name);
        if (memcmp(buf, c.bytes, c.n) != 0) fail_msg("%s: refused but changed the input", c.name);
    }
    assert_true(g_fast_hits > 0);
}

// ---------------------------------------------------------------------------------
// Header writer and masking.

static void test_write_header(void **) {
    static const uint8_t key[4] = {0xA1, 0xB2, 0xC3, 0xD4};
    static const struct {
        uint8_t op;
        bool fin, rsv1, masked;
        uint64_t len;
        const char *want;
        size_t want_len;
    } cases[] = {
        {WS_OP_TEXT, true, false, false, 0, RAW("\x81\x00")},
        {WS_OP_TEXT, true, false, false, 125, RAW("\x81\x7D")},
        {WS_OP_BINARY, true, false, false, 126, RAW("\x82\x7E\x00\x7E")},
        {WS_OP_BINARY, true, false, false, 65535, RAW("\x82\x7E\xFF\xFF")},
        {WS_OP_BINARY, true, false, false, 65536, RAW("\x82\x7F\x00\x00\x00\x00\x00\x01\x00\x00")},
        {WS_OP_BINARY, true, false, false, 0x0123456789ABCDEFull, RAW("\x82\x7F\x01\x23\x45\x67\x89\xAB\xCD\xEF")},
        {WS_OP_TEXT, false, true, false, 3, RAW("\x41\x03")},
        {WS_OP_CONT, true, false, false, 1, RAW("\x80\x01")},
        {WS_OP_CLOSE, true, false, false, 2, RAW("\x88\x02")},
        {WS_OP_PING, true, false, true, 5, RAW("\x89\x85\xA1\xB2\xC3\xD4")},
        {WS_OP_PONG, true, false, true, 126, RAW("\x8A\xFE\x00\x7E\xA1\xB2\xC3\xD4")},
        {WS_OP_BINARY, false, false, true, 65536, RAW("\x02\xFF\x00\x00\x00\x00\x00\x01\x00\x00\xA1\xB2\xC3\xD4")},
    };
    for (const auto &c : cases) {
        uint8_t out[FRAME_MAX_HEADER + 2];
        memset(out, 0xEE, sizeof out);
        size_t n = frame_write_header(out, c.op, c.fin, c.rsv1, c.len, c.masked ? key : nullptr);
        if (n != c.want_len || memcmp(out, c.want, n) != 0)
            fail_msg("op %u len %llu: wrote %zu bytes, want %zu", c.op, (unsigned long long)c.len, n, c.want_len);
        assert_int_equal(out[n], 0xEE); // nothing written past the returned size
    }
}

// frame_mask against the definition, data[i] ^= key[(offset + i) % 4], for every
// start offset and every length through a few 16-byte vectors, at unaligned
// addresses; masking twice restores the data; and masking in pieces with the running
// offset equals masking at once (how the parser unmasks across reads).
static void test_mask(void **) {
    static const uint8_t key[4] = {0x3C, 0xA5, 0x0F, 0xF0};
    // Up to 200 bytes: the 64-byte blocks of frame_mask_bulk, then the 16-, 8-, 4- and
    // 1-byte steps after them.
    uint8_t orig[200 + 3], got[200 + 3], want[200 + 3];
    for (size_t i = 0; i < sizeof orig; i++) orig[i] = (uint8_t)(i * 37 + 11);
    for (unsigned offset = 0; offset < 4; offset++) {
        for (size_t len = 0; len <= 200; len++) {
            for (size_t align = 0; align < 3; align++) {
                memcpy(got, orig, sizeof got);
                memcpy(want, orig, sizeof want);
                for (size_t i = 0; i < len; i++) want[align + i] ^= key[(offset + i) % 4];
                frame_mask(got + align, len, key, offset);
                if (memcmp(got, want, sizeof got) != 0) fail_msg("offset %u len %zu align %zu", offset, len, align);
                frame_mask(got + align, len, key, offset);
                if (memcmp(got, orig, sizeof got) != 0) fail_msg("unmask: offset %u len %zu", offset, len);
            }
            for (size_t cut = 0; cut <= len; cut++) {
                memcpy(got, orig, sizeof got);
                frame_mask(got, cut, key, offset);
                frame_mask(got + cut, len - cut, key, (unsigned)((offset + cut) & 3));
                memcpy(want, orig, sizeof want);
                frame_mask(want, len, key, offset);
                if (memcmp(got, want, sizeof got) != 0) fail_msg("pieces: offset %u len %zu cut %zu", offset, len, cut);
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// Close frame bodies (§5.5.1, §7.4).

static void test_close_parse(void **) {
    static const uint16_t invalid[] = {0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535};
    static const uint16_t valid[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010,
                                     1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999};
    uint16_t code = 0;
    assert_int_equal(frame_close_parse(nullptr, 0, &code), 0);
    assert_int_equal(code, WS_CLOSE_NO_STATUS);

    static const uint8_t one[] = {0x03};
    assert_int_equal(frame_close_parse(one, 1, &code), WS_CLOSE_PROTOCOL);

    for (uint16_t c : invalid) {
        uint8_t body[] = {(uint8_t)(c >> 8), (uint8_t)c};
        if (frame_close_parse(body, 2, &code) != WS_CLOSE_PROTOCOL) fail_msg("code %u accepted", c);
        if (frame_close_code_valid(c)) fail_msg("code %u valid", c);
    }
    for (uint16_t c : valid) {
        uint8_t body[] = {(uint8_t)(c >> 8), (uint8_t)c, 'b', 'y', 'e'};
        code = 0;
        if (frame_close_parse(body, sizeof body, &code) != 0 || code != c) fail_msg("code %u rejected", c);
        if (frame_close_parse(body, 2, &code) != 0 || code != c) fail_msg("code %u without reason rejected", c);
    }

    static const struct {
        const char *reason;
        size_t n;
        uint16_t want;
    } reasons[] = {
        {RAW("\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5"), 0}, // "κόσμε": valid UTF-8
        {RAW("\xF0\x9F\x98\x80"), 0},
        {RAW("ok\xFF"), WS_CLOSE_BAD_DATA},
        {RAW("\xED\xA0\x80"), WS_CLOSE_BAD_DATA},         // surrogate
        {RAW("\xCE\xBA\xE1\xBD"), WS_CLOSE_BAD_DATA},     // ends mid code point
        {RAW("\xC0\xAF"), WS_CLOSE_BAD_DATA},             // overlong
    };
    for (const auto &r : reasons) {
        uint8_t body[64] = {0x03, 0xE8}; // 1000
        memcpy(body + 2, r.reason, r.n);
        code = 0;
        uint16_t got = frame_close_parse(body, 2 + r.n, &code);
        if (got != r.want) fail_msg("reason of %zu bytes: %u, want %u", r.n, got, r.want);
        if (!got && code != 1000) fail_msg("reason of %zu bytes: code %u", r.n, code);
    }
    // A bad code wins over a bad reason: 1002 rather than 1007.
    static const uint8_t both[] = {0x03, 0xED, 0xFF};
    assert_int_equal(frame_close_parse(both, sizeof both, &code), WS_CLOSE_PROTOCOL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_rules),
        cmocka_unit_test(test_reserved_opcodes),
        cmocka_unit_test(test_first_byte_errors_need_no_more_input),
        cmocka_unit_test(test_message_limit),
        cmocka_unit_test(test_chunking_does_not_matter),
        cmocka_unit_test(test_payload_lengths),
        cmocka_unit_test(test_write_header),
        cmocka_unit_test(test_mask),
        cmocka_unit_test(test_whole_frame_path),
        cmocka_unit_test(test_close_parse),
    };
    return unit_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
