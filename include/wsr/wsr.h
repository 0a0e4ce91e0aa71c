/* wsreactor: a WebSocket server (RFC 6455) on a single-threaded libuv loop.
 *
 * The public C API. A server owns listening sockets and connections; the application
 * registers handlers per path and talks to connections through ids. An id is an
 * index plus a generation, so an id kept after its connection closed is rejected
 * with WSR_ENOCONN and can never reach another client.
 *
 * Every function must be called from the loop's thread. */
#ifndef WSR_WSR_H
#define WSR_WSR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define WSR_VERSION "0.1.0"

struct uv_loop_s;
typedef struct wsr_server wsr_server;
typedef uint64_t wsr_conn_id; /* 0 is never a valid id */

typedef enum wsr_opcode { WSR_TEXT = 1, WSR_BINARY = 2 } wsr_opcode;

/* Results: 0 or positive on success, negative on error. */
enum {
    WSR_OK = 0,
    WSR_QUEUED = 1,     /* accepted; part of it waits in the connection's out-queue */
    WSR_DROPPED = 2,    /* not sent: the receiver is too far behind (policy "drop") */
    WSR_CLOSED = 3,     /* not sent: the receiver was too far behind and is being closed
                           with 1008 (policy "close") */
    WSR_ENOCONN = -1,   /* no such connection (closed, or a stale id) */
    WSR_ECLOSING = -2,  /* the connection is closing: nothing more may be sent */
    WSR_ENOMEM = -3,
    WSR_EINVAL = -4,    /* bad argument (unknown opcode, bad close code, reason too long, an
                           option out of range: the log names it) */
    WSR_ETOOBIG = -5,   /* payload larger than the server's max_message */
    WSR_EADDR = -6,     /* listen address could not be parsed */
    WSR_ESYS = -7,      /* a system call failed; see the log line */
    WSR_EEXIST = -8,    /* a route for that path already exists */
};
const char *wsr_strerror(int err);

typedef enum wsr_log_level { WSR_LOG_ERROR, WSR_LOG_WARN, WSR_LOG_INFO, WSR_LOG_DEBUG } wsr_log_level;
void wsr_log_set_level(wsr_log_level level);
/* Where log lines go: by default stderr, with a UTC timestamp and the level. A sink gets
 * the message alone (no timestamp, no newline), on the thread of the server that logs.
 * Lines caused by peers are rate-limited per call site before they reach it ("N similar
 * lines suppressed"). NULL restores stderr. Set it before starting servers. */
typedef void (*wsr_log_fn)(wsr_log_level level, const char *msg, void *user);
void wsr_log_set_sink(wsr_log_fn fn, void *user);

typedef enum wsr_slow_policy {
    WSR_SLOW_CLOSE = 0, /* close a receiver whose unsent bytes reach max_backpressure */
    WSR_SLOW_DROP = 1,  /* drop messages for it until it catches up, and count them */
} wsr_slow_policy;

typedef enum wsr_deflate_mode {
    WSR_DEFLATE_SHARED = 0,    /* permessage-deflate without context takeover either way: one
                                  stream pair for the whole server, memory independent of the
                                  number of connections; broadcasts compress once */
    WSR_DEFLATE_OFF = 1,       /* never negotiate compression */
    WSR_DEFLATE_DEDICATED = 2, /* per-connection streams with context takeover where the client
                                  allows it: better ratio, ~(2^(w+2) + 2^(m+9) + 2^w) bytes each */
} wsr_deflate_mode;

/* The longest timeout any option accepts: 24 days (deadlines are kept in 32-bit ms). */
#define WSR_MAX_TIMEOUT_MS 2073600000u
/* The longest subprotocol name accepted in wsr_options.subprotocols, and how many. */
#define WSR_MAX_SUBPROTOCOL_LEN 255
#define WSR_MAX_SUBPROTOCOLS 32

/* Every field is checked by wsr_server_new: WSR_EINVAL, with a log line naming the
 * field, when one is out of range. */
typedef struct wsr_options {
    const char *listen;            /* "HOST:PORT"; IPv6 as "[::1]:8080". Default "127.0.0.1:8080" */
    uint64_t max_message;          /* bytes per message, all fragments together, received or sent;
                                      1 .. 2^32-65. Default 1 MiB */
    uint32_t max_header;           /* bytes of request line + headers; over it: 431. 256 .. 65535.
                                      Default 8192 */
    /* Timeouts are at most WSR_MAX_TIMEOUT_MS. */
    uint32_t handshake_timeout_ms; /* to complete the upgrade request. Default 10000 */
    uint32_t close_timeout_ms;     /* for the peer to answer our close. Default 5000 */
    uint32_t shutdown_timeout_ms;  /* for all peers to close on shutdown. Default 5000 */
    uint32_t ping_interval_ms;     /* ping a connection silent this long; 0: never. Default 30000 */
    uint32_t pong_timeout_ms;      /* after a ping, silence this long cuts the connection (stale);
                                      0: never. Default 30000 */
    uint32_t idle_timeout_ms;      /* no message either way this long: close 1001; 0: off (default) */
    uint32_t max_connections;      /* over it the handshake gets 503. Default 0: from the fd limit */
    uint64_t max_backpressure;     /* unsent bytes per connection at which the slow-consumer policy
                                      applies; reading from it pauses at half. 1 .. 2^32-65.
                                      Default 1 MiB */
    wsr_slow_policy slow_policy;   /* Default WSR_SLOW_CLOSE */
    wsr_deflate_mode deflate;      /* Default WSR_DEFLATE_SHARED */
    uint8_t deflate_window_bits;   /* our deflater's window, 8..15 (8 runs as 9). Default 15 */
    uint8_t deflate_client_window_bits; /* window asked of clients that offer to limit it. Default 15 */
    uint8_t deflate_mem_level;     /* zlib memLevel 1..9. Default 8 */
    uint8_t deflate_level;         /* zlib level 1..9. Default 1: speed over ratio */
    uint32_t deflate_threshold;    /* messages shorter than this go uncompressed. Default 64 */
    const char *const *subprotocols; /* supported, NULL-terminated, or NULL: HTTP tokens of at most
                                        WSR_MAX_SUBPROTOCOL_LEN bytes, at most WSR_MAX_SUBPROTOCOLS */
} wsr_options;

void wsr_options_default(wsr_options *opts);

/* Options that came after wsr_options, set by key so that the struct compiled into an
 * application never changes size. Set them after wsr_server_new and before
 * wsr_server_listen; WSR_EINVAL (with a log line) when out of range. */
typedef enum wsr_option {
    /* Connections still sending their upgrade request, at most. Connections past it
     * are answered 503 and closed at once. 1 .. 2^32-1. Default 1024. */
    WSR_OPT_MAX_HANDSHAKES = 1,
    /* Bytes the server may hold for its peers: incomplete incoming messages, input held
     * over to the next round, and frames copied into out-queues (a prepared message
     * queued to many receivers is the application's, and not counted). Input may take
     * three quarters of it, so that peers whose messages were taken in can still be
     * answered. The connection whose message or send would cross its share is closed
     * with 1013 (try again later). At least 4/3 of max_message. Default 64 MiB, or twice
     * max_message when that is more. */
    WSR_OPT_MAX_MEMORY = 2,
    /* A receiver whose unsent output stays at or over half max_backpressure (where
     * reading from it pauses) this long is closed with 1008; 0: never (it can then only
     * be cut when a send finds it at max_backpressure). At most WSR_MAX_TIMEOUT_MS.
     * Default 10000. */
    WSR_OPT_SLOW_TIMEOUT_MS = 3,
} wsr_option;
int wsr_server_set_option(wsr_server *srv, wsr_option opt, uint64_t value);

typedef struct wsr_handlers {
    /* A connection on this route finished its handshake. */
    void (*on_open)(wsr_server *srv, wsr_conn_id id, void *user);
    /* A whole message: all fragments joined, text already validated as UTF-8. The
     * data is only valid during the call. */
    void (*on_message)(wsr_server *srv, wsr_conn_id id, wsr_opcode op, const uint8_t *data, size_t len,
                       void *user);
    /* The connection is gone; the id is dead after this returns. code is the close code
     * received or sent (1006 when the TCP connection ended without one). Called exactly
     * once for every on_open. */
    void (*on_close)(wsr_server *srv, wsr_conn_id id, uint16_t code, void *user);
} wsr_handlers;

/* Creates a server on a loop; nothing listens until wsr_server_listen. */
int wsr_server_new(struct uv_loop_s *loop, const wsr_options *opts, wsr_server **out);
/* Routes upgrade requests for an exact path (e.g. "/echo") to handlers. */
int wsr_server_route(wsr_server *srv, const char *path, const wsr_handlers *h, void *user);
/* Binds and listens on opts->listen. */
int wsr_server_listen(wsr_server *srv);
/* The bound port (useful after listening on port 0). */
int wsr_server_port(const wsr_server *srv);
/* Graceful stop: stop accepting, send close 1001 to every connection, let queued output
 * drain, and cut what remains after shutdown_timeout_ms. done runs once all are gone,
 * from the loop: never inside this call. The server's loop handles are closed then. */
void wsr_server_shutdown(wsr_server *srv, void (*done)(wsr_server *srv, uint32_t clean, uint32_t cut));
/* Releases the server. After a completed shutdown the memory goes at once. Otherwise,
 * as with uv_close, the server stops listening, cuts every connection (on_close still
 * runs for each, from the loop) and closes its handles; the memory is released from the
 * loop once their close callbacks ran, so run the loop afterwards. Nothing runs inside
 * this call. */
void wsr_server_free(wsr_server *srv);

/* Sends one message. WSR_OK: all bytes went to the kernel or are batched for this loop
 * iteration; WSR_QUEUED: part waits for the socket to become writable. */
int wsr_send(wsr_server *srv, wsr_conn_id id, wsr_opcode op, const void *data, size_t len);
/* Starts the close handshake with a code (1000-1003, 1007-1014, 3000-4999) and an
 * optional UTF-8 reason of at most 123 bytes. */
int wsr_close(wsr_server *srv, wsr_conn_id id, uint16_t code, const char *reason);

/* An application pointer kept with the server. */
void wsr_server_set_user(wsr_server *srv, void *user);
void *wsr_server_user(const wsr_server *srv);

/* A prepared message: framed once into an immutable, reference-counted buffer that
 * any number of connections send without copying the payload (server frames are not
 * masked, so the bytes are the same for every receiver). */
typedef struct wsr_msg wsr_msg;
/* NULL when out of memory or op is not WSR_TEXT/WSR_BINARY. */
wsr_msg *wsr_msg_new(wsr_opcode op, const void *data, size_t len);
/* Drops the caller's reference; queues that still hold one keep the bytes alive. */
void wsr_msg_free(wsr_msg *msg);
/* Queues a reference to msg. Same results as wsr_send. */
int wsr_send_msg(wsr_server *srv, wsr_conn_id id, wsr_msg *msg);

/* Counters since the server started. */
enum {
    WSR_CLOSE_BUCKETS = 11, /* 1000 1001 1002 1003 1006 1007 1008 1009 1011 other-valid none */
    WSR_HS_BUCKETS = 9      /* 400 401 403 404 405 426 431 503 timeout */
};
typedef struct wsr_stats {
    uint64_t connections_open;        /* WebSocket connections now open */
    uint64_t connections_total;       /* TCP connections accepted */
    uint64_t handshakes_ok;
    uint64_t handshakes_failed[WSR_HS_BUCKETS];
    uint64_t closes[WSR_CLOSE_BUCKETS]; /* by the code reported to on_close */
    uint64_t protocol_errors;         /* connections failed with 1002/1007/1009 */
    uint64_t messages_in, messages_out;
    uint64_t bytes_in, bytes_out;     /* on the wire, handshakes included */
    uint64_t pings_sent;              /* heartbeats */
    uint64_t stale_cuts;              /* silent past the pong timeout */
    uint64_t idle_closes;
    uint64_t close_timeouts;          /* peers that did not finish closing in time */
    uint64_t slow_closes;             /* closed by the slow-consumer policy */
    uint64_t slow_drops;              /* messages dropped by the slow-consumer policy */
    uint64_t broadcast_sends;         /* prepared messages queued to a connection */
    uint64_t broadcast_compressions;  /* prepared messages compressed (once for all receivers) */
    uint64_t messages_compressed_in, messages_compressed_out;
    uint64_t accept_errors;
} wsr_stats;
/* Bucket index of a close code or handshake status in wsr_stats (labels for exporters). */
int wsr_stats_close_bucket(uint16_t code);
extern const char *const wsr_stats_close_labels[WSR_CLOSE_BUCKETS];
extern const char *const wsr_stats_hs_labels[WSR_HS_BUCKETS];
void wsr_server_stats(const wsr_server *srv, wsr_stats *out);

/* Figures that came after wsr_stats, read one at a time (the struct never grows). */
typedef enum wsr_counter {
    WSR_COUNTER_MEMORY_BYTES = 1,    /* gauge: bytes held now against WSR_OPT_MAX_MEMORY */
    WSR_COUNTER_MEMORY_CLOSES = 2,   /* connections closed with 1013 at the memory budget */
    WSR_COUNTER_HANDSHAKES_SHED = 3, /* connections answered 503 past WSR_OPT_MAX_HANDSHAKES */
    WSR_COUNTER_ACCEPT_PAUSES = 4,   /* times accepting paused: out of file descriptors */
    WSR_COUNTER_LOG_SUPPRESSED = 5,  /* log lines suppressed by rate limiting (this thread) */
    WSR_COUNTER_HANDSHAKES = 6,      /* gauge: connections still in their upgrade request */
} wsr_counter;
/* The counter's value; 0 for an unknown one. */
uint64_t wsr_server_counter(const wsr_server *srv, wsr_counter which);

void wsr_conn_set_user(wsr_server *srv, wsr_conn_id id, void *user);
void *wsr_conn_user(wsr_server *srv, wsr_conn_id id);

#ifdef __cplusplus
}
#endif
#endif
