// Unit tests for the server's options (src/core/options.*) and how the public API
// applies them (wsr_server_new, wsr_server_set_option in include/wsr/wsr.h).
//
// What an embedder relies on: the defaults are valid; every field with a range is
// refused just outside it and accepted at its edges, with a message naming the field;
// a subprotocol name can never carry anything but an HTTP token into the 101 response;
// a refused option leaves no server behind (or, for set_option, the server unchanged);
// options cannot change under a listening server.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <uv.h>

#include "unit.h"

#include "core/options.h"
#include "log_capture.h"
#include "wsr/wsr.h"

// --- log capture -----------------------------------------------------------------
//
// wsr_server_new and wsr_server_set_option log a refused option through one call site
// ("invalid option: %s"), which writes at most 10 lines per 5 s: the tests below that
// look for such a line cause 10 of them in all (3 + 6 + 1), so none is suppressed.
// Keep it so when adding cases (the limit is reached).

static log_capture cap;

static void capture_start(void) { log_capture_start(&cap); }
static void capture_stop(void) { log_capture_stop(); }

// True when some captured error line names the field: its name not followed by more
// of an identifier (so "deflate" is not found in "deflate_level").
static bool names_field(const char *text, const char *field) {
    size_t n = strlen(field);
    for (const char *p = strstr(text, field); p; p = strstr(p + 1, field)) {
        char next = p[n];
        bool more = (next >= 'a' && next <= 'z') || (next >= '0' && next <= '9') || next == '_';
        bool before = p > text && ((p[-1] >= 'a' && p[-1] <= 'z') || p[-1] == '_');
        if (!more && !before) return true;
    }
    return false;
}
static bool error_logged_naming(const char *field) {
    for (int i = 0; i < cap.n && i < LOG_CAPTURE_LINES; i++)
        if (cap.level[i] == WSR_LOG_ERROR && names_field(cap.msg[i], field)) return true;
    return false;
}

// --- options_check: a table of fields and edges ------------------------------------

// Sets a field as a C caller would, failing the test if the value does not fit the
// field (the table would then test something else than it says).
#define SET_U(f)                                              \
    [](wsr_options *o, uint64_t v) {                          \
        o->f = (decltype(o->f))v;                             \
        assert_true((uint64_t)o->f == v);                     \
    }
// An enum field gets the int a C caller may pass, whatever C++ thinks of its range.
#define SET_E(f)                                              \
    [](wsr_options *o, uint64_t v) {                          \
        int i = (int)v;                                       \
        static_assert(sizeof o->f == sizeof i);               \
        memcpy(&o->f, &i, sizeof i);                          \
    }

struct field_case {
    const char *field; // what `why` must name
    void (*set)(wsr_options *, uint64_t);
    uint64_t bad, good; // just outside the range, and the edge next to it
};

static const uint64_t T = WSR_MAX_TIMEOUT_MS, BIG = (uint64_t)UINT32_MAX - 64; // 2^32-65

static const field_case field_cases[] = {
    {"max_message", SET_U(max_message), 0, 1},
    {"max_message", SET_U(max_message), BIG + 1, BIG},
    {"max_header", SET_U(max_header), 0, 256},
    {"max_header", SET_U(max_header), 255, 256},
    {"max_header", SET_U(max_header), 65536, 65535},
    {"handshake_timeout_ms", SET_U(handshake_timeout_ms), T + 1, T},
    {"close_timeout_ms", SET_U(close_timeout_ms), T + 1, T},
    {"shutdown_timeout_ms", SET_U(shutdown_timeout_ms), T + 1, T},
    {"ping_interval_ms", SET_U(ping_interval_ms), T + 1, T},
    {"pong_timeout_ms", SET_U(pong_timeout_ms), T + 1, 0},
    {"pong_timeout_ms", SET_U(pong_timeout_ms), T + 1, T},
    // 3e9 fits the uint32_t field, but deadlines 3e9 ms ahead would wrap in 32-bit ms.
    {"idle_timeout_ms", SET_U(idle_timeout_ms), 3000000000u, T},
    {"idle_timeout_ms", SET_U(idle_timeout_ms), UINT32_MAX, 0},
    {"max_backpressure", SET_U(max_backpressure), 0, 1},
    {"max_backpressure", SET_U(max_backpressure), BIG + 1, BIG},
    {"deflate_window_bits", SET_U(deflate_window_bits), 7, 8},
    {"deflate_window_bits", SET_U(deflate_window_bits), 16, 15},
    {"deflate_client_window_bits", SET_U(deflate_client_window_bits), 7, 8},
    {"deflate_client_window_bits", SET_U(deflate_client_window_bits), 16, 15},
    {"deflate_mem_level", SET_U(deflate_mem_level), 0, 1},
    {"deflate_mem_level", SET_U(deflate_mem_level), 10, 9},
    {"deflate_level", SET_U(deflate_level), 0, 1},
    {"deflate_level", SET_U(deflate_level), 10, 9},
};

static void test_defaults_pass(void **) {
    wsr_options o;
    memset(&o, 0xA5, sizeof o); // wsr_options_default must set every field
    wsr_options_default(&o);
    char why[160] = "";
    assert_true(options_check(&o, why, sizeof why));
    assert_string_equal(o.listen, "127.0.0.1:8080");
    assert_null(o.subprotocols);
    // Fields without a range get their documented defaults, not leftovers.
    assert_int_equal(o.max_connections, 0);
    assert_int_equal(o.idle_timeout_ms, 0);
    assert_int_equal(o.deflate_threshold, 64);
}

static void check_cases(const field_case *cases, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const field_case &fc = cases[i];
        wsr_options o;
        wsr_options_default(&o);
        char why[160] = "";
        fc.set(&o, fc.bad);
        if (options_check(&o, why, sizeof why))
            fail_msg("%s = %llu was accepted", fc.field, (unsigned long long)fc.bad);
        if (!names_field(why, fc.field)) fail_msg("refusing %s, why says: %s", fc.field, why);

        wsr_options_default(&o);
        why[0] = 0;
        fc.set(&o, fc.good);
        if (!options_check(&o, why, sizeof why))
            fail_msg("%s = %llu was refused: %s", fc.field, (unsigned long long)fc.good, why);
    }
}

static void test_each_range_refused_outside_accepted_at_edge(void **) {
    check_cases(field_cases, sizeof field_cases / sizeof field_cases[0]);
}

// The enum fields, with the ints a C caller can pass. Last in main(): options_check
// reads them as C++ enums, and UBSan (halt_on_error in test/run_tests.py) stops the
// program at a value outside the enumerators' range, so that the other cases have been
// reported by then.
static void test_enum_fields_refused_outside(void **) {
    static const field_case enum_cases[] = {
        {"slow_policy", SET_E(slow_policy), 2, WSR_SLOW_DROP},
        {"slow_policy", SET_E(slow_policy), (uint64_t)-1, WSR_SLOW_CLOSE},
        {"deflate", SET_E(deflate), 3, WSR_DEFLATE_DEDICATED},
        {"deflate", SET_E(deflate), (uint64_t)-1, WSR_DEFLATE_SHARED},
    };
    check_cases(enum_cases, sizeof enum_cases / sizeof enum_cases[0]);
}

static void test_listen_must_not_be_empty(void **) {
    wsr_options o;
    wsr_options_default(&o);
    char why[160] = "";
    o.listen = "";
    assert_false(options_check(&o, why, sizeof why));
    assert_true(names_field(why, "listen"));
    o.listen = nullptr;
    assert_false(options_check(&o, why, sizeof why));
}

// A long, truncated why stays a terminated string inside its buffer.
static void test_why_fits_its_buffer(void **) {
    wsr_options o;
    wsr_options_default(&o);
    o.deflate_client_window_bits = 16;
    char why[12];
    memset(why, 'x', sizeof why);
    assert_false(options_check(&o, why, sizeof why));
    assert_int_equal(strlen(why), sizeof why - 1);
}

// --- subprotocols ----------------------------------------------------------------

static bool subprotocols_ok(const char *const *list, char *why, size_t cap_) {
    wsr_options o;
    wsr_options_default(&o);
    o.subprotocols = list;
    why[0] = 0;
    return options_check(&o, why, cap_);
}

static void test_subprotocol_names_are_tokens(void **) {
    char why[160];
    const char *const crlf[] = {"chat\r\nX-Injected: 1", nullptr};
    const char *const lf[] = {"chat\nX", nullptr};
    const char *const space[] = {"chat v2", nullptr};
    const char *const empty[] = {"", nullptr};
    const char *const comma[] = {"a,b", nullptr};
    const char *const high[] = {"ch\xc3\xa4t", nullptr};
    const char *const second_bad[] = {"chat", "super chat", nullptr};
    const char *const *refused[] = {crlf, lf, space, empty, comma, high, second_bad};
    for (const char *const *list : refused) {
        if (subprotocols_ok(list, why, sizeof why)) fail_msg("subprotocol list accepted: \"%s\"", list[0]);
        assert_non_null(strstr(why, "subprotocol"));
    }

    const char *const good[] = {"chat", "v2.chat+json", "x!#$%&'*+-.^_`|~9", nullptr};
    assert_true(subprotocols_ok(good, why, sizeof why));
    const char *const none[] = {nullptr};
    assert_true(subprotocols_ok(none, why, sizeof why));
}

static void test_subprotocol_name_length(void **) {
    static const char tchars[] = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    char name[WSR_MAX_SUBPROTOCOL_LEN + 2];
    // Exactly the maximum, using every token character: accepted.
    for (int i = 0; i < WSR_MAX_SUBPROTOCOL_LEN; i++) name[i] = tchars[i % (sizeof tchars - 1)];
    name[WSR_MAX_SUBPROTOCOL_LEN] = 0;
    assert_int_equal(strlen(name), 255);
    const char *const list[] = {name, nullptr};
    char why[160];
    if (!subprotocols_ok(list, why, sizeof why)) fail_msg("255-byte token refused: %s", why);
    // One byte more: refused.
    name[WSR_MAX_SUBPROTOCOL_LEN] = 'a';
    name[WSR_MAX_SUBPROTOCOL_LEN + 1] = 0;
    assert_false(subprotocols_ok(list, why, sizeof why));
    assert_non_null(strstr(why, "subprotocol"));
}

static void test_subprotocol_count(void **) {
    char names[WSR_MAX_SUBPROTOCOLS + 1][8];
    const char *list[WSR_MAX_SUBPROTOCOLS + 2];
    for (int i = 0; i <= WSR_MAX_SUBPROTOCOLS; i++) {
        snprintf(names[i], sizeof names[i], "p%d", i);
        list[i] = names[i];
    }
    char why[160];
    list[WSR_MAX_SUBPROTOCOLS] = nullptr; // exactly 32
    if (!subprotocols_ok(list, why, sizeof why)) fail_msg("32 subprotocols refused: %s", why);
    list[WSR_MAX_SUBPROTOCOLS] = names[WSR_MAX_SUBPROTOCOLS];
    list[WSR_MAX_SUBPROTOCOLS + 1] = nullptr; // 33
    assert_false(subprotocols_ok(list, why, sizeof why));
    assert_non_null(strstr(why, "subprotocols"));
}

// --- wsr_server_new --------------------------------------------------------------

// Frees a server the way the API says: free, run the loop until its handles closed
// (the memory goes then), and the loop must have nothing left.
static void server_teardown(uv_loop_t *loop, wsr_server *srv) {
    wsr_server_free(srv);
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(loop), 0);
}

static void test_server_new_refuses_bad_field(void **) {
    static const char *const crlf[] = {"chat\r\nSet-Cookie: x=1", nullptr};
    struct {
        const char *field;
        void (*set)(wsr_options *);
    } cases[] = {
        {"idle_timeout_ms", [](wsr_options *o) { o->idle_timeout_ms = 3000000000u; }},
        {"max_header", [](wsr_options *o) { o->max_header = 255; }},
        {"subprotocol", [](wsr_options *o) { o->subprotocols = crlf; }},
    };
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    for (auto &c : cases) {
        wsr_options o;
        wsr_options_default(&o);
        o.listen = "127.0.0.1:0";
        c.set(&o);
        wsr_server *srv = (wsr_server *)&loop; // not NULL: the call must clear it
        capture_start();
        int r = wsr_server_new(&loop, &o, &srv);
        capture_stop();
        assert_int_equal(r, WSR_EINVAL);
        assert_null(srv);
        if (!error_logged_naming(c.field))
            fail_msg("no error line naming %s (%d lines, first: %s)", c.field, cap.n, cap.n ? cap.msg[0] : "");
    }
    // Nothing was left on the loop by the refused servers.
    assert_int_equal(uv_run(&loop, UV_RUN_NOWAIT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_server_new_accepts_defaults_and_edges(void **) {
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    wsr_server *srv = nullptr;
    assert_int_equal(wsr_server_new(&loop, nullptr, &srv), WSR_OK); // NULL: the defaults
    assert_non_null(srv);
    server_teardown(&loop, srv);

    assert_int_equal(uv_loop_init(&loop), 0);
    wsr_options o;
    wsr_options_default(&o);
    o.listen = nullptr; // the default address
    o.idle_timeout_ms = WSR_MAX_TIMEOUT_MS;
    o.max_header = OPTIONS_MIN_HEADER;
    o.deflate = WSR_DEFLATE_DEDICATED;
    o.deflate_window_bits = 8;
    srv = nullptr;
    assert_int_equal(wsr_server_new(&loop, &o, &srv), WSR_OK);
    assert_non_null(srv);
    server_teardown(&loop, srv);
}

// --- wsr_server_set_option --------------------------------------------------------

struct server_fixture {
    uv_loop_t loop;
    wsr_server *srv;
};

static void server_start(server_fixture *f, uint64_t max_message) {
    assert_int_equal(uv_loop_init(&f->loop), 0);
    wsr_options o;
    wsr_options_default(&o);
    o.listen = "127.0.0.1:0";
    o.max_message = max_message;
    assert_int_equal(wsr_server_new(&f->loop, &o, &f->srv), WSR_OK);
}

static int set_logged(server_fixture *f, wsr_option key, uint64_t value) {
    capture_start();
    int r = wsr_server_set_option(f->srv, key, value);
    capture_stop();
    return r;
}

static void test_set_option_ranges(void **) {
    server_fixture f;
    server_start(&f, 4096);
    assert_int_equal(wsr_server_counter(f.srv, WSR_COUNTER_HANDSHAKES), 0);
    assert_int_equal(wsr_server_counter(f.srv, WSR_COUNTER_MEMORY_BYTES), 0);

    // Input may use three quarters of the budget, and a largest message must fit it:
    // at least ceil(4096 * 4 / 3) = 5462.
    assert_int_equal(set_logged(&f, WSR_OPT_MAX_MEMORY, 5461), WSR_EINVAL);
    assert_true(error_logged_naming("max_memory"));
    assert_int_equal(wsr_server_set_option(f.srv, WSR_OPT_MAX_MEMORY, 5462), WSR_OK);
    assert_int_equal(wsr_server_set_option(f.srv, WSR_OPT_MAX_MEMORY, UINT64_MAX), WSR_OK);

    assert_int_equal(set_logged(&f, WSR_OPT_SLOW_TIMEOUT_MS, (uint64_t)WSR_MAX_TIMEOUT_MS + 1), WSR_EINVAL);
    assert_true(error_logged_naming("slow_timeout_ms"));
    // 2^32 + 1000 would be 1000 ms if it were truncated to the timer's 32 bits.
    assert_int_equal(wsr_server_set_option(f.srv, WSR_OPT_SLOW_TIMEOUT_MS, (1ull << 32) + 1000), WSR_EINVAL);
    assert_int_equal(wsr_server_set_option(f.srv, WSR_OPT_SLOW_TIMEOUT_MS, WSR_MAX_TIMEOUT_MS), WSR_OK);
    assert_int_equal(wsr_server_set_option(f.srv, WSR_OPT_SLOW_TIMEOUT_MS, 0), WSR_OK);

    assert_int_equal(wsr_server_set_option(f.srv, WSR_OPT_MAX_HANDSHAKES, UINT32_MAX), WSR_OK);
    assert_int_equal(wsr_server_set_option(f.srv, WSR_OPT_MAX_HANDSHAKES, (uint64_t)UINT32_MAX + 1), WSR_EINVAL);

    // The read buffer holds at least one TLS record; a refusal keeps the buffer in use.
    assert_int_equal(set_logged(&f, WSR_OPT_READ_BUFFER, 16383), WSR_EINVAL);
    assert_true(error_logged_naming("read_buffer"));
    assert_int_equal(wsr_server_set_option(f.srv, WSR_OPT_READ_BUFFER, 16384), WSR_OK);
    assert_int_equal(wsr_server_set_option(f.srv, WSR_OPT_READ_BUFFER, 16u << 20), WSR_OK);

    // Keys an older or newer header might pass; 0 is no key.
    assert_int_equal(set_logged(&f, (wsr_option)0, 1), WSR_EINVAL);
    assert_true(error_logged_naming("unknown option"));

    server_teardown(&f.loop, f.srv);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int connect_to(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

// MAX_HANDSHAKES: 0 is refused and leaves the accepted 1 in force, which the server
// then applies: of two clients that say nothing, the second is answered 503.
static void test_set_option_max_handshakes_applies(void **) {
    server_fixture f;
    server_start(&f, 1 << 20);
    assert_int_equal(wsr_server_set_option(f.srv, WSR_OPT_MAX_HANDSHAKES, 1), WSR_OK);
    assert_int_equal(set_logged(&f, WSR_OPT_MAX_HANDSHAKES, 0), WSR_EINVAL);
    assert_true(error_logged_naming("max_handshakes"));
    assert_int_equal(wsr_server_listen(f.srv), WSR_OK);
    int port = wsr_server_port(f.srv);
    assert_true(port > 0);

    int a = connect_to(port);
    double end = now_s() + 5;
    while (wsr_server_counter(f.srv, WSR_COUNTER_HANDSHAKES) < 1 && now_s() < end) uv_run(&f.loop, UV_RUN_NOWAIT);
    assert_int_equal(wsr_server_counter(f.srv, WSR_COUNTER_HANDSHAKES), 1);
    assert_int_equal(wsr_server_counter(f.srv, WSR_COUNTER_HANDSHAKES_SHED), 0);

    int b = connect_to(port);
    while (wsr_server_counter(f.srv, WSR_COUNTER_HANDSHAKES_SHED) < 1 && now_s() < end) uv_run(&f.loop, UV_RUN_NOWAIT);
    assert_int_equal(wsr_server_counter(f.srv, WSR_COUNTER_HANDSHAKES_SHED), 1);
    assert_int_equal(wsr_server_counter(f.srv, WSR_COUNTER_HANDSHAKES), 1);
    char resp[64] = "";
    struct timeval tv = {2, 0};
    setsockopt(b, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ssize_t n = recv(b, resp, sizeof resp - 1, 0);
    assert_true(n > 12);
    assert_memory_equal(resp, "HTTP/1.1 503", 12);

    server_teardown(&f.loop, f.srv);
    close(a);
    close(b);
}

// Once listening, the options are fixed: every key, even with a valid value, is refused.
static void test_set_option_after_listen_refused(void **) {
    server_fixture f;
    server_start(&f, 1 << 20);
    assert_int_equal(wsr_server_listen(f.srv), WSR_OK);
    assert_true(wsr_server_port(f.srv) > 0);
    capture_start();
    assert_int_equal(wsr_server_set_option(f.srv, WSR_OPT_MAX_HANDSHAKES, 10), WSR_EINVAL);
    assert_int_equal(wsr_server_set_option(f.srv, WSR_OPT_MAX_MEMORY, 64ull << 20), WSR_EINVAL);
    assert_int_equal(wsr_server_set_option(f.srv, WSR_OPT_SLOW_TIMEOUT_MS, 1000), WSR_EINVAL);
    capture_stop();
    assert_int_equal(cap.n, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(cap.level[i], WSR_LOG_ERROR);
        assert_non_null(strstr(cap.msg[i], "wsr_server_listen"));
    }
    assert_int_equal(wsr_server_counter(f.srv, WSR_COUNTER_HANDSHAKES), 0);
    server_teardown(&f.loop, f.srv);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_pass),
        cmocka_unit_test(test_each_range_refused_outside_accepted_at_edge),
        cmocka_unit_test(test_listen_must_not_be_empty),
        cmocka_unit_test(test_why_fits_its_buffer),
        cmocka_unit_test(test_subprotocol_names_are_tokens),
        cmocka_unit_test(test_subprotocol_name_length),
        cmocka_unit_test(test_subprotocol_count),
        cmocka_unit_test(test_server_new_refuses_bad_field),
        cmocka_unit_test(test_server_new_accepts_defaults_and_edges),
        cmocka_unit_test(test_set_option_ranges),
        cmocka_unit_test(test_set_option_max_handshakes_applies),
        cmocka_unit_test(test_set_option_after_listen_refused),
        cmocka_unit_test(test_enum_fields_refused_outside), // last: see there
    };
    return unit_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
