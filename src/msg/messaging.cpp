// The messaging protocol on /ws (docs/messaging.md): clients, their envelopes, channels
// with recovery, presence, direct messages, and the limits on what a client may send.
#include "wsr/messaging.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <ctype.h>
#include <strings.h>
#include <uv.h>
#include <string.h>
#include <time.h>

#include "msg/probe.h"
#include "msg/server.h"

void wsr_messaging_options_default(wsr_messaging_options *o) {
    memset(o, 0, sizeof *o);
    o->size = sizeof *o;
    o->max_message = 1 << 20;
    o->max_channels = 100000;
    o->history_memory = 64ull << 20;
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
    o->rate_handshakes = 20;
    o->burst_handshakes = 100;
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
    if (RAND_bytes(raw, sizeof raw) != 1) {
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
    c->msg_tokens = (uint64_t)ms->opts.burst_messages * 1000;
    c->byte_tokens = ms->opts.burst_bytes * 1000;
    c->refilled_ms = msg_now_ms();
    ms->by_id[id_probe(ms, c->id, CLIENT_ID_LEN)] = slot + 1;
    ms->live++;
    return slot;
}

static void client_remove(wsr_messaging *ms, uint32_t slot) {
    msg_client *c = &ms->clients[slot];
    probe_remove(ms->by_id, ms->by_id_cap, id_probe(ms, c->id, CLIENT_ID_LEN),
                 [ms](uint32_t e) { return id_hash(ms->clients[e - 1].id); });
    c->id[0] = '\0';
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
    msg_begin(ms, "error", id);
    env_key(&ms->out, "payload", false);
    msg_error_object(&ms->out, code, message);
    msg_finish(&ms->out);
    msg_send_out(ms, to);
}

// rate_limited, with retryAfterMs; it counts as a bad message.
static void send_rate_limited(wsr_messaging *ms, wsr_conn_id to, const env_str *id, uint64_t wait_ms) {
    msg_begin(ms, "error", id);
    env_key(&ms->out, "payload", false);
    env_key(&ms->out, "code", true);
    env_lit(&ms->out, "\"rate_limited\"");
    env_key(&ms->out, "message", false);
    env_lit(&ms->out, "\"over the message or byte rate\"");
    env_key(&ms->out, "retryAfterMs", false);
    env_u64(&ms->out, wait_ms);
    env_raw(&ms->out, "}", 1);
    msg_finish(&ms->out);
    msg_send_out(ms, to);
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
static void client_object(wsr_messaging *ms, uint32_t client) {
    env_key(&ms->out, "clientId", true);
    env_string(&ms->out, ms->clients[client].id, CLIENT_ID_LEN);
    env_key(&ms->out, "user", false);
    env_lit(&ms->out, "null}");
}

// join / leave to the other members of a channel: framed once for all of them.
static void presence_event(wsr_messaging *ms, uint32_t ch, uint32_t client, const char *type) {
    channel *c = channels_at(&ms->chans, ch);
    if (!c->nmembers || (c->nmembers == 1 && c->members[0].client == client)) return;
    msg_begin(ms, type, nullptr);
    env_key(&ms->out, "channel", false);
    env_string(&ms->out, c->name, c->name_len);
    env_key(&ms->out, "payload", false);
    client_object(ms, client);
    msg_finish(&ms->out);
    wsr_msg *m = ms->out.failed ? nullptr : wsr_msg_new(WSR_TEXT, ms->out.buf, ms->out.len);
    if (!m) return;
    for (uint32_t i = 0; i < c->nmembers; i++)
        if (c->members[i].client != client) wsr_send_msg(ms->srv, ms->clients[c->members[i].client].conn, m);
    wsr_msg_free(m);
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
        client_object(ms, c->members[i].client);
    }
    env_raw(&ms->out, "]}", 2);
}

static void on_presence(wsr_messaging *ms, wsr_conn_id from, const envelope *e) {
    uint32_t ch = channels_find(&ms->chans, e->channel.ptr, e->channel.len);
    msg_begin(ms, "presence", &e->id);
    env_key(&ms->out, "channel", false);
    env_string(&ms->out, e->channel.ptr, e->channel.len);
    env_key(&ms->out, "payload", false);
    msg_presence_list(ms, ch);
    msg_finish(&ms->out);
    msg_send_out(ms, from);
}

static void on_subscribe(wsr_messaging *ms, wsr_conn_id from, uint32_t client, const envelope *e) {
    uint32_t ch = channels_get(&ms->chans, e->channel.ptr, e->channel.len);
    if (ch == CHANNELS_NONE) return msg_send_error(ms, from, &e->id, "unavailable", "no room for another channel");
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
    msg_begin(ms, "subscribed", &e->id);
    env_key(&ms->out, "channel", false);
    env_string(&ms->out, e->channel.ptr, e->channel.len);
    env_key(&ms->out, "payload", false);
    env_key(&ms->out, "offset", true);
    env_u64(&ms->out, c->last_offset);
    env_key(&ms->out, "epoch", false);
    env_string(&ms->out, epoch, 16);
    env_key(&ms->out, "recovered", false);
    env_lit(&ms->out, recovered ? "true}" : "false}");
    msg_finish(&ms->out);
    msg_send_out(ms, from);
    // What it missed, in order, before anything live: the very frames the others got.
    for (uint32_t i = 0; recovered && i < count; i++) wsr_send_msg(ms->srv, from, history_at(&c->hist, first + i)->msg);
}

static void ack(wsr_messaging *ms, wsr_conn_id to, const envelope *e, const uint64_t *offset) {
    if (!e->id.ptr) return;
    msg_begin(ms, "ack", &e->id);
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
    uint32_t ch = channels_get(&ms->chans, e->channel.ptr, e->channel.len);
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
    wsr_msg *m = ms->out.failed ? nullptr : wsr_msg_new(WSR_TEXT, ms->out.buf, ms->out.len);
    if (!m) {
        *why = "out of memory";
        return 0;
    }
    channels_publish(&ms->chans, ch, msg_now_ms(), m, (uint32_t)ms->out.len);
    for (uint32_t i = 0; i < c->nmembers; i++) wsr_send_msg(ms->srv, ms->clients[c->members[i].client].conn, m);
    wsr_msg_free(m);
    return offset;
}

static void on_publish(wsr_messaging *ms, wsr_conn_id from, uint32_t client, const envelope *e) {
    char epoch[17];
    const char *why;
    uint64_t offset = msg_publish(ms, e, ms->clients[client].id, epoch, &why);
    if (!offset) return msg_send_error(ms, from, &e->id, "unavailable", why);
    ack(ms, from, e, &offset);
}

void msg_direct(wsr_messaging *ms, uint32_t to, const envelope *e, const char *from) {
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
    msg_send_out(ms, ms->clients[to].conn);
}

static void on_send(wsr_messaging *ms, wsr_conn_id from, uint32_t client, const envelope *e) {
    uint32_t to = e->to.ptr ? msg_client_find(ms, e->to.ptr, e->to.len) : MSG_NONE;
    if (to == MSG_NONE) return msg_send_error(ms, from, &e->id, "not_found", "no client with that id");
    msg_direct(ms, to, e, ms->clients[client].id);
    ack(ms, from, e, nullptr);
}

static bool is(const env_str *s, const char *lit) { return s->len == strlen(lit) && memcmp(s->ptr, lit, s->len) == 0; }

// Takes one message of len bytes from the client's buckets. 0 when it may go, else the
// milliseconds until it could.
static uint64_t rate_wait(wsr_messaging *ms, msg_client *c, size_t len) {
    const wsr_messaging_options &o = ms->opts;
    uint64_t now = msg_now_ms(), dt = now - c->refilled_ms;
    c->refilled_ms = now;
    // Tokens in thousandths: a rate per second is the same number per millisecond.
    uint64_t mcap = (uint64_t)o.burst_messages * 1000, bcap = o.burst_bytes * 1000;
    c->msg_tokens = c->msg_tokens + dt * o.rate_messages > mcap ? mcap : c->msg_tokens + dt * o.rate_messages;
    c->byte_tokens = c->byte_tokens + dt * o.rate_bytes > bcap ? bcap : c->byte_tokens + dt * o.rate_bytes;
    uint64_t need_m = o.rate_messages ? 1000 : 0, need_b = o.rate_bytes ? (uint64_t)len * 1000 : 0;
    if (c->msg_tokens >= need_m && c->byte_tokens >= need_b) {
        c->msg_tokens -= need_m;
        c->byte_tokens -= need_b;
        return 0;
    }
    uint64_t wait_m = c->msg_tokens >= need_m ? 0 : (need_m - c->msg_tokens + o.rate_messages - 1) / o.rate_messages;
    uint64_t wait_b = c->byte_tokens >= need_b ? 0 : (need_b - c->byte_tokens + o.rate_bytes - 1) / o.rate_bytes;
    return wait_m > wait_b ? wait_m : wait_b;
}

static void on_message(wsr_server *, wsr_conn_id from, wsr_opcode op, const uint8_t *data, size_t len, void *user) {
    wsr_messaging *ms = (wsr_messaging *)user;
    uint32_t client = slot_of(ms, from);
    uint64_t wait = rate_wait(ms, &ms->clients[client], len);
    if (op != WSR_TEXT && !wait) return strike(ms, from, nullptr, "bad_request", "messages are JSON text frames");
    envelope e;
    const char *why;
    env_result r = op == WSR_TEXT ? env_parse(ms->parser, (const char *)data, len, &e, &why, true) : ENV_BAD_REQUEST;
    // Over the rate: answered (to its id, when it has one) and not acted on.
    if (wait) return send_rate_limited(ms, from, r == ENV_OK ? &e.id : nullptr, wait);
    if (r == ENV_INVALID_JSON) return strike(ms, from, nullptr, "invalid_json", why);
    if (r != ENV_OK) return strike(ms, from, &e.id, "bad_request", why);
    bool needs_channel =
        is(&e.type, "subscribe") || is(&e.type, "unsubscribe") || is(&e.type, "publish") || is(&e.type, "presence");
    if (!needs_channel && !is(&e.type, "ping") && !is(&e.type, "send"))
        return strike(ms, from, &e.id, "unknown_type", "unknown message type");
    if (needs_channel && !msg_channel_name_ok(&e.channel))
        return strike(ms, from, &e.id, "bad_request", "channel must be 1-128 of A-Z a-z 0-9 _ . : @ / -");
    ms->clients[client].strikes = 0; // a good message: the count of bad ones starts over
    if (is(&e.type, "ping")) {
        msg_begin(ms, "pong", &e.id);
        msg_finish(&ms->out);
        return msg_send_out(ms, from);
    }
    if (is(&e.type, "subscribe")) return on_subscribe(ms, from, client, &e);
    if (is(&e.type, "unsubscribe")) {
        uint32_t ch = channels_find(&ms->chans, e.channel.ptr, e.channel.len);
        if (ch != CHANNELS_NONE && channels_is_member(&ms->chans, ch, client)) leave(ms, ch, client);
        return ack(ms, from, &e, nullptr);
    }
    if (is(&e.type, "presence")) return on_presence(ms, from, &e);
    if (is(&e.type, "publish")) return on_publish(ms, from, client, &e);
    on_send(ms, from, client, &e);
}

static void on_open(wsr_server *srv, wsr_conn_id id, void *user) {
    wsr_messaging *ms = (wsr_messaging *)user;
    uint32_t slot = client_add(ms, id);
    if (slot == MSG_NONE) {
        wsr_close(srv, id, 1011, "out of memory");
        return;
    }
    wsr_conn_set_user(srv, id, (void *)(uintptr_t)(slot + 1));
    msg_begin(ms, "connection:established", nullptr);
    env_key(&ms->out, "payload", false);
    client_object(ms, slot);
    msg_finish(&ms->out);
    msg_send_out(ms, id);
}

static void on_close(wsr_server *srv, wsr_conn_id id, uint16_t, void *user) {
    wsr_messaging *ms = (wsr_messaging *)user;
    if (!wsr_conn_user(srv, id)) return; // never registered (out of memory at open)
    uint32_t slot = slot_of(ms, id);
    // Each channel it was in hears that it left.
    while (slot < ms->chans.clients_cap && ms->chans.clients[slot].n) {
        const chan_client *cl = &ms->chans.clients[slot];
        leave(ms, cl->chans[cl->n - 1].channel, slot);
    }
    channels_client_gone(&ms->chans, slot);
    client_remove(ms, slot);
}

static void on_expire(uv_timer_t *t) {
    wsr_messaging *ms = (wsr_messaging *)t->data;
    channels_expire(&ms->chans, msg_now_ms());
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
    uint64_t seed;
    RAND_bytes((unsigned char *)&seed, sizeof seed);
    channels_init(&ms->chans, ms->opts.max_channels, ms->opts.defaults.history_size, ms->opts.defaults.history_ttl_ms, seed);
    channels_set_history_bytes(&ms->chans, ms->opts.history_memory);
    ms->parser = env_parser_new((size_t)ms->opts.max_message);
    wsr_endpoint ep = WSR_ENDPOINT_INIT;
    ep.on_open = on_open;
    ep.on_message = on_message;
    ep.on_close = on_close;
    uv_timer_init(loop, &ms->expire);
    ms->expire.data = ms;
    if (!ms->parser || wsr_server_endpoint(srv, path, &ep, ms) != WSR_OK) {
        wsr_messaging_free(ms);
        return nullptr;
    }
    uv_timer_start(&ms->expire, on_expire, EXPIRE_EVERY_MS, EXPIRE_EVERY_MS);
    uv_unref((uv_handle_t *)&ms->expire); // never keeps the loop alive on its own
    return ms;
}

static void on_timer_closed(uv_handle_t *h) {
    wsr_messaging *ms = (wsr_messaging *)h->data;
    channels_free(&ms->chans);
    env_parser_free(ms->parser);
    env_out_free(&ms->out);
    free(ms->clients);
    free(ms->by_id);
    free(ms);
}

void wsr_messaging_free(wsr_messaging *ms) {
    if (ms) uv_close((uv_handle_t *)&ms->expire, on_timer_closed);
}
