// Unit tests for the deadline lists (src/core/timers.*).
//
// What the server relies on: a timeout never fires early, fires at most its slack late,
// and a connection touched again and again within the slack is not moved along its list
// (the point of the slack: no relinking on every read of a busy connection).
#include "unit.h"

#include <stdlib.h>

#include "core/timers.h"

struct fired {
    conn *c[4];
    uint64_t at[4];
    int n;
};

static void on_expire(void *ctx, conn *c, uint8_t) {
    fired *f = (fired *)ctx;
    if (f->n < 4) {
        f->c[f->n] = c;
        f->at[f->n] = uv_now(uv_default_loop());
    }
    f->n++;
}

struct fixture {
    conn_table table;
    timers tm;
    fired f;
};

static fixture *start(uint32_t heartbeat_ms) {
    fixture *x = (fixture *)calloc(1, sizeof *x);
    conn_table_init(&x->table);
    timers_init(&x->tm, uv_default_loop(), &x->table, on_expire, &x->f);
    timers_set_timeout(&x->tm, TK_HEARTBEAT, heartbeat_ms);
    return x;
}

static void stop(fixture *x) {
    uv_close((uv_handle_t *)&x->tm.timer, nullptr);
    uv_run(uv_default_loop(), UV_RUN_NOWAIT);
    conn_table_free(&x->table);
    free(x);
}

static conn *open_conn(fixture *x) {
    conn *c = conn_table_alloc(&x->table);
    assert_non_null(c);
    c->state = CONN_OPEN;
    return c;
}

// The loop's time, moved by hand: timers_put reads it, and nothing runs the loop here.
static void set_now(uint64_t ms) { uv_default_loop()->time = ms; }

static void test_touches_within_the_slack_move_nothing(void **) {
    fixture *x = start(6400); // slack 100 ms
    conn *a = open_conn(x), *b = open_conn(x);
    uint64_t t0 = uv_now(uv_default_loop());
    timers_put(&x->tm, a, TK_HEARTBEAT);
    assert_int_equal(a->tl[0].deadline, (uint32_t)(t0 + 6400 + 100));
    set_now(t0 + 10);
    timers_put(&x->tm, b, TK_HEARTBEAT); // b after a on the list
    for (uint64_t t = t0 + 10; t <= t0 + 100; t += 10) {
        set_now(t);
        timers_put(&x->tm, a, TK_HEARTBEAT);
        assert_int_equal(a->tl[0].deadline, (uint32_t)(t0 + 6500)); // still covers now + 6400
        assert_int_equal(x->tm.lists[TK_HEARTBEAT].head, a->idx);     // not moved behind b
    }
    set_now(t0 + 101);
    timers_put(&x->tm, a, TK_HEARTBEAT); // past the slack: a fresh deadline, at the tail
    assert_int_equal(a->tl[0].deadline, (uint32_t)(t0 + 101 + 6500));
    assert_int_equal(x->tm.lists[TK_HEARTBEAT].head, b->idx);
    assert_int_equal(x->tm.lists[TK_HEARTBEAT].tail, a->idx);
    stop(x);
}

static void test_slack_is_bounded(void **) {
    fixture *x = start(3600000); // an hour: 1/64 would be 56 s
    conn *a = open_conn(x);
    uint64_t t0 = uv_now(uv_default_loop());
    timers_put(&x->tm, a, TK_HEARTBEAT);
    assert_int_equal(a->tl[0].deadline, (uint32_t)(t0 + 3600000 + TIMERS_MAX_SLACK_MS));
    stop(x);
}

// Real time: the last touch decides, and the expiry comes no earlier than the timeout
// after it, nor much later than its slack.
static void test_never_early(void **) {
    fixture *x = start(640); // slack 10 ms
    conn *a = open_conn(x);
    uv_update_time(uv_default_loop());
    timers_put(&x->tm, a, TK_HEARTBEAT);
    uint64_t last = 0;
    for (int i = 0; i < 30; i++) { // touched for about 300 ms
        usleep(10000);
        uv_update_time(uv_default_loop());
        last = uv_now(uv_default_loop());
        timers_put(&x->tm, a, TK_HEARTBEAT);
    }
    uv_ref((uv_handle_t *)&x->tm.timer);
    while (x->f.n == 0) uv_run(uv_default_loop(), UV_RUN_ONCE);
    assert_int_equal(x->f.n, 1);
    assert_ptr_equal(x->f.c[0], a);
    assert_true(x->f.at[0] >= last + 640);
    assert_true(x->f.at[0] <= last + 640 + 10 + 1000); // the slack, and a busy machine
    stop(x);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_touches_within_the_slack_move_nothing),
        cmocka_unit_test(test_slack_is_bounded),
        cmocka_unit_test(test_never_early),
    };
    return unit_exit(cmocka_run_group_tests(tests, nullptr, nullptr));
}
