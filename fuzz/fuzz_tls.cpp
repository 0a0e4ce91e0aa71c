// Fuzz target for the server's byte path through real TLS (src/core/tls.cpp under
// src/core/conn.cpp), with an in-process OpenSSL client on the other end of a socketpair.
//
// At start-up the harness makes two throwaway P-256 keys with self-signed certificates
// (CN and SAN "default.example" and "localhost") and writes them to a temporary
// directory once. For every input it creates a server on a fresh uv loop with the echo
// handler (src/app/echo.cpp) on "/echo", adds both certificates (so SNI picks one) and a
// listener flagged WSR_LISTEN_TLS (nothing listens), makes a
// socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK) and adopts one end with
// server_adopt_from. The other end belongs to the client: an SSL object on memory BIOs,
// whose records the harness moves to and from the socket itself, so that it sees every
// byte on the wire and can put its own bytes between records.
//
// The harness pumps both sides in steps until nothing moves. A client step: handshake,
// the next event or SSL_write of its script, send what it can, read (as much as the
// input allows), decrypt. A server step does what the loop does: the backlog pass (one
// round for connections holding input over, as on_backlog), the flush pass
// (server_flush), then readiness from poll(2) on the server's socket handled as
// on_event does (conn_flush on writability, conn_on_readable on readability or as the
// TLS retry). Nothing else ever reads for the server: decrypted bytes that OpenSSL
// holds must be read in the same round (transport buffered()), as no event will come
// for them. At the end: the input's end action, wsr_server_shutdown and the real loop
// (uv_run) until nothing is alive, wsr_server_free, uv_loop_close.
//
// Input layout (8 bytes of settings, then the client's script):
//   [0] bit0 TLS 1.3 (else 1.2); bit1 frames mode (the script's data are masked frames
//       the harness builds) else raw mode (the data go after the upgrade request as
//       they are); bit2 a close frame (1000 "bye") at the end of the script;
//       bits3-4 end action once everything is quiet: 0 none (the server's shutdown ends
//       it), 1 close_notify then FIN, 2 FIN without close_notify, 3 close the socket;
//       bit5 a plaintext HTTP request before the ClientHello (the server answers a
//       plaintext 400); bits6-7 SNI: none, "localhost", "default.example", "unknown.example"
//   [1] bits0-1 ALPN offered: none, http/1.1, h2, h2 + http/1.1; bits2-4 SO_SNDBUF of
//       the server's end, bits5-7 of the client's end: default, 1 (the kernel's least),
//       2048, 4096, 8192, 16384, 32768, 65536
//   [2] bits0-2 bytes the client reads per step: all, 1, 5, 17, 64, 300, 1024, 4096
//   [3] largest SSL_write (record boundaries): 0 = 40000 (several records per write),
//       else 1 + v*v; the sizes come from fuzz_splitter (small ones favoured)
//   [4..5] seed: write sizes, masking keys, fragment boundaries
//   [6] bits0-1 round budget 2048, 256 KiB (production), 600, 16384; bits2-3
//       max_backpressure 1 MiB, 1024, 4096, 64 KiB (read size is half of it, at least
//       512); bit4 slow policy drop; bits5-6 max_message 1 MiB, 125, 1000, 4096
//   [7] bit0 the events that lead the script come before the upgrade request: right
//       after the ClientHello, inside the handshake; bit1 wsr_server_reload_certificates
//       right after the adoption, bit2 once the client's handshake is done (open
//       sessions keep theirs); bit3 the server logs at debug level into a sink that
//       drops the lines (their arguments are still made: peer addresses, OpenSSL's
//       reasons); bits4-7 unused
// The script is a list of commands. A command byte k: op = k & 7, L = k >> 3 (31: then
// L = 31 + 16 * the next byte), capped at what is left of the input:
//   op 0-3, raw mode: L bytes of plaintext. Frames mode: 0 a text message (binary when
//     the L bytes are not UTF-8), 1 binary, 2 a message in 2-4 fragments, 3 a ping (at
//     most 125 bytes)
//   op 4: a garbage record: application_data, version 0x0303, L (at least 1) bytes of
//     input as its body, between two of the client's records
//   op 5: L raw bytes of input on the socket between two records
//   op 6: TLS 1.3 key update (bit3 of k: update_requested); waits for the handshake
//   op 7: ends the script: bit3 of k clear, a truncated record (the rest of the
//     plaintext, cut inside its first record at a point from L) then FIN; set, the
//     client closes its socket once its bytes are sent, with what it did not read
//
// Checks:
//   - no crash, leak (LSan), sanitizer report or SIGPIPE (the library must not raise
//     it in an embedding program: the plain transport sends with MSG_NOSIGNAL);
//   - every byte the client reads parses as TLS records (content type 20-23, version
//     3.x, length at most 2^14 + 2048): the server never writes plaintext after the
//     handshake started; the one exception is the plaintext 400 to a plaintext HTTP
//     request sent before any ClientHello (bit5 of [0]), which must then be the whole
//     stream; nothing after the server's close_notify;
//   - the certificate the client got is the one SNI asks for; ALPN is http/1.1 exactly
//     when the client offered it;
//   - the decrypted bytes are an HTTP/1.1 101 with the right Sec-WebSocket-Accept, then
//     only valid server frames (unmasked, unfragmented, control frames at most 125
//     bytes, text UTF-8, a valid close frame last), ending on a frame boundary when the
//     server ended with close_notify; the server's data messages are the client's, in
//     order, with none changed or added, and pongs answer pings;
//   - with no corruption, frames mode and limits that cannot bite (1 MiB max_message and
//     max_backpressure): every message is echoed exactly and every ping answered, and
//     a close frame from the client gets the server's close, close_notify and EOF;
//   - when the pump is quiet and the connection is still open, the server has read
//     everything: no bytes on its socket, none held decrypted by OpenSSL, no round held
//     over, not paused, nothing queued; the client has sent everything;
//   - a garbage record ends the connection: once quiet, the server's connection is gone
//     and the client saw EOF (and maybe an alert), with no help from the client (no FIN);
//   - an end action that closes ends the connection; the pump ends within STEP_LIMIT
//     steps; wsr_server_shutdown completes (callback once, no connection left) and
//     uv_loop_close returns 0; no write after the transport was shut down.
//
// Environment: FUZZ_TLS_TRACE=1 prints every pump step and transport call; FUZZ_DUMP_OUTPUT=1 the client's view at the end; FUZZ_LOG_DEBUG=1
// the server's log.
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "app/echo.h"
#include "core/conn.h"
#include "core/conn_table.h"
#include "core/server.h"
#include "core/tls.h"
#include "fuzz_util.h"
#include "ws_checks.h"
#include "proto/frame.h"
#include "proto/utf8.h"
#include "wsr/wsr.h"

enum {
    SETTINGS = 8,
    STEP_LIMIT = 300000,   // steps of one pump; the inputs need a few thousand at most
    SOCKOUT_HIGH = 65536,  // the client stops making records while this much is unsent
    RECORD_MAX = 16384 + 2048,
    MAX_EVENTS = 64,
};

static const char ACCEPT_KEY[] = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="; // RFC 6455 §1.3's example
static const char REQUEST[] = "GET /echo HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                              "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                              "Sec-WebSocket-Version: 13\r\n\r\n";
static const char PLAIN_HTTP[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";

// --- certificates, made once --------------------------------------------------------

static const char *const CERT_NAMES[2] = {"default.example", "localhost"};

struct tls_files {
    char dir[64];
    char cert[2][128], key[2][128];
    X509 *x509[2];
    pid_t owner; // only the process that made the files removes them (replay forks)
    SSL_CTX *client_ctx;
};
static tls_files F;

static void remove_files() {
    if (getpid() != F.owner) return;
    for (int i = 0; i < 2; i++) {
        unlink(F.cert[i]);
        unlink(F.key[i]);
    }
    rmdir(F.dir);
}

static X509 *make_cert(EVP_PKEY *pk, const char *name, long serial) {
    X509 *x = X509_new();
    FUZZ_CHECK(x != nullptr, "X509_new");
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 3650L * 24 * 3600);
    X509_set_pubkey(x, pk);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)name, -1, -1, 0);
    X509_set_issuer_name(x, n);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x, x, nullptr, nullptr, 0);
    char san[80];
    snprintf(san, sizeof san, "DNS:%s", name);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_alt_name, san);
    FUZZ_CHECK(e != nullptr, "subjectAltName");
    X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    FUZZ_CHECK(X509_sign(x, pk, EVP_sha256()) > 0, "X509_sign");
    return x;
}

static void on_sigpipe(int) {
    // Our client sends with MSG_NOSIGNAL: this came from a write of the server's.
    static const char msg[] = "fuzz_tls: check failed: SIGPIPE raised by a server write to a closed peer "
                              "(OpenSSL's socket BIO writes with write(2), without MSG_NOSIGNAL)\n";
    (void)!write(2, msg, sizeof msg - 1);
    abort();
}

static void init_once() {
    if (F.owner) return;
    F.owner = getpid();
    signal(SIGPIPE, on_sigpipe);
    snprintf(F.dir, sizeof F.dir, "/tmp/fuzz_tls.XXXXXX");
    FUZZ_CHECK(mkdtemp(F.dir) != nullptr, "mkdtemp: %s", strerror(errno));
    atexit(remove_files);
    F.client_ctx = SSL_CTX_new(TLS_client_method());
    FUZZ_CHECK(F.client_ctx != nullptr, "client context");
    SSL_CTX_set_verify(F.client_ctx, SSL_VERIFY_PEER, nullptr);
    X509_STORE *store = SSL_CTX_get_cert_store(F.client_ctx);
    for (int i = 0; i < 2; i++) {
        EVP_PKEY *pk = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
        FUZZ_CHECK(pk != nullptr, "EVP_PKEY_Q_keygen");
        F.x509[i] = make_cert(pk, CERT_NAMES[i], 1000 + i);
        snprintf(F.cert[i], sizeof F.cert[i], "%s/cert%d.pem", F.dir, i);
        snprintf(F.key[i], sizeof F.key[i], "%s/key%d.pem", F.dir, i);
        FILE *f = fopen(F.cert[i], "w");
        FUZZ_CHECK(f && PEM_write_X509(f, F.x509[i]) == 1, "writing %s", F.cert[i]);
        fclose(f);
        f = fopen(F.key[i], "w");
        FUZZ_CHECK(f && PEM_write_PrivateKey(f, pk, nullptr, nullptr, 0, nullptr, nullptr) == 1, "writing %s",
                   F.key[i]);
        fclose(f);
        EVP_PKEY_free(pk);
        FUZZ_CHECK(X509_STORE_add_cert(store, F.x509[i]) == 1, "trust store");
    }
}

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
    init_once();
    return 0;
}

// --- the script ---------------------------------------------------------------------

enum ev_kind : uint8_t { EV_GARBAGE_RECORD, EV_GARBAGE_RAW, EV_KEY_UPDATE, EV_TRUNCATE, EV_ABORT };

struct script_event {
    size_t at; // plaintext offset: the event comes once everything before it was written
    uint8_t kind;
    uint8_t arg;
    const uint8_t *d;
    size_t n;
};

struct script {
    fuzz_trace pt;    // the plaintext the client sends: the request, then frames or raw bytes
    script_event ev[MAX_EVENTS];
    size_t nev;
    fuzz_trace msgs;  // frames mode: the data messages sent (log_message records)
    fuzz_trace pings; // frames mode: the pings sent
    bool garbage_record, corrupt, ends_early;
    bool close_sent;
};

static uint32_t xorshift(uint32_t *s) {
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

// A masked client frame, written by the harness (not frame_write_header: the code under
// test does not build the client's side).
static void put_frame(fuzz_trace *t, uint8_t op, bool fin, const uint8_t *p, size_t n, uint32_t *rng) {
    uint8_t h[14];
    size_t hn = 0;
    h[hn++] = (uint8_t)((fin ? 0x80 : 0) | op);
    if (n < 126) {
        h[hn++] = (uint8_t)(0x80 | n);
    } else if (n < 65536) {
        h[hn++] = 0x80 | 126;
        h[hn++] = (uint8_t)(n >> 8);
        h[hn++] = (uint8_t)n;
    } else {
        h[hn++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--) h[hn++] = (uint8_t)((uint64_t)n >> (8 * i));
    }
    uint32_t k = xorshift(rng);
    uint8_t key[4] = {(uint8_t)k, (uint8_t)(k >> 8), (uint8_t)(k >> 16), (uint8_t)(k >> 24)};
    memcpy(h + hn, key, 4);
    hn += 4;
    fuzz_trace_put(t, h, hn);
    for (size_t i = 0; i < n; i++) fuzz_trace_u8(t, p[i] ^ key[i & 3]);
}

static void build_script(script *sc, const uint8_t *d, size_t n, bool frames, bool close_frame, bool events_first,
                         uint32_t seed) {
    memset(sc, 0, sizeof *sc);
    // The request goes first, or (events_first) after the events that lead the script:
    // those then come right after the ClientHello, in the handshake.
    bool request_out = false;
    if (!events_first) {
        fuzz_trace_put(&sc->pt, REQUEST, sizeof REQUEST - 1);
        request_out = true;
    }
    uint32_t rng = seed * 2654435761u + 77u;
    if (rng == 0) rng = 1;
    size_t pos = 0;
    while (pos < n) {
        uint8_t k = d[pos++];
        uint8_t op = k & 7;
        size_t len = k >> 3;
        if (len == 31 && pos < n) len = 31 + 16 * (size_t)d[pos++];
        if (len > n - pos) len = n - pos;
        const uint8_t *p = d + pos;
        if (!request_out && (op <= 3 || op == 7)) {
            fuzz_trace_put(&sc->pt, REQUEST, sizeof REQUEST - 1);
            request_out = true;
        }
        if (op <= 3) {
            pos += len;
            if (!frames) {
                fuzz_trace_put(&sc->pt, p, len);
                continue;
            }
            bool text = utf8_complete(utf8_validate(UTF8_ACCEPT, p, len));
            if (op == 3) {
                if (len > 125) len = 125;
                put_frame(&sc->pt, WS_OP_PING, true, p, len, &rng);
                log_message(&sc->pings, WS_OP_PING, p, len);
                continue;
            }
            uint8_t opcode = (op == 1 || !text) ? WS_OP_BINARY : WS_OP_TEXT;
            if (op == 2) {
                unsigned frags = 2 + xorshift(&rng) % 3;
                size_t at = 0;
                for (unsigned f = 0; f < frags; f++) {
                    size_t take = f + 1 == frags ? len - at : (len - at) ? xorshift(&rng) % (len - at + 1) : 0;
                    put_frame(&sc->pt, f ? (uint8_t)WS_OP_CONT : opcode, f + 1 == frags, p + at, take, &rng);
                    at += take;
                }
            } else {
                put_frame(&sc->pt, opcode, true, p, len, &rng);
            }
            log_message(&sc->msgs, opcode, p, len);
            continue;
        }
        if (op == 7) {
            sc->ends_early = true;
            sc->corrupt = true;
            if (sc->nev < MAX_EVENTS)
                sc->ev[sc->nev++] = {sc->pt.len, (uint8_t)(k & 8 ? EV_ABORT : EV_TRUNCATE), (uint8_t)(k >> 3), d + pos,
                                     n - pos};
            // The plaintext after the cut is the rest of the input, as raw bytes: it is
            // never decrypted by the server.
            break;
        }
        pos += len;
        if (sc->nev == MAX_EVENTS) continue;
        if (op == 4) {
            sc->ev[sc->nev++] = {sc->pt.len, EV_GARBAGE_RECORD, 0, p, len};
            sc->garbage_record = sc->corrupt = true;
        } else if (op == 5) {
            if (len == 0) continue;
            sc->ev[sc->nev++] = {sc->pt.len, EV_GARBAGE_RAW, 0, p, len};
            sc->corrupt = true;
        } else {
            sc->ev[sc->nev++] = {sc->pt.len, EV_KEY_UPDATE, (uint8_t)((k >> 3) & 1), nullptr, 0};
        }
    }
    if (!request_out) fuzz_trace_put(&sc->pt, REQUEST, sizeof REQUEST - 1);
    if (close_frame && !sc->ends_early) {
        static const uint8_t bye[] = {0x03, 0xe8, 'b', 'y', 'e'};
        put_frame(&sc->pt, WS_OP_CLOSE, true, bye, sizeof bye, &rng);
        sc->close_sent = true;
    }
}

// --- the client ---------------------------------------------------------------------

struct tls_client {
    SSL *ssl;
    BIO *rbio, *wbio; // owned by ssl
    int fd;
    bool tls13;
    const script *sc;
    size_t pt_pos, ev_next;
    fuzz_trace sockout; // bytes for the socket: records and garbage
    size_t sockout_pos;
    fuzz_trace raw_in;  // every byte read from the socket
    size_t rec_pos;     // raw_in parsed as records up to here
    bool plaintext_answer; // raw_in starts with the server's plaintext 400
    fuzz_trace plain_in; // decrypted
    size_t read_limit;
    fuzz_splitter split;
    bool hello_out, handshake_checked;
    bool eof, write_dead, wr_shut, closed, close_after_send;
    bool ssl_failed, close_notify, script_done;
    size_t notify_end; // raw bytes consumed by the client's SSL when close_notify arrived
    size_t fed;        // raw bytes given to rbio
    int alert;         // last alert the client received (-1 none)
    const char *fail_reason; // OpenSSL's reason when the client's SSL_read failed
    int expect_cert;
    bool alpn_offered;
};
static tls_client *g_client;
static const bool g_trace = getenv("FUZZ_TLS_TRACE") != nullptr;


static void on_info(const SSL *, int where, int ret) {
    if ((where & SSL_CB_ALERT) && (where & SSL_CB_READ) && g_client) g_client->alert = ret & 0xff;
}

static bool drain_wbio(tls_client *k) {
    bool p = false;
    uint8_t buf[4096];
    for (;;) {
        int n = BIO_read(k->wbio, buf, sizeof buf);
        if (n <= 0) break;
        p = true;
        k->hello_out = true;
        if (!k->wr_shut && !k->closed && !k->write_dead) fuzz_trace_put(&k->sockout, buf, (size_t)n);
    }
    return p;
}

static size_t unsent(const tls_client *k) { return k->sockout.len - k->sockout_pos; }

static void after_handshake(tls_client *k) {
    if (k->handshake_checked) return;
    k->handshake_checked = true;
    X509 *peer = SSL_get0_peer_certificate(k->ssl);
    FUZZ_CHECK(peer != nullptr, "no server certificate");
    FUZZ_CHECK(X509_cmp(peer, F.x509[k->expect_cert]) == 0, "SNI chose the wrong certificate (wanted %s)",
               CERT_NAMES[k->expect_cert]);
    FUZZ_CHECK(SSL_get_verify_result(k->ssl) == X509_V_OK, "certificate did not verify: %ld",
               SSL_get_verify_result(k->ssl));
    const unsigned char *alpn = nullptr;
    unsigned alen = 0;
    SSL_get0_alpn_selected(k->ssl, &alpn, &alen);
    if (k->alpn_offered)
        FUZZ_CHECK(alen == 8 && memcmp(alpn, "http/1.1", 8) == 0, "ALPN: http/1.1 offered, %.*s selected", (int)alen,
                   alen ? (const char *)alpn : "nothing");
    else
        FUZZ_CHECK(alen == 0, "ALPN: %.*s selected though http/1.1 was not offered", (int)alen, (const char *)alpn);
    FUZZ_CHECK(SSL_version(k->ssl) == (k->tls13 ? TLS1_3_VERSION : TLS1_2_VERSION), "negotiated version %x",
               SSL_version(k->ssl));
}

// The client's script: events at the current plaintext offset, else the next SSL_write.
static bool client_script(tls_client *k) {
    if (k->script_done || k->ssl_failed || k->closed || !k->hello_out) return false;
    const script *sc = k->sc;
    bool p = false;
    for (;;) {
        if (k->ev_next < sc->nev && sc->ev[k->ev_next].at <= k->pt_pos) {
            const script_event &e = sc->ev[k->ev_next];
            switch (e.kind) {
            case EV_GARBAGE_RECORD: {
                size_t n = e.n ? e.n : 1;
                uint8_t h[5] = {23, 3, 3, (uint8_t)(n >> 8), (uint8_t)n};
                fuzz_trace_put(&k->sockout, h, 5);
                if (e.n) fuzz_trace_put(&k->sockout, e.d, e.n);
                else fuzz_trace_u8(&k->sockout, 0);
                break;
            }
            case EV_GARBAGE_RAW: fuzz_trace_put(&k->sockout, e.d, e.n); break;
            case EV_KEY_UPDATE:
                if (!SSL_is_init_finished(k->ssl)) return p;
                if (k->tls13) {
                    ERR_clear_error();
                    FUZZ_CHECK(SSL_key_update(k->ssl, e.arg ? SSL_KEY_UPDATE_REQUESTED : SSL_KEY_UPDATE_NOT_REQUESTED) == 1,
                               "SSL_key_update");
                    int r = SSL_do_handshake(k->ssl); // writes the KeyUpdate
                    if (r != 1) {
                        int err = SSL_get_error(k->ssl, r);
                        if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) k->ssl_failed = true;
                    }
                    drain_wbio(k);
                }
                break;
            case EV_TRUNCATE: {
                if (!SSL_is_init_finished(k->ssl)) return p;
                // The rest of the input as one more write, cut inside its first record.
                static const uint8_t x = 'x';
                const uint8_t *d = e.n ? e.d : &x;
                size_t n = e.n ? e.n : 1, w = 0;
                drain_wbio(k);
                size_t before = k->sockout.len;
                ERR_clear_error();
                if (SSL_write_ex(k->ssl, d, n, &w) != 1) {
                    k->ssl_failed = true;
                    return true;
                }
                drain_wbio(k);
                size_t made = k->sockout.len - before;
                FUZZ_CHECK(made > 5, "a record of %zu bytes", made);
                const uint8_t *r = k->sockout.data + before;
                size_t first = 5 + ((size_t)r[3] << 8 | r[4]);
                if (first > made) first = made;
                k->sockout.len = before + 1 + e.arg % (first - 1); // 1..first-1 bytes of it
                k->close_after_send = true;
                k->script_done = true;
                return true;
            }
            case EV_ABORT:
                if (unsent(k) && !k->write_dead) return p; // what was written goes first
                close(k->fd);
                k->closed = true;
                k->script_done = true;
                return true;
            }
            k->ev_next++;
            p = true;
            continue;
        }
        if (k->pt_pos >= sc->pt.len) {
            k->script_done = k->ev_next >= sc->nev;
            return p;
        }
        if (!SSL_is_init_finished(k->ssl) || unsent(k) > SOCKOUT_HIGH) return p;
        size_t lim = sc->pt.len - k->pt_pos;
        if (k->ev_next < sc->nev && sc->ev[k->ev_next].at - k->pt_pos < lim) lim = sc->ev[k->ev_next].at - k->pt_pos;
        size_t n = fuzz_splitter_next(&k->split, lim), w = 0;
        ERR_clear_error();
        if (SSL_write_ex(k->ssl, sc->pt.data + k->pt_pos, n, &w) != 1) {
            k->ssl_failed = true; // an alert from the server, say
            return true;
        }
        k->pt_pos += w;
        drain_wbio(k);
        p = true;
    }
}

static bool client_send(tls_client *k) {
    if (k->closed) return false;
    bool p = false;
    while (unsent(k) && !k->write_dead) {
        ssize_t w = send(k->fd, k->sockout.data + k->sockout_pos, unsent(k), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            k->sockout_pos += (size_t)w;
            p = true;
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else if (w < 0 && errno == EAGAIN) {
            break;
        } else {
            FUZZ_CHECK(w < 0 && (errno == EPIPE || errno == ECONNRESET), "client send: %s", strerror(errno));
            k->write_dead = true; // the server closed its end
            p = true;
        }
    }
    if (k->sockout_pos == k->sockout.len || k->write_dead) k->sockout.len = k->sockout_pos = 0;
    if (k->close_after_send && !unsent(k) && !k->wr_shut) {
        shutdown(k->fd, SHUT_WR);
        k->wr_shut = true;
        p = true;
    }
    return p;
}

// Every byte from the server is part of a TLS record with a sane header.
static void check_records(tls_client *k) {
    const uint8_t *d = k->raw_in.data;
    size_t n = k->raw_in.len;
    if (k->plaintext_answer) return;
    while (k->rec_pos + 5 <= n) {
        const uint8_t *h = d + k->rec_pos;
        size_t len = (size_t)h[3] << 8 | h[4];
        FUZZ_CHECK(h[0] >= 20 && h[0] <= 23 && h[1] == 3 && h[2] <= 4 && len <= RECORD_MAX,
                   "the server wrote a byte stream that is not TLS records at byte %zu: %02x %02x %02x %02x %02x "
                   "(plaintext after the handshake started?)",
                   k->rec_pos, h[0], h[1], h[2], h[3], h[4]);
        if (k->rec_pos + 5 + len > n) break;
        k->rec_pos += 5 + len;
    }
}

static bool client_recv(tls_client *k, bool plaintext_allowed) {
    if (k->closed || k->eof) return false;
    bool p = false;
    size_t budget = k->read_limit ? k->read_limit : SIZE_MAX;
    uint8_t buf[16384];
    while (budget) {
        ssize_t r = recv(k->fd, buf, budget < sizeof buf ? budget : sizeof buf, MSG_DONTWAIT);
        if (r > 0) {
            bool first = k->raw_in.len == 0;
            fuzz_trace_put(&k->raw_in, buf, (size_t)r);
            if (first && plaintext_allowed && buf[0] == 'H') k->plaintext_answer = true;
            check_records(k);
            if (!k->ssl_failed && !k->close_notify) {
                FUZZ_CHECK(BIO_write(k->rbio, buf, (int)r) == (int)r, "BIO_write");
                k->fed += (size_t)r;
            }
            budget -= (size_t)r;
            p = true;
        } else if (r == 0 || errno == ECONNRESET) {
            k->eof = true;
            BIO_set_mem_eof_return(k->rbio, 0);
            return true;
        } else if (errno == EINTR) {
            continue;
        } else {
            FUZZ_CHECK(errno == EAGAIN, "client recv: %s", strerror(errno));
            break;
        }
    }
    return p;
}

static bool client_decrypt(tls_client *k) {
    if (k->ssl_failed || k->close_notify || !SSL_is_init_finished(k->ssl)) return false;
    bool p = false;
    uint8_t buf[16384];
    for (;;) {
        size_t n = 0;
        ERR_clear_error();
        if (SSL_read_ex(k->ssl, buf, sizeof buf, &n) == 1) {
            fuzz_trace_put(&k->plain_in, buf, n);
            p = true;
            continue;
        }
        int err = SSL_get_error(k->ssl, 0);
        if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) break;
        if (err == SSL_ERROR_ZERO_RETURN) {
            k->close_notify = true;
            k->notify_end = k->fed - (size_t)BIO_ctrl_pending(k->rbio);
        } else {
            k->ssl_failed = true; // an alert, a bad record or EOF without close_notify
            k->fail_reason = ERR_reason_error_string(ERR_peek_last_error());
            if (g_trace) fprintf(stderr, "  client SSL_read failed: %s\n", k->fail_reason ? k->fail_reason : "?");
        }
        return true;
    }
    return p;
}

static bool client_step(tls_client *k, bool plaintext_allowed) {
    bool p = false;
    if (!k->closed && !k->ssl_failed && !SSL_is_init_finished(k->ssl)) {
        ERR_clear_error();
        int r = SSL_do_handshake(k->ssl);
        if (r == 1) {
            after_handshake(k);
            p = true;
        } else {
            int err = SSL_get_error(k->ssl, r);
            if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
                k->ssl_failed = true;
                p = true;
            }
        }
    }
    p |= drain_wbio(k);
    p |= client_script(k);
    p |= client_send(k);
    p |= client_recv(k, plaintext_allowed);
    p |= client_decrypt(k);
    p |= drain_wbio(k); // reading may have made records to send (a KeyUpdate answer)
    p |= client_send(k);
    return p;
}

// --- the server's side: the loop's work, by hand ------------------------------------

// The TLS transport, watched: no write after the transport was shut down, and (with
// FUZZ_TLS_TRACE) every call and its answer on stderr. It calls transport_tls itself.
static bool g_shut;
static void trace_ssl_errors(const char *what, ssize_t r) {
    if (!g_trace) return;
    fprintf(stderr, "  server %s -> %zd (errno %d)", what, r, errno);
    unsigned long e = ERR_peek_last_error();
    if (e) fprintf(stderr, " [%s]", ERR_error_string(e, nullptr));
    fputc('\n', stderr);
}

static ssize_t watch_read(wsr_server *srv, conn *c, void *buf, size_t len) {
    ssize_t r = transport_tls.read(srv, c, buf, len);
    trace_ssl_errors("read", r);
    return r;
}

static ssize_t watch_writev(wsr_server *srv, conn *c, const struct iovec *iov, int iovcnt) {
    size_t want = 0;
    for (int i = 0; i < iovcnt; i++) want += iov[i].iov_len;
    FUZZ_CHECK(!g_shut, "writev of %zu bytes after the transport was shut down", want);
    errno = 0;
    ssize_t r = transport_tls.writev(srv, c, iov, iovcnt);
    if (g_trace) fprintf(stderr, "  server writev %zu in %d ->", want, iovcnt);
    trace_ssl_errors("", r);
    return r;
}

static bool watch_shutdown(wsr_server *srv, conn *c) {
    if (g_trace) fprintf(stderr, "  server shutdown\n");
    bool done = transport_tls.shutdown(srv, c);
    if (done) g_shut = true;
    return done;
}

static size_t watch_pending(wsr_server *srv, conn *c) { return transport_tls.pending(srv, c); }
static size_t watch_buffered(wsr_server *srv, conn *c) { return transport_tls.buffered(srv, c); }
static void watch_close(wsr_server *srv, conn *c) {
    if (g_trace) fprintf(stderr, "  server close\n");
    transport_tls.close(srv, c);
}

static const transport_ops watched_tls = {watch_read, watch_writev, watch_shutdown,
                                          watch_pending, watch_buffered, watch_close};

static int g_done_calls;
static void on_done(wsr_server *, uint32_t, uint32_t) { g_done_calls++; }

static conn *lookup(wsr_server *srv, wsr_conn_id id) { return conn_table_lookup(&srv->table, id); }

static int fionread(int fd) {
    int n = 0;
    return fd >= 0 && ioctl(fd, FIONREAD, &n) == 0 ? n : 0;
}

// A summary of the server's side: when it does not change, the server did nothing.
struct srv_print {
    bool alive;
    uint8_t state, flags, flags2;
    uint64_t out, in_bytes, out_bytes, handshakes, failures;
    int unread, sent, held;
};

static srv_print fingerprint(wsr_server *srv, wsr_conn_id id, int sfd, int cfd) {
    srv_print f = {};
    conn *c = lookup(srv, id);
    f.in_bytes = srv->stats.bytes_in;
    f.out_bytes = srv->stats.bytes_out;
    f.handshakes = srv->tls.handshakes;
    f.failures = srv->tls.failures;
    f.sent = fionread(cfd);
    if (!c) return f;
    f.alive = true;
    f.state = c->state;
    f.flags = c->flags;
    f.flags2 = c->flags2;
    f.out = c->out.bytes;
    f.unread = fionread(sfd);
    SSL *ssl = srv->tls.ssl[c->idx];
    f.held = ssl ? SSL_pending(ssl) : 0;
    return f;
}

// The backlog pass: server.cpp's on_backlog itself, called through the idle handle the
// server started for it (libuv keeps the callback in the handle; the handle's data is
// the server).
static void backlog_pass(wsr_server *srv) {
    FUZZ_CHECK(uv_is_active((uv_handle_t *)&srv->backlog_idle) && srv->backlog_idle.idle_cb,
               "%u connections held over, but the backlog's idle handle is stopped", srv->backlog_len);
    srv->backlog_idle.idle_cb(&srv->backlog_idle);
}

// One iteration of the loop for the connection: idle (backlog), prepare (flush), then
// poll(2) readiness handed to server.cpp's on_event (the poller's callback), as the
// poller reports it (poller.cpp: IN for in, hang-up or error; OUT for out or error),
// with the interest the server registered.
static bool server_step(wsr_server *srv, wsr_conn_id id, int sfd, int cfd) {
    srv_print before = fingerprint(srv, id, sfd, cfd);
    if (srv->backlog_len) backlog_pass(srv);
    server_flush(srv);
    conn *c = lookup(srv, id);
    if (c) {
        struct pollfd pf = {sfd, POLLIN | POLLOUT | POLLRDHUP, 0};
        FUZZ_CHECK(poll(&pf, 1, 0) >= 0, "poll: %s", strerror(errno));
        bool want_in = !(c->flags & CF_READ_PAUSED), want_out = c->flags & CF_WANT_WRITE;
        bool ev_in = (want_in && (pf.revents & (POLLIN | POLLRDHUP))) || (pf.revents & (POLLHUP | POLLERR));
        bool ev_out = (want_out && (pf.revents & POLLOUT)) || (pf.revents & POLLERR);
        uint32_t events = (ev_in ? (uint32_t)POLLER_IN : 0u) | (ev_out ? (uint32_t)POLLER_OUT : 0u);
        if (events) srv->poll.cb(srv->poll.ctx, id, events);
        server_flush(srv);
    }
    srv_print after = fingerprint(srv, id, sfd, cfd);
    return memcmp(&before, &after, sizeof before) != 0;
}

// [7] bit2: certificates reloaded once the client's handshake is done.
static bool g_reload_after_handshake;

static void drop_log_line(wsr_log_level, const char *, void *) {}

// FUZZ_TLS_TRACE=1: one line per pump step on stderr.
// Both sides until neither moves (two quiet steps in a row); at most STEP_LIMIT steps.
static void pump(wsr_server *srv, wsr_conn_id id, int sfd, tls_client *k, bool plaintext_allowed, const char *phase) {
    int quiet = 0;
    for (unsigned step = 0;; step++) {
        if (g_reload_after_handshake && k->handshake_checked) {
            g_reload_after_handshake = false;
            FUZZ_CHECK(wsr_server_reload_certificates(srv) == WSR_OK, "reload after the handshake");
        }
        conn *c = lookup(srv, id);
        FUZZ_CHECK(step < STEP_LIMIT, "%s: no end after %u steps (state %u flags %#x flags2 %#x; client: %zu raw, "
                   "%zu plain bytes in)", phase, step, c ? c->state : 0, c ? c->flags : 0, c ? c->flags2 : 0,
                   k->raw_in.len, k->plain_in.len);
        bool p = client_step(k, plaintext_allowed);
        p |= server_step(srv, id, sfd, k->closed ? -1 : k->fd);
        if (g_trace) {
            c = lookup(srv, id);
            fprintf(stderr, "%s %u: client pt %zu/%zu ev %zu sockout %zu raw %zu plain %zu eof %d fail %d alert %d | "
                    "server %s state %u flags %#x flags2 %#x out %llu unread %d tls failures %llu\n",
                    phase, step, k->pt_pos, k->sc->pt.len, k->ev_next, unsent(k), k->raw_in.len, k->plain_in.len,
                    k->eof, k->ssl_failed, k->alert, c ? "alive" : "gone", c ? c->state : 0, c ? c->flags : 0,
                    c ? c->flags2 : 0, c ? (unsigned long long)c->out.bytes : 0ull, fionread(sfd),
                    (unsigned long long)srv->tls.failures);
        }
        if (p) {
            quiet = 0;
        } else if (++quiet >= 2) {
            break;
        }
    }
}

// Once quiet: an open connection has read everything and written everything.
static void check_quiet(wsr_server *srv, wsr_conn_id id, int sfd, tls_client *k, const char *phase) {
    conn *c = lookup(srv, id);
    if (!c || k->closed) return;
    SSL *ssl = srv->tls.ssl[c->idx];
    int held = ssl ? SSL_pending(ssl) : 0;
    FUZZ_CHECK(held == 0, "%s: the server holds %d decrypted bytes it never reads (no readiness event comes for "
               "them; state %u flags %#x flags2 %#x)", phase, held, c->state, c->flags, c->flags2);
    FUZZ_CHECK(fionread(sfd) == 0, "%s: %d bytes on the server's socket are never read (state %u flags %#x)", phase,
               fionread(sfd), c->state, c->flags);
    FUZZ_CHECK(!conn_waits(c), "%s: a round held over never runs (flags2 %#x)", phase, c->flags2);
    FUZZ_CHECK(!(c->flags & CF_READ_PAUSED), "%s: reading stays paused with %llu bytes queued", phase,
               (unsigned long long)c->out.bytes);
    FUZZ_CHECK(c->out.head == nullptr, "%s: %llu bytes stay queued while the client reads", phase,
               (unsigned long long)c->out.bytes);
    if (!k->write_dead && !k->wr_shut)
        FUZZ_CHECK(unsent(k) == 0, "%s: the client could not send %zu bytes", phase, unsent(k));
}

// --- checking what the client got ----------------------------------------------------

static void check_plaintext_answer(const tls_client *k) {
    const uint8_t *o = k->raw_in.data;
    size_t n = k->raw_in.len;
    FUZZ_CHECK(n >= 13 && memcmp(o, "HTTP/1.1 400 ", 13) == 0, "plaintext answer is not a 400");
    const uint8_t *he = (const uint8_t *)memmem(o, n, "\r\n\r\n", 4);
    FUZZ_CHECK(he != nullptr, "the plaintext 400 is incomplete (%zu bytes)", n);
    size_t head_len = (size_t)(he - o) + 4, vlen = 0;
    const char *cl = header_value((const char *)o, head_len, "Content-Length", &vlen);
    FUZZ_CHECK(cl != nullptr, "the plaintext 400 has no Content-Length");
    FUZZ_CHECK(n == head_len + strtoul(cl, nullptr, 10), "the plaintext 400 is followed by %zu more bytes (or cut)",
               n - head_len - strtoul(cl, nullptr, 10));
    FUZZ_CHECK(k->plain_in.len == 0, "decrypted bytes after a plaintext answer");
}

static void check_output(tls_client *k, const script *sc, bool frames, bool strict, uint64_t max_message) {
    if (k->plaintext_answer) return check_plaintext_answer(k);
    // Records: all complete ones were checked as they came; nothing after close_notify.
    if (k->close_notify)
        FUZZ_CHECK(k->raw_in.len == k->notify_end, "%zu bytes from the server after its close_notify",
                   k->raw_in.len - k->notify_end);
    const uint8_t *o = k->plain_in.data;
    size_t n = k->plain_in.len;
    static const char status[] = "HTTP/1.1 101 ";
    size_t sn = n < sizeof status - 1 ? n : sizeof status - 1;
    FUZZ_CHECK(memcmp(o ? (const void *)o : "", status, sn) == 0, "the response is not a 101: %.*s", (int)sn, o);
    const uint8_t *he = n ? (const uint8_t *)memmem(o, n, "\r\n\r\n", 4) : nullptr;
    if (!he) {
        FUZZ_CHECK(!k->close_notify || n == 0, "close_notify after an incomplete response head (%zu bytes)", n);
        FUZZ_CHECK(!strict, "no complete response head (%zu bytes) though nothing was corrupted", n);
        return;
    }
    size_t head_len = (size_t)(he - o) + 4, vlen = 0;
    const char *acc = header_value((const char *)o, head_len, "Sec-WebSocket-Accept", &vlen);
    FUZZ_CHECK(acc && vlen == sizeof ACCEPT_KEY - 1 && memcmp(acc, ACCEPT_KEY, vlen) == 0, "wrong Sec-WebSocket-Accept");
    fuzz_trace got, pongs, want;
    fuzz_trace_init(&got);
    fuzz_trace_init(&pongs);
    fuzz_trace_init(&want);
    size_t end_pos;
    bool closed = check_frames(k->plain_in.data + head_len, n - head_len, nullptr, &got, &pongs, &end_pos);
    if (k->close_notify)
        FUZZ_CHECK(end_pos == n - head_len,
                   "the server's frames end inside a frame before close_notify (%zu of %zu bytes)", end_pos,
                   n - head_len);
    if (frames) {
        compare_messages(&sc->msgs, &got, strict, "echoed message", "one of", ", in order");
        compare_messages(&sc->pings, &pongs, strict, "pong", "one of", ", in order");
    } else {
        size_t req = sizeof REQUEST - 1;
        client_messages(sc->pt.data + req, sc->pt.len - req, nullptr, max_message, &want);
        compare_messages(&want, &got, false, "echoed message", "one of", ", in order");
    }
    if (strict && sc->close_sent) {
        FUZZ_CHECK(closed, "the client's close frame got no close frame back");
        FUZZ_CHECK(k->close_notify,
                   "no close_notify after the close handshake (%s; %zu of %zu bytes in whole records)",
                   k->fail_reason ? k->fail_reason : "no error", k->rec_pos, k->raw_in.len);
    }
    fuzz_trace_free(&got);
    fuzz_trace_free(&pongs);
    fuzz_trace_free(&want);
}

// --- the run ------------------------------------------------------------------------

static int sndbuf_size(unsigned v) {
    static const int sizes[8] = {0, 1, 2048, 4096, 8192, 16384, 32768, 65536};
    return sizes[v & 7];
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < SETTINGS) return 0;
    init_once();
    const uint8_t *s = data;
    static const bool log_debug = getenv("FUZZ_LOG_DEBUG") != nullptr;
    bool log_sink = (s[7] & 8) && !log_debug;
    wsr_log_set_sink(log_sink ? drop_log_line : nullptr, nullptr);
    wsr_log_set_level(log_debug || log_sink ? WSR_LOG_DEBUG : WSR_LOG_ERROR);
    bool tls13 = s[0] & 1, frames = s[0] & 2, close_frame = s[0] & 4, plain_first = s[0] & 32;
    unsigned end_action = (s[0] >> 3) & 3, sni = s[0] >> 6;
    static const size_t read_limits[8] = {0, 1, 5, 17, 64, 300, 1024, 4096};
    static const size_t budgets[4] = {2048, CONN_ROUND_BUDGET, 600, 16384};
    static const uint64_t max_bp[4] = {1 << 20, 1024, 4096, 64 * 1024};
    static const uint64_t max_msg[4] = {1 << 20, 125, 1000, 4096};
    uint32_t seed = (uint32_t)s[4] | (uint32_t)s[5] << 8;

    script sc;
    build_script(&sc, data + SETTINGS, size - SETTINGS, frames, close_frame, s[7] & 1, seed);

    wsr_options o;
    wsr_options_default(&o);
    o.listen = "127.0.0.1:0";
    o.max_message = max_msg[(s[6] >> 5) & 3];
    o.max_backpressure = max_bp[(s[6] >> 2) & 3];
    o.slow_policy = (s[6] & 16) ? WSR_SLOW_DROP : WSR_SLOW_CLOSE;
    o.deflate = WSR_DEFLATE_OFF;
    o.handshake_timeout_ms = 1000000;
    o.close_timeout_ms = 1000000;
    o.ping_interval_ms = 0;
    o.pong_timeout_ms = 0;
    o.idle_timeout_ms = 0;
    o.shutdown_timeout_ms = 0;
    o.max_connections = 8;
    bool strict = frames && !sc.corrupt && o.max_message == (1 << 20) && o.max_backpressure == (1 << 20);

    g_done_calls = 0;
    uv_loop_t loop;
    FUZZ_CHECK(uv_loop_init(&loop) == 0, "uv_loop_init");
    wsr_server *srv = nullptr;
    FUZZ_CHECK(wsr_server_new(&loop, &o, &srv) == WSR_OK, "wsr_server_new");
    FUZZ_CHECK(wsr_server_route(srv, "/echo", &echo_handlers, nullptr) == WSR_OK, "route /echo");
    for (int i = 0; i < 2; i++)
        FUZZ_CHECK(wsr_server_add_certificate(srv, F.cert[i], F.key[i]) == WSR_OK, "certificate %d", i);
    int li = wsr_server_add_listener(srv, "127.0.0.1:0", WSR_LISTEN_TLS);
    FUZZ_CHECK(li >= 0, "TLS listener: %d", li);
    srv->round_budget = budgets[s[6] & 3];
    srv->tls_io = &watched_tls;
    g_shut = false;

    int sv[2];
    FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0, "socketpair: %s",
               strerror(errno));
    for (int i = 0; i < 2; i++) {
        int b = sndbuf_size(s[1] >> (i ? 5 : 2));
        if (b) setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &b, sizeof b);
    }
    conn *c0 = server_adopt_from(srv, sv[0], (uint16_t)li);
    FUZZ_CHECK(c0 != nullptr, "server_adopt_from");
    FUZZ_CHECK(c0->flags2 & CF2_TLS, "a connection from a TLS listener without TLS");
    wsr_conn_id id = conn_id(c0);
    if (s[7] & 2) FUZZ_CHECK(wsr_server_reload_certificates(srv) == WSR_OK, "reload after the adoption");
    g_reload_after_handshake = s[7] & 4;

    // The client.
    tls_client k;
    memset(&k, 0, sizeof k);
    g_client = &k;
    k.fd = sv[1];
    k.tls13 = tls13;
    k.sc = &sc;
    k.alert = -1;
    k.read_limit = read_limits[s[2] & 7];
    fuzz_splitter_init(&k.split, seed, s[3] ? 1u + (uint32_t)s[3] * s[3] : 40000u);
    k.ssl = SSL_new(F.client_ctx);
    FUZZ_CHECK(k.ssl != nullptr, "SSL_new");
    k.rbio = BIO_new(BIO_s_mem());
    k.wbio = BIO_new(BIO_s_mem());
    FUZZ_CHECK(k.rbio && k.wbio, "BIO_new");
    BIO_set_mem_eof_return(k.rbio, -1);
    SSL_set_bio(k.ssl, k.rbio, k.wbio);
    SSL_set_connect_state(k.ssl);
    int v = tls13 ? TLS1_3_VERSION : TLS1_2_VERSION;
    SSL_set_min_proto_version(k.ssl, v);
    SSL_set_max_proto_version(k.ssl, v);
    static const char *const sni_names[4] = {nullptr, "localhost", "default.example", "unknown.example"};
    if (sni_names[sni]) SSL_set_tlsext_host_name(k.ssl, sni_names[sni]);
    k.expect_cert = sni == 1 ? 1 : 0;
    static const struct {
        const char *p;
        unsigned n;
    } alpn[4] = {{"", 0}, {"\x08http/1.1", 9}, {"\x02h2", 3}, {"\x02h2\x08http/1.1", 12}};
    if (alpn[s[1] & 3].n) SSL_set_alpn_protos(k.ssl, (const unsigned char *)alpn[s[1] & 3].p, alpn[s[1] & 3].n);
    k.alpn_offered = (s[1] & 3) == 1 || (s[1] & 3) == 3;
    SSL_set_info_callback(k.ssl, on_info);
    if (plain_first) {
        ssize_t w = send(k.fd, PLAIN_HTTP, sizeof PLAIN_HTTP - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        FUZZ_CHECK(w == (ssize_t)sizeof PLAIN_HTTP - 1, "plaintext request: %zd", w);
    }

    // The script, until both sides are quiet.
    pump(srv, id, sv[0], &k, plain_first, "script");
    check_quiet(srv, id, sv[0], &k, "after the script");
    if (!plain_first) {
        FUZZ_CHECK(k.script_done || k.ssl_failed || k.write_dead || !lookup(srv, id),
                   "the client's script stopped at plaintext byte %zu of %zu with the connection open", k.pt_pos,
                   sc.pt.len);
        if (!sc.corrupt && !k.ssl_failed && !k.write_dead) FUZZ_CHECK(SSL_is_init_finished(k.ssl), "no handshake");
    }
    if (sc.garbage_record && !plain_first) {
        // A record that cannot decrypt ends the connection, with no FIN from the client.
        FUZZ_CHECK(!lookup(srv, id), "a garbage record did not end the connection (state %u flags %#x)",
                   lookup(srv, id)->state, lookup(srv, id)->flags);
        FUZZ_CHECK(k.eof || k.closed, "the connection ended, but the client saw no EOF");
    }
    if (strict && !k.ssl_failed) {
        // Everything echoed by now (checked in full below); a close frame sent is answered.
        if (sc.close_sent) {
            FUZZ_CHECK(!lookup(srv, id), "the close handshake is over but the connection stays");
            FUZZ_CHECK(k.eof, "the close handshake is over but the client saw no EOF");
        }
    }

    // The end action.
    if (!k.closed && !k.wr_shut && !k.write_dead && end_action) {
        if (end_action == 1 && !k.ssl_failed && SSL_is_init_finished(k.ssl)) {
            ERR_clear_error();
            SSL_shutdown(k.ssl);
            drain_wbio(&k);
        }
        if (end_action == 3) {
            close(k.fd);
            k.closed = true;
        } else {
            k.close_after_send = true;
        }
        pump(srv, id, sv[0], &k, plain_first, "end action");
        FUZZ_CHECK(!lookup(srv, id), "the client ended its stream (end action %u) but the connection stays",
                   end_action);
        if (!k.closed) FUZZ_CHECK(k.eof, "the connection is gone, but the client saw no EOF");
    }

    // Shutdown, on the real loop, while the client keeps reading.
    wsr_server_shutdown(srv, on_done);
    server_flush(srv);
    for (int i = 0; i < 64 && uv_loop_alive(&loop); i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        client_step(&k, plain_first);
    }
    FUZZ_CHECK(!uv_loop_alive(&loop), "the loop is still alive after shutdown");
    FUZZ_CHECK(g_done_calls == 1, "shutdown callback ran %d times", g_done_calls);
    FUZZ_CHECK(srv->table.live == 0, "%u connections left after shutdown", srv->table.live);
    wsr_server_free(srv);
    uv_run(&loop, UV_RUN_NOWAIT);
    FUZZ_CHECK(uv_loop_close(&loop) == 0, "uv_loop_close: handles left open");
    // What the server sent last (the shutdown's close frame, close_notify, EOF).
    for (int i = 0; i < 8 && client_step(&k, plain_first); i++) {
    }

    static const bool dump = getenv("FUZZ_DUMP_OUTPUT") != nullptr;
    if (dump)
        fprintf(stderr, "--- raw %zu bytes (whole records: %zu), plain %zu bytes, eof %d close_notify %d ssl_failed %d "
                "(%s) alert %d\n%.*s\n---\n",
                k.raw_in.len, k.rec_pos, k.plain_in.len, k.eof, k.close_notify, k.ssl_failed,
                k.fail_reason ? k.fail_reason : "", k.alert, (int)k.plain_in.len, (const char *)k.plain_in.data);
    check_output(&k, &sc, frames, strict, o.max_message);

    g_client = nullptr;
    SSL_free(k.ssl);
    if (!k.closed) close(k.fd);
    fuzz_trace_free(&k.sockout);
    fuzz_trace_free(&k.raw_in);
    fuzz_trace_free(&k.plain_in);
    fuzz_trace_free(&sc.pt);
    fuzz_trace_free(&sc.msgs);
    fuzz_trace_free(&sc.pings);
    ERR_clear_error();
    return 0;
}
