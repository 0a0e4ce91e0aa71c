// Serves the files built into the binary (src/web/) over HTTP: the browser client at
// /client.js (and its TypeScript declarations at /client.d.ts).
#pragma once

#include "web/assets.h"
#include "wsr/wsr.h"

// Answers a GET or HEAD with the asset: 200, or 304 when the client's If-None-Match
// names its ETag. For routes that serve an asset after checks of their own.
void web_respond(wsr_server *srv, wsr_request *req, const web_asset *a);
// Routes /client.js and /client.d.ts. WSR_OK or the error of wsr_server_http.
int web_register(wsr_server *srv);
