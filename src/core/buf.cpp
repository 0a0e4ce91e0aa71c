#include "core/buf.h"

#include <stdlib.h>

#include "core/mem.h"

// A connection that sends one small frame should pay for a small buffer: ten thousand
// connections answering a close at once must not each take a 16 KiB chunk. Sizes
// include the header, so each class is a round allocation.
static const uint32_t CLASS_SIZE[BUF_CLASSES] = {256, 1024, 4096, 16384};
// Free buffers kept per class: recycled because a busy connection fills and drains one
// per loop iteration; capped, and trimmed (buf_pool_trim) once a burst is over.
static const uint32_t CLASS_KEEP[BUF_CLASSES] = {1024, 256, 64, 64};
enum { KEEP_MAX = 1024, KEEP_AFTER_TRIM = 16 };

struct buf_pool {
    buf *free[BUF_CLASSES][KEEP_MAX];
    uint32_t nfree[BUF_CLASSES];
    uint64_t live;
};

static thread_local buf_pool pool;

static int class_of_cap(size_t cap) {
    for (int i = 0; i < BUF_CLASSES; i++)
        if (cap + sizeof(buf) <= CLASS_SIZE[i]) return i;
    return -1;
}

buf *buf_new(size_t cap) {
    if (cap > UINT32_MAX - sizeof(buf)) return nullptr;
    int k = class_of_cap(cap);
    buf *b;
    if (k >= 0 && pool.nfree[k]) {
        b = pool.free[k][--pool.nfree[k]];
    } else {
        size_t alloc = k >= 0 ? CLASS_SIZE[k] - sizeof(buf) : cap;
        b = (buf *)mem_alloc(sizeof(buf) + alloc);
        if (!b) return nullptr;
        b->cap = (uint32_t)alloc;
    }
    b->refs = 1;
    b->len = 0;
    b->flags = 0;
    pool.live++;
    return b;
}

void buf_unref(buf *b) {
    if (--b->refs) return;
    pool.live--;
    int k = class_of_cap(b->cap);
    if (k >= 0 && b->cap + sizeof(buf) == CLASS_SIZE[k] && pool.nfree[k] < CLASS_KEEP[k]) {
        pool.free[k][pool.nfree[k]++] = b;
        return;
    }
    free(b);
}

uint64_t buf_live_count(void) { return pool.live; }

void buf_pool_trim(void) {
    for (int k = 0; k < BUF_CLASSES; k++)
        while (pool.nfree[k] > (k == 0 ? (uint32_t)KEEP_AFTER_TRIM : 0u)) free(pool.free[k][--pool.nfree[k]]);
}
