#include "core/outq.h"

#include <stdlib.h>
#include <string.h>

#include "core/mem.h"

enum { SEG_KEEP = 1024 };

struct seg_pool {
    outq_seg *free;
    uint32_t nfree;
};

static thread_local seg_pool segs;

static outq_seg *seg_new(void) {
    outq_seg *s = segs.free;
    if (s) {
        segs.free = s->next;
        segs.nfree--;
    } else {
        s = (outq_seg *)mem_alloc(sizeof *s);
        if (!s) return nullptr;
    }
    s->next = nullptr;
    return s;
}

static void seg_free(outq_seg *s) {
    buf_unref(s->b);
    if (segs.nfree >= SEG_KEEP) {
        free(s);
        return;
    }
    s->next = segs.free;
    segs.free = s;
    segs.nfree++;
}

static void append(outq *q, outq_seg *s) {
    if (q->tail)
        q->tail->next = s;
    else
        q->head = s;
    q->tail = s;
    q->bytes += s->len;
}

int outq_push_copy(outq *q, const void *a, size_t alen, const void *b, size_t blen) {
    size_t n = alen + blen;
    outq_seg *t = q->tail;
    // Pack into the tail when we own its buffer outright and it ends where the
    // segment ends: many small frames then leave in one iovec.
    if (t && t->b->refs == 1 && !(t->b->flags & BUF_SHARED) && t->off + t->len == t->b->len &&
        t->b->cap - t->b->len >= n) {
        memcpy(t->b->data + t->b->len, a, alen);
        if (blen) memcpy(t->b->data + t->b->len + alen, b, blen);
        t->b->len += (uint32_t)n;
        t->len += (uint32_t)n;
        q->bytes += n;
        return 0;
    }
    // A burst to one connection doubles the chunk size up to BUF_CHUNK, so it leaves in
    // few iovecs while a lone small frame still takes a small buffer.
    size_t want = n;
    if (t && t->b->cap * 2 > want) want = t->b->cap * 2 < BUF_CHUNK ? t->b->cap * 2 : (size_t)BUF_CHUNK;
    if (want < n) want = n;
    buf *nb = buf_new(want);
    if (!nb) return -1;
    outq_seg *s = seg_new();
    if (!s) {
        buf_unref(nb);
        return -1;
    }
    memcpy(nb->data, a, alen);
    if (blen) memcpy(nb->data + alen, b, blen);
    nb->len = (uint32_t)n;
    s->b = nb;
    s->off = 0;
    s->len = (uint32_t)n;
    append(q, s);
    return 0;
}

int outq_push_buf(outq *q, buf *b, uint32_t off, uint32_t len) {
    outq_seg *s = seg_new();
    if (!s) return -1;
    buf_ref(b);
    s->b = b;
    s->off = off;
    s->len = len;
    append(q, s);
    return 0;
}

int outq_iov(const outq *q, struct iovec *iov, int max) {
    int n = 0;
    for (outq_seg *s = q->head; s && n < max; s = s->next, n++) {
        iov[n].iov_base = s->b->data + s->off;
        iov[n].iov_len = s->len;
    }
    return n;
}

static size_t copied(const outq_seg *s, size_t n) { return s->b->flags & BUF_SHARED ? 0 : n; }

size_t outq_consume(outq *q, size_t n) {
    q->bytes -= n;
    size_t own = 0;
    while (n) {
        outq_seg *s = q->head;
        if (n < s->len) {
            own += copied(s, n);
            s->off += (uint32_t)n;
            s->len -= (uint32_t)n;
            return own;
        }
        own += copied(s, s->len);
        n -= s->len;
        q->head = s->next;
        if (!q->head) q->tail = nullptr;
        seg_free(s);
    }
    return own;
}

size_t outq_clear(outq *q) {
    size_t own = 0;
    while (q->head) {
        outq_seg *s = q->head;
        own += copied(s, s->len);
        q->head = s->next;
        seg_free(s);
    }
    q->tail = nullptr;
    q->bytes = 0;
    return own;
}

void outq_pool_trim(void) {
    while (segs.free) {
        outq_seg *s = segs.free;
        segs.free = s->next;
        free(s);
    }
    segs.nfree = 0;
}
