// The recent publications of one channel, for clients that come back: a ring bounded by
// a count and an age. An entry is the framed envelope subscribers were sent (a wsr_msg,
// shared by reference), so recovering a client costs no copy and it gets the very bytes
// the others got. One history per channel serves every client, instead of a queue per
// client.
//
// Offsets count a channel's publications from 1; a client that saw offset X asks for
// what came after X. The answer is exact or it is "gone": never a gap.
#pragma once

#include <stdint.h>

#include "wsr/wsr.h"

struct history_entry {
    uint64_t offset;
    uint64_t time_ms; // when it was published (wall clock)
    wsr_msg *msg;
    uint32_t size;    // its bytes, for the budget of all histories
};

struct history {
    history_entry *ring; // grows as publications come, up to max_count
    uint32_t cap;        // entries allocated
    uint32_t head;       // index of the oldest entry
    uint32_t len;        // entries held
    uint32_t max_count;  // 0: no history
    uint64_t max_age_ms; // 0: no age limit
    uint64_t bytes;      // sum of the entries' sizes
};

void history_init(history *h, uint32_t max_count, uint64_t max_age_ms);
// Drops every entry's reference and the ring.
void history_free(history *h);
// Adds a publication; its offset must follow the newest one's. Takes a reference to msg
// (the caller keeps its own). The oldest entries go past max_count. False when out of
// memory: the history is then cleared, as it could not stay gap-free.
bool history_push(history *h, uint64_t offset, uint64_t now_ms, wsr_msg *msg, uint32_t size);
// Drops entries older than max_age_ms.
void history_expire(history *h, uint64_t now_ms);
// The entry i places after the oldest (0 .. len-1).
const history_entry *history_at(const history *h, uint32_t i);
// What came after offset `seen`, given the channel's newest offset `last` (0: none yet).
// True with [*first, *first + *count) as history_at indices (count 0: nothing missed);
// false when the history no longer holds all of it (or seen is from the future).
bool history_since(const history *h, uint64_t seen, uint64_t last, uint32_t *first, uint32_t *count);
