#include "core/buf.h"

#include <stdlib.h>

// Chunks are recycled rather than freed because a busy connection fills and drains
// one per loop iteration; the list is capped so an idle server gives memory back.
enum { POOL_KEEP = 64 };

struct buf_pool {
    buf *free[POOL_KEEP];
    uint32_t nfree;
    uint64_t live;
};

static thread_local buf_pool pool;

buf *buf_new(size_t cap) {
    if (cap > UINT32_MAX - sizeof(buf)) return nullptr;
    buf *b;
    if (cap <= BUF_CHUNK && pool.nfree) {
        b = pool.free[--pool.nfree];
    } else {
        size_t alloc = cap <= BUF_CHUNK ? (size_t)BUF_CHUNK : cap;
        b = (buf *)malloc(sizeof(buf) + alloc);
        if (!b) return nullptr;
        b->cap = (uint32_t)alloc;
    }
    b->refs = 1;
    b->len = 0;
    pool.live++;
    return b;
}

void buf_unref(buf *b) {
    if (--b->refs) return;
    pool.live--;
    if (b->cap == BUF_CHUNK && pool.nfree < POOL_KEEP) {
        pool.free[pool.nfree++] = b;
        return;
    }
    free(b);
}

uint64_t buf_live_count(void) { return pool.live; }
