#include "app/config.h"

#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

// K_BYTES is a number that also takes a k/m/g suffix. K_KEYED_* go to cfg->keyed.
// K_ENUM: one of names, stored as an int. K_BOOL: yes/no. K_STRING: kept as given.
// K_LIST, K_SUBPROTO, K_NAMESPACE: repeatable. K_CONFIG: --config, read before the rest.
enum opt_kind {
    K_NUMBER, K_BYTES, K_ENUM, K_BOOL, K_STRING, K_KEYED_NUMBER, K_KEYED_BYTES, K_LIST, K_SUBPROTO,
    K_NAMESPACE, K_CONFIG
};

struct option_def {
    const char *name;  // flag without "--", and the config file's key
    const char *env;
    opt_kind kind;
    size_t offset;     // into config; K_KEYED_*: the wsr_option
    size_t width;      // numbers, enums, bools: size of the field
    uint64_t min, max; // numbers: accepted range
    const char *const *names; // K_ENUM: the values' names, indexed by value, NULL-terminated
    const char *arg;   // NULL: no flag, only the environment and the file (a password on a
                       // command line shows in ps)
    const char *help;
};

#define FIELD(f, lo, hi, names) offsetof(config, f), sizeof(((config *)nullptr)->f), (lo), (hi), (names)
#define NUM(f, lo, hi) FIELD(f, lo, hi, nullptr)
#define ENUM(f, names) FIELD(f, 0, 0, names)
#define FLAG(f) FIELD(f, 0, 0, nullptr)
#define KEY(key, lo, hi) (size_t)(key), 8, (lo), (hi), nullptr
#define LIST(f) offsetof(config, f), 0, 0, 0, nullptr
static const uint64_t MS_MAX = WSR_MAX_TIMEOUT_MS;
// Token buckets hold thousandths of a byte in 64 bits: 1 TiB a second keeps them far
// from overflowing.
static const uint64_t RATE_BYTES_MAX = 1ull << 40;
static const uint64_t U32 = UINT32_MAX;

static const char *const LOG_NAMES[] = {"error", "warn", "info", "debug", nullptr};
static const char *const FORMAT_NAMES[] = {"text", "json", nullptr};
static const char *const DEFLATE_NAMES[] = {"shared", "off", "dedicated", nullptr};
static const char *const POLICY_NAMES[] = {"close", "drop", nullptr};
static const char *const ALLOW_NAMES[] = {"anyone", "users", "granted", "backend", nullptr};
static_assert(WSR_LOG_JSON == 1 && sizeof(wsr_log_format) == sizeof(int) && WSR_LOG_DEBUG == 3 && WSR_DEFLATE_DEDICATED == 2 && WSR_SLOW_DROP == 1 && WSR_ALLOW_BACKEND == 3,
              "the names above are indexed by value");

// One table drives parsing, the environment, the config file and --help, so they cannot
// disagree.
static const option_def OPTIONS[] = {
    {"config", "WSR_CONFIG", K_CONFIG, FLAG(config_file), "FILE",
     "read settings from this INI file first; the environment and flags override it (docs/configuration.md)"},
    {"listen", "WSR_LISTEN", K_LIST, LIST(listen), "HOST:PORT",
     "address to listen on; IPv6 as [::1]:8080; repeat for several (default 127.0.0.1:8080)"},
    {"listen-proxy", "WSR_LISTEN_PROXY", K_LIST, LIST(listen_proxy), "HOST:PORT",
     "address to listen on for a load balancer that sends the PROXY protocol (v1 or v2) first; repeatable"},
    {"api-key", "WSR_API_KEYS", K_LIST, LIST(api_keys), "KEY",
     "key of the backend HTTP API under /api/ (Authorization: Bearer KEY); repeatable for rotation. "
     "Without one the API answers 403"},
    {"listen-tls", "WSR_LISTEN_TLS", K_LIST, LIST(listen_tls), "HOST:PORT",
     "address to listen on with TLS (wss://, https://); repeatable; needs --tls-cert and --tls-key"},
    {"tls-cert", "WSR_TLS_CERTS", K_LIST, LIST(tls_certs), "FILE",
     "certificate chain (PEM) for TLS listeners; repeat with --tls-key for several, chosen by SNI; "
     "re-read on SIGHUP"},
    {"tls-key", "WSR_TLS_KEYS", K_LIST, LIST(tls_keys), "FILE", "private key (PEM) of the --tls-cert in the same place"},
    {"reuseport", "WSR_REUSEPORT", K_BOOL, FIELD(reuseport, 0, 0, nullptr), "yes|no",
     "SO_REUSEPORT on every listener, so several processes share the port (default no)"},
    {"allowed-origin", "WSR_ALLOWED_ORIGINS", K_LIST, LIST(origins), "ORIGIN",
     "accept browser upgrades only from this Origin (https://app.example.com, https://*.example.com, *); "
     "repeatable; others get 403. Default: any"},
    {"trusted-proxy", "WSR_TRUSTED_PROXIES", K_LIST, LIST(trusted), "CIDR",
     "a proxy (10.0.0.0/8, ::1) whose X-Forwarded-For / Forwarded names the client; repeatable"},
    {"max-body", "WSR_MAX_BODY", K_KEYED_BYTES, KEY(WSR_OPT_MAX_BODY, 0, UINT32_MAX), "BYTES",
     "largest HTTP request body; longer gets 413 (default 1m)"},
    {"http-idle-timeout", "WSR_HTTP_IDLE_TIMEOUT", K_KEYED_NUMBER, KEY(WSR_OPT_HTTP_IDLE_TIMEOUT_MS, 1, MS_MAX), "MS",
     "close an HTTP keep-alive connection idle this long between requests (default 5000)"},
    {"read-buffer", "WSR_READ_BUFFER", K_KEYED_BYTES, KEY(WSR_OPT_READ_BUFFER, 16384, 16u << 20), "BYTES",
     "the one buffer all connections read into in turn; smaller saves memory (default 128k, 16k .. 16m)"},
    {"http-max-requests", "WSR_HTTP_MAX_REQUESTS", K_KEYED_NUMBER, KEY(WSR_OPT_HTTP_MAX_REQUESTS, 1, UINT32_MAX), "N",
     "requests one HTTP connection may make before it is closed (default 1000)"},
    {"max-message", "WSR_MAX_MESSAGE", K_BYTES, NUM(opts.max_message, 1, UINT32_MAX - 64), "BYTES",
     "largest message accepted, all fragments together; bigger gets close 1009 (default 1048576)"},
    {"max-header", "WSR_MAX_HEADER", K_BYTES, NUM(opts.max_header, 256, 65535), "BYTES",
     "largest upgrade request head; bigger gets 431 (default 8192, 256 .. 65535)"},
    {"max-connections", "WSR_MAX_CONNECTIONS", K_NUMBER, NUM(opts.max_connections, 0, UINT32_MAX), "N",
     "open WebSocket connections; more get 503 (default: from the file descriptor limit)"},
    {"max-handshakes", "WSR_MAX_HANDSHAKES", K_KEYED_NUMBER, KEY(WSR_OPT_MAX_HANDSHAKES, 1, UINT32_MAX), "N",
     "connections still sending their upgrade request; more are answered 503 at once (default 1024)"},
    {"max-memory", "WSR_MAX_MEMORY", K_KEYED_BYTES, KEY(WSR_OPT_MAX_MEMORY, 1, UINT64_MAX >> 1), "BYTES",
     "bytes held for peers (incomplete messages, unsent copies); the connection that would cross it is "
     "closed with 1013; at least --max-message (default 64m, or twice --max-message if more)"},
    {"max-backpressure", "WSR_MAX_BACKPRESSURE", K_BYTES, NUM(opts.max_backpressure, 1, UINT32_MAX - 64), "BYTES",
     "unsent bytes per connection at which the slow-consumer policy applies; reading from it pauses at half "
     "(default 1048576)"},
    {"backpressure-policy", "WSR_BACKPRESSURE_POLICY", K_ENUM, ENUM(opts.slow_policy, POLICY_NAMES), "close|drop",
     "for a receiver at --max-backpressure: close it with 1008, or drop messages for it (default close)"},
    {"slow-timeout", "WSR_SLOW_TIMEOUT", K_KEYED_NUMBER, KEY(WSR_OPT_SLOW_TIMEOUT_MS, 0, MS_MAX), "MS",
     "close with 1008 a receiver whose unsent output stays over half --max-backpressure this long; 0 never "
     "(default 10000)"},
    {"handshake-timeout", "WSR_HANDSHAKE_TIMEOUT", K_NUMBER, NUM(opts.handshake_timeout_ms, 0, MS_MAX), "MS",
     "time allowed to send the upgrade request (default 10000)"},
    {"close-timeout", "WSR_CLOSE_TIMEOUT", K_NUMBER, NUM(opts.close_timeout_ms, 0, MS_MAX), "MS",
     "time allowed for a peer to answer our close frame (default 5000)"},
    {"shutdown-timeout", "WSR_SHUTDOWN_TIMEOUT", K_NUMBER, NUM(opts.shutdown_timeout_ms, 0, MS_MAX), "MS",
     "on SIGTERM/SIGINT, time allowed for all connections to close (default 5000)"},
    {"ping-interval", "WSR_PING_INTERVAL", K_NUMBER, NUM(opts.ping_interval_ms, 0, MS_MAX), "MS",
     "ping a connection after this much silence; 0 never (default 30000)"},
    {"pong-timeout", "WSR_PONG_TIMEOUT", K_NUMBER, NUM(opts.pong_timeout_ms, 0, MS_MAX), "MS",
     "after a ping, cut a connection silent this long (stale); 0 never (default 30000)"},
    {"idle-timeout", "WSR_IDLE_TIMEOUT", K_NUMBER, NUM(opts.idle_timeout_ms, 0, MS_MAX), "MS",
     "close with 1001 a connection with no message either way this long; 0 off (default 0)"},
    {"subprotocol", "WSR_SUBPROTOCOLS", K_SUBPROTO, FIELD(subprotocols, 0, 0, nullptr), "NAME",
     "a supported subprotocol; repeat for several (env: comma-separated). Default: none"},
    {"deflate", "WSR_DEFLATE", K_ENUM, ENUM(opts.deflate, DEFLATE_NAMES), "off|shared|dedicated",
     "permessage-deflate: shared streams for all connections (memory flat), per-connection streams with "
     "context takeover, or off (default shared)"},
    {"deflate-window-bits", "WSR_DEFLATE_WINDOW_BITS", K_NUMBER, NUM(opts.deflate_window_bits, 8, 15), "8..15",
     "window of our deflater (default 15)"},
    {"deflate-client-window-bits", "WSR_DEFLATE_CLIENT_WINDOW_BITS", K_NUMBER, NUM(opts.deflate_client_window_bits, 8, 15), "8..15",
     "window asked of clients that offer client_max_window_bits (default 15)"},
    {"deflate-mem-level", "WSR_DEFLATE_MEM_LEVEL", K_NUMBER, NUM(opts.deflate_mem_level, 1, 9), "1..9",
     "zlib memLevel of our deflaters (default 8)"},
    {"deflate-level", "WSR_DEFLATE_LEVEL", K_NUMBER, NUM(opts.deflate_level, 1, 9), "1..9",
     "zlib compression level (default 1: fastest)"},
    {"deflate-threshold", "WSR_DEFLATE_THRESHOLD", K_BYTES, NUM(opts.deflate_threshold, 0, UINT32_MAX), "BYTES",
     "messages shorter than this are sent uncompressed (default 64)"},
    {"log-level", "WSR_LOG_LEVEL", K_ENUM, ENUM(log_level, LOG_NAMES), "LEVEL", "error, warn, info or debug (default info)"},
    {"log-format", "WSR_LOG_FORMAT", K_ENUM, ENUM(log_format, FORMAT_NAMES), "text|json",
     "log lines as text, or as one JSON object per line {\"ts\",\"level\",\"msg\"} (default text)"},
    // The messaging layer on /ws: defaults from wsr_messaging_options_default, shown by --help.
    {"max-channels", "WSR_MAX_CHANNELS", K_NUMBER, NUM(msg.max_channels, 1, U32), "N",
     "channels at once on /ws; more: subscribe and publish answer unavailable"},
    {"history-size", "WSR_HISTORY_SIZE", K_NUMBER, NUM(msg.defaults.history_size, 0, 1000000), "N",
     "publications a channel keeps for recovery; 0 none (channels outside every namespace)"},
    {"history-ttl", "WSR_HISTORY_TTL", K_NUMBER, NUM(msg.defaults.history_ttl_ms, 1, MS_MAX), "MS",
     "how long a channel keeps a publication for recovery (channels outside every namespace)"},
    {"history-memory", "WSR_HISTORY_MEMORY", K_BYTES, NUM(msg.history_memory, 0, UINT64_MAX >> 1), "BYTES",
     "bytes all channel histories together hold at most"},
    {"presence", "WSR_PRESENCE", K_BOOL, FLAG(msg.defaults.presence), "yes|no",
     "presence queries answered (else forbidden) on channels outside every namespace"},
    {"join-leave", "WSR_JOIN_LEAVE", K_BOOL, FLAG(msg.defaults.join_leave), "yes|no",
     "subscribers hear join and leave on channels outside every namespace"},
    {"subscribe", "WSR_SUBSCRIBE", K_ENUM, ENUM(msg.defaults.subscribe, ALLOW_NAMES), "anyone|users|granted|backend",
     "who may subscribe to channels outside every namespace: every client, authenticated ones, those whose "
     "token grants the channel, or nobody"},
    {"publish", "WSR_PUBLISH", K_ENUM, ENUM(msg.defaults.publish, ALLOW_NAMES), "anyone|users|granted|backend",
     "who may publish on channels outside every namespace (backend: only the HTTP API)"},
    {"namespace", "WSR_NAMESPACES", K_NAMESPACE, LIST(namespaces), "SPEC",
     "channels NAME:… get their own settings; SPEC is NAME:key=value,… with keys subscribe, publish, "
     "history-size, history-ttl, presence, join-leave (others: the channel defaults). Repeatable, at most 32 "
     "(env: separated by ';')"},
    {"max-strikes", "WSR_MAX_STRIKES", K_NUMBER, NUM(msg.max_strikes, 1, U32), "N",
     "bad or rate-limited messages in a row before the connection is closed with 1008"},
    {"rate-messages", "WSR_RATE_MESSAGES", K_NUMBER, NUM(msg.rate_messages, 0, U32), "N",
     "messages a second per connection on /ws; 0 no limit"},
    {"burst-messages", "WSR_BURST_MESSAGES", K_NUMBER, NUM(msg.burst_messages, 0, U32), "N",
     "messages a connection may send at once above --rate-messages"},
    {"rate-bytes", "WSR_RATE_BYTES", K_BYTES, NUM(msg.rate_bytes, 0, RATE_BYTES_MAX), "BYTES",
     "bytes a second per connection on /ws; 0 no limit"},
    {"burst-bytes", "WSR_BURST_BYTES", K_BYTES, NUM(msg.burst_bytes, 0, RATE_BYTES_MAX), "BYTES",
     "bytes a connection may send at once above --rate-bytes"},
    {"rate-publish", "WSR_RATE_PUBLISH", K_NUMBER, NUM(msg.rate_publish, 0, U32), "N",
     "publish messages a second per connection; 0 no limit"},
    {"burst-publish", "WSR_BURST_PUBLISH", K_NUMBER, NUM(msg.burst_publish, 0, U32), "N",
     "publish messages a connection may send at once above --rate-publish"},
    {"rate-handshakes", "WSR_RATE_HANDSHAKES", K_NUMBER, NUM(msg.rate_handshakes, 0, U32), "N",
     "upgrades to /ws a second per client address, more get 429; 0 no limit"},
    {"burst-handshakes", "WSR_BURST_HANDSHAKES", K_NUMBER, NUM(msg.burst_handshakes, 0, U32), "N",
     "upgrades one address may make at once above --rate-handshakes"},
    {"auth-required", "WSR_AUTH_REQUIRED", K_BOOL, FLAG(msg.auth_required), "yes|no",
     "anonymous upgrades to /ws get 401"},
    {"auth-timeout", "WSR_AUTH_TIMEOUT", K_NUMBER, NUM(msg.auth_timeout_ms, 0, MS_MAX), "MS",
     "anonymous connections must send auth this soon or be closed with 4001; 0 never"},
    {"users-file", "WSR_USERS_FILE", K_STRING, FLAG(msg.users_file), "FILE",
     "users and passwords as user:crypt-hash lines (htpasswd -B); re-read on SIGHUP"},
    {"jwt-secret", "WSR_JWT_SECRET", K_STRING, FLAG(msg.jwt_secret), "SECRET",
     "key of HS256/384/512 tokens; give it in the environment or the config file to keep it out of ps"},
    {"jwt-public-key", "WSR_JWT_PUBLIC_KEY", K_STRING, FLAG(msg.jwt_public_key), "FILE",
     "PEM public key of RS256/384/512 and ES256/384/512 tokens"},
    {"jwt-audience", "WSR_JWT_AUDIENCE", K_STRING, FLAG(msg.jwt_audience), "AUD", "the \"aud\" tokens must carry"},
    {"jwt-issuer", "WSR_JWT_ISSUER", K_STRING, FLAG(msg.jwt_issuer), "ISS", "the \"iss\" tokens must carry"},
    {"auth-user", "WSR_AUTH_USER", K_STRING, FLAG(msg.auth_user), nullptr,
     "a single user allowed on /ws, with WSR_AUTH_PASSWORD"},
    {"auth-password", "WSR_AUTH_PASSWORD", K_STRING, FLAG(msg.auth_password), nullptr, "the password of WSR_AUTH_USER"},
    {"broker", "WSR_BROKER", K_STRING, FLAG(msg.broker), "URL",
     "several nodes share channels, history and presence through Redis: redis://[user:pass@]host:port/db or "
     "unix:///path (docs/scaling.md); default none (one node)"},
    {"broker-queue", "WSR_BROKER_QUEUE", K_BYTES, NUM(msg.broker_queue, 1024, UINT64_MAX >> 1), "BYTES",
     "commands that may wait for a slow or stopped Redis; past them publications and direct messages "
     "answer unavailable (HTTP 503) at once"},
};

static const size_t NOPTIONS = sizeof OPTIONS / sizeof OPTIONS[0];
static const size_t NS_BASE = offsetof(config, msg.defaults);

// The channel defaults (--subscribe, --history-size, …) are also a namespace's keys: the
// same entry, applied to another wsr_namespace.
static bool is_namespace_key(const option_def &o) {
    return o.kind != K_KEYED_NUMBER && o.kind != K_KEYED_BYTES && o.offset >= NS_BASE &&
           o.offset < NS_BASE + sizeof(wsr_namespace);
}

static bool in_messaging(const option_def &o) {
    return o.kind != K_KEYED_NUMBER && o.kind != K_KEYED_BYTES && o.offset >= offsetof(config, msg) &&
           o.offset < offsetof(config, msg) + sizeof(wsr_messaging_options);
}

static const option_def *find_option(const char *name, size_t len) {
    for (const option_def &d : OPTIONS)
        if (strlen(d.name) == len && strncmp(d.name, name, len) == 0) return &d;
    return nullptr;
}

static void config_defaults(config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    wsr_options_default(&cfg->opts);
    wsr_messaging_options_default(&cfg->msg);
    cfg->log_level = WSR_LOG_INFO;
}

// A value as --help shows it: byte counts with the largest exact suffix.
static void format_number(uint64_t v, bool bytes, char *buf, size_t size) {
    const char *suffix = "kmg";
    int i = -1;
    while (bytes && v && i < 2 && v % 1024 == 0) v /= 1024, i++;
    if (i >= 0)
        snprintf(buf, size, "%llu%c", (unsigned long long)v, suffix[i]);
    else
        snprintf(buf, size, "%llu", (unsigned long long)v);
}

// The value of the field p of option o (in a config, or in a wsr_namespace).
static void format_field(const char *p, const option_def &o, char *buf, size_t size) {
    uint64_t v = 0;
    if (o.kind == K_NUMBER || o.kind == K_BYTES || o.kind == K_ENUM || o.kind == K_BOOL)
        memcpy(&v, p, o.width); // little-endian: the low bytes of v
    if (o.kind == K_ENUM) {
        snprintf(buf, size, "%s", o.names[v]);
    } else if (o.kind == K_BOOL) {
        snprintf(buf, size, "%s", v & 0xff ? "yes" : "no");
    } else if (o.kind == K_NUMBER || o.kind == K_BYTES) {
        format_number(v, o.kind == K_BYTES, buf, size);
    } else {
        snprintf(buf, size, "none");
    }
}

static void format_value(const config *cfg, const option_def &o, char *buf, size_t size) {
    format_field((const char *)cfg + o.offset, o, buf, size);
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: wsreactor [OPTION]...\n"
            "A WebSocket server (RFC 6455). Endpoints: /echo sends every message back;\n"
            "/broadcast sends every message to every client connected to it; /ws speaks the\n"
            "JSON messaging protocol (channels, recovery, direct messages; docs/messaging.md)\n"
            "with its backend HTTP API under /api/ (--api-key); GET /healthz answers\n"
            "{\"status\":\"ok\"}; GET /metrics gives Prometheus metrics.\n"
            "Settings come from built-in defaults < the --config file < the environment < flags.\n\n");
    config defaults;
    config_defaults(&defaults);
    for (const option_def &o : OPTIONS) {
        char flag[64], def[48] = "";
        if (o.arg)
            snprintf(flag, sizeof flag, "--%s %s", o.name, o.arg);
        else
            snprintf(flag, sizeof flag, "(no flag) %s", o.name);
        // The older options say their default in their help; the messaging layer's come
        // from wsr_messaging_options_default, so the two cannot disagree.
        if (in_messaging(o) && o.kind != K_STRING) {
            char v[24];
            format_value(&defaults, o, v, sizeof v);
            snprintf(def, sizeof def, " (default %s)", v);
        }
        fprintf(f, "  %-28s %s%s\n  %-28s env %s\n", flag, o.help, def, "", o.env);
    }
    fprintf(f, "  %-28s %s\n", "--check-config",
            "load the settings and check them as the server would (addresses, certificates, keys, users "
            "file, namespaces) without listening; print \"configuration OK\" and exit 0, or the errors and exit 2");
    fprintf(f, "  %-28s %s\n", "--print-config",
            "print the effective settings as a config file (secrets as <set>) and exit");
    fprintf(f, "  %-28s %s\n  %-28s %s\n", "--help", "show this help and exit", "--version",
            "show the version and exit");
}

// Decimal, with an optional binary suffix k, m or g for byte counts.
static bool parse_number(const char *s, bool suffix, uint64_t max, uint64_t *out) {
    if (!*s || *s == '-') return false;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s) return false;
    if (suffix && *end) {
        int shift = 0;
        switch (*end | 0x20) {
        case 'k': shift = 10; break;
        case 'm': shift = 20; break;
        case 'g': shift = 30; break;
        default: return false;
        }
        if (v > (max >> shift)) return false;
        v <<= shift;
        end++;
    }
    if (*end || v > max) return false;
    *out = v;
    return true;
}

// A copy that lives until config_free: values of the file (whose buffer inih reuses) and
// of the environment (split in place).
static char *keep(config *cfg, const char *s, size_t len) {
    config_string *c = (config_string *)malloc(sizeof *c + len + 1);
    if (!c) return nullptr;
    memcpy(c->text, s, len);
    c->text[len] = 0;
    c->next = cfg->strings;
    cfg->strings = c;
    return c->text;
}

void config_free(config *cfg) {
    while (cfg->strings) {
        config_string *next = cfg->strings->next;
        free(cfg->strings);
        cfg->strings = next;
    }
}

// The levels settings come from, lowest first.
enum level : uint8_t { L_DEFAULT, L_FILE, L_ENV, L_FLAG };

struct loader {
    config *cfg;
    level at;
    level given[NOPTIONS]; // the level that last gave each repeatable option
    const char *why;       // set by apply() when "invalid value" alone would not say enough
};

// A repeatable option given at a higher level replaces the lower level's list: a flag's
// --listen means "listen here", not "here too".
static void begin_repeat(loader *ld, const option_def &o) {
    level &given = ld->given[&o - OPTIONS];
    if (given >= ld->at) return;
    given = ld->at;
    config *cfg = ld->cfg;
    if (o.kind == K_LIST) ((config_list *)((char *)cfg + o.offset))->n = 0;
    if (o.kind == K_SUBPROTO) {
        cfg->nsubprotocols = 0;
        cfg->subprotocols[0] = nullptr;
        cfg->opts.subprotocols = nullptr;
    }
    if (o.kind == K_NAMESPACE) cfg->nnamespaces = 0;
}

static bool namespace_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("_.@/-", c);
}

// A new namespace named name[0..len) (copied), its keys unset. NULL with ld->why set when
// the name is bad, taken, or one too many.
static wsr_namespace *namespace_add(loader *ld, const option_def &o, const char *name, size_t len) {
    config *cfg = ld->cfg;
    begin_repeat(ld, o);
    if (len == 0 || len > 64) {
        ld->why = "a namespace name has 1 to 64 characters";
        return nullptr;
    }
    for (size_t i = 0; i < len; i++)
        if (!namespace_char(name[i])) {
            ld->why = "a namespace name has only A-Z a-z 0-9 _ . @ / -";
            return nullptr;
        }
    for (int i = 0; i < cfg->nnamespaces; i++)
        if (strlen(cfg->namespaces[i].name) == len && memcmp(cfg->namespaces[i].name, name, len) == 0) {
            ld->why = "that namespace is already defined";
            return nullptr;
        }
    if (cfg->nnamespaces == CONFIG_MAX_NAMESPACES) {
        ld->why = "at most 32 namespaces";
        return nullptr;
    }
    const char *copy = keep(cfg, name, len);
    if (!copy) return nullptr;
    wsr_namespace *ns = &cfg->namespaces[cfg->nnamespaces];
    cfg->namespace_keys[cfg->nnamespaces++] = 0;
    *ns = cfg->msg.defaults;
    ns->name = copy;
    return ns;
}

static bool list_add(config_list *l, const char *v) {
    if (l->n == CONFIG_MAX_LIST || !*v) return false;
    l->items[l->n++] = v;
    return true;
}

static bool add_subprotocol(config *cfg, const char *name) {
    if (cfg->nsubprotocols == CONFIG_MAX_SUBPROTOCOLS || !*name) return false;
    cfg->subprotocols[cfg->nsubprotocols++] = name;
    cfg->subprotocols[cfg->nsubprotocols] = nullptr;
    cfg->opts.subprotocols = cfg->subprotocols;
    return true;
}

static bool apply(loader *ld, const option_def &o, const char *val, wsr_namespace *ns);

// NAME or NAME:key=value,key=value (the value is a copy of ours, cut in place).
static bool apply_namespace_spec(loader *ld, const option_def &o, char *spec) {
    char *colon = strchr(spec, ':');
    size_t len = colon ? (size_t)(colon - spec) : strlen(spec);
    wsr_namespace *ns = namespace_add(ld, o, spec, len);
    if (!ns) return false;
    if (!colon) return true;
    for (char *save = nullptr, *kv = strtok_r(colon + 1, ",", &save); kv; kv = strtok_r(nullptr, ",", &save)) {
        char *eq = strchr(kv, '=');
        const option_def *k = eq ? find_option(kv, (size_t)(eq - kv)) : nullptr;
        if (!k || !is_namespace_key(*k)) {
            ld->why = "a namespace's keys are subscribe, publish, history-size, history-ttl, presence, join-leave";
            return false;
        }
        if (!apply(ld, *k, eq + 1, ns)) {
            if (!ld->why) ld->why = k->name; // which key's value was wrong
            return false;
        }
    }
    return true;
}

// Calls add for each value: one from a flag or the file, a list from the environment
// (split at delims in a copy).
template <typename F> static bool each_value(loader *ld, const char *val, const char *delims, F add) {
    if (ld->at != L_ENV) return add((char *)val);
    char *copy = keep(ld->cfg, val, strlen(val));
    if (!copy) return false;
    for (char *save = nullptr, *t = strtok_r(copy, delims, &save); t; t = strtok_r(nullptr, delims, &save))
        if (!add(t)) return false;
    return true;
}

// Sets option o from text val at level ld->at; for a namespace key, in ns when given
// (else in the channel defaults). Values from the file and the environment are already
// copies of ours.
static bool apply(loader *ld, const option_def &o, const char *val, wsr_namespace *ns) {
    config *cfg = ld->cfg;
    char *field = ns ? (char *)ns + (o.offset - NS_BASE) : (char *)cfg + o.offset;
    if (ns) cfg->namespace_keys[ns - cfg->namespaces] |= 1ull << (o.offset - NS_BASE);
    uint64_t n;
    switch (o.kind) {
    case K_LIST: {
        begin_repeat(ld, o);
        config_list *l = (config_list *)field;
        return each_value(ld, val, ", ", [&](char *v) { return list_add(l, v); });
    }
    case K_SUBPROTO:
        begin_repeat(ld, o);
        return each_value(ld, val, ", ", [&](char *v) { return add_subprotocol(cfg, v); });
    case K_NAMESPACE: {
        // A spec has commas of its own: the environment separates specs with ';'.
        if (ld->at == L_FLAG) val = keep(cfg, val, strlen(val));
        return val && each_value(ld, val, "; \t\n", [&](char *v) { return apply_namespace_spec(ld, o, v); });
    }
    case K_BOOL: {
        static const char *const yes[] = {"yes", "on", "true", "1"}, *const no[] = {"no", "off", "false", "0"};
        for (int i = 0; i < 4; i++) {
            if (strcasecmp(val, yes[i]) == 0 || strcasecmp(val, no[i]) == 0) {
                *(bool *)field = strcasecmp(val, yes[i]) == 0;
                return true;
            }
        }
        return false;
    }
    case K_ENUM:
        for (int i = 0; o.names[i]; i++)
            if (strcasecmp(val, o.names[i]) == 0) {
                static_assert(sizeof(wsr_allow) == sizeof(int) && sizeof(wsr_log_level) == sizeof(int));
                memcpy(field, &i, sizeof i);
                return true;
            }
        return false;
    case K_STRING:
        if (!*val) return false;
        *(const char **)field = val;
        return true;
    case K_CONFIG:
        return true; // read first, by config_load
    case K_KEYED_NUMBER:
    case K_KEYED_BYTES:
        if (!parse_number(val, o.kind == K_KEYED_BYTES, o.max, &n) || n < o.min) return false;
        cfg->keyed[o.offset] = n;
        cfg->keyed_set[o.offset] = true;
        return true;
    case K_NUMBER:
    case K_BYTES:
        if (!parse_number(val, o.kind == K_BYTES, o.max, &n) || n < o.min) return false;
        if (o.width == 8)
            *(uint64_t *)field = n;
        else if (o.width == 4)
            *(uint32_t *)field = (uint32_t)n;
        else
            *(uint8_t *)field = (uint8_t)n;
        return true;
    }
    return false;
}

// --- reporting -----------------------------------------------------------------------

static void (*reporter)(const char *line);

void config_set_reporter(void (*report)(const char *line)) { reporter = report; }

// One line about what is wrong: "wsreactor: ..." on stderr, or to the reporter.
__attribute__((format(printf, 1, 2))) static void report(const char *fmt, ...) {
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (reporter)
        reporter(line);
    else
        fprintf(stderr, "wsreactor: %s\n", line);
}

// --- the config file ---------------------------------------------------------------

struct file_state {
    loader *ld;
    const char *path;
    FILE *f;
    int line;         // of the line inih is working on (it reads one line per call)
    int section_line; // of the last [section] header
    bool too_long;
    int ns_line;      // the section_line of ns: another header begins another namespace
    wsr_namespace *ns;
    int error_at;   // 0, or the line inih was on at the first error the handler found
    int error_line; // and the line the message names (a section's header, say)
    char error[160];
};

// inih's reader: counts lines for the messages, refuses a line longer than its buffer
// (inih would cut it in two), and drops indentation, which inih would otherwise take
// for the continuation of the previous value.
static char *read_line(char *buf, int size, void *stream) {
    file_state *fs = (file_state *)stream;
    if (!fgets(buf, size, fs->f)) return nullptr;
    fs->line++;
    size_t n = strlen(buf);
    if (n && buf[n - 1] != '\n') {
        int c = getc(fs->f);
        if (c != EOF) {
            fs->too_long = true;
            return nullptr;
        }
    }
    size_t skip = strspn(buf, " \t");
    memmove(buf, buf + skip, n - skip + 1);
    if (buf[0] == '[') fs->section_line = fs->line;
    return buf;
}

static int file_error(file_state *fs, int line, const char *fmt, const char *a, const char *b) {
    if (!fs->error_at) {
        fs->error_at = fs->line;
        fs->error_line = line;
        snprintf(fs->error, sizeof fs->error, fmt, a, b);
    }
    return 0; // inih notes the line and goes on; the first error is the one reported
}

static int on_key(void *user, const char *section, const char *name, const char *value) {
    file_state *fs = (file_state *)user;
    loader *ld = fs->ld;
    if (fs->error_at) return 1;
    ld->why = nullptr;
    const option_def *o = find_option(name, strlen(name));
    const char *val = keep(ld->cfg, value, strlen(value));
    if (!val) return file_error(fs, fs->line, "out of memory%s%s", "", "");
    const char *ns_name = strncmp(section, "namespace", 9) == 0 && (section[9] == ' ' || section[9] == '\t')
                              ? section + 10 + strspn(section + 10, " \t")
                              : nullptr;
    wsr_namespace *ns = nullptr;
    if (ns_name) {
        if (fs->ns_line != fs->section_line) { // a new [namespace NAME] begins
            fs->ns_line = fs->section_line;
            fs->ns = namespace_add(ld, *find_option("namespace", 9), ns_name, strlen(ns_name));
            if (!fs->ns) return file_error(fs, fs->section_line, "[%s]: %s", section, ld->why ? ld->why : "");
        }
        if (!fs->ns) return 1; // its header was refused already
        if (!o || !is_namespace_key(*o))
            return file_error(fs, fs->line, "unknown key '%s' in [%s] (subscribe, publish, history-size, "
                                            "history-ttl, presence, join-leave)", name, section);
        ns = fs->ns;
    } else if (*section && strcmp(section, "server") != 0) {
        return file_error(fs, fs->section_line, "unknown section [%s] (server, namespace NAME)%s", section, "");
    } else if (!o) {
        return file_error(fs, fs->line, "unknown key '%s'%s", name, "");
    } else if (o->kind == K_CONFIG) {
        return file_error(fs, fs->line, "'%s' cannot be given in a config file%s", name, "");
    }
    if (!apply(ld, *o, val, ns)) {
        char detail[160];
        snprintf(detail, sizeof detail, "invalid value '%.60s' for %s (%s)", value, name, o->arg ? o->arg : "text");
        return file_error(fs, fs->line, ld->why ? "%s: %s" : "%s%s", detail, ld->why ? ld->why : "");
    }
    return 1;
}

static bool load_file(loader *ld, const char *path) {
    file_state fs = {};
    fs.ld = ld;
    fs.path = path;
    fs.f = fopen(path, "r");
    if (!fs.f) {
        report("%s: cannot read it: %s", path, strerror(errno));
        return false;
    }
    int r = ini_parse_stream(read_line, &fs, on_key, &fs);
    bool read_error = ferror(fs.f);
    int err = errno;
    fclose(fs.f);
    if (r > 0 && r == fs.error_at) {
        report("%s:%d: %s", path, fs.error_line, fs.error);
    } else if (r > 0) {
        // inih reports a line it could not read as key = value or [section]
        report("%s:%d: expected 'key = value' or '[section]'", path, r);
    } else if (fs.too_long) {
        report("%s:%d: line longer than %d characters", path, fs.line, INI_MAX_LINE - 2);
    } else if (read_error) {
        report("%s:%d: cannot read it: %s", path, fs.line + 1, strerror(err));
    } else if (r != 0) {
        report("%s: cannot read it", path);
    } else {
        return true;
    }
    return false;
}

// --- loading -------------------------------------------------------------------------

// The value of a flag argv[*i] ("--name=value" or "--name value"), advancing *i past it.
static const char *flag_value(int argc, char **argv, int *i, size_t nlen) {
    const char *a = argv[*i] + 2;
    if (a[nlen] == '=') return a + nlen + 1;
    return *i + 1 < argc ? argv[++*i] : nullptr;
}

config_result config_load(config *cfg, int argc, char **argv) {
    config_defaults(cfg);
    loader ld = {};
    ld.cfg = cfg;
    const option_def *config_opt = find_option("config", 6);
    // --help, --version and --config come first: the file is read below everything else.
    cfg->config_file = getenv(config_opt->env);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return CONFIG_EXIT_OK;
        }
        if (strcmp(a, "--version") == 0) {
            printf("wsreactor %s\n", WSR_VERSION);
            return CONFIG_EXIT_OK;
        }
        if (strncmp(a, "--", 2) != 0) continue; // reported below
        size_t nlen = strcspn(a + 2, "=");
        const option_def *o = find_option(a + 2, nlen);
        if (!o || !o->arg) continue;
        const char *val = flag_value(argc, argv, &i, nlen);
        if (o == config_opt && val) cfg->config_file = val;
    }
    if (cfg->config_file && *cfg->config_file) {
        ld.at = L_FILE;
        if (!load_file(&ld, cfg->config_file)) return CONFIG_ERROR;
    }
    ld.at = L_ENV;
    for (const option_def &o : OPTIONS) {
        const char *v = getenv(o.env);
        ld.why = nullptr;
        if (!v) continue;
        const char *copy = keep(cfg, v, strlen(v));
        if (!copy || !apply(&ld, o, copy, nullptr)) {
            report("invalid value '%s' in %s%s%s", v, o.env, ld.why ? ": " : "",
                    ld.why ? ld.why : "");
            return CONFIG_ERROR;
        }
    }
    ld.at = L_FLAG;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0) {
            report("unexpected argument '%s' (see --help)", a);
            return CONFIG_ERROR;
        }
        if (strcmp(a, "--check-config") == 0 || strcmp(a, "--print-config") == 0) {
            (a[2] == 'c' ? cfg->check_config : cfg->print_config) = true;
            continue;
        }
        size_t nlen = strcspn(a + 2, "=");
        const option_def *o = find_option(a + 2, nlen);
        if (!o || !o->arg) {
            report("unknown option '%s' (see --help)", a);
            return CONFIG_ERROR;
        }
        const char *val = flag_value(argc, argv, &i, nlen);
        if (!val) {
            report("--%s needs a value %s", o->name, o->arg);
            return CONFIG_ERROR;
        }
        ld.why = nullptr;
        if (!apply(&ld, *o, val, nullptr)) {
            report("invalid value '%s' for --%s (%s)%s%s", val, o->name, o->arg,
                    ld.why ? ": " : "", ld.why ? ld.why : "");
            return CONFIG_ERROR;
        }
    }
    // A namespace's unset keys take the channel defaults as every level left them.
    for (int i = 0; i < cfg->nnamespaces; i++)
        for (const option_def &o : OPTIONS)
            if (is_namespace_key(o) && !(cfg->namespace_keys[i] & (1ull << (o.offset - NS_BASE))))
                memcpy((char *)&cfg->namespaces[i] + (o.offset - NS_BASE), (char *)cfg + o.offset, o.width);
    return CONFIG_OK;
}

void config_messaging(const config *cfg, wsr_messaging_options *mo) {
    *mo = cfg->msg;
    mo->max_message = cfg->opts.max_message;
    mo->namespaces = cfg->nnamespaces ? cfg->namespaces : nullptr;
    mo->nnamespaces = (uint32_t)cfg->nnamespaces;
}

int config_apply(const config *cfg, wsr_server *srv) {
    for (int k = 0; k < CONFIG_KEYS; k++) {
        if (!cfg->keyed_set[k]) continue;
        int r = wsr_server_set_option(srv, (wsr_option)k, cfg->keyed[k]);
        if (r != WSR_OK) return r;
    }
    unsigned flags = cfg->reuseport ? WSR_LISTEN_REUSEPORT : 0;
    // Without any --listen the default address serves, beside any PROXY listeners.
    if (cfg->listen.n == 0) {
        int r = wsr_server_add_listener(srv, cfg->opts.listen ? cfg->opts.listen : "127.0.0.1:8080", flags);
        if (r < 0) return r;
    }
    for (int i = 0; i < cfg->listen.n; i++) {
        int r = wsr_server_add_listener(srv, cfg->listen.items[i], flags);
        if (r < 0) return r;
    }
    for (int i = 0; i < cfg->listen_tls.n; i++) {
        int r = wsr_server_add_listener(srv, cfg->listen_tls.items[i], flags | WSR_LISTEN_TLS);
        if (r < 0) return r;
    }
    if (cfg->tls_certs.n != cfg->tls_keys.n) {
        report("%d --tls-cert but %d --tls-key: give them in pairs", cfg->tls_certs.n,
                cfg->tls_keys.n);
        return WSR_EINVAL;
    }
    for (int i = 0; i < cfg->tls_certs.n; i++) {
        int r = wsr_server_add_certificate(srv, cfg->tls_certs.items[i], cfg->tls_keys.items[i]);
        if (r != WSR_OK) return r;
    }
    for (int i = 0; i < cfg->listen_proxy.n; i++) {
        int r = wsr_server_add_listener(srv, cfg->listen_proxy.items[i], flags | WSR_LISTEN_PROXY);
        if (r < 0) return r;
    }
    for (int i = 0; i < cfg->origins.n; i++) {
        int r = wsr_server_add_option(srv, WSR_OPT_ALLOWED_ORIGIN, cfg->origins.items[i]);
        if (r != WSR_OK) return r;
    }
    for (int i = 0; i < cfg->trusted.n; i++) {
        int r = wsr_server_add_option(srv, WSR_OPT_TRUSTED_PROXY, cfg->trusted.items[i]);
        if (r != WSR_OK) return r;
    }
    return WSR_OK;
}

// --- effective values: --print-config, --check-config and reloads ------------------------

static bool is_secret(const option_def &o) {
    // The broker's URL may carry a Redis password.
    return strcmp(o.name, "jwt-secret") == 0 || strcmp(o.name, "auth-password") == 0 || strcmp(o.name, "api-key") == 0 ||
           strcmp(o.name, "broker") == 0;
}

// A keyed option's value: as set, else the default include/wsr/wsr.h documents (the
// server keeps its own copy of them).
static uint64_t keyed_value(const config *cfg, size_t key) {
    if (cfg->keyed_set[key]) return cfg->keyed[key];
    switch (key) {
    case WSR_OPT_MAX_HANDSHAKES: return 1024;
    case WSR_OPT_MAX_MEMORY: return cfg->opts.max_message * 2 > (64ull << 20) ? cfg->opts.max_message * 2 : 64ull << 20;
    case WSR_OPT_SLOW_TIMEOUT_MS: return 10000;
    case WSR_OPT_MAX_BODY: return 1u << 20;
    case WSR_OPT_HTTP_MAX_REQUESTS: return 1000;
    case WSR_OPT_HTTP_IDLE_TIMEOUT_MS: return 5000;
    case WSR_OPT_READ_BUFFER: return 128u << 10;
    }
    return 0;
}

static const char *const DEFAULT_LISTEN = "127.0.0.1:8080";

// The values of a repeatable option, in order: *n of them in items. The default listener
// serves when no --listen was given, so it is listen's effective value then.
static const char *const *list_values(const config *cfg, const option_def &o, int *n) {
    if (o.kind == K_SUBPROTO) {
        *n = cfg->nsubprotocols;
        return cfg->subprotocols;
    }
    const config_list *l = (const config_list *)((const char *)cfg + o.offset);
    if (l == &cfg->listen && l->n == 0) {
        *n = 1;
        return cfg->opts.listen ? &cfg->opts.listen : &DEFAULT_LISTEN;
    }
    *n = l->n;
    return l->items;
}

// A namespace as the value of --namespace: NAME:key=value,...
static void namespace_spec(const wsr_namespace *ns, char *buf, size_t size) {
    size_t n = (size_t)snprintf(buf, size, "%s:", ns->name);
    for (const option_def &o : OPTIONS) {
        if (!is_namespace_key(o) || n >= size) continue;
        char v[48];
        format_field((const char *)ns + (o.offset - NS_BASE), o, v, sizeof v);
        n += (size_t)snprintf(buf + n, size - n, "%s%s=%s", buf[n - 1] == ':' ? "" : ",", o.name, v);
    }
}

// Appends text to buf[*n..size), cut to fit.
static void append(char *buf, size_t size, size_t *n, const char *text) {
    if (*n < size) *n += (size_t)snprintf(buf + *n, size - *n, "%s", text);
}

// The value of o in cfg as one line: lists joined with ", ", namespaces' specs with "; ",
// "" when unset.
static void value_text(const config *cfg, const option_def &o, char *buf, size_t size) {
    size_t n = 0;
    buf[0] = 0;
    switch (o.kind) {
    case K_LIST:
    case K_SUBPROTO: {
        int count;
        const char *const *items = list_values(cfg, o, &count);
        for (int i = 0; i < count; i++) {
            if (i) append(buf, size, &n, ", ");
            append(buf, size, &n, items[i]);
        }
        return;
    }
    case K_NAMESPACE:
        for (int i = 0; i < cfg->nnamespaces; i++) {
            char spec[512];
            namespace_spec(&cfg->namespaces[i], spec, sizeof spec);
            if (i) append(buf, size, &n, "; ");
            append(buf, size, &n, spec);
        }
        return;
    case K_STRING: {
        const char *v = *(const char *const *)((const char *)cfg + o.offset);
        snprintf(buf, size, "%s", v ? v : "");
        return;
    }
    case K_KEYED_NUMBER:
    case K_KEYED_BYTES:
        format_number(keyed_value(cfg, o.offset), o.kind == K_KEYED_BYTES, buf, size);
        return;
    case K_CONFIG:
        snprintf(buf, size, "%s", cfg->config_file ? cfg->config_file : "");
        return;
    default:
        format_value(cfg, o, buf, size);
    }
}

void config_print(const config *cfg, FILE *f) {
    fprintf(f, "# wsreactor %s: the effective settings (defaults < config file < environment < flags).\n"
               "# Secrets are shown as <set>: write their values back before using this as a config file.\n",
            WSR_VERSION);
    char v[1024];
    for (const option_def &o : OPTIONS) {
        if (o.kind == K_CONFIG || o.kind == K_NAMESPACE) continue;
        if (o.kind == K_LIST || o.kind == K_SUBPROTO) {
            int count;
            const char *const *items = list_values(cfg, o, &count);
            if (!count) fprintf(f, "# %s =\n", o.name); // none
            for (int i = 0; i < count; i++) fprintf(f, "%s = %s\n", o.name, is_secret(o) ? "<set>" : items[i]);
            continue;
        }
        value_text(cfg, o, v, sizeof v);
        if (!*v)
            fprintf(f, "# %s =\n", o.name); // unset
        else
            fprintf(f, "%s = %s\n", o.name, is_secret(o) ? "<set>" : v);
    }
    // Sections last: every key after a section header belongs to it.
    for (int i = 0; i < cfg->nnamespaces; i++) {
        const wsr_namespace *ns = &cfg->namespaces[i];
        fprintf(f, "\n[namespace %s]\n", ns->name);
        for (const option_def &o : OPTIONS) {
            if (!is_namespace_key(o)) continue;
            format_field((const char *)ns + (o.offset - NS_BASE), o, v, sizeof v);
            fprintf(f, "%s = %s\n", o.name, v);
        }
    }
}

int config_check(const config *cfg) {
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0) return WSR_ESYS;
    wsr_server *srv = nullptr;
    wsr_messaging *m = nullptr;
    // Errors only: the server's start and shutdown lines would read as if it had run.
    if (cfg->log_level > WSR_LOG_WARN) wsr_log_set_level(WSR_LOG_WARN);
    int r = wsr_server_new(&loop, &cfg->opts, &srv);
    if (r == WSR_OK) r = config_apply(cfg, srv); // listeners are parsed, not bound
    if (r == WSR_OK) {
        wsr_messaging_options mo;
        config_messaging(cfg, &mo);
        m = wsr_messaging_new(&loop, srv, "/ws", &mo);
        if (!m) r = WSR_EINVAL; // the layer logged why
    }
    if (r != WSR_OK && r != WSR_EINVAL && r != WSR_EADDR) report("cannot start: %s", wsr_strerror(r));
    if (srv) wsr_server_free(srv);
    if (m) wsr_messaging_free(m);
    uv_run(&loop, UV_RUN_DEFAULT); // their handles close from the loop
    uv_loop_close(&loop);
    wsr_log_set_level(cfg->log_level);
    return r;
}

// What a running daemon can change of an option: CONFIG_LIVE_*, or 0 when only a restart
// applies it.
static unsigned live_group(const option_def &o) {
    if (strcmp(o.name, "log-level") == 0 || strcmp(o.name, "log-format") == 0) return CONFIG_LIVE_LOG;
    if (strcmp(o.name, "api-key") == 0) return CONFIG_LIVE_API_KEYS;
    if (o.kind == K_NAMESPACE ||
        (in_messaging(o) && strcmp(o.name, "max-channels") != 0 && strcmp(o.name, "broker") != 0))
        return CONFIG_LIVE_MESSAGING;
    return 0;
}

static bool is_listener(const option_def &o) {
    return strcmp(o.name, "listen") == 0 || strcmp(o.name, "listen-proxy") == 0 || strcmp(o.name, "listen-tls") == 0 ||
           strcmp(o.name, "reuseport") == 0;
}

enum { VALUE_TEXT = 8192 };

static bool differs(const config *a, const config *b, const option_def &o, char *va, char *vb) {
    value_text(a, o, va, VALUE_TEXT);
    value_text(b, o, vb, VALUE_TEXT);
    return strcmp(va, vb) != 0;
}

unsigned config_changes(const config *live, const config *next) {
    static char va[VALUE_TEXT], vb[VALUE_TEXT];
    unsigned groups = 0;
    for (const option_def &o : OPTIONS)
        if (o.kind != K_CONFIG && live_group(o) && differs(live, next, o, va, vb)) groups |= live_group(o);
    return groups;
}

void config_log_changes(const config *live, const config *start, const config *next) {
    static char va[VALUE_TEXT], vb[VALUE_TEXT];
    bool listeners = false;
    for (const option_def &o : OPTIONS) {
        if (o.kind == K_CONFIG) continue;
        if (live_group(o)) {
            if (!differs(live, next, o, va, vb)) continue;
            if (is_secret(o))
                wsr_log(WSR_LOG_INFO, "reload: %s changed", o.name);
            else
                wsr_log(WSR_LOG_INFO, "reload: %s %s -> %s", o.name, *va ? va : "(none)", *vb ? vb : "(none)");
        } else if (differs(start, next, o, va, vb)) {
            if (is_listener(o))
                listeners = true;
            else if (is_secret(o))
                wsr_log(WSR_LOG_WARN, "reload: %s changed: restart needed", o.name);
            else
                wsr_log(WSR_LOG_WARN, "reload: %s %s -> %s: restart needed", o.name, *va ? va : "(none)",
                        *vb ? vb : "(none)");
        }
    }
    if (listeners) wsr_log(WSR_LOG_WARN, "reload: listen changed: restart needed");
}
