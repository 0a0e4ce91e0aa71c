// Fuzz target for the whole server read path (src/core + src/proto) with no sockets.
//
// A server is created on a fresh uv loop for every input, with "/echo" routed to the
// echo handler (src/app/echo.cpp) and "/broadcast" to the broadcast room
// (src/app/broadcast.cpp). Its transport (srv->io) is replaced by an in-memory one:
// read hands out the input stream chunk by chunk (-EAGAIN when the current chunk is used
// up), writev appends to an output buffer (and, as the input asks, plays a full socket:
// -EAGAIN or a partial write), shutdown is recorded, pending reports the rest of the
// chunk. One connection is adopted with an eventfd as its descriptor (epoll accepts it,
// it is not a socket, it is never readable). For each chunk the harness does what the
// loop would: conn_on_readable (unless reading is paused), the flush pass
// (server_flush) and, for a connection that waits for writability, conn_flush. The
// connection is looked up by id every time, as it may be gone. At the end it drains the
// output, optionally delivers end of stream, runs wsr_server_shutdown and the loop until
// nothing is alive, frees the server and closes the loop (uv_loop_close must return 0:
// no handle left behind). LeakSanitizer checks the memory.
//
// Input layout (8 bytes of settings, then the client's byte stream):
//   [0] bits0-1 deflate: 0 off, 1 shared, 2 dedicated, 3 off; bit2 subprotocols "chat",
//       "superchat"; bit3 end of stream after the last chunk; bit4 prepend a canned
//       upgrade request (so the fuzzer can spend its bytes on frames); bit5 its path is
//       /broadcast instead of /echo; bits6-7 its Sec-WebSocket-Extensions (see g_ext)
//   [1] bits0-1 max_message: 64 KiB, 125, 1000, 4096; bits2-3 max_backpressure: 1 MiB,
//       1024, 4096, 64 KiB; bit4 slow policy drop; bits5-6 deflate_threshold 64, 0, 1, 200
//   [2] bits0-2 deflate_window_bits - 8; bits3-5 deflate_client_window_bits - 8;
//       bits6-7 zlib level 1, 2, 6, 9
//   [3] largest chunk (0 = one byte at a time)
//   [4..5] splitter seed
//   [6] write pressure: each writev is short with probability [6]/256 (half of those
//       -EAGAIN, half a partial write); 0 = the socket always takes everything
//   [7] bits0-3 deflate_mem_level - 1 (1..9, modulo 9); bit4 no flush pass between
//       wsr_server_shutdown and its (0 ms) timer
//
// Checks on the bytes the server wrote:
//   - they begin with a complete HTTP response head: "HTTP/1.1 101" or an error status
//     (400, 404, 405, 426, 431, 503) whose Content-Length body is all that follows;
//   - after a 101, only server frames (frame_parse with expect_masked false, RSV1 only
//     when the response agreed permessage-deflate, no size limit): unmasked, never
//     fragmented, control frames of at most 125 bytes, the output ends on a frame
//     boundary, a close frame (if any) is the last frame and its body is valid (a code
//     allowed on the wire and a UTF-8 reason, or empty);
//   - the server's data messages are the client's complete data messages, in order,
//     with none changed or added (some may be missing: slow-consumer drops, closing),
//     the client's side decoded separately (client_messages);
//   - every text message the server sends is valid UTF-8 (after inflating with the
//     parameters the response announced, for RSV1 messages): the echo only returns
//     what its validation passed;
//   - nothing is written after the transport was shut down; the shutdown callback runs
//     once; the loop ends with no live handles.
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <uv.h>

#include "app/broadcast.h"
#include "app/echo.h"
#include "core/conn.h"
#include "core/conn_table.h"
#include "core/server.h"
#include "core/transport.h"
#include "fuzz_util.h"
#include "proto/deflate.h"
#include "proto/extensions.h"
#include "proto/frame.h"
#include "proto/utf8.h"
#include "wsr/wsr.h"

enum { SETTINGS_LEN = 8, OUT_LIMIT = 16 << 20 };

static const char *const g_subprotocols[] = {"chat", "superchat", nullptr};

static const char *const g_ext[4] = {
    "",
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n",
    "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n",
    "Sec-WebSocket-Extensions: x-unknown, permessage-deflate; server_max_window_bits=9; client_max_window_bits=8\r\n",
};

// The in-memory transport's state: one connection per input, so it is global.
struct fake_io {
    const uint8_t *chunk; // unread bytes of the current chunk
    size_t left;
    bool eof;             // the peer ended the stream: read returns 0 once left is 0
    bool shut;            // the server shut its side
    bool force_full;      // writes take everything (draining, or no progress otherwise)
    bool truncated;       // output passed OUT_LIMIT: stop storing and checking
    uint8_t pressure;
    uint32_t rng;
    fuzz_trace out;
};
static fake_io g;

static uint32_t next_rand() {
    uint32_t x = g.rng;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    g.rng = x;
    return x;
}

static ssize_t fake_read(conn *, void *buf, size_t len) {
    if (g.left == 0) return g.eof ? 0 : -EAGAIN;
    size_t n = len < g.left ? len : g.left;
    memcpy(buf, g.chunk, n);
    g.chunk += n;
    g.left -= n;
    return (ssize_t)n;
}

static ssize_t fake_writev(conn *, const struct iovec *iov, int iovcnt) {
    size_t want = 0;
    for (int i = 0; i < iovcnt; i++) want += iov[i].iov_len;
    FUZZ_CHECK(!g.shut, "writev of %zu bytes after the transport was shut down", want);
    size_t take = want;
    if (!g.force_full && g.pressure && want > 0) {
        uint32_t r = next_rand();
        if ((r & 255) < g.pressure) {
            if (r & 256) return -EAGAIN;
            take = (r >> 9) % want; // 0..want-1: a short write (0 is a legal, if odd, answer)
        }
    }
    size_t left = take;
    for (int i = 0; i < iovcnt && left > 0; i++) {
        size_t k = iov[i].iov_len < left ? iov[i].iov_len : left;
        if (!g.truncated) {
            if (g.out.len + k > OUT_LIMIT) g.truncated = true;
            else fuzz_trace_put(&g.out, iov[i].iov_base, k);
        }
        left -= k;
    }
    return (ssize_t)take;
}

static void fake_shutdown(conn *) { g.shut = true; }
static size_t fake_pending(conn *) { return g.left; }

static const transport_ops fake_transport = {fake_read, fake_writev, fake_shutdown, fake_pending};

static int g_done_calls;

static void on_done(wsr_server *, uint32_t, uint32_t) { g_done_calls++; }

// --- checking the output ------------------------------------------------------------

static const uint8_t *find(const uint8_t *h, size_t hn, const char *needle) {
    return (const uint8_t *)memmem(h, hn, needle, strlen(needle));
}

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

// The client's complete data messages, decoded independently of the server: the
// stream after the request head, parsed as a server would (masked frames, the size
// limit, RSV1 when agreed), fragments joined, compressed ones inflated with a 15-bit
// window (any window the client was allowed fits in it) and reset as agreed. Stops at
// the first protocol error and at the client's close frame.
static void client_messages(const uint8_t *stream, size_t n, const pmd_params *pmd, uint64_t max_message,
                            fuzz_trace *log) {
    uint8_t *d = (uint8_t *)malloc(n ? n : 1);
    FUZZ_CHECK(d != nullptr, "out of memory");
    if (n) memcpy(d, stream, n);
    frame_limits lim = {max_message, pmd->enabled, true};
    frame_parser p;
    frame_parser_init(&p);
    pmd_stream inf = {};
    if (pmd->enabled) FUZZ_CHECK(pmd_inflater_init(&inf, 15) == PMD_OK, "reference inflater");
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

static void check_frames(uint8_t *d, size_t n, const pmd_params *pmd, fuzz_trace *sent) {
    frame_limits lim = {UINT64_MAX, pmd->enabled, false};
    frame_parser p;
    frame_parser_init(&p);
    pmd_stream inf = {};
    if (pmd->enabled) FUZZ_CHECK(pmd_inflater_init(&inf, pmd->server_window_bits) == PMD_OK, "client inflater");
    fuzz_trace payload;
    fuzz_trace_init(&payload);
    size_t pos = 0, end_pos = 0;
    bool closed = false;
    frame_event ev;
    for (;;) {
        size_t used = frame_parse(&p, &lim, d + pos, n - pos, &ev);
        pos += used;
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
            end_pos = pos;
            if (ev.opcode == WS_OP_CLOSE) {
                uint16_t code = 0;
                FUZZ_CHECK(frame_close_parse(payload.data, payload.len, &code) == 0,
                           "invalid close frame from the server (%zu bytes)", payload.len);
                closed = true;
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
    FUZZ_CHECK(end_pos == n, "server output ends inside a frame (%zu of %zu bytes are whole frames)", end_pos, n);
    fuzz_trace_free(&payload);
    pmd_inflater_free(&inf);
}

static void check_output(int deflate_mode, const fuzz_trace *stream, uint64_t max_message) {
    if (g.truncated || g.out.len == 0) return;
    uint8_t *o = g.out.data;
    size_t n = g.out.len;
    FUZZ_CHECK(n >= 13 && memcmp(o, "HTTP/1.1 ", 9) == 0, "output does not begin with a status line");
    const uint8_t *he = find(o, n, "\r\n\r\n");
    FUZZ_CHECK(he != nullptr, "the response head is incomplete (%zu bytes written)", n);
    size_t head_len = (size_t)(he - o) + 4;
    int status = (o[9] - '0') * 100 + (o[10] - '0') * 10 + (o[11] - '0');
    FUZZ_CHECK(o[12] == ' ', "bad status line");
    const char *head = (const char *)o;
    if (status != 101) {
        FUZZ_CHECK(status == 400 || status == 404 || status == 405 || status == 426 || status == 431 || status == 503 ||
                       status == 505,
                   "unexpected status %d", status);
        size_t vlen = 0;
        const char *cl = header_value(head, head_len, "Content-Length", &vlen);
        FUZZ_CHECK(cl != nullptr, "error response without Content-Length");
        size_t body = strtoul(cl, nullptr, 10);
        FUZZ_CHECK(n == head_len + body, "error response: %zu bytes written, head %zu + body %zu", n, head_len, body);
        return;
    }
    pmd_params pmd = {};
    size_t vlen = 0;
    const char *ext = header_value(head, head_len, "Sec-WebSocket-Extensions", &vlen);
    if (ext) {
        FUZZ_CHECK(deflate_mode != WSR_DEFLATE_OFF, "extension answered with deflate off");
        pmd_config any = {PMD_DEDICATED, 15, 15};
        pmd_negotiate(&any, ext, vlen, &pmd);
        FUZZ_CHECK(pmd.enabled, "the response's extension is not permessage-deflate: %.*s", (int)vlen, ext);
        if (deflate_mode == WSR_DEFLATE_SHARED)
            FUZZ_CHECK(pmd.server_no_context_takeover && pmd.client_no_context_takeover,
                       "shared mode without no_context_takeover both ways");
    }
    fuzz_trace sent, received;
    fuzz_trace_init(&sent);
    fuzz_trace_init(&received);
    check_frames(o + head_len, n - head_len, &pmd, &sent);

    // Echo and a one-member broadcast room send back what they received, in order;
    // a message may be missing (a slow-consumer drop, or the connection closing), but
    // none may differ or be added. The request head ends at its first empty line; a
    // line may end in a bare LF (RFC 9112 §2.2 lets a recipient accept that, and llhttp
    // does: "...13\r\n\n" ends a head; found by this target).
    // Empty lines before the request line are skipped (RFC 9112 §2.2; also found here).
    size_t lead = 0;
    while (lead < stream->len && (stream->data[lead] == '\r' || stream->data[lead] == '\n')) lead++;
    const uint8_t *lf_lf = find(stream->data + lead, stream->len - lead, "\n\n");
    const uint8_t *lf_crlf = find(stream->data + lead, stream->len - lead, "\n\r\n");
    size_t req_len = SIZE_MAX;
    if (lf_lf) req_len = (size_t)(lf_lf - stream->data) + 2;
    if (lf_crlf && (size_t)(lf_crlf - stream->data) + 3 < req_len) req_len = (size_t)(lf_crlf - stream->data) + 3;
    FUZZ_CHECK(req_len != SIZE_MAX, "101 without a complete request head");
    client_messages(stream->data + req_len, stream->len - req_len, &pmd, max_message, &received);
    msg_ref *out_msgs, *in_msgs;
    size_t nout = split_log(&sent, &out_msgs), nin = split_log(&received, &in_msgs);
    size_t j = 0;
    for (size_t i = 0; i < nout; i++) {
        while (j < nin && !(in_msgs[j].op == out_msgs[i].op && in_msgs[j].n == out_msgs[i].n &&
                            (out_msgs[i].n == 0 || memcmp(in_msgs[j].d, out_msgs[i].d, out_msgs[i].n) == 0)))
            j++;
        FUZZ_CHECK(j < nin, "server message %zu of %zu (opcode %u, %zu bytes) is not an echo of the client's %zu messages",
                   i + 1, nout, out_msgs[i].op, out_msgs[i].n, nin);
        j++;
    }
    free(out_msgs);
    free(in_msgs);
    fuzz_trace_free(&sent);
    fuzz_trace_free(&received);
}

// --- the run ------------------------------------------------------------------------

static conn *lookup(wsr_server *srv, wsr_conn_id id) { return conn_table_lookup(&srv->table, id); }

// What the loop does after a readable event: the flush pass, and a write for a
// connection waiting for writability (an eventfd always is writable).
static void after_event(wsr_server *srv, wsr_conn_id id) {
    server_flush(srv);
    conn *c = lookup(srv, id);
    if (c && (c->flags & CF_WANT_WRITE)) conn_flush(srv, c);
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < SETTINGS_LEN) return 0;
    wsr_log_set_level(WSR_LOG_ERROR);
    const uint8_t *s = data;

    static const uint64_t max_msg[4] = {64 * 1024, 125, 1000, 4096};
    static const uint64_t max_bp[4] = {1 << 20, 1024, 4096, 64 * 1024};
    static const uint32_t thresholds[4] = {64, 0, 1, 200};
    static const uint8_t levels[4] = {1, 2, 6, 9};
    static const wsr_deflate_mode dmodes[4] = {WSR_DEFLATE_OFF, WSR_DEFLATE_SHARED, WSR_DEFLATE_DEDICATED,
                                               WSR_DEFLATE_OFF};
    wsr_options o;
    wsr_options_default(&o);
    o.listen = "127.0.0.1:0";
    o.max_message = max_msg[s[1] & 3];
    o.max_backpressure = max_bp[(s[1] >> 2) & 3];
    o.slow_policy = (s[1] & 16) ? WSR_SLOW_DROP : WSR_SLOW_CLOSE;
    o.deflate_threshold = thresholds[(s[1] >> 5) & 3];
    o.deflate = dmodes[s[0] & 3];
    o.deflate_window_bits = (uint8_t)(8 + (s[2] & 7));
    o.deflate_client_window_bits = (uint8_t)(8 + ((s[2] >> 3) & 7));
    o.deflate_level = levels[s[2] >> 6];
    o.deflate_mem_level = (uint8_t)(1 + (s[7] & 15) % 9);
    o.subprotocols = (s[0] & 4) ? g_subprotocols : nullptr;
    // Timeouts that never fire while an input runs (no real time passes that matters),
    // except the shutdown's: it cuts what did not finish closing at once.
    o.handshake_timeout_ms = 1000000;
    o.close_timeout_ms = 1000000;
    o.ping_interval_ms = 0;
    o.pong_timeout_ms = 0;
    o.idle_timeout_ms = 0;
    o.shutdown_timeout_ms = 0;
    o.max_connections = 8;

    // The client's stream: optionally a canned upgrade request, then the input.
    fuzz_trace stream;
    fuzz_trace_init(&stream);
    if (s[0] & 16) {
        const char *path = (s[0] & 32) ? "/broadcast" : "/echo";
        char req[512];
        int rn = snprintf(req, sizeof req,
                          "GET %s HTTP/1.1\r\nHost: fuzz\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n%s\r\n",
                          path, g_ext[s[0] >> 6]);
        fuzz_trace_put(&stream, req, (size_t)rn);
    }
    fuzz_trace_put(&stream, data + SETTINGS_LEN, size - SETTINGS_LEN);

    memset(&g, 0, sizeof g);
    fuzz_trace_init(&g.out);
    g.pressure = s[6];
    g.rng = ((uint32_t)s[4] | (uint32_t)s[5] << 8) * 2654435761u + 12345u;
    if (g.rng == 0) g.rng = 1;
    g_done_calls = 0;

    uv_loop_t loop;
    FUZZ_CHECK(uv_loop_init(&loop) == 0, "uv_loop_init");
    wsr_server *srv = nullptr;
    FUZZ_CHECK(wsr_server_new(&loop, &o, &srv) == WSR_OK, "wsr_server_new");
    broadcast_room room = {};
    FUZZ_CHECK(wsr_server_route(srv, "/echo", &echo_handlers, nullptr) == WSR_OK, "route /echo");
    FUZZ_CHECK(wsr_server_route(srv, "/broadcast", &broadcast_handlers, &room) == WSR_OK, "route /broadcast");
    srv->io = &fake_transport;
    // Short rounds, so that the messages of a run (at most 64 KiB) exercise input held
    // over between rounds and messages inflated over several.
    srv->round_budget = 2048;

    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    FUZZ_CHECK(efd >= 0, "eventfd: %s", strerror(errno));
    conn *c0 = server_adopt(srv, efd);
    FUZZ_CHECK(c0 != nullptr, "server_adopt");
    wsr_conn_id id = conn_id(c0);

    fuzz_splitter split;
    fuzz_splitter_init(&split, (uint32_t)s[4] | (uint32_t)s[5] << 8, s[3]);
    size_t pos = 0;
    while (pos < stream.len && lookup(srv, id)) {
        size_t k = fuzz_splitter_next(&split, stream.len - pos);
        g.chunk = stream.data + pos;
        g.left = k;
        pos += k;
        int stall = 0;
        while (g.left > 0) {
            conn *c = lookup(srv, id);
            if (!c) break;
            size_t before = g.left;
            // Work held over from a round that used up its budget (input, a message
            // half inflated) is a round of its own (the server's backlog pass):
            // progress, though no new byte is read.
            bool held = conn_waits(c);
            // Level-triggered epoll: reported readable while bytes are left, unless
            // reading is paused (EPOLLIN off) or the connection is already dead.
            if (!(c->flags & (CF_READ_PAUSED | CF_DEAD))) conn_on_readable(srv, c);
            after_event(srv, id);
            if (g.left < before || held) {
                stall = 0;
                g.force_full = false;
            } else if (++stall >= 3) {
                // Paused behind a full socket: let the socket drain, as a peer that
                // reads eventually does.
                g.force_full = true;
                FUZZ_CHECK(stall < 20, "no progress: %zu bytes of a chunk never read (flags %#x state %u)", g.left,
                           c->flags, c->state);
            }
        }
        g.force_full = false;
    }

    // The peer reads everything (and, if the input says so, ends its stream).
    g.force_full = true;
    g.left = 0;
    after_event(srv, id);
    if (s[0] & 8) {
        g.eof = true;
        conn *c = lookup(srv, id);
        if (c && !(c->flags & CF_DEAD)) conn_on_readable(srv, c);
        after_event(srv, id);
    }

    wsr_server_shutdown(srv, on_done);
    // The loop runs expired timers before its flush pass (uv prepare). Usually the flush
    // pass comes first, as the shutdown timeout is seconds long; bit 4 of [7] lets the
    // shutdown timer fire first, as it does with shutdown_timeout_ms 0 or after a read
    // in the iteration just before the timeout (fuzz/regression/connection/README.md,
    // finding 1: the shutdown never completed).
    if (!(s[7] & 16)) server_flush(srv);
    for (int i = 0; i < 64 && uv_loop_alive(&loop); i++) uv_run(&loop, UV_RUN_NOWAIT);
    FUZZ_CHECK(!uv_loop_alive(&loop), "the loop is still alive after shutdown");
    FUZZ_CHECK(g_done_calls == 1, "shutdown callback ran %d times", g_done_calls);
    FUZZ_CHECK(srv->table.live == 0, "%u connections left after shutdown", srv->table.live);
    wsr_server_free(srv);
    uv_run(&loop, UV_RUN_NOWAIT);
    FUZZ_CHECK(uv_loop_close(&loop) == 0, "uv_loop_close: handles left open");
    broadcast_room_free(&room);

    check_output(o.deflate, &stream, o.max_message);
    fuzz_trace_free(&g.out);
    fuzz_trace_free(&stream);
    return 0;
}
