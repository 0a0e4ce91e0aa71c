// The pieces of a WebSocket client that wsbench, flood and msgbench share (see client.h).
#include "client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

enum : uint32_t { ERRORS_PRINTED = 10 };

static const char WS_GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

// --- randomness, signals ----------------------------------------------------------------

uint64_t bc_rng_seed() {
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof seed, 0) != sizeof seed) seed = bc_mono_ns();
    return seed | 1;
}

volatile sig_atomic_t bc_interrupted;

static void on_signal(int) { bc_interrupted = 1; }

void bc_signals() {
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
}

// --- errors -----------------------------------------------------------------------------

const char *const bc_err_names[BC_ERR_COUNT] = {"connect", "handshake", "protocol", "payload", "utf8", "closed", "timeout", "tls"};

void bc_error(bc_errors *e, long conn, bc_err_kind k, const char *fmt, ...) {
    e->count[k]++;
    if (e->printed >= ERRORS_PRINTED) return;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (conn >= 0)
        fprintf(stderr, "%s: conn %ld: %s error: %s\n", e->prog, conn, bc_err_names[k], msg);
    else
        fprintf(stderr, "%s: %s error: %s\n", e->prog, bc_err_names[k], msg);
    if (++e->printed == ERRORS_PRINTED) fprintf(stderr, "%s: further errors are counted, not printed\n", e->prog);
}

uint64_t bc_errors_total(const bc_errors *e) {
    uint64_t n = 0;
    for (int i = 0; i < BC_ERR_COUNT; i++) n += e->count[i];
    return n;
}

void bc_errors_print(FILE *out, const bc_errors *e) {
    fprintf(out, "  errors       %llu", (unsigned long long)bc_errors_total(e));
    for (int i = 0; i < BC_ERR_COUNT; i++)
        if (e->count[i]) fprintf(out, "  %s=%llu", bc_err_names[i], (unsigned long long)e->count[i]);
    fprintf(out, "\n");
}

// --- the command line ---------------------------------------------------------------------

int bc_usage_error(const char *prog, const char *fmt, ...) {
    fprintf(stderr, "%s: ", prog);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 2;
}

bool bc_parse_u64(const char *s, bool suffix, uint64_t *out) {
    if (!s || !*s || *s == '-') return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s) return false;
    if (suffix && *end) {
        int shift = (*end | 0x20) == 'k' ? 10 : (*end | 0x20) == 'm' ? 20 : -1;
        if (shift < 0) return false;
        v <<= shift;
        end++;
    }
    if (*end) return false;
    *out = v;
    return true;
}

bool bc_parse_double(const char *s, double *out) {
    if (!s || !*s) return false;
    char *end;
    double v = strtod(s, &end);
    if (*end || v < 0) return false;
    *out = v;
    return true;
}

const char *bc_option(const char *arg, char *name, size_t n) {
    const char *eq = strchr(arg, '=');
    if (!eq) {
        snprintf(name, n, "%s", arg + 2);
        return nullptr;
    }
    snprintf(name, n, "%.*s", (int)(eq - arg - 2), arg + 2);
    return eq + 1;
}

bool bc_parse_url(const char *url, unsigned schemes, bc_url *o) {
    const char *u = url;
    o->tls = false;
    if ((schemes & BC_URL_WS) && strncmp(u, "ws://", 5) == 0) {
        u += 5;
    } else if ((schemes & BC_URL_WSS) && strncmp(u, "wss://", 6) == 0) {
        u += 6;
        o->tls = true;
    } else if ((schemes & BC_URL_TCP) && strncmp(u, "tcp://", 6) == 0) {
        u += 6;
    } else {
        return false;
    }
    const char *p;
    if (*u == '[') {
        const char *host_end = strchr(u, ']');
        if (!host_end) return false;
        snprintf(o->host, sizeof o->host, "%.*s", (int)(host_end - u - 1), u + 1);
        p = host_end + 1;
    } else {
        p = u + strcspn(u, ":/");
        snprintf(o->host, sizeof o->host, "%.*s", (int)(p - u), u);
    }
    if (!o->host[0]) return false;
    if (*p == ':') {
        p++;
        size_t n = strspn(p, "0123456789");
        if (n == 0 || n > 5) return false;
        snprintf(o->port, sizeof o->port, "%.*s", (int)n, p);
        p += n;
    } else {
        snprintf(o->port, sizeof o->port, "%s", o->tls ? "443" : "80");
    }
    if (*p && *p != '/') return false;
    snprintf(o->path, sizeof o->path, "%s", *p ? p : "/");
    addrinfo hints = {}, *res = nullptr;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(o->host, o->port, &hints, &res) != 0 || !res) return false;
    memcpy(&o->addr, res->ai_addr, res->ai_addrlen);
    o->addr_len = res->ai_addrlen;
    freeaddrinfo(res);
    return true;
}

// --- TLS ----------------------------------------------------------------------------------

enum : uint32_t {
    TLS_READ_BUFFER = 64 * 1024, // with read-ahead, one recv takes up to this many bytes of records
};

static bool host_is_ip(const char *host) {
    uint8_t a[16];
    return inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1;
}

// With resume: the session the server just issued (TLS 1.3: a ticket after the
// handshake; TLS 1.2: at its end) replaces the slot's previous one.
static int on_new_session(SSL *ssl, SSL_SESSION *sess) {
    SSL_SESSION **slot = (SSL_SESSION **)SSL_get_app_data(ssl);
    if (!slot) return 0;
    if (*slot) SSL_SESSION_free(*slot);
    *slot = sess;
    return 1; // the reference is ours now
}

SSL_CTX *bc_tls_ctx_new(const bc_tls_opts *o, const bc_url *u, char *err, size_t errlen) {
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    const char *why = nullptr;
    if (!ctx) {
        snprintf(err, errlen, "cannot create a TLS context");
        return nullptr;
    }
    int v = o->tls12 ? TLS1_2_VERSION : TLS1_3_VERSION;
    SSL_CTX_set_min_proto_version(ctx, v);
    SSL_CTX_set_max_proto_version(ctx, v);
    // Partial writes, as send() makes them: bc_tls_write reports the records taken, and
    // the rest is offered again from wherever the caller's buffer now holds it.
    long mode = SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER;
    if (o->lean) mode |= SSL_MODE_RELEASE_BUFFERS;
    SSL_CTX_set_mode(ctx, mode);
    // An EOF without close_notify reads as the end of the stream; the WebSocket close
    // handshake, checked above TLS, says whether the session ended properly.
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_default_read_buffer_len(ctx, TLS_READ_BUFFER);
    if (o->resume) {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(ctx, on_new_session);
    } else {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    }
    static const unsigned char alpn[] = "\x08http/1.1";
    if (SSL_CTX_set_alpn_protos(ctx, alpn, sizeof alpn - 1) != 0) why = "cannot set ALPN";
    if (!why && !o->insecure) {
        if (o->ca ? SSL_CTX_load_verify_locations(ctx, o->ca, nullptr) != 1 : SSL_CTX_set_default_verify_paths(ctx) != 1)
            why = o->ca ? "cannot load the CA file" : "cannot load the system's CA certificates";
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
        X509_VERIFY_PARAM *vp = SSL_CTX_get0_param(ctx);
        int ok = host_is_ip(u->host) ? X509_VERIFY_PARAM_set1_ip_asc(vp, u->host)
                                     : X509_VERIFY_PARAM_set1_host(vp, u->host, 0);
        if (!why && ok != 1) why = "cannot set the name to verify";
    }
    if (!why) return ctx;
    unsigned long e = ERR_peek_last_error();
    char reason[160] = "";
    if (e) ERR_error_string_n(e, reason, sizeof reason);
    snprintf(err, errlen, "%s%s%s", why, e ? ": " : "", reason);
    SSL_CTX_free(ctx);
    return nullptr;
}

SSL *bc_tls_new(SSL_CTX *ctx, int fd, const bc_url *u, SSL_SESSION **slot) {
    SSL *ssl = SSL_new(ctx);
    if (!ssl) return nullptr;
    // SNI names hosts, never addresses (RFC 6066 §3).
    if (SSL_set_fd(ssl, fd) != 1 || (!host_is_ip(u->host) && SSL_set_tlsext_host_name(ssl, u->host) != 1)) {
        SSL_free(ssl);
        return nullptr;
    }
    if (slot) {
        SSL_set_app_data(ssl, slot);
        if (*slot) SSL_set_session(ssl, *slot);
    }
    SSL_set_connect_state(ssl);
    return ssl;
}

int bc_tls_connect(SSL *ssl, bool *want_write) {
    ERR_clear_error();
    int r = SSL_do_handshake(ssl);
    if (r == 1) return 1;
    switch (SSL_get_error(ssl, r)) {
    case SSL_ERROR_WANT_READ: *want_write = false; return 0;
    case SSL_ERROR_WANT_WRITE: *want_write = true; return 0;
    default: return -1;
    }
}

const char *bc_tls_error(SSL *ssl) {
    static char buf[256];
    long v = SSL_get_verify_result(ssl);
    unsigned long e = ERR_peek_last_error();
    if (v != X509_V_OK)
        snprintf(buf, sizeof buf, "certificate: %s", X509_verify_cert_error_string(v));
    else if (e)
        ERR_error_string_n(e, buf, sizeof buf);
    else
        snprintf(buf, sizeof buf, "%s", errno ? strerror(errno) : "connection closed");
    return buf;
}

void bc_tls_describe(SSL *ssl, const char **version, const char **cipher, const char **group) {
    *version = SSL_get_version(ssl);
    *cipher = SSL_get_cipher_name(ssl);
    int nid = SSL_get_negotiated_group(ssl);
    const char *g = nid > 0 ? OBJ_nid2sn(nid) : nullptr;
    *group = g ? g : "-";
}

ssize_t bc_tls_read(SSL *ssl, void *buf, size_t len) {
    size_t n = 0;
    ERR_clear_error();
    if (SSL_read_ex(ssl, buf, len, &n) == 1) return (ssize_t)n;
    switch (SSL_get_error(ssl, 0)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE: // (TLS 1.3 never writes for a read without a key update)
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        // The server's close_notify: answered with ours, as a browser does; a session
        // shut down properly also stays resumable.
        SSL_shutdown(ssl);
        ERR_clear_error();
        return 0;
    case SSL_ERROR_SYSCALL:
        if (!errno) return 0;
        return -1;
    default: errno = EPROTO; return -1;
    }
}

ssize_t bc_tls_write(SSL *ssl, const void *buf, size_t len) {
    // With partial writes SSL_write_ex returns after each record: go on while the socket
    // takes them, so that a buffer of several records costs no extra wakeup.
    size_t done = 0;
    while (done < len) {
        size_t n = 0;
        ERR_clear_error();
        if (SSL_write_ex(ssl, (const uint8_t *)buf + done, len - done, &n) == 1) {
            done += n;
            continue;
        }
        if (done) return (ssize_t)done; // what failed is tried again, and reported, next time
        switch (SSL_get_error(ssl, 0)) {
        case SSL_ERROR_WANT_WRITE:
        case SSL_ERROR_WANT_READ: errno = EAGAIN; return -1;
        case SSL_ERROR_SYSCALL:
            if (!errno) errno = EPIPE;
            return -1;
        default: errno = EPROTO; return -1;
        }
    }
    return (ssize_t)done;
}

// --- the upgrade ------------------------------------------------------------------------

int bc_request_head(char *out, size_t cap, const bc_url *u) {
    bool v6 = strchr(u->host, ':') != nullptr;
    return snprintf(out, cap,
                    "GET %s HTTP/1.1\r\nHost: %s%s%s:%s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    "Sec-WebSocket-Version: 13\r\n",
                    u->path, v6 ? "[" : "", u->host, v6 ? "]" : "", u->port);
}

static void base64(const uint8_t *in, int len, char *out) { EVP_EncodeBlock((unsigned char *)out, in, len); }

void bc_nonce(uint64_t *rng, const EVP_MD *sha1, char key[32], char accept[32]) {
    uint8_t nonce[16];
    for (int i = 0; i < 16; i += 8) {
        uint64_t r = bc_rng_next(rng);
        memcpy(nonce + i, &r, 8);
    }
    base64(nonce, 16, key);
    char cat[64];
    int n = snprintf(cat, sizeof cat, "%s%s", key, WS_GUID);
    uint8_t digest[EVP_MAX_MD_SIZE];
    unsigned dlen = 0;
    EVP_Digest(cat, (size_t)n, digest, &dlen, sha1, nullptr);
    base64(digest, (int)dlen, accept);
}

long bc_response_head(char *hs, size_t have) {
    hs[have] = 0;
    char *end = strstr(hs, "\r\n\r\n");
    if (!end) return have == BC_HS_MAX || memchr(hs, 0, have) ? -1 : 0;
    end[2] = 0; // keep the last header's CRLF for the line splitter
    return (long)(end - hs) + 4;
}

static bool header_has_token(const char *value, const char *token) {
    // Connection: keep-alive, Upgrade -- a comma-separated list, case-insensitive.
    size_t tl = strlen(token);
    const char *p = value;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',') p++;
        const char *e = p;
        while (*e && *e != ',') e++;
        const char *t = e;
        while (t > p && (t[-1] == ' ' || t[-1] == '\t')) t--;
        if ((size_t)(t - p) == tl && strncasecmp(p, token, tl) == 0) return true;
        p = e;
    }
    return false;
}

const char *bc_handshake_check(char *head, const char *accept_want, bc_ext_check *ext_check, void *ctx, char *status,
                               size_t status_len) {
    size_t sl = strcspn(head, "\r\n");
    if (sl >= status_len) sl = status_len - 1;
    memcpy(status, head, sl);
    status[sl] = 0;
    if (strncmp(head, "HTTP/1.1 101", 12) != 0 || (head[12] != ' ' && head[12] != '\r')) return "status is not 101";
    bool upgrade = false, connection = false, accept = false, ext = false;
    char *save = nullptr;
    char *line = strtok_r(head, "\r\n", &save); // the status line
    while ((line = strtok_r(nullptr, "\r\n", &save))) {
        char *colon = strchr(line, ':');
        if (!colon) return "malformed header line";
        *colon = 0;
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t') v++;
        char *e = v + strlen(v);
        while (e > v && (e[-1] == ' ' || e[-1] == '\t')) *--e = 0;
        if (strcasecmp(line, "Upgrade") == 0) {
            upgrade = strcasecmp(v, "websocket") == 0;
        } else if (strcasecmp(line, "Connection") == 0) {
            connection = header_has_token(v, "upgrade");
        } else if (strcasecmp(line, "Sec-WebSocket-Accept") == 0) {
            if (strcmp(v, accept_want) != 0) return "wrong Sec-WebSocket-Accept";
            accept = true;
        } else if (strcasecmp(line, "Sec-WebSocket-Extensions") == 0) {
            if (!ext_check || ext) return "an extension we did not offer";
            const char *why = ext_check(ctx, v);
            if (why) return why;
            ext = true;
        } else if (strcasecmp(line, "Sec-WebSocket-Protocol") == 0) {
            return "a subprotocol we did not offer";
        }
    }
    if (!upgrade) return "missing Upgrade: websocket";
    if (!connection) return "missing Connection: Upgrade";
    if (!accept) return "missing Sec-WebSocket-Accept";
    return nullptr;
}

// --- frames in ----------------------------------------------------------------------------

void bc_rx_init(bc_rx *rx) {
    frame_parser_init(&rx->fp);
    rx->closed = false;
    rx->ctl_len = 0;
}

bool bc_rx_next(bc_rx *rx, const frame_limits *lim, uint8_t **data, size_t *len, frame_event *ev) {
    for (;;) {
        if (rx->closed) {
            ev->type = FRAME_NEED_MORE;
            return false;
        }
        size_t used = frame_parse(&rx->fp, lim, *data, *len, ev);
        *data += used;
        *len -= used;
        if (ev->type == FRAME_NEED_MORE) return false;
        if (ev->type == FRAME_ERROR || !ws_opcode_is_control(ev->opcode)) return true;
        if (ev->type == FRAME_END) {
            rx->closed = ev->opcode == WS_OP_CLOSE;
            return true;
        }
        if (ev->type == FRAME_HEADER) {
            rx->ctl_len = 0;
        } else { // FRAME_PAYLOAD
            memcpy(rx->ctl + rx->ctl_len, ev->data, ev->len);
            rx->ctl_len = (uint8_t)(rx->ctl_len + ev->len);
        }
    }
}

uint16_t bc_close_check(bc_errors *e, long conn, const bc_rx *rx, bool close_sent, uint16_t *bad) {
    uint16_t code = 0;
    *bad = frame_close_parse(rx->ctl, rx->ctl_len, &code);
    if (*bad) bc_error(e, conn, BC_ERR_PROTOCOL, "invalid close frame (we would fail with %u)", *bad);
    if (!close_sent)
        bc_error(e, conn, BC_ERR_CLOSED, "server sent close %u during the run", code);
    else if (!*bad && code != WS_CLOSE_NORMAL && code != WS_CLOSE_NO_STATUS)
        bc_error(e, conn, BC_ERR_CLOSED, "server answered our close with %u", code);
    return code;
}

// --- sockets and the server process ------------------------------------------------------

int bc_connect_start(const bc_url *u, uint32_t source) {
    int fd = socket(u->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    bool lo4 = u->addr.ss_family == AF_INET && (ntohl(((const sockaddr_in *)&u->addr)->sin_addr.s_addr) >> 24) == 127;
    if (source > 0 && lo4) {
        sockaddr_in src = {};
        src.sin_family = AF_INET;
        src.sin_addr.s_addr = htonl(0x7F000000u | (source > 254 ? 254 : source));
        // The port is picked at connect(), for the 4-tuple, not at bind() for the address alone.
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (bind(fd, (const sockaddr *)&src, sizeof src) != 0) {
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
    }
    if (connect(fd, (const sockaddr *)&u->addr, u->addr_len) != 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

uint64_t bc_raise_nofile() {
    rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
    return (uint64_t)rl.rlim_cur;
}

long bc_proc_rss_kb(int pid) {
    if (pid <= 0) return -1;
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = strtol(line + 6, nullptr, 10);
            break;
        }
    fclose(f);
    return kb;
}

double bc_proc_cpu_s(int pid) {
    if (pid <= 0) return -1;
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    // The command name is in parentheses and may hold spaces: fields count from the last ')'.
    char *p = strrchr(buf, ')');
    if (!p) return -1;
    unsigned long long ut = 0, st = 0;
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2) return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}
