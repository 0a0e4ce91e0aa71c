// HTTP/1.1 messages: requests parsed incrementally with llhttp (the head, then a body
// when there is one), and the response heads and error responses the server writes.
// Used for WebSocket upgrades (proto/handshake) and for plain HTTP requests alike.
//
// The parser keeps the raw request head in one growing buffer (bounded by the header
// limit) and records every header as offsets into it, so a value split across reads is
// still one contiguous span, and the bytes after the head (frames sent in the same read,
// a body, the next pipelined request) are handed back to the caller rather than lost.
// Nothing here does I/O.
#pragma once

#include <llhttp.h>
#include <stddef.h>
#include <stdint.h>

enum { H1_MAX_HEADERS = 64 };

struct h1_span {
    uint16_t off, len;
};

struct h1_header {
    h1_span name, value;
};

enum h1_state : uint8_t {
    H1_NEED_MORE, // the request head is not complete yet
    H1_COMPLETE,  // the head is parsed; validate it with hs_validate
    H1_FAILED,    // unparseable or over a limit: answer with status/error
};

struct h1_parser {
    llhttp_t http;
    char *buf;          // raw request head (malloc'd, grows up to max)
    uint32_t len;       // bytes in buf
    uint32_t cap;
    uint32_t max;       // header byte limit; over it: 431
    uint32_t head_end;  // offset just past the blank line, once complete
    uint16_t status;    // H1_FAILED: HTTP status to answer with
    const char *error;  // H1_FAILED: short reason for the body and the log
    uint8_t state;
    uint8_t last_cb;    // which span the previous llhttp data callback extended
    uint16_t nheaders;
    bool in_body;       // h1_parser_body_begin was called: the body is being read
    char *body;         // decoded body (malloc'd, grows up to body_max)
    uint32_t body_len, body_cap, body_max;
    h1_span url;
    h1_header headers[H1_MAX_HEADERS];
};

// max_header_bytes: limit on the request line plus headers (at most 65535).
void h1_parser_init(h1_parser *p, uint32_t max_header_bytes);
void h1_parser_free(h1_parser *p);
// Starts a new request, keeping the buffer already allocated (a parser reused for
// one connection after another allocates nothing in the steady state).
void h1_parser_reset(h1_parser *p);
// A heap copy of p with its own buffer: for a request that spans reads, so the
// parser that began it can be reused. NULL when out of memory.
h1_parser *h1_parser_clone(const h1_parser *p);

// Feeds bytes. Returns the new state and sets *consumed to how many of the given bytes
// belonged to the request head; on H1_COMPLETE the rest are the first WebSocket bytes.
h1_state h1_parser_feed(h1_parser *p, const uint8_t *data, size_t len, size_t *consumed);

// Bodies of plain HTTP requests. Once the head is complete: whether a body follows
// (Content-Length > 0, or chunked).
bool h1_parser_has_body(const h1_parser *p);
// Reads the body from the next bytes fed, at most max bytes of it.
void h1_parser_body_begin(h1_parser *p, uint32_t max);
// Feeds body bytes; the decoded body collects in p->body. H1_COMPLETE once the request
// ends (*consumed: the bytes that belonged to it; the rest is the next request),
// H1_NEED_MORE, or H1_FAILED (413 past the limit, 400 for broken chunking, 503 out of
// memory).
h1_state h1_parser_feed_body(h1_parser *p, const uint8_t *data, size_t len, size_t *consumed);
// Frees the body buffer (its capacity is returned, for accounting).
uint32_t h1_parser_body_free(h1_parser *p);
// Whether the connection may carry another request after this one (HTTP version and
// Connection header).
bool h1_parser_keep_alive(const h1_parser *p);

// Accessors, valid once complete. A span's text is p->buf + off.
const char *h1_span_ptr(const h1_parser *p, h1_span s);
// The first header with this name (case-insensitive), or false.
bool h1_header_find(const h1_parser *p, const char *name, h1_span *value);
// The value of header i, trimmed as h1_header_find trims it.
h1_span h1_header_value(const h1_parser *p, uint16_t i);
// Iterates over every header with this name: start with *pos = 0.
bool h1_header_next(const h1_parser *p, const char *name, uint16_t *pos, h1_span *value);
// The request path: the URL without query string or absolute-form scheme and host.
h1_span h1_request_path(const h1_parser *p);
// The query string after '?', empty when there is none.
h1_span h1_request_query(const h1_parser *p);

// RFC 9112 §3.2: at most one Host header, exactly one in HTTP/1.1, and a valid value.
bool h1_host_valid(const h1_parser *p);

// Case-insensitive comparison of a span with a literal.
bool h1_span_is(const h1_parser *p, h1_span s, const char *lit);

// True when a comma-separated header value contains token (case-insensitive).
bool h1_list_has_token(const char *value, size_t len, const char *token);

// Walks a comma-separated list; calls fn on each trimmed, non-empty element.
template <typename F> bool h1_list_any(const char *v, size_t len, F fn) {
    size_t i = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && v[j] != ',') j++;
        size_t a = i, b = j;
        while (a < b && (v[a] == ' ' || v[a] == '\t')) a++;
        while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t')) b--;
        if (b > a && fn(v + a, b - a)) return true;
        i = j + 1;
    }
    return false;
}

// Reason phrase for a status code.
const char *h1_status_text(uint16_t status);

// Writes a complete error response with a short text body and Connection: close.
// extra_headers (may be NULL) is inserted verbatim and must end in CRLF.
size_t h1_write_error(char *out, size_t cap, uint16_t status, const char *body, const char *extra_headers);

// True when headers is NULL, empty, or complete "Name: value\r\n" lines (a token name,
// a value without CR, LF or NUL) that do not set Content-Length, Transfer-Encoding or
// Connection, which belong to the server.
bool h1_headers_valid(const char *headers);

enum h1_connection : uint8_t { H1_CONN_NONE, H1_CONN_CLOSE, H1_CONN_KEEP_ALIVE };
// Writes a response head up to (not including) the blank line: status line, date_line
// (may be NULL; a complete header line), Content-Length unless the status has no body
// (1xx, 204, 304), and a Connection header. Returns bytes written, or 0 if cap is too small.
size_t h1_write_head(char *out, size_t cap, uint16_t status, const char *date_line, uint64_t content_length,
                     h1_connection connection);

