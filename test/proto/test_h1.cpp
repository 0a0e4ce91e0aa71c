// Unit tests for plain HTTP/1.1 requests and responses (src/proto/h1.*); the upgrade
// request itself is tested in test_handshake.cpp.
//
// What a server relies on: a body arrives the same however the reads cut it, chunked or
// with Content-Length; what follows a request is left for the next one (pipelining);
// a body past the limit is refused with 413 as soon as it passes it; the response heads
// frame the body the way clients read them; and no application header can change the
// framing.
#include <stdlib.h>
#include <string.h>

#include "unit.h"

#include "proto/h1.h"

struct result {
    h1_state state;
    uint16_t status;
    char body[256];
    size_t body_len;
    size_t rest; // bytes left after the request, for the next one
};

// Feeds req in chunks of at most `step` bytes (0: whole): the head, then the body.
static result feed(const char *req, size_t step, uint32_t max_body) {
    result r = {};
    h1_parser p;
    h1_parser_init(&p, 8192);
    size_t n = strlen(req), off = 0;
    bool body = false;
    while (off < n) {
        size_t len = step && n - off > step ? step : n - off, used = 0;
        const uint8_t *d = (const uint8_t *)req + off;
        if (!body) {
            r.state = h1_parser_feed(&p, d, len, &used);
            if (r.state == H1_COMPLETE) {
                body = true;
                if (!h1_parser_has_body(&p)) {
                    r.rest = n - off - used;
                    break;
                }
                h1_parser_body_begin(&p, max_body);
                off += used;
                continue;
            }
        } else {
            r.state = h1_parser_feed_body(&p, d, len, &used);
            if (r.state == H1_COMPLETE) {
                r.rest = n - off - used;
                break;
            }
        }
        if (r.state == H1_FAILED) break;
        off += used;
    }
    r.status = p.status;
    r.body_len = p.body_len < sizeof r.body ? p.body_len : sizeof r.body;
    if (p.body_len) memcpy(r.body, p.body, r.body_len);
    h1_parser_free(&p);
    return r;
}

static void check_every_step(const char *req, uint32_t max_body, h1_state state, uint16_t status, const char *body,
                             size_t rest) {
    size_t n = strlen(req);
    for (size_t step = 0; step <= n; step++) { // 0: whole; then every chunk size
        result r = feed(req, step, max_body);
        if (r.state != state) fail_msg("step %zu: state %d, want %d (status %u)", step, r.state, state, r.status);
        if (state == H1_FAILED && r.status != status) fail_msg("step %zu: status %u, want %u", step, r.status, status);
        if (state != H1_COMPLETE) continue;
        if (r.body_len != strlen(body) || memcmp(r.body, body, r.body_len) != 0)
            fail_msg("step %zu: body \"%.*s\", want \"%s\"", step, (int)r.body_len, r.body, body);
        if (r.rest != rest) fail_msg("step %zu: %zu bytes left, want %zu", step, r.rest, rest);
    }
}

static const char NEXT[] = "GET /next HTTP/1.1\r\nHost: x\r\n\r\n";

static void test_content_length_body_any_chunking(void **) {
    char req[512];
    snprintf(req, sizeof req, "POST /api HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world%s", NEXT);
    check_every_step(req, 1024, H1_COMPLETE, 0, "hello world", sizeof NEXT - 1);
}

static void test_chunked_body_any_chunking(void **) {
    char req[512];
    snprintf(req, sizeof req,
             "POST /api HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
             "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n%s",
             NEXT);
    check_every_step(req, 1024, H1_COMPLETE, 0, "hello world", sizeof NEXT - 1);
}

static void test_request_without_body_leaves_the_next(void **) {
    char req[512];
    snprintf(req, sizeof req, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n%s", NEXT);
    result r = feed(req, 0, 1024);
    assert_int_equal(r.state, H1_COMPLETE);
    assert_int_equal(r.body_len, 0);
    assert_int_equal(r.rest, sizeof NEXT - 1);
}

// Past the limit the answer is 413 whether the body is chunked or not, and whatever
// the chunk sizes claim.
static void test_body_over_the_limit(void **) {
    check_every_step("POST /api HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world", 10, H1_FAILED, 413,
                     "", 0);
    check_every_step("POST /api HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
                     10, H1_FAILED, 413, "", 0);
}

// Request smuggling shapes (RFC 9112 §6.3) and broken chunking are refused.
static void test_framing_errors(void **) {
    check_every_step("POST /api HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "3\r\nabc\r\n0\r\n\r\n",
                     1024, H1_FAILED, 400, "", 0);
    check_every_step("POST /api HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 1024,
                     H1_FAILED, 400, "", 0);
    check_every_step("POST /api HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
                     1024, H1_FAILED, 400, "", 0);
}

static void test_keep_alive(void **) {
    const struct {
        const char *req;
        bool keep;
    } cases[] = {
        {"GET / HTTP/1.1\r\nHost: x\r\n\r\n", true},
        {"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", false},
        {"GET / HTTP/1.0\r\n\r\n", false},
        {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true},
    };
    for (const auto &k : cases) {
        h1_parser p;
        h1_parser_init(&p, 8192);
        size_t used;
        assert_int_equal(h1_parser_feed(&p, (const uint8_t *)k.req, strlen(k.req), &used), H1_COMPLETE);
        if (h1_parser_keep_alive(&p) != k.keep) fail_msg("%s: keep-alive %d", k.req, !k.keep);
        h1_parser_free(&p);
    }
}

// Application headers may add lines but never change how the response is framed.
static void test_headers_valid(void **) {
    assert_true(h1_headers_valid(nullptr));
    assert_true(h1_headers_valid(""));
    assert_true(h1_headers_valid("Content-Type: application/json\r\nX-A: b c\r\n"));
    const char *bad[] = {
        "Content-Type: a",               // no CRLF
        "Content-Type: a\n",             // bare LF
        "X-A: b\r\nX-B: c",              // last line unfinished
        "Bad Name: x\r\n",               // not a token
        ": x\r\n",                       // empty name
        "X-A: b\rX-B: c\r\n",            // bare CR splits a line
        "Content-Length: 5\r\n",         // framing is the server's
        "content-length: 5\r\n",
        "Transfer-Encoding: chunked\r\n",
        "Connection: keep-alive\r\n",
    };
    for (const char *b : bad)
        if (h1_headers_valid(b)) fail_msg("accepted \"%s\"", b);
}

static void test_write_head(void **) {
    char out[256];
    size_t n = h1_write_head(out, sizeof out, 200, "Date: D\r\n", 15, H1_CONN_NONE);
    assert_int_equal(n, strlen(out));
    assert_string_equal(out, "HTTP/1.1 200 OK\r\nDate: D\r\nContent-Length: 15\r\n");
    h1_write_head(out, sizeof out, 404, nullptr, 0, H1_CONN_CLOSE);
    assert_string_equal(out, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n");
    h1_write_head(out, sizeof out, 200, nullptr, 2, H1_CONN_KEEP_ALIVE);
    assert_string_equal(out, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n");
    // No Content-Length where the status has no body: a client would wait for one.
    h1_write_head(out, sizeof out, 204, nullptr, 0, H1_CONN_NONE);
    assert_string_equal(out, "HTTP/1.1 204 No Content\r\n");
    h1_write_head(out, sizeof out, 304, nullptr, 0, H1_CONN_NONE);
    assert_string_equal(out, "HTTP/1.1 304 Not Modified\r\n");
    assert_int_equal(h1_write_head(out, 10, 200, nullptr, 0, H1_CONN_NONE), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_content_length_body_any_chunking),
        cmocka_unit_test(test_chunked_body_any_chunking),
        cmocka_unit_test(test_request_without_body_leaves_the_next),
        cmocka_unit_test(test_body_over_the_limit),
        cmocka_unit_test(test_framing_errors),
        cmocka_unit_test(test_keep_alive),
        cmocka_unit_test(test_headers_valid),
        cmocka_unit_test(test_write_head),
    };
    return unit_exit(cmocka_run_group_tests(tests, nullptr, nullptr));
}
