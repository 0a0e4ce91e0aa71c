// Counters an operator asks about. Plain integers: one thread, no atomics.
#pragma once

#include <stdint.h>

struct server_stats {
    uint64_t accepted;          // TCP connections accepted
    uint64_t opened;            // WebSocket handshakes completed
    uint64_t closed;            // connections torn down (any reason)
    uint64_t handshake_failed;  // upgrade requests answered with an HTTP error
    uint64_t handshake_timeout; // requests not completed in time
    uint64_t close_timeout;     // peers that did not finish the close handshake
    uint64_t protocol_errors;   // connections failed with 1002/1007/1009
    uint64_t msgs_in, msgs_out;
    uint64_t bytes_in, bytes_out;
    uint64_t accept_errors;     // accept() failures, e.g. out of file descriptors
};
