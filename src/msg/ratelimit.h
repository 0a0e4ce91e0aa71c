// Token buckets: a client's messages, bytes and publishes a second, and upgrades a second
// per client address. Tokens are kept in thousandths, so that a rate per second is the
// same number per millisecond and refills need no division.
#pragma once

#include <stddef.h>
#include <stdint.h>

struct rate_limit {
    uint64_t rate;  // per second; 0: no limit
    uint64_t burst; // at most this many at once
};

// tokens after dt_ms at the limit's rate, capped at its burst.
uint64_t rate_refill(uint64_t tokens, const rate_limit *l, uint64_t dt_ms);
// Milliseconds until `amount` can be taken from tokens; 0: now (always when no limit).
uint64_t rate_wait(uint64_t tokens, const rate_limit *l, uint64_t amount);
// Takes amount (which rate_wait allowed: more than a burst empties the bucket).
static inline uint64_t rate_take(uint64_t tokens, const rate_limit *l, uint64_t amount) {
    if (!l->rate) return tokens;
    return amount * 1000 >= tokens ? 0 : tokens - amount * 1000;
}
static inline uint64_t rate_full(const rate_limit *l) { return l->burst * 1000; }

// Buckets by client address (IPv4 address, or the /64 of an IPv6 one: one host holds a
// whole /64), in a fixed table: an address not seen recently takes the slot of one whose
// bucket is full again; when there is none near, the fullest goes.
struct rate_table {
    struct entry {
        uint64_t key; // 0: free
        uint64_t tokens;
        uint64_t at_ms;
    } *slots;
    uint32_t cap; // a power of two
    uint64_t seed;
    rate_limit limit;
};

// False when out of memory.
bool rate_table_init(rate_table *t, const rate_limit *l, uint32_t cap, uint64_t seed);
void rate_table_free(rate_table *t);
// A new limit for the table (its buckets are kept). False when out of memory.
bool rate_table_set(rate_table *t, const rate_limit *l, uint32_t cap);
// Takes one token for the address (text as wsr_request_address gives it: "1.2.3.4:5",
// "[::1]:5", without a port too). 0 when allowed, else the milliseconds to wait.
// Addresses that do not parse share one bucket.
uint64_t rate_table_take(rate_table *t, const char *address, uint64_t now_ms);
