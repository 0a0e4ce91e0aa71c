// The daemon's settings: built-in defaults, overridden by WSR_* environment variables,
// overridden by command-line flags.
#pragma once

#include "wsr/wsr.h"

enum { CONFIG_MAX_SUBPROTOCOLS = 16 };

struct config {
    wsr_options opts;
    wsr_log_level log_level;
    const char *subprotocols[CONFIG_MAX_SUBPROTOCOLS + 1];
    int nsubprotocols;
};

enum config_result { CONFIG_OK, CONFIG_EXIT_OK, CONFIG_ERROR };

// Fills cfg from defaults, environment and argv. CONFIG_EXIT_OK after --help or
// --version (already printed); CONFIG_ERROR after printing what was wrong.
config_result config_load(config *cfg, int argc, char **argv);
