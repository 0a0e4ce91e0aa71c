#include "proto/h1.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

// What the previous llhttp callback was, to tell a continued span from a new one.
enum : uint8_t { CB_NONE, CB_URL, CB_FIELD, CB_FIELD_DONE, CB_VALUE };


static h1_parser *parser_of(llhttp_t *h) { return (h1_parser *)h->data; }

// llhttp may report one element in several calls when it straddles reads; the
// buffer is contiguous, so each call either extends the current span or starts one.
static void span_extend(h1_span *s, bool fresh, uint16_t off, size_t len) {
    if (fresh) {
        s->off = off;
        s->len = 0;
    }
    s->len = (uint16_t)(s->len + len);
}

static int on_url(llhttp_t *h, const char *at, size_t len) {
    h1_parser *p = parser_of(h);
    span_extend(&p->url, p->last_cb != CB_URL, (uint16_t)(at - p->buf), len);
    p->last_cb = CB_URL;
    return 0;
}

// The name being read goes into the first unused slot; it only counts as a header once
// complete, so the answer to too many headers does not depend on how the bytes arrive.
static int on_field(llhttp_t *h, const char *at, size_t len) {
    h1_parser *p = parser_of(h);
    if (p->in_body) return 0; // a chunked body's trailer fields: discarded (RFC 9112 §7.1.2)
    if (p->nheaders < H1_MAX_HEADERS)
        span_extend(&p->headers[p->nheaders].name, p->last_cb != CB_FIELD, (uint16_t)(at - p->buf), len);
    p->last_cb = CB_FIELD;
    return 0;
}

static int fail_cb(h1_parser *p, uint16_t status, const char *error) {
    p->status = status;
    p->error = error;
    return -1;
}

static int on_field_complete(llhttp_t *h) {
    h1_parser *p = parser_of(h);
    if (p->in_body) return 0;
    if (p->nheaders == H1_MAX_HEADERS) return fail_cb(p, 431, "too many header fields");
    h1_header *cur = &p->headers[p->nheaders];
    if (p->last_cb != CB_FIELD || cur->name.len == 0) return fail_cb(p, 400, "empty header name");
    // RFC 9112 §5.1: whitespace between a field name and its colon MUST get 400 (a
    // proxy may read the field differently); llhttp 8 keeps it as part of the name.
    char last = p->buf[cur->name.off + cur->name.len - 1];
    if (last == ' ' || last == '\t') return fail_cb(p, 400, "whitespace before a header colon");
    cur->value = h1_span{0, 0};
    p->nheaders++;
    p->last_cb = CB_FIELD_DONE;
    return 0;
}

static int on_value(llhttp_t *h, const char *at, size_t len) {
    h1_parser *p = parser_of(h);
    if (p->in_body) return 0;
    // Within one value llhttp's pieces are contiguous, except across an obs-fold
    // (CRLF + whitespace), which it reports as a second piece after a gap. RFC 9112
    // §5.2 lets a server reject obs-fold with 400; splicing the pieces would not.
    h1_header *cur = &p->headers[p->nheaders - 1];
    if (p->last_cb == CB_VALUE && at != p->buf + cur->value.off + cur->value.len)
        return fail_cb(p, 400, "obsolete line folding in a header");
    span_extend(&cur->value, p->last_cb != CB_VALUE, (uint16_t)(at - p->buf), len);
    p->last_cb = CB_VALUE;
    return 0;
}

// Stop at the end of the head: whatever follows belongs to the WebSocket, or is a body
// that h1_parser_feed_body reads, and llhttp must not interpret it before it is asked.
static int on_headers_complete(llhttp_t *) { return HPE_PAUSED; }

static int on_body(llhttp_t *h, const char *at, size_t len) {
    h1_parser *p = parser_of(h);
    if (len > p->body_max - p->body_len) return fail_cb(p, 413, "request body too large");
    if (p->body_len + len > p->body_cap) {
        uint64_t cap = p->body_cap ? p->body_cap : 1024;
        while (cap < p->body_len + len) cap *= 2;
        if (cap > p->body_max) cap = p->body_max;
        char *nb = (char *)realloc(p->body, cap);
        if (!nb) return fail_cb(p, 503, "out of memory");
        p->body = nb;
        p->body_cap = (uint32_t)cap;
    }
    memcpy(p->body + p->body_len, at, len);
    p->body_len += (uint32_t)len;
    return 0;
}

// The end of one request: the bytes after it are the next one (pipelining).
static int on_message_complete(llhttp_t *) { return HPE_PAUSED; }

// Built at compile time and never written at run time: servers starting on several
// threads share it without a race.
static constexpr llhttp_settings_t make_settings(void) {
    llhttp_settings_t s{};
    s.on_url = on_url;
    s.on_header_field = on_field;
    s.on_header_field_complete = on_field_complete;
    s.on_header_value = on_value;
    s.on_headers_complete = on_headers_complete;
    s.on_body = on_body;
    s.on_message_complete = on_message_complete;
    return s;
}
static constexpr llhttp_settings_t SETTINGS = make_settings();

void h1_parser_init(h1_parser *p, uint32_t max_header_bytes) {
    memset(p, 0, sizeof *p);
    llhttp_init(&p->http, HTTP_REQUEST, &SETTINGS);
    p->http.data = p;
    p->max = max_header_bytes > 65535 ? 65535 : max_header_bytes;
}

void h1_parser_reset(h1_parser *p) {
    char *buf = p->buf, *body = p->body;
    uint32_t cap = p->cap, max = p->max, body_cap = p->body_cap;
    h1_parser_init(p, max);
    p->buf = buf;
    p->cap = cap;
    p->body = body;
    p->body_cap = body_cap;
}

h1_parser *h1_parser_clone(const h1_parser *p) {
    h1_parser *n = (h1_parser *)malloc(sizeof *n);
    if (!n) return nullptr;
    memcpy(n, p, sizeof *n);
    n->http.data = n;
    n->cap = p->len;
    n->buf = p->len ? (char *)malloc(p->len) : nullptr;
    if (p->len && !n->buf) {
        free(n);
        return nullptr;
    }
    if (p->len) memcpy(n->buf, p->buf, p->len);
    n->body_cap = p->body_len;
    n->body = p->body_len ? (char *)malloc(p->body_len) : nullptr;
    if (p->body_len && !n->body) {
        free(n->buf);
        free(n);
        return nullptr;
    }
    if (p->body_len) memcpy(n->body, p->body, p->body_len);
    return n;
}

static h1_state h1_fail(h1_parser *p, uint16_t status, const char *error);

uint32_t h1_parser_body_free(h1_parser *p) {
    uint32_t cap = p->body_cap;
    free(p->body);
    p->body = nullptr;
    p->body_len = p->body_cap = 0;
    return cap;
}

void h1_parser_free(h1_parser *p) {
    free(p->buf);
    p->buf = nullptr;
    p->len = p->cap = 0;
    h1_parser_body_free(p);
}

bool h1_parser_has_body(const h1_parser *p) {
    return (p->http.flags & (F_CHUNKED | F_TRANSFER_ENCODING)) ||
           ((p->http.flags & F_CONTENT_LENGTH) && p->http.content_length > 0);
}

bool h1_parser_keep_alive(const h1_parser *p) { return llhttp_should_keep_alive(&p->http) != 0; }

void h1_parser_body_begin(h1_parser *p, uint32_t max) {
    p->in_body = true;
    p->body_len = 0;
    p->body_max = max;
    p->status = 0;
    llhttp_resume(const_cast<llhttp_t *>(&p->http));
}

h1_state h1_parser_feed_body(h1_parser *p, const uint8_t *data, size_t len, size_t *consumed) {
    *consumed = 0;
    if (p->state != H1_COMPLETE || !p->in_body) return (h1_state)p->state;
    llhttp_errno_t err = llhttp_execute(&p->http, (const char *)data, len);
    if (err == HPE_OK) {
        *consumed = len;
        return H1_NEED_MORE;
    }
    if (err == HPE_PAUSED) {
        *consumed = (size_t)(llhttp_get_error_pos(&p->http) - (const char *)data);
        p->in_body = false;
        return H1_COMPLETE;
    }
    if (p->status) return h1_fail(p, p->status, p->error);
    return h1_fail(p, 400, "malformed request body");
}

static h1_state h1_fail(h1_parser *p, uint16_t status, const char *error) {
    p->state = H1_FAILED;
    p->status = status;
    p->error = error;
    return H1_FAILED;
}

h1_state h1_parser_feed(h1_parser *p, const uint8_t *data, size_t len, size_t *consumed) {
    *consumed = 0;
    if (p->state != H1_NEED_MORE) return (h1_state)p->state;
    size_t room = p->max - p->len;
    size_t take = len < room ? len : room;
    if (take == 0) return len ? h1_fail(p, 431, "request header too large") : H1_NEED_MORE;
    if (p->len + take > p->cap) {
        uint32_t cap = p->cap ? p->cap : 512;
        while (cap < p->len + take) cap *= 2;
        if (cap > p->max) cap = p->max;
        char *nb = (char *)realloc(p->buf, cap);
        if (!nb) return h1_fail(p, 503, "out of memory");
        p->buf = nb;
        p->cap = cap;
    }
    char *start = p->buf + p->len;
    memcpy(start, data, take);
    p->len += (uint32_t)take;
    llhttp_errno_t err = llhttp_execute(&p->http, start, take);
    if (err == HPE_PAUSED) {
        const char *end = llhttp_get_error_pos(&p->http);
        p->head_end = (uint32_t)(end - p->buf);
        *consumed = (size_t)(end - start);
        p->state = H1_COMPLETE;
        return H1_COMPLETE;
    }
    if (err == HPE_OK) {
        *consumed = take;
        if (take < len || p->len == p->max) return h1_fail(p, 431, "request header too large");
        return H1_NEED_MORE;
    }
    if (p->status) return h1_fail(p, p->status, p->error); // set by our own callback
    return h1_fail(p, 400, "malformed HTTP request");
}

const char *h1_span_ptr(const h1_parser *p, h1_span s) { return p->buf + s.off; }

// Header values as llhttp reports them may carry trailing whitespace.
static h1_span trim(const h1_parser *p, h1_span s) {
    const char *b = p->buf + s.off;
    while (s.len && (b[0] == ' ' || b[0] == '\t')) {
        b++;
        s.off++;
        s.len--;
    }
    while (s.len && (b[s.len - 1] == ' ' || b[s.len - 1] == '\t')) s.len--;
    return s;
}

bool h1_span_is(const h1_parser *p, h1_span s, const char *lit) {
    size_t n = strlen(lit);
    return s.len == n && strncasecmp(p->buf + s.off, lit, n) == 0;
}

h1_span h1_header_value(const h1_parser *p, uint16_t i) { return trim(p, p->headers[i].value); }

bool h1_header_next(const h1_parser *p, const char *name, uint16_t *pos, h1_span *value) {
    for (; *pos < p->nheaders; (*pos)++) {
        if (h1_span_is(p, p->headers[*pos].name, name)) {
            *value = trim(p, p->headers[(*pos)++].value);
            return true;
        }
    }
    return false;
}

bool h1_header_find(const h1_parser *p, const char *name, h1_span *value) {
    uint16_t pos = 0;
    return h1_header_next(p, name, &pos, value);
}





h1_span h1_request_path(const h1_parser *p) {
    h1_span s = p->url;
    const char *u = p->buf + s.off;
    // absolute-form (RFC 9112 §3.2.2): skip "scheme://authority"
    const char *scheme = (const char *)memmem(u, s.len, "://", 3);
    if (scheme && u[0] != '/') {
        // The authority ends at the path or, when the path is empty, at the query.
        const char *auth = scheme + 3, *end = u + s.len;
        while (auth < end && *auth != '/' && *auth != '?') auth++;
        uint16_t skip = (uint16_t)(auth - u);
        s.off = (uint16_t)(s.off + skip);
        s.len = (uint16_t)(s.len - skip);
        u = p->buf + s.off;
    }
    const char *q = (const char *)memchr(u, '?', s.len);
    if (q) s.len = (uint16_t)(q - u);
    return s;
}

h1_span h1_request_query(const h1_parser *p) {
    const char *u = p->buf + p->url.off;
    const char *q = (const char *)memchr(u, '?', p->url.len);
    if (!q) return h1_span{p->url.off, 0};
    uint16_t off = (uint16_t)(q + 1 - p->buf);
    return h1_span{off, (uint16_t)(p->url.off + p->url.len - off)};
}


bool h1_list_has_token(const char *value, size_t len, const char *token) {
    size_t tl = strlen(token);
    return h1_list_any(value, len, [&](const char *e, size_t n) { return n == tl && strncasecmp(e, token, n) == 0; });
}

const char *h1_status_text(uint16_t status) {
    switch (status) {
    case 101: return "Switching Protocols";
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
    }
}

size_t h1_write_error(char *out, size_t cap, uint16_t status, const char *body, const char *extra_headers) {
    int n = snprintf(out, cap,
                     "HTTP/1.1 %u %s\r\n"
                     "Content-Type: text/plain\r\n"
                     "Content-Length: %zu\r\n"
                     "Connection: close\r\n"
                     "%s"
                     "\r\n"
                     "%s\n",
                     status, h1_status_text(status), strlen(body) + 1, extra_headers ? extra_headers : "", body);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

static bool is_tchar(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || (c && strchr("!#$%&'*+-.^_`|~", c));
}

bool h1_headers_valid(const char *h) {
    if (!h) return true;
    while (*h) {
        const char *name = h;
        while (*h && *h != ':' && is_tchar(*h)) h++;
        if (h == name || *h != ':') return false;
        size_t nl = (size_t)(h - name);
        // The framing and the connection's fate are the server's: a second
        // Content-Length from the application would let a client read two responses
        // into one (or one into two).
        if ((nl == 14 && strncasecmp(name, "Content-Length", 14) == 0) ||
            (nl == 17 && strncasecmp(name, "Transfer-Encoding", 17) == 0) ||
            (nl == 10 && strncasecmp(name, "Connection", 10) == 0))
            return false;
        h++;
        while (*h && *h != '\r' && *h != '\n') h++;
        if (h[0] != '\r' || h[1] != '\n') return false;
        h += 2;
    }
    return true;
}

size_t h1_write_head(char *out, size_t cap, uint16_t status, const char *date_line, uint64_t content_length,
                     h1_connection connection) {
    char length[48] = "";
    // 1xx and 204 never carry one (RFC 9110 §8.6); a 304's would describe the
    // representation it stands for, which the server does not know here.
    if (status >= 200 && status != 204 && status != 304)
        snprintf(length, sizeof length, "Content-Length: %llu\r\n", (unsigned long long)content_length);
    static const char *const conn_line[] = {"", "Connection: close\r\n", "Connection: keep-alive\r\n"};
    int n = snprintf(out, cap, "HTTP/1.1 %u %s\r\n%s%s%s", status, h1_status_text(status), date_line ? date_line : "",
                     length, conn_line[connection]);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

bool h1_host_valid(const h1_parser *p) {
    uint16_t pos = 0;
    h1_span v;
    int n = 0;
    bool ok = true;
    while (h1_header_next(p, "Host", &pos, &v)) {
        n++;
        // uri-host [ ":" port ]: reg-name, IPv4 or a bracketed IP literal; no spaces,
        // no controls, nothing a proxy could read as a second value.
        const char *s = h1_span_ptr(p, v);
        for (uint16_t i = 0; i < v.len && ok; i++) {
            char c = s[i];
            ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 (c && strchr("-._~%!$&'()*+,;=:[]", c));
        }
    }
    bool http11 = p->http.http_major == 1 && p->http.http_minor >= 1;
    return ok && n <= 1 && (n == 1 || !http11);
}
