// Fuzz target for the RFC 6455 frame parser (src/proto/frame.*).
//
// Input layout (5 bytes of settings, then the byte stream as it would arrive on a socket):
//   [0] flags: bit0 allow_rsv1, bit1 client side (expect_masked = false),
//              bits2-3 message limit class (see limits_from)
//   [1] limit parameter for the small classes
//   [2] largest chunk when splitting (0 = one byte at a time)
//   [3..4] splitter seed
//
// Four runs over the stream must agree:
//   A  frame_parse over the whole stream in one slice,
//   B  frame_parse over the same bytes cut into chunks,
//   C  the same chunks, each offered to frame_parse_whole (the server's fast path for a
//      whole frame) before frame_parse, as the server does,
//   R  a reference decoder written here, non-incremental, straight from RFC 6455 §5.2.
// A and B must produce identical event logs (headers, the concatenated payload of each
// frame, ends, the error code and reason) and identical final parser state: principle 1
// of docs/design: "1 byte at a time must give the same result as all at once". A and R
// must agree on everything but the reason text. C must give exactly what B gives, and
// end in the same parser state. Every call is also checked against the
// frame_parse contract (consumed <= given, NEED_MORE consumed everything, payload sums
// to frame_len, errors are sticky, no call loops without progress).
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "proto/frame.h"
#include "proto/utf8.h"

enum { SETTINGS_LEN = 5 };

// Log record tags. Payload is logged once per frame (all PAYLOAD events of the frame
// concatenated), so chunking does not show in the log.
enum : uint8_t { T_HEADER = 'H', T_PAYLOAD = 'P', T_END = 'E', T_ERROR = 'X', T_NEED_MORE = 'N', T_REASON = 'R' };

static void limits_from(const uint8_t *s, frame_limits *lim) {
    lim->allow_rsv1 = s[0] & 1;
    lim->expect_masked = !(s[0] & 2);
    // Compressed frames are held to max_message too, as the checks below and the
    // reference assume (left unset, this field was whatever the stack held).
    lim->max_compressed = 0;
    switch ((s[0] >> 2) & 3) {
    case 0: lim->max_message = s[1]; break;                 // tiny: 0..255, around the 125/126 edge
    case 1: lim->max_message = (uint64_t)s[1] * 257; break; // 0..65535, around the 16-bit edge
    case 2: lim->max_message = 1u << 20; break;             // the daemon's default
    default: lim->max_message = UINT64_MAX; break;          // unlimited: 64-bit lengths pass the cap
    }
}

// Payload of the frame being logged, flushed as one T_PAYLOAD record.
struct frame_log {
    fuzz_trace *t;
    fuzz_trace payload;
    bool open;
};

static void log_flush_payload(frame_log *l) {
    if (!l->open) return;
    fuzz_trace_u8(l->t, T_PAYLOAD);
    fuzz_trace_u64(l->t, l->payload.len);
    fuzz_trace_put(l->t, l->payload.data, l->payload.len);
    l->payload.len = 0;
    l->open = false;
}

static void log_header(frame_log *l, uint8_t op, uint8_t fin, uint8_t rsv1, uint64_t len) {
    fuzz_trace_u8(l->t, T_HEADER);
    fuzz_trace_u8(l->t, op);
    fuzz_trace_u8(l->t, fin);
    fuzz_trace_u8(l->t, rsv1);
    fuzz_trace_u64(l->t, len);
    l->open = true;
}

static void log_end(frame_log *l, uint8_t op, uint8_t fin, uint8_t rsv1) {
    log_flush_payload(l);
    fuzz_trace_u8(l->t, T_END);
    fuzz_trace_u8(l->t, op);
    fuzz_trace_u8(l->t, fin);
    fuzz_trace_u8(l->t, rsv1);
}

static void log_error(frame_log *l, uint16_t code) {
    log_flush_payload(l);
    fuzz_trace_u8(l->t, T_ERROR);
    fuzz_trace_put(l->t, &code, sizeof code);
}

// ---------------------------------------------------------------------------------
// Runs A and B: the parser under test.

struct run_result {
    fuzz_trace trace;      // events, with error reasons
    fuzz_trace reasons;    // error reason texts (kept apart so the reference can skip them)
    frame_parser final;    // parser state after the last call
    size_t consumed;       // bytes consumed over all calls
};

// Feeds in[0..n) to a fresh parser in the chunks the splitter gives (one chunk when
// split is NULL) and logs what comes out.
static void run_parser(const frame_limits *lim, const uint8_t *in, size_t n, fuzz_splitter *split, bool fast,
                       run_result *out) {
    // The parser unmasks in place, so it gets its own copy; the reference reads `in`.
    uint8_t *buf = (uint8_t *)malloc(n ? n : 1);
    FUZZ_CHECK(buf != nullptr, "out of memory");
    if (n) memcpy(buf, in, n);

    frame_parser p;
    frame_parser_init(&p);
    fuzz_trace_init(&out->trace);
    fuzz_trace_init(&out->reasons);
    frame_log log = {&out->trace, {nullptr, 0, 0}, false};

    bool in_frame = false;   // between HEADER and END
    uint64_t frame_len = 0;  // of the current frame
    uint64_t frame_got = 0;  // payload bytes delivered for it
    uint8_t cur_op = 0, cur_fin = 0, cur_rsv1 = 0;
    bool failed = false;
    size_t pos = 0;

    while (!failed) {
        size_t chunk = split ? fuzz_splitter_next(split, n - pos) : n - pos;
        size_t end = pos + chunk;
        int idle = 0; // calls in a row that consumed nothing
        for (;;) {
            frame_event ev;
            memset(&ev, 0xA5, sizeof ev); // fields the parser forgets to set show up as garbage
            size_t give = end - pos;
            if (fast && !in_frame) {
                size_t w = frame_parse_whole(&p, lim, buf + pos, give, &ev);
                FUZZ_CHECK(w <= give, "whole frame of %zu bytes from %zu", w, give);
                if (w) {
                    FUZZ_CHECK(ev.type == FRAME_PAYLOAD && ev.fin && ev.len == ev.frame_len &&
                                   ev.data + ev.len == buf + pos + w && !ws_opcode_is_control(ev.opcode),
                               "whole frame event does not describe the bytes taken");
                    log_header(&log, ev.opcode, ev.fin, ev.rsv1, ev.frame_len);
                    fuzz_trace_put(&log.payload, ev.data, ev.len);
                    log_end(&log, ev.opcode, ev.fin, ev.rsv1);
                    pos += w;
                    idle = 0;
                    continue;
                }
                memset(&ev, 0xA5, sizeof ev);
            }
            size_t got = frame_parse(&p, lim, buf + pos, give, &ev);
            FUZZ_CHECK(got <= give, "consumed %zu of %zu bytes", got, give);
            idle = got ? 0 : idle + 1;
            // END then HEADER is the longest legitimate run without progress (an empty
            // frame); anything longer is a parser that would spin the event loop forever.
            FUZZ_CHECK(idle <= 2, "no progress after %d calls (event %u)", idle, ev.type);
            if (ev.type == FRAME_NEED_MORE) {
                FUZZ_CHECK(got == give, "NEED_MORE after consuming %zu of %zu bytes", got, give);
                pos += got;
                break;
            }
            if (ev.type == FRAME_HEADER) {
                FUZZ_CHECK(!in_frame, "HEADER inside a frame");
                FUZZ_CHECK(got > 0, "HEADER without consuming its last byte");
                if (ws_opcode_is_control(ev.opcode)) {
                    FUZZ_CHECK(ev.fin, "fragmented control frame accepted");
                    FUZZ_CHECK(ev.frame_len <= 125, "control frame of %llu bytes accepted",
                               (unsigned long long)ev.frame_len);
                } else {
                    FUZZ_CHECK(ev.frame_len <= lim->max_message, "frame over the message limit accepted");
                }
                FUZZ_CHECK(!ev.rsv1 || lim->allow_rsv1, "RSV1 accepted without negotiation");
                in_frame = true;
                frame_len = ev.frame_len;
                frame_got = 0;
                cur_op = ev.opcode;
                cur_fin = ev.fin;
                cur_rsv1 = ev.rsv1;
                log_header(&log, ev.opcode, ev.fin, ev.rsv1, ev.frame_len);
            } else if (ev.type == FRAME_PAYLOAD) {
                FUZZ_CHECK(in_frame, "PAYLOAD outside a frame");
                FUZZ_CHECK(ev.len > 0 && ev.len == got, "PAYLOAD len %zu, consumed %zu", ev.len, got);
                FUZZ_CHECK(ev.data == buf + pos, "PAYLOAD data does not point at the consumed bytes");
                FUZZ_CHECK(ev.opcode == cur_op, "PAYLOAD opcode changed mid-frame");
                frame_got += ev.len;
                FUZZ_CHECK(frame_got <= frame_len, "payload %llu over frame_len %llu",
                           (unsigned long long)frame_got, (unsigned long long)frame_len);
                fuzz_trace_put(&log.payload, ev.data, ev.len);
            } else if (ev.type == FRAME_END) {
                FUZZ_CHECK(in_frame, "END outside a frame");
                FUZZ_CHECK(got == 0, "END consumed %zu bytes", got);
                FUZZ_CHECK(frame_got == frame_len, "END after %llu of %llu payload bytes",
                           (unsigned long long)frame_got, (unsigned long long)frame_len);
                FUZZ_CHECK(ev.opcode == cur_op && ev.fin == cur_fin && ev.rsv1 == cur_rsv1,
                           "END fields differ from HEADER");
                in_frame = false;
                log_end(&log, ev.opcode, ev.fin, ev.rsv1);
            } else {
                FUZZ_CHECK(ev.type == FRAME_ERROR, "unknown event type %u", ev.type);
                FUZZ_CHECK(ev.close_code == WS_CLOSE_PROTOCOL || ev.close_code == WS_CLOSE_TOO_BIG,
                           "error close code %u", ev.close_code);
                FUZZ_CHECK(ev.reason && ev.reason[0], "error without a reason");
                FUZZ_CHECK(strlen(ev.reason) <= 123, "reason does not fit a close frame");
                log_error(&log, ev.close_code);
                fuzz_trace_put(&out->reasons, ev.reason, strlen(ev.reason) + 1);
                pos += got;
                // Sticky: the next call fails again and consumes nothing.
                frame_event again;
                size_t got2 = frame_parse(&p, lim, buf + pos, end - pos, &again);
                FUZZ_CHECK(got2 == 0 && again.type == FRAME_ERROR, "error is not sticky");
                failed = true;
                break;
            }
            pos += got;
        }
        if (pos == n) break;
    }
    log_flush_payload(&log);
    if (!failed) fuzz_trace_u8(&out->trace, T_NEED_MORE);
    fuzz_trace_free(&log.payload);
    out->final = p;
    out->consumed = pos;
    free(buf);
}

// ---------------------------------------------------------------------------------
// Run R: the reference. It sees the whole stream at once and decodes frame by frame
// with plain indexing. It reports an error at the same point the parser promises to:
// the first-byte rules as soon as byte 0 is in, the second-byte rules at byte 1, the top
// bit of a 64-bit length at its first byte, and the rest once the header is complete.

static bool ref_opcode_known(uint8_t op) { return op == 0 || op == 1 || op == 2 || op == 8 || op == 9 || op == 10; }

// Close codes a peer may send (RFC 6455 §7.4.1/§7.4.2 plus the IANA registry: 1012-1014).
static bool ref_close_code_ok(unsigned c) {
    switch (c) {
    case 1000: case 1001: case 1002: case 1003:
    case 1007: case 1008: case 1009: case 1010: case 1011: case 1012: case 1013: case 1014:
        return true;
    default:
        return c >= 3000 && c <= 4999;
    }
}

static void ref_check_close(const uint8_t *payload, size_t len) {
    uint16_t code = 0xBEEF;
    uint16_t bad = frame_close_parse(payload, len, &code);
    if (len == 0) {
        FUZZ_CHECK(bad == 0 && code == WS_CLOSE_NO_STATUS, "empty close: bad=%u code=%u", bad, code);
        return;
    }
    if (len == 1) {
        FUZZ_CHECK(bad == WS_CLOSE_PROTOCOL, "1-byte close body: bad=%u", bad);
        return;
    }
    unsigned c = (unsigned)payload[0] << 8 | payload[1];
    if (!ref_close_code_ok(c)) {
        FUZZ_CHECK(bad == WS_CLOSE_PROTOCOL, "close code %u: bad=%u", c, bad);
        return;
    }
    bool text_ok = utf8_complete(utf8_validate(UTF8_ACCEPT, payload + 2, len - 2));
    if (!text_ok) {
        FUZZ_CHECK(bad == WS_CLOSE_BAD_DATA, "close reason not UTF-8: bad=%u", bad);
        return;
    }
    FUZZ_CHECK(bad == 0 && code == c, "valid close %u: bad=%u code=%u", c, bad, code);
}

static void run_reference(const frame_limits *lim, const uint8_t *in, size_t n, fuzz_trace *t) {
    fuzz_trace_init(t);
    frame_log log = {t, {nullptr, 0, 0}, false};
    size_t pos = 0;
    bool in_msg = false;
    uint64_t msg_len = 0;
    uint16_t code = 0; // the error, once there is one
    uint8_t *plain = (uint8_t *)malloc(n ? n : 1);
    FUZZ_CHECK(plain != nullptr, "out of memory");

    for (;;) {
        if (pos == n) break;
        uint8_t b0 = in[pos];
        uint8_t op = b0 & 0x0F, fin = b0 >> 7, rsv1 = (b0 >> 6) & 1;
        bool control = op >= 8;
        bool bad0 = !ref_opcode_known(op) || (b0 & 0x30) || (rsv1 && (!lim->allow_rsv1 || (op != 1 && op != 2))) ||
                    (control && !fin) || (op == 0 && !in_msg) || ((op == 1 || op == 2) && in_msg);
        if (bad0) {
            code = WS_CLOSE_PROTOCOL;
            break;
        }
        if (pos + 1 == n) break;
        uint8_t b1 = in[pos + 1];
        bool masked = b1 >> 7;
        unsigned len7 = b1 & 0x7F;
        if (masked != lim->expect_masked || (control && len7 > 125)) {
            code = WS_CLOSE_PROTOCOL;
            break;
        }
        size_t ext = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
        size_t hlen = 2 + ext + (masked ? 4 : 0);
        if (len7 == 127 && pos + 2 < n && (in[pos + 2] & 0x80)) {
            code = WS_CLOSE_PROTOCOL;
            break;
        }
        if (n - pos < hlen) break;
        uint64_t len = len7;
        if (ext) {
            len = 0;
            for (size_t i = 0; i < ext; i++) len = len << 8 | in[pos + 2 + i];
        }
        bool minimal = ext == 0 || (ext == 2 && len >= 126) || (ext == 8 && len >= 65536 && !(len >> 63));
        if (!minimal) {
            code = WS_CLOSE_PROTOCOL;
            break;
        }
        const uint8_t *key = masked ? in + pos + 2 + ext : nullptr;
        if (!control) {
            // An overflow-checked sum: the check must not depend on how large the limit
            // is (and 32-bit targets have no 128-bit integer to sum in).
            uint64_t total = 0;
            if (__builtin_add_overflow(op == 0 ? msg_len : (uint64_t)0, len, &total) || total > lim->max_message) {
                code = WS_CLOSE_TOO_BIG;
                break;
            }
            msg_len = total;
            in_msg = !fin;
        }
        // The header writer must reproduce these exact bytes: the parser only accepts
        // minimal lengths, and the writer always writes minimal ones.
        uint8_t hdr[FRAME_MAX_HEADER];
        size_t hn = frame_write_header(hdr, op, fin, rsv1, len, key);
        FUZZ_CHECK(hn == hlen && memcmp(hdr, in + pos, hlen) == 0, "frame_write_header does not round-trip");
        log_header(&log, op, fin, rsv1, len);

        size_t avail = n - pos - hlen;
        size_t take = len < avail ? (size_t)len : avail;
        for (size_t i = 0; i < take; i++) plain[i] = in[pos + hlen + i] ^ (key ? key[i & 3] : 0);
        fuzz_trace_put(&log.payload, plain, take);
        if (take < len) break;
        if (op == WS_OP_CLOSE) ref_check_close(plain, take);
        log_end(&log, op, fin, rsv1);
        if (!control && fin) msg_len = 0;
        pos += hlen + take;
    }
    if (code) {
        log_error(&log, code);
    } else {
        log_flush_payload(&log);
        fuzz_trace_u8(t, T_NEED_MORE);
    }
    fuzz_trace_free(&log.payload);
    free(plain);
}

// frame_mask against a byte loop, at every key offset and any alignment the input gives.
static void check_mask(const uint8_t *in, size_t n) {
    if (n < 5) return;
    const uint8_t key[4] = {in[0], in[1], in[2], in[3]};
    unsigned off = in[4] & 3;
    size_t len = n - 5;
    uint8_t *a = (uint8_t *)malloc(len + 1);
    FUZZ_CHECK(a != nullptr, "out of memory");
    memcpy(a, in + 5, len);
    frame_mask(a, len, key, off);
    for (size_t i = 0; i < len; i++)
        FUZZ_CHECK(a[i] == (in[5 + i] ^ key[(off + i) & 3]), "frame_mask byte %zu of %zu, offset %u", i, len, off);
    free(a);
}

static bool same_state(const frame_parser *a, const frame_parser *b) {
    return a->remaining == b->remaining && a->msg_len == b->msg_len && a->state == b->state &&
           a->hdr_have == b->hdr_have && a->hdr_need == b->hdr_need && a->opcode == b->opcode && a->fin == b->fin &&
           a->rsv1 == b->rsv1 && a->in_message == b->in_message && a->msg_opcode == b->msg_opcode &&
           a->msg_rsv1 == b->msg_rsv1 && a->mask_off == b->mask_off && memcmp(a->mask, b->mask, 4) == 0 &&
           memcmp(a->hdr, b->hdr, a->hdr_have) == 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < SETTINGS_LEN) return 0;
    frame_limits lim;
    limits_from(data, &lim);
    fuzz_splitter split;
    fuzz_splitter_init(&split, (uint32_t)data[3] | (uint32_t)data[4] << 8, data[2]);
    const uint8_t *in = data + SETTINGS_LEN;
    size_t n = size - SETTINGS_LEN;

    run_result a, b, c;
    run_parser(&lim, in, n, nullptr, false, &a);
    run_parser(&lim, in, n, &split, false, &b);
    fuzz_splitter_init(&split, (uint32_t)data[3] | (uint32_t)data[4] << 8, data[2]); // the same chunks again
    run_parser(&lim, in, n, &split, true, &c);
    fuzz_trace ref;
    run_reference(&lim, in, n, &ref);

    FUZZ_CHECK(fuzz_trace_equal(&a.trace, &b.trace), "whole and split runs differ at log byte %zu (%zu vs %zu bytes)",
               fuzz_trace_diff_at(&a.trace, &b.trace), a.trace.len, b.trace.len);
    FUZZ_CHECK(fuzz_trace_equal(&a.reasons, &b.reasons), "whole and split runs give different error reasons");
    FUZZ_CHECK(a.consumed == b.consumed, "whole run consumed %zu, split run %zu", a.consumed, b.consumed);
    FUZZ_CHECK(same_state(&a.final, &b.final), "whole and split runs end in different parser states");
    FUZZ_CHECK(fuzz_trace_equal(&a.trace, &ref), "parser and reference differ at log byte %zu (%zu vs %zu bytes)",
               fuzz_trace_diff_at(&a.trace, &ref), a.trace.len, ref.len);
    FUZZ_CHECK(fuzz_trace_equal(&b.trace, &c.trace), "runs with and without the whole-frame path differ at log byte %zu",
               fuzz_trace_diff_at(&b.trace, &c.trace));
    FUZZ_CHECK(fuzz_trace_equal(&b.reasons, &c.reasons), "the whole-frame path changes an error reason");
    FUZZ_CHECK(b.consumed == c.consumed, "consumed %zu without the whole-frame path, %zu with it", b.consumed,
               c.consumed);
    FUZZ_CHECK(same_state(&b.final, &c.final), "the whole-frame path ends in a different parser state");
    check_mask(in, n);

    fuzz_trace_free(&c.trace);
    fuzz_trace_free(&c.reasons);
    fuzz_trace_free(&a.trace);
    fuzz_trace_free(&a.reasons);
    fuzz_trace_free(&b.trace);
    fuzz_trace_free(&b.reasons);
    fuzz_trace_free(&ref);
    return 0;
}
