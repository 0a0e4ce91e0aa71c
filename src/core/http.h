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

// conn.subproto: 0 none, 1 + an index into wsr_options.subprotocols (at most
// WSR_MAX_SUBPROTOCOLS), or this: a name the application chose, kept by slot.
enum { HTTP_SUBPROTO_OWN = 255 };

struct http_ctx {
    ws_endpoint *eps;
    uint16_t neps;
    http_route *routes;
    uint16_t nroutes;
    char **origins; // allowed Origin patterns; none: any origin
    uint16_t norigins;
    net_cidr *trusted; // proxies whose forwarding headers are believed
    uint16_t ntrusted;
    // Subprotocol names hooks chose that are not in wsr_options.subprotocols, by slot
    // (allocated when the first is): each connection's own copy.
    char **own_names;
    uint32_t own_names_cap;
    uint32_t upgrading; // connections accepted later whose 101 is not out yet
    hs_config hs_cfg;
    h1_parser scratch; // parses every request that arrives whole in one read
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
// A connection is being destroyed, in any state: what HTTP kept for it goes.
void http_conn_closed(http_ctx *h, conn *c);
// The subprotocol name of conn.subproto, or NULL.
const char *http_subprotocol(const http_ctx *h, const conn *c);

int http_respond(http_ctx *h, wsr_server *srv, conn *c, uint16_t status, const char *headers, const void *body,
                 size_t len);
int http_accept(http_ctx *h, wsr_server *srv, conn *c, void *user, const char *subprotocol);

// --- what the server provides to this module -------------------------------------------
// Implemented in core/server.cpp and declared here, with the connection services in
// core/conn.h, so that this module never needs struct wsr_server.

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
