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
//       wsr_server_shutdown and its (0 ms) timer; bit5 HTTP mode; bit6 PROXY mode;
//       bit7 unused. With bit5 or bit6 set, two more settings bytes follow:
//   [8] bits0-1 the upgrade hook of /ws: 0 accepts now, 1 refuses now (401 with
//       WWW-Authenticate), 2 defers and accepts, 3 defers and refuses; bits2-3 /api/*:
//       0 answers now, 1 later, 2 and 3 alternate (now first, later first); bit4
//       WSR_OPT_MAX_BODY 64 (else 1 MiB); bit5 allowed origin https://app.example.com;
//       bit6 an answer still owed after the last chunk is given only after end of
//       stream (bit3 of [0]) was delivered (else at once); bit7 the hook accepts with
//       the subprotocol "x-fuzz" when the request's first Sec-WebSocket-Protocol offers it
//   [9] bits0-1 PROXY mode: a canned PROXY header in front (0 none, 1 v1 TCP4, 2 v2
//       TCP4, 3 v2 TCP6 with a TLV); bits2-3 HTTP mode: canned requests in front of the
//       canned upgrade (0 none, 1 GET /healthz, 2 POST /api/echo with a body, 3 HEAD
//       /healthz and a chunked POST with Expect: 100-continue); bit4 a trusted proxy
//       (127.0.0.0/8); bit5 WSR_OPT_HTTP_MAX_REQUESTS 2; bit6 WSR_OPT_MAX_MEMORY at its
//       least (4/3 of max_message); bit7 unused
//
// Modes. (a) [7] bits5-6 clear: as before, /echo and /broadcast only. (b) HTTP mode adds
// plain HTTP routes and an endpoint with an upgrade hook: "/healthz" and "/ws" (GET,
// answered 200 in the callback), "/api/*" (GET|POST, answers with the request body
// echoed: 200, or 500 when the body starts with '!', or 204 without a body when it
// starts with '#'; now or later as [8] says) and the endpoint "/ws" (on_upgrade as [8]
// says, then echo). An answer given later is given when the next chunk has arrived
// (before it is read: the connection waits for the application and is not read), or
// after the last chunk. The canned upgrade's path is /ws instead of /broadcast. (c) PROXY
// mode: the connection comes from a listener added with WSR_LISTEN_PROXY (listener 1;
// nothing listens), so the stream must start with a PROXY v1 or v2 header. Modes b and c
// combine.
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
// In modes b and c the output is instead a sequence of complete HTTP/1.1 responses:
//   - each a status line, header lines and exactly Content-Length bytes of body (none
//     for 204, and none for an answer to HEAD); a "100 Continue" only before a final
//     response;
//   - the final responses, in order, are the answers the application gave with WSR_OK
//     (same status, same body; the 101 of an accepted upgrade, with the subprotocol it
//     chose), optionally followed by one response of the library itself (101 for an
//     endpoint without a hook, or a refusal with Connection: close);
//   - refusals of an upgrade and statuses >= 500 carry Connection: close, and nothing
//     is written after a response that does;
//   - after a 101, only server frames, checked as in mode a (the echo compared with the
//     client's messages when the upgrade request's place in the stream is known).
// And on the calls: an answer in the callback returns WSR_OK, one given later WSR_OK,
// WSR_ENOCONN or WSR_ESTATE, and a second answer to the same request WSR_ESTATE (or
// WSR_ENOCONN); no callback runs inside wsr_respond or wsr_upgrade_accept or inside
// another callback; a request reaches the application only once the one before it was
// answered; the connection waits for an answer only while one is owed; wsr_upgrade_accept
// on a plain request is WSR_ESTATE; on_open runs only after an accept, with the user
// pointer given there, and on_close once for each on_open. Views: the request's listener
// is the one the harness adopted it from, its address the canned PROXY header's source,
// a body never longer than WSR_OPT_MAX_BODY, an upgrade's Origin one that is allowed, at
// most one Host line (RFC 9112 §3.2); answers with bad arguments are WSR_EINVAL.
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
#include "ws_checks.h"
#include "proto/deflate.h"
#include "proto/extensions.h"
#include "proto/frame.h"
#include "proto/handshake.h"
#include "proto/proxy.h"
#include "proto/utf8.h"
#include "wsr/wsr.h"

enum { BASE_SETTINGS = 8, EXTRA_SETTINGS = 2, OUT_LIMIT = 16 << 20 };

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
    bool force_full;      // writes take everything (no progress otherwise)
    bool drain_all;       // ... from now on: the peer reads everything (the end of a run)
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

static ssize_t fake_read(wsr_server *, conn *, void *buf, size_t len) {
    if (g.left == 0) return g.eof ? 0 : -EAGAIN;
    size_t n = len < g.left ? len : g.left;
    memcpy(buf, g.chunk, n);
    g.chunk += n;
    g.left -= n;
    return (ssize_t)n;
}

static ssize_t fake_writev(wsr_server *, conn *, const struct iovec *iov, int iovcnt) {
    size_t want = 0;
    for (int i = 0; i < iovcnt; i++) want += iov[i].iov_len;
    FUZZ_CHECK(!g.shut, "writev of %zu bytes after the transport was shut down", want);
    size_t take = want;
    if (!g.force_full && !g.drain_all && g.pressure && want > 0) {
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

static bool fake_shutdown(wsr_server *, conn *) {
    g.shut = true;
    return true;
}
static size_t fake_pending(wsr_server *, conn *) { return g.left; }

static const transport_ops fake_transport = {fake_read, fake_writev, fake_shutdown, fake_pending, nullptr, nullptr};

static int g_done_calls;

static void on_done(wsr_server *, uint32_t, uint32_t) { g_done_calls++; }

// --- HTTP mode: the application's side ----------------------------------------------

// An answer the application gives (or gave) to a request.
enum answer_kind : uint8_t { ANS_RESPOND, ANS_ACCEPT };
struct answer {
    uint8_t kind;
    uint16_t status;     // 101 for an accept
    bool head;           // to a HEAD request: no body on the wire
    bool upgrade;        // to an upgrade request
    bool subproto;       // accepted with "x-fuzz"
    uint8_t *body;       // malloc'd copy (the request's views die with its callback)
    size_t len;
    const char *headers;
};

struct http_harness {
    bool on, proxy;      // modes b and c
    uint8_t hook, api;   // [8] bits0-1, bits2-3
    bool late, origin, use_subproto;
    uint64_t max_body;
    uint16_t listener;   // the listener the connection was adopted from
    char expect_addr[64]; // the canned PROXY header's source; "" when not known
    unsigned api_calls;
    int in_answer;       // inside wsr_respond / wsr_upgrade_accept
    int in_callback;     // inside one of the harness's callbacks
    unsigned accepts, opens, closes;
    bool has_pending;    // an answer given later: kept until the next chunk arrived
    wsr_conn_id pending_id;
    answer pending;
    answer *log;         // the answers that returned WSR_OK, in order
    size_t nlog, caplog;
};
static http_harness H;
static int g_conn_user; // the user pointer accepts give; on_open must see it

static const char WWW_AUTH[] = "WWW-Authenticate: Bearer realm=\"fuzz\"\r\n";
static const char API_HEADERS[] = "Content-Type: application/octet-stream\r\n";
static const char HEALTH_HEADERS[] = "Content-Type: text/plain\r\nCache-Control: no-store\r\n";

static uint8_t *copy_bytes(const void *p, size_t n) {
    uint8_t *d = (uint8_t *)malloc(n ? n : 1);
    FUZZ_CHECK(d != nullptr, "out of memory");
    if (n) memcpy(d, p, n);
    return d;
}

static bool str_is(wsr_str s, const char *lit) {
    size_t n = strlen(lit);
    return s.len == n && memcmp(s.ptr, lit, n) == 0;
}

static void enter(const char *what) {
    FUZZ_CHECK(H.in_answer == 0, "%s ran inside wsr_respond or wsr_upgrade_accept", what);
    FUZZ_CHECK(H.in_callback == 0, "%s ran inside another callback", what);
    H.in_callback++;
}
static void leave() { H.in_callback--; }

static int call_answer(wsr_server *srv, wsr_conn_id id, const answer *a) {
    H.in_answer++;
    int r = a->kind == ANS_ACCEPT ? wsr_upgrade_accept(srv, id, &g_conn_user, a->subproto ? "x-fuzz" : nullptr)
                                  : wsr_respond(srv, id, a->status, a->headers, a->body, a->len);
    H.in_answer--;
    return r;
}

// Gives an answer (in its callback, or later from between the loop's events). Takes
// a->body.
static void give_answer(wsr_server *srv, wsr_conn_id id, answer *a, bool in_call) {
    int r = call_answer(srv, id, a);
    if (in_call)
        FUZZ_CHECK(r == WSR_OK, "an answer (%u) in the request's callback returned %d", a->status, r);
    else
        FUZZ_CHECK(r == WSR_OK || r == WSR_ENOCONN || r == WSR_ESTATE || (a->kind == ANS_ACCEPT && r == WSR_ECLOSING),
                   "an answer (%u) given later returned %d (documented: WSR_OK, WSR_ENOCONN, WSR_ESTATE, and "
                   "WSR_ECLOSING for an accept the server answered 503 itself)",
                   a->status, r);
    if (r != WSR_OK) {
        free(a->body);
        return;
    }
    if (a->kind == ANS_ACCEPT) H.accepts++;
    if (H.nlog == H.caplog) {
        H.caplog = H.caplog ? H.caplog * 2 : 8;
        H.log = (answer *)realloc(H.log, H.caplog * sizeof *H.log);
        FUZZ_CHECK(H.log != nullptr, "out of memory");
    }
    H.log[H.nlog++] = *a;
    int r2 = call_answer(srv, id, a);
    FUZZ_CHECK(r2 == WSR_ESTATE || r2 == WSR_ENOCONN, "a second answer (%u) to one request returned %d", a->status, r2);
}

static void keep_pending(wsr_conn_id id, const answer *a) {
    H.has_pending = true;
    H.pending_id = id;
    H.pending = *a;
}

static void answer_pending(wsr_server *srv) {
    H.has_pending = false;
    give_answer(srv, H.pending_id, &H.pending, false);
}

// What every request shows, whatever its route.
static void request_facts(wsr_request *req, bool upgrade) {
    FUZZ_CHECK(!H.has_pending, "a request reached the application while the one before it waits for its answer");
    wsr_str name, value;
    for (size_t i = 0; wsr_request_header_at(req, i, &name, &value); i++)
        FUZZ_CHECK(name.len > 0 && name.ptr, "header %zu has an empty name", i);
    unsigned li = wsr_request_listener(req);
    FUZZ_CHECK(li == H.listener, "wsr_request_listener says %u, the connection came from %u", li, H.listener);
    char addr[80];
    size_t an = wsr_request_address(req, addr, sizeof addr);
    if (H.expect_addr[0])
        FUZZ_CHECK(an == strlen(H.expect_addr) && strcmp(addr, H.expect_addr) == 0,
                   "the client's address is %s, the PROXY header said %s", addr, H.expect_addr);
    wsr_str b = wsr_request_body(req);
    if (upgrade) FUZZ_CHECK(b.len == 0, "an upgrade request with a body of %zu bytes", b.len);
    FUZZ_CHECK(b.len <= H.max_body, "a body of %zu bytes passed WSR_OPT_MAX_BODY %llu", b.len,
               (unsigned long long)H.max_body);
    wsr_str q = wsr_request_query(req);
    (void)q;
    // RFC 9112 §3.2: a server MUST answer 400 to a request with more than one Host field
    // line. (Also to an HTTP/1.1 request without one, but the API does not show the
    // version; fuzz/regression/connection/README.md, finding 6.)
    size_t hosts = 0;
    for (size_t i = 0; wsr_request_header_at(req, i, &name, &value); i++)
        hosts += name.len == 4 && strncasecmp(name.ptr, "Host", 4) == 0;
    FUZZ_CHECK(hosts <= 1, "a request with %zu Host header lines reached the application", hosts);
}

// Calls with bad arguments: WSR_EINVAL, and nothing written.
static void bad_answers(wsr_server *srv, wsr_conn_id id, bool upgrade) {
    H.in_answer++;
    int r1 = wsr_respond(srv, id, upgrade ? 200 : 199, nullptr, "x", 1);
    int r2 = wsr_respond(srv, id, 404, "Content-Length: 1\r\n", "x", 1);
    int r3 = wsr_respond(srv, id, 204, nullptr, "x", 1);
    int r4 = upgrade ? wsr_upgrade_accept(srv, id, nullptr, "never-offered") : WSR_EINVAL;
    H.in_answer--;
    FUZZ_CHECK(r1 == WSR_EINVAL && r2 == WSR_EINVAL && r3 == WSR_EINVAL && r4 == WSR_EINVAL,
               "answers with bad arguments returned %d %d %d %d, not WSR_EINVAL", r1, r2, r3, r4);
}

// The allowed origin, checked roughly: the scheme and host as configured (any case)
// and no port but the default one.
static bool origin_allowed(wsr_str o) {
    static const char want[] = "https://app.example.com";
    size_t n = sizeof want - 1;
    if (o.len < n || strncasecmp(o.ptr, want, n) != 0) return false;
    if (o.len == n) return true;
    if (o.ptr[n] != ':' || o.len == n + 1) return false;
    unsigned long port = 0;
    for (size_t i = n + 1; i < o.len; i++) {
        if (o.ptr[i] < '0' || o.ptr[i] > '9' || port > 65535) return false;
        port = port * 10 + (unsigned long)(o.ptr[i] - '0');
    }
    return port == 443;
}

// "/healthz" and "/ws" (GET): 200 in the callback.
static void healthz_fn(wsr_server *srv, wsr_request *req, void *) {
    enter("a GET route");
    wsr_str m = wsr_request_method(req), path = wsr_request_path(req);
    bool head = str_is(m, "HEAD");
    FUZZ_CHECK(head || str_is(m, "GET"), "method %.*s reached a GET route", (int)m.len, m.ptr);
    FUZZ_CHECK(str_is(path, "/healthz") || str_is(path, "/ws"), "path %.*s reached /healthz", (int)path.len, path.ptr);
    request_facts(req, false);
    wsr_conn_id id = wsr_request_id(req);
    H.in_answer++;
    int r = wsr_upgrade_accept(srv, id, nullptr, nullptr);
    H.in_answer--;
    FUZZ_CHECK(r == WSR_ESTATE, "wsr_upgrade_accept on a plain HTTP request returned %d", r);
    bad_answers(srv, id, false);
    answer a = {ANS_RESPOND, 200, head, false, false, copy_bytes("ok\n", 3), 3, HEALTH_HEADERS};
    give_answer(srv, id, &a, true);
    leave();
}

// "/api/*" (GET|POST): the body echoed, now or later.
static void api_fn(wsr_server *srv, wsr_request *req, void *) {
    enter("the /api/* route");
    wsr_str m = wsr_request_method(req), path = wsr_request_path(req);
    bool head = str_is(m, "HEAD");
    FUZZ_CHECK(head || str_is(m, "GET") || str_is(m, "POST"), "method %.*s reached /api/*", (int)m.len, m.ptr);
    FUZZ_CHECK(path.len >= 5 && memcmp(path.ptr, "/api/", 5) == 0, "path %.*s reached /api/*", (int)path.len, path.ptr);
    request_facts(req, false);
    wsr_str b = wsr_request_body(req);
    uint16_t status = 200;
    if (b.len && b.ptr[0] == '!') status = 500;
    if (b.len && b.ptr[0] == '#') status = 204;
    size_t len = status == 204 ? 0 : b.len;
    answer a = {ANS_RESPOND, status, head, false, false, copy_bytes(b.ptr, len), len, API_HEADERS};
    unsigned k = H.api_calls++;
    bool later = H.api == 1 || (H.api == 2 && (k & 1)) || (H.api == 3 && !(k & 1));
    if (later)
        keep_pending(wsr_request_id(req), &a);
    else
        give_answer(srv, wsr_request_id(req), &a, true);
    leave();
}

// The /ws endpoint: the upgrade hook as [8] says, then echo.
static void ws_upgrade(wsr_server *srv, wsr_request *req, void *user) {
    enter("on_upgrade");
    FUZZ_CHECK(user == &H, "on_upgrade with another endpoint's user pointer");
    wsr_str m = wsr_request_method(req), path = wsr_request_path(req);
    FUZZ_CHECK(str_is(m, "GET"), "an upgrade with method %.*s reached the hook", (int)m.len, m.ptr);
    FUZZ_CHECK(str_is(path, "/ws"), "an upgrade for %.*s reached the hook of /ws", (int)path.len, path.ptr);
    request_facts(req, true);
    wsr_str v;
    if (H.origin && wsr_request_header(req, "Origin", &v))
        FUZZ_CHECK(origin_allowed(v), "on_upgrade ran for Origin %.*s, which is not allowed", (int)v.len, v.ptr);
    bool sub = H.use_subproto && wsr_request_header(req, "Sec-WebSocket-Protocol", &v) &&
               h1_list_has_token(v.ptr, v.len, "x-fuzz");
    bad_answers(srv, wsr_request_id(req), true);
    static const char refusal[] = "authentication required\n";
    answer a = (H.hook & 1) ? answer{ANS_RESPOND, 401, false, true, false, copy_bytes(refusal, sizeof refusal - 1),
                                     sizeof refusal - 1, WWW_AUTH}
                            : answer{ANS_ACCEPT, 101, false, true, sub, nullptr, 0, nullptr};
    if (H.hook & 2)
        keep_pending(wsr_request_id(req), &a);
    else
        give_answer(srv, wsr_request_id(req), &a, true);
    leave();
}

static void ws_open(wsr_server *srv, wsr_conn_id id, void *user) {
    enter("on_open");
    FUZZ_CHECK(user == &H, "on_open with another endpoint's user pointer");
    FUZZ_CHECK(H.opens < H.accepts, "on_open without an accepted upgrade (%u opens, %u accepts)", H.opens + 1,
               H.accepts);
    FUZZ_CHECK(wsr_conn_user(srv, id) == &g_conn_user, "on_open: the connection's user pointer is not the accept's");
    H.opens++;
    leave();
}

static void ws_message(wsr_server *srv, wsr_conn_id id, wsr_opcode op, const uint8_t *data, size_t len, void *) {
    enter("on_message");
    FUZZ_CHECK(H.opens > H.closes, "on_message on a connection that is not open");
    (void)wsr_send(srv, id, op, data, len);
    leave();
}

static void ws_close(wsr_server *, wsr_conn_id, uint16_t, void *) {
    enter("on_close");
    H.closes++;
    FUZZ_CHECK(H.closes <= H.opens, "on_close without on_open (%u closes, %u opens)", H.closes, H.opens);
    leave();
}

// --- checking the output ------------------------------------------------------------

static const uint8_t *find(const uint8_t *h, size_t hn, const char *needle) {
    return (const uint8_t *)memmem(h, hn, needle, strlen(needle));
}

// Where a request head that starts at `from` (after empty lines, which llhttp skips: RFC
// 9112 §2.2; found by this target) ends: at its first empty line. A line may end in a
// bare LF (RFC 9112 §2.2 lets a recipient accept that, and llhttp does: "...13\r\n\n"
// ends a head; found by this target). SIZE_MAX when there is none.
static size_t request_head_end(const fuzz_trace *stream, size_t from) {
    size_t lead = from;
    while (lead < stream->len && (stream->data[lead] == '\r' || stream->data[lead] == '\n')) lead++;
    const uint8_t *lf_lf = find(stream->data + lead, stream->len - lead, "\n\n");
    const uint8_t *lf_crlf = find(stream->data + lead, stream->len - lead, "\n\r\n");
    size_t req_len = SIZE_MAX;
    if (lf_lf) req_len = (size_t)(lf_lf - stream->data) + 2;
    if (lf_crlf && (size_t)(lf_crlf - stream->data) + 3 < req_len) req_len = (size_t)(lf_crlf - stream->data) + 3;
    return req_len;
}

// The part after a 101 (head: the 101's head): only server frames, and the server's data
// messages the client's (decoded from the stream from ws_start on; SIZE_MAX: not known,
// and not compared).
static void check_websocket(const char *head, size_t head_len, uint8_t *frames, size_t n, int deflate_mode,
                            const fuzz_trace *stream, size_t ws_start, uint64_t max_message) {
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
    size_t end_pos;
    check_frames(frames, n, &pmd, &sent, nullptr, &end_pos);
    FUZZ_CHECK(end_pos == n, "server output ends inside a frame (%zu of %zu bytes are whole frames)", end_pos, n);
    if (ws_start == SIZE_MAX) {
        fuzz_trace_free(&sent);
        return;
    }

    // Echo and a one-member broadcast room send back what they received, in order;
    // a message may be missing (a slow-consumer drop, or the connection closing), but
    // none may differ or be added.
    client_messages(stream->data + ws_start, stream->len - ws_start, &pmd, max_message, &received);
    compare_messages(&received, &sent, false, "server message", "an echo of", " messages");
    fuzz_trace_free(&sent);
    fuzz_trace_free(&received);
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
    size_t req_len = request_head_end(stream, 0);
    FUZZ_CHECK(req_len != SIZE_MAX, "101 without a complete request head");
    check_websocket(head, head_len, o + head_len, n - head_len, deflate_mode, stream, req_len, max_message);
}

// Modes b and c: a sequence of HTTP/1.1 responses (see the top of this file). canned_http:
// requests the harness put in front (their responses come first); http_start: where
// the first request after them starts; canned_end: where the fuzzer's bytes start, when
// the canned upgrade request ends there (else SIZE_MAX).
static void check_http_output(int deflate_mode, const fuzz_trace *stream, uint64_t max_message, size_t canned_http,
                              size_t http_start, size_t canned_end) {
    if (g.truncated || g.out.len == 0) return;
    uint8_t *o = g.out.data;
    size_t n = g.out.len, pos = 0, k = 0;
    bool after_continue = false;
    while (pos < n) {
        const uint8_t *r = o + pos;
        size_t left = n - pos;
        FUZZ_CHECK(left >= 13 && memcmp(r, "HTTP/1.1 ", 9) == 0,
                   "response %zu does not begin with a status line (output byte %zu)", k + 1, pos);
        FUZZ_CHECK(r[9] >= '1' && r[9] <= '5' && r[10] >= '0' && r[10] <= '9' && r[11] >= '0' && r[11] <= '9' &&
                       r[12] == ' ',
                   "bad status line at output byte %zu", pos);
        int status = (r[9] - '0') * 100 + (r[10] - '0') * 10 + (r[11] - '0');
        const uint8_t *he = find(r, left, "\r\n\r\n");
        FUZZ_CHECK(he != nullptr, "response %zu: the head is incomplete (%zu bytes left)", k + 1, left);
        size_t head_len = (size_t)(he - r) + 4;
        const char *head = (const char *)r;
        // Header lines: "Name: value", no bare CR or LF.
        for (size_t i = 0; i + 2 < head_len; i++) {
            FUZZ_CHECK(head[i] != '\n' || (i > 0 && head[i - 1] == '\r'), "response %zu: a bare LF in its head", k + 1);
            FUZZ_CHECK(head[i] != '\r' || head[i + 1] == '\n', "response %zu: a bare CR in its head", k + 1);
            if (i > 0 && head[i - 1] == '\n') {
                const char *colon = (const char *)memchr(head + i, ':', head_len - i);
                const char *eol = (const char *)memmem(head + i, head_len - i, "\r\n", 2);
                FUZZ_CHECK(colon && colon < eol && colon > head + i, "response %zu: a header line without a name",
                           k + 1);
            }
        }
        if (status == 100) {
            FUZZ_CHECK(!after_continue, "two 100 Continue responses in a row");
            FUZZ_CHECK(head_len == 25 && memcmp(head, "HTTP/1.1 100 Continue\r\n\r\n", 25) == 0,
                       "a 100 response that is not a bare 100 Continue");
            after_continue = true;
            pos += head_len;
            continue;
        }
        FUZZ_CHECK(status >= 200 || status == 101, "response %zu: status %d", k + 1, status);
        after_continue = false;
        const answer *want = k < H.nlog ? &H.log[k] : nullptr;
        if (want)
            FUZZ_CHECK(status == want->status, "response %zu has status %d; the application answered %u", k + 1, status,
                       want->status);
        else
            FUZZ_CHECK(status == 101 || status == 400 || status == 403 || status == 404 || status == 405 ||
                           status == 413 || status == 417 || status == 426 || status == 431 || status == 501 ||
                           status == 503 || status == 505,
                       "response %zu: status %d from the library (the application gave %zu answers)", k + 1, status,
                       H.nlog);
        size_t vlen = 0;
        if (status == 101) {
            FUZZ_CHECK(header_value(head, head_len, "Sec-WebSocket-Accept", &vlen) && vlen == 28,
                       "a 101 without a Sec-WebSocket-Accept");
            FUZZ_CHECK(!header_value(head, head_len, "Content-Length", &vlen), "a 101 with Content-Length");
            if (want && want->subproto) {
                const char *sp = header_value(head, head_len, "Sec-WebSocket-Protocol", &vlen);
                FUZZ_CHECK(sp && vlen == 6 && memcmp(sp, "x-fuzz", 6) == 0, "accepted with x-fuzz, the 101 says %.*s",
                           sp ? (int)vlen : 6, sp ? sp : "(none)");
            }
            // Where the upgrade request's frames start in the client's stream: known when
            // it was the first request after the canned ones.
            size_t ws_start = SIZE_MAX;
            if (k == canned_http) {
                ws_start = canned_end != SIZE_MAX ? canned_end : request_head_end(stream, http_start);
                FUZZ_CHECK(ws_start != SIZE_MAX, "101 without a complete request head");
            }
            pos += head_len;
            check_websocket(head, head_len, o + pos, n - pos, deflate_mode, stream, ws_start, max_message);
            return;
        }
        const char *cl = header_value(head, head_len, "Content-Length", &vlen);
        size_t body = 0;
        if (status == 204) {
            FUZZ_CHECK(!cl, "a 204 with Content-Length");
        } else {
            FUZZ_CHECK(cl != nullptr, "response %zu (%d) without Content-Length", k + 1, status);
            for (size_t i = 0; i < vlen; i++) FUZZ_CHECK(cl[i] >= '0' && cl[i] <= '9', "a bad Content-Length");
            body = strtoul(cl, nullptr, 10);
        }
        size_t on_wire = body;
        if (want) {
            FUZZ_CHECK(body == want->len, "response %zu: Content-Length %zu, the application's body has %zu bytes",
                       k + 1, body, want->len);
            if (want->head) on_wire = 0;
        }
        FUZZ_CHECK(left - head_len >= on_wire, "response %zu: the body is cut short (%zu of %zu bytes)", k + 1,
                   left - head_len, on_wire);
        if (want && on_wire)
            FUZZ_CHECK(memcmp(r + head_len, want->body, on_wire) == 0,
                       "response %zu: the body is not the one the application gave", k + 1);
        const char *cv = header_value(head, head_len, "Connection", &vlen);
        bool close = cv && vlen == 5 && strncasecmp(cv, "close", 5) == 0;
        if (!want) FUZZ_CHECK(close, "the library's %d without Connection: close", status);
        if (want && (want->upgrade || status >= 500))
            FUZZ_CHECK(close, "response %zu (%d%s) without Connection: close", k + 1, status,
                       want->upgrade ? ", refusing an upgrade" : "");
        pos += head_len + on_wire;
        k++;
        if (close) {
            FUZZ_CHECK(pos == n, "%zu bytes written after a response with Connection: close", n - pos);
            return;
        }
    }
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

// The loop's work for the connection while the socket has bytes (g.left), end of stream
// (g.eof) or the connection has work held over (conn_waits: the backlog pass): a
// readable event unless reading is paused (EPOLLIN off) or the connection is dead, then
// after_event. Stops when nothing is left to do, when the connection is gone, and while
// it waits for the application's answer (CF2_AWAITING: only a hang-up is watched).
static void pump(wsr_server *srv, wsr_conn_id id) {
    int stall = 0;
    for (unsigned rounds = 0;; rounds++) {
        conn *c = lookup(srv, id);
        if (!c) break;
        if (c->flags2 & CF2_AWAITING) {
            FUZZ_CHECK(H.has_pending, "the connection waits for an answer the application does not owe");
            break;
        }
        bool waits = conn_waits(c);
        if (g.left == 0 && !g.eof && !waits) break;
        FUZZ_CHECK(rounds < 200000, "no end to the connection's rounds (flags %#x flags2 %#x state %u)", c->flags,
                   c->flags2, c->state);
        bool runnable = !(c->flags & (CF_READ_PAUSED | CF_DEAD));
        size_t before = g.left;
        // Work held over from a round that used up its budget (input, a message half
        // inflated, an upgrade accepted later) is a round of its own (the server's
        // backlog pass): progress, though no new byte is read. So is reading end of stream.
        if (runnable) conn_on_readable(srv, c);
        after_event(srv, id);
        if (g.left < before || (runnable && (waits || g.eof))) {
            stall = 0;
            g.force_full = false;
        } else if (++stall >= 3) {
            // Paused behind a full socket: let the socket drain, as a peer that
            // reads eventually does.
            g.force_full = true;
            c = lookup(srv, id);
            FUZZ_CHECK(stall < 20, "no progress: %zu bytes of a chunk never read (flags %#x state %u)", g.left,
                       c ? c->flags : 0, c ? c->state : 0);
        }
    }
    g.force_full = false;
}

static const uint8_t PROXY_V1[] = "PROXY TCP4 192.0.2.10 198.51.100.1 51234 443\r\n";
static const uint8_t PROXY_V2_TCP4[] = {
    '\r', '\n', '\r', '\n', 0, '\r', '\n', 'Q', 'U', 'I', 'T', '\n', 0x21, 0x11, 0, 12,
    192, 0, 2, 10, 198, 51, 100, 1, 0xc8, 0x22, 0x01, 0xbb};
static const uint8_t PROXY_V2_TCP6[] = {
    '\r', '\n', '\r', '\n', 0, '\r', '\n', 'Q', 'U', 'I', 'T', '\n', 0x21, 0x21, 0, 43,
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7,     // 2001:db8::7
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,     // 2001:db8::1
    0xc8, 0x22, 0x01, 0xbb,                                         // 51234, 443
    0x02, 0x00, 0x04, 'f', 'u', 'z', 'z'};                          // PP2_TYPE_AUTHORITY
static const char *const CANNED_HTTP[4] = {
    "",
    "GET /healthz HTTP/1.1\r\nHost: fuzz\r\n\r\n",
    "POST /api/echo?x=1 HTTP/1.1\r\nHost: fuzz\r\nContent-Length: 5\r\n\r\nhello",
    "HEAD /healthz HTTP/1.1\r\nHost: fuzz\r\n\r\n"
    "POST /api/c HTTP/1.1\r\nHost: fuzz\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n"
    "5\r\nhello\r\n0\r\n\r\n",
};
static const size_t CANNED_HTTP_COUNT[4] = {0, 1, 1, 2};

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < BASE_SETTINGS) return 0;
    // FUZZ_LOG_DEBUG=1: the server logs everything (to see why an input ends as it does).
    static const bool log_debug = getenv("FUZZ_LOG_DEBUG") != nullptr;
    wsr_log_set_level(log_debug ? WSR_LOG_DEBUG : WSR_LOG_ERROR);
    const uint8_t *s = data;
    bool http_mode = s[7] & 32, proxy_mode = s[7] & 64;
    size_t settings = http_mode || proxy_mode ? BASE_SETTINGS + EXTRA_SETTINGS : BASE_SETTINGS;
    if (size < settings) return 0;
    uint8_t x8 = settings > BASE_SETTINGS ? s[8] : 0, x9 = settings > BASE_SETTINGS ? s[9] : 0;

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

    memset(&H, 0, sizeof H);
    H.on = http_mode;
    H.proxy = proxy_mode;
    H.hook = x8 & 3;
    H.api = (x8 >> 2) & 3;
    H.late = x8 & 64;
    H.origin = x8 & 32;
    H.use_subproto = x8 & 128;
    H.max_body = (x8 & 16) ? 64 : 1u << 20;

    // The client's stream: optionally canned parts (a PROXY header, HTTP requests, an
    // upgrade request), then the input.
    fuzz_trace stream;
    fuzz_trace_init(&stream);
    if (proxy_mode && (x9 & 3)) {
        static const struct {
            const uint8_t *p;
            size_t n;
            const char *addr;
        } hdr[4] = {{nullptr, 0, ""},
                    {PROXY_V1, sizeof PROXY_V1 - 1, "192.0.2.10:51234"},
                    {PROXY_V2_TCP4, sizeof PROXY_V2_TCP4, "192.0.2.10:51234"},
                    {PROXY_V2_TCP6, sizeof PROXY_V2_TCP6, "[2001:db8::7]:51234"}};
        fuzz_trace_put(&stream, hdr[x9 & 3].p, hdr[x9 & 3].n);
        snprintf(H.expect_addr, sizeof H.expect_addr, "%s", hdr[x9 & 3].addr);
    }
    // On a PROXY listener without a canned header, the fuzzer writes the header and
    // everything after it.
    bool canned_ok = !proxy_mode || (x9 & 3);
    size_t canned_http = 0;
    if (http_mode && canned_ok) {
        const char *req = CANNED_HTTP[(x9 >> 2) & 3];
        fuzz_trace_put(&stream, req, strlen(req));
        canned_http = CANNED_HTTP_COUNT[(x9 >> 2) & 3];
    }
    size_t http_start = stream.len, canned_end = SIZE_MAX;
    if ((s[0] & 16) && canned_ok) {
        const char *path = (s[0] & 32) ? (http_mode ? "/ws" : "/broadcast") : "/echo";
        char req[512];
        int rn = snprintf(req, sizeof req,
                          "GET %s HTTP/1.1\r\nHost: fuzz\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n%s%s\r\n",
                          path, g_ext[s[0] >> 6], H.use_subproto ? "Sec-WebSocket-Protocol: x-fuzz, chat\r\n" : "");
        fuzz_trace_put(&stream, req, (size_t)rn);
        canned_end = stream.len;
    }
    if (proxy_mode && !(x9 & 3)) http_start = SIZE_MAX; // after a PROXY header the fuzzer wrote
    fuzz_trace_put(&stream, data + settings, size - settings);
    if (http_start == SIZE_MAX) {
        proxy_result pr;
        http_start = proxy_parse(stream.data, stream.len, &pr) == PROXY_DONE ? pr.header_len : 0;
    }

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
    if (http_mode) {
        wsr_endpoint ep = WSR_ENDPOINT_INIT;
        ep.on_upgrade = ws_upgrade;
        ep.on_open = ws_open;
        ep.on_message = ws_message;
        ep.on_close = ws_close;
        FUZZ_CHECK(wsr_server_endpoint(srv, "/ws", &ep, &H) == WSR_OK, "endpoint /ws");
        FUZZ_CHECK(wsr_server_http(srv, "/healthz", WSR_HTTP_GET, healthz_fn, nullptr) == WSR_OK, "route /healthz");
        FUZZ_CHECK(wsr_server_http(srv, "/ws", WSR_HTTP_GET, healthz_fn, nullptr) == WSR_OK, "route /ws");
        FUZZ_CHECK(wsr_server_http(srv, "/api/*", WSR_HTTP_GET | WSR_HTTP_POST, api_fn, nullptr) == WSR_OK,
                   "route /api/*");
        if (x8 & 16) FUZZ_CHECK(wsr_server_set_option(srv, WSR_OPT_MAX_BODY, 64) == WSR_OK, "max body");
        if (x8 & 32)
            FUZZ_CHECK(wsr_server_add_option(srv, WSR_OPT_ALLOWED_ORIGIN, "https://app.example.com") == WSR_OK,
                       "allowed origin");
    }
    if (http_mode || proxy_mode) {
        FUZZ_CHECK(wsr_server_set_option(srv, WSR_OPT_HTTP_IDLE_TIMEOUT_MS, WSR_MAX_TIMEOUT_MS) == WSR_OK, "idle");
        if (x9 & 16)
            FUZZ_CHECK(wsr_server_add_option(srv, WSR_OPT_TRUSTED_PROXY, "127.0.0.0/8") == WSR_OK, "trusted proxy");
        if (x9 & 32) FUZZ_CHECK(wsr_server_set_option(srv, WSR_OPT_HTTP_MAX_REQUESTS, 2) == WSR_OK, "max requests");
        if (x9 & 64)
            FUZZ_CHECK(wsr_server_set_option(srv, WSR_OPT_MAX_MEMORY, (o.max_message * 4 + 2) / 3) == WSR_OK,
                       "max memory");
    }
    if (proxy_mode) {
        // Listener 0 plain, listener 1 expecting the PROXY protocol; nothing listens.
        FUZZ_CHECK(wsr_server_add_listener(srv, "127.0.0.1:0", 0) == 0, "listener 0");
        FUZZ_CHECK(wsr_server_add_listener(srv, "127.0.0.1:0", WSR_LISTEN_PROXY) == 1, "listener 1");
        H.listener = 1;
    }
    srv->io = &fake_transport;
    // Short rounds, so that the messages of a run (at most 64 KiB) exercise input held
    // over between rounds and messages inflated over several.
    srv->round_budget = 2048;

    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    FUZZ_CHECK(efd >= 0, "eventfd: %s", strerror(errno));
    conn *c0 = server_adopt_from(srv, efd, H.listener);
    FUZZ_CHECK(c0 != nullptr, "server_adopt");
    wsr_conn_id id = conn_id(c0);

    fuzz_splitter split;
    fuzz_splitter_init(&split, (uint32_t)s[4] | (uint32_t)s[5] << 8, s[3]);
    size_t pos = 0;
    g.chunk = stream.data;
    while (pos < stream.len && lookup(srv, id)) {
        // The next chunk arrives behind what is still unread (a connection waiting for
        // the application's answer is not read).
        size_t k = fuzz_splitter_next(&split, stream.len - pos);
        g.left += k;
        pos += k;
        // An answer given later comes now: after the next chunk arrived.
        if (H.has_pending) answer_pending(srv);
        pump(srv, id);
    }
    // Answers still owed, unless the input keeps them for after the end of stream.
    for (int i = 0; H.has_pending && !H.late && i < 100000; i++) {
        answer_pending(srv);
        pump(srv, id);
    }

    // The peer reads everything (and, if the input says so, ends its stream); what it
    // sent that was never read is dropped.
    g.drain_all = true;
    g.left = 0;
    after_event(srv, id);
    if (s[0] & 8) {
        g.eof = true;
        conn *c = lookup(srv, id);
        if (c && (c->flags2 & CF2_AWAITING) && !(c->flags & CF_DEAD))
            conn_destroy(srv, c, false); // the loop sees the hang-up (server.cpp on_event)
        else
            pump(srv, id);
        after_event(srv, id);
    }
    for (int i = 0; H.has_pending && i < 100000; i++) {
        answer_pending(srv);
        pump(srv, id);
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
    FUZZ_CHECK(!H.has_pending, "an answer is still owed");
    FUZZ_CHECK(H.opens == H.closes, "on_open ran %u times, on_close %u", H.opens, H.closes);

    // FUZZ_DUMP_OUTPUT=1: the server's bytes go to stderr, to look at what an input does.
    static const bool dump = getenv("FUZZ_DUMP_OUTPUT") != nullptr;
    if (dump) {
        fprintf(stderr, "--- %zu bytes written, %zu answers given, %u opens\n", g.out.len, H.nlog, H.opens);
        if (g.out.len) fwrite(g.out.data, 1, g.out.len, stderr);
        fprintf(stderr, "\n---\n");
    }
    if (http_mode || proxy_mode)
        check_http_output(o.deflate, &stream, o.max_message, canned_http, http_start,
                          canned_end);
    else
        check_output(o.deflate, &stream, o.max_message);
    for (size_t i = 0; i < H.nlog; i++) free(H.log[i].body);
    free(H.log);
    fuzz_trace_free(&g.out);
    fuzz_trace_free(&stream);
    return 0;
}
