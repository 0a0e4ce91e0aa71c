// Helpers shared by the fuzz harnesses: a failure macro, a deterministic splitter and a
// growable byte trace. Header-only and harness-only: nothing here is linked into the
// server.
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// A harness finding is a crash: libFuzzer and AFL++ both record abort() as one, and the
// replay runner turns it into "not ok". The message says which property broke.
#define FUZZ_CHECK(cond, ...)                                                                    \
    do {                                                                                         \
        if (!(cond)) {                                                                           \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);             \
            fprintf(stderr, __VA_ARGS__);                                                        \
            fputc('\n', stderr);                                                                 \
            abort();                                                                             \
        }                                                                                        \
    } while (0)

// Chunk sizes for feeding a parser in pieces, derived from input bytes so that every
// run is reproducible from the input file alone. max_chunk 0 or 1 means one byte at a time.
struct fuzz_splitter {
    uint32_t rng;
    uint32_t max_chunk;
};

static inline void fuzz_splitter_init(fuzz_splitter *s, uint32_t seed, uint32_t max_chunk) {
    s->rng = seed * 2654435761u + 0x9E3779B9u; // never 0: xorshift would stick there
    if (s->rng == 0) s->rng = 1;
    s->max_chunk = max_chunk ? max_chunk : 1;
}

// Size of the next chunk, 1..max_chunk, never past `left`. Small chunks are favoured
// (half the time at most 3 bytes): boundaries inside headers are where state machines
// go wrong.
static inline size_t fuzz_splitter_next(fuzz_splitter *s, size_t left) {
    uint32_t x = s->rng;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    s->rng = x;
    uint32_t lim = (x & 0x80000000u) && s->max_chunk > 3 ? 3 : s->max_chunk;
    size_t n = 1 + (x >> 8) % lim;
    return n < left ? n : left;
}

// An append-only byte log: two runs that must behave alike write their events here and
// the logs are compared with memcmp.
struct fuzz_trace {
    uint8_t *data;
    size_t len, cap;
};

static inline void fuzz_trace_init(fuzz_trace *t) {
    t->data = nullptr;
    t->len = t->cap = 0;
}

static inline void fuzz_trace_free(fuzz_trace *t) {
    free(t->data);
    fuzz_trace_init(t);
}

static inline void fuzz_trace_put(fuzz_trace *t, const void *p, size_t n) {
    if (t->len + n > t->cap) {
        size_t cap = t->cap ? t->cap : 256;
        while (cap < t->len + n) cap *= 2;
        uint8_t *nd = (uint8_t *)realloc(t->data, cap);
        FUZZ_CHECK(nd != nullptr, "out of memory");
        t->data = nd;
        t->cap = cap;
    }
    if (n) memcpy(t->data + t->len, p, n);
    t->len += n;
}

static inline void fuzz_trace_u8(fuzz_trace *t, uint8_t v) { fuzz_trace_put(t, &v, 1); }
static inline void fuzz_trace_u64(fuzz_trace *t, uint64_t v) { fuzz_trace_put(t, &v, sizeof v); }

static inline bool fuzz_trace_equal(const fuzz_trace *a, const fuzz_trace *b) {
    return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

// Offset of the first difference, for the failure message.
static inline size_t fuzz_trace_diff_at(const fuzz_trace *a, const fuzz_trace *b) {
    size_t n = a->len < b->len ? a->len : b->len;
    for (size_t i = 0; i < n; i++)
        if (a->data[i] != b->data[i]) return i;
    return n;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
