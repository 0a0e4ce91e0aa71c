// The embedder's part of the protocol: handlers for its own message types, and the calls
// that answer, publish and send as the backend does.
#include <stdlib.h>
#include <string.h>

#include "msg/broker.h"
#include "msg/server.h"

// The protocol's own types cannot be taken over.
static const char *const OWN[] = {"ping", "subscribe", "unsubscribe", "publish", "send", "presence", "auth"};

const msg_handler *msg_handler_find(const wsr_messaging *ms, const char *type, size_t len) {
    for (uint32_t i = 0; i < ms->nhandlers; i++)
        if (strlen(ms->handlers[i].type) == len && memcmp(ms->handlers[i].type, type, len) == 0) return &ms->handlers[i];
    return nullptr;
}

int wsr_messaging_on(wsr_messaging *ms, const char *type, wsr_messaging_handler h, void *user) {
    if (!type || !*type || !h) return WSR_EINVAL;
    for (const char *own : OWN)
        if (strcmp(own, type) == 0) return WSR_EEXIST;
    if (msg_handler_find(ms, type, strlen(type))) return WSR_EEXIST;
    msg_handler *nh = (msg_handler *)realloc(ms->handlers, (ms->nhandlers + 1) * sizeof *nh);
    if (!nh) return WSR_ENOMEM;
    ms->handlers = nh;
    char *copy = strdup(type);
    if (!copy) return WSR_ENOMEM;
    nh[ms->nhandlers++] = msg_handler{copy, h, user};
    return WSR_OK;
}

static bool payload_ok(wsr_messaging *ms, const char *payload, size_t len) {
    return !payload || env_json_valid(ms->parser, payload, len);
}

int wsr_messaging_reply(wsr_messaging *ms, const wsr_messaging_message *msg, const char *type, const char *payload,
                        size_t len) {
    if (!type || !*type || !payload_ok(ms, payload, len)) return WSR_EINVAL;
    env_str id{msg->id.ptr, (uint32_t)msg->id.len};
    msg_begin(ms, type, &id);
    if (payload) {
        env_key(&ms->out, "payload", false);
        env_raw(&ms->out, payload, len);
    }
    msg_finish(&ms->out);
    if (ms->out.failed) return WSR_ENOMEM;
    return wsr_send(ms->srv, msg->conn, WSR_TEXT, ms->out.buf, ms->out.len);
}

int wsr_messaging_error(wsr_messaging *ms, const wsr_messaging_message *msg, const char *code, const char *message) {
    if (!code || !message) return WSR_EINVAL;
    env_str id{msg->id.ptr, (uint32_t)msg->id.len};
    msg_send_error(ms, msg->conn, &id, code, message);
    return ms->out.failed ? WSR_ENOMEM : WSR_OK;
}

// An envelope as the backend API would have parsed it.
static envelope backend_envelope(const char *channel, const char *event, const char *payload, size_t len) {
    envelope e = {};
    if (channel) e.channel = env_str{channel, (uint32_t)strlen(channel)};
    if (event) e.event = env_str{event, (uint32_t)strlen(event)};
    if (payload) e.payload = env_str{payload, (uint32_t)len};
    return e;
}

int wsr_messaging_publish(wsr_messaging *ms, const char *channel, const char *event, const char *payload, size_t len,
                          uint64_t *offset) {
    envelope e = backend_envelope(channel, event, payload, len);
    if (!channel || !msg_channel_name_ok(&e.channel) || !payload_ok(ms, payload, len)) return WSR_EINVAL;
    char epoch[17];
    const char *why;
    if (ms->broker) {
        // Redis gives the offset later, in its answer; nobody waits for it here.
        if (offset) *offset = 0;
        if (broker_publish(ms->broker, nullptr, &e, nullptr, &e.channel, 1, false, &why)) return WSR_OK;
        return why == MSG_TOO_LARGE ? WSR_ETOOBIG : WSR_ESTATE;
    }
    uint64_t off = msg_publish(ms, &e, nullptr, epoch, &why);
    if (!off) return why == MSG_TOO_LARGE ? WSR_ETOOBIG : WSR_ENOMEM;
    if (offset) *offset = off;
    return WSR_OK;
}

int wsr_messaging_send(wsr_messaging *ms, const char *client_id, const char *event, const char *payload, size_t len) {
    if (!client_id || !payload_ok(ms, payload, len)) return WSR_EINVAL;
    uint32_t to = msg_client_find(ms, client_id, strlen(client_id));
    envelope e = backend_envelope(nullptr, event, payload, len);
    if (to == MSG_NONE && ms->broker && strlen(client_id) == CLIENT_ID_LEN) {
        if (!msg_direct_frame(ms, &e, nullptr)) return WSR_ETOOBIG;
        return broker_direct(ms->broker, nullptr, client_id, CLIENT_ID_LEN, ms->out.buf, ms->out.len) ? WSR_OK : WSR_ESTATE;
    }
    if (to == MSG_NONE) return WSR_ENOCONN;
    return msg_direct(ms, to, &e, nullptr) ? WSR_OK : WSR_ETOOBIG;
}
