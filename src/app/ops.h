// The daemon's operations endpoints on every listener: GET /healthz for load balancers
// and orchestrators, GET /metrics for Prometheus.
#pragma once

#include <stdint.h>

#include "wsr/messaging.h"
#include "wsr/wsr.h"

struct ops_state {
    uint64_t started_ms;      // wall clock when the process started (uptime, start time)
    const wsr_messaging *msg; // its figures in /metrics; NULL: no messaging metrics
};

// Registers both routes. WSR_OK or the error of wsr_server_http.
int ops_register(wsr_server *srv, ops_state *st);
