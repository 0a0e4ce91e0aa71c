// The daemon's settings: built-in defaults, overridden by a config file (--config),
// overridden by WSR_* environment variables, overridden by command-line flags.
#pragma once

#include "wsr/messaging.h"
#include "wsr/wsr.h"

enum {
    CONFIG_MAX_SUBPROTOCOLS = 16,
    CONFIG_KEYS = 8,
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
