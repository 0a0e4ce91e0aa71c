// The server's options: built-in defaults and the checks that wsr_server_new and
// wsr_server_set_option apply, so an embedder gets the same answers as the daemon.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "wsr/wsr.h"

enum : uint64_t {
    OPTIONS_DEFAULT_MAX_HANDSHAKES = 1024,
    // WSR_OPT_READ_BUFFER: a TLS connection reads a whole record at a time (core/tls.h).
    OPTIONS_MIN_READ_BUFFER = 16384,
    OPTIONS_MAX_READ_BUFFER = 16 << 20,
    OPTIONS_DEFAULT_MAX_MEMORY = 64ull << 20,
    OPTIONS_DEFAULT_SLOW_TIMEOUT_MS = 10000,
    OPTIONS_DEFAULT_HTTP_IDLE_TIMEOUT_MS = 5000,
    OPTIONS_MIN_HEADER = 256, // a request line and the four required headers
};

// True when every field is in range; otherwise false with a sentence naming the first
// field that is not written to why.
bool options_check(const wsr_options *o, char *why, size_t cap);
// The same for one keyed option, given the server's other options.
bool options_check_key(const wsr_options *o, wsr_option key, uint64_t value, char *why, size_t cap);
// WSR_OPT_MAX_MEMORY when it was not set: room for two messages at the least.
uint64_t options_default_max_memory(const wsr_options *o);
// The least WSR_OPT_MAX_MEMORY accepted: a largest message fits the three quarters of
// it that input may use.
uint64_t options_least_max_memory(const wsr_options *o);
