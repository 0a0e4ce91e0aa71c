// The pieces of a WebSocket client that wsbench and flood share (see client.h).
#include "client.h"

#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/random.h>

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

const char *const bc_err_names[BC_ERR_COUNT] = {"connect", "handshake", "protocol", "payload", "utf8", "closed", "timeout"};

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

bool bc_parse_url(const char *url, bool allow_tcp, bc_url *o) {
    const char *u = url;
    if (strncmp(u, "ws://", 5) == 0)
        u += 5;
    else if (allow_tcp && strncmp(u, "tcp://", 6) == 0)
        u += 6;
    else
        return false;
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
        snprintf(o->port, sizeof o->port, "80");
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
