#include "core/conn_table.h"

#include <stdlib.h>
#include <string.h>

#include "core/mem.h"

static const uint32_t NONE = UINT32_MAX;

void conn_table_init(conn_table *t) {
    memset(t, 0, sizeof *t);
    t->free_head = NONE;
}

void conn_table_free(conn_table *t) {
    for (uint32_t i = 0; i < t->nblocks; i++) free(t->blocks[i]);
    free(t->blocks);
    conn_table_init(t);
}

static int grow(conn_table *t) {
    conn **nb = (conn **)realloc(t->blocks, (t->nblocks + 1) * sizeof *nb);
    if (!nb) return -1;
    t->blocks = nb;
    conn *block = (conn *)calloc(CONN_BLOCK, sizeof(conn));
    if (!block) return -1;
    t->blocks[t->nblocks] = block;
    uint32_t base = t->nblocks * CONN_BLOCK;
    t->nblocks++;
    // Thread the new slots onto the free list in index order.
    for (uint32_t i = CONN_BLOCK; i-- > 0;) {
        conn *c = &block[i];
        c->idx = base + i;
        c->gen = 1;
        c->fd = -1;
        c->tl[0].next = t->free_head;
        t->free_head = base + i;
    }
    return 0;
}

conn *conn_table_alloc(conn_table *t) {
    if (t->free_head == NONE && grow(t) != 0) return nullptr;
    conn *c = conn_table_at(t, t->free_head);
    t->free_head = c->tl[0].next;
    uint32_t idx = c->idx, gen = c->gen;
    memset(c, 0, sizeof *c);
    c->idx = idx;
    c->gen = gen;
    c->fd = -1;
    for (timer_link &l : c->tl) l.prev = l.next = NONE;
    t->live++;
    return c;
}

void conn_table_release(conn_table *t, conn *c) {
    c->state = CONN_FREE;
    c->gen = c->gen + 1 ? c->gen + 1 : 1; // 0 stays unused so an id is never 0
    c->fd = -1;
    c->tl[0].next = t->free_head;
    t->free_head = c->idx;
    t->live--;
}

bool conn_table_side_fit(void **arr, uint32_t *cap, uint32_t idx, size_t elem) {
    if (idx < *cap) return true;
    uint32_t n = *cap ? *cap : (uint32_t)CONN_BLOCK;
    while (n <= idx) n *= 2;
    char *na = (char *)mem_realloc(*arr, (size_t)n * elem);
    if (!na) return false;
    memset(na + (size_t)*cap * elem, 0, (size_t)(n - *cap) * elem);
    *arr = na;
    *cap = n;
    return true;
}
