// Unit tests for channel histories and subscriptions (src/msg/history.*, channels.*).
//
// What the messaging layer relies on: recovery is exact or "gone", never a gap or a
// duplicate; a publication's bytes live exactly as long as someone holds them; the
// subscriber lists and each client's list always agree, whatever the order of
// subscribes, unsubscribes and departures; a channel made again is a new epoch.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"

#include "msg/channels.h"
#include "msg/history.h"

static wsr_msg *text(const char *s) { return wsr_msg_new(WSR_TEXT, s, strlen(s)); }

// --- history ------------------------------------------------------------------------

static void push_n(history *h, uint64_t from, uint64_t to, uint64_t t0) {
    for (uint64_t o = from; o <= to; o++) {
        wsr_msg *m = text("p");
        assert_true(history_push(h, o, t0 + o, m, 1));
        wsr_msg_free(m); // the history keeps its own reference
    }
}

static void test_history_keeps_the_newest(void **) {
    history h;
    history_init(&h, 5, 0);
    push_n(&h, 1, 12, 0);
    assert_int_equal(h.len, 5);
    for (uint32_t i = 0; i < 5; i++) assert_int_equal(history_at(&h, i)->offset, 8 + i);
    history_free(&h);
}

static void test_history_since(void **) {
    history h;
    history_init(&h, 5, 0);
    push_n(&h, 1, 12, 0); // holds 8..12
    uint32_t first, count;
    assert_true(history_since(&h, 12, 12, &first, &count)); // up to date
    assert_int_equal(count, 0);
    assert_true(history_since(&h, 10, 12, &first, &count)); // missed 11, 12
    assert_int_equal(count, 2);
    assert_int_equal(history_at(&h, first)->offset, 11);
    assert_true(history_since(&h, 7, 12, &first, &count)); // missed 8..12: all held
    assert_int_equal(count, 5);
    assert_int_equal(history_at(&h, first)->offset, 8);
    assert_false(history_since(&h, 6, 12, &first, &count)); // 7 is gone: no gap allowed
    assert_false(history_since(&h, 13, 12, &first, &count)); // never given out
    history_free(&h);
    history_init(&h, 0, 0); // no history: only "up to date" is exact
    assert_true(history_since(&h, 3, 3, &first, &count));
    assert_false(history_since(&h, 2, 3, &first, &count));
}

static void test_history_expires_by_age(void **) {
    history h;
    history_init(&h, 100, 1000);
    push_n(&h, 1, 10, 0); // published at times 1..10
    history_expire(&h, 1005); // older than 1000 ms: times 1..4
    assert_int_equal(h.len, 6);
    assert_int_equal(history_at(&h, 0)->offset, 5);
    uint32_t first, count;
    assert_false(history_since(&h, 3, 10, &first, &count));
    assert_true(history_since(&h, 4, 10, &first, &count));
    assert_int_equal(count, 6);
    history_free(&h);
}

// The ring grows past its first allocation and wraps while keeping the order.
static void test_history_wraps_and_grows(void **) {
    history h;
    history_init(&h, 20, 0);
    for (uint64_t o = 1; o <= 100; o++) {
        wsr_msg *m = text("x");
        assert_true(history_push(&h, o, o, m, 1));
        wsr_msg_free(m);
        uint32_t n = h.len;
        for (uint32_t i = 0; i < n; i++) assert_int_equal(history_at(&h, i)->offset, o - n + 1 + i);
    }
    history_free(&h);
}

// --- channels -----------------------------------------------------------------------

// Both sides of every subscription point at each other.
static void check_consistent(channels *cs) {
    for (uint32_t ch = 0; ch < cs->nslots; ch++) {
        channel *c = &cs->slots[ch];
        if (!c->name) continue;
        for (uint32_t i = 0; i < c->nmembers; i++) {
            chan_member m = c->members[i];
            assert_true(m.client < cs->clients_cap);
            chan_client *cl = &cs->clients[m.client];
            assert_true(m.pos < cl->n);
            assert_int_equal(cl->chans[m.pos].channel, ch);
            assert_int_equal(cl->chans[m.pos].pos, i);
        }
        assert_int_equal(channels_find(cs, c->name, c->name_len), ch);
    }
    for (uint32_t k = 0; k < cs->clients_cap; k++) {
        chan_client *cl = &cs->clients[k];
        for (uint32_t i = 0; i < cl->n; i++) {
            client_chan cc = cl->chans[i];
            channel *c = &cs->slots[cc.channel];
            assert_non_null(c->name);
            assert_true(cc.pos < c->nmembers);
            assert_int_equal(c->members[cc.pos].client, k);
        }
    }
}

// The history each test's channels are made with.
static uint32_t hist_count;
static uint32_t get(channels *cs, const char *name) { return channels_get(cs, name, (uint32_t)strlen(name), hist_count, 0); }

static void test_subscribe_unsubscribe(void **) {
    channels cs;
    channels_init(&cs, 100, 7);
    hist_count = 10;
    uint32_t a = get(&cs, "agents:1"), b = get(&cs, "dash");
    assert_int_not_equal(a, CHANNELS_NONE);
    assert_int_equal(get(&cs, "agents:1"), a);
    assert_true(channels_subscribe(&cs, a, 3));
    assert_true(channels_subscribe(&cs, a, 3)); // idempotent
    assert_int_equal(channels_at(&cs, a)->nmembers, 1);
    assert_true(channels_subscribe(&cs, a, 9));
    assert_true(channels_subscribe(&cs, b, 3));
    check_consistent(&cs);
    assert_true(channels_unsubscribe(&cs, a, 3));
    assert_false(channels_unsubscribe(&cs, a, 3));
    assert_false(channels_is_member(&cs, a, 3));
    assert_true(channels_is_member(&cs, a, 9));
    check_consistent(&cs);
    channels_client_gone(&cs, 3); // b has no one left and no history: freed
    assert_int_equal(channels_find(&cs, "dash", 4), CHANNELS_NONE);
    channels_client_gone(&cs, 9);
    assert_int_equal(cs.live, 0);
    channels_free(&cs);
}

// Random operations against a plain model: the lists always agree with it and with
// each other, including after channels are dropped and their slots and index places
// reused.
static void test_random_operations_match_a_model(void **) {
    enum { CLIENTS = 64, NAMES = 40, OPS = 20000 };
    static bool model[NAMES][CLIENTS];
    memset(model, 0, sizeof model);
    channels cs;
    channels_init(&cs, 1000, 1);
    hist_count = 0; // no history: channels go as soon as they are empty
    uint32_t seed = 12345;
    auto rnd = [&](uint32_t n) {
        seed = seed * 1103515245 + 12345;
        return (seed >> 8) % n;
    };
    char name[32];
    for (int op = 0; op < OPS; op++) {
        uint32_t k = rnd(CLIENTS), n = rnd(NAMES), what = rnd(10);
        snprintf(name, sizeof name, "ch:%u", n);
        if (what < 6) {
            uint32_t ch = get(&cs, name);
            assert_int_not_equal(ch, CHANNELS_NONE);
            assert_true(channels_subscribe(&cs, ch, k));
            model[n][k] = true;
        } else if (what < 9) {
            uint32_t ch = channels_find(&cs, name, (uint32_t)strlen(name));
            bool was = ch != CHANNELS_NONE && channels_unsubscribe(&cs, ch, k);
            assert_int_equal(was, model[n][k]);
            model[n][k] = false;
        } else {
            channels_client_gone(&cs, k);
            for (uint32_t i = 0; i < NAMES; i++) model[i][k] = false;
        }
        if (op % 500 == 0) check_consistent(&cs);
    }
    check_consistent(&cs);
    for (uint32_t n = 0; n < NAMES; n++) {
        snprintf(name, sizeof name, "ch:%u", n);
        uint32_t ch = channels_find(&cs, name, (uint32_t)strlen(name));
        uint32_t members = 0;
        for (uint32_t k = 0; k < CLIENTS; k++) {
            members += model[n][k];
            assert_int_equal(ch != CHANNELS_NONE && channels_is_member(&cs, ch, k), model[n][k]);
        }
        // A channel exists exactly while someone is subscribed (there is no history).
        assert_int_equal(ch != CHANNELS_NONE, members > 0);
    }
    channels_free(&cs);
}

static void test_publish_offsets_history_and_epochs(void **) {
    channels cs;
    channels_init(&cs, 10, 100);
    hist_count = 3;
    uint32_t ch = get(&cs, "news");
    for (uint64_t o = 1; o <= 5; o++) {
        wsr_msg *m = text("n");
        assert_int_equal(channels_publish(&cs, ch, o, m, 1), o);
        wsr_msg_free(m);
    }
    assert_int_equal(channels_at(&cs, ch)->hist.len, 3);
    // No subscribers, but a history: the channel stays, so a client can recover.
    channels_expire(&cs, 10);
    assert_int_equal(channels_find(&cs, "news", 4), ch);
    channels_free(&cs);
    // Made again, the channel is a new epoch: its offsets mean something else.
    channels_init(&cs, 10, 100);
    hist_count = 0;
    ch = get(&cs, "a");
    uint64_t e1 = channels_at(&cs, ch)->epoch;
    channels_subscribe(&cs, ch, 1);
    channels_client_gone(&cs, 1);
    ch = get(&cs, "a");
    assert_int_not_equal(channels_at(&cs, ch)->epoch, e1);
    channels_free(&cs);
}

// All histories together stay within their byte budget: a publication that would pass
// it empties its channel's history (recovery says "gone", never a gap).
static void test_history_byte_budget(void **) {
    channels cs;
    channels_init(&cs, 10, 0);
    hist_count = 100;
    channels_set_history_bytes(&cs, 35);
    uint32_t a = get(&cs, "a"), b = get(&cs, "b");
    for (uint64_t o = 1; o <= 3; o++) {
        wsr_msg *m = text("0123456789");
        channels_publish(&cs, a, o, m, 10);
        wsr_msg_free(m);
    }
    assert_int_equal(cs.hist_bytes, 30);
    wsr_msg *m = text("0123456789");
    channels_publish(&cs, b, 4, m, 10); // 40 > 35: b keeps nothing
    assert_int_equal(channels_at(&cs, b)->hist.len, 0);
    assert_int_equal(channels_at(&cs, b)->last_offset, 1); // published all the same
    channels_publish(&cs, a, 5, m, 10); // a's own history goes too
    wsr_msg_free(m);
    assert_int_equal(channels_at(&cs, a)->hist.len, 0);
    assert_int_equal(cs.hist_bytes, 0);
    uint32_t first, count;
    assert_false(history_since(&channels_at(&cs, a)->hist, 2, 4, &first, &count));
    channels_free(&cs);
}

// What waits while channels catch up is bounded by the history budget, across channels,
// and given back when released.
static void test_held_byte_budget(void **) {
    channels cs;
    channels_init(&cs, 10, 0);
    channels_set_history_bytes(&cs, 35);
    uint32_t a = get(&cs, "a"), b = get(&cs, "b");
    wsr_msg *m = text("0123456789");
    assert_true(channels_hold(&cs, a, 1, m, 10));
    assert_true(channels_hold(&cs, a, 2, m, 10));
    assert_true(channels_hold(&cs, b, 1, m, 10));
    assert_int_equal(cs.held_bytes, 30);
    assert_false(channels_hold(&cs, b, 2, m, 10)); // 40 > 35: b gives up catching up
    assert_int_equal(channels_at(&cs, b)->nheld, 1);
    channels_unhold(&cs, a);
    assert_int_equal(cs.held_bytes, 10);
    assert_true(channels_hold(&cs, b, 2, m, 10));
    wsr_msg_free(m);
    channels_unhold(&cs, b);
    assert_int_equal(cs.held_bytes, 0);
    assert_true(channels_hold(&cs, a, 3, m = text("x"), 1));
    wsr_msg_free(m);
    channels_free(&cs); // what a holds goes with it (ASan: no leak)
}

static void test_max_channels(void **) {
    channels cs;
    channels_init(&cs, 2, 0);
    hist_count = 0;
    assert_int_not_equal(get(&cs, "a"), CHANNELS_NONE);
    assert_int_not_equal(get(&cs, "b"), CHANNELS_NONE);
    assert_int_equal(get(&cs, "c"), CHANNELS_NONE);
    assert_int_not_equal(get(&cs, "a"), CHANNELS_NONE); // existing ones still found
    channels_free(&cs);
}

// The status page's ranking: most subscribers first, ties by the newer offset, at most n,
// and a full list still takes a channel that outranks its last entry.
static void test_top_channels(void **) {
    channels cs;
    channels_init(&cs, 100, 0);
    hist_count = 4;
    wsr_messaging_channel top[3];
    assert_int_equal(channels_top(&cs, top, 3), 0);
    // subscribers: c0 1, c1 5, c2 3, c3 3 (but published on), c4 0, c5 7 (made last)
    const int subs[] = {1, 5, 3, 3, 0, 7};
    uint32_t ch[6];
    for (int i = 0; i < 6; i++) {
        char name[8];
        snprintf(name, sizeof name, "c%d", i);
        ch[i] = get(&cs, name);
        for (int k = 0; k < subs[i]; k++) assert_true(channels_subscribe(&cs, ch[i], (uint32_t)(10 * i + k)));
    }
    wsr_msg *m = text("p");
    channels_publish(&cs, ch[3], 1, m, 1);
    wsr_msg_free(m);
    assert_int_equal(channels_top(&cs, top, 3), 3);
    const char *want[] = {"c5", "c1", "c3"};
    const uint64_t want_subs[] = {7, 5, 3};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(top[i].name_len, 2);
        assert_memory_equal(top[i].name, want[i], 2);
        assert_int_equal(top[i].subscribers, want_subs[i]);
    }
    assert_int_equal(top[2].offset, 1);
    wsr_messaging_channel all[10];
    assert_int_equal(channels_top(&cs, all, 10), 6); // fewer than asked: all of them
    assert_int_equal(all[5].subscribers, 0);
    assert_int_equal(channels_top(&cs, all, 0), 0);
    channels_free(&cs);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_history_keeps_the_newest),
        cmocka_unit_test(test_history_since),
        cmocka_unit_test(test_history_expires_by_age),
        cmocka_unit_test(test_history_wraps_and_grows),
        cmocka_unit_test(test_subscribe_unsubscribe),
        cmocka_unit_test(test_random_operations_match_a_model),
        cmocka_unit_test(test_publish_offsets_history_and_epochs),
        cmocka_unit_test(test_history_byte_budget),
        cmocka_unit_test(test_held_byte_budget),
        cmocka_unit_test(test_max_channels),
        cmocka_unit_test(test_top_channels),
    };
    return unit_exit(cmocka_run_group_tests(tests, nullptr, nullptr));
}
