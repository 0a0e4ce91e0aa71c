// What the benchmark clients share: wsbench (many connections on epoll) and flood (one
// connection on poll) differ in how they wait, not in what a WebSocket client does.
//
//   - the command line: numbers, seconds, "--name=value" options, ws:// and wss:// URLs;
//   - time, CPU time, the stop signals, and the xorshift generator that draws nonces and
//     masking keys;
//   - errors counted by kind, the first few printed;
//   - the upgrade: the request, the nonce and the accept it implies, the check of the
//     server's answer;
//   - frames out masked with a fresh key each (RFC 6455 §5.3); frames in read in place
//     with the project's frame parser, control frames collected whole, the close checked;
//   - TLS for wss:// (OpenSSL on the non-blocking socket): bc_recv and bc_send are recv
//     and send when a connection has no SSL, so plain connections pay one pointer test.
//
// Names carry the prefix bc_ (bench client). What runs once per message is inline here;
// the rest is in client.cpp, compiled into both programs.
#pragma once

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "proto/frame.h"

static constexpr uint64_t NS = 1000000000ull; // nanoseconds in a second

enum : uint32_t {
    BC_HS_MAX = 4096,            // largest upgrade response we accept
    BC_CTL_FRAME_MAX = 14 + 125, // a masked control frame
};

// --- time, CPU, randomness, signals ---------------------------------------------------

static inline uint64_t bc_mono_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * NS + (uint64_t)ts.tv_nsec;
}

// User + system seconds of this process.
static inline double bc_cpu_self_s() {
    rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static inline uint64_t bc_rng_next(uint64_t *s) { // xorshift64*
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

// A seed for bc_rng_next: from getrandom(), else the clock; never 0.
uint64_t bc_rng_seed();

// Set by SIGINT and SIGTERM once bc_signals() has run; a program may clear it to notice
// the next one. SIGPIPE is ignored: a send to a closed connection reports EPIPE instead.
extern volatile sig_atomic_t bc_interrupted;
void bc_signals();

// --- errors ---------------------------------------------------------------------------

enum bc_err_kind : uint8_t {
    BC_ERR_CONNECT,   // TCP connect failed
    BC_ERR_HANDSHAKE, // not a valid 101 answer
    BC_ERR_PROTOCOL,  // an invalid frame (frame parser) or a bad close payload
    BC_ERR_PAYLOAD,   // wrong opcode, length, bytes or order; a reply nobody asked for
    BC_ERR_UTF8,      // a text message that is not UTF-8 (wsbench sends text, flood does not)
    BC_ERR_CLOSED,    // the server closed or reset the connection during the run
    BC_ERR_TIMEOUT,   // no handshake, reply or close answer within its bound
    BC_ERR_TLS,       // the TLS handshake failed (certificate, version, alert) or a TLS record was bad
    BC_ERR_COUNT
};
extern const char *const bc_err_names[BC_ERR_COUNT];

struct bc_errors {
    const char *prog; // printed lines start "PROG: "
    uint64_t count[BC_ERR_COUNT];
    uint32_t printed;
};

// Counts an error of kind k. The first ten are printed on stderr as "PROG: conn N: KIND
// error: MESSAGE" ("PROG: KIND error: MESSAGE" when conn < 0), the rest only counted.
void bc_error(bc_errors *e, long conn, bc_err_kind k, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
uint64_t bc_errors_total(const bc_errors *e);
// The summary line "  errors       N  kind=n ..." with its newline.
void bc_errors_print(FILE *out, const bc_errors *e);

// --- the command line ------------------------------------------------------------------

// Says on stderr, as "PROG: MESSAGE", what is wrong with the command line; returns 2, the
// exit status for bad usage.
int bc_usage_error(const char *prog, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// A decimal number; with suffix, a k or m after it multiplies by 1024 or 1024 * 1024.
bool bc_parse_u64(const char *s, bool suffix, uint64_t *out);
// A number that is not negative (nan passes this test; callers bound what they take).
bool bc_parse_double(const char *s, double *out);
// "--name=value" or "--name": copies name (cut to n - 1 bytes); returns the value after
// the '=', or nullptr when there is none.
const char *bc_option(const char *arg, char *name, size_t n);

struct bc_url {
    bool tls; // wss://
    char host[256];
    char port[8];
    char path[512];
    sockaddr_storage addr;
    socklen_t addr_len;
};

enum : unsigned {
    BC_URL_WS = 1,  // ws://
    BC_URL_WSS = 2, // wss:// (u->tls)
    BC_URL_TCP = 4, // tcp://HOST:PORT
};

// A URL of one of the schemes (BC_URL_*): ws://HOST:PORT/PATH, wss://HOST:PORT/PATH or
// tcp://HOST:PORT; [v6] hosts in brackets; the port defaults to 80 (wss: 443) and the
// path to /. Resolves the address; false when it cannot.
bool bc_parse_url(const char *url, unsigned schemes, bc_url *u);

// --- TLS (wss://) ----------------------------------------------------------------------

struct bc_tls_opts {
    bool tls12;    // TLS 1.2 only; else TLS 1.3 only
    bool insecure; // no certificate verification
    bool resume;   // offer the session of the slot's previous connection (bc_tls_new)
    bool lean;     // release OpenSSL's record buffers while empty (many idle connections)
    const char *ca; // trust these PEM certificates instead of the system's
};

// A client context for u: the version, verification (the certificate must name u's host
// or IP address, unless insecure), ALPN http/1.1 as browsers send for WebSocket, reading
// ahead (a recv takes several records). Without resume no session is offered, so every
// handshake is a full one. nullptr, with the reason in err, when it cannot be made.
SSL_CTX *bc_tls_ctx_new(const bc_tls_opts *o, const bc_url *u, char *err, size_t errlen);

// A client session on the connected socket fd, with SNI for a host name. With resume,
// *slot is the session offered (nullptr: none yet) and receives the one the server
// issues (tickets); the caller frees it with SSL_SESSION_free. nullptr when out of memory.
SSL *bc_tls_new(SSL_CTX *ctx, int fd, const bc_url *u, SSL_SESSION **slot);

// Advances the handshake: 1 done, 0 not yet (*want_write: wait for writability, else for
// readability), -1 failed (bc_tls_error says why).
int bc_tls_connect(SSL *ssl, bool *want_write);

// Why the last TLS operation on ssl failed: the certificate check or OpenSSL's reason.
const char *bc_tls_error(SSL *ssl);

// What the handshake agreed: "TLSv1.3", the cipher, the key exchange group.
void bc_tls_describe(SSL *ssl, const char **version, const char **cipher, const char **group);

// Out of line: the TLS halves of bc_recv and bc_send.
ssize_t bc_tls_read(SSL *ssl, void *buf, size_t len);
ssize_t bc_tls_write(SSL *ssl, const void *buf, size_t len);

// recv(fd, buf, len, 0), or over TLS when ssl is set: bytes read, 0 at the end of the
// stream (TLS: the server's close_notify, which is answered, or an EOF without one), -1
// with errno: EAGAIN to wait for readiness, EPROTO for a TLS error (bc_tls_error).
static inline ssize_t bc_recv(SSL *ssl, int fd, void *buf, size_t len) {
    if (!ssl) return recv(fd, buf, len, 0);
    return bc_tls_read(ssl, buf, len);
}

// send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT), or over TLS: bytes taken (TLS: whole
// records; what is left must be offered again, it may have grown), -1 with errno as
// bc_recv's. Over TLS the retry may come from another address (the buffer moves).
static inline ssize_t bc_send(SSL *ssl, int fd, const void *buf, size_t len) {
    if (!ssl) return send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    return bc_tls_write(ssl, buf, len);
}

// Plaintext OpenSSL holds that no readiness event will announce.
static inline bool bc_tls_pending(SSL *ssl) { return ssl && SSL_has_pending(ssl); }

// --- the upgrade ----------------------------------------------------------------------

// The request from its GET line to Sec-WebSocket-Version; the caller adds the key, its
// own headers and the blank line. Returns what snprintf returns.
int bc_request_head(char *out, size_t cap, const bc_url *u);

// A fresh 16-byte nonce (RFC 6455 §4.1) as the Sec-WebSocket-Key, and the
// Sec-WebSocket-Accept it implies (sha1: the SHA-1 digest to use).
void bc_nonce(uint64_t *rng, const EVP_MD *sha1, char key[32], char accept[32]);

// Looks for the end of the response head in hs[0..have) (hs[have] must be writable).
// Returns its length once it is there, cut after the last header's CRLF for
// bc_handshake_check; 0 while it may still come; -1 when it cannot (BC_HS_MAX bytes, or
// a NUL byte, without it).
long bc_response_head(char *hs, size_t have);

// Checks the value of a Sec-WebSocket-Extensions header against what was offered;
// returns why it is wrong, or nullptr.
typedef const char *bc_ext_check(void *ctx, char *value);

// Checks a complete response head (NUL-terminated, lines end in CRLF; split in place):
// a 101 with Upgrade, Connection and the expected accept. ext is nullptr when no
// extension was offered; else it checks the one Sec-WebSocket-Extensions header there
// may be. status gets the status line, for the message. Returns why the head is not a
// valid upgrade answer, or nullptr.
const char *bc_handshake_check(char *head, const char *accept, bc_ext_check *ext, void *ctx, char *status,
                               size_t status_len);

// --- frames ---------------------------------------------------------------------------

// Writes the header of a final frame masked with a fresh key, which goes to key for
// frame_mask. Returns the header's length.
static inline size_t bc_frame_header(uint8_t *p, uint64_t *rng, uint8_t opcode, bool rsv1, uint64_t len,
                                     uint8_t key[4]) {
    uint32_t k = (uint32_t)bc_rng_next(rng);
    memcpy(key, &k, 4);
    return frame_write_header(p, opcode, true, rsv1, len, key);
}

// Writes a whole masked frame of payload[0..len) at p. Returns its length.
static inline size_t bc_frame(uint8_t *p, uint64_t *rng, uint8_t opcode, bool rsv1, const uint8_t *payload,
                              size_t len) {
    uint8_t key[4];
    size_t n = bc_frame_header(p, rng, opcode, rsv1, len, key);
    memcpy(p + n, payload, len);
    frame_mask(p + n, len, key, 0);
    return n + len;
}

// Server frames, read in place. Control frames are collected here (the parser caps
// their payload at 125 bytes) and come out whole, at their FRAME_END.
struct bc_rx {
    frame_parser fp;
    bool closed; // a close frame has ended: nothing may follow it (RFC 6455 §5.5.1)
    uint8_t ctl_len;
    uint8_t ctl[128];
};

void bc_rx_init(bc_rx *rx);

// Reports in *ev the next event that is not part of a control frame, or a control
// frame's FRAME_END (its payload in rx->ctl), and advances *data and *len past the bytes
// it consumed. Returns false at FRAME_NEED_MORE: every byte is consumed, or a close frame
// has ended (what follows it is ignored).
bool bc_rx_next(bc_rx *rx, const frame_limits *lim, uint8_t **data, size_t *len, frame_event *ev);

// The server's close frame, its payload in rx->ctl: counts a malformed one (protocol),
// one the server sent first (close_sent false: closed), and an answer to ours with a code
// other than normal (closed). Returns its close code (WS_CLOSE_NO_STATUS for an empty
// body); *bad gets the code we would fail it with, or 0.
uint16_t bc_close_check(bc_errors *e, long conn, const bc_rx *rx, bool close_sent, uint16_t *bad);

// --- sockets and the server process (msgbench) ------------------------------------------

// Starts a non-blocking TCP connect toward u (TCP_NODELAY). With source > 0 and u an
// IPv4 loopback address, the socket is bound first to 127.0.0.SOURCE (1..254): each
// source address has its own ephemeral ports toward one server port, and a server that
// limits upgrades per client address sees several. Returns the fd, or -1 with errno.
int bc_connect_start(const bc_url *u, uint32_t source);

// Raises this process's descriptor limit to its hard limit; returns the new soft limit.
uint64_t bc_raise_nofile();

// VmRSS of process pid in KiB (/proc/PID/status); -1 when unknown.
long bc_proc_rss_kb(int pid);

// User + system seconds of process pid (/proc/PID/stat); -1 when unknown.
double bc_proc_cpu_s(int pid);
