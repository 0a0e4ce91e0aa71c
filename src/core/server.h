// The server object behind the public API: loop handles, listener, connection table,
// timers, the flush list and the loop-wide read buffer.
#pragma once

#include <uv.h>

#include "core/conn_table.h"
#include "core/http.h"
#include "core/poller.h"
#include "core/stats.h"
#include "core/timers.h"
#include "core/tls.h"
#include "core/transport.h"
#include "proto/deflate.h"
#include "proto/extensions.h"
#include "proto/frame.h"
#include "proto/handshake.h"
#include "wsr/wsr.h"

// A listening socket. Its poller tag is its index: connection tags carry a
// generation >= 1 in their high half, so they never collide with it.
struct listener {
    char *addr;  // as given: "HOST:PORT"
    int fd;      // -1 until listening
    int port;    // bound port
    unsigned flags; // WSR_LISTEN_*
};

typedef void (*server_done_cb)(wsr_server *srv, uint32_t clean, uint32_t cut);

// Figures beyond the public wsr_stats (read through wsr_server_counter).
struct server_counters {
    uint64_t memory_closes;
    uint64_t handshakes_shed;
    uint64_t accept_pauses;
};

struct wsr_server {
    uv_loop_t *loop;
    wsr_options opts;
    listener *listeners;
    uint16_t nlisteners;
    frame_limits limits;     // connections without compression
    frame_limits limits_pmd; // the same, with RSV1 allowed (permessage-deflate agreed)
    pmd_config pmd_cfg;
    pmd_stream z_inflate;    // resets per message: serves every client without takeover
    pmd_stream z_deflate;    // resets per message: sends and broadcasts without takeover
    pmd_buf z_in, z_out;     // inflate and deflate output scratch
    http_ctx http;           // endpoints, routes and the request parser
    const transport_ops *io;     // how plain connections read and write: TCP unless replaced
    const transport_ops *tls_io; // how connections from TLS listeners do
    tls_state tls;               // certificates and each TLS connection's session
    poller poll;
    timers tm;
    uv_prepare_t flush_prepare;
    uv_timer_t shutdown_timer; // the shutdown timeout, then its completion (0 ms)
    uv_timer_t tick;           // housekeeping while something waits: see on_tick
    uv_idle_t backlog_idle;    // runs while connections hold input over to the next round
    conn_table table;
    uint32_t flush_head; // connections with output to write before the loop sleeps
    // A connection's own zlib streams, by slot (see core/compression.cpp).
    pmd_conn **zs;
    uint32_t zs_cap;
    uint32_t held_slots; // destroyed connections whose slot waits for the flush pass
    wsr_conn_id *backlog; // connections with work held over (conn_waits), in arrival order
    uint32_t backlog_len, backlog_cap;
    int spare_fd;        // released to accept-and-close when out of descriptors
    bool listening;
    uint32_t max_conns;
    uint32_t max_handshakes;
    uint32_t handshakes;   // connections in CONN_HANDSHAKE
    uint64_t max_memory;   // budget for mem_held
    uint64_t mem_held;     // bytes held for peers: message assembly, held input, copied output
    uint64_t mem_peak;     // highest mem_held since memory was last given back
    uint16_t accepts_left; // of ACCEPTS_PER_WAKEUP, in this wakeup
    bool accept_paused;    // out of descriptors: the listener is not watched
    bool fd_episode;       // accepting failed for lack of descriptors since the last success
    conn_reply reply;    // frames for the connection being read (see conn.h)
    uint8_t *rbuf;       // the one read buffer
    size_t rbuf_size;
    size_t read_size;    // bytes asked of one read: rbuf_size, or less under a small backpressure limit
    size_t round_budget; // CONN_ROUND_BUDGET; a field so that harnesses can make rounds short
    // Client addresses that are not the socket's peer (PROXY protocol, a trusted proxy's
    // header), by slot; family 0 where none is set. Allocated when the first is.
    net_addr *addrs;
    uint32_t addrs_cap;
    uint64_t drain_bytes;  // WSR_OPT_DRAIN_BYTES
    bool shutting_down;
    bool handles_open;
    bool free_requested;     // wsr_server_free was called: release once the handles closed
    uint8_t handles_closing; // close callbacks still to come
    uint32_t shutdown_clean, shutdown_cut;
    server_done_cb shutdown_done;
    wsr_stats stats;
    server_counters counters;
    uint32_t table_open; // WebSocket connections open (handshake done, not yet destroyed)
    void *user;
};

// Takes over an accepted, non-blocking descriptor as a new connection in the
// handshake state. NULL (and fd closed) when out of memory or epoll refuses it. Also
// the entry point for harnesses that feed connections through their own transport.
conn *server_adopt(wsr_server *srv, int fd);
// The same for a connection from listener li.
conn *server_adopt_from(wsr_server *srv, int fd, uint16_t li);
// Writes every connection's queued output: what the loop does before it sleeps.
void server_flush(wsr_server *srv);

// Connection <-> server glue used by conn.cpp.
void server_want_flush(wsr_server *srv, conn *c);
// A connection was destroyed: its descriptor is free again.
void server_conn_gone(wsr_server *srv, bool clean);
// c holds input over to a later round (it used up its budget for this one).
bool server_backlog_add(wsr_server *srv, conn *c);
// Memory held for peers changed by delta bytes (see mem_held).
void server_mem_change(wsr_server *srv, int64_t delta);
// Connections not yet destroyed (table slots in use, less those only held for the flush pass).
static inline uint32_t server_conns_alive(const wsr_server *srv) { return srv->table.live - srv->held_slots; }
void server_update_events(wsr_server *srv, conn *c);


static inline const transport_ops *conn_io(const wsr_server *srv, const conn *c) {
    return (c->flags2 & CF2_TLS) ? srv->tls_io : srv->io;
}
