// The backend HTTP API (docs/messaging.md): publish, broadcast, send, disconnect,
// channels and presence for a service that holds an API key.
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "msg/broker.h"
#include "msg/server.h"
#include "proto/crypto.h"

void msg_api_answer(wsr_messaging *ms, wsr_conn_id req, uint16_t status) {
    wsr_respond(ms->srv, req, status, "Content-Type: application/json\r\nCache-Control: no-store\r\n", ms->out.buf,
                ms->out.failed ? 0 : ms->out.len);
}

void msg_api_error(wsr_messaging *ms, wsr_conn_id req, uint16_t status, const char *code, const char *message) {
    env_out_reset(&ms->out);
    env_key(&ms->out, "error", true);
    msg_error_object(&ms->out, code, message);
    env_raw(&ms->out, "}", 1);
    if (status == 401)
        wsr_respond(ms->srv, req, status, "Content-Type: application/json\r\nWWW-Authenticate: Bearer\r\n",
                    ms->out.buf, ms->out.failed ? 0 : ms->out.len);
    else
        msg_api_answer(ms, req, status);
}

// One of the keys, compared in constant time: the time an answer takes must not tell
// how much of a guess was right.
static bool api_authorized(const wsr_messaging *ms, wsr_request *req) {
    wsr_str v;
    if (!wsr_request_header(req, "Authorization", &v) || v.len < 7 || strncasecmp(v.ptr, "Bearer ", 7) != 0)
        return false;
    const char *tok = v.ptr + 7;
    size_t n = v.len - 7;
    bool ok = false;
    for (const char *const *k = ms->api_keys; *k; k++) {
        size_t kl = strlen(*k);
        ok |= kl == n && crypto_equal(*k, tok, n);
    }
    return ok;
}

// A publication that could not be made: too large (413) or no room (503).
static void api_unpublished(wsr_messaging *ms, wsr_conn_id req, const char *why) {
    if (why == MSG_TOO_LARGE) return msg_api_error(ms, req, 413, "too_large", why);
    msg_api_error(ms, req, 503, "unavailable", why);
}

static void api_publish(wsr_messaging *ms, wsr_conn_id req, const envelope *e) {
    if (!msg_channel_name_ok(&e->channel))
        return msg_api_error(ms, req, 400, "bad_request", "channel must be 1-128 of A-Z a-z 0-9 _ . : @ / -");
    char epoch[17];
    const char *why;
    if (ms->broker) {
        broker_waiter w{BW_HTTP, req, {}};
        if (!broker_publish(ms->broker, &w, e, nullptr, &e->channel, 1, false, &why)) api_unpublished(ms, req, why);
        return;
    }
    uint64_t offset = msg_publish(ms, e, nullptr, epoch, &why);
    if (!offset) return api_unpublished(ms, req, why);
    env_out_reset(&ms->out);
    env_key(&ms->out, "offset", true);
    env_u64(&ms->out, offset);
    env_key(&ms->out, "epoch", false);
    env_string(&ms->out, epoch, 16);
    env_raw(&ms->out, "}", 1);
    msg_api_answer(ms, req, 200);
}

static void api_send(wsr_messaging *ms, wsr_conn_id req, const envelope *e) {
    uint32_t to = e->client_id.ptr ? msg_client_find(ms, e->client_id.ptr, e->client_id.len) : MSG_NONE;
    if (to == MSG_NONE && ms->broker && e->client_id.ptr && e->client_id.len == CLIENT_ID_LEN) {
        // A client of another node, perhaps: Redis routes it (200 or 404 with its answer).
        if (!msg_direct_frame(ms, e, nullptr)) return msg_api_error(ms, req, 413, "too_large", MSG_TOO_LARGE);
        broker_waiter w{BW_HTTP, req, {}};
        if (!broker_direct(ms->broker, &w, e->client_id.ptr, e->client_id.len, ms->out.buf, ms->out.len))
            msg_api_error(ms, req, 503, "unavailable", "the message bus (Redis) is down");
        return;
    }
    if (to == MSG_NONE) return msg_api_error(ms, req, 404, "not_found", "no client with that id is connected");
    if (!msg_direct(ms, to, e, nullptr)) return msg_api_error(ms, req, 413, "too_large", MSG_TOO_LARGE);
    env_out_reset(&ms->out);
    env_lit(&ms->out, "{}");
    msg_api_answer(ms, req, 200);
}

static void api_channels(wsr_messaging *ms, wsr_conn_id req) {
    env_out_reset(&ms->out);
    env_key(&ms->out, "channels", true);
    env_raw(&ms->out, "[", 1);
    bool first = true;
    for (uint32_t i = 0; i < ms->chans.nslots; i++) {
        const channel *c = &ms->chans.slots[i];
        if (!c->name) continue;
        char epoch[17];
        msg_epoch_text(c->epoch, epoch);
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
    msg_api_answer(ms, req, 200);
}

// ?channel= of a GET, into name; false (answered 400) when missing or not a channel name.
static bool channel_param(wsr_messaging *ms, wsr_conn_id req, wsr_request *r, char name[MAX_CHANNEL_NAME],
                          env_str *out) {
    size_t len = 0;
    bool found = msg_query_param(wsr_request_query(r), "channel", name, MAX_CHANNEL_NAME, &len);
    *out = env_str{name, (uint32_t)len};
    if (found && msg_channel_name_ok(out)) return true;
    msg_api_error(ms, req, 400, "bad_request", "?channel= a channel name");
    return false;
}

// {"channel", "offset", "epoch", "publications": [the envelopes subscribers got]}: the
// newest `limit` (default and at most all) publications the channel's history holds.
static void api_history(wsr_messaging *ms, wsr_conn_id req, wsr_request *r) {
    char name[MAX_CHANNEL_NAME];
    env_str ch;
    if (!channel_param(ms, req, r, name, &ch)) return;
    char num[24];
    size_t nlen;
    uint64_t limit = UINT32_MAX;
    if (msg_query_param(wsr_request_query(r), "limit", num, sizeof num - 1, &nlen)) {
        num[nlen] = '\0';
        char *end;
        limit = strtoull(num, &end, 10);
        if (!nlen || *end || num[0] == '-') return msg_api_error(ms, req, 400, "bad_request", "?limit= a number");
    }
    if (ms->broker) {
        // The history is Redis's stream of the channel, the same from every node.
        broker_waiter w{BW_HTTP, req, {}};
        if (!broker_history(ms->broker, &w, &ch, limit))
            msg_api_error(ms, req, 503, "unavailable", "the message bus (Redis) is down");
        return;
    }
    uint32_t slot = channels_find(&ms->chans, ch.ptr, ch.len);
    const channel *c = slot == CHANNELS_NONE ? nullptr : channels_at(&ms->chans, slot);
    env_out_reset(&ms->out);
    env_key(&ms->out, "channel", true);
    env_string(&ms->out, ch.ptr, ch.len);
    env_key(&ms->out, "offset", false);
    env_u64(&ms->out, c ? c->last_offset : 0);
    env_key(&ms->out, "epoch", false);
    if (c) {
        char epoch[17];
        msg_epoch_text(c->epoch, epoch);
        env_string(&ms->out, epoch, 16);
    } else {
        env_lit(&ms->out, "null");
    }
    env_key(&ms->out, "publications", false);
    env_raw(&ms->out, "[", 1);
    uint32_t n = c ? c->hist.len : 0, first = limit < n ? n - (uint32_t)limit : 0;
    for (uint32_t i = first; i < n; i++) {
        size_t len;
        const void *text = wsr_msg_payload(history_at(&c->hist, i)->msg, &len);
        if (i > first) env_raw(&ms->out, ",", 1);
        env_raw(&ms->out, (const char *)text, len);
    }
    env_raw(&ms->out, "]}", 2);
    msg_api_answer(ms, req, 200);
}

static void api_presence(wsr_messaging *ms, wsr_conn_id req, wsr_request *r) {
    char name[MAX_CHANNEL_NAME];
    env_str ch;
    if (!channel_param(ms, req, r, name, &ch)) return;
    if (ms->broker) {
        broker_waiter w{BW_HTTP, req, {}};
        if (!broker_presence_query(ms->broker, &w, &ch))
            msg_api_error(ms, req, 503, "unavailable", "the message bus (Redis) is down");
        return;
    }
    env_out_reset(&ms->out);
    msg_presence_list(ms, channels_find(&ms->chans, ch.ptr, ch.len));
    msg_api_answer(ms, req, 200);
}

// {"channels": [names], "event"?, "payload"}: one publication on each channel.
static void api_broadcast(wsr_messaging *ms, wsr_conn_id req, envelope *e) {
    env_str name;
    size_t n = 0;
    for (; env_field_string_at(ms->parser, "channels", n, &name); n++)
        if (!msg_channel_name_ok(&name)) return msg_api_error(ms, req, 400, "bad_request", "a channel name is not valid");
    if (!n) return msg_api_error(ms, req, 400, "bad_request", "channels: an array of channel names");
    // The answer lists every channel's offset; it is written after the publications,
    // which use the same output buffer, so they are kept here first.
    enum { MAX_BROADCAST = 256 };
    if (n > MAX_BROADCAST) return msg_api_error(ms, req, 400, "bad_request", "at most 256 channels at once");
    if (ms->broker) {
        // One script for all of them: each channel's offset comes in the one answer.
        env_str chans[MAX_BROADCAST];
        for (size_t i = 0; i < n; i++) env_field_string_at(ms->parser, "channels", i, &chans[i]);
        broker_waiter w{BW_HTTP, req, {}};
        const char *why;
        if (!broker_publish(ms->broker, &w, e, nullptr, chans, (uint32_t)n, true, &why)) api_unpublished(ms, req, why);
        return;
    }
    uint64_t offsets[MAX_BROADCAST];
    char epochs[MAX_BROADCAST][17];
    for (size_t i = 0; i < n; i++) {
        env_field_string_at(ms->parser, "channels", i, &e->channel);
        const char *why;
        if (!(offsets[i] = msg_publish(ms, e, nullptr, epochs[i], &why))) return api_unpublished(ms, req, why);
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
    msg_api_answer(ms, req, 200);
}

// The close codes an application may send (RFC 6455 7.4).
static bool close_code_ok(uint64_t c) { return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999); }

// {"clientId" | "user", "code"?, "reason"?}: closes the client's connection, or every
// connection of the user, by default with 4009. {"disconnected": N}; 404 when none.
static void api_disconnect(wsr_messaging *ms, wsr_conn_id req, const envelope *e) {
    uint64_t code = 4009;
    env_str reason = {"disconnected by the backend", 27}, user = {};
    env_field_u64(ms->parser, "code", &code);
    env_field_string(ms->parser, "reason", &reason);
    env_field_string(ms->parser, "user", &user);
    char text[124];
    if (!close_code_ok(code) || reason.len >= sizeof text)
        return msg_api_error(ms, req, 400, "bad_request", "code: 1000-1003, 1007-1014 or 3000-4999; reason: at most 123 bytes");
    if (!e->client_id.ptr == !user.ptr) return msg_api_error(ms, req, 400, "bad_request", "clientId or user, one of them");
    memcpy(text, reason.ptr, reason.len);
    text[reason.len] = '\0';
    uint64_t n = 0;
    if (e->client_id.ptr) {
        uint32_t who = msg_client_find(ms, e->client_id.ptr, e->client_id.len);
        if (who != MSG_NONE && wsr_close(ms->srv, ms->clients[who].conn, (uint16_t)code, text) == WSR_OK) n++;
        if (!n && ms->broker && e->client_id.len == CLIENT_ID_LEN) {
            // On another node, perhaps: Redis routes it ({"disconnected":1} or 404).
            broker_waiter w{BW_HTTP, req, {}};
            if (!broker_disconnect_client(ms->broker, &w, e->client_id.ptr, e->client_id.len, (uint16_t)code, text))
                msg_api_error(ms, req, 503, "unavailable", "the message bus (Redis) is down");
            return;
        }
    } else {
        n = msg_disconnect_user(ms, user.ptr, user.len, (uint16_t)code, text);
        if (ms->broker) {
            // The user's connections on the other nodes are closed by them; how many is not
            // known here, so the answer counts this node's and says the others were told.
            if (!broker_disconnect_user(ms->broker, user.ptr, user.len, (uint16_t)code, text))
                return msg_api_error(ms, req, 503, "unavailable", "the message bus (Redis) is down");
            env_out_reset(&ms->out);
            env_key(&ms->out, "disconnected", true);
            env_u64(&ms->out, n);
            env_key(&ms->out, "otherNodes", false);
            env_lit(&ms->out, "true}");
            return msg_api_answer(ms, req, 200);
        }
    }
    if (!n) return msg_api_error(ms, req, 404, "not_found", "no such client is connected");
    env_out_reset(&ms->out);
    env_key(&ms->out, "disconnected", true);
    env_u64(&ms->out, n);
    env_raw(&ms->out, "}", 1);
    msg_api_answer(ms, req, 200);
}

static void on_api(wsr_server *, wsr_request *req, void *user) {
    wsr_messaging *ms = (wsr_messaging *)user;
    wsr_conn_id id = wsr_request_id(req);
    ms->counts.api_requests++;
    if (!ms->api_keys || !ms->api_keys[0])
        return msg_api_error(ms, id, 403, "forbidden", "the backend API is off: the server has no API key");
    if (!api_authorized(ms, req)) return msg_api_error(ms, id, 401, "unauthorized", "Authorization: Bearer <API key>");
    wsr_str path = wsr_request_path(req), method = wsr_request_method(req);
    const char *what = path.ptr + ms->api_prefix_len;
    size_t wl = path.len - ms->api_prefix_len;
    bool post = method.len == 4 && memcmp(method.ptr, "POST", 4) == 0;
    if (wl == 8 && memcmp(what, "channels", 8) == 0)
        return post ? msg_api_error(ms, id, 405, "bad_request", "use GET") : api_channels(ms, id);
    if (wl == 8 && memcmp(what, "presence", 8) == 0)
        return post ? msg_api_error(ms, id, 405, "bad_request", "use GET") : api_presence(ms, id, req);
    if (wl == 7 && memcmp(what, "history", 7) == 0)
        return post ? msg_api_error(ms, id, 405, "bad_request", "use GET") : api_history(ms, id, req);
    bool pub = wl == 7 && memcmp(what, "publish", 7) == 0, snd = wl == 4 && memcmp(what, "send", 4) == 0;
    bool bc = wl == 9 && memcmp(what, "broadcast", 9) == 0, dis = wl == 10 && memcmp(what, "disconnect", 10) == 0;
    if (!pub && !snd && !bc && !dis) return msg_api_error(ms, id, 404, "not_found", "no such API call");
    if (!post) return msg_api_error(ms, id, 405, "bad_request", "use POST");
    wsr_str body = wsr_request_body(req);
    envelope e;
    const char *why;
    env_result r = env_parse(ms->parser, body.ptr, body.len, &e, &why, false);
    if (r == ENV_INVALID_JSON) return msg_api_error(ms, id, 400, "invalid_json", why);
    if (r != ENV_OK) return msg_api_error(ms, id, 400, "bad_request", why);
    if (bc) return api_broadcast(ms, id, &e);
    if (dis) return api_disconnect(ms, id, &e);
    return pub ? api_publish(ms, id, &e) : api_send(ms, id, &e);
}

int wsr_messaging_api(wsr_messaging *ms, const char *prefix, const char *const *keys) {
    ms->api_keys = keys;
    ms->api_prefix_len = strlen(prefix);
    char route[256];
    if (ms->api_prefix_len + 2 > sizeof route) return WSR_EINVAL;
    snprintf(route, sizeof route, "%s*", prefix);
    return wsr_server_http(ms->srv, route, WSR_HTTP_GET | WSR_HTTP_POST, on_api, ms);
}
