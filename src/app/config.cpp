#include "app/config.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

// K_BYTES is a number that also takes a k/m/g suffix. K_KEYED_* go to cfg->keyed.
// K_LIST: repeatable; offset is the config_list's offset in config. K_BOOL: yes/no.
enum opt_kind {
    K_NUMBER, K_BYTES, K_LOG, K_SUBPROTO, K_POLICY, K_DEFLATE, K_KEYED_NUMBER, K_KEYED_BYTES, K_LIST, K_BOOL
};

struct option_def {
    const char *name; // flag without "--"
    const char *env;
    opt_kind kind;
    size_t offset;    // into wsr_options (unused for K_LOG, K_SUBPROTO); K_KEYED_*: the wsr_option
    size_t width;     // numbers: size of the field (1, 4 or 8 bytes)
    uint64_t min, max; // numbers: accepted range
    const char *arg;
    const char *help;
};

#define OPT(field) offsetof(wsr_options, field), 0, 0, 0
#define NUM(field, lo, hi) offsetof(wsr_options, field), sizeof(wsr_options::field), (lo), (hi)
#define KEY(key, lo, hi) (size_t)(key), 8, (lo), (hi)
#define NONE 0, 0, 0, 0
#define LIST(field) offsetof(config, field), 0, 0, 0
static const uint64_t MS_MAX = WSR_MAX_TIMEOUT_MS;

// One table drives parsing, the environment and --help, so they cannot disagree.
static const option_def OPTIONS[] = {
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
    {"reuseport", "WSR_REUSEPORT", K_BOOL, NONE, "yes|no",
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
    {"http-max-requests", "WSR_HTTP_MAX_REQUESTS", K_KEYED_NUMBER, KEY(WSR_OPT_HTTP_MAX_REQUESTS, 1, UINT32_MAX), "N",
     "requests one HTTP connection may make before it is closed (default 1000)"},
    {"max-message", "WSR_MAX_MESSAGE", K_BYTES, NUM(max_message, 1, UINT32_MAX - 64), "BYTES",
     "largest message accepted, all fragments together; bigger gets close 1009 (default 1048576)"},
    {"max-header", "WSR_MAX_HEADER", K_BYTES, NUM(max_header, 256, 65535), "BYTES",
     "largest upgrade request head; bigger gets 431 (default 8192, 256 .. 65535)"},
    {"max-connections", "WSR_MAX_CONNECTIONS", K_NUMBER, NUM(max_connections, 0, UINT32_MAX), "N",
     "open WebSocket connections; more get 503 (default: from the file descriptor limit)"},
    {"max-handshakes", "WSR_MAX_HANDSHAKES", K_KEYED_NUMBER, KEY(WSR_OPT_MAX_HANDSHAKES, 1, UINT32_MAX), "N",
     "connections still sending their upgrade request; more are answered 503 at once (default 1024)"},
    {"max-memory", "WSR_MAX_MEMORY", K_KEYED_BYTES, KEY(WSR_OPT_MAX_MEMORY, 1, UINT64_MAX >> 1), "BYTES",
     "bytes held for peers (incomplete messages, unsent copies); the connection that would cross it is "
     "closed with 1013; at least --max-message (default 64m, or twice --max-message if more)"},
    {"max-backpressure", "WSR_MAX_BACKPRESSURE", K_BYTES, NUM(max_backpressure, 1, UINT32_MAX - 64), "BYTES",
     "unsent bytes per connection at which the slow-consumer policy applies; reading from it pauses at half "
     "(default 1048576)"},
    {"backpressure-policy", "WSR_BACKPRESSURE_POLICY", K_POLICY, OPT(slow_policy), "close|drop",
     "for a receiver at --max-backpressure: close it with 1008, or drop messages for it (default close)"},
    {"slow-timeout", "WSR_SLOW_TIMEOUT", K_KEYED_NUMBER, KEY(WSR_OPT_SLOW_TIMEOUT_MS, 0, MS_MAX), "MS",
     "close with 1008 a receiver whose unsent output stays over half --max-backpressure this long; 0 never "
     "(default 10000)"},
    {"handshake-timeout", "WSR_HANDSHAKE_TIMEOUT", K_NUMBER, NUM(handshake_timeout_ms, 0, MS_MAX), "MS",
     "time allowed to send the upgrade request (default 10000)"},
    {"close-timeout", "WSR_CLOSE_TIMEOUT", K_NUMBER, NUM(close_timeout_ms, 0, MS_MAX), "MS",
     "time allowed for a peer to answer our close frame (default 5000)"},
    {"shutdown-timeout", "WSR_SHUTDOWN_TIMEOUT", K_NUMBER, NUM(shutdown_timeout_ms, 0, MS_MAX), "MS",
     "on SIGTERM/SIGINT, time allowed for all connections to close (default 5000)"},
    {"ping-interval", "WSR_PING_INTERVAL", K_NUMBER, NUM(ping_interval_ms, 0, MS_MAX), "MS",
     "ping a connection after this much silence; 0 never (default 30000)"},
    {"pong-timeout", "WSR_PONG_TIMEOUT", K_NUMBER, NUM(pong_timeout_ms, 0, MS_MAX), "MS",
     "after a ping, cut a connection silent this long (stale); 0 never (default 30000)"},
    {"idle-timeout", "WSR_IDLE_TIMEOUT", K_NUMBER, NUM(idle_timeout_ms, 0, MS_MAX), "MS",
     "close with 1001 a connection with no message either way this long; 0 off (default 0)"},
    {"subprotocol", "WSR_SUBPROTOCOLS", K_SUBPROTO, NONE, "NAME",
     "a supported subprotocol; repeat for several (env: comma-separated). Default: none"},
    {"deflate", "WSR_DEFLATE", K_DEFLATE, OPT(deflate), "off|shared|dedicated",
     "permessage-deflate: shared streams for all connections (memory flat), per-connection streams with "
     "context takeover, or off (default shared)"},
    {"deflate-window-bits", "WSR_DEFLATE_WINDOW_BITS", K_NUMBER, NUM(deflate_window_bits, 8, 15), "8..15",
     "window of our deflater (default 15)"},
    {"deflate-client-window-bits", "WSR_DEFLATE_CLIENT_WINDOW_BITS", K_NUMBER, NUM(deflate_client_window_bits, 8, 15), "8..15",
     "window asked of clients that offer client_max_window_bits (default 15)"},
    {"deflate-mem-level", "WSR_DEFLATE_MEM_LEVEL", K_NUMBER, NUM(deflate_mem_level, 1, 9), "1..9",
     "zlib memLevel of our deflaters (default 8)"},
    {"deflate-level", "WSR_DEFLATE_LEVEL", K_NUMBER, NUM(deflate_level, 1, 9), "1..9",
     "zlib compression level (default 1: fastest)"},
    {"deflate-threshold", "WSR_DEFLATE_THRESHOLD", K_BYTES, NUM(deflate_threshold, 0, UINT32_MAX), "BYTES",
     "messages shorter than this are sent uncompressed (default 64)"},
    {"log-level", "WSR_LOG_LEVEL", K_LOG, NONE, "LEVEL", "error, warn, info or debug (default info)"},
};

static void usage(FILE *f) {
    fprintf(f,
            "usage: wsreactor [OPTION]...\n"
            "A WebSocket server (RFC 6455). Endpoints: /echo sends every message back;\n"
            "/broadcast sends every message to every client connected to it; /ws speaks the\n"
            "JSON messaging protocol (channels, recovery, direct messages; docs/messaging.md)\n"
            "with its backend HTTP API under /api/ (--api-key); GET /healthz answers\n"
            "{\"status\":\"ok\"}; GET /metrics gives Prometheus metrics.\n\n");
    for (const option_def &o : OPTIONS) {
        char flag[64];
        snprintf(flag, sizeof flag, "--%s %s", o.name, o.arg);
        fprintf(f, "  %-28s %s\n  %-28s env %s\n", flag, o.help, "", o.env);
    }
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

static bool add_subprotocol(config *cfg, const char *name) {
    if (cfg->nsubprotocols == CONFIG_MAX_SUBPROTOCOLS || !*name) return false;
    cfg->subprotocols[cfg->nsubprotocols++] = name;
    cfg->subprotocols[cfg->nsubprotocols] = nullptr;
    cfg->opts.subprotocols = cfg->subprotocols;
    return true;
}

static bool list_add(config_list *l, const char *v) {
    if (l->n == CONFIG_MAX_LIST || !*v) return false;
    l->items[l->n++] = v;
    return true;
}

// Calls add for each value: one from a flag, a comma-separated list from the environment
// (split in a copy that lives as long as the process).
template <typename F> static bool each_value(const char *val, bool from_env, F add) {
    if (!from_env) return add(val);
    char *copy = strdup(val);
    if (!copy) return false;
    for (char *save = nullptr, *t = strtok_r(copy, ", ", &save); t; t = strtok_r(nullptr, ", ", &save))
        if (!add(t)) return false;
    return true;
}

static bool apply(config *cfg, const option_def &o, const char *val, bool from_env) {
    char *base = (char *)&cfg->opts;
    uint64_t n;
    switch (o.kind) {
    case K_LIST: {
        config_list *l = (config_list *)((char *)cfg + o.offset);
        return each_value(val, from_env, [&](const char *v) { return list_add(l, v); });
    }
    case K_BOOL:
        if (strcasecmp(val, "yes") == 0 || strcasecmp(val, "on") == 0 || strcasecmp(val, "true") == 0 ||
            strcmp(val, "1") == 0)
            cfg->reuseport = true;
        else if (strcasecmp(val, "no") == 0 || strcasecmp(val, "off") == 0 || strcasecmp(val, "false") == 0 ||
                 strcmp(val, "0") == 0)
            cfg->reuseport = false;
        else
            return false;
        return true;
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
            *(uint64_t *)(base + o.offset) = n;
        else if (o.width == 4)
            *(uint32_t *)(base + o.offset) = (uint32_t)n;
        else
            *(uint8_t *)(base + o.offset) = (uint8_t)n;
        return true;
    case K_LOG: {
        static const char *const names[] = {"error", "warn", "info", "debug"};
        for (int i = 0; i < 4; i++)
            if (strcasecmp(val, names[i]) == 0) {
                cfg->log_level = (wsr_log_level)i;
                return true;
            }
        return false;
    }
    case K_DEFLATE: {
        static const char *const names[] = {"shared", "off", "dedicated"};
        for (int i = 0; i < 3; i++)
            if (strcasecmp(val, names[i]) == 0) {
                cfg->opts.deflate = (wsr_deflate_mode)i;
                return true;
            }
        return false;
    }
    case K_POLICY:
        if (strcasecmp(val, "close") == 0)
            cfg->opts.slow_policy = WSR_SLOW_CLOSE;
        else if (strcasecmp(val, "drop") == 0)
            cfg->opts.slow_policy = WSR_SLOW_DROP;
        else
            return false;
        return true;
    case K_SUBPROTO:
        return each_value(val, from_env, [&](const char *v) { return add_subprotocol(cfg, v); });
    }
    return false;
}

config_result config_load(config *cfg, int argc, char **argv) {
    memset(cfg, 0, sizeof *cfg);
    wsr_options_default(&cfg->opts);
    cfg->log_level = WSR_LOG_INFO;
    for (const option_def &o : OPTIONS) {
        const char *v = getenv(o.env);
        if (v && !apply(cfg, o, v, true)) {
            fprintf(stderr, "wsreactor: invalid value '%s' in %s\n", v, o.env);
            return CONFIG_ERROR;
        }
    }
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
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "wsreactor: unexpected argument '%s' (see --help)\n", a);
            return CONFIG_ERROR;
        }
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const option_def *o = nullptr;
        for (const option_def &d : OPTIONS)
            if (strlen(d.name) == nlen && strncmp(d.name, name, nlen) == 0) o = &d;
        if (!o) {
            fprintf(stderr, "wsreactor: unknown option '%s' (see --help)\n", a);
            return CONFIG_ERROR;
        }
        const char *val = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : nullptr);
        if (!val) {
            fprintf(stderr, "wsreactor: --%s needs a value %s\n", o->name, o->arg);
            return CONFIG_ERROR;
        }
        if (!apply(cfg, *o, val, false)) {
            fprintf(stderr, "wsreactor: invalid value '%s' for --%s (%s)\n", val, o->name, o->arg);
            return CONFIG_ERROR;
        }
    }
    return CONFIG_OK;
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
        fprintf(stderr, "wsreactor: %d --tls-cert but %d --tls-key: give them in pairs\n", cfg->tls_certs.n,
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
