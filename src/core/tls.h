// TLS for connections from TLS listeners (wss://, https://), with OpenSSL on the
// connection's own non-blocking socket: certificates chosen by SNI, reloaded without a
// restart, and the transport operations that put TLS under the connection's byte path.
//
// A connection's only state is its SSL object, kept in an array by slot beside the
// table (struct conn does not grow). SSL_MODE_RELEASE_BUFFERS gives back the record
// buffers whenever they are empty, so an idle TLS connection holds no buffer.
#pragma once

#include <stdint.h>

#include "core/transport.h"
#include "wsr/wsr.h"

struct conn;
struct ssl_st;
struct ssl_ctx_st;

// The most plaintext one TLS record carries. A TLS connection reads at least this much
// at a time, so that a record never leaves decrypted bytes behind in OpenSSL when the
// read stops (a paused reader, a used-up round), where no readiness event would find them.
enum { TLS_RECORD_MAX = 16384 };

struct tls_cert {
    char *cert_file; // PEM: the certificate, then its chain
    char *key_file;  // PEM private key
};

struct tls_state {
    tls_cert *certs;       // as added; the first serves clients that name no known host
    struct ssl_ctx_st **ctxs; // one per certificate, rebuilt together on reload
    uint16_t ncerts;
    struct ssl_st **ssl;   // each TLS connection's session, by slot
    uint32_t ssl_cap;
    uint64_t handshakes;   // TLS handshakes completed
    uint64_t failures;     // TLS connections that failed (bad records, plaintext, alerts)
};

// Whether this build has TLS (meson option tls; core/tls_disabled.cpp stands in when not).
bool tls_supported(void);

void tls_init(tls_state *t);
void tls_free(tls_state *t);
// Loads a certificate (chain) and its key for new handshakes. WSR_OK, or WSR_EINVAL with
// a log line naming the file and OpenSSL's reason.
int tls_add_cert(tls_state *t, const char *cert_file, const char *key_file);
// Reads every certificate and key again. All or nothing: when one fails, the log says
// why and the certificates in use stay. Open connections keep their sessions.
int tls_reload(tls_state *t);
// Starts a server-side session on an accepted connection. False when out of memory.
bool tls_conn_start(wsr_server *srv, conn *c);
// Whether the connection's TLS handshake has completed.
bool tls_conn_ready(const wsr_server *srv, const conn *c);

// Reads and writes through the connection's session.
extern const transport_ops transport_tls;
