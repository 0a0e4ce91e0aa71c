/* wsreactor messaging: the JSON protocol of docs/messaging.md served on one endpoint of a
 * wsr_server. Client ids, channels with offsets and recovery from their history,
 * presence, direct messages, authentication at the handshake or in-band, permissions
 * per channel namespace, rate limits, and the backend HTTP API.
 *
 * Every function must be called from the loop's thread. */
#ifndef WSR_MESSAGING_H
#define WSR_MESSAGING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wsr/wsr.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wsr_messaging wsr_messaging;

/* Who may subscribe to, or publish on, a namespace's channels over the WebSocket. */
typedef enum wsr_allow {
    WSR_ALLOW_ANYONE = 0,  /* every connected client */
    WSR_ALLOW_USERS = 1,   /* authenticated clients */
    WSR_ALLOW_GRANTED = 2, /* clients whose token grants the channel (JWT claims
                              "channels" for subscribe, "publish" for publish) */
    WSR_ALLOW_BACKEND = 3, /* nobody: only the backend HTTP API publishes there */
} wsr_allow;

/* Options of the channels named "NAME:…". Channels outside every namespace take the
 * defaults of wsr_messaging_options. */
typedef struct wsr_namespace {
    const char *name; /* [A-Za-z0-9_.@/-]{1,64}, without the ':' */
    wsr_allow subscribe, publish;
    uint32_t history_size;   /* publications kept for recovery; 0 none */
    uint64_t history_ttl_ms; /* and for how long */
    bool presence;           /* presence queries answered (else forbidden) */
    bool join_leave;         /* subscribers hear join and leave */
} wsr_namespace;

/* A sized struct: fill it with wsr_messaging_options_default, then change fields. A
 * program built against an older, shorter version keeps working: fields past its size
 * take their defaults. Strings and arrays are kept by the caller while the server runs. */
typedef struct wsr_messaging_options {
    size_t size;
    uint64_t max_message;   /* the server's max_message */
    uint32_t max_channels;  /* channels at once; more: subscribe/publish answer unavailable */
    uint64_t history_memory; /* bytes all histories together hold at most */
    uint32_t max_strikes;   /* bad messages in a row before the connection is closed 1008 */
    /* Channels outside every namespace (default: anyone, 100 for 5 minutes, presence). */
    wsr_namespace defaults;
    const wsr_namespace *namespaces;
    uint32_t nnamespaces;
    /* Token buckets per connection: messages and bytes a second with their bursts, and
     * publish messages a second. Over a bucket: rate_limited with retryAfterMs, not acted
     * on, and counted as a bad message. 0: no limit. */
    uint32_t rate_messages, burst_messages;
    uint64_t rate_bytes, burst_bytes;
    uint32_t rate_publish, burst_publish;
    /* Upgrades a second per client address with their burst; more get 429. 0: no limit. */
    uint32_t rate_handshakes, burst_handshakes;
    /* Authentication. With none of users_file, auth_user, jwt_secret, jwt_public_key set,
     * every client is anonymous. */
    bool auth_required;        /* anonymous upgrades get 401 */
    uint64_t auth_timeout_ms;  /* >0: anonymous connections must send `auth` in time (4001) */
    const char *users_file;    /* "user:crypt-hash" lines (htpasswd -B), re-read on reload */
    const char *auth_user;     /* one user and password (from the environment, typically) */
    const char *auth_password;
    const char *jwt_secret;     /* HS256/384/512 */
    const char *jwt_public_key; /* PEM file: RS256/384/512, ES256/384/512 */
    const char *jwt_audience;   /* required "aud" when set */
    const char *jwt_issuer;     /* required "iss" when set */
    /* Several nodes (docs/scaling.md): "redis://[user:pass@]host:port/db" or
     * "unix:///path[?db=N]" makes Redis the bus every publication, direct message,
     * presence change and backend disconnect goes through, with the channels' history kept
     * there. NULL or "": the in-process broker (one node). A bad URL: wsr_messaging_new
     * answers NULL and the log says why. Not changed by wsr_messaging_update. */
    const char *broker;
    /* Bytes of commands that may wait for Redis's answers (a slow or stopped Redis); past
     * them operations that need the bus answer unavailable (HTTP 503) at once. Default 8 MiB
     * (0, or a struct from before this field: the same). */
    uint64_t broker_queue;
} wsr_messaging_options;

void wsr_messaging_options_default(wsr_messaging_options *o);

/* Serves the protocol on path. NULL when out of memory, an option is wrong (the log
 * says which), or the path is taken. */
wsr_messaging *wsr_messaging_new(struct uv_loop_s *loop, wsr_server *srv, const char *path,
                                 const wsr_messaging_options *o);
/* Serves the backend HTTP API under prefix (e.g. "/api/"). Requests must carry
 * "Authorization: Bearer KEY" with one of keys (NULL-terminated, kept by the caller);
 * with no key at all every request is answered 403, so the API is never open by
 * accident. WSR_OK or the error of wsr_server_http. */
int wsr_messaging_api(wsr_messaging *m, const char *prefix, const char *const *keys);
/* Re-reads the users file and the JWT public key (SIGHUP). WSR_OK, or an error with the
 * old ones kept. */
int wsr_messaging_reload(wsr_messaging *m);
/* Applies new options to a running layer (a reloaded configuration): rate limits,
 * strikes, authentication (sources re-read), namespaces and channel defaults (their
 * permissions at once, their history for channels made from now on). max_message,
 * max_channels and broker stay as they were. All or nothing: WSR_EINVAL (logged) keeps
 * the old. */
int wsr_messaging_update(wsr_messaging *m, const wsr_messaging_options *o);
/* Stops timers; the memory goes from the loop, after close callbacks (run the loop
 * afterwards, as for wsr_server_free). Call once the server is freed. */
void wsr_messaging_free(wsr_messaging *m);

/* What the layer holds now, and counts since it started (for metrics and status pages).
 * A sized struct: set size to sizeof before the call; fields past it are not written. */
typedef struct wsr_messaging_stats {
    size_t size;
    uint64_t clients;          /* open connections */
    uint64_t authenticated;    /* of which authenticated */
    uint64_t channels;
    uint64_t subscriptions;
    uint64_t history_entries;  /* publications held for recovery */
    uint64_t history_bytes;
    uint64_t publications;     /* made, by clients and the backend */
    uint64_t deliveries;       /* publications queued to subscribers */
    uint64_t direct_messages;
    uint64_t bad_messages;     /* answered with an error envelope */
    uint64_t rate_limited;     /* messages refused over a rate */
    uint64_t handshakes_limited; /* upgrades answered 429 */
    uint64_t auth_failures;    /* upgrades answered 401, and auth messages refused */
    uint64_t forbidden;        /* channel operations refused by a namespace's rule */
    uint64_t api_requests;     /* backend HTTP API calls */
    /* With a broker (options.broker): 1 while both connections to Redis are up, else 0;
     * 0 without one. */
    uint64_t broker_up;
    uint64_t broker_reconnects; /* connections to Redis made again after one was lost */
    uint64_t broker_errors;     /* commands Redis failed or never answered, and operations
                                   refused (unavailable) while it was down */
} wsr_messaging_stats;
void wsr_messaging_get_stats(const wsr_messaging *m, wsr_messaging_stats *out);

/* A channel and its figures, as wsr_messaging_top_channels gives them. name points into
 * the layer and is valid until the loop runs again (a channel can go with its last
 * subscriber and its history). */
typedef struct wsr_messaging_channel {
    const char *name;
    size_t name_len;
    uint64_t subscribers;
    uint64_t offset; /* of the channel's last publication */
} wsr_messaging_channel;
/* The channels with the most subscribers, most first (ties: the higher offset first),
 * at most n of them, into out; returns how many it wrote. Costs one pass over the
 * channels (times n at worst), so a status page asks once a second, not per message. */
size_t wsr_messaging_top_channels(const wsr_messaging *m, wsr_messaging_channel *out, size_t n);

/* A client's message of a type the protocol does not define, for an embedder's handler.
 * Views are valid during the call. */
typedef struct wsr_messaging_message {
    wsr_conn_id conn;
    const char *client_id; /* the sender's client id */
    const char *user;      /* its authenticated user, or NULL */
    wsr_str type, id, channel, payload; /* payload: raw JSON text; absent fields: ptr NULL */
} wsr_messaging_message;

typedef void (*wsr_messaging_handler)(wsr_messaging *m, const wsr_messaging_message *msg, void *user);
/* Messages of this type (not one the protocol defines) go to h. WSR_EEXIST when the
 * type has a handler or is the protocol's, WSR_ENOMEM. */
int wsr_messaging_on(wsr_messaging *m, const char *type, wsr_messaging_handler h, void *user);
/* Answers msg (its id becomes the correlationId) with a message of this type and payload
 * (JSON text, validated: WSR_EINVAL when it is not JSON; NULL: no payload). */
int wsr_messaging_reply(wsr_messaging *m, const wsr_messaging_message *msg, const char *type, const char *payload,
                        size_t len);
/* Answers msg with an error envelope {code, message}. */
int wsr_messaging_error(wsr_messaging *m, const wsr_messaging_message *msg, const char *code, const char *message);
/* Publishes on a channel as the backend does (no "from"). *offset gets the offset when
 * not NULL (with a broker the offset is given out by Redis later: *offset is 0, and
 * WSR_ESTATE says the broker is down). WSR_EINVAL for a bad channel name or payload, WSR_ETOOBIG when the envelope
 * would pass max_message, WSR_ENOMEM. */
int wsr_messaging_publish(wsr_messaging *m, const char *channel, const char *event, const char *payload, size_t len,
                          uint64_t *offset);
/* A direct message to a client by id, as the backend sends it. WSR_ENOCONN when no
 * such client, WSR_EINVAL for a bad payload, WSR_ETOOBIG when too large. With a broker, a
 * client of another node is reached through Redis without an answer (WSR_OK once handed
 * over; WSR_ESTATE while the broker is down). */
int wsr_messaging_send(wsr_messaging *m, const char *client_id, const char *event, const char *payload, size_t len);

#ifdef __cplusplus
}
#endif

#endif
