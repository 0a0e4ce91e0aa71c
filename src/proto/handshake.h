// The HTTP/1.1 upgrade request (RFC 6455 §4.2): incremental parsing with llhttp,
// validation, Sec-WebSocket-Accept, and the response bytes.
//
// The parser keeps the raw request head in one growing buffer (bounded by the header
// limit) and records every header as offsets into it, so a value split across reads is
// still one contiguous span, and the bytes after the head, frames sent in the same read,
// are handed back to the caller rather than lost. Nothing here does I/O.
#pragma once

#include <llhttp.h>
#include <stddef.h>
#include <stdint.h>

enum { HS_MAX_HEADERS = 64, HS_ACCEPT_LEN = 28 };

struct hs_span {
    uint16_t off, len;
};

struct hs_header {
    hs_span name, value;
};

enum hs_state : uint8_t {
    HS_NEED_MORE, // the request head is not complete yet
    HS_COMPLETE,  // the head is parsed; validate it with hs_validate
    HS_FAILED,    // unparseable or over a limit: answer with status/error
};

struct hs_parser {
    llhttp_t http;
    char *buf;          // raw request head (malloc'd, grows up to max)
    uint32_t len;       // bytes in buf
    uint32_t cap;
    uint32_t max;       // header byte limit; over it: 431
    uint32_t head_end;  // offset just past the blank line, once complete
    uint16_t status;    // HS_FAILED: HTTP status to answer with
    const char *error;  // HS_FAILED: short reason for the body and the log
    uint8_t state;
    uint8_t last_cb;    // which span the previous llhttp data callback extended
    uint16_t nheaders;
    bool in_body;       // hs_parser_body_begin was called: the body is being read
    char *body;         // decoded body (malloc'd, grows up to body_max)
    uint32_t body_len, body_cap, body_max;
    hs_span url;
    hs_header headers[HS_MAX_HEADERS];
};

// max_header_bytes: limit on the request line plus headers (at most 65535).
void hs_parser_init(hs_parser *p, uint32_t max_header_bytes);
void hs_parser_free(hs_parser *p);
// Starts a new request, keeping the buffer already allocated (a parser reused for
// one connection after another allocates nothing in the steady state).
void hs_parser_reset(hs_parser *p);
// A heap copy of p with its own buffer: for a request that spans reads, so the
// parser that began it can be reused. NULL when out of memory.
hs_parser *hs_parser_clone(const hs_parser *p);

// Feeds bytes. Returns the new state and sets *consumed to how many of the given bytes
// belonged to the request head; on HS_COMPLETE the rest are the first WebSocket bytes.
hs_state hs_parser_feed(hs_parser *p, const uint8_t *data, size_t len, size_t *consumed);

// Bodies of plain HTTP requests. Once the head is complete: whether a body follows
// (Content-Length > 0, or chunked).
bool hs_parser_has_body(const hs_parser *p);
// Reads the body from the next bytes fed, at most max bytes of it.
void hs_parser_body_begin(hs_parser *p, uint32_t max);
// Feeds body bytes; the decoded body collects in p->body. HS_COMPLETE once the request
// ends (*consumed: the bytes that belonged to it; the rest is the next request),
// HS_NEED_MORE, or HS_FAILED (413 past the limit, 400 for broken chunking, 503 out of
// memory).
hs_state hs_parser_feed_body(hs_parser *p, const uint8_t *data, size_t len, size_t *consumed);
// Frees the body buffer (its capacity is returned, for accounting).
uint32_t hs_parser_body_free(hs_parser *p);
// Whether the connection may carry another request after this one (HTTP version and
// Connection header).
bool hs_parser_keep_alive(const hs_parser *p);

// Accessors, valid once complete. A span's text is p->buf + off.
const char *hs_span_ptr(const hs_parser *p, hs_span s);
// The first header with this name (case-insensitive), or false.
bool hs_header_find(const hs_parser *p, const char *name, hs_span *value);
// The value of header i, trimmed as hs_header_find trims it.
hs_span hs_header_value(const hs_parser *p, uint16_t i);
// Iterates over every header with this name: start with *pos = 0.
bool hs_header_next(const hs_parser *p, const char *name, uint16_t *pos, hs_span *value);
// The request path: the URL without query string or absolute-form scheme and host.
hs_span hs_request_path(const hs_parser *p);
// The query string after '?', empty when there is none.
hs_span hs_request_query(const hs_parser *p);

struct hs_config {
    const char *const *subprotocols; // supported, NULL-terminated; NULL for none
};

struct hs_result {
    uint16_t status;                // 101 on success, else the HTTP error status
    const char *error;              // static reason when status != 101
    char accept[HS_ACCEPT_LEN + 1]; // Sec-WebSocket-Accept, NUL-terminated
    const char *subprotocol;        // the chosen entry of cfg->subprotocols, or NULL
};

// Applies RFC 6455 §4.2.1 to a complete request: method, version, Host, Upgrade,
// Connection, Sec-WebSocket-Key and -Version; picks a subprotocol. Fills *r.
void hs_validate(const hs_parser *p, const hs_config *cfg, hs_result *r);

// Sec-WebSocket-Accept for a key (RFC 6455 §4.2.2 step 5.4): base64(SHA-1(key + GUID)).
void hs_accept_key(const char *key, size_t key_len, char out[HS_ACCEPT_LEN + 1]);

// Writes the 101 response. extensions may be NULL. Returns bytes written, or 0 if cap
// is too small.
size_t hs_write_accept(char *out, size_t cap, const hs_result *r, const char *extensions);

// Writes a complete error response with a short text body and Connection: close.
// extra_headers (may be NULL) is inserted verbatim and must end in CRLF.
size_t hs_write_error(char *out, size_t cap, uint16_t status, const char *body, const char *extra_headers);

// True when headers is NULL, empty, or complete "Name: value\r\n" lines (a token name,
// a value without CR, LF or NUL) that do not set Content-Length, Transfer-Encoding or
// Connection, which belong to the server.
bool hs_headers_valid(const char *headers);

enum hs_connection : uint8_t { HS_CONN_NONE, HS_CONN_CLOSE, HS_CONN_KEEP_ALIVE };
// Writes a response head up to (not including) the blank line: status line, date_line
// (may be NULL; a complete header line), Content-Length unless the status has no body
// (1xx, 204, 304), and a Connection header. Returns bytes written, or 0 if cap is too small.
size_t hs_write_head(char *out, size_t cap, uint16_t status, const char *date_line, uint64_t content_length,
                     hs_connection connection);

// Reason phrase for a status code.
const char *hs_status_text(uint16_t status);

// True when a comma-separated header value contains token (case-insensitive).
bool hs_list_has_token(const char *value, size_t len, const char *token);
