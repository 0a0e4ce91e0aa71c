// Channels by name, who is subscribed to each, their offsets and histories, and each
// client's subscriptions. Subscribe and unsubscribe are O(1); a client that leaves costs
// O(its subscriptions). A subscription is 16 bytes: 8 in the channel's list (the client
// and where the channel sits in the client's list) and 8 in the client's (the channel
// and where the client sits in the channel's), so either side is removed by swapping in
// the last entry and fixing one back-reference.
//
// Channel slots are stable (a freed one is reused), found by name through an
// open-addressing table. A channel with no subscribers and no history is freed, so
// names that come and go do not pile up.
#pragma once

#include <stdint.h>

#include "msg/history.h"
#include "wsr/messaging.h"

struct chan_member {
    uint32_t client; // client slot
    uint32_t pos;    // index of this channel in the client's list
};

struct client_chan {
    uint32_t channel; // channel slot
    uint32_t pos;     // index of this client in the channel's list
};

struct channel {
    char *name;       // NULL: a free slot
    uint32_t name_len;
    uint32_t next_free; // free slots are linked through this
    chan_member *members;
    uint32_t nmembers, members_cap;
    uint64_t last_offset; // of the newest publication; 0 before the first
    // Names this incarnation of the channel: offsets restart when a channel is made
    // again (or the server restarts), and a client's offset from before must not pass
    // for one of the new sequence.
    uint64_t epoch;
    history hist;
    // Subscriptions waiting for the broker's answer (Redis gives the offset and the
    // history): the channel stays while they wait, so the publications that reach this
    // node meanwhile are kept for them.
    uint32_t pending;
    // Catching up (with a broker, after this node's subscriber connection was lost):
    // publications from the bus wait here, in order, until what was missed is fetched
    // from Redis and delivered first. NULL otherwise.
    struct held_pub *held;
    uint32_t nheld, held_cap;
    bool catching;
    // Members that joined ahead of this node's bus (msg_subscribed): Redis told them an
    // offset newer than last_offset, so the publications up to it, still on their way
    // over the bus, go to the other members only. Usually empty; at most one per member;
    // an entry goes once last_offset reaches it.
    struct chan_mark *marks;
    uint32_t nmarks, marks_cap;
};

// A member that has every publication of the channel's epoch up to `until`.
struct chan_mark {
    uint32_t client;
    uint64_t until;
};

// A publication waiting while its channel catches up.
struct held_pub {
    uint64_t offset;
    wsr_msg *msg; // a reference
    uint32_t size;
};

struct chan_client {
    client_chan *chans;
    uint32_t n, cap;
};

struct channels {
    channel *slots;
    uint32_t nslots, live, free_head;
    uint32_t *index;     // open addressing, linear probing: slot + 1, 0 empty
    uint32_t index_cap;  // a power of two, at most half full
    chan_client *clients; // by client slot
    uint32_t clients_cap;
    uint32_t max_channels;
    uint64_t next_epoch;  // the next channel's epoch
    uint64_t hist_bytes;  // held by all histories
    uint64_t max_hist_bytes; // past it, a channel's history is dropped rather than grown
    // Held by all channels that catch up (channels_hold), bounded by max_hist_bytes as
    // well (a budget of its own: full histories must not stop every catch-up).
    uint64_t held_bytes;
};

enum { CHANNELS_NONE = UINT32_MAX };

// epoch_seed: where epochs start; random per process, so that they differ across restarts.
void channels_init(channels *cs, uint32_t max_channels, uint64_t epoch_seed);
// Bounds the bytes all histories hold together (0: no bound). A publication that would
// pass it empties its channel's history instead (recovery then says "gone", never a gap):
// clients publishing large messages to many channels cannot grow memory without end.
static inline void channels_set_history_bytes(channels *cs, uint64_t max) { cs->max_hist_bytes = max; }
void channels_free(channels *cs);
// The channel with this name, or CHANNELS_NONE.
uint32_t channels_find(const channels *cs, const char *name, uint32_t len);
// The channel with this name, made when missing with a history of hist_count
// publications for hist_age_ms (0: no age limit). CHANNELS_NONE when max_channels are
// in use or out of memory.
uint32_t channels_get(channels *cs, const char *name, uint32_t len, uint32_t hist_count, uint64_t hist_age_ms);
static inline channel *channels_at(channels *cs, uint32_t ch) { return &cs->slots[ch]; }
// Subscribes a client (idempotent). False when out of memory.
bool channels_subscribe(channels *cs, uint32_t ch, uint32_t client);
// True when the client was subscribed.
bool channels_unsubscribe(channels *cs, uint32_t ch, uint32_t client);
// The same, keeping the channel even when it is left empty (the caller still uses it,
// then calls channels_drop_if_empty).
bool channels_unsubscribe_keep(channels *cs, uint32_t ch, uint32_t client);
// Frees a channel with no subscribers and no history.
void channels_drop_if_empty(channels *cs, uint32_t ch);
bool channels_is_member(const channels *cs, uint32_t ch, uint32_t client);
// Drops every subscription of a client that leaves.
void channels_client_gone(channels *cs, uint32_t client);
// A publication: msg carries the channel's next offset (last_offset + 1), which this
// takes, and the history keeps a reference to msg. Returns the offset. When the history
// cannot keep it (out of memory) it is cleared, so recovery says "gone", never a gap.
uint64_t channels_publish(channels *cs, uint32_t ch, uint64_t now_ms, wsr_msg *msg, uint32_t size);
// With a broker, offsets and epochs come from Redis: the channel takes this epoch and
// offset as its newest, its history emptied (it could not stay gap-free).
void channels_reset(channels *cs, uint32_t ch, uint64_t epoch, uint64_t last_offset);
// Keeps a publication while the channel catches up (takes a reference to msg). False
// when out of memory, past CHANNELS_HOLD_MAX in this channel, or past max_hist_bytes
// held by all channels together (the caller gives up catching up).
bool channels_hold(channels *cs, uint32_t ch, uint64_t offset, wsr_msg *msg, uint32_t size);
// Drops what is held (references and array).
void channels_unhold(channels *cs, uint32_t ch);
enum { CHANNELS_HOLD_MAX = 4096 };
// Marks a member as having every publication up to `until` (replacing its mark, if
// any): channels_skips is then true for it up to there. False when out of memory.
bool channels_mark(channels *cs, uint32_t ch, uint32_t client, uint64_t until);
// True when a publication at this offset is not for this member (it has it already).
bool channels_skips(const channel *c, uint32_t client, uint64_t offset);
// Expires old history everywhere and frees channels left with nothing.
void channels_expire(channels *cs, uint64_t now_ms);
// wsr_messaging_top_channels: the n channels with the most subscribers (ties: higher
// offset first) into out, most first; how many it wrote.
size_t channels_top(const channels *cs, wsr_messaging_channel *out, size_t n);
