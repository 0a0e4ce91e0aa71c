// One-line logs: "2026-11-23T04:30:00.123Z info  message" on stderr, or one JSON object
// per line (wsr_log_set_format), or to the sink an embedder sets (wsr_log_set_sink).
//
// Most lines are caused by peers (a rejected handshake, a protocol failure), so a
// flood of bad input must not become a flood of log writes on the loop: each call site
// may write LOG_BURST lines per LOG_WINDOW_MS; the rest are counted and summarised
// once per window as "N similar lines suppressed".
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "wsr/wsr.h"

extern wsr_log_level log_level;

// Whether a line from the call site of fmt may be written now; counts it as suppressed
// when not. Asked before the line's arguments are evaluated, so a suppressed line costs
// no formatting (nor the getpeername of a peer's address).
bool log_admit(wsr_log_level level, const char *fmt);
void log_write(wsr_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// Writes the summaries of windows that have ended; true while some are still pending
// (the caller should call again later).
bool log_flush_suppressed(void);
// Lines suppressed since the process started.
uint64_t log_suppressed_total(void);
// s[0..len) as the inside of a JSON string (RFC 8259 §7): '"', '\\' and control
// characters escaped, bytes that are not UTF-8 replaced by U+FFFD. Writes at most cap - 1
// bytes and a NUL, never half an escape or half a character; returns the bytes written.
size_t log_json_escape(char *out, size_t cap, const char *s, size_t len);

#define LOG_AT(lvl, fmt, ...)                                                                 \
    do {                                                                                      \
        if ((lvl) <= log_level && log_admit((lvl), fmt)) log_write((lvl), fmt __VA_OPT__(, ) __VA_ARGS__); \
    } while (0)
#define log_error(...) LOG_AT(WSR_LOG_ERROR, __VA_ARGS__)
#define log_warn(...) LOG_AT(WSR_LOG_WARN, __VA_ARGS__)
#define log_info(...) LOG_AT(WSR_LOG_INFO, __VA_ARGS__)
#define log_debug(...) LOG_AT(WSR_LOG_DEBUG, __VA_ARGS__)
