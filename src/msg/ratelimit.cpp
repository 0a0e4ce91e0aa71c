#include "msg/ratelimit.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

uint64_t rate_refill(uint64_t tokens, const rate_limit *l, uint64_t dt_ms) {
    uint64_t cap = rate_full(l);
    if (!l->rate || tokens >= cap) return cap;
    // dt is bounded so that dt * rate cannot overflow; a long pause fills the bucket anyway.
    if (dt_ms > cap / l->rate + 1) return cap;
    uint64_t t = tokens + dt_ms * l->rate;
    return t > cap ? cap : t;
}

uint64_t rate_wait(uint64_t tokens, const rate_limit *l, uint64_t amount) {
    if (!l->rate) return 0;
    uint64_t need = amount * 1000;
    if (tokens >= need) return 0;
    if (need > rate_full(l)) need = rate_full(l); // more than a burst: waits for a full bucket
    return tokens >= need ? 0 : (need - tokens + l->rate - 1) / l->rate;
}

bool rate_table_init(rate_table *t, const rate_limit *l, uint32_t cap, uint64_t seed) {
    memset(t, 0, sizeof *t);
    t->seed = seed | 1;
    return rate_table_set(t, l, cap);
}

bool rate_table_set(rate_table *t, const rate_limit *l, uint32_t cap) {
    if (l->rate && !t->slots) {
        t->slots = (rate_table::entry *)calloc(cap, sizeof *t->slots);
        if (!t->slots) return false;
        t->cap = cap;
    }
    t->limit = *l;
    return true;
}

void rate_table_free(rate_table *t) {
    free(t->slots);
    t->slots = nullptr;
}

static uint64_t mix(uint64_t z) {
    // splitmix64's finaliser.
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

// The address's key: its IPv4 address, or its IPv6 /64, each family (and text that does
// not parse) hashed apart, mixed with the seed so that nobody can aim many addresses at
// one slot. Never 0.
static uint64_t address_key(const char *text, uint64_t seed) {
    char host[64];
    const char *start = text, *end;
    if (*text == '[') {
        start = text + 1;
        end = strchr(start, ']');
    } else {
        end = strrchr(text, ':');
        if (end && strchr(text, ':') != end) end = nullptr; // a bare IPv6 address
        if (!end) end = text + strlen(text);
    }
    uint64_t raw = 0, family = 0;
    size_t n = end ? (size_t)(end - start) : 0;
    if (n && n < sizeof host) {
        memcpy(host, start, n);
        host[n] = '\0';
        unsigned char b[16];
        if (inet_pton(AF_INET, host, b) == 1) {
            memcpy(&raw, b, 4);
            family = 4;
        } else if (inet_pton(AF_INET6, host, b) == 1) {
            memcpy(&raw, b, 8);
            family = 6;
        }
    }
    uint64_t z = mix(raw + seed) ^ mix(family + (seed >> 1));
    return z ? z : 1;
}

uint64_t rate_table_take(rate_table *t, const char *address, uint64_t now_ms) {
    if (!t->limit.rate) return 0;
    uint64_t key = address_key(address, t->seed);
    enum { PROBES = 8 };
    uint32_t mask = t->cap - 1, home = (uint32_t)key & mask;
    rate_table::entry *e = nullptr, *fullest = nullptr;
    uint64_t best = 0;
    for (uint32_t i = 0; i < PROBES && !e; i++) {
        rate_table::entry *s = &t->slots[(home + i) & mask];
        if (s->key == key) {
            e = s;
            break;
        }
        uint64_t tokens = s->key ? rate_refill(s->tokens, &t->limit, now_ms - s->at_ms) : rate_full(&t->limit) + 1;
        if (!fullest || tokens > best) {
            fullest = s;
            best = tokens;
        }
    }
    if (!e) {
        e = fullest;
        e->key = key;
        e->tokens = rate_full(&t->limit);
        e->at_ms = now_ms;
    }
    e->tokens = rate_refill(e->tokens, &t->limit, now_ms - e->at_ms);
    e->at_ms = now_ms;
    uint64_t wait = rate_wait(e->tokens, &t->limit, 1);
    if (!wait) e->tokens = rate_take(e->tokens, &t->limit, 1);
    return wait;
}
