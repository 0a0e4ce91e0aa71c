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
    WSR_ESTATE = -9,    /* not now: the connection has no request waiting for this answer,
                           or the call is not allowed in its state (see the function) */
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
/* The format of the lines written to stderr (not to a sink): text (the default),
 * "2026-11-23T04:30:00.123Z info  message", or JSON, one object per line:
 * {"ts":"2026-11-23T04:30:00.123Z","level":"info","msg":"message"} with the message
 * escaped as a JSON string (bytes that are not UTF-8 become U+FFFD). Every line takes it,
 * the rate-limit summaries included. */
typedef enum wsr_log_format { WSR_LOG_TEXT = 0, WSR_LOG_JSON = 1 } wsr_log_format;
void wsr_log_set_format(wsr_log_format format);
/* A line in the server's log, for the layers built on the API (and embedders): at or
 * below the level set, and rate-limited per fmt (the same format string) like the
 * server's own lines, so a line a peer can cause cannot flood the log. */
void wsr_log(wsr_log_level level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

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
    /* on_drain runs when a connection whose send returned WSR_QUEUED falls to this many
     * unsent bytes or fewer. 0 .. max_backpressure. Default max_backpressure / 4. */
    WSR_OPT_DRAIN_BYTES = 4,
    /* Largest HTTP request body; a longer one is answered 413. 0 .. 2^32-1. Default 1 MiB. */
    WSR_OPT_MAX_BODY = 5,
    /* Requests one HTTP connection may make before the server closes it. 1 .. 2^32-1.
     * Default 1000. */
    WSR_OPT_HTTP_MAX_REQUESTS = 6,
    /* An HTTP connection idle this long between requests is closed. 1 .. WSR_MAX_TIMEOUT_MS.
     * Default 5000. */
    WSR_OPT_HTTP_IDLE_TIMEOUT_MS = 7,
    /* Bytes of the one read buffer all connections read into in turn. Smaller saves
     * memory on a small board; larger takes a fast peer's burst in fewer reads. At least
     * one TLS record (16384) .. 16 MiB. Default 131072. */
    WSR_OPT_READ_BUFFER = 8,
} wsr_option;
int wsr_server_set_option(wsr_server *srv, wsr_option opt, uint64_t value);

/* Options given as text; each call adds one entry (before wsr_server_listen). */
typedef enum wsr_str_option {
    /* An Origin that upgrades are accepted from: "https://app.example.com", a wildcard
     * subdomain "https://" "*" ".example.com", "http://localhost:3000", or "*" for any.
     * Once one is set, an upgrade whose Origin header names any other origin gets 403:
     * this is what stops other web sites from opening WebSockets with your users'
     * cookies. Clients that send no Origin (programs, not browsers) are not affected. */
    WSR_OPT_ALLOWED_ORIGIN = 1,
    /* An address or CIDR ("10.0.0.0/8", "::1") whose X-Forwarded-For or Forwarded header
     * is believed for the client's address. */
    WSR_OPT_TRUSTED_PROXY = 2,
} wsr_str_option;
int wsr_server_add_option(wsr_server *srv, wsr_str_option opt, const char *value);


/* --- Requests ------------------------------------------------------------------------
 *
 * An HTTP request, as an upgrade hook or an HTTP route sees it. Every view (wsr_str)
 * points into the server's buffers and is valid only during the callback that received
 * the request: copy what you keep. A request is answered once, by wsr_upgrade_accept
 * (upgrades only) or wsr_respond, during the callback or later from any other callback
 * on the loop, through its id. */
typedef struct wsr_request wsr_request;
typedef struct wsr_str {
    const char *ptr; /* not NUL-terminated */
    size_t len;
} wsr_str;

/* The id that answers the request later. For an upgrade it becomes the connection's id. */
wsr_conn_id wsr_request_id(const wsr_request *req);
wsr_str wsr_request_method(const wsr_request *req);
/* The path without the query string, as sent (percent-encoding kept). */
wsr_str wsr_request_path(const wsr_request *req);
/* After '?', empty when there is none. */
wsr_str wsr_request_query(const wsr_request *req);
/* The first header with this name (case-insensitive), trimmed: 1, or 0 when absent. */
int wsr_request_header(const wsr_request *req, const char *name, wsr_str *value);
/* Header i in arrival order (0-based): 1, or 0 past the last. */
int wsr_request_header_at(const wsr_request *req, size_t i, wsr_str *name, wsr_str *value);
/* The body of an HTTP request (at most WSR_OPT_MAX_BODY bytes; chunked bodies joined).
 * Upgrade requests have none. */
wsr_str wsr_request_body(const wsr_request *req);
/* The client's address as text ("203.0.113.7:51234", "[2001:db8::1]:443"; without a
 * port when a proxy header gave none): the PROXY protocol header on listeners that
 * expect it, X-Forwarded-For or Forwarded from a trusted proxy, else the socket's peer.
 * Returns the length; the text is cut to fit cap (NUL-terminated when cap > 0). */
size_t wsr_request_address(const wsr_request *req, char *buf, size_t cap);
/* Which listener took the connection: the index wsr_server_add_listener returned. */
unsigned wsr_request_listener(const wsr_request *req);

/* Accepts an upgrade: the 101 goes out, then on_open runs (from the loop, never inside
 * this call). user becomes the connection's user pointer before on_open; subprotocol
 * (NULL for none) must be one the client offered in Sec-WebSocket-Protocol. Without a
 * hook, or when the hook leaves the choice to the server, the first of
 * wsr_options.subprotocols the client offers is chosen.
 * WSR_ENOCONN: the client left, or the handshake timeout answered for you;
 * WSR_ESTATE: not an upgrade, or answered already; WSR_EINVAL: subprotocol not offered;
 * WSR_ECLOSING: the server filled up (max_connections or its memory budget) or began
 * shutting down while you decided, and answered 503 itself: on_open will not come. */
int wsr_upgrade_accept(wsr_server *srv, wsr_conn_id id, void *user, const char *subprotocol);
/* Answers a request. For an upgrade this is the refusal: status 300..599 (400, 401 with
 * a WWW-Authenticate header, 403, 429, 503, ...), after which the connection closes. For
 * an HTTP request any status 200..599; the connection then serves the next request
 * (keep-alive) unless the client, the request limit or a status >= 500 ends it.
 * headers: NULL or complete lines, each "Name: value\r\n" (Content-Length, Connection
 * and Transfer-Encoding are the server's and refused). body is copied.
 * WSR_ENOCONN: the client left, or the request is over (answered and closing, or the
 * handshake timeout answered for you); WSR_ESTATE: answered already, or the id is an
 * open WebSocket; WSR_EINVAL: bad status or header lines. */
int wsr_respond(wsr_server *srv, wsr_conn_id id, uint16_t status, const char *headers, const void *body,
                size_t len);

/* --- Endpoints ------------------------------------------------------------------------
 *
 * A WebSocket endpoint: the callbacks of one path. The struct may grow in later
 * versions; size tells the library which version the application was compiled with,
 * and fields past it count as NULL. Initialise with WSR_ENDPOINT_INIT. */
typedef struct wsr_endpoint {
    size_t size;
    /* An upgrade request that passed the RFC 6455 checks (and the allowed origins),
     * before anything is written. Answer with wsr_upgrade_accept or wsr_respond through
     * wsr_request_id(req), now or later; the handshake timeout answers 503 for you. NULL:
     * every valid request is accepted. */
    void (*on_upgrade)(wsr_server *srv, wsr_request *req, void *user);
    /* The 101 is out; the connection is open. */
    void (*on_open)(wsr_server *srv, wsr_conn_id id, void *user);
    /* A whole message: all fragments joined, text already validated as UTF-8. The data
     * is only valid during the call. */
    void (*on_message)(wsr_server *srv, wsr_conn_id id, wsr_opcode op, const uint8_t *data, size_t len,
                       void *user);
    /* The connection is gone; the id is dead after this returns. code is the close code
     * received or sent (1006 when the TCP connection ended without one). Called exactly
     * once for every on_open. */
    void (*on_close)(wsr_server *srv, wsr_conn_id id, uint16_t code, void *user);
    /* A connection that returned WSR_QUEUED has fallen to WSR_OPT_DRAIN_BYTES unsent
     * bytes or fewer: send more. Once per crossing. */
    void (*on_drain)(wsr_server *srv, wsr_conn_id id, void *user);
    /* A pong arrived: the answer to wsr_ping (or to the server's heartbeat), or an
     * unsolicited one. data is valid during the call. */
    void (*on_pong)(wsr_server *srv, wsr_conn_id id, const uint8_t *data, size_t len, void *user);
} wsr_endpoint;
#define WSR_ENDPOINT_INIT {sizeof(wsr_endpoint), 0, 0, 0, 0, 0, 0}

/* The first three callbacks of an endpoint, as the first version of this API had them.
 * Kept for the programs built against it; new code uses wsr_endpoint. */
typedef struct wsr_handlers {
    void (*on_open)(wsr_server *srv, wsr_conn_id id, void *user);
    void (*on_message)(wsr_server *srv, wsr_conn_id id, wsr_opcode op, const uint8_t *data, size_t len,
                       void *user);
    void (*on_close)(wsr_server *srv, wsr_conn_id id, uint16_t code, void *user);
} wsr_handlers;

/* An HTTP route handler: answer with wsr_respond(srv, wsr_request_id(req), ...), now or
 * later. Until it is answered, requests pipelined behind it wait. */
typedef void (*wsr_http_fn)(wsr_server *srv, wsr_request *req, void *user);

enum {
    WSR_HTTP_GET = 1 << 0, /* also answers HEAD: the same head, no body */
    WSR_HTTP_HEAD = 1 << 1,
    WSR_HTTP_POST = 1 << 2,
    WSR_HTTP_PUT = 1 << 3,
    WSR_HTTP_DELETE = 1 << 4,
    WSR_HTTP_PATCH = 1 << 5,
    WSR_HTTP_OPTIONS = 1 << 6,
};

/* Creates a server on a loop; nothing listens until wsr_server_listen. */
int wsr_server_new(struct uv_loop_s *loop, const wsr_options *opts, wsr_server **out);
/* Serves WebSocket upgrades on an exact path (e.g. "/echo"). WSR_EEXIST when the path
 * has an endpoint already. */
int wsr_server_endpoint(wsr_server *srv, const char *path, const wsr_endpoint *ep, void *user);
/* The same with the first version's handler table. */
int wsr_server_route(wsr_server *srv, const char *path, const wsr_handlers *h, void *user);
/* Serves plain HTTP requests (not upgrades) on a path for a set of WSR_HTTP_* methods.
 * A path ending in "*" matches every path with that prefix; an exact path wins over a
 * prefix, a longer prefix over a shorter. Other paths get 404, other methods 405 with
 * Allow. WSR_EEXIST when the path has a route already. */
int wsr_server_http(wsr_server *srv, const char *path, unsigned methods, wsr_http_fn fn, void *user);

enum {
    WSR_LISTEN_REUSEPORT = 1 << 0, /* SO_REUSEPORT: several processes share the port */
    WSR_LISTEN_PROXY = 1 << 1,     /* every connection starts with a PROXY protocol v1 or v2
                                      header (HAProxy send-proxy / send-proxy-v2, cloud load
                                      balancers); one without it is closed */
    WSR_LISTEN_TLS = 1 << 2,       /* TLS (wss://, https://) with the certificates added by
                                      wsr_server_add_certificate; not with WSR_LISTEN_PROXY */
};
/* Adds a listening address ("HOST:PORT", "[V6]:PORT") with WSR_LISTEN_* flags, before
 * wsr_server_listen. Returns the listener's index (>= 0), or an error. When no listener
 * was added, wsr_server_listen listens on wsr_options.listen as listener 0. */
int wsr_server_add_listener(wsr_server *srv, const char *addr, unsigned flags);
/* Loads a certificate (PEM: the certificate, then its chain) and its private key for the
 * TLS listeners. Several can be added: a client's SNI name picks the first that is valid
 * for it, the first serves every other client. TLS 1.2 and 1.3, ALPN http/1.1, session
 * tickets. WSR_EINVAL (the log says why) when a file cannot be used. */
int wsr_server_add_certificate(wsr_server *srv, const char *cert_file, const char *key_file);
/* Reads every certificate and key again (after a renewal): new handshakes use them, open
 * connections keep theirs. All or nothing: WSR_EINVAL, with the reason in the log, leaves
 * the certificates in use. */
int wsr_server_reload_certificates(wsr_server *srv);
/* Binds and listens on every listener; none is left open when one fails. */
int wsr_server_listen(wsr_server *srv);
/* The bound port of listener 0 (useful after listening on port 0). */
int wsr_server_port(const wsr_server *srv);
/* The bound port of listener i; -1 when there is none. */
int wsr_server_listener_port(const wsr_server *srv, unsigned i);
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
/* Drops a reference; queues that still hold one keep the bytes alive. */
void wsr_msg_free(wsr_msg *msg);
/* Another reference to msg, for a holder that keeps it (a history of publications);
 * each reference is dropped with wsr_msg_free. Returns msg. */
wsr_msg *wsr_msg_ref(wsr_msg *msg);
/* The message's payload as it was given to wsr_msg_new; valid while a reference is held. */
const void *wsr_msg_payload(const wsr_msg *msg, size_t *len);
/* Queues a reference to msg. Same results as wsr_send. */
int wsr_send_msg(wsr_server *srv, wsr_conn_id id, wsr_msg *msg);

/* Counters since the server started. */
enum {
    WSR_CLOSE_BUCKETS = 11, /* 1000 1001 1002 1003 1006 1007 1008 1009 1011 other 1005 */
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
    uint64_t bytes_in, bytes_out;     /* on the wire (plaintext on TLS), handshakes included */
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
    WSR_COUNTER_HANDSHAKES = 6,      /* gauge: connections sending a request or waiting for its
                                        answer (not those kept alive between requests) */
    WSR_COUNTER_HTTP_REQUESTS = 7,   /* plain HTTP requests answered by routes */
    WSR_COUNTER_UPGRADES_REFUSED = 8, /* upgrades the application refused (any status; those
                                         with a bucket are in handshakes_failed too) */
    WSR_COUNTER_TLS_HANDSHAKES = 9,  /* TLS handshakes completed */
    WSR_COUNTER_TLS_FAILURES = 10,   /* TLS connections that failed: bad handshakes or records,
                                        plaintext on a TLS port */
} wsr_counter;
/* The counter's value; 0 for an unknown one. */
uint64_t wsr_server_counter(const wsr_server *srv, wsr_counter which);

void wsr_conn_set_user(wsr_server *srv, wsr_conn_id id, void *user);
void *wsr_conn_user(wsr_server *srv, wsr_conn_id id);

/* --- Per-connection facts and flow control (open WebSocket connections) --------------- */

/* Bytes queued and not yet taken by the kernel; 0 for an unknown id. */
size_t wsr_conn_buffered(wsr_server *srv, wsr_conn_id id);
/* Sends a ping with a payload of at most 125 bytes; its pong reaches on_pong. */
int wsr_ping(wsr_server *srv, wsr_conn_id id, const void *data, size_t len);
/* The client's address, as wsr_request_address. 0 for an unknown id. */
size_t wsr_conn_address(wsr_server *srv, wsr_conn_id id, char *buf, size_t cap);
/* The subprotocol agreed in the handshake, or NULL. Valid while the server lives. */
const char *wsr_conn_subprotocol(wsr_server *srv, wsr_conn_id id);
/* The Sec-WebSocket-Extensions the server answered with (e.g. "permessage-deflate;
 * server_no_context_takeover"), "" for none. Returns the length, cut to fit cap. */
size_t wsr_conn_extensions(wsr_server *srv, wsr_conn_id id, char *buf, size_t cap);
/* When the connection opened: milliseconds since the Unix epoch, to the second. 0 for
 * an unknown id. */
uint64_t wsr_conn_opened_ms(wsr_server *srv, wsr_conn_id id);

#ifdef __cplusplus
}
#endif
#endif
