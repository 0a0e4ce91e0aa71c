// msgbench: load for the JSON messaging protocol on /ws (docs/messaging.md), beside the
// raw endpoints (/broadcast, /echo) it is compared with.
//
// usage: msgbench fanout|subs [OPTION]...   (msgbench --help)
//
//   fanout  N subscribers on one channel and P publishers (on /ws); on /broadcast N
//           receivers and one sender (whose own copy is its answer); on /echo one sender
//           and no receivers. A publish is complete when every subscriber has it and its
//           publisher has its answer (/ws: the ack; raw endpoints: its own copy), so the
//           same loop serves every endpoint: closed loop with D publishes not complete
//           (--depth), open loop at --rate R, or exactly --count R publishes (for
//           instruction counts under callgrind, where time means nothing).
//   subs    C clients on /ws each subscribe to K channels of M; the server's VmRSS is
//           read with the clients connected and no subscription, then with all of them:
//           bytes per subscription = the difference / (C * K).
//
// Every payload carries its sequence number and its send time ("s" and "t", CLOCK_MONOTONIC
// ns; client and server are on one machine): latency is publish to delivery. The bench
// finds these and the envelope's "type" by their key instead of parsing the JSON: it knows
// what it wrote, the server writes "type" first, and a parse per delivery would cost the
// client (which shares the machine with the server) more than the server's own work.
//
// One thread, epoll, the WebSocket pieces of bench/client.h (upgrade, masking, the
// project's frame parser on server frames).
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "client.h"
#include "hdr.h"

enum : uint64_t {
    OPEN_TIMEOUT_NS = 20 * NS,  // connects and upgrades of every connection
    SUB_TIMEOUT_NS = 60 * NS,   // every subscribe answered (subs: 100,000 of them)
    DRAIN_TIMEOUT_NS = 5 * NS,  // publishes in flight when the run ends
    CLOSE_TIMEOUT_NS = 3 * NS,  // close handshakes at the end
};

enum : uint32_t {
    RBUF_SIZE = 256 * 1024,
    RING = 1 << 16,        // publishes not yet complete, by sequence number
    PAD_MIN = 40,          // the payload's fixed part: {"s":…,"t":…,"p":""}
};

enum mb_mode : uint8_t { MODE_FANOUT, MODE_SUBS };
enum cstate : uint8_t { ST_CONNECTING, ST_HANDSHAKE, ST_OPEN, ST_CLOSING, ST_DONE };
enum role : uint8_t { ROLE_SUB, ROLE_PUB };

struct mb_opts {
    uint8_t mode;
    const char *url;
    bc_url u;
    const char *url2; // fanout: every other subscriber connects here (a second node)
    bc_url u2;
    bool ws; // the path is /ws: the JSON protocol; else a raw endpoint
    uint32_t subs, pubs, depth, payload, size;
    uint64_t count;
    double rate, duration, warmup, settle;
    uint32_t clients, per_client, channels, window;
    uint32_t per_source;
    uint32_t concurrency;
    int server_pid;
    bool quiet;
};

struct mconn {
    int fd;
    uint8_t state;
    uint8_t role;
    uint8_t out_armed; // EPOLLOUT is in the interest set
    uint8_t close_sent;
    uint32_t idx;
    uint32_t subs_sent, subs_ok; // subscribe requests and their answers
    uint8_t *out;                // frames the kernel has not taken
    uint32_t out_len, out_cap;
    uint8_t *m; // the text message being received, whole
    uint32_t m_len, m_cap;
    char *hs; // the upgrade answer so far
    uint32_t hs_len;
    char accept[32];
    bc_rx rx;
};

struct mbench {
    mb_opts o;
    int ep;
    mconn *c;
    uint32_t n;
    uint32_t nopen, npending;
    uint8_t *rbuf;
    uint64_t rng;
    EVP_MD *sha1;
    frame_limits lim;
    char request[1024];
    int request_len;
    bc_errors err;
    // fanout
    uint32_t first_pub;   // c[first_pub..n) publish
    uint32_t *left;       // per publish in the ring: answers still owed
    uint64_t *sent_at;    // per publish in the ring: its stamp
    uint64_t published, completed;
    uint64_t t_start, t_measure, t_end;
    bool measuring;
    double period_ns;
    hdr_hist hist;    // publish to each delivery
    hdr_hist all;     // publish to its completion (the slowest subscriber, or the ack)
    uint64_t deliveries, delivery_bytes, answers, pub_in_window;
    uint64_t subs_ok, subs_sent;
    double cpu0_c, cpu0_s, cpu1_c, cpu1_s;
    uint64_t t_cpu0, t_cpu1;
};

// --- output buffers and sending ---------------------------------------------------------------

static uint8_t *out_reserve(mconn *c, uint32_t need) {
    if (c->out_len + need > c->out_cap) {
        uint32_t cap = c->out_cap ? c->out_cap : 256;
        while (cap < c->out_len + need) cap *= 2;
        uint8_t *p = (uint8_t *)realloc(c->out, cap);
        if (!p) abort(); // a bench that cannot hold a few frames has nothing to measure
        c->out = p;
        c->out_cap = cap;
    }
    return c->out + c->out_len;
}

static void conn_events(mbench *b, mconn *c, bool want_out) {
    if (c->out_armed == want_out) return;
    epoll_event ev = {};
    ev.events = want_out ? (uint32_t)(EPOLLIN | EPOLLOUT) : (uint32_t)EPOLLIN;
    ev.data.u32 = c->idx;
    epoll_ctl(b->ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->out_armed = want_out;
}

static void conn_drop(mbench *b, mconn *c) {
    if (c->fd < 0) return;
    close(c->fd);
    c->fd = -1;
    if (c->state == ST_OPEN || c->state == ST_CLOSING) b->nopen--;
    if (c->state < ST_OPEN) b->npending--;
    c->state = ST_DONE;
}

// Sends what is queued; the rest waits for EPOLLOUT.
static void conn_flush(mbench *b, mconn *c) {
    if (c->fd < 0 || c->out_len == 0) return;
    ssize_t n = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) return conn_events(b, c, true);
        if (c->state < ST_CLOSING) bc_error(&b->err, c->idx, BC_ERR_CLOSED, "send: %s", strerror(errno));
        return conn_drop(b, c);
    }
    memmove(c->out, c->out + n, c->out_len - (uint32_t)n);
    c->out_len -= (uint32_t)n;
    conn_events(b, c, c->out_len > 0);
}

static void conn_text(mbench *b, mconn *c, const char *text, size_t len) {
    uint8_t *p = out_reserve(c, (uint32_t)len + 14);
    c->out_len += (uint32_t)bc_frame(p, &b->rng, WS_OP_TEXT, false, (const uint8_t *)text, len);
}

static void conn_close(mbench *b, mconn *c) {
    if (c->fd < 0 || c->close_sent) return;
    uint8_t body[2] = {WS_CLOSE_NORMAL >> 8, WS_CLOSE_NORMAL & 0xff};
    uint8_t *p = out_reserve(c, BC_CTL_FRAME_MAX);
    c->out_len += (uint32_t)bc_frame(p, &b->rng, WS_OP_CLOSE, false, body, 2);
    c->close_sent = 1;
    c->state = ST_CLOSING;
    conn_flush(b, c);
}

// --- messages in --------------------------------------------------------------------------------

// The unsigned number after key (e.g. "\"s\":") in m, or false when key is not there.
static bool find_u64(const uint8_t *m, size_t len, const char *key, uint64_t *v) {
    size_t kl = strlen(key);
    const uint8_t *p = (const uint8_t *)memmem(m, len, key, kl);
    if (!p) return false;
    p += kl;
    const uint8_t *end = m + len;
    if (p == end || *p < '0' || *p > '9') return false;
    uint64_t x = 0;
    while (p < end && *p >= '0' && *p <= '9') x = x * 10 + (uint64_t)(*p++ - '0');
    *v = x;
    return true;
}

// Whether the envelope's type is t (the server writes "type" first).
static bool type_is(const uint8_t *m, size_t len, const char *t) {
    static const char K[] = "{\"type\":\"";
    size_t kl = sizeof K - 1, tl = strlen(t);
    return len > kl + tl && memcmp(m, K, kl) == 0 && memcmp(m + kl, t, tl) == 0 && m[kl + tl] == '"';
}

// One answer toward publish seq (a delivery, or the publisher's answer); the publish is
// complete when none is owed.
static void publish_answered(mbench *b, uint64_t seq, uint64_t now) {
    if (seq >= b->published || b->published - seq > RING) {
        bc_error(&b->err, -1, BC_ERR_PAYLOAD, "an answer to publish %llu, which is not in flight", (unsigned long long)seq);
        return;
    }
    uint32_t *left = &b->left[seq % RING];
    if (*left == 0) {
        bc_error(&b->err, -1, BC_ERR_PAYLOAD, "publish %llu answered more often than it has receivers", (unsigned long long)seq);
        return;
    }
    if (--*left) return;
    b->completed++;
    uint64_t t = b->sent_at[seq % RING];
    if (b->measuring) hdr_record(&b->all, now > t ? now - t : 0);
}

static void on_delivery(mbench *b, mconn *c, const uint8_t *m, size_t len, uint64_t now) {
    uint64_t seq, t;
    if (!find_u64(m, len, "\"s\":", &seq) || !find_u64(m, len, "\"t\":", &t)) {
        bc_error(&b->err, c->idx, BC_ERR_PAYLOAD, "a delivery without our sequence number and stamp");
        return;
    }
    if (b->measuring) {
        hdr_record(&b->hist, now > t ? now - t : 0);
        b->deliveries++;
        b->delivery_bytes += len;
    }
    publish_answered(b, seq, now);
}

static void on_message(mbench *b, mconn *c, const uint8_t *m, size_t len, uint64_t now) {
    if (!b->o.ws) { // raw endpoints: every message is a copy of a publish
        if (c->role == ROLE_SUB)
            on_delivery(b, c, m, len, now);
        else {
            uint64_t seq;
            if (find_u64(m, len, "\"s\":", &seq)) publish_answered(b, seq, now);
            b->answers++;
        }
        return;
    }
    if (type_is(m, len, "message")) {
        if (c->role != ROLE_SUB) return bc_error(&b->err, c->idx, BC_ERR_PAYLOAD, "a publisher got a delivery");
        return on_delivery(b, c, m, len, now);
    }
    if (type_is(m, len, "ack")) {
        uint64_t seq; // our publish id is its sequence number
        if (!find_u64(m, len, "\"correlationId\":\"", &seq))
            return bc_error(&b->err, c->idx, BC_ERR_PAYLOAD, "an ack without our id");
        b->answers++;
        return publish_answered(b, seq, now);
    }
    if (type_is(m, len, "subscribed")) {
        c->subs_ok++;
        b->subs_ok++;
        return;
    }
    if (type_is(m, len, "error") || type_is(m, len, "rate_limited"))
        return bc_error(&b->err, c->idx, BC_ERR_PAYLOAD, "%.*s", (int)(len > 200 ? 200 : len), (const char *)m);
    // connection:established, join, leave: what any client hears; not counted.
}

static void on_control(mbench *b, mconn *c, uint8_t opcode) {
    if (opcode == WS_OP_PING && !c->close_sent) {
        uint8_t *p = out_reserve(c, BC_CTL_FRAME_MAX);
        c->out_len += (uint32_t)bc_frame(p, &b->rng, WS_OP_PONG, false, c->rx.ctl, c->rx.ctl_len);
    } else if (opcode == WS_OP_CLOSE) {
        uint16_t bad;
        bc_close_check(&b->err, c->idx, &c->rx, c->close_sent, &bad);
        if (!c->close_sent) conn_close(b, c);
    }
}

static void on_ws_bytes(mbench *b, mconn *c, uint8_t *data, size_t len, uint64_t now) {
    frame_event ev;
    while (bc_rx_next(&c->rx, &b->lim, &data, &len, &ev)) {
        switch (ev.type) {
        case FRAME_ERROR:
            bc_error(&b->err, c->idx, BC_ERR_PROTOCOL, "%s", ev.reason);
            return conn_drop(b, c);
        case FRAME_HEADER:
            if (ev.opcode == WS_OP_BINARY) {
                bc_error(&b->err, c->idx, BC_ERR_PAYLOAD, "a binary message");
                return conn_drop(b, c);
            }
            if (ev.opcode == WS_OP_TEXT) c->m_len = 0;
            break;
        case FRAME_PAYLOAD:
            if (c->m_len + ev.len > c->m_cap) {
                uint32_t cap = c->m_cap ? c->m_cap : 512;
                while (cap < c->m_len + ev.len) cap *= 2;
                uint8_t *p = (uint8_t *)realloc(c->m, cap);
                if (!p) abort();
                c->m = p;
                c->m_cap = cap;
            }
            memcpy(c->m + c->m_len, ev.data, ev.len);
            c->m_len += (uint32_t)ev.len;
            break;
        case FRAME_END:
            if (ws_opcode_is_control(ev.opcode)) {
                on_control(b, c, ev.opcode);
                if (c->fd < 0) return;
            } else if (ev.fin) {
                on_message(b, c, c->m, c->m_len, now);
            }
            break;
        }
    }
}

// --- connecting ---------------------------------------------------------------------------------

static void conn_start(mbench *b, mconn *c, uint64_t opened) {
    uint32_t source = b->o.per_source ? 1 + (uint32_t)(opened / b->o.per_source) % 254 : 0;
    // With --url2 the odd subscribers go to the second node: the subscribers are split
    // evenly and the publishers stay on the first.
    bool second = b->o.url2 && b->o.mode == MODE_FANOUT && c->idx < b->o.subs && c->idx % 2 == 1;
    c->fd = bc_connect_start(second ? &b->o.u2 : &b->o.u, source);
    b->npending++;
    if (c->fd < 0) {
        bc_error(&b->err, c->idx, BC_ERR_CONNECT, "connect: %s", strerror(errno));
        c->state = ST_DONE;
        b->npending--;
        return;
    }
    c->state = ST_CONNECTING;
    c->out_armed = 1;
    bc_rx_init(&c->rx);
    epoll_event ev = {};
    ev.events = EPOLLIN | EPOLLOUT;
    ev.data.u32 = c->idx;
    epoll_ctl(b->ep, EPOLL_CTL_ADD, c->fd, &ev);
}

static void conn_connected(mbench *b, mconn *c) {
    int e = 0;
    socklen_t el = sizeof e;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &el);
    if (e) {
        bc_error(&b->err, c->idx, BC_ERR_CONNECT, "connect: %s", strerror(e));
        return conn_drop(b, c);
    }
    char key[32];
    bc_nonce(&b->rng, b->sha1, key, c->accept);
    uint8_t *p = out_reserve(c, (uint32_t)b->request_len + 64);
    c->out_len += (uint32_t)snprintf((char *)p, (size_t)b->request_len + 64, "%sSec-WebSocket-Key: %s\r\n\r\n", b->request, key);
    c->hs = (char *)malloc(BC_HS_MAX + 1);
    if (!c->hs) abort();
    c->hs_len = 0;
    c->state = ST_HANDSHAKE;
    conn_flush(b, c);
}

static void conn_handshake(mbench *b, mconn *c, uint64_t now) {
    ssize_t n = recv(c->fd, c->hs + c->hs_len, BC_HS_MAX - c->hs_len, 0);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
        bc_error(&b->err, c->idx, BC_ERR_HANDSHAKE, "connection ended during the upgrade");
        return conn_drop(b, c);
    }
    c->hs_len += (uint32_t)n;
    long head = bc_response_head(c->hs, c->hs_len);
    if (head == 0) return;
    char status[64] = "";
    const char *why = head < 0 ? "no end of the response head" : bc_handshake_check(c->hs, c->accept, nullptr, nullptr, status, sizeof status);
    if (why) {
        bc_error(&b->err, c->idx, BC_ERR_HANDSHAKE, "%s (%s)", why, status);
        return conn_drop(b, c);
    }
    c->state = ST_OPEN;
    b->npending--;
    b->nopen++;
    char *hs = c->hs;
    c->hs = nullptr;
    // Frames (connection:established) may come in the same read as the head.
    if ((size_t)head < c->hs_len) on_ws_bytes(b, c, (uint8_t *)hs + head, c->hs_len - (size_t)head, now);
    free(hs);
}

// --- the loop -----------------------------------------------------------------------------------

static void mb_poll(mbench *b, uint64_t timeout_ns) {
    enum { MAX_EVENTS = 512 };
    epoll_event evs[MAX_EVENTS];
    timespec ts = {(time_t)(timeout_ns / NS), (long)(timeout_ns % NS)};
    int k = epoll_pwait2(b->ep, evs, MAX_EVENTS, &ts, nullptr);
    for (int i = 0; i < k; i++) {
        mconn *c = &b->c[evs[i].data.u32];
        if (c->fd < 0) continue;
        uint32_t e = evs[i].events;
        if (c->state == ST_CONNECTING) {
            if (e & (EPOLLOUT | EPOLLERR | EPOLLHUP)) conn_connected(b, c);
            continue;
        }
        if (e & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
            if (c->state == ST_HANDSHAKE) {
                conn_handshake(b, c, bc_mono_ns());
            } else {
                ssize_t n = recv(c->fd, b->rbuf, RBUF_SIZE, 0);
                uint64_t now = bc_mono_ns(); // the delivery is here now
                if (n > 0) {
                    on_ws_bytes(b, c, b->rbuf, (size_t)n, now);
                } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                    if (!c->close_sent) bc_error(&b->err, c->idx, BC_ERR_CLOSED, "the server ended the connection");
                    conn_drop(b, c);
                    continue;
                }
            }
        }
        if (c->fd >= 0 && (c->out_len || (e & EPOLLOUT))) conn_flush(b, c);
    }
}

// Opens connections [from, to), at most o.concurrency at a time, until each is open or failed.
static bool mb_open(mbench *b, uint32_t from, uint32_t to) {
    uint64_t deadline = bc_mono_ns() + OPEN_TIMEOUT_NS;
    uint32_t next = from;
    while (!bc_interrupted && bc_mono_ns() < deadline) {
        while (next < to && b->npending < b->o.concurrency) {
            conn_start(b, &b->c[next], next);
            next++;
        }
        if (next == to && b->npending == 0) break;
        mb_poll(b, 50 * 1000 * 1000);
    }
    if (b->nopen < to - from) {
        fprintf(stderr, "msgbench: %u of %u connections opened\n", b->nopen, to - from);
        return false;
    }
    return true;
}

// Polls for about ns, answering whatever comes (join messages, pings).
static void mb_settle(mbench *b, double secs) {
    uint64_t end = bc_mono_ns() + (uint64_t)(secs * 1e9);
    for (uint64_t now; (now = bc_mono_ns()) < end && !bc_interrupted;) mb_poll(b, end - now);
}

static void mb_close_all(mbench *b) {
    for (uint32_t i = 0; i < b->n; i++) conn_close(b, &b->c[i]);
    uint64_t deadline = bc_mono_ns() + CLOSE_TIMEOUT_NS;
    while (b->nopen && bc_mono_ns() < deadline) mb_poll(b, 50 * 1000 * 1000);
    for (uint32_t i = 0; i < b->n; i++) conn_drop(b, &b->c[i]);
}

// Subscribes connections [from, to) to o.per_client channels each, at most o.window
// subscribes unanswered: each subscribe makes the server tell every earlier subscriber
// of its channel (join), and a bounded window keeps those bursts from piling up in the
// server's out-queues, where they would show as memory of the subscriptions.
static bool mb_subscribe(mbench *b, uint32_t from, uint32_t to, uint32_t per_client) {
    uint64_t deadline = bc_mono_ns() + SUB_TIMEOUT_NS;
    uint64_t want = (uint64_t)(to - from) * per_client;
    uint64_t base_ok = b->subs_ok;
    uint32_t i = from;
    while (b->subs_ok - base_ok < want && !bc_interrupted) {
        while (i < to && b->subs_sent - b->subs_ok < b->o.window) {
            mconn *c = &b->c[i];
            if (c->fd < 0 || c->subs_sent == per_client) {
                if (c->fd < 0) want -= per_client - c->subs_sent;
                i++;
                continue;
            }
            uint32_t ch = b->o.mode == MODE_FANOUT ? 0 : (c->idx * per_client + c->subs_sent) % b->o.channels;
            char msg[128];
            int len = snprintf(msg, sizeof msg, "{\"type\":\"subscribe\",\"channel\":\"ch%u\",\"id\":\"s%u\"}", ch, c->subs_sent);
            conn_text(b, c, msg, (size_t)len);
            conn_flush(b, c);
            c->subs_sent++;
            b->subs_sent++;
        }
        uint64_t now = bc_mono_ns();
        if (now >= deadline) {
            fprintf(stderr, "msgbench: %llu of %llu subscribes answered in %llu s\n",
                    (unsigned long long)(b->subs_ok - base_ok), (unsigned long long)want,
                    (unsigned long long)(SUB_TIMEOUT_NS / NS));
            return false;
        }
        mb_poll(b, 50 * 1000 * 1000);
    }
    return true;
}

// --- fanout -------------------------------------------------------------------------------------

// Publish seq with its stamp: on /ws a publish envelope whose payload is o.payload bytes;
// on a raw endpoint a text message of o.size bytes. Both are JSON objects of the same
// shape, padded with "p" to the size.
static void publish(mbench *b, uint64_t stamp) {
    uint64_t seq = b->published++;
    uint32_t npub = b->n - b->first_pub;
    mconn *c = &b->c[b->first_pub + seq % npub];
    char body[8192], msg[8400];
    uint32_t size = b->o.ws ? b->o.payload : b->o.size;
    int h = snprintf(body, sizeof body, "{\"s\":%llu,\"t\":%llu,\"p\":\"", (unsigned long long)seq, (unsigned long long)stamp);
    int pad = (int)size - h - 2;
    if (pad < 0) pad = 0;
    memset(body + h, 'x', (size_t)pad);
    memcpy(body + h + pad, "\"}", 2);
    size_t blen = (size_t)h + (size_t)pad + 2;
    b->left[seq % RING] = b->o.subs + 1; // every subscriber and the publisher's answer
    b->sent_at[seq % RING] = stamp;
    if (b->measuring) b->pub_in_window++;
    if (b->o.ws) {
        int len = snprintf(msg, sizeof msg, "{\"type\":\"publish\",\"channel\":\"ch0\",\"payload\":%.*s,\"id\":\"%llu\"}",
                           (int)blen, body, (unsigned long long)seq);
        conn_text(b, c, msg, (size_t)len);
    } else {
        conn_text(b, c, body, blen);
    }
    conn_flush(b, c);
}

static void cpu_mark(mbench *b, double *client, double *server, uint64_t *t) {
    *t = bc_mono_ns();
    *client = bc_cpu_self_s();
    *server = bc_proc_cpu_s(b->o.server_pid);
}

// Publishes until the window ends (or o.count are complete), then waits for what is in
// flight.
static void fanout_run(mbench *b) {
    const mb_opts *o = &b->o;
    uint64_t now = bc_mono_ns();
    b->t_start = now;
    b->t_measure = o->count ? now : now + (uint64_t)(o->warmup * 1e9);
    b->t_end = o->count ? UINT64_MAX : b->t_measure + (uint64_t)(o->duration * 1e9);
    b->period_ns = o->rate > 0 ? 1e9 / o->rate : 0;
    if (b->t_measure == now) {
        b->measuring = true;
        cpu_mark(b, &b->cpu0_c, &b->cpu0_s, &b->t_cpu0);
    }
    for (;;) {
        now = bc_mono_ns();
        if (!b->measuring && now >= b->t_measure) {
            b->measuring = true;
            cpu_mark(b, &b->cpu0_c, &b->cpu0_s, &b->t_cpu0);
        }
        if (now >= b->t_end || bc_interrupted || (o->count && b->completed >= o->count)) break;
        uint64_t wake = b->t_end - now < 100 * 1000 * 1000 ? b->t_end - now : 100 * 1000 * 1000;
        if (o->rate > 0) {
            // Open loop: each publish is stamped with when it was due, so a stalled
            // server is charged for every publish it delayed.
            for (;;) {
                uint64_t due = b->t_start + (uint64_t)((double)b->published * b->period_ns);
                if (due > now) {
                    if (due - now < wake) wake = due - now;
                    break;
                }
                if (b->published - b->completed >= RING) break; // hopelessly behind
                publish(b, due);
            }
        } else {
            uint64_t limit = o->count ? o->count : UINT64_MAX;
            while (b->published - b->completed < o->depth && b->published < limit) publish(b, bc_mono_ns());
        }
        mb_poll(b, wake);
    }
    cpu_mark(b, &b->cpu1_c, &b->cpu1_s, &b->t_cpu1);
    b->measuring = false;
    uint64_t deadline = bc_mono_ns() + DRAIN_TIMEOUT_NS;
    while (b->completed < b->published && bc_mono_ns() < deadline && !bc_interrupted) mb_poll(b, 50 * 1000 * 1000);
    if (b->completed < b->published) {
        b->err.count[BC_ERR_TIMEOUT] += b->published - b->completed;
        fprintf(stderr, "msgbench: %llu publishes not complete %llu s after the run\n",
                (unsigned long long)(b->published - b->completed), (unsigned long long)(DRAIN_TIMEOUT_NS / NS));
    }
}

static double us(uint64_t ns) { return (double)ns / 1e3; }

static void fanout_report(mbench *b) {
    const mb_opts *o = &b->o;
    double secs = (double)(b->t_cpu1 - b->t_cpu0) / 1e9;
    double dps = secs > 0 ? (double)b->deliveries / secs : 0;
    double pps = secs > 0 ? (double)b->pub_in_window / secs : 0;
    double ccpu = secs > 0 ? 100 * (b->cpu1_c - b->cpu0_c) / secs : 0;
    double scpu = secs > 0 && b->cpu0_s >= 0 ? 100 * (b->cpu1_s - b->cpu0_s) / secs : -1;
    double dbytes = b->deliveries ? (double)b->delivery_bytes / (double)b->deliveries : 0;
    if (!o->quiet) {
        fprintf(stderr, "msgbench fanout %s: %u subscribers, %u publishers, %s, %u B %s\n", o->url, o->subs,
                b->n - b->first_pub, o->rate > 0 ? "open loop" : "closed loop", o->ws ? o->payload : o->size,
                o->ws ? "payload" : "message");
        fprintf(stderr, "  window %.2f s: %llu published (%.0f/s), %llu deliveries (%.0f/s) of %.0f B\n", secs,
                (unsigned long long)b->pub_in_window, pps, (unsigned long long)b->deliveries, dps, dbytes);
        fprintf(stderr, "  delivery p50 %.1f p99 %.1f p99.9 %.1f max %.1f us; complete p50 %.1f p99 %.1f us\n",
                us(hdr_percentile(&b->hist, 0.5)), us(hdr_percentile(&b->hist, 0.99)),
                us(hdr_percentile(&b->hist, 0.999)), us(b->hist.max), us(hdr_percentile(&b->all, 0.5)),
                us(hdr_percentile(&b->all, 0.99)));
        fprintf(stderr, "  cpu client %.1f %%, server %.1f %%\n", ccpu, scpu);
        bc_errors_print(stderr, &b->err);
    }
    printf("mode=fanout endpoint=%s subs=%u pubs=%u depth=%u rate=%.0f payload=%u size=%u published=%llu "
           "completed=%llu deliveries=%llu duration_s=%.3f deliveries_per_s=%.0f published_per_s=%.0f "
           "delivery_bytes=%.0f p50_us=%.1f p90_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f all_p50_us=%.1f "
           "all_p99_us=%.1f client_cpu_pct=%.1f server_cpu_pct=%.1f errors=%llu\n",
           o->u.path, o->subs, b->n - b->first_pub, o->rate > 0 ? 0 : o->depth, o->rate, o->payload, o->size,
           (unsigned long long)b->published, (unsigned long long)b->completed, (unsigned long long)b->deliveries,
           secs, dps, pps, dbytes, us(hdr_percentile(&b->hist, 0.5)), us(hdr_percentile(&b->hist, 0.9)),
           us(hdr_percentile(&b->hist, 0.99)), us(hdr_percentile(&b->hist, 0.999)), us(b->hist.max),
           us(hdr_percentile(&b->all, 0.5)), us(hdr_percentile(&b->all, 0.99)), ccpu, scpu,
           (unsigned long long)bc_errors_total(&b->err));
}

static int fanout_main(mbench *b) {
    const mb_opts *o = &b->o;
    b->n = o->subs + o->pubs;
    b->first_pub = o->subs;
    if (!mb_open(b, 0, b->n)) return 1;
    for (uint32_t i = b->first_pub; i < b->n; i++) b->c[i].role = ROLE_PUB;
    if (o->ws && !mb_subscribe(b, 0, o->subs, 1)) return 1;
    mb_settle(b, o->settle); // the last join messages
    hdr_reset(&b->hist);
    hdr_reset(&b->all);
    fanout_run(b);
    fanout_report(b);
    mb_close_all(b);
    return bc_errors_total(&b->err) ? 1 : 0;
}

// --- subs ---------------------------------------------------------------------------------------

static int subs_main(mbench *b) {
    const mb_opts *o = &b->o;
    b->n = o->clients;
    long rss_before = bc_proc_rss_kb(o->server_pid);
    if (!mb_open(b, 0, b->n)) return 1;
    mb_settle(b, o->settle);
    long rss_conns = bc_proc_rss_kb(o->server_pid);
    uint64_t t0 = bc_mono_ns();
    if (!mb_subscribe(b, 0, b->n, o->per_client)) return 1;
    double sub_s = (double)(bc_mono_ns() - t0) / 1e9;
    mb_settle(b, o->settle);
    long rss_subs = bc_proc_rss_kb(o->server_pid);
    uint64_t nsubs = (uint64_t)b->nopen * o->per_client;
    double per_conn = rss_before >= 0 ? (double)(rss_conns - rss_before) * 1024.0 / b->nopen : -1;
    double per_sub = rss_before >= 0 ? (double)(rss_subs - rss_conns) * 1024.0 / (double)nsubs : -1;
    if (!o->quiet)
        fprintf(stderr, "msgbench subs: %u clients x %u of %u channels: server VmRSS %ld KiB before, %ld connected, "
                        "%ld subscribed (%.1f s); %.0f B per connection, %.1f B per subscription\n",
                b->nopen, o->per_client, o->channels, rss_before, rss_conns, rss_subs, sub_s, per_conn, per_sub);
    printf("mode=subs clients=%u per_client=%u channels=%u subscriptions=%llu subscribe_s=%.2f rss_before_kb=%ld "
           "rss_conns_kb=%ld rss_subs_kb=%ld bytes_per_conn=%.0f bytes_per_sub=%.1f errors=%llu\n",
           b->nopen, o->per_client, o->channels, (unsigned long long)nsubs, sub_s, rss_before, rss_conns, rss_subs,
           per_conn, per_sub, (unsigned long long)bc_errors_total(&b->err));
    fflush(stdout);
    mb_close_all(b);
    return bc_errors_total(&b->err) ? 1 : 0;
}

// --- command line -------------------------------------------------------------------------------

static void usage(FILE *f) {
    fprintf(f,
            "usage: msgbench fanout|subs [OPTION]...\n"
            "Load for wsreactor's JSON messaging on /ws, and the raw endpoints it is compared with.\n"
            "\n"
            "  fanout  --url ws://H:P/ws: N subscribers on one channel, P publishers; each publish goes\n"
            "          to every subscriber, the publisher gets an ack. --url ws://H:P/broadcast: N\n"
            "          receivers and one sender (its own copy is its answer); /echo: --subs 0.\n"
            "          Deliveries/s and publish-to-delivery latency.\n"
            "  subs    --url ws://H:P/ws: C clients each subscribe to K of M channels; the server's\n"
            "          VmRSS (--server-pid) connected without and with the subscriptions.\n"
            "\n"
            "Options (defaults in brackets):\n"
            "  --url URL          ws://HOST:PORT/PATH\n"
            "  --url2 URL         fanout: every other subscriber connects here instead (a second node\n"
            "                     sharing channels through --broker); publishers stay on --url\n"
            "  --subs N           fanout: subscribers (receivers) [1000]\n"
            "  --pubs P           fanout: publishers on /ws, round robin (the server limits publishes\n"
            "                     per connection) [4; raw endpoints: 1]\n"
            "  --depth D          fanout, closed loop: publishes not yet complete [1]\n"
            "  --rate R           fanout: publishes/s, open loop [0: closed loop]\n"
            "  --count R          fanout: exactly R publishes, closed loop, no warmup, no timing\n"
            "  --payload B        fanout on /ws: payload bytes of a publish [100]\n"
            "  --size B           fanout on a raw endpoint: bytes of a message [100]\n"
            "  --duration T       measured seconds [5]\n"
            "  --warmup T         seconds before measuring [1]\n"
            "  --settle T         seconds of quiet before a measurement starts (subs: before each\n"
            "                     VmRSS reading) [fanout 0.3, subs 2]\n"
            "  --clients C        subs: clients [10000]\n"
            "  --per-client K     subs: channels each client subscribes to [10]\n"
            "  --channels M       subs: channels in all [1000]\n"
            "  --window W         subscribes unanswered at a time [64]\n"
            "  --per-source N     connections per 127.0.0.x source address, 0: the kernel picks [50]\n"
            "  --concurrency N    connections being opened at once [200]\n"
            "  --server-pid PID   the server's CPU (fanout) and VmRSS (subs)\n"
            "  --quiet            only the key=value line\n"
            "Output: a summary on stderr and one key=value line on stdout. Exit status 1 when an\n"
            "error was counted (a rate_limited or error answer is one), 2 for bad usage.\n");
}

static int parse_args(mb_opts *o, int argc, char **argv) {
    memset(o, 0, sizeof *o);
    o->subs = 1000;
    o->depth = 1;
    o->payload = 100;
    o->size = 100;
    o->duration = 5;
    o->warmup = 1;
    o->settle = -1;
    o->clients = 10000;
    o->per_client = 10;
    o->channels = 1000;
    o->window = 64;
    o->per_source = 50;
    o->concurrency = 200;
    int64_t pubs = -1;
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(stdout);
        return 1;
    }
    if (!strcmp(argv[1], "fanout"))
        o->mode = MODE_FANOUT;
    else if (!strcmp(argv[1], "subs"))
        o->mode = MODE_SUBS;
    else
        return bc_usage_error("msgbench", "unknown mode '%s' (fanout, subs)", argv[1]);
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0) return bc_usage_error("msgbench", "unexpected argument '%s'", a);
        char name[32];
        const char *val = bc_option(a, name, sizeof name);
        if (!strcmp(name, "quiet")) {
            o->quiet = true;
            continue;
        }
        if (!strcmp(name, "help")) {
            usage(stdout);
            return 1;
        }
        if (!val && i + 1 < argc) val = argv[++i];
        if (!val) return bc_usage_error("msgbench", "--%s needs a value", name);
        uint64_t u = 0;
        double d = 0;
        bool num = bc_parse_u64(val, true, &u) && u <= UINT32_MAX;
        bool ok = true;
        if (!strcmp(name, "url")) o->url = val;
        else if (!strcmp(name, "url2")) o->url2 = val;
        else if (!strcmp(name, "subs")) ok = num, o->subs = (uint32_t)u;
        else if (!strcmp(name, "pubs")) ok = num && u > 0, pubs = (int64_t)u;
        else if (!strcmp(name, "depth")) ok = num && u > 0 && u < RING, o->depth = (uint32_t)u;
        else if (!strcmp(name, "count")) ok = num && u > 0, o->count = u;
        else if (!strcmp(name, "payload")) ok = num && u >= PAD_MIN && u <= 8000, o->payload = (uint32_t)u;
        else if (!strcmp(name, "size")) ok = num && u >= PAD_MIN && u <= 8000, o->size = (uint32_t)u;
        else if (!strcmp(name, "clients")) ok = num && u > 0, o->clients = (uint32_t)u;
        else if (!strcmp(name, "per-client")) ok = num && u > 0, o->per_client = (uint32_t)u;
        else if (!strcmp(name, "channels")) ok = num && u > 0, o->channels = (uint32_t)u;
        else if (!strcmp(name, "window")) ok = num && u > 0, o->window = (uint32_t)u;
        else if (!strcmp(name, "per-source")) ok = num, o->per_source = (uint32_t)u;
        else if (!strcmp(name, "concurrency")) ok = num && u > 0, o->concurrency = (uint32_t)u;
        else if (!strcmp(name, "server-pid")) ok = num, o->server_pid = (int)u;
        else if (!strcmp(name, "rate")) ok = bc_parse_double(val, &d), o->rate = d;
        else if (!strcmp(name, "duration")) ok = bc_parse_double(val, &d) && d > 0, o->duration = d;
        else if (!strcmp(name, "warmup")) ok = bc_parse_double(val, &d), o->warmup = d;
        else if (!strcmp(name, "settle")) ok = bc_parse_double(val, &d), o->settle = d;
        else return bc_usage_error("msgbench", "unknown option --%s", name);
        if (!ok) return bc_usage_error("msgbench", "bad value for --%s: '%s'", name, val);
    }
    if (!o->url) return bc_usage_error("msgbench", "--url is required");
    if (!bc_parse_url(o->url, BC_URL_WS, &o->u)) return bc_usage_error("msgbench", "bad URL '%s' (ws://HOST:PORT/PATH)", o->url);
    o->ws = strcmp(o->u.path, "/ws") == 0;
    if (o->url2 && (!bc_parse_url(o->url2, BC_URL_WS, &o->u2) || strcmp(o->u2.path, o->u.path) != 0))
        return bc_usage_error("msgbench", "bad --url2 '%s' (ws://HOST:PORT/PATH, the path of --url)", o->url2);
    if (o->mode == MODE_SUBS && !o->ws) return bc_usage_error("msgbench", "subs needs the /ws endpoint");
    // A raw endpoint gives every message to every connection: a second sender would be
    // one more receiver.
    o->pubs = pubs > 0 ? (uint32_t)pubs : o->ws ? 4 : 1;
    if (!o->ws && o->pubs != 1) return bc_usage_error("msgbench", "a raw endpoint takes one sender");
    if (o->settle < 0) o->settle = o->mode == MODE_SUBS ? 2 : 0.3;
    return 0;
}

int main(int argc, char **argv) {
    static mbench b; // the histograms are large: not on the stack
    int r = parse_args(&b.o, argc, argv);
    if (r) return r == 1 ? 0 : r;
    bc_signals();
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0); // epoll timeouts on time: the open loop's schedule
    b.err.prog = "msgbench";
    b.rng = bc_rng_seed();
    b.sha1 = EVP_MD_fetch(nullptr, "SHA1", nullptr);
    b.lim.max_message = 64u << 20;
    b.lim.expect_masked = false;
    b.request_len = bc_request_head(b.request, sizeof b.request, &b.o.u);
    uint32_t n = b.o.mode == MODE_FANOUT ? b.o.subs + b.o.pubs : b.o.clients;
    uint64_t nofile = bc_raise_nofile();
    if (n + 16 > nofile) {
        fprintf(stderr, "msgbench: %u connections need more descriptors than the limit (%llu)\n", n,
                (unsigned long long)nofile);
        return 2;
    }
    b.ep = epoll_create1(EPOLL_CLOEXEC);
    b.c = (mconn *)calloc(n, sizeof *b.c);
    b.rbuf = (uint8_t *)malloc(RBUF_SIZE);
    b.left = (uint32_t *)calloc(RING, sizeof *b.left);
    b.sent_at = (uint64_t *)calloc(RING, sizeof *b.sent_at);
    if (!b.sha1 || b.ep < 0 || !b.c || !b.rbuf || !b.left || !b.sent_at) {
        fprintf(stderr, "msgbench: out of memory\n");
        return 1;
    }
    for (uint32_t i = 0; i < n; i++) {
        b.c[i].fd = -1;
        b.c[i].idx = i;
        b.c[i].state = ST_DONE;
    }
    r = b.o.mode == MODE_FANOUT ? fanout_main(&b) : subs_main(&b);
    for (uint32_t i = 0; i < n; i++) {
        free(b.c[i].out);
        free(b.c[i].m);
        free(b.c[i].hs);
    }
    free(b.c);
    free(b.rbuf);
    free(b.left);
    free(b.sent_at);
    EVP_MD_free(b.sha1);
    close(b.ep);
    return r;
}
