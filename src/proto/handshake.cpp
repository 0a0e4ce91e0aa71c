#include "proto/handshake.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "proto/crypto.h"

static const char WS_GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

static int header_count(const h1_parser *p, const char *name) {
    uint16_t pos = 0;
    h1_span v;
    int n = 0;
    while (h1_header_next(p, name, &pos, &v)) n++;
    return n;
}

// A field sent several times is one comma-separated list (RFC 9110 §5.3), so
// "Connection: keep-alive" + "Connection: Upgrade" carries the Upgrade token.
static bool any_header_has_token(const h1_parser *p, const char *name, const char *token) {
    for (uint16_t i = 0; i < p->nheaders; i++) {
        h1_span v = p->headers[i].value;
        if (h1_span_is(p, p->headers[i].name, name) && h1_list_has_token(p->buf + v.off, v.len, token)) return true;
    }
    return false;
}

static bool key_valid(const char *k, size_t n) {
    // base64 of 16 bytes: 22 significant characters and "==" (RFC 6455 §4.1, §11.3.1).
    if (n != 24 || k[22] != '=' || k[23] != '=') return false;
    for (size_t i = 0; i < 22; i++) {
        char c = k[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
        if (!ok) return false;
    }
    return true;
}

void hs_accept_key(const char *key, size_t key_len, char out[HS_ACCEPT_LEN + 1]) {
    unsigned char in[64 + sizeof WS_GUID];
    if (key_len > 64) key_len = 64;
    memcpy(in, key, key_len);
    memcpy(in + key_len, WS_GUID, sizeof WS_GUID - 1);
    uint8_t md[CRYPTO_SHA1_LEN];
    crypto_sha1(in, key_len + sizeof WS_GUID - 1, md);
    crypto_base64_encode(md, sizeof md, out);
}

static void reject(hs_result *r, uint16_t status, const char *error) {
    r->status = status;
    r->error = error;
}

static const char *pick_subprotocol(const h1_parser *p, const hs_config *cfg) {
    if (!cfg->subprotocols) return nullptr;
    // The client lists protocols in its order of preference (§4.1); take the first the
    // server supports, looking through every Sec-WebSocket-Protocol header.
    for (uint16_t i = 0; i < p->nheaders; i++) {
        if (!h1_span_is(p, p->headers[i].name, "Sec-WebSocket-Protocol")) continue;
        const char *found = nullptr;
        h1_span v = p->headers[i].value;
        h1_list_any(p->buf + v.off, v.len, [&](const char *e, size_t n) {
            for (const char *const *s = cfg->subprotocols; *s; s++) {
                if (strlen(*s) == n && memcmp(*s, e, n) == 0) {
                    found = *s;
                    return true;
                }
            }
            return false;
        });
        if (found) return found;
    }
    return nullptr;
}

void hs_validate(const h1_parser *p, const hs_config *cfg, hs_result *r) {
    memset(r, 0, sizeof *r);
    h1_span v;
    if (p->http.method != HTTP_GET) return reject(r, 405, "method not allowed: use GET");
    // RFC 6455 §4.1 upgrades HTTP/1.1; HTTP/2 has its own way (RFC 8441), never this one.
    if (p->http.http_major < 1 || (p->http.http_major == 1 && p->http.http_minor < 1))
        return reject(r, 400, "HTTP/1.1 or later is required");
    if (p->http.http_major > 1) return reject(r, 505, "only HTTP/1.x upgrades to WebSocket");
    // The bytes after the head are WebSocket frames: a body would be read as frames.
    if ((p->http.flags & (F_CHUNKED | F_TRANSFER_ENCODING)) ||
        ((p->http.flags & F_CONTENT_LENGTH) && p->http.content_length > 0))
        return reject(r, 400, "an upgrade request has no body");
    if (header_count(p, "Host") != 1 || !h1_host_valid(p)) return reject(r, 400, "exactly one valid Host header is required");
    if (!h1_header_find(p, "Upgrade", &v)) return reject(r, 426, "this endpoint speaks WebSocket only");
    if (!any_header_has_token(p, "Upgrade", "websocket")) return reject(r, 400, "Upgrade must be websocket");
    if (!any_header_has_token(p, "Connection", "Upgrade"))
        return reject(r, 400, "Connection header must contain Upgrade");
    if (!h1_header_find(p, "Sec-WebSocket-Version", &v) || header_count(p, "Sec-WebSocket-Version") != 1 ||
        !h1_span_is(p, v, "13"))
        return reject(r, 426, "unsupported WebSocket version: 13 is required");
    if (header_count(p, "Sec-WebSocket-Key") != 1) return reject(r, 400, "exactly one Sec-WebSocket-Key is required");
    h1_header_find(p, "Sec-WebSocket-Key", &v);
    if (!key_valid(p->buf + v.off, v.len)) return reject(r, 400, "Sec-WebSocket-Key must be 16 bytes in base64");
    hs_accept_key(p->buf + v.off, v.len, r->accept);
    r->subprotocol = pick_subprotocol(p, cfg);
    r->status = 101;
}

size_t hs_write_accept(char *out, size_t cap, const hs_result *r, const char *extensions) {
    int n = snprintf(out, cap,
                     "HTTP/1.1 101 Switching Protocols\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: %s\r\n"
                     "%s%s%s"
                     "%s%s%s"
                     "\r\n",
                     r->accept, r->subprotocol ? "Sec-WebSocket-Protocol: " : "", r->subprotocol ? r->subprotocol : "",
                     r->subprotocol ? "\r\n" : "", extensions ? "Sec-WebSocket-Extensions: " : "",
                     extensions ? extensions : "", extensions ? "\r\n" : "");
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

