// Every connection timeout on one uv_timer_t.
//
// Each kind of timeout (handshake, heartbeat, ...) has one fixed duration, so a list
// per kind kept in order of arrival is also in order of expiry: arming or touching a
// connection is an O(1) move to the tail, and a tick only looks at list heads. The
// links live in the connection struct: no allocation, no timer per connection.
//
// A connection has two lanes of links, so it can wait on two timeouts at once: lane 0
// for what its state needs (request, keep-alive, heartbeat, pong, close), lane 1 for the idle
// timeout, which only application messages reset.
#pragma once

#include <stdint.h>
#include <uv.h>

#include "core/conn_table.h"

enum timer_kind : uint8_t {
    TK_NONE = 0,
    TK_HANDSHAKE, // lane 0: the upgrade request must complete
    TK_CLOSE,     // lane 0: the peer must answer our close / finish closing
    TK_HEARTBEAT, // lane 0: silence for ping_interval: time to ping
    TK_PONG,      // lane 0: pinged; silence until this fires means the peer is gone
    TK_SLOW,      // lane 0: output over the soft limit, reading paused; the heartbeat
                  // waits (pongs cannot be read) and this judges the peer instead
    TK_KEEPALIVE, // lane 0: an HTTP connection between requests
    TK_IDLE,      // lane 1: no message either way for idle_timeout
    TK_COUNT
};

struct deadline_list {
    uint32_t head, tail; // slot indices, UINT32_MAX when empty
    uint32_t timeout_ms; // 0: this kind is disabled and timers_put ignores it
    uint32_t slack_ms;   // how late an expiry may be (see timers_set_timeout)
};

typedef void (*timers_expire_cb)(void *ctx, conn *c, uint8_t kind);

struct timers {
    deadline_list lists[TK_COUNT];
    uv_timer_t timer;
    conn_table *table;
    timers_expire_cb expire;
    void *ctx;
    uint32_t armed_for; // deadline the uv timer is set to, when armed
    bool armed;
};

void timers_init(timers *t, uv_loop_t *loop, conn_table *table, timers_expire_cb expire, void *ctx);
// Sets a kind's duration; 0 disables it (set before connections use it). An expiry may
// come up to 1/64 of the duration late, at most TIMERS_MAX_SLACK_MS: what a timeout of
// seconds loses in precision, a connection that talks all the time gains in not being
// relinked on every read.
static const uint32_t TIMERS_MAX_SLACK_MS = 250;
void timers_set_timeout(timers *t, uint8_t kind, uint32_t ms);
static inline bool timers_enabled(const timers *t, uint8_t kind) { return t->lists[kind].timeout_ms != 0; }
// Puts c on the kind's list with a fresh deadline, moving it off whatever list its
// lane held. A disabled kind just empties the lane.
void timers_put_slow(timers *t, conn *c, uint8_t kind);
static inline void timers_put(timers *t, conn *c, uint8_t kind) {
    // A connection touches its deadlines for every read and every message it receives
    // or sends; most touches change nothing, and they are decided here without a call:
    // a disabled kind on an empty lane, or a deadline that is still no earlier than the
    // one this touch asks for. A deadline is set with its kind's slack on top, so a busy
    // connection is moved along its list once per slack period rather than once per
    // loop millisecond, and the list stays in order: every deadline of a kind carries
    // the same slack. The loop's time is read from the loop itself, as uv_now does
    // (libuv 1.x keeps it there; it changes only between callbacks), to spare a call
    // into libuv twice per message.
    uint8_t lane = kind == TK_IDLE ? 1 : 0;
    uint32_t ms = t->lists[kind].timeout_ms;
    if (ms == 0 ? c->timer_kind[lane] == TK_NONE
                : c->timer_kind[lane] == kind &&
                      (int32_t)(c->tl[lane].deadline - ((uint32_t)t->timer.loop->time + ms)) >= 0)
        return;
    timers_put_slow(t, c, kind);
}
// Takes c off the kind's list if it is on it.
void timers_remove(timers *t, conn *c, uint8_t kind);
// Takes c off every list.
void timers_remove_all(timers *t, conn *c);
// The server closes t->timer with its other handles.
