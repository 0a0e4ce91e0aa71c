// The live status page: GET /status (and GET /) serves src/web/status.html, whose script
// opens the WebSocket /status/live and draws what the server sends there once a second
// (docs/status.md). Both are behind the backend API keys (--api-key), given as ?key=
// because a browser cannot put an Authorization header on a page load or a WebSocket;
// with no key configured both answer 403, a wrong or missing key 401.
//
// One status page per process (the daemon's): its state is static, so that a start that
// fails halfway leaves nothing allocated behind.
#pragma once

#include <stdint.h>

#include "app/config.h"
#include "wsr/messaging.h"
#include "wsr/wsr.h"

struct uv_loop_s;

// Routes GET /status and GET / and the endpoint /status/live. cfg (the configuration
// summary: listeners, limits, auth mode; never a secret) and keys (NULL-terminated) are
// kept, and must outlive the server; started_ms is the process's start (unix ms), for
// the uptime. WSR_OK or the error of wsr_server_http / wsr_server_endpoint.
int status_register(wsr_server *srv, struct uv_loop_s *loop, wsr_messaging *msg, const config *cfg,
                    const char *const *keys, uint64_t started_ms);
// Closes the status timer (after wsr_server_free; run the loop afterwards).
void status_free(void);
