// Unit tests for logging (src/core/log.*) and its public controls (wsr_log_set_sink,
// wsr_log_set_level in include/wsr/wsr.h).
//
// What an operator and an embedder rely on: a flood of lines from one call site is
// cut to 10 per 5 s and then summarised once, with the count, while other sites keep
// logging; a sink receives exactly the formatted message and its level; the level
// filters before anything is counted; NULL puts lines back on stderr; in the JSON
// format every line is one object whose message is escaped so that any JSON parser
// reads back exactly the message (quotes, backslashes, control characters, and bytes
// that are not UTF-8, which become U+FFFD).
//
// The rate limit is per call site, known by its format string's address, so each test
// uses literals of its own. One test sleeps past the 5 s window.
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "unit.h"

#include "core/log.h"
#include "log_capture.h"

static log_capture cap;

static int setup(void **) {
    wsr_log_set_level(WSR_LOG_INFO);
    log_capture_start(&cap);
    return 0;
}
static int teardown(void **) {
    log_capture_stop();
    wsr_log_set_level(WSR_LOG_INFO);
    return 0;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

// Two call sites, each one format literal.
static void site_a(int i) { log_info("flood from site a, line %d", i); }
static void site_b(int i) { log_warn("flood from site b, line %d", i); }
static void site_c(int i) { log_info("quiet site c, line %d", i); }

static void test_burst_then_summary(void **) {
    uint64_t total0 = log_suppressed_total();
    for (int i = 0; i < 100; i++) site_a(i);
    // The first 10 lines, as written; the other 90 only counted.
    assert_int_equal(cap.n, 10);
    for (int i = 0; i < 10; i++) {
        char want[64];
        snprintf(want, sizeof want, "flood from site a, line %d", i);
        assert_string_equal(cap.msg[i], want);
        assert_int_equal(cap.level[i], WSR_LOG_INFO);
    }
    assert_int_equal(log_suppressed_total() - total0, 90);

    // Another site in the same window is not held back by site a's flood.
    site_c(1);
    assert_int_equal(cap.n, 11);
    assert_string_equal(cap.msg[10], "quiet site c, line 1");

    // A second flooding site, summarised by its own next line rather than the flush.
    for (int i = 0; i < 15; i++) site_b(i);
    assert_int_equal(cap.n, 21);
    assert_int_equal(log_suppressed_total() - total0, 95);

    // Within the window nothing is summarised yet, but summaries are pending.
    assert_true(log_flush_suppressed());
    assert_int_equal(cap.n, 21);

    sleep_ms(5200); // past LOG_WINDOW_MS (5000), with room for the coarse clock

    // Site b's next line first writes its summary, at its level, then the line itself.
    site_b(100);
    assert_int_equal(cap.n, 23);
    assert_int_equal(cap.level[21], WSR_LOG_WARN);
    assert_non_null(strstr(cap.msg[21], "5 similar lines suppressed"));
    assert_string_equal(cap.msg[22], "flood from site b, line 100");
    assert_int_equal(cap.level[22], WSR_LOG_WARN);

    // The flush writes site a's summary: exactly one line, at site a's level, naming the
    // site by its format; nothing remains pending.
    assert_false(log_flush_suppressed());
    assert_int_equal(cap.n, 24);
    assert_int_equal(cap.level[23], WSR_LOG_INFO);
    assert_non_null(strstr(cap.msg[23], "90 similar lines suppressed"));
    assert_non_null(strstr(cap.msg[23], "flood from site a, line %d"));
    assert_false(log_flush_suppressed());
    assert_int_equal(cap.n, 24);
    assert_int_equal(log_suppressed_total() - total0, 95); // summaries count nothing new

    // Site a writes again, in a new window with a new burst of 10.
    for (int i = 200; i < 212; i++) site_a(i);
    assert_int_equal(cap.n, 34);
    assert_string_equal(cap.msg[24], "flood from site a, line 200");
    assert_string_equal(cap.msg[33], "flood from site a, line 209");
    assert_int_equal(log_suppressed_total() - total0, 97);
}

static void test_sink_gets_message_and_level(void **) {
    log_warn("conn %llu: %s (%d)", 42ull, "bad frame", -7);
    log_error("cannot listen on %s: %s", "[::1]:80", "Permission denied");
    log_info("%s", "100% plain");
    assert_int_equal(cap.n, 3);
    assert_string_equal(cap.msg[0], "conn 42: bad frame (-7)"); // no timestamp, no newline
    assert_int_equal(cap.level[0], WSR_LOG_WARN);
    assert_string_equal(cap.msg[1], "cannot listen on [::1]:80: Permission denied");
    assert_int_equal(cap.level[1], WSR_LOG_ERROR);
    assert_string_equal(cap.msg[2], "100% plain");
    assert_int_equal(cap.level[2], WSR_LOG_INFO);

    // A message longer than the line buffer arrives cut, still terminated.
    static char big[3000];
    memset(big, 'x', sizeof big - 1);
    log_info("long: %s", big);
    assert_int_equal(cap.n, 4);
    size_t len = strnlen(cap.msg[3], sizeof cap.msg[3]);
    assert_true(len >= 512 && len < sizeof big);
    assert_memory_equal(cap.msg[3], "long: xxxx", 10);
}

static void filtered_site(int i) { log_info("filtered site, line %d", i); }

static void test_level_filters_before_counting(void **) {
    uint64_t total0 = log_suppressed_total();
    wsr_log_set_level(WSR_LOG_WARN);
    for (int i = 0; i < 20; i++) filtered_site(i);
    log_debug("debug at warn level %d", 1);
    assert_int_equal(cap.n, 0);
    assert_int_equal(log_suppressed_total(), total0); // filtered is not suppressed

    log_warn("warn at warn level %d", 2);
    log_error("error at warn level %d", 3);
    assert_int_equal(cap.n, 2);
    assert_string_equal(cap.msg[0], "warn at warn level 2");
    assert_string_equal(cap.msg[1], "error at warn level 3");

    wsr_log_set_level(WSR_LOG_ERROR);
    log_warn("warn at error level %d", 4);
    assert_int_equal(cap.n, 2);

    // The 20 filtered calls used none of the site's burst: all 10 now arrive.
    wsr_log_set_level(WSR_LOG_INFO);
    for (int i = 0; i < 10; i++) filtered_site(i);
    assert_int_equal(cap.n, 12);
    assert_string_equal(cap.msg[11], "filtered site, line 9");
    assert_int_equal(log_suppressed_total(), total0);

    log_debug("debug at info level %d", 5);
    assert_int_equal(cap.n, 12);
    wsr_log_set_level(WSR_LOG_DEBUG);
    log_debug("debug at debug level %d", 6);
    assert_int_equal(cap.n, 13);
    assert_string_equal(cap.msg[12], "debug at debug level 6");
    assert_int_equal(cap.level[12], WSR_LOG_DEBUG);
}

static void test_null_sink_restores_stderr(void **) {
    log_info("to the sink %d", 1);
    assert_int_equal(cap.n, 1);
    wsr_log_set_sink(nullptr, nullptr);

    // Catch stderr in a file for the one line, then put it back before asserting.
    char path[] = "/tmp/wsr_test_log_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    log_info("to stderr %d", 2);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);

    char line[256] = "";
    ssize_t n = pread(fd, line, sizeof line - 1, 0);
    close(fd);
    assert_int_equal(cap.n, 1); // the old sink no longer receives lines
    assert_true(n > 0);
    line[n] = 0;
    // "2026-11-23T04:30:00.123Z info  to stderr 2\n": a UTC timestamp, the level, one line.
    assert_true(n > 24);
    assert_true(line[4] == '-' && line[10] == 'T' && line[19] == '.' && line[23] == 'Z');
    assert_string_equal(line + 24, " info  to stderr 2\n");
}

// What a line written to stderr by f looks like.
template <typename F> static size_t stderr_of(F f, char *line, size_t cap) {
    char path[] = "/tmp/wsr_test_log_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    f();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    ssize_t n = pread(fd, line, cap - 1, 0);
    close(fd);
    assert_true(n > 0);
    line[n] = 0;
    return (size_t)n;
}

static void test_json_escape(void **) {
    char out[256];
    struct {
        const char *in;
        size_t len;
        const char *want;
    } cases[] = {
#define CASE(in, want) {in, sizeof(in) - 1, want}
        CASE("plain text", "plain text"),
        CASE("a \"quote\" and a \\ backslash", "a \\\"quote\\\" and a \\\\ backslash"),
        CASE("nl\n cr\r tab\t bs\b ff\f", "nl\\n cr\\r tab\\t bs\\b ff\\f"),
        CASE("\x01\x1f\x0b\x7f", "\\u0001\\u001f\\u000b\x7f"),
        CASE("nul\0in", "nul\\u0000in"),
        CASE("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
        // not UTF-8: a stray continuation, a lone lead, an overlong '/', a surrogate, a
        // sequence cut by the end of the message
        CASE("a\x80" "b\xc3" "c\xc0\xaf" "d\xed\xa0\x80" "e\xe2\x82",
             "a\xef\xbf\xbd" "b\xef\xbf\xbd" "c\xef\xbf\xbd\xef\xbf\xbd" "d\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
             "e\xef\xbf\xbd\xef\xbf\xbd"),
#undef CASE
    };
    for (auto &c : cases) {
        size_t n = log_json_escape(out, sizeof out, c.in, c.len);
        assert_int_equal(n, strlen(c.want));
        assert_string_equal(out, c.want);
    }
    // A full buffer cuts between escapes and characters, never inside one.
    assert_int_equal(log_json_escape(out, 4, "ab\"c", 4), 2);
    assert_string_equal(out, "ab");
    assert_int_equal(log_json_escape(out, 5, "a\xe2\x82\xac", 4), 4);
    assert_int_equal(log_json_escape(out, 4, "a\xe2\x82\xac", 4), 1);
    assert_int_equal(log_json_escape(out, 6, "\x01", 1), 0);
    assert_int_equal(log_json_escape(out, 7, "\x01", 1), 6);
    assert_int_equal(log_json_escape(out, 0, "x", 1), 0);
}

static void test_json_lines(void **) {
    wsr_log_set_sink(nullptr, nullptr);
    wsr_log_set_format(WSR_LOG_JSON);
    char line[512];
    size_t n = stderr_of([] { log_warn("path \"%s\" from %s\tbad\\%c", "/a?b", "[::1]:80", '\n'); }, line, sizeof line);
    wsr_log_set_format(WSR_LOG_TEXT);
    // {"ts":"2026-11-23T04:30:00.123Z","level":"warn","msg":"..."}\n
    assert_int_equal(line[n - 1], '\n');
    assert_null(memchr(line, '\n', n - 1)); // one line
    assert_memory_equal(line, "{\"ts\":\"", 7);
    const char *ts = line + 7;
    assert_true(ts[4] == '-' && ts[10] == 'T' && ts[19] == '.' && ts[23] == 'Z' && ts[24] == '"');
    assert_string_equal(ts + 25, ",\"level\":\"warn\",\"msg\":\"path \\\"/a?b\\\" from [::1]:80\\tbad\\\\\\n\"}\n");
}

static void json_summary_site(int i) { log_info("json flood, line %d", i); }

// The rate limit's summary is a line like the others.
static void test_json_summary(void **) {
    wsr_log_set_sink(nullptr, nullptr);
    wsr_log_set_format(WSR_LOG_JSON);
    char line[4096];
    size_t n = stderr_of(
        [] {
            for (int i = 0; i < 12; i++) json_summary_site(i);
        },
        line, sizeof line);
    assert_true(n > 0);
    sleep_ms(5100);
    n = stderr_of([] { log_flush_suppressed(); }, line, sizeof line);
    wsr_log_set_format(WSR_LOG_TEXT);
    assert_memory_equal(line, "{\"ts\":\"", 7);
    assert_non_null(strstr(line, "\"level\":\"info\",\"msg\":\"2 similar lines suppressed in 5 s (\\\"json flood, line %d\\\")\"}\n"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_burst_then_summary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sink_gets_message_and_level, setup, teardown),
        cmocka_unit_test_setup_teardown(test_level_filters_before_counting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_null_sink_restores_stderr, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_escape, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_summary, setup, teardown),
    };
    return unit_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
