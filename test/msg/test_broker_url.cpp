// Unit tests for the --broker URL (src/msg/broker_url.cpp).
//
// What a user depends on: every form docs/scaling.md shows is read as written (host,
// port, database, user and password percent-decoded, IPv6 in brackets, unix sockets with
// ?db=), defaults are 6379 and database 0, and anything else is refused with a reason
// instead of being half understood (a wrong port or database would silently put nodes
// on different buses).
#include <string.h>

#include <string>

#include "unit.h"

#include "msg/broker.h"

static broker_url parse_ok(const char *text) {
    broker_url u;
    const char *why = nullptr;
    bool ok = broker_url_parse(text, &u, &why);
    if (!ok) fprintf(stderr, "refused %s: %s\n", text, why);
    assert_true(ok);
    return u;
}

static void refused(const char *text) {
    broker_url u;
    const char *why = nullptr;
    if (broker_url_parse(text, &u, &why)) fail_msg("accepted %s", text);
    assert_non_null(why);
    assert_true(strlen(why) > 0);
}

static void test_tcp(void **) {
    broker_url u = parse_ok("redis://127.0.0.1:6380/2");
    assert_false(u.unix_socket);
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 6380);
    assert_int_equal(u.db, 2);
    assert_string_equal(u.user, "");
    assert_string_equal(u.pass, "");

    u = parse_ok("redis://redis.internal");
    assert_string_equal(u.host, "redis.internal");
    assert_int_equal(u.port, 6379);
    assert_int_equal(u.db, 0);

    u = parse_ok("redis://h/");
    assert_int_equal(u.db, 0);
    u = parse_ok("redis://h:1/2147483647");
    assert_int_equal(u.port, 1);
    assert_int_equal(u.db, 2147483647u);

    u = parse_ok("redis://[::1]:7000/3");
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 7000);
    assert_int_equal(u.db, 3);
    u = parse_ok("redis://[fe80::1]");
    assert_string_equal(u.host, "fe80::1");
    assert_int_equal(u.port, 6379);
}

static void test_credentials(void **) {
    broker_url u = parse_ok("redis://app:s3cret@h:6379/1");
    assert_string_equal(u.user, "app");
    assert_string_equal(u.pass, "s3cret");
    assert_string_equal(u.host, "h");
    // A password alone (requirepass), as redis-cli reads it.
    u = parse_ok("redis://:only@h");
    assert_string_equal(u.user, "");
    assert_string_equal(u.pass, "only");
    u = parse_ok("redis://lone@h");
    assert_string_equal(u.user, "");
    assert_string_equal(u.pass, "lone");
    // Percent-encoded ':' '@' '/' and a space; an '@' left unencoded in the password
    // still ends at the last '@'.
    u = parse_ok("redis://us%3Aer:p%40ss%2Fw%20d@h");
    assert_string_equal(u.user, "us:er");
    assert_string_equal(u.pass, "p@ss/w d");
    u = parse_ok("redis://u:a@b@h:1");
    assert_string_equal(u.pass, "a@b");
    assert_string_equal(u.host, "h");
    std::string longest = "redis://u:" + std::string(BROKER_CRED_MAX, 'p') + "@h";
    u = parse_ok(longest.c_str());
    assert_int_equal(strlen(u.pass), BROKER_CRED_MAX);
    refused(("redis://u:" + std::string(BROKER_CRED_MAX + 1, 'p') + "@h").c_str());
    refused("redis://u:%zz@h");
    refused("redis://u:%4@h");
    refused("redis://u:%00@h"); // a NUL would cut the password short
}

static void test_unix(void **) {
    broker_url u = parse_ok("unix:///run/redis/redis.sock");
    assert_true(u.unix_socket);
    assert_string_equal(u.path, "/run/redis/redis.sock");
    assert_int_equal(u.db, 0);
    u = parse_ok("unix:///tmp/r.sock?db=5");
    assert_string_equal(u.path, "/tmp/r.sock");
    assert_int_equal(u.db, 5);
    std::string longest = "unix:///" + std::string(BROKER_PATH_MAX - 1, 's');
    u = parse_ok(longest.c_str());
    assert_int_equal(strlen(u.path), BROKER_PATH_MAX);
    refused(("unix:///" + std::string(BROKER_PATH_MAX, 's')).c_str());
    // A password for a socket of a Redis with requirepass, or an ACL user.
    u = parse_ok("unix://:pw@/run/r.sock?db=1");
    assert_string_equal(u.pass, "pw");
    assert_string_equal(u.user, "");
    assert_string_equal(u.path, "/run/r.sock");
    assert_int_equal(u.db, 1);
    u = parse_ok("unix://app:p%40w@/run/r.sock");
    assert_string_equal(u.user, "app");
    assert_string_equal(u.pass, "p@w");
    refused("unix://pw@run/r.sock");
    refused("unix://:%zz@/run/r.sock");
    refused("unix://relative.sock");
    refused("unix:///tmp/r.sock?database=1");
    refused("unix:///tmp/r.sock?db=");
    refused("unix:///tmp/r.sock?db=x");
}

static void test_refused(void **) {
    const char *bad[] = {
        "", "redis", "http://h:6379", "rediss://h", "redis://", "redis://:6379", "redis://h:", "redis://h:0",
        "redis://h:65536", "redis://h:-1", "redis://h:63 79", "redis://h/x", "redis://h/-1", "redis://h/2147483648",
        "redis://h/1/2", "redis://[::1", "redis://[]:1", "redis://[::1]x", "redis://h h", "redis://h%20",
        "redis://h;rm", "REDIS://h",
    };
    for (const char *b : bad) refused(b);
    broker_url u;
    const char *why = nullptr;
    assert_false(broker_url_parse(nullptr, &u, &why));
    std::string host(BROKER_HOST_MAX + 1, 'h');
    refused(("redis://" + host).c_str());
    host.pop_back();
    parse_ok(("redis://" + host).c_str());
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tcp),
        cmocka_unit_test(test_credentials),
        cmocka_unit_test(test_unix),
        cmocka_unit_test(test_refused),
    };
    return unit_exit(cmocka_run_group_tests(tests, nullptr, nullptr));
}
