// The daemon's settings: built-in defaults, overridden by WSR_* environment variables,
// overridden by command-line flags.
#pragma once

#include "wsr/wsr.h"

enum { CONFIG_MAX_SUBPROTOCOLS = 16, CONFIG_KEYS = 8, CONFIG_MAX_LIST = 32 };

// A repeatable flag's values (the environment gives them comma-separated).
struct config_list {
    const char *items[CONFIG_MAX_LIST];
    int n;
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
};

enum config_result { CONFIG_OK, CONFIG_EXIT_OK, CONFIG_ERROR };

// Fills cfg from defaults, environment and argv. CONFIG_EXIT_OK after --help or
// --version (already printed); CONFIG_ERROR after printing what was wrong.
config_result config_load(config *cfg, int argc, char **argv);
// Applies what wsr_options does not hold to a new server: keyed options, listeners,
// allowed origins, trusted proxies. WSR_OK or its error.
int config_apply(const config *cfg, wsr_server *srv);
