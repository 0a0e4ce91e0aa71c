// Unit tests for the messages nodes exchange on Redis Pub/Sub (src/msg/broker_bus.cpp).
//
// What a user depends on: each message the scripts write is read back field for field
// (a publication's channel, epoch, offset and envelope byte for byte; presence events;
// direct messages; disconnects with their code and reason), and anything else another
// program could PUBLISH on the same Redis channel is refused instead of half-acted on: a
// bad channel name, a short epoch or client id, offset 0, a close code no application
// may send, a reason longer than a close frame holds, a user length past the end.
#include <string.h>

#include <string>

#include "unit.h"

#include "msg/broker.h"

static const char ID[] = "0123456789abcdef0123456789abcdef";
static const char EPOCH[] = "00ff00ff00ff00ff";

// The message is kept here until the next call: the views point into it.
static std::string held;

static bus_msg parse_ok(const std::string &m) {
    held = m;
    bus_msg b;
    if (!bus_parse(held.data(), held.size(), &b)) fail_msg("refused: %s", held.c_str());
    return b;
}

static void refused(const std::string &m) {
    bus_msg b;
    if (bus_parse(m.data(), m.size(), &b)) fail_msg("accepted: %s", m.c_str());
}

static std::string view(const char *p, size_t n) { return std::string(p, n); }

static void test_publication(void **) {
    std::string env = R"({"type":"message","channel":"a:b","offset":42,"payload":{"x": [1, " sp "]}})";
    bus_msg b = parse_ok("p a:b " + std::string(EPOCH) + " 42 " + env);
    assert_int_equal(b.kind, BUS_PUBLICATION);
    assert_true(view(b.channel, b.channel_len) == "a:b");
    assert_true(view(b.epoch, 16) == EPOCH);
    assert_int_equal(b.offset, 42);
    assert_true(view(b.data, b.data_len) == env); // byte for byte, spaces included
    b = parse_ok("p c " + std::string(EPOCH) + " 18446744073709551 x");
    assert_int_equal(b.offset, 18446744073709551ull);
    std::string longest(128, 'n');
    parse_ok("p " + longest + " " + EPOCH + " 1 x");
    refused("p " + longest + "n " + EPOCH + " 1 x");            // 129 characters
    refused("p a b " + std::string(EPOCH) + " 1 x");             // a space is no channel character
    refused("p a\"b " + std::string(EPOCH) + " 1 x");
    refused("p a 00ff00ff00ff00f 1 x");                           // 15 digits
    refused("p a 00FF00FF00FF00FF 1 x");                          // ours are lowercase
    refused("p a " + std::string(EPOCH) + " 0 x");               // offsets start at 1
    refused("p a " + std::string(EPOCH) + " 01 x");
    refused("p a " + std::string(EPOCH) + " -1 x");
    refused("p a " + std::string(EPOCH) + " 12345678901234567890 x"); // 20 digits
    refused("p a " + std::string(EPOCH) + " 1 ");                // no envelope
    refused("p a " + std::string(EPOCH) + " 1");
    refused("p  a " + std::string(EPOCH) + " 1 x");               // an empty field
}

static void test_presence_and_direct(void **) {
    std::string obj = R"({"clientId":"0123456789abcdef0123456789abcdef","user":null})";
    bus_msg b = parse_ok("j room " + std::string(ID) + " " + obj);
    assert_int_equal(b.kind, BUS_JOIN);
    assert_true(view(b.channel, b.channel_len) == "room");
    assert_true(view(b.client_id, 32) == ID);
    assert_true(view(b.data, b.data_len) == obj);
    b = parse_ok("l room " + std::string(ID) + " " + obj);
    assert_int_equal(b.kind, BUS_LEAVE);
    refused("j room " + std::string(ID) + " ");
    refused("j room 0123456789abcdef0123456789abcde " + obj); // 31 digits
    refused("j room 0123456789ABCDEF0123456789ABCDEF " + obj);

    b = parse_ok("d " + std::string(ID) + " {\"type\":\"message\"}");
    assert_int_equal(b.kind, BUS_DIRECT);
    assert_true(view(b.client_id, 32) == ID);
    assert_true(view(b.data, b.data_len) == "{\"type\":\"message\"}");
    refused("d " + std::string(ID) + " ");
    refused("d " + std::string(ID));
    b = parse_ok("h");
    assert_int_equal(b.kind, BUS_HEARTBEAT);
    refused("h ");
    refused("");
    refused("p");
    refused("q " + std::string(ID) + " x");
    refused(std::string("p\0", 2));
}

static void test_disconnects(void **) {
    bus_msg b = parse_ok("x " + std::string(ID) + " 4009 disconnected by the backend");
    assert_int_equal(b.kind, BUS_DISCONNECT);
    assert_int_equal(b.code, 4009);
    assert_true(view(b.data, b.data_len) == "disconnected by the backend");
    b = parse_ok("x " + std::string(ID) + " 1000 "); // no reason
    assert_int_equal(b.data_len, 0);
    parse_ok("x " + std::string(ID) + " 3000 " + std::string(123, 'r'));
    refused("x " + std::string(ID) + " 3000 " + std::string(124, 'r'));
    for (const char *code : {"0", "999", "1004", "1005", "1006", "1015", "2999", "5000", "65536"})
        refused("x " + std::string(ID) + " " + code + " r");

    // u NODE CODE USERLEN USER REASON: the user's bytes may hold spaces.
    b = parse_ok("u 0123456789abcdef 4001 6 a userbye now");
    assert_int_equal(b.kind, BUS_DISCONNECT_USER);
    assert_true(view(b.node, 16) == "0123456789abcdef");
    assert_int_equal(b.code, 4001);
    assert_true(view(b.user, b.user_len) == "a user");
    assert_true(view(b.data, b.data_len) == "bye now");
    b = parse_ok("u 0123456789abcdef 4001 3 bob");
    assert_true(view(b.user, b.user_len) == "bob");
    assert_int_equal(b.data_len, 0);
    refused("u 0123456789abcdef 4001 4 bob");  // past the end
    refused("u 0123456789abcdef 4001 0 bob");  // nobody has the empty name
    refused("u 0123456789abcde 4001 3 bob");
    refused("u 0123456789abcdef 1006 3 bob");
    refused("u 0123456789abcdef 4001 3 bob" + std::string(124, 'r'));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_publication),
        cmocka_unit_test(test_presence_and_direct),
        cmocka_unit_test(test_disconnects),
    };
    return unit_exit(cmocka_run_group_tests(tests, nullptr, nullptr));
}
