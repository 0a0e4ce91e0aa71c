// Unit tests for the connection table (src/core/conn_table.*).
//
// What the application relies on: an id kept after its connection closed never finds
// another client's connection, even when the slot has been reused.
#include "unit.h"

#include "core/conn_table.h"

static void test_stale_ids_miss_after_reuse(void **) {
    conn_table t;
    conn_table_init(&t);
    conn *a = conn_table_alloc(&t);
    assert_non_null(a);
    a->state = CONN_OPEN;
    wsr_conn_id old = conn_id(a);
    assert_int_not_equal(old, 0);
    assert_ptr_equal(conn_table_lookup(&t, old), a);
    conn_table_release(&t, a);
    assert_null(conn_table_lookup(&t, old));
    conn *b = conn_table_alloc(&t); // the same slot comes back first
    b->state = CONN_OPEN;
    assert_ptr_equal(b, a);
    assert_int_not_equal(conn_id(b), old);
    assert_null(conn_table_lookup(&t, old));
    assert_ptr_equal(conn_table_lookup(&t, conn_id(b)), b);
    conn_table_free(&t);
}

static void test_lookup_rejects_garbage(void **) {
    conn_table t;
    conn_table_init(&t);
    assert_null(conn_table_lookup(&t, 0));
    assert_null(conn_table_lookup(&t, ~0ull));
    conn *a = conn_table_alloc(&t);
    a->state = CONN_OPEN;
    assert_null(conn_table_lookup(&t, conn_id(a) + ((uint64_t)1 << 32))); // wrong generation
    assert_null(conn_table_lookup(&t, (uint64_t)a->gen << 32 | 1));      // free slot
    conn_table_free(&t);
}

static void test_grows_across_blocks(void **) {
    conn_table t;
    conn_table_init(&t);
    enum { N = CONN_BLOCK * 3 + 5 };
    static wsr_conn_id ids[N];
    for (int i = 0; i < N; i++) {
        conn *c = conn_table_alloc(&t);
        assert_non_null(c);
        c->state = CONN_OPEN;
        ids[i] = conn_id(c);
    }
    assert_int_equal(t.live, N);
    for (int i = 0; i < N; i += 2) conn_table_release(&t, conn_table_lookup(&t, ids[i]));
    for (int i = 0; i < N; i++) {
        conn *c = conn_table_lookup(&t, ids[i]);
        if (i % 2) {
            assert_non_null(c);
            assert_int_equal(conn_id(c), ids[i]);
        } else {
            assert_null(c);
        }
    }
    assert_int_equal(t.live, N / 2);
    conn_table_free(&t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stale_ids_miss_after_reuse),
        cmocka_unit_test(test_lookup_rejects_garbage),
        cmocka_unit_test(test_grows_across_blocks),
    };
    return unit_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
