// wsbench: the project's WebSocket load generator.
//
// usage: wsbench echo|latency|connect|idle|fanout [OPTION]...   (wsbench --help)
//
// One thread, Linux epoll directly (no libuv), so the client costs less than the server
// it measures:
//   - each connection builds every frame it owes into one buffer and sends it with one
//     send(): with --depth 16, sixteen replies read in one recv() become sixteen frames
//     written in one send();
//   - the loop reads once per readiness event into one shared buffer, and the frame
//     parser from src/proto validates server frames in place (it hands payload out as it
//     arrives, so nothing is copied or reassembled);
//   - frames are masked with a fresh 4-byte key each (RFC 6455 §5.3) drawn from a
//     xorshift generator, and masked a vector at a time by frame_mask().
//
// wss:// runs the same scenarios over TLS (OpenSSL on the same non-blocking sockets;
// TLS 1.3, or 1.2 with --tls12). connect then makes full handshakes, no session offered,
// unless --resume: each connection slot offers the session its previous cycle got. A
// plain connection's only extra cost is a test of its SSL pointer per recv and send.
//
// Every server frame is checked: unmasked, known opcode, minimal lengths (the parser),
// the opcode we sent, the exact length and bytes we sent (each payload carries its
// sequence number, so a reordered or duplicated echo is caught), UTF-8 for text. Errors
// are counted by kind; the exit status is 1 when any occurred.
//
// Fanout: one publisher and K subscribers on a broadcast endpoint; each delivery is
// timed from its publish, and per message the slowest subscriber's time is kept too.
//
// Latency mode is open loop: message k is due at t0 + k/R whatever the replies do, and
// its latency is measured from that intended time, so a stalled server is charged for
// every message it delayed (no coordinated omission). A message still unanswered two
// seconds after the run counts as an error rather than silently disappearing.
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "client.h"
#include "hdr.h"
#include "proto/utf8.h"

// --- constants ----------------------------------------------------------------------

enum : uint64_t {
    HANDSHAKE_TIMEOUT_NS = 10 * NS, // connect + upgrade
    DRAIN_TIMEOUT_NS = 2 * NS,      // replies still in flight when the run ends
    CLOSE_TIMEOUT_NS = 2 * NS,      // close handshake at the end, plus CLOSE_PER_CONN_NS each
    CLOSE_PER_CONN_NS = 500 * 1000, // (idle closes tens of thousands at once)
};

enum : uint32_t {
    RBUF_SIZE = 256 * 1024,     // the one read buffer
    CTL_RESERVE = 2 * BC_CTL_FRAME_MAX, // out-buffer room kept for a pong and a close
    SEQ_CHARS = 8,              // each payload starts with its sequence number
    FAN_RING = 1 << 16,         // fanout: messages published and not yet at every subscriber
};

enum scenario : uint8_t { SC_ECHO, SC_LATENCY, SC_CONNECT, SC_IDLE, SC_FANOUT, SC_COUNT };
static const char *const SCENARIO_NAMES[] = {"echo", "latency", "connect", "idle", "fanout"};

enum conn_state : uint8_t {
    CS_IDLE,       // slot unused
    CS_CONNECTING, // TCP connect in progress
    CS_TLS,        // wss: TLS handshake in progress
    CS_HANDSHAKE,  // upgrade request sent, waiting for the 101
    CS_OPEN,       // messages flow
    CS_CLOSING,    // our close frame (raw: our FIN) is out; waiting for the server's answer
    CS_CLOSED_WS,  // close frames exchanged; waiting for the server to end the TCP stream
    CS_DONE,       // socket closed
    CS_COUNT
};

// --- options ------------------------------------------------------------------------

struct bench_opts {
    uint8_t sc;
    const char *url;
    bc_url u;
    bool addr_loopback4; // target is 127.x.x.x: source addresses can rotate
    uint32_t conns;
    uint32_t depth;
    uint32_t size;
    uint8_t opcode; // WS_OP_TEXT or WS_OP_BINARY
    double duration;
    double warmup;
    double rate;      // latency; fanout when > 0 (open loop), else fanout is closed loop
    double hold;
    int server_pid;
    uint32_t concurrency; // connections being opened at once
    int64_t per_source;   // connections per 127.0.0.x source address; 0: the kernel picks; -1: auto
    uint64_t messages;    // echo, fanout closed loop: this many messages, then stop; 0: by time
    bool quiet;
    bool json;
    bool raw;
    bool offer_deflate; // idle: offer permessage-deflate, so the server keeps its per-connection state
    bc_tls_opts tls; // wss://
};

// --- connection ---------------------------------------------------------------------

// idle --offer-deflate: the server may agree to permessage-deflate (it must name it);
// nothing compressed is exchanged, so the parameters need no checking here.
static const char *deflate_agreed(void *, char *value) {
    return strncasecmp(value, "permessage-deflate", 18) == 0 ? nullptr : "an extension we did not offer";
}

struct bconn {
    int fd;
    uint8_t state;
    uint8_t out_armed; // EPOLLOUT is in the interest set
    uint8_t dirty;     // on the flush list
    uint8_t utf8;      // validator state of the text message being received
    uint8_t close_sent;
    uint8_t close_rcvd;
    uint32_t idx;
    uint32_t slot;     // latency: position in the send schedule
    uint32_t rx_off;   // bytes of the current message received so far
    uint64_t sent;     // messages written into the out buffer
    uint64_t target;   // messages that should have been written by now
    uint64_t recvd;    // messages received whole
    uint8_t *out;      // frames not yet taken by the kernel: out[out_off..out_len)
    uint32_t out_off, out_len, out_cap;
    uint64_t *stamps;  // echo: send time of each message in flight (ring of depth D)
    char *hs;          // upgrade response so far; freed once open
    uint32_t hs_len;
    uint64_t t_state;  // when the current state began
    char accept[32];   // the Sec-WebSocket-Accept we expect
    SSL *ssl;          // wss: the TLS session; nullptr for ws://
    SSL_SESSION *sess; // wss --resume: the session this slot offers next
    bc_rx rx;          // server frames; control frames collected whole
};

// --- the run ------------------------------------------------------------------------

struct cpu_snap {
    uint64_t t;          // CLOCK_MONOTONIC ns
    double client_s;     // user + system seconds of this process
    double server_s;     // of --server-pid; < 0 when unknown
};

struct bench {
    bench_opts o;
    int ep;
    bconn *conns;
    uint32_t nconns;
    uint32_t *flush_list; // a connection can be re-added once while the list is flushed
    uint32_t nflush, flush_max;
    uint32_t *slot_conn; // latency: schedule slot -> connection
    uint32_t nslots;
    uint8_t *rbuf;
    uint8_t *tmpl;       // payload template (size bytes); sequence chars overwrite its start
    uint32_t frame_max;  // bytes one message takes in the out buffer
    uint32_t data_cap;   // out-buffer bytes usable for messages
    uint64_t rng;
    EVP_MD *sha1;
    frame_limits lim;
    char request[1400];  // the upgrade request without its key line
    uint32_t request_len;
    uint32_t state_count[CS_COUNT];
    uint64_t opened_total;  // connections started (source-address rotation)
    // phases
    uint64_t t_start, t_measure, t_end;
    bool measuring;   // echo/connect/idle: count what completes now
    bool sending;     // new messages may be scheduled
    bool running;     // connect: restart connections as they finish
    uint64_t sched_k; // latency: next message of the schedule
    double period_ns;
    // results
    hdr_hist hist;      // the measured window
    hdr_hist tick_hist; // the current progress second
    hdr_hist slow_hist; // fanout: per message, the time to its slowest subscriber
    uint32_t *fan_count; // fanout: subscribers that have message j (ring by j)
    uint64_t *fan_sent;  // fanout, closed loop: when message j went out
    uint64_t fan_done;   // fanout: messages every subscriber has (they complete in order)
    uint32_t fan_subs;   // fanout: subscribers open when publishing began
    uint64_t published;  // fanout: messages published in the measured window
    uint64_t quota;      // --messages: echo, per connection; fanout, published in all
    uint32_t quota_left; // --messages: connections (echo) or 1 (fanout) not yet finished
    uint64_t msgs, bytes, tick_msgs;
    bc_errors err;
    cpu_snap cpu0, cpu1;
    long clk_tck;
    // wss
    SSL_CTX *tls_ctx;
    uint64_t tls_handshakes, tls_resumed; // in the measured window (idle: while opening)
    const char *tls_version, *tls_cipher, *tls_group; // of the first handshake
};

// --- CPU and memory of both processes -----------------------------------------------

// utime + stime of a process, from /proc/PID/stat (fields 14 and 15, after the
// parenthesised command name, which may itself contain spaces).
static double server_cpu_s(const bench *b) {
    if (b->o.server_pid <= 0) return -1;
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", b->o.server_pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p) return -1;
    unsigned long long ut = 0, st = 0;
    // After ") ": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2) return -1;
    return (double)(ut + st) / (double)b->clk_tck;
}

// VmRSS of the server in KiB; -1 when unknown.
static long server_rss_kb(const bench *b) {
    if (b->o.server_pid <= 0) return -1;
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", b->o.server_pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = strtol(line + 6, nullptr, 10);
            break;
        }
    fclose(f);
    return kb;
}

static void cpu_take(const bench *b, cpu_snap *s) {
    s->t = bc_mono_ns();
    s->client_s = bc_cpu_self_s();
    s->server_s = server_cpu_s(b);
}

// --- payloads -----------------------------------------------------------------------

// The byte at `off` of message `seq`: its first SEQ_CHARS bytes spell the sequence
// number (low nibble first, as 'a'..'p', so text stays ASCII); the rest is the template.
static inline uint8_t payload_seq_char(uint64_t seq, uint32_t off) { return (uint8_t)('a' + ((seq >> (4 * off)) & 15)); }

static void payload_fill(const bench *b, uint8_t *dst, uint64_t seq) {
    memcpy(dst, b->tmpl, b->o.size);
    for (uint32_t i = 0; i < SEQ_CHARS && i < b->o.size; i++) dst[i] = payload_seq_char(seq, i);
}

static bool payload_check(const bench *b, uint64_t seq, uint32_t off, const uint8_t *data, size_t len) {
    while (len && off < SEQ_CHARS) {
        if (*data != payload_seq_char(seq, off)) return false;
        data++, off++, len--;
    }
    return len == 0 || memcmp(data, b->tmpl + off, len) == 0;
}

// --- connections: state, flushing ---------------------------------------------------

static void conn_set_state(bench *b, bconn *c, uint8_t st, uint64_t now) {
    b->state_count[c->state]--;
    b->state_count[st]++;
    c->state = st;
    c->t_state = now;
}

static void conn_mark(bench *b, bconn *c) {
    if (c->dirty || b->nflush == b->flush_max) return;
    c->dirty = 1;
    b->flush_list[b->nflush++] = c->idx;
}

static void conn_set_events(bench *b, bconn *c, bool want_out) {
    if (c->out_armed == want_out) return;
    epoll_event ev = {};
    ev.events = want_out ? (uint32_t)(EPOLLIN | EPOLLOUT) : (uint32_t)EPOLLIN;
    ev.data.u32 = c->idx;
    epoll_ctl(b->ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->out_armed = want_out;
}

static void conn_close_fd(bench *b, bconn *c, uint64_t now) {
    if (c->ssl) SSL_free(c->ssl);
    c->ssl = nullptr;
    if (c->fd >= 0) close(c->fd); // also leaves the epoll set
    c->fd = -1;
    free(c->hs);
    c->hs = nullptr;
    c->out_off = c->out_len = 0;
    // connect: the flush pass starts the slot's next cycle, unless this one failed
    // before the upgrade (a refused or failing server is not hammered in a tight loop).
    if (b->o.sc == SC_CONNECT && c->state >= CS_OPEN) conn_mark(b, c);
    conn_set_state(b, c, CS_DONE, now);
}

// Writes one message (a masked frame, or raw bytes) at the end of the out buffer.
static void conn_write_message(bench *b, bconn *c, uint64_t now) {
    uint8_t *p = c->out + c->out_len;
    size_t n = 0;
    uint8_t key[4] = {0, 0, 0, 0};
    if (!b->o.raw) n = bc_frame_header(p, &b->rng, b->o.opcode, false, b->o.size, key);
    payload_fill(b, p + n, c->sent);
    if (!b->o.raw) frame_mask(p + n, b->o.size, key, 0);
    if (c->stamps) c->stamps[c->sent % b->o.depth] = now;
    if (b->fan_sent) b->fan_sent[c->sent % FAN_RING] = now;
    if (b->o.sc == SC_FANOUT && b->measuring) b->published++;
    c->sent++;
    c->out_len += (uint32_t)(n + b->o.size);
}

static void conn_write_control(bench *b, bconn *c, uint8_t opcode, const uint8_t *payload, size_t len) {
    c->out_len += (uint32_t)bc_frame(c->out + c->out_len, &b->rng, opcode, false, payload, len);
}

static void conn_fail(bench *b, bconn *c, uint64_t now) { conn_close_fd(b, c, now); }

// Builds the frames this connection owes into its buffer and sends them in one call;
// what the kernel does not take waits for EPOLLOUT.
static void conn_flush(bench *b, bconn *c, uint64_t now) {
    if (c->fd < 0) return;
    for (;;) {
        if (c->out_off) {
            memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
            c->out_len -= c->out_off;
            c->out_off = 0;
        }
        if (c->state == CS_OPEN)
            while (c->sent < c->target && c->out_len + b->frame_max <= b->data_cap &&
                   (!b->fan_count || c->sent - b->fan_done < FAN_RING))
                conn_write_message(b, c, now);
        if (c->out_len == 0) break;
        ssize_t n = bc_send(c->ssl, c->fd, c->out, c->out_len);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) {
                conn_set_events(b, c, true);
                return;
            }
            if (errno == EPROTO && c->ssl)
                bc_error(&b->err, c->idx, BC_ERR_TLS, "send: %s", bc_tls_error(c->ssl));
            else if (c->state < CS_CLOSING)
                bc_error(&b->err, c->idx, BC_ERR_CLOSED, "send: %s", strerror(errno));
            conn_fail(b, c, now);
            return;
        }
        if ((uint32_t)n < c->out_len) {
            c->out_off = (uint32_t)n;
            conn_set_events(b, c, true);
            return;
        }
        c->out_len = 0;
        if (c->state != CS_OPEN || c->sent >= c->target) break;
    }
    conn_set_events(b, c, false);
}

// --- connecting and the upgrade handshake ---------------------------------------------

static int conn_start(bench *b, bconn *c, uint64_t now) {
    const bench_opts *o = &b->o;
    int fd = socket(o->u.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        bc_error(&b->err, c->idx, BC_ERR_CONNECT, "socket: %s", strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (o->per_source > 0 && o->addr_loopback4) {
        // Each source address has its own ~28k ephemeral ports toward one server port.
        uint64_t x = 1 + (b->opened_total / (uint64_t)o->per_source) % 254;
        sockaddr_in src = {};
        src.sin_family = AF_INET;
        src.sin_addr.s_addr = htonl(0x7F000000u | (uint32_t)x);
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (bind(fd, (sockaddr *)&src, sizeof src) != 0) {
            bc_error(&b->err, c->idx, BC_ERR_CONNECT, "bind 127.0.0.%u: %s", (unsigned)x, strerror(errno));
            close(fd);
            return -1;
        }
    }
    b->opened_total++;
    if (connect(fd, (const sockaddr *)&o->u.addr, o->u.addr_len) != 0 && errno != EINPROGRESS) {
        bc_error(&b->err, c->idx, BC_ERR_CONNECT, "connect: %s", strerror(errno));
        close(fd);
        return -1;
    }
    c->fd = fd;
    c->out_armed = 1;
    c->out_off = c->out_len = 0;
    c->sent = c->target = c->recvd = 0;
    c->rx_off = 0;
    c->close_sent = c->close_rcvd = 0;
    c->utf8 = UTF8_ACCEPT;
    bc_rx_init(&c->rx);
    epoll_event ev = {};
    ev.events = EPOLLIN | EPOLLOUT;
    ev.data.u32 = c->idx;
    epoll_ctl(b->ep, EPOLL_CTL_ADD, fd, &ev);
    conn_set_state(b, c, CS_CONNECTING, now);
    return 0;
}

static void scenario_on_open(bench *b, bconn *c, uint64_t now, uint64_t started);

static void conn_upgrade(bench *b, bconn *c, uint64_t now);
static void conn_tls_step(bench *b, bconn *c, uint64_t now);

static void conn_connected(bench *b, bconn *c, uint64_t now) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) {
        bc_error(&b->err, c->idx, BC_ERR_CONNECT, "connect: %s", strerror(err));
        conn_fail(b, c, now);
        return;
    }
    if (b->o.raw) {
        uint64_t started = c->t_state;
        conn_set_state(b, c, CS_OPEN, now);
        scenario_on_open(b, c, now, started);
        conn_flush(b, c, now);
        return;
    }
    if (b->tls_ctx) {
        c->ssl = bc_tls_new(b->tls_ctx, c->fd, &b->o.u, b->o.tls.resume ? &c->sess : nullptr);
        if (!c->ssl) {
            bc_error(&b->err, c->idx, BC_ERR_TLS, "cannot create a TLS session");
            conn_fail(b, c, now);
            return;
        }
        conn_set_state(b, c, CS_TLS, c->t_state); // keep the connect start time
        conn_tls_step(b, c, now);
        return;
    }
    conn_upgrade(b, c, now);
}

// Sends the upgrade request.
static void conn_upgrade(bench *b, bconn *c, uint64_t now) {
    // A fresh nonce per connection, and the answer it implies.
    char key[32];
    bc_nonce(&b->rng, b->sha1, key, c->accept);
    int m = snprintf((char *)c->out, c->out_cap, "%.*sSec-WebSocket-Key: %s\r\n\r\n", (int)b->request_len, b->request, key);
    c->out_len = (uint32_t)m;
    c->hs = (char *)malloc(BC_HS_MAX + 1);
    c->hs_len = 0;
    conn_set_state(b, c, CS_HANDSHAKE, c->t_state); // keep the connect start time
    conn_flush(b, c, now);
}

// wss: the TLS handshake goes on as the socket allows; once done, the upgrade request.
static void conn_tls_step(bench *b, bconn *c, uint64_t now) {
    bool want_write = false;
    int r = bc_tls_connect(c->ssl, &want_write);
    if (r == 0) {
        conn_set_events(b, c, want_write);
        return;
    }
    if (r < 0) {
        bc_error(&b->err, c->idx, BC_ERR_TLS, "handshake: %s", bc_tls_error(c->ssl));
        conn_fail(b, c, now);
        return;
    }
    if (!b->tls_version) bc_tls_describe(c->ssl, &b->tls_version, &b->tls_cipher, &b->tls_group);
    if (b->measuring) {
        b->tls_handshakes++;
        b->tls_resumed += SSL_session_reused(c->ssl) == 1;
    }
    conn_upgrade(b, c, now);
}

static void conn_on_ws_bytes(bench *b, bconn *c, uint8_t *data, size_t len, uint64_t now);

// Reads the upgrade answer. Returns whether bytes came (TLS may hold more).
static bool conn_read_handshake(bench *b, bconn *c, uint64_t now) {
    ssize_t n = bc_recv(c->ssl, c->fd, c->hs + c->hs_len, BC_HS_MAX - c->hs_len);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return false;
        if (n < 0 && errno == EPROTO && c->ssl)
            bc_error(&b->err, c->idx, BC_ERR_TLS, "during the upgrade: %s", bc_tls_error(c->ssl));
        else
            bc_error(&b->err, c->idx, BC_ERR_HANDSHAKE, "connection ended during the handshake%s%s", n ? ": " : "",
                     n ? strerror(errno) : "");
        conn_fail(b, c, now);
        return false;
    }
    c->hs_len += (uint32_t)n;
    long head_len = bc_response_head(c->hs, c->hs_len);
    if (head_len <= 0) {
        if (head_len < 0) {
            bc_error(&b->err, c->idx, BC_ERR_HANDSHAKE, "no end of the response head in %u bytes", c->hs_len);
            conn_fail(b, c, now);
        }
        return head_len == 0;
    }
    char status[64];
    const char *why = bc_handshake_check(c->hs, c->accept, b->o.offer_deflate ? deflate_agreed : nullptr, nullptr,
                                         status, sizeof status);
    if (why) {
        bc_error(&b->err, c->idx, BC_ERR_HANDSHAKE, "%s (%s)", why, status);
        conn_fail(b, c, now);
        return false;
    }
    char *hs = c->hs;
    size_t rest = c->hs_len - (size_t)head_len;
    c->hs = nullptr;
    uint64_t started = c->t_state; // when connect() was called
    conn_set_state(b, c, CS_OPEN, now);
    scenario_on_open(b, c, now, started);
    // Frames may arrive in the same read as the response head.
    if (rest && c->fd >= 0) conn_on_ws_bytes(b, c, (uint8_t *)hs + head_len, rest, now);
    free(hs);
    conn_mark(b, c);
    return true;
}

// --- receiving ----------------------------------------------------------------------

static void conn_send_close(bench *b, bconn *c, uint16_t code, uint64_t now) {
    if (c->close_sent || c->fd < 0) return;
    c->close_sent = 1;
    if (b->o.raw) {
        shutdown(c->fd, SHUT_WR);
    } else {
        uint8_t body[2] = {(uint8_t)(code >> 8), (uint8_t)code};
        conn_write_control(b, c, WS_OP_CLOSE, body, 2);
    }
    if (c->state < CS_CLOSING) conn_set_state(b, c, CS_CLOSING, now);
    conn_mark(b, c);
}

// Fanout: subscriber c has message j. The slowest subscriber's time is known when the
// last one has it; every subscriber gets messages in order, so messages complete in order.
static void fanout_delivered(bench *b, uint64_t j, uint64_t t_sent, uint64_t now) {
    uint32_t *n = &b->fan_count[j % FAN_RING];
    if (++*n < b->fan_subs) return;
    *n = 0;
    b->fan_done++;
    if (b->measuring) hdr_record(&b->slow_hist, now > t_sent ? now - t_sent : 0);
    bconn *pub = &b->conns[0];
    if (b->o.rate <= 0 && b->sending && pub->state == CS_OPEN) {
        pub->target = b->fan_done + b->o.depth; // closed loop: D messages in flight
        if (b->quota && pub->target > b->quota) pub->target = b->quota;
        conn_mark(b, pub);
    }
    if (b->quota && b->fan_done == b->quota) b->quota_left = 0;
}

// Which sequence numbers connection c may receive: what it sent, or (fanout) what the
// publisher sent.
static uint64_t conn_expect_limit(const bench *b, const bconn *c) {
    return b->o.sc == SC_FANOUT ? b->conns[0].sent : c->sent;
}

static void msg_done(bench *b, bconn *c, uint64_t now) {
    uint64_t j = c->recvd++;
    uint64_t t_sent;
    bool count;
    if (b->o.sc == SC_FANOUT) {
        if (c->idx == 0) return; // the publisher's own copy: validated, not a delivery
        t_sent = b->o.rate > 0 ? b->t_start + (uint64_t)((double)j * b->period_ns) : b->fan_sent[j % FAN_RING];
        count = b->measuring;
        fanout_delivered(b, j, t_sent, now);
    } else if (b->o.sc == SC_LATENCY) {
        // Measured from when the schedule said to send it, not from when it went out.
        uint64_t k = j * b->nslots + c->slot;
        t_sent = b->t_start + (uint64_t)((double)k * b->period_ns);
        count = t_sent >= b->t_measure && t_sent < b->t_end;
    } else {
        t_sent = c->stamps[j % b->o.depth];
        count = b->measuring;
    }
    uint64_t lat = now > t_sent ? now - t_sent : 0;
    if (count) {
        hdr_record(&b->hist, lat);
        b->msgs++;
        b->bytes += b->o.size;
    }
    hdr_record(&b->tick_hist, lat);
    b->tick_msgs++;
    if (b->o.sc == SC_ECHO && b->quota && c->recvd == b->quota && b->quota_left) b->quota_left--;
    if (b->o.sc == SC_ECHO && b->sending && c->state == CS_OPEN) {
        c->target = c->recvd + b->o.depth;
        if (b->quota && c->target > b->quota) c->target = b->quota;
        conn_mark(b, c);
    }
}

static void conn_on_control(bench *b, bconn *c, uint8_t opcode, uint64_t now) {
    if (opcode == WS_OP_PING) {
        // Answer unless we already said goodbye; keep room for our close frame.
        if (!c->close_sent && c->out_len + BC_CTL_FRAME_MAX + BC_CTL_FRAME_MAX <= c->out_cap) {
            conn_write_control(b, c, WS_OP_PONG, c->rx.ctl, c->rx.ctl_len);
            conn_mark(b, c);
        }
    } else if (opcode == WS_OP_CLOSE) {
        uint16_t bad;
        uint16_t code = bc_close_check(&b->err, c->idx, &c->rx, c->close_sent, &bad);
        c->close_rcvd = 1;
        // The server ended the session on its own: that is an error in every scenario.
        if (!c->close_sent) conn_send_close(b, c, code == WS_CLOSE_NO_STATUS || bad ? (uint16_t)WS_CLOSE_NORMAL : code, now);
        conn_set_state(b, c, CS_CLOSED_WS, now);
    }
}

// Validates and consumes server bytes after the upgrade. The parser unmasks nothing
// (server frames are unmasked) and hands payload out in place, chunk by chunk.
static void conn_on_ws_bytes(bench *b, bconn *c, uint8_t *data, size_t len, uint64_t now) {
    frame_event ev;
    while (bc_rx_next(&c->rx, &b->lim, &data, &len, &ev)) {
        switch (ev.type) {
        case FRAME_ERROR:
            bc_error(&b->err, c->idx, BC_ERR_PROTOCOL, "%s (close %u)", ev.reason, ev.close_code);
            conn_fail(b, c, now);
            return;
        case FRAME_HEADER: // of a data frame
            if (ev.opcode != WS_OP_CONT) {
                if (ev.opcode != b->o.opcode) {
                    bc_error(&b->err, c->idx, BC_ERR_PAYLOAD, "opcode %u, sent %u", ev.opcode, b->o.opcode);
                    conn_fail(b, c, now);
                    return;
                }
                if (c->recvd >= conn_expect_limit(b, c)) {
                    bc_error(&b->err, c->idx, BC_ERR_PAYLOAD, "a message that answers nothing we sent");
                    conn_fail(b, c, now);
                    return;
                }
                c->rx_off = 0;
                c->utf8 = UTF8_ACCEPT;
            }
            if (c->rx_off + ev.frame_len > b->o.size) {
                bc_error(&b->err, c->idx, BC_ERR_PAYLOAD, "reply of %llu+ bytes to a %u-byte message",
                         (unsigned long long)(c->rx_off + ev.frame_len), b->o.size);
                conn_fail(b, c, now);
                return;
            }
            break;
        case FRAME_PAYLOAD: // of a data frame
            if (!payload_check(b, c->recvd, c->rx_off, ev.data, ev.len)) {
                bc_error(&b->err, c->idx, BC_ERR_PAYLOAD, "message %llu differs from what was sent",
                         (unsigned long long)c->recvd);
                conn_fail(b, c, now);
                return;
            }
            if (b->o.opcode == WS_OP_TEXT) {
                c->utf8 = utf8_validate(c->utf8, ev.data, ev.len);
                if (c->utf8 == UTF8_REJECT) {
                    bc_error(&b->err, c->idx, BC_ERR_UTF8, "message %llu is not UTF-8", (unsigned long long)c->recvd);
                    conn_fail(b, c, now);
                    return;
                }
            }
            c->rx_off += (uint32_t)ev.len;
            break;
        case FRAME_END:
            if (ws_opcode_is_control(ev.opcode)) {
                conn_on_control(b, c, ev.opcode, now);
                if (c->fd < 0) return;
                break;
            }
            if (!ev.fin) break;
            if (c->rx_off != b->o.size) {
                bc_error(&b->err, c->idx, BC_ERR_PAYLOAD, "reply of %u bytes to a %u-byte message", c->rx_off,
                         b->o.size);
                conn_fail(b, c, now);
                return;
            }
            if (b->o.opcode == WS_OP_TEXT && !utf8_complete(c->utf8)) {
                bc_error(&b->err, c->idx, BC_ERR_UTF8, "message %llu ends inside a UTF-8 sequence",
                         (unsigned long long)c->recvd);
                conn_fail(b, c, now);
                return;
            }
            msg_done(b, c, now);
            break;
        }
    }
}

// Raw TCP: the echo is a byte stream; a message is complete when its size is back.
static void conn_on_raw_bytes(bench *b, bconn *c, const uint8_t *data, size_t len, uint64_t now) {
    while (len) {
        if (c->recvd >= c->sent) {
            bc_error(&b->err, c->idx, BC_ERR_PAYLOAD, "bytes that answer nothing we sent");
            conn_fail(b, c, now);
            return;
        }
        size_t n = b->o.size - c->rx_off;
        if (n > len) n = len;
        if (!payload_check(b, c->recvd, c->rx_off, data, n)) {
            bc_error(&b->err, c->idx, BC_ERR_PAYLOAD, "message %llu differs from what was sent",
                     (unsigned long long)c->recvd);
            conn_fail(b, c, now);
            return;
        }
        data += n;
        len -= n;
        c->rx_off += (uint32_t)n;
        if (c->rx_off == b->o.size) {
            c->rx_off = 0;
            msg_done(b, c, now);
        }
    }
}

// One read. Returns whether bytes came (TLS may hold more).
static bool conn_read(bench *b, bconn *c) {
    if (c->state == CS_HANDSHAKE) return conn_read_handshake(b, c, bc_mono_ns());
    ssize_t n = bc_recv(c->ssl, c->fd, b->rbuf, RBUF_SIZE);
    uint64_t now = bc_mono_ns(); // the reply is here now; everything after is our own cost
    if (n > 0) {
        if (b->o.raw)
            conn_on_raw_bytes(b, c, b->rbuf, (size_t)n, now);
        else if (c->state == CS_OPEN || c->state == CS_CLOSING)
            conn_on_ws_bytes(b, c, b->rbuf, (size_t)n, now);
        return true;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return false;
    // The server ended the TCP stream (wss: its close_notify): expected once the close
    // handshake is done (raw: once we sent our FIN); otherwise the session was cut.
    bool expected = c->state == CS_CLOSED_WS || (b->o.raw && c->state == CS_CLOSING);
    if (n < 0 && errno == EPROTO && c->ssl)
        bc_error(&b->err, c->idx, BC_ERR_TLS, "recv: %s", bc_tls_error(c->ssl));
    else if (!expected) {
        if (n == 0)
            bc_error(&b->err, c->idx, BC_ERR_CLOSED, "server ended the connection without a close frame");
        else
            bc_error(&b->err, c->idx, BC_ERR_CLOSED, "recv: %s", strerror(errno));
    }
    conn_close_fd(b, c, now);
    return false;
}

// Reads what the socket has. Over TLS one read takes one record's plaintext, and
// OpenSSL may already hold the next records (it reads ahead): no readiness event will
// come for those, so they are read now.
static void conn_on_readable(bench *b, bconn *c) {
    while (conn_read(b, c) && bc_tls_pending(c->ssl)) {
    }
}

// --- the loop -------------------------------------------------------------------------

static void bench_flush(bench *b);

// Waits up to timeout_ns for events, handles them, then flushes every connection that
// has something to send: replies read in this pass go out together.
static void bench_poll(bench *b, uint64_t timeout_ns) {
    enum { MAX_EVENTS = 512 };
    if (b->nflush) bench_flush(b); // never sleep on frames we owe
    epoll_event evs[MAX_EVENTS];
    timespec ts = {(time_t)(timeout_ns / NS), (long)(timeout_ns % NS)};
    int n = epoll_pwait2(b->ep, evs, MAX_EVENTS, &ts, nullptr);
    for (int i = 0; i < n; i++) {
        bconn *c = &b->conns[evs[i].data.u32];
        if (c->fd < 0) continue;
        uint32_t e = evs[i].events;
        if (c->state == CS_CONNECTING) {
            if (e & (EPOLLOUT | EPOLLERR | EPOLLHUP)) conn_connected(b, c, bc_mono_ns());
            continue;
        }
        if (c->state == CS_TLS) {
            conn_tls_step(b, c, bc_mono_ns());
            continue;
        }
        if (e & (EPOLLIN | EPOLLERR | EPOLLHUP)) conn_on_readable(b, c);
        if (c->fd >= 0 && (e & EPOLLOUT)) conn_mark(b, c);
    }
    bench_flush(b);
}

// Flushes every connection that has something to send.
static void bench_flush(bench *b) {
    uint64_t now = bc_mono_ns();
    for (uint32_t i = 0; i < b->nflush; i++) {
        bconn *c = &b->conns[b->flush_list[i]];
        c->dirty = 0;
        if (c->fd >= 0) {
            conn_flush(b, c, now);
        } else if (b->o.sc == SC_CONNECT && b->running && c->state == CS_DONE) {
            conn_start(b, c, now); // the next cycle in this slot
        }
    }
    b->nflush = 0;
}

// Fails connections whose connect or handshake has taken too long.
static void bench_sweep(bench *b, uint64_t now) {
    for (uint32_t i = 0; i < b->nconns; i++) {
        bconn *c = &b->conns[i];
        if ((c->state == CS_CONNECTING || c->state == CS_TLS || c->state == CS_HANDSHAKE) &&
            now - c->t_state > HANDSHAKE_TIMEOUT_NS) {
            bc_error(&b->err, c->idx, BC_ERR_TIMEOUT, "no upgrade answer within %llu s",
                     (unsigned long long)(HANDSHAKE_TIMEOUT_NS / NS));
            conn_fail(b, c, now);
        }
    }
}

static uint32_t pending_count(const bench *b) {
    return b->state_count[CS_CONNECTING] + b->state_count[CS_TLS] + b->state_count[CS_HANDSHAKE];
}

static void fmt_us(char *out, size_t n, uint64_t ns) {
    double us = (double)ns / 1000.0;
    if (us >= 10000)
        snprintf(out, n, "%.1fms", us / 1000);
    else
        snprintf(out, n, "%.1fus", us);
}

static void progress_print(bench *b, uint64_t now, const char *phase) {
    if (b->o.quiet) {
        hdr_reset(&b->tick_hist);
        b->tick_msgs = 0;
        return;
    }
    char p50[16], p99[16], mx[16];
    fmt_us(p50, sizeof p50, hdr_percentile(&b->tick_hist, 0.5));
    fmt_us(p99, sizeof p99, hdr_percentile(&b->tick_hist, 0.99));
    fmt_us(mx, sizeof mx, b->tick_hist.max);
    const char *unit = b->o.sc == SC_CONNECT ? "handshakes/s" : "msg/s";
    char mb[32] = "";
    if (b->o.sc != SC_CONNECT) snprintf(mb, sizeof mb, "  %7.2f MB/s", (double)b->tick_msgs * b->o.size / 1e6);
    fprintf(stderr, "wsbench: [%5.1fs] %-6s %9llu %s%s  p50 %s  p99 %s  max %s  open %u  errors %llu\n",
            (double)(now - b->t_start) / 1e9, phase, (unsigned long long)b->tick_msgs, unit, mb, p50, p99,
            b->tick_msgs ? mx : "-", b->state_count[CS_OPEN], (unsigned long long)bc_errors_total(&b->err));
    hdr_reset(&b->tick_hist);
    b->tick_msgs = 0;
}

// Opens `n` connections (at most o.concurrency at a time) and waits until each is open
// or has failed. Returns how many are open.
static uint32_t bench_open(bench *b, uint32_t n, bool show) {
    uint64_t t0 = bc_mono_ns(), next_tick = t0 + NS;
    uint32_t started = 0;
    while (!bc_interrupted) {
        uint64_t now = bc_mono_ns();
        while (started < n && pending_count(b) < b->o.concurrency) {
            conn_start(b, &b->conns[started], now);
            started++;
        }
        if (started == n && pending_count(b) == 0) break;
        bench_poll(b, 100 * 1000 * 1000);
        now = bc_mono_ns();
        if (now >= next_tick) {
            bench_sweep(b, now);
            if (show && !b->o.quiet)
                fprintf(stderr, "wsbench: [%5.1fs] opening %u of %u open, errors %llu\n", (double)(now - t0) / 1e9,
                        b->state_count[CS_OPEN], n, (unsigned long long)bc_errors_total(&b->err));
            next_tick += NS;
        }
    }
    return b->state_count[CS_OPEN];
}

// Lets replies still in flight arrive (the latency schedule may also still owe sends);
// what has not arrived by the deadline is an error.
static void bench_drain(bench *b) {
    uint64_t deadline = bc_mono_ns() + DRAIN_TIMEOUT_NS;
    for (;;) {
        uint64_t owed = 0;
        for (uint32_t i = 0; i < b->nconns; i++) {
            const bconn *c = &b->conns[i];
            if (c->state != CS_OPEN) continue;
            if (b->o.sc != SC_FANOUT)
                owed += c->target - c->recvd;
            else if (i == 0)
                owed += c->target - c->sent; // the publisher's own copies are optional
            else
                owed += b->conns[0].target - c->recvd;
        }
        uint64_t now = bc_mono_ns();
        if (owed == 0) return;
        if (now >= deadline || bc_interrupted) {
            b->err.count[BC_ERR_TIMEOUT] += owed;
            fprintf(stderr, "wsbench: %llu replies did not arrive within %llu s after the run\n", (unsigned long long)owed,
                    (unsigned long long)(DRAIN_TIMEOUT_NS / NS));
            return;
        }
        bench_poll(b, deadline - now);
    }
}

// Ends every session properly: our close frame (raw: our FIN), the server's answer,
// then the server ends the TCP stream (RFC 6455 §7.1.1: the server closes first, so
// TIME_WAIT stays on its side). Connections that do not finish in time are cut.
static void bench_close_all(bench *b) {
    uint64_t now = bc_mono_ns();
    for (uint32_t i = 0; i < b->nconns; i++) {
        bconn *c = &b->conns[i];
        if (c->fd < 0) continue;
        if (c->state == CS_OPEN)
            conn_send_close(b, c, WS_CLOSE_NORMAL, now);
        else if (c->state == CS_CONNECTING || c->state == CS_TLS || c->state == CS_HANDSHAKE)
            conn_close_fd(b, c, now);
    }
    uint64_t limit = CLOSE_TIMEOUT_NS + (uint64_t)b->nconns * CLOSE_PER_CONN_NS;
    uint64_t deadline = now + limit;
    uint32_t unanswered = 0;
    for (;;) {
        bench_poll(b, 0);
        now = bc_mono_ns();
        uint32_t waiting = b->state_count[CS_CLOSING] + b->state_count[CS_CLOSED_WS];
        if (waiting == 0) break;
        if (now >= deadline || bc_interrupted) {
            for (uint32_t i = 0; i < b->nconns; i++) {
                bconn *c = &b->conns[i];
                if (c->fd < 0) continue;
                if (c->state == CS_CLOSING) unanswered++; // a server must answer a close
                conn_close_fd(b, c, now);
            }
            break;
        }
        bench_poll(b, deadline - now < 50 * 1000 * 1000 ? deadline - now : 50 * 1000 * 1000);
    }
    if (unanswered) {
        b->err.count[BC_ERR_TIMEOUT] += unanswered;
        fprintf(stderr, "wsbench: %u connections got no answer to their close within %.1f s\n", unanswered,
                (double)limit / 1e9);
    }
}

// --- scenarios --------------------------------------------------------------------------

static void scenario_on_open(bench *b, bconn *c, uint64_t now, uint64_t started) {
    free(c->hs);
    c->hs = nullptr;
    if (b->o.sc == SC_CONNECT) {
        // One cycle: connect, upgrade, close. The histogram holds connect-to-101 time.
        if (b->measuring) {
            hdr_record(&b->hist, now - started);
            b->msgs++;
        }
        hdr_record(&b->tick_hist, now - started);
        b->tick_msgs++;
        conn_send_close(b, c, WS_CLOSE_NORMAL, now);
    } else if (b->o.sc == SC_IDLE && b->measuring) {
        hdr_record(&b->hist, now - started);
        b->msgs++;
    }
}

// Runs the timed part shared by echo, latency and connect: warmup, then the measured
// window, progress once a second.
static void bench_timed(bench *b) {
    const bench_opts *o = &b->o;
    uint64_t now = bc_mono_ns();
    b->t_start = now;
    b->t_measure = now + (uint64_t)(o->warmup * 1e9);
    b->t_end = b->t_measure + (uint64_t)(o->duration * 1e9);
    bool show = o->warmup + o->duration > 2.0;
    uint64_t next_tick = now + NS;
    b->sending = true;
    b->running = true;
    bool scheduled = o->sc == SC_LATENCY || (o->sc == SC_FANOUT && o->rate > 0);
    // --messages: a fixed amount of work (the callgrind difference in bench/run-instr.sh
    // needs two runs that differ only in the number of messages); the run ends when it is
    // done, and the duration is then only a time limit.
    b->quota = 0;
    b->quota_left = 0;
    if (o->messages && o->sc == SC_ECHO) {
        uint32_t open = b->state_count[CS_OPEN];
        b->quota = open ? (o->messages + open - 1) / open : 0;
        b->quota_left = open;
    } else if (o->messages && o->sc == SC_FANOUT && !scheduled) {
        b->quota = o->messages;
        b->quota_left = 1;
    }
    if (o->sc == SC_ECHO) {
        for (uint32_t i = 0; i < b->nconns; i++) {
            bconn *c = &b->conns[i];
            if (c->state != CS_OPEN) continue;
            c->target = b->quota && b->quota < o->depth ? b->quota : o->depth;
            conn_mark(b, c);
        }
    } else if (o->sc == SC_FANOUT && !scheduled) {
        b->conns[0].target = b->quota && b->quota < o->depth ? b->quota : o->depth;
        conn_mark(b, &b->conns[0]);
    } else if (o->sc == SC_CONNECT) {
        for (uint32_t i = 0; i < b->nconns; i++) conn_start(b, &b->conns[i], now);
    }
    if (b->t_measure == now) {
        b->measuring = true;
        cpu_take(b, &b->cpu0);
    }
    uint64_t next_send = UINT64_MAX;
    for (;;) {
        now = bc_mono_ns();
        if (scheduled) {
            // Everything the clock says is due goes out now, late or not; its latency
            // still counts from when it was due.
            next_send = UINT64_MAX;
            while (b->sending) {
                uint64_t t = b->t_start + (uint64_t)((double)b->sched_k * b->period_ns);
                if (t >= b->t_end) {
                    b->sending = false;
                    break;
                }
                if (t > now) {
                    next_send = t;
                    break;
                }
                bconn *c = &b->conns[b->slot_conn[b->sched_k % b->nslots]];
                if (c->state == CS_OPEN) {
                    c->target++;
                    conn_mark(b, c);
                }
                b->sched_k++;
            }
        }
        if (!b->measuring && now >= b->t_measure) {
            b->measuring = true;
            hdr_reset(&b->hist);
            b->msgs = b->bytes = b->published = 0;
            hdr_reset(&b->slow_hist);
            cpu_take(b, &b->cpu0);
        }
        if (now >= b->t_end || bc_interrupted) break;
        if (b->quota && b->quota_left == 0) break;
        if (now >= next_tick) {
            if (o->sc == SC_CONNECT) bench_sweep(b, now);
            if (show) progress_print(b, now, b->measuring ? "run" : "warmup");
            next_tick += NS;
            continue;
        }
        uint64_t wake = next_tick;
        if (!b->measuring && b->t_measure < wake) wake = b->t_measure;
        if (b->t_end < wake) wake = b->t_end;
        if (next_send < wake) wake = next_send;
        if (b->nflush) {
            bench_flush(b); // what the schedule just released goes out before we sleep
            now = bc_mono_ns();
        }
        bench_poll(b, wake > now ? wake - now : 0);
    }
    cpu_take(b, &b->cpu1);
    if (!b->measuring) b->cpu0 = b->cpu1;
    if (bc_interrupted) {
        // Ctrl-C ends the run early but still drains and closes properly (bounded);
        // a second one cuts that short too.
        b->t_end = b->cpu1.t; // latency: count only what was scheduled
        bc_interrupted = 0;
        if (!b->o.quiet) fprintf(stderr, "wsbench: interrupted; finishing (again to cut it short)\n");
    }
    b->measuring = false;
    b->sending = false;
    b->running = false;
    if (o->sc == SC_ECHO || (o->sc == SC_FANOUT && !scheduled))
        for (uint32_t i = 0; i < b->nconns; i++) b->conns[i].target = b->conns[i].sent;
    if (o->sc != SC_CONNECT) bench_drain(b);
}

static int run_echo_or_latency(bench *b) {
    uint32_t open = bench_open(b, b->nconns, b->nconns > 1000);
    if (open == 0) {
        fprintf(stderr, "wsbench: no connection could be opened\n");
        cpu_take(b, &b->cpu0);
        b->cpu1 = b->cpu0;
        return 0; // still report: errors=N on the machine-readable line
    }
    if (open < b->nconns) fprintf(stderr, "wsbench: only %u of %u connections opened\n", open, b->nconns);
    if (b->o.sc == SC_FANOUT && (b->conns[0].state != CS_OPEN || open < 2)) {
        fprintf(stderr, "wsbench: fanout needs the publisher and at least one subscriber open\n");
        cpu_take(b, &b->cpu0);
        b->cpu1 = b->cpu0;
        bench_close_all(b);
        return 0;
    }
    b->nslots = 0;
    for (uint32_t i = 0; i < b->nconns; i++)
        if (b->conns[i].state == CS_OPEN && (b->o.sc != SC_FANOUT || i == 0)) {
            b->conns[i].slot = b->nslots;
            b->slot_conn[b->nslots++] = i;
        }
    b->fan_subs = open - 1; // fanout: all but the publisher
    b->period_ns = 1e9 / b->o.rate;
    bench_timed(b);
    bench_close_all(b);
    return 0;
}

static int run_connect(bench *b) {
    bench_timed(b);
    // Let cycles in progress finish so the server is left clean; unfinished ones are
    // cut by bench_close_all's deadline.
    uint64_t deadline = bc_mono_ns() + CLOSE_TIMEOUT_NS;
    while (b->state_count[CS_DONE] + b->state_count[CS_IDLE] < b->nconns && bc_mono_ns() < deadline && !bc_interrupted) {
        bench_poll(b, 50 * 1000 * 1000);
        bench_sweep(b, bc_mono_ns());
    }
    bench_close_all(b);
    return 0;
}

struct idle_result {
    long rss_before, rss_open, rss_hold, rss_closed; // KiB
    uint32_t open;
    double open_s;
};

static int run_idle(bench *b, idle_result *r) {
    r->rss_before = server_rss_kb(b);
    b->measuring = true; // the histogram holds connect-to-101 times of the opening phase
    uint64_t t0 = bc_mono_ns();
    b->t_start = t0;
    r->open = bench_open(b, b->o.conns, true);
    r->open_s = (double)(bc_mono_ns() - t0) / 1e9;
    b->measuring = false;
    r->rss_open = server_rss_kb(b);
    if (!b->o.quiet)
        fprintf(stderr, "wsbench: %u connections open in %.2f s; holding %.0f s\n", r->open, r->open_s, b->o.hold);
    // Hold: stay responsive (pings), notice connections the server drops.
    cpu_take(b, &b->cpu0);
    uint64_t end = bc_mono_ns() + (uint64_t)(b->o.hold * 1e9), next_tick = bc_mono_ns() + NS;
    for (;;) {
        uint64_t now = bc_mono_ns();
        if (now >= end || bc_interrupted) break;
        if (now >= next_tick) {
            if (b->o.hold > 2 && !b->o.quiet)
                fprintf(stderr, "wsbench: [%5.1fs] holding %u open, server VmRSS %ld KiB, errors %llu\n",
                        (double)(now - t0) / 1e9, b->state_count[CS_OPEN], server_rss_kb(b),
                        (unsigned long long)bc_errors_total(&b->err));
            next_tick += NS;
        }
        bench_poll(b, (end < next_tick ? end : next_tick) - now);
    }
    cpu_take(b, &b->cpu1);
    bc_interrupted = 0; // Ctrl-C ends the hold; the close below still runs (bounded)
    r->rss_hold = server_rss_kb(b);
    if (b->state_count[CS_OPEN] < r->open)
        fprintf(stderr, "wsbench: %u connections were lost while idle\n", r->open - b->state_count[CS_OPEN]);
    bench_close_all(b);
    // Give the server a moment to free what the connections held.
    struct timespec pause = {0, 500 * 1000 * 1000};
    nanosleep(&pause, nullptr);
    r->rss_closed = server_rss_kb(b);
    return 0;
}

// --- results ----------------------------------------------------------------------------

struct result_field {
    const char *key;
    char val[96];
    bool is_str;
};

struct result {
    result_field f[56];
    int n;
};

static void res_str(result *r, const char *key, const char *v) {
    result_field *f = &r->f[r->n++];
    f->key = key;
    f->is_str = true;
    snprintf(f->val, sizeof f->val, "%s", v);
}

static void res_num(result *r, const char *key, double v, int prec) {
    result_field *f = &r->f[r->n++];
    f->key = key;
    f->is_str = false;
    snprintf(f->val, sizeof f->val, "%.*f", prec, v);
}

static void res_print(const result *r, bool json) {
    if (json) {
        printf("{");
        for (int i = 0; i < r->n; i++)
            printf(r->f[i].is_str ? "%s\"%s\": \"%s\"" : "%s\"%s\": %s", i ? ", " : "", r->f[i].key, r->f[i].val);
        printf("}\n");
    } else {
        for (int i = 0; i < r->n; i++) printf("%s%s=%s", i ? " " : "", r->f[i].key, r->f[i].val);
        printf("\n");
    }
}

static void bench_report(bench *b, const idle_result *idle) {
    const bench_opts *o = &b->o;
    FILE *h = o->json ? stderr : stdout; // the human summary; stdout stays machine-readable with --json
    bool is_idle = o->sc == SC_IDLE;
    double window = (double)(b->cpu1.t - b->cpu0.t) / 1e9;
    double secs = is_idle ? idle->open_s : window;
    double rate = secs > 0 ? (double)b->msgs / secs : 0;
    double mbps = secs > 0 ? (double)b->bytes / secs / 1e6 : 0;
    double client_pct = window > 0 ? 100.0 * (b->cpu1.client_s - b->cpu0.client_s) / window : 0;
    bool have_server = b->cpu0.server_s >= 0 && b->cpu1.server_s >= 0;
    double server_pct = have_server && window > 0 ? 100.0 * (b->cpu1.server_s - b->cpu0.server_s) / window : -1;
    const hdr_hist *hh = &b->hist;
    double p50 = (double)hdr_percentile(hh, 0.5) / 1e3, p90 = (double)hdr_percentile(hh, 0.9) / 1e3,
           p99 = (double)hdr_percentile(hh, 0.99) / 1e3, p999 = (double)hdr_percentile(hh, 0.999) / 1e3,
           mx = (double)hh->max / 1e3, mean = hdr_mean(hh) / 1e3;
    uint64_t errs = bc_errors_total(&b->err);
    const char *kind = o->opcode == WS_OP_TEXT ? "text" : "binary";

    if (!o->quiet) {
        fprintf(h, "\nwsbench %s  %s%s  ", SCENARIO_NAMES[o->sc], o->url, o->raw ? " (raw TCP)" : "");
        if (o->sc == SC_ECHO)
            fprintf(h, "%u conns x depth %u x %u B %s\n", o->conns, o->depth, o->size, o->raw ? "" : kind);
        else if (o->sc == SC_LATENCY)
            fprintf(h, "%u conns, %.0f msg/s scheduled, %u B %s\n", o->conns, o->rate, o->size, o->raw ? "" : kind);
        else if (o->sc == SC_FANOUT && o->rate > 0)
            fprintf(h, "1 publisher at %.0f msg/s, %u subscribers, %u B %s\n", o->rate, o->conns, o->size, kind);
        else if (o->sc == SC_FANOUT)
            fprintf(h, "1 publisher, depth %u, %u subscribers, %u B %s\n", o->depth, o->conns, o->size, kind);
        else
            fprintf(h, "%u %s\n", o->conns, is_idle ? "connections" : "concurrent connections");
        if (is_idle) {
            fprintf(h, "  opened       %u in %.2f s (%.0f handshakes/s)\n", idle->open, idle->open_s, rate);
            fprintf(h, "  handshake    p50 %.1f us  p99 %.1f us  max %.1f us\n", p50, p99, mx);
            if (idle->rss_before >= 0 && idle->open) {
                fprintf(h, "  server RSS   %ld KiB before, %ld open, %ld after %.0f s idle, %ld after close\n",
                        idle->rss_before, idle->rss_open, idle->rss_hold, o->hold, idle->rss_closed);
                fprintf(h, "  per conn     %.0f bytes\n", (double)(idle->rss_hold - idle->rss_before) * 1024.0 / idle->open);
            } else {
                fprintf(h, "  server RSS   unknown (give --server-pid)\n");
            }
        } else {
            fprintf(h, "  window       %.2f s after %.1f s warmup\n", window, o->warmup);
            if (o->sc == SC_CONNECT)
                fprintf(h, "  handshakes   %llu (%.0f/s)\n", (unsigned long long)b->msgs, rate);
            else if (o->sc == SC_FANOUT)
                fprintf(h, "  published    %llu (%.0f/s); deliveries %llu (%.0f/s), %.2f MB/s\n",
                        (unsigned long long)b->published, secs > 0 ? (double)b->published / secs : 0,
                        (unsigned long long)b->msgs, rate, mbps);
            else
                fprintf(h, "  messages     %llu (%.0f/s), %.2f MB/s each way\n", (unsigned long long)b->msgs, rate, mbps);
            fprintf(h, "  %-12s p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  mean %.1f (us)\n",
                    o->sc == SC_CONNECT ? "handshake" : o->sc == SC_LATENCY ? "latency" : o->sc == SC_FANOUT ? "delivery" : "round trip",
                    p50, p90, p99, p999, mx, mean);
            if (o->sc == SC_FANOUT)
                fprintf(h, "  slowest sub  p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f (us, per message)\n",
                        (double)hdr_percentile(&b->slow_hist, 0.5) / 1e3, (double)hdr_percentile(&b->slow_hist, 0.9) / 1e3,
                        (double)hdr_percentile(&b->slow_hist, 0.99) / 1e3, (double)hdr_percentile(&b->slow_hist, 0.999) / 1e3,
                        (double)b->slow_hist.max / 1e3);
        }
        if (b->tls_ctx) {
            fprintf(h, "  tls          %s %s %s", b->tls_version ? b->tls_version : "-", b->tls_cipher ? b->tls_cipher : "-",
                    b->tls_group ? b->tls_group : "-");
            if (o->sc == SC_CONNECT || is_idle)
                fprintf(h, ", %llu handshakes, %llu resumed", (unsigned long long)b->tls_handshakes,
                        (unsigned long long)b->tls_resumed);
            fprintf(h, "\n");
        }
        fprintf(h, "  cpu          client %.1f %%", client_pct);
        if (have_server)
            fprintf(h, ", server %.1f %% of one core\n", server_pct);
        else
            fprintf(h, " of one core (server: give --server-pid)\n");
        bc_errors_print(h, &b->err);
        fflush(h);
    }

    result r = {};
    res_str(&r, "scenario", SCENARIO_NAMES[o->sc]);
    res_str(&r, "mode", o->raw ? "raw" : o->u.tls ? "wss" : "ws");
    res_str(&r, "url", o->url);
    res_num(&r, "conns", o->conns, 0);
    if (o->sc == SC_ECHO || o->sc == SC_LATENCY || o->sc == SC_FANOUT) {
        res_num(&r, "depth", o->sc == SC_LATENCY || (o->sc == SC_FANOUT && o->rate > 0) ? 0 : o->depth, 0);
        res_num(&r, "size", o->size, 0);
        res_str(&r, "opcode", o->raw ? "raw" : kind);
    }
    if (o->sc == SC_LATENCY || o->sc == SC_FANOUT) res_num(&r, "rate", o->rate, 0);
    res_num(&r, "duration_s", secs, 3);
    res_num(&r, "msgs", (double)b->msgs, 0);
    res_num(&r, "msgs_per_s", rate, 0);
    res_num(&r, "mb_per_s", mbps, 2);
    res_num(&r, "p50_us", p50, 1);
    res_num(&r, "p90_us", p90, 1);
    res_num(&r, "p99_us", p99, 1);
    res_num(&r, "p999_us", p999, 1);
    res_num(&r, "max_us", mx, 1);
    res_num(&r, "mean_us", mean, 1);
    res_num(&r, "errors", (double)errs, 0);
    for (int i = 0; i < BC_ERR_COUNT; i++)
        if (b->err.count[i]) {
            static char names[BC_ERR_COUNT][24];
            snprintf(names[i], sizeof names[i], "errors_%s", bc_err_names[i]);
            res_num(&r, names[i], (double)b->err.count[i], 0);
        }
    if (b->tls_ctx) {
        res_str(&r, "tls_version", b->tls_version ? b->tls_version : "-");
        res_str(&r, "tls_cipher", b->tls_cipher ? b->tls_cipher : "-");
        res_str(&r, "tls_group", b->tls_group ? b->tls_group : "-");
        res_num(&r, "tls_handshakes", (double)b->tls_handshakes, 0);
        res_num(&r, "tls_resumed", (double)b->tls_resumed, 0);
    }
    res_num(&r, "client_cpu_pct", client_pct, 1);
    if (have_server) res_num(&r, "server_cpu_pct", server_pct, 1);
    if (o->sc == SC_FANOUT) {
        res_num(&r, "published", (double)b->published, 0);
        res_num(&r, "published_per_s", secs > 0 ? (double)b->published / secs : 0, 0);
        res_num(&r, "slowest_p50_us", (double)hdr_percentile(&b->slow_hist, 0.5) / 1e3, 1);
        res_num(&r, "slowest_p99_us", (double)hdr_percentile(&b->slow_hist, 0.99) / 1e3, 1);
        res_num(&r, "slowest_p999_us", (double)hdr_percentile(&b->slow_hist, 0.999) / 1e3, 1);
        res_num(&r, "slowest_max_us", (double)b->slow_hist.max / 1e3, 1);
    }
    if (is_idle) {
        res_num(&r, "open", idle->open, 0);
        res_num(&r, "hold_s", o->hold, 1);
        if (idle->rss_before >= 0) {
            res_num(&r, "rss_before_kb", (double)idle->rss_before, 0);
            res_num(&r, "rss_open_kb", (double)idle->rss_open, 0);
            res_num(&r, "rss_hold_kb", (double)idle->rss_hold, 0);
            res_num(&r, "rss_closed_kb", (double)idle->rss_closed, 0);
            res_num(&r, "bytes_per_conn", idle->open ? (double)(idle->rss_hold - idle->rss_before) * 1024.0 / idle->open : 0, 0);
        }
    }
    res_print(&r, o->json);
    fflush(stdout);
}

// --- command line -----------------------------------------------------------------------

static void usage(FILE *f) {
    fprintf(f,
            "usage: wsbench SCENARIO [OPTION]...\n"
            "A WebSocket load generator (RFC 6455 client, Linux epoll, one thread).\n"
            "\n"
            "Scenarios:\n"
            "  echo      C connections each keep D messages in flight: messages/s, MB/s, round trip\n"
            "  latency   open loop: R messages/s in total, each sent when the clock says, latency\n"
            "            counted from that intended time (no coordinated omission)\n"
            "  connect   C concurrent connect/upgrade/close cycles: handshakes/s, connect-to-101 time\n"
            "  idle      open C connections, hold them, report the server's VmRSS per connection\n"
            "  fanout    one publisher and C subscribers on a broadcast URL: deliveries/s, time from\n"
            "            publish to each subscriber and to the slowest one per message; closed loop\n"
            "            (D messages not yet at every subscriber) or open loop with --rate\n"
            "\n"
            "Options (defaults in brackets):\n"
            "  --url URL           ws://HOST:PORT/PATH or wss://HOST:PORT/PATH (TLS)\n"
            "                      [ws://127.0.0.1:8080/echo; fanout: .../broadcast]\n"
            "  --conns C           connections [100; idle: 10000]\n"
            "  --depth D           echo: messages in flight per connection; fanout: in flight in all [1]\n"
            "  --size S            payload bytes; k/m suffix for KiB/MiB [32]\n"
            "  --text | --binary   message type [text]\n"
            "  --duration T        measured seconds [5]\n"
            "  --warmup T          seconds run before measuring [1]\n"
            "  --messages N        echo, closed-loop fanout: send N messages in all (echo: N/C per\n"
            "                      connection), then stop; --duration becomes a time limit [by time]\n"
            "  --rate R            latency: messages/s over all connections [20000];\n"
            "                      fanout: messages/s published, 0 for closed loop [0]\n"
            "  --hold T            idle: seconds to hold the connections [10]\n"
            "  --server-pid PID    report the server's CPU (/proc/PID/stat) and, for idle, VmRSS\n"
            "  --concurrency N     connections being opened at once [200]\n"
            "  --per-source N      connections per 127.0.0.x source address [idle: 20000; else: kernel picks]\n"
            "  --raw               echo, latency: plain TCP, the same bytes unframed, for a raw echo server\n"
            "  --tls12             wss: TLS 1.2 only [TLS 1.3 only]\n"
            "  --ca FILE           wss: trust the PEM certificates in FILE [the system's]\n"
            "  --insecure          wss: do not verify the server's certificate\n"
            "  --offer-deflate     idle: offer permessage-deflate, to measure what an agreed\n"
            "                      compression costs an idle connection\n"
            "  --resume            wss: each connection slot offers the session (ticket) its previous\n"
            "                      connection got [full handshakes, no session offered]\n"
            "  --quiet             no progress, no human summary\n"
            "  --json              print one JSON object instead of the key=value line\n"
            "  --help\n"
            "\n"
            "Output: progress each second on stderr (runs over 2 s), a summary, then one line\n"
            "key=value ... (scenario conns depth size msgs_per_s mb_per_s p50_us p90_us p99_us\n"
            "p999_us max_us errors [tls_version ...] client_cpu_pct [server_cpu_pct] ...). Exit status 1 if any\n"
            "server frame was invalid or any other error was counted, 2 for bad usage.\n");
}

// ws://HOST:PORT/PATH, wss://HOST:PORT/PATH (also tcp://HOST:PORT for --raw).
static bool parse_url(bench_opts *o) {
    if (!bc_parse_url(o->url, BC_URL_WS | BC_URL_WSS | BC_URL_TCP, &o->u)) return false;
    o->addr_loopback4 = o->u.addr.ss_family == AF_INET &&
                        (ntohl(((sockaddr_in *)&o->u.addr)->sin_addr.s_addr) >> 24) == 127;
    return true;
}

static int parse_args(bench_opts *o, int argc, char **argv) {
    memset(o, 0, sizeof *o);
    o->url = nullptr;
    o->depth = 1;
    o->size = 32;
    o->opcode = WS_OP_TEXT;
    o->duration = 5;
    o->warmup = 1;
    o->rate = 20000;
    o->hold = 10;
    o->concurrency = 200;
    o->per_source = -1;
    bool conns_set = false, rate_set = false;
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return 1;
    }
    int sc = -1;
    for (int i = 0; i < SC_COUNT; i++)
        if (strcmp(argv[1], SCENARIO_NAMES[i]) == 0) sc = i;
    if (sc < 0)
        return bc_usage_error("wsbench", "unknown scenario '%s' (echo, latency, connect, idle, fanout)", argv[1]);
    o->sc = (uint8_t)sc;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0) return bc_usage_error("wsbench", "unexpected argument '%s'", a);
        char name[32];
        const char *val = bc_option(a, name, sizeof name);
        bool flag = true;
        if (strcmp(name, "text") == 0) {
            o->opcode = WS_OP_TEXT;
        } else if (strcmp(name, "binary") == 0) {
            o->opcode = WS_OP_BINARY;
        } else if (strcmp(name, "raw") == 0) {
            o->raw = true;
        } else if (strcmp(name, "quiet") == 0) {
            o->quiet = true;
        } else if (strcmp(name, "json") == 0) {
            o->json = true;
        } else if (strcmp(name, "tls12") == 0) {
            o->tls.tls12 = true;
        } else if (strcmp(name, "insecure") == 0) {
            o->tls.insecure = true;
        } else if (strcmp(name, "resume") == 0) {
            o->tls.resume = true;
        } else if (strcmp(name, "offer-deflate") == 0) {
            o->offer_deflate = true;
        } else if (strcmp(name, "help") == 0) {
            usage(stdout);
            return 1;
        } else {
            flag = false;
        }
        if (flag) {
            if (val) return bc_usage_error("wsbench", "--%s takes no value", name);
            continue;
        }
        if (!val) {
            if (i + 1 >= argc) return bc_usage_error("wsbench", "--%s needs a value", name);
            val = argv[++i];
        }
        uint64_t u = 0;
        double d = 0;
        bool ok = true;
        if (strcmp(name, "url") == 0) {
            o->url = val;
        } else if (strcmp(name, "ca") == 0) {
            o->tls.ca = val;
        } else if (strcmp(name, "conns") == 0) {
            ok = bc_parse_u64(val, false, &u) && u >= 1 && u <= 10000000;
            o->conns = (uint32_t)u;
            conns_set = true;
        } else if (strcmp(name, "depth") == 0) {
            ok = bc_parse_u64(val, false, &u) && u >= 1 && u <= 65536;
            o->depth = (uint32_t)u;
        } else if (strcmp(name, "size") == 0) {
            ok = bc_parse_u64(val, true, &u) && u <= (64u << 20);
            o->size = (uint32_t)u;
        } else if (strcmp(name, "duration") == 0) {
            ok = bc_parse_double(val, &d) && d > 0;
            o->duration = d;
        } else if (strcmp(name, "warmup") == 0) {
            ok = bc_parse_double(val, &d);
            o->warmup = d;
        } else if (strcmp(name, "rate") == 0) {
            ok = bc_parse_double(val, &d) && (d > 0 || (o->sc == SC_FANOUT && d == 0));
            o->rate = d;
            rate_set = true;
        } else if (strcmp(name, "hold") == 0) {
            ok = bc_parse_double(val, &d);
            o->hold = d;
        } else if (strcmp(name, "server-pid") == 0) {
            ok = bc_parse_u64(val, false, &u) && u > 0 && u < (1u << 30);
            o->server_pid = (int)u;
        } else if (strcmp(name, "concurrency") == 0) {
            ok = bc_parse_u64(val, false, &u) && u >= 1 && u <= 1000000;
            o->concurrency = (uint32_t)u;
        } else if (strcmp(name, "messages") == 0) {
            ok = bc_parse_u64(val, true, &u) && u >= 1;
            o->messages = u;
        } else if (strcmp(name, "per-source") == 0) {
            ok = bc_parse_u64(val, false, &u) && u <= 60000;
            o->per_source = (int64_t)u;
        } else {
            return bc_usage_error("wsbench", "unknown option --%s (see --help)", name);
        }
        if (!ok) return bc_usage_error("wsbench", "invalid value '%s' for --%s", val, name);
    }
    if (!conns_set) o->conns = o->sc == SC_IDLE ? 10000 : 100;
    if (o->sc == SC_FANOUT && !rate_set) o->rate = 0; // closed loop unless a rate is given
    if (!o->url) o->url = o->sc == SC_FANOUT ? "ws://127.0.0.1:8080/broadcast" : "ws://127.0.0.1:8080/echo";
    if (o->per_source < 0) o->per_source = o->sc == SC_IDLE ? 20000 : 0;
    if (o->raw && (o->sc == SC_CONNECT || o->sc == SC_IDLE || o->sc == SC_FANOUT))
        return bc_usage_error("wsbench", "--raw applies to echo and latency only");
    if (o->size == 0 && o->sc != SC_CONNECT && o->sc != SC_IDLE)
        return bc_usage_error("wsbench", "--size must be at least 1");
    if (!parse_url(o)) return bc_usage_error("wsbench", "cannot use URL '%s' (ws://HOST:PORT/PATH)", o->url);
    bool tls_opt = o->tls.tls12 || o->tls.insecure || o->tls.resume || o->tls.ca;
    if (tls_opt && !o->u.tls) return bc_usage_error("wsbench", "--tls12, --ca, --insecure and --resume need a wss:// URL");
    if (o->u.tls && o->raw) return bc_usage_error("wsbench", "--raw speaks plain TCP, not wss://");
    if (o->tls.ca && o->tls.insecure) return bc_usage_error("wsbench", "--ca and --insecure contradict each other");
    if (o->offer_deflate && o->sc != SC_IDLE)
        return bc_usage_error("wsbench", "--offer-deflate applies to idle only (no compressed frames are sent or read)");
    o->tls.lean = o->sc == SC_IDLE; // thousands of idle sessions: no record buffers while empty
    return 0;
}

// --- setup ------------------------------------------------------------------------------

static int bench_init(bench *b) {
    const bench_opts *o = &b->o;
    b->clk_tck = sysconf(_SC_CLK_TCK);
    b->err.prog = "wsbench";
    b->rng = bc_rng_seed();
    b->sha1 = EVP_MD_fetch(nullptr, "SHA1", nullptr);
    if (!b->sha1) {
        fprintf(stderr, "wsbench: OpenSSL has no SHA-1\n");
        return -1;
    }
    if (o->u.tls) {
        char err[256];
        b->tls_ctx = bc_tls_ctx_new(&o->tls, &o->u, err, sizeof err);
        if (!b->tls_ctx) {
            fprintf(stderr, "wsbench: TLS: %s\n", err);
            return -1;
        }
    }
    b->lim.max_message = UINT64_MAX >> 2; // length is checked against what we sent
    b->lim.allow_rsv1 = false;
    b->lim.expect_masked = false;

    // Every connection needs a descriptor; ask for the hard limit.
    rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if ((uint64_t)o->conns + 17 > rl.rlim_cur) {
        fprintf(stderr, "wsbench: %u connections need more descriptors than the limit (%llu); raise ulimit -n\n",
                o->conns, (unsigned long long)rl.rlim_cur);
        return -1;
    }

    b->ep = epoll_create1(EPOLL_CLOEXEC);
    b->nconns = o->sc == SC_FANOUT ? o->conns + 1 : o->conns; // fanout: conns[0] publishes
    b->conns = (bconn *)calloc(b->nconns, sizeof(bconn));
    b->flush_max = 2 * b->nconns + 16;
    b->flush_list = (uint32_t *)malloc(sizeof(uint32_t) * b->flush_max);
    b->slot_conn = (uint32_t *)malloc(sizeof(uint32_t) * b->nconns);
    if (o->sc == SC_FANOUT) {
        b->fan_count = (uint32_t *)calloc(FAN_RING, sizeof(uint32_t));
        b->fan_sent = (uint64_t *)calloc(FAN_RING, sizeof(uint64_t));
        if (!b->fan_count || !b->fan_sent) {
            fprintf(stderr, "wsbench: out of memory\n");
            return -1;
        }
    }
    b->rbuf = (uint8_t *)malloc(RBUF_SIZE);
    b->tmpl = (uint8_t *)malloc(o->size + 1);
    if (b->ep < 0 || !b->conns || !b->flush_list || !b->slot_conn || !b->rbuf || !b->tmpl) {
        fprintf(stderr, "wsbench: out of memory\n");
        return -1;
    }
    // Text: printable ASCII (valid UTF-8 that the server's validator must still check);
    // binary: random bytes.
    static const char alnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 ";
    for (uint32_t i = 0; i < o->size; i++) {
        uint64_t r = bc_rng_next(&b->rng);
        b->tmpl[i] = o->opcode == WS_OP_TEXT || o->raw ? (uint8_t)alnum[r % (sizeof alnum - 1)] : (uint8_t)(r >> 56);
    }

    int hl = bc_request_head(b->request, sizeof b->request, &o->u);
    if (hl > 0 && hl < (int)sizeof b->request)
        hl += snprintf(b->request + hl, sizeof b->request - (size_t)hl, "User-Agent: wsbench\r\n%s",
                       o->offer_deflate ? "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" : "");
    if (hl <= 0 || hl >= (int)sizeof b->request - 64) {
        fprintf(stderr, "wsbench: URL too long\n");
        return -1;
    }
    b->request_len = (uint32_t)hl;

    // Out buffer: every message a connection may owe at once, plus room for a pong and
    // a close. Echo owes at most D; the latency schedule owes what is due, written
    // 64 KiB (at least 4 messages) at a time.
    b->frame_max = o->size + (o->raw ? 0 : FRAME_MAX_HEADER);
    uint32_t frames = 0;
    if (o->sc == SC_ECHO || (o->sc == SC_FANOUT && o->rate <= 0)) frames = o->depth;
    if (o->sc == SC_LATENCY || (o->sc == SC_FANOUT && o->rate > 0)) frames = 65536 / b->frame_max > 4 ? 65536 / b->frame_max : 4;
    uint64_t cap = (uint64_t)frames * b->frame_max;
    b->data_cap = (uint32_t)cap;
    cap += CTL_RESERVE;
    if (cap < sizeof b->request + 64) cap = sizeof b->request + 64;
    if (cap > UINT32_MAX / 2) {
        fprintf(stderr, "wsbench: depth x size too large\n");
        return -1;
    }
    for (uint32_t i = 0; i < b->nconns; i++) {
        bconn *c = &b->conns[i];
        c->fd = -1;
        c->idx = i;
        c->out_cap = (uint32_t)cap;
        c->out = (uint8_t *)malloc(cap);
        c->stamps = o->sc == SC_ECHO ? (uint64_t *)calloc(o->depth, sizeof(uint64_t)) : nullptr;
        if (!c->out || (o->sc == SC_ECHO && !c->stamps)) {
            fprintf(stderr, "wsbench: out of memory for %u connections\n", b->nconns);
            return -1;
        }
    }
    b->state_count[CS_IDLE] = b->nconns;
    hdr_reset(&b->slow_hist);
    hdr_reset(&b->hist);
    hdr_reset(&b->tick_hist);
    return 0;
}

static void bench_free(bench *b) {
    for (uint32_t i = 0; i < b->nconns; i++) {
        bconn *c = &b->conns[i];
        if (c->ssl) SSL_free(c->ssl);
        if (c->sess) SSL_SESSION_free(c->sess);
        if (c->fd >= 0) close(c->fd);
        free(c->out);
        free(c->stamps);
        free(c->hs);
    }
    free(b->conns);
    free(b->flush_list);
    free(b->slot_conn);
    free(b->rbuf);
    free(b->tmpl);
    free(b->fan_count);
    free(b->fan_sent);
    EVP_MD_free(b->sha1);
    SSL_CTX_free(b->tls_ctx);
    if (b->ep >= 0) close(b->ep);
}

int main(int argc, char **argv) {
    static bench b; // holds two histograms; keep it off the stack
    int r = parse_args(&b.o, argc, argv);
    if (r) return r == 1 ? 0 : 2;
    bc_signals();
    // epoll_pwait2 timeouts are hrtimers; the default 50 us slack would make the latency
    // schedule late by up to that much. Late sends are still charged from their intended
    // time, but there is no reason to add the error.
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    b.ep = -1;
    if (bench_init(&b) != 0) {
        bench_free(&b);
        return 2;
    }
    idle_result idle = {};
    switch (b.o.sc) {
    case SC_ECHO:
    case SC_LATENCY:
    case SC_FANOUT: r = run_echo_or_latency(&b); break;
    case SC_CONNECT: r = run_connect(&b); break;
    case SC_IDLE: r = run_idle(&b, &idle); break;
    }
    if (r == 0) bench_report(&b, &idle);
    uint64_t errs = bc_errors_total(&b.err);
    bench_free(&b);
    return r != 0 || errs ? 1 : 0;
}
