// Client addresses: a compact IPv4/IPv6 address + port, its text forms, CIDR lists, and
// the client behind trusted proxies from X-Forwarded-For or Forwarded (RFC 7239).
//
// Pure functions over caller-owned memory: no I/O, no allocation. inet_pton/inet_ntop
// are the only libc help (they touch nothing but their arguments).
#pragma once

#include <stddef.h>
#include <stdint.h>

struct sockaddr;

// Longest text net_addr_format writes, NUL included:
// "[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:65535".
enum { NET_ADDR_STRLEN = 54 };

// An IPv4 or IPv6 address and port in 20 bytes (family 0 = none/unknown). addr holds 4
// or 16 bytes in network order; the bytes past them are zero, so two equal addresses
// compare equal with memcmp.
struct net_addr {
    uint8_t family; // AF_INET, AF_INET6 or 0
    uint8_t _pad;
    uint16_t port;  // host order, 0 = unknown
    uint8_t addr[16];
};
static_assert(sizeof(net_addr) == 20);

// Every function here writes *out only when it returns true, so a caller may preset it
// (to the socket's own peer, say) and keep that on false.

// false for families other than AF_INET and AF_INET6.
bool net_addr_from_sockaddr(const struct sockaddr *sa, net_addr *out);

// "203.0.113.7:51234", "[2001:db8::1]:443"; without port when port == 0: "203.0.113.7",
// "2001:db8::1"; "unknown" for family 0. IPv4-mapped IPv6 (::ffff:a.b.c.d) is printed as
// IPv4, since that is the client a log reader knows. Returns the length of the whole text
// as snprintf does (a result >= cap means buf holds a truncated prefix); always
// NUL-terminated when cap > 0. NET_ADDR_STRLEN bytes are always enough.
size_t net_addr_format(const net_addr *a, char *buf, size_t cap);

// Parses an address with optional port: "1.2.3.4", "1.2.3.4:80", "2001:db8::1",
// "[2001:db8::1]", "[2001:db8::1]:80". Ports are decimal 0..65535 without sign or leading
// zeros. false on anything else (spaces, zone ids, "unknown", ...).
bool net_addr_parse(const char *s, size_t len, net_addr *out);

// An address prefix. addr bits past `bits` are zero.
struct net_cidr {
    uint8_t family;
    uint8_t bits;
    uint8_t addr[16];
};

// "10.0.0.0/8", "192.168.1.7" (= /32), "::1" (= /128), "fd00::/8", "0.0.0.0/0". Host bits
// past the prefix are accepted and masked off. An IPv4-mapped prefix of /96 or longer
// ("::ffff:10.0.0.0/104") is stored as the IPv4 prefix it names (10.0.0.0/8), so it
// matches the same clients whether they arrive on an IPv4 or a dual-stack socket.
// false on junk or bits out of range.
bool net_cidr_parse(const char *s, size_t len, net_cidr *out);

// True when a is inside any of list[0..n). An IPv4-mapped IPv6 address is matched as the
// IPv4 address it carries, against IPv4 entries only: a client is judged the same whether
// it reached an IPv4 or a dual-stack socket, so "::/0" means IPv6 clients, not everyone.
bool net_cidr_match(const net_cidr *list, size_t n, const net_addr *a);

struct net_span {
    const char *ptr;
    size_t len;
};

// The client behind trusted proxies, from X-Forwarded-For values (every header's value,
// in order, each a comma list). Walks the combined list from the RIGHT: entries inside
// trusted (net_cidr_match) are proxies and are skipped; the first untrusted entry is the
// client; if every entry is trusted, the leftmost one. Entries may carry ports or brackets
// ("[2001:db8::1]:80", "1.2.3.4:5"); empty list elements are ignored (RFC 9110 §5.6.1).
// false when the walk stops at an entry that does not parse (do not believe the header),
// and when there is no entry. Call it only when the connection's peer is itself a trusted
// proxy: otherwise the whole header is the client's to invent.
bool net_forwarded_for(const net_span *values, size_t nvalues, const net_cidr *trusted, size_t ntrusted,
                       net_addr *out);

// The same for RFC 7239 Forwarded values: elements separated by ',', pairs by ';', the
// for= parameter (name case-insensitive, value a token or a quoted-string:
// for=192.0.2.60, for="[2001:db8:cafe::17]:4711"). IPv6 must be bracketed (RFC 7239 §6);
// an obfuscated port ("1.2.3.4:_p") gives port 0. The walk stops with false at an element
// without exactly one for=, or whose node is "unknown" or obfuscated ("_hidden"): see
// forwarded_rfc7239 in netaddr.cpp for why.
bool net_forwarded_rfc7239(const net_span *values, size_t nvalues, const net_cidr *trusted, size_t ntrusted,
                           net_addr *out);
