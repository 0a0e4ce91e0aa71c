// The broker: what carries publications, direct messages, presence changes and backend
// disconnects between the clients of the messaging layer.
//
// Without --broker it is the process itself: messaging.cpp frames a publication and hands
// it to the local subscribers (channels.*, history.*), as it always did, and nothing here
// runs. With --broker redis://… (docs/scaling.md) every such event goes through Redis
// instead (broker_redis.cpp) and comes back to every node, this one included, from its
// subscriber connection: so a client on any node receives what was published on any
// other exactly once, and a publication is framed for a node's subscribers once, as in
// one process. Offsets and epochs are given out by Redis, the history lives in a Redis
// stream per channel, presence in a hash per channel with entries per node.
//
// Private to src/msg/.
#pragma once

#include <stdint.h>
#include <uv.h>

#include "msg/envelope.h"
#include "wsr/messaging.h"

// --- the URL of --broker (pure: no I/O) ---------------------------------------------------

enum { BROKER_HOST_MAX = 255, BROKER_PATH_MAX = 107, BROKER_CRED_MAX = 255 };

struct broker_url {
    bool unix_socket;
    char host[BROKER_HOST_MAX + 1]; // a name or an address (IPv6 without brackets)
    uint16_t port;                  // default 6379
    char path[BROKER_PATH_MAX + 1]; // the socket of unix:// (what sun_path holds)
    char user[BROKER_CRED_MAX + 1]; // percent-decoded; "" none (AUTH password alone)
    char pass[BROKER_CRED_MAX + 1]; // "" none (no AUTH)
    uint32_t db;                    // SELECT; default 0
};

// "redis://[user[:pass]@]host[:port][/db]" or "unix://[user[:pass]@]/path[?db=N]". True and *out
// filled, or false with *why saying what is wrong (a static string).
bool broker_url_parse(const char *text, broker_url *out, const char **why);

// --- the messages of the bus (pure: no I/O) -----------------------------------------------

// One message on Redis Pub/Sub, as the scripts of broker_redis.cpp write them:
//   h                                   a node's heartbeat to itself
//   p CHANNEL EPOCH OFFSET ENVELOPE     a publication (EPOCH: 16 hex digits; OFFSET >= 1)
//   j|l CHANNEL CLIENTID OBJECT         a client joined / left ({"clientId","user"})
//   d CLIENTID ENVELOPE                 a direct message (to one node's channel)
//   x CLIENTID CODE REASON              a backend disconnect of a client (idem)
//   u NODE CODE USERLEN USER REASON     a backend disconnect of a user's connections,
//                                       from NODE (USER: USERLEN bytes, then the reason)
enum bus_kind : char {
    BUS_HEARTBEAT = 'h',
    BUS_PUBLICATION = 'p',
    BUS_JOIN = 'j',
    BUS_LEAVE = 'l',
    BUS_DIRECT = 'd',
    BUS_DISCONNECT = 'x',
    BUS_DISCONNECT_USER = 'u',
};
// Views into the message.
struct bus_msg {
    char kind;               // a bus_kind
    const char *channel;     // p j l: a valid channel name
    uint32_t channel_len;
    const char *epoch;       // p: 16 lowercase hex digits
    uint64_t offset;         // p
    const char *client_id;   // j l d x: 32 lowercase hex digits
    const char *node;        // u: 16 lowercase hex digits
    uint16_t code;           // x u: a close code an application may send
    const char *user;        // u
    size_t user_len;
    const char *data;        // the rest: the envelope (p d), the client object (j l), the
    size_t data_len;         // reason (x u, at most 123 bytes)
};
// True with *out filled when m is one of those, every field well formed; false for
// anything else (another program's message on our channels, a truncated one).
bool bus_parse(const char *m, size_t len, bus_msg *out);

// --- the Redis broker ------------------------------------------------------------------

struct msg_broker;

// Connects (from the loop, never blocking: names are resolved off the loop) and keeps
// reconnecting with backoff. NULL when out of memory.
msg_broker *broker_new(wsr_messaging *ms, uv_loop_t *loop, const broker_url *u);
// Drops the connections; operations still waiting are forgotten without an answer (the
// server that would carry it is gone). The memory goes from the loop: ms->timers_open
// counts the broker's timer until its close callback.
void broker_close(msg_broker *b);
// Both connections are up (the subscriber has its subscriptions): what needs the bus
// may be tried; otherwise it is answered unavailable at once.
bool broker_up(const msg_broker *b);
void broker_stats(const msg_broker *b, wsr_messaging_stats *st);
// The node's id (16 hex digits, random per process).
const char *broker_node(const msg_broker *b);

// Who waits for the answer of an operation.
enum broker_waiter_kind {
    BW_NONE,      // nobody (the embedder's calls, and events without an answer)
    BW_WS,        // a /ws client: an ack or an error envelope, with its correlation id
    BW_HTTP,      // a backend API request: a JSON body and a status
};
struct broker_waiter {
    broker_waiter_kind kind;
    wsr_conn_id conn;    // the client's connection or the request's id
    env_str correlation; // copied by the broker (ptr NULL: none)
};

// Publications: one per channel (the backend's broadcast gives several; a client's
// publish one). e gives event and payload; from the sender's client id or NULL.
// False (nothing sent, and *why set) when the broker is down or not keeping up, an
// envelope would pass max_message (*why == MSG_TOO_LARGE), or n is more than 256.
bool broker_publish(msg_broker *b, const broker_waiter *w, const envelope *e, const char *from, const env_str *channels,
                    uint32_t n, bool broadcast_answer, const char **why);
// A subscription: Redis gives the channel's epoch and offset and, when since/epoch
// match, what came after since; the client is then subscribed (msg_subscribed).
// since_epoch.ptr NULL: no recovery asked. False when the broker is down.
bool broker_subscribe(msg_broker *b, uint32_t client, const env_str *correlation, const env_str *channel, bool asked,
                      uint64_t since, const env_str *since_epoch);
// An unsubscribe (msg_unsubscribe) done when Redis has answered what the client asked
// before it (a subscription), so the client's requests keep their order. False when the
// broker is down (or b NULL): the caller does it at once.
bool broker_after(msg_broker *b, uint32_t client, const env_str *correlation, const env_str *channel);
// What a channel of this node missed while its subscriber connection was down: the
// publications after `since` (msg_caught_up). False when it could not be sent.
bool broker_catch_up(msg_broker *b, const env_str *channel, uint64_t since, const env_str *epoch);
// A client joined or left a channel: the channel's presence hash and, with join_leave,
// an event to the other members on every node.
void broker_presence_change(msg_broker *b, uint32_t client, const char *channel, uint32_t len, bool joined,
                            bool announce);
// {"clients": [...]} of a channel across the nodes (entries of dead nodes dropped).
bool broker_presence_query(msg_broker *b, const broker_waiter *w, const env_str *channel);
// A framed direct message (data) to a client of another node. Answer: ack / {} when it
// was handed to the client's node, not_found / 404 when no live node has it.
bool broker_direct(msg_broker *b, const broker_waiter *w, const char *client_id, uint32_t id_len, const char *data,
                   size_t len);
// Closes a client of another node (answer {"disconnected":1} or 404), or every
// connection of a user on the other nodes (no answer: the caller answered).
bool broker_disconnect_client(msg_broker *b, const broker_waiter *w, const char *client_id, uint32_t id_len,
                              uint16_t code, const char *reason);
bool broker_disconnect_user(msg_broker *b, const char *user, uint32_t user_len, uint16_t code, const char *reason);
// The backend's GET history: the newest `limit` publications of the channel's stream.
bool broker_history(msg_broker *b, const broker_waiter *w, const env_str *channel, uint64_t limit);
// A client opened or closed on this node: the registry that routes direct messages.
void broker_client_open(msg_broker *b, uint32_t client);
void broker_client_close(msg_broker *b, const char *client_id);
