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
    WSR_ENOCONN = -1,   /* no such connection (closed, or a stale id) */
    WSR_ECLOSING = -2,  /* the connection is closing: nothing more may be sent */
    WSR_ENOMEM = -3,
    WSR_EINVAL = -4,    /* bad argument (unknown opcode, bad close code, reason too long) */
    WSR_ETOOBIG = -5,   /* payload larger than the server's max_message */
    WSR_EADDR = -6,     /* listen address could not be parsed */
    WSR_ESYS = -7,      /* a system call failed; see the log line */
    WSR_EEXIST = -8,    /* a route for that path already exists */
};
const char *wsr_strerror(int err);

typedef enum wsr_log_level { WSR_LOG_ERROR, WSR_LOG_WARN, WSR_LOG_INFO, WSR_LOG_DEBUG } wsr_log_level;
void wsr_log_set_level(wsr_log_level level);

typedef struct wsr_options {
    const char *listen;            /* "HOST:PORT"; IPv6 as "[::1]:8080". Default "127.0.0.1:8080" */
    uint64_t max_message;          /* bytes per message, all fragments together. Default 1 MiB */
    uint32_t max_header;           /* bytes of request line + headers; over it: 431. Default 8192 */
    uint32_t handshake_timeout_ms; /* to complete the upgrade request. Default 10000 */
    uint32_t close_timeout_ms;     /* for the peer to answer our close. Default 5000 */
    uint32_t shutdown_timeout_ms;  /* for all peers to close on shutdown. Default 5000 */
    uint32_t max_connections;      /* over it the handshake gets 503. Default 0: from the fd limit */
    uint64_t max_backpressure;     /* out-queue bytes per connection before reads pause. Default 1 MiB */
    const char *const *subprotocols; /* supported, NULL-terminated, or NULL */
} wsr_options;

void wsr_options_default(wsr_options *opts);

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
 * drain, and cut what remains after shutdown_timeout_ms. done runs once all are gone. */
void wsr_server_shutdown(wsr_server *srv, void (*done)(wsr_server *srv, uint32_t clean, uint32_t cut));
/* Releases the server; the loop must have run until every handle closed. */
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

void wsr_conn_set_user(wsr_server *srv, wsr_conn_id id, void *user);
void *wsr_conn_user(wsr_server *srv, wsr_conn_id id);

#ifdef __cplusplus
}
#endif
#endif
