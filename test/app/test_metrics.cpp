// Unit tests for the /metrics renderer (src/app/metrics.*): Prometheus text 0.0.4 from
// a real server on a libuv loop.
//
// What a scraper relies on: every line is a HELP, a TYPE or a sample; each metric has
// one HELP and one TYPE before its samples, which stay together; counters end in
// _total; every close code and handshake status bucket is there; the figures are the
// server's own; label values are escaped. test/app/test_metrics_parse.py runs the same
// text through prometheus_client's parser.
#include <arpa/inet.h>
#include <stddef.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <uv.h>

#include "unit.h"

#include "app/metrics.h"
#include "wsr/messaging.h"
#include "wsr/wsr.h"

// --- a checker for the format -----------------------------------------------------

enum { MAX_FAMILIES = 64, NAME_MAX_LEN = 128 };

struct family {
    char name[NAME_MAX_LEN];
    bool typed, counter;
    int samples;
};

struct checked {
    family fams[MAX_FAMILIES];
    int n;
    char why[256];
};

static bool name_char(char c, bool first) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' || (!first && c >= '0' && c <= '9');
}

// Reads a metric (or, without colons, label) name at *p into name; false if none.
static bool read_name(const char **p, const char *end, char *name, bool label) {
    const char *s = *p;
    while (s < end && name_char(*s, s == *p) && !(label && *s == ':')) s++;
    size_t n = (size_t)(s - *p);
    if (n == 0 || n >= NAME_MAX_LEN) return false;
    memcpy(name, *p, n);
    name[n] = 0;
    *p = s;
    return true;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

// Checks the whole text; NULL when it is valid, else why not (with the line number).
// The rules are the format's, made strict where our renderer promises more: no blank
// lines or free comments, HELP before TYPE, values finite and not negative.
static const char *check_text(const char *text, size_t len, checked *c) {
    memset(c, 0, sizeof *c);
    if (strlen(text) != len) return "a NUL inside the text";
    if (len == 0 || text[len - 1] != '\n') return "the text does not end with a newline";
    int lineno = 0;
    family *cur = nullptr;
#define BAD(msg)                                                         \
    do {                                                                 \
        snprintf(c->why, sizeof c->why, "line %d: %s", lineno, msg);     \
        return c->why;                                                   \
    } while (0)
    for (const char *line = text; line < text + len;) {
        const char *end = (const char *)memchr(line, '\n', (size_t)(text + len - line));
        const char *p = line;
        lineno++;
        char name[NAME_MAX_LEN];
        if (p == end) BAD("blank line");
        if (strncmp(p, "# HELP ", 7) == 0) {
            p += 7;
            if (!read_name(&p, end, name, false) || p == end || *p != ' ') BAD("bad HELP line");
            for (int i = 0; i < c->n; i++)
                if (strcmp(c->fams[i].name, name) == 0) BAD("a second HELP for a metric");
            if (cur && cur->samples == 0) BAD("a metric without samples");
            for (p++; p < end; p++) {
                if (*p != '\\') continue;
                if (p + 1 == end || (p[1] != '\\' && p[1] != 'n')) BAD("bad escape in HELP");
                p++;
            }
            if (c->n == MAX_FAMILIES) BAD("too many metrics for the checker");
            cur = &c->fams[c->n++];
            snprintf(cur->name, sizeof cur->name, "%s", name);
        } else if (strncmp(p, "# TYPE ", 7) == 0) {
            p += 7;
            if (!read_name(&p, end, name, false) || p == end || *p++ != ' ') BAD("bad TYPE line");
            if (!cur || strcmp(cur->name, name) != 0) BAD("TYPE without its HELP just before");
            if (cur->typed) BAD("a second TYPE for a metric");
            size_t rest = (size_t)(end - p);
            if (rest == 7 && memcmp(p, "counter", 7) == 0)
                cur->counter = true;
            else if (!(rest == 5 && memcmp(p, "gauge", 5) == 0))
                BAD("TYPE neither counter nor gauge");
            cur->typed = true;
            if (cur->counter != ends_with(name, "_total")) BAD("_total on a gauge, or a counter without it");
        } else if (*p == '#') {
            BAD("a comment that is neither HELP nor TYPE");
        } else {
            if (!read_name(&p, end, name, false)) BAD("a sample without a metric name");
            if (!cur || strcmp(cur->name, name) != 0 || !cur->typed)
                BAD("a sample not under its metric's HELP and TYPE");
            if (p < end && *p == '{') {
                for (p++;;) {
                    char label[NAME_MAX_LEN];
                    if (!read_name(&p, end, label, true) || end - p < 2 || p[0] != '=' || p[1] != '"')
                        BAD("bad label");
                    for (p += 2; p < end && *p != '"'; p++)
                        if (*p == '\\') {
                            if (p + 1 == end || (p[1] != '\\' && p[1] != 'n' && p[1] != '"')) BAD("bad escape in label");
                            p++;
                        }
                    if (p == end) BAD("unterminated label value");
                    p++;
                    if (p < end && *p == ',') {
                        p++;
                        continue;
                    }
                    if (p < end && *p == '}') break;
                    BAD("bad label list");
                }
                p++;
            }
            if (p == end || *p++ != ' ') BAD("no space before the value");
            char num[64];
            size_t n = (size_t)(end - p);
            if (n == 0 || n >= sizeof num) BAD("bad value");
            memcpy(num, p, n);
            num[n] = 0;
            char *stop;
            double v = strtod(num, &stop);
            if (*stop || !(v >= 0 && v < 1e300)) BAD("value not a finite number >= 0");
            cur->samples++;
        }
        line = end + 1;
    }
    if (cur && cur->samples == 0) BAD("a metric without samples");
#undef BAD
    return nullptr;
}

static const family *find_family(const checked *c, const char *name) {
    for (int i = 0; i < c->n; i++)
        if (strcmp(c->fams[i].name, name) == 0) return &c->fams[i];
    return nullptr;
}

// How many lines carry exactly this sample (name and labels as written); the value of
// the last in *value.
static int sample_count(const char *text, const char *key, double *value) {
    int n = 0;
    size_t k = strlen(key);
    for (const char *line = text; *line;) {
        const char *end = strchr(line, '\n');
        if (strncmp(line, key, k) == 0 && line[k] == ' ') {
            n++;
            *value = strtod(line + k + 1, nullptr);
        }
        line = end + 1;
    }
    return n;
}

static double sample_value(const char *text, const char *key) {
    double v = -1;
    int n = sample_count(text, key, &v);
    if (n != 1) fail_msg("%d samples %s (expected one)", n, key);
    return v;
}

// --- a server to render -------------------------------------------------------------

struct fixture {
    uv_loop_t loop;
    wsr_server *srv;
};

static void server_start(fixture *f) {
    assert_int_equal(uv_loop_init(&f->loop), 0);
    wsr_options o;
    wsr_options_default(&o);
    o.listen = "127.0.0.1:0";
    assert_int_equal(wsr_server_new(&f->loop, &o, &f->srv), WSR_OK);
}

static void server_teardown(fixture *f) {
    wsr_server_free(f->srv);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
}

static uint64_t now_unix_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

// --- tests ----------------------------------------------------------------------------

// Every metric, with its type: the names the documentation and dashboards use.
static const struct {
    const char *name;
    bool counter;
} expected[] = {
    {"wsreactor_connections_open", false},
    {"wsreactor_connections_accepted_total", true},
    {"wsreactor_accept_errors_total", true},
    {"wsreactor_accept_pauses_total", true},
    {"wsreactor_handshakes_in_progress", false},
    {"wsreactor_http_requests_total", true},
    {"wsreactor_handshakes_completed_total", true},
    {"wsreactor_handshakes_failed_total", true},
    {"wsreactor_upgrades_refused_total", true},
    {"wsreactor_handshakes_shed_total", true},
    {"wsreactor_closes_total", true},
    {"wsreactor_protocol_errors_total", true},
    {"wsreactor_close_timeouts_total", true},
    {"wsreactor_pings_sent_total", true},
    {"wsreactor_stale_cuts_total", true},
    {"wsreactor_idle_closes_total", true},
    {"wsreactor_slow_consumer_closes_total", true},
    {"wsreactor_slow_consumer_drops_total", true},
    {"wsreactor_messages_received_total", true},
    {"wsreactor_messages_sent_total", true},
    {"wsreactor_messages_compressed_received_total", true},
    {"wsreactor_messages_compressed_sent_total", true},
    {"wsreactor_broadcast_sends_total", true},
    {"wsreactor_broadcast_compressions_total", true},
    {"wsreactor_bytes_received_total", true},
    {"wsreactor_bytes_sent_total", true},
    {"wsreactor_tls_handshakes_total", true},
    {"wsreactor_tls_failures_total", true},
    {"wsreactor_memory_held_bytes", false},
    {"wsreactor_memory_closes_total", true},
    {"wsreactor_log_lines_suppressed_total", true},
    {"process_resident_memory_bytes", false},
    {"process_open_fds", false},
    {"process_start_time_seconds", false},
    {"wsreactor_uptime_seconds", false},
    {"wsreactor_build_info", false},
};

static void test_fresh_server_renders_every_metric(void **) {
    fixture f;
    server_start(&f);
    metrics_text out = {};
    uint64_t started = 1700000000123ull; // long before now: the uptime is large
    assert_int_equal(metrics_render(f.srv, nullptr, started, &out), 0);
    checked c;
    const char *why = check_text(out.data, out.len, &c);
    if (why) fail_msg("%s\n%s", why, out.data);

    size_t n = sizeof expected / sizeof expected[0];
    assert_int_equal(c.n, n); // without a messaging layer, none of its metrics
    assert_null(find_family(&c, "wsreactor_channels"));
    assert_null(strstr(out.data, "wsreactor_messaging_clients"));
    for (size_t i = 0; i < n; i++) {
        const family *fam = find_family(&c, expected[i].name);
        if (!fam) fail_msg("no metric %s", expected[i].name);
        assert_int_equal(fam->counter, expected[i].counter);
    }
    // One sample per bucket, labelled with the library's own label text.
    assert_int_equal(find_family(&c, "wsreactor_closes_total")->samples, WSR_CLOSE_BUCKETS);
    assert_int_equal(find_family(&c, "wsreactor_handshakes_failed_total")->samples, WSR_HS_BUCKETS);
    char key[160];
    for (int i = 0; i < WSR_CLOSE_BUCKETS; i++) {
        snprintf(key, sizeof key, "wsreactor_closes_total{code=\"%s\"}", wsr_stats_close_labels[i]);
        assert_true(sample_value(out.data, key) == 0);
    }
    for (int i = 0; i < WSR_HS_BUCKETS; i++) {
        snprintf(key, sizeof key, "wsreactor_handshakes_failed_total{status=\"%s\"}", wsr_stats_hs_labels[i]);
        assert_true(sample_value(out.data, key) == 0);
    }
    // Named here too, so that the test does not only compare the library with itself.
    assert_true(sample_value(out.data, "wsreactor_closes_total{code=\"1000\"}") == 0);
    assert_true(sample_value(out.data, "wsreactor_closes_total{code=\"1006\"}") == 0);
    assert_true(sample_value(out.data, "wsreactor_handshakes_failed_total{status=\"400\"}") == 0);
    assert_true(sample_value(out.data, "wsreactor_handshakes_failed_total{status=\"timeout\"}") == 0);

    assert_true(sample_value(out.data, "wsreactor_connections_open") == 0);
    assert_true(sample_value(out.data, "wsreactor_build_info{version=\"" WSR_VERSION "\"}") == 1);
    // Seconds with the milliseconds kept, and no locale in the decimal point.
    assert_non_null(strstr(out.data, "\nprocess_start_time_seconds 1700000000.123\n"));
    double uptime = sample_value(out.data, "wsreactor_uptime_seconds");
    double expect = (double)(now_unix_ms() - started) / 1000;
    assert_true(uptime <= expect && uptime > expect - 60);
    assert_true(sample_value(out.data, "process_resident_memory_bytes") > 1 << 20);
    assert_true(sample_value(out.data, "process_open_fds") >= 1);

    server_teardown(&f);
    free(out.data);
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

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

// After a refused handshake the figures are the server's: the connection accepted,
// the 400 in its bucket, the bytes both ways; and a start time later than now gives an
// uptime of 0, not a wrapped number.
static void test_figures_follow_the_server(void **) {
    fixture f;
    server_start(&f);
    assert_int_equal(wsr_server_listen(f.srv), WSR_OK);
    int fd = connect_to(wsr_server_port(f.srv));
    const char req[] = "NOT HTTP AT ALL\r\n\r\n";
    assert_int_equal(send(fd, req, sizeof req - 1, 0), (ssize_t)(sizeof req - 1));
    wsr_stats st;
    double end = now_s() + 5;
    do {
        uv_run(&f.loop, UV_RUN_NOWAIT);
        wsr_server_stats(f.srv, &st);
    } while ((st.handshakes_failed[0] == 0 || st.bytes_out == 0) && now_s() < end);
    assert_int_equal(st.handshakes_failed[0], 1);

    metrics_text out = {};
    assert_int_equal(metrics_render(f.srv, nullptr, now_unix_ms() + 3600 * 1000, &out), 0);
    checked c;
    const char *why = check_text(out.data, out.len, &c);
    if (why) fail_msg("%s\n%s", why, out.data);
    assert_true(sample_value(out.data, "wsreactor_handshakes_failed_total{status=\"400\"}") == 1);
    assert_true(sample_value(out.data, "wsreactor_connections_accepted_total") == (double)st.connections_total);
    assert_int_equal(st.connections_total, 1);
    assert_true(st.bytes_in >= sizeof req - 1 && st.bytes_out > 0);
    assert_true(sample_value(out.data, "wsreactor_bytes_received_total") == (double)st.bytes_in);
    assert_true(sample_value(out.data, "wsreactor_bytes_sent_total") == (double)st.bytes_out);
    assert_true(sample_value(out.data, "wsreactor_uptime_seconds") == 0);
    assert_non_null(strstr(out.data, "\nwsreactor_uptime_seconds 0.000\n"));

    close(fd);
    server_teardown(&f);
    free(out.data);
}

// The messaging layer's figures, each from its own field of wsr_messaging_stats.
static const struct {
    const char *sample; // as written, labels included
    const char *family;
    bool counter;
    size_t offset;
} messaging_expected[] = {
    {"wsreactor_messaging_clients", "wsreactor_messaging_clients", false, offsetof(wsr_messaging_stats, clients)},
    {"wsreactor_messaging_authenticated_clients", "wsreactor_messaging_authenticated_clients", false,
     offsetof(wsr_messaging_stats, authenticated)},
    {"wsreactor_channels", "wsreactor_channels", false, offsetof(wsr_messaging_stats, channels)},
    {"wsreactor_subscriptions", "wsreactor_subscriptions", false, offsetof(wsr_messaging_stats, subscriptions)},
    {"wsreactor_history_entries", "wsreactor_history_entries", false, offsetof(wsr_messaging_stats, history_entries)},
    {"wsreactor_history_bytes", "wsreactor_history_bytes", false, offsetof(wsr_messaging_stats, history_bytes)},
    {"wsreactor_publications_total", "wsreactor_publications_total", true, offsetof(wsr_messaging_stats, publications)},
    {"wsreactor_deliveries_total", "wsreactor_deliveries_total", true, offsetof(wsr_messaging_stats, deliveries)},
    {"wsreactor_direct_messages_total", "wsreactor_direct_messages_total", true,
     offsetof(wsr_messaging_stats, direct_messages)},
    {"wsreactor_bad_messages_total", "wsreactor_bad_messages_total", true, offsetof(wsr_messaging_stats, bad_messages)},
    {"wsreactor_rate_limited_total{kind=\"message\"}", "wsreactor_rate_limited_total", true,
     offsetof(wsr_messaging_stats, rate_limited)},
    {"wsreactor_rate_limited_total{kind=\"handshake\"}", "wsreactor_rate_limited_total", true,
     offsetof(wsr_messaging_stats, handshakes_limited)},
    {"wsreactor_auth_failures_total", "wsreactor_auth_failures_total", true, offsetof(wsr_messaging_stats, auth_failures)},
    {"wsreactor_forbidden_total", "wsreactor_forbidden_total", true, offsetof(wsr_messaging_stats, forbidden)},
    {"wsreactor_api_requests_total", "wsreactor_api_requests_total", true, offsetof(wsr_messaging_stats, api_requests)},
    {"wsreactor_broker_up", "wsreactor_broker_up", false, offsetof(wsr_messaging_stats, broker_up)},
    {"wsreactor_broker_reconnects_total", "wsreactor_broker_reconnects_total", true,
     offsetof(wsr_messaging_stats, broker_reconnects)},
    {"wsreactor_broker_errors_total", "wsreactor_broker_errors_total", true, offsetof(wsr_messaging_stats, broker_errors)},
};

// Distinct values in every field (101, 102, ...), so that a figure read from the wrong
// field shows.
static void distinct_stats(wsr_messaging_stats *ms) {
    memset(ms, 0, sizeof *ms);
    ms->size = sizeof *ms;
    uint64_t *v = &ms->clients;
    for (size_t i = 0; i < (sizeof *ms - offsetof(wsr_messaging_stats, clients)) / sizeof(uint64_t); i++) v[i] = 101 + i;
}

static uint64_t field(const wsr_messaging_stats *ms, size_t offset) {
    uint64_t v;
    memcpy(&v, (const char *)ms + offset, sizeof v);
    return v;
}

static void test_messaging_figures(void **) {
    fixture f;
    server_start(&f);
    wsr_messaging_stats ms;
    distinct_stats(&ms);
    assert_int_equal(ms.api_requests, 115); // every field was given its own value
    metrics_text out = {};
    assert_int_equal(metrics_render(f.srv, &ms, now_unix_ms(), &out), 0);
    checked c;
    const char *why = check_text(out.data, out.len, &c);
    if (why) fail_msg("%s\n%s", why, out.data);
    size_t n = sizeof messaging_expected / sizeof messaging_expected[0];
    // The server's and the process's metrics, and 17 more (rate_limited has two samples).
    assert_int_equal(c.n, sizeof expected / sizeof expected[0] + n - 1);
    for (size_t i = 0; i < n; i++) {
        const family *fam = find_family(&c, messaging_expected[i].family);
        if (!fam) fail_msg("no metric %s", messaging_expected[i].family);
        assert_int_equal(fam->counter, messaging_expected[i].counter);
        double v = sample_value(out.data, messaging_expected[i].sample);
        if (v != (double)field(&ms, messaging_expected[i].offset))
            fail_msg("%s is %g, not %llu", messaging_expected[i].sample, v,
                     (unsigned long long)field(&ms, messaging_expected[i].offset));
    }
    assert_int_equal(find_family(&c, "wsreactor_rate_limited_total")->samples, 2);
    // Named here too, so that the test does not only compare the table with itself.
    assert_true(sample_value(out.data, "wsreactor_messaging_clients") == 101);
    assert_true(sample_value(out.data, "wsreactor_history_bytes") == 106);
    assert_true(sample_value(out.data, "wsreactor_rate_limited_total{kind=\"message\"}") == 111);
    assert_true(sample_value(out.data, "wsreactor_rate_limited_total{kind=\"handshake\"}") == 112);
    assert_true(sample_value(out.data, "wsreactor_api_requests_total") == 115);
    assert_true(sample_value(out.data, "wsreactor_broker_errors_total") == 118);
    // The existing names are all still there, unchanged.
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++)
        if (!find_family(&c, expected[i].name)) fail_msg("no metric %s", expected[i].name);
    free(out.data);

    // A struct from an older, shorter layout: only the figures within its size.
    distinct_stats(&ms);
    ms.size = offsetof(wsr_messaging_stats, history_entries);
    out = {};
    assert_int_equal(metrics_render(f.srv, &ms, now_unix_ms(), &out), 0);
    why = check_text(out.data, out.len, &c);
    if (why) fail_msg("%s\n%s", why, out.data);
    assert_true(sample_value(out.data, "wsreactor_subscriptions") == 104);
    assert_null(find_family(&c, "wsreactor_history_entries"));
    assert_null(find_family(&c, "wsreactor_rate_limited_total"));
    assert_null(find_family(&c, "wsreactor_api_requests_total"));
    assert_int_equal(c.n, sizeof expected / sizeof expected[0] + 4);
    free(out.data);
    server_teardown(&f);
}

// The text is appended to what the buffer holds; a second rendering into the same
// buffer repeats every HELP, which the checker must refuse.
static void test_render_appends(void **) {
    fixture f;
    server_start(&f);
    metrics_text out = {};
    const char *before = "# HELP a_gauge A gauge before.\n# TYPE a_gauge gauge\na_gauge 7\n";
    out.data = strdup(before);
    assert_non_null(out.data);
    out.len = out.cap = strlen(out.data);
    assert_int_equal(metrics_render(f.srv, nullptr, now_unix_ms(), &out), 0);
    assert_memory_equal(out.data, before, strlen(before));
    checked c;
    const char *why = check_text(out.data, out.len, &c);
    if (why) fail_msg("%s", why);
    assert_non_null(find_family(&c, "a_gauge"));
    assert_non_null(find_family(&c, "wsreactor_build_info"));
    int families = c.n;

    assert_int_equal(metrics_render(f.srv, nullptr, now_unix_ms(), &out), 0);
    why = check_text(out.data, out.len, &c);
    assert_non_null(why);
    assert_non_null(strstr(why, "a second HELP"));
    assert_int_equal(c.n, families); // it stopped at the first repeated metric
    server_teardown(&f);
    free(out.data);
}

// The checker itself refuses what the format (or our stricter promise) does not allow,
// so that its silence above means something.
static void test_checker_refuses_bad_text(void **) {
    static const struct {
        const char *text, *why;
    } cases[] = {
        {"# HELP m_total x\n# TYPE m_total counter\nm_total 1", "newline"},
        {"m 1\n", "not under"},
        {"# TYPE m gauge\nm 1\n", "without its HELP"},
        {"# HELP m x\nm 1\n", "not under"},
        {"# HELP m x\n# TYPE m gauge\n# TYPE m gauge\nm 1\n", "second TYPE"},
        {"# HELP m x\n# TYPE m summary\nm 1\n", "neither counter"},
        {"# HELP m x\n# TYPE m counter\nm 1\n", "_total"},
        {"# HELP m_total x\n# TYPE m_total gauge\nm_total 1\n", "_total"},
        {"# HELP m x\n# TYPE m gauge\nm one\n", "value"},
        {"# HELP m x\n# TYPE m gauge\nm nan\n", "value"},
        {"# HELP m x\n# TYPE m gauge\nm{l=\"a\"b\"} 1\n", "label"},
        {"# HELP m x\n# TYPE m gauge\nm{l=\"a\\tb\"} 1\n", "escape in label"},
        {"# HELP m x\n# TYPE m gauge\nm{l=\"a\"\n", "label"},
        {"# HELP m x \\q\n# TYPE m gauge\nm 1\n", "escape in HELP"},
        {"# HELP m x\n# TYPE m gauge\n# HELP n y\n# TYPE n gauge\nn 1\n", "without samples"},
        {"# HELP m x\n# TYPE m gauge\nm 1\n# HELP n y\n# TYPE n gauge\nn 1\nm 2\n", "not under"},
        {"# HELP m x\n# TYPE m gauge\nm 1\n\n", "blank"},
        {"# a note\n", "neither HELP nor TYPE"},
    };
    checked c;
    for (const auto &k : cases) {
        const char *why = check_text(k.text, strlen(k.text), &c);
        if (!why) fail_msg("accepted: %s", k.text);
        if (!strstr(why, k.why)) fail_msg("for %s\nsaid %s, not %s", k.text, why, k.why);
    }
    const char good[] = "# HELP m_total x \\\\ \\n\n# TYPE m_total counter\nm_total{a=\"\\\"\",b=\"\"} 1\n";
    const char *why = check_text(good, strlen(good), &c);
    if (why) fail_msg("refused a valid text: %s", why);
}

// A label value keeps backslash, double quote and newline by escaping them.
static void test_label_value_escapes(void **) {
    metrics_text out = {};
    assert_int_equal(metrics_append_label_value(&out, "a\\b\"c\nd"), 0);
    assert_int_equal(metrics_append_label_value(&out, ""), 0);
    assert_int_equal(metrics_append_label_value(&out, "\\\\\n"), 0);
    assert_string_equal(out.data, "\"a\\\\b\\\"c\\nd\"\"\"\"\\\\\\\\\\n\"");
    assert_int_equal(out.len, strlen(out.data));
    assert_true(out.cap > out.len);
    free(out.data);
}

int main(void) {
    wsr_log_set_level(WSR_LOG_ERROR); // the refused handshake's line is expected
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checker_refuses_bad_text),
        cmocka_unit_test(test_fresh_server_renders_every_metric),
        cmocka_unit_test(test_figures_follow_the_server),
        cmocka_unit_test(test_messaging_figures),
        cmocka_unit_test(test_render_appends),
        cmocka_unit_test(test_label_value_escapes),
    };
    return unit_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
