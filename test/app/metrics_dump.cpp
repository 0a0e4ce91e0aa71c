// Renders the /metrics text of a fresh server (default options, not listening) with a
// fresh messaging layer's figures (all 0) to stdout, for test_metrics_parse.py to read with prometheus_client's parser.
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <uv.h>

#include "app/metrics.h"
#include "wsr/messaging.h"
#include "wsr/wsr.h"

int main(void) {
    wsr_log_set_level(WSR_LOG_WARN); // stdout is the text; stderr only for trouble
    uv_loop_t loop;
    wsr_server *srv = nullptr;
    if (uv_loop_init(&loop) != 0 || wsr_server_new(&loop, nullptr, &srv) != WSR_OK) {
        fprintf(stderr, "metrics_dump: cannot create a server\n");
        return 1;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    // A start a few seconds back, so that the uptime is not 0.
    uint64_t started_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 - 2500;
    // The messaging layer's figures as a fresh daemon has them: all 0.
    wsr_messaging_stats ms = {};
    ms.size = sizeof ms;
    metrics_text out = {};
    int r = metrics_render(srv, &ms, started_ms, &out);
    if (r == 0 && fwrite(out.data, 1, out.len, stdout) != out.len) r = -1;
    if (r != 0) fprintf(stderr, "metrics_dump: rendering failed\n");
    free(out.data);
    wsr_server_free(srv);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return r == 0 && fflush(stdout) == 0 ? 0 : 1;
}
