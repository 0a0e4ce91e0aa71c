// A connection's output queue: segments that point into reference-counted buffers,
// written with one writev. Small messages are packed into the tail chunk; shared
// buffers (broadcast) are referenced, never copied.
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "core/buf.h"

struct outq_seg {
    outq_seg *next;
    buf *b;
    uint32_t off;
    uint32_t len;
};

struct outq {
    outq_seg *head;
    outq_seg *tail;
    uint64_t bytes; // queued, not yet written
};

// Bytes copied into the queue's own buffers are the server's memory; bytes of shared
// buffers (BUF_SHARED, prepared messages) are the application's. The functions that
// drop bytes return how many of them were copies, so the server can keep account.

// Appends a || b (a frame header and its payload) by copying: all or nothing. 0 or -1
// (no memory; the queue is unchanged).
int outq_push_copy(outq *q, const void *a, size_t alen, const void *b, size_t blen);
// Appends len bytes of a shared buffer at off, taking a reference. 0 or -1.
int outq_push_buf(outq *q, buf *b, uint32_t off, uint32_t len);
// Fills up to max iovecs from the head; returns how many.
int outq_iov(const outq *q, struct iovec *iov, int max);
// Drops n written bytes from the head; returns how many were copies.
size_t outq_consume(outq *q, size_t n);
// Drops everything (the connection is going away); returns how many were copies.
size_t outq_clear(outq *q);
// Frees the segments kept for reuse (after a burst).
void outq_pool_trim(void);
