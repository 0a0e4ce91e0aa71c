#include "app/metrics.h"

#include <dirent.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

// --- the text buffer ------------------------------------------------------------------

// Room for n more bytes plus a terminating NUL, so that data is always a C string.
static int text_reserve(metrics_text *out, size_t n) {
    if (n > SIZE_MAX / 2 - out->len) return -1;
    size_t need = out->len + n + 1;
    if (need <= out->cap) return 0;
    // A fresh server renders about 6 KiB: one allocation, and doubling past it.
    size_t cap = out->cap ? out->cap : 8192;
    while (cap < need) cap *= 2;
    char *d = (char *)realloc(out->data, cap);
    if (!d) return -1;
    out->data = d;
    out->cap = cap;
    return 0;
}

static int text_append(metrics_text *out, const char *s, size_t n) {
    if (text_reserve(out, n) != 0) return -1;
    memcpy(out->data + out->len, s, n);
    out->len += n;
    out->data[out->len] = '\0';
    return 0;
}

static int text_puts(metrics_text *out, const char *s) { return text_append(out, s, strlen(s)); }

__attribute__((format(printf, 2, 3))) static int text_printf(metrics_text *out, const char *fmt, ...) {
    // Lines are short: one try into a reserve that almost always suffices, and a second
    // with the exact size when it did not.
    size_t room = 128;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (text_reserve(out, room) != 0) return -1;
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(out->data + out->len, out->cap - out->len, fmt, ap);
        va_end(ap);
        if (n < 0) return -1;
        if ((size_t)n < out->cap - out->len) {
            out->len += (size_t)n;
            return 0;
        }
        room = (size_t)n;
    }
    return -1;
}

// Escapes what the format escapes in a text: backslash and newline always, the double
// quote only inside label values (HELP text takes it as it is).
static int text_escaped(metrics_text *out, const char *s, bool quote) {
    for (const char *run = s;; s++) {
        const char *esc = nullptr;
        if (*s == '\\')
            esc = "\\\\";
        else if (*s == '\n')
            esc = "\\n";
        else if (*s == '"' && quote)
            esc = "\\\"";
        else if (*s != '\0')
            continue;
        if (text_append(out, run, (size_t)(s - run)) != 0) return -1;
        if (!esc) return 0;
        if (text_puts(out, esc) != 0) return -1;
        run = s + 1;
    }
}

int metrics_append_label_value(metrics_text *out, const char *s) {
    if (text_puts(out, "\"") != 0 || text_escaped(out, s, true) != 0) return -1;
    return text_puts(out, "\"");
}

// The two comment lines every metric starts with; its samples follow them at once.
static int family_begin(metrics_text *out, const char *name, bool counter, const char *help) {
    if (text_printf(out, "# HELP %s ", name) != 0 || text_escaped(out, help, false) != 0) return -1;
    return text_printf(out, "\n# TYPE %s %s\n", name, counter ? "counter" : "gauge");
}

static int sample_u64(metrics_text *out, const char *name, uint64_t v) {
    return text_printf(out, "%s %llu\n", name, (unsigned long long)v);
}

// Milliseconds as seconds with three decimals, written from integers: printf's %f
// would follow the locale's decimal point, which the format does not.
static int sample_ms_as_s(metrics_text *out, const char *name, uint64_t ms) {
    return text_printf(out, "%s %llu.%03llu\n", name, (unsigned long long)(ms / 1000),
                       (unsigned long long)(ms % 1000));
}

// One metric with a label per bucket, in the order of the library's label table.
static int family_buckets(metrics_text *out, const char *name, const char *label, const char *const *labels,
                          const uint64_t *values, int n) {
    for (int i = 0; i < n; i++) {
        if (text_printf(out, "%s{%s=", name, label) != 0 || metrics_append_label_value(out, labels[i]) != 0 ||
            text_printf(out, "} %llu\n", (unsigned long long)values[i]) != 0)
            return -1;
    }
    return 0;
}

// --- the server's figures -------------------------------------------------------------

enum metric_source {
    FROM_STATS,   // arg: offset of a uint64_t in wsr_stats
    FROM_COUNTER, // arg: a wsr_counter
    CLOSE_CODES,  // wsr_stats.closes, labelled code=
    HS_STATUSES,  // wsr_stats.handshakes_failed, labelled status=
};

struct metric_def {
    const char *name;
    bool counter; // else a gauge
    metric_source source;
    size_t arg;
    const char *help;
};

#define STAT(field) FROM_STATS, offsetof(wsr_stats, field)
#define COUNTER(which) FROM_COUNTER, (size_t)(which)

// Every field of wsr_stats and every wsr_counter, grouped as a reader looks for them.
static const metric_def METRICS[] = {
    {"wsreactor_connections_open", false, STAT(connections_open), "WebSocket connections open now."},
    {"wsreactor_connections_accepted_total", true, STAT(connections_total), "TCP connections accepted."},
    {"wsreactor_accept_errors_total", true, STAT(accept_errors), "Failed accept calls (other than interrupts)."},
    {"wsreactor_accept_pauses_total", true, COUNTER(WSR_COUNTER_ACCEPT_PAUSES),
     "Times accepting paused because the process ran out of file descriptors."},
    {"wsreactor_handshakes_in_progress", false, COUNTER(WSR_COUNTER_HANDSHAKES),
     "Connections sending a request (an upgrade or plain HTTP) or waiting for its answer."},
    {"wsreactor_http_requests_total", true, COUNTER(WSR_COUNTER_HTTP_REQUESTS),
     "Plain HTTP requests answered by routes (health, metrics, the application's)."},
    {"wsreactor_handshakes_completed_total", true, STAT(handshakes_ok),
     "Upgrade requests answered 101: WebSocket connections opened."},
    {"wsreactor_handshakes_failed_total", true, HS_STATUSES, 0,
     "Upgrade requests refused, by the HTTP status answered (timeout: the request was not complete in time)."},
    {"wsreactor_upgrades_refused_total", true, COUNTER(WSR_COUNTER_UPGRADES_REFUSED),
     "Upgrades the application refused, with any status (429 included)."},
    {"wsreactor_handshakes_shed_total", true, COUNTER(WSR_COUNTER_HANDSHAKES_SHED),
     "Connections answered 503 at once because too many were in their handshake (also counted as status 503)."},
    {"wsreactor_closes_total", true, CLOSE_CODES, 0,
     "WebSocket connections closed, by the close code reported to the application (1006: no close frame)."},
    {"wsreactor_protocol_errors_total", true, STAT(protocol_errors),
     "Connections failed with close code 1002, 1007 or 1009."},
    {"wsreactor_close_timeouts_total", true, STAT(close_timeouts),
     "Connections cut because the peer did not finish the close handshake in time."},
    {"wsreactor_pings_sent_total", true, STAT(pings_sent), "Heartbeat pings sent to silent connections."},
    {"wsreactor_stale_cuts_total", true, STAT(stale_cuts),
     "Connections cut because they stayed silent past the pong timeout."},
    {"wsreactor_idle_closes_total", true, STAT(idle_closes),
     "Connections closed with 1001 after the idle timeout passed without a message."},
    {"wsreactor_slow_consumer_closes_total", true, STAT(slow_closes),
     "Connections closed with 1008 by the slow-consumer policy."},
    {"wsreactor_slow_consumer_drops_total", true, STAT(slow_drops),
     "Messages not sent to a receiver that was too far behind (policy drop)."},
    {"wsreactor_messages_received_total", true, STAT(messages_in), "Whole messages received."},
    {"wsreactor_messages_sent_total", true, STAT(messages_out), "Whole messages sent."},
    {"wsreactor_messages_compressed_received_total", true, STAT(messages_compressed_in),
     "Messages received compressed with permessage-deflate."},
    {"wsreactor_messages_compressed_sent_total", true, STAT(messages_compressed_out),
     "Messages sent compressed with permessage-deflate."},
    {"wsreactor_broadcast_sends_total", true, STAT(broadcast_sends),
     "Prepared (broadcast) messages queued to a connection."},
    {"wsreactor_broadcast_compressions_total", true, STAT(broadcast_compressions),
     "Prepared messages compressed once for all their receivers."},
    {"wsreactor_bytes_received_total", true, STAT(bytes_in), "Bytes read from connections (after TLS decryption), HTTP included."},
    {"wsreactor_bytes_sent_total", true, STAT(bytes_out), "Bytes written to connections (before TLS encryption), HTTP included."},
    {"wsreactor_tls_handshakes_total", true, COUNTER(WSR_COUNTER_TLS_HANDSHAKES), "TLS handshakes completed."},
    {"wsreactor_tls_failures_total", true, COUNTER(WSR_COUNTER_TLS_FAILURES),
     "TLS connections that failed: bad handshakes or records, plaintext HTTP on a TLS port."},
    {"wsreactor_memory_held_bytes", false, COUNTER(WSR_COUNTER_MEMORY_BYTES),
     "Bytes held for peers now (incomplete messages, held input, queued copies), against the memory budget."},
    {"wsreactor_memory_closes_total", true, COUNTER(WSR_COUNTER_MEMORY_CLOSES),
     "Connections closed with 1013 because the memory budget was reached."},
    {"wsreactor_log_lines_suppressed_total", true, COUNTER(WSR_COUNTER_LOG_SUPPRESSED),
     "Log lines suppressed by rate limiting."},
};

// A field added to wsr_stats would otherwise go unexported without a sound: count the
// uint64_t fields the table covers (the two bucket arrays and 19 single fields).
static_assert(sizeof(wsr_stats) == (WSR_CLOSE_BUCKETS + WSR_HS_BUCKETS + 19) * sizeof(uint64_t),
              "wsr_stats changed: export the new field in METRICS");

static int render_server(wsr_server *srv, metrics_text *out) {
    wsr_stats st;
    wsr_server_stats(srv, &st);
    for (const metric_def &m : METRICS) {
        if (family_begin(out, m.name, m.counter, m.help) != 0) return -1;
        int r = 0;
        switch (m.source) {
        case FROM_STATS: {
            uint64_t v;
            memcpy(&v, (const char *)&st + m.arg, sizeof v);
            r = sample_u64(out, m.name, v);
            break;
        }
        case FROM_COUNTER: r = sample_u64(out, m.name, wsr_server_counter(srv, (wsr_counter)m.arg)); break;
        case CLOSE_CODES:
            r = family_buckets(out, m.name, "code", wsr_stats_close_labels, st.closes, WSR_CLOSE_BUCKETS);
            break;
        case HS_STATUSES:
            r = family_buckets(out, m.name, "status", wsr_stats_hs_labels, st.handshakes_failed, WSR_HS_BUCKETS);
            break;
        }
        if (r != 0) return -1;
    }
    return 0;
}

// --- the messaging layer --------------------------------------------------------------

// A field of wsr_messaging_stats; entries of one name in a row are one metric whose
// samples carry the label kind= (label_value non-NULL).
struct msg_metric_def {
    const char *name;
    bool counter;
    size_t offset; // of a uint64_t in wsr_messaging_stats
    const char *label_value;
    const char *help;
};

#define MSG(field) offsetof(wsr_messaging_stats, field)

// What the layer holds now are gauges; what it counted since it started, counters.
static const msg_metric_def MSG_METRICS[] = {
    {"wsreactor_messaging_clients", false, MSG(clients), nullptr,
     "Clients connected to the messaging endpoint (/ws) now."},
    {"wsreactor_messaging_authenticated_clients", false, MSG(authenticated), nullptr,
     "Messaging clients authenticated now (at the handshake or in-band)."},
    {"wsreactor_channels", false, MSG(channels), nullptr, "Channels that exist now."},
    {"wsreactor_subscriptions", false, MSG(subscriptions), nullptr,
     "Subscriptions now: one per client and channel it is subscribed to."},
    {"wsreactor_history_entries", false, MSG(history_entries), nullptr,
     "Publications held in channel histories for recovery."},
    {"wsreactor_history_bytes", false, MSG(history_bytes), nullptr,
     "Bytes channel histories hold, against the history memory limit."},
    {"wsreactor_publications_total", true, MSG(publications), nullptr,
     "Publications made on channels, by clients and the backend."},
    {"wsreactor_deliveries_total", true, MSG(deliveries), nullptr, "Publications queued to subscribers."},
    {"wsreactor_direct_messages_total", true, MSG(direct_messages), nullptr,
     "Direct messages sent to a client by id."},
    {"wsreactor_bad_messages_total", true, MSG(bad_messages), nullptr,
     "Client messages answered with an error envelope (those refused by a namespace's rule included; those over a "
     "rate are in wsreactor_rate_limited_total)."},
    {"wsreactor_rate_limited_total", true, MSG(rate_limited), "message",
     "Refused over a rate limit: messages over a connection's bucket (kind=\"message\"), upgrades answered 429 "
     "(kind=\"handshake\")."},
    {"wsreactor_rate_limited_total", true, MSG(handshakes_limited), "handshake", nullptr},
    {"wsreactor_auth_failures_total", true, MSG(auth_failures), nullptr,
     "Authentication failures: upgrades answered 401 and auth messages refused."},
    {"wsreactor_forbidden_total", true, MSG(forbidden), nullptr,
     "Channel operations refused by a namespace's permissions."},
    {"wsreactor_api_requests_total", true, MSG(api_requests), nullptr, "Backend HTTP API calls."},
    {"wsreactor_broker_up", false, MSG(broker_up), nullptr,
     "1 while both connections to the Redis broker (--broker) are up; 0 when it is down or none is configured."},
    {"wsreactor_broker_reconnects_total", true, MSG(broker_reconnects), nullptr,
     "Times the connections to the Redis broker were made again after being lost."},
    {"wsreactor_broker_errors_total", true, MSG(broker_errors), nullptr,
     "Broker commands Redis failed or never answered, and operations refused (unavailable) while it was down."},
};

// As for wsr_stats: a field added to wsr_messaging_stats must be exported here. Compared
// with a struct of the same members rather than a sum of sizes: on 32-bit ARM the 4-byte
// size is padded to the 8-byte alignment of what follows.
struct messaging_stats_layout {
    size_t size;
    uint64_t counters[18];
};
static_assert(sizeof(wsr_messaging_stats) == sizeof(messaging_stats_layout),
              "wsr_messaging_stats changed: export the new field in MSG_METRICS");

static int render_messaging(const wsr_messaging_stats *ms, metrics_text *out) {
    const char *open = nullptr; // the metric whose HELP and TYPE are written
    for (const msg_metric_def &m : MSG_METRICS) {
        // A struct from an older, shorter layout: its missing figures are left out.
        if (m.offset + sizeof(uint64_t) > ms->size) continue;
        if (!open || strcmp(open, m.name) != 0) {
            if (family_begin(out, m.name, m.counter, m.help) != 0) return -1;
            open = m.name;
        }
        uint64_t v;
        memcpy(&v, (const char *)ms + m.offset, sizeof v);
        int r = m.label_value ? text_printf(out, "%s{kind=\"%s\"} %llu\n", m.name, m.label_value,
                                            (unsigned long long)v)
                              : sample_u64(out, m.name, v);
        if (r != 0) return -1;
    }
    return 0;
}

// --- the process ----------------------------------------------------------------------

static uint64_t now_unix_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

// Resident pages from /proc/self/statm (its second field). False where there is no /proc.
static bool resident_bytes(uint64_t *out) {
    FILE *f = fopen("/proc/self/statm", "re");
    if (!f) return false;
    unsigned long long size, resident;
    bool ok = fscanf(f, "%llu %llu", &size, &resident) == 2;
    fclose(f);
    long page = sysconf(_SC_PAGESIZE);
    if (!ok || page <= 0) return false;
    *out = (uint64_t)resident * (uint64_t)page;
    return true;
}

static bool open_fds(uint64_t *out) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) return false;
    uint64_t n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    // The listing includes the descriptor opendir held to read it, which is gone now.
    *out = n ? n - 1 : 0;
    return true;
}

static int render_process(uint64_t started_ms, metrics_text *out) {
    uint64_t v;
    // Without /proc the figure is left out rather than given as 0, which would be a lie.
    if (resident_bytes(&v) &&
        (family_begin(out, "process_resident_memory_bytes", false, "Resident memory size in bytes.") != 0 ||
         sample_u64(out, "process_resident_memory_bytes", v) != 0))
        return -1;
    if (open_fds(&v) &&
        (family_begin(out, "process_open_fds", false, "Number of open file descriptors.") != 0 ||
         sample_u64(out, "process_open_fds", v) != 0))
        return -1;
    if (family_begin(out, "process_start_time_seconds", false,
                     "Start time of the process since unix epoch in seconds.") != 0 ||
        sample_ms_as_s(out, "process_start_time_seconds", started_ms) != 0)
        return -1;
    // Wall-clock time can step backwards; an uptime below zero would mean nothing.
    uint64_t now = now_unix_ms();
    if (family_begin(out, "wsreactor_uptime_seconds", false, "Seconds since the process started.") != 0 ||
        sample_ms_as_s(out, "wsreactor_uptime_seconds", now > started_ms ? now - started_ms : 0) != 0)
        return -1;
    if (family_begin(out, "wsreactor_build_info", false, "The version of wsreactor running; the value is always 1.") !=
            0 ||
        text_puts(out, "wsreactor_build_info{version=") != 0 || metrics_append_label_value(out, WSR_VERSION) != 0 ||
        text_puts(out, "} 1\n") != 0)
        return -1;
    return 0;
}

int metrics_render(wsr_server *srv, const wsr_messaging_stats *msg, uint64_t started_ms, metrics_text *out) {
    if (render_server(srv, out) != 0) return -1;
    if (msg && render_messaging(msg, out) != 0) return -1;
    return render_process(started_ms, out);
}
