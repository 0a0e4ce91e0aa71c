#include "msg/channels.h"

#include "msg/probe.h"

#include <stdlib.h>
#include <string.h>

// FNV-1a: names are short, and an attacker who picks colliding names only makes one
// probe sequence longer, bounded by max_channels.
static uint64_t name_hash(const char *s, uint32_t n) {
    uint64_t h = 1469598103934665603ull;
    for (uint32_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

// Grows an array of elem-byte entries to hold at least need, doubling.
static bool fit(void **arr, uint32_t *cap, uint32_t need, size_t elem) {
    if (need <= *cap) return true;
    uint32_t n = *cap ? *cap : 4;
    while (n < need) n *= 2;
    void *na = realloc(*arr, (size_t)n * elem);
    if (!na) return false;
    memset((char *)na + (size_t)*cap * elem, 0, (size_t)(n - *cap) * elem);
    *arr = na;
    *cap = n;
    return true;
}

void channels_init(channels *cs, uint32_t max_channels, uint64_t epoch_seed) {
    memset(cs, 0, sizeof *cs);
    cs->next_epoch = epoch_seed;
    cs->free_head = CHANNELS_NONE;
    cs->max_channels = max_channels;
}

static void unhold(channels *cs, channel *c) {
    for (uint32_t i = 0; i < c->nheld; i++) {
        cs->held_bytes -= c->held[i].size;
        wsr_msg_free(c->held[i].msg);
    }
    free(c->held);
    c->held = nullptr;
    c->nheld = c->held_cap = 0;
}

static void unmark(channel *c, uint32_t client) {
    for (uint32_t i = 0; i < c->nmarks; i++)
        if (c->marks[i].client == client) {
            c->marks[i] = c->marks[--c->nmarks];
            return;
        }
}

// Drops the marks below an offset (a mark is still needed while the publication at its
// own offset is being delivered); the array goes with the last one.
static void prune_marks(channel *c, uint64_t below) {
    for (uint32_t i = 0; i < c->nmarks;)
        if (c->marks[i].until < below)
            c->marks[i] = c->marks[--c->nmarks];
        else
            i++;
    if (!c->nmarks) {
        free(c->marks);
        c->marks = nullptr;
        c->marks_cap = 0;
    }
}

static void channel_release(channels *cs, channel *c) {
    unhold(cs, c);
    free(c->marks);
    history_free(&c->hist);
    free(c->name);
    free(c->members);
}

void channels_free(channels *cs) {
    for (uint32_t i = 0; i < cs->nslots; i++)
        if (cs->slots[i].name) channel_release(cs, &cs->slots[i]);
    for (uint32_t i = 0; i < cs->clients_cap; i++) free(cs->clients[i].chans);
    free(cs->slots);
    free(cs->index);
    free(cs->clients);
    uint64_t max_bytes = cs->max_hist_bytes;
    channels_init(cs, cs->max_channels, cs->next_epoch);
    cs->max_hist_bytes = max_bytes;
}

static bool same_name(const channel *c, const char *name, uint32_t len) {
    return c->name_len == len && memcmp(c->name, name, len) == 0;
}

// Where the name is in the index, or the empty place where it would go.
static uint32_t probe(const channels *cs, const char *name, uint32_t len) {
    uint32_t mask = cs->index_cap - 1;
    for (uint32_t i = (uint32_t)name_hash(name, len) & mask;; i = (i + 1) & mask) {
        uint32_t e = cs->index[i];
        if (!e || same_name(&cs->slots[e - 1], name, len)) return i;
    }
}

uint32_t channels_find(const channels *cs, const char *name, uint32_t len) {
    if (!cs->index_cap) return CHANNELS_NONE;
    uint32_t e = cs->index[probe(cs, name, len)];
    return e ? e - 1 : CHANNELS_NONE;
}

// Rebuilds the index at twice the size, so it stays at most half full.
static bool index_grow(channels *cs) {
    uint32_t cap = cs->index_cap ? cs->index_cap * 2 : 16;
    uint32_t *old = cs->index, old_cap = cs->index_cap;
    cs->index = (uint32_t *)calloc(cap, sizeof *cs->index);
    if (!cs->index) {
        cs->index = old;
        return false;
    }
    cs->index_cap = cap;
    for (uint32_t i = 0; i < old_cap; i++) {
        if (!old[i]) continue;
        const channel *c = &cs->slots[old[i] - 1];
        cs->index[probe(cs, c->name, c->name_len)] = old[i];
    }
    free(old);
    return true;
}

uint32_t channels_get(channels *cs, const char *name, uint32_t len, uint32_t hist_count, uint64_t hist_age_ms) {
    uint32_t found = channels_find(cs, name, len);
    if (found != CHANNELS_NONE) return found;
    if (cs->live >= cs->max_channels) return CHANNELS_NONE;
    if ((cs->live + 1) * 2 > cs->index_cap && !index_grow(cs)) return CHANNELS_NONE;
    uint32_t slot = cs->free_head;
    if (slot == CHANNELS_NONE && !fit((void **)&cs->slots, &cs->nslots, cs->nslots + 1, sizeof *cs->slots))
        return CHANNELS_NONE;
    char *copy = (char *)malloc(len + 1u);
    if (!copy) return CHANNELS_NONE;
    memcpy(copy, name, len);
    copy[len] = '\0';
    if (slot == CHANNELS_NONE) {
        // fit() grew nslots to its new capacity: thread the new slots onto the free list.
        for (uint32_t i = cs->nslots; i-- > cs->live;) {
            if (cs->slots[i].name) continue;
            cs->slots[i].next_free = cs->free_head;
            cs->free_head = i;
        }
        slot = cs->free_head;
    }
    channel *c = &cs->slots[slot];
    cs->free_head = c->next_free;
    memset(c, 0, sizeof *c);
    c->name = copy;
    c->name_len = len;
    c->epoch = cs->next_epoch++;
    history_init(&c->hist, hist_count, hist_age_ms);
    cs->index[probe(cs, name, len)] = slot + 1;
    cs->live++;
    return slot;
}

// Removes a channel from the index and frees its slot.
static void channel_drop(channels *cs, uint32_t ch) {
    channel *c = &cs->slots[ch];
    probe_remove(cs->index, cs->index_cap, probe(cs, c->name, c->name_len), [cs](uint32_t e) {
        const channel *o = &cs->slots[e - 1];
        return (uint32_t)name_hash(o->name, o->name_len);
    });
    channel_release(cs, c);
    memset(c, 0, sizeof *c);
    c->next_free = cs->free_head;
    cs->free_head = ch;
    cs->live--;
}

static void drop_if_empty(channels *cs, uint32_t ch) {
    channel *c = &cs->slots[ch];
    if (!c->nmembers && !c->hist.len && !c->pending) channel_drop(cs, ch);
}

static chan_client *client_of(channels *cs, uint32_t client) {
    if (!fit((void **)&cs->clients, &cs->clients_cap, client + 1, sizeof *cs->clients)) return nullptr;
    return &cs->clients[client];
}

bool channels_is_member(const channels *cs, uint32_t ch, uint32_t client) {
    if (client >= cs->clients_cap) return false;
    const chan_client *cl = &cs->clients[client];
    for (uint32_t k = 0; k < cl->n; k++)
        if (cl->chans[k].channel == ch) return true;
    return false;
}

bool channels_subscribe(channels *cs, uint32_t ch, uint32_t client) {
    if (channels_is_member(cs, ch, client)) return true;
    chan_client *cl = client_of(cs, client);
    channel *c = &cs->slots[ch];
    if (!cl || !fit((void **)&cl->chans, &cl->cap, cl->n + 1, sizeof *cl->chans) ||
        !fit((void **)&c->members, &c->members_cap, c->nmembers + 1, sizeof *c->members))
        return false;
    cl->chans[cl->n] = client_chan{ch, c->nmembers};
    c->members[c->nmembers++] = chan_member{client, cl->n++};
    return true;
}

// Removes entry k of a client's list and entry members[pos] of the channel's, each by
// moving the last entry into the hole and fixing its back-reference.
static void unlink_sub(channels *cs, uint32_t client, uint32_t k) {
    chan_client *cl = &cs->clients[client];
    client_chan cc = cl->chans[k];
    channel *c = &cs->slots[cc.channel];
    if (c->nmarks) unmark(c, client);
    chan_member last_m = c->members[--c->nmembers];
    if (cc.pos != c->nmembers) {
        c->members[cc.pos] = last_m;
        cs->clients[last_m.client].chans[last_m.pos].pos = cc.pos;
    }
    client_chan last_c = cl->chans[--cl->n];
    if (k != cl->n) {
        cl->chans[k] = last_c;
        cs->slots[last_c.channel].members[last_c.pos].pos = k;
    }
}

bool channels_unsubscribe_keep(channels *cs, uint32_t ch, uint32_t client) {
    if (client >= cs->clients_cap) return false;
    chan_client *cl = &cs->clients[client];
    for (uint32_t k = 0; k < cl->n; k++) {
        if (cl->chans[k].channel != ch) continue;
        unlink_sub(cs, client, k);
        return true;
    }
    return false;
}

bool channels_unsubscribe(channels *cs, uint32_t ch, uint32_t client) {
    bool was = channels_unsubscribe_keep(cs, ch, client);
    if (was) drop_if_empty(cs, ch);
    return was;
}

void channels_drop_if_empty(channels *cs, uint32_t ch) { drop_if_empty(cs, ch); }

void channels_client_gone(channels *cs, uint32_t client) {
    if (client >= cs->clients_cap) return;
    chan_client *cl = &cs->clients[client];
    while (cl->n) {
        uint32_t ch = cl->chans[cl->n - 1].channel;
        unlink_sub(cs, client, cl->n - 1);
        drop_if_empty(cs, ch);
    }
    free(cl->chans);
    *cl = chan_client{};
}

uint64_t channels_publish(channels *cs, uint32_t ch, uint64_t now_ms, wsr_msg *msg, uint32_t size) {
    channel *c = &cs->slots[ch];
    uint64_t offset = ++c->last_offset;
    if (c->nmarks) prune_marks(c, offset);
    uint64_t before = c->hist.bytes;
    history_expire(&c->hist, now_ms);
    if (cs->max_hist_bytes && cs->hist_bytes - before + c->hist.bytes + size > cs->max_hist_bytes)
        history_free(&c->hist); // no room: this channel's history goes, gap-free
    else
        history_push(&c->hist, offset, now_ms, msg, size);
    cs->hist_bytes = cs->hist_bytes - before + c->hist.bytes;
    return offset;
}

bool channels_hold(channels *cs, uint32_t ch, uint64_t offset, wsr_msg *msg, uint32_t size) {
    channel *c = &cs->slots[ch];
    if (c->nheld == CHANNELS_HOLD_MAX) return false;
    if (cs->max_hist_bytes && cs->held_bytes + size > cs->max_hist_bytes) return false;
    if (c->nheld == c->held_cap) {
        uint32_t cap = c->held_cap ? c->held_cap * 2 : 16;
        held_pub *n = (held_pub *)realloc(c->held, cap * sizeof *n);
        if (!n) return false;
        c->held = n;
        c->held_cap = cap;
    }
    c->held[c->nheld++] = held_pub{offset, wsr_msg_ref(msg), size};
    cs->held_bytes += size;
    return true;
}

void channels_unhold(channels *cs, uint32_t ch) { unhold(cs, &cs->slots[ch]); }

bool channels_mark(channels *cs, uint32_t ch, uint32_t client, uint64_t until) {
    channel *c = &cs->slots[ch];
    unmark(c, client);
    if (until <= c->last_offset) return true;
    if (!fit((void **)&c->marks, &c->marks_cap, c->nmarks + 1, sizeof *c->marks)) return false;
    c->marks[c->nmarks++] = chan_mark{client, until};
    return true;
}

bool channels_skips(const channel *c, uint32_t client, uint64_t offset) {
    for (uint32_t i = 0; i < c->nmarks; i++)
        if (c->marks[i].client == client) return offset <= c->marks[i].until;
    return false;
}

void channels_reset(channels *cs, uint32_t ch, uint64_t epoch, uint64_t last_offset) {
    channel *c = &cs->slots[ch];
    cs->hist_bytes -= c->hist.bytes;
    history_free(&c->hist);
    if (c->epoch != epoch) c->nmarks = 0; // they counted in the old epoch
    c->epoch = epoch;
    c->last_offset = last_offset;
    prune_marks(c, last_offset + 1);
}

void channels_expire(channels *cs, uint64_t now_ms) {
    for (uint32_t i = 0; i < cs->nslots; i++) {
        channel *c = &cs->slots[i];
        if (!c->name) continue;
        uint64_t before = c->hist.bytes;
        history_expire(&c->hist, now_ms);
        cs->hist_bytes = cs->hist_bytes - before + c->hist.bytes;
        drop_if_empty(cs, i);
    }
}

// True when a ranks above b in channels_top.
static bool ranks_before(const wsr_messaging_channel &a, const wsr_messaging_channel &b) {
    return a.subscribers != b.subscribers ? a.subscribers > b.subscribers : a.offset > b.offset;
}

size_t channels_top(const channels *cs, wsr_messaging_channel *out, size_t n) {
    size_t have = 0;
    for (uint32_t i = 0; i < cs->nslots && n; i++) {
        const channel *c = &cs->slots[i];
        if (!c->name) continue;
        wsr_messaging_channel e = {c->name, c->name_len, c->nmembers, c->last_offset};
        if (have == n && !ranks_before(e, out[n - 1])) continue;
        // Insertion into the sorted prefix; when it is full the last one falls off.
        size_t k = have < n ? have++ : n - 1;
        for (; k > 0 && ranks_before(e, out[k - 1]); k--) out[k] = out[k - 1];
        out[k] = e;
    }
    return have;
}
