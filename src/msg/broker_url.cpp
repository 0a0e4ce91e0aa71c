// The --broker URL (src/msg/broker.h): a pure parser, unit-tested in test/msg.
#include <stdlib.h>
#include <string.h>

#include "msg/broker.h"

static int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// Percent-decodes [s, s+len) into out (cap bytes with the NUL). Passwords hold ':' and
// '@' only encoded, as in every URL. False when too long, a bad escape, or a NUL byte.
static bool decode(const char *s, size_t len, char *out, size_t cap) {
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= len) return false; // "%" or "%a" at the end
            int h = hex_value(s[i + 1]), l = hex_value(s[i + 2]);
            if (h < 0 || l < 0 || (h == 0 && l == 0)) return false;
            c = (char)(h * 16 + l);
            i += 2;
        }
        if (n + 1 >= cap) return false;
        out[n++] = c;
    }
    out[n] = '\0';
    return true;
}

// A decimal number in [s, s+len) no larger than max; no sign, no spaces, not empty.
static bool number(const char *s, size_t len, uint64_t max, uint64_t *out) {
    if (!len || len > 10) return false;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > max) return false;
    *out = v;
    return true;
}

// Redis numbers databases from 0; a server is configured with 16 by default and may have
// more, so any int Redis itself would take for SELECT.
static const uint64_t DB_MAX = INT32_MAX;

// "user:pass", "user" or ":pass" in [p, at): a lone part is the password (Redis before
// ACLs had no users), as redis-cli reads it.
static bool parse_credentials(const char *p, const char *at, broker_url *out, const char **why) {
    const char *colon = (const char *)memchr(p, ':', (size_t)(at - p));
    size_t ulen = colon ? (size_t)(colon - p) : (size_t)(at - p);
    if (!decode(p, ulen, out->user, sizeof out->user)) return *why = "the user is too long or badly escaped", false;
    if (colon && !decode(colon + 1, (size_t)(at - colon - 1), out->pass, sizeof out->pass))
        return *why = "the password is too long or badly escaped", false;
    if (!colon) {
        memcpy(out->pass, out->user, sizeof out->pass);
        out->user[0] = '\0';
    }
    return true;
}

static bool parse_unix(const char *p, broker_url *out, const char **why) {
    // unix://[user:pass@]/path: credentials end at the last '@' before the path.
    const char *slash = strchr(p, '/'), *at = nullptr;
    for (const char *s = p; slash && s < slash; s++)
        if (*s == '@') at = s;
    if (at && at + 1 == slash) {
        if (!parse_credentials(p, at, out, why)) return false;
        p = slash;
    }
    // The path is absolute, so what follows "unix://" (and the credentials) is '/'.
    if (*p != '/') return *why = "unix:// needs an absolute path (unix:///run/redis.sock)", false;
    const char *q = strchr(p, '?');
    size_t len = q ? (size_t)(q - p) : strlen(p);
    if (!decode(p, len, out->path, sizeof out->path)) return *why = "the socket path is too long or badly escaped", false;
    if (q) {
        uint64_t db;
        if (strncmp(q, "?db=", 4) != 0 || !number(q + 4, strlen(q + 4), DB_MAX, &db))
            return *why = "unix:// takes only ?db=N after the path", false;
        out->db = (uint32_t)db;
    }
    out->unix_socket = true;
    return true;
}

bool broker_url_parse(const char *text, broker_url *out, const char **why) {
    memset(out, 0, sizeof *out);
    out->port = 6379;
    if (!text || !*text) return *why = "empty broker URL", false;
    if (strncmp(text, "unix://", 7) == 0) return parse_unix(text + 7, out, why);
    if (strncmp(text, "redis://", 8) != 0) return *why = "the broker URL starts with redis:// or unix://", false;
    const char *p = text + 8;
    // The authority ends at the first '/'; credentials end at its last '@' (an
    // unencoded '@' in a password is more likely than in a host name).
    const char *end = strchr(p, '/');
    if (!end) end = p + strlen(p);
    const char *at = nullptr;
    for (const char *s = p; s < end; s++)
        if (*s == '@') at = s;
    if (at) {
        if (!parse_credentials(p, at, out, why)) return false;
        p = at + 1;
    }
    const char *host_end;
    if (*p == '[') {
        const char *rb = (const char *)memchr(p, ']', (size_t)(end - p));
        if (!rb) return *why = "an IPv6 address needs its closing ]", false;
        if ((size_t)(rb - p - 1) > BROKER_HOST_MAX || rb == p + 1) return *why = "bad host", false;
        memcpy(out->host, p + 1, (size_t)(rb - p - 1));
        host_end = rb + 1;
        if (host_end != end && *host_end != ':') return *why = "junk after the IPv6 address", false;
    } else {
        host_end = (const char *)memchr(p, ':', (size_t)(end - p));
        if (!host_end) host_end = end;
        size_t hl = (size_t)(host_end - p);
        if (!hl || hl > BROKER_HOST_MAX) return *why = "the broker URL needs a host", false;
        for (size_t i = 0; i < hl; i++) {
            char c = p[i];
            bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                      c == '-' || c == '_';
            if (!ok) return *why = "the host has a character a host name cannot have", false;
        }
        memcpy(out->host, p, hl);
    }
    if (host_end < end) { // ":port"
        uint64_t port;
        if (!number(host_end + 1, (size_t)(end - host_end - 1), 65535, &port) || !port)
            return *why = "the port is 1-65535", false;
        out->port = (uint16_t)port;
    }
    if (*end == '/' && end[1]) {
        uint64_t db;
        if (!number(end + 1, strlen(end + 1), DB_MAX, &db)) return *why = "the database after / is a number", false;
        out->db = (uint32_t)db;
    }
    return true;
}
