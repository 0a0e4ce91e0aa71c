// Every connection timeout on one uv_timer_t.
//
// Each kind of timeout (handshake, close, ...) has one fixed duration, so a list
// per kind kept in order of arrival is also in order of expiry: arming or touching
// a connection is an O(1) move to the tail, and a tick only looks at list heads.
// The links live in the connection struct: no allocation, no timer per connection.
#pragma once

#include <stdint.h>
#include <uv.h>

#include "core/conn_table.h"

enum timer_kind : uint8_t {
    TK_NONE = 0,
    TK_HANDSHAKE, // the upgrade request must complete
    TK_CLOSE,     // the peer must answer our close / finish closing
    TK_COUNT
};

struct deadline_list {
    uint32_t head, tail; // slot indices, UINT32_MAX when empty
    uint32_t timeout_ms;
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
void timers_set_timeout(timers *t, uint8_t kind, uint32_t ms);
// Puts c on the kind's list with a fresh deadline (moving it off any other list).
void timers_put(timers *t, conn *c, uint8_t kind);
void timers_remove(timers *t, conn *c);
void timers_close(timers *t);
