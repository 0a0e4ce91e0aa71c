#include "core/tls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "core/conn.h"
#include "core/conn_table.h"
#include "core/log.h"
#include "core/server.h"

enum {
    // Plaintext handed to one SSL_write: one full record. Small iovecs (frames packed in
    // the out-queue's chunks, a header and its payload) are gathered up to it, so that a
    // burst of small messages becomes few records rather than one each.
    WRITE_GATHER = 16384,
    DISCARD_MAX = 65536, // plaintext HTTP read and thrown away before answering it
};

// OpenSSL's reason for the error that just happened, for the log.
static const char *ssl_reason(void) {
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : nullptr;
    return r ? r : "unknown error";
}

static const char *peer_text(wsr_server *srv, const conn *c, char *buf, size_t cap) {
    net_addr a;
    server_conn_address(srv, c, &a);
    net_addr_format(&a, buf, cap);
    return buf;
}

// --- contexts ---------------------------------------------------------------------------

// ALPN: HTTP/1.1 is what this server speaks. A client that offers only other protocols
// (h2) gets no ALPN answer and may go on with HTTP/1.1, as browsers do.
static int on_alpn(SSL *, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                   unsigned int inlen, void *) {
    static const unsigned char ours[] = "\x08http/1.1";
    unsigned char *sel = nullptr, sel_len = 0;
    if (SSL_select_next_proto(&sel, &sel_len, ours, sizeof ours - 1, in, inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = sel;
    *outlen = sel_len;
    return SSL_TLSEXT_ERR_OK;
}

// SNI: the first certificate valid for the name the client asked for; the first
// certificate otherwise.
static int on_servername(SSL *ssl, int *, void *arg) {
    const tls_state *t = (const tls_state *)arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (!name || t->ncerts < 2) return SSL_TLSEXT_ERR_OK;
    for (uint16_t i = 0; i < t->ncerts; i++) {
        X509 *x = SSL_CTX_get0_certificate(t->ctxs[i]);
        if (x && X509_check_host(x, name, 0, 0, nullptr) == 1) {
            if (i) SSL_set_SSL_CTX(ssl, t->ctxs[i]);
            break;
        }
    }
    return SSL_TLSEXT_ERR_OK;
}

static SSL_CTX *make_ctx(tls_state *t, const tls_cert *cert) {
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        log_error("TLS: cannot create a context: %s", ssl_reason());
        return nullptr;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    // Record buffers only while they hold something; partial writes, as the out-queue
    // writes what the socket takes; the out-queue's chunks may move between retries.
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    // Resumption by stateless tickets only: a server-side session cache would grow with
    // every client. One ticket per handshake is enough for a WebSocket client.
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(ctx, 1);
    SSL_CTX_set_alpn_select_cb(ctx, on_alpn, nullptr);
    SSL_CTX_set_tlsext_servername_callback(ctx, on_servername);
    SSL_CTX_set_tlsext_servername_arg(ctx, t);
    if (access(cert->cert_file, R_OK) != 0) {
        log_error("TLS: certificate %s: %s", cert->cert_file, strerror(errno));
    } else if (access(cert->key_file, R_OK) != 0) {
        log_error("TLS: key %s: %s", cert->key_file, strerror(errno));
    } else if (SSL_CTX_use_certificate_chain_file(ctx, cert->cert_file) != 1) {
        log_error("TLS: certificate %s: %s", cert->cert_file, ssl_reason());
    } else if (SSL_CTX_use_PrivateKey_file(ctx, cert->key_file, SSL_FILETYPE_PEM) != 1) {
        log_error("TLS: key %s: %s", cert->key_file, ssl_reason());
    } else if (SSL_CTX_check_private_key(ctx) != 1) {
        log_error("TLS: key %s does not match certificate %s", cert->key_file, cert->cert_file);
    } else {
        return ctx;
    }
    SSL_CTX_free(ctx);
    return nullptr;
}

bool tls_supported(void) { return true; }

void tls_init(tls_state *t) { memset(t, 0, sizeof *t); }

static void free_ctxs(SSL_CTX **ctxs, uint16_t n) {
    for (uint16_t i = 0; i < n; i++) SSL_CTX_free(ctxs[i]); // sessions keep their own reference
    free(ctxs);
}

void tls_free(tls_state *t) {
    for (uint32_t i = 0; i < t->ssl_cap; i++) SSL_free(t->ssl[i]);
    free(t->ssl);
    free_ctxs(t->ctxs, t->ncerts);
    for (uint16_t i = 0; i < t->ncerts; i++) {
        free(t->certs[i].cert_file);
        free(t->certs[i].key_file);
    }
    free(t->certs);
    tls_init(t);
}

int tls_add_cert(tls_state *t, const char *cert_file, const char *key_file) {
    if (!cert_file || !key_file || t->ncerts == UINT16_MAX) return WSR_EINVAL;
    tls_cert cert = {strdup(cert_file), strdup(key_file)};
    tls_cert *nc = (tls_cert *)realloc(t->certs, (t->ncerts + 1u) * sizeof *nc);
    SSL_CTX **nx = nc ? (SSL_CTX **)realloc(t->ctxs, (t->ncerts + 1u) * sizeof *nx) : nullptr;
    if (nc) t->certs = nc;
    if (nx) t->ctxs = nx;
    if (!cert.cert_file || !cert.key_file || !nc || !nx) {
        free(cert.cert_file);
        free(cert.key_file);
        return WSR_ENOMEM;
    }
    SSL_CTX *ctx = make_ctx(t, &cert);
    if (!ctx) {
        free(cert.cert_file);
        free(cert.key_file);
        return WSR_EINVAL;
    }
    t->certs[t->ncerts] = cert;
    t->ctxs[t->ncerts++] = ctx;
    log_info("TLS: certificate %s loaded", cert_file);
    return WSR_OK;
}

int tls_reload(tls_state *t) {
    if (!t->ncerts) return WSR_OK;
    SSL_CTX **fresh = (SSL_CTX **)calloc(t->ncerts, sizeof *fresh);
    if (!fresh) return WSR_ENOMEM;
    for (uint16_t i = 0; i < t->ncerts; i++) {
        if (!(fresh[i] = make_ctx(t, &t->certs[i]))) {
            free_ctxs(fresh, i);
            log_error("TLS: reload failed; the certificates in use stay");
            return WSR_EINVAL;
        }
    }
    free_ctxs(t->ctxs, t->ncerts);
    t->ctxs = fresh;
    log_info("TLS: %u certificate%s reloaded", t->ncerts, t->ncerts == 1 ? "" : "s");
    return WSR_OK;
}

// --- the socket under OpenSSL ------------------------------------------------------------

// OpenSSL's own socket BIO writes with write(2), which raises SIGPIPE when the peer has
// gone; a library must not kill the program that embeds it (the TCP transport sends with
// MSG_NOSIGNAL for the same reason). This BIO is the socket with send/recv flags.
static int sock_write(BIO *b, const char *buf, int len) {
    int fd = (int)(intptr_t)BIO_get_data(b);
    ssize_t n;
    do n = send(fd, buf, (size_t)len, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    BIO_clear_retry_flags(b);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) BIO_set_retry_write(b);
    return (int)n;
}

static int sock_read(BIO *b, char *buf, int len) {
    int fd = (int)(intptr_t)BIO_get_data(b);
    ssize_t n;
    do n = recv(fd, buf, (size_t)len, 0);
    while (n < 0 && errno == EINTR);
    BIO_clear_retry_flags(b);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) BIO_set_retry_read(b);
    // The end of the stream, as OpenSSL's socket BIO marks it: OpenSSL then reports a
    // peer that closed without close_notify as such.
    if (n == 0) BIO_set_flags(b, BIO_FLAGS_IN_EOF);
    return (int)n;
}

static long sock_ctrl(BIO *b, int cmd, long, void *) {
    switch (cmd) {
    case BIO_CTRL_FLUSH: return 1;
    case BIO_CTRL_EOF: return BIO_test_flags(b, BIO_FLAGS_IN_EOF) != 0;
    default: return 0;
    }
}

static int sock_create(BIO *b) {
    BIO_set_init(b, 1);
    return 1;
}

// Made once per process (all servers share it), never freed: OpenSSL owns it.
static BIO_METHOD *sock_method(void) {
    static BIO_METHOD *m = [] {
        BIO_METHOD *bm = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "wsreactor socket");
        if (bm) {
            BIO_meth_set_write(bm, sock_write);
            BIO_meth_set_read(bm, sock_read);
            BIO_meth_set_ctrl(bm, sock_ctrl);
            BIO_meth_set_create(bm, sock_create);
        }
        return bm;
    }();
    return m;
}

bool tls_conn_start(wsr_server *srv, conn *c) {
    tls_state *t = &srv->tls;
    if (!conn_table_side_fit((void **)&t->ssl, &t->ssl_cap, c->idx, sizeof *t->ssl)) return false;
    BIO_METHOD *m = sock_method();
    SSL *ssl = m ? SSL_new(t->ctxs[0]) : nullptr;
    BIO *bio = ssl ? BIO_new(m) : nullptr;
    if (!bio) {
        SSL_free(ssl);
        return false;
    }
    BIO_set_data(bio, (void *)(intptr_t)c->fd);
    SSL_set_bio(ssl, bio, bio); // the session owns the BIO from here
    SSL_set_accept_state(ssl);
    t->ssl[c->idx] = ssl;
    return true;
}

bool tls_conn_ready(const wsr_server *srv, const conn *c) {
    return c->idx < srv->tls.ssl_cap && srv->tls.ssl[c->idx] && SSL_is_init_finished(srv->tls.ssl[c->idx]);
}

// --- the transport ----------------------------------------------------------------------

static SSL *ssl_of(wsr_server *srv, const conn *c) { return srv->tls.ssl[c->idx]; }

// A plaintext HTTP request on a TLS port: answered in plaintext, so that whoever typed
// http:// sees why, then the connection ends. What the client sent is read first, so
// that closing does not reset the connection under the answer.
static void refuse_plaintext(conn *c) {
    char discard[4096];
    for (size_t n = 0; n < DISCARD_MAX;) {
        ssize_t r = recv(c->fd, discard, sizeof discard, MSG_DONTWAIT);
        if (r <= 0) break;
        n += (size_t)r;
    }
    static const char body[] = "this port speaks TLS: use https:// or wss://\n";
    char resp[256];
    int n = snprintf(resp, sizeof resp,
                     "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n%s",
                     sizeof body - 1, body);
    if (send(c->fd, resp, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) > 0) shutdown(c->fd, SHUT_WR);
}

// The connection's TLS failed: one log line (rate-limited per call site like every
// line peers cause), counted; the connection is then destroyed by the caller.
static ssize_t failed(wsr_server *srv, conn *c, const char *what) {
    char peer[64];
    unsigned long e = ERR_peek_last_error();
    int reason = ERR_GET_REASON(e);
    if (reason != SSL_R_UNEXPECTED_EOF_WHILE_READING) srv->tls.failures++;
    if (reason == SSL_R_HTTP_REQUEST || reason == SSL_R_HTTPS_PROXY_REQUEST) {
        log_info("TLS from %s: a plaintext HTTP request on a TLS port; answered 400", peer_text(srv, c, peer, sizeof peer));
        refuse_plaintext(c);
    } else if (reason == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
        log_info("TLS from %s: the peer closed without close_notify", peer_text(srv, c, peer, sizeof peer));
        ERR_clear_error();
        return 0; // the end of the stream, if an unannounced one
    } else {
        log_info("TLS from %s: %s: %s", peer_text(srv, c, peer, sizeof peer), what, ssl_reason());
    }
    ERR_clear_error();
    return -EPROTO;
}

static ssize_t tls_read(wsr_server *srv, conn *c, void *buf, size_t len) {
    SSL *ssl = ssl_of(srv, c);
    bool was_up = SSL_is_init_finished(ssl);
    size_t n = 0;
    ERR_clear_error();
    int ok = SSL_read_ex(ssl, buf, len, &n);
    if (!was_up && SSL_is_init_finished(ssl)) srv->tls.handshakes++;
    if (ok == 1) return (ssize_t)n;
    switch (SSL_get_error(ssl, 0)) {
    case SSL_ERROR_WANT_READ: return -EAGAIN;
    case SSL_ERROR_WANT_WRITE: return TRANSPORT_WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN: return 0; // close_notify
    case SSL_ERROR_SYSCALL: {
        int err = errno;
        ERR_clear_error();
        return err ? -err : 0;
    }
    default: return failed(srv, c, was_up ? "bad record" : "handshake failed");
    }
}

static ssize_t tls_writev(wsr_server *srv, conn *c, const struct iovec *iov, int iovcnt) {
    SSL *ssl = ssl_of(srv, c);
    char gather[WRITE_GATHER];
    size_t done = 0, off = 0; // off: into iov[i]
    int i = 0;
    for (;;) {
        // An empty iovec (a response without a body) has nothing to write: SSL_write of
        // 0 bytes succeeds with 0 written, and the loop would not move.
        while (i < iovcnt && iov[i].iov_len == off) {
            i++;
            off = 0;
        }
        if (i == iovcnt) break;
        const char *p = (const char *)iov[i].iov_base + off;
        size_t len = iov[i].iov_len - off;
        if (len < WRITE_GATHER && i + 1 < iovcnt) {
            // Gather this and the following iovecs into one record's worth.
            len = 0;
            for (int k = i; k < iovcnt && len < WRITE_GATHER; k++) {
                size_t from = k == i ? off : 0;
                size_t take = iov[k].iov_len - from;
                if (take > WRITE_GATHER - len) take = WRITE_GATHER - len;
                memcpy(gather + len, (const char *)iov[k].iov_base + from, take);
                len += take;
            }
            p = gather;
        }
        size_t w = 0;
        ERR_clear_error();
        if (SSL_write_ex(ssl, p, len, &w) != 1) {
            int err = SSL_get_error(ssl, 0);
            if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) return done ? (ssize_t)done : -EAGAIN;
            if (err == SSL_ERROR_SYSCALL) {
                int e = errno ? errno : EPIPE;
                ERR_clear_error();
                return done ? (ssize_t)done : -e;
            }
            ssize_t r = failed(srv, c, "write failed");
            return done ? (ssize_t)done : (r ? r : -EPIPE);
        }
        // Partial writes: w may be one record of a longer buffer; go on from there.
        done += w;
        while (w && i < iovcnt) {
            size_t left = iov[i].iov_len - off;
            if (w < left) {
                off += w;
                w = 0;
            } else {
                w -= left;
                off = 0;
                i++;
            }
        }
    }
    return (ssize_t)done;
}

// close_notify, then the FIN. Our output is all in the socket when this runs, but a
// slow reader may have left no room for the alert: OpenSSL keeps it, and the next call
// (once the socket is writable) sends it before the FIN.
static bool tls_shutdown(wsr_server *srv, conn *c) {
    SSL *ssl = ssl_of(srv, c);
    ERR_clear_error();
    if (SSL_is_init_finished(ssl)) {
        int r = SSL_shutdown(ssl);
        if (r < 0 && SSL_get_error(ssl, r) == SSL_ERROR_WANT_WRITE) {
            ERR_clear_error();
            return false;
        }
    }
    ERR_clear_error();
    shutdown(c->fd, SHUT_WR);
    return true;
}

static size_t tls_pending(wsr_server *, conn *c) {
    int n = 0;
    return ioctl(c->fd, FIONREAD, &n) == 0 && n > 0 ? (size_t)n : 0;
}

// Plaintext OpenSSL decrypted and still holds: no readiness event will come for it.
static size_t tls_buffered(wsr_server *srv, conn *c) { return (size_t)SSL_pending(ssl_of(srv, c)); }

static void tls_close(wsr_server *srv, conn *c) {
    SSL_free(srv->tls.ssl[c->idx]);
    srv->tls.ssl[c->idx] = nullptr;
}

const transport_ops transport_tls = {tls_read, tls_writev, tls_shutdown, tls_pending, tls_buffered, tls_close};
