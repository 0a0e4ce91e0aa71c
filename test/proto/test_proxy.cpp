// Unit tests for the PROXY protocol header parser (src/proto/proxy.*).
//
// What a server relies on: the headers real load balancers send (here: bytes HAProxy
// 2.6.12 sent to a backend, captured with a plain TCP listener) give the client's address
// and the exact header length however the reads cut them; a connection that does not start
// with a valid header is refused as soon as its bytes rule it out, not after a timeout;
// and nothing half-parsed is ever reported as an address.
//
// proxy_parse keeps no state between calls: a caller that receives the bytes in any
// pieces holds some prefix of them at each call. So "every byte split gives the same
// answer as the whole" is "every prefix gives the answer its length calls for", and the
// tests check every prefix.
#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>

#include "unit.h"

#include "proto/proxy.h"

#define B(s) (const uint8_t *)(s), sizeof(s) - 1

// --- real headers ----------------------------------------------------------------------

// HAProxy `server ... send-proxy`, IPv4 client; the client's first bytes follow.
static const char HP_V1_TCP4[] = "PROXY TCP4 127.0.0.1 127.0.0.1 58682 18001\r\nGET / HTTP/1.1\r\n\r\n";
// The same over IPv6 (frontend bound to [::1]).
static const char HP_V1_TCP6[] = "PROXY TCP6 ::1 ::1 35890 18004\r\nGET / HTTP/1.1\r\n\r\n";

// `send-proxy-v2 proxy-v2-options crc32c,unique-id`: TCP over IPv4, then a CRC32C TLV
// (0x03) and a UNIQUE_ID TLV (0x05, 46 bytes).
static const char HP_V2_TCP4_TLV[] =
    "\x0d\x0a\x0d\x0a\x00\x0d\x0a\x51\x55\x49\x54\x0a\x21\x11\x00\x44"
    "\x7f\x00\x00\x01\x7f\x00\x00\x01\xa0\x22\x46\x52\x03\x00\x04\xea"
    "\xe9\x6d\x4f\x05\x00\x2e\x37\x46\x30\x30\x30\x30\x30\x31\x3a\x41"
    "\x30\x32\x32\x5f\x37\x46\x30\x30\x30\x30\x30\x31\x3a\x34\x36\x35"
    "\x32\x5f\x36\x42\x30\x44\x32\x38\x32\x41\x5f\x30\x30\x30\x31\x3a"
    "\x35\x46\x44\x39"
    "GET / HTTP/1.1\r\n\r\n";
// `send-proxy-v2` from an IPv6 frontend: TCP over IPv6, no TLVs.
static const char HP_V2_TCP6[] =
    "\x0d\x0a\x0d\x0a\x00\x0d\x0a\x51\x55\x49\x54\x0a\x21\x21\x00\x24"
    "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"
    "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"
    "\xdc\x96\x46\x53"
    "GET / HTTP/1.1\r\n\r\n";
// `send-proxy-v2 proxy-v2-options ssl,cert-cn,ssl-cipher,cert-sig,cert-key,authority,crc32c`
// behind a TLS frontend: CRC32C, ALPN (0x01), AUTHORITY (0x02) and SSL (0x20, with its
// own sub-TLVs for version, key, signature and cipher).
static const char HP_V2_SSL_TLV[] =
    "\x0d\x0a\x0d\x0a\x00\x0d\x0a\x51\x55\x49\x54\x0a\x21\x11\x00\x72"
    "\x7f\x00\x00\x01\x7f\x00\x00\x01\x92\x58\x46\x55\x03\x00\x04\xa5"
    "\x5f\xae\x0f\x01\x00\x08\x68\x74\x74\x70\x2f\x31\x2e\x31\x02\x00"
    "\x0f\x61\x70\x70\x2e\x65\x78\x61\x6d\x70\x6c\x65\x2e\x63\x6f\x6d"
    "\x20\x00\x3f\x01\x00\x00\x00\x00\x21\x00\x07\x54\x4c\x53\x76\x31"
    "\x2e\x33\x25\x00\x07\x52\x53\x41\x32\x30\x34\x38\x24\x00\x0a\x52"
    "\x53\x41\x2d\x53\x48\x41\x32\x35\x36\x23\x00\x16\x54\x4c\x53\x5f"
    "\x41\x45\x53\x5f\x32\x35\x36\x5f\x47\x43\x4d\x5f\x53\x48\x41\x33"
    "\x38\x34"
    "GET / HTTP/1.1\r\n\r\n";
// A health check (`check send-proxy-v2 check-send-proxy`): LOCAL, UNSPEC, no block.
static const char HP_V2_LOCAL[] = "\x0d\x0a\x0d\x0a\x00\x0d\x0a\x51\x55\x49\x54\x0a\x20\x00\x00\x00";

// Built per the spec: an AWS NLB-style header, TCP4 plus a PP2_TYPE_AWS TLV (0xEA) whose
// subtype 0x01 carries the VPC endpoint id.
static const char AWS_V2[] =
    "\x0d\x0a\x0d\x0a\x00\x0d\x0a\x51\x55\x49\x54\x0a\x21\x11\x00\x26"
    "\xc6\x33\x64\x07\x0a\x00\x01\x02\xc8\x3a\x01\xbb"
    "\xea\x00\x17\x01vpce-0123456789abcdef0"
    "\x16\x03\x01"; // a TLS ClientHello starts

// The longest v1 lines the spec lists: 104 bytes for TCP6, 107 for UNKNOWN.
static const char V1_TCP6_MAX[] = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                                  "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
static const char V1_UNKNOWN_MAX[] = "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                                     "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";

struct expect {
    const char *name;
    const char *bytes;
    size_t len;
    size_t header_len;
    bool local;
    const char *src, *dst; // net_addr_format of each, when !local
};

#define E(name, arr, hl, local, src, dst) {name, arr, sizeof arr - 1, hl, local, src, dst}

static const expect REAL[] = {
    E("haproxy v1 tcp4", HP_V1_TCP4, 44, false, "127.0.0.1:58682", "127.0.0.1:18001"),
    E("haproxy v1 tcp6", HP_V1_TCP6, 32, false, "[::1]:35890", "[::1]:18004"),
    E("haproxy v2 tcp4 crc32c unique-id", HP_V2_TCP4_TLV, 16 + 0x44, false, "127.0.0.1:40994", "127.0.0.1:18002"),
    E("haproxy v2 tcp6", HP_V2_TCP6, 16 + 36, false, "[::1]:56470", "[::1]:18003"),
    E("haproxy v2 ssl tlvs", HP_V2_SSL_TLV, 16 + 0x72, false, "127.0.0.1:37464", "127.0.0.1:18005"),
    E("haproxy v2 local check", HP_V2_LOCAL, 16, true, nullptr, nullptr),
    E("aws v2 vpce tlv", AWS_V2, 16 + 38, false, "198.51.100.7:51258", "10.0.1.2:443"),
    E("v1 tcp6 longest", V1_TCP6_MAX, 104, false, "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
      "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"),
    E("v1 unknown longest", V1_UNKNOWN_MAX, 107, true, nullptr, nullptr),
};

static void check_addr(const net_addr *a, const char *want, const char *what, const char *name) {
    char buf[NET_ADDR_STRLEN];
    net_addr_format(a, buf, sizeof buf);
    if (strcmp(buf, want) != 0) fail_msg("%s: %s is %s, want %s", name, what, buf, want);
}

// Every prefix of d[0..n): NEED_MORE below header_len, and from there on DONE with a
// result identical (byte for byte) to `want`.
static void check_every_prefix(const char *name, const uint8_t *d, size_t n, size_t header_len,
                               const proxy_result *want) {
    for (size_t k = 0; k <= n; k++) {
        proxy_result r;
        memset(&r, 0x5A, sizeof r);
        proxy_status st = proxy_parse(d, k, &r);
        if (k < header_len) {
            if (st != PROXY_NEED_MORE)
                fail_msg("%s: %zu of %zu header bytes give %d (%s)", name, k, header_len, st, r.error ? r.error : "-");
            if (r.src.family || r.dst.family || r.local || r.header_len)
                fail_msg("%s: NEED_MORE at %zu reports a result", name, k);
        } else if (st != PROXY_DONE || memcmp(&r, want, sizeof r) != 0) {
            fail_msg("%s: %zu bytes give %d, not the whole header's result", name, k, st);
        }
    }
}

static void test_real_headers_every_split(void **) {
    for (const expect &e : REAL) {
        const uint8_t *d = (const uint8_t *)e.bytes;
        proxy_result r;
        proxy_status st = proxy_parse(d, e.len, &r);
        if (st != PROXY_DONE) fail_msg("%s: status %d (%s)", e.name, st, r.error ? r.error : "-");
        if (r.header_len != e.header_len) fail_msg("%s: header_len %zu, want %zu", e.name, r.header_len, e.header_len);
        if (r.local != e.local) fail_msg("%s: local %d", e.name, r.local);
        if (r.error) fail_msg("%s: error set on success", e.name);
        if (e.local) {
            if (r.src.family || r.dst.family) fail_msg("%s: a local header names addresses", e.name);
        } else {
            check_addr(&r.src, e.src, "src", e.name);
            check_addr(&r.dst, e.dst, "dst", e.name);
        }
        check_every_prefix(e.name, d, e.len, e.header_len, &r);
    }
}

// The application bytes after the header are not the header's: header_len is where the
// WebSocket handshake (or the TLS ClientHello) begins.
static void test_bytes_after_header_are_left(void **) {
    proxy_result r;
    assert_int_equal(proxy_parse(B(HP_V1_TCP4), &r), PROXY_DONE);
    assert_memory_equal(HP_V1_TCP4 + r.header_len, "GET / HTTP/1.1\r\n\r\n", 18);
    assert_int_equal(proxy_parse(B(HP_V2_SSL_TLV), &r), PROXY_DONE);
    assert_memory_equal(HP_V2_SSL_TLV + r.header_len, "GET / HTTP/1.1\r\n\r\n", 18);
    assert_int_equal(proxy_parse(B(AWS_V2), &r), PROXY_DONE);
    assert_memory_equal(AWS_V2 + r.header_len, "\x16\x03\x01", 3);
}

// HAProxy's CRC32C covers the whole header: one flipped bit anywhere, in the addresses,
// a TLV or the checksum itself, and the header must not be believed.
static void test_v2_crc32c(void **) {
    uint8_t buf[sizeof HP_V2_TCP4_TLV];
    size_t hl = 16 + 0x44;
    for (size_t i = 0; i < hl; i++) {
        // Byte 28 is the CRC32C TLV's type: flipped, the header has no checksum left to
        // fail, which is the limit of a checksum carried as an optional TLV.
        if (i == 28) continue;
        memcpy(buf, HP_V2_TCP4_TLV, sizeof buf);
        buf[i] ^= 0x01;
        proxy_result r;
        proxy_status st = proxy_parse(buf, sizeof buf - 1, &r);
        // PROXY flipped to LOCAL (byte 12) is accepted, but names no one.
        if (st == PROXY_DONE && !r.local) fail_msg("bit flipped at %zu: header believed", i);
        // Past the fixed part, only TLV lengths (29-30, 36-37) fail on their own; every
        // other flip must be caught by the checksum.
        if (i >= 16 && i != 29 && i != 30 && i != 36 && i != 37) {
            if (st != PROXY_ERROR || strcmp(r.error, "PROXY v2 CRC32C mismatch") != 0)
                fail_msg("bit flipped at %zu: %d (%s)", i, st, r.error ? r.error : "-");
        }
    }
    // A CRC32C TLV must hold exactly 4 bytes.
    static const char crc3[] = "\x0d\x0a\x0d\x0a\x00\x0d\x0a\x51\x55\x49\x54\x0a\x21\x11\x00\x12"
                               "\x7f\x00\x00\x01\x7f\x00\x00\x01\xa0\x22\x46\x52\x03\x00\x03\x00\x00\x00";
    proxy_result r;
    assert_int_equal(proxy_parse(B(crc3), &r), PROXY_ERROR);
    assert_string_equal(r.error, "PROXY v2 CRC32C TLV is not 4 bytes");
}

// Each case: bytes that go wrong at a known point. Every shorter prefix must be
// NEED_MORE (so a slow but valid sender is never cut off early), the prefix of that length
// ERROR, and every longer one ERROR too.
struct bad {
    const char *bytes;
    size_t len;
    size_t at; // length of the shortest prefix that is an ERROR
    const char *error;
};

#define BAD(s, at, err) {s, sizeof(s) - 1, at, err}
#define SIG "\x0d\x0a\x0d\x0a\x00\x0d\x0a\x51\x55\x49\x54\x0a"
#define V1(s) "PROXY " s
// "PROXY UNKNOWN " + A92 is 106 bytes before the CRLF: one more than the 107-byte limit allows.
#define A10 "aaaaaaaaaa"
#define A92 A10 A10 A10 A10 A10 A10 A10 A10 A10 "aa"

static const bad BAD_CASES[] = {
    BAD("GET / HTTP/1.1\r\n\r\n", 1, "not a PROXY protocol header"),
    BAD("\x16\x03\x01\x02\x00", 1, "not a PROXY protocol header"),
    BAD("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", 1, "not a PROXY protocol header"),
    BAD("PROXZ", 5, "not a PROXY protocol header"),
    BAD("PROXY\r\n", 6, "truncated PROXY v1 line"),
    BAD("PROXY  TCP4", 7, "empty field in PROXY v1 line"),
    BAD(V1("tcp4 1.2.3.4"), 7, "unknown PROXY v1 protocol"),
    BAD(V1("TCP5 1.2.3.4"), 10, "unknown PROXY v1 protocol"),
    // The reason is the first wrong byte's, however much follows it.
    BAD(V1("TCP5 1.2.3.4 5.6.7.8 1 2\n"), 10, "unknown PROXY v1 protocol"),
    BAD(V1("TCP5 " A92 "\r\n"), 10, "unknown PROXY v1 protocol"),
    BAD(V1("TCP4 1.2.3.4 5.6.7.8 1 2 3\rX"), 31, "trailing data in PROXY v1 line"),
    BAD(V1("TCP44 1.2.3.4"), 11, "unknown PROXY v1 protocol"),
    BAD(V1("UNKNOWNX\r\n"), 14, "unknown PROXY v1 protocol"),
    BAD(V1("TCP4 1.2.3.256 5.6.7.8 1 2\r\n"), 20, "bad IPv4 address in PROXY v1 line"),
    BAD(V1("TCP4 01.2.3.4 5.6.7.8 1 2\r\n"), 13, "bad IPv4 address in PROXY v1 line"),
    BAD(V1("TCP4 1.2.3 5.6.7.8 1 2\r\n"), 17, "bad IPv4 address in PROXY v1 line"),
    BAD(V1("TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n"), 19, "bad IPv4 address in PROXY v1 line"),
    BAD(V1("TCP4 ::1 ::1 1 2\r\n"), 12, "bad IPv4 address in PROXY v1 line"),
    BAD(V1("TCP6 1.2.3.4 5.6.7.8 1 2\r\n"), 13, "bad IPv6 address in PROXY v1 line"),
    BAD(V1("TCP6 :1 ::1 1 2\r\n"), 13, "bad IPv6 address in PROXY v1 line"),
    BAD(V1("TCP6 1:::2 ::1 1 2\r\n"), 15, "bad IPv6 address in PROXY v1 line"),
    BAD(V1("TCP6 1::2::3 ::1 1 2\r\n"), 17, "bad IPv6 address in PROXY v1 line"),
    BAD(V1("TCP6 12345:: ::1 1 2\r\n"), 16, "bad IPv6 address in PROXY v1 line"),
    BAD(V1("TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n"), 27, "bad IPv6 address in PROXY v1 line"),
    BAD(V1("TCP6 1:2:3:4:5:6:7::8 ::1 1 2\r\n"), 27, "bad IPv6 address in PROXY v1 line"),
    BAD(V1("TCP6 1:2:3:4:5:6:7:1.2.3.4 ::1 1 2\r\n"), 27, "bad IPv6 address in PROXY v1 line"),
    BAD(V1("TCP6 1:2:3:4:5:6::1.2.3.4 ::1 1 2\r\n"), 26, "bad IPv6 address in PROXY v1 line"),
    BAD(V1("TCP6 1.2.3.4:: ::1 1 2\r\n"), 13, "bad IPv6 address in PROXY v1 line"),
    BAD(V1("TCP6 ::01.2.3.4 ::1 1 2\r\n"), 16, "bad IPv6 address in PROXY v1 line"),
    BAD(V1("TCP6 1:2 ::1 1 2\r\n"), 15, "bad IPv6 address in PROXY v1 line"),
    BAD(V1("TCP6 fe80::1%eth0 ::1 1 2\r\n"), 19, "bad IPv6 address in PROXY v1 line"),
    BAD(V1("TCP4 1.2.3.4 5.6.7.8 65536 2\r\n"), 32, "bad port in PROXY v1 line"),
    BAD(V1("TCP4 1.2.3.4 5.6.7.8 123456 2\r\n"), 33, "bad port in PROXY v1 line"),
    BAD(V1("TCP4 1.2.3.4 5.6.7.8 +80 2\r\n"), 28, "bad port in PROXY v1 line"),
    BAD(V1("TCP4 1.2.3.4 5.6.7.8 080 2\r\n"), 29, "bad port in PROXY v1 line"),
    BAD(V1("TCP4 1.2.3.4 5.6.7.8 80 0x50\r\n"), 32, "bad port in PROXY v1 line"),
    BAD(V1("TCP4 1.2.3.4 5.6.7.8 80 80 \r\n"), 33, "trailing data in PROXY v1 line"),
    BAD(V1("TCP4 1.2.3.4 5.6.7.8 80\r\n"), 30, "truncated PROXY v1 line"),
    BAD(V1("TCP4 1.2.3.4 5.6.7.8 80 \r\n"), 31, "empty field in PROXY v1 line"),
    BAD(V1("TCP4 1.2.3.4 5.6.7.8 80 80\n"), 33, "PROXY v1 line with a bare LF"),
    BAD(V1("TCP4 1.2.3.4 5.6.7.8 80 80\rX"), 34, "PROXY v1 line with a bare CR"),
    BAD(V1("UNKNOWN " A92 "\r\n"),
        106, "PROXY v1 line longer than 107 bytes"),
    BAD(SIG "\x11\x11\x00\x0c", 13, "unsupported PROXY protocol version"),
    BAD(SIG "\x31\x11\x00\x0c", 13, "unsupported PROXY protocol version"),
    BAD(SIG "\x22\x11\x00\x0c", 13, "unknown PROXY v2 command"),
    BAD(SIG "\x21\x13\x00\x0c", 14, "bad PROXY v2 address family"),
    BAD(SIG "\x21\x41\x00\x0c", 14, "bad PROXY v2 address family"),
    BAD(SIG "\x21\x10\x00\x0c", 14, "bad PROXY v2 address family"),
    BAD(SIG "\x21\x01\x00\x00", 14, "bad PROXY v2 address family"),
    BAD(SIG "\x21\x11\x10\x01", 16, "PROXY v2 header too long"),
    BAD(SIG "\x20\x00\xff\xff", 16, "PROXY v2 header too long"),
    BAD(SIG "\x21\x11\x00\x0b", 16, "PROXY v2 address block too short for its family"),
    BAD(SIG "\x21\x21\x00\x0c", 16, "PROXY v2 address block too short for its family"),
    BAD(SIG "\x21\x31\x00\x24", 16, "PROXY v2 address block too short for its family"),
    BAD(SIG "\x21\x11\x00\x0e", 16, "PROXY v2 TLV cut off by the header length"),
    BAD(SIG "\x21\x11\x00\x10" "\x01\x02\x03\x04\x05\x06\x07\x08\x00\x50\x01\xbb" "\x04\x00\x02",
        31, "PROXY v2 TLV runs past the header"),
    BAD("\x0d\x0a\x0d\x0a\x00\x0d\x0aQUIT\x0b", 12, "not a PROXY protocol header"),
    BAD("\x0d\x0a\x0d\x0a\x01", 5, "not a PROXY protocol header"),
};

static void test_bad_headers_fail_early(void **) {
    for (const bad &b : BAD_CASES) {
        const uint8_t *d = (const uint8_t *)b.bytes;
        for (size_t k = 0; k <= b.len; k++) {
            proxy_result r;
            proxy_status st = proxy_parse(d, k, &r);
            proxy_status want = k < b.at ? PROXY_NEED_MORE : PROXY_ERROR;
            if (st != want)
                fail_msg("\"%.*s\": %zu bytes give %d (%s), want %d", (int)b.len, b.bytes, k, st,
                         r.error ? r.error : "-", want);
            if (st == PROXY_ERROR) {
                if (!r.error || strcmp(r.error, b.error) != 0)
                    fail_msg("\"%.*s\": error \"%s\", want \"%s\"", (int)b.len, b.bytes, r.error ? r.error : "-",
                             b.error);
                if (r.header_len || r.src.family || r.dst.family || r.local)
                    fail_msg("\"%.*s\": an ERROR carries a result", (int)b.len, b.bytes);
            }
        }
    }
}

// IPv6 texts inet_pton accepts, as HAProxy (inet_ntop) and other senders write them. Each
// must parse whole, and no prefix of it may be refused: that is what the byte-by-byte
// prefix check must never get wrong.
static const char *const IPV6_OK[] = {
    "::", "::1", "1::", "1::2", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7::", "::2:3:4:5:6:7:8", "1:2:3::6:7:8",
    "::ffff:192.0.2.1", "::192.0.2.1", "1:2:3:4:5:6:1.2.3.4", "1::1.2.3.4", "1:2:3:4:5::1.2.3.4",
    "0000:0000:0000:0000:0000:0000:255.255.255.255", "FFFF::ABCD", "fe80::1:2", "2001:DB8:0:0:0:0:0:1",
    "::0.0.0.0", "1:2:3:4:5:6:0.0.0.0",
};
// And texts that are wrong (somewhere: the line must be refused, at the latest at the space).
static const char *const IPV6_BAD[] = {
    ":", ":::", "1:", "1:2:3:4:5:6:7", "1::2::3", ":1::", "1:2:3:4:5:6:7:8::", "::1.2.3", "::1.2.3.4.5",
    "::1.2.3.4:5", "1.2.3.4", "1:2:3:4:5:6::1.2.3.4", "::a.2.3.4", "::256.1.1.1", "g::", "::12345",
    "1:2:3:4:5:6:7:8:9",
};

static void test_v1_ipv6_forms(void **) {
    char line[160];
    for (const char *a : IPV6_OK) {
        // The 45-character form does not fit twice in 107 bytes: the destination is ::1.
        int n = snprintf(line, sizeof line, "PROXY TCP6 %s ::1 1 65535\r\n", a);
        proxy_result r;
        if (proxy_parse((const uint8_t *)line, (size_t)n, &r) != PROXY_DONE)
            fail_msg("%s refused: %s", a, r.error ? r.error : "-");
        uint8_t want[16];
        assert_int_equal(inet_pton(AF_INET6, a, want), 1);
        assert_memory_equal(r.src.addr, want, 16);
        assert_memory_equal(r.dst.addr, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\1", 16);
        assert_int_equal(r.src.port, 1);
        assert_int_equal(r.dst.port, 65535);
        check_every_prefix(a, (const uint8_t *)line, (size_t)n, (size_t)n, &r);
    }
    for (const char *a : IPV6_BAD) {
        int n = snprintf(line, sizeof line, "PROXY TCP6 %s ::1 1 2\r\n", a);
        proxy_result r;
        if (proxy_parse((const uint8_t *)line, (size_t)n, &r) != PROXY_ERROR) fail_msg("%s accepted", a);
        // Refused by the end of the field at the latest.
        size_t field_end = 11 + strlen(a) + 1;
        if (proxy_parse((const uint8_t *)line, field_end, &r) != PROXY_ERROR) fail_msg("%s: refused late", a);
    }
}

// The prefix check against inet_pton on every text of up to 7 characters over the
// characters that matter: every text inet_pton accepts must have only live prefixes.
static void test_v1_ipv6_prefixes_exhaustive(void **) {
    static const char alphabet[] = "01a:.";
    char text[8], line[64];
    size_t checked = 0;
    for (size_t len = 1; len <= 7; len++) {
        size_t total = 1;
        for (size_t i = 0; i < len; i++) total *= 5;
        for (size_t idx = 0; idx < total; idx++) {
            size_t x = idx;
            for (size_t i = 0; i < len; i++, x /= 5) text[i] = alphabet[x % 5];
            text[len] = 0;
            uint8_t a[16];
            bool valid = inet_pton(AF_INET6, text, a) == 1;
            int n = snprintf(line, sizeof line, "PROXY TCP6 %s ::1 1 2\r\n", text);
            proxy_result r;
            proxy_status whole = proxy_parse((const uint8_t *)line, (size_t)n, &r);
            if ((whole == PROXY_DONE) != valid) fail_msg("\"%s\": parser %d, inet_pton %d", text, whole, valid);
            if (!valid) continue;
            for (size_t k = 11; k < (size_t)n; k++)
                if (proxy_parse((const uint8_t *)line, k, &r) != PROXY_NEED_MORE)
                    fail_msg("\"%s\": prefix of %zu bytes refused (%s)", text, k, r.error);
            checked++;
        }
    }
    assert_true(checked > 100);
}

// Every family byte the spec lists with PROXY, and LOCAL with anything.
static void test_v2_families(void **) {
    uint8_t h[16 + 300];
    memcpy(h, SIG, 12);
    struct fam {
        uint8_t cmd, fam;
        uint16_t block;
        proxy_status st;
        bool local;
    } cases[] = {
        {0x21, 0x00, 0, PROXY_DONE, true},    // UNSPEC: no addresses to use
        {0x21, 0x00, 20, PROXY_DONE, true},   // ... even with bytes in the block
        {0x21, 0x12, 12, PROXY_DONE, true},   // UDP4 on a stream: falls back to UNSPEC
        {0x21, 0x22, 36, PROXY_DONE, true},   // UDP6
        {0x21, 0x31, 216, PROXY_DONE, true},  // UNIX stream
        {0x21, 0x32, 216, PROXY_DONE, true},  // UNIX datagram
        {0x21, 0x11, 12, PROXY_DONE, false},  // TCP4
        {0x21, 0x21, 36, PROXY_DONE, false},  // TCP6
        {0x20, 0x11, 12, PROXY_DONE, true},   // LOCAL with addresses: ignored
        {0x20, 0xFF, 5, PROXY_DONE, true},    // LOCAL: "the family which is ignored"
        {0x20, 0x00, 0, PROXY_DONE, true},
        {0x21, 0x11, 15, PROXY_DONE, false},  // TCP4 + an empty TLV
        {0x21, 0x11, 13, PROXY_ERROR, false}, // TCP4 + 1 byte that cannot be a TLV
    };
    for (const fam &c : cases) {
        h[12] = c.cmd;
        h[13] = c.fam;
        h[14] = (uint8_t)(c.block >> 8);
        h[15] = (uint8_t)c.block;
        memset(h + 16, 0, c.block);
        for (size_t i = 0; i < 12 && c.block >= 12; i++) h[16 + i] = (uint8_t)(i + 1);
        if (c.block == 15) memcpy(h + 28, "\x04\x00\x00", 3); // NOOP, no value
        proxy_result r;
        proxy_status st = proxy_parse(h, 16u + c.block, &r);
        if (st != c.st || (st == PROXY_DONE && (r.local != c.local || r.header_len != 16u + c.block)))
            fail_msg("cmd %02x fam %02x block %u: %d local %d len %zu (%s)", c.cmd, c.fam, c.block, st, r.local,
                     r.header_len, r.error ? r.error : "-");
        if (st == PROXY_DONE) check_every_prefix("family", h, 16u + c.block, 16u + c.block, &r);
    }
    // TCP4 addresses and ports in network order.
    h[12] = 0x21, h[13] = 0x11, h[14] = 0, h[15] = 12;
    memcpy(h + 16, "\xc0\x00\x02\x01\xc6\x33\x64\x02\x1f\x90\x01\xbb", 12);
    proxy_result r;
    assert_int_equal(proxy_parse(h, 28, &r), PROXY_DONE);
    check_addr(&r.src, "192.0.2.1:8080", "src", "tcp4");
    check_addr(&r.dst, "198.51.100.2:443", "dst", "tcp4");
}

// The largest header we take has a 4096-byte block; one more byte is refused as soon as
// the length field is in, before anything is buffered for it.
static void test_v2_size_limit(void **) {
    static uint8_t h[PROXY_MAX_HEADER + 1];
    memset(h, 0, sizeof h);
    memcpy(h, SIG "\x21\x11\x10\x00", 16);
    memcpy(h + 16, "\x0a\x00\x00\x01\x0a\x00\x00\x02\x00\x01\x00\x02", 12);
    size_t noop = 4096 - 12 - 3;
    h[28] = 0x04, h[29] = (uint8_t)(noop >> 8), h[30] = (uint8_t)noop;
    proxy_result r;
    assert_int_equal(proxy_parse(h, PROXY_MAX_HEADER, &r), PROXY_DONE);
    assert_int_equal(r.header_len, PROXY_MAX_HEADER);
    assert_int_equal(proxy_parse(h, PROXY_MAX_HEADER - 1, &r), PROXY_NEED_MORE);
    h[15] = 0x01; // 4097
    assert_int_equal(proxy_parse(h, 16, &r), PROXY_ERROR);
}

// v1: "PROXY UNKNOWN" with or without the addresses the spec shows, and the minimum TCP
// lines; port 0 is a valid port.
static void test_v1_small_cases(void **) {
    proxy_result r;
    assert_int_equal(proxy_parse(B("PROXY UNKNOWN\r\n"), &r), PROXY_DONE);
    assert_true(r.local);
    assert_int_equal(r.header_len, 15);
    assert_int_equal(proxy_parse(B("PROXY UNKNOWN 1.2.3.4 x y z\r\nrest"), &r), PROXY_DONE);
    assert_true(r.local);
    assert_int_equal(r.header_len, 29);
    assert_int_equal(proxy_parse(B("PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n"), &r), PROXY_DONE);
    check_addr(&r.src, "0.0.0.0", "src", "zero port");
    assert_int_equal(r.src.port, 0);
    assert_int_equal(r.dst.port, 65535);
    assert_int_equal(r.src.family, AF_INET);
    // An IPv4-mapped source is an IPv6 address on the wire, shown as IPv4.
    assert_int_equal(proxy_parse(B("PROXY TCP6 ::ffff:203.0.113.7 2001:db8::1 51234 443\r\n"), &r), PROXY_DONE);
    assert_int_equal(r.src.family, AF_INET6);
    check_addr(&r.src, "203.0.113.7:51234", "src", "mapped");
    check_addr(&r.dst, "[2001:db8::1]:443", "dst", "mapped");
}

// The prefix of a header that is not complete names no one, even when its addresses are.
static void test_partial_header_names_no_one(void **) {
    proxy_result r;
    assert_int_equal(proxy_parse(B("PROXY TCP4 1.2.3.4 5.6.7.8 80 443\r"), &r), PROXY_NEED_MORE);
    assert_int_equal(r.src.family, 0);
    assert_int_equal(r.dst.family, 0);
    assert_int_equal(r.header_len, 0);
    assert_null(r.error);
    assert_int_equal(proxy_parse((const uint8_t *)HP_V2_TCP6, 16 + 35, &r), PROXY_NEED_MORE);
    assert_int_equal(r.src.family, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_real_headers_every_split),
        cmocka_unit_test(test_bytes_after_header_are_left),
        cmocka_unit_test(test_v2_crc32c),
        cmocka_unit_test(test_bad_headers_fail_early),
        cmocka_unit_test(test_v1_ipv6_forms),
        cmocka_unit_test(test_v1_ipv6_prefixes_exhaustive),
        cmocka_unit_test(test_v2_families),
        cmocka_unit_test(test_v2_size_limit),
        cmocka_unit_test(test_v1_small_cases),
        cmocka_unit_test(test_partial_header_names_no_one),
    };
    return unit_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
