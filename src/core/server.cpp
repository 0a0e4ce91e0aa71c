#include "core/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <malloc.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/compression.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/options.h"
#include "proto/utf8.h"

static const uint32_t NONE = UINT32_MAX;
// Poller tags below this are listener indices: connection tags carry a generation >= 1
// in their high half.
static const uint64_t CONN_TAG_MIN = 1ull << 32;

enum {
    READ_BUFFER = 128 * 1024,    // the default of WSR_OPT_READ_BUFFER
    ACCEPTS_PER_WAKEUP = 64,     // over all listeners; then timers and the other handles run
    TICK_MS = 250,               // housekeeping period, only while something waits for it
    MEM_SETTLE_BYTES = 512u << 10, // held memory that peaked past this is given back once it drains
};

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
    case WSR_ESTATE: return "not in this state";
    default: return "unknown error";
    }
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
    // Waiting for the application's answer: not read. A WebSocket client that closes its
    // side has left (it cannot half-close and still want the upgrade); an HTTP client
    // may half-close after its request and still read the answer, so only a failed
    // connection (reported whatever the mask) ends it.
    if (c->flags2 & CF2_AWAITING)
        ev = (c->flags & CF_WANT_WRITE ? POLLER_OUT : 0) | (c->http.flags & HF_UPGRADE ? POLLER_HUP : 0);
    poller_mod(&srv->poll, c->fd, conn_id(c), ev);
}

// Runs once per loop iteration, just before the loop waits for I/O, and between the
// poller's rounds within a wakeup: everything the application sent meanwhile leaves in
// one writev per connection. Entries added while the pass runs (on_drain sent more) are
// written in the same pass.
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

static void on_tick(uv_timer_t *h);

// The housekeeping tick runs only while something waits for it: a pause in accepting,
// a log summary, memory to give back.
static void tick_start(wsr_server *srv) {
    if (!srv->handles_open || uv_is_active((uv_handle_t *)&srv->tick)) return;
    uv_timer_start(&srv->tick, on_tick, TICK_MS, TICK_MS);
}

static void on_prepare(uv_prepare_t *h) {
    wsr_server *srv = (wsr_server *)h->data;
    srv->accepts_left = ACCEPTS_PER_WAKEUP; // the poll that follows is a new wakeup
    server_flush(srv);
    if (log_flush_suppressed()) tick_start(srv);
}

void server_mem_change(wsr_server *srv, int64_t delta) {
    srv->mem_held += (uint64_t)delta;
    if (srv->mem_held <= srv->mem_peak) return;
    srv->mem_peak = srv->mem_held;
    if (srv->mem_peak >= MEM_SETTLE_BYTES) tick_start(srv);
}

// A burst is over: give its memory back to the system. Freed blocks stay in the
// allocator's heap and the buffer pools otherwise, and a device with little RAM wants
// them back for everything else it runs.
static void mem_settle(wsr_server *srv) {
    buf_pool_trim();
    outq_pool_trim();
#ifdef __GLIBC__
    malloc_trim(0);
#endif
    srv->mem_peak = srv->mem_held;
}

// --- accepting --------------------------------------------------------------------

static void watch_listeners(wsr_server *srv, uint32_t events) {
    for (uint16_t i = 0; i < srv->nlisteners; i++)
        if (srv->listeners[i].fd >= 0) poller_mod(&srv->poll, srv->listeners[i].fd, i, events);
}

static void accept_resume(wsr_server *srv) {
    if (!srv->accept_paused) return;
    srv->accept_paused = false;
    watch_listeners(srv, POLLER_IN);
}

// accept() failed for want of a resource (nearly always descriptors). Retrying at once
// fails the same way forever: Linux reports EMFILE before it looks at the queue of
// pending connections, so the listener stays readable. Stop watching it until a
// connection of ours closes or the tick's back-off passes.
static void accept_pause(wsr_server *srv, int listen_fd, int err) {
    srv->accept_paused = true;
    srv->counters.accept_pauses++;
    watch_listeners(srv, 0);
    bool no_fds = err == EMFILE || err == ENFILE;
    if (!srv->fd_episode) {
        srv->fd_episode = true; // logged once until an accept succeeds again
        if (no_fds)
            log_warn("out of file descriptors (%s): accepting paused until one is free", strerror(err));
        else
            log_error("accept: %s: accepting paused", strerror(err));
    }
    if (no_fds && srv->spare_fd >= 0) {
        // The oldest pending client would wait for a descriptor that may not come: spend
        // the spare to take it and close it, so it learns now. One per pause.
        close(srv->spare_fd);
        int fd = accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd >= 0) close(fd);
        srv->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    }
    tick_start(srv);
}

conn *server_adopt(wsr_server *srv, int fd) { return server_adopt_from(srv, fd, 0); }

conn *server_adopt_from(wsr_server *srv, int fd, uint16_t li) {
    conn *c = conn_table_alloc(&srv->table);
    if (!c) {
        log_error("out of memory for a new connection");
        close(fd);
        return nullptr;
    }
    unsigned lflags = li < srv->nlisteners ? srv->listeners[li].flags : 0;
    conn_start(c, fd, li, lflags & WSR_LISTEN_PROXY);
    srv->handshakes++; // before anything that may destroy it
    if (lflags & WSR_LISTEN_TLS) {
        c->flags2 |= CF2_TLS;
        if (!tls_conn_start(srv, c)) {
            log_error("out of memory for a TLS connection");
            conn_destroy(srv, c, false);
            return nullptr;
        }
        // Kept now: when a TLS peer fails it has often reset the connection already,
        // and its address could no longer be asked of the socket for the log line.
        net_addr a;
        server_conn_address(srv, c, &a);
        if (a.family) server_set_address(srv, c, &a);
    }
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

// Past max_handshakes a connection gets its 503 at once and costs nothing afterwards: a
// crowd of clients that connect and say nothing cannot fill the table. A TLS client
// could not read a plaintext answer: it is just closed.
static void shed(wsr_server *srv, int fd, bool tls) {
    char resp[256];
    size_t n = h1_write_error(resp, sizeof resp, 503, "too many connections in their handshake; try again later",
                              "Retry-After: 1\r\n");
    ssize_t w = tls ? 0 : send(fd, resp, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w > 0) srv->stats.bytes_out += (uint64_t)w;
    close(fd);
    srv->stats.connections_total++;
    srv->stats.handshakes_failed[stats_hs_bucket(503)]++;
    srv->counters.handshakes_shed++;
    log_info("%u connections in their handshake: new connection answered 503", srv->handshakes);
}

static void accept_one(wsr_server *srv, int fd, uint16_t li) {
    if (srv->handshakes >= srv->max_handshakes) return shed(srv, fd, srv->listeners[li].flags & WSR_LISTEN_TLS);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    server_adopt_from(srv, fd, li);
}

// Bounded like the poller: a flood of connections waits for the next wakeup rather than
// holding up timers and the connections already open. The bound is per wakeup, however
// often the poller reports the listener within it (on_prepare renews it). False when the
// bound was already spent: the listener was not served.
static bool accept_some(wsr_server *srv, uint16_t li) {
    int listen_fd = srv->listeners[li].fd;
    if (!srv->accepts_left) return false;
    while (srv->accepts_left) {
        srv->accepts_left--;
        int fd = accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            if (srv->fd_episode) {
                srv->fd_episode = false;
                log_info("accepting connections again");
            }
            accept_one(srv, fd, li);
            continue;
        }
        if (errno == EAGAIN) return true;
        int err = errno;
        if (err != EINTR) srv->stats.accept_errors++;
        // Errors of one pending connection (accept(2) lists the network errors Linux
        // passes on): that client is gone, the next one is fine.
        switch (err) {
        case EINTR:
        case ECONNABORTED:
        case EPROTO:
        case ENOPROTOOPT:
        case EHOSTDOWN:
        case ENONET:
        case EHOSTUNREACH:
        case EOPNOTSUPP:
        case ENETDOWN:
        case ENETUNREACH:
        case EPERM: // a firewall rule refused it
            continue;
        }
        accept_pause(srv, listen_fd, err);
        return true;
    }
    return true;
}

// Events other than "a connection is readable": a listener's, writability, a client that
// left while the application decided on its request. Kept out of on_event, which runs for
// every event, so that the common case pays for none of their stack and saved registers.
// True when the event was acted on (see poller_cb).
__attribute__((noinline)) static bool on_other_event(wsr_server *srv, conn *c, uint64_t tag, uint32_t events) {
    if (!c)
        return tag < srv->nlisteners && srv->listeners[tag].fd >= 0 && !srv->accept_paused &&
               accept_some(srv, (uint16_t)tag);
    if ((c->flags2 & CF2_AWAITING) && (events & POLLER_IN)) {
        // Only hang-ups are watched while the application decides: the client left.
        char peer[64];
        net_addr a;
        server_conn_address(srv, c, &a);
        net_addr_format(&a, peer, sizeof peer);
        log_info("client %s left before its request was answered", peer);
        conn_destroy(srv, c, false);
        return true;
    }
    if (events & POLLER_OUT) {
        conn_flush(srv, c);
        if (!conn_table_lookup(&srv->table, tag)) return true;
    }
    // A TLS read may have waited for writability (a handshake with bytes to send).
    bool tls_retry = (events & POLLER_OUT) && (c->flags2 & CF2_TLS) && !(c->flags & CF_READ_PAUSED);
    if ((events & POLLER_IN || tls_retry) && !(c->flags & CF_DEAD) && !conn_waits(c)) {
        conn_on_readable(srv, c);
        return true;
    }
    return (events & POLLER_OUT) != 0;
}

static void on_poll_round(void *ctx) { server_flush((wsr_server *)ctx); }

static bool on_event(void *ctx, uint64_t tag, uint32_t events) {
    wsr_server *srv = (wsr_server *)ctx;
    if (tag < CONN_TAG_MIN) return on_other_event(srv, nullptr, tag, events);
    // The tag holds the generation, so an event queued for a connection that closed
    // earlier in this batch, or for a slot already reused, finds nothing.
    conn *c = conn_table_lookup(&srv->table, tag);
    if (!c) return false;
    if (events != POLLER_IN || (c->flags2 & CF2_AWAITING)) return on_other_event(srv, c, tag, events);
    // A connection holding input over gets its round from the backlog pass, in order:
    // its readiness here is nothing to act on.
    if ((c->flags & CF_DEAD) || conn_waits(c)) return false;
    conn_on_readable(srv, c);
    return true;
}

// --- rounds -------------------------------------------------------------------------

// An idle handle, so the loop polls without blocking while input is held over: the
// held connections get one round per iteration, between everyone else's events.
static void on_backlog(uv_idle_t *h) {
    wsr_server *srv = (wsr_server *)h->data;
    // Answers queued by the last poll phase leave first: the flush pass would otherwise
    // come only after these rounds, and every quick reply would wait for a heavy one.
    server_flush(srv);
    // One round for each connection held over before this pass; one that holds over
    // again goes to the end, for the next pass. A paused one rejoins when it resumes.
    uint32_t n = srv->backlog_len;
    for (uint32_t i = 0; i < n; i++) {
        conn *c = conn_table_lookup(&srv->table, srv->backlog[i]);
        if (!c) continue;
        c->flags2 &= (uint8_t)~CF2_IN_BACKLOG;
        if (conn_waits(c) && !(c->flags & (CF_DEAD | CF_READ_PAUSED))) conn_on_readable(srv, c);
    }
    srv->backlog_len -= n;
    memmove(srv->backlog, srv->backlog + n, srv->backlog_len * sizeof *srv->backlog);
    if (srv->backlog_len == 0) uv_idle_stop(h);
}

bool server_backlog_add(wsr_server *srv, conn *c) {
    if (c->flags2 & CF2_IN_BACKLOG) return true; // one round per pass, however often asked
    if (srv->backlog_len == srv->backlog_cap) {
        uint32_t cap = srv->backlog_cap ? srv->backlog_cap * 2 : 16;
        wsr_conn_id *nb = (wsr_conn_id *)mem_realloc(srv->backlog, cap * sizeof *nb);
        if (!nb) return false;
        srv->backlog = nb;
        srv->backlog_cap = cap;
    }
    srv->backlog[srv->backlog_len++] = conn_id(c);
    c->flags2 |= CF2_IN_BACKLOG;
    if (srv->backlog_len == 1) uv_idle_start(&srv->backlog_idle, on_backlog);
    return true;
}

// --- shutdown -----------------------------------------------------------------------

static void on_handle_closed(uv_handle_t *h) {
    wsr_server *srv = (wsr_server *)h->data;
    if (--srv->handles_closing == 0 && srv->free_requested) wsr_server_free(srv);
}

static void close_handle(wsr_server *srv, uv_handle_t *h) {
    h->data = srv;
    srv->handles_closing++;
    uv_close(h, on_handle_closed);
}

static void close_handles(wsr_server *srv) {
    if (!srv->handles_open) return;
    srv->handles_open = false;
    // Output queued during the last callbacks still leaves before the handles go.
    server_flush(srv);
    close_handle(srv, (uv_handle_t *)&srv->flush_prepare);
    close_handle(srv, (uv_handle_t *)&srv->shutdown_timer);
    close_handle(srv, (uv_handle_t *)&srv->tick);
    close_handle(srv, (uv_handle_t *)&srv->backlog_idle);
    close_handle(srv, (uv_handle_t *)&srv->tm.timer);
    close_handle(srv, (uv_handle_t *)&srv->poll.handle);
}

static void stop_listening(wsr_server *srv) {
    for (uint16_t i = 0; i < srv->nlisteners; i++) {
        listener *l = &srv->listeners[i];
        if (l->fd < 0) continue;
        poller_del(&srv->poll, l->fd);
        close(l->fd);
        l->fd = -1;
    }
    srv->accept_paused = false;
}

static void on_shutdown_finish(uv_timer_t *h) {
    wsr_server *srv = (wsr_server *)h->data;
    if (!srv->handles_open) return; // finished already
    log_info("shutdown complete: %u connections closed cleanly, %u without a completed close handshake",
             srv->shutdown_clean, srv->shutdown_cut);
    server_done_cb done = srv->shutdown_done;
    srv->shutdown_done = nullptr;
    close_handles(srv);
    if (done) done(srv, srv->shutdown_clean, srv->shutdown_cut);
}

// Completion is reported from the loop (a 0 ms timer), never inside the call that
// destroyed the last connection, which may be wsr_server_shutdown itself.
static void schedule_finish(wsr_server *srv) {
    if (srv->handles_open) uv_timer_start(&srv->shutdown_timer, on_shutdown_finish, 0, 0);
}

void server_conn_gone(wsr_server *srv, bool clean) {
    accept_resume(srv); // a descriptor is free again
    if (!srv->shutting_down) return;
    if (clean)
        srv->shutdown_clean++;
    else
        srv->shutdown_cut++;
    if (server_conns_alive(srv) == 0) schedule_finish(srv);
}

static void on_timer_expire(void *ctx, conn *c, uint8_t kind) { conn_on_timeout((wsr_server *)ctx, c, kind); }

static void on_shutdown_timeout(uv_timer_t *h) {
    wsr_server *srv = (wsr_server *)h->data;
    if (server_conns_alive(srv)) log_warn("shutdown timeout: cutting %u connections", server_conns_alive(srv));
    uint32_t slots = conn_table_slots(&srv->table);
    for (uint32_t i = 0; i < slots; i++) {
        conn *c = conn_table_at(&srv->table, i);
        if (c->state != CONN_FREE) conn_destroy(srv, c, false);
    }
    if (server_conns_alive(srv) == 0) schedule_finish(srv);
}

static void on_tick(uv_timer_t *h) {
    wsr_server *srv = (wsr_server *)h->data;
    bool more = log_flush_suppressed();
    accept_resume(srv); // the back-off after running out of descriptors is over
    if (srv->mem_peak >= MEM_SETTLE_BYTES) {
        if (srv->mem_held < MEM_SETTLE_BYTES / 4)
            mem_settle(srv);
        else
            more = true;
    }
    if (!more && !srv->accept_paused) {
        uv_timer_stop(h);
    }
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

int wsr_server_add_listener(wsr_server *srv, const char *addr, unsigned flags) {
    struct sockaddr_storage ss;
    socklen_t len;
    if (srv->listening || (flags & ~(unsigned)(WSR_LISTEN_REUSEPORT | WSR_LISTEN_PROXY | WSR_LISTEN_TLS)))
        return WSR_EINVAL;
    if ((flags & WSR_LISTEN_TLS) && !tls_supported()) {
        log_error("listener %s: this build has no TLS support (built with -Dtls=disabled)", addr ? addr : "(null)");
        return WSR_EINVAL;
    }
    if ((flags & WSR_LISTEN_PROXY) && (flags & WSR_LISTEN_TLS)) {
        log_error("listener %s: the PROXY protocol in front of TLS is not supported", addr ? addr : "(null)");
        return WSR_EINVAL;
    }
    if (!addr || parse_listen(addr, &ss, &len) != 0) {
        log_error("cannot parse listen address '%s' (want HOST:PORT or [V6]:PORT)", addr ? addr : "(null)");
        return WSR_EADDR;
    }
    if (srv->nlisteners == UINT16_MAX) return WSR_EINVAL;
    listener *nl = (listener *)realloc(srv->listeners, (srv->nlisteners + 1u) * sizeof *nl);
    if (!nl) return WSR_ENOMEM;
    srv->listeners = nl;
    char *copy = strdup(addr);
    if (!copy) return WSR_ENOMEM;
    nl[srv->nlisteners] = listener{copy, -1, 0, flags};
    return srv->nlisteners++;
}

static int listen_one(wsr_server *srv, uint16_t li) {
    listener *l = &srv->listeners[li];
    struct sockaddr_storage ss;
    socklen_t len;
    parse_listen(l->addr, &ss, &len); // checked when added
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        log_error("socket: %s", strerror(errno));
        return WSR_ESYS;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if ((l->flags & WSR_LISTEN_REUSEPORT) && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
        log_error("SO_REUSEPORT on %s: %s", l->addr, strerror(errno));
        close(fd);
        return WSR_ESYS;
    }
    if (ss.ss_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, SOMAXCONN) != 0) {
        log_error("cannot listen on %s: %s", l->addr, strerror(errno));
        close(fd);
        return WSR_ESYS;
    }
    getsockname(fd, (struct sockaddr *)&ss, &len);
    l->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                             : ((struct sockaddr_in *)&ss)->sin_port);
    int r = poller_add(&srv->poll, fd, li, POLLER_IN);
    if (r != 0) {
        log_error("epoll_ctl: %s", strerror(-r));
        close(fd);
        return WSR_ESYS;
    }
    l->fd = fd;
    log_info("listening on %.*s:%d%s%s%s", (int)(strrchr(l->addr, ':') - l->addr), l->addr, l->port,
             l->flags & WSR_LISTEN_TLS ? " (TLS)" : "", l->flags & WSR_LISTEN_PROXY ? " (PROXY protocol)" : "",
             l->flags & WSR_LISTEN_REUSEPORT ? " (reuseport)" : "");
    return WSR_OK;
}

int wsr_server_listen(wsr_server *srv) {
    if (srv->listening || srv->shutting_down) return WSR_EINVAL;
    if (srv->nlisteners == 0) {
        int r = wsr_server_add_listener(srv, srv->opts.listen, 0);
        if (r < 0) return r;
    }
    for (uint16_t i = 0; i < srv->nlisteners; i++) {
        if ((srv->listeners[i].flags & WSR_LISTEN_TLS) && !srv->tls.ncerts) {
            log_error("TLS listener %s has no certificate (--tls-cert and --tls-key; wsr_server_add_certificate)",
                      srv->listeners[i].addr);
            return WSR_EINVAL;
        }
    }
    for (uint16_t i = 0; i < srv->nlisteners; i++) {
        int r = listen_one(srv, i);
        if (r != WSR_OK) {
            stop_listening(srv);
            return r;
        }
    }
    srv->listening = true;
    return WSR_OK;
}

int wsr_server_port(const wsr_server *srv) { return wsr_server_listener_port(srv, 0); }

int wsr_server_listener_port(const wsr_server *srv, unsigned i) {
    return i < srv->nlisteners ? srv->listeners[i].port : -1;
}

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
// The loop-wide read buffer, replaced by one of size bytes (WSR_OPT_READ_BUFFER). Its
// pages are touched now: a cost of the server, not of its first connection.
static int read_buffer_set(wsr_server *srv, size_t size) {
    uint8_t *b = (uint8_t *)malloc(size);
    if (!b) return WSR_ENOMEM;
    memset(b, 0, size);
    free(srv->rbuf);
    srv->rbuf = b;
    srv->rbuf_size = size;
    // Reading happens only while a connection's queue is under half the backpressure
    // limit, and what one read triggers must not carry it past the limit: an echo
    // writes no more than it read (server frames are unmasked), so reads are capped
    // at half the limit.
    srv->read_size = srv->opts.max_backpressure / 2 < size ? (size_t)srv->opts.max_backpressure / 2 : size;
    if (srv->read_size < 512) srv->read_size = 512;
    return WSR_OK;
}

static int new_failed(wsr_server *srv, int err) {
    if (srv->spare_fd >= 0) close(srv->spare_fd);
    http_free(&srv->http);
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
    char why[160];
    if (!options_check(&srv->opts, why, sizeof why)) {
        log_error("invalid option: %s", why);
        return new_failed(srv, WSR_EINVAL);
    }
    srv->loop = loop;
    srv->io = &transport_tcp;
    srv->tls_io = &transport_tls;
    tls_init(&srv->tls);
    http_init(&srv->http, &srv->opts, &srv->stats);
    srv->round_budget = CONN_ROUND_BUDGET;
    if (read_buffer_set(srv, READ_BUFFER) != WSR_OK) return new_failed(srv, WSR_ENOMEM);
    // A cost of the server, not of its first connection, paid up front: the pages of the
    // SHA-1 code (about 0.1 MB with OpenSSL's direct functions).
    char warm[HS_ACCEPT_LEN + 1];
    hs_accept_key("dGhlIHNhbXBsZSBub25jZQ==", 24, warm);
    srv->limits.max_message = srv->opts.max_message;
    srv->limits.allow_rsv1 = false;
    srv->limits.expect_masked = true;
    srv->limits_pmd = srv->limits;
    srv->limits_pmd.allow_rsv1 = true;
    // The inflated message is held to max_message all the same.
    srv->limits_pmd.max_compressed = frame_max_compressed(srv->opts.max_message);
    static const uint8_t modes[] = {PMD_SHARED, PMD_OFF, PMD_DEDICATED};
    srv->pmd_cfg.mode = modes[srv->opts.deflate];
    srv->pmd_cfg.server_window_bits = srv->opts.deflate_window_bits;
    srv->pmd_cfg.client_window_bits = srv->opts.deflate_client_window_bits;
    srv->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    srv->max_conns = srv->opts.max_connections ? srv->opts.max_connections : default_max_conns();
    srv->max_handshakes = OPTIONS_DEFAULT_MAX_HANDSHAKES;
    srv->max_memory = options_default_max_memory(&srv->opts);
    srv->drain_bytes = srv->opts.max_backpressure / 4;
    srv->flush_head = NONE;
    srv->accepts_left = ACCEPTS_PER_WAKEUP;
    conn_table_init(&srv->table);
    int r = poller_init(&srv->poll, loop, on_event, on_poll_round, srv);
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
    timers_set_timeout(&srv->tm, TK_SLOW, OPTIONS_DEFAULT_SLOW_TIMEOUT_MS);
    timers_set_timeout(&srv->tm, TK_KEEPALIVE, OPTIONS_DEFAULT_HTTP_IDLE_TIMEOUT_MS);
    uv_prepare_init(loop, &srv->flush_prepare);
    srv->flush_prepare.data = srv;
    uv_prepare_start(&srv->flush_prepare, on_prepare);
    uv_unref((uv_handle_t *)&srv->flush_prepare);
    uv_timer_init(loop, &srv->shutdown_timer);
    srv->shutdown_timer.data = srv;
    // The tick never keeps a loop alive on its own: what it waits for belongs to
    // handles that do (the listener, connections).
    uv_timer_init(loop, &srv->tick);
    srv->tick.data = srv;
    uv_unref((uv_handle_t *)&srv->tick);
    uv_idle_init(loop, &srv->backlog_idle);
    srv->backlog_idle.data = srv;
    srv->handles_open = true;
    *out = srv;
    return WSR_OK;
}

int wsr_server_set_option(wsr_server *srv, wsr_option opt, uint64_t value) {
    char why[160];
    if (srv->listening) {
        log_error("option %d set after wsr_server_listen", (int)opt);
        return WSR_EINVAL;
    }
    if (!options_check_key(&srv->opts, opt, value, why, sizeof why)) {
        log_error("invalid option: %s", why);
        return WSR_EINVAL;
    }
    switch (opt) {
    case WSR_OPT_MAX_HANDSHAKES: srv->max_handshakes = (uint32_t)value; break;
    case WSR_OPT_MAX_MEMORY: srv->max_memory = value; break;
    case WSR_OPT_SLOW_TIMEOUT_MS: timers_set_timeout(&srv->tm, TK_SLOW, (uint32_t)value); break;
    case WSR_OPT_DRAIN_BYTES: srv->drain_bytes = value; break;
    case WSR_OPT_MAX_BODY: srv->http.max_body = value; break;
    case WSR_OPT_HTTP_MAX_REQUESTS: srv->http.max_requests = (uint32_t)value; break;
    case WSR_OPT_HTTP_IDLE_TIMEOUT_MS: timers_set_timeout(&srv->tm, TK_KEEPALIVE, (uint32_t)value); break;
    case WSR_OPT_READ_BUFFER: return read_buffer_set(srv, (size_t)value);
    }
    return WSR_OK;
}

int wsr_server_add_option(wsr_server *srv, wsr_str_option opt, const char *value) {
    if (srv->listening) {
        log_error("option %d set after wsr_server_listen", (int)opt);
        return WSR_EINVAL;
    }
    int r = WSR_EINVAL;
    switch (opt) {
    case WSR_OPT_ALLOWED_ORIGIN: r = http_add_origin(&srv->http, value); break;
    case WSR_OPT_TRUSTED_PROXY: r = http_add_trusted(&srv->http, value); break;
    }
    if (r == WSR_EINVAL)
        log_error("invalid %s '%s'", opt == WSR_OPT_ALLOWED_ORIGIN ? "allowed origin" : "trusted proxy",
                  value ? value : "(null)");
    return r;
}

int wsr_server_endpoint(wsr_server *srv, const char *path, const wsr_endpoint *ep, void *user) {
    if (!ep || ep->size < offsetof(wsr_endpoint, on_upgrade)) return WSR_EINVAL;
    return http_add_endpoint(&srv->http, path, ep, ep->size, user);
}

int wsr_server_route(wsr_server *srv, const char *path, const wsr_handlers *h, void *user) {
    if (!h) return WSR_EINVAL;
    wsr_endpoint ep = WSR_ENDPOINT_INIT;
    ep.on_open = h->on_open;
    ep.on_message = h->on_message;
    ep.on_close = h->on_close;
    return http_add_endpoint(&srv->http, path, &ep, sizeof ep, user);
}

int wsr_server_http(wsr_server *srv, const char *path, unsigned methods, wsr_http_fn fn, void *user) {
    return http_add_route(&srv->http, path, methods, fn, user);
}

void wsr_server_shutdown(wsr_server *srv, server_done_cb done) {
    if (srv->shutting_down) return;
    srv->shutting_down = true;
    srv->shutdown_done = done;
    stop_listening(srv);
    // Armed first: destroying the last connection below replaces it with the 0 ms
    // completion.
    uv_timer_start(&srv->shutdown_timer, on_shutdown_timeout, srv->opts.shutdown_timeout_ms, 0);
    uint32_t open_conns = 0;
    uint32_t slots = conn_table_slots(&srv->table);
    for (uint32_t i = 0; i < slots; i++) {
        conn *c = conn_table_at(&srv->table, i);
        if (c->fd < 0 || (c->flags & CF_DEAD)) continue; // free, or being torn down
        if (c->state == CONN_HANDSHAKE || c->state == CONN_UPGRADING) {
            // Cut by the flush pass: this may run inside one of their callbacks.
            conn_cut(srv, c, nullptr);
        } else if (c->state == CONN_OPEN) {
            conn_close(srv, c, WS_CLOSE_GOING_AWAY, "server shutting down", 20);
            open_conns++;
        }
    }
    log_info("shutting down: closing %u connections (up to %u ms)", open_conns, srv->opts.shutdown_timeout_ms);
    if (server_conns_alive(srv) == 0) schedule_finish(srv);
}

// The one teardown path. While the loop handles are open the server is first shut
// down at once (from the loop, so on_close runs there, not in here); the last handle's
// close callback calls this again to release the memory.
void wsr_server_free(wsr_server *srv) {
    if (!srv) return;
    srv->free_requested = true;
    if (srv->handles_open) {
        if (!srv->shutting_down) {
            srv->shutting_down = true;
            stop_listening(srv);
        }
        uv_timer_start(&srv->shutdown_timer, on_shutdown_timeout, 0, 0);
        return;
    }
    if (srv->handles_closing) return;
    stop_listening(srv);
    for (uint16_t i = 0; i < srv->nlisteners; i++) free(srv->listeners[i].addr);
    free(srv->listeners);
    if (srv->spare_fd >= 0) close(srv->spare_fd);
    poller_free(&srv->poll);
    http_free(&srv->http);
    tls_free(&srv->tls);
    free(srv->backlog);
    free(srv->zs);
    free(srv->addrs);
    conn_table_free(&srv->table);
    compression_server_free(srv);
    free(srv->rbuf);
    free(srv);
}

// --- connections by id ---------------------------------------------------------

int wsr_send(wsr_server *srv, wsr_conn_id id, wsr_opcode op, const void *data, size_t len) {
    if (op != WSR_TEXT && op != WSR_BINARY) return WSR_EINVAL;
    // Most sends answer the connection whose message is being delivered.
    conn *c = srv->reply.c && conn_id(srv->reply.c) == id ? srv->reply.c : conn_table_lookup(&srv->table, id);
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
    wsr_msg *m = (wsr_msg *)mem_calloc(1, sizeof *m);
    buf *b = m ? buf_new(FRAME_MAX_HEADER + len) : nullptr;
    if (b) b->flags |= BUF_SHARED;
    if (!b) {
        free(m);
        return nullptr;
    }
    b->len = (uint32_t)frame_write_header(b->data, (uint8_t)op, true, false, len, nullptr);
    m->hdr_len = (uint8_t)b->len;
    if (len) memcpy(b->data + b->len, data, len);
    b->len += (uint32_t)len;
    m->plain = b;
    m->refs = 1;
    return m;
}

wsr_msg *wsr_msg_ref(wsr_msg *msg) {
    msg->refs++;
    return msg;
}

const void *wsr_msg_payload(const wsr_msg *msg, size_t *len) {
    *len = msg->plain->len - msg->hdr_len;
    return msg->plain->data + msg->hdr_len;
}

void wsr_msg_free(wsr_msg *msg) {
    if (!msg || --msg->refs) return;
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

// --- requests and connection facts -----------------------------------------------------

// The connection a request id names, or NULL when the request is over without an
// upgrade: the client left, or was answered and the connection is closing (the
// handshake timeout's 503, say).
static conn *request_conn(wsr_server *srv, wsr_conn_id id) {
    conn *c = conn_table_lookup(&srv->table, id);
    if (!c || (c->flags & CF_DEAD)) return nullptr;
    bool in_http = c->state == CONN_HANDSHAKE || c->state == CONN_UPGRADING;
    return in_http || (c->flags & CF_OPENED) ? c : nullptr;
}

int wsr_upgrade_accept(wsr_server *srv, wsr_conn_id id, void *user, const char *subprotocol) {
    conn *c = request_conn(srv, id);
    return c ? http_accept(&srv->http, srv, c, user, subprotocol) : WSR_ENOCONN;
}

int wsr_respond(wsr_server *srv, wsr_conn_id id, uint16_t status, const char *headers, const void *body, size_t len) {
    conn *c = request_conn(srv, id);
    return c ? http_respond(&srv->http, srv, c, status, headers, body, len) : WSR_ENOCONN;
}

// An open connection (open or closing: its facts stay readable until on_close), or NULL.
static conn *ws_conn(wsr_server *srv, wsr_conn_id id) {
    conn *c = conn_table_lookup(&srv->table, id);
    return c && (c->flags & CF_OPENED) ? c : nullptr;
}

size_t wsr_conn_buffered(wsr_server *srv, wsr_conn_id id) {
    conn *c = conn_table_lookup(&srv->table, id);
    return c ? conn_buffered(srv, c) : 0;
}

int wsr_ping(wsr_server *srv, wsr_conn_id id, const void *data, size_t len) {
    conn *c = conn_table_lookup(&srv->table, id);
    if (!c || (c->flags & CF_DEAD)) return WSR_ENOCONN;
    return conn_ping(srv, c, data, len);
}

size_t wsr_conn_address(wsr_server *srv, wsr_conn_id id, char *buf, size_t cap) {
    conn *c = conn_table_lookup(&srv->table, id);
    if (!c || c->fd < 0) {
        if (cap) buf[0] = '\0';
        return 0;
    }
    net_addr a;
    server_conn_address(srv, c, &a);
    return net_addr_format(&a, buf, cap);
}

const char *wsr_conn_subprotocol(wsr_server *srv, wsr_conn_id id) {
    conn *c = ws_conn(srv, id);
    return c ? http_subprotocol(&srv->http, c) : nullptr;
}

size_t wsr_conn_extensions(wsr_server *srv, wsr_conn_id id, char *buf, size_t cap) {
    conn *c = ws_conn(srv, id);
    char full[160]; // the longest agreement pmd_write_response makes is about 110 bytes
    size_t n = c ? compression_describe(c, full, sizeof full) : 0;
    full[n] = '\0';
    if (cap) snprintf(buf, cap, "%s", full); // cut to fit, like snprintf
    return n;
}

uint64_t wsr_conn_opened_ms(wsr_server *srv, wsr_conn_id id) {
    conn *c = ws_conn(srv, id);
    return c ? (uint64_t)c->opened_s * 1000 : 0;
}

// --- services the HTTP module uses -------------------------------------------------------

const char *server_refuses_upgrade(wsr_server *srv) {
    if (srv->shutting_down) return "server is shutting down";
    if (srv->table_open + srv->http.upgrading >= srv->max_conns) return "too many connections";
    return nullptr;
}

bool server_stopping(wsr_server *srv) { return srv->shutting_down; }

void server_conn_address(wsr_server *srv, const conn *c, net_addr *out) {
    if (c->idx < srv->addrs_cap && srv->addrs[c->idx].family) {
        *out = srv->addrs[c->idx];
        return;
    }
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getpeername(c->fd, (struct sockaddr *)&ss, &len) != 0 || !net_addr_from_sockaddr((struct sockaddr *)&ss, out))
        memset(out, 0, sizeof *out);
}

bool server_set_address(wsr_server *srv, const conn *c, const net_addr *a) {
    if (!a) {
        if (c->idx < srv->addrs_cap) srv->addrs[c->idx].family = 0;
        return true;
    }
    if (!conn_table_side_fit((void **)&srv->addrs, &srv->addrs_cap, c->idx, sizeof *srv->addrs)) return false;
    srv->addrs[c->idx] = *a;
    return true;
}

bool server_mem_take(wsr_server *srv, uint64_t n) {
    server_mem_change(srv, (int64_t)n);
    return srv->mem_held <= srv->max_memory / 4 * 3;
}

void server_mem_give(wsr_server *srv, uint64_t n) { server_mem_change(srv, -(int64_t)n); }

int wsr_server_add_certificate(wsr_server *srv, const char *cert_file, const char *key_file) {
    return tls_add_cert(&srv->tls, cert_file, key_file);
}

int wsr_server_reload_certificates(wsr_server *srv) { return tls_reload(&srv->tls); }
