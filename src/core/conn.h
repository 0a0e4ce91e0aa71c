// A connection: its state machine from accept to close, and the byte path between
// the transport and the protocol parsers.
//
// The struct is fixed-size and holds no buffers while idle: the loop-wide read buffer
// serves every read, and only a message that spans reads (or a control frame split
// across reads) gets memory of its own, released when it completes.
#pragma once

#include <stdint.h>
#include <sys/uio.h>

#include "core/outq.h"
#include "proto/frame.h"
#include "wsr/wsr.h"

struct h1_parser;

enum conn_state : uint8_t {
    CONN_FREE,      // slot unused
    CONN_HANDSHAKE, // HTTP: reading requests (an upgrade, or plain HTTP with keep-alive)
    CONN_UPGRADING, // the application accepted the upgrade later: the 101 and on_open
                    // come in the connection's next round
    CONN_OPEN,      // WebSocket open
    CONN_CLOSING,   // our close frame is queued or sent; waiting for the peer's
    CONN_DRAINING,  // all sent and write side shut; discarding input until EOF
};

enum conn_flag : uint8_t {
    CF_WANT_WRITE = 1 << 0,  // EPOLLOUT armed: the kernel did not take everything
    CF_IN_FLUSH = 1 << 1,    // on the server's flush list for this loop iteration
    CF_CLOSE_SENT = 1 << 2,  // a close frame (or an HTTP error) is queued
    CF_CLOSE_RECV = 1 << 3,  // the peer's close frame arrived
    CF_FAILING = 1 << 4,     // no reply is awaited: shut down once the queue drains
    CF_OPENED = 1 << 5,      // on_open ran, so on_close is owed
    CF_READ_PAUSED = 1 << 6, // EPOLLIN off while the out-queue is over its limit
    CF_DEAD = 1 << 7,        // the socket failed; destroyed at the next safe point
};

// Links of one deadline list (see core/timers.h).
struct timer_link {
    uint32_t prev, next; // slot indices; UINT32_MAX = none
    uint32_t deadline;   // loop ms (wrapping) when the timeout fires
};

// permessage-deflate as agreed in the handshake.
enum conn_pmd : uint8_t {
    CP_ON = 1 << 0,      // negotiated: RSV1 allowed on the first frame of a message
    CP_SRV_NCT = 1 << 1, // server_no_context_takeover: our deflater resets per message
    CP_CLI_NCT = 1 << 2, // client_no_context_takeover: our inflater resets per message
};

struct pmd_conn;

enum conn_flag2 : uint8_t {
    CF2_PINGED = 1 << 0, // a heartbeat ping is out; silence until the pong timeout is fatal
    CF2_HELD = 1 << 1,   // msg holds raw input for the next round, not a message: the
                         // connection used up its round's budget (see conn_on_readable)
    CF2_INFLATING = 1 << 2, // a received message is being inflated over several rounds
    CF2_IN_BACKLOG = 1 << 3, // on the server's backlog list for its next round
    CF2_DRAIN = 1 << 4,      // a send was queued or dropped: on_drain is owed once the
                             // unsent bytes fall to the drain mark
    CF2_AWAITING = 1 << 5,   // a request waits for the application's answer: not read, only
                             // watched for the peer leaving
    CF2_DRAIN_DUE = 1 << 6,  // a write brought the unsent bytes to the drain mark: on_drain
                             // runs in the flush pass
    CF2_TLS = 1 << 7,        // from a TLS listener: its bytes go through the TLS transport
};

// What a connection in CONN_HANDSHAKE keeps, in the room the frame parser takes once
// the connection is open.
enum http_flag : uint8_t {
    HF_PROXY = 1 << 0,      // the listener expects a PROXY protocol header first
    HF_ANSWERED = 1 << 1,   // the request being handled has its answer
    HF_ACCEPTED = 1 << 2,   // ... and the answer accepts the upgrade
    HF_BODY = 1 << 3,       // the parser is reading the request's body
    HF_UPGRADE = 1 << 4,    // the request waiting for an answer is an upgrade
    HF_END = 1 << 5,        // answered inside its callback with the last response: the
                            // connection ends once the callback returned (its views live on)
    HF_PROXIED = 1 << 6,    // the client's address came from a PROXY header
    HF_IDLE = 1 << 7,       // kept alive between requests: not counted as a handshake
};
struct http_state {
    uint32_t requests;  // requests answered on this connection (keep-alive)
    uint16_t listener;  // index of the listener that accepted it
    uint8_t flags;      // http_flag
    bool last;          // input behind the waiting request was dropped: its answer is the last
};

struct conn {
    int32_t fd;
    uint32_t gen;        // generation: part of the public id
    uint32_t idx;        // slot in the connection table
    uint8_t state;
    uint8_t flags;
    uint8_t flags2;
    uint8_t utf8;        // validator state of the text message being received
    uint16_t close_code; // reported to on_close
    uint16_t route;      // index into the server's WebSocket endpoints
    uint8_t timer_kind[2]; // which deadline list holds this connection, per lane
    uint8_t ctl_len;     // bytes of a split control frame held in ctl
    uint8_t subproto;    // agreed subprotocol: 1 + index into the server's names; 0 none
    timer_link tl[2];    // lane 0: handshake/close/heartbeat/pong; lane 1: idle
    uint32_t opened_s;   // when the handshake completed: Unix time in seconds (until 2106)
    uint32_t msg_len;    // bytes of the current message held in msg
    uint32_t msg_cap;
    uint8_t pmd;         // conn_pmd flags
    uint8_t pmd_bits;    // agreed window bits: server in the low nibble, client in the high
    union {
        frame_parser fp; // CONN_OPEN and after
        http_state http; // CONN_HANDSHAKE and CONN_UPGRADING
    };
    outq out;
    uint8_t *msg;        // assembly of a message that spans frames or reads
    union {
        h1_parser *hs;   // CONN_HANDSHAKE only
        uint8_t *ctl;    // otherwise: payload of a control frame split across reads
    } aux;
    void *user;
    uint32_t flush_next; // flush list link
};

static_assert(sizeof(conn) <= 168, "conn grew: every idle connection pays for each byte");

static inline wsr_conn_id conn_id(const conn *c) { return ((uint64_t)c->gen << 32) | c->idx; }
// Work left over from a round (held input, a message half inflated): the backlog pass
// gives the connection its next round, and its socket is not read meanwhile.
// An upgrade accepted later waits for its round the same way.
static inline bool conn_waits(const conn *c) {
    return (c->flags2 & (CF2_HELD | CF2_INFLATING)) || c->state == CONN_UPGRADING;
}

// Frames sent to the connection whose input is being parsed, collected while its read
// is parsed and written with one writev once the read is done, before the next read
// (see reply_add in conn.cpp). Payload that lies in the loop-wide read buffer (an echo)
// is referenced there, not copied; the rest is copied into buf. Whatever the kernel does
// not take goes to the connection's out-queue. One per server: only one connection's
// input is parsed at a time.
enum { REPLY_IOV = 32, REPLY_BYTES = 4096 };
struct conn_reply {
    conn *c;        // the connection being read; NULL: none
    int niov;
    size_t used;    // bytes of buf in use
    struct iovec iov[REPLY_IOV];
    uint8_t buf[REPLY_BYTES];
};

// Bytes read, plus bytes inflated, plus 256 per message, that one round may cost.
enum { CONN_ROUND_BUDGET = 256 * 1024 };

// Takes over an accepted, non-blocking socket from a listener: the connection starts in
// CONN_HANDSHAKE (proxy: it must begin with a PROXY protocol header).
void conn_start(conn *c, int fd, uint16_t listener, bool proxy);
// One round of input: read, parse, dispatch, within a budget of bytes read, bytes
// inflated and messages delivered, so that one connection cannot hold the thread while
// others wait. What is left of a read past the budget is held (CF2_HELD) for the next
// round, which the server's backlog pass runs in the next loop iteration.
void conn_on_readable(wsr_server *srv, conn *c);
// Writes as much of the out-queue as the kernel takes; arms or disarms writability,
// finishes a close once everything is out, and destroys a dead connection. Call only
// where no application callback for this connection is on the stack.
void conn_flush(wsr_server *srv, conn *c);
// Queues one unfragmented message or control frame. A WSR_* result.
int conn_send(wsr_server *srv, conn *c, uint8_t opcode, const void *data, size_t len);
// Queues a prepared message by reference (zero-copy broadcast). A WSR_* result.
int conn_send_msg(wsr_server *srv, conn *c, wsr_msg *m);
// Bytes sent to c that the kernel has not taken: its out-queue and, while its read is
// parsed, the frames collected for its reply.
size_t conn_buffered(const wsr_server *srv, const conn *c);
// Queues a ping with an application payload (at most 125 bytes). A WSR_* result.
int conn_ping(wsr_server *srv, conn *c, const void *data, size_t len);
// Starts the closing handshake (RFC 6455 §7.1.2). A WSR_* result.
int conn_close(wsr_server *srv, conn *c, uint16_t code, const char *reason, size_t reason_len);
// A deadline of this connection passed.
void conn_on_timeout(wsr_server *srv, conn *c, uint8_t kind);
// --- services for core/http: a connection before it is a WebSocket ---------------------

// Writes bytes at once when nothing is queued ahead; queues the rest.
void conn_write(wsr_server *srv, conn *c, const struct iovec *iov, int n);
// The last response is queued: close once it is out, without waiting for the peer.
void conn_end_after_output(wsr_server *srv, conn *c);
// Keeps input for the connection's next round (CF2_HELD). False when it could not: past
// the memory budget (nothing changed, the caller ends the connection), or out of memory
// (the connection failed).
bool conn_hold(wsr_server *srv, conn *c, const uint8_t *data, size_t n);
// Appends to the connection's msg buffer, at most max bytes in all, within the memory
// budget (false: the connection failed).
bool conn_buffer(wsr_server *srv, conn *c, const uint8_t *data, size_t n, size_t max);
void conn_buffer_free(wsr_server *srv, conn *c);
// The 101 was written: the connection is a WebSocket now. Runs on_open, then parses
// the frames that came with the request.
void conn_upgraded(wsr_server *srv, conn *c, uint16_t endpoint, const uint8_t *data, size_t n, size_t *budget);
// Arms one of the connection's HTTP deadlines (TK_HANDSHAKE, TK_KEEPALIVE).
void conn_deadline(wsr_server *srv, conn *c, uint8_t kind);
// Waits for the application (CF2_AWAITING: not read; an upgrade is watched for the peer
// leaving, an HTTP request for the connection failing), or reads again; held input
// then gets a round from the backlog pass.
void conn_await(wsr_server *srv, conn *c, bool on);
// Between requests on a kept-alive connection (idle), or in one: only a connection in
// a request counts against max_handshakes.
void conn_http_idle(wsr_server *srv, conn *c, bool idle);
// Marks a connection dead; the flush pass destroys it. why (may be NULL) is logged.
void conn_cut(wsr_server *srv, conn *c, const char *why);

// The one teardown path: closes the socket, reports on_close, frees the slot (at once,
// or after the flush pass if the connection is still on the flush list). clean says
// whether the close handshake completed.
void conn_destroy(wsr_server *srv, conn *c, bool clean);
