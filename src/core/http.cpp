#include "core/http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/compression.h"
#include "core/conn_table.h"
#include "core/log.h"
#include "core/stats.h"
#include "core/timers.h"
#include "proto/origin.h"
#include "proto/proxy.h"

enum {
    REQUEST_COST = 256, // charged to a round's budget per request, like a message
    MAX_PATTERNS = 1024, // allowed origins or trusted proxies, at most
};

static int answer(http_ctx *h, wsr_server *srv, conn *c, uint16_t status, const char *headers, const void *body,
                  size_t len, bool by_app);
static void fail(http_ctx *h, wsr_server *srv, conn *c, uint16_t status, const char *why, bool upgrade,
                 const char *extra = nullptr);

struct wsr_request {
    wsr_server *srv;
    conn *c;
    h1_parser *hs;
    bool upgrade;
};

// --- set-up ----------------------------------------------------------------------------

void http_init(http_ctx *h, const wsr_options *opts, wsr_stats *stats) {
    memset(h, 0, sizeof *h);
    h1_parser_init(&h->scratch, opts->max_header);
    h->hs_cfg.subprotocols = opts->subprotocols;
    h->stats = stats;
    h->max_body = 1u << 20;
    h->max_requests = 1000;
    h->date_at = -1;
}

void http_free(http_ctx *h) {
    for (uint16_t i = 0; i < h->neps; i++) free(h->eps[i].path);
    for (uint16_t i = 0; i < h->nroutes; i++) free(h->routes[i].path);
    for (uint16_t i = 0; i < h->norigins; i++) free(h->origins[i]);
    for (uint32_t i = 0; i < h->own_names_cap; i++) free(h->own_names[i]);
    free(h->eps);
    free(h->routes);
    free(h->origins);
    free(h->trusted);
    free(h->own_names);
    h1_parser_free(&h->scratch);
}

// Grows an array by one element; false when out of memory or at max.
template <typename T> static bool grow(T **arr, uint16_t n, uint16_t max) {
    if (n >= max) return false;
    T *na = (T *)realloc(*arr, (n + 1u) * sizeof(T));
    if (!na) return false;
    *arr = na;
    return true;
}

int http_add_endpoint(http_ctx *h, const char *path, const wsr_endpoint *ep, size_t ep_size, void *user) {
    if (!path || path[0] != '/' || !ep) return WSR_EINVAL;
    for (uint16_t i = 0; i < h->neps; i++)
        if (strcmp(h->eps[i].path, path) == 0) return WSR_EEXIST;
    if (!grow(&h->eps, h->neps, UINT16_MAX)) return WSR_ENOMEM;
    char *p = strdup(path);
    if (!p) return WSR_ENOMEM;
    ws_endpoint *e = &h->eps[h->neps++];
    memset(e, 0, sizeof *e);
    // An application built against an older, shorter struct: what it does not know of
    // stays NULL.
    size_t n = ep_size < sizeof e->ep ? ep_size : sizeof e->ep;
    n -= n % sizeof(void (*)()); // whole callbacks only
    memcpy(&e->ep, ep, n);
    e->ep.size = sizeof e->ep;
    e->path = p;
    e->user = user;
    return WSR_OK;
}

int http_add_route(http_ctx *h, const char *path, unsigned methods, wsr_http_fn fn, void *user) {
    if (!path || path[0] != '/' || !fn || !methods || (methods & ~0x7fu)) return WSR_EINVAL;
    size_t len = strlen(path);
    bool prefix = path[len - 1] == '*';
    if (prefix) len--;
    if (len > UINT16_MAX) return WSR_EINVAL;
    for (uint16_t i = 0; i < h->nroutes; i++)
        if (h->routes[i].prefix == prefix && h->routes[i].len == len && memcmp(h->routes[i].path, path, len) == 0)
            return WSR_EEXIST;
    if (!grow(&h->routes, h->nroutes, UINT16_MAX)) return WSR_ENOMEM;
    char *p = strndup(path, len);
    if (!p) return WSR_ENOMEM;
    h->routes[h->nroutes++] = http_route{p, (uint16_t)len, prefix, methods, fn, user};
    return WSR_OK;
}

int http_add_origin(http_ctx *h, const char *pattern) {
    if (!pattern || !origin_pattern_valid(pattern)) return WSR_EINVAL;
    if (!grow(&h->origins, h->norigins, MAX_PATTERNS)) return WSR_ENOMEM;
    if (!(h->origins[h->norigins] = strdup(pattern))) return WSR_ENOMEM;
    h->norigins++;
    return WSR_OK;
}

int http_add_trusted(http_ctx *h, const char *cidr) {
    net_cidr n;
    if (!cidr || !net_cidr_parse(cidr, strlen(cidr), &n)) return WSR_EINVAL;
    if (!grow(&h->trusted, h->ntrusted, MAX_PATTERNS)) return WSR_ENOMEM;
    h->trusted[h->ntrusted++] = n;
    return WSR_OK;
}

void http_start(conn *c, uint16_t li, bool proxy) {
    c->http = http_state{};
    c->http.listener = li;
    if (proxy) c->http.flags = HF_PROXY;
}

// What a parser of its own costs, for the memory account.
static uint64_t parser_bytes(const h1_parser *p) { return sizeof *p + p->cap; }

void http_conn_free(http_ctx *, wsr_server *srv, conn *c) {
    if (c->aux.hs) {
        server_mem_give(srv, h1_parser_body_free(c->aux.hs) + parser_bytes(c->aux.hs));
        h1_parser_free(c->aux.hs);
        free(c->aux.hs);
        c->aux.hs = nullptr;
    }
}

const char *http_subprotocol(const http_ctx *h, const conn *c) {
    if (c->subproto == HTTP_SUBPROTO_OWN) return h->own_names[c->idx];
    return c->subproto ? h->hs_cfg.subprotocols[c->subproto - 1] : nullptr;
}

void http_conn_closed(http_ctx *h, conn *c) {
    if (c->state == CONN_UPGRADING) h->upgrading--;
    if (c->subproto == HTTP_SUBPROTO_OWN) {
        free(h->own_names[c->idx]);
        h->own_names[c->idx] = nullptr;
    }
    c->subproto = 0;
}

// --- helpers ---------------------------------------------------------------------------

static const char *addr_text(wsr_server *srv, const conn *c, char *buf, size_t cap) {
    net_addr a;
    server_conn_address(srv, c, &a);
    net_addr_format(&a, buf, cap);
    return buf;
}

// RFC 9110 §6.6.1: an origin server with a clock sends Date. Formatted once a second,
// with fixed names: the embedding program's locale must not change the bytes.
static const char *date_line(http_ctx *h) {
    time_t now = time(nullptr);
    if (now == h->date_at) return h->date;
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;
    gmtime_r(&now, &tm);
    snprintf(h->date, sizeof h->date, "Date: %s, %02d %s %d %02d:%02d:%02d GMT\r\n", days[tm.tm_wday], tm.tm_mday,
             months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    h->date_at = now;
    return h->date;
}

// A request that must outlive this read (it spans reads, or waits for the application)
// gets a parser of its own; the scratch one serves the next connection.
static bool own_parser(http_ctx *h, wsr_server *srv, conn *c) {
    if (c->aux.hs) return true;
    if ((c->aux.hs = h1_parser_clone(&h->scratch))) {
        if (server_mem_take(srv, parser_bytes(c->aux.hs))) return true;
        fail(h, srv, c, 503, "server memory budget exhausted", false, "Retry-After: 1\r\n");
        return false;
    }
    conn_cut(srv, c, "out of memory for a request");
    return false;
}

// The request is done with: its body goes, and the next one starts in the scratch parser.
static void request_done(http_ctx *h, wsr_server *srv, conn *c) {
    http_conn_free(h, srv, c);
    c->http.flags &= (uint8_t)~(HF_ANSWERED | HF_ACCEPTED | HF_BODY | HF_UPGRADE);
}

// The library's own refusals: a short text body, and the connection closes.
static void fail(http_ctx *h, wsr_server *srv, conn *c, uint16_t status, const char *why, bool upgrade,
                 const char *extra) {
    char peer[64];
    log_info("request from %s refused: %u %s", addr_text(srv, c, peer, sizeof peer), status, why);
    if (upgrade || status == 400 || status == 431) h->stats->handshakes_failed[stats_hs_bucket(status)]++;
    char head[256];
    snprintf(head, sizeof head, "%s%s", date_line(h), extra ? extra : "");
    char resp[768];
    size_t n = h1_write_error(resp, sizeof resp, status, why, head);
    conn_end_after_output(srv, c);
    struct iovec iov = {resp, n};
    conn_write(srv, c, &iov, 1);
}

static const ws_endpoint *find_endpoint(const http_ctx *h, const char *p, size_t len, uint16_t *idx) {
    for (uint16_t i = 0; i < h->neps; i++) {
        if (strlen(h->eps[i].path) == len && memcmp(h->eps[i].path, p, len) == 0) {
            *idx = i;
            return &h->eps[i];
        }
    }
    return nullptr;
}

// An exact path first, then the longest prefix.
static const http_route *find_route(const http_ctx *h, const char *p, size_t len) {
    const http_route *best = nullptr;
    for (uint16_t i = 0; i < h->nroutes; i++) {
        const http_route *r = &h->routes[i];
        if (!r->prefix) {
            if (r->len == len && memcmp(r->path, p, len) == 0) return r;
        } else if (r->len <= len && memcmp(r->path, p, r->len) == 0 && (!best || r->len > best->len)) {
            best = r;
        }
    }
    return best;
}

static unsigned method_bit(uint8_t m) {
    switch (m) {
    case HTTP_GET: return WSR_HTTP_GET;
    case HTTP_HEAD: return WSR_HTTP_HEAD;
    case HTTP_POST: return WSR_HTTP_POST;
    case HTTP_PUT: return WSR_HTTP_PUT;
    case HTTP_DELETE: return WSR_HTTP_DELETE;
    case HTTP_PATCH: return WSR_HTTP_PATCH;
    case HTTP_OPTIONS: return WSR_HTTP_OPTIONS;
    default: return 0;
    }
}

static bool allows(const http_route *r, unsigned bit) {
    return (r->methods & bit) || (bit == WSR_HTTP_HEAD && (r->methods & WSR_HTTP_GET));
}

static void allow_header(const http_route *r, char *out, size_t cap) {
    static const char *const names[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"};
    size_t n = (size_t)snprintf(out, cap, "Allow: ");
    const char *sep = "";
    for (unsigned i = 0; i < 7; i++) {
        if (!allows(r, 1u << i)) continue;
        n += (size_t)snprintf(out + n, cap - n, "%s%s", sep, names[i]);
        sep = ", ";
    }
    snprintf(out + n, cap - n, "\r\n");
}

// X-Forwarded-For or Forwarded from a trusted proxy names the client. On a PROXY
// listener the PROXY header said who the client is, and is not overridden.
static void forwarded_address(http_ctx *h, wsr_server *srv, conn *c, const h1_parser *hs) {
    if (!h->ntrusted || (c->http.flags & HF_PROXIED)) return;
    net_addr peer;
    server_set_address(srv, c, nullptr); // each request speaks for itself
    server_conn_address(srv, c, &peer);
    if (!net_cidr_match(h->trusted, h->ntrusted, &peer)) return;
    // Every line: the one the nearest proxy added is the last, and the walk reads from
    // the right. A request can hold no more lines than H1_MAX_HEADERS.
    net_span xff[H1_MAX_HEADERS], fwd[H1_MAX_HEADERS];
    size_t nx = 0, nf = 0;
    uint16_t pos = 0;
    h1_span v;
    while (h1_header_next(hs, "X-Forwarded-For", &pos, &v)) xff[nx++] = net_span{h1_span_ptr(hs, v), v.len};
    pos = 0;
    while (h1_header_next(hs, "Forwarded", &pos, &v)) fwd[nf++] = net_span{h1_span_ptr(hs, v), v.len};
    // With both, which one the proxy wrote is unknown, and the other may be the
    // client's own invention: neither is believed, and the proxy's address stands.
    net_addr client;
    bool found = (nx && !nf && net_forwarded_for(xff, nx, h->trusted, h->ntrusted, &client)) ||
                 (nf && !nx && net_forwarded_rfc7239(fwd, nf, h->trusted, h->ntrusted, &client));
    if (found) server_set_address(srv, c, &client);
}

// conn.subproto for a name: one of the server's own, or a copy kept by slot. False
// when out of memory.
static bool set_subprotocol(http_ctx *h, conn *c, const char *name) {
    if (c->subproto == HTTP_SUBPROTO_OWN) http_conn_closed(h, c);
    c->subproto = 0;
    if (!name) return true;
    const char *const *own = h->hs_cfg.subprotocols;
    for (uint8_t i = 0; own && own[i]; i++) {
        if (strcmp(own[i], name) == 0) {
            c->subproto = (uint8_t)(i + 1);
            return true;
        }
    }
    if (!conn_table_side_fit((void **)&h->own_names, &h->own_names_cap, c->idx, sizeof *h->own_names)) return false;
    if (!(h->own_names[c->idx] = strdup(name))) return false;
    c->subproto = HTTP_SUBPROTO_OWN;
    return true;
}

static bool offered(const h1_parser *hs, const char *name) {
    uint16_t pos = 0;
    h1_span v;
    while (h1_header_next(hs, "Sec-WebSocket-Protocol", &pos, &v))
        if (h1_list_has_token(h1_span_ptr(hs, v), v.len, name)) return true;
    return false;
}

// --- the upgrade ---------------------------------------------------------------------

// Writes the 101 and hands the connection to the WebSocket byte path.
static void complete_upgrade(http_ctx *h, wsr_server *srv, conn *c, h1_parser *hs, uint16_t ep, const uint8_t *rest,
                             size_t rest_len, size_t *budget) {
    hs_result res;
    hs_validate(hs, &h->hs_cfg, &res);
    res.subprotocol = http_subprotocol(h, c);
    // Room for the longest response the options allow (subprotocol names are tokens of
    // at most WSR_MAX_SUBPROTOCOL_LEN bytes); a response that did not fit would be no
    // response at all, so it is checked, not assumed.
    char resp[256 + WSR_MAX_SUBPROTOCOL_LEN + 160];
    char ext[160];
    bool pmd = compression_negotiate(srv, c, hs, ext, sizeof ext);
    size_t rn = hs_write_accept(resp, sizeof resp, &res, pmd ? ext : nullptr);
    if (rn == 0) return fail(h, srv, c, 500, "response does not fit", true);
    request_done(h, srv, c);
    struct iovec iov = {resp, rn};
    conn_write(srv, c, &iov, 1);
    conn_upgraded(srv, c, ep, rest, rest_len, budget);
}

// A request that must wait for the application: its parser is kept (the answer needs
// it), input behind it is held, and the socket is only watched for the peer leaving.
static void defer(http_ctx *h, wsr_server *srv, conn *c, const uint8_t *rest, size_t rest_len) {
    if (!own_parser(h, srv, c)) return;
    server_mem_give(srv, h1_parser_body_free(c->aux.hs)); // its view was for the call
    if (rest_len && !conn_hold(srv, c, rest, rest_len)) {
        if (c->flags & CF_DEAD) return;
        // No memory to keep what was pipelined behind it: that is dropped, and the
        // answer, when it comes, closes the connection (clients retry such requests).
        c->http.last = true;
    }
    conn_await(srv, c, true);
}

static void upgrade_request(http_ctx *h, wsr_server *srv, conn *c, h1_parser *hs, uint16_t ep_idx, const uint8_t *rest,
                            size_t rest_len, size_t *budget) {
    hs_result res;
    hs_validate(hs, &h->hs_cfg, &res);
    if (res.status != 101) {
        const char *extra = nullptr;
        if (res.status == 426) extra = "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n";
        if (res.status == 405) extra = "Allow: GET\r\n";
        return fail(h, srv, c, res.status, res.error, true, extra);
    }
    h1_span origin;
    if (h->norigins && h1_header_find(hs, "Origin", &origin)) {
        bool ok = false;
        for (uint16_t i = 0; i < h->norigins && !ok; i++) ok = origin_match(h->origins[i], h1_span_ptr(hs, origin), origin.len);
        if (!ok) return fail(h, srv, c, 403, "origin not allowed", true);
    }
    if (const char *why = server_refuses_upgrade(srv)) return fail(h, srv, c, 503, why, true, "Retry-After: 1\r\n");
    c->route = ep_idx;
    set_subprotocol(h, c, res.subprotocol); // one of the server's own: never allocates
    const ws_endpoint *ep = &h->eps[ep_idx];
    if (ep->ep.on_upgrade) {
        wsr_request req = {srv, c, hs, true};
        c->http.flags = (uint8_t)((c->http.flags & ~(HF_ANSWERED | HF_ACCEPTED)) | HF_UPGRADE);
        h->current = &req;
        ep->ep.on_upgrade(srv, &req, ep->user);
        h->current = nullptr;
        if (c->flags & CF_DEAD) return; // closed from the hook
        if (c->http.flags & HF_END) return conn_end_after_output(srv, c); // refused
        if (!(c->http.flags & HF_ANSWERED)) return defer(h, srv, c, rest, rest_len);
        if (!(c->http.flags & HF_ACCEPTED)) return;
    }
    complete_upgrade(h, srv, c, hs, ep_idx, rest, rest_len, budget);
}

void http_finish_upgrade(http_ctx *h, wsr_server *srv, conn *c, size_t *budget) {
    h->upgrading--;
    c->state = CONN_HANDSHAKE; // until the 101 is out
    complete_upgrade(h, srv, c, c->aux.hs, c->route, nullptr, 0, budget);
}

// --- plain HTTP ------------------------------------------------------------------------

// --- the access log --------------------------------------------------------------------

// A request on an HTTP route is timed from when it is handed to the application until
// its answer, which may come later from the loop. The start is kept in the connection's
// lane-1 deadline: that lane holds only the idle timeout of an open WebSocket, so it is
// free while the connection speaks HTTP, and the connection struct keeps its size.
static uint32_t clock_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint32_t)((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000);
}

static void access_start(conn *c) {
    if (c->timer_kind[1] == TK_NONE) c->tl[1].deadline = clock_ms();
}

// One line per answer of a route: method, path without the query string (it can carry
// tokens), status, body bytes, milliseconds, client. A peer can cause any number of
// them, so they are rate-limited like the server's other peer-caused lines.
static const char ACCESS_FMT[] = "%s %.*s %u %zu bytes %u ms from %s"; // one call site

static void access_log(wsr_server *srv, conn *c, const h1_parser *hs, uint16_t status, size_t bytes) {
    if (WSR_LOG_INFO > log_level || !log_admit(WSR_LOG_INFO, ACCESS_FMT)) return;
    uint32_t ms = c->timer_kind[1] == TK_NONE ? clock_ms() - c->tl[1].deadline : 0;
    h1_span ps = h1_request_path(hs);
    char peer[64];
    log_write(WSR_LOG_INFO, ACCESS_FMT, llhttp_method_name((llhttp_method_t)hs->http.method),
              (int)(ps.len < 256 ? ps.len : 256), h1_span_ptr(hs, ps), status, bytes, ms,
              addr_text(srv, c, peer, sizeof peer));
}

static void http_request(http_ctx *h, wsr_server *srv, conn *c, h1_parser *hs, const http_route *r) {
    wsr_request req = {srv, c, hs, false};
    access_start(c);
    c->http.flags &= (uint8_t)~(HF_ANSWERED | HF_ACCEPTED);
    h->current = &req;
    r->fn(srv, &req, r->user);
    h->current = nullptr;
    if ((c->http.flags & HF_END) && !(c->flags & CF_DEAD)) conn_end_after_output(srv, c);
}

// RFC 9110 §10.1.1: an expectation other than 100-continue gets 417; an HTTP/1.0
// request's is ignored (that version has no expectations).
static bool expectation_met(http_ctx *h, wsr_server *srv, conn *c, const h1_parser *hs) {
    h1_span v;
    if (hs->http.http_major == 1 && hs->http.http_minor == 0) return true;
    if (!h1_header_find(hs, "Expect", &v) || (v.len == 12 && strncasecmp(h1_span_ptr(hs, v), "100-continue", 12) == 0))
        return true;
    fail(h, srv, c, 417, "unsupported expectation", false);
    return false;
}

// After a complete head on an HTTP route: whether its body can be read. Refuses what
// is too long before reading any of it, and tells a client that waits for it
// (Expect: 100-continue) to send the body.
static bool body_start(http_ctx *h, wsr_server *srv, conn *c, h1_parser *hs) {
    if ((hs->http.flags & F_CONTENT_LENGTH) && hs->http.content_length > h->max_body) {
        fail(h, srv, c, 413, "request body too large", false);
        return false;
    }
    h1_span v;
    bool http10 = hs->http.http_major == 1 && hs->http.http_minor == 0;
    if (!http10 && h1_header_find(hs, "Expect", &v)) { // 100-continue: checked before
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        struct iovec iov = {(void *)cont, sizeof cont - 1};
        conn_write(srv, c, &iov, 1);
    }
    h1_parser_body_begin(hs, (uint32_t)h->max_body);
    c->http.flags |= HF_BODY;
    return true;
}

// --- the request loop ----------------------------------------------------------------

// A PROXY header first, on listeners that expect one. False while it is incomplete or
// after it failed; *data and *n then point past it. A header split across reads is
// gathered in msg (it is at most PROXY_MAX_HEADER bytes); the bytes after it are never
// copied.
static bool proxy_header(http_ctx *h, wsr_server *srv, conn *c, uint8_t **data, size_t *n) {
    size_t had = c->msg_len;
    const uint8_t *p = *data;
    size_t pn = *n;
    if (had) {
        size_t take = *n < PROXY_MAX_HEADER - had ? *n : PROXY_MAX_HEADER - had;
        if (!conn_buffer(srv, c, *data, take, PROXY_MAX_HEADER)) return false;
        p = c->msg;
        pn = c->msg_len;
    }
    proxy_result pr;
    proxy_status st = proxy_parse(p, pn, &pr);
    if (st == PROXY_NEED_MORE) {
        // Every byte so far is a prefix of a header, so fewer than PROXY_MAX_HEADER.
        if (!had) conn_buffer(srv, c, *data, *n, PROXY_MAX_HEADER);
        return false;
    }
    if (st == PROXY_ERROR) {
        char peer[64];
        log_info("PROXY header from %s: %s", addr_text(srv, c, peer, sizeof peer), pr.error);
        fail(h, srv, c, 400, "this port expects a PROXY protocol header", false);
        return false;
    }
    c->http.flags = (uint8_t)((c->http.flags & ~HF_PROXY) | HF_PROXIED);
    if (!pr.local && !server_set_address(srv, c, &pr.src)) {
        conn_cut(srv, c, "out of memory");
        return false;
    }
    size_t skip = pr.header_len - had; // the header's bytes in this read
    if (had) conn_buffer_free(srv, c);
    *data += skip;
    *n -= skip;
    return true;
}

static void feed_requests(http_ctx *h, wsr_server *srv, conn *c, uint8_t *data, size_t n, size_t *budget);

void http_feed(http_ctx *h, wsr_server *srv, conn *c, uint8_t *data, size_t n, size_t *budget) {
    if ((c->http.flags & HF_PROXY) && !proxy_header(h, srv, c, &data, &n)) return;
    feed_requests(h, srv, c, data, n, budget);
}

static void feed_requests(http_ctx *h, wsr_server *srv, conn *c, uint8_t *data, size_t n, size_t *budget) {
    while (c->state == CONN_HANDSHAKE && !(c->flags & CF_DEAD)) {
        h1_parser *hs = c->aux.hs;
        if (!hs) {
            if (!n) return;
            // A TLS ClientHello (a handshake record, TLS 1.x) on a plain port: no HTTP
            // answer would mean anything to that client.
            if (n >= 2 && data[0] == 0x16 && data[1] == 0x03 && !c->http.requests) {
                char peer[64];
                log_info("connection from %s: a TLS handshake on a plain port; closed", addr_text(srv, c, peer, sizeof peer));
                return conn_cut(srv, c, nullptr);
            }
            hs = &h->scratch;
            h1_parser_reset(hs);
            // A new request (the first, or the next on a kept-alive connection): it has
            // the request deadline of its own, and counts as a handshake again.
            conn_http_idle(srv, c, false);
            conn_deadline(srv, c, TK_HANDSHAKE);
        }
        size_t used = 0;
        if (!(c->http.flags & HF_BODY)) {
            uint32_t cap0 = hs->cap;
            h1_state st = h1_parser_feed(hs, data, n, &used);
            if (hs == c->aux.hs && hs->cap != cap0) server_mem_take(srv, hs->cap - cap0); // bounded by max_header
            if (st == H1_NEED_MORE) {
                own_parser(h, srv, c);
                return;
            }
            if (st == H1_FAILED) return fail(h, srv, c, hs->status, hs->error, false);
            data += used;
            n -= used;
            forwarded_address(h, srv, c, hs);
            h1_span ps = h1_request_path(hs);
            const char *path = h1_span_ptr(hs, ps);
            uint16_t ep_idx = 0;
            const ws_endpoint *ep = find_endpoint(h, path, ps.len, &ep_idx);
            const http_route *r = find_route(h, path, ps.len);
            h1_span up;
            bool wants_ws = h1_header_find(hs, "Upgrade", &up) && h1_list_has_token(h1_span_ptr(hs, up), up.len, "websocket");
            if (ep && (wants_ws || !r)) {
                *budget = *budget > REQUEST_COST ? *budget - REQUEST_COST : 0;
                return upgrade_request(h, srv, c, hs, ep_idx, data, n, budget);
            }
            if (!r) return fail(h, srv, c, 404, wants_ws ? "no WebSocket endpoint at this path" : "not found", wants_ws);
            // RFC 9112 §3.2 (the upgrade checks apply the same in proto/handshake).
            if (!h1_host_valid(hs)) return fail(h, srv, c, 400, "exactly one valid Host header is required", false);
            unsigned bit = method_bit(hs->http.method);
            if (!allows(r, bit)) {
                char allow[96];
                allow_header(r, allow, sizeof allow);
                return fail(h, srv, c, bit ? 405 : 501, bit ? "method not allowed" : "method not implemented", false,
                            allow);
            }
            if (!expectation_met(h, srv, c, hs)) return;
            if (h1_parser_has_body(hs)) {
                // A body is read into the connection's own parser: it may span reads,
                // and the scratch parser serves the next connection.
                if (!own_parser(h, srv, c)) return;
                hs = c->aux.hs;
                if (!body_start(h, srv, c, hs)) return;
            }
        }
        if (c->http.flags & HF_BODY) {
            uint32_t cap0 = hs->body_cap;
            h1_state st = h1_parser_feed_body(hs, data, n, &used);
            // Taken even past the budget, so that freeing the body gives it all back.
            if (hs->body_cap != cap0 && !server_mem_take(srv, hs->body_cap - cap0))
                return fail(h, srv, c, 503, "server memory budget exhausted", false, "Retry-After: 1\r\n");
            if (st == H1_FAILED) return fail(h, srv, c, hs->status, hs->error, false);
            data += used;
            n -= used;
            if (st == H1_NEED_MORE) return;
            c->http.flags &= (uint8_t)~HF_BODY;
        }
        h1_span ps = h1_request_path(hs);
        const http_route *r = find_route(h, h1_span_ptr(hs, ps), ps.len);
        *budget = *budget > REQUEST_COST ? *budget - REQUEST_COST : 0;
        http_request(h, srv, c, hs, r);
        if (c->flags & CF_DEAD || c->state != CONN_HANDSHAKE) return;
        if (!(c->http.flags & HF_ANSWERED)) return defer(h, srv, c, data, n);
        request_done(h, srv, c);
        if (!n) {
            conn_deadline(srv, c, TK_KEEPALIVE);
            return conn_http_idle(srv, c, true);
        }
        // Pipelined requests: one per round at least, more while the budget lasts and
        // while the client reads its answers (reading pauses when they pile up).
        if (!*budget || (c->flags & CF_READ_PAUSED)) {
            // Without memory to keep them, the answers given so far are the last.
            if (!conn_hold(srv, c, data, n) && !(c->flags & CF_DEAD)) conn_end_after_output(srv, c);
            return;
        }
    }
}

void http_on_timeout(http_ctx *h, wsr_server *srv, conn *c) {
    char peer[64];
    if (c->flags2 & CF2_AWAITING) {
        log_warn("request from %s: the application did not answer in time", addr_text(srv, c, peer, sizeof peer));
        static const char body[] = "the server did not decide in time\n";
        answer(h, srv, c, 503, "Retry-After: 1\r\nContent-Type: text/plain\r\n", body, sizeof body - 1, false);
        return;
    }
    if (c->timer_kind[0] == TK_KEEPALIVE) return conn_cut(srv, c, nullptr); // idle between requests
    log_info("request from %s timed out", addr_text(srv, c, peer, sizeof peer));
    h->stats->handshakes_failed[STATS_HS_TIMEOUT]++;
    conn_cut(srv, c, nullptr);
}

// --- answers -------------------------------------------------------------------------

// The request on c that an answer is for, or NULL (none is waiting).
static h1_parser *pending(http_ctx *h, conn *c, bool *upgrade) {
    if (c->state != CONN_HANDSHAKE || (c->http.flags & HF_ANSWERED)) return nullptr;
    if (h->current && h->current->c == c) {
        *upgrade = h->current->upgrade;
        return h->current->hs;
    }
    if (!(c->flags2 & CF2_AWAITING)) return nullptr;
    *upgrade = c->http.flags & HF_UPGRADE;
    return c->aux.hs;
}

// The answer to the pending request: the application's (by_app), or the server's own
// when the application did not answer in time or the server filled up meanwhile.
static int answer(http_ctx *h, wsr_server *srv, conn *c, uint16_t status, const char *headers, const void *body,
                  size_t len, bool by_app) {
    bool upgrade = false;
    h1_parser *hs = pending(h, c, &upgrade);
    if (!hs) return WSR_ESTATE;
    // 204 and 304 have no body (RFC 9110 §6.4.1): bytes after the head would be read as
    // the next response.
    if (status < (upgrade ? 300 : 200) || status > 599 || !h1_headers_valid(headers) ||
        ((status == 204 || status == 304) && len))
        return WSR_EINVAL;
    bool in_call = h->current && h->current->c == c;
    c->http.requests++;
    bool keep = !upgrade && status < 500 && h1_parser_keep_alive(hs) && c->http.requests < h->max_requests &&
                !c->http.last && !server_stopping(srv);
    bool http10 = hs->http.http_major == 1 && hs->http.http_minor == 0;
    char head[256];
    size_t hn = h1_write_head(head, sizeof head, status, date_line(h), len,
                              !keep ? H1_CONN_CLOSE : http10 ? H1_CONN_KEEP_ALIVE : H1_CONN_NONE);
    struct iovec iov[4] = {{head, hn},
                           {(void *)(headers ? headers : ""), headers ? strlen(headers) : 0},
                           {(void *)"\r\n", 2},
                           {(void *)body, hs->http.method == HTTP_HEAD ? 0 : len}};
    c->http.flags |= HF_ANSWERED;
    if (!upgrade) h->requests++;
    if (!upgrade) access_log(srv, c, hs, status, iov[3].iov_len);
    if (upgrade && by_app) {
        char peer[64];
        log_info("upgrade from %s refused by the application: %u", addr_text(srv, c, peer, sizeof peer), status);
        h->refused++;
        // A status with a bucket of its own is counted there too (429 has none: it is
        // not a malformed request).
        int bucket = stats_hs_bucket_exact(status);
        if (bucket >= 0) h->stats->handshakes_failed[bucket]++;
    } else if (upgrade) {
        h->stats->handshakes_failed[status == 503 && (c->flags2 & CF2_AWAITING) ? STATS_HS_TIMEOUT : stats_hs_bucket(status)]++;
    }
    // Inside the request's callback its views stay valid until it returns: the
    // connection ends after that.
    if (!keep) {
        if (in_call)
            c->http.flags |= HF_END;
        else
            conn_end_after_output(srv, c);
    }
    conn_write(srv, c, iov, 4);
    if (!keep || in_call || (c->flags & CF_DEAD)) return WSR_OK;
    // Answered later: the connection reads again, and requests pipelined behind this
    // one get their round from the loop, not from inside this call.
    request_done(h, srv, c);
    conn_deadline(srv, c, TK_KEEPALIVE);
    conn_http_idle(srv, c, true);
    conn_await(srv, c, false);
    return WSR_OK;
}

int http_respond(http_ctx *h, wsr_server *srv, conn *c, uint16_t status, const char *headers, const void *body,
                 size_t len) {
    return answer(h, srv, c, status, headers, body, len, true);
}

int http_accept(http_ctx *h, wsr_server *srv, conn *c, void *user, const char *subprotocol) {
    bool upgrade = false;
    h1_parser *hs = pending(h, c, &upgrade);
    if (!hs || !upgrade) return WSR_ESTATE;
    if (subprotocol && !offered(hs, subprotocol)) return WSR_EINVAL;
    // The server may have filled up (or begun to shut down) while the application
    // decided: the client gets the 503 it would have got before the hook. The same when
    // frames that came behind the request were dropped for want of memory (defer): the
    // WebSocket would start in the middle of the client's stream.
    const char *why = c->http.last ? "server memory budget exhausted" : server_refuses_upgrade(srv);
    if (why) {
        answer(h, srv, c, 503, "Retry-After: 1\r\nContent-Type: text/plain\r\n", why, strlen(why), false);
        return WSR_ECLOSING;
    }
    if (subprotocol && !set_subprotocol(h, c, subprotocol)) return WSR_ENOMEM;
    c->user = user;
    c->http.flags |= HF_ANSWERED | HF_ACCEPTED;
    if (h->current && h->current->c == c) return WSR_OK; // completed when the hook returns
    c->state = CONN_UPGRADING;
    h->upgrading++;
    conn_await(srv, c, false);
    return WSR_OK;
}

// --- the request, as the application sees it --------------------------------------------

static wsr_str span_str(const h1_parser *hs, h1_span s) { return wsr_str{h1_span_ptr(hs, s), s.len}; }

wsr_conn_id wsr_request_id(const wsr_request *req) { return conn_id(req->c); }

wsr_str wsr_request_method(const wsr_request *req) {
    const char *m = llhttp_method_name((llhttp_method_t)req->hs->http.method);
    return wsr_str{m, strlen(m)};
}

wsr_str wsr_request_path(const wsr_request *req) { return span_str(req->hs, h1_request_path(req->hs)); }
wsr_str wsr_request_query(const wsr_request *req) { return span_str(req->hs, h1_request_query(req->hs)); }

int wsr_request_header(const wsr_request *req, const char *name, wsr_str *value) {
    h1_span v;
    if (!h1_header_find(req->hs, name, &v)) return 0;
    *value = span_str(req->hs, v);
    return 1;
}

int wsr_request_header_at(const wsr_request *req, size_t i, wsr_str *name, wsr_str *value) {
    if (i >= req->hs->nheaders) return 0;
    *name = span_str(req->hs, req->hs->headers[i].name);
    *value = span_str(req->hs, h1_header_value(req->hs, (uint16_t)i));
    return 1;
}

wsr_str wsr_request_body(const wsr_request *req) {
    return req->upgrade ? wsr_str{"", 0} : wsr_str{req->hs->body ? req->hs->body : "", req->hs->body_len};
}

size_t wsr_request_address(const wsr_request *req, char *buf, size_t cap) {
    net_addr a;
    server_conn_address(req->srv, req->c, &a);
    return net_addr_format(&a, buf, cap);
}

unsigned wsr_request_listener(const wsr_request *req) { return req->c->http.listener; }
