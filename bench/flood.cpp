// flood: one WebSocket client that floods an echo endpoint with large messages, so that
// bench/run-flood.sh can measure what it does to everybody else's latency.
//
// usage: flood --url ws://HOST:PORT/echo [--deflate] [OPTION]...   (flood --help)
//
// Two kinds of flood:
//   - plain:   binary messages of --size bytes (1 MiB), uncompressed. The server reads,
//              unmasks, and writes back every byte: the cost is bandwidth.
//   - deflate: the connection negotiates permessage-deflate (RFC 7692) and every message
//              is --size bytes of zeros compressed once, at start, to about 1 KB. The
//              server inflates 1 MiB and (echoing) deflates it again for every kilobyte
//              it reads: the cost is CPU, a thousand times amplified.
//
// "As fast as the server takes them": the flooder keeps --depth messages in flight (sent,
// echo not yet back). The default, 256, is more than one read of the server holds
// (wsreactor reads up to 128 KiB, about 126 compressed messages, at a time), so from the
// server's side this is an unbounded flood; yet when the run stops at most D messages are
// left for the server before the next run (an unbounded client would leave whatever its
// socket buffers hold: thousands of compressed messages, tens of seconds of work).
// It reads every echo: a server rightly stops reading from a client that does not
// (backpressure), and that would end the flood. Every echo is checked (plain: the bytes
// sent; deflate: inflated with our own zlib stream, exactly --size zeros), as wsbench
// checks its echoes.
//
// The payload is compressed by zlib here, not by src/proto/deflate: a server should not
// be tested only against its own encoder. Frames go out masked with a fresh key each
// (RFC 6455 §5.3); server frames are read with the project's frame parser.
//
// Timeline: connect and upgrade; flood; count echoes in the measured window
// [--warmup, --warmup + --duration); keep flooding for --linger seconds more (or until
// SIGINT/SIGTERM, which bench/run-flood.sh sends when the latency run is done); then
// send our close after the last message, read the echoes still owed and the server's
// close answer, and print one key=value line. Exit status 1 on any error, 2 on bad usage.
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <zlib.h>

#include "client.h"
#include "hdr.h"

// --- constants ----------------------------------------------------------------------

enum : uint64_t {
    HANDSHAKE_TIMEOUT_S = 10,
    // After our close: the echoes still owed (up to D messages of server work) and the
    // close answer. A server stalled longer than this is reported, not waited for.
    CLOSE_TIMEOUT_NS = 30 * NS,
};

enum : uint32_t {
    // At most this much per send() and recv(). The flooder shares a core with the latency
    // clients it disturbs, and a kernel that does not preempt system calls (this
    // machine's: "Dynamic Preempt: none") lets a call copying 1 MiB finish before a woken
    // client runs; on return to user space the flooder yields at once (it runs at nice 19
    // in bench/run-flood.sh).
    IO_CHUNK = 64 * 1024,
    RBUF_SIZE = IO_CHUNK,
    READS_PER_WAKEUP = 16,  // then the loop tops the send side up again
    ZBUF_SIZE = 256 * 1024, // inflated echo bytes are checked this much at a time
    BATCH_BYTES = 64 * 1024, // small frames are batched up to this much in the out buffer
};

// What Z_SYNC_FLUSH leaves at the end of a message (RFC 7692 §7.2.1): a sender strips it,
// a receiver appends it again before inflating the end of a message.
static const uint8_t DEFLATE_TAIL[4] = {0x00, 0x00, 0xff, 0xff};

// --- state --------------------------------------------------------------------------

struct flood_opts {
    const char *url;
    bc_url u;
    bool deflate;
    uint32_t size;  // payload bytes of one message (inflated, for --deflate)
    uint32_t depth; // messages in flight
    double warmup, duration, linger;
    bool quiet;
};

struct cpu_snap {
    uint64_t t;
    double cpu_s;
};

struct flood {
    flood_opts o;
    int fd;
    uint64_t rng;
    // What one message carries on the wire, before masking: plain, the payload itself
    // (random bytes); deflate, the compressed zeros.
    uint8_t *wire;
    uint32_t wire_len;
    // Out buffer: whole frames, out[out_off..out_len) not yet taken by the kernel.
    uint8_t *out;
    uint32_t out_off, out_len, out_cap;
    uint64_t sent, recvd; // messages written into the out buffer / echoed back whole
    uint64_t *stamps;     // send time of each message in flight (ring of depth D)
    // Receiving.
    uint8_t *rbuf, *zbuf;
    bc_rx rx;
    frame_limits lim;
    z_stream zin;
    bool zin_ready;
    bool deflate_accepted; // the upgrade answer accepted our permessage-deflate offer
    bool server_takeover;  // the server keeps its deflate window between messages
    bool rx_compressed;    // the message being received had RSV1
    uint64_t rx_len;       // its payload bytes so far (inflated)
    bool close_sent, close_rcvd, eof;
    // The run.
    uint64_t t_start, t_measure, t_end, t_stop;
    bool measuring, stopping, ready;
    cpu_snap cpu0, cpu1;
    hdr_hist rtt;
    uint64_t msgs, wire_sent, wire_rcvd; // within the measured window
    bc_errors err;
};

// One connection: error lines name none (see bc_error).
enum : long { NO_CONN = -1 };

static void cpu_take(cpu_snap *s) {
    s->t = bc_mono_ns();
    s->cpu_s = bc_cpu_self_s();
}

// --- the payload --------------------------------------------------------------------

// --size zeros as one RFC 7692 message: raw DEFLATE (negative windowBits), ended with
// Z_SYNC_FLUSH, the 00 00 ff ff that flush leaves at the end stripped. Level 9: the
// smaller the message, the larger the amplification the server has to absorb.
static int payload_deflate_zeros(flood *f) {
    uint8_t *zeros = (uint8_t *)calloc(f->o.size, 1);
    z_stream z = {};
    if (!zeros || deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY) != Z_OK) {
        free(zeros);
        return -1;
    }
    uLong cap = deflateBound(&z, f->o.size) + 16;
    f->wire = (uint8_t *)malloc(cap);
    int r = Z_STREAM_ERROR;
    if (f->wire) {
        z.next_in = zeros;
        z.avail_in = f->o.size;
        z.next_out = f->wire;
        z.avail_out = (uInt)cap;
        r = deflate(&z, Z_SYNC_FLUSH);
    }
    uint32_t n = (uint32_t)(cap - z.avail_out);
    deflateEnd(&z);
    free(zeros);
    if (r != Z_OK || z.avail_in != 0 || n < 4 || memcmp(f->wire + n - 4, DEFLATE_TAIL, 4) != 0) return -1;
    f->wire_len = n - 4;
    return 0;
}

static int payload_init(flood *f) {
    if (f->o.deflate) return payload_deflate_zeros(f);
    // Random bytes: nothing on the way (the server, the kernel) can shortcut them.
    f->wire = (uint8_t *)malloc(f->o.size);
    if (!f->wire) return -1;
    for (uint32_t i = 0; i < f->o.size; i += 8) {
        uint64_t r = bc_rng_next(&f->rng);
        memcpy(f->wire + i, &r, f->o.size - i < 8 ? f->o.size - i : 8);
    }
    f->wire_len = f->o.size;
    return 0;
}

// --- connecting ---------------------------------------------------------------------

// The server's answer to our permessage-deflate offer (RFC 7692 §7.1). We offered
// client_no_context_takeover only; the server may add server_no_context_takeover and
// server_max_window_bits (our inflater takes any window up to 15). Anything else is an
// answer to an offer we did not make.
static const char *extension_check(void *ctx, char *v) {
    flood *f = (flood *)ctx;
    char *save = nullptr;
    char *param = strtok_r(v, ";", &save);
    if (!param) return "empty Sec-WebSocket-Extensions";
    while (*param == ' ' || *param == '\t') param++;
    char *e = param + strlen(param);
    while (e > param && (e[-1] == ' ' || e[-1] == '\t')) *--e = 0;
    if (strcasecmp(param, "permessage-deflate") != 0) return "an extension we did not offer";
    f->server_takeover = true;
    while ((param = strtok_r(nullptr, ";", &save))) {
        while (*param == ' ' || *param == '\t') param++;
        e = param + strlen(param);
        while (e > param && (e[-1] == ' ' || e[-1] == '\t')) *--e = 0;
        if (strcasecmp(param, "server_no_context_takeover") == 0)
            f->server_takeover = false;
        else if (strcasecmp(param, "client_no_context_takeover") == 0)
            ; // we compress every message alone anyway
        else if (strncasecmp(param, "server_max_window_bits", 22) == 0)
            ; // an inflater with window 15 decodes any smaller window
        else
            return "a permessage-deflate parameter we did not offer";
    }
    f->deflate_accepted = true;
    return nullptr;
}

static void flood_on_bytes(flood *f, uint8_t *data, size_t len, uint64_t now);

// Connects and upgrades with blocking calls (one connection: nothing else to do while
// waiting), bounded by socket timeouts; then the socket turns non-blocking. Returns 0,
// or -1 after counting the error.
static int flood_connect(flood *f) {
    const flood_opts *o = &f->o;
    f->fd = socket(o->u.addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (f->fd < 0) {
        bc_error(&f->err, NO_CONN, BC_ERR_CONNECT, "socket: %s", strerror(errno));
        return -1;
    }
    timeval tv = {HANDSHAKE_TIMEOUT_S, 0};
    setsockopt(f->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(f->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(f->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(f->fd, (const sockaddr *)&o->u.addr, o->u.addr_len) != 0) {
        bc_error(&f->err, NO_CONN, BC_ERR_CONNECT, "connect: %s", strerror(errno));
        return -1;
    }
    char key[32], accept[32];
    bc_nonce(&f->rng, EVP_sha1(), key, accept);
    char req[1400];
    int rl = bc_request_head(req, sizeof req, &o->u);
    if (rl > 0 && rl < (int)sizeof req)
        rl += snprintf(req + rl, sizeof req - (size_t)rl, "Sec-WebSocket-Key: %s\r\nUser-Agent: wsbench-flood\r\n%s\r\n", key,
                       o->deflate ? "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover\r\n" : "");
    if (rl <= 0 || rl >= (int)sizeof req) {
        bc_error(&f->err, NO_CONN, BC_ERR_HANDSHAKE, "URL too long");
        return -1;
    }
    if (send(f->fd, req, (size_t)rl, MSG_NOSIGNAL) != rl) {
        bc_error(&f->err, NO_CONN, BC_ERR_HANDSHAKE, "sending the upgrade request: %s", strerror(errno));
        return -1;
    }
    char hs[BC_HS_MAX + 1];
    size_t have = 0;
    long head_len = 0;
    while (head_len == 0) {
        ssize_t r = recv(f->fd, hs + have, BC_HS_MAX - have, 0);
        if (r <= 0) {
            bc_error(&f->err, NO_CONN, BC_ERR_HANDSHAKE, "no upgrade answer: %s",
                     r ? strerror(errno) : "connection ended");
            return -1;
        }
        have += (size_t)r;
        head_len = bc_response_head(hs, have);
        if (head_len < 0) {
            bc_error(&f->err, NO_CONN, BC_ERR_HANDSHAKE, "no end of the response head in %zu bytes", have);
            return -1;
        }
    }
    char status[64];
    const char *why = bc_handshake_check(hs, accept, o->deflate ? extension_check : nullptr, f, status, sizeof status);
    // Without the extension the server would fail our RSV1 frames: not a flood at all.
    if (!why && o->deflate && !f->deflate_accepted) why = "permessage-deflate was not accepted";
    if (why) {
        bc_error(&f->err, NO_CONN, BC_ERR_HANDSHAKE, "%s (%s)", why, status);
        return -1;
    }
    tv = {0, 0};
    setsockopt(f->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(f->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    fcntl(f->fd, F_SETFL, fcntl(f->fd, F_GETFL) | O_NONBLOCK);
    // Frames may already follow the head (none are owed yet, so any is an error).
    if (have > (size_t)head_len) flood_on_bytes(f, (uint8_t *)hs + head_len, have - (size_t)head_len, bc_mono_ns());
    return 0;
}

// --- sending ------------------------------------------------------------------------

static uint32_t frame_max(const flood *f) { return f->wire_len + FRAME_MAX_HEADER; }

// Out-buffer bytes usable for messages: one message, or a batch of small ones. The
// rest of out_cap is kept for a pong and our close.
static uint32_t data_cap(const flood *f) { return frame_max(f) > BATCH_BYTES ? frame_max(f) : BATCH_BYTES; }

static void write_frame(flood *f, uint8_t opcode, bool rsv1, const uint8_t *payload, size_t len) {
    f->out_len += (uint32_t)bc_frame(f->out + f->out_len, &f->rng, opcode, rsv1, payload, len);
}

static void flood_write_message(flood *f, uint64_t now) {
    write_frame(f, WS_OP_BINARY, f->o.deflate, f->wire, f->wire_len);
    f->stamps[f->sent % f->o.depth] = now;
    f->sent++;
}

static void flood_write_close(flood *f) {
    static const uint8_t body[2] = {WS_CLOSE_NORMAL >> 8, WS_CLOSE_NORMAL & 0xff};
    write_frame(f, WS_OP_CLOSE, false, body, 2);
    f->close_sent = true;
}

static void flood_cut(flood *f) {
    if (f->fd >= 0) close(f->fd);
    f->fd = -1;
}

// Tops the out buffer up to D messages in flight and writes until the kernel takes no
// more. Only whole frames are ever appended, so our close can follow the last message.
static void flood_flush(flood *f, uint64_t now) {
    while (f->fd >= 0) {
        if (f->out_off == f->out_len) f->out_off = f->out_len = 0;
        while (!f->stopping && f->sent - f->recvd < f->o.depth && f->out_len + frame_max(f) <= data_cap(f))
            flood_write_message(f, now);
        if (f->stopping && !f->close_sent) flood_write_close(f);
        if (f->out_off == f->out_len) return;
        uint32_t want = f->out_len - f->out_off < IO_CHUNK ? f->out_len - f->out_off : IO_CHUNK;
        ssize_t n = send(f->fd, f->out + f->out_off, want, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) return;
            bc_error(&f->err, NO_CONN, BC_ERR_CLOSED, "send: %s", strerror(errno));
            flood_cut(f);
            return;
        }
        f->out_off += (uint32_t)n;
        if (f->measuring) f->wire_sent += (uint64_t)n;
    }
}

// --- receiving ----------------------------------------------------------------------

static bool all_zero(const uint8_t *p, size_t n) {
    static const uint8_t zeros[4096] = {};
    while (n) {
        size_t k = n < sizeof zeros ? n : sizeof zeros;
        if (memcmp(p, zeros, k) != 0) return false;
        p += k;
        n -= k;
    }
    return true;
}

// Checks echoed payload bytes (inflated, if the echo was compressed) at offset rx_len
// of the message: plain, the bytes we sent; deflate, zeros.
static bool echo_check(flood *f, const uint8_t *data, size_t len) {
    if (f->rx_len + len > f->o.size) {
        bc_error(&f->err, NO_CONN, BC_ERR_PAYLOAD, "echo %llu is longer than the %u bytes sent",
                 (unsigned long long)f->recvd, f->o.size);
        return false;
    }
    bool ok = f->o.deflate ? all_zero(data, len) : memcmp(data, f->wire + f->rx_len, len) == 0;
    if (!ok)
        bc_error(&f->err, NO_CONN, BC_ERR_PAYLOAD, "echo %llu differs from what was sent", (unsigned long long)f->recvd);
    f->rx_len += len;
    return ok;
}

// Inflates compressed echo bytes a buffer at a time and checks what comes out, so a
// 1 MiB echo never has to be held whole.
static bool echo_inflate(flood *f, const uint8_t *in, size_t len) {
    z_stream *z = &f->zin;
    z->next_in = (Bytef *)in; // zlib does not write through it
    z->avail_in = (uInt)len;
    for (;;) {
        z->next_out = f->zbuf;
        z->avail_out = ZBUF_SIZE;
        int r = inflate(z, Z_SYNC_FLUSH);
        size_t got = ZBUF_SIZE - z->avail_out;
        if (r != Z_OK && r != Z_BUF_ERROR && r != Z_STREAM_END) {
            bc_error(&f->err, NO_CONN, BC_ERR_PAYLOAD, "echo %llu: zlib: %s", (unsigned long long)f->recvd,
                     z->msg ? z->msg : "error");
            return false;
        }
        if (got && !echo_check(f, f->zbuf, got)) return false;
        // A final block ends the zlib stream (RFC 7692 §7.2.3.4 allows it); what follows
        // in this message starts a new one.
        if (r == Z_STREAM_END) inflateReset(z);
        if (z->avail_in == 0 && z->avail_out != 0) return true;
        if (r == Z_BUF_ERROR && z->avail_out != 0) return true; // no progress possible: needs more input
    }
}

static void flood_message_done(flood *f, uint64_t now) {
    uint64_t sent_at = f->stamps[f->recvd % f->o.depth];
    if (f->measuring) {
        hdr_record(&f->rtt, now > sent_at ? now - sent_at : 0);
        f->msgs++;
    }
    f->recvd++;
    if (!f->ready) {
        // bench/run-flood.sh waits for this line before it starts the latency clients.
        f->ready = true;
        fprintf(stderr, "flood: flooding (first echo after %.1f ms)\n", (double)(now - f->t_start) / 1e6);
    }
}

static void flood_on_control(flood *f, uint8_t opcode) {
    if (opcode == WS_OP_PING) {
        if (!f->close_sent && f->out_len + 2 * BC_CTL_FRAME_MAX <= f->out_cap)
            write_frame(f, WS_OP_PONG, false, f->rx.ctl, f->rx.ctl_len);
    } else if (opcode == WS_OP_CLOSE) {
        uint16_t bad;
        bc_close_check(&f->err, NO_CONN, &f->rx, f->close_sent, &bad);
        f->close_rcvd = true;
        // The server ended the session on its own: the flood did not run as asked.
        if (!f->close_sent) f->stopping = true; // flood_flush answers with our close
    }
}

// Validates and consumes server bytes after the upgrade: frames in place (server frames
// are unmasked), payload checked as it arrives.
static void flood_on_bytes(flood *f, uint8_t *data, size_t len, uint64_t now) {
    frame_event ev;
    while (bc_rx_next(&f->rx, &f->lim, &data, &len, &ev)) {
        switch (ev.type) {
        case FRAME_ERROR:
            bc_error(&f->err, NO_CONN, BC_ERR_PROTOCOL, "%s (close %u)", ev.reason, ev.close_code);
            flood_cut(f);
            return;
        case FRAME_HEADER: // of a data frame
            if (ev.opcode != WS_OP_CONT) {
                if (ev.opcode != WS_OP_BINARY) {
                    bc_error(&f->err, NO_CONN, BC_ERR_PAYLOAD, "echo opcode %u, sent binary", ev.opcode);
                    flood_cut(f);
                    return;
                }
                if (f->recvd >= f->sent) {
                    bc_error(&f->err, NO_CONN, BC_ERR_PAYLOAD, "a message that answers nothing we sent");
                    flood_cut(f);
                    return;
                }
                f->rx_len = 0;
                f->rx_compressed = ev.rsv1;
            }
            break;
        case FRAME_PAYLOAD: // of a data frame
            if (!(f->rx_compressed ? echo_inflate(f, ev.data, ev.len) : echo_check(f, ev.data, ev.len))) {
                flood_cut(f);
                return;
            }
            break;
        case FRAME_END:
            if (ws_opcode_is_control(ev.opcode)) {
                flood_on_control(f, ev.opcode);
                break;
            }
            if (!ev.fin) break;
            if (f->rx_compressed) {
                if (!echo_inflate(f, DEFLATE_TAIL, sizeof DEFLATE_TAIL)) {
                    flood_cut(f);
                    return;
                }
                // Without takeover each echo is its own stream; with it, the window stays.
                if (!f->server_takeover) inflateReset(&f->zin);
            }
            if (f->rx_len != f->o.size) {
                bc_error(&f->err, NO_CONN, BC_ERR_PAYLOAD, "echo %llu has %llu bytes, sent %u", (unsigned long long)f->recvd,
                         (unsigned long long)f->rx_len, f->o.size);
                flood_cut(f);
                return;
            }
            flood_message_done(f, now);
            break;
        }
    }
}

static void flood_read(flood *f) {
    for (uint32_t i = 0; i < READS_PER_WAKEUP && f->fd >= 0; i++) {
        ssize_t n = recv(f->fd, f->rbuf, RBUF_SIZE, 0);
        uint64_t now = bc_mono_ns();
        if (n > 0) {
            if (f->measuring) f->wire_rcvd += (uint64_t)n;
            flood_on_bytes(f, f->rbuf, (size_t)n, now);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
        // The server ends TCP after the close exchange (RFC 6455 §7.1.1); before it,
        // the session was cut.
        if (!f->close_rcvd)
            bc_error(&f->err, NO_CONN, BC_ERR_CLOSED, "%s",
                     n == 0 ? "server ended the connection without a close frame" : strerror(errno));
        f->eof = true;
        return;
    }
}

// --- the run ------------------------------------------------------------------------

static void window_begin(flood *f) {
    f->measuring = true;
    hdr_reset(&f->rtt);
    f->msgs = f->wire_sent = f->wire_rcvd = 0;
    cpu_take(&f->cpu0);
}

static void window_end(flood *f) {
    f->measuring = false;
    cpu_take(&f->cpu1);
}

static void flood_run(flood *f) {
    uint64_t now = bc_mono_ns();
    f->t_start = now;
    f->t_measure = now + (uint64_t)(f->o.warmup * 1e9);
    f->t_end = f->t_measure + (uint64_t)(f->o.duration * 1e9);
    f->t_stop = f->t_end + (uint64_t)(f->o.linger * 1e9);
    uint64_t close_deadline = UINT64_MAX;
    bool window_done = false;
    while (f->fd >= 0 && !f->eof) {
        now = bc_mono_ns();
        if (!window_done && !f->measuring && now >= f->t_measure) window_begin(f);
        if (f->measuring && now >= f->t_end) {
            window_end(f);
            window_done = true;
        }
        if (!f->stopping && (bc_interrupted || now >= f->t_stop)) f->stopping = true;
        if (f->stopping && close_deadline == UINT64_MAX) {
            // A signal inside the window ends it there: count only what ran.
            if (f->measuring) window_end(f);
            window_done = true;
            close_deadline = now + CLOSE_TIMEOUT_NS;
        }
        if (now >= close_deadline) {
            if (!f->close_rcvd)
                bc_error(&f->err, NO_CONN, BC_ERR_TIMEOUT, "no close answer within %llu s (%llu echoes still owed)",
                         (unsigned long long)(CLOSE_TIMEOUT_NS / NS), (unsigned long long)(f->sent - f->recvd));
            break;
        }
        flood_flush(f, now);
        if (f->fd < 0) break;
        uint64_t wake = now + 100 * 1000 * 1000; // also notices a signal that raced poll()
        if (!window_done && !f->measuring && f->t_measure < wake) wake = f->t_measure;
        if (f->measuring && f->t_end < wake) wake = f->t_end;
        if (!f->stopping && f->t_stop < wake) wake = f->t_stop;
        if (close_deadline < wake) wake = close_deadline;
        int ms = wake > now ? (int)((wake - now + 999999) / 1000000) : 0;
        pollfd p = {f->fd, (short)(POLLIN | (f->out_off < f->out_len ? POLLOUT : 0)), 0};
        if (poll(&p, 1, ms) > 0 && (p.revents & (POLLIN | POLLERR | POLLHUP))) flood_read(f);
    }
    if (f->measuring) window_end(f);
    if (f->cpu0.t == 0) f->cpu0 = f->cpu1 = {bc_mono_ns(), bc_cpu_self_s()}; // stopped before the window: rates are 0
    flood_cut(f);
}

// --- results ------------------------------------------------------------------------

static void flood_report(const flood *f) {
    const flood_opts *o = &f->o;
    double window = (double)(f->cpu1.t - f->cpu0.t) / 1e9;
    double per_s = window > 0 ? 1.0 / window : 0;
    double rate = (double)f->msgs * per_s;
    double mbps = (double)f->msgs * o->size * per_s / 1e6;
    double out_mbps = (double)f->wire_sent * per_s / 1e6, in_mbps = (double)f->wire_rcvd * per_s / 1e6;
    double cpu = window > 0 ? 100.0 * (f->cpu1.cpu_s - f->cpu0.cpu_s) / window : 0;
    double p50 = (double)hdr_percentile(&f->rtt, 0.5) / 1e3, p99 = (double)hdr_percentile(&f->rtt, 0.99) / 1e3,
           mx = (double)f->rtt.max / 1e3;
    uint64_t errs = bc_errors_total(&f->err);
    const char *mode = o->deflate ? "deflate" : "plain";
    if (!o->quiet) {
        fprintf(stderr, "\nflood %s  %s  %u B binary%s, %u on the wire, %u in flight\n", mode, o->url, o->size,
                o->deflate ? " (zeros, permessage-deflate)" : "", f->wire_len, o->depth);
        fprintf(stderr, "  window       %.2f s after %.1f s warmup\n", window, o->warmup);
        fprintf(stderr, "  echoed       %llu (%.0f/s), %.2f MB/s of payload; wire %.2f MB/s out, %.2f MB/s in\n",
                (unsigned long long)f->msgs, rate, mbps, out_mbps, in_mbps);
        fprintf(stderr, "  round trip   p50 %.1f  p99 %.1f  max %.1f (us)\n", p50, p99, mx);
        fprintf(stderr, "  cpu          client %.1f %% of one core\n", cpu);
        bc_errors_print(stderr, &f->err);
    }
    printf("scenario=flood mode=%s url=%s size=%u wire_size=%u depth=%u duration_s=%.3f msgs=%llu msgs_per_s=%.1f "
           "mb_per_s=%.2f wire_out_mb_per_s=%.3f wire_in_mb_per_s=%.3f rtt_p50_us=%.1f rtt_p99_us=%.1f rtt_max_us=%.1f "
           "errors=%llu",
           mode, o->url, o->size, f->wire_len, o->depth, window, (unsigned long long)f->msgs, rate, mbps, out_mbps, in_mbps,
           p50, p99, mx, (unsigned long long)errs);
    for (int i = 0; i < BC_ERR_COUNT; i++)
        if (f->err.count[i]) printf(" errors_%s=%llu", bc_err_names[i], (unsigned long long)f->err.count[i]);
    printf(" client_cpu_pct=%.1f\n", cpu);
    fflush(stdout);
}

// --- command line -------------------------------------------------------------------

static void usage(FILE *out) {
    fprintf(out,
            "usage: flood --url ws://HOST:PORT/PATH [OPTION]...\n"
            "One WebSocket client flooding an echo endpoint with large binary messages, reading\n"
            "and checking every echo (bench/run-flood.sh runs it beside wsbench latency).\n"
            "\n"
            "Options (defaults in brackets):\n"
            "  --url URL         ws://HOST:PORT/PATH [ws://127.0.0.1:8080/echo]\n"
            "  --plain           send SIZE bytes of random data uncompressed [the default]\n"
            "  --deflate         negotiate permessage-deflate (client_no_context_takeover) and send\n"
            "                    SIZE zeros compressed (about 1 KB for 1 MiB), RSV1 set\n"
            "  --size S          message payload bytes (inflated); k/m suffix [1m]\n"
            "  --depth D         messages in flight (sent, echo not back yet) [256]\n"
            "  --warmup T        seconds before the measured window [1]\n"
            "  --duration T      measured seconds [5]\n"
            "  --linger T        seconds to keep flooding after the window (SIGINT/SIGTERM\n"
            "                    stops earlier) [0]\n"
            "  --quiet           no summary on stderr\n"
            "  --help\n"
            "\n"
            "Prints \"flood: flooding\" on stderr at the first echo, a summary on stderr, then one\n"
            "line key=value ... (mode size wire_size msgs_per_s mb_per_s wire_out_mb_per_s\n"
            "rtt_p50_us rtt_p99_us errors client_cpu_pct) on stdout. Exit status 1 if any error\n"
            "was counted (handshake, invalid frame, wrong echo, close by the server, timeout),\n"
            "2 for bad usage.\n");
}

// Seconds: what bc_parse_double takes, up to 1e6 (nan is no number of seconds).
static bool parse_seconds(const char *s, double *out) {
    double v;
    if (!bc_parse_double(s, &v) || !(v <= 1e6)) return false;
    *out = v;
    return true;
}

// Returns 0, 1 after --help, 2 on bad usage.
static int parse_args(flood_opts *o, int argc, char **argv) {
    memset(o, 0, sizeof *o);
    o->url = "ws://127.0.0.1:8080/echo";
    o->size = 1u << 20;
    o->depth = 256;
    o->warmup = 1;
    o->duration = 5;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 1;
        }
        if (strcmp(a, "--plain") == 0) {
            o->deflate = false;
            continue;
        }
        if (strcmp(a, "--deflate") == 0) {
            o->deflate = true;
            continue;
        }
        if (strcmp(a, "--quiet") == 0) {
            o->quiet = true;
            continue;
        }
        if (strncmp(a, "--", 2) != 0) return bc_usage_error("flood", "unexpected argument '%s'", a);
        char name[32];
        const char *val = bc_option(a, name, sizeof name);
        if (!val) {
            if (i + 1 >= argc) return bc_usage_error("flood", "--%s needs a value (see --help)", name);
            val = argv[++i];
        }
        uint64_t u = 0;
        bool ok;
        if (strcmp(name, "url") == 0) {
            o->url = val;
            ok = true;
        } else if (strcmp(name, "size") == 0) {
            ok = bc_parse_u64(val, true, &u) && u >= 1 && u <= (64u << 20);
            o->size = (uint32_t)u;
        } else if (strcmp(name, "depth") == 0) {
            ok = bc_parse_u64(val, true, &u) && u >= 1 && u <= 4096;
            o->depth = (uint32_t)u;
        } else if (strcmp(name, "warmup") == 0) {
            ok = parse_seconds(val, &o->warmup);
        } else if (strcmp(name, "duration") == 0) {
            ok = parse_seconds(val, &o->duration) && o->duration > 0;
        } else if (strcmp(name, "linger") == 0) {
            ok = parse_seconds(val, &o->linger);
        } else {
            return bc_usage_error("flood", "unknown option --%s (see --help)", name);
        }
        if (!ok) return bc_usage_error("flood", "invalid value '%s' for --%s", val, name);
    }
    if (!bc_parse_url(o->url, BC_URL_WS, &o->u))
        return bc_usage_error("flood", "cannot use URL '%s' (ws://HOST:PORT/PATH)", o->url);
    return 0;
}

// --- setup --------------------------------------------------------------------------

static int flood_init(flood *f) {
    f->fd = -1;
    f->err.prog = "flood";
    f->rng = bc_rng_seed();
    if (payload_init(f) != 0) {
        fprintf(stderr, "flood: cannot build the payload\n");
        return -1;
    }
    f->out_cap = data_cap(f) + 2 * BC_CTL_FRAME_MAX; // a pong and our close always fit
    f->out = (uint8_t *)malloc(f->out_cap);
    f->stamps = (uint64_t *)calloc(f->o.depth, sizeof(uint64_t));
    f->rbuf = (uint8_t *)malloc(RBUF_SIZE);
    f->zbuf = (uint8_t *)malloc(ZBUF_SIZE);
    if (!f->out || !f->stamps || !f->rbuf || !f->zbuf) {
        fprintf(stderr, "flood: out of memory\n");
        return -1;
    }
    if (inflateInit2(&f->zin, -15) != Z_OK) {
        fprintf(stderr, "flood: zlib: cannot make an inflater\n");
        return -1;
    }
    f->zin_ready = true;
    bc_rx_init(&f->rx);
    f->lim.max_message = UINT64_MAX >> 2; // echo lengths are checked against what we sent
    f->lim.allow_rsv1 = f->o.deflate;
    f->lim.expect_masked = false;
    hdr_reset(&f->rtt);
    return 0;
}

static void flood_free(flood *f) {
    flood_cut(f);
    if (f->zin_ready) inflateEnd(&f->zin);
    free(f->wire);
    free(f->out);
    free(f->stamps);
    free(f->rbuf);
    free(f->zbuf);
}

int main(int argc, char **argv) {
    static flood f; // holds a histogram; keep it off the stack
    int r = parse_args(&f.o, argc, argv);
    if (r) return r == 1 ? 0 : 2;
    bc_signals();
    if (flood_init(&f) != 0) {
        flood_free(&f);
        return 2;
    }
    if (flood_connect(&f) == 0) flood_run(&f);
    flood_report(&f);
    uint64_t errs = bc_errors_total(&f.err);
    flood_free(&f);
    return errs ? 1 : 0;
}
