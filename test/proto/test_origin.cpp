// Unit tests for allowed-origin patterns (src/proto/origin.*).
//
// What a server relies on: a page from another site cannot open a WebSocket with the
// user's cookies. So a pattern matches its own origins (in any case, with or without the
// default port) and nothing else: not a look-alike host, not a suffix glued on, not another
// scheme or port, not a malformed Origin that a lax parser would cut short.
#include <string.h>

#include "unit.h"

#include "proto/origin.h"

static bool match(const char *pattern, const char *origin) { return origin_match(pattern, origin, strlen(origin)); }

static void test_pattern_syntax(void **) {
    static const char *const good[] = {
        "*", "null", "https://app.example.com", "https://*.example.com", "http://localhost:3000",
        "HTTPS://App.Example.COM", "https://*.example.com:8443", "http://127.0.0.1:8080", "http://[::1]:8080",
        "https://[2001:db8::1]", "wss://a.example.com", "chrome-extension://abcdefghijklmnop",
        "app+x.y-z://host", "https://xn--bcher-kva.example", "http://*.localhost", "https://a_b.example.com",
        "https://a.example.com:65535",
    };
    for (const char *p : good)
        if (!origin_pattern_valid(p)) fail_msg("\"%s\" refused", p);
    static const char *const bad[] = {
        "", " ", "**", "*.example.com", "example.com", "https://", "https:///", "https://*", "https://*.",
        "https://*example.com", "https://*.*.example.com", "https://a.*.example.com", "https://example.com/",
        "https://example.com/path", "https://example.com?x", "https://example.com#x", "https://user@example.com",
        "https://example.com:", "https://example.com:0", "https://example.com:080", "https://example.com:65536",
        "https://example.com:443:443", "https://example.com.", "https://.example.com", "https://a..example.com",
        "https://exa mple.com", "https://example.com ", " https://example.com", "https://[::1",
        "https://[::1]x", "https://[not-v6]", "https://*.[::1]", "https://*.1.2.3", "https://*.10.0.0.1",
        "1https://a", "https//a.example.com", "https:/a.example.com", "ht tp://a", "://a", "NULL", "null ",
        "https://a.example.com\xc3\xa9",
    };
    for (const char *p : bad)
        if (origin_pattern_valid(p)) fail_msg("\"%s\" accepted", p);
}

static void test_exact_patterns(void **) {
    assert_true(match("https://app.example.com", "https://app.example.com"));
    assert_true(match("https://app.example.com", "HTTPS://APP.EXAMPLE.COM"));
    assert_true(match("HTTPS://App.Example.COM", "https://app.example.com"));
    // The scheme's default port is no port.
    assert_true(match("https://app.example.com", "https://app.example.com:443"));
    assert_true(match("https://app.example.com:443", "https://app.example.com"));
    assert_true(match("http://app.example.com", "http://app.example.com:80"));
    assert_true(match("wss://app.example.com", "wss://app.example.com:443"));
    assert_false(match("https://app.example.com", "https://app.example.com:80"));
    assert_false(match("http://app.example.com", "http://app.example.com:443"));
    assert_false(match("https://app.example.com", "http://app.example.com"));
    assert_false(match("https://app.example.com", "wss://app.example.com"));
    assert_false(match("https://app.example.com", "https://app.example.com:8443"));
    assert_false(match("https://app.example.com", "https://example.com"));
    assert_false(match("https://app.example.com", "https://a.app.example.com"));
    assert_false(match("https://app.example.com", "https://app.example.co"));
    assert_false(match("https://app.example.com", "https://app.example.com."));
    assert_false(match("https://app.example.com", "https://app.example.com/"));
    assert_false(match("https://app.example.com", "https://app.example.com.evil.net"));
    assert_true(match("http://localhost:3000", "http://localhost:3000"));
    assert_false(match("http://localhost:3000", "http://localhost"));
    assert_false(match("http://localhost:3000", "http://localhost:30000"));
    assert_false(match("http://localhost:3000", "http://localhost:300"));
    assert_true(match("http://[::1]:8080", "http://[::1]:8080"));
    assert_false(match("http://[::1]:8080", "http://[::2]:8080"));
    // An unknown scheme has no default port.
    assert_true(match("chrome-extension://abc", "chrome-extension://abc"));
    assert_false(match("chrome-extension://abc", "chrome-extension://abc:443"));
}

// The attack strings: pages an attacker can host (or an Origin a lax parser would read
// as one of ours).
static void test_wildcard_attacks(void **) {
    const char *p = "https://*.example.com";
    static const char *const allowed[] = {
        "https://a.example.com", "https://a.b.example.com", "https://A.EXAMPLE.COM", "https://a.example.com:443",
        "https://x-y.example.com", "https://1.example.com", "https://xn--bcher-kva.example.com",
    };
    for (const char *o : allowed)
        if (!match(p, o)) fail_msg("%s refused", o);
    static const char *const refused[] = {
        "https://example.com",              // the apex is not a subdomain
        "https://evil-example.com",         // no dot before the suffix
        "https://aexample.com",
        "https://example.com.evil.net",     // the suffix glued onto another site
        "https://a.example.com.evil.net",
        "https://a.example.co",
        "https://a.example.comx",
        "http://a.example.com",             // another scheme
        "wss://a.example.com",
        "https://a.example.com:8443",       // another port
        "https://a.example.com:80",
        "https://.example.com",             // an empty label
        "https://a..example.com",
        "https://a.example.com.",           // a trailing dot is another origin
        "https://a.example.com/",           // an Origin has no path...
        "https://evil.net/.example.com",
        "https://evil.net?.example.com",
        "https://evil.net#.example.com",
        "https://a.example.com@evil.net",   // ...and no userinfo
        "https://evil.net@a.example.com",
        "https://a.example.com:443:443",
        "https://a.example.com:",
        "https://a.example.com:0443",
        " https://a.example.com",
        "https://a.example.com ",
        "https://evil.net\\.example.com",
        "https://evil%2eexample.com",
        "https://*.example.com",            // a pattern is not an origin
        "https://[::1].example.com",
        "null",
        "",
    };
    for (const char *o : refused)
        if (match(p, o)) fail_msg("%s matched %s", o, p);
    // Only origin_len bytes count: a NUL cannot end the text early...
    assert_false(origin_match(p, "https://a.example.com\0.evil.net", 31));
    assert_false(origin_match(p, "https://a.example.com\0", 22));
    // ...and the text need not be terminated.
    assert_true(origin_match(p, "https://a.example.comXYZ", 21));
    assert_false(origin_match(p, "https://a.example.comXYZ", 22));
    // With a port in the pattern, the port must be there.
    assert_true(match("https://*.example.com:8443", "https://a.example.com:8443"));
    assert_false(match("https://*.example.com:8443", "https://a.example.com"));
}

// "null" is what sandboxed iframes, file: pages and some redirects send: any page can make
// its origin "null", so only the patterns that say so admit it.
static void test_null_and_any(void **) {
    assert_false(match("https://app.example.com", "null"));
    assert_false(match("https://app.example.com", ""));
    assert_true(match("null", "null"));
    assert_false(match("null", ""));
    assert_false(match("null", "NULL"));
    assert_false(match("null", "https://app.example.com"));
    assert_true(match("*", "https://anything.example"));
    assert_true(match("*", "null"));
    assert_true(match("*", ""));
    // An invalid pattern matches nothing, even the origin it was meant for.
    assert_false(match("https://app.example.com/", "https://app.example.com"));
    assert_false(match("*.example.com", "https://a.example.com"));
    assert_false(match("", ""));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pattern_syntax),
        cmocka_unit_test(test_exact_patterns),
        cmocka_unit_test(test_wildcard_attacks),
        cmocka_unit_test(test_null_and_any),
    };
    return unit_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
