// The server's figures as Prometheus text (exposition format 0.0.4), for GET /metrics.
// Reads only the public API (wsr_server_stats, wsr_server_counter, the messaging layer's
// wsr_messaging_stats as its caller read them) and /proc.
#pragma once

#include "wsr/messaging.h"
#include "wsr/wsr.h"

// Growing text buffer owned by the caller (malloc'd; free with free()).
struct metrics_text {
    char *data;
    size_t len, cap;
};

// Renders every figure of the server as Prometheus text 0.0.4 into out (appending; out
// zero-initialised by the caller). msg: the messaging layer's figures (from
// wsr_messaging_get_stats; only the fields within msg->size are exported), or NULL when
// the process has no messaging layer: its metrics are then left out. started_ms:
// wall-clock (unix ms) when the process started, for uptime and
// process_start_time_seconds. Returns 0, or -1 when out of memory (out may hold a
// partial text; caller frees it).
int metrics_render(wsr_server *srv, const wsr_messaging_stats *msg, uint64_t started_ms, metrics_text *out);

// Appends s as a label value between double quotes, with the format's three escapes
// (backslash, double quote, newline). Returns 0, or -1 when out of memory. The renderer
// uses it for every label; it is declared here so that the escapes can be tested.
int metrics_append_label_value(metrics_text *out, const char *s);
