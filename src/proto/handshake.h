// The WebSocket opening handshake (RFC 6455 §4.2) on a parsed HTTP/1.1 request
// (proto/h1): the upgrade checks, the subprotocol, Sec-WebSocket-Accept and the 101.
#pragma once

#include "proto/h1.h"

enum { HS_ACCEPT_LEN = 28 };

struct hs_config {
    const char *const *subprotocols; // supported, NULL-terminated; NULL for none
};

struct hs_result {
    uint16_t status;                // 101 on success, else the HTTP error status
    const char *error;              // static reason when status != 101
    char accept[HS_ACCEPT_LEN + 1]; // Sec-WebSocket-Accept, NUL-terminated
    const char *subprotocol;        // the chosen entry of cfg->subprotocols, or NULL
};

// Applies RFC 6455 §4.2.1 to a complete request: method, version, Host, Upgrade,
// Connection, Sec-WebSocket-Key and -Version; picks a subprotocol. Fills *r.
void hs_validate(const h1_parser *p, const hs_config *cfg, hs_result *r);

// Sec-WebSocket-Accept for a key (RFC 6455 §4.2.2 step 5.4): base64(SHA-1(key + GUID)).
void hs_accept_key(const char *key, size_t key_len, char out[HS_ACCEPT_LEN + 1]);

// Writes the 101 response. extensions may be NULL. Returns bytes written, or 0 if cap
// is too small.
size_t hs_write_accept(char *out, size_t cap, const hs_result *r, const char *extensions);

