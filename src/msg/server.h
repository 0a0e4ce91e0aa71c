// The messaging server's state and the helpers its two faces share: the /ws protocol
// (messaging.cpp) and the backend HTTP API (api.cpp). Private to src/msg/.
#pragma once

#include <stdint.h>
#include <uv.h>

#include "msg/channels.h"
#include "msg/envelope.h"
#include "wsr/messaging.h"

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

struct wsr_messaging {
    wsr_server *srv;
    wsr_messaging_options opts;
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

// A client slot that is not there.
static const uint32_t MSG_NONE = UINT32_MAX;

uint64_t msg_now_ms(void);
// The slot of the client with this id (CLIENT_ID_LEN hex digits), or MSG_NONE.
uint32_t msg_client_find(const wsr_messaging *ms, const char *id, size_t len);
// [A-Za-z0-9_.:@/-]{1,128}
bool msg_channel_name_ok(const env_str *s);
// The 16 hex digits of a channel epoch.
void msg_epoch_text(uint64_t epoch, char out[17]);

// Writing a server envelope into ms->out: begin (type, and correlationId when given),
// the fields, then finish (timestamp and brace); send_out sends it to one connection.
void msg_begin(wsr_messaging *ms, const char *type, const env_str *correlation);
void msg_finish(env_out *o);
void msg_send_out(wsr_messaging *ms, wsr_conn_id to);
// {"code":…,"message":…}: the body of every error, on /ws and on the HTTP API.
void msg_error_object(env_out *o, const char *code, const char *message);
void msg_send_error(wsr_messaging *ms, wsr_conn_id to, const env_str *id, const char *code, const char *message);
// The members of a channel (CHANNELS_NONE: none) as {"clients": [...]} into ms->out.
void msg_presence_list(wsr_messaging *ms, uint32_t ch);

// A publication on e->channel (event, payload) from a client (its id) or from the
// backend (from NULL): framed once, shared by every subscriber and by the history.
// The offset, and the channel's epoch in epoch_out; 0 when it could not be made (*why).
uint64_t msg_publish(wsr_messaging *ms, const envelope *e, const char *from, char epoch_out[17], const char **why);
// A direct message to client slot `to` from a client's id or from the backend (NULL).
void msg_direct(wsr_messaging *ms, uint32_t to, const envelope *e, const char *from);
