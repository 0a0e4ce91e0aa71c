// Unit tests for client addresses (src/proto/netaddr.*).
//
// What a server relies on: the address it logs and rate-limits by is the real client's.
// That means text forms that print and parse back the same, trusted-proxy lists that
// match exactly the prefixes written (at the bit boundaries, for IPv4 clients on
// dual-stack sockets too), and X-Forwarded-For / Forwarded walks that a client cannot
// steer by sending its own header ahead of the proxy's.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "unit.h"

#include "proto/netaddr.h"

static net_addr addr(const char *text) {
    net_addr a;
    if (!net_addr_parse(text, strlen(text), &a)) fail_msg("cannot parse %s", text);
    return a;
}

static const char *fmt(const net_addr *a) {
    static char buf[NET_ADDR_STRLEN];
    net_addr_format(a, buf, sizeof buf);
    return buf;
}

static void test_parse_and_format(void **) {
    static const struct {
        const char *in, *out; // out: the text net_addr_format gives back
        uint8_t family;
        uint16_t port;
    } cases[] = {
        {"203.0.113.7", "203.0.113.7", AF_INET, 0},
        {"203.0.113.7:51234", "203.0.113.7:51234", AF_INET, 51234},
        {"0.0.0.0:0", "0.0.0.0", AF_INET, 0},
        {"255.255.255.255:65535", "255.255.255.255:65535", AF_INET, 65535},
        {"2001:db8::1", "2001:db8::1", AF_INET6, 0},
        {"[2001:db8::1]", "2001:db8::1", AF_INET6, 0},
        {"[2001:db8::1]:443", "[2001:db8::1]:443", AF_INET6, 443},
        {"2001:DB8:0:0:0:0:0:1", "2001:db8::1", AF_INET6, 0},
        {"::1", "::1", AF_INET6, 0},
        {"[::]:80", "[::]:80", AF_INET6, 80},
        // Unbracketed, the last group is part of the address, never a port. (glibc's
        // inet_ntop writes an address with 96 zero bits first in the deprecated
        // IPv4-compatible form; it parses back the same.)
        {"::1:80", "::0.1.0.128", AF_INET6, 0},
        {"1::1:80", "1::1:80", AF_INET6, 0},
        // IPv4-mapped: an IPv6 address, printed as the IPv4 client it is.
        {"::ffff:203.0.113.7", "203.0.113.7", AF_INET6, 0},
        {"[::ffff:203.0.113.7]:8080", "203.0.113.7:8080", AF_INET6, 8080},
        {"[::ffff:cb00:7107]:1", "203.0.113.7:1", AF_INET6, 1},
        {"[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535", "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535", AF_INET6,
         65535},
    };
    for (const auto &c : cases) {
        net_addr a;
        memset(&a, 0x5A, sizeof a);
        if (!net_addr_parse(c.in, strlen(c.in), &a)) fail_msg("%s: not parsed", c.in);
        if (a.family != c.family || a.port != c.port || a._pad != 0)
            fail_msg("%s: family %u port %u", c.in, a.family, a.port);
        if (strcmp(fmt(&a), c.out) != 0) fail_msg("%s: formatted as %s, want %s", c.in, fmt(&a), c.out);
        // The printed form parses back to the same address (same family, bytes and port).
        net_addr back = addr(fmt(&a));
        if (memcmp(&back, &a, sizeof a) != 0 && !(a.family == AF_INET6 && back.family == AF_INET))
            fail_msg("%s: %s does not parse back", c.in, fmt(&a));
    }
    net_addr a = addr("203.0.113.7");
    assert_int_equal(a.addr[0], 203);
    assert_int_equal(a.addr[3], 7);
    for (int i = 4; i < 16; i++) assert_int_equal(a.addr[i], 0); // so memcmp compares addresses
}

static void test_parse_refuses(void **) {
    static const char *const bad[] = {
        "", "1.2.3", "1.2.3.4.5", "1.2.3.256", "01.2.3.4", "1.2.3.4:", "1.2.3.4:65536", "1.2.3.4:080", "1.2.3.4:+80",
        "1.2.3.4:-1", "1.2.3.4:8 0", " 1.2.3.4", "1.2.3.4 ", "[1.2.3.4]", "[::1", "[::1]x", "[::1]:", "[::1]:99999",
        "[[::1]]", "::1]", "fe80::1%eth0", "[fe80::1%eth0]:80", "unknown", "_hidden", "localhost", "1.2.3.4:80:80",
        "::g", "1:2:3:4:5:6:7:8:9",
    };
    for (const char *s : bad) {
        net_addr a;
        memset(&a, 0x5A, sizeof a);
        if (net_addr_parse(s, strlen(s), &a)) fail_msg("\"%s\" parsed as %s", s, fmt(&a));
        assert_int_equal(a.family, 0x5A); // untouched on false
    }
    // A NUL inside the counted text is not an end.
    net_addr a;
    assert_false(net_addr_parse("1.2.3.4\0", 8, &a));
    assert_false(net_addr_parse("::1\0:80", 7, &a));
    // Only len bytes are read: the text need not be terminated.
    assert_true(net_addr_parse("10.0.0.1:80xyz", 11, &a));
    assert_string_equal(fmt(&a), "10.0.0.1:80");
}

// Formatting is snprintf-like: the whole length comes back, the buffer holds what fits.
static void test_format_truncates(void **) {
    net_addr a = addr("[2001:db8::1]:443");
    char buf[8];
    memset(buf, 'x', sizeof buf);
    assert_int_equal(net_addr_format(&a, buf, sizeof buf), 17);
    assert_string_equal(buf, "[2001:d");
    assert_int_equal(net_addr_format(&a, buf, 0), 17);
    assert_int_equal(buf[0], '[');
    net_addr none;
    memset(&none, 0, sizeof none);
    none.port = 80; // a port without an address is still unknown
    assert_int_equal(net_addr_format(&none, buf, sizeof buf), 7);
    assert_string_equal(buf, "unknown");
    // NET_ADDR_STRLEN holds the longest text.
    net_addr longest = addr("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535");
    char big[NET_ADDR_STRLEN];
    assert_int_equal(net_addr_format(&longest, big, sizeof big), 47);
    assert_true(47 < NET_ADDR_STRLEN);
}

static void test_from_sockaddr(void **) {
    sockaddr_in in;
    memset(&in, 0, sizeof in);
    in.sin_family = AF_INET;
    in.sin_port = htons(51234);
    inet_pton(AF_INET, "203.0.113.7", &in.sin_addr);
    net_addr a;
    assert_true(net_addr_from_sockaddr((const sockaddr *)&in, &a));
    assert_string_equal(fmt(&a), "203.0.113.7:51234");
    net_addr want = addr("203.0.113.7:51234");
    assert_memory_equal(&a, &want, sizeof a);

    sockaddr_in6 in6;
    memset(&in6, 0, sizeof in6);
    in6.sin6_family = AF_INET6;
    in6.sin6_port = htons(443);
    inet_pton(AF_INET6, "::ffff:198.51.100.2", &in6.sin6_addr);
    assert_true(net_addr_from_sockaddr((const sockaddr *)&in6, &a));
    assert_int_equal(a.family, AF_INET6);
    assert_string_equal(fmt(&a), "198.51.100.2:443");

    sockaddr_un un;
    memset(&un, 0, sizeof un);
    un.sun_family = AF_UNIX;
    memset(&a, 0x5A, sizeof a);
    assert_false(net_addr_from_sockaddr((const sockaddr *)&un, &a));
    assert_int_equal(a.family, 0x5A);
}

static net_cidr cidr(const char *text) {
    net_cidr c;
    if (!net_cidr_parse(text, strlen(text), &c)) fail_msg("cannot parse CIDR %s", text);
    return c;
}

static void test_cidr_parse(void **) {
    net_cidr c = cidr("10.1.2.3/8"); // host bits masked
    assert_int_equal(c.family, AF_INET);
    assert_int_equal(c.bits, 8);
    assert_memory_equal(c.addr, "\x0a\0\0\0", 4);
    c = cidr("192.168.1.7");
    assert_int_equal(c.bits, 32);
    c = cidr("::1");
    assert_int_equal(c.family, AF_INET6);
    assert_int_equal(c.bits, 128);
    c = cidr("fdff:ffff::/9");
    assert_int_equal(c.bits, 9);
    assert_int_equal(c.addr[0], 0xfd);
    assert_int_equal(c.addr[1], 0x80);
    assert_int_equal(c.addr[2], 0);
    c = cidr("0.0.0.0/0");
    assert_int_equal(c.bits, 0);
    c = cidr("172.16.255.255/12");
    assert_memory_equal(c.addr, "\xac\x10\0\0", 4);
    // A mapped prefix names IPv4 clients.
    c = cidr("::ffff:10.9.8.7/104");
    assert_int_equal(c.family, AF_INET);
    assert_int_equal(c.bits, 8);
    assert_memory_equal(c.addr, "\x0a\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 16);
    c = cidr("::ffff:0:0/95");
    assert_int_equal(c.family, AF_INET6);

    static const char *const bad[] = {
        "", "10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/-1", "10.0.0.0/+8", "10.0.0.0/8/8", "10.0.0/8", "/8",
        "10.0.0.0/ 8", " 10.0.0.0/8", "[::1]/128", "10.0.0.0/1000", "10.0.0.0/8x", "example.com/8", "::1/0x10",
    };
    for (const char *s : bad) {
        net_cidr x;
        if (net_cidr_parse(s, strlen(s), &x)) fail_msg("CIDR \"%s\" accepted", s);
    }
}

static void test_cidr_match(void **) {
    const net_cidr list[] = {cidr("10.0.0.0/8"), cidr("192.168.1.0/31"), cidr("2001:db8::/33"),
                             cidr("fd00::1/127")};
    static const struct {
        const char *a;
        bool in;
    } cases[] = {
        {"10.0.0.0", true}, {"10.255.255.255:80", true}, {"11.0.0.0", false}, {"9.255.255.255", false},
        {"192.168.1.0", true}, {"192.168.1.1", true}, {"192.168.1.2", false},
        {"2001:db8::1", true}, {"2001:db8:7fff:ffff::1", true}, {"2001:db8:8000::", false}, {"2001:db9::", false},
        {"fd00::", true}, {"fd00::1", true}, {"fd00::2", false},
        // An IPv4 client on a dual-stack socket is the same client.
        {"::ffff:10.1.2.3", true}, {"::ffff:11.1.2.3", false}, {"[::ffff:192.168.1.1]:5", true},
        // ...but an IPv6 address that only looks like one is not.
        {"::10.1.2.3", false}, {"::ffff:0:10.1.2.3", false},
    };
    for (const auto &c : cases) {
        net_addr a = addr(c.a);
        if (net_cidr_match(list, 4, &a) != c.in) fail_msg("%s: match %d", c.a, !c.in);
    }
    net_cidr all4 = cidr("0.0.0.0/0"), all6 = cidr("::/0");
    net_addr v4 = addr("203.0.113.7"), mapped = addr("::ffff:203.0.113.7"), v6 = addr("2001:db8::7");
    assert_true(net_cidr_match(&all4, 1, &v4));
    assert_true(net_cidr_match(&all4, 1, &mapped));
    assert_false(net_cidr_match(&all4, 1, &v6));
    assert_true(net_cidr_match(&all6, 1, &v6));
    assert_false(net_cidr_match(&all6, 1, &v4));     // "::/0" is IPv6 clients,
    assert_false(net_cidr_match(&all6, 1, &mapped)); // on either kind of socket
    net_cidr mapped_entry = cidr("::ffff:203.0.113.0/120");
    assert_true(net_cidr_match(&mapped_entry, 1, &v4));
    assert_true(net_cidr_match(&mapped_entry, 1, &mapped));
    net_addr none;
    memset(&none, 0, sizeof none);
    assert_false(net_cidr_match(&all4, 1, &none));
    assert_false(net_cidr_match(list, 0, &v4));
}

// --- X-Forwarded-For -----------------------------------------------------------------

static const net_cidr *trusted(size_t *n) {
    static net_cidr list[3];
    list[0] = cidr("10.0.0.0/8");
    list[1] = cidr("fd00::/8");
    list[2] = cidr("127.0.0.1");
    *n = 3;
    return list;
}

// values: header values separated by '|' (each one header line). Returns the client or
// "false".
static const char *xff(const char *lines, bool rfc7239 = false) {
    static char copy[512], out[NET_ADDR_STRLEN];
    net_span v[8];
    size_t nv = 0;
    snprintf(copy, sizeof copy, "%s", lines);
    char *p = copy;
    for (;;) {
        char *bar = strchr(p, '|');
        v[nv].ptr = p;
        v[nv].len = bar ? (size_t)(bar - p) : strlen(p);
        nv++;
        if (!bar) break;
        p = bar + 1;
    }
    size_t nt;
    const net_cidr *t = trusted(&nt);
    net_addr a;
    memset(&a, 0x5A, sizeof a);
    bool ok = rfc7239 ? net_forwarded_rfc7239(v, nv, t, nt, &a) : net_forwarded_for(v, nv, t, nt, &a);
    if (!ok) {
        if (a.family != 0x5A) fail_msg("\"%s\": out written on false", lines);
        return "false";
    }
    net_addr_format(&a, out, sizeof out);
    return out;
}

static void test_xff_walk(void **) {
    static const struct {
        const char *values, *client;
    } cases[] = {
        {"203.0.113.7", "203.0.113.7"},
        // The client wrote its own header; our proxy (10.0.0.1) appended the peer it saw.
        {"6.6.6.6, 203.0.113.7", "203.0.113.7"},
        {"6.6.6.6|203.0.113.7", "203.0.113.7"},
        // ...claiming to be a trusted proxy itself does not help it.
        {"10.0.0.5, 203.0.113.7", "203.0.113.7"},
        {"127.0.0.1|203.0.113.7, 10.0.0.2", "203.0.113.7"},
        // Two of our proxies: both skipped.
        {"6.6.6.6, 203.0.113.7, 10.0.0.2", "203.0.113.7"},
        {"6.6.6.6|203.0.113.7|10.0.0.2, 10.0.0.3", "203.0.113.7"},
        // A client inside our own network, seen only through proxies: the leftmost.
        {"10.0.0.3, 10.0.0.2", "10.0.0.3"},
        {"fd00::9|10.0.0.2", "fd00::9"},
        // Junk left of the client is the client's business; junk where the walk stops
        // means the header is not believed.
        {"garbage, 203.0.113.7", "203.0.113.7"},
        {"203.0.113.7, garbage", "false"},
        {"unknown, 10.0.0.2", "false"},
        {"203.0.113.7, 10.0.0.2:abc", "false"},
        // Ports and brackets.
        {"[2001:db8::1]:80, 10.0.0.2", "[2001:db8::1]:80"},
        {"2001:db8::1", "2001:db8::1"},
        {"1.2.3.4:5", "1.2.3.4:5"},
        {"[::ffff:10.1.1.1]:9, 203.0.113.7", "203.0.113.7"},
        {"203.0.113.9, [::ffff:10.1.1.1]:9", "203.0.113.9"},
        // Whitespace and empty elements (RFC 9110 §5.6.1).
        {" 203.0.113.7 ,\t10.0.0.2\t", "203.0.113.7"},
        {"203.0.113.7,,10.0.0.2,", "203.0.113.7"},
        {"|203.0.113.7|", "203.0.113.7"},
        {"", "false"},
        {" , ,", "false"},
        {"||", "false"},
        {"203.0.113.7 10.0.0.2", "false"},
    };
    for (const auto &c : cases) {
        const char *got = xff(c.values);
        if (strcmp(got, c.client) != 0) fail_msg("XFF \"%s\": %s, want %s", c.values, got, c.client);
    }
    net_addr a;
    assert_false(net_forwarded_for(nullptr, 0, nullptr, 0, &a));
}

// However a list is spread over header lines (at element boundaries), the answer is the
// same: the walk is over the combined list.
static void test_xff_lines_combine(void **) {
    static const char *const items[] = {"6.6.6.6", "garbage", "203.0.113.7", "10.0.0.9", "10.0.0.2"};
    char joined[256], lines[256];
    for (unsigned mask = 0; mask < 16; mask++) {
        size_t j = 0, l = 0;
        for (size_t i = 0; i < 5; i++) {
            if (i) {
                j += (size_t)snprintf(joined + j, sizeof joined - j, ", ");
                l += (size_t)snprintf(lines + l, sizeof lines - l, "%s", mask & (1u << (i - 1)) ? "|" : ",");
            }
            j += (size_t)snprintf(joined + j, sizeof joined - j, "%s", items[i]);
            l += (size_t)snprintf(lines + l, sizeof lines - l, "%s", items[i]);
        }
        char want[NET_ADDR_STRLEN];
        snprintf(want, sizeof want, "%s", xff(joined));
        assert_string_equal(want, "203.0.113.7");
        assert_string_equal(xff(lines), want);
    }
}

// --- Forwarded (RFC 7239) ---------------------------------------------------------------

static void test_forwarded_walk(void **) {
    static const struct {
        const char *values, *client;
    } cases[] = {
        // RFC 7239 §4's examples.
        {"for=\"_gazonk\"", "false"},
        {"For=\"[2001:db8:cafe::17]:4711\"", "[2001:db8:cafe::17]:4711"},
        {"for=192.0.2.60;proto=http;by=203.0.113.43", "192.0.2.60"},
        {"for=192.0.2.43, for=198.51.100.17", "198.51.100.17"},
        // The client's own element is ignored once our proxy appended the real one.
        {"for=6.6.6.6, for=203.0.113.7", "203.0.113.7"},
        {"for=6.6.6.6|for=203.0.113.7;proto=https", "203.0.113.7"},
        {"for=10.0.0.5, for=203.0.113.7;by=10.0.0.1", "203.0.113.7"},
        {"for=6.6.6.6, for=203.0.113.7, for=10.0.0.2", "203.0.113.7"},
        {"for=10.0.0.3, for=\"[fd00::2]:8080\"", "10.0.0.3"},
        // Commas and semicolons inside quoted-strings do not split.
        {"for=6.6.6.6;x=\"a, for=7.7.7.7\", for=203.0.113.7", "203.0.113.7"},
        {"for=203.0.113.7;ext=\"a,b;c\"", "203.0.113.7"},
        {"for=203.0.113.7;ext=\"a\\\"b, for=7.7.7.7\"", "203.0.113.7"},
        // A client's unbalanced quote spoils its own line only...
        {"for=6.6.6.6;x=\"|for=203.0.113.7", "203.0.113.7"},
        // ...but on the proxy's line it makes the whole line one bad element.
        {"for=6.6.6.6;x=\", for=203.0.113.7", "false"},
        // Hidden hops stop the walk: see forwarded_element in netaddr.cpp.
        {"for=unknown, for=10.0.0.2", "false"},
        {"for=UNKNOWN", "false"},
        {"for=203.0.113.7, for=unknown", "false"},
        {"for=_hidden, for=10.0.0.2", "false"},
        {"for=\"_hidden:80\"", "false"},
        {"for=unknown, for=203.0.113.7", "203.0.113.7"},
        {"by=10.0.0.1", "false"},
        {"for=203.0.113.7, proto=https", "false"},
        {"for=203.0.113.7;for=6.6.6.6", "false"},
        // An obfuscated port hides the port, not the address.
        {"for=\"203.0.113.7:_p1\"", "203.0.113.7"},
        {"for=\"[2001:db8::1]:_x.y-z\"", "2001:db8::1"},
        {"for=\"203.0.113.7:_\"", "false"},
        {"for=\"203.0.113.7:_a b\"", "false"},
        // The RFC's syntax: IPv6 is bracketed, and ':' or '[' need a quoted-string.
        {"for=\"2001:db8::1\"", "false"},
        {"for=[2001:db8::1]", "false"},
        {"for=203.0.113.7:80", "false"},
        {"for=\"203.0.113.7:80\"", "203.0.113.7:80"},
        {"for=\"203.0.113.7:080\"", "false"},
        {"for=\"\\[2001:db8::1\\]\"", "2001:db8::1"},
        {"FOR=203.0.113.7", "203.0.113.7"},
        {"for=\"203.0.113.7\"", "203.0.113.7"},
        {"for=\"203.0.113.7", "false"},
        {"for=203.0.113.7\"", "false"},
        {"for=\"203.0.113.7\"x", "false"},
        {"for=", "false"},
        {"=203.0.113.7", "false"},
        {"f r=203.0.113.7", "false"},
        {"for=203.0.113.7;;proto=http", "203.0.113.7"},
        {"for=203.0.113.7 ; proto=http", "203.0.113.7"},
        {"for = 203.0.113.7", "false"},
        {"for=203.0.113.7;ext=\"\x01\"", "false"},
        // Empty list elements.
        {"for=203.0.113.7,,for=10.0.0.2,", "203.0.113.7"},
        {"", "false"},
        {" ,|,", "false"},
    };
    for (const auto &c : cases) {
        const char *got = xff(c.values, true);
        if (strcmp(got, c.client) != 0) fail_msg("Forwarded \"%s\": %s, want %s", c.values, got, c.client);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_and_format),
        cmocka_unit_test(test_parse_refuses),
        cmocka_unit_test(test_format_truncates),
        cmocka_unit_test(test_from_sockaddr),
        cmocka_unit_test(test_cidr_parse),
        cmocka_unit_test(test_cidr_match),
        cmocka_unit_test(test_xff_walk),
        cmocka_unit_test(test_xff_lines_combine),
        cmocka_unit_test(test_forwarded_walk),
    };
    return unit_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
