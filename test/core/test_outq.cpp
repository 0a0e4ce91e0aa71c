// Unit tests for the out-queue and its buffers (src/core/outq.*, src/core/buf.*).
//
// What the server relies on: bytes leave in the order they were queued, whatever the
// partial writes; small frames are packed together; a shared buffer is referenced,
// not copied, and freed when its last queue lets go.
#include <string.h>

#include "unit.h"

#include "core/outq.h"

// Drains the queue as a socket would, taking at most `step` bytes per write.
static size_t drain(outq *q, uint8_t *out, size_t step) {
    size_t total = 0;
    while (q->head) {
        struct iovec iov[8];
        int n = outq_iov(q, iov, 8);
        size_t took = 0;
        for (int i = 0; i < n && took < step; i++) {
            size_t k = iov[i].iov_len < step - took ? iov[i].iov_len : step - took;
            memcpy(out + total + took, iov[i].iov_base, k);
            took += k;
        }
        outq_consume(q, took);
        total += took;
    }
    return total;
}

static void test_order_survives_partial_writes(void **) {
    static uint8_t expect[200000], got[200000];
    static const size_t steps[] = {1, 7, 4096, 1u << 20};
    for (size_t step : steps) {
        outq q = {};
        size_t n = 0;
        // Mixed sizes: packed small frames, a chunk boundary, one large buffer.
        for (size_t i = 0; i < 300; i++) {
            uint8_t hdr[2] = {(uint8_t)i, (uint8_t)(i >> 8)};
            uint8_t body[600];
            size_t blen = (i * 37) % sizeof body;
            if (i == 150) blen = 0;
            for (size_t k = 0; k < blen; k++) body[k] = (uint8_t)(i + k);
            assert_int_equal(outq_push_copy(&q, hdr, 2, body, blen), 0);
            memcpy(expect + n, hdr, 2);
            memcpy(expect + n + 2, body, blen);
            n += 2 + blen;
        }
        assert_int_equal(q.bytes, n);
        assert_int_equal(drain(&q, got, step), n);
        assert_memory_equal(got, expect, n);
        assert_int_equal(q.bytes, 0);
        assert_null(q.head);
        assert_null(q.tail);
    }
    assert_int_equal(buf_live_count(), 0);
}

static void test_lone_small_frame_takes_a_small_buffer(void **) {
    outq q = {};
    assert_int_equal(outq_push_copy(&q, "\x88\x02", 2, "\x03\xe8", 2), 0);
    assert_true(q.head->b->cap <= 256);
    outq_clear(&q);
}

static void test_small_frames_are_packed(void **) {
    outq q = {};
    for (int i = 0; i < 100; i++) assert_int_equal(outq_push_copy(&q, "ab", 2, "cdef", 4), 0);
    struct iovec iov[8];
    // 600 bytes of small frames: the first in a small buffer, then chunks that double,
    // so the burst leaves in a few iovecs rather than a hundred.
    int n = outq_iov(&q, iov, 8);
    assert_in_range(n, 1, 3);
    size_t total = 0;
    for (int i = 0; i < n; i++) total += iov[i].iov_len;
    assert_int_equal(total, 600);
    // Packing continues after a partial write of the tail.
    outq_consume(&q, 5);
    assert_int_equal(outq_push_copy(&q, "xy", 2, nullptr, 0), 0);
    assert_int_equal(outq_iov(&q, iov, 8), n);
    assert_int_equal(q.bytes, 597);
    outq_clear(&q);
    assert_int_equal(buf_live_count(), 0);
}

static void test_shared_buffer_is_referenced_not_copied(void **) {
    buf *b = buf_new(64 * 1024);
    assert_non_null(b);
    memset(b->data, 'z', 64 * 1024);
    b->len = 64 * 1024;
    outq qs[10] = {};
    for (outq &q : qs) assert_int_equal(outq_push_buf(&q, b, 0, b->len), 0);
    assert_int_equal(b->refs, 11);
    assert_int_equal(buf_live_count(), 1); // one payload, ten receivers
    struct iovec iov[1];
    outq_iov(&qs[3], iov, 1);
    assert_ptr_equal(iov[0].iov_base, b->data);
    // Nothing is packed into a buffer others share.
    assert_int_equal(outq_push_copy(&qs[3], "a", 1, nullptr, 0), 0);
    struct iovec two[2];
    assert_int_equal(outq_iov(&qs[3], two, 2), 2);
    buf_unref(b);
    for (outq &q : qs) {
        outq_consume(&q, 1000);
        outq_clear(&q);
    }
    assert_int_equal(buf_live_count(), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_survives_partial_writes),
        cmocka_unit_test(test_lone_small_frame_takes_a_small_buffer),
        cmocka_unit_test(test_small_frames_are_packed),
        cmocka_unit_test(test_shared_buffer_is_referenced_not_copied),
    };
    return unit_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
