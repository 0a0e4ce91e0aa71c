#include "proto/origin.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>

// An origin split into its parts. Hosts are kept as text: the comparison is on the
// serialized form browsers send (RFC 6454 §6.2), not on what DNS would make of it.
struct origin_parts {
    const char *scheme;
    size_t scheme_len;
    const char *host; // for a wildcard pattern: the suffix after "*."
    size_t host_len;
    int32_t port;     // explicit or the scheme's default; -1 for none
    bool wildcard;
};

static bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static bool is_digit(char c) { return c >= '0' && c <= '9'; }
static char lower(char c) { return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c; }

static bool ieq(const char *a, size_t an, const char *b, size_t bn) {
    if (an != bn) return false;
    for (size_t i = 0; i < an; i++)
        if (lower(a[i]) != lower(b[i])) return false;
    return true;
}

static int32_t default_port(const char *scheme, size_t n) {
    if (ieq(scheme, n, "http", 4) || ieq(scheme, n, "ws", 2)) return 80;
    if (ieq(scheme, n, "https", 5) || ieq(scheme, n, "wss", 3)) return 443;
    return -1;
}

// A host name as browsers serialize it: dot-separated labels of letters, digits, '-'
// and '_', none empty (so no trailing dot, which would be a different origin), at most 63
// characters each and 253 in all.
static bool hostname_ok(const char *s, size_t n) {
    if (n == 0 || n > 253) return false;
    size_t label = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '.') {
            if (label == 0) return false;
            label = 0;
        } else if (is_alpha(c) || is_digit(c) || c == '-' || c == '_') {
            if (++label > 63) return false;
        } else {
            return false;
        }
    }
    return label > 0;
}

static bool ipv6_literal_ok(const char *s, size_t n) {
    char buf[INET6_ADDRSTRLEN];
    uint8_t a[16];
    if (n >= sizeof buf || memchr(s, 0, n)) return false;
    memcpy(buf, s, n);
    buf[n] = 0;
    return inet_pton(AF_INET6, buf, a) == 1;
}

// Parses "scheme://host[:port]". A pattern may start its host with "*.".
static bool origin_split(const char *s, size_t n, bool pattern, origin_parts *o) {
    memset(o, 0, sizeof *o);
    size_t i = 0;
    // RFC 3986 §3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
    if (n == 0 || !is_alpha(s[0])) return false;
    while (i < n && (is_alpha(s[i]) || is_digit(s[i]) || s[i] == '+' || s[i] == '-' || s[i] == '.')) i++;
    if (n - i < 3 || memcmp(s + i, "://", 3) != 0) return false;
    o->scheme = s;
    o->scheme_len = i;
    i += 3;
    size_t h = i;
    if (i < n && s[i] == '[') {
        const char *close = (const char *)memchr(s + i, ']', n - i);
        if (!close || !ipv6_literal_ok(s + i + 1, (size_t)(close - (s + i + 1)))) return false;
        i = (size_t)(close + 1 - s);
    } else {
        if (pattern && n - i >= 2 && s[i] == '*' && s[i + 1] == '.') {
            o->wildcard = true;
            i += 2;
            h = i;
        }
        while (i < n && s[i] != ':') i++;
        if (!hostname_ok(s + h, i - h)) return false;
        if (o->wildcard) {
            // "*.0.0.1" reads as "every host under an IP address", which names nothing a
            // browser sends: a wildcard's suffix must end in a name, not a number. (How
            // wide a name, "*.com" included, is the pattern writer's choice: without the
            // public suffix list we cannot tell a registrable domain from a shared one.)
            size_t last = i;
            while (last > h && s[last - 1] != '.') last--;
            bool numeric = true;
            for (size_t k = last; k < i; k++) numeric = numeric && is_digit(s[k]);
            if (numeric) return false;
        }
    }
    o->host = s + h;
    o->host_len = i - h;
    o->port = default_port(o->scheme, o->scheme_len);
    if (i == n) return true;
    // ":" port, decimal 1..65535 without leading zeros, then nothing: an Origin has no path.
    if (s[i] != ':' || n - i < 2 || n - i > 6 || s[i + 1] == '0') return false;
    int32_t port = 0;
    for (size_t k = i + 1; k < n; k++) {
        if (!is_digit(s[k])) return false;
        port = port * 10 + (s[k] - '0');
    }
    if (port > 65535) return false;
    o->port = port;
    return true;
}

static bool is_literal(const char *s, size_t n, const char *lit) { return n == strlen(lit) && memcmp(s, lit, n) == 0; }

bool origin_pattern_valid(const char *pattern) {
    size_t n = strlen(pattern);
    if (is_literal(pattern, n, "*") || is_literal(pattern, n, "null")) return true;
    origin_parts p;
    return origin_split(pattern, n, true, &p);
}

bool origin_match(const char *pattern, const char *origin, size_t origin_len) {
    size_t pn = strlen(pattern);
    if (is_literal(pattern, pn, "*")) return true;
    if (is_literal(pattern, pn, "null")) return is_literal(origin, origin_len, "null");
    origin_parts p, o;
    if (!origin_split(pattern, pn, true, &p) || !origin_split(origin, origin_len, false, &o)) return false;
    if (!ieq(p.scheme, p.scheme_len, o.scheme, o.scheme_len) || p.port != o.port) return false;
    if (!p.wildcard) return ieq(p.host, p.host_len, o.host, o.host_len);
    // One or more whole labels, then exactly ".suffix": the dot before the suffix is what
    // keeps "evil-example.com" out of "*.example.com".
    if (o.host_len < p.host_len + 2 || o.host[0] == '[') return false;
    const char *tail = o.host + o.host_len - p.host_len;
    return tail[-1] == '.' && ieq(tail, p.host_len, p.host, p.host_len);
}
