// One-line logs on stderr: "2026-11-23T04:30:00.123Z info  message".
#pragma once

#include "wsr/wsr.h"

extern wsr_log_level log_level;

void log_write(wsr_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define LOG_AT(lvl, ...)                                    \
    do {                                                    \
        if ((lvl) <= log_level) log_write((lvl), __VA_ARGS__); \
    } while (0)
#define log_error(...) LOG_AT(WSR_LOG_ERROR, __VA_ARGS__)
#define log_warn(...) LOG_AT(WSR_LOG_WARN, __VA_ARGS__)
#define log_info(...) LOG_AT(WSR_LOG_INFO, __VA_ARGS__)
#define log_debug(...) LOG_AT(WSR_LOG_DEBUG, __VA_ARGS__)
