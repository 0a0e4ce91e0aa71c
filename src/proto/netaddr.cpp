#include "proto/netaddr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

static bool is_digit(char c) { return c >= '0' && c <= '9'; }
static bool is_ows(char c) { return c == ' ' || c == '\t'; }

static char lower(char c) { return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c; }

static bool ieq(const char *a, size_t an, const char *b) {
    size_t bn = strlen(b);
    if (an != bn) return false;
    for (size_t i = 0; i < an; i++)
        if (lower(a[i]) != lower(b[i])) return false;
    return true;
}

static net_span trim_ows(const char *s, size_t len) {
    while (len && is_ows(s[0])) s++, len--;
    while (len && is_ows(s[len - 1])) len--;
    return net_span{s, len};
}

// Decimal 0..65535 without sign or leading zeros (the PROXY protocol's rule, applied to
// every port we read, so "0080" is never a second spelling of 80).
static bool parse_port(const char *s, size_t len, uint16_t *out) {
    if (len == 0 || len > 5 || (s[0] == '0' && len > 1)) return false;
    uint32_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (!is_digit(s[i])) return false;
        v = v * 10 + (uint32_t)(s[i] - '0');
    }
    if (v > 65535) return false;
    *out = (uint16_t)v;
    return true;
}

// inet_pton on a counted string. inet_pton wants a NUL-terminated one, and a NUL inside
// s must not cut the text short into something valid.
static bool ip_pton(int family, const char *s, size_t len, uint8_t out[16]) {
    char buf[INET6_ADDRSTRLEN];
    if (len == 0 || len >= sizeof buf || memchr(s, 0, len)) return false;
    memcpy(buf, s, len);
    buf[len] = 0;
    uint8_t tmp[16] = {0};
    if (inet_pton(family, buf, tmp) != 1) return false;
    memcpy(out, tmp, 16);
    return true;
}

static const uint8_t MAPPED_PREFIX[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static bool is_mapped(const uint8_t a[16]) { return memcmp(a, MAPPED_PREFIX, 12) == 0; }

bool net_addr_from_sockaddr(const struct sockaddr *sa, net_addr *out) {
    net_addr a;
    memset(&a, 0, sizeof a);
    if (sa->sa_family == AF_INET) {
        const sockaddr_in *in = (const sockaddr_in *)sa;
        a.family = AF_INET;
        a.port = ntohs(in->sin_port);
        memcpy(a.addr, &in->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        const sockaddr_in6 *in6 = (const sockaddr_in6 *)sa;
        a.family = AF_INET6;
        a.port = ntohs(in6->sin6_port);
        memcpy(a.addr, &in6->sin6_addr, 16);
    } else {
        return false;
    }
    *out = a;
    return true;
}

size_t net_addr_format(const net_addr *a, char *buf, size_t cap) {
    char ip[INET6_ADDRSTRLEN];
    bool v6 = false;
    if (a->family == AF_INET || (a->family == AF_INET6 && is_mapped(a->addr))) {
        inet_ntop(AF_INET, a->family == AF_INET ? a->addr : a->addr + 12, ip, sizeof ip);
    } else if (a->family == AF_INET6) {
        inet_ntop(AF_INET6, a->addr, ip, sizeof ip);
        v6 = true;
    } else {
        strcpy(ip, "unknown");
    }
    int n;
    if (a->port == 0 || !(a->family == AF_INET || a->family == AF_INET6)) n = snprintf(buf, cap, "%s", ip);
    else if (v6) n = snprintf(buf, cap, "[%s]:%u", ip, a->port);
    else n = snprintf(buf, cap, "%s:%u", ip, a->port);
    return n < 0 ? 0 : (size_t)n;
}

bool net_addr_parse(const char *s, size_t len, net_addr *out) {
    net_addr a;
    memset(&a, 0, sizeof a);
    const char *port = nullptr;
    size_t port_len = 0;
    if (len && s[0] == '[') {
        const char *close = (const char *)memchr(s, ']', len);
        if (!close || !ip_pton(AF_INET6, s + 1, (size_t)(close - s - 1), a.addr)) return false;
        a.family = AF_INET6;
        size_t rest = len - (size_t)(close + 1 - s);
        if (rest) {
            if (close[1] != ':') return false;
            port = close + 2;
            port_len = rest - 1;
        }
    } else {
        // An IPv6 address has at least two colons and an IPv4 one none, so one colon
        // can only be IPv4 with a port; an unbracketed IPv6 address carries no port.
        const char *colon = (const char *)memchr(s, ':', len);
        if (colon && memchr(colon + 1, ':', len - (size_t)(colon + 1 - s))) {
            if (!ip_pton(AF_INET6, s, len, a.addr)) return false;
            a.family = AF_INET6;
        } else {
            size_t ip_len = colon ? (size_t)(colon - s) : len;
            if (!ip_pton(AF_INET, s, ip_len, a.addr)) return false;
            a.family = AF_INET;
            if (colon) {
                port = colon + 1;
                port_len = len - ip_len - 1;
            }
        }
    }
    if (port && !parse_port(port, port_len, &a.port)) return false;
    *out = a;
    return true;
}

// Zeroes the bits of addr past the first `bits`.
static void mask_bits(uint8_t *addr, unsigned bytes, unsigned bits) {
    for (unsigned i = 0; i < bytes; i++) {
        unsigned keep = bits > i * 8 ? bits - i * 8 : 0;
        if (keep < 8) addr[i] &= (uint8_t)(0xFF00u >> keep);
    }
}

bool net_cidr_parse(const char *s, size_t len, net_cidr *out) {
    net_cidr c;
    memset(&c, 0, sizeof c);
    const char *slash = (const char *)memchr(s, '/', len);
    size_t ip_len = slash ? (size_t)(slash - s) : len;
    bool v6 = memchr(s, ':', ip_len) != nullptr;
    if (!ip_pton(v6 ? AF_INET6 : AF_INET, s, ip_len, c.addr)) return false;
    unsigned max = v6 ? 128 : 32, bits = max;
    if (slash) {
        size_t n = len - ip_len - 1;
        if (n == 0 || n > 3) return false;
        bits = 0;
        for (size_t i = 0; i < n; i++) {
            if (!is_digit(slash[1 + i])) return false;
            bits = bits * 10 + (unsigned)(slash[1 + i] - '0');
        }
        if (bits > max) return false;
    }
    if (v6 && bits >= 96 && is_mapped(c.addr)) {
        // net_cidr_match judges mapped clients as IPv4, so a mapped prefix is one.
        memmove(c.addr, c.addr + 12, 4);
        memset(c.addr + 4, 0, 12);
        v6 = false;
        bits -= 96;
    }
    c.family = v6 ? AF_INET6 : AF_INET;
    c.bits = (uint8_t)bits;
    mask_bits(c.addr, v6 ? 16 : 4, bits);
    *out = c;
    return true;
}

static bool prefix_equal(const uint8_t *a, const uint8_t *b, unsigned bits) {
    unsigned whole = bits / 8, rest = bits % 8;
    if (memcmp(a, b, whole) != 0) return false;
    if (rest == 0) return true;
    uint8_t m = (uint8_t)(0xFF00u >> rest);
    return (a[whole] & m) == (b[whole] & m);
}

bool net_cidr_match(const net_cidr *list, size_t n, const net_addr *a) {
    int family;
    const uint8_t *bytes;
    if (a->family == AF_INET) family = AF_INET, bytes = a->addr;
    else if (a->family == AF_INET6 && is_mapped(a->addr)) family = AF_INET, bytes = a->addr + 12;
    else if (a->family == AF_INET6) family = AF_INET6, bytes = a->addr;
    else return false;
    for (size_t i = 0; i < n; i++)
        if (list[i].family == family && prefix_equal(list[i].addr, bytes, list[i].bits)) return true;
    return false;
}

// --- the client behind proxies ------------------------------------------------------
//
// The rule walks the list from the right, but a Forwarded list can only be split from the
// left (a quoted-string may hold commas and escaped quotes). One left-to-right pass gives
// the same answer without storing the elements: the walk from the right stops at the
// rightmost element that is untrusted or does not parse, and when there is none it takes
// the leftmost. So the pass remembers the last such element and the first element.

struct walk {
    const net_cidr *trusted;
    size_t ntrusted;
    bool any;         // an element was seen
    bool stop;        // an element that ends the walk from the right was seen
    bool stop_parsed; // ... the rightmost such one parsed (an untrusted address)
    net_addr first;   // the leftmost element, when it parsed
    net_addr stop_at; // the rightmost untrusted element
};

static void walk_init(walk *w, const net_cidr *trusted, size_t ntrusted) {
    memset(w, 0, sizeof *w);
    w->trusted = trusted;
    w->ntrusted = ntrusted;
}

// One element, left to right. a is null when the element does not parse.
static void walk_element(walk *w, const net_addr *a) {
    if (!w->any && a) w->first = *a;
    w->any = true;
    if (!a || !net_cidr_match(w->trusted, w->ntrusted, a)) {
        w->stop = true;
        w->stop_parsed = a != nullptr;
        if (a) w->stop_at = *a;
    }
}

static bool walk_result(const walk *w, net_addr *out) {
    if (!w->any || (w->stop && !w->stop_parsed)) return false;
    *out = w->stop ? w->stop_at : w->first; // all trusted: the leftmost parsed, being trusted
    return true;
}

bool net_forwarded_for(const net_span *values, size_t nvalues, const net_cidr *trusted, size_t ntrusted,
                       net_addr *out) {
    walk w;
    walk_init(&w, trusted, ntrusted);
    for (size_t v = 0; v < nvalues; v++) {
        const char *s = values[v].ptr;
        size_t len = values[v].len, i = 0;
        while (i <= len) {
            size_t j = i;
            while (j < len && s[j] != ',') j++;
            net_span e = trim_ows(s + i, j - i);
            if (e.len) {
                net_addr a;
                walk_element(&w, net_addr_parse(e.ptr, e.len, &a) ? &a : nullptr);
            }
            i = j + 1;
        }
    }
    return walk_result(&w, out);
}

// --- RFC 7239 ------------------------------------------------------------------------

static bool is_tchar(char c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c)) return true;
    return c && strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

// RFC 9110 §5.6.4 qdtext and the characters a quoted-pair may escape.
static bool is_qdtext(uint8_t c) { return c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c != 0x5C && c != 0x7F); }
static bool is_escapable(uint8_t c) { return c == '\t' || (c >= 0x20 && c != 0x7F); }

enum { NODE_MAX = 128 }; // the longest for= value we read; a bracketed IPv6 node is 47

// A parameter value, token or quoted-string, into buf (unescaped). false when malformed or
// longer than NODE_MAX.
static bool param_value(const char *s, size_t len, char *buf, size_t *out_len) {
    if (len == 0) return false;
    if (s[0] != '"') {
        if (len > NODE_MAX) return false;
        for (size_t i = 0; i < len; i++)
            if (!is_tchar(s[i])) return false;
        memcpy(buf, s, len);
        *out_len = len;
        return true;
    }
    if (len < 2 || s[len - 1] != '"') return false;
    size_t n = 0;
    for (size_t i = 1; i < len - 1; i++) {
        uint8_t c = (uint8_t)s[i];
        if (c == '\\') {
            if (i + 1 >= len - 1 || !is_escapable((uint8_t)s[i + 1])) return false;
            c = (uint8_t)s[++i];
        } else if (!is_qdtext(c)) {
            return false;
        }
        if (n == NODE_MAX) return false;
        buf[n++] = (char)c;
    }
    *out_len = n;
    return true;
}

// RFC 7239 §6: node = nodename [ ":" node-port ]; nodename = IPv4address / "[" IPv6address
// "]" / "unknown" / obfnode. Only real addresses parse here; see forwarded_rfc7239.
static bool parse_node(const char *s, size_t len, net_addr *out) {
    net_addr a;
    memset(&a, 0, sizeof a);
    size_t ip_end;
    if (len && s[0] == '[') {
        const char *close = (const char *)memchr(s, ']', len);
        if (!close || !ip_pton(AF_INET6, s + 1, (size_t)(close - s - 1), a.addr)) return false;
        a.family = AF_INET6;
        ip_end = (size_t)(close + 1 - s);
    } else {
        const char *colon = (const char *)memchr(s, ':', len);
        ip_end = colon ? (size_t)(colon - s) : len;
        if (!ip_pton(AF_INET, s, ip_end, a.addr)) return false; // also refuses "unknown", "_x"
        a.family = AF_INET;
    }
    if (ip_end < len) {
        if (s[ip_end] != ':') return false;
        const char *p = s + ip_end + 1;
        size_t n = len - ip_end - 1;
        if (n && p[0] == '_') {
            // obfport = "_" 1*(ALPHA / DIGIT / "." / "_" / "-"): the address is real, the
            // port is hidden, and trust depends on the address alone.
            if (n == 1) return false;
            for (size_t i = 1; i < n; i++)
                if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z') || is_digit(p[i]) ||
                      p[i] == '.' || p[i] == '_' || p[i] == '-'))
                    return false;
        } else if (!parse_port(p, n, &a.port)) {
            return false;
        }
    }
    *out = a;
    return true;
}

// Splits s at top-level `sep` (outside quoted-strings). Returns the end of the piece that
// starts at s; *unterminated is set when a quote opened in it never closes.
static size_t piece_end(const char *s, size_t len, char sep, bool *unterminated) {
    bool quoted = false;
    size_t i = 0;
    for (; i < len; i++) {
        char c = s[i];
        if (quoted) {
            if (c == '\\') i++;
            else if (c == '"') quoted = false;
        } else if (c == sep) {
            break;
        } else if (c == '"') {
            quoted = true;
        }
    }
    *unterminated = quoted;
    return i < len ? i : len;
}

// One forwarded-element: its for= node, or false when it has none, more than one, a
// malformed pair, or a node that is not an address.
//
// Why "unknown" and obfuscated nodes (and elements without for=) end the walk with
// false rather than being skipped: the walk may only pass over an element that is known to
// be one of our proxies, and an identifier we cannot check against the trusted list could
// be anyone. Passing over it would hand the answer to the element on its left, which the
// hidden hop (possibly the client itself) wrote. Taking the hidden hop as "the client"
// gives no address to use. So the header is not believed, and the caller keeps the
// socket's peer, a proxy's address: less precise, never forged.
static bool forwarded_element(const char *s, size_t len, net_addr *out) {
    int nfor = 0;
    net_addr a;
    size_t i = 0;
    while (i <= len) {
        bool open;
        size_t j = i + piece_end(s + i, len - i, ';', &open);
        if (open) return false;
        net_span pair = trim_ows(s + i, j - i);
        i = j + 1;
        if (pair.len == 0) continue; // RFC 7239 §4: empty pairs are allowed
        const char *eq = (const char *)memchr(pair.ptr, '=', pair.len);
        if (!eq || eq == pair.ptr) return false;
        size_t name_len = (size_t)(eq - pair.ptr);
        for (size_t k = 0; k < name_len; k++)
            if (!is_tchar(pair.ptr[k])) return false;
        char buf[NODE_MAX];
        size_t n;
        if (!param_value(eq + 1, pair.len - name_len - 1, buf, &n)) return false;
        if (!ieq(pair.ptr, name_len, "for")) continue;
        // §4: a parameter MUST NOT occur more than once per element.
        if (++nfor > 1 || !parse_node(buf, n, &a)) return false;
    }
    if (nfor != 1) return false;
    *out = a;
    return true;
}

bool net_forwarded_rfc7239(const net_span *values, size_t nvalues, const net_cidr *trusted, size_t ntrusted,
                           net_addr *out) {
    walk w;
    walk_init(&w, trusted, ntrusted);
    // Each header line is its own list: a quote cannot open in one line and close in the
    // next, so a client's unbalanced quote cannot swallow the element a proxy appended on
    // a line of its own.
    for (size_t v = 0; v < nvalues; v++) {
        const char *s = values[v].ptr;
        size_t len = values[v].len, i = 0;
        while (i <= len) {
            bool open;
            size_t j = i + piece_end(s + i, len - i, ',', &open);
            net_span e = trim_ows(s + i, j - i);
            i = j + 1;
            if (e.len == 0) continue; // RFC 9110 §5.6.1: empty list elements are ignored
            net_addr a;
            walk_element(&w, !open && forwarded_element(e.ptr, e.len, &a) ? &a : nullptr);
        }
    }
    return walk_result(&w, out);
}
