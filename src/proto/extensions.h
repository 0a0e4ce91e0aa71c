// RFC 7692 permessage-deflate negotiation: Sec-WebSocket-Extensions offers in, the
// agreed parameters and the response header value out.
//
// An offer is declined (skipped) when it has an unknown parameter, a duplicate, or an
// invalid value (§7); the first acceptable offer wins, across any number of offers
// and header lines. Pure code: no allocation, no zlib.
#pragma once

#include <stddef.h>
#include <stdint.h>

enum pmd_mode : uint8_t {
    PMD_OFF,       // never negotiate
    PMD_SHARED,    // no context takeover either way: one stream pair serves everyone
    PMD_DEDICATED, // per-connection streams, context takeover when the client allows
};

struct pmd_config {
    uint8_t mode;
    uint8_t server_window_bits; // largest window our deflater uses, 8..15
    uint8_t client_window_bits; // largest window we ask the client to use, 8..15
                                // (only when it offered client_max_window_bits)
};

struct pmd_params {
    bool enabled;
    bool server_no_context_takeover; // we reset our deflater after every message
    bool client_no_context_takeover; // the client resets; our inflater may too
    bool server_window_requested;    // the offer had server_max_window_bits: we must answer it
    uint8_t server_window_bits;      // what the response announces (8..15)
    uint8_t client_window_bits;      // window the client may use; our inflater's size
};

// Parses one Sec-WebSocket-Extensions value (several offers, comma-separated) and,
// unless an earlier value already produced an agreement (*out enabled), tries each
// permessage-deflate offer in order. Call once per header line.
void pmd_negotiate(const pmd_config *cfg, const char *value, size_t len, pmd_params *out);

// Writes the response's Sec-WebSocket-Extensions value for agreed parameters.
// Returns its length, or 0 if cap is too small.
size_t pmd_write_response(const pmd_params *p, char *out, size_t cap);
