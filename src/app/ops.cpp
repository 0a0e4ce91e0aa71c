#include "app/ops.h"

#include <stdlib.h>

#include "app/metrics.h"

// Alive and serving: the loop answered, which is what a health check can know.
static void on_healthz(wsr_server *srv, wsr_request *req, void *) {
    static const char body[] = "{\"status\":\"ok\"}";
    wsr_respond(srv, wsr_request_id(req), 200, "Content-Type: application/json\r\nCache-Control: no-store\r\n", body,
                sizeof body - 1);
}

static void on_metrics(wsr_server *srv, wsr_request *req, void *user) {
    const ops_state *st = (const ops_state *)user;
    metrics_text text = {};
    wsr_messaging_stats ms;
    ms.size = sizeof ms;
    if (st->msg) wsr_messaging_get_stats(st->msg, &ms);
    if (metrics_render(srv, st->msg ? &ms : nullptr, st->started_ms, &text) != 0) {
        static const char body[] = "out of memory\n";
        wsr_respond(srv, wsr_request_id(req), 503, "Content-Type: text/plain\r\nRetry-After: 1\r\n", body,
                    sizeof body - 1);
    } else {
        wsr_respond(srv, wsr_request_id(req), 200, "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n",
                    text.data, text.len);
    }
    free(text.data);
}

int ops_register(wsr_server *srv, ops_state *st) {
    int r = wsr_server_http(srv, "/healthz", WSR_HTTP_GET, on_healthz, st);
    if (r == WSR_OK) r = wsr_server_http(srv, "/metrics", WSR_HTTP_GET, on_metrics, st);
    return r;
}
