// Unit tests for authentication (src/msg/auth.*): channel grants, identities, Basic
// credentials, the users file, and JWT bearer tokens.
//
// What a user depends on: a grant pattern grants what it says and nothing more; a
// password or token is accepted exactly when it is right; a users file that is wrong
// never replaces a good one; a token is refused when expired, not yet valid, for another
// audience or issuer, signed with another key, or signed with an algorithm that does not
// fit the key configured ("none", or HS256 keyed with the public key's PEM text).
#include <crypt.h>
#if WSR_HAVE_JWT
#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#endif
#include <stdlib.h>
#include <string.h>

#include <string>

#include "unit.h"

#include "msg/auth.h"

static const uint64_t NOW_MS = 1700000000000ull; // the tests' clock
static const long NOW_S = 1700000000;
static const char *SECRET = "0123456789abcdef0123456789abcdef-test-secret";

// --- helpers ------------------------------------------------------------------------------

// A temporary file holding text; its path in path (cap 256). Removed by the caller.
static void temp_file(char *path, const char *text, size_t len) {
    const char *dir = getenv("TMPDIR");
    snprintf(path, 256, "%s/wsr_test_auth_XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
}

static void rewrite(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

// A bcrypt hash of password (cost 5: fast enough for a test).
static std::string bcrypt(const char *password) {
    char setting[CRYPT_GENSALT_OUTPUT_SIZE];
    assert_non_null(crypt_gensalt_rn("$2b$", 5, nullptr, 0, setting, sizeof setting));
    struct crypt_data *cd = (struct crypt_data *)calloc(1, sizeof *cd);
    const char *h = crypt_r(password, setting, cd);
    assert_non_null(h);
    assert_memory_equal(h, "$2b$05$", 7);
    std::string s = h;
    free(cd);
    return s;
}

static wsr_messaging_options options(void) {
    wsr_messaging_options o;
    wsr_messaging_options_default(&o);
    return o;
}

// A users file holding text (its path in path), and a that reads it and nothing else:
// auth_init's result.
static int auth_from_users(auth *a, char path[256], const char *text, size_t len) {
    temp_file(path, text, len);
    wsr_messaging_options o = options();
    o.users_file = path;
    return auth_init(a, &o);
}

static size_t count(const char *const *l) {
    size_t n = 0;
    while (l[n]) n++;
    return n;
}

#if WSR_HAVE_JWT
// An HS256 token over the claims given as JSON (arrays, objects) plus sub/exp when set.
static std::string hs256(const char *secret, const char *sub, long exp, const char *json) {
    jwt_t *j = nullptr;
    assert_int_equal(jwt_new(&j), 0);
    if (sub) assert_int_equal(jwt_add_grant(j, "sub", sub), 0);
    if (exp) assert_int_equal(jwt_add_grant_int(j, "exp", exp), 0);
    if (json) assert_int_equal(jwt_add_grants_json(j, json), 0);
    assert_int_equal(jwt_set_alg(j, JWT_ALG_HS256, (const unsigned char *)secret, (int)strlen(secret)), 0);
    char *s = jwt_encode_str(j);
    assert_non_null(s);
    std::string t = s;
    free(s);
    jwt_free(j);
    return t;
}

#endif

static auth_result token(const auth *a, const std::string &t, auth_identity **id, const char **why) {
    *why = nullptr;
    auth_result r = auth_token(a, t.data(), t.size(), NOW_MS, id, why);
    if (r == AUTH_OK) {
        assert_non_null(*id);
    } else {
        assert_null(*id);
        assert_non_null(*why);
    }
    return r;
}

#if WSR_HAVE_JWT
static void init_secret(auth *a, wsr_messaging_options *o) {
    *o = options();
    o->jwt_secret = SECRET;
    assert_int_equal(auth_init(a, o), WSR_OK);
    assert_true(auth_accepts_tokens(a));
}

static std::string b64url(const std::string &in) {
    std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
    int n = EVP_EncodeBlock((unsigned char *)&out[0], (const unsigned char *)in.data(), (int)in.size());
    out.resize((size_t)n);
    while (!out.empty() && out.back() == '=') out.pop_back();
    for (char &c : out) c = c == '+' ? '-' : c == '/' ? '_' : c;
    return out;
}

// An HS256 token made by hand (HMAC with OpenSSL), for claims libjwt will not encode.
static std::string hs256_raw(const char *secret, const char *payload) {
    std::string si = b64url("{\"alg\":\"HS256\",\"typ\":\"JWT\"}") + "." + b64url(payload);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    assert_non_null(HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)si.data(), si.size(), mac, &n));
    return si + "." + b64url(std::string((const char *)mac, n));
}

#endif

// --- grants -------------------------------------------------------------------------------

static bool granted(const char *const *patterns, const char *channel) {
    return auth_granted(patterns, channel, strlen(channel));
}

static void test_granted_globs(void **) {
    const char *agents[] = {"agents:*", nullptr};
    assert_true(granted(agents, "agents:1:out"));
    assert_true(granted(agents, "agents:")); // '*' matches nothing too
    assert_false(granted(agents, "agents"));
    assert_false(granted(agents, "agent:1"));
    assert_false(granted(agents, "chat:agents:1"));

    const char *all[] = {"*", nullptr};
    assert_true(granted(all, "anything:at:all"));
    assert_true(granted(all, "x"));

    const char *abc[] = {"a*b*c", nullptr};
    assert_true(granted(abc, "abc"));
    assert_true(granted(abc, "a-b-c"));
    assert_true(granted(abc, "axxbyybzc"));
    assert_true(granted(abc, "abcbc"));
    assert_false(granted(abc, "ab"));
    assert_false(granted(abc, "acb"));
    assert_false(granted(abc, "abcd"));
    assert_false(granted(abc, "xabc"));

    const char *exact[] = {"agents", nullptr};
    assert_true(granted(exact, "agents"));
    assert_false(granted(exact, "agents2")); // no partial match
    assert_false(granted(exact, "agent"));

    const char *longer[] = {"agents:1:out:more", nullptr};
    assert_false(granted(longer, "agents:1:out"));

    const char *none[] = {nullptr};
    assert_false(granted(none, "agents:1"));
    assert_false(granted(nullptr, "agents:1"));

    const char *several[] = {"chat:*", "agents:7", nullptr};
    assert_true(granted(several, "agents:7"));
    assert_true(granted(several, "chat:room"));
    assert_false(granted(several, "agents:8"));

    // The length given is the channel, not the C string.
    assert_false(auth_granted(exact, "agents2", 7));
    assert_true(auth_granted(exact, "agents2", 6));
}

// --- identities ---------------------------------------------------------------------------

static void test_identity_is_a_copy(void **) {
    char user[] = "alice-and-more";
    char s1[] = "chat:*", s2[] = "agents:1";
    char p1[] = "agents:1:in";
    const char *sub[] = {s1, s2, nullptr};
    const char *pub[] = {p1, nullptr};
    auth_identity *id = auth_identity_new(user, 5, sub, pub, 1234);
    assert_non_null(id);
    // The inputs change: the identity does not.
    memset(user, 'x', sizeof user - 1);
    memset(s1, 'y', sizeof s1 - 1);
    memset(s2, 'y', sizeof s2 - 1);
    memset(p1, 'z', sizeof p1 - 1);
    sub[0] = "other";
    pub[0] = nullptr;
    assert_string_equal(id->user, "alice");
    assert_int_equal(id->expires_ms, 1234);
    assert_non_null(id->subscribe);
    assert_int_equal(count(id->subscribe), 2);
    assert_string_equal(id->subscribe[0], "chat:*");
    assert_string_equal(id->subscribe[1], "agents:1");
    assert_non_null(id->publish);
    assert_int_equal(count(id->publish), 1);
    assert_string_equal(id->publish[0], "agents:1:in");
    assert_true(auth_granted(id->subscribe, "chat:x", 6));
    auth_identity_free(id);
}

static void test_identity_null_and_empty_lists(void **) {
    auth_identity *id = auth_identity_new("bob", 3, nullptr, nullptr, 0);
    assert_non_null(id);
    assert_string_equal(id->user, "bob");
    assert_null(id->subscribe);
    assert_null(id->publish);
    assert_int_equal(id->expires_ms, 0);
    auth_identity_free(id);

    const char *empty[] = {nullptr};
    const char *one[] = {"x:*", nullptr};
    id = auth_identity_new("bob", 3, empty, one, 0);
    assert_non_null(id);
    assert_non_null(id->subscribe); // given, granting nothing
    assert_null(id->subscribe[0]);
    assert_non_null(id->publish);
    assert_string_equal(id->publish[0], "x:*");
    assert_null(id->publish[1]);
    auth_identity_free(id);

    id = auth_identity_new("", 0, one, empty, 0);
    assert_non_null(id);
    assert_string_equal(id->user, "");
    assert_non_null(id->publish);
    assert_null(id->publish[0]);
    assert_string_equal(id->subscribe[0], "x:*");
    auth_identity_free(id);
}

// --- Basic credentials --------------------------------------------------------------------

static bool basic(const char *b64, char *buf, size_t cap, const char **u, const char **p) {
    *u = *p = nullptr;
    return auth_basic_decode(b64, strlen(b64), buf, cap, u, p);
}

static void test_basic_decode(void **) {
    char buf[128];
    const char *u, *p;
    assert_true(basic("YWxpY2U6c2VjcmV0", buf, sizeof buf, &u, &p)); // alice:secret, no padding
    assert_string_equal(u, "alice");
    assert_string_equal(p, "secret");
    assert_true(basic("YWxpY2U6c2VjcmV0MQ==", buf, sizeof buf, &u, &p)); // alice:secret1, ==
    assert_string_equal(u, "alice");
    assert_string_equal(p, "secret1");
    assert_true(basic("YWxpY2U6c2VjcmV0MTI=", buf, sizeof buf, &u, &p)); // alice:secret12, =
    assert_string_equal(u, "alice");
    assert_string_equal(p, "secret12");
    assert_true(basic("YWxpY2U6YTpi", buf, sizeof buf, &u, &p)); // alice:a:b: the first colon splits
    assert_string_equal(u, "alice");
    assert_string_equal(p, "a:b");
    assert_true(basic("YWxpY2U6", buf, sizeof buf, &u, &p)); // alice: (empty password)
    assert_string_equal(u, "alice");
    assert_string_equal(p, "");
    assert_true(basic("dTpw", buf, 4, &u, &p)); // u:p in exactly 3 + 1 bytes
    assert_string_equal(u, "u");
    assert_string_equal(p, "p");

    assert_false(basic("YWxpY2U=", buf, sizeof buf, &u, &p));         // alice: no colon
    assert_false(basic("OnNlY3JldA==", buf, sizeof buf, &u, &p));     // :secret: empty user
    assert_false(basic("YWxpY2U6c2VjcmV0!!!!", buf, sizeof buf, &u, &p)); // not base64
    assert_false(basic("YWxpY2U6c2VjcmV0MQ", buf, sizeof buf, &u, &p));   // padding missing
    assert_false(basic("YWxpY2U6c2VjcmV0M", buf, sizeof buf, &u, &p));    // a length of 4n+1
    assert_false(basic("", buf, sizeof buf, &u, &p));
    assert_false(basic("====", buf, sizeof buf, &u, &p));
    assert_false(basic("YWxpY2U6c2VjcmV0", buf, 8, &u, &p)); // 12 bytes do not fit in 8
    assert_false(basic("YWxpY2U6c2VjcmV0", buf, 12, &u, &p)); // nor in 12 (the NUL)
    assert_false(basic("YQBiOmM=", buf, sizeof buf, &u, &p)); // "a\0b:c": a NUL inside
    assert_false(basic("YTpiAGM=", buf, sizeof buf, &u, &p)); // "a:b\0c": a NUL in the password
}

// Padding belongs at the end only: "YW=pY2U6" is not base64 (OpenSSL's EVP_DecodeBlock
// decodes it to "a`)ce:" all the same).
static void test_basic_decode_padding_inside(void **) {
    char buf[128];
    const char *u, *p;
    assert_false(basic("YW=pY2U6", buf, sizeof buf, &u, &p));
    assert_false(basic("YWxp=2U6c2VjcmV0", buf, sizeof buf, &u, &p));
    assert_false(basic("YWxpY2U6c2Vj=mV0", buf, sizeof buf, &u, &p));
}

// --- the environment's user ---------------------------------------------------------------

static void test_env_match(void **) {
    auth a;
    wsr_messaging_options o = options();
    o.auth_user = "admin";
    o.auth_password = "hunter22";
    assert_int_equal(auth_init(&a, &o), WSR_OK);
    assert_true(auth_configured(&a));
    assert_false(auth_accepts_tokens(&a));
    assert_true(auth_env_match(&a, "admin", "hunter22"));
    assert_false(auth_env_match(&a, "admin", "hunter23"));
    assert_false(auth_env_match(&a, "admin", "hunter2")); // a prefix of the password
    assert_false(auth_env_match(&a, "admin", "hunter222"));
    assert_false(auth_env_match(&a, "admin", ""));
    assert_false(auth_env_match(&a, "admin2", "hunter22"));
    assert_false(auth_env_match(&a, "admi", "hunter22"));
    assert_false(auth_env_match(&a, "", "hunter22"));
    auth_free(&a);

    o.auth_password = ""; // a user without a password is a configuration error
    assert_int_equal(auth_init(&a, &o), WSR_EINVAL);
    o.auth_password = nullptr;
    assert_int_equal(auth_init(&a, &o), WSR_EINVAL);

    o = options(); // nothing configured: nobody matches
    assert_int_equal(auth_init(&a, &o), WSR_OK);
    assert_false(auth_configured(&a));
    assert_false(auth_env_match(&a, "admin", "hunter22"));
    auth_free(&a);
}

// --- the users file -----------------------------------------------------------------------

static void test_users_file(void **) {
    std::string ha = bcrypt("alice-pw"), hb = bcrypt("bob-pw");
    // Comments, blank lines, and a CRLF line end.
    std::string text = "# users\n\nalice:" + ha + "\n\n# bob below\r\nbob:" + hb + "\r\n";
    char path[256];
    auth a;
    assert_int_equal(auth_from_users(&a, path, text.data(), text.size()), WSR_OK);
    assert_true(auth_configured(&a));
    assert_int_equal(a.nusers, 2);

    char hash[256];
    bool known = false;
    assert_true(auth_user_hash(&a, "alice", hash, sizeof hash, &known));
    assert_true(known);
    assert_string_equal(hash, ha.c_str());
    assert_true(auth_crypt_check(hash, "alice-pw"));
    assert_false(auth_crypt_check(hash, "alice-pW"));
    assert_false(auth_crypt_check(hash, "bob-pw"));
    assert_false(auth_crypt_check(hash, ""));

    assert_true(auth_user_hash(&a, "bob", hash, sizeof hash, &known));
    assert_true(known);
    assert_string_equal(hash, hb.c_str());
    assert_true(auth_crypt_check(hash, "bob-pw"));

    known = true;
    memset(hash, 0, sizeof hash);
    assert_true(auth_user_hash(&a, "carol", hash, sizeof hash, &known)); // unknown: a hash all the same
    assert_false(known);
    assert_true(strlen(hash) > 0);
    assert_false(auth_crypt_check(hash, "carol-pw"));

    assert_false(auth_user_hash(&a, "alice", hash, 10, &known)); // does not fit
    auth_free(&a);
    unlink(path);

    // No users file: no hash at all.
    wsr_messaging_options o = options();
    o.auth_user = "admin";
    o.auth_password = "x";
    assert_int_equal(auth_init(&a, &o), WSR_OK);
    assert_false(auth_user_hash(&a, "admin", hash, sizeof hash, &known));
    auth_free(&a);
}

// The header: for an unknown user "a hash that costs the same to check and never
// matches". Whatever password the client gives, including another user's.
static void test_unknown_user_hash_never_matches(void **) {
    std::string ha = bcrypt("alice-pw"), hb = bcrypt("bob-pw");
    std::string text = "alice:" + ha + "\nbob:" + hb + "\n";
    char path[256];
    auth a;
    assert_int_equal(auth_from_users(&a, path, text.data(), text.size()), WSR_OK);
    char hash[256];
    bool known = true;
    assert_true(auth_user_hash(&a, "mallory", hash, sizeof hash, &known));
    assert_false(known);
    bool alice = auth_crypt_check(hash, "alice-pw"), bob = auth_crypt_check(hash, "bob-pw");
    auth_free(&a);
    unlink(path);
    assert_false(alice);
    assert_false(bob);
}

// Whether a users file holding text is accepted (the file and the auth gone after).
static int init_users(const char *text) {
    char path[256];
    auth a;
    int r = auth_from_users(&a, path, text, strlen(text));
    if (r == WSR_OK) auth_free(&a);
    unlink(path);
    return r;
}

static void test_users_file_refused(void **) {
    std::string h = bcrypt("pw");
    assert_int_equal(init_users(("alice:" + h + "\n").c_str()), WSR_OK);
    // An MD5 ($1$) hash is not trusted.
    assert_int_equal(init_users(("alice:" + h + "\nbob:$1$saltsalt$qjXMvbEw8oaL.CzflDugX/\n").c_str()),
                     WSR_EINVAL);
    // A line without ':'.
    assert_int_equal(init_users(("alice:" + h + "\nbob\n").c_str()), WSR_EINVAL);
    // An empty user name.
    assert_int_equal(init_users((":" + h + "\n").c_str()), WSR_EINVAL);
    // Not a hash at all.
    assert_int_equal(init_users("alice:plaintext\n"), WSR_EINVAL);
    // Only comments: no users.
    assert_int_equal(init_users("# nobody\n\n"), WSR_EINVAL);
    // A file that is not there.
    auth a;
    wsr_messaging_options o = options();
    o.users_file = "/nonexistent/wsr-users-file";
    assert_int_equal(auth_init(&a, &o), WSR_EINVAL);
}

static void test_reload_keeps_the_old_users(void **) {
    std::string h1 = bcrypt("one"), h2 = bcrypt("two");
    std::string text = "alice:" + h1 + "\n";
    char path[256];
    auth a;
    assert_int_equal(auth_from_users(&a, path, text.data(), text.size()), WSR_OK);
    char hash[256];
    bool known;

    rewrite(path, "alice:$1$saltsalt$qjXMvbEw8oaL.CzflDugX/\n"); // broken: refused
    assert_int_equal(auth_reload(&a), WSR_EINVAL);
    assert_true(auth_user_hash(&a, "alice", hash, sizeof hash, &known));
    assert_true(known);
    assert_string_equal(hash, h1.c_str());

    rewrite(path, "no colon here\n");
    assert_int_equal(auth_reload(&a), WSR_EINVAL);
    assert_true(auth_user_hash(&a, "alice", hash, sizeof hash, &known));
    assert_string_equal(hash, h1.c_str());

    unlink(path); // gone
    assert_int_equal(auth_reload(&a), WSR_EINVAL);
    assert_true(auth_user_hash(&a, "alice", hash, sizeof hash, &known));
    assert_true(known);
    assert_string_equal(hash, h1.c_str());

    rewrite(path, ("bob:" + h2 + "\n").c_str()); // good again: replaces
    assert_int_equal(auth_reload(&a), WSR_OK);
    assert_true(auth_user_hash(&a, "bob", hash, sizeof hash, &known));
    assert_true(known);
    assert_string_equal(hash, h2.c_str());
    assert_true(auth_user_hash(&a, "alice", hash, sizeof hash, &known));
    assert_false(known);
    auth_free(&a);
    unlink(path);
}

// --- tokens -------------------------------------------------------------------------------
#if WSR_HAVE_JWT

static void test_token_hs256(void **) {
    auth a;
    wsr_messaging_options o;
    init_secret(&a, &o);
    auth_identity *id;
    const char *why;
    assert_int_equal(token(&a, hs256(SECRET, "alice", NOW_S + 60, nullptr), &id, &why), AUTH_OK);
    assert_string_equal(id->user, "alice");
    assert_int_equal(id->expires_ms, (uint64_t)(NOW_S + 60) * 1000);
    assert_null(id->subscribe); // no claims: nothing granted
    assert_null(id->publish);
    auth_identity_free(id);

    // No exp: does not expire.
    assert_int_equal(token(&a, hs256(SECRET, "bob", 0, nullptr), &id, &why), AUTH_OK);
    assert_string_equal(id->user, "bob");
    assert_int_equal(id->expires_ms, 0);
    auth_identity_free(id);

    // Another secret.
    assert_int_equal(token(&a, hs256("another secret, 32 bytes or more!!", "alice", NOW_S + 60, nullptr), &id, &why),
                     AUTH_BAD);
    // A byte of the signature changed.
    std::string t = hs256(SECRET, "alice", NOW_S + 60, nullptr);
    t[t.size() - 2] = t[t.size() - 2] == 'A' ? 'B' : 'A';
    assert_int_equal(token(&a, t, &id, &why), AUTH_BAD);
    // A byte of the payload changed.
    t = hs256(SECRET, "alice", NOW_S + 60, nullptr);
    size_t dot = t.find('.');
    t[dot + 3] = t[dot + 3] == 'A' ? 'B' : 'A';
    assert_int_equal(token(&a, t, &id, &why), AUTH_BAD);
    // Not a token.
    assert_int_equal(token(&a, std::string("not.a.token"), &id, &why), AUTH_BAD);
    assert_int_equal(token(&a, std::string(""), &id, &why), AUTH_BAD);
    auth_free(&a);

    // Nothing configured for tokens: refused, even a good one.
    o = options();
    assert_int_equal(auth_init(&a, &o), WSR_OK);
    assert_false(auth_accepts_tokens(&a));
    assert_int_equal(token(&a, hs256(SECRET, "alice", NOW_S + 60, nullptr), &id, &why), AUTH_BAD);
    auth_free(&a);
}

static void test_token_times(void **) {
    auth a;
    wsr_messaging_options o;
    init_secret(&a, &o);
    auth_identity *id;
    const char *why;
    assert_int_equal(token(&a, hs256(SECRET, "alice", NOW_S - 1, nullptr), &id, &why), AUTH_EXPIRED);
    assert_int_equal(token(&a, hs256(SECRET, "alice", NOW_S - 86400, nullptr), &id, &why), AUTH_EXPIRED);
    assert_int_equal(token(&a, hs256(SECRET, "alice", NOW_S, nullptr), &id, &why), AUTH_EXPIRED); // exp is exclusive
    assert_int_equal(token(&a, hs256(SECRET, "alice", NOW_S + 1, nullptr), &id, &why), AUTH_OK);
    auth_identity_free(id);

    char json[64];
    snprintf(json, sizeof json, "{\"nbf\":%ld}", NOW_S + 10);
    assert_int_equal(token(&a, hs256(SECRET, "alice", NOW_S + 60, json), &id, &why), AUTH_BAD);
    snprintf(json, sizeof json, "{\"nbf\":%ld}", NOW_S - 10);
    assert_int_equal(token(&a, hs256(SECRET, "alice", NOW_S + 60, json), &id, &why), AUTH_OK);
    auth_identity_free(id);
    // exp and nbf that are not numbers.
    assert_int_equal(token(&a, hs256(SECRET, "alice", 0, "{\"exp\":\"tomorrow\"}"), &id, &why), AUTH_BAD);
    assert_int_equal(token(&a, hs256(SECRET, "alice", NOW_S + 60, "{\"nbf\":\"now\"}"), &id, &why), AUTH_BAD);
    auth_free(&a);
}

static void test_token_audience_and_issuer(void **) {
    auth a;
    wsr_messaging_options o = options();
    o.jwt_secret = SECRET;
    o.jwt_audience = "dashboards";
    o.jwt_issuer = "https://issuer.example";
    assert_int_equal(auth_init(&a, &o), WSR_OK);
    auth_identity *id;
    const char *why;
    const char *iss = "\"iss\":\"https://issuer.example\"";
    auto claims = [&](const char *aud, const char *issuer) {
        std::string s = "{";
        if (aud) s += std::string("\"aud\":") + aud;
        if (aud && issuer) s += ",";
        if (issuer) s += issuer;
        return s + "}";
    };
    assert_int_equal(token(&a, hs256(SECRET, "alice", NOW_S + 60, claims("\"dashboards\"", iss).c_str()), &id, &why),
                     AUTH_OK);
    auth_identity_free(id);
    assert_int_equal(
        token(&a, hs256(SECRET, "alice", NOW_S + 60, claims("[\"other\",\"dashboards\"]", iss).c_str()), &id, &why),
        AUTH_OK);
    auth_identity_free(id);
    // Another audience, as a string or in an array; none at all; a prefix.
    assert_int_equal(token(&a, hs256(SECRET, "alice", NOW_S + 60, claims("\"agents\"", iss).c_str()), &id, &why),
                     AUTH_BAD);
    assert_int_equal(
        token(&a, hs256(SECRET, "alice", NOW_S + 60, claims("[\"agents\",\"other\"]", iss).c_str()), &id, &why),
        AUTH_BAD);
    assert_int_equal(token(&a, hs256(SECRET, "alice", NOW_S + 60, claims("[]", iss).c_str()), &id, &why), AUTH_BAD);
    assert_int_equal(token(&a, hs256(SECRET, "alice", NOW_S + 60, claims(nullptr, iss).c_str()), &id, &why), AUTH_BAD);
    assert_int_equal(token(&a, hs256(SECRET, "alice", NOW_S + 60, claims("\"dashboard\"", iss).c_str()), &id, &why),
                     AUTH_BAD);
    assert_int_equal(token(&a, hs256(SECRET, "alice", NOW_S + 60, claims("\"dashboardsX\"", iss).c_str()), &id, &why),
                     AUTH_BAD);
    // Issuer: another, absent, not a string.
    assert_int_equal(token(&a,
                           hs256(SECRET, "alice", NOW_S + 60,
                                 claims("\"dashboards\"", "\"iss\":\"https://evil.example\"").c_str()),
                           &id, &why),
                     AUTH_BAD);
    assert_int_equal(token(&a, hs256(SECRET, "alice", NOW_S + 60, claims("\"dashboards\"", nullptr).c_str()), &id, &why),
                     AUTH_BAD);
    assert_int_equal(
        token(&a, hs256(SECRET, "alice", NOW_S + 60, claims("\"dashboards\"", "\"iss\":7").c_str()), &id, &why),
        AUTH_BAD);
    auth_free(&a);

    // Neither configured: aud and iss are not required.
    init_secret(&a, &o);
    assert_int_equal(token(&a, hs256(SECRET, "alice", NOW_S + 60, "{\"aud\":\"whatever\"}"), &id, &why), AUTH_OK);
    auth_identity_free(id);
    auth_free(&a);
}

static void test_token_subject(void **) {
    auth a;
    wsr_messaging_options o;
    init_secret(&a, &o);
    auth_identity *id;
    const char *why;
    assert_int_equal(token(&a, hs256(SECRET, nullptr, NOW_S + 60, nullptr), &id, &why), AUTH_BAD);
    assert_int_equal(token(&a, hs256(SECRET, "", NOW_S + 60, nullptr), &id, &why), AUTH_BAD);
    assert_int_equal(token(&a, hs256(SECRET, nullptr, NOW_S + 60, "{\"sub\":42}"), &id, &why), AUTH_BAD);
    assert_int_equal(token(&a, hs256(SECRET, std::string(257, 'u').c_str(), NOW_S + 60, nullptr), &id, &why), AUTH_BAD);
    assert_int_equal(token(&a, hs256(SECRET, std::string(256, 'u').c_str(), NOW_S + 60, nullptr), &id, &why), AUTH_OK);
    assert_int_equal(strlen(id->user), 256);
    auth_identity_free(id);
    auth_free(&a);
}

static void test_token_channel_claims(void **) {
    auth a;
    wsr_messaging_options o;
    init_secret(&a, &o);
    auth_identity *id;
    const char *why;
    // As strings.
    assert_int_equal(
        token(&a, hs256(SECRET, "alice", NOW_S + 60, "{\"channels\":\"agents:*\",\"publish\":\"agents:1:in\"}"), &id,
              &why),
        AUTH_OK);
    assert_int_equal(count(id->subscribe), 1);
    assert_string_equal(id->subscribe[0], "agents:*");
    assert_int_equal(count(id->publish), 1);
    assert_string_equal(id->publish[0], "agents:1:in");
    assert_true(auth_granted(id->subscribe, "agents:9:out", 12));
    assert_false(auth_granted(id->publish, "agents:2:in", 11));
    auth_identity_free(id);
    // As arrays.
    assert_int_equal(token(&a,
                           hs256(SECRET, "alice", NOW_S + 60,
                                 "{\"channels\":[\"chat:*\",\"agents:1\"],\"publish\":[\"chat:room\"]}"),
                           &id, &why),
                     AUTH_OK);
    assert_int_equal(count(id->subscribe), 2);
    assert_string_equal(id->subscribe[0], "chat:*");
    assert_string_equal(id->subscribe[1], "agents:1");
    assert_int_equal(count(id->publish), 1);
    assert_string_equal(id->publish[0], "chat:room");
    auth_identity_free(id);
    // Only one of the two; an empty array grants nothing but is there.
    assert_int_equal(token(&a, hs256(SECRET, "alice", NOW_S + 60, "{\"channels\":[]}"), &id, &why), AUTH_OK);
    assert_non_null(id->subscribe);
    assert_null(id->subscribe[0]);
    assert_null(id->publish);
    auth_identity_free(id);

    // Refused: a bad character, an empty pattern, not strings, not a list.
    const char *bad[] = {
        "{\"channels\":\"chat room\"}",         "{\"channels\":[\"ok:*\",\"bad\\\"quote\"]}",
        "{\"publish\":\"a\\u0000\"}",           "{\"publish\":[\"x\",\"\\u00e9t\\u00e9\"]}",
        "{\"channels\":\"\"}",                  "{\"channels\":[\"a\",7]}",
        "{\"publish\":{\"a\":\"b\"}}",          "{\"channels\":true}",
        "{\"channels\":[[\"nested\"]]}",        "{\"publish\":\"semi;colon\"}",
    };
    char payload[256];
    for (const char *c : bad) {
        // Claims libjwt will not encode (a NUL) are signed by hand.
        snprintf(payload, sizeof payload, "{\"sub\":\"alice\",\"exp\":%ld,%s", NOW_S + 60, c + 1);
        assert_int_equal(token(&a, hs256_raw(SECRET, payload), &id, &why), AUTH_BAD);
    }
    // The hand-made token itself is good: with good claims it passes.
    snprintf(payload, sizeof payload, "{\"sub\":\"alice\",\"exp\":%ld,\"publish\":[\"a:b\"]}", NOW_S + 60);
    assert_int_equal(token(&a, hs256_raw(SECRET, payload), &id, &why), AUTH_OK);
    assert_string_equal(id->publish[0], "a:b");
    auth_identity_free(id);

    // 64 patterns are fine; 65 are refused.
    std::string many = "{\"channels\":[";
    for (int i = 0; i < 64; i++) many += (i ? ",\"c" : "\"c") + std::to_string(i) + ":*\"";
    assert_int_equal(token(&a, hs256(SECRET, "alice", NOW_S + 60, (many + "]}").c_str()), &id, &why), AUTH_OK);
    assert_int_equal(count(id->subscribe), 64);
    assert_string_equal(id->subscribe[63], "c63:*");
    auth_identity_free(id);
    many += ",\"c64:*\"]}";
    assert_int_equal(token(&a, hs256(SECRET, "alice", NOW_S + 60, many.c_str()), &id, &why), AUTH_BAD);
    auth_free(&a);
}

// {"alg":"none"} with an empty signature, made by hand: never accepted, whatever key.
static void test_token_alg_none(void **) {
    auth a;
    wsr_messaging_options o;
    init_secret(&a, &o);
    auth_identity *id;
    const char *why;
    char payload[128];
    snprintf(payload, sizeof payload, "{\"sub\":\"alice\",\"exp\":%ld}", NOW_S + 60);
    std::string body = b64url(payload);
    const char *headers[] = {"{\"alg\":\"none\"}", "{\"alg\":\"none\",\"typ\":\"JWT\"}", "{\"alg\":\"None\"}",
                             "{\"alg\":\"NONE\"}"};
    for (const char *h : headers) {
        std::string t = b64url(h) + "." + body + ".";
        assert_int_equal(token(&a, t, &id, &why), AUTH_BAD);
        assert_int_equal(token(&a, t.substr(0, t.size() - 1), &id, &why), AUTH_BAD); // without the last dot
    }
    // The classic literal header.
    assert_int_equal(token(&a, "eyJhbGciOiJub25lIn0." + body + ".", &id, &why), AUTH_BAD);
    // An HS256 token with its signature cut off.
    std::string t = hs256(SECRET, "alice", NOW_S + 60, nullptr);
    assert_int_equal(token(&a, t.substr(0, t.rfind('.') + 1), &id, &why), AUTH_BAD);
    auth_free(&a);
}

static void test_token_too_long(void **) {
    auth a;
    wsr_messaging_options o;
    init_secret(&a, &o);
    auth_identity *id;
    const char *why;
    // A valid token of more than 8192 bytes (a long claim) is refused all the same.
    std::string pad = "{\"pad\":\"" + std::string(6500, 'p') + "\"}";
    std::string t = hs256(SECRET, "alice", NOW_S + 60, pad.c_str());
    assert_true(t.size() > 8192);
    assert_int_equal(token(&a, t, &id, &why), AUTH_BAD);
    // One just under the bound passes.
    pad = "{\"pad\":\"" + std::string(5800, 'p') + "\"}";
    t = hs256(SECRET, "alice", NOW_S + 60, pad.c_str());
    assert_true(t.size() <= 8192);
    assert_int_equal(token(&a, t, &id, &why), AUTH_OK);
    auth_identity_free(id);
    // A NUL inside the given length.
    t = hs256(SECRET, "alice", NOW_S + 60, nullptr);
    std::string withnul = t + std::string(1, '\0') + "x";
    assert_int_equal(token(&a, withnul, &id, &why), AUTH_BAD);
    auth_free(&a);
}

// --- public keys --------------------------------------------------------------------------

struct keypair {
    std::string priv, pub;
};

static std::string bio_text(BIO *b) {
    char *p;
    long n = BIO_get_mem_data(b, &p);
    return std::string(p, (size_t)n);
}

static keypair rsa_pair(void) {
    EVP_PKEY *k = EVP_RSA_gen(2048);
    assert_non_null(k);
    BIO *bp = BIO_new(BIO_s_mem()), *bq = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PrivateKey(bp, k, nullptr, nullptr, 0, nullptr, nullptr), 1);
    assert_int_equal(PEM_write_bio_PUBKEY(bq, k), 1);
    keypair kp = {bio_text(bp), bio_text(bq)};
    BIO_free(bp);
    BIO_free(bq);
    EVP_PKEY_free(k);
    return kp;
}

static std::string signed_with(jwt_alg_t alg, const std::string &key, const char *sub, long exp) {
    jwt_t *j = nullptr;
    assert_int_equal(jwt_new(&j), 0);
    assert_int_equal(jwt_add_grant(j, "sub", sub), 0);
    assert_int_equal(jwt_add_grant_int(j, "exp", exp), 0);
    assert_int_equal(jwt_add_grants_json(j, "{\"channels\":[\"agents:*\"]}"), 0);
    assert_int_equal(jwt_set_alg(j, alg, (const unsigned char *)key.data(), (int)key.size()), 0);
    char *s = jwt_encode_str(j);
    assert_non_null(s);
    std::string t = s;
    free(s);
    jwt_free(j);
    return t;
}

static void test_token_rs256_and_alg_confusion(void **) {
    keypair kp = rsa_pair(), other = rsa_pair();
    char path[256];
    temp_file(path, kp.pub.data(), kp.pub.size());
    auth a;
    wsr_messaging_options o = options();
    o.jwt_public_key = path;
    assert_int_equal(auth_init(&a, &o), WSR_OK);
    assert_true(auth_accepts_tokens(&a));
    auth_identity *id;
    const char *why;

    assert_int_equal(token(&a, signed_with(JWT_ALG_RS256, kp.priv, "agent-7", NOW_S + 60), &id, &why), AUTH_OK);
    assert_string_equal(id->user, "agent-7");
    assert_int_equal(count(id->subscribe), 1);
    assert_string_equal(id->subscribe[0], "agents:*");
    auth_identity_free(id);
    assert_int_equal(token(&a, signed_with(JWT_ALG_RS512, kp.priv, "agent-7", NOW_S + 60), &id, &why), AUTH_OK);
    auth_identity_free(id);
    assert_int_equal(token(&a, signed_with(JWT_ALG_RS256, kp.priv, "agent-7", NOW_S - 60), &id, &why), AUTH_EXPIRED);

    // Signed with another private key.
    assert_int_equal(token(&a, signed_with(JWT_ALG_RS256, other.priv, "agent-7", NOW_S + 60), &id, &why), AUTH_BAD);

    // The algorithm confusion attack: HS256 whose HMAC secret is the public key's PEM text
    // (which is public), given to an auth that has only that public key.
    std::string forged = signed_with(JWT_ALG_HS256, kp.pub, "admin", NOW_S + 60);
    jwt_t *j = nullptr; // libjwt alone takes it: the key's use must be checked by the caller
    assert_int_equal(jwt_decode(&j, forged.c_str(), (const unsigned char *)kp.pub.data(), (int)kp.pub.size()), 0);
    assert_int_equal(jwt_get_alg(j), JWT_ALG_HS256);
    jwt_free(j);
    assert_int_equal(token(&a, forged, &id, &why), AUTH_BAD);
    forged = signed_with(JWT_ALG_HS512, kp.pub, "admin", NOW_S + 60);
    assert_int_equal(token(&a, forged, &id, &why), AUTH_BAD);
    // An HS256 token with a secret is refused when no secret is configured.
    assert_int_equal(token(&a, hs256(SECRET, "alice", NOW_S + 60, nullptr), &id, &why), AUTH_BAD);
    auth_free(&a);

    // Both configured: each algorithm with its own key only.
    o.jwt_secret = SECRET;
    assert_int_equal(auth_init(&a, &o), WSR_OK);
    assert_int_equal(token(&a, hs256(SECRET, "alice", NOW_S + 60, nullptr), &id, &why), AUTH_OK);
    auth_identity_free(id);
    assert_int_equal(token(&a, signed_with(JWT_ALG_RS256, kp.priv, "agent-7", NOW_S + 60), &id, &why), AUTH_OK);
    auth_identity_free(id);
    assert_int_equal(token(&a, signed_with(JWT_ALG_HS256, kp.pub, "admin", NOW_S + 60), &id, &why), AUTH_BAD);
    // An RS256 token "signed" where the secret should be a key: not verifiable, refused.
    auth_free(&a);
    unlink(path);

    // A public key file that is not PEM, or missing.
    temp_file(path, "not a key\n", 10);
    o = options();
    o.jwt_public_key = path;
    assert_int_equal(auth_init(&a, &o), WSR_EINVAL);
    unlink(path);
    assert_int_equal(auth_init(&a, &o), WSR_EINVAL);
}

#else
// A build without JWT (no libcrypto) refuses token keys at start rather than accepting
// a configuration that would let no token in, or every token.
static void test_token_options_refused_without_jwt(void **) {
    wsr_messaging_options o = options();
    auth a;
    o.jwt_secret = SECRET;
    assert_int_equal(auth_init(&a, &o), WSR_EINVAL);
    o = options();
    o.jwt_public_key = "/nonexistent/key.pem";
    assert_int_equal(auth_init(&a, &o), WSR_EINVAL);
    o = options();
    assert_int_equal(auth_init(&a, &o), WSR_OK);
    assert_false(auth_accepts_tokens(&a));
    auth_identity *id = nullptr;
    const char *why = nullptr;
    assert_int_equal(token(&a, "e30.e30.e30", &id, &why), AUTH_BAD);
    auth_free(&a);
}
#endif

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_granted_globs),
        cmocka_unit_test(test_identity_is_a_copy),
        cmocka_unit_test(test_identity_null_and_empty_lists),
        cmocka_unit_test(test_basic_decode),
        cmocka_unit_test(test_basic_decode_padding_inside),
        cmocka_unit_test(test_env_match),
        cmocka_unit_test(test_users_file),
        cmocka_unit_test(test_unknown_user_hash_never_matches),
        cmocka_unit_test(test_users_file_refused),
        cmocka_unit_test(test_reload_keeps_the_old_users),
#if WSR_HAVE_JWT
        cmocka_unit_test(test_token_hs256),
        cmocka_unit_test(test_token_times),
        cmocka_unit_test(test_token_audience_and_issuer),
        cmocka_unit_test(test_token_subject),
        cmocka_unit_test(test_token_channel_claims),
        cmocka_unit_test(test_token_alg_none),
        cmocka_unit_test(test_token_too_long),
        cmocka_unit_test(test_token_rs256_and_alg_confusion),
#else
        cmocka_unit_test(test_token_options_refused_without_jwt),
#endif
    };
    return unit_exit(cmocka_run_group_tests(tests, nullptr, nullptr));
}
