#include "core/conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/compression.h"
#include "core/http.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/server.h"
#include "core/stats.h"
#include "core/transport.h"
#include "proto/utf8.h"

enum {
    // A round's budget (srv->round_budget) is spent on bytes read, bytes inflated and
    // MESSAGE_COST per message delivered: a read of tiny messages cannot become
    // thousands of callbacks in a row while every other connection waits.
    MESSAGE_COST = 256,
    // Least output of one inflate step, so that a round with little budget left still
    // moves a large message forward.
    INFLATE_STEP_MIN = 4096,
    IOV_BATCH = 64,
    FLUSH_NOW_BYTES = 65536 // past this, a send writes at once instead of at loop end
};

// The client's address for log lines: the one a proxy reported, else the socket's peer.
static const char *peer_name(wsr_server *srv, const conn *c, char *out, size_t cap) {
    net_addr a;
    server_conn_address(srv, c, &a);
    net_addr_format(&a, out, cap);
    return out;
}

// Message assembly (or held input) counts against the server's memory budget.
static void free_message(wsr_server *srv, conn *c) {
    c->flags2 &= (uint8_t)~CF2_HELD;
    if (!c->msg_cap) return;
    free(c->msg);
    server_mem_change(srv, -(int64_t)c->msg_cap);
    c->msg = nullptr;
    c->msg_len = c->msg_cap = 0;
}

static bool in_http(const conn *c) { return c->state == CONN_HANDSHAKE || c->state == CONN_UPGRADING; }

static void free_aux(wsr_server *srv, conn *c) {
    if (in_http(c))
        http_conn_free(&srv->http, srv, c);
    else
        free(c->aux.ctl);
    c->aux.hs = nullptr;
    c->ctl_len = 0;
}

void conn_start(conn *c, int fd, uint16_t listener, bool proxy) {
    c->fd = fd;
    c->state = CONN_HANDSHAKE;
    c->aux.hs = nullptr; // a parser of its own only if a request spans reads
    http_start(c, listener, proxy);
}

// Counted against max_handshakes: in an HTTP state and not idle between requests.
static bool counts_as_handshake(const conn *c) { return in_http(c) && !(c->http.flags & HF_IDLE); }

void conn_http_idle(wsr_server *srv, conn *c, bool idle) {
    if (idle == !!(c->http.flags & HF_IDLE)) return;
    c->http.flags = (uint8_t)(idle ? c->http.flags | HF_IDLE : c->http.flags & ~HF_IDLE);
    if (idle)
        srv->handshakes--;
    else
        srv->handshakes++;
}

// Leaves the HTTP states, which the server bounds (max_handshakes).
static void end_handshake(wsr_server *srv, conn *c, uint8_t state) {
    if (counts_as_handshake(c)) srv->handshakes--;
    free_aux(srv, c);
    c->state = state;
    if (c->flags2 & CF2_AWAITING) {
        c->flags2 &= (uint8_t)~CF2_AWAITING;
        server_update_events(srv, c);
    }
}

// Ends a connection whose stream can take nothing more: the socket failed, or memory
// ran out with part of a frame already written. Destroyed by the flush pass.
void conn_cut(wsr_server *srv, conn *c, const char *why) {
    char peer[64];
    if (why) log_warn("connection %s cut: %s", peer_name(srv, c, peer, sizeof peer), why);
    c->flags |= CF_DEAD;
    server_want_flush(srv, c);
}
static void cut(wsr_server *srv, conn *c, const char *why) { conn_cut(srv, c, why); }

static bool reply_spill(wsr_server *srv, conn *c);

// Every copy into the out-queue goes through here, for the memory account.
static bool push_copy(wsr_server *srv, conn *c, const void *a, size_t alen, const void *b, size_t blen) {
    if (srv->reply.c == c && srv->reply.niov && !reply_spill(srv, c)) return false;
    if (outq_push_copy(&c->out, a, alen, b, blen) != 0) return false;
    server_mem_change(srv, (int64_t)(alen + blen));
    return true;
}

static void drop_output(wsr_server *srv, conn *c) { server_mem_change(srv, -(int64_t)outq_clear(&c->out)); }

// --- output -------------------------------------------------------------------

static bool write_out(wsr_server *srv, conn *c);

// After anything was queued: stop reading from a peer that is not keeping up, push
// large output to the kernel now, and put the connection on the flush list.
static void queued(wsr_server *srv, conn *c) {
    if (c->out.bytes >= srv->opts.max_backpressure / 2 && !(c->flags & CF_READ_PAUSED)) {
        // The peer is not reading what we send (for echo: what it sends us). Stop
        // reading from it so TCP pushes back on it instead of our memory growing.
        c->flags |= CF_READ_PAUSED;
        server_update_events(srv, c);
        // Its pongs cannot be read now, so the heartbeat would call it stale; the slow
        // timeout judges it instead (a soft limit held too long, as Redis does).
        if (c->state == CONN_OPEN && timers_enabled(&srv->tm, TK_SLOW)) timers_put(&srv->tm, c, TK_SLOW);
    }
    // Large output goes to the kernel now rather than piling up until the loop ends;
    // the flush pass still runs, to finish closes and reap a failed socket.
    if (c->out.bytes >= FLUSH_NOW_BYTES) write_out(srv, c);
    server_want_flush(srv, c);
}

static void send_now(wsr_server *srv, conn *c, const char *data, size_t len);

// Writes iov at once when nothing is queued ahead of it, and queues what the kernel did
// not take (all of it when something was queued ahead). False when the connection
// failed instead: the socket (marked dead, for the flush pass) or memory (cut). Inline:
// the reply of every read goes through it.
__attribute__((always_inline)) static inline bool write_or_queue(wsr_server *srv, conn *c, const struct iovec *iov,
                                                                 int n) {
    size_t skip = 0;
    if (!c->out.head) {
        ssize_t w = conn_io(srv, c)->writev(srv, c, iov, n);
        if (w < 0 && w != -EAGAIN) {
            c->flags |= CF_DEAD;
            server_want_flush(srv, c);
            return false;
        }
        if (w > 0) {
            skip = (size_t)w;
            srv->stats.bytes_out += (uint64_t)w;
        }
    }
    for (int i = 0; i < n; i++) {
        size_t len = iov[i].iov_len;
        if (skip >= len) {
            skip -= len;
            continue;
        }
        if (!push_copy(srv, c, (const char *)iov[i].iov_base + skip, len - skip, nullptr, 0)) {
            cut(srv, c, "out of memory for output");
            return false;
        }
        skip = 0;
    }
    return true;
}

// --- replies to the connection being read (struct conn_reply) ----------------------
//
// An echo used to copy every message into the out-queue (a buffer and a segment taken
// and given back per read) and write it in the flush pass. Frames for the connection
// whose read is being parsed are collected instead and written with one writev when the
// read is parsed: the same one write per read, without the queue, and a payload that is
// still in the read buffer (an echo of a frame that arrived whole) is sent from there.
// Anything else queued or written for the connection meanwhile spills the collected
// frames into the queue first, so the order on the wire holds.

enum { REPLY_REF_MIN = 512 }; // smaller payloads are copied: cheaper than an iovec

static bool in_rbuf(const wsr_server *srv, const uint8_t *d, size_t len) {
    uintptr_t p = (uintptr_t)d, lo = (uintptr_t)srv->rbuf;
    return p >= lo && len <= srv->rbuf_size && p - lo <= srv->rbuf_size - len;
}

static void reply_iov(conn_reply *r, const void *p, size_t n) {
    iovec *last = r->niov ? &r->iov[r->niov - 1] : nullptr;
    if (last && (const uint8_t *)last->iov_base + last->iov_len == p) {
        last->iov_len += n;
        return;
    }
    r->iov[r->niov].iov_base = (void *)p;
    r->iov[r->niov].iov_len = n;
    r->niov++;
}

// Copies n <= 64 bytes with at most four moves and no call: two blocks of the largest
// size that fits, the second ending at n (they may overlap; the areas do not).
static inline void copy_short(uint8_t *dst, const uint8_t *src, size_t n) {
    if (n >= 16) {
        if (n >= 32) {
            memcpy(dst, src, 32);
            memcpy(dst + n - 32, src + n - 32, 32);
        } else {
            memcpy(dst, src, 16);
            memcpy(dst + n - 16, src + n - 16, 16);
        }
    } else if (n >= 8) {
        memcpy(dst, src, 8);
        memcpy(dst + n - 8, src + n - 8, 8);
    } else if (n >= 4) {
        memcpy(dst, src, 4);
        memcpy(dst + n - 4, src + n - 4, 4);
    } else if (n) {
        dst[0] = src[0];
        dst[n / 2] = src[n / 2];
        dst[n - 1] = src[n - 1];
    }
}

// Adds a frame to the reply; false when it does not fit (the caller queues it instead).
// Inline: it is most of what a send to the connection being read costs.
__attribute__((always_inline)) static inline bool reply_add(wsr_server *srv, uint8_t opcode, const void *data,
                                                            size_t len, bool rsv1) {
    conn_reply *r = &srv->reply;
    const uint8_t *d = (const uint8_t *)data;
    bool ref = len >= REPLY_REF_MIN && in_rbuf(srv, d, len);
    size_t copy = ref ? 0 : len;
    if (r->used + FRAME_MAX_HEADER + copy > REPLY_BYTES || r->niov + 2 > REPLY_IOV) return false;
    uint8_t *p = r->buf + r->used;
    size_t hlen;
    if (len < 126) { // the common small frame, without the general writer's call
        p[0] = (uint8_t)(0x80 | (rsv1 ? 0x40 : 0) | opcode);
        p[1] = (uint8_t)len;
        hlen = 2;
    } else {
        hlen = frame_write_header(p, opcode, true, rsv1, len, nullptr);
    }
    if (copy <= 64)
        copy_short(p + hlen, d, copy);
    else
        memcpy(p + hlen, d, copy);
    r->used += hlen + copy;
    reply_iov(r, p, hlen + copy);
    if (ref) reply_iov(r, d, len);
    return true;
}

// Moves the collected frames into c's out-queue: something else is about to be queued
// or written for c. False when memory ran out (c is cut: part of the stream is lost).
static bool reply_spill(wsr_server *srv, conn *c) {
    conn_reply *r = &srv->reply;
    int n = r->niov;
    r->niov = 0;
    r->used = 0; // the bytes stay where they are until the next reply_add
    for (int i = 0; i < n; i++) {
        if (outq_push_copy(&c->out, r->iov[i].iov_base, r->iov[i].iov_len, nullptr, 0) != 0) {
            cut(srv, c, "out of memory for output");
            return false;
        }
        server_mem_change(srv, (int64_t)r->iov[i].iov_len);
    }
    if (n) queued(srv, c);
    return true;
}

// The read is parsed: its replies go out in one writev; what the kernel does not take
// is queued, and the flush pass and writability take it from there.
static void reply_flush(wsr_server *srv, conn *c) {
    conn_reply *r = &srv->reply;
    r->c = nullptr;
    int n = r->niov;
    r->niov = 0;
    r->used = 0;
    if (!n || (c->flags & CF_DEAD)) return;
    // The queue is empty (anything queued meanwhile spilled the reply), so this writes.
    if (write_or_queue(srv, c, r->iov, n) && c->out.head) queued(srv, c);
}

size_t conn_buffered(const wsr_server *srv, const conn *c) {
    size_t n = (size_t)c->out.bytes;
    if (srv->reply.c == c)
        for (int i = 0; i < srv->reply.niov; i++) n += srv->reply.iov[i].iov_len;
    return n;
}

// Control frames and the server's own frames: never refused by the slow-consumer
// policy, or a slow peer could not even be closed. A frame is queued whole or not at
// all (WSR_ENOMEM); a control frame that cannot be sent cuts the connection.
static int queue_frame(wsr_server *srv, conn *c, uint8_t opcode, const void *data, size_t len, bool rsv1 = false) {
    if (srv->reply.c == c && !c->out.head && reply_add(srv, opcode, data, len, rsv1)) {
        // A close must still be finished (shut down, destroyed) by the flush pass.
        if (ws_opcode_is_control(opcode)) server_want_flush(srv, c);
        return WSR_OK;
    }
    uint8_t hdr[FRAME_MAX_HEADER];
    size_t hlen = frame_write_header(hdr, opcode, true, rsv1, len, nullptr);
    if (ws_opcode_is_control(opcode) && !c->out.head) {
        // A pong or close to an otherwise quiet connection goes straight out: when
        // thousands close at once, none of them needs an output buffer.
        uint8_t frame[FRAME_MAX_HEADER + 125];
        memcpy(frame, hdr, hlen);
        if (len) memcpy(frame + hlen, data, len);
        send_now(srv, c, (const char *)frame, hlen + len);
        return WSR_OK;
    }
    if (!push_copy(srv, c, hdr, hlen, data, len)) {
        if (ws_opcode_is_control(opcode)) cut(srv, c, "out of memory for a control frame");
        return WSR_ENOMEM;
    }
    queued(srv, c);
    return WSR_OK;
}

// Queues a close frame; the connection accepts no more data from the application.
static void queue_close(wsr_server *srv, conn *c, uint16_t code, const char *reason, size_t reason_len) {
    uint8_t body[125];
    size_t n = 0;
    if (code != WS_CLOSE_NO_STATUS && code != 0) {
        body[0] = (uint8_t)(code >> 8);
        body[1] = (uint8_t)code;
        if (reason_len > sizeof body - 2) reason_len = sizeof body - 2;
        if (reason_len) memcpy(body + 2, reason, reason_len);
        n = 2 + reason_len;
    }
    c->flags |= CF_CLOSE_SENT;
    c->state = CONN_CLOSING;
    if (queue_frame(srv, c, WS_OP_CLOSE, body, n) != WSR_OK) return; // cut
    timers_put(&srv->tm, c, TK_CLOSE);
    timers_remove(&srv->tm, c, TK_IDLE);
}

// The slow-consumer policy: a receiver whose unsent bytes already reach the cap gets
// no more messages. One large message into a short queue is always admitted, so the
// cap bounds how far behind a peer may fall, not how large a message may be.
static int admit(wsr_server *srv, conn *c) {
    if (c->out.bytes < srv->opts.max_backpressure) return WSR_OK;
    char peer[64];
    if (srv->opts.slow_policy == WSR_SLOW_DROP) {
        srv->stats.slow_drops++;
        c->flags2 |= CF2_DRAIN;
        log_debug("connection %s too slow (%llu bytes unsent): message dropped", peer_name(srv, c, peer, sizeof peer),
                  (unsigned long long)c->out.bytes);
        return WSR_DROPPED;
    }
    log_info("connection %s too slow (%llu bytes unsent): closing", peer_name(srv, c, peer, sizeof peer),
             (unsigned long long)c->out.bytes);
    srv->stats.slow_closes++;
    c->close_code = WS_CLOSE_POLICY;
    queue_close(srv, c, WS_CLOSE_POLICY, "slow consumer", 13);
    return WSR_CLOSED;
}

// A data message went out: account for it and reset the idle timeout.
static int sent_message(wsr_server *srv, conn *c) {
    srv->stats.messages_out++;
    timers_put(&srv->tm, c, TK_IDLE);
    if (c->flags & CF_DEAD) return WSR_ENOCONN; // the write found the peer gone
    if (!(c->flags & CF_WANT_WRITE)) return WSR_OK;
    c->flags2 |= CF2_DRAIN;
    return WSR_QUEUED;
}

// Fails the WebSocket connection (RFC 6455 §7.1.7): a close frame with the code, then
// the TCP connection ends without waiting for the peer's close.
//
// close_failing does it and leaves the connection's input alone: it is what a send
// does to its receiver, which may be the connection whose message on_message is still
// reading. conn_fail, from the connection's own input path, also drops the input not
// yet delivered (the destroy would, later).
static void close_failing(wsr_server *srv, conn *c, uint16_t code, const char *reason) {
    if (in_http(c)) return cut(srv, c, reason); // no WebSocket yet to send a close on
    char peer[64];
    log_info("connection %s failed: %u %s", peer_name(srv, c, peer, sizeof peer), code, reason);
    if (code == WS_CLOSE_PROTOCOL || code == WS_CLOSE_BAD_DATA || code == WS_CLOSE_TOO_BIG) srv->stats.protocol_errors++;
    if (!(c->flags & CF_CLOSE_SENT)) {
        c->close_code = code;
        queue_close(srv, c, code, reason, strlen(reason));
    }
    c->flags |= CF_FAILING;
    server_want_flush(srv, c);
}

static void conn_fail(wsr_server *srv, conn *c, uint16_t code, const char *reason) {
    free_message(srv, c);
    compression_inflate_abort(srv, c);
    c->flags2 &= (uint8_t)~CF2_INFLATING;
    close_failing(srv, c, code, reason);
}

// Writes a response or a control frame at once when nothing is queued ahead of it:
// what fits the socket buffer (nearly always) then costs no buffer at all. Whatever the
// kernel does not take is queued as usual, after anything queued before; if even that
// fails, part of the bytes may be out, so nothing else may follow: cut.
void conn_write(wsr_server *srv, conn *c, const struct iovec *iov, int n) {
    if (c->flags & CF_DEAD) return;
    if (srv->reply.c == c && srv->reply.niov && !reply_spill(srv, c)) return;
    if (!write_or_queue(srv, c, iov, n)) return;
    if (c->out.head) queued(srv, c);
    server_want_flush(srv, c);
}

static void send_now(wsr_server *srv, conn *c, const char *data, size_t len) {
    struct iovec iov = {(void *)data, len};
    conn_write(srv, c, &iov, 1);
}

void conn_end_after_output(wsr_server *srv, conn *c) {
    free_message(srv, c); // held input: nothing more is read from this connection
    end_handshake(srv, c, CONN_CLOSING);
    c->flags |= CF_CLOSE_SENT | CF_FAILING;
    timers_put(&srv->tm, c, TK_CLOSE);
}

static void set_want_write(wsr_server *srv, conn *c, bool on) {
    if (on == !!(c->flags & CF_WANT_WRITE)) return;
    c->flags = (uint8_t)(on ? c->flags | CF_WANT_WRITE : c->flags & ~CF_WANT_WRITE);
    server_update_events(srv, c);
}

// Writes what the kernel takes. Never frees the connection: on a hard error it is
// marked dead and left for conn_flush at a safe point. False when dead.
static bool write_out(wsr_server *srv, conn *c) {
    if (srv->reply.c == c && srv->reply.niov && !reply_spill(srv, c)) return false;
    while (c->out.head) {
        struct iovec iov[IOV_BATCH];
        int n = outq_iov(&c->out, iov, IOV_BATCH);
        size_t want = 0;
        for (int i = 0; i < n; i++) want += iov[i].iov_len;
        ssize_t w = conn_io(srv, c)->writev(srv, c, iov, n);
        if (w == -EAGAIN) {
            set_want_write(srv, c, true);
            return true;
        }
        if (w < 0) {
            log_debug("write to fd %d failed: %s", c->fd, strerror((int)-w));
            drop_output(srv, c);
            c->flags |= CF_DEAD;
            return false;
        }
        server_mem_change(srv, -(int64_t)outq_consume(&c->out, (size_t)w));
        srv->stats.bytes_out += (uint64_t)w;
        // Wherever the write happens (the flush pass, writability, a large send), a
        // producer told WSR_QUEUED hears of it from the flush pass: on_drain.
        if ((c->flags2 & CF2_DRAIN) && c->out.bytes <= srv->drain_bytes) {
            c->flags2 = (uint8_t)((c->flags2 & ~CF2_DRAIN) | CF2_DRAIN_DUE);
            server_want_flush(srv, c);
        }
        if ((size_t)w < want) {
            set_want_write(srv, c, true);
            return true;
        }
    }
    set_want_write(srv, c, false);
    return true;
}

// on_drain, once a connection that was told WSR_QUEUED (or WSR_DROPPED) has written its
// way down to the drain mark. Only after the kernel took bytes: a producer that sends
// again from on_drain and is queued again waits for the socket, not for this pass.
static void run_drain(wsr_server *srv, conn *c) {
    c->flags2 &= (uint8_t)~CF2_DRAIN_DUE;
    if (c->state != CONN_OPEN) return;
    const ws_endpoint *ep = http_endpoint(&srv->http, c);
    if (ep->ep.on_drain) ep->ep.on_drain(srv, conn_id(c), ep->user);
}

void conn_flush(wsr_server *srv, conn *c) {
    if ((c->flags & CF_DEAD) || !write_out(srv, c)) return conn_destroy(srv, c, false);
    if (c->flags2 & CF2_DRAIN_DUE) {
        run_drain(srv, c);
        if (c->flags & CF_DEAD) return server_want_flush(srv, c); // a send from on_drain found it gone
    }
    if ((c->flags & CF_READ_PAUSED) && c->out.bytes <= srv->opts.max_backpressure / 4) {
        c->flags &= (uint8_t)~CF_READ_PAUSED;
        server_update_events(srv, c);
        if (c->timer_kind[0] == TK_SLOW) timers_put(&srv->tm, c, TK_HEARTBEAT);
        // Held input waited for the peer to catch up; back into the backlog pass.
        if (conn_waits(c) && !server_backlog_add(srv, c)) cut(srv, c, "out of memory");
    }
    if (c->out.head) return;
    if (c->state != CONN_CLOSING || !(c->flags & (CF_CLOSE_RECV | CF_FAILING))) return;
    // Our close is on the wire and nothing else is owed. The server ends TCP first
    // (RFC 6455 §7.1.1), so it, not the client, holds TIME_WAIT.
    if (!conn_io(srv, c)->shutdown(srv, c)) return set_want_write(srv, c, true); // again when writable
    if (!(c->flags & CF_FAILING) && conn_io(srv, c)->pending(srv, c) == 0) return conn_destroy(srv, c, true);
    // A failed peer may still be sending: closing with unread input would send a reset
    // that can destroy our close frame in flight, so read until its FIN (bounded by
    // the close timeout).
    c->state = CONN_DRAINING;
}

// --- input: handshake ------------------------------------------------------------

static void frames_feed(wsr_server *srv, conn *c, uint8_t *data, size_t n, size_t *budget);

void conn_upgraded(wsr_server *srv, conn *c, uint16_t endpoint, const uint8_t *data, size_t n, size_t *budget) {
    end_handshake(srv, c, CONN_OPEN);
    c->route = endpoint;
    frame_parser_init(&c->fp); // in the room the HTTP state had
    c->opened_s = (uint32_t)time(nullptr);
    timers_put(&srv->tm, c, TK_HEARTBEAT); // replaces the request deadline
    timers_put(&srv->tm, c, TK_IDLE);
    // Only a peer that got its 101 (or will, from the out-queue) is open.
    if (c->flags & CF_DEAD) return;
    c->flags |= CF_OPENED;
    srv->stats.handshakes_ok++;
    srv->table_open++;
    const ws_endpoint *ep = http_endpoint(&srv->http, c);
    if (ep->ep.on_open) ep->ep.on_open(srv, conn_id(c), ep->user);
    // Frames may ride in the same read as the request.
    if (n && c->state == CONN_OPEN && !(c->flags & CF_DEAD)) frames_feed(srv, c, (uint8_t *)data, n, budget);
}

void conn_deadline(wsr_server *srv, conn *c, uint8_t kind) { timers_put(&srv->tm, c, kind); }

void conn_await(wsr_server *srv, conn *c, bool on) {
    c->flags2 = (uint8_t)(on ? c->flags2 | CF2_AWAITING : c->flags2 & ~CF2_AWAITING);
    server_update_events(srv, c);
    if (!on && conn_waits(c) && !server_backlog_add(srv, c)) cut(srv, c, "out of memory");
}

// --- input: frames ---------------------------------------------------------------

// Fails the connection when the server's memory budget cannot take n more bytes for
// it. Input (messages being assembled, input held over) may use three quarters of the
// budget: the rest stays for output, so peers whose messages were taken in can still
// be answered when input has filled its share.
static bool budget_refuses(wsr_server *srv, conn *c, size_t n, bool input) {
    uint64_t limit = input ? srv->max_memory / 4 * 3 : srv->max_memory;
    if (srv->mem_held + n <= limit) return false;
    srv->counters.memory_closes++;
    static const char why[] = "server memory budget exhausted; try again later";
    if (input)
        conn_fail(srv, c, WS_CLOSE_TRY_AGAIN, why);
    else
        close_failing(srv, c, WS_CLOSE_TRY_AGAIN, why);
    return true;
}

// False when the connection failed (memory budget or out of memory).
// Gives msg a capacity of cap bytes within the memory budget. False when the
// connection failed instead (budget or out of memory).
static bool msg_reserve(wsr_server *srv, conn *c, size_t cap) {
    if (budget_refuses(srv, c, cap - c->msg_cap, true)) return false;
    uint8_t *nm = (uint8_t *)mem_realloc(c->msg, cap);
    if (!nm) {
        conn_fail(srv, c, WS_CLOSE_INTERNAL, "out of memory");
        return false;
    }
    server_mem_change(srv, (int64_t)(cap - c->msg_cap));
    c->msg = nm;
    c->msg_cap = (uint32_t)cap;
    return true;
}

// Appends to msg, which may hold at most max bytes. False when the connection failed
// (past max, memory budget, out of memory).
static bool buffer_append(wsr_server *srv, conn *c, const uint8_t *d, size_t n, size_t max) {
    size_t need = (size_t)c->msg_len + n;
    if (need > max) {
        conn_fail(srv, c, WS_CLOSE_TOO_BIG, "too much input to hold");
        return false;
    }
    if (need > c->msg_cap) {
        // Grow geometrically as bytes arrive, never to the length a header merely
        // claims: a header costs its sender nothing.
        size_t cap = c->msg_cap ? c->msg_cap : 256;
        while (cap < need) cap *= 2;
        if (cap > max) cap = max;
        if (!msg_reserve(srv, c, cap)) return false;
    }
    memcpy(c->msg + c->msg_len, d, n);
    c->msg_len = (uint32_t)need;
    return true;
}

// A message's data, as the frame parser bounds it (a compressed one on the wire may be a
// little longer than max_message).
static bool message_append(wsr_server *srv, conn *c, const uint8_t *d, size_t n) {
    bool compressed = (c->pmd & CP_ON) && c->fp.msg_rsv1;
    return buffer_append(srv, c, d, n,
                         (size_t)(compressed ? srv->limits_pmd.max_compressed : srv->limits.max_message));
}

// The connection has no budget left for this round: it joins the backlog pass, and
// what remains of its input waits in msg (free, since the last message was delivered
// or handed to the inflater).
static void hold_over(wsr_server *srv, conn *c, const uint8_t *data, size_t n) {
    if (n) {
        if (!msg_reserve(srv, c, n)) return;
        memcpy(c->msg, data, n);
        c->msg_len = (uint32_t)n;
        c->flags2 |= CF2_HELD;
    }
    if (!server_backlog_add(srv, c)) conn_fail(srv, c, WS_CLOSE_INTERNAL, "out of memory");
}

bool conn_hold(wsr_server *srv, conn *c, const uint8_t *data, size_t n) {
    // Past the budget the caller decides: answers already queued still go out.
    if (srv->mem_held + n > srv->max_memory / 4 * 3) return false;
    hold_over(srv, c, data, n);
    return !(c->flags & (CF_DEAD | CF_FAILING));
}

bool conn_buffer(wsr_server *srv, conn *c, const uint8_t *data, size_t n, size_t max) {
    return buffer_append(srv, c, data, n, max) && !(c->flags & CF_DEAD);
}

void conn_buffer_free(wsr_server *srv, conn *c) { free_message(srv, c); }

static size_t inflate_step(size_t budget) { return budget > INFLATE_STEP_MIN ? budget : (size_t)INFLATE_STEP_MIN; }

static void fail_inflate(wsr_server *srv, conn *c, uint16_t err) {
    const char *why = err == WS_CLOSE_TOO_BIG   ? "message exceeds the size limit once inflated"
                      : err == WS_CLOSE_BAD_DATA ? "invalid compressed data"
                                                 : "out of memory";
    conn_fail(srv, c, err, why);
}

// Charges work to the round's budget; true when it is used up.
static bool spend(size_t *budget, size_t cost) {
    *budget -= cost < *budget ? cost : *budget;
    return *budget == 0;
}

static inline void deliver(wsr_server *srv, conn *c, uint8_t opcode, const uint8_t *d, size_t n);

// A whole data message, inflated if it was compressed: validated, delivered, the
// inflate scratch released. The caller checks whether the connection can go on.
static void finish_message(wsr_server *srv, conn *c, const uint8_t *d, size_t dn, bool inflated) {
    if (c->state == CONN_OPEN) { // a message finished over several rounds may find it closing
        if (inflated && c->fp.msg_opcode == WS_OP_TEXT) c->utf8 = utf8_validate(UTF8_ACCEPT, d, dn);
        if (c->fp.msg_opcode == WS_OP_TEXT && !utf8_complete(c->utf8))
            conn_fail(srv, c, WS_CLOSE_BAD_DATA, "invalid UTF-8 in text message");
        else
            deliver(srv, c, c->fp.msg_opcode, d, dn);
    }
    if (inflated) compression_release_inflated(srv);
}

// Inline: once per message, from the feed loop.
__attribute__((always_inline)) static inline void deliver(wsr_server *srv, conn *c, uint8_t opcode, const uint8_t *d,
                                                          size_t n) {
    srv->stats.messages_in++;
    timers_put(&srv->tm, c, TK_IDLE);
    const ws_endpoint *ep = http_endpoint(&srv->http, c);
    if (ep->ep.on_message)
        ep->ep.on_message(srv, conn_id(c), (wsr_opcode)opcode, d ? d : (const uint8_t *)"", n, ep->user);
}

static void on_close_frame(wsr_server *srv, conn *c, const uint8_t *d, size_t n) {
    uint16_t code = 0;
    uint16_t err = frame_close_parse(d, n, &code);
    if (err) return conn_fail(srv, c, err, err == WS_CLOSE_BAD_DATA ? "close reason is not UTF-8" : "invalid close frame");
    c->flags |= CF_CLOSE_RECV;
    if (!(c->flags & CF_CLOSE_SENT)) {
        c->close_code = code;
        // Echo the status code (§5.5.1); an empty close is answered with an empty one.
        queue_close(srv, c, code, nullptr, 0);
    }
    server_want_flush(srv, c);
}

static void on_control(wsr_server *srv, conn *c, uint8_t op, const uint8_t *d, size_t n) {
    switch (op) {
    case WS_OP_PING:
        if (c->state == CONN_OPEN) queue_frame(srv, c, WS_OP_PONG, d, n);
        break;
    case WS_OP_CLOSE:
        on_close_frame(srv, c, d, n);
        break;
    default: { // a pong: the answer to a ping, or unsolicited, a heartbeat (§5.5.3)
        const ws_endpoint *ep = http_endpoint(&srv->http, c);
        if (ep->ep.on_pong && c->state == CONN_OPEN) ep->ep.on_pong(srv, conn_id(c), d ? d : (const uint8_t *)"", n, ep->user);
        break;
    }
    }
}

// A data message is complete (d, dn: in place or assembled in msg): inflated if it was
// compressed, validated, delivered, its round's budget charged. rest/rest_n is the input
// after it, held over when the round ends here. False when the feed must stop.
static bool message_done(wsr_server *srv, conn *c, const uint8_t *d, size_t dn, const uint8_t *rest, size_t rest_n,
                         size_t *budget) {
    size_t cost = 0;
    if (c->fp.msg_rsv1) {
        uint16_t err = compression_inflate(srv, c, d, dn, inflate_step(*budget), &d, &dn);
        if (err == COMPRESSION_MORE) {
            // Inflating it goes on in later rounds (the inflater copied the bytes), and
            // what follows it waits for that.
            free_message(srv, c);
            c->flags2 |= CF2_INFLATING;
            hold_over(srv, c, rest, rest_n);
            return false;
        }
        if (err) {
            fail_inflate(srv, c, err);
            return false;
        }
        cost = dn; // inflating is work the read did not pay for
    }
    finish_message(srv, c, d, dn, c->fp.msg_rsv1);
    free_message(srv, c);
    // A send from the handler may have found the socket dead: nothing more for this
    // connection, or on_message would run for an id that cannot answer.
    if (c->flags & (CF_FAILING | CF_DEAD)) return false;
    if (spend(budget, cost + MESSAGE_COST)) {
        if (rest_n) hold_over(srv, c, rest, rest_n);
        return false;
    }
    return true;
}

// What feed_whole did: took a frame and the feed goes on, took one (or failed the
// connection) and the feed ends, or found no whole frame, which frame_parse takes.
enum { WHOLE_NEXT, WHOLE_STOP, WHOLE_NONE };

// Most frames are whole, unfragmented data frames, complete in this read: parsed in one
// step and delivered from where they lie. Inline, with its own event that is never
// passed on by address, so that its fields stay in registers.
__attribute__((always_inline)) static inline int feed_whole(wsr_server *srv, conn *c, const frame_limits *lim,
                                                            uint8_t **data, size_t *n, size_t *budget) {
    frame_event wev;
    size_t used = frame_parse_whole(&c->fp, lim, *data, *n, &wev);
    if (!used) return WHOLE_NONE;
    *data += used;
    *n -= used;
    if (wev.rsv1) {
        if (!message_done(srv, c, wev.data, wev.len, *data, *n, budget)) return WHOLE_STOP;
    } else {
        // message_done for a message that needs no inflating and was never assembled,
        // step for step. Text the parser saw to be ASCII is valid as it is, with no
        // validator's call (c->utf8 matters only within a message that is assembled, and
        // is reset when one begins).
        uint8_t op = wev.opcode;
        if (op == WS_OP_TEXT && !wev.ascii && !utf8_complete(c->utf8 = utf8_validate(UTF8_ACCEPT, wev.data, wev.len))) {
            conn_fail(srv, c, WS_CLOSE_BAD_DATA, "invalid UTF-8 in text message");
            return WHOLE_STOP;
        }
        deliver(srv, c, op, wev.data, wev.len);
        free_message(srv, c);
        if (c->flags & (CF_FAILING | CF_DEAD)) return WHOLE_STOP;
        if (spend(budget, MESSAGE_COST)) {
            if (*n) hold_over(srv, c, *data, *n);
            return WHOLE_STOP;
        }
    }
    return *n ? WHOLE_NEXT : WHOLE_STOP; // none left: the parser waits for a header
}

static const size_t FEED_STOP = SIZE_MAX;

// One frame through frame_parse, event by event: a fragment, a control frame, a frame
// split across reads, a frame of a closing connection. Returns the bytes it took when the
// frame ended and input is left, for the caller to go on; FEED_STOP when the feed stops
// (input used up, held over, or the connection failed).
__attribute__((noinline)) static size_t feed_frame(wsr_server *srv, conn *c, const frame_limits *lim, uint8_t *data,
                                                   size_t n, size_t *budget) {
    const uint8_t *start = data;
    frame_event ev;
    uint64_t frame_len = 0;
    bool whole = false;        // the frame's header was parsed in this call, no payload yet
    const uint8_t *zc = nullptr; // a complete frame payload still in the read buffer
    size_t zc_len = 0;
    for (;;) {
        size_t used = frame_parse(&c->fp, lim, data, n, &ev);
        data += used;
        n -= used;
        switch (ev.type) {
        case FRAME_NEED_MORE:
            return FEED_STOP;
        case FRAME_ERROR:
            conn_fail(srv, c, ev.close_code, ev.reason);
            return FEED_STOP;
        case FRAME_HEADER:
            frame_len = ev.frame_len;
            whole = true;
            zc = nullptr;
            if (ws_opcode_is_control(ev.opcode))
                c->ctl_len = 0;
            else if (ev.opcode != WS_OP_CONT)
                c->utf8 = UTF8_ACCEPT;
            break;
        case FRAME_PAYLOAD:
            if (whole && ev.len == frame_len) {
                // The whole payload is in this read. Use it in place.
                zc = ev.data;
                zc_len = ev.len;
            }
            whole = false;
            if (ws_opcode_is_control(ev.opcode)) {
                if (zc) break;
                if (!c->aux.ctl && !(c->aux.ctl = (uint8_t *)mem_alloc(125))) {
                    conn_fail(srv, c, WS_CLOSE_INTERNAL, "out of memory");
                    return FEED_STOP;
                }
                memcpy(c->aux.ctl + c->ctl_len, ev.data, ev.len);
                c->ctl_len = (uint8_t)(c->ctl_len + ev.len);
                break;
            }
            if (c->state != CONN_OPEN) break; // closing: data is discarded
            if (c->fp.msg_opcode == WS_OP_TEXT && !c->fp.msg_rsv1) {
                // Checked chunk by chunk so bad text fails as soon as it arrives.
                c->utf8 = utf8_validate(c->utf8, ev.data, ev.len);
                if (c->utf8 == UTF8_REJECT) {
                    conn_fail(srv, c, WS_CLOSE_BAD_DATA, "invalid UTF-8 in text message");
                    return FEED_STOP;
                }
            }
            if (zc && c->fp.fin && ev.opcode != WS_OP_CONT) break;
            zc = nullptr;
            if (!message_append(srv, c, ev.data, ev.len)) return FEED_STOP;
            break;
        case FRAME_END:
            if (ws_opcode_is_control(ev.opcode)) {
                on_control(srv, c, ev.opcode, zc ? zc : c->aux.ctl, zc ? zc_len : c->ctl_len);
                free(c->aux.ctl);
                c->aux.ctl = nullptr;
                c->ctl_len = 0;
            } else if (ev.fin && c->state == CONN_OPEN) {
                if (!message_done(srv, c, zc ? zc : c->msg, zc ? zc_len : c->msg_len, data, n, budget)) return FEED_STOP;
            }
            // A send from a handler may have found the socket dead: nothing more.
            if (c->flags & (CF_FAILING | CF_DEAD)) return FEED_STOP;
            return n ? (size_t)(data - start) : FEED_STOP;
        }
    }
}

// A read's frames: whole ones in a loop that keeps little else live, the others one at a
// time by feed_frame.
static void frames_feed(wsr_server *srv, conn *c, uint8_t *data, size_t n, size_t *budget) {
    const frame_limits *lim = c->pmd & CP_ON ? &srv->limits_pmd : &srv->limits;
    for (;;) {
        while (c->state == CONN_OPEN) {
            int r = feed_whole(srv, c, lim, &data, &n, budget);
            if (r == WHOLE_STOP) return;
            if (r == WHOLE_NONE) break;
        }
        size_t used = feed_frame(srv, c, lim, data, n, budget);
        if (used == FEED_STOP) return;
        data += used;
        n -= used;
    }
}

// The next step of a message inflated over several rounds. True when it is done and
// the connection can go on; a step that stops for the budget ends the round.
static bool resume_inflate(wsr_server *srv, conn *c, size_t *budget) {
    const uint8_t *d;
    size_t dn;
    uint16_t err = compression_inflate_resume(srv, c, inflate_step(*budget), &d, &dn);
    spend(budget, *budget);
    if (err == COMPRESSION_MORE) {
        if (!server_backlog_add(srv, c)) cut(srv, c, "out of memory");
        return false;
    }
    c->flags2 &= (uint8_t)~CF2_INFLATING;
    if (err) {
        fail_inflate(srv, c, err);
        return false;
    }
    finish_message(srv, c, d, dn, true);
    return !(c->flags & (CF_FAILING | CF_DEAD));
}

// A round over input held from the last one; the socket waits for the next round.
static void feed_held(wsr_server *srv, conn *c, size_t *budget) {
    uint8_t *in = c->msg;
    size_t n = c->msg_len;
    int64_t cap = c->msg_cap;
    c->msg = nullptr;
    c->msg_len = c->msg_cap = 0;
    c->flags2 &= (uint8_t)~CF2_HELD;
    // Payload may be handed out in place, so in lives until the feed returns; what
    // is still left then was copied by hold_over.
    if (c->state == CONN_OPEN || c->state == CONN_CLOSING)
        frames_feed(srv, c, in, n, budget);
    else if (c->state == CONN_HANDSHAKE)
        http_feed(&srv->http, srv, c, in, n, budget);
    free(in);
    server_mem_change(srv, -cap);
}

void conn_on_readable(wsr_server *srv, conn *c) {
    size_t budget = srv->round_budget;
    if (c->flags2 & CF2_AWAITING) return; // the application has the floor
    if (c->state == CONN_UPGRADING) {
        http_finish_upgrade(&srv->http, srv, c, &budget);
        if (c->state != CONN_OPEN || (c->flags & CF_DEAD)) return;
    }
    if ((c->flags2 & CF2_INFLATING) && !resume_inflate(srv, c, &budget)) return;
    if (c->flags2 & CF2_HELD) {
        if (budget) return feed_held(srv, c, &budget);
        if (!server_backlog_add(srv, c)) cut(srv, c, "out of memory");
        return;
    }
    while (budget) {
        const transport_ops *io = conn_io(srv, c);
        size_t want = srv->read_size;
        if ((c->flags2 & CF2_TLS) && want < TLS_RECORD_MAX) want = TLS_RECORD_MAX; // see TLS_RECORD_MAX
        ssize_t n = io->read(srv, c, srv->rbuf, want);
        if (n == -EAGAIN) return;
        if (n == TRANSPORT_WANT_WRITE) return set_want_write(srv, c, true);
        if (n <= 0) {
            if (n < 0) log_debug("read from fd %d failed: %s", c->fd, strerror((int)-n));
            // A peer may send its close and FIN together: our answer, already queued,
            // still goes out on the half-open socket before we let go.
            if (n == 0 && c->out.head) write_out(srv, c);
            // The peer is gone. After a completed close exchange that is the clean end.
            bool clean = (c->flags & CF_CLOSE_SENT) && (c->flags & CF_CLOSE_RECV);
            conn_destroy(srv, c, clean);
            return;
        }
        srv->stats.bytes_in += (uint64_t)n;
        spend(&budget, (size_t)n);
        if (c->state == CONN_OPEN && c->timer_kind[0] != TK_SLOW) {
            // Anything from the peer proves it alive: the heartbeat starts over.
            c->flags2 &= (uint8_t)~CF2_PINGED;
            timers_put(&srv->tm, c, TK_HEARTBEAT);
        }
        if (c->flags & CF_FAILING || c->state == CONN_DRAINING) {
            // Nothing more will be parsed; keep reading so the peer's FIN arrives.
        } else if (c->state == CONN_HANDSHAKE) {
            http_feed(&srv->http, srv, c, srv->rbuf, (size_t)n, &budget);
        } else {
            if (!(c->flags2 & CF2_TLS)) srv->reply.c = c; // TLS writes go through its own buffers
            frames_feed(srv, c, srv->rbuf, (size_t)n, &budget);
            if (srv->reply.c == c) reply_flush(srv, c);
        }
        if (c->flags & (CF_READ_PAUSED | CF_DEAD) || (c->flags2 & CF2_AWAITING) || conn_waits(c)) return;
        // A short read drained the socket, unless the transport holds more itself.
        if ((size_t)n < want && !(io->buffered && io->buffered(srv, c))) return;
    }
}

// --- application requests ----------------------------------------------------------

// A send whose copy would take the server past its memory budget fails the receiver.
static int send_budget(wsr_server *srv, conn *c, size_t len) {
    if (!budget_refuses(srv, c, len + FRAME_MAX_HEADER, false)) return WSR_OK;
    return WSR_CLOSED;
}

int conn_send(wsr_server *srv, conn *c, uint8_t opcode, const void *data, size_t len) {
    if (c->state != CONN_OPEN) return in_http(c) ? WSR_ESTATE : WSR_ECLOSING;
    if (len > srv->opts.max_message) return WSR_ETOOBIG;
    int r = admit(srv, c);
    if (r != WSR_OK) return r;
    const uint8_t *z;
    size_t zlen;
    bool deflated = (c->pmd & CP_ON) && compression_deflate(srv, c, (const uint8_t *)data, len, &z, &zlen);
    if (!deflated) {
        z = (const uint8_t *)data;
        zlen = len;
    }
    r = send_budget(srv, c, zlen);
    // An answer to the connection being read (an echo) joins its reply without the
    // general path's setup; queue_frame would make the same choice.
    if (r == WSR_OK && !(srv->reply.c == c && !c->out.head && reply_add(srv, opcode, z, zlen, deflated)))
        r = queue_frame(srv, c, opcode, z, zlen, deflated);
    if (deflated) compression_release_deflated(srv);
    return r == WSR_OK ? sent_message(srv, c) : r;
}

int conn_send_msg(wsr_server *srv, conn *c, wsr_msg *m) {
    if (c->state != CONN_OPEN) return in_http(c) ? WSR_ESTATE : WSR_ECLOSING;
    if (m->plain->len - m->hdr_len > srv->opts.max_message) return WSR_ETOOBIG;
    int r = admit(srv, c);
    if (r != WSR_OK) return r;
    if (srv->reply.c == c && srv->reply.niov && !reply_spill(srv, c)) return WSR_ENOCONN;
    buf *b = (c->pmd & CP_ON) ? compression_msg_frame(srv, c, m) : m->plain;
    if (outq_push_buf(&c->out, b, 0, b->len) != 0) return WSR_ENOMEM;
    srv->stats.broadcast_sends++;
    queued(srv, c);
    return sent_message(srv, c);
}

int conn_ping(wsr_server *srv, conn *c, const void *data, size_t len) {
    if (c->state != CONN_OPEN) return in_http(c) ? WSR_ESTATE : WSR_ECLOSING;
    if (len > 125) return WSR_EINVAL;
    return queue_frame(srv, c, WS_OP_PING, data, len);
}

int conn_close(wsr_server *srv, conn *c, uint16_t code, const char *reason, size_t reason_len) {
    if (c->flags & CF_DEAD) return WSR_ENOCONN;
    if (in_http(c)) {
        // Cut by the flush pass, not here: this may be inside the request's own callback.
        cut(srv, c, nullptr);
        return WSR_OK;
    }
    if (c->flags & CF_CLOSE_SENT) return WSR_ECLOSING;
    c->close_code = code;
    queue_close(srv, c, code, reason, reason_len);
    return WSR_OK;
}

void conn_on_timeout(wsr_server *srv, conn *c, uint8_t kind) {
    char peer[64];
    switch (kind) {
    case TK_HANDSHAKE:
        if ((c->flags2 & CF2_TLS) && !tls_conn_ready(srv, c)) {
            log_info("TLS handshake from %s timed out", peer_name(srv, c, peer, sizeof peer));
            srv->tls.failures++;
            return conn_destroy(srv, c, false);
        }
        [[fallthrough]];
    case TK_KEEPALIVE:
        // An upgrade accepted later completes in its round, which is already due.
        if (c->state == CONN_HANDSHAKE) http_on_timeout(&srv->http, srv, c);
        return;
    case TK_CLOSE:
        log_info("connection %s did not finish closing in time; cut", peer_name(srv, c, peer, sizeof peer));
        srv->stats.close_timeouts++;
        return conn_destroy(srv, c, false);
    case TK_HEARTBEAT:
        srv->stats.pings_sent++;
        c->flags2 |= CF2_PINGED;
        if (queue_frame(srv, c, WS_OP_PING, nullptr, 0) != WSR_OK || (c->flags & CF_DEAD)) return;
        // With no pong timeout the pings only keep middleboxes from dropping the flow.
        timers_put(&srv->tm, c, srv->opts.pong_timeout_ms ? TK_PONG : TK_HEARTBEAT);
        return;
    case TK_PONG:
        log_info("connection %s stale: silent %u ms after a ping; cut", peer_name(srv, c, peer, sizeof peer),
                 srv->opts.pong_timeout_ms);
        srv->stats.stale_cuts++;
        return conn_destroy(srv, c, false);
    case TK_SLOW:
        log_info("connection %s too slow: %llu bytes unsent for %u ms; closing", peer_name(srv, c, peer, sizeof peer),
                 (unsigned long long)c->out.bytes, srv->tm.lists[TK_SLOW].timeout_ms);
        srv->stats.slow_closes++;
        c->close_code = WS_CLOSE_POLICY;
        queue_close(srv, c, WS_CLOSE_POLICY, "slow consumer", 13);
        return;
    case TK_IDLE:
        log_info("connection %s idle for %u ms; closing", peer_name(srv, c, peer, sizeof peer), srv->opts.idle_timeout_ms);
        srv->stats.idle_closes++;
        c->close_code = WS_CLOSE_GOING_AWAY;
        queue_close(srv, c, WS_CLOSE_GOING_AWAY, "idle timeout", 12);
        return;
    }
}

void conn_destroy(wsr_server *srv, conn *c, bool clean) {
    if (c->state == CONN_FREE || c->fd < 0) return; // fd < 0: inside its own on_close
    if (srv->reply.c == c) {
        srv->reply.c = nullptr;
        srv->reply.niov = 0;
        srv->reply.used = 0;
    }
    timers_remove_all(&srv->tm, c);
    if (counts_as_handshake(c)) srv->handshakes--;
    free_aux(srv, c);
    server_set_address(srv, c, nullptr);
    http_conn_closed(&srv->http, c);
    c->flags2 &= (uint8_t)~(CF2_AWAITING | CF2_DRAIN | CF2_DRAIN_DUE);
    free_message(srv, c);
    c->flags2 &= (uint8_t)~CF2_INFLATING;
    compression_conn_free(srv, c);
    drop_output(srv, c);
    if (const transport_ops *io = conn_io(srv, c); io->close) io->close(srv, c);
    close(c->fd); // also leaves the epoll set
    c->fd = -1;
    bool opened = c->flags & CF_OPENED;
    // close_code is set once a close frame went either way; otherwise the TCP
    // connection simply ended (1006, never sent on the wire).
    uint16_t code = c->close_code ? c->close_code : (uint16_t)WS_CLOSE_ABNORMAL;
    // Dead from here: sends and closes from on_close get WSR_ENOCONN, but the
    // application can still read its user pointer to clean up.
    c->flags |= CF_DEAD;
    if (opened) {
        srv->table_open--;
        stats_count_close(&srv->stats, code);
        const ws_endpoint *ep = http_endpoint(&srv->http, c);
        if (ep->ep.on_close) ep->ep.on_close(srv, conn_id(c), code, ep->user);
    }
    c->state = CONN_FREE;
    if (c->flags & CF_IN_FLUSH)
        srv->held_slots++; // the flush pass still walks through this slot; it releases it
    else
        conn_table_release(&srv->table, c);
    server_conn_gone(srv, clean);
}
