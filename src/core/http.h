// HTTP on a connection before it is a WebSocket, or instead of one: the PROXY protocol
// header, requests with their bodies, the upgrade decision (allowed origins, the
// application's hook, answered now or later), plain HTTP routes with keep-alive and
// pipelining, and every response. The WebSocket byte path is core/conn.cpp.
//
// The module sees the server only through http_ctx and the few services declared at
// the end of this file; it never reaches into wsr_server.
#pragma once

#include <stdint.h>
#include <sys/uio.h>

#include "core/conn.h"
#include "proto/handshake.h"
#include "proto/netaddr.h"
#include "wsr/wsr.h"

struct ws_endpoint {
    char *path;
    wsr_endpoint ep; // fields past the application's size are NULL
    void *user;
};

struct http_route {
    char *path;      // without the trailing '*' of a prefix route
    uint16_t len;
    bool prefix;
    unsigned methods; // WSR_HTTP_*
    wsr_http_fn fn;
    void *user;
};

// Past this many distinct subprotocol names chosen by hooks, a new one is refused
// (conn.subproto is one byte).
enum { HTTP_MAX_NAMES = 255 };

struct http_ctx {
    ws_endpoint *eps;
    uint16_t neps;
    http_route *routes;
    uint16_t nroutes;
    char **origins; // allowed Origin patterns; none: any origin
    uint16_t norigins;
    net_cidr *trusted; // proxies whose forwarding headers are believed
    uint16_t ntrusted;
    // Subprotocol names a connection can have agreed (conn.subproto - 1): first the
    // server's own list (the application's strings), then copies of names hooks chose.
    const char **names;
    uint16_t nnames, nnames_own, names_cap;
    hs_config hs_cfg;
    hs_parser scratch; // parses every request that arrives whole in one read
    uint64_t max_body;
    uint32_t max_requests;
    wsr_stats *stats;  // the server's: handshake figures
    uint64_t requests; // plain HTTP requests answered
    uint64_t refused;  // upgrades the application refused
    wsr_request *current; // the request a callback is looking at, if any
    char date[40];        // "Date: ...\r\n" of the current second
    int64_t date_at;
};

void http_init(http_ctx *h, const wsr_options *opts, wsr_stats *stats);
void http_free(http_ctx *h);
int http_add_endpoint(http_ctx *h, const char *path, const wsr_endpoint *ep, size_t ep_size, void *user);
int http_add_route(http_ctx *h, const char *path, unsigned methods, wsr_http_fn fn, void *user);
int http_add_origin(http_ctx *h, const char *pattern);
int http_add_trusted(http_ctx *h, const char *cidr);
// The endpoint of an open connection.
static inline const ws_endpoint *http_endpoint(const http_ctx *h, const conn *c) { return &h->eps[c->route]; }

// A new connection from listener li; proxy: it must start with a PROXY header.
void http_start(conn *c, uint16_t li, bool proxy);
// Bytes for a connection in CONN_HANDSHAKE, within the round's budget.
void http_feed(http_ctx *h, wsr_server *srv, conn *c, uint8_t *data, size_t n, size_t *budget);
// The round of a connection in CONN_UPGRADING: the 101 and on_open.
void http_finish_upgrade(http_ctx *h, wsr_server *srv, conn *c, size_t *budget);
// The request deadline passed (TK_HANDSHAKE): a request still arriving is dropped; one
// the application has not answered gets 503.
void http_on_timeout(http_ctx *h, wsr_server *srv, conn *c);
// Releases what a connection in CONN_HANDSHAKE or CONN_UPGRADING holds.
void http_conn_free(http_ctx *h, wsr_server *srv, conn *c);
// The subprotocol name of conn.subproto, or NULL.
const char *http_subprotocol(const http_ctx *h, const conn *c);

int http_respond(http_ctx *h, wsr_server *srv, conn *c, uint16_t status, const char *headers, const void *body,
                 size_t len);
int http_accept(http_ctx *h, wsr_server *srv, conn *c, void *user, const char *subprotocol);

// --- services of the connection and the server that HTTP uses --------------------------

// Writes bytes at once when nothing is queued ahead; queues the rest (core/conn.cpp).
void conn_write(wsr_server *srv, conn *c, const struct iovec *iov, int n);
// The last response is queued: close once it is out, without waiting for the peer.
void conn_end_after_output(wsr_server *srv, conn *c);
// Keeps input for the connection's next round (CF2_HELD). False when it failed.
bool conn_hold(wsr_server *srv, conn *c, const uint8_t *data, size_t n);
// Appends to the connection's msg buffer within the memory budget (false: failed).
bool conn_buffer(wsr_server *srv, conn *c, const uint8_t *data, size_t n);
// Takes the msg buffer out of the connection (its length and capacity); drop it after.
uint8_t *conn_buffer_take(wsr_server *srv, conn *c, size_t *len, size_t *cap);
void conn_buffer_drop(wsr_server *srv, uint8_t *buf, size_t cap);
// The 101 was written: the connection is a WebSocket now. Runs on_open, then parses
// the frames that came with the request.
void conn_upgraded(wsr_server *srv, conn *c, uint16_t endpoint, const uint8_t *data, size_t n, size_t *budget);
// Arms one of the connection's HTTP deadlines (TK_HANDSHAKE, TK_KEEPALIVE).
void conn_deadline(wsr_server *srv, conn *c, uint8_t kind);
// Waits for the application (CF2_AWAITING: watched only for the peer leaving), or
// reads again; held input then gets a round from the backlog pass.
void conn_await(wsr_server *srv, conn *c, bool on);
// Marks a connection dead; the flush pass destroys it. why (may be NULL) is logged.
void conn_cut(wsr_server *srv, conn *c, const char *why);
// 503 and why, when the server takes no more WebSocket connections now; else NULL.
const char *server_refuses_upgrade(wsr_server *srv);
// Shutting down: no request gets another after it.
bool server_stopping(wsr_server *srv);
// The client's address: the one set from a proxy header, else the socket's peer.
void server_conn_address(wsr_server *srv, const conn *c, net_addr *out);
// Sets it (false when out of memory); NULL goes back to the socket's peer.
bool server_set_address(wsr_server *srv, const conn *c, const net_addr *a);
// Memory for request bodies: counted in any case, and false when it took the server
// past its budget for input.
bool server_mem_take(wsr_server *srv, uint64_t n);
void server_mem_give(wsr_server *srv, uint64_t n);
