#include "msg/history.h"

#include <stdlib.h>
#include <string.h>

void history_init(history *h, uint32_t max_count, uint64_t max_age_ms) {
    memset(h, 0, sizeof *h);
    h->max_count = max_count;
    h->max_age_ms = max_age_ms;
}

static history_entry *slot(const history *h, uint32_t i) { return &h->ring[(h->head + i) % h->cap]; }

static void drop_oldest(history *h) {
    h->bytes -= slot(h, 0)->size;
    wsr_msg_free(slot(h, 0)->msg);
    h->head = (h->head + 1) % h->cap;
    h->len--;
}

void history_free(history *h) {
    while (h->len) drop_oldest(h);
    free(h->ring);
    history_init(h, h->max_count, h->max_age_ms);
}

// Doubles the ring (up to max_count), keeping the order: entries are copied out oldest
// first, so the new ring starts at index 0.
static bool grow(history *h) {
    uint32_t cap = h->cap ? h->cap * 2 : 8;
    if (cap > h->max_count) cap = h->max_count;
    history_entry *nr = (history_entry *)malloc((size_t)cap * sizeof *nr);
    if (!nr) return false;
    for (uint32_t i = 0; i < h->len; i++) nr[i] = *slot(h, i);
    free(h->ring);
    h->ring = nr;
    h->cap = cap;
    h->head = 0;
    return true;
}

bool history_push(history *h, uint64_t offset, uint64_t now_ms, wsr_msg *msg, uint32_t size) {
    if (!h->max_count) return true;
    if (h->len == h->max_count) drop_oldest(h);
    if (h->len == h->cap && !grow(h)) {
        history_free(h);
        return false;
    }
    *slot(h, h->len) = history_entry{offset, now_ms, wsr_msg_ref(msg), size};
    h->len++;
    h->bytes += size;
    return true;
}

void history_expire(history *h, uint64_t now_ms) {
    if (!h->max_age_ms) return;
    while (h->len && now_ms - slot(h, 0)->time_ms > h->max_age_ms) drop_oldest(h);
}

const history_entry *history_at(const history *h, uint32_t i) { return slot(h, i); }

bool history_since(const history *h, uint64_t seen, uint64_t last, uint32_t *first, uint32_t *count) {
    *first = *count = 0;
    if (seen > last) return false; // an offset this channel never gave out
    if (seen == last) return true; // nothing missed
    // Everything after seen must still be here: the oldest entry at most seen + 1.
    if (!h->len || slot(h, 0)->offset > seen + 1) return false;
    uint64_t skip = seen + 1 - slot(h, 0)->offset; // entries the client already has
    *first = (uint32_t)skip;
    *count = h->len - (uint32_t)skip;
    return true;
}
