// Unit tests for the daemon's settings (src/app/config.*): the messaging layer's flags
// and WSR_* variables, and the --config INI file.
//
// What an operator relies on: every setting can be given as a flag, a variable or a
// file key, with the precedence defaults < file < environment < flags; a repeatable
// option at a higher level replaces the lower level's list; a bad value, an unknown
// key or a broken file stops the daemon with a message naming the place (FILE:LINE);
// a secret never needs to be on the command line; the example of the documentation
// (docs/wsreactor.ini) loads.
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <initializer_list>

#include "unit.h"

#include "app/config.h"

extern char **environ;

// --- running config_load --------------------------------------------------------------

static char out[16384]; // what the last load printed (stderr, or stdout for --help)

// Loads argv (NULL-terminated, without the program name) into cfg, with the stream fd
// captured into out.
static config_result load_to(config *cfg, const char *const *args, int fd) {
    char *argv[80] = {(char *)"wsreactor"};
    int argc = 1;
    for (; args && args[argc - 1]; argc++) argv[argc] = (char *)args[argc - 1];
    char path[] = "/tmp/wsr_config_out_XXXXXX";
    int tmp = mkstemp(path);
    assert_true(tmp >= 0);
    unlink(path);
    fflush(stdout);
    fflush(stderr);
    int saved = dup(fd);
    dup2(tmp, fd);
    config_result r = config_load(cfg, argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(saved, fd);
    close(saved);
    ssize_t n = pread(tmp, out, sizeof out - 1, 0);
    out[n > 0 ? n : 0] = 0;
    close(tmp);
    return r;
}

static config_result load(config *cfg, const char *const *args) { return load_to(cfg, args, 2); }

// A NULL-terminated argument list for the calls above, alive for the whole call.
struct arg_list {
    const char *v[72];
    arg_list(std::initializer_list<const char *> l) {
        size_t n = 0;
        for (const char *a : l) v[n++] = a;
        v[n] = nullptr;
    }
    operator const char *const *() const { return v; }
};
#define ARGS(...) arg_list({__VA_ARGS__})

// Loads args and expects it to succeed.
static void load_ok(config *cfg, const char *const *args) {
    config_result r = load(cfg, args);
    if (r != CONFIG_OK) fail_msg("load refused: %s", out);
}

// Loads args, expects an error whose message holds want.
static void load_fails(const char *const *args, const char *want) {
    config cfg;
    config_result r = load(&cfg, args);
    config_free(&cfg);
    if (r != CONFIG_ERROR) fail_msg("accepted %s %s", args[0], args[1] ? args[1] : "");
    if (!strstr(out, want)) fail_msg("message '%s' does not say '%s'", out, want);
    assert_non_null(strstr(out, "wsreactor: "));
    assert_null(strchr(out, '\n') == out + strlen(out) - 1 ? nullptr : strchr(out, '\n')); // one line
}

// A config file with this text; the path is in a static buffer.
static const char *write_file(const char *text) {
    static char path[64];
    snprintf(path, sizeof path, "/tmp/wsr_config_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

// No WSR_* variable of the environment the tests run in leaks into them.
static int clear_env(void **) {
    char names[64][64];
    int n = 0;
    for (char **e = environ; *e && n < 64; e++)
        if (strncmp(*e, "WSR_", 4) == 0) snprintf(names[n++], sizeof names[0], "%.*s", (int)strcspn(*e, "="), *e);
    for (int i = 0; i < n; i++) unsetenv(names[i]);
    return 0;
}

// --- flags and the environment ----------------------------------------------------------

static void test_defaults_are_the_messaging_layers(void **) {
    config cfg;
    load_ok(&cfg, nullptr);
    wsr_messaging_options want, mo;
    wsr_messaging_options_default(&want);
    config_messaging(&cfg, &mo);
    assert_int_equal(mo.size, sizeof mo);
    assert_int_equal(mo.max_channels, want.max_channels);
    assert_int_equal(mo.history_memory, want.history_memory);
    assert_int_equal(mo.defaults.history_size, want.defaults.history_size);
    assert_int_equal(mo.defaults.history_ttl_ms, want.defaults.history_ttl_ms);
    assert_int_equal(mo.rate_bytes, want.rate_bytes);
    assert_int_equal(mo.burst_handshakes, want.burst_handshakes);
    assert_true(mo.defaults.presence);
    assert_null(mo.namespaces);
    assert_int_equal(mo.nnamespaces, 0);
    assert_null(mo.jwt_secret);
    assert_int_equal(mo.max_message, cfg.opts.max_message);
    config_free(&cfg);
}

// One setting: its flag, its variable, a value, and what the field must read then.
struct setting_case {
    const char *flag, *env, *value;
    uint64_t (*get)(const wsr_messaging_options *);
    uint64_t want;
};

#define GET(f) [](const wsr_messaging_options *m) { return (uint64_t)m->f; }

static const setting_case settings[] = {
    {"--max-channels", "WSR_MAX_CHANNELS", "7", GET(max_channels), 7},
    {"--history-size", "WSR_HISTORY_SIZE", "0", GET(defaults.history_size), 0},
    {"--history-ttl", "WSR_HISTORY_TTL", "1500", GET(defaults.history_ttl_ms), 1500},
    {"--history-memory", "WSR_HISTORY_MEMORY", "3m", GET(history_memory), 3 << 20},
    {"--presence", "WSR_PRESENCE", "no", GET(defaults.presence), 0},
    {"--join-leave", "WSR_JOIN_LEAVE", "off", GET(defaults.join_leave), 0},
    {"--subscribe", "WSR_SUBSCRIBE", "granted", GET(defaults.subscribe), WSR_ALLOW_GRANTED},
    {"--publish", "WSR_PUBLISH", "backend", GET(defaults.publish), WSR_ALLOW_BACKEND},
    {"--max-strikes", "WSR_MAX_STRIKES", "3", GET(max_strikes), 3},
    {"--rate-messages", "WSR_RATE_MESSAGES", "0", GET(rate_messages), 0},
    {"--burst-messages", "WSR_BURST_MESSAGES", "11", GET(burst_messages), 11},
    {"--rate-bytes", "WSR_RATE_BYTES", "64k", GET(rate_bytes), 64 << 10},
    {"--burst-bytes", "WSR_BURST_BYTES", "1g", GET(burst_bytes), 1 << 30},
    {"--rate-publish", "WSR_RATE_PUBLISH", "12", GET(rate_publish), 12},
    {"--burst-publish", "WSR_BURST_PUBLISH", "13", GET(burst_publish), 13},
    {"--rate-handshakes", "WSR_RATE_HANDSHAKES", "14", GET(rate_handshakes), 14},
    {"--burst-handshakes", "WSR_BURST_HANDSHAKES", "15", GET(burst_handshakes), 15},
    {"--auth-required", "WSR_AUTH_REQUIRED", "yes", GET(auth_required), 1},
    {"--auth-timeout", "WSR_AUTH_TIMEOUT", "2500", GET(auth_timeout_ms), 2500},
};

static void test_every_setting_by_flag_and_by_env(void **) {
    for (const setting_case &c : settings) {
        config cfg;
        load_ok(&cfg, ARGS(c.flag, c.value));
        wsr_messaging_options mo;
        config_messaging(&cfg, &mo);
        if (c.get(&mo) != c.want) fail_msg("%s %s gave %llu", c.flag, c.value, (unsigned long long)c.get(&mo));
        config_free(&cfg);

        setenv(c.env, c.value, 1);
        load_ok(&cfg, nullptr);
        unsetenv(c.env);
        config_messaging(&cfg, &mo);
        if (c.get(&mo) != c.want) fail_msg("%s=%s gave %llu", c.env, c.value, (unsigned long long)c.get(&mo));
        config_free(&cfg);
    }
}

static void test_strings_by_flag_and_env(void **) {
    config cfg;
    load_ok(&cfg, ARGS("--users-file", "/etc/wsr/users", "--jwt-secret=s3cret", "--jwt-public-key", "/k.pem",
                       "--jwt-audience", "aud1", "--jwt-issuer", "iss1"));
    wsr_messaging_options mo;
    config_messaging(&cfg, &mo);
    assert_string_equal(mo.users_file, "/etc/wsr/users");
    assert_string_equal(mo.jwt_secret, "s3cret");
    assert_string_equal(mo.jwt_public_key, "/k.pem");
    assert_string_equal(mo.jwt_audience, "aud1");
    assert_string_equal(mo.jwt_issuer, "iss1");
    config_free(&cfg);

    setenv("WSR_JWT_SECRET", "from-env", 1);
    setenv("WSR_AUTH_USER", "alice", 1);
    setenv("WSR_AUTH_PASSWORD", "pw", 1);
    load_ok(&cfg, nullptr);
    unsetenv("WSR_JWT_SECRET");
    unsetenv("WSR_AUTH_USER");
    unsetenv("WSR_AUTH_PASSWORD");
    config_messaging(&cfg, &mo); // copies of ours: the environment may change
    assert_string_equal(mo.jwt_secret, "from-env");
    assert_string_equal(mo.auth_user, "alice");
    assert_string_equal(mo.auth_password, "pw");
    config_free(&cfg);
}

static void test_user_and_password_are_not_flags(void **) {
    load_fails(ARGS("--auth-user", "alice"), "unknown option '--auth-user'");
    load_fails(ARGS("--auth-password=pw"), "unknown option '--auth-password=pw'");
}

static void test_bad_values_refused(void **) {
    load_fails(ARGS("--max-channels", "0"), "invalid value '0' for --max-channels");
    load_fails(ARGS("--history-size", "1000001"), "for --history-size");
    load_fails(ARGS("--history-ttl", "0"), "for --history-ttl");
    load_fails(ARGS("--history-ttl", "2073600001"), "for --history-ttl");
    load_fails(ARGS("--history-memory", "-1"), "for --history-memory");
    load_fails(ARGS("--presence", "maybe"), "for --presence (yes|no)");
    load_fails(ARGS("--join-leave", ""), "for --join-leave");
    load_fails(ARGS("--subscribe", "nobody"), "for --subscribe (anyone|users|granted|backend)");
    load_fails(ARGS("--publish", "user"), "for --publish");
    load_fails(ARGS("--max-strikes", "0"), "for --max-strikes");
    load_fails(ARGS("--rate-messages", "4294967296"), "for --rate-messages");
    load_fails(ARGS("--rate-bytes", "2048g"), "for --rate-bytes");
    load_fails(ARGS("--burst-bytes", "1x"), "for --burst-bytes");
    load_fails(ARGS("--auth-required", "2"), "for --auth-required");
    load_fails(ARGS("--auth-timeout", "1.5"), "for --auth-timeout");
    load_fails(ARGS("--jwt-secret", ""), "for --jwt-secret");
    load_fails(ARGS("--users-file"), "--users-file needs a value FILE");
    setenv("WSR_RATE_PUBLISH", "many", 1);
    load_fails(nullptr, "invalid value 'many' in WSR_RATE_PUBLISH");
    unsetenv("WSR_RATE_PUBLISH");
}

static void test_env_below_flags(void **) {
    setenv("WSR_HISTORY_SIZE", "5", 1);
    setenv("WSR_SUBSCRIBE", "users", 1);
    config cfg;
    load_ok(&cfg, ARGS("--history-size", "9"));
    unsetenv("WSR_HISTORY_SIZE");
    unsetenv("WSR_SUBSCRIBE");
    assert_int_equal(cfg.msg.defaults.history_size, 9);
    assert_int_equal(cfg.msg.defaults.subscribe, WSR_ALLOW_USERS); // the env's, no flag
    config_free(&cfg);
}

static const wsr_namespace *find_ns(const wsr_messaging_options *mo, const char *name) {
    for (uint32_t i = 0; i < mo->nnamespaces; i++)
        if (strcmp(mo->namespaces[i].name, name) == 0) return &mo->namespaces[i];
    fail_msg("no namespace %s", name);
    return nullptr;
}

static void test_namespace_specs(void **) {
    config cfg;
    // The namespace comes before --history-ttl and --presence and still takes them.
    load_ok(&cfg, ARGS("--namespace", "chat:subscribe=users,publish=granted,history-size=10,join-leave=no",
                       "--namespace=feed.v2@x/y-z_", "--history-ttl", "1000", "--presence", "no",
                       "--namespace", "ops:presence=yes,history-ttl=5"));
    wsr_messaging_options mo;
    config_messaging(&cfg, &mo);
    assert_int_equal(mo.nnamespaces, 3);
    const wsr_namespace *chat = find_ns(&mo, "chat"), *feed = find_ns(&mo, "feed.v2@x/y-z_"),
                        *ops = find_ns(&mo, "ops");
    assert_int_equal(chat->subscribe, WSR_ALLOW_USERS);
    assert_int_equal(chat->publish, WSR_ALLOW_GRANTED);
    assert_int_equal(chat->history_size, 10);
    assert_int_equal(chat->history_ttl_ms, 1000);
    assert_false(chat->presence);
    assert_false(chat->join_leave);
    assert_int_equal(feed->subscribe, WSR_ALLOW_ANYONE);
    assert_int_equal(feed->history_size, 100);
    assert_int_equal(feed->history_ttl_ms, 1000);
    assert_true(feed->join_leave);
    assert_true(ops->presence);
    assert_int_equal(ops->history_ttl_ms, 5);
    config_free(&cfg);

    // The environment separates specs with ';'; a flag's list replaces it.
    setenv("WSR_NAMESPACES", "a:history-size=1;b:publish=backend,presence=no", 1);
    load_ok(&cfg, nullptr);
    config_messaging(&cfg, &mo);
    assert_int_equal(mo.nnamespaces, 2);
    assert_int_equal(find_ns(&mo, "a")->history_size, 1);
    assert_int_equal(find_ns(&mo, "b")->publish, WSR_ALLOW_BACKEND);
    config_free(&cfg);
    load_ok(&cfg, ARGS("--namespace", "c"));
    unsetenv("WSR_NAMESPACES");
    config_messaging(&cfg, &mo);
    assert_int_equal(mo.nnamespaces, 1);
    assert_string_equal(mo.namespaces[0].name, "c");
    config_free(&cfg);
}

static void test_bad_namespaces_refused(void **) {
    load_fails(ARGS("--namespace", "a b"), "only A-Z a-z 0-9");
    load_fails(ARGS("--namespace", ":history-size=1"), "1 to 64 characters");
    char name[80];
    memset(name, 'n', 65);
    name[65] = 0;
    load_fails(ARGS("--namespace", name), "1 to 64 characters");
    load_fails(ARGS("--namespace", "a", "--namespace", "a:presence=no"), "already defined");
    load_fails(ARGS("--namespace", "a:colour=red"), "keys are subscribe, publish");
    load_fails(ARGS("--namespace", "a:max-channels=3"), "keys are subscribe, publish");
    load_fails(ARGS("--namespace", "a:history-size=lots"), "history-size");
    load_fails(ARGS("--namespace", "a:subscribe"), "keys are subscribe");
    // 64 characters is a name; 32 namespaces are allowed, not 33.
    name[64] = 0;
    config cfg;
    load_ok(&cfg, ARGS("--namespace", name));
    config_free(&cfg);
    static char specs[33][8];
    const char *args[67];
    for (int i = 0; i < 33; i++) {
        snprintf(specs[i], sizeof specs[i], "n%d", i);
        args[2 * i] = "--namespace";
        args[2 * i + 1] = specs[i];
    }
    args[64] = nullptr;
    load_ok(&cfg, args);
    assert_int_equal(cfg.nnamespaces, 32);
    config_free(&cfg);
    args[64] = "--namespace";
    args[65] = specs[32];
    args[66] = nullptr;
    load_fails(args, "at most 32 namespaces");
}

static void test_help_shows_new_options_and_defaults(void **) {
    config cfg;
    assert_int_equal(load_to(&cfg, ARGS("--help"), 1), CONFIG_EXIT_OK);
    config_free(&cfg);
    const char *want[] = {"--config FILE", "WSR_CONFIG", "--max-channels N", "(default 100000)",
                          "--history-memory BYTES", "(default 64m)", "--rate-bytes BYTES", "(default 4m)",
                          "--subscribe anyone|users|granted|backend", "(default anyone)", "--namespace SPEC",
                          "WSR_NAMESPACES", "--jwt-secret SECRET", "out of ps", "(no flag) auth-user",
                          "WSR_AUTH_PASSWORD", "--presence yes|no", "(default yes)", "--auth-required yes|no",
                          "(default no)"};
    for (const char *w : want)
        if (!strstr(out, w)) fail_msg("--help does not say %s", w);
}

// --- the config file ------------------------------------------------------------------

static void test_file_keys_sections_and_repeats(void **) {
    const char *path = write_file("; a comment\n"
                                  "# another\n"
                                  "listen = 0.0.0.0:8080\n"
                                  "listen = [::1]:8081\n"
                                  "api-key = k1 ; an inline comment\n"
                                  "max-message = 64k\n"
                                  "  history-size = 7\n" // indentation means nothing
                                  "reuseport = yes\n"
                                  "\n"
                                  "[server]\n"
                                  "api-key = k2\n"
                                  "auth-user = alice\n"
                                  "auth-password = p w\n"
                                  "jwt-secret = 0123456789abcdef0123456789abcdef\n"
                                  "namespace = top:history-size=2\n"
                                  "[namespace chat]\n"
                                  "subscribe = users\n"
                                  "history-ttl = 60000\n"
                                  "[namespace  feed]\n"
                                  "presence = no\n");
    config cfg;
    load_ok(&cfg, ARGS("--config", path));
    unlink(path);
    assert_int_equal(cfg.listen.n, 2);
    assert_string_equal(cfg.listen.items[0], "0.0.0.0:8080");
    assert_string_equal(cfg.listen.items[1], "[::1]:8081");
    assert_int_equal(cfg.api_keys.n, 2);
    assert_string_equal(cfg.api_keys.items[0], "k1");
    assert_string_equal(cfg.api_keys.items[1], "k2");
    assert_int_equal(cfg.opts.max_message, 64 << 10);
    assert_true(cfg.reuseport);
    wsr_messaging_options mo;
    config_messaging(&cfg, &mo);
    assert_int_equal(mo.max_message, 64 << 10);
    assert_int_equal(mo.defaults.history_size, 7);
    assert_string_equal(mo.auth_user, "alice");
    assert_string_equal(mo.auth_password, "p w");
    assert_string_equal(mo.jwt_secret, "0123456789abcdef0123456789abcdef");
    assert_int_equal(mo.nnamespaces, 3);
    assert_int_equal(find_ns(&mo, "top")->history_size, 2);
    const wsr_namespace *chat = find_ns(&mo, "chat"), *feed = find_ns(&mo, "feed");
    assert_int_equal(chat->subscribe, WSR_ALLOW_USERS);
    assert_int_equal(chat->history_ttl_ms, 60000);
    assert_int_equal(chat->history_size, 7); // the file's channel default
    assert_false(feed->presence);
    assert_true(chat->presence);
    config_free(&cfg);
}

static void test_file_below_env_below_flags(void **) {
    const char *path = write_file("history-size = 1\n"
                                  "max-strikes = 4\n"
                                  "rate-publish = 6\n"
                                  "api-key = file1\n"
                                  "api-key = file2\n"
                                  "subprotocol = chat\n"
                                  "allowed-origin = https://a.example\n"
                                  "[namespace chat]\n"
                                  "presence = no\n");
    config cfg;
    setenv("WSR_HISTORY_SIZE", "2", 1);
    setenv("WSR_MAX_STRIKES", "5", 1);
    setenv("WSR_API_KEYS", "env1", 1);
    setenv("WSR_SUBPROTOCOLS", "v2,v3", 1);
    setenv("WSR_CONFIG", path, 1);
    load_ok(&cfg, ARGS("--history-size", "3", "--allowed-origin", "https://b.example"));
    assert_int_equal(cfg.msg.defaults.history_size, 3); // flag over env over file
    assert_int_equal(cfg.msg.max_strikes, 5);           // env over file
    assert_int_equal(cfg.msg.rate_publish, 6);          // file over default
    // Lists: each level replaces the one below.
    assert_int_equal(cfg.api_keys.n, 1);
    assert_string_equal(cfg.api_keys.items[0], "env1");
    assert_int_equal(cfg.nsubprotocols, 2);
    assert_string_equal(cfg.opts.subprotocols[0], "v2");
    assert_null(cfg.opts.subprotocols[2]);
    assert_int_equal(cfg.origins.n, 1);
    assert_string_equal(cfg.origins.items[0], "https://b.example");
    assert_int_equal(cfg.nnamespaces, 1); // kept: nothing above gave namespaces
    config_free(&cfg);

    // Flags replace the environment's list too, and the file's namespaces.
    load_ok(&cfg, ARGS("--api-key", "flag1", "--namespace", "other"));
    assert_int_equal(cfg.api_keys.n, 1);
    assert_string_equal(cfg.api_keys.items[0], "flag1");
    assert_int_equal(cfg.nnamespaces, 1);
    assert_string_equal(cfg.namespaces[0].name, "other");
    config_free(&cfg);
    unsetenv("WSR_HISTORY_SIZE");
    unsetenv("WSR_MAX_STRIKES");
    unsetenv("WSR_API_KEYS");
    unsetenv("WSR_SUBPROTOCOLS");

    // --config anywhere on the line, over WSR_CONFIG (which names a missing file here).
    setenv("WSR_CONFIG", "/nonexistent/wsr.ini", 1);
    load_ok(&cfg, ARGS("--max-strikes", "9", "--api-key", "--config", "--config", path));
    unsetenv("WSR_CONFIG");
    assert_int_equal(cfg.msg.max_strikes, 9);
    assert_int_equal(cfg.msg.rate_publish, 6);
    assert_string_equal(cfg.api_keys.items[0], "--config"); // a value, not the flag
    config_free(&cfg);
    unlink(path);
}

struct file_error_case {
    const char *text;
    const char *want; // after "FILE:"
};

static void test_file_errors_name_the_line(void **) {
    static const file_error_case cases[] = {
        {"listen = 127.0.0.1:1\n\nbogus = 1\n", ":3: unknown key 'bogus'"},
        {"max-channels = 0\n", ":1: invalid value '0' for max-channels (N)"},
        {"; c\npresence = perhaps\n", ":2: invalid value 'perhaps' for presence (yes|no)"},
        {"a = 1\nthis line has no equals sign\n", ":1: unknown key 'a'"},
        {"listen = 127.0.0.1:1\nthis line has no equals sign\nmax-strikes = 0\n",
         ":2: expected 'key = value' or '[section]'"},
        {"[server\nlisten = x\n", ":1: expected"},
        {"[nowhere]\nlisten = 127.0.0.1:1\n", ":1: unknown section [nowhere]"},
        {"[namespace a]\npresence = no\n[namespace b]\nlisten = 127.0.0.1:1\n", ":4: unknown key 'listen' in [namespace b]"},
        {"[namespace a]\npresence = no\n\n[namespace a]\npresence = yes\n", ":4: [namespace a]: that namespace is already defined"},
        {"namespace = a\n[namespace a]\npresence = yes\n", ":2: [namespace a]: that namespace is already defined"},
        {"[namespace a b]\npresence = yes\n", ":1: [namespace a b]: a namespace name has only"},
        {"[namespace a]\nhistory-size = x\n", ":2: invalid value 'x' for history-size (N)"},
        {"config = /etc/other.ini\n", ":1: 'config' cannot be given in a config file"},
        {"jwt-secret =\n", ":1: invalid value '' for jwt-secret"},
        {"namespace = a:colour=red\n", ":1: invalid value 'a:colour=red' for namespace (SPEC): a namespace's keys"},
    };
    for (const file_error_case &c : cases) {
        const char *path = write_file(c.text);
        char want[256];
        snprintf(want, sizeof want, "wsreactor: %s%s", path, c.want);
        load_fails(ARGS("--config", path), want);
        unlink(path);
    }
    // A line inih would cut in two.
    char text[400] = "listen = 127.0.0.1:1\napi-key = ";
    size_t n = strlen(text);
    memset(text + n, 'k', 250);
    strcpy(text + n + 250, "\n");
    const char *path = write_file(text);
    char want[256];
    snprintf(want, sizeof want, "%s:2: line longer than 198 characters", path);
    load_fails(ARGS("--config", path), want);
    unlink(path);
    load_fails(ARGS("--config", "/nonexistent/wsr.ini"), "wsreactor: /nonexistent/wsr.ini: cannot read it: No such file");
    load_fails(ARGS("--config=/tmp"), "wsreactor: /tmp:1: cannot read it");
}

// The example of docs/configuration.md loads as it is.
static void test_documented_example_loads(void **) {
    config cfg;
    load_ok(&cfg, ARGS("--config", WSR_SOURCE_ROOT "/docs/wsreactor.ini"));
    assert_true(cfg.nnamespaces > 0);
    assert_true(cfg.listen.n > 0);
    config_free(&cfg);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_defaults_are_the_messaging_layers, clear_env),
        cmocka_unit_test_setup(test_every_setting_by_flag_and_by_env, clear_env),
        cmocka_unit_test_setup(test_strings_by_flag_and_env, clear_env),
        cmocka_unit_test_setup(test_user_and_password_are_not_flags, clear_env),
        cmocka_unit_test_setup(test_bad_values_refused, clear_env),
        cmocka_unit_test_setup(test_env_below_flags, clear_env),
        cmocka_unit_test_setup(test_namespace_specs, clear_env),
        cmocka_unit_test_setup(test_bad_namespaces_refused, clear_env),
        cmocka_unit_test_setup(test_help_shows_new_options_and_defaults, clear_env),
        cmocka_unit_test_setup(test_file_keys_sections_and_repeats, clear_env),
        cmocka_unit_test_setup(test_file_below_env_below_flags, clear_env),
        cmocka_unit_test_setup(test_file_errors_name_the_line, clear_env),
        cmocka_unit_test_setup(test_documented_example_loads, clear_env),
    };
    return unit_exit(cmocka_run_group_tests(tests, nullptr, nullptr));
}
