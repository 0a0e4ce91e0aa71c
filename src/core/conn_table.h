// Connections live in fixed blocks of slots, found by index; a public id pairs the
// index with the slot's generation, bumped on every reuse, so stale ids miss.
#pragma once

#include <stdint.h>

#include "core/conn.h"

enum { CONN_BLOCK = 256 };

struct conn_table {
    conn **blocks;
    uint32_t nblocks;
    uint32_t live;      // connections in use
    uint32_t free_head; // first free slot, linked through tl[0].next; UINT32_MAX = none
};

void conn_table_init(conn_table *t);
void conn_table_free(conn_table *t);
// A zeroed connection in a free slot (fd -1), or NULL when out of memory.
conn *conn_table_alloc(conn_table *t);
void conn_table_release(conn_table *t, conn *c);
static inline conn *conn_table_at(const conn_table *t, uint32_t idx) {
    return &t->blocks[idx / CONN_BLOCK][idx % CONN_BLOCK];
}
// Slots allocated so far (live or free): the bound for iterating over every slot.
static inline uint32_t conn_table_slots(const conn_table *t) { return t->nblocks * CONN_BLOCK; }
// The live connection with this id, or NULL. Inline: every event and every send by id
// goes through it.
static inline conn *conn_table_lookup(const conn_table *t, wsr_conn_id id) {
    uint32_t idx = (uint32_t)id, gen = (uint32_t)(id >> 32);
    if (idx >= conn_table_slots(t)) return nullptr;
    conn *c = conn_table_at(t, idx);
    if (c->gen != gen || c->state == CONN_FREE) return nullptr;
    return c;
}

// Facts few connections have (a proxied client's address, their own zlib streams, a
// subprotocol name of their own) live in arrays beside the table, indexed by slot, so
// that struct conn does not grow for everyone. Makes *arr (of elem-byte entries, *cap
// of them) hold index idx: zero-filled, doubling, so that growing leaves no trail of
// freed copies. False when out of memory (the array is unchanged).
bool conn_table_side_fit(void **arr, uint32_t *cap, uint32_t idx, size_t elem);
