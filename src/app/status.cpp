#include "app/status.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "app/web.h"
#include "proto/crypto.h"

enum {
    STATUS_MAX_WATCHERS = 32,   // open status pages at once; more get 503 (or 1013)
    STATUS_MAX_KEY = 256,       // a ?key= longer than this is wrong whatever the keys
    STATUS_TICK_MS = 1000,
    STATUS_SNAPSHOT_CAP = 8192, // a snapshot is about 1.5 KiB, and up to 3 KiB of top channels
    STATUS_TOP_CHANNELS = 10,
    STATUS_CONFIG_CAP = 16384,  // the summary: up to 96 listeners of 100 characters
};

struct status_page {
    wsr_server *srv;
    wsr_messaging *msg;
    const config *cfg;
    const char *const *keys;
    uint64_t started_ms;
    uv_timer_t timer;
    bool timer_inited;
    wsr_conn_id watchers[STATUS_MAX_WATCHERS];
    uint32_t nwatchers;
};

static status_page g_status;

// --- a JSON writer for numbers, booleans, fixed keys and escaped strings -----------------

struct jw {
    char *buf;
    size_t cap, len;
    bool failed; // ran out of room: the text is not to be sent
};

__attribute__((format(printf, 2, 3))) static void jw_printf(jw *w, const char *fmt, ...) {
    if (w->failed) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(w->buf + w->len, w->cap - w->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= w->cap - w->len) {
        w->failed = true;
        return;
    }
    w->len += (size_t)n;
}

// A JSON string of s (at most max bytes of it): quote and backslash escaped, control
// characters as \u00XX. Bytes past ASCII become '?': they come from the configuration
// (addresses), and a text frame must be valid UTF-8 whatever a file held.
static void jw_str(jw *w, const char *s, size_t max) {
    jw_printf(w, "\"");
    for (size_t i = 0; s && s[i] && i < max && !w->failed; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            jw_printf(w, "\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            jw_printf(w, "\\u%04x", c);
        else
            jw_printf(w, "%c", c >= 0x80 ? '?' : (char)c);
    }
    jw_printf(w, "\"");
}

// The comma before a member, unless it is the first of its object or array.
static void jw_sep(jw *w) {
    if (!w->failed && w->len && w->buf[w->len - 1] != '{' && w->buf[w->len - 1] != '[') jw_printf(w, ",");
}

// "key": (key a fixed name of ours: nothing to escape)
static void jw_key(jw *w, const char *key) {
    jw_sep(w);
    jw_printf(w, "\"%s\":", key);
}

static void jw_u64(jw *w, const char *key, uint64_t v) {
    jw_key(w, key);
    jw_printf(w, "%llu", (unsigned long long)v);
}

// "label": v, the label escaped.
static void jw_label_u64(jw *w, const char *label, uint64_t v) {
    jw_sep(w);
    jw_str(w, label, 32);
    jw_printf(w, ":%llu", (unsigned long long)v);
}

// --- access -------------------------------------------------------------------------------

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// The first key= parameter of a query, percent-decoded into out ('+' stays '+': the
// page encodes with encodeURIComponent). Returns its length, or -1 when there is none
// or it is malformed or too long.
static int query_key(wsr_str q, char *out, size_t cap) {
    size_t i = 0;
    while (i < q.len) {
        size_t end = i;
        while (end < q.len && q.ptr[end] != '&') end++;
        if (end - i >= 4 && memcmp(q.ptr + i, "key=", 4) == 0) {
            size_t n = 0;
            for (size_t j = i + 4; j < end; j++) {
                char c = q.ptr[j];
                if (c == '%') {
                    int hi = j + 2 < end ? hexval(q.ptr[j + 1]) : -1, lo = hi >= 0 ? hexval(q.ptr[j + 2]) : -1;
                    if (lo < 0) return -1;
                    c = (char)(hi * 16 + lo);
                    j += 2;
                }
                if (n == cap) return -1;
                out[n++] = c;
            }
            return (int)n;
        }
        i = end + 1;
    }
    return -1;
}

// 0 when the request's ?key= is one of the API keys, else the status to answer: 403
// when no key is configured (the page is never open by accident), 401 otherwise. Every
// key is compared, in constant time, so that timing tells neither which key nor how
// much of a guess was right. The key is never logged.
static uint16_t status_access(const status_page *st, wsr_request *req) {
    if (!st->keys || !st->keys[0]) return 403;
    char key[STATUS_MAX_KEY];
    int n = query_key(wsr_request_query(req), key, sizeof key);
    bool ok = false;
    if (n > 0) {
        for (const char *const *k = st->keys; *k; k++) {
            size_t kl = strlen(*k);
            ok |= kl == (size_t)n && crypto_equal(*k, key, kl);
        }
    }
    crypto_wipe(key, sizeof key);
    return ok ? 0 : 401;
}

static void refuse(wsr_server *srv, wsr_conn_id id, uint16_t status) {
    static const char forbidden[] = "the status page needs an API key (--api-key)\n";
    static const char unauthorized[] = "the status page needs ?key= with an API key\n";
    const char *body = status == 403 ? forbidden : unauthorized;
    size_t len = status == 403 ? sizeof forbidden - 1 : sizeof unauthorized - 1;
    wsr_respond(srv, id, status, "Content-Type: text/plain\r\nCache-Control: no-store\r\n", body, len);
}

static void on_page(wsr_server *srv, wsr_request *req, void *user) {
    const status_page *st = (const status_page *)user;
    uint16_t status = status_access(st, req);
    if (status) return refuse(srv, wsr_request_id(req), status);
    const web_asset *a = web_asset_find("status.html", 11);
    if (!a) {
        static const char body[] = "this build has no status page\n";
        wsr_respond(srv, wsr_request_id(req), 404, "Content-Type: text/plain\r\n", body, sizeof body - 1);
        return;
    }
    web_respond(srv, req, a);
}

// --- what the page is sent ----------------------------------------------------------------

static uint64_t wall_ms(void) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000;
}

// Resident bytes from /proc/self/statm (its second field, in pages); 0 where there is
// no /proc. A read of a few dozen bytes the kernel makes up: cheap enough for the loop
// once a second, and only while someone watches.
static uint64_t rss_bytes(void) {
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char buf[128];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = '\0';
    unsigned long long size, resident;
    if (sscanf(buf, "%llu %llu", &size, &resident) != 2) return 0;
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

// One snapshot of every counter; the page makes rates of successive ones.
static void build_snapshot(const status_page *st, jw *w) {
    wsr_stats s;
    wsr_server_stats(st->srv, &s);
    wsr_messaging_stats m = {};
    m.size = sizeof m;
    if (st->msg) wsr_messaging_get_stats(st->msg, &m);
    uint64_t now = wall_ms();

    jw_printf(w, "{\"type\":\"snapshot\"");
    jw_u64(w, "time_ms", now);
    jw_u64(w, "mono_ms", uv_hrtime() / 1000000);
    jw_u64(w, "uptime_ms", now > st->started_ms ? now - st->started_ms : 0);
    jw_key(w, "version");
    jw_str(w, WSR_VERSION, 32);
    jw_u64(w, "rss_bytes", rss_bytes());
    jw_u64(w, "memory_bytes", wsr_server_counter(st->srv, WSR_COUNTER_MEMORY_BYTES));
    jw_u64(w, "watchers", st->nwatchers);

    jw_key(w, "connections");
    jw_printf(w, "{");
    jw_u64(w, "open", s.connections_open);
    jw_u64(w, "accepted", s.connections_total);
    jw_u64(w, "opened", s.handshakes_ok);
    jw_u64(w, "handshaking", wsr_server_counter(st->srv, WSR_COUNTER_HANDSHAKES));
    jw_u64(w, "http_requests", wsr_server_counter(st->srv, WSR_COUNTER_HTTP_REQUESTS));
    jw_printf(w, "}");

    jw_key(w, "traffic");
    jw_printf(w, "{");
    jw_u64(w, "messages_in", s.messages_in);
    jw_u64(w, "messages_out", s.messages_out);
    jw_u64(w, "bytes_in", s.bytes_in);
    jw_u64(w, "bytes_out", s.bytes_out);
    jw_printf(w, "}");

    jw_key(w, "closes");
    jw_printf(w, "{");
    for (int i = 0; i < WSR_CLOSE_BUCKETS; i++) jw_label_u64(w, wsr_stats_close_labels[i], s.closes[i]);
    jw_printf(w, "}");

    jw_key(w, "handshakes_failed");
    jw_printf(w, "{");
    for (int i = 0; i < WSR_HS_BUCKETS; i++) jw_label_u64(w, wsr_stats_hs_labels[i], s.handshakes_failed[i]);
    jw_printf(w, "}");

    jw_key(w, "events");
    jw_printf(w, "{");
    jw_u64(w, "slow_closes", s.slow_closes);
    jw_u64(w, "slow_drops", s.slow_drops);
    jw_u64(w, "memory_closes", wsr_server_counter(st->srv, WSR_COUNTER_MEMORY_CLOSES));
    jw_u64(w, "handshakes_shed", wsr_server_counter(st->srv, WSR_COUNTER_HANDSHAKES_SHED));
    jw_u64(w, "rate_limited", m.rate_limited);
    jw_u64(w, "handshakes_limited", m.handshakes_limited);
    jw_u64(w, "auth_failures", m.auth_failures);
    jw_u64(w, "forbidden", m.forbidden);
    jw_u64(w, "bad_messages", m.bad_messages);
    jw_u64(w, "protocol_errors", s.protocol_errors);
    jw_u64(w, "stale_cuts", s.stale_cuts);
    jw_u64(w, "idle_closes", s.idle_closes);
    jw_u64(w, "close_timeouts", s.close_timeouts);
    jw_u64(w, "accept_errors", s.accept_errors);
    jw_u64(w, "accept_pauses", wsr_server_counter(st->srv, WSR_COUNTER_ACCEPT_PAUSES));
    jw_u64(w, "tls_failures", wsr_server_counter(st->srv, WSR_COUNTER_TLS_FAILURES));
    jw_printf(w, "}");

    jw_key(w, "messaging");
    jw_printf(w, "{");
    jw_u64(w, "clients", m.clients);
    jw_u64(w, "authenticated", m.authenticated);
    jw_u64(w, "channels", m.channels);
    jw_u64(w, "subscriptions", m.subscriptions);
    jw_u64(w, "history_entries", m.history_entries);
    jw_u64(w, "history_bytes", m.history_bytes);
    jw_u64(w, "publications", m.publications);
    jw_u64(w, "deliveries", m.deliveries);
    jw_u64(w, "direct_messages", m.direct_messages);
    jw_u64(w, "api_requests", m.api_requests);
    jw_printf(w, "}");

    // Several nodes (--broker): whether Redis is there now. "none" with one node.
    jw_key(w, "broker");
    jw_printf(w, "{");
    jw_key(w, "state");
    bool configured = st->cfg && st->cfg->msg.broker && *st->cfg->msg.broker;
    jw_str(w, !configured ? "none" : m.broker_up ? "up" : "down", 8);
    jw_u64(w, "reconnects", m.broker_reconnects);
    jw_u64(w, "errors", m.broker_errors);
    jw_printf(w, "}");
    wsr_messaging_channel top[STATUS_TOP_CHANNELS];
    size_t ntop = wsr_messaging_top_channels(st->msg, top, STATUS_TOP_CHANNELS);
    jw_key(w, "top_channels");
    jw_printf(w, "[");
    for (size_t i = 0; i < ntop; i++) {
        jw_sep(w);
        jw_printf(w, "{\"name\":");
        jw_str(w, top[i].name, top[i].name_len);
        jw_u64(w, "subscribers", top[i].subscribers);
        jw_u64(w, "offset", top[i].offset);
        jw_printf(w, "}");
    }
    jw_printf(w, "]");
    jw_printf(w, "}");
}

// The listeners in the order config_apply adds them (plain, TLS, PROXY), which is the
// order of their indexes for wsr_server_listener_port.
static void build_listeners(const status_page *st, jw *w) {
    const config *c = st->cfg;
    const char *deflt = c->opts.listen ? c->opts.listen : "127.0.0.1:8080";
    unsigned i = 0;
    jw_key(w, "listeners");
    jw_printf(w, "[");
    struct group {
        const config_list *list;
        const char *kind;
    } groups[] = {{&c->listen, "plain"}, {&c->listen_tls, "tls"}, {&c->listen_proxy, "proxy"}};
    for (const group &g : groups) {
        int n = g.list->n;
        if (g.list == &c->listen && n == 0) n = 1; // the default address
        for (int k = 0; k < n; k++, i++) {
            const char *addr = g.list == &c->listen && c->listen.n == 0 ? deflt : g.list->items[k];
            jw_sep(w);
            jw_printf(w, "{\"address\":");
            jw_str(w, addr, 100);
            jw_printf(w, ",\"kind\":\"%s\",\"port\":%d}", g.kind, wsr_server_listener_port(st->srv, i));
        }
    }
    jw_printf(w, "]");
}

// What the server runs with: listeners, limits, the auth mode. Never a secret: no key,
// password, JWT secret, nor the paths of files that hold them; only counts and names.
static void build_config(const status_page *st, jw *w) {
    const config *c = st->cfg;
    const wsr_options *o = &c->opts;
    jw_printf(w, "{\"type\":\"config\"");
    jw_key(w, "version");
    jw_str(w, WSR_VERSION, 32);
    jw_u64(w, "started_ms", st->started_ms);
    build_listeners(st, w);

    jw_key(w, "limits");
    jw_printf(w, "{");
    jw_u64(w, "max_message", o->max_message);
    jw_u64(w, "max_header", o->max_header);
    jw_u64(w, "max_connections", o->max_connections);
    jw_u64(w, "max_backpressure", o->max_backpressure);
    jw_printf(w, ",\"slow_policy\":\"%s\"", o->slow_policy == WSR_SLOW_DROP ? "drop" : "close");
    jw_printf(w, ",\"deflate\":\"%s\"",
              o->deflate == WSR_DEFLATE_OFF         ? "off"
              : o->deflate == WSR_DEFLATE_DEDICATED ? "dedicated"
                                                    : "shared");
    jw_u64(w, "handshake_timeout_ms", o->handshake_timeout_ms);
    jw_u64(w, "ping_interval_ms", o->ping_interval_ms);
    jw_u64(w, "pong_timeout_ms", o->pong_timeout_ms);
    jw_u64(w, "idle_timeout_ms", o->idle_timeout_ms);
    // Keyed options appear only when set; unset ones run with the defaults of wsr.h.
    static const struct {
        wsr_option opt;
        const char *name;
    } KEYED[] = {{WSR_OPT_MAX_HANDSHAKES, "max_handshakes"},   {WSR_OPT_MAX_MEMORY, "max_memory"},
                 {WSR_OPT_SLOW_TIMEOUT_MS, "slow_timeout_ms"}, {WSR_OPT_MAX_BODY, "max_body"},
                 {WSR_OPT_HTTP_MAX_REQUESTS, "http_max_requests"}};
    for (const auto &k : KEYED)
        if ((int)k.opt < CONFIG_KEYS && c->keyed_set[k.opt]) jw_u64(w, k.name, c->keyed[k.opt]);
    jw_u64(w, "max_channels", c->msg.max_channels);
    jw_u64(w, "history_memory", c->msg.history_memory);
    jw_u64(w, "max_strikes", c->msg.max_strikes);
    jw_u64(w, "rate_messages", c->msg.rate_messages);
    jw_u64(w, "rate_bytes", c->msg.rate_bytes);
    jw_u64(w, "rate_publish", c->msg.rate_publish);
    jw_u64(w, "rate_handshakes", c->msg.rate_handshakes);
    jw_u64(w, "namespaces", (uint64_t)c->nnamespaces);
    jw_printf(w, "}");

    const wsr_messaging_options *mo = &c->msg;
    uint64_t nkeys = 0;
    for (const char *const *k = st->keys; k && *k; k++) nkeys++;
    jw_key(w, "auth");
    jw_printf(w, "{\"mode\":\"%s\"", mo->auth_required ? "required" : "optional");
    jw_printf(w, ",\"sources\":[");
    const struct {
        bool on;
        const char *name;
    } SOURCES[] = {{mo->users_file != nullptr, "users-file"},
                   {mo->auth_user != nullptr, "basic-env"},
                   {mo->jwt_secret != nullptr, "jwt-hmac"},
                   {mo->jwt_public_key != nullptr, "jwt-public-key"}};
    for (const auto &src : SOURCES) {
        if (!src.on) continue;
        jw_sep(w);
        jw_str(w, src.name, 32);
    }
    jw_printf(w, "]");
    jw_u64(w, "auth_timeout_ms", mo->auth_timeout_ms);
    jw_u64(w, "api_keys", nkeys);
    jw_printf(w, "}");

    jw_key(w, "http");
    jw_printf(w, "{");
    jw_u64(w, "allowed_origins", (uint64_t)c->origins.n);
    jw_u64(w, "trusted_proxies", (uint64_t)c->trusted.n);
    jw_u64(w, "tls_certificates", (uint64_t)c->tls_certs.n);
    jw_printf(w, "}}");
}

// --- the live endpoint -----------------------------------------------------------------------

static void on_tick(uv_timer_t *t) {
    status_page *st = (status_page *)t->data;
    static char buf[STATUS_SNAPSHOT_CAP];
    jw w = {buf, sizeof buf, 0, false};
    build_snapshot(st, &w);
    if (w.failed) {
        wsr_log(WSR_LOG_ERROR, "status: the snapshot outgrew its %d bytes", STATUS_SNAPSHOT_CAP);
        return;
    }
    // One message framed once for every watcher.
    wsr_msg *msg = wsr_msg_new(WSR_TEXT, buf, w.len);
    if (!msg) return;
    for (uint32_t i = 0; i < st->nwatchers; i++) (void)wsr_send_msg(st->srv, st->watchers[i], msg);
    wsr_msg_free(msg);
}

static void on_live_upgrade(wsr_server *srv, wsr_request *req, void *user) {
    status_page *st = (status_page *)user;
    uint16_t status = status_access(st, req);
    if (status) return refuse(srv, wsr_request_id(req), status);
    if (st->nwatchers >= STATUS_MAX_WATCHERS) {
        static const char body[] = "too many status pages open\n";
        wsr_respond(srv, wsr_request_id(req), 503, "Retry-After: 5\r\n", body, sizeof body - 1);
        return;
    }
    wsr_upgrade_accept(srv, wsr_request_id(req), nullptr, nullptr);
}

static void on_live_open(wsr_server *srv, wsr_conn_id id, void *user) {
    status_page *st = (status_page *)user;
    // Several upgrades may have been accepted before the first of them opened.
    if (st->nwatchers >= STATUS_MAX_WATCHERS) {
        wsr_close(srv, id, 1013, "too many status pages open");
        return;
    }
    st->watchers[st->nwatchers++] = id;
    static char buf[STATUS_CONFIG_CAP];
    jw w = {buf, sizeof buf, 0, false};
    build_config(st, &w);
    if (w.failed) {
        w.len = 0;
        w.failed = false;
        jw_printf(&w, "{\"type\":\"config\",\"truncated\":true}");
    }
    (void)wsr_send(srv, id, WSR_TEXT, buf, w.len);
    // The first snapshot at once, so the page shows figures before the first tick.
    w = {buf, sizeof buf, 0, false};
    build_snapshot(st, &w);
    if (!w.failed) (void)wsr_send(srv, id, WSR_TEXT, buf, w.len);
    if (st->nwatchers == 1) uv_timer_start(&st->timer, on_tick, STATUS_TICK_MS, STATUS_TICK_MS);
}

// An upgrade at / or /status. Without an endpoint there the server would hand it to the
// page's HTTP route as a plain GET (keeping the connection open after the answer); with
// this one it gets what an upgrade at a path without an endpoint always got: 404, and
// the connection closed.
static void on_page_upgrade(wsr_server *srv, wsr_request *req, void *) {
    static const char body[] = "no WebSocket endpoint at this path\n";
    wsr_respond(srv, wsr_request_id(req), 404, "Content-Type: text/plain\r\n", body, sizeof body - 1);
}

static void on_live_message(wsr_server *, wsr_conn_id, wsr_opcode, const uint8_t *, size_t, void *) {
    // The page only listens; what it might send is ignored.
}

static void on_live_close(wsr_server *, wsr_conn_id id, uint16_t, void *user) {
    status_page *st = (status_page *)user;
    for (uint32_t i = 0; i < st->nwatchers; i++) {
        if (st->watchers[i] != id) continue;
        st->watchers[i] = st->watchers[--st->nwatchers];
        break;
    }
    // Nobody watches: no timer, no cost.
    if (st->nwatchers == 0 && st->timer_inited) uv_timer_stop(&st->timer);
}

int status_register(wsr_server *srv, uv_loop_t *loop, wsr_messaging *msg, const config *cfg,
                    const char *const *keys, uint64_t started_ms) {
    status_page *st = &g_status;
    *st = {};
    st->srv = srv;
    st->msg = msg;
    st->cfg = cfg;
    st->keys = keys;
    st->started_ms = started_ms;
    uv_timer_init(loop, &st->timer);
    st->timer.data = st;
    st->timer_inited = true;

    wsr_endpoint ep = WSR_ENDPOINT_INIT;
    ep.on_upgrade = on_live_upgrade;
    ep.on_open = on_live_open;
    ep.on_message = on_live_message;
    ep.on_close = on_live_close;
    int r = wsr_server_endpoint(srv, "/status/live", &ep, st);
    wsr_endpoint none = WSR_ENDPOINT_INIT;
    none.on_upgrade = on_page_upgrade;
    static const char *const PAGE_PATHS[] = {"/status", "/"};
    for (const char *path : PAGE_PATHS) {
        if (r == WSR_OK) r = wsr_server_http(srv, path, WSR_HTTP_GET, on_page, st);
        if (r == WSR_OK) r = wsr_server_endpoint(srv, path, &none, st);
    }
    return r;
}

void status_free(void) {
    status_page *st = &g_status;
    if (!st->timer_inited) return;
    st->timer_inited = false;
    uv_close((uv_handle_t *)&st->timer, nullptr);
}
