// Reference-counted byte buffers: the unit of output. A frame written once (for
// example a broadcast) is referenced by every out-queue that sends it and freed when
// the last reference goes.
#pragma once

#include <stddef.h>
#include <stdint.h>

struct buf {
    uint32_t refs;
    uint32_t cap;
    uint32_t len;
    uint32_t flags; // buf_flag
    uint8_t data[];
};

enum buf_flag : uint32_t {
    BUF_SHARED = 1, // a prepared message's frame: the application's, sent by many queues
};

// Small buffers come in size classes with per-thread free lists; the largest class is
// the chunk that bursts of small writes are packed into.
enum { BUF_CLASSES = 4, BUF_CHUNK = 16384 - sizeof(buf) };

// A buffer with room for at least cap bytes and one reference; NULL when out of memory.
buf *buf_new(size_t cap);
static inline void buf_ref(buf *b) { b->refs++; }
void buf_unref(buf *b);
// Live buffers, for tests that prove a payload was not copied per receiver.
uint64_t buf_live_count(void);
// Gives the free buffers kept for reuse back to the allocator, but for a few small
// ones: after a burst, so an idle process shrinks back.
void buf_pool_trim(void);
