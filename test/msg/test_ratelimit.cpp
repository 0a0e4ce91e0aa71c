// Unit tests for the token buckets (src/msg/ratelimit.*).
//
// What a user depends on: a client gets its burst at once and then the rate, no more and
// no less; the wait it is told is enough (rounded up, never 0 while it must wait); a
// message bigger than the burst waits for a full bucket and then costs the whole bucket,
// not forever and not for free; upgrades are limited per address (an IPv4 address, an
// IPv6 /64), whatever the port; a full table of addresses never stops answering.
#include <stdlib.h>
#include <string.h>

#include <string>

#include "unit.h"

#include "msg/ratelimit.h"

// --- one bucket ---------------------------------------------------------------------------

static void test_no_limit(void **) {
    rate_limit l = {0, 0};
    assert_int_equal(rate_wait(0, &l, 1), 0);
    assert_int_equal(rate_wait(0, &l, 1000000), 0);
    assert_int_equal(rate_take(5, &l, 1000), 5); // nothing taken
    assert_int_equal(rate_wait(rate_take(0, &l, 1), &l, 1), 0);
}

static void test_refill(void **) {
    rate_limit l = {10, 5}; // 10 a second, 5 at once: 10 thousandths a millisecond
    assert_int_equal(rate_full(&l), 5000);
    assert_int_equal(rate_refill(0, &l, 0), 0);
    assert_int_equal(rate_refill(0, &l, 1), 10);
    assert_int_equal(rate_refill(0, &l, 100), 1000); // a tenth of a second: one token
    assert_int_equal(rate_refill(1234, &l, 100), 2234);
    assert_int_equal(rate_refill(0, &l, 499), 4990);
    assert_int_equal(rate_refill(0, &l, 500), 5000);
    assert_int_equal(rate_refill(0, &l, 501), 5000); // capped at the burst
    assert_int_equal(rate_refill(4999, &l, 1000), 5000);
    assert_int_equal(rate_refill(5000, &l, 0), 5000);
    // Huge pauses do not overflow into a small number.
    assert_int_equal(rate_refill(0, &l, UINT64_MAX), 5000);
    assert_int_equal(rate_refill(0, &l, UINT64_MAX / 10 + 1), 5000);
    assert_int_equal(rate_refill(4000, &l, UINT64_MAX / 10), 5000);
    assert_int_equal(rate_refill(0, &l, (uint64_t)1 << 62), 5000);
    rate_limit fast = {1000000000ull, 1000000000ull}; // big rates too
    assert_int_equal(rate_refill(0, &fast, UINT64_MAX), rate_full(&fast));
    assert_int_equal(rate_refill(0, &fast, 3), 3000000000ull);
}

static void test_wait(void **) {
    rate_limit l = {10, 5};
    assert_int_equal(rate_wait(5000, &l, 1), 0);
    assert_int_equal(rate_wait(1000, &l, 1), 0);
    assert_int_equal(rate_wait(999, &l, 1), 1);    // 1 thousandth short: 0.1 ms, rounded up
    assert_int_equal(rate_wait(0, &l, 1), 100);    // a tenth of a second
    assert_int_equal(rate_wait(1, &l, 1), 100);    // 99.9 ms rounded up
    assert_int_equal(rate_wait(10, &l, 1), 99);
    assert_int_equal(rate_wait(0, &l, 3), 300);
    assert_int_equal(rate_wait(0, &l, 5), 500);    // the whole burst
    assert_int_equal(rate_wait(2500, &l, 5), 250);
    // The wait given is exactly enough: after it, the amount can be taken; one ms before, not.
    for (uint64_t t = 0; t < 5000; t += 37) {
        for (uint64_t amount = 1; amount <= 5; amount++) {
            uint64_t w = rate_wait(t, &l, amount);
            if (!w) {
                assert_true(t >= amount * 1000);
                continue;
            }
            assert_int_equal(rate_wait(rate_refill(t, &l, w), &l, amount), 0);
            assert_int_not_equal(rate_wait(rate_refill(t, &l, w - 1), &l, amount), 0);
        }
    }
    // More than the burst: waits for a full bucket, not forever.
    assert_int_equal(rate_wait(0, &l, 6), 500);
    assert_int_equal(rate_wait(0, &l, 1000000), 500);
    assert_int_equal(rate_wait(4000, &l, 6), 100);
    assert_int_equal(rate_wait(5000, &l, 6), 0);
}

static void test_take(void **) {
    rate_limit l = {10, 5};
    uint64_t t = rate_full(&l);
    for (int i = 0; i < 5; i++) { // the burst at once
        assert_int_equal(rate_wait(t, &l, 1), 0);
        t = rate_take(t, &l, 1);
    }
    assert_int_equal(t, 0);
    assert_int_equal(rate_wait(t, &l, 1), 100); // then the rate
    t = rate_refill(t, &l, 100);
    assert_int_equal(rate_wait(t, &l, 1), 0);
    t = rate_take(t, &l, 1);
    assert_int_equal(t, 0);
    t = rate_take(rate_refill(t, &l, 250), &l, 2);
    assert_int_equal(t, 500);
}

// An amount bigger than the burst is allowed from a full bucket (rate_wait says 0); taking
// it must empty the bucket, so that the next one waits. It must not wrap around to an
// enormous count that lets everything after it through.
static void test_take_more_than_the_burst(void **) {
    rate_limit l = {10, 5}; // e.g. bytes: 10 a second, bursts of 5
    uint64_t t = rate_full(&l);
    assert_int_equal(rate_wait(t, &l, 8), 0);
    t = rate_take(t, &l, 8);
    assert_true(t <= rate_full(&l));
    assert_int_not_equal(rate_wait(t, &l, 1), 0); // the bucket is spent
    t = rate_refill(t, &l, 1);
    assert_true(t <= rate_full(&l));
    assert_int_not_equal(rate_wait(t, &l, 8), 0);
}

// --- the table of addresses ---------------------------------------------------------------

// Takes until refused; the number allowed.
static int drain(rate_table *t, const char *addr, uint64_t now) {
    int n = 0;
    while (rate_table_take(t, addr, now) == 0) {
        n++;
        assert_true(n < 1000);
    }
    return n;
}

static void table(rate_table *t, uint32_t cap) {
    rate_limit l = {2, 3}; // 2 upgrades a second, 3 at once
    assert_true(rate_table_init(t, &l, cap, 0x1234567890abcdefull));
}

static void test_table_burst_and_refill(void **) {
    rate_table t;
    table(&t, 64);
    uint64_t now = 1000000;
    assert_int_equal(drain(&t, "1.2.3.4:5", now), 3);
    assert_int_equal(rate_table_take(&t, "1.2.3.4:5", now), 500);
    assert_int_equal(rate_table_take(&t, "1.2.3.4:5", now + 200), 300);
    assert_int_equal(rate_table_take(&t, "1.2.3.4:5", now + 499), 1);
    assert_int_equal(rate_table_take(&t, "1.2.3.4:5", now + 500), 0);
    assert_int_not_equal(rate_table_take(&t, "1.2.3.4:5", now + 500), 0);
    assert_int_equal(drain(&t, "1.2.3.4:5", now + 500 + 10000), 3); // a long pause: the burst again, no more
    rate_table_free(&t);
}

static void test_table_addresses(void **) {
    rate_table t;
    table(&t, 64);
    uint64_t now = 5000;
    assert_int_equal(drain(&t, "1.2.3.4:5", now), 3);
    assert_int_not_equal(rate_table_take(&t, "1.2.3.4:6", now), 0); // another port: the same client
    assert_int_not_equal(rate_table_take(&t, "1.2.3.4", now), 0);   // no port: the same
    assert_int_equal(drain(&t, "1.2.3.5:5", now), 3);               // another address: its own
    assert_int_equal(drain(&t, "4.3.2.1:5", now), 3);

    // IPv6: the /64 is the client.
    assert_int_equal(drain(&t, "[2001:db8:1:2::1]:443", now), 3);
    assert_int_not_equal(rate_table_take(&t, "[2001:db8:1:2:ffff:eeee:dddd:cccc]:80", now), 0);
    assert_int_not_equal(rate_table_take(&t, "2001:db8:1:2::77", now), 0);
    assert_int_equal(drain(&t, "[2001:db8:1:3::1]:443", now), 3); // another /64
    assert_int_equal(drain(&t, "[2001:db9:1:2::1]:443", now), 3);

    // "[::1]:80", "[::1]" and a bare "::1" are one address.
    assert_int_equal(drain(&t, "[::1]:80", now), 3);
    assert_int_not_equal(rate_table_take(&t, "::1", now), 0);
    assert_int_not_equal(rate_table_take(&t, "[::1]", now), 0);
    assert_int_not_equal(rate_table_take(&t, "[::1]:81", now), 0);

    // Text that does not parse: one shared bucket.
    assert_int_equal(drain(&t, "garbage", now), 3);
    assert_int_not_equal(rate_table_take(&t, "other garbage", now), 0);
    assert_int_not_equal(rate_table_take(&t, "", now), 0);
    assert_int_not_equal(rate_table_take(&t, "[::1", now), 0);
    assert_int_not_equal(rate_table_take(&t, "1.2.3.999:5", now), 0);
    assert_int_not_equal(rate_table_take(&t, std::string(200, '1').c_str(), now), 0);
    assert_int_equal(drain(&t, "9.9.9.9:1", now), 3); // real addresses are unaffected
    rate_table_free(&t);
}

// IPv4 and IPv6 keys are kept apart: an IPv6 /64 whose first eight bytes look like an IPv4
// address with the top bit set must not share that IPv4 address's bucket.
static void test_table_ipv4_and_ipv6_apart(void **) {
    rate_table t;
    table(&t, 64);
    uint64_t now = 5000;
    assert_int_equal(drain(&t, "1.2.3.4:5", now), 3);
    // Bytes 01 02 03 04 00 00 00 80 (and their mirror for the other byte order).
    assert_int_equal(drain(&t, "[102:304:0:80::1]:5", now), 3);
    assert_int_equal(drain(&t, "[8000:0:102:304::1]:5", now), 3);
    assert_int_equal(drain(&t, "[::]:5", now), 3);
    assert_int_equal(drain(&t, "[8000::]:5", now), 3);
    assert_int_equal(drain(&t, "0.0.0.0:5", now), 3);
    rate_table_free(&t);
}

static void test_table_no_limit(void **) {
    rate_table t;
    rate_limit l = {0, 0};
    assert_true(rate_table_init(&t, &l, 8, 1));
    for (int i = 0; i < 100; i++) assert_int_equal(rate_table_take(&t, "1.2.3.4:5", 0), 0);
    rate_table_free(&t);
}

// A table of 8 slots and hundreds of addresses: every call answers, an address seen
// again either has its own bucket or a fresh one, and an address that keeps coming keeps
// its limit while a few others come and go.
static void test_table_eviction(void **) {
    rate_table t;
    table(&t, 8);
    uint64_t now = 1000;
    char addr[64];
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < 300; i++) {
            snprintf(addr, sizeof addr, "10.%d.%d.%d:%d", round, i / 256, i % 256, 1000 + i);
            uint64_t w = rate_table_take(&t, addr, now);
            assert_true(w <= 500); // answers, with a sane wait
        }
        for (int i = 0; i < 300; i++) {
            snprintf(addr, sizeof addr, "[2001:db8:%x:%x::1]:80", round, i);
            assert_true(rate_table_take(&t, addr, now) <= 500);
        }
        now += 7;
    }
    // After the flood a new address still gets exactly its burst.
    assert_int_equal(drain(&t, "192.168.77.1:1", now), 3);
    rate_table_free(&t);

    // With one address against few others, it keeps its (spent) bucket: the others evict
    // full buckets first.
    table(&t, 8);
    now = 1000;
    assert_int_equal(drain(&t, "172.16.0.1:1", now), 3);
    for (int i = 0; i < 5; i++) {
        snprintf(addr, sizeof addr, "172.16.1.%d:1", i);
        assert_int_equal(rate_table_take(&t, addr, now), 0);
    }
    assert_int_not_equal(rate_table_take(&t, "172.16.0.1:1", now), 0);
    rate_table_free(&t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_limit),
        cmocka_unit_test(test_refill),
        cmocka_unit_test(test_wait),
        cmocka_unit_test(test_take),
        cmocka_unit_test(test_take_more_than_the_burst),
        cmocka_unit_test(test_table_burst_and_refill),
        cmocka_unit_test(test_table_addresses),
        cmocka_unit_test(test_table_ipv4_and_ipv6_apart),
        cmocka_unit_test(test_table_no_limit),
        cmocka_unit_test(test_table_eviction),
    };
    return unit_exit(cmocka_run_group_tests(tests, nullptr, nullptr));
}
