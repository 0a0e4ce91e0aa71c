// Unit tests for the upgrade request parser and responses (src/proto/handshake.*).
//
// What a server relies on: a valid RFC 6455 §4.2.1 request is accepted however the
// reads cut it, with the right Sec-WebSocket-Accept; the bytes after the head are
// left for the frame parser; every bad request gets its HTTP status; and the response
// bytes are exactly what a client expects.
#include <stdlib.h>
#include <string.h>

#include "unit.h"

#include "proto/handshake.h"

// RFC 6455 §1.3: this key must give this accept value.
#define RFC_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define RFC_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

#define GET "GET / HTTP/1.1\r\n"
#define HOST "Host: server.example.com\r\n"
#define UPG "Upgrade: websocket\r\n"
#define CONN "Connection: Upgrade\r\n"
#define KEY "Sec-WebSocket-Key: " RFC_KEY "\r\n"
#define VER "Sec-WebSocket-Version: 13\r\n"
#define REST HOST UPG CONN KEY VER "\r\n" // everything after the request line

// The opening handshake of RFC 6455 §1.2, followed by a client's first frame.
static const char GOOD_HEAD[] = "GET /chat?room=1 HTTP/1.1\r\n"
                                "Host: server.example.com\r\n"
                                "Upgrade: websocket\r\n"
                                "Connection: Upgrade\r\n"
                                "Sec-WebSocket-Key: " RFC_KEY "\r\n"
                                "Origin: http://example.com\r\n"
                                "Sec-WebSocket-Protocol: chat, superchat\r\n"
                                "Sec-WebSocket-Version: 13\r\n"
                                "\r\n";
static const char FIRST_FRAME[] = "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"; // masked "Hello"

enum { BIG = 8192 };

struct fed {
    h1_state state;
    size_t consumed; // sum of *consumed over the calls
};

// Feeds req[0..n) in chunks ending at cuts (the last ends at n); stops once the state
// is final, as a server stops handing bytes to the handshake.
static fed feed_cuts(h1_parser *p, const char *req, size_t n, const size_t *cuts, size_t ncuts) {
    fed f = {H1_NEED_MORE, 0};
    size_t start = 0;
    for (size_t c = 0; c <= ncuts && f.state == H1_NEED_MORE; c++) {
        size_t end = c < ncuts ? cuts[c] : n, used = 12345;
        f.state = h1_parser_feed(p, (const uint8_t *)req + start, end - start, &used);
        if (used > end - start) fail_msg("consumed %zu of %zu", used, end - start);
        if (f.state == H1_NEED_MORE && used != end - start) fail_msg("NEED_MORE left %zu bytes", end - start - used);
        f.consumed += used;
        start = end;
    }
    return f;
}

static fed feed_whole(h1_parser *p, const char *req, size_t n) { return feed_cuts(p, req, n, nullptr, 0); }

static fed feed_bytewise(h1_parser *p, const char *req, size_t n) {
    fed f = {H1_NEED_MORE, 0};
    for (size_t i = 0; i < n && f.state == H1_NEED_MORE; i++) {
        size_t used;
        f.state = h1_parser_feed(p, (const uint8_t *)req + i, 1, &used);
        f.consumed += used;
    }
    return f;
}

static bool span_is(const h1_parser *p, h1_span s, const char *want) {
    return s.len == strlen(want) && memcmp(h1_span_ptr(p, s), want, s.len) == 0;
}

static const char *const SUBPROTOCOLS[] = {"chat", "superchat", "json.v2", nullptr};
static const hs_config CFG = {SUBPROTOCOLS};

// Everything a server reads from the good request, checked after any chunking.
static void check_good(const h1_parser *p, fed f, const char *how) {
    if (f.state != H1_COMPLETE) fail_msg("%s: state %d (status %u %s)", how, f.state, p->status, p->error);
    if (f.consumed != sizeof GOOD_HEAD - 1) fail_msg("%s: consumed %zu, head is %zu", how, f.consumed, sizeof GOOD_HEAD - 1);
    hs_result r;
    hs_validate(p, &CFG, &r);
    if (r.status != 101) fail_msg("%s: status %u (%s)", how, r.status, r.error);
    if (strcmp(r.accept, RFC_ACCEPT) != 0) fail_msg("%s: accept %s", how, r.accept);
    if (r.subprotocol != SUBPROTOCOLS[0]) fail_msg("%s: subprotocol %s", how, r.subprotocol);
    h1_span v;
    if (!h1_header_find(p, "host", &v) || !span_is(p, v, "server.example.com")) fail_msg("%s: Host", how);
    if (!h1_header_find(p, "ORIGIN", &v) || !span_is(p, v, "http://example.com")) fail_msg("%s: Origin", how);
    if (!span_is(p, h1_request_path(p), "/chat") || !span_is(p, h1_request_query(p), "room=1")) fail_msg("%s: URL", how);
}

static void test_good_request_any_chunking(void **) {
    char req[sizeof GOOD_HEAD + sizeof FIRST_FRAME];
    size_t n = (size_t)snprintf(req, sizeof req, "%s%s", GOOD_HEAD, FIRST_FRAME);
    h1_parser p;

    h1_parser_init(&p, BIG);
    check_good(&p, feed_whole(&p, req, n), "whole");
    h1_parser_free(&p);

    h1_parser_init(&p, BIG);
    check_good(&p, feed_bytewise(&p, req, n), "byte at a time");
    h1_parser_free(&p);

    char how[64];
    for (size_t cut = 0; cut <= n; cut++) {
        h1_parser_init(&p, BIG);
        snprintf(how, sizeof how, "split at %zu", cut);
        check_good(&p, feed_cuts(&p, req, n, &cut, 1), how);
        h1_parser_free(&p);
    }
}

// The frame bytes that arrive in the same read as the head are not the head's: a
// server passes req + consumed to the frame parser.
static void test_bytes_after_head_are_left(void **) {
    char req[sizeof GOOD_HEAD + sizeof FIRST_FRAME];
    size_t head = sizeof GOOD_HEAD - 1;
    size_t n = (size_t)snprintf(req, sizeof req, "%s%s", GOOD_HEAD, FIRST_FRAME);
    h1_parser p;
    h1_parser_init(&p, BIG);
    size_t used;
    assert_int_equal(h1_parser_feed(&p, (const uint8_t *)req, n, &used), H1_COMPLETE);
    assert_int_equal(used, head);
    assert_memory_equal(req + used, FIRST_FRAME, sizeof FIRST_FRAME - 1);
    // Once complete, later bytes are not taken either.
    assert_int_equal(h1_parser_feed(&p, (const uint8_t *)"xyz", 3, &used), H1_COMPLETE);
    assert_int_equal(used, 0);
    h1_parser_free(&p);

    // The head's last byte alone in a read: consumed counts just that byte.
    h1_parser_init(&p, BIG);
    assert_int_equal(h1_parser_feed(&p, (const uint8_t *)req, head - 1, &used), H1_NEED_MORE);
    assert_int_equal(used, head - 1);
    assert_int_equal(h1_parser_feed(&p, (const uint8_t *)req + head - 1, n - head + 1, &used), H1_COMPLETE);
    assert_int_equal(used, 1);
    h1_parser_free(&p);

    // A body announced by Content-Length is not read as part of the head either.
    static const char with_body[] = GET HOST UPG CONN KEY VER "Content-Length: 5\r\n\r\nhello";
    h1_parser_init(&p, BIG);
    assert_int_equal(h1_parser_feed(&p, (const uint8_t *)with_body, sizeof with_body - 1, &used), H1_COMPLETE);
    assert_int_equal(used, sizeof with_body - 1 - 5);
    h1_parser_free(&p);
}

// ---------------------------------------------------------------------------------
// Every request and the status it gets, from the parser (H1_FAILED) or hs_validate.

struct status_case {
    const char *name;
    const char *req;
    uint16_t status;
};

static const status_case status_cases[] = {
    {"minimal valid request", GET REST, 101},
    {"Connection is a list", GET HOST UPG "Connection: keep-alive, Upgrade\r\n" KEY VER "\r\n", 101},
    {"Connection token in any case", GET HOST UPG "Connection: keep-alive,upgrade\r\n" KEY VER "\r\n", 101},
    {"Connection over two header lines", GET HOST UPG "Connection: keep-alive\r\nConnection: Upgrade\r\n" KEY VER "\r\n",
     101},
    {"Upgrade value in any case", GET HOST "Upgrade: WebSocket\r\n" CONN KEY VER "\r\n", 101},
    {"header names in any case", GET "host: h\r\nUPGRADE: websocket\r\nconnection: Upgrade\r\n"
                                     "sec-websocket-key: " RFC_KEY "\r\nSEC-WEBSOCKET-VERSION: 13\r\n\r\n",
     101},
    {"whitespace around values", GET HOST "Upgrade:   websocket  \r\n" CONN "Sec-WebSocket-Key:\t" RFC_KEY " \r\n" VER "\r\n",
     101},
    {"empty unrelated header", GET HOST "X-Empty:\r\n" UPG CONN KEY VER "\r\n", 101},
    {"absolute-form target", "GET http://server.example.com/chat HTTP/1.1\r\n" REST, 101},
    {"POST", "POST / HTTP/1.1\r\n" REST, 405},
    {"HEAD", "HEAD / HTTP/1.1\r\n" REST, 405},
    {"PUT", "PUT / HTTP/1.1\r\n" REST, 405},
    {"HTTP/1.0", "GET / HTTP/1.0\r\n" REST, 400},
    {"HTTP/2.0", "GET / HTTP/2.0\r\n" REST, 505},
    {"body by Content-Length", GET HOST UPG CONN KEY VER "Content-Length: 5\r\n\r\n", 400},
    {"body by chunked encoding", GET HOST UPG CONN KEY VER "Transfer-Encoding: chunked\r\n\r\n", 400},
    {"Content-Length: 0", GET HOST UPG CONN KEY VER "Content-Length: 0\r\n\r\n", 101},
    {"no Host", GET UPG CONN KEY VER "\r\n", 400},
    {"no Upgrade", GET HOST CONN KEY VER "\r\n", 426},
    {"plain HTTP request", GET HOST "\r\n", 426},
    {"Upgrade: h2c", GET HOST "Upgrade: h2c\r\n" CONN KEY VER "\r\n", 400},
    {"Upgrade: websocket2", GET HOST "Upgrade: websocket2\r\n" CONN KEY VER "\r\n", 400},
    {"Connection without Upgrade", GET HOST UPG "Connection: keep-alive\r\n" KEY VER "\r\n", 400},
    {"Connection: Upgraded", GET HOST UPG "Connection: Upgraded\r\n" KEY VER "\r\n", 400},
    {"no Connection", GET HOST UPG KEY VER "\r\n", 400},
    {"no key", GET HOST UPG CONN VER "\r\n", 400},
    {"empty key", GET HOST UPG CONN "Sec-WebSocket-Key:\r\n" VER "\r\n", 400},
    {"short key (15 bytes)", GET HOST UPG CONN "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=\r\n" VER "\r\n", 400},
    {"key of 12 bytes", GET HOST UPG CONN "Sec-WebSocket-Key: dGhlIHNhbXBsZSBu\r\n" VER "\r\n", 400},
    {"long key (17 bytes)", GET HOST UPG CONN "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQAB\r\n" VER "\r\n", 400},
    {"long key with padding", GET HOST UPG CONN "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQAAAA==\r\n" VER "\r\n", 400},
    {"key with a bad character", GET HOST UPG CONN "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j*Q==\r\n" VER "\r\n", 400},
    {"two keys", GET HOST UPG CONN KEY KEY VER "\r\n", 400},
    {"version 8", GET HOST UPG CONN KEY "Sec-WebSocket-Version: 8\r\n\r\n", 426},
    {"version 14", GET HOST UPG CONN KEY "Sec-WebSocket-Version: 14\r\n\r\n", 426},
    {"no version", GET HOST UPG CONN KEY "\r\n", 426},
    {"two version headers", GET HOST UPG CONN KEY VER "Sec-WebSocket-Version: 8\r\n\r\n", 426},
    {"request line without version", "GET /\r\n" REST, 400},
    {"request line with extra word", "GET / HTTP/1.1 x\r\n" REST, 400},
    {"TLS ClientHello on the plain port", "\x16\x03\x01\x02\x01\x01\x01\xfc\x03\x03\r\n\r\n", 400},
    {"unknown HTTP version", "GET / HTTP/1.x\r\n" REST, 400},
    {"bare LF line endings", "GET / HTTP/1.1\nHost: h\nUpgrade: websocket\n\n", 400},
    // RFC 9112 §5.1 and §5.2: both MUST get 400 rather than a guess at what was meant.
    {"space before the colon", GET HOST UPG CONN KEY VER "Origin : http://example.com\r\n\r\n", 400},
    {"space before the colon of Upgrade", GET HOST "Upgrade : websocket\r\n" CONN KEY VER "\r\n", 400},
    {"obs-fold in a header", GET HOST UPG CONN KEY VER "User-Agent: a\r\n b\r\n\r\n", 400},
    {"Content-Length with chunked", GET HOST UPG CONN KEY VER "Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
     400},
};

// Runs a request through the parser and validation; the status a server answers with.
static uint16_t status_of(const char *req, size_t n, bool bytewise, const char **error) {
    h1_parser p;
    h1_parser_init(&p, BIG);
    fed f = bytewise ? feed_bytewise(&p, req, n) : feed_whole(&p, req, n);
    uint16_t status = 0;
    *error = nullptr;
    if (f.state == H1_FAILED) {
        status = p.status;
        *error = p.error;
    } else if (f.state == H1_COMPLETE) {
        hs_result r;
        hs_validate(&p, &CFG, &r);
        status = r.status;
        *error = r.error;
        if (status == 101 && strcmp(r.accept, RFC_ACCEPT) != 0) status = 0;
    }
    h1_parser_free(&p);
    return status;
}

static void test_request_statuses(void **) {
    for (const status_case &c : status_cases) {
        for (int bytewise = 0; bytewise <= 1; bytewise++) {
            const char *error;
            uint16_t got = status_of(c.req, strlen(c.req), bytewise, &error);
            if (got != c.status)
                fail_msg("%s%s: status %u (%s), want %u", c.name, bytewise ? " (byte at a time)" : "", got,
                         error ? error : "-", c.status);
            // Every refusal carries a reason for the body and the log.
            if (got != 101 && (!error || !error[0])) fail_msg("%s: status %u without a reason", c.name, got);
        }
    }
}

// Once failed, the parser stays failed and takes nothing more.
static void test_failure_is_final(void **) {
    h1_parser p;
    h1_parser_init(&p, BIG);
    size_t used;
    static const char bad[] = "GET / HTTP/1.1 x\r\n";
    assert_int_equal(h1_parser_feed(&p, (const uint8_t *)bad, sizeof bad - 1, &used), H1_FAILED);
    assert_int_equal(h1_parser_feed(&p, (const uint8_t *)REST, sizeof REST - 1, &used), H1_FAILED);
    assert_int_equal(used, 0);
    assert_int_equal(p.status, 400);
    h1_parser_free(&p);
}

// ---------------------------------------------------------------------------------
// Limits: header bytes (431) and header count (431).

// A valid request padded with an X-Pad header to exactly `len` bytes.
static size_t padded_request(char *out, size_t len) {
    static const char head[] = GET HOST UPG CONN KEY VER "X-Pad: ";
    static const char tail[] = "\r\n\r\n";
    size_t fixed = sizeof head - 1 + sizeof tail - 1;
    assert_true(len > fixed);
    memcpy(out, head, sizeof head - 1);
    memset(out + sizeof head - 1, 'p', len - fixed);
    memcpy(out + len - (sizeof tail - 1), tail, sizeof tail - 1);
    return len;
}

static void test_header_size_limit(void **) {
    enum { MAX = 400 };
    static char req[2 * MAX];
    for (int bytewise = 0; bytewise <= 1; bytewise++) {
        h1_parser p;
        // Exactly at the limit: accepted.
        size_t n = padded_request(req, MAX);
        h1_parser_init(&p, MAX);
        fed f = bytewise ? feed_bytewise(&p, req, n) : feed_whole(&p, req, n);
        if (f.state != H1_COMPLETE) fail_msg("head of exactly %d bytes: state %d status %u", MAX, f.state, p.status);
        h1_parser_free(&p);

        // One byte over: 431.
        n = padded_request(req, MAX + 1);
        h1_parser_init(&p, MAX);
        f = bytewise ? feed_bytewise(&p, req, n) : feed_whole(&p, req, n);
        if (f.state != H1_FAILED || p.status != 431) fail_msg("head of %d bytes: state %d status %u", MAX + 1, f.state, p.status);
        h1_parser_free(&p);

        // A never-ending head: 431, not a hang or unbounded growth.
        memset(req, 'a', sizeof req);
        memcpy(req, "GET / HTTP/1.1\r\nX: ", 19);
        h1_parser_init(&p, MAX);
        f = bytewise ? feed_bytewise(&p, req, sizeof req) : feed_whole(&p, req, sizeof req);
        if (f.state != H1_FAILED || p.status != 431) fail_msg("endless head: state %d status %u", f.state, p.status);
        h1_parser_free(&p);
    }
    // A read that fills the limit without ending the head fails at once: the server
    // answers now rather than waiting for bytes it would refuse anyway.
    padded_request(req, MAX + 4);
    h1_parser p;
    h1_parser_init(&p, MAX);
    size_t used;
    assert_int_equal(h1_parser_feed(&p, (const uint8_t *)req, MAX, &used), H1_FAILED);
    assert_int_equal(p.status, 431);
    h1_parser_free(&p);

    // Frame bytes in the same read do not count against the head's limit.
    size_t n = padded_request(req, MAX - 10);
    memset(req + n, 0x82, 100);
    h1_parser_init(&p, MAX);
    fed f = feed_whole(&p, req, n + 100);
    assert_int_equal(f.state, H1_COMPLETE);
    assert_int_equal(f.consumed, n);
    h1_parser_free(&p);
}

static void test_header_count_limit(void **) {
    // The five required headers plus padding headers up to `total`.
    static char req[BIG];
    for (int total = H1_MAX_HEADERS; total <= H1_MAX_HEADERS + 1; total++) {
        size_t n = (size_t)snprintf(req, sizeof req, "%s", GET HOST UPG CONN KEY VER);
        for (int i = 5; i < total; i++) n += (size_t)snprintf(req + n, sizeof req - n, "X-H%d: %d\r\n", i, i);
        n += (size_t)snprintf(req + n, sizeof req - n, "\r\n");
        const char *error;
        uint16_t want = total <= H1_MAX_HEADERS ? 101 : 431;
        for (int bytewise = 0; bytewise <= 1; bytewise++) {
            uint16_t got = status_of(req, n, bytewise, &error);
            if (got != want) fail_msg("%d headers: status %u, want %u", total, got, want);
        }
    }
}

// ---------------------------------------------------------------------------------
// Subprotocol choice (§4.2.2): the client's first listed protocol the server supports,
// across every Sec-WebSocket-Protocol line; none when nothing matches.

static void test_subprotocol_selection(void **) {
    static const struct {
        const char *name;
        const char *headers;
        const hs_config *cfg;
        int want; // index into SUBPROTOCOLS, -1 for none
    } cases[] = {
        {"client order wins", "Sec-WebSocket-Protocol: superchat, chat\r\n", &CFG, 1},
        {"first supported one", "Sec-WebSocket-Protocol: xmpp, mqtt, json.v2, chat\r\n", &CFG, 2},
        {"whitespace and empty elements", "Sec-WebSocket-Protocol:  , chat ,\r\n", &CFG, 0},
        {"several header lines", "Sec-WebSocket-Protocol: xmpp\r\nSec-WebSocket-Protocol: json.v2, chat\r\n", &CFG, 2},
        {"none matching", "Sec-WebSocket-Protocol: xmpp, mqtt\r\n", &CFG, -1},
        {"no prefix or substring match", "Sec-WebSocket-Protocol: chatty, cha, superchat2\r\n", &CFG, -1},
        {"none offered", "", &CFG, -1},
        {"server supports none", "Sec-WebSocket-Protocol: chat\r\n", nullptr, -1},
    };
    static const hs_config no_protocols = {nullptr};
    char req[1024];
    for (const auto &c : cases) {
        int n = snprintf(req, sizeof req, GET HOST UPG CONN KEY VER "%s\r\n", c.headers);
        h1_parser p;
        h1_parser_init(&p, BIG);
        fed f = feed_whole(&p, req, (size_t)n);
        assert_int_equal(f.state, H1_COMPLETE);
        hs_result r;
        hs_validate(&p, c.cfg ? c.cfg : &no_protocols, &r);
        if (r.status != 101) fail_msg("%s: status %u", c.name, r.status);
        const char *want = c.want < 0 ? nullptr : SUBPROTOCOLS[c.want];
        // The result points at the server's own string, which outlives the parser.
        if (r.subprotocol != want) fail_msg("%s: got %s, want %s", c.name, r.subprotocol, want);
        h1_parser_free(&p);
    }
}

// ---------------------------------------------------------------------------------
// Response bytes.

static void test_accept_key(void **) {
    char out[HS_ACCEPT_LEN + 1];
    hs_accept_key(RFC_KEY, strlen(RFC_KEY), out);
    assert_string_equal(out, RFC_ACCEPT);
    // Another key, checked against Python's base64(sha1(key + GUID)).
    hs_accept_key("x3JJHMbDL1EzLkh9GBhXDw==", 24, out);
    assert_string_equal(out, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
}

static void test_write_accept(void **) {
    hs_result r;
    memset(&r, 0, sizeof r);
    r.status = 101;
    memcpy(r.accept, RFC_ACCEPT, HS_ACCEPT_LEN + 1);
    char out[512];

    static const char plain[] = "HTTP/1.1 101 Switching Protocols\r\n"
                                "Upgrade: websocket\r\n"
                                "Connection: Upgrade\r\n"
                                "Sec-WebSocket-Accept: " RFC_ACCEPT "\r\n"
                                "\r\n";
    size_t n = hs_write_accept(out, sizeof out, &r, nullptr);
    assert_int_equal(n, sizeof plain - 1);
    assert_memory_equal(out, plain, n);

    static const char full[] = "HTTP/1.1 101 Switching Protocols\r\n"
                               "Upgrade: websocket\r\n"
                               "Connection: Upgrade\r\n"
                               "Sec-WebSocket-Accept: " RFC_ACCEPT "\r\n"
                               "Sec-WebSocket-Protocol: chat\r\n"
                               "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=10\r\n"
                               "\r\n";
    r.subprotocol = "chat";
    n = hs_write_accept(out, sizeof out, &r, "permessage-deflate; client_max_window_bits=10");
    assert_int_equal(n, sizeof full - 1);
    assert_memory_equal(out, full, n);

    // A buffer one byte short of the response (plus NUL) gets nothing partial sent.
    assert_int_equal(hs_write_accept(out, sizeof full - 1, &r, "permessage-deflate; client_max_window_bits=10"), 0);
    assert_int_equal(hs_write_accept(out, sizeof full, &r, "permessage-deflate; client_max_window_bits=10"),
                     sizeof full - 1);
}

static void test_write_error(void **) {
    char out[512];
    static const char want426[] = "HTTP/1.1 426 Upgrade Required\r\n"
                                  "Content-Type: text/plain\r\n"
                                  "Content-Length: 37\r\n"
                                  "Connection: close\r\n"
                                  "Sec-WebSocket-Version: 13\r\n"
                                  "\r\n"
                                  "unsupported WebSocket version: 13 is\n";
    size_t n = h1_write_error(out, sizeof out, 426, "unsupported WebSocket version: 13 is",
                              "Sec-WebSocket-Version: 13\r\n");
    assert_int_equal(n, sizeof want426 - 1);
    assert_memory_equal(out, want426, n);

    // Each status a server sends has its reason phrase, and Content-Length matches the
    // body exactly (a client would otherwise wait for more, or misread the next bytes).
    static const struct {
        uint16_t status;
        const char *line;
    } lines[] = {{400, "HTTP/1.1 400 Bad Request\r\n"},
                 {401, "HTTP/1.1 401 Unauthorized\r\n"},
                 {403, "HTTP/1.1 403 Forbidden\r\n"},
                 {404, "HTTP/1.1 404 Not Found\r\n"},
                 {405, "HTTP/1.1 405 Method Not Allowed\r\n"},
                 {413, "HTTP/1.1 413 Content Too Large\r\n"},
                 {426, "HTTP/1.1 426 Upgrade Required\r\n"},
                 {431, "HTTP/1.1 431 Request Header Fields Too Large\r\n"},
                 {503, "HTTP/1.1 503 Service Unavailable\r\n"}};
    for (const auto &l : lines) {
        n = h1_write_error(out, sizeof out, l.status, "nope", nullptr);
        assert_true(n > 0);
        out[n] = '\0';
        if (strncmp(out, l.line, strlen(l.line)) != 0) fail_msg("status %u: %s", l.status, out);
        const char *body = strstr(out, "\r\n\r\n");
        const char *cl = strstr(out, "Content-Length: ");
        assert_non_null(body);
        assert_non_null(cl);
        if ((size_t)atoi(cl + 16) != strlen(body + 4)) fail_msg("status %u: Content-Length %d, body %zu", l.status,
                                                               atoi(cl + 16), strlen(body + 4));
        assert_non_null(strstr(out, "\r\nConnection: close\r\n"));
    }
    assert_int_equal(h1_write_error(out, 20, 400, "nope", nullptr), 0);
}

// ---------------------------------------------------------------------------------
// Request target: path and query, origin-form and absolute-form (RFC 9112 §3.2).

static void test_path_and_query(void **) {
    static const struct {
        const char *target, *path, *query;
    } cases[] = {
        {"/", "/", ""},
        {"/chat", "/chat", ""},
        {"/a/b?x=1&y=2", "/a/b", "x=1&y=2"},
        {"/p?", "/p", ""},
        {"/p?x=http://y/z", "/p", "x=http://y/z"},
        {"/p?a?b", "/p", "a?b"},
        {"http://example.com/chat?room=1", "/chat", "room=1"},
        {"http://example.com:8080/", "/", ""},
        {"ws://h/x/y?z", "/x/y", "z"},
        {"https://user@h:1/p", "/p", ""},
        // An empty absolute-form path is reported empty (it means "/").
        {"http://h?a=/b", "", "a=/b"},
        {"http://h", "", ""},
    };
    char req[512];
    for (const auto &c : cases) {
        int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\n" REST, c.target);
        h1_parser p;
        h1_parser_init(&p, BIG);
        assert_int_equal(feed_whole(&p, req, (size_t)n).state, H1_COMPLETE);
        h1_span path = h1_request_path(&p), query = h1_request_query(&p);
        if (!span_is(&p, path, c.path) || !span_is(&p, query, c.query))
            fail_msg("%s: path \"%.*s\" query \"%.*s\", want \"%s\" \"%s\"", c.target, path.len, h1_span_ptr(&p, path),
                     query.len, h1_span_ptr(&p, query), c.path, c.query);
        h1_parser_free(&p);
    }
}

static void test_list_has_token(void **) {
    static const struct {
        const char *value, *token;
        bool want;
    } cases[] = {
        {"Upgrade", "upgrade", true},
        {"keep-alive, Upgrade", "Upgrade", true},
        {"keep-alive,Upgrade", "Upgrade", true},
        {" , ,\tupgrade\t,", "Upgrade", true},
        {"Upgrade2", "Upgrade", false},
        {"xUpgrade", "Upgrade", false},
        {"keep-alive", "Upgrade", false},
        {"", "Upgrade", false},
        {"Upgr ade", "Upgrade", false},
    };
    for (const auto &c : cases)
        if (h1_list_has_token(c.value, strlen(c.value), c.token) != c.want) fail_msg("\"%s\" has %s", c.value, c.token);
    // Only the given length is read: "Upgrade" hidden past it is not seen.
    assert_false(h1_list_has_token("close, Upgrade", 5, "Upgrade"));
}

// Servers may start on several threads at once, and every parser points at the same
// llhttp settings: they must never be written at run time (lazily filled in, they were a
// race). Constant-initialised, they sit in memory the process cannot write.
static void test_settings_are_read_only(void **) {
    h1_parser p;
    h1_parser_init(&p, 8192);
    uintptr_t at = (uintptr_t)p.http.settings;
    FILE *maps = fopen("/proc/self/maps", "r");
    assert_non_null(maps);
    char line[512], perms[8] = "";
    unsigned long lo, hi;
    bool found = false;
    while (!found && fgets(line, sizeof line, maps))
        found = sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3 && at >= lo && at < hi;
    fclose(maps);
    h1_parser_free(&p);
    assert_true(found);
    assert_int_equal(perms[1], '-');
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_settings_are_read_only),
        cmocka_unit_test(test_good_request_any_chunking),
        cmocka_unit_test(test_bytes_after_head_are_left),
        cmocka_unit_test(test_request_statuses),
        cmocka_unit_test(test_failure_is_final),
        cmocka_unit_test(test_header_size_limit),
        cmocka_unit_test(test_header_count_limit),
        cmocka_unit_test(test_subprotocol_selection),
        cmocka_unit_test(test_accept_key),
        cmocka_unit_test(test_write_accept),
        cmocka_unit_test(test_write_error),
        cmocka_unit_test(test_path_and_query),
        cmocka_unit_test(test_list_has_token),
    };
    return unit_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
