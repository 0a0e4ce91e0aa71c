// The daemon's settings: built-in defaults, overridden by a config file (--config),
// overridden by WSR_* environment variables, overridden by command-line flags.
#pragma once

#include <stdio.h>

#include "wsr/messaging.h"
#include "wsr/wsr.h"

enum {
    CONFIG_MAX_SUBPROTOCOLS = 16,
    CONFIG_KEYS = 9,
    CONFIG_MAX_LIST = 32,
    CONFIG_MAX_NAMESPACES = 32,
};

// A repeatable flag's values (the environment gives them comma-separated).
struct config_list {
    const char *items[CONFIG_MAX_LIST];
    int n;
};

// A string the config had to copy (from the file, or split from the environment); the
// chain is freed by config_free, after the server that points at them is gone.
struct config_string {
    config_string *next;
    char text[];
};

struct config {
    wsr_options opts;
    config_list listen;       // plain listeners; none: opts.listen
    config_list listen_proxy; // listeners whose clients start with a PROXY header
    config_list origins;      // allowed Origin patterns
    config_list trusted;      // trusted proxies
    config_list listen_tls;   // TLS listeners
    config_list tls_certs;    // certificate files, paired in order with tls_keys
    config_list tls_keys;
    config_list api_keys;     // keys of the backend HTTP API (several: rotation)
    bool reuseport;
    // Keyed options (wsr_server_set_option), indexed by wsr_option; applied when set.
    uint64_t keyed[CONFIG_KEYS];
    bool keyed_set[CONFIG_KEYS];
    wsr_log_level log_level;
    wsr_log_format log_format;
    const char *subprotocols[CONFIG_MAX_SUBPROTOCOLS + 1];
    int nsubprotocols;
    // The messaging layer's options; namespaces is filled by config_messaging.
    wsr_messaging_options msg;
    wsr_namespace namespaces[CONFIG_MAX_NAMESPACES];
    // Per namespace, which keys were given (bit = the field's offset in wsr_namespace):
    // the others take the channel defaults once every level is read, so a flag's
    // --history-size also reaches a namespace of the file that did not set its own.
    uint64_t namespace_keys[CONFIG_MAX_NAMESPACES];
    int nnamespaces;
    const char *config_file; // --config or WSR_CONFIG, or NULL
    bool check_config;       // --check-config: validate everything, then exit
    bool print_config;       // --print-config: print the effective settings, then exit
    config_string *strings;
};

enum config_result { CONFIG_OK, CONFIG_EXIT_OK, CONFIG_ERROR };

// Fills cfg from defaults, the config file, environment and argv. CONFIG_EXIT_OK after
// --help or --version (already printed); CONFIG_ERROR after printing what was wrong.
// Whatever the result, config_free releases what it copied.
config_result config_load(config *cfg, int argc, char **argv);
// Releases the strings cfg copied; call it after the server and messaging layer that
// point at them are freed.
void config_free(config *cfg);
// Applies what wsr_options does not hold to a new server: keyed options, listeners,
// allowed origins, trusted proxies. WSR_OK or its error.
int config_apply(const config *cfg, wsr_server *srv);
// The messaging layer's options: *mo points into cfg (namespaces, strings), which must
// outlive the messaging layer. The server's max_message is the messaging layer's too.
void config_messaging(const config *cfg, wsr_messaging_options *mo);

// Where config_load reports what is wrong: NULL (the default) writes "wsreactor: ..."
// lines to stderr; a running daemon that reloads sends them to its log instead.
void config_set_reporter(void (*report)(const char *line));

// --print-config: every setting's effective value as a config file (the same keys, INI),
// namespaces as [namespace NAME] sections. Secrets (jwt-secret, auth-password, api-key)
// are written "<set>": the output loads back to the same settings but those.
void config_print(const config *cfg, FILE *f);

// --check-config: what only the libraries check (listen addresses, certificate and key
// files, the users file, JWT keys, namespaces, limits) by creating the server and the
// messaging layer on a private loop without listening, then freeing them. WSR_OK, or the
// error after the libraries logged why.
int config_check(const config *cfg);

// A reload: what next changes compared with live (the settings in use) and start (those
// the server started with, for what only a restart changes). Groups of CONFIG_LIVE_*.
enum {
    CONFIG_LIVE_LOG = 1 << 0,       // log-level, log-format
    CONFIG_LIVE_MESSAGING = 1 << 1, // wsr_messaging_update (not max-channels, max-message, broker)
    CONFIG_LIVE_API_KEYS = 1 << 2,
};
unsigned config_changes(const config *live, const config *next);
// Logs one info line per changed setting: "reload: rate-publish 500 -> 100" (a secret:
// "reload: jwt-secret changed"), and for the settings only a restart applies, those that
// differ from start: "reload: max-body 1m -> 2m: restart needed", "listen changed:
// restart needed".
void config_log_changes(const config *live, const config *start, const config *next);
