#include "core/timers.h"

static const uint32_t NONE = UINT32_MAX;

// Loop time in ms, wrapped to 32 bits; comparisons go through a signed difference,
// which is exact while deadlines stay within 24 days of now.
static uint32_t now_ms(const timers *t) { return (uint32_t)uv_now(t->timer.loop); }
static bool before(uint32_t a, uint32_t b) { return (int32_t)(a - b) < 0; }

static void on_tick(uv_timer_t *h);

static void arm(timers *t, uint32_t deadline) {
    if (t->armed && !before(deadline, t->armed_for)) return;
    uint32_t now = now_ms(t);
    uint64_t delay = before(now, deadline) ? deadline - now : 0;
    t->armed = true;
    t->armed_for = deadline;
    uv_timer_start(&t->timer, on_tick, delay, 0);
}

static void unlink(timers *t, conn *c) {
    if (c->timer_list == TK_NONE) return;
    deadline_list *l = &t->lists[c->timer_list];
    if (c->t_prev != NONE)
        conn_table_at(t->table, c->t_prev)->t_next = c->t_next;
    else
        l->head = c->t_next;
    if (c->t_next != NONE)
        conn_table_at(t->table, c->t_next)->t_prev = c->t_prev;
    else
        l->tail = c->t_prev;
    c->t_prev = c->t_next = NONE;
    c->timer_list = TK_NONE;
}

static void on_tick(uv_timer_t *h) {
    timers *t = (timers *)h->data;
    t->armed = false;
    uint32_t now = now_ms(t);
    for (uint8_t k = 1; k < TK_COUNT; k++) {
        deadline_list *l = &t->lists[k];
        while (l->head != NONE) {
            conn *c = conn_table_at(t->table, l->head);
            if (before(now, c->t_deadline)) break;
            unlink(t, c);
            t->expire(t->ctx, c, k); // may put c on another list, or free it
        }
    }
    for (uint8_t k = 1; k < TK_COUNT; k++) {
        deadline_list *l = &t->lists[k];
        if (l->head != NONE) arm(t, conn_table_at(t->table, l->head)->t_deadline);
    }
}

void timers_init(timers *t, uv_loop_t *loop, conn_table *table, timers_expire_cb expire, void *ctx) {
    for (auto &l : t->lists) l = deadline_list{NONE, NONE, 0};
    uv_timer_init(loop, &t->timer);
    t->timer.data = t;
    t->table = table;
    t->expire = expire;
    t->ctx = ctx;
    t->armed = false;
    // The timer must not keep the loop alive on its own: a server with no listener
    // and no connections has nothing left to time.
    uv_unref((uv_handle_t *)&t->timer);
}

void timers_set_timeout(timers *t, uint8_t kind, uint32_t ms) { t->lists[kind].timeout_ms = ms; }

void timers_put(timers *t, conn *c, uint8_t kind) {
    unlink(t, c);
    deadline_list *l = &t->lists[kind];
    c->t_deadline = now_ms(t) + l->timeout_ms;
    c->timer_list = kind;
    c->t_prev = l->tail;
    c->t_next = NONE;
    if (l->tail != NONE)
        conn_table_at(t->table, l->tail)->t_next = c->idx;
    else
        l->head = c->idx;
    l->tail = c->idx;
    arm(t, c->t_deadline);
}

void timers_remove(timers *t, conn *c) { unlink(t, c); }

void timers_close(timers *t) { uv_close((uv_handle_t *)&t->timer, nullptr); }
