#include "core/options.h"

#include <stdio.h>
#include <string.h>

void wsr_options_default(wsr_options *o) {
    memset(o, 0, sizeof *o);
    o->listen = "127.0.0.1:8080";
    o->max_message = 1 << 20;
    o->max_header = 8192;
    o->handshake_timeout_ms = 10000;
    o->close_timeout_ms = 5000;
    o->shutdown_timeout_ms = 5000;
    o->max_backpressure = 1 << 20;
    o->ping_interval_ms = 30000;
    o->pong_timeout_ms = 30000;
    o->deflate = WSR_DEFLATE_SHARED;
    o->deflate_window_bits = 15;
    o->deflate_client_window_bits = 15;
    o->deflate_mem_level = 8;
    o->deflate_level = 1;
    o->deflate_threshold = 64;
}

uint64_t options_least_max_memory(const wsr_options *o) { return (o->max_message * 4 + 2) / 3; }

uint64_t options_default_max_memory(const wsr_options *o) {
    return 2 * o->max_message > OPTIONS_DEFAULT_MAX_MEMORY ? 2 * o->max_message : OPTIONS_DEFAULT_MAX_MEMORY;
}

// RFC 9110 §5.6.2: a token is one or more tchar. A subprotocol name goes into the 101
// response verbatim, so anything else (CR, LF, space) could forge headers.
static bool token_ok(const char *s) {
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c && strchr("!#$%&'*+-.^_`|~", c));
        if (!ok || n >= WSR_MAX_SUBPROTOCOL_LEN) return false;
    }
    return n > 0;
}

static bool fail(char *why, size_t cap, const char *field, uint64_t value, uint64_t lo, uint64_t hi) {
    snprintf(why, cap, "%s = %llu is out of range (%llu .. %llu)", field, (unsigned long long)value,
             (unsigned long long)lo, (unsigned long long)hi);
    return false;
}

// A field with its accepted range, checked in one loop so that a new field is one line.
struct range_check {
    const char *field;
    uint64_t value, lo, hi;
};

// An enum field as the int a C caller may have stored in it: reading it as the C++ enum
// would be undefined for a value outside the enumerators.
static int64_t enum_value(const void *field) {
    int v;
    memcpy(&v, field, sizeof v);
    return v;
}

bool options_check(const wsr_options *o, char *why, size_t cap) {
    static_assert(sizeof(wsr_slow_policy) == sizeof(int) && sizeof(wsr_deflate_mode) == sizeof(int));
    const uint64_t T = WSR_MAX_TIMEOUT_MS, BIG = UINT32_MAX - 64;
    const range_check checks[] = {
        {"max_message", o->max_message, 1, BIG},
        {"max_header", o->max_header, OPTIONS_MIN_HEADER, 65535},
        {"handshake_timeout_ms", o->handshake_timeout_ms, 0, T},
        {"close_timeout_ms", o->close_timeout_ms, 0, T},
        {"shutdown_timeout_ms", o->shutdown_timeout_ms, 0, T},
        {"ping_interval_ms", o->ping_interval_ms, 0, T},
        {"pong_timeout_ms", o->pong_timeout_ms, 0, T},
        {"idle_timeout_ms", o->idle_timeout_ms, 0, T},
        {"max_backpressure", o->max_backpressure, 1, BIG},
        {"slow_policy", (uint64_t)enum_value(&o->slow_policy), WSR_SLOW_CLOSE, WSR_SLOW_DROP},
        {"deflate", (uint64_t)enum_value(&o->deflate), WSR_DEFLATE_SHARED, WSR_DEFLATE_DEDICATED},
        {"deflate_window_bits", o->deflate_window_bits, 8, 15},
        {"deflate_client_window_bits", o->deflate_client_window_bits, 8, 15},
        {"deflate_mem_level", o->deflate_mem_level, 1, 9},
        {"deflate_level", o->deflate_level, 1, 9},
    };
    for (const range_check &c : checks)
        if (c.value < c.lo || c.value > c.hi) return fail(why, cap, c.field, c.value, c.lo, c.hi);
    if (!o->listen || !*o->listen) {
        snprintf(why, cap, "listen is empty");
        return false;
    }
    int n = 0;
    for (const char *const *s = o->subprotocols; s && *s; s++, n++) {
        if (n == WSR_MAX_SUBPROTOCOLS) {
            snprintf(why, cap, "subprotocols: more than %d", WSR_MAX_SUBPROTOCOLS);
            return false;
        }
        if (!token_ok(*s)) {
            snprintf(why, cap, "subprotocol \"%.40s%s\" is not an HTTP token of 1 .. %d characters", *s,
                     strlen(*s) > 40 ? "..." : "", WSR_MAX_SUBPROTOCOL_LEN);
            return false;
        }
    }
    return true;
}

bool options_check_key(const wsr_options *o, wsr_option key, uint64_t value, char *why, size_t cap) {
    switch (key) {
    case WSR_OPT_MAX_HANDSHAKES:
        return value >= 1 && value <= UINT32_MAX ? true : fail(why, cap, "max_handshakes", value, 1, UINT32_MAX);
    case WSR_OPT_MAX_MEMORY: {
        // A message the server accepts must fit the three quarters input may use.
        uint64_t least = options_least_max_memory(o);
        return value >= least ? true : fail(why, cap, "max_memory", value, least, UINT64_MAX);
    }
    case WSR_OPT_SLOW_TIMEOUT_MS:
        return value <= WSR_MAX_TIMEOUT_MS ? true : fail(why, cap, "slow_timeout_ms", value, 0, WSR_MAX_TIMEOUT_MS);
    case WSR_OPT_DRAIN_BYTES:
        return value <= o->max_backpressure ? true : fail(why, cap, "drain_bytes", value, 0, o->max_backpressure);
    case WSR_OPT_MAX_BODY:
        return value <= UINT32_MAX ? true : fail(why, cap, "max_body", value, 0, UINT32_MAX);
    case WSR_OPT_HTTP_MAX_REQUESTS:
        return value >= 1 && value <= UINT32_MAX ? true : fail(why, cap, "http_max_requests", value, 1, UINT32_MAX);
    case WSR_OPT_HTTP_IDLE_TIMEOUT_MS:
        return value >= 1 && value <= WSR_MAX_TIMEOUT_MS ? true
                                                          : fail(why, cap, "http_idle_timeout_ms", value, 1, WSR_MAX_TIMEOUT_MS);
    case WSR_OPT_READ_BUFFER:
        return value >= OPTIONS_MIN_READ_BUFFER && value <= OPTIONS_MAX_READ_BUFFER
                   ? true
                   : fail(why, cap, "read_buffer", value, OPTIONS_MIN_READ_BUFFER, OPTIONS_MAX_READ_BUFFER);
    }
    snprintf(why, cap, "unknown option %d", (int)key);
    return false;
}
