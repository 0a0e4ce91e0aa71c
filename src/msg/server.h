// The messaging server's state and the helpers its parts share: the /ws protocol
// (messaging.cpp), its upgrade hook (upgrade.cpp), the backend HTTP API (api.cpp) and
// the embedder's handlers (handlers.cpp). Private to src/msg/.
#pragma once

#include <stdint.h>
#include <uv.h>

#include "msg/auth.h"
#include "msg/channels.h"
#include "msg/envelope.h"
#include "msg/ratelimit.h"
#include "wsr/messaging.h"

enum { CLIENT_ID_LEN = 32, MAX_CHANNEL_NAME = 128, EXPIRE_EVERY_MS = 10000 };

struct msg_client {
    char id[CLIENT_ID_LEN + 1]; // 128 random bits in hex; "" for a free slot
    wsr_conn_id conn;
    uint32_t strikes;           // bad messages in a row
    uint32_t next_free;
    // Token buckets (rate limits), in thousandths of a message, of a byte and of a
    // publish, refilled from the time of the last message.
    uint64_t msg_tokens, byte_tokens, pub_tokens;
    uint64_t refilled_ms;
    auth_identity *who;   // NULL: anonymous
    uint64_t deadline_ms; // when it is closed with deadline_code unless it authenticates; 0 none
    uint16_t deadline_code; // 4001: no auth in time; 4002: its token expired
};

// An identity accepted at the upgrade, waiting for on_open (which takes it; a client
// that disappears before is swept after PENDING_MS).
struct msg_pending {
    wsr_conn_id conn; // 0: free
    auth_identity *who;
    uint64_t at_ms;
    uint32_t next_free;
};

// A type an embedder handles (wsr_messaging_on).
struct msg_handler {
    char *type;
    wsr_messaging_handler fn;
    void *user;
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
    auth creds;
    rate_limit lim_messages, lim_bytes, lim_publish;
    rate_table handshakes;    // upgrades per client address
    msg_pending *pending;
    uint32_t npending, pending_cap, pending_free;
    uv_timer_t deadlines;     // authentication timeouts and token expiries
    uint64_t next_deadline;   // when it fires; 0: not armed
    uint32_t jobs;            // password checks still running off the loop
    bool freeing;             // wsr_messaging_free was called
    uint8_t timers_open;      // until both close callbacks ran; then the last job frees
    msg_handler *handlers;
    uint32_t nhandlers;
    wsr_messaging_stats counts; // the counters of wsr_messaging_get_stats
    struct msg_broker *broker;  // NULL: the in-process broker (src/msg/broker.h)
};

// The connection's user pointer holds its client slot + 1 once open, and the pending
// slot + 1 with this bit between the upgrade and on_open.
static const uintptr_t MSG_PENDING_BIT = (uintptr_t)1 << (sizeof(uintptr_t) * 8 - 1);
enum { PENDING_MS = 60000 };

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
// The offset, and the channel's epoch in epoch_out; 0 when it could not be made (*why:
// MSG_TOO_LARGE, or what else went wrong).
uint64_t msg_publish(wsr_messaging *ms, const envelope *e, const char *from, char epoch_out[17], const char **why);
// Runs the upgrade hook of the /ws endpoint: handshakes per address, credentials.
void msg_on_upgrade(wsr_server *srv, wsr_request *req, void *user);
// Takes the identity a connection was accepted with (NULL: anonymous) at on_open.
auth_identity *msg_pending_take(wsr_messaging *ms, wsr_conn_id conn, void *user_ptr);
// Frees pending identities whose connection never opened.
void msg_pending_sweep(wsr_messaging *ms, uint64_t now_ms);
// The client's authentication deadline (0: none); arms the timer.
void msg_deadline_set(wsr_messaging *ms, uint32_t client, uint64_t at_ms, uint16_t code);
// The value of query parameter `name`, percent-decoded into out (at most cap bytes).
bool msg_query_param(wsr_str q, const char *name, char *out, size_t cap, size_t *len);
// Frees what is left once the timers are closed and no password check runs.
void msg_release(wsr_messaging *ms);
// An embedder's handler for a type, or NULL.
const msg_handler *msg_handler_find(const wsr_messaging *ms, const char *type, size_t len);

// The backend API's answers: a JSON body (ms->out) with a status, and an error.
void msg_api_answer(wsr_messaging *ms, wsr_conn_id req, uint16_t status);
void msg_api_error(wsr_messaging *ms, wsr_conn_id req, uint16_t status, const char *code, const char *message);
// {"clientId":…,"user":…} of a client slot into ms->out.
void msg_client_object(wsr_messaging *ms, uint32_t client);
// The ack of a /ws request with a correlation id (offset: NULL for none).
void msg_ack(wsr_messaging *ms, wsr_conn_id to, const env_str *correlation, const uint64_t *offset);
// A direct message framed into ms->out; false when it would pass max_message.
bool msg_direct_frame(wsr_messaging *ms, const envelope *e, const char *from);

// --- what the Redis broker hands back (src/msg/broker_redis.cpp) ---------------------------

// A publication from the bus: its framed envelope (data), with the epoch (16 hex digits)
// and offset Redis gave it. Delivered to this node's subscribers of the channel and kept
// in its local history.
void msg_bus_publication(wsr_messaging *ms, const char *name, uint32_t len, const char *epoch, uint64_t offset,
                         const char *data, size_t dlen);
// A join or leave of clientId (the {"clientId","user"} object json) on a channel, for the
// other members on this node.
void msg_bus_presence(wsr_messaging *ms, const char *name, uint32_t len, const char *client_id, const char *json,
                      size_t jlen, bool joined);
// A framed direct message to a client of this node; a backend disconnect of one, or of
// every connection of a user.
void msg_bus_direct(wsr_messaging *ms, const char *client_id, const char *data, size_t len);
void msg_bus_disconnect(wsr_messaging *ms, const char *client_id, uint16_t code, const char *reason);
uint64_t msg_disconnect_user(wsr_messaging *ms, const char *user, size_t len, uint16_t code, const char *reason);
// Redis's answer to a subscription (broker_subscribe): the channel's epoch and newest
// offset, and when recovered the publications after since, oldest first. Subscribes
// the client (when still connected) and answers it.
void msg_subscribed(wsr_messaging *ms, uint32_t client, wsr_conn_id conn, const env_str *correlation,
                    const env_str *channel, const char *epoch, uint64_t offset, bool recovered, const char *const *data,
                    const size_t *lens, uint32_t n);
// Unsubscribes the client (when still connected) and acks.
void msg_unsubscribe(wsr_messaging *ms, uint32_t client, wsr_conn_id conn, const env_str *correlation,
                     const env_str *channel);
// This node's subscriber connection to Redis came back: every channel with members here
// fetches what was published meanwhile (broker_catch_up), holding what the bus brings
// until then, so that members get every offset once, in order.
void msg_catch_up(wsr_messaging *ms);
// Redis's answer (recovered: the publications after the local newest offset, oldest
// first), or a failure (recovered false, epoch NULL): what was held goes out after.
void msg_caught_up(wsr_messaging *ms, const env_str *channel, const char *epoch, uint64_t offset, bool recovered,
                   const char *const *data, const size_t *lens, uint32_t n);
// The broker is down, or answered an error: the subscription is not made (the channel
// may go again).
void msg_subscribe_failed(wsr_messaging *ms, uint32_t client, wsr_conn_id conn, const env_str *correlation,
                          const env_str *channel, const char *why);

// msg_publish's *why when the envelope would pass max_message (error code too_large).
extern const char *const MSG_TOO_LARGE;
// A direct message to client slot `to` from a client's id or from the backend (NULL).
// False when the envelope would pass max_message (nothing sent).
bool msg_direct(wsr_messaging *ms, uint32_t to, const envelope *e, const char *from);
