// Fuzz target for the upgrade request parser and the handshake responses
// (src/proto/handshake.*).
//
// Input layout (5 bytes of settings, then the request bytes as they would arrive):
//   [0] flags: bits0-1 header byte limit class (see max_from), bit2 offer subprotocols,
//       bit3 serve only the path "/chat" (anything else is answered 404, as the app
//       layer does), bits4-5 which Sec-WebSocket-Extensions value to answer with
//   [1] limit parameter for the small class
//   [2] largest chunk when splitting (0 = one byte at a time)
//   [3..4] splitter seed
//
// The request goes in twice: whole, and cut into chunks. Both runs must end in the same
// state with the same status and the same request head (every header span identical).
// A completed head is then checked span by span, validated, and answered; the answer
// must be a well-formed "HTTP/1.1 101" with a 28-character Sec-WebSocket-Accept, or an
// error status line (400, 404, 405, 426, 431 or 503) whose Content-Length matches its
// body. hs_validate is checked against the RFC 6455 §4.2.1 rules written out here: it
// accepts exactly the requests that satisfy all of them. LeakSanitizer (on in libFuzzer
// and in the ASan replay build) checks that h1_parser_free returns everything.
#include <ctype.h>
#include <llhttp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "proto/handshake.h"

enum { SETTINGS_LEN = 5, OUT_CAP = 1024 };

static const char *const g_subprotocols[] = {"chat", "superchat", "v2.json.wsr", nullptr};

static const char *const g_extensions[] = {
    nullptr,
    "permessage-deflate",
    "permessage-deflate; server_no_context_takeover; client_max_window_bits=15",
    "permessage-deflate; client_no_context_takeover; server_max_window_bits=10",
};

static uint32_t max_from(const uint8_t *s) {
    switch (s[0] & 3) {
    case 0: return 16 + s[1];  // tiny: 431 paths, limits falling inside the request line
    case 1: return 1024;
    case 2: return 8192;       // the daemon's default
    default: return 100000;    // over the 65535 ceiling: must be clamped, offsets are 16-bit
    }
}

struct feed_result {
    h1_state state;
    size_t consumed; // request bytes consumed over all feeds
};

// Feeds req[0..n) in chunks until the parser stops needing more. Checks the feed contract
// on every call: consumed <= given; NEED_MORE consumes everything; a finished parser
// consumes nothing more.
static feed_result feed(h1_parser *p, const uint8_t *req, size_t n, fuzz_splitter *split) {
    feed_result r = {H1_NEED_MORE, 0};
    size_t pos = 0;
    do {
        size_t c = split ? fuzz_splitter_next(split, n - pos) : n - pos;
        size_t used = (size_t)-1;
        r.state = h1_parser_feed(p, req + pos, c, &used);
        FUZZ_CHECK(used <= c, "consumed %zu of %zu bytes", used, c);
        if (r.state == H1_NEED_MORE) FUZZ_CHECK(used == c, "NEED_MORE after consuming %zu of %zu bytes", used, c);
        pos += used;
        if (r.state != H1_NEED_MORE) break;
    } while (pos < n);
    r.consumed = pos;
    if (r.state != H1_NEED_MORE) {
        size_t used = (size_t)-1;
        h1_state again = h1_parser_feed(p, req, n, &used);
        FUZZ_CHECK(again == r.state && used == 0, "a finished parser took more input (state %d, %zu bytes)", again,
                   used);
    }
    return r;
}

// A request for the scratch parser to have parsed before (and after) the one under test.
static const char g_other_request[] =
    "GET /previous/connection?with=a-query HTTP/1.1\r\nHost: previous.example\r\n"
    "Sec-WebSocket-Protocol: stale, values\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";

static void feed_other(h1_parser *p) {
    size_t used;
    h1_parser_reset(p);
    h1_parser_feed(p, (const uint8_t *)g_other_request, sizeof g_other_request - 1, &used);
}

// The split run feeds the request the way src/core/conn.cpp does: one loop-wide scratch
// parser, reset for each connection, takes the first read; a request that spans reads
// moves to a heap clone, and the scratch goes on to the next connection (here: parses
// another request into the same buffer, which the clone must not share). Returns the
// parser that holds the result: the scratch, or the clone (free it with h1_parser_free
// and free).
static h1_parser *feed_like_server(h1_parser *scratch, const uint8_t *req, size_t n, fuzz_splitter *split,
                                   feed_result *r) {
    h1_parser_reset(scratch);
    size_t first = fuzz_splitter_next(split, n);
    size_t used = (size_t)-1;
    h1_state st = h1_parser_feed(scratch, req, first, &used);
    FUZZ_CHECK(used <= first, "consumed %zu of %zu bytes", used, first);
    if (st != H1_NEED_MORE || first == n) {
        // Same contract checks as feed(), on the rest of the input.
        feed_result rest = feed(scratch, req + used, st == H1_NEED_MORE ? 0 : n - used, nullptr);
        r->state = st == H1_NEED_MORE ? rest.state : st;
        r->consumed = used;
        return scratch;
    }
    FUZZ_CHECK(used == first, "NEED_MORE after consuming %zu of %zu bytes", used, first);
    h1_parser *clone = h1_parser_clone(scratch);
    FUZZ_CHECK(clone != nullptr, "h1_parser_clone failed");
    feed_other(scratch);
    feed_result rest = feed(clone, req + first, n - first, split);
    r->state = rest.state;
    r->consumed = first + rest.consumed;
    return clone;
}

// --- independent helpers for the checks (RFC 9110 §5.6) ---------------------------

static bool is_tchar(uint8_t c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
    return c && strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

static uint8_t lower(uint8_t c) { return c >= 'A' && c <= 'Z' ? (uint8_t)(c + 32) : c; }

static bool ieq(const char *a, size_t an, const char *b) {
    size_t bn = strlen(b);
    if (an != bn) return false;
    for (size_t i = 0; i < an; i++)
        if (lower((uint8_t)a[i]) != lower((uint8_t)b[i])) return false;
    return true;
}

struct text {
    const char *s;
    size_t n;
};

static text span_text(const h1_parser *p, h1_span s) { return text{p->buf + s.off, s.len}; }

static text trim_ows(text t) {
    while (t.n && (t.s[0] == ' ' || t.s[0] == '\t')) t.s++, t.n--;
    while (t.n && (t.s[t.n - 1] == ' ' || t.s[t.n - 1] == '\t')) t.n--;
    return t;
}

// Does the comma-separated list `v` hold `tok`? case_fold: compare case-insensitively.
static bool list_has(text v, const char *tok, bool case_fold) {
    size_t tl = strlen(tok);
    size_t i = 0;
    while (i <= v.n) {
        size_t j = i;
        while (j < v.n && v.s[j] != ',') j++;
        text e = trim_ows(text{v.s + i, j - i});
        if (e.n == tl && (case_fold ? ieq(e.s, e.n, tok) : memcmp(e.s, tok, tl) == 0)) return true;
        i = j + 1;
    }
    return false;
}

static int count_headers(const h1_parser *p, const char *name) {
    int c = 0;
    for (uint16_t i = 0; i < p->nheaders; i++) {
        text t = span_text(p, p->headers[i].name);
        c += ieq(t.s, t.n, name);
    }
    return c;
}

// The first header with this name, trimmed; false if absent.
static bool first_header(const h1_parser *p, const char *name, text *out) {
    for (uint16_t i = 0; i < p->nheaders; i++) {
        text t = span_text(p, p->headers[i].name);
        if (ieq(t.s, t.n, name)) {
            *out = trim_ows(span_text(p, p->headers[i].value));
            return true;
        }
    }
    return false;
}

static bool is_b64(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

// RFC 9110 §5.3: field lines with the same name form one comma-separated list, so a
// token may be in any of them.
static bool combined_list_has(const h1_parser *p, const char *name, const char *tok) {
    for (uint16_t i = 0; i < p->nheaders; i++) {
        text n = span_text(p, p->headers[i].name);
        if (ieq(n.s, n.n, name) && list_has(span_text(p, p->headers[i].value), tok, true)) return true;
    }
    return false;
}

// RFC 6455 §4.2.1 item by item, with RFC 9112 §3.2 on Host.
static bool request_acceptable(const h1_parser *p) {
    if (p->http.method != HTTP_GET) return false;
    if (p->http.http_major != 1 || p->http.http_minor < 1) return false;
    text v;
    // The bytes after the head are frames, so an upgrade request carries no body.
    if (count_headers(p, "Transfer-Encoding") != 0) return false;
    if (first_header(p, "Content-Length", &v)) {
        for (size_t i = 0; i < v.n; i++)
            if (v.s[i] != '0') return false;
    }
    // RFC 9112 §3.2: "MUST respond with 400 to any request ... that contains more than
    // one Host header field line".
    if (count_headers(p, "Host") != 1) return false;
    // ... "or a Host header field with an invalid field-value": uri-host [":" port] of
    // RFC 3986 is made of unreserved, pct-encoded and sub-delims characters, ':' and the
    // brackets of an IP literal.
    first_header(p, "Host", &v);
    for (size_t i = 0; i < v.n; i++) {
        unsigned char ch = (unsigned char)v.s[i];
        if (!isalnum(ch) && !(ch && strchr("-._~%!$&'()*+,;=:[]", ch))) return false;
    }
    if (!combined_list_has(p, "Upgrade", "websocket")) return false;
    if (!combined_list_has(p, "Connection", "upgrade")) return false;
    if (count_headers(p, "Sec-WebSocket-Version") != 1) return false;
    first_header(p, "Sec-WebSocket-Version", &v);
    if (!(v.n == 2 && v.s[0] == '1' && v.s[1] == '3')) return false;
    if (count_headers(p, "Sec-WebSocket-Key") != 1) return false;
    first_header(p, "Sec-WebSocket-Key", &v);
    if (v.n != 24 || v.s[22] != '=' || v.s[23] != '=') return false;
    for (size_t i = 0; i < 22; i++)
        if (!is_b64(v.s[i])) return false;
    return true;
}

// The first protocol in the client's order that the server supports.
static const char *expected_subprotocol(const h1_parser *p) {
    for (uint16_t i = 0; i < p->nheaders; i++) {
        text name = span_text(p, p->headers[i].name);
        if (!ieq(name.s, name.n, "Sec-WebSocket-Protocol")) continue;
        text v = span_text(p, p->headers[i].value);
        size_t a = 0;
        while (a <= v.n) {
            size_t b = a;
            while (b < v.n && v.s[b] != ',') b++;
            text e = trim_ows(text{v.s + a, b - a});
            for (const char *const *s = g_subprotocols; *s; s++)
                if (e.n == strlen(*s) && memcmp(e.s, *s, e.n) == 0) return *s;
            a = b + 1;
        }
    }
    return nullptr;
}

// --- checks on a completed head -------------------------------------------------

static void check_span(const h1_parser *p, h1_span s, const char *what) {
    FUZZ_CHECK((uint32_t)s.off + s.len <= p->head_end, "%s span %u+%u past the head (%u)", what, s.off, s.len,
               p->head_end);
}

static void check_head(const h1_parser *p, size_t consumed) {
    FUZZ_CHECK(p->head_end == consumed, "head_end %u but %zu bytes consumed", p->head_end, consumed);
    FUZZ_CHECK(p->head_end >= 2 && p->head_end <= p->len && p->head_end <= p->max, "head_end %u, len %u, max %u",
               p->head_end, p->len, p->max);
    // llhttp also takes an HTTP/0.9 "GET /path" line (no version, no headers); its head
    // then ends wherever llhttp pauses. hs_validate answers those with 400, checked below.
    // RFC 9112 §2.2: lines end in CRLF; a bare CR is invalid (llhttp checks it only in
    // strict mode, which the build enables).
    if (p->http.http_major > 0)
        FUZZ_CHECK(p->buf[p->head_end - 1] == '\n', "the head does not end with a line feed");
    FUZZ_CHECK(p->nheaders <= H1_MAX_HEADERS, "%u headers", p->nheaders);
    check_span(p, p->url, "url");
    for (uint16_t i = 0; i < p->url.len; i++) {
        uint8_t c = (uint8_t)p->buf[p->url.off + i];
        // RFC 9112 §3.2: no whitespace or controls in the request-target.
        FUZZ_CHECK(c > ' ' && c != 0x7F, "url byte 0x%02x", c);
    }
    for (uint16_t h = 0; h < p->nheaders; h++) {
        const h1_header *hd = &p->headers[h];
        check_span(p, hd->name, "name");
        check_span(p, hd->value, "value");
        // RFC 9110 §5.1: a field name is a token, so never empty (llhttp reports ": value"
        // as an empty name; the parser refuses it).
        FUZZ_CHECK(hd->name.len > 0, "header %u has an empty name", h);
        FUZZ_CHECK(hd->value.off == 0 || hd->value.off >= hd->name.off + hd->name.len,
                   "header %u value starts inside its name", h);
        for (uint16_t i = 0; i < hd->name.len; i++) {
            uint8_t c = (uint8_t)p->buf[hd->name.off + i];
            // RFC 9112 §5.1: whitespace in or after a field name is a 400.
            FUZZ_CHECK(is_tchar(c), "header %u name byte 0x%02x at %u (spans of two headers merged?)", h, c, i);
        }
        for (uint16_t i = 0; i < hd->value.len; i++) {
            uint8_t c = (uint8_t)p->buf[hd->value.off + i];
            FUZZ_CHECK(c != '\r' && c != '\n' && c != 0, "header %u value byte 0x%02x at %u", h, c, i);
        }
        // h1_list_has_token against the list walker above, on every header value.
        text v = span_text(p, hd->value);
        static const char *const toks[] = {"websocket", "Upgrade", "permessage-deflate", "x"};
        for (const char *tok : toks)
            FUZZ_CHECK(h1_list_has_token(v.s, v.n, tok) == list_has(v, tok, true), "h1_list_has_token(\"%.*s\", %s)",
                       (int)v.n, v.s, tok);
        // h1_header_find returns the first header of that name, trimmed.
        text name = span_text(p, hd->name);
        char nm[64];
        if (name.n < sizeof nm) {
            memcpy(nm, name.s, name.n);
            nm[name.n] = 0;
            h1_span found;
            text want;
            FUZZ_CHECK(h1_header_find(p, nm, &found) && first_header(p, nm, &want), "h1_header_find(%s)", nm);
            FUZZ_CHECK(h1_span_ptr(p, found) == want.s && found.len == want.n, "h1_header_find(%s) span", nm);
            // h1_header_next visits exactly the headers of that name, in order, trimmed.
            uint16_t pos = 0, j = 0;
            h1_span next;
            while (h1_header_next(p, nm, &pos, &next)) {
                while (j < p->nheaders && !ieq(p->buf + p->headers[j].name.off, p->headers[j].name.len, nm)) j++;
                FUZZ_CHECK(j < p->nheaders, "h1_header_next(%s) returned an extra header", nm);
                text v = trim_ows(span_text(p, p->headers[j].value));
                FUZZ_CHECK(h1_span_ptr(p, next) == v.s && next.len == v.n, "h1_header_next(%s) value %u", nm, j);
                j++;
            }
            while (j < p->nheaders && !ieq(p->buf + p->headers[j].name.off, p->headers[j].name.len, nm)) j++;
            FUZZ_CHECK(j == p->nheaders, "h1_header_next(%s) missed header %u", nm, j);
        }
    }
    h1_span path = h1_request_path(p), query = h1_request_query(p);
    FUZZ_CHECK(path.off >= p->url.off && path.off + path.len <= p->url.off + p->url.len, "path outside the url");
    FUZZ_CHECK(query.off >= p->url.off && query.off + query.len <= p->url.off + p->url.len, "query outside the url");
    FUZZ_CHECK(!memchr(h1_span_ptr(p, path), '?', path.len), "path contains '?'");
    const char *q = (const char *)memchr(h1_span_ptr(p, p->url), '?', p->url.len);
    if (q) FUZZ_CHECK(query.off == (uint16_t)(q + 1 - p->buf), "query does not start after the first '?'");
    else FUZZ_CHECK(query.len == 0, "query without '?'");
}

// --- checks on responses ----------------------------------------------------------

// Walks "Name: value\r\n" lines from *pos up to and including the blank line. Returns
// false when a line is malformed.
static bool parse_header_block(const char *r, size_t n, size_t *pos, text *names, text *values, int *count) {
    *count = 0;
    size_t i = *pos;
    for (;;) {
        const char *eol = (const char *)memmem(r + i, n - i, "\r\n", 2);
        if (!eol) return false;
        size_t len = (size_t)(eol - (r + i));
        if (len == 0) {
            *pos = i + 2;
            return true;
        }
        const char *colon = (const char *)memchr(r + i, ':', len);
        if (!colon || colon == r + i || colon[1] != ' ' || *count == 16) return false;
        for (const char *c = r + i; c < colon; c++)
            if (!is_tchar((uint8_t)*c)) return false;
        for (const char *c = colon + 2; c < eol; c++)
            if ((uint8_t)*c < ' ' || *c == 0x7F) return false;
        names[*count] = text{r + i, (size_t)(colon - (r + i))};
        values[*count] = text{colon + 2, (size_t)(eol - (colon + 2))};
        (*count)++;
        i = len + 2 + i;
    }
}

static bool find_line(const text *names, const text *values, int count, const char *name, text *value) {
    for (int i = 0; i < count; i++)
        if (ieq(names[i].s, names[i].n, name)) {
            *value = values[i];
            return true;
        }
    return false;
}

static bool text_is(text t, const char *s) { return t.n == strlen(s) && memcmp(t.s, s, t.n) == 0; }

static void check_accept(const hs_result *r, const char *ext) {
    char out[OUT_CAP];
    size_t n = hs_write_accept(out, sizeof out, r, ext);
    FUZZ_CHECK(n > 0 && n < sizeof out, "hs_write_accept wrote %zu", n);
    static const char status_line[] = "HTTP/1.1 101 Switching Protocols\r\n";
    FUZZ_CHECK(n > sizeof status_line && memcmp(out, status_line, sizeof status_line - 1) == 0, "bad status line");
    size_t pos = sizeof status_line - 1;
    text names[16], values[16];
    int count;
    FUZZ_CHECK(parse_header_block(out, n, &pos, names, values, &count), "malformed 101 header block");
    FUZZ_CHECK(pos == n, "%zu bytes after the 101 head", n - pos);
    text v;
    FUZZ_CHECK(find_line(names, values, count, "Upgrade", &v) && text_is(v, "websocket"), "Upgrade");
    FUZZ_CHECK(find_line(names, values, count, "Connection", &v) && text_is(v, "Upgrade"), "Connection");
    FUZZ_CHECK(find_line(names, values, count, "Sec-WebSocket-Accept", &v) && v.n == HS_ACCEPT_LEN, "Accept length");
    for (size_t i = 0; i < 27; i++) FUZZ_CHECK(is_b64(v.s[i]), "Accept is not base64");
    FUZZ_CHECK(v.s[27] == '=' && memcmp(v.s, r->accept, HS_ACCEPT_LEN) == 0, "Accept differs from the result");
    bool has_proto = find_line(names, values, count, "Sec-WebSocket-Protocol", &v);
    FUZZ_CHECK(has_proto == (r->subprotocol != nullptr), "Sec-WebSocket-Protocol presence");
    if (has_proto) FUZZ_CHECK(text_is(v, r->subprotocol), "Sec-WebSocket-Protocol value");
    bool has_ext = find_line(names, values, count, "Sec-WebSocket-Extensions", &v);
    FUZZ_CHECK(has_ext == (ext != nullptr), "Sec-WebSocket-Extensions presence");
    if (has_ext) FUZZ_CHECK(text_is(v, ext), "Sec-WebSocket-Extensions value");
    FUZZ_CHECK(count == 3 + has_proto + has_ext, "%d header lines", count);
    // A buffer one byte short must be refused, not truncated.
    char small[OUT_CAP];
    FUZZ_CHECK(hs_write_accept(small, n, r, ext) == 0, "truncated 101 accepted");
}

static void check_error(uint16_t status, const char *body, const char *extra) {
    FUZZ_CHECK(status == 400 || status == 404 || status == 405 || status == 426 || status == 431 || status == 503 ||
                   status == 505,
               "unexpected status %u", status);
    FUZZ_CHECK(body && body[0] && !strpbrk(body, "\r\n"), "bad error text for status %u", status);
    char out[OUT_CAP];
    size_t n = h1_write_error(out, sizeof out, status, body, extra);
    FUZZ_CHECK(n > 0 && n < sizeof out, "h1_write_error wrote %zu", n);
    char line[64];
    int ln = snprintf(line, sizeof line, "HTTP/1.1 %u %s\r\n", status, h1_status_text(status));
    FUZZ_CHECK(strcmp(h1_status_text(status), "Error") != 0, "status %u has no reason phrase", status);
    FUZZ_CHECK((size_t)ln < n && memcmp(out, line, (size_t)ln) == 0, "bad status line for %u", status);
    size_t pos = (size_t)ln;
    text names[16], values[16];
    int count;
    FUZZ_CHECK(parse_header_block(out, n, &pos, names, values, &count), "malformed error header block");
    text v;
    FUZZ_CHECK(find_line(names, values, count, "Content-Length", &v) && v.n > 0 && v.n < 6, "Content-Length");
    size_t cl = 0;
    for (size_t i = 0; i < v.n; i++) {
        FUZZ_CHECK(v.s[i] >= '0' && v.s[i] <= '9', "Content-Length is not a number");
        cl = cl * 10 + (size_t)(v.s[i] - '0');
    }
    FUZZ_CHECK(cl == n - pos, "Content-Length %zu, body %zu bytes", cl, n - pos);
    FUZZ_CHECK(find_line(names, values, count, "Connection", &v) && text_is(v, "close"), "Connection: close");
    FUZZ_CHECK(memcmp(out + pos, body, strlen(body)) == 0, "body differs from the error text");
    if (extra) FUZZ_CHECK(memmem(out, pos, extra, strlen(extra)) != nullptr, "extra headers missing");
    char small[OUT_CAP];
    FUZZ_CHECK(h1_write_error(small, n, status, body, extra) == 0, "truncated error response accepted");
}

// --- the target -------------------------------------------------------------------

static bool same_span(h1_span a, h1_span b) { return a.off == b.off && a.len == b.len; }

static void check_same(const h1_parser *a, const h1_parser *b, const feed_result *ra, const feed_result *rb) {
    FUZZ_CHECK(ra->state == rb->state, "whole run ends in state %d, split run in %d", ra->state, rb->state);
    FUZZ_CHECK(a->status == b->status && a->error == b->error, "whole run fails with %u (%s), split run with %u (%s)",
               a->status, a->error ? a->error : "-", b->status, b->error ? b->error : "-");
    if (ra->state != H1_COMPLETE) return;
    FUZZ_CHECK(ra->consumed == rb->consumed && a->head_end == b->head_end, "heads end at %u and %u", a->head_end,
               b->head_end);
    FUZZ_CHECK(memcmp(a->buf, b->buf, a->head_end) == 0, "different head bytes");
    FUZZ_CHECK(same_span(a->url, b->url), "url spans differ");
    FUZZ_CHECK(a->nheaders == b->nheaders, "%u headers whole, %u split", a->nheaders, b->nheaders);
    for (uint16_t i = 0; i < a->nheaders; i++)
        FUZZ_CHECK(same_span(a->headers[i].name, b->headers[i].name) &&
                       same_span(a->headers[i].value, b->headers[i].value),
                   "header %u spans differ between whole and split runs", i);
    FUZZ_CHECK(a->http.method == b->http.method && a->http.http_major == b->http.http_major &&
                   a->http.http_minor == b->http.http_minor,
               "method or version differ");
}

static void self_test(void) {
    // RFC 6455 §1.3's worked example.
    char acc[HS_ACCEPT_LEN + 1];
    hs_accept_key("dGhlIHNhbXBsZSBub25jZQ==", 24, acc);
    FUZZ_CHECK(strcmp(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == 0, "hs_accept_key gives %s", acc);
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static bool tested;
    if (!tested) {
        self_test();
        tested = true;
    }
    if (size < SETTINGS_LEN) return 0;
    uint32_t max = max_from(data);
    hs_config cfg = {data[0] & 4 ? g_subprotocols : nullptr};
    bool only_chat = data[0] & 8;
    const char *ext = g_extensions[(data[0] >> 4) & 3];
    fuzz_splitter split;
    fuzz_splitter_init(&split, (uint32_t)data[3] | (uint32_t)data[4] << 8, data[2]);
    const uint8_t *req = data + SETTINGS_LEN;
    size_t n = size - SETTINGS_LEN;

    h1_parser a, scratch;
    h1_parser_init(&a, max);
    h1_parser_init(&scratch, max);
    FUZZ_CHECK(a.max <= 65535 && a.max == (max > 65535 ? 65535 : max), "limit %u for %u", a.max, max);
    feed_other(&scratch); // the scratch parser has served a connection before
    feed_result ra = feed(&a, req, n, nullptr);
    feed_result rb;
    h1_parser *bp = feed_like_server(&scratch, req, n, &split, &rb);
    const h1_parser &b = *bp;
    check_same(&a, &b, &ra, &rb);
    FUZZ_CHECK(a.len <= a.max && a.cap <= a.max && b.len <= b.max && b.cap <= b.max, "buffer over the limit");

    if (ra.state == H1_FAILED) {
        FUZZ_CHECK(a.status == 400 || a.status == 431 || a.status == 503, "parse failure status %u", a.status);
        check_error(a.status, a.error, nullptr);
    } else if (ra.state == H1_COMPLETE) {
        check_head(&a, ra.consumed);
        check_head(&b, rb.consumed);
        hs_result r;
        memset(&r, 0x5A, sizeof r);
        hs_validate(&a, &cfg, &r);
        bool ok = request_acceptable(&a);
        FUZZ_CHECK((r.status == 101) == ok, "hs_validate says %u (%s) but the RFC rules say %s", r.status,
                   r.status == 101 ? "accept" : r.error, ok ? "accept" : "reject");
        if (a.http.method != HTTP_GET) FUZZ_CHECK(r.status == 405, "non-GET answered %u", r.status);
        if (a.http.http_major == 0) FUZZ_CHECK(r.status == 400 || r.status == 405, "HTTP/0.9 answered %u", r.status);
        if (r.status == 101) {
            text key;
            first_header(&a, "Sec-WebSocket-Key", &key);
            char acc[HS_ACCEPT_LEN + 1];
            hs_accept_key(key.s, key.n, acc);
            FUZZ_CHECK(strlen(r.accept) == HS_ACCEPT_LEN && strcmp(acc, r.accept) == 0, "accept key");
            FUZZ_CHECK(r.subprotocol == (cfg.subprotocols ? expected_subprotocol(&a) : nullptr), "subprotocol choice");
            h1_span path = h1_request_path(&a);
            if (only_chat && !(path.len == 5 && memcmp(h1_span_ptr(&a, path), "/chat", 5) == 0)) {
                check_error(404, "no WebSocket endpoint at this path", nullptr);
            } else {
                check_accept(&r, ext);
            }
        } else {
            FUZZ_CHECK(r.status == 400 || r.status == 405 || r.status == 426 || r.status == 505, "hs_validate status %u",
                       r.status);
            check_error(r.status, r.error, r.status == 426 ? "Sec-WebSocket-Version: 13\r\n" : nullptr);
        }
    }

    h1_parser_free(&a);
    if (bp != &scratch) {
        h1_parser_free(bp);
        free(bp);
    }
    h1_parser_free(&scratch);
    FUZZ_CHECK(a.buf == nullptr && a.len == 0 && a.cap == 0, "h1_parser_free left a buffer");
    return 0;
}
