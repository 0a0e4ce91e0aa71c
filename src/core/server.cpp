#include "core/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/compression.h"
#include "core/log.h"
#include "proto/utf8.h"

static const uint32_t NONE = UINT32_MAX;
static const uint64_t LISTENER_TAG = 0; // connection tags carry a generation >= 1

enum { READ_BUFFER = 128 * 1024 };

const char *wsr_strerror(int err) {
    switch (err) {
    case WSR_OK: return "ok";
    case WSR_QUEUED: return "queued";
    case WSR_DROPPED: return "dropped: receiver too slow";
    case WSR_CLOSED: return "receiver too slow: closing it";
    case WSR_ENOCONN: return "no such connection";
    case WSR_ECLOSING: return "connection is closing";
    case WSR_ENOMEM: return "out of memory";
    case WSR_EINVAL: return "invalid argument";
    case WSR_ETOOBIG: return "message too big";
    case WSR_EADDR: return "bad listen address";
    case WSR_ESYS: return "system call failed";
    case WSR_EEXIST: return "route already exists";
    default: return "unknown error";
    }
}

void wsr_options_default(wsr_options *o) {
    memset(o, 0, sizeof *o);
    o->listen = "127.0.0.1:8080";
    o->max_message = 1 << 20;
    o->max_header = 8192;
    o->handshake_timeout_ms = 10000;
    o->close_timeout_ms = 5000;
    o->shutdown_timeout_ms = 5000;
    o->max_backpressure = 1 << 20;
    o->ping_interval_ms = 30000;
    o->pong_timeout_ms = 30000;
    o->deflate = WSR_DEFLATE_SHARED;
    o->deflate_window_bits = 15;
    o->deflate_client_window_bits = 15;
    o->deflate_mem_level = 8;
    o->deflate_level = 1;
    o->deflate_threshold = 64;
}

// --- loop glue --------------------------------------------------------------------

void server_want_flush(wsr_server *srv, conn *c) {
    if (c->flags & CF_IN_FLUSH) return;
    c->flags |= CF_IN_FLUSH;
    c->flush_next = srv->flush_head;
    srv->flush_head = c->idx;
}

void server_update_events(wsr_server *srv, conn *c) {
    uint32_t ev = (c->flags & CF_READ_PAUSED ? 0 : POLLER_IN) | (c->flags & CF_WANT_WRITE ? POLLER_OUT : 0);
    poller_mod(&srv->poll, c->fd, conn_id(c), ev);
}

// Runs once per loop iteration, just before the loop waits for I/O: everything the
// application sent during the iteration leaves in one writev per connection.
void server_flush(wsr_server *srv) {
    while (srv->flush_head != NONE) {
        conn *c = conn_table_at(&srv->table, srv->flush_head);
        srv->flush_head = c->flush_next;
        c->flags &= (uint8_t)~CF_IN_FLUSH;
        if (c->state == CONN_FREE) {
            conn_table_release(&srv->table, c); // destroyed while queued here
            srv->held_slots--;
        } else
            conn_flush(srv, c);
    }
}

static void on_prepare(uv_prepare_t *h) { server_flush((wsr_server *)h->data); }

static void finish_shutdown(wsr_server *srv);

void server_conn_gone(wsr_server *srv, bool clean) {
    if (!srv->shutting_down) return;
    if (clean)
        srv->shutdown_clean++;
    else
        srv->shutdown_cut++;
    if (server_conns_alive(srv) == 0) finish_shutdown(srv);
}

static void on_timer_expire(void *ctx, conn *c, uint8_t kind) { conn_on_timeout((wsr_server *)ctx, c, kind); }

// --- accepting --------------------------------------------------------------------

conn *server_adopt(wsr_server *srv, int fd) {
    conn *c = conn_table_alloc(&srv->table);
    if (!c) {
        log_error("out of memory for a new connection");
        close(fd);
        return nullptr;
    }
    conn_start(c, fd);
    int r = poller_add(&srv->poll, fd, conn_id(c), POLLER_IN);
    if (r != 0) {
        log_error("epoll_ctl: %s", strerror(-r));
        conn_destroy(srv, c, false);
        return nullptr;
    }
    timers_put(&srv->tm, c, TK_HANDSHAKE);
    srv->stats.connections_total++;
    return c;
}

static void accept_one(wsr_server *srv, int fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    server_adopt(srv, fd);
}

static void accept_all(wsr_server *srv) {
    for (;;) {
        int fd = accept4(srv->listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            accept_one(srv, fd);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno == EAGAIN) return;
        srv->stats.accept_errors++;
        if ((errno == EMFILE || errno == ENFILE) && srv->spare_fd >= 0) {
            // Out of descriptors. The pending connection would keep the listener
            // readable forever; spend the spare descriptor to take it and close it.
            log_warn("out of file descriptors: refusing a connection");
            close(srv->spare_fd);
            int fd2 = accept4(srv->listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
            if (fd2 >= 0) close(fd2);
            srv->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
            continue;
        }
        log_error("accept: %s", strerror(errno));
        return;
    }
}

static void on_event(void *ctx, uint64_t tag, uint32_t events) {
    wsr_server *srv = (wsr_server *)ctx;
    if (tag == LISTENER_TAG) {
        if (srv->listen_fd >= 0) accept_all(srv);
        return;
    }
    // The tag holds the generation, so an event queued for a connection that closed
    // earlier in this batch, or for a slot already reused, finds nothing.
    conn *c = conn_table_lookup(&srv->table, tag);
    if (!c) return;
    if (events & POLLER_OUT) {
        conn_flush(srv, c);
        if (!conn_table_lookup(&srv->table, tag)) return;
    }
    if ((events & POLLER_IN) && !(c->flags & CF_DEAD)) conn_on_readable(srv, c);
}

// --- listening --------------------------------------------------------------------

// "HOST:PORT" or "[V6]:PORT".
static int parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len) {
    char host[INET6_ADDRSTRLEN + 2];
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s) return -1;
    size_t hl = (size_t)(colon - s);
    if (hl >= sizeof host) return -1;
    memcpy(host, s, hl);
    host[hl] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || end == colon + 1 || port < 0 || port > 65535) return -1;
    memset(ss, 0, sizeof *ss);
    if (host[0] == '[') {
        if (hl < 3 || host[hl - 1] != ']') return -1;
        host[hl - 1] = '\0';
        auto *a = (struct sockaddr_in6 *)ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host + 1, &a->sin6_addr) != 1) return -1;
        *len = sizeof *a;
        return 0;
    }
    auto *a = (struct sockaddr_in *)ss;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    if (strcmp(host, "localhost") == 0) strcpy(host, "127.0.0.1");
    if (inet_pton(AF_INET, host, &a->sin_addr) != 1) return -1;
    *len = sizeof *a;
    return 0;
}

int wsr_server_listen(wsr_server *srv) {
    struct sockaddr_storage ss;
    socklen_t len;
    if (parse_listen(srv->listen_addr, &ss, &len) != 0) {
        log_error("cannot parse listen address '%s' (want HOST:PORT or [V6]:PORT)", srv->listen_addr);
        return WSR_EADDR;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        log_error("socket: %s", strerror(errno));
        return WSR_ESYS;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (ss.ss_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, SOMAXCONN) != 0) {
        log_error("cannot listen on %s: %s", srv->listen_addr, strerror(errno));
        close(fd);
        return WSR_ESYS;
    }
    getsockname(fd, (struct sockaddr *)&ss, &len);
    srv->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                               : ((struct sockaddr_in *)&ss)->sin_port);
    int r = poller_add(&srv->poll, fd, LISTENER_TAG, POLLER_IN);
    if (r != 0) {
        log_error("epoll_ctl: %s", strerror(-r));
        close(fd);
        return WSR_ESYS;
    }
    srv->listen_fd = fd;
    char shown[INET6_ADDRSTRLEN + 8];
    snprintf(shown, sizeof shown, "%.*s:%d", (int)(strrchr(srv->listen_addr, ':') - srv->listen_addr),
             srv->listen_addr, srv->port);
    log_info("listening on %s", shown);
    return WSR_OK;
}

int wsr_server_port(const wsr_server *srv) { return srv->port; }
void wsr_server_set_user(wsr_server *srv, void *user) { srv->user = user; }
void *wsr_server_user(const wsr_server *srv) { return srv->user; }

// --- life cycle ----------------------------------------------------------------

// The default connection limit: what the descriptor limit allows, after raising the
// soft limit to the hard one, less a margin for the listener, logs and the like.
static uint32_t default_max_conns(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 1024;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    rlim_t n = rl.rlim_cur > 64 ? rl.rlim_cur - 32 : 32;
    return n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
}

// Undoes a partly built server (before its loop handles exist); returns err.
static int new_failed(wsr_server *srv, int err) {
    if (srv->spare_fd >= 0) close(srv->spare_fd);
    free(srv->listen_addr);
    free(srv->rbuf);
    free(srv);
    return err;
}

int wsr_server_new(uv_loop_t *loop, const wsr_options *opts, wsr_server **out) {
    *out = nullptr;
    wsr_server *srv = (wsr_server *)calloc(1, sizeof *srv);
    if (!srv) return WSR_ENOMEM;
    srv->spare_fd = -1;
    wsr_options_default(&srv->opts);
    if (opts) srv->opts = *opts;
    if (!srv->opts.listen) srv->opts.listen = "127.0.0.1:8080";
    const wsr_options &o = srv->opts;
    if (o.max_message == 0 || o.max_message > UINT32_MAX - 64 || o.deflate_window_bits < 8 || o.deflate_window_bits > 15 ||
        o.deflate_client_window_bits < 8 || o.deflate_client_window_bits > 15 || o.deflate_mem_level < 1 ||
        o.deflate_mem_level > 9 || o.deflate_level < 1 || o.deflate_level > 9)
        return new_failed(srv, WSR_EINVAL);
    srv->loop = loop;
    srv->io = &transport_tcp;
    srv->listen_addr = strdup(srv->opts.listen);
    srv->rbuf_size = READ_BUFFER;
    srv->rbuf = (uint8_t *)malloc(srv->rbuf_size);
    // Reading happens only while a connection's queue is under half the backpressure
    // limit, and what one read triggers must not carry it past the limit: an echo
    // writes no more than it read (server frames are unmasked), so reads are capped
    // at half the limit.
    srv->read_size = srv->opts.max_backpressure / 2 < srv->rbuf_size ? (size_t)srv->opts.max_backpressure / 2 : srv->rbuf_size;
    if (srv->read_size < 512) srv->read_size = 512;
    if (!srv->listen_addr || !srv->rbuf) return new_failed(srv, WSR_ENOMEM);
    // Costs of the server, not of its first connection, paid up front: the read
    // buffer's pages, and OpenSSL mapping its SHA-1 provider (about 2 MB) on first use.
    memset(srv->rbuf, 0, srv->rbuf_size);
    char warm[HS_ACCEPT_LEN + 1];
    hs_accept_key("dGhlIHNhbXBsZSBub25jZQ==", 24, warm);
    srv->limits.max_message = srv->opts.max_message;
    srv->limits.allow_rsv1 = false;
    srv->limits.expect_masked = true;
    srv->limits_pmd = srv->limits;
    srv->limits_pmd.allow_rsv1 = true;
    static const uint8_t modes[] = {PMD_SHARED, PMD_OFF, PMD_DEDICATED};
    srv->pmd_cfg.mode = srv->opts.deflate <= WSR_DEFLATE_DEDICATED ? modes[srv->opts.deflate] : (uint8_t)PMD_OFF;
    srv->pmd_cfg.server_window_bits = srv->opts.deflate_window_bits;
    srv->pmd_cfg.client_window_bits = srv->opts.deflate_client_window_bits;
    srv->hs_cfg.subprotocols = srv->opts.subprotocols;
    hs_parser_init(&srv->hs_scratch, srv->opts.max_header);
    srv->listen_fd = -1;
    srv->flush_head = NONE;
    srv->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    srv->max_conns = srv->opts.max_connections ? srv->opts.max_connections : default_max_conns();
    conn_table_init(&srv->table);
    int r = poller_init(&srv->poll, loop, on_event, srv);
    if (r != 0) {
        log_error("cannot create the epoll set: %s", strerror(-r));
        return new_failed(srv, WSR_ESYS);
    }
    timers_init(&srv->tm, loop, &srv->table, on_timer_expire, srv);
    timers_set_timeout(&srv->tm, TK_HANDSHAKE, srv->opts.handshake_timeout_ms);
    timers_set_timeout(&srv->tm, TK_CLOSE, srv->opts.close_timeout_ms);
    timers_set_timeout(&srv->tm, TK_HEARTBEAT, srv->opts.ping_interval_ms);
    timers_set_timeout(&srv->tm, TK_PONG, srv->opts.pong_timeout_ms);
    timers_set_timeout(&srv->tm, TK_IDLE, srv->opts.idle_timeout_ms);
    uv_prepare_init(loop, &srv->flush_prepare);
    srv->flush_prepare.data = srv;
    uv_prepare_start(&srv->flush_prepare, on_prepare);
    uv_unref((uv_handle_t *)&srv->flush_prepare);
    uv_timer_init(loop, &srv->shutdown_timer);
    srv->shutdown_timer.data = srv;
    srv->handles_open = true;
    *out = srv;
    return WSR_OK;
}

int wsr_server_route(wsr_server *srv, const char *path, const wsr_handlers *h, void *user) {
    if (!path || path[0] != '/' || !h) return WSR_EINVAL;
    for (uint16_t i = 0; i < srv->nroutes; i++)
        if (strcmp(srv->routes[i].path, path) == 0) return WSR_EEXIST;
    route *nr = (route *)realloc(srv->routes, (srv->nroutes + 1u) * sizeof *nr);
    if (!nr) return WSR_ENOMEM;
    srv->routes = nr;
    char *p = strdup(path);
    if (!p) return WSR_ENOMEM;
    nr[srv->nroutes++] = route{p, *h, user};
    return WSR_OK;
}

static void close_handles(wsr_server *srv) {
    if (!srv->handles_open) return;
    srv->handles_open = false;
    // Output queued during the last callbacks still leaves before the handles go.
    server_flush(srv);
    uv_close((uv_handle_t *)&srv->flush_prepare, nullptr);
    uv_close((uv_handle_t *)&srv->shutdown_timer, nullptr);
    timers_close(&srv->tm);
    poller_close(&srv->poll);
}

static void finish_shutdown(wsr_server *srv) {
    log_info("shutdown complete: %u connections closed cleanly, %u without a completed close handshake",
             srv->shutdown_clean, srv->shutdown_cut);
    uv_timer_stop(&srv->shutdown_timer);
    server_done_cb done = srv->shutdown_done;
    srv->shutdown_done = nullptr;
    close_handles(srv);
    if (done) done(srv, srv->shutdown_clean, srv->shutdown_cut);
}

static void on_shutdown_timeout(uv_timer_t *h) {
    wsr_server *srv = (wsr_server *)h->data;
    log_warn("shutdown timeout: cutting %u connections", server_conns_alive(srv));
    uint32_t slots = conn_table_slots(&srv->table);
    for (uint32_t i = 0; i < slots && srv->shutting_down && srv->handles_open; i++) {
        conn *c = conn_table_at(&srv->table, i);
        if (c->state != CONN_FREE) conn_destroy(srv, c, false);
    }
}

void wsr_server_shutdown(wsr_server *srv, server_done_cb done) {
    if (srv->shutting_down) return;
    srv->shutting_down = true;
    srv->shutdown_done = done;
    if (srv->listen_fd >= 0) {
        poller_del(&srv->poll, srv->listen_fd);
        close(srv->listen_fd);
        srv->listen_fd = -1;
    }
    uint32_t open_conns = 0;
    uint32_t slots = conn_table_slots(&srv->table);
    for (uint32_t i = 0; i < slots; i++) {
        conn *c = conn_table_at(&srv->table, i);
        if (c->fd < 0) continue; // free, or being torn down
        if (c->state == CONN_HANDSHAKE) {
            conn_destroy(srv, c, false);
        } else if (c->state == CONN_OPEN) {
            conn_close(srv, c, WS_CLOSE_GOING_AWAY, "server shutting down", 20);
            open_conns++;
        }
    }
    log_info("shutting down: closing %u connections (up to %u ms)", open_conns, srv->opts.shutdown_timeout_ms);
    if (server_conns_alive(srv) == 0) {
        finish_shutdown(srv);
        return;
    }
    uv_timer_start(&srv->shutdown_timer, on_shutdown_timeout, srv->opts.shutdown_timeout_ms, 0);
}

void wsr_server_free(wsr_server *srv) {
    if (!srv) return;
    // Connections still open (no shutdown was run) are closed without ceremony.
    uint32_t slots = conn_table_slots(&srv->table);
    for (uint32_t i = 0; i < slots; i++) {
        conn *c = conn_table_at(&srv->table, i);
        if (c->state != CONN_FREE) conn_destroy(srv, c, false);
    }
    if (srv->listen_fd >= 0) close(srv->listen_fd);
    if (srv->spare_fd >= 0) close(srv->spare_fd);
    if (srv->handles_open) {
        // Not shut down through the loop: close the handles and let the loop run
        // their close callbacks before the memory they point into goes away.
        close_handles(srv);
        uv_run(srv->loop, UV_RUN_NOWAIT);
    }
    for (uint16_t i = 0; i < srv->nroutes; i++) free(srv->routes[i].path);
    free(srv->routes);
    conn_table_free(&srv->table);
    hs_parser_free(&srv->hs_scratch);
    compression_server_free(srv);
    free(srv->rbuf);
    free(srv->listen_addr);
    free(srv);
}

// --- connections by id ---------------------------------------------------------

int wsr_send(wsr_server *srv, wsr_conn_id id, wsr_opcode op, const void *data, size_t len) {
    if (op != WSR_TEXT && op != WSR_BINARY) return WSR_EINVAL;
    conn *c = conn_table_lookup(&srv->table, id);
    if (!c || (c->flags & CF_DEAD)) return WSR_ENOCONN;
    return conn_send(srv, c, (uint8_t)op, data, len);
}

int wsr_close(wsr_server *srv, wsr_conn_id id, uint16_t code, const char *reason) {
    conn *c = conn_table_lookup(&srv->table, id);
    if (!c || (c->flags & CF_DEAD)) return WSR_ENOCONN;
    size_t rl = reason ? strlen(reason) : 0;
    if (!frame_close_code_valid(code) || rl > 123) return WSR_EINVAL;
    if (!utf8_complete(utf8_validate(UTF8_ACCEPT, (const uint8_t *)reason, rl))) return WSR_EINVAL;
    return conn_close(srv, c, code, reason, rl);
}

wsr_msg *wsr_msg_new(wsr_opcode op, const void *data, size_t len) {
    if ((op != WSR_TEXT && op != WSR_BINARY) || len > UINT32_MAX - 2 * FRAME_MAX_HEADER) return nullptr;
    wsr_msg *m = (wsr_msg *)calloc(1, sizeof *m);
    buf *b = m ? buf_new(FRAME_MAX_HEADER + len) : nullptr;
    if (!b) {
        free(m);
        return nullptr;
    }
    b->len = (uint32_t)frame_write_header(b->data, (uint8_t)op, true, false, len, nullptr);
    m->hdr_len = (uint8_t)b->len;
    if (len) memcpy(b->data + b->len, data, len);
    b->len += (uint32_t)len;
    m->plain = b;
    return m;
}

void wsr_msg_free(wsr_msg *msg) {
    if (!msg) return;
    buf_unref(msg->plain);
    if (msg->deflated) buf_unref(msg->deflated);
    free(msg);
}

int wsr_send_msg(wsr_server *srv, wsr_conn_id id, wsr_msg *msg) {
    conn *c = conn_table_lookup(&srv->table, id);
    if (!c || (c->flags & CF_DEAD)) return WSR_ENOCONN;
    return conn_send_msg(srv, c, msg);
}

void wsr_conn_set_user(wsr_server *srv, wsr_conn_id id, void *user) {
    conn *c = conn_table_lookup(&srv->table, id);
    if (c) c->user = user;
}

void *wsr_conn_user(wsr_server *srv, wsr_conn_id id) {
    conn *c = conn_table_lookup(&srv->table, id);
    return c ? c->user : nullptr;
}
