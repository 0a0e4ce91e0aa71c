#include "core/timers.h"

static const uint32_t NONE = UINT32_MAX;

static uint8_t lane_of(uint8_t kind) { return kind == TK_IDLE ? 1 : 0; }

// Loop time in ms, wrapped to 32 bits; comparisons go through a signed difference,
// which is exact while deadlines stay within 24 days of now (WSR_MAX_TIMEOUT_MS).
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

static void unlink_lane(timers *t, conn *c, uint8_t lane) {
    uint8_t kind = c->timer_kind[lane];
    if (kind == TK_NONE) return;
    deadline_list *l = &t->lists[kind];
    timer_link *k = &c->tl[lane];
    if (k->prev != NONE)
        conn_table_at(t->table, k->prev)->tl[lane].next = k->next;
    else
        l->head = k->next;
    if (k->next != NONE)
        conn_table_at(t->table, k->next)->tl[lane].prev = k->prev;
    else
        l->tail = k->prev;
    k->prev = k->next = NONE;
    c->timer_kind[lane] = TK_NONE;
}

static void on_tick(uv_timer_t *h) {
    timers *t = (timers *)h->data;
    t->armed = false;
    uint32_t now = now_ms(t);
    for (uint8_t k = 1; k < TK_COUNT; k++) {
        deadline_list *l = &t->lists[k];
        uint8_t lane = lane_of(k);
        while (l->head != NONE) {
            conn *c = conn_table_at(t->table, l->head);
            if (before(now, c->tl[lane].deadline)) break;
            unlink_lane(t, c, lane);
            t->expire(t->ctx, c, k); // may put c on another list, or free it
        }
    }
    for (uint8_t k = 1; k < TK_COUNT; k++) {
        deadline_list *l = &t->lists[k];
        if (l->head != NONE) arm(t, conn_table_at(t->table, l->head)->tl[lane_of(k)].deadline);
    }
}

void timers_init(timers *t, uv_loop_t *loop, conn_table *table, timers_expire_cb expire, void *ctx) {
    for (auto &l : t->lists) l = deadline_list{NONE, NONE, 0, 0};
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

void timers_set_timeout(timers *t, uint8_t kind, uint32_t ms) {
    t->lists[kind].timeout_ms = ms;
    t->lists[kind].slack_ms = ms / 64 < TIMERS_MAX_SLACK_MS ? ms / 64 : TIMERS_MAX_SLACK_MS;
}

void timers_put_slow(timers *t, conn *c, uint8_t kind) {
    uint8_t lane = lane_of(kind);
    deadline_list *l = &t->lists[kind];
    uint32_t deadline = now_ms(t) + l->timeout_ms + l->slack_ms;
    timer_link *k = &c->tl[lane];
    unlink_lane(t, c, lane);
    if (l->timeout_ms == 0) return;
    k->deadline = deadline;
    k->prev = l->tail;
    k->next = NONE;
    c->timer_kind[lane] = kind;
    if (l->tail != NONE)
        conn_table_at(t->table, l->tail)->tl[lane].next = c->idx;
    else
        l->head = c->idx;
    l->tail = c->idx;
    arm(t, k->deadline);
}

void timers_remove(timers *t, conn *c, uint8_t kind) {
    uint8_t lane = lane_of(kind);
    if (c->timer_kind[lane] == kind) unlink_lane(t, c, lane);
}

void timers_remove_all(timers *t, conn *c) {
    unlink_lane(t, c, 0);
    unlink_lane(t, c, 1);
}

