#include "app/web.h"

#include <stdio.h>
#include <string.h>

void web_respond(wsr_server *srv, wsr_request *req, const web_asset *a) {
    wsr_conn_id id = wsr_request_id(req);
    char headers[256];
    // Revalidated every time (no-cache), so an upgraded server's client is picked up at
    // once, and a 304 costs a few bytes when nothing changed.
    snprintf(headers, sizeof headers, "Content-Type: %s\r\nETag: %s\r\nCache-Control: no-cache\r\n", a->content_type,
             a->etag);
    wsr_str inm;
    if (wsr_request_header(req, "If-None-Match", &inm) && inm.len == strlen(a->etag) &&
        memcmp(inm.ptr, a->etag, inm.len) == 0) {
        snprintf(headers, sizeof headers, "ETag: %s\r\nCache-Control: no-cache\r\n", a->etag);
        wsr_respond(srv, id, 304, headers, nullptr, 0);
        return;
    }
    wsr_respond(srv, id, 200, headers, a->data, a->len);
}

static void on_asset(wsr_server *srv, wsr_request *req, void *) {
    wsr_str path = wsr_request_path(req);
    const web_asset *a = path.len > 1 ? web_asset_find(path.ptr + 1, path.len - 1) : nullptr;
    if (!a) {
        wsr_respond(srv, wsr_request_id(req), 404, "Content-Type: text/plain\r\n", "not found\n", 10);
        return;
    }
    web_respond(srv, req, a);
}

int web_register(wsr_server *srv) {
    static const char *const PATHS[] = {"/client.js", "/client.d.ts"};
    for (const char *path : PATHS) {
        if (!web_asset_find(path + 1, strlen(path) - 1)) continue;
        int r = wsr_server_http(srv, path, WSR_HTTP_GET, on_asset, nullptr);
        if (r != WSR_OK) return r;
    }
    return WSR_OK;
}
