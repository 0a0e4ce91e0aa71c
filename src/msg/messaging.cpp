#include "msg/messaging.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <ctype.h>
#include <strings.h>
#include <uv.h>
#include <string.h>
#include <time.h>

#include "msg/channels.h"
#include "msg/envelope.h"
#include "msg/probe.h"

enum { CLIENT_ID_LEN = 32, MAX_CHANNEL_NAME = 128, EXPIRE_EVERY_MS = 10000 };

struct msg_client {
    char id[CLIENT_ID_LEN + 1]; // 128 random bits in hex; "" for a free slot
    wsr_conn_id conn;
    uint32_t strikes;           // bad messages in a row
    uint32_t next_free;
    // Token buckets (rate limits), in thousandths of a message and of a byte, refilled
    // from the time of the last message.
    uint64_t msg_tokens, byte_tokens;
    uint64_t refilled_ms;
};

struct msg_server {
    wsr_server *srv;
    msg_options opts;
    channels chans;
    env_parser *parser;
    env_out out;
    msg_client *clients; // by client slot (the channels' client index)
    uint32_t nclients, clients_cap, free_head;
    uint32_t *by_id;     // open addressing over client ids: slot + 1, 0 empty
    uint32_t by_id_cap;  // a power of two, at most half full
    uint32_t live;
    uv_timer_t expire; // old history goes even on channels nobody publishes to any more
    const char *const *api_keys;
    size_t api_prefix_len;
};

static const uint32_t NONE = UINT32_MAX;

void msg_options_default(msg_options *o) {
    o->max_message = 1 << 20;
    o->max_channels = 100000;
    o->history_count = 100;
    o->history_age_ms = 5 * 60 * 1000;
    o->history_bytes = 64ull << 20;
    o->max_strikes = 16;
    // Generous for agents that stream output and dashboards that publish: the limits
    // stop a runaway client, not a busy one.
    o->rate_messages = 1000;
    o->burst_messages = 2000;
    o->rate_bytes = 4ull << 20;
    o->burst_bytes = 8ull << 20;
}

static uint64_t now_ms(void) {
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

static uint32_t id_probe(const msg_server *ms, const char *id, size_t len) {
    uint32_t mask = ms->by_id_cap - 1;
    for (uint32_t i = (len == CLIENT_ID_LEN ? id_hash(id) : 0) & mask;; i = (i + 1) & mask) {
        uint32_t e = ms->by_id[i];
        if (!e || (len == CLIENT_ID_LEN && memcmp(ms->clients[e - 1].id, id, CLIENT_ID_LEN) == 0)) return i;
    }
}

static bool index_rebuild(msg_server *ms, uint32_t cap) {
    uint32_t *n = (uint32_t *)calloc(cap, sizeof *n);
    if (!n) return false;
    free(ms->by_id);
    ms->by_id = n;
    ms->by_id_cap = cap;
    for (uint32_t s = 0; s < ms->nclients; s++)
        if (ms->clients[s].id[0]) ms->by_id[id_probe(ms, ms->clients[s].id, CLIENT_ID_LEN)] = s + 1;
    return true;
}

static uint32_t client_find(const msg_server *ms, const char *id, size_t len) {
    if (!ms->by_id_cap || len != CLIENT_ID_LEN) return NONE;
    uint32_t e = ms->by_id[id_probe(ms, id, len)];
    return e ? e - 1 : NONE;
}

static uint32_t client_add(msg_server *ms, wsr_conn_id conn) {
    if ((ms->live + 1) * 2 > ms->by_id_cap && !index_rebuild(ms, ms->by_id_cap ? ms->by_id_cap * 2 : 64))
        return NONE;
    uint32_t slot = ms->free_head;
    if (slot == NONE) {
        if (ms->nclients == ms->clients_cap) {
            uint32_t cap = ms->clients_cap ? ms->clients_cap * 2 : 64;
            msg_client *nc = (msg_client *)realloc(ms->clients, cap * sizeof *nc);
            if (!nc) return NONE;
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
        return NONE;
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
    c->refilled_ms = now_ms();
    ms->by_id[id_probe(ms, c->id, CLIENT_ID_LEN)] = slot + 1;
    ms->live++;
    return slot;
}

static void client_remove(msg_server *ms, uint32_t slot) {
    msg_client *c = &ms->clients[slot];
    probe_remove(ms->by_id, ms->by_id_cap, id_probe(ms, c->id, CLIENT_ID_LEN),
                 [ms](uint32_t e) { return id_hash(ms->clients[e - 1].id); });
    c->id[0] = '\0';
    c->next_free = ms->free_head;
    ms->free_head = slot;
    ms->live--;
}

static uint32_t slot_of(msg_server *ms, wsr_conn_id id) {
    return (uint32_t)(uintptr_t)wsr_conn_user(ms->srv, id) - 1;
}

// --- sending ------------------------------------------------------------------------------

// Ends an envelope started with env_key(..., true): the timestamp, and the brace.
static void finish(env_out *o) {
    env_key(o, "timestamp", false);
    env_u64(o, now_ms());
    env_raw(o, "}", 1);
}

static void send_out(msg_server *ms, wsr_conn_id to) {
    if (!ms->out.failed) wsr_send(ms->srv, to, WSR_TEXT, ms->out.buf, ms->out.len);
}

static void begin(msg_server *ms, const char *type, const env_str *correlation) {
    env_out_reset(&ms->out);
    env_key(&ms->out, "type", true);
    env_string(&ms->out, type, strlen(type));
    if (correlation && correlation->ptr) {
        env_key(&ms->out, "correlationId", false);
        env_string(&ms->out, correlation->ptr, correlation->len);
    }
}

// {"code":…,"message":…}: the body of every error, on /ws and on the HTTP API.
static void error_object(env_out *o, const char *code, const char *message) {
    env_key(o, "code", true);
    env_string(o, code, strlen(code));
    env_key(o, "message", false);
    env_string(o, message, strlen(message));
    env_raw(o, "}", 1);
}

static void send_error(msg_server *ms, wsr_conn_id to, const env_str *id, const char *code, const char *message) {
    begin(ms, "error", id);
    env_key(&ms->out, "payload", false);
    error_object(&ms->out, code, message);
    finish(&ms->out);
    send_out(ms, to);
}

// rate_limited, with retryAfterMs; it counts as a bad message.
static void send_rate_limited(msg_server *ms, wsr_conn_id to, const env_str *id, uint64_t wait_ms) {
    begin(ms, "error", id);
    env_key(&ms->out, "payload", false);
    env_key(&ms->out, "code", true);
    env_lit(&ms->out, "\"rate_limited\"");
    env_key(&ms->out, "message", false);
    env_lit(&ms->out, "\"over the message or byte rate\"");
    env_key(&ms->out, "retryAfterMs", false);
    env_u64(&ms->out, wait_ms);
    env_raw(&ms->out, "}", 1);
    finish(&ms->out);
    send_out(ms, to);
    msg_client *c = &ms->clients[slot_of(ms, to)];
    if (++c->strikes >= ms->opts.max_strikes) wsr_close(ms->srv, to, 1008, "over the rate limit");
}

// A bad message costs an error envelope; many in a row cost the connection.
static void strike(msg_server *ms, wsr_conn_id from, const env_str *id, const char *code, const char *message) {
    send_error(ms, from, id, code, message);
    msg_client *c = &ms->clients[slot_of(ms, from)];
    if (++c->strikes >= ms->opts.max_strikes) wsr_close(ms->srv, from, 1008, "too many bad messages");
}

static void epoch_text(uint64_t epoch, char out[17]) {
    static const char hex[] = "0123456789abcdef";
    for (int i = 15; i >= 0; i--, epoch >>= 4) out[i] = hex[epoch & 15];
    out[16] = '\0';
}

// --- the protocol ---------------------------------------------------------------------------

// [A-Za-z0-9_.:@/-]{1,128}
static bool channel_name_ok(const env_str *s) {
    if (!s->ptr || !s->len || s->len > MAX_CHANNEL_NAME) return false;
    for (uint32_t i = 0; i < s->len; i++) {
        char c = s->ptr[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || (c && strchr("_.:@/-", c));
        if (!ok) return false;
    }
    return true;
}

// {"clientId":…,"user":…}: how a client appears to others.
static void client_object(msg_server *ms, uint32_t client) {
    env_key(&ms->out, "clientId", true);
    env_string(&ms->out, ms->clients[client].id, CLIENT_ID_LEN);
    env_key(&ms->out, "user", false);
    env_lit(&ms->out, "null}");
}

// join / leave to the other members of a channel: framed once for all of them.
static void presence_event(msg_server *ms, uint32_t ch, uint32_t client, const char *type) {
    channel *c = channels_at(&ms->chans, ch);
    if (!c->nmembers || (c->nmembers == 1 && c->members[0].client == client)) return;
    begin(ms, type, nullptr);
    env_key(&ms->out, "channel", false);
    env_string(&ms->out, c->name, c->name_len);
    env_key(&ms->out, "payload", false);
    client_object(ms, client);
    finish(&ms->out);
    wsr_msg *m = ms->out.failed ? nullptr : wsr_msg_new(WSR_TEXT, ms->out.buf, ms->out.len);
    if (!m) return;
    for (uint32_t i = 0; i < c->nmembers; i++)
        if (c->members[i].client != client) wsr_send_msg(ms->srv, ms->clients[c->members[i].client].conn, m);
    wsr_msg_free(m);
}

// Unsubscribes a client, telling the others; frees the channel when nothing is left.
static void leave(msg_server *ms, uint32_t ch, uint32_t client) {
    channels_unsubscribe_keep(&ms->chans, ch, client);
    presence_event(ms, ch, client, "leave");
    channels_drop_if_empty(&ms->chans, ch);
}

// The members of a channel: {"clients": [{"clientId", "user"}, ...]}, written into out.
static void presence_list(msg_server *ms, uint32_t ch) {
    env_key(&ms->out, "clients", true);
    env_raw(&ms->out, "[", 1);
    channel *c = ch == CHANNELS_NONE ? nullptr : channels_at(&ms->chans, ch);
    for (uint32_t i = 0; c && i < c->nmembers; i++) {
        if (i) env_raw(&ms->out, ",", 1);
        client_object(ms, c->members[i].client);
    }
    env_raw(&ms->out, "]}", 2);
}

static void on_presence(msg_server *ms, wsr_conn_id from, const envelope *e) {
    uint32_t ch = channels_find(&ms->chans, e->channel.ptr, e->channel.len);
    begin(ms, "presence", &e->id);
    env_key(&ms->out, "channel", false);
    env_string(&ms->out, e->channel.ptr, e->channel.len);
    env_key(&ms->out, "payload", false);
    presence_list(ms, ch);
    finish(&ms->out);
    send_out(ms, from);
}

static void on_subscribe(msg_server *ms, wsr_conn_id from, uint32_t client, const envelope *e) {
    uint32_t ch = channels_get(&ms->chans, e->channel.ptr, e->channel.len);
    if (ch == CHANNELS_NONE) return send_error(ms, from, &e->id, "unavailable", "no room for another channel");
    bool joined = !channels_is_member(&ms->chans, ch, client);
    if (!channels_subscribe(&ms->chans, ch, client)) return send_error(ms, from, &e->id, "unavailable", "out of memory");
    if (joined) presence_event(ms, ch, client, "join");
    channel *c = channels_at(&ms->chans, ch);
    char epoch[17];
    epoch_text(c->epoch, epoch);
    uint64_t seen;
    env_str seen_epoch;
    uint32_t first = 0, count = 0;
    bool asked = env_since(ms->parser, e->payload, &seen, &seen_epoch);
    bool recovered = asked && seen_epoch.len == 16 && memcmp(seen_epoch.ptr, epoch, 16) == 0 &&
                     history_since(&c->hist, seen, c->last_offset, &first, &count);
    begin(ms, "subscribed", &e->id);
    env_key(&ms->out, "channel", false);
    env_string(&ms->out, e->channel.ptr, e->channel.len);
    env_key(&ms->out, "payload", false);
    env_key(&ms->out, "offset", true);
    env_u64(&ms->out, c->last_offset);
    env_key(&ms->out, "epoch", false);
    env_string(&ms->out, epoch, 16);
    env_key(&ms->out, "recovered", false);
    env_lit(&ms->out, recovered ? "true}" : "false}");
    finish(&ms->out);
    send_out(ms, from);
    // What it missed, in order, before anything live: the very frames the others got.
    for (uint32_t i = 0; recovered && i < count; i++) wsr_send_msg(ms->srv, from, history_at(&c->hist, first + i)->msg);
}

static void ack(msg_server *ms, wsr_conn_id to, const envelope *e, const uint64_t *offset) {
    if (!e->id.ptr) return;
    begin(ms, "ack", &e->id);
    if (offset) {
        env_key(&ms->out, "payload", false);
        env_key(&ms->out, "offset", true);
        env_u64(&ms->out, *offset);
        env_raw(&ms->out, "}", 1);
    }
    finish(&ms->out);
    send_out(ms, to);
}

// A publication on channel e->channel (event, payload) from a client (its id) or from
// the backend (from NULL): framed once, shared by every subscriber and by the history.
// The offset, and the channel's epoch in epoch_out; 0 when it could not be made (*why).
static uint64_t publish(msg_server *ms, const envelope *e, const char *from, char epoch_out[17], const char **why) {
    uint32_t ch = channels_get(&ms->chans, e->channel.ptr, e->channel.len);
    if (ch == CHANNELS_NONE) {
        *why = "no room for another channel";
        return 0;
    }
    channel *c = channels_at(&ms->chans, ch);
    uint64_t offset = c->last_offset + 1;
    epoch_text(c->epoch, epoch_out);
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
    finish(&ms->out);
    wsr_msg *m = ms->out.failed ? nullptr : wsr_msg_new(WSR_TEXT, ms->out.buf, ms->out.len);
    if (!m) {
        *why = "out of memory";
        return 0;
    }
    channels_publish(&ms->chans, ch, now_ms(), m, (uint32_t)ms->out.len);
    for (uint32_t i = 0; i < c->nmembers; i++) wsr_send_msg(ms->srv, ms->clients[c->members[i].client].conn, m);
    wsr_msg_free(m);
    return offset;
}

static void on_publish(msg_server *ms, wsr_conn_id from, uint32_t client, const envelope *e) {
    char epoch[17];
    const char *why;
    uint64_t offset = publish(ms, e, ms->clients[client].id, epoch, &why);
    if (!offset) return send_error(ms, from, &e->id, "unavailable", why);
    ack(ms, from, e, &offset);
}

// A direct message to client `to` (a slot) from a client's id or from the backend (NULL).
static void direct(msg_server *ms, uint32_t to, const envelope *e, const char *from) {
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
    finish(&ms->out);
    send_out(ms, ms->clients[to].conn);
}

static void on_send(msg_server *ms, wsr_conn_id from, uint32_t client, const envelope *e) {
    uint32_t to = e->to.ptr ? client_find(ms, e->to.ptr, e->to.len) : NONE;
    if (to == NONE) return send_error(ms, from, &e->id, "not_found", "no client with that id");
    direct(ms, to, e, ms->clients[client].id);
    ack(ms, from, e, nullptr);
}

static bool is(const env_str *s, const char *lit) { return s->len == strlen(lit) && memcmp(s->ptr, lit, s->len) == 0; }

// Takes one message of len bytes from the client's buckets. 0 when it may go, else the
// milliseconds until it could.
static uint64_t rate_wait(msg_server *ms, msg_client *c, size_t len) {
    const msg_options &o = ms->opts;
    uint64_t now = now_ms(), dt = now - c->refilled_ms;
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
    msg_server *ms = (msg_server *)user;
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
    if (needs_channel && !channel_name_ok(&e.channel))
        return strike(ms, from, &e.id, "bad_request", "channel must be 1-128 of A-Z a-z 0-9 _ . : @ / -");
    ms->clients[client].strikes = 0; // a good message: the count of bad ones starts over
    if (is(&e.type, "ping")) {
        begin(ms, "pong", &e.id);
        finish(&ms->out);
        return send_out(ms, from);
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

// --- the backend HTTP API ------------------------------------------------------------------

static void api_answer(msg_server *ms, wsr_conn_id req, uint16_t status) {
    wsr_respond(ms->srv, req, status, "Content-Type: application/json\r\nCache-Control: no-store\r\n", ms->out.buf,
                ms->out.failed ? 0 : ms->out.len);
}

static void api_error(msg_server *ms, wsr_conn_id req, uint16_t status, const char *code, const char *message) {
    env_out_reset(&ms->out);
    env_key(&ms->out, "error", true);
    error_object(&ms->out, code, message);
    env_raw(&ms->out, "}", 1);
    if (status == 401)
        wsr_respond(ms->srv, req, status, "Content-Type: application/json\r\nWWW-Authenticate: Bearer\r\n",
                    ms->out.buf, ms->out.failed ? 0 : ms->out.len);
    else
        api_answer(ms, req, status);
}

// One of the keys, compared in constant time: the time an answer takes must not tell
// how much of a guess was right.
static bool api_authorized(const msg_server *ms, wsr_request *req) {
    wsr_str v;
    if (!wsr_request_header(req, "Authorization", &v) || v.len < 7 || strncasecmp(v.ptr, "Bearer ", 7) != 0)
        return false;
    const char *tok = v.ptr + 7;
    size_t n = v.len - 7;
    bool ok = false;
    for (const char *const *k = ms->api_keys; *k; k++) {
        size_t kl = strlen(*k);
        ok |= kl == n && CRYPTO_memcmp(*k, tok, n) == 0;
    }
    return ok;
}

static void api_publish(msg_server *ms, wsr_conn_id req, const envelope *e) {
    if (!channel_name_ok(&e->channel))
        return api_error(ms, req, 400, "bad_request", "channel must be 1-128 of A-Z a-z 0-9 _ . : @ / -");
    char epoch[17];
    const char *why;
    uint64_t offset = publish(ms, e, nullptr, epoch, &why);
    if (!offset) return api_error(ms, req, 503, "unavailable", why);
    env_out_reset(&ms->out);
    env_key(&ms->out, "offset", true);
    env_u64(&ms->out, offset);
    env_key(&ms->out, "epoch", false);
    env_string(&ms->out, epoch, 16);
    env_raw(&ms->out, "}", 1);
    api_answer(ms, req, 200);
}

static void api_send(msg_server *ms, wsr_conn_id req, const envelope *e) {
    uint32_t to = e->client_id.ptr ? client_find(ms, e->client_id.ptr, e->client_id.len) : NONE;
    if (to == NONE) return api_error(ms, req, 404, "not_found", "no client with that id is connected");
    direct(ms, to, e, nullptr);
    env_out_reset(&ms->out);
    env_lit(&ms->out, "{}");
    api_answer(ms, req, 200);
}

static void api_channels(msg_server *ms, wsr_conn_id req) {
    env_out_reset(&ms->out);
    env_key(&ms->out, "channels", true);
    env_raw(&ms->out, "[", 1);
    bool first = true;
    for (uint32_t i = 0; i < ms->chans.nslots; i++) {
        const channel *c = &ms->chans.slots[i];
        if (!c->name) continue;
        char epoch[17];
        epoch_text(c->epoch, epoch);
        if (!first) env_raw(&ms->out, ",", 1);
        first = false;
        env_key(&ms->out, "name", true);
        env_string(&ms->out, c->name, c->name_len);
        env_key(&ms->out, "subscribers", false);
        env_u64(&ms->out, c->nmembers);
        env_key(&ms->out, "offset", false);
        env_u64(&ms->out, c->last_offset);
        env_key(&ms->out, "epoch", false);
        env_string(&ms->out, epoch, 16);
        env_raw(&ms->out, "}", 1);
    }
    env_raw(&ms->out, "]}", 2);
    api_answer(ms, req, 200);
}

// The value of query parameter `name`, percent-decoded into out (at most cap bytes).
static bool query_param(wsr_str q, const char *name, char *out, size_t cap, size_t *len) {
    size_t nl = strlen(name);
    for (size_t i = 0; i < q.len;) {
        size_t end = i;
        while (end < q.len && q.ptr[end] != '&') end++;
        if (end - i > nl && memcmp(q.ptr + i, name, nl) == 0 && q.ptr[i + nl] == '=') {
            size_t n = 0;
            for (size_t j = i + nl + 1; j < end; j++) {
                char c = q.ptr[j];
                if (c == '%' && j + 2 < end && isxdigit((unsigned char)q.ptr[j + 1]) &&
                    isxdigit((unsigned char)q.ptr[j + 2])) {
                    char hex[3] = {q.ptr[j + 1], q.ptr[j + 2], 0};
                    c = (char)strtol(hex, nullptr, 16);
                    j += 2;
                } else if (c == '+') {
                    c = ' ';
                }
                if (n == cap) return false;
                out[n++] = c;
            }
            *len = n;
            return true;
        }
        i = end + 1;
    }
    return false;
}

static void api_presence(msg_server *ms, wsr_conn_id req, wsr_request *r) {
    char name[MAX_CHANNEL_NAME];
    size_t len = 0;
    bool found = query_param(wsr_request_query(r), "channel", name, sizeof name, &len);
    env_str ch{name, (uint32_t)len};
    if (!found || !channel_name_ok(&ch)) return api_error(ms, req, 400, "bad_request", "?channel= a channel name");
    env_out_reset(&ms->out);
    presence_list(ms, channels_find(&ms->chans, name, (uint32_t)len));
    api_answer(ms, req, 200);
}

// {"channels": [names], "event"?, "payload"}: one publication on each channel.
static void api_broadcast(msg_server *ms, wsr_conn_id req, envelope *e) {
    env_str name;
    size_t n = 0;
    for (; env_field_string_at(ms->parser, "channels", n, &name); n++)
        if (!channel_name_ok(&name)) return api_error(ms, req, 400, "bad_request", "a channel name is not valid");
    if (!n) return api_error(ms, req, 400, "bad_request", "channels: an array of channel names");
    // The answer lists every channel's offset; it is written after the publications,
    // which use the same output buffer, so they are kept here first.
    enum { MAX_BROADCAST = 256 };
    if (n > MAX_BROADCAST) return api_error(ms, req, 400, "bad_request", "at most 256 channels at once");
    uint64_t offsets[MAX_BROADCAST];
    char epochs[MAX_BROADCAST][17];
    for (size_t i = 0; i < n; i++) {
        env_field_string_at(ms->parser, "channels", i, &e->channel);
        const char *why;
        if (!(offsets[i] = publish(ms, e, nullptr, epochs[i], &why))) return api_error(ms, req, 503, "unavailable", why);
    }
    env_out_reset(&ms->out);
    env_key(&ms->out, "channels", true);
    env_raw(&ms->out, "[", 1);
    for (size_t i = 0; i < n; i++) {
        env_field_string_at(ms->parser, "channels", i, &name);
        if (i) env_raw(&ms->out, ",", 1);
        env_key(&ms->out, "channel", true);
        env_string(&ms->out, name.ptr, name.len);
        env_key(&ms->out, "offset", false);
        env_u64(&ms->out, offsets[i]);
        env_key(&ms->out, "epoch", false);
        env_string(&ms->out, epochs[i], 16);
        env_raw(&ms->out, "}", 1);
    }
    env_raw(&ms->out, "]}", 2);
    api_answer(ms, req, 200);
}

// {"clientId", "code"?, "reason"?}: closes the client's connection, by default with 4009.
static void api_disconnect(msg_server *ms, wsr_conn_id req, const envelope *e) {
    uint32_t who = e->client_id.ptr ? client_find(ms, e->client_id.ptr, e->client_id.len) : NONE;
    if (who == NONE) return api_error(ms, req, 404, "not_found", "no client with that id is connected");
    uint64_t code = 4009;
    env_str reason = {"disconnected by the backend", 27};
    env_field_u64(ms->parser, "code", &code);
    env_field_string(ms->parser, "reason", &reason);
    char text[124];
    if (code > 4999 || reason.len >= sizeof text)
        return api_error(ms, req, 400, "bad_request", "code: a close code; reason: at most 123 bytes");
    memcpy(text, reason.ptr, reason.len);
    text[reason.len] = '\0';
    if (wsr_close(ms->srv, ms->clients[who].conn, (uint16_t)code, text) == WSR_EINVAL)
        return api_error(ms, req, 400, "bad_request", "code: 1000-1003, 1007-1014 or 3000-4999");
    env_out_reset(&ms->out);
    env_lit(&ms->out, "{}");
    api_answer(ms, req, 200);
}

static void on_api(wsr_server *, wsr_request *req, void *user) {
    msg_server *ms = (msg_server *)user;
    wsr_conn_id id = wsr_request_id(req);
    if (!ms->api_keys || !ms->api_keys[0])
        return api_error(ms, id, 403, "forbidden", "the backend API is off: the server has no API key");
    if (!api_authorized(ms, req)) return api_error(ms, id, 401, "unauthorized", "Authorization: Bearer <API key>");
    wsr_str path = wsr_request_path(req), method = wsr_request_method(req);
    const char *what = path.ptr + ms->api_prefix_len;
    size_t wl = path.len - ms->api_prefix_len;
    bool post = method.len == 4 && memcmp(method.ptr, "POST", 4) == 0;
    if (wl == 8 && memcmp(what, "channels", 8) == 0)
        return post ? api_error(ms, id, 405, "bad_request", "use GET") : api_channels(ms, id);
    if (wl == 8 && memcmp(what, "presence", 8) == 0)
        return post ? api_error(ms, id, 405, "bad_request", "use GET") : api_presence(ms, id, req);
    bool pub = wl == 7 && memcmp(what, "publish", 7) == 0, snd = wl == 4 && memcmp(what, "send", 4) == 0;
    bool bc = wl == 9 && memcmp(what, "broadcast", 9) == 0, dis = wl == 10 && memcmp(what, "disconnect", 10) == 0;
    if (!pub && !snd && !bc && !dis) return api_error(ms, id, 404, "not_found", "no such API call");
    if (!post) return api_error(ms, id, 405, "bad_request", "use POST");
    wsr_str body = wsr_request_body(req);
    envelope e;
    const char *why;
    env_result r = env_parse(ms->parser, body.ptr, body.len, &e, &why, false);
    if (r == ENV_INVALID_JSON) return api_error(ms, id, 400, "invalid_json", why);
    if (r != ENV_OK) return api_error(ms, id, 400, "bad_request", why);
    if (bc) return api_broadcast(ms, id, &e);
    if (dis) return api_disconnect(ms, id, &e);
    return pub ? api_publish(ms, id, &e) : api_send(ms, id, &e);
}

int msg_server_api(msg_server *ms, const char *prefix, const char *const *keys) {
    ms->api_keys = keys;
    ms->api_prefix_len = strlen(prefix);
    char route[256];
    if (ms->api_prefix_len + 2 > sizeof route) return WSR_EINVAL;
    snprintf(route, sizeof route, "%s*", prefix);
    return wsr_server_http(ms->srv, route, WSR_HTTP_GET | WSR_HTTP_POST, on_api, ms);
}

static void on_open(wsr_server *srv, wsr_conn_id id, void *user) {
    msg_server *ms = (msg_server *)user;
    uint32_t slot = client_add(ms, id);
    if (slot == NONE) {
        wsr_close(srv, id, 1011, "out of memory");
        return;
    }
    wsr_conn_set_user(srv, id, (void *)(uintptr_t)(slot + 1));
    begin(ms, "connection:established", nullptr);
    env_key(&ms->out, "payload", false);
    client_object(ms, slot);
    finish(&ms->out);
    send_out(ms, id);
}

static void on_close(wsr_server *srv, wsr_conn_id id, uint16_t, void *user) {
    msg_server *ms = (msg_server *)user;
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
    msg_server *ms = (msg_server *)t->data;
    channels_expire(&ms->chans, now_ms());
}

msg_server *msg_server_new(uv_loop_t *loop, wsr_server *srv, const char *path, const msg_options *o) {
    msg_server *ms = (msg_server *)calloc(1, sizeof *ms);
    if (!ms) return nullptr;
    ms->srv = srv;
    if (o)
        ms->opts = *o;
    else
        msg_options_default(&ms->opts);
    ms->free_head = NONE;
    uint64_t seed;
    RAND_bytes((unsigned char *)&seed, sizeof seed);
    channels_init(&ms->chans, ms->opts.max_channels, ms->opts.history_count, ms->opts.history_age_ms, seed);
    channels_set_history_bytes(&ms->chans, ms->opts.history_bytes);
    ms->parser = env_parser_new((size_t)ms->opts.max_message);
    wsr_endpoint ep = WSR_ENDPOINT_INIT;
    ep.on_open = on_open;
    ep.on_message = on_message;
    ep.on_close = on_close;
    uv_timer_init(loop, &ms->expire);
    ms->expire.data = ms;
    if (!ms->parser || wsr_server_endpoint(srv, path, &ep, ms) != WSR_OK) {
        msg_server_free(ms);
        return nullptr;
    }
    uv_timer_start(&ms->expire, on_expire, EXPIRE_EVERY_MS, EXPIRE_EVERY_MS);
    uv_unref((uv_handle_t *)&ms->expire); // never keeps the loop alive on its own
    return ms;
}

static void on_timer_closed(uv_handle_t *h) {
    msg_server *ms = (msg_server *)h->data;
    channels_free(&ms->chans);
    env_parser_free(ms->parser);
    env_out_free(&ms->out);
    free(ms->clients);
    free(ms->by_id);
    free(ms);
}

void msg_server_free(msg_server *ms) {
    if (ms) uv_close((uv_handle_t *)&ms->expire, on_timer_closed);
}
