// The messaging protocol on /ws (docs/messaging.md): clients, their envelopes, channels
// with recovery, presence, direct messages, and the limits on what a client may send.
#include "wsr/messaging.h"

#include <stdio.h>
#include <stdlib.h>
#include <ctype.h>
#include <strings.h>
#include <uv.h>
#include <string.h>
#include <time.h>

#include "msg/broker.h"
#include "msg/namespaces.h"
#include "msg/probe.h"
#include "msg/server.h"
#include "proto/crypto.h"

void wsr_messaging_options_default(wsr_messaging_options *o) {
    memset(o, 0, sizeof *o);
    o->size = sizeof *o;
    o->max_message = 1 << 20;
    o->max_channels = 100000;
    o->history_memory = 64ull << 20;
    o->broker_queue = 8ull << 20;
    o->max_strikes = 16;
    // With no configuration: anyone subscribes and publishes, the last 100 publications
    // are kept for 5 minutes, presence is on. A production configuration tightens it.
    o->defaults.name = "";
    o->defaults.subscribe = o->defaults.publish = WSR_ALLOW_ANYONE;
    o->defaults.history_size = 100;
    o->defaults.history_ttl_ms = 5 * 60 * 1000;
    o->defaults.presence = o->defaults.join_leave = true;
    // Generous for agents that stream output and dashboards that publish: the limits
    // stop a runaway client, not a busy one.
    o->rate_messages = 1000;
    o->burst_messages = 2000;
    o->rate_bytes = 4ull << 20;
    o->burst_bytes = 8ull << 20;
    o->rate_publish = 500;
    o->burst_publish = 1000;
    // Per address: many clients may share one behind a NAT, so this only stops a
    // reconnect storm from one host.
    o->rate_handshakes = 100;
    o->burst_handshakes = 500;
}

uint64_t msg_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

// --- clients ----------------------------------------------------------------------------

static uint32_t id_hash(const char *id) {
    uint32_t h = 0;
    for (int i = 0; i < 8; i++) h = h * 16 + (uint32_t)(id[i] <= '9' ? id[i] - '0' : id[i] - 'a' + 10);
    return h; // the id is random: its first 32 bits spread well
}

static uint32_t id_probe(const wsr_messaging *ms, const char *id, size_t len) {
    uint32_t mask = ms->by_id_cap - 1;
    for (uint32_t i = (len == CLIENT_ID_LEN ? id_hash(id) : 0) & mask;; i = (i + 1) & mask) {
        uint32_t e = ms->by_id[i];
        if (!e || (len == CLIENT_ID_LEN && memcmp(ms->clients[e - 1].id, id, CLIENT_ID_LEN) == 0)) return i;
    }
}

static bool index_rebuild(wsr_messaging *ms, uint32_t cap) {
    uint32_t *n = (uint32_t *)calloc(cap, sizeof *n);
    if (!n) return false;
    free(ms->by_id);
    ms->by_id = n;
    ms->by_id_cap = cap;
    for (uint32_t s = 0; s < ms->nclients; s++)
        if (ms->clients[s].id[0]) ms->by_id[id_probe(ms, ms->clients[s].id, CLIENT_ID_LEN)] = s + 1;
    return true;
}

uint32_t msg_client_find(const wsr_messaging *ms, const char *id, size_t len) {
    if (!ms->by_id_cap || len != CLIENT_ID_LEN) return MSG_NONE;
    uint32_t e = ms->by_id[id_probe(ms, id, len)];
    return e ? e - 1 : MSG_NONE;
}

static uint32_t client_add(wsr_messaging *ms, wsr_conn_id conn) {
    if ((ms->live + 1) * 2 > ms->by_id_cap && !index_rebuild(ms, ms->by_id_cap ? ms->by_id_cap * 2 : 64))
        return MSG_NONE;
    uint32_t slot = ms->free_head;
    if (slot == MSG_NONE) {
        if (ms->nclients == ms->clients_cap) {
            uint32_t cap = ms->clients_cap ? ms->clients_cap * 2 : 64;
            msg_client *nc = (msg_client *)realloc(ms->clients, cap * sizeof *nc);
            if (!nc) return MSG_NONE;
            ms->clients = nc;
            ms->clients_cap = cap;
        }
        slot = ms->nclients++;
    } else {
        ms->free_head = ms->clients[slot].next_free;
    }
    msg_client *c = &ms->clients[slot];
    unsigned char raw[CLIENT_ID_LEN / 2];
    if (!crypto_random(raw, sizeof raw)) {
        c->id[0] = '\0';
        c->next_free = ms->free_head;
        ms->free_head = slot;
        return MSG_NONE;
    }
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < sizeof raw; i++) {
        c->id[2 * i] = hex[raw[i] >> 4];
        c->id[2 * i + 1] = hex[raw[i] & 15];
    }
    c->id[CLIENT_ID_LEN] = '\0';
    c->conn = conn;
    c->strikes = 0;
    c->msg_tokens = rate_full(&ms->lim_messages);
    c->byte_tokens = rate_full(&ms->lim_bytes);
    c->pub_tokens = rate_full(&ms->lim_publish);
    c->refilled_ms = msg_now_ms();
    c->who = nullptr;
    c->deadline_ms = 0;
    c->deadline_code = 0;
    ms->by_id[id_probe(ms, c->id, CLIENT_ID_LEN)] = slot + 1;
    ms->live++;
    return slot;
}

static void client_remove(wsr_messaging *ms, uint32_t slot) {
    msg_client *c = &ms->clients[slot];
    probe_remove(ms->by_id, ms->by_id_cap, id_probe(ms, c->id, CLIENT_ID_LEN),
                 [ms](uint32_t e) { return id_hash(ms->clients[e - 1].id); });
    c->id[0] = '\0';
    auth_identity_free(c->who);
    c->who = nullptr;
    c->deadline_ms = 0;
    c->next_free = ms->free_head;
    ms->free_head = slot;
    ms->live--;
}

static uint32_t slot_of(wsr_messaging *ms, wsr_conn_id id) {
    return (uint32_t)(uintptr_t)wsr_conn_user(ms->srv, id) - 1;
}

// --- sending ------------------------------------------------------------------------------

// Ends an envelope started with env_key(..., true): the timestamp, and the brace.
void msg_finish(env_out *o) {
    env_key(o, "timestamp", false);
    env_u64(o, msg_now_ms());
    env_raw(o, "}", 1);
}

void msg_send_out(wsr_messaging *ms, wsr_conn_id to) {
    if (!ms->out.failed) wsr_send(ms->srv, to, WSR_TEXT, ms->out.buf, ms->out.len);
}

void msg_begin(wsr_messaging *ms, const char *type, const env_str *correlation) {
    env_out_reset(&ms->out);
    env_key(&ms->out, "type", true);
    env_string(&ms->out, type, strlen(type));
    if (correlation && correlation->ptr) {
        env_key(&ms->out, "correlationId", false);
        env_string(&ms->out, correlation->ptr, correlation->len);
    }
}

void msg_error_object(env_out *o, const char *code, const char *message) {
    env_key(o, "code", true);
    env_string(o, code, strlen(code));
    env_key(o, "message", false);
    env_string(o, message, strlen(message));
    env_raw(o, "}", 1);
}

void msg_send_error(wsr_messaging *ms, wsr_conn_id to, const env_str *id, const char *code, const char *message) {
    ms->counts.bad_messages++;
    msg_begin(ms, "error", id);
    env_key(&ms->out, "payload", false);
    msg_error_object(&ms->out, code, message);
    msg_finish(&ms->out);
    msg_send_out(ms, to);
}

// rate_limited, with retryAfterMs; it counts as a bad message.
static void send_rate_limited(wsr_messaging *ms, wsr_conn_id to, const env_str *id, uint64_t wait_ms,
                              const char *what) {
    msg_begin(ms, "error", id);
    env_key(&ms->out, "payload", false);
    env_key(&ms->out, "code", true);
    env_lit(&ms->out, "\"rate_limited\"");
    env_key(&ms->out, "message", false);
    env_string(&ms->out, what, strlen(what));
    env_key(&ms->out, "retryAfterMs", false);
    env_u64(&ms->out, wait_ms);
    env_raw(&ms->out, "}", 1);
    msg_finish(&ms->out);
    msg_send_out(ms, to);
    ms->counts.rate_limited++;
    msg_client *c = &ms->clients[slot_of(ms, to)];
    if (++c->strikes >= ms->opts.max_strikes) wsr_close(ms->srv, to, 1008, "over the rate limit");
}

// A bad message costs an error envelope; many in a row cost the connection.
static void strike(wsr_messaging *ms, wsr_conn_id from, const env_str *id, const char *code, const char *message) {
    msg_send_error(ms, from, id, code, message);
    msg_client *c = &ms->clients[slot_of(ms, from)];
    if (++c->strikes >= ms->opts.max_strikes) wsr_close(ms->srv, from, 1008, "too many bad messages");
}

void msg_epoch_text(uint64_t epoch, char out[17]) {
    static const char hex[] = "0123456789abcdef";
    for (int i = 15; i >= 0; i--, epoch >>= 4) out[i] = hex[epoch & 15];
    out[16] = '\0';
}

// --- the protocol ---------------------------------------------------------------------------

bool msg_channel_name_ok(const env_str *s) {
    if (!s->ptr || !s->len || s->len > MAX_CHANNEL_NAME) return false;
    for (uint32_t i = 0; i < s->len; i++) {
        char c = s->ptr[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || (c && strchr("_.:@/-", c));
        if (!ok) return false;
    }
    return true;
}

// {"clientId":…,"user":…}: how a client appears to others.
void msg_client_object(wsr_messaging *ms, uint32_t client) {
    env_key(&ms->out, "clientId", true);
    env_string(&ms->out, ms->clients[client].id, CLIENT_ID_LEN);
    env_key(&ms->out, "user", false);
    const auth_identity *who = ms->clients[client].who;
    if (who)
        env_string(&ms->out, who->user, strlen(who->user));
    else
        env_lit(&ms->out, "null");
    env_raw(&ms->out, "}", 1);
}

// join / leave to the other members of a channel on this node (but `except`, a client
// id): framed once for all of them. who writes the client object into ms->out.
template <typename Who>
static void presence_frame(wsr_messaging *ms, uint32_t ch, const char *except, const char *type, Who who) {
    channel *c = channels_at(&ms->chans, ch);
    bool others = false;
    for (uint32_t i = 0; i < c->nmembers && !others; i++)
        others = memcmp(ms->clients[c->members[i].client].id, except, CLIENT_ID_LEN) != 0;
    if (!others || !ns_of(&ms->opts, c->name, c->name_len)->join_leave) return;
    msg_begin(ms, type, nullptr);
    env_key(&ms->out, "channel", false);
    env_string(&ms->out, c->name, c->name_len);
    env_key(&ms->out, "payload", false);
    who();
    msg_finish(&ms->out);
    wsr_msg *m = ms->out.failed ? nullptr : wsr_msg_new(WSR_TEXT, ms->out.buf, ms->out.len);
    if (!m) return;
    for (uint32_t i = 0; i < c->nmembers; i++) {
        const msg_client *mc = &ms->clients[c->members[i].client];
        if (memcmp(mc->id, except, CLIENT_ID_LEN) != 0) wsr_send_msg(ms->srv, mc->conn, m);
    }
    wsr_msg_free(m);
}

// A client joined or left: with the broker up, the change goes through Redis (its
// presence hash, and the event to every node, this one included); else to this node's
// members at once.
static void presence_event(wsr_messaging *ms, uint32_t ch, uint32_t client, const char *type) {
    channel *c = channels_at(&ms->chans, ch);
    if (broker_up(ms->broker)) {
        bool announce = ns_of(&ms->opts, c->name, c->name_len)->join_leave;
        broker_presence_change(ms->broker, client, c->name, c->name_len, type[0] == 'j', announce);
        return;
    }
    presence_frame(ms, ch, ms->clients[client].id, type, [ms, client] { msg_client_object(ms, client); });
}

void msg_bus_presence(wsr_messaging *ms, const char *name, uint32_t len, const char *client_id, const char *json,
                      size_t jlen, bool joined) {
    uint32_t ch = channels_find(&ms->chans, name, len);
    if (ch == CHANNELS_NONE) return;
    // The object was written by a node from its client (JSON of ours); checked all the
    // same, as it is framed into what clients get.
    if (!env_json_valid(ms->parser, json, jlen)) {
        wsr_log(WSR_LOG_WARN, "broker: a presence event whose client is not JSON was dropped");
        return;
    }
    presence_frame(ms, ch, client_id, joined ? "join" : "leave", [ms, json, jlen] { env_raw(&ms->out, json, jlen); });
}

// Unsubscribes a client, telling the others; frees the channel when nothing is left.
static void leave(wsr_messaging *ms, uint32_t ch, uint32_t client) {
    channels_unsubscribe_keep(&ms->chans, ch, client);
    presence_event(ms, ch, client, "leave");
    channels_drop_if_empty(&ms->chans, ch);
}

// The members of a channel: {"clients": [{"clientId", "user"}, ...]}, written into out.
void msg_presence_list(wsr_messaging *ms, uint32_t ch) {
    env_key(&ms->out, "clients", true);
    env_raw(&ms->out, "[", 1);
    channel *c = ch == CHANNELS_NONE ? nullptr : channels_at(&ms->chans, ch);
    for (uint32_t i = 0; c && i < c->nmembers; i++) {
        if (i) env_raw(&ms->out, ",", 1);
        msg_client_object(ms, c->members[i].client);
    }
    env_raw(&ms->out, "]}", 2);
}

// Whether the client may do `a` on the envelope's channel; when not it is told (a bad
// message) and false.
static bool allowed(wsr_messaging *ms, wsr_conn_id from, uint32_t client, const envelope *e, ns_action a) {
    const wsr_namespace *ns = ns_of(&ms->opts, e->channel.ptr, e->channel.len);
    const char *code = ns_check(ns, a, ms->clients[client].who, e->channel.ptr, e->channel.len);
    if (!code) {
        ms->clients[client].strikes = 0;
        return true;
    }
    ms->counts.forbidden++;
    strike(ms, from, &e->id, code,
           a == NS_SUBSCRIBE ? "not allowed to subscribe to this channel" : "not allowed to publish on this channel");
    return false;
}

// A channel made for the namespace it is in (its history).
static uint32_t channel_get(wsr_messaging *ms, const env_str *name) {
    const wsr_namespace *ns = ns_of(&ms->opts, name->ptr, name->len);
    return channels_get(&ms->chans, name->ptr, name->len, ns->history_size, ns->history_ttl_ms);
}

static void on_presence(wsr_messaging *ms, wsr_conn_id from, uint32_t client, const envelope *e) {
    if (!ns_of(&ms->opts, e->channel.ptr, e->channel.len)->presence) {
        ms->counts.forbidden++;
        return strike(ms, from, &e->id, "forbidden", "presence is off for this channel");
    }
    if (!allowed(ms, from, client, e, NS_SUBSCRIBE)) return;
    if (ms->broker) {
        // The members of every node; this node's alone would be a wrong answer.
        broker_waiter w{BW_WS, from, e->id};
        if (!broker_presence_query(ms->broker, &w, &e->channel))
            msg_send_error(ms, from, &e->id, "unavailable", "the message bus (Redis) is down");
        return;
    }
    uint32_t ch = channels_find(&ms->chans, e->channel.ptr, e->channel.len);
    msg_begin(ms, "presence", &e->id);
    env_key(&ms->out, "channel", false);
    env_string(&ms->out, e->channel.ptr, e->channel.len);
    env_key(&ms->out, "payload", false);
    msg_presence_list(ms, ch);
    msg_finish(&ms->out);
    msg_send_out(ms, from);
}

// The answer to a subscribe: {"type":"subscribed","channel",
// "payload":{"offset","epoch","recovered"}}; what it missed follows it.
static void send_subscribed(wsr_messaging *ms, wsr_conn_id to, const env_str *correlation, const env_str *channel,
                            uint64_t offset, const char epoch[16], bool recovered) {
    msg_begin(ms, "subscribed", correlation);
    env_key(&ms->out, "channel", false);
    env_string(&ms->out, channel->ptr, channel->len);
    env_key(&ms->out, "payload", false);
    env_key(&ms->out, "offset", true);
    env_u64(&ms->out, offset);
    env_key(&ms->out, "epoch", false);
    env_string(&ms->out, epoch, 16);
    env_key(&ms->out, "recovered", false);
    env_lit(&ms->out, recovered ? "true}" : "false}");
    msg_finish(&ms->out);
    msg_send_out(ms, to);
}

static void on_subscribe(wsr_messaging *ms, wsr_conn_id from, uint32_t client, const envelope *e) {
    if (!allowed(ms, from, client, e, NS_SUBSCRIBE)) return;
    uint32_t ch = channel_get(ms, &e->channel);
    if (ch == CHANNELS_NONE) return msg_send_error(ms, from, &e->id, "unavailable", "no room for another channel");
    if (broker_up(ms->broker)) {
        // Redis has the channel's epoch, offset and history: the client is subscribed
        // when it answers (msg_subscribed). The channel stays meanwhile, keeping what
        // reaches this node from the bus in its local history.
        uint64_t seen = 0;
        env_str seen_epoch = {};
        bool asked = env_since(ms->parser, e->payload, &seen, &seen_epoch);
        if (!broker_subscribe(ms->broker, client, &e->id, &e->channel, asked, seen, &seen_epoch)) {
            channels_drop_if_empty(&ms->chans, ch);
            return msg_send_error(ms, from, &e->id, "unavailable", "the message bus (Redis) is down");
        }
        channels_at(&ms->chans, ch)->pending++;
        return;
    }
    // Without a broker, or with Redis down: this node's view (local delivery goes on;
    // recovery from what this node kept).
    bool joined = !channels_is_member(&ms->chans, ch, client);
    if (!channels_subscribe(&ms->chans, ch, client)) return msg_send_error(ms, from, &e->id, "unavailable", "out of memory");
    if (joined) presence_event(ms, ch, client, "join");
    channel *c = channels_at(&ms->chans, ch);
    char epoch[17];
    msg_epoch_text(c->epoch, epoch);
    uint64_t seen;
    env_str seen_epoch;
    uint32_t first = 0, count = 0;
    bool asked = env_since(ms->parser, e->payload, &seen, &seen_epoch);
    bool recovered = asked && seen_epoch.len == 16 && memcmp(seen_epoch.ptr, epoch, 16) == 0 &&
                     history_since(&c->hist, seen, c->last_offset, &first, &count);
    send_subscribed(ms, from, &e->id, &e->channel, c->last_offset, epoch, recovered);
    // What it missed, in order, before anything live: the very frames the others got.
    for (uint32_t i = 0; recovered && i < count; i++) wsr_send_msg(ms->srv, from, history_at(&c->hist, first + i)->msg);
}

// --- what comes from the broker -----------------------------------------------------------------

static bool epoch_parse(const char *text, uint64_t *out) {
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        char c = text[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) return false;
        v = v * 16 + (uint64_t)d;
    }
    *out = v;
    return true;
}

// What comes from Redis (the bus, the streams) is sent to clients as TEXT frames as it
// is. A node wrote it as a JSON envelope, but anyone who can write to the Redis can put
// other bytes there: it is checked (JSON, and so UTF-8) once per node, before framing,
// so that no client gets a frame it must close on (1007) or that is not an envelope.
static bool from_redis_ok(wsr_messaging *ms, const char *data, size_t len, const char *what) {
    if (len <= ms->opts.max_message && env_json_valid(ms->parser, data, len)) return true;
    wsr_log(WSR_LOG_WARN, "broker: %s that is not a JSON envelope was dropped (%zu bytes)", what, len);
    return false;
}

// A publication of the bus into a channel of this node: kept in the local history and
// sent to the members. Takes nothing from m (the caller frees its reference).
static void deliver(wsr_messaging *ms, uint32_t ch, uint64_t ep, uint64_t offset, wsr_msg *m, uint32_t size) {
    channel *c = channels_at(&ms->chans, ch);
    // A new epoch (the channel was made again in Redis) or a gap (this node missed
    // publications and could not fetch them): the local history starts over, so that it
    // never serves a gap.
    if (c->epoch != ep || offset > c->last_offset + 1) channels_reset(&ms->chans, ch, ep, offset - 1);
    // Already delivered: at most once, even if Redis said it twice.
    if (offset <= c->last_offset) return;
    channels_publish(&ms->chans, ch, msg_now_ms(), m, size);
    c = channels_at(&ms->chans, ch);
    for (uint32_t i = 0; i < c->nmembers; i++) {
        uint32_t to = c->members[i].client;
        if (c->nmarks && channels_skips(c, to, offset)) continue; // it was told a newer offset
        wsr_send_msg(ms->srv, ms->clients[to].conn, m);
        ms->counts.deliveries++;
    }
}

// Ends a catch-up: what waited is delivered in order (after what was fetched, if any).
static void release_held(wsr_messaging *ms, uint32_t ch, uint64_t ep) {
    channel *c = channels_at(&ms->chans, ch);
    c->catching = false;
    for (uint32_t i = 0; i < c->nheld; i++) {
        held_pub *h = &channels_at(&ms->chans, ch)->held[i];
        deliver(ms, ch, ep, h->offset, h->msg, h->size);
    }
    channels_unhold(&ms->chans, ch);
}

void msg_bus_publication(wsr_messaging *ms, const char *name, uint32_t len, const char *epoch, uint64_t offset,
                         const char *data, size_t dlen) {
    // Channels nobody here is subscribed to (or waiting for) are not kept on this node:
    // their history is in Redis.
    uint32_t ch = channels_find(&ms->chans, name, len);
    uint64_t ep;
    if (ch == CHANNELS_NONE || !offset) return;
    if (!epoch_parse(epoch, &ep)) {
        wsr_log(WSR_LOG_WARN, "broker: a publication with a bad epoch was dropped");
        return;
    }
    // Dropped: its offset is then missing here, which the members see as a jump (a gap
    // is never papered over).
    if (!from_redis_ok(ms, data, dlen, "a publication")) return;
    wsr_msg *m = wsr_msg_new(WSR_TEXT, data, dlen);
    if (!m) {
        // Cannot keep it: no gap served either. A catch-up in progress ends first, or its
        // answer would number what it fetched from the offset set here.
        if (channels_at(&ms->chans, ch)->catching) release_held(ms, ch, channels_at(&ms->chans, ch)->epoch);
        channels_reset(&ms->chans, ch, ep, offset);
        return;
    }
    channel *c = channels_at(&ms->chans, ch);
    if (c->catching && c->epoch == ep && channels_hold(&ms->chans, ch, offset, m, (uint32_t)dlen)) {
        wsr_msg_free(m);
        return; // after what this node missed
    }
    if (c->catching) release_held(ms, ch, c->epoch); // no room to wait: as without catching up
    deliver(ms, ch, ep, offset, m, (uint32_t)dlen);
    wsr_msg_free(m);
}

void msg_catch_up(wsr_messaging *ms) {
    for (uint32_t i = 0; i < ms->chans.nslots; i++) {
        channel *c = &ms->chans.slots[i];
        if (!c->name || !c->nmembers || c->catching) continue;
        char ep[17];
        msg_epoch_text(c->epoch, ep);
        env_str name{c->name, c->name_len}, epoch{ep, 16};
        if (!broker_catch_up(ms->broker, &name, c->last_offset, &epoch)) return;
        c = &ms->chans.slots[i];
        c->catching = true;
        c->pending++;
    }
}

void msg_caught_up(wsr_messaging *ms, const env_str *channel, const char *epoch, uint64_t offset, bool recovered,
                   const char *const *data, const size_t *lens, uint32_t n) {
    uint32_t ch = channels_find(&ms->chans, channel->ptr, channel->len);
    if (ch == CHANNELS_NONE) return;
    struct channel *c = channels_at(&ms->chans, ch);
    if (c->pending) c->pending--;
    if (!c->catching) return channels_drop_if_empty(&ms->chans, ch); // ended early (a new epoch)
    uint64_t ep = c->epoch;
    bool same = epoch && epoch_parse(epoch, &ep) && ep == c->epoch;
    // What Redis kept after the local newest offset, oldest first: delivered as if it had
    // come from the bus, then what did come meanwhile (offsets already sent are skipped).
    uint64_t first = c->last_offset + 1;
    for (uint32_t i = 0; same && recovered && i < n && offset >= first + i; i++) {
        if (!from_redis_ok(ms, data[i], lens[i], "a recovered publication")) break; // the rest: a jump
        wsr_msg *m = wsr_msg_new(WSR_TEXT, data[i], lens[i]);
        if (!m) break;
        deliver(ms, ch, ep, first + i, m, (uint32_t)lens[i]);
        wsr_msg_free(m);
    }
    release_held(ms, ch, channels_at(&ms->chans, ch)->epoch);
    channels_drop_if_empty(&ms->chans, ch);
}

// The client of a broker operation, if it is still the one that asked.
static bool client_still(const wsr_messaging *ms, uint32_t client, wsr_conn_id conn) {
    return client < ms->nclients && ms->clients[client].id[0] && ms->clients[client].conn == conn;
}

void msg_subscribe_failed(wsr_messaging *ms, uint32_t client, wsr_conn_id conn, const env_str *correlation,
                          const env_str *channel, const char *why) {
    uint32_t ch = channels_find(&ms->chans, channel->ptr, channel->len);
    if (ch != CHANNELS_NONE && channels_at(&ms->chans, ch)->pending) {
        channels_at(&ms->chans, ch)->pending--;
        channels_drop_if_empty(&ms->chans, ch);
    }
    if (client_still(ms, client, conn)) msg_send_error(ms, conn, correlation, "unavailable", why);
}

void msg_subscribed(wsr_messaging *ms, uint32_t client, wsr_conn_id conn, const env_str *correlation,
                    const env_str *channel, const char *epoch, uint64_t offset, bool recovered, const char *const *data,
                    const size_t *lens, uint32_t n) {
    uint64_t ep;
    char local_epoch[17];
    if (!epoch_parse(epoch, &ep)) return msg_subscribe_failed(ms, client, conn, correlation, channel, "bad epoch");
    for (uint32_t i = 0; recovered && i < n; i++)
        if (!from_redis_ok(ms, data[i], lens[i], "a recovered publication")) recovered = false, n = 0;
    uint32_t ch = channels_find(&ms->chans, channel->ptr, channel->len);
    if (ch == CHANNELS_NONE) return msg_subscribe_failed(ms, client, conn, correlation, channel, "channel gone");
    struct channel *c = channels_at(&ms->chans, ch);
    if (c->pending) c->pending--;
    if (!client_still(ms, client, conn)) return channels_drop_if_empty(&ms->chans, ch);
    bool joined = !channels_is_member(&ms->chans, ch, client);
    // The answer came on the command connection, the publications on the subscriber
    // connection: two sockets, in no fixed order (Redis 7 often writes the answer first).
    // An offset past the channel's newest is then still on its way over the bus, and the
    // members here must get it: while there are members, the channel's offset only
    // moves with the bus. A new member takes Redis's offset (and what Redis recovered
    // for it) and is marked, so that the late publications up to it go to the others
    // only. A second subscribe, or another epoch, goes on from the local state, as the
    // members do. With no members, nobody here waits for those: the channel jumps.
    // While the channel catches up (fetching what this node missed, which will go to
    // every member, this one too), it goes on from the local state as well (not
    // recovered: the client's since cannot be served in between).
    bool ahead = false, local = c->catching;
    if (!local && c->nmembers && (c->epoch != ep || c->last_offset < offset)) {
        ahead = joined && c->epoch == ep;
        local = !ahead;
    }
    if (local) {
        recovered = false;
        offset = c->last_offset;
        ep = c->epoch;
        msg_epoch_text(ep, local_epoch);
        epoch = local_epoch;
        n = 0;
    } else if (!ahead && (c->epoch != ep || c->last_offset < offset)) {
        channels_reset(&ms->chans, ch, ep, offset);
    }
    // Otherwise Redis's offset is the truth up to when it answered; what this node heard
    // from the bus since (offsets past it) is in the local history and goes out after
    // the recovered ones, so the client sees every offset once, in order.
    uint32_t first = 0, count = 0;
    // A client subscribed already (a second subscribe) got the later ones live.
    bool later = joined && !ahead && history_since(&c->hist, offset, c->last_offset, &first, &count);
    if (!ahead && !later && c->last_offset > offset) recovered = false; // the node missed some: from now on
    uint64_t from_offset = later || ahead ? offset : c->last_offset;
    if (!channels_subscribe(&ms->chans, ch, client) || (ahead && !channels_mark(&ms->chans, ch, client, offset))) {
        channels_unsubscribe_keep(&ms->chans, ch, client);
        channels_drop_if_empty(&ms->chans, ch);
        return msg_send_error(ms, conn, correlation, "unavailable", "out of memory");
    }
    if (joined) presence_event(ms, ch, client, "join");
    c = channels_at(&ms->chans, ch);
    send_subscribed(ms, conn, correlation, channel, from_offset, epoch, recovered);
    for (uint32_t i = 0; recovered && i < n; i++) wsr_send(ms->srv, conn, WSR_TEXT, data[i], lens[i]);
    for (uint32_t i = 0; later && i < count; i++) wsr_send_msg(ms->srv, conn, history_at(&c->hist, first + i)->msg);
}

void msg_unsubscribe(wsr_messaging *ms, uint32_t client, wsr_conn_id conn, const env_str *correlation,
                     const env_str *channel) {
    if (!client_still(ms, client, conn)) return;
    uint32_t ch = channels_find(&ms->chans, channel->ptr, channel->len);
    if (ch != CHANNELS_NONE && channels_is_member(&ms->chans, ch, client)) leave(ms, ch, client);
    msg_ack(ms, conn, correlation, nullptr);
}

void msg_bus_direct(wsr_messaging *ms, const char *client_id, const char *data, size_t len) {
    uint32_t to = msg_client_find(ms, client_id, CLIENT_ID_LEN);
    if (to == MSG_NONE) return; // gone since Redis routed it here
    if (!from_redis_ok(ms, data, len, "a direct message")) return;
    wsr_send(ms->srv, ms->clients[to].conn, WSR_TEXT, data, len);
    ms->counts.direct_messages++;
}

void msg_bus_disconnect(wsr_messaging *ms, const char *client_id, uint16_t code, const char *reason) {
    uint32_t who = msg_client_find(ms, client_id, CLIENT_ID_LEN);
    if (who != MSG_NONE) wsr_close(ms->srv, ms->clients[who].conn, code, reason);
}

uint64_t msg_disconnect_user(wsr_messaging *ms, const char *user, size_t len, uint16_t code, const char *reason) {
    uint64_t n = 0;
    for (uint32_t i = 0; i < ms->nclients; i++) {
        const msg_client *c = &ms->clients[i];
        if (c->id[0] && c->who && strlen(c->who->user) == len && memcmp(c->who->user, user, len) == 0 &&
            wsr_close(ms->srv, c->conn, code, reason) == WSR_OK)
            n++;
    }
    return n;
}

void msg_ack(wsr_messaging *ms, wsr_conn_id to, const env_str *correlation, const uint64_t *offset) {
    if (!correlation->ptr) return;
    msg_begin(ms, "ack", correlation);
    if (offset) {
        env_key(&ms->out, "payload", false);
        env_key(&ms->out, "offset", true);
        env_u64(&ms->out, *offset);
        env_raw(&ms->out, "}", 1);
    }
    msg_finish(&ms->out);
    msg_send_out(ms, to);
}

uint64_t msg_publish(wsr_messaging *ms, const envelope *e, const char *from, char epoch_out[17], const char **why) {
    uint32_t ch = channel_get(ms, &e->channel);
    if (ch == CHANNELS_NONE) {
        *why = "no room for another channel";
        return 0;
    }
    channel *c = channels_at(&ms->chans, ch);
    uint64_t offset = c->last_offset + 1;
    msg_epoch_text(c->epoch, epoch_out);
    env_out_reset(&ms->out);
    env_key(&ms->out, "type", true);
    if (e->event.ptr && e->event.len)
        env_string(&ms->out, e->event.ptr, e->event.len);
    else
        env_lit(&ms->out, "\"message\"");
    env_key(&ms->out, "channel", false);
    env_string(&ms->out, e->channel.ptr, e->channel.len);
    env_key(&ms->out, "offset", false);
    env_u64(&ms->out, offset);
    env_key(&ms->out, "epoch", false);
    env_string(&ms->out, epoch_out, 16);
    env_key(&ms->out, "payload", false);
    if (e->payload.ptr)
        env_raw(&ms->out, e->payload.ptr, e->payload.len);
    else
        env_lit(&ms->out, "null");
    if (from) {
        env_key(&ms->out, "from", false);
        env_string(&ms->out, from, CLIENT_ID_LEN);
    }
    msg_finish(&ms->out);
    // What a client may not send, it is not sent either (its peers share the limit).
    if (ms->out.len > ms->opts.max_message) {
        channels_drop_if_empty(&ms->chans, ch);
        *why = MSG_TOO_LARGE;
        return 0;
    }
    wsr_msg *m = ms->out.failed ? nullptr : wsr_msg_new(WSR_TEXT, ms->out.buf, ms->out.len);
    if (!m) {
        *why = "out of memory";
        return 0;
    }
    channels_publish(&ms->chans, ch, msg_now_ms(), m, (uint32_t)ms->out.len);
    ms->counts.publications++;
    ms->counts.deliveries += c->nmembers;
    for (uint32_t i = 0; i < c->nmembers; i++) wsr_send_msg(ms->srv, ms->clients[c->members[i].client].conn, m);
    wsr_msg_free(m);
    return offset;
}

static void on_publish(wsr_messaging *ms, wsr_conn_id from, uint32_t client, const envelope *e) {
    if (!allowed(ms, from, client, e, NS_PUBLISH)) return;
    if (ms->broker) {
        // Through Redis, answered when it is in the channel's stream and on the bus; with
        // Redis down, unavailable rather than a success nobody else would see.
        broker_waiter w{BW_WS, from, e->id};
        const char *why;
        if (!broker_publish(ms->broker, &w, e, ms->clients[client].id, &e->channel, 1, false, &why))
            msg_send_error(ms, from, &e->id, why == MSG_TOO_LARGE ? "too_large" : "unavailable", why);
        return;
    }
    char epoch[17];
    const char *why;
    uint64_t offset = msg_publish(ms, e, ms->clients[client].id, epoch, &why);
    if (!offset) return msg_send_error(ms, from, &e->id, why == MSG_TOO_LARGE ? "too_large" : "unavailable", why);
    msg_ack(ms, from, &e->id, &offset);
}

const char *const MSG_TOO_LARGE = "the envelope would be larger than the largest message";

bool msg_direct_frame(wsr_messaging *ms, const envelope *e, const char *from) {
    env_out_reset(&ms->out);
    env_key(&ms->out, "type", true);
    if (e->event.ptr && e->event.len)
        env_string(&ms->out, e->event.ptr, e->event.len);
    else
        env_lit(&ms->out, "\"message\"");
    if (from) {
        env_key(&ms->out, "from", false);
        env_string(&ms->out, from, CLIENT_ID_LEN);
    }
    env_key(&ms->out, "payload", false);
    if (e->payload.ptr)
        env_raw(&ms->out, e->payload.ptr, e->payload.len);
    else
        env_lit(&ms->out, "null");
    if (e->correlation_id.ptr) {
        env_key(&ms->out, "correlationId", false);
        env_string(&ms->out, e->correlation_id.ptr, e->correlation_id.len);
    }
    msg_finish(&ms->out);
    return ms->out.len <= ms->opts.max_message;
}

bool msg_direct(wsr_messaging *ms, uint32_t to, const envelope *e, const char *from) {
    if (!msg_direct_frame(ms, e, from)) return false;
    msg_send_out(ms, ms->clients[to].conn);
    ms->counts.direct_messages++;
    return true;
}

static void on_send(wsr_messaging *ms, wsr_conn_id from, uint32_t client, const envelope *e) {
    uint32_t to = e->to.ptr ? msg_client_find(ms, e->to.ptr, e->to.len) : MSG_NONE;
    if (to == MSG_NONE && ms->broker && e->to.ptr && e->to.len == CLIENT_ID_LEN) {
        // Perhaps a client of another node: Redis knows which (the ack or not_found
        // comes with its answer).
        if (!msg_direct_frame(ms, e, ms->clients[client].id))
            return msg_send_error(ms, from, &e->id, "too_large", MSG_TOO_LARGE);
        broker_waiter w{BW_WS, from, e->id};
        if (!broker_direct(ms->broker, &w, e->to.ptr, e->to.len, ms->out.buf, ms->out.len))
            msg_send_error(ms, from, &e->id, "unavailable", "the message bus (Redis) is down");
        return;
    }
    if (to == MSG_NONE) return msg_send_error(ms, from, &e->id, "not_found", "no client with that id");
    if (!msg_direct(ms, to, e, ms->clients[client].id)) return msg_send_error(ms, from, &e->id, "too_large", MSG_TOO_LARGE);
    msg_ack(ms, from, &e->id, nullptr);
}

static bool is(const env_str *s, const char *lit) { return s->len == strlen(lit) && memcmp(s->ptr, lit, s->len) == 0; }

// Takes one message of len bytes (a publish too when it is one) from the client's
// buckets. 0 when it may go, else the milliseconds until it could (*what: which limit).
static uint64_t rate_check(wsr_messaging *ms, msg_client *c, size_t len, bool publish, const char **what) {
    uint64_t now = msg_now_ms(), dt = now - c->refilled_ms;
    c->refilled_ms = now;
    c->msg_tokens = rate_refill(c->msg_tokens, &ms->lim_messages, dt);
    c->byte_tokens = rate_refill(c->byte_tokens, &ms->lim_bytes, dt);
    c->pub_tokens = rate_refill(c->pub_tokens, &ms->lim_publish, dt);
    uint64_t wm = rate_wait(c->msg_tokens, &ms->lim_messages, 1);
    uint64_t wb = rate_wait(c->byte_tokens, &ms->lim_bytes, len);
    uint64_t wp = publish ? rate_wait(c->pub_tokens, &ms->lim_publish, 1) : 0;
    uint64_t wait = wm > wb ? wm : wb;
    if (wp > wait) wait = wp;
    if (wait) {
        *what = wp == wait ? "over the publish rate" : wm == wait ? "over the message rate" : "over the byte rate";
        return wait;
    }
    c->msg_tokens = rate_take(c->msg_tokens, &ms->lim_messages, 1);
    c->byte_tokens = rate_take(c->byte_tokens, &ms->lim_bytes, len);
    if (publish) c->pub_tokens = rate_take(c->pub_tokens, &ms->lim_publish, 1);
    return 0;
}

// `auth` with payload.token: authenticates an anonymous connection, or refreshes the
// token of an authenticated one (same user). A bad token closes with 4001 (4002 when it
// had expired); another user's token with 4003.
static void on_auth(wsr_messaging *ms, wsr_conn_id from, uint32_t client, const envelope *e) {
    env_str tok;
    if (!env_payload_string(ms->parser, e->payload, "token", &tok))
        return strike(ms, from, &e->id, "bad_request", "auth needs payload.token");
    if (!auth_accepts_tokens(&ms->creds))
        return strike(ms, from, &e->id, "bad_request", "this server takes no tokens");
    auth_identity *who;
    const char *why;
    auth_result r = auth_token(&ms->creds, tok.ptr, tok.len, msg_now_ms(), &who, &why);
    msg_client *c = &ms->clients[client];
    if (r != AUTH_OK) {
        ms->counts.auth_failures++;
        msg_send_error(ms, from, &e->id, "unauthorized", why);
        wsr_log(WSR_LOG_INFO, "messaging: client %s: auth refused: %s", c->id, why);
        wsr_close(ms->srv, from, r == AUTH_EXPIRED ? 4002 : 4001, r == AUTH_EXPIRED ? "token expired" : "unauthorized");
        return;
    }
    if (c->who && strcmp(c->who->user, who->user) != 0) {
        ms->counts.auth_failures++;
        auth_identity_free(who);
        msg_send_error(ms, from, &e->id, "forbidden", "a token for another user");
        wsr_close(ms->srv, from, 4003, "forbidden");
        return;
    }
    auth_identity_free(c->who);
    c->who = who;
    msg_deadline_set(ms, client, who->expires_ms, who->expires_ms ? 4002 : 0);
    if (!e->id.ptr) return;
    msg_begin(ms, "ack", &e->id);
    env_key(&ms->out, "payload", false);
    env_key(&ms->out, "user", true);
    env_string(&ms->out, who->user, strlen(who->user));
    env_key(&ms->out, "expiresAt", false);
    if (who->expires_ms)
        env_u64(&ms->out, who->expires_ms);
    else
        env_lit(&ms->out, "null");
    env_raw(&ms->out, "}", 1);
    msg_finish(&ms->out);
    msg_send_out(ms, from);
}

// A type an embedder registered: its handler answers.
static void on_custom(wsr_messaging *ms, wsr_conn_id from, uint32_t client, const envelope *e, const msg_handler *h) {
    const msg_client *c = &ms->clients[client];
    wsr_messaging_message m;
    m.conn = from;
    m.client_id = c->id;
    m.user = c->who ? c->who->user : nullptr;
    m.type = wsr_str{e->type.ptr, e->type.len};
    m.id = wsr_str{e->id.ptr, e->id.len};
    m.channel = wsr_str{e->channel.ptr, e->channel.len};
    m.payload = wsr_str{e->payload.ptr, e->payload.len};
    h->fn(ms, &m, h->user);
}

static void on_message(wsr_server *, wsr_conn_id from, wsr_opcode op, const uint8_t *data, size_t len, void *user) {
    wsr_messaging *ms = (wsr_messaging *)user;
    uint32_t client = slot_of(ms, from);
    msg_client *c = &ms->clients[client];
    envelope e;
    const char *why;
    env_result r = op == WSR_TEXT ? env_parse(ms->parser, (const char *)data, len, &e, &why, true) : ENV_BAD_REQUEST;
    // Over the rate: answered (to its id, when it has one) and not acted on.
    const char *what;
    uint64_t wait = rate_check(ms, c, len, r == ENV_OK && is(&e.type, "publish"), &what);
    if (wait) return send_rate_limited(ms, from, r == ENV_OK ? &e.id : nullptr, wait, what);
    if (op != WSR_TEXT) return strike(ms, from, nullptr, "bad_request", "messages are JSON text frames");
    if (r == ENV_INVALID_JSON) return strike(ms, from, nullptr, "invalid_json", why);
    if (r != ENV_OK) return strike(ms, from, &e.id, "bad_request", why);
    bool needs_channel =
        is(&e.type, "subscribe") || is(&e.type, "unsubscribe") || is(&e.type, "publish") || is(&e.type, "presence");
    const msg_handler *h = nullptr;
    if (!needs_channel && !is(&e.type, "ping") && !is(&e.type, "send") && !is(&e.type, "auth") &&
        !(h = msg_handler_find(ms, e.type.ptr, e.type.len)))
        return strike(ms, from, &e.id, "unknown_type", "unknown message type");
    if (needs_channel && !msg_channel_name_ok(&e.channel))
        return strike(ms, from, &e.id, "bad_request", "channel must be 1-128 of A-Z a-z 0-9 _ . : @ / -");
    // Where authentication is required, an anonymous connection (waiting out its
    // authentication timeout) may only authenticate and ping.
    if (ms->opts.auth_required && !c->who && !is(&e.type, "auth") && !is(&e.type, "ping"))
        return strike(ms, from, &e.id, "unauthorized", "authenticate first (auth)");
    // A good message: the count of bad ones starts over (for channel operations once
    // they are allowed).
    if (!is(&e.type, "subscribe") && !is(&e.type, "presence") && !is(&e.type, "publish")) c->strikes = 0;
    if (is(&e.type, "ping")) {
        msg_begin(ms, "pong", &e.id);
        msg_finish(&ms->out);
        msg_send_out(ms, from);
    } else if (is(&e.type, "subscribe")) {
        on_subscribe(ms, from, client, &e);
    } else if (is(&e.type, "unsubscribe")) {
        // With the broker, behind what the client asked before (a subscribe still waiting
        // for Redis), so that it is not subscribed again after its unsubscribe.
        if (!broker_after(ms->broker, client, &e.id, &e.channel)) msg_unsubscribe(ms, client, from, &e.id, &e.channel);
    } else if (is(&e.type, "presence")) {
        on_presence(ms, from, client, &e);
    } else if (is(&e.type, "publish")) {
        on_publish(ms, from, client, &e);
    } else if (is(&e.type, "auth")) {
        on_auth(ms, from, client, &e);
    } else if (h) {
        on_custom(ms, from, client, &e, h);
    } else {
        on_send(ms, from, client, &e);
    }
}

static void on_open(wsr_server *srv, wsr_conn_id id, void *user) {
    wsr_messaging *ms = (wsr_messaging *)user;
    auth_identity *who = msg_pending_take(ms, id, wsr_conn_user(srv, id));
    wsr_conn_set_user(srv, id, nullptr);
    uint32_t slot = client_add(ms, id);
    if (slot == MSG_NONE) {
        auth_identity_free(who);
        wsr_close(srv, id, 1011, "out of memory");
        return;
    }
    wsr_conn_set_user(srv, id, (void *)(uintptr_t)(slot + 1));
    ms->clients[slot].who = who;
    if (who && who->expires_ms)
        msg_deadline_set(ms, slot, who->expires_ms, 4002);
    else if (!who && ms->opts.auth_timeout_ms)
        msg_deadline_set(ms, slot, msg_now_ms() + ms->opts.auth_timeout_ms, 4001);
    char addr[64];
    wsr_conn_address(srv, id, addr, sizeof addr);
    wsr_log(WSR_LOG_INFO, "messaging: client %s user %s from %s: open", ms->clients[slot].id, who ? who->user : "-", addr);
    if (ms->broker) broker_client_open(ms->broker, slot);
    msg_begin(ms, "connection:established", nullptr);
    env_key(&ms->out, "payload", false);
    msg_client_object(ms, slot);
    msg_finish(&ms->out);
    msg_send_out(ms, id);
}

static void on_close(wsr_server *srv, wsr_conn_id id, uint16_t code, void *user) {
    wsr_messaging *ms = (wsr_messaging *)user;
    if (!wsr_conn_user(srv, id)) return; // never registered (out of memory at open)
    uint32_t slot = slot_of(ms, id);
    // The address went with the socket; the open line, by the same client id, has it.
    const msg_client *c = &ms->clients[slot];
    wsr_log(WSR_LOG_INFO, "messaging: client %s user %s: closed %u", c->id, c->who ? c->who->user : "-", code);
    // Each channel it was in hears that it left.
    while (slot < ms->chans.clients_cap && ms->chans.clients[slot].n) {
        const chan_client *cl = &ms->chans.clients[slot];
        leave(ms, cl->chans[cl->n - 1].channel, slot);
    }
    channels_client_gone(&ms->chans, slot);
    if (ms->broker) broker_client_close(ms->broker, c->id);
    client_remove(ms, slot);
}

static void on_expire(uv_timer_t *t) {
    wsr_messaging *ms = (wsr_messaging *)t->data;
    uint64_t now = msg_now_ms();
    channels_expire(&ms->chans, now);
    msg_pending_sweep(ms, now);
}

// --- authentication deadlines ------------------------------------------------------------------

// Deadlines are rounded up to this, so that many clients whose tokens expire close
// together cost one pass over the clients.
enum { DEADLINE_GRAIN_MS = 250 };

static void on_deadlines(uv_timer_t *t);

static void deadline_start(wsr_messaging *ms, uint64_t at_ms) {
    uint64_t now = msg_now_ms();
    ms->next_deadline = at_ms;
    uv_timer_start(&ms->deadlines, on_deadlines, at_ms > now ? at_ms - now : 0, 0);
}

void msg_deadline_set(wsr_messaging *ms, uint32_t client, uint64_t at_ms, uint16_t code) {
    msg_client *c = &ms->clients[client];
    c->deadline_ms = at_ms ? (at_ms + DEADLINE_GRAIN_MS - 1) / DEADLINE_GRAIN_MS * DEADLINE_GRAIN_MS : 0;
    c->deadline_code = code;
    if (c->deadline_ms && (!ms->next_deadline || c->deadline_ms < ms->next_deadline)) deadline_start(ms, c->deadline_ms);
}

// Closes the clients whose deadline passed; arms the timer for the next one.
static void on_deadlines(uv_timer_t *t) {
    wsr_messaging *ms = (wsr_messaging *)t->data;
    uint64_t now = msg_now_ms(), next = 0;
    ms->next_deadline = 0;
    for (uint32_t i = 0; i < ms->nclients; i++) {
        msg_client *c = &ms->clients[i];
        if (!c->id[0] || !c->deadline_ms) continue;
        if (c->deadline_ms <= now) {
            const char *why = c->deadline_code == 4002 ? "token expired" : "authentication timeout";
            wsr_log(WSR_LOG_INFO, "messaging: client %s closed %u: %s", c->id, c->deadline_code, why);
            wsr_close(ms->srv, c->conn, c->deadline_code, why);
            c->deadline_ms = 0;
        } else if (!next || c->deadline_ms < next) {
            next = c->deadline_ms;
        }
    }
    if (next) deadline_start(ms, next);
}

// --- life ---------------------------------------------------------------------------------------

enum { HANDSHAKE_SLOTS = 8192 };

static void set_limits(wsr_messaging *ms) {
    const wsr_messaging_options &op = ms->opts;
    ms->lim_messages = rate_limit{op.rate_messages, op.burst_messages};
    ms->lim_bytes = rate_limit{op.rate_bytes, op.burst_bytes};
    ms->lim_publish = rate_limit{op.rate_publish, op.burst_publish};
}

wsr_messaging *wsr_messaging_new(uv_loop_t *loop, wsr_server *srv, const char *path, const wsr_messaging_options *o) {
    wsr_messaging *ms = (wsr_messaging *)calloc(1, sizeof *ms);
    if (!ms) return nullptr;
    ms->srv = srv;
    // Fields past an older caller's struct keep their defaults.
    wsr_messaging_options_default(&ms->opts);
    if (o) memcpy(&ms->opts, o, o->size < sizeof *o ? o->size : sizeof *o);
    ms->opts.size = sizeof ms->opts;
    ms->free_head = MSG_NONE;
    ms->pending_free = MSG_NONE;
    const wsr_messaging_options &op = ms->opts;
    set_limits(ms);
    rate_limit hs{op.rate_handshakes, op.burst_handshakes};
    // Without a random seed the table still works; only its resistance to chosen
    // channel names that collide is weaker, so the clock stands in.
    uint64_t seed = 0;
    if (!crypto_random(&seed, sizeof seed)) seed = uv_hrtime();
    channels_init(&ms->chans, op.max_channels, seed);
    broker_url url;
    const char *url_why = nullptr;
    bool broker_ok = !op.broker || !*op.broker || broker_url_parse(op.broker, &url, &url_why);
    if (!broker_ok) wsr_log(WSR_LOG_ERROR, "messaging: --broker: %s", url_why);
    channels_set_history_bytes(&ms->chans, op.history_memory);
    ms->parser = env_parser_new((size_t)op.max_message);
    uv_timer_init(loop, &ms->expire);
    uv_timer_init(loop, &ms->deadlines);
    ms->timers_open = 2;
    ms->expire.data = ms->deadlines.data = ms;
    uv_unref((uv_handle_t *)&ms->deadlines);
    wsr_endpoint ep = WSR_ENDPOINT_INIT;
    ep.on_upgrade = msg_on_upgrade;
    ep.on_open = on_open;
    ep.on_message = on_message;
    ep.on_close = on_close;
    bool ok = broker_ok && ms->parser && ns_validate(&op) == WSR_OK && rate_table_init(&ms->handshakes, &hs, HANDSHAKE_SLOTS, seed * 3);
    if (ok && auth_init(&ms->creds, &op) != WSR_OK) ok = false;
    if (!ok || wsr_server_endpoint(srv, path, &ep, ms) != WSR_OK) {
        wsr_messaging_free(ms);
        return nullptr;
    }
    if (op.broker && *op.broker && !(ms->broker = broker_new(ms, loop, &url))) {
        wsr_messaging_free(ms);
        return nullptr;
    }
    uv_timer_start(&ms->expire, on_expire, EXPIRE_EVERY_MS, EXPIRE_EVERY_MS);
    uv_unref((uv_handle_t *)&ms->expire); // never keeps the loop alive on its own
    return ms;
}

int wsr_messaging_reload(wsr_messaging *ms) { return auth_reload(&ms->creds); }

int wsr_messaging_update(wsr_messaging *ms, const wsr_messaging_options *o) {
    wsr_messaging_options next;
    wsr_messaging_options_default(&next);
    memcpy(&next, o, o->size < sizeof next ? o->size : sizeof next);
    next.size = sizeof next;
    // What the parser and the tables were sized for stays, and so does the broker the
    // layer connected to at start.
    next.max_message = ms->opts.max_message;
    next.max_channels = ms->opts.max_channels;
    next.broker = ms->opts.broker;
    auth creds;
    if (ns_validate(&next) != WSR_OK || auth_init(&creds, &next) != WSR_OK) return WSR_EINVAL;
    rate_limit hs{next.rate_handshakes, next.burst_handshakes};
    if (!rate_table_set(&ms->handshakes, &hs, HANDSHAKE_SLOTS)) {
        auth_free(&creds);
        return WSR_ENOMEM;
    }
    auth_free(&ms->creds);
    ms->creds = creds;
    ms->opts = next;
    set_limits(ms);
    channels_set_history_bytes(&ms->chans, next.history_memory);
    return WSR_OK;
}

void wsr_messaging_get_stats(const wsr_messaging *ms, wsr_messaging_stats *out) {
    wsr_messaging_stats st = ms->counts;
    st.clients = ms->live;
    st.authenticated = 0;
    for (uint32_t i = 0; i < ms->nclients; i++) st.authenticated += ms->clients[i].id[0] && ms->clients[i].who;
    // Summed when asked (a scrape, a status page's second) rather than kept on every
    // subscribe and publish.
    st.channels = ms->chans.live;
    st.subscriptions = st.history_entries = 0;
    for (uint32_t i = 0; i < ms->chans.nslots; i++) {
        const channel *c = &ms->chans.slots[i];
        if (!c->name) continue;
        st.subscriptions += c->nmembers;
        st.history_entries += c->hist.len;
    }
    st.history_bytes = ms->chans.hist_bytes;
    if (ms->broker) broker_stats(ms->broker, &st);
    size_t n = out->size < sizeof st ? out->size : sizeof st;
    st.size = out->size;
    memcpy(out, &st, n);
}

size_t wsr_messaging_top_channels(const wsr_messaging *ms, wsr_messaging_channel *out, size_t n) {
    return channels_top(&ms->chans, out, n);
}

void msg_release(wsr_messaging *ms) {
    channels_free(&ms->chans);
    env_parser_free(ms->parser);
    env_out_free(&ms->out);
    for (uint32_t i = 0; i < ms->nclients; i++) auth_identity_free(ms->clients[i].who);
    for (uint32_t i = 0; i < ms->npending; i++) auth_identity_free(ms->pending[i].who);
    for (uint32_t i = 0; i < ms->nhandlers; i++) free(ms->handlers[i].type);
    free(ms->handlers);
    free(ms->pending);
    free(ms->clients);
    free(ms->by_id);
    rate_table_free(&ms->handshakes);
    auth_free(&ms->creds);
    free(ms);
}

// Both timers close at once; the memory goes after the second close callback, or after
// the last password check still running off the loop.
static void on_timer_closed(uv_handle_t *h) {
    wsr_messaging *ms = (wsr_messaging *)h->data;
    if (--ms->timers_open == 0 && !ms->jobs) msg_release(ms);
}

void wsr_messaging_free(wsr_messaging *ms) {
    if (!ms) return;
    ms->freeing = true;
    if (ms->broker) broker_close(ms->broker);
    ms->broker = nullptr;
    uv_close((uv_handle_t *)&ms->expire, on_timer_closed);
    uv_close((uv_handle_t *)&ms->deadlines, on_timer_closed);
}
