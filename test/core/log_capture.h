// Log lines captured through wsr_log_set_sink, for the tests that check what the
// server logged (and how often).
#pragma once

#include <stdio.h>
#include <string.h>

#include "wsr/wsr.h"

enum { LOG_CAPTURE_LINES = 256, LOG_CAPTURE_LINE = 2048 };

struct log_capture {
    int n; // lines received; only the first LOG_CAPTURE_LINES are kept
    wsr_log_level level[LOG_CAPTURE_LINES];
    char msg[LOG_CAPTURE_LINES][LOG_CAPTURE_LINE];
};

static inline void log_capture_sink(wsr_log_level level, const char *msg, void *user) {
    log_capture *c = (log_capture *)user;
    if (c->n < LOG_CAPTURE_LINES) {
        c->level[c->n] = level;
        snprintf(c->msg[c->n], sizeof c->msg[0], "%s", msg);
    }
    c->n++;
}

static inline void log_capture_start(log_capture *c) {
    memset(c, 0, sizeof *c);
    wsr_log_set_sink(log_capture_sink, c);
}

static inline void log_capture_stop(void) { wsr_log_set_sink(nullptr, nullptr); }

// The index of the first kept line that contains needle (-1 when none); *count is set
// to how many do.
static inline int log_capture_find(const log_capture *c, const char *needle, int *count) {
    int at = -1;
    *count = 0;
    for (int i = 0; i < c->n && i < LOG_CAPTURE_LINES; i++) {
        if (!strstr(c->msg[i], needle)) continue;
        if (at < 0) at = i;
        (*count)++;
    }
    return at;
}
