// Unit tests for channel namespaces (src/msg/namespaces.*).
//
// What a user depends on: a configuration with a bad or repeated namespace name is
// refused; a channel takes the options of the namespace before its first ':' and of no
// other; who may subscribe and publish is exactly what wsr_allow says, with the answer
// "unauthorized" for an anonymous client who should authenticate and "forbidden" for
// everyone else refused (publish follows the token's "publish" patterns, subscribe its
// "channels" patterns).
#include <string.h>

#include <string>

#include "unit.h"

#include "msg/namespaces.h"

static wsr_namespace ns(const char *name, wsr_allow sub = WSR_ALLOW_ANYONE, wsr_allow pub = WSR_ALLOW_ANYONE) {
    wsr_namespace n;
    memset(&n, 0, sizeof n);
    n.name = name;
    n.subscribe = sub;
    n.publish = pub;
    return n;
}

static int validate(const wsr_namespace *list, uint32_t n) {
    wsr_messaging_options o;
    wsr_messaging_options_default(&o);
    o.namespaces = list;
    o.nnamespaces = n;
    return ns_validate(&o);
}

static void test_validate(void **) {
    assert_int_equal(validate(nullptr, 0), WSR_OK);
    wsr_namespace good[] = {ns("chat"), ns("agents"), ns("A-Z_a.z@0/9"), ns("x")};
    assert_int_equal(validate(good, 4), WSR_OK);
    std::string n64(64, 'n'), n65(65, 'n');
    wsr_namespace longest[] = {ns(n64.c_str())};
    assert_int_equal(validate(longest, 1), WSR_OK);

    const char *bad_names[] = {"", "chat:", "ch:at", "a b", "a*", "caf\xc3\xa9", "a\tb", "a,b", "a\"b", "a#b",
                               n65.c_str()};
    for (const char *b : bad_names) {
        wsr_namespace one[] = {ns("chat"), ns(b)};
        assert_int_equal(validate(one, 2), WSR_EINVAL);
        assert_int_equal(validate(&one[1], 1), WSR_EINVAL);
    }
    wsr_namespace null_name[] = {ns("chat"), ns(nullptr)};
    assert_int_equal(validate(null_name, 2), WSR_EINVAL);
    assert_int_equal(validate(&null_name[1], 1), WSR_EINVAL);
    wsr_namespace dup[] = {ns("chat"), ns("agents"), ns("chat")};
    assert_int_equal(validate(dup, 3), WSR_EINVAL);
    wsr_namespace dup_adjacent[] = {ns("agents"), ns("agents")};
    assert_int_equal(validate(dup_adjacent, 2), WSR_EINVAL);
    wsr_namespace cases[] = {ns("chat"), ns("Chat")}; // names are case-sensitive
    assert_int_equal(validate(cases, 2), WSR_OK);
}

static void test_of(void **) {
    wsr_namespace list[] = {ns("chat", WSR_ALLOW_USERS), ns("chatty", WSR_ALLOW_GRANTED), ns("a.b")};
    wsr_messaging_options o;
    wsr_messaging_options_default(&o);
    o.namespaces = list;
    o.nnamespaces = 3;
    assert_int_equal(ns_validate(&o), WSR_OK);
    auto of = [&](const char *ch) { return ns_of(&o, ch, (uint32_t)strlen(ch)); };
    assert_ptr_equal(of("chat:x"), &list[0]);
    assert_ptr_equal(of("chat:"), &list[0]);
    assert_ptr_equal(of("chatty:x"), &list[1]);
    assert_ptr_equal(of("a.b:room"), &list[2]);
    assert_ptr_equal(of("chat:sub:x"), &list[0]);  // the prefix before the first ':' only
    assert_ptr_equal(of("chatty:chat:x"), &list[1]);
    assert_ptr_equal(of("x:chat:y"), &o.defaults); // not a namespace further in
    assert_ptr_equal(of("cha:x"), &o.defaults);
    assert_ptr_equal(of("chatt:x"), &o.defaults);
    assert_ptr_equal(of("chattyy:x"), &o.defaults);
    assert_ptr_equal(of("Chat:x"), &o.defaults);
    assert_ptr_equal(of("chat"), &o.defaults); // no colon
    assert_ptr_equal(of("chatroom"), &o.defaults);
    assert_ptr_equal(of(":x"), &o.defaults);
    assert_ptr_equal(of("unknown:x"), &o.defaults);
    // The channel is its length: a ':' past it is not in the name.
    assert_ptr_equal(ns_of(&o, "chat:x", 4), &o.defaults);
    assert_ptr_equal(ns_of(&o, "chat:x", 5), &list[0]);
    assert_ptr_equal(ns_of(&o, "chatty:x", 4), &o.defaults);

    o.nnamespaces = 0; // none configured
    assert_ptr_equal(of("chat:x"), &o.defaults);
}

// Every wsr_allow for both actions against anonymous, authenticated without grants,
// authenticated with a matching grant and with a grant that does not match.
static void test_check_matrix(void **) {
    const char *sub_chat[] = {"chat:*", nullptr}, *pub_chat[] = {"chat:room", nullptr};
    const char *other[] = {"agents:*", nullptr};
    auth_identity *plain = auth_identity_new("u", 1, nullptr, nullptr, 0);
    auth_identity *empty_lists = auth_identity_new("u", 1, other + 1, other + 1, 0); // present, empty
    auth_identity *match = auth_identity_new("u", 1, sub_chat, pub_chat, 0);
    auth_identity *mismatch = auth_identity_new("u", 1, other, other, 0);
    // Subscribe granted, publish not (and the other way round): the lists are not mixed up.
    auth_identity *sub_only = auth_identity_new("u", 1, sub_chat, nullptr, 0);
    auth_identity *pub_only = auth_identity_new("u", 1, nullptr, pub_chat, 0);
    assert_non_null(plain);
    assert_non_null(empty_lists);
    assert_non_null(match);
    assert_non_null(mismatch);
    assert_non_null(sub_only);
    assert_non_null(pub_only);

    const char *ch = "chat:room";
    uint32_t len = (uint32_t)strlen(ch);
    const char *U = "unauthorized", *F = "forbidden";
    struct row {
        wsr_allow allow;
        const char *anon, *plain, *empty, *match, *mismatch, *sub_only, *pub_only; // for subscribe
        const char *p_sub_only, *p_pub_only;                                      // for publish
    } rows[] = {
        {WSR_ALLOW_ANYONE, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr},
        {WSR_ALLOW_USERS, U, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr},
        {WSR_ALLOW_GRANTED, U, F, F, nullptr, F, nullptr, F, F, nullptr},
        {WSR_ALLOW_BACKEND, F, F, F, F, F, F, F, F, F},
    };
    auto same = [](const char *got, const char *want) {
        if (!want)
            assert_null(got);
        else {
            assert_non_null(got);
            assert_string_equal(got, want);
        }
    };
    for (const row &r : rows) {
        for (int action = 0; action < 2; action++) {
            ns_action a = action ? NS_PUBLISH : NS_SUBSCRIBE;
            // The other action's rule is the opposite extreme, so that a mix-up shows.
            wsr_allow opposite = r.allow == WSR_ALLOW_BACKEND ? WSR_ALLOW_ANYONE : WSR_ALLOW_BACKEND;
            wsr_namespace n = a == NS_SUBSCRIBE ? ns("chat", r.allow, opposite) : ns("chat", opposite, r.allow);
            same(ns_check(&n, a, nullptr, ch, len), r.anon);
            same(ns_check(&n, a, plain, ch, len), r.plain);
            same(ns_check(&n, a, empty_lists, ch, len), r.empty);
            same(ns_check(&n, a, match, ch, len), r.match);
            same(ns_check(&n, a, mismatch, ch, len), r.mismatch);
            same(ns_check(&n, a, sub_only, ch, len), a == NS_SUBSCRIBE ? r.sub_only : r.p_sub_only);
            same(ns_check(&n, a, pub_only, ch, len), a == NS_SUBSCRIBE ? r.pub_only : r.p_pub_only);
        }
    }

    // GRANTED follows the patterns exactly: "chat:room" may be published, "chat:other" not,
    // while subscribe's "chat:*" takes both.
    wsr_namespace g = ns("chat", WSR_ALLOW_GRANTED, WSR_ALLOW_GRANTED);
    assert_null(ns_check(&g, NS_PUBLISH, match, "chat:room", 9));
    same(ns_check(&g, NS_PUBLISH, match, "chat:other", 10), F);
    same(ns_check(&g, NS_PUBLISH, match, "chat:roomy", 10), F);
    assert_null(ns_check(&g, NS_SUBSCRIBE, match, "chat:other", 10));
    assert_null(ns_check(&g, NS_SUBSCRIBE, match, "chat:room", 9));
    // The length counts: "chat:room" within a longer text.
    same(ns_check(&g, NS_PUBLISH, match, "chat:roomy", 9) , nullptr);

    auth_identity_free(plain);
    auth_identity_free(empty_lists);
    auth_identity_free(match);
    auth_identity_free(mismatch);
    auth_identity_free(sub_only);
    auth_identity_free(pub_only);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validate),
        cmocka_unit_test(test_of),
        cmocka_unit_test(test_check_matrix),
    };
    return unit_exit(cmocka_run_group_tests(tests, nullptr, nullptr));
}
