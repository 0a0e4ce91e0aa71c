// Checks on a WebSocket server's output shared by fuzz_connection and fuzz_tls: the
// response head's headers, the server's frames, the client's messages decoded
// independently of the server, and the comparison of the two as message logs.
// Header-only like fuzz_util.h (static functions: each harness is its own program).
#pragma once

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fuzz_util.h"
#include "proto/deflate.h"
#include "proto/frame.h"
#include "proto/utf8.h"

// Value of a header in a response head (case-insensitive name), or NULL.
static const char *header_value(const char *head, size_t n, const char *name, size_t *vlen) {
    size_t k = strlen(name);
    for (size_t i = 0; i + 2 + k + 1 < n; i++) {
        if (head[i] != '\r' || head[i + 1] != '\n') continue;
        if (strncasecmp(head + i + 2, name, k) != 0 || head[i + 2 + k] != ':') continue;
        const char *v = head + i + 2 + k + 1;
        while (v < head + n && *v == ' ') v++;
        const char *e = (const char *)memmem(v, (size_t)(head + n - v), "\r\n", 2);
        FUZZ_CHECK(e != nullptr, "header %s does not end", name);
        *vlen = (size_t)(e - v);
        return v;
    }
    return nullptr;
}

// Data messages as a flat log: opcode, u64 length, bytes; one record per message.
static void log_message(fuzz_trace *log, uint8_t op, const uint8_t *d, size_t n) {
    fuzz_trace_u8(log, op);
    fuzz_trace_u64(log, n);
    fuzz_trace_put(log, d, n);
}

struct msg_ref {
    uint8_t op;
    const uint8_t *d;
    size_t n;
};

static size_t split_log(const fuzz_trace *log, msg_ref **out) {
    size_t count = 0, cap = 0, pos = 0;
    *out = nullptr;
    while (pos < log->len) {
        if (count == cap) {
            cap = cap ? cap * 2 : 16;
            *out = (msg_ref *)realloc(*out, cap * sizeof **out);
            FUZZ_CHECK(*out != nullptr, "out of memory");
        }
        msg_ref &m = (*out)[count++];
        m.op = log->data[pos];
        uint64_t n;
        memcpy(&n, log->data + pos + 1, sizeof n);
        m.n = (size_t)n;
        m.d = log->data + pos + 9;
        pos += 9 + m.n;
    }
    return count;
}

// Server frames: unmasked, unfragmented, control frames <= 125, text UTF-8 (after
// inflating RSV1 messages with the parameters pmd announced; pmd NULL: no deflate), a
// valid close last. Data messages go to sent, pongs to pongs (NULL: not logged).
// *end_pos: how many bytes are whole frames (the caller says whether the stream must
// end on a frame boundary). Returns whether a close frame came.
static bool check_frames(uint8_t *d, size_t n, const pmd_params *pmd, fuzz_trace *sent, fuzz_trace *pongs,
                         size_t *end_pos) {
    bool deflate = pmd && pmd->enabled;
    frame_limits lim = {UINT64_MAX, deflate, false, 0};
    frame_parser p;
    frame_parser_init(&p);
    pmd_stream inf = {};
    if (deflate) FUZZ_CHECK(pmd_inflater_init(&inf, pmd->server_window_bits) == PMD_OK, "client inflater");
    fuzz_trace payload;
    fuzz_trace_init(&payload);
    size_t pos = 0;
    *end_pos = 0;
    bool closed = false;
    frame_event ev;
    for (;;) {
        pos += frame_parse(&p, &lim, d + pos, n - pos, &ev);
        if (ev.type == FRAME_NEED_MORE) break;
        FUZZ_CHECK(ev.type != FRAME_ERROR, "server output at byte %zu is not a valid frame stream: %u %s", pos,
                   ev.close_code, ev.reason);
        if (ev.type == FRAME_HEADER) {
            FUZZ_CHECK(!closed, "a frame (opcode %u) after the close frame", ev.opcode);
            FUZZ_CHECK(ev.fin && ev.opcode != WS_OP_CONT, "the server fragmented a message (opcode %u fin %u)",
                       ev.opcode, ev.fin);
            payload.len = 0;
        } else if (ev.type == FRAME_PAYLOAD) {
            fuzz_trace_put(&payload, ev.data, ev.len);
        } else if (ev.type == FRAME_END) {
            *end_pos = pos;
            if (ev.opcode == WS_OP_CLOSE) {
                uint16_t code = 0;
                FUZZ_CHECK(frame_close_parse(payload.data, payload.len, &code) == 0,
                           "invalid close frame from the server (%zu bytes)", payload.len);
                closed = true;
            } else if (ev.opcode == WS_OP_PONG) {
                if (pongs) log_message(pongs, WS_OP_PING, payload.data, payload.len);
            } else if (ev.opcode == WS_OP_TEXT || ev.opcode == WS_OP_BINARY) {
                const uint8_t *m = payload.data;
                size_t mn = payload.len;
                pmd_buf plain = {};
                if (ev.rsv1) {
                    int r = pmd_inflate_message(&inf, payload.data, payload.len, &plain, 1u << 22,
                                                pmd->server_no_context_takeover);
                    FUZZ_CHECK(r == PMD_OK, "a compressed message from the server does not inflate: %d", r);
                    m = plain.data;
                    mn = plain.len;
                }
                log_message(sent, ev.opcode, m, mn);
                if (ev.opcode == WS_OP_TEXT)
                    FUZZ_CHECK(utf8_complete(utf8_validate(UTF8_ACCEPT, m, mn)),
                               "the server sent a text message that is not UTF-8 (%zu bytes)", mn);
                free(plain.data);
            }
        }
    }
    fuzz_trace_free(&payload);
    pmd_inflater_free(&inf);
    return closed;
}

// The client's complete data messages, decoded independently of the server: the
// stream after the request head, parsed as a server would (masked frames, the size
// limit, RSV1 when pmd agreed it; pmd NULL: no deflate), fragments joined, compressed
// ones inflated with a 15-bit window (any window the client was allowed fits in it) and
// reset as agreed. Stops at the first protocol error and at the client's close frame.
static void client_messages(const uint8_t *stream, size_t n, const pmd_params *pmd, uint64_t max_message,
                            fuzz_trace *log) {
    uint8_t *d = (uint8_t *)malloc(n ? n : 1);
    FUZZ_CHECK(d != nullptr, "out of memory");
    if (n) memcpy(d, stream, n);
    bool deflate = pmd && pmd->enabled;
    frame_limits lim = {max_message, deflate, true, pmd ? frame_max_compressed(max_message) : 0};
    frame_parser p;
    frame_parser_init(&p);
    pmd_stream inf = {};
    if (deflate) FUZZ_CHECK(pmd_inflater_init(&inf, 15) == PMD_OK, "reference inflater");
    fuzz_trace msg;
    fuzz_trace_init(&msg);
    size_t pos = 0;
    frame_event ev;
    for (bool done = false; !done;) {
        pos += frame_parse(&p, &lim, d + pos, n - pos, &ev);
        switch (ev.type) {
        case FRAME_NEED_MORE:
        case FRAME_ERROR: done = true; break;
        case FRAME_PAYLOAD:
            if (!ws_opcode_is_control(ev.opcode)) fuzz_trace_put(&msg, ev.data, ev.len);
            break;
        case FRAME_END:
            if (ev.opcode == WS_OP_CLOSE) {
                done = true;
            } else if (!ws_opcode_is_control(ev.opcode) && ev.fin) {
                if (p.msg_rsv1) {
                    pmd_buf plain = {};
                    int r = pmd_inflate_message(&inf, msg.data, msg.len, &plain, (size_t)max_message,
                                                pmd->client_no_context_takeover);
                    if (r == PMD_OK) log_message(log, p.msg_opcode, plain.data, plain.len);
                    free(plain.data);
                    if (r != PMD_OK) done = true;
                } else {
                    log_message(log, p.msg_opcode, msg.data, msg.len);
                }
                msg.len = 0;
            }
            break;
        default: break;
        }
    }
    fuzz_trace_free(&msg);
    pmd_inflater_free(&inf);
    free(d);
}

// got must be a subsequence of want (strict: equal). A message of got that is not found
// fails with "<what> i of n (opcode, bytes) is not <relation> the client's m<tail>".
static void compare_messages(const fuzz_trace *want, const fuzz_trace *got, bool strict, const char *what,
                             const char *relation, const char *tail) {
    msg_ref *w, *g;
    size_t nw = split_log(want, &w), ng = split_log(got, &g);
    size_t j = 0;
    for (size_t i = 0; i < ng; i++) {
        while (j < nw && !(w[j].op == g[i].op && w[j].n == g[i].n && (g[i].n == 0 || memcmp(w[j].d, g[i].d, g[i].n) == 0)))
            j++;
        FUZZ_CHECK(j < nw, "%s %zu of %zu (opcode %u, %zu bytes) is not %s the client's %zu%s", what, i + 1, ng, g[i].op,
                   g[i].n, relation, nw, tail);
        if (strict) FUZZ_CHECK(j == i, "%s %zu: the client's %zu was skipped", what, i + 1, i + 1);
        j++;
    }
    if (strict) FUZZ_CHECK(ng == nw, "%zu %ss for the client's %zu (nothing was corrupted)", ng, what, nw);
    free(w);
    free(g);
}
