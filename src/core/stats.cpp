#include "core/stats.h"

#include "core/log.h"
#include "core/server.h"

const char *const wsr_stats_close_labels[WSR_CLOSE_BUCKETS] = {
    "1000", "1001", "1002", "1003", "1006", "1007", "1008", "1009", "1011", "other", "1005"};
const char *const wsr_stats_hs_labels[WSR_HS_BUCKETS] = {"400", "401", "403", "404", "405",
                                                         "426", "431", "503", "timeout"};

int wsr_stats_close_bucket(uint16_t code) {
    static const uint16_t codes[] = {1000, 1001, 1002, 1003, 1006, 1007, 1008, 1009, 1011};
    for (int i = 0; i < 9; i++)
        if (codes[i] == code) return i;
    return code == 1005 ? 10 : 9; // 1005: the peer's close frame had no code
}

int stats_hs_bucket_exact(uint16_t status) {
    static const uint16_t statuses[] = {400, 401, 403, 404, 405, 426, 431, 503};
    for (int i = 0; i < 8; i++)
        if (statuses[i] == status) return i;
    return -1;
}

int stats_hs_bucket(uint16_t status) {
    int b = stats_hs_bucket_exact(status);
    return b >= 0 ? b : 0; // anything else malformed counts as a bad request
}

void wsr_server_stats(const wsr_server *srv, wsr_stats *out) {
    *out = srv->stats;
    out->connections_open = srv->table_open;
}

uint64_t wsr_server_counter(const wsr_server *srv, wsr_counter which) {
    switch (which) {
    case WSR_COUNTER_MEMORY_BYTES: return srv->mem_held;
    case WSR_COUNTER_MEMORY_CLOSES: return srv->counters.memory_closes;
    case WSR_COUNTER_HANDSHAKES_SHED: return srv->counters.handshakes_shed;
    case WSR_COUNTER_ACCEPT_PAUSES: return srv->counters.accept_pauses;
    case WSR_COUNTER_LOG_SUPPRESSED: return log_suppressed_total();
    case WSR_COUNTER_HANDSHAKES: return srv->handshakes;
    case WSR_COUNTER_HTTP_REQUESTS: return srv->http.requests;
    case WSR_COUNTER_UPGRADES_REFUSED: return srv->http.refused;
    case WSR_COUNTER_TLS_HANDSHAKES: return srv->tls.handshakes;
    case WSR_COUNTER_TLS_FAILURES: return srv->tls.failures;
    }
    return 0;
}
