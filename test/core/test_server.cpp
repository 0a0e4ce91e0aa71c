// In-process tests of the public API (include/wsr/wsr.h) on a real libuv loop, with
// raw client sockets on loopback driven from the same thread.
//
// What an embedding application relies on: a stale id never reaches another client,
// a broadcast frames its payload once whatever the number of receivers, the send
// result says what happened to a slow receiver, and on_close comes exactly once for
// every on_open.
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "unit.h"

#include "core/buf.h"
#include "log_capture.h"
#include "wsr/wsr.h"

struct events {
    int opened, closed, messages;
    wsr_conn_id last_open;
    uint16_t last_code;
    wsr_conn_id ids[64];
};

static void on_open(wsr_server *, wsr_conn_id id, void *user) {
    events *e = (events *)user;
    e->ids[e->opened % 64] = id;
    e->opened++;
    e->last_open = id;
}
static void on_close(wsr_server *, wsr_conn_id, uint16_t code, void *user) {
    events *e = (events *)user;
    e->closed++;
    e->last_code = code;
}
static void on_message(wsr_server *, wsr_conn_id, wsr_opcode, const uint8_t *, size_t, void *user) {
    ((events *)user)->messages++;
}
static const wsr_handlers handlers = {on_open, on_message, on_close};

struct fixture {
    uv_loop_t loop;
    wsr_server *srv;
    events ev;
    int port;
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

// Runs the loop until pred holds or 5 s pass.
template <typename P> static bool pump(fixture *f, P pred) {
    double end = now_s() + 5;
    while (!pred()) {
        if (now_s() > end) return false;
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(200);
    }
    return true;
}

static fixture *start(wsr_options *o) {
    fixture *f = (fixture *)calloc(1, sizeof *f);
    uv_loop_init(&f->loop);
    o->listen = "127.0.0.1:0";
    assert_int_equal(wsr_server_new(&f->loop, o, &f->srv), WSR_OK);
    assert_int_equal(wsr_server_route(f->srv, "/t", &handlers, &f->ev), WSR_OK);
    assert_int_equal(wsr_server_listen(f->srv), WSR_OK);
    f->port = wsr_server_port(f->srv);
    return f;
}

static void on_done(wsr_server *, uint32_t, uint32_t) {}

// Shuts down, runs the loop dry, and checks every open was matched by one close.
static void stop(fixture *f) {
    wsr_server_shutdown(f->srv, on_done);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    wsr_server_free(f->srv);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    int opened = f->ev.opened, closed = f->ev.closed;
    free(f);
    assert_int_equal(closed, opened);
}

// A TCP connection to the server that has said nothing yet.
static int connect_to(fixture *f) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)f->port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

// A connected client of the route at path that has completed the handshake;
// non-blocking afterwards.
static int client(fixture *f, const char *path = "/t") {
    int fd = connect_to(f);
    char req[256];
    int len = snprintf(req, sizeof req,
                       "GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                       path);
    assert_int_equal(write(fd, req, (size_t)len), len);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    char resp[1024];
    size_t got = 0;
    int opened = f->ev.opened;
    assert_true(pump(f, [&] {
        ssize_t n = read(fd, resp + got, sizeof resp - 1 - got);
        if (n > 0) got += (size_t)n;
        resp[got] = 0;
        return strstr(resp, "\r\n\r\n") != nullptr && f->ev.opened > opened;
    }));
    assert_memory_equal(resp, "HTTP/1.1 101", 12);
    return fd;
}

// Reads exactly n bytes, pumping the loop meanwhile.
static void read_exact(fixture *f, int fd, uint8_t *out, size_t n) {
    size_t got = 0;
    assert_true(pump(f, [&] {
        ssize_t r = read(fd, out + got, n - got);
        if (r > 0) got += (size_t)r;
        return got == n;
    }));
}

static void test_stale_id_is_rejected(void **) {
    wsr_options o;
    wsr_options_default(&o);
    fixture *f = start(&o);
    int a = client(f);
    wsr_conn_id old = f->ev.last_open;
    close(a);
    assert_true(pump(f, [&] { return f->ev.closed == 1; }));
    assert_int_equal(wsr_send(f->srv, old, WSR_TEXT, "x", 1), WSR_ENOCONN);
    int b = client(f); // takes the freed slot
    wsr_conn_id fresh = f->ev.last_open;
    assert_int_equal((uint32_t)fresh, (uint32_t)old); // same slot...
    assert_int_not_equal(fresh, old);                 // ...new generation
    assert_int_equal(wsr_send(f->srv, old, WSR_TEXT, "x", 1), WSR_ENOCONN);
    assert_int_equal(wsr_close(f->srv, old, 1000, nullptr), WSR_ENOCONN);
    assert_null(wsr_conn_user(f->srv, old));
    assert_true(wsr_send(f->srv, fresh, WSR_TEXT, "x", 1) >= 0);
    uint8_t frame[3];
    read_exact(f, b, frame, 3);
    assert_memory_equal(frame, "\x81\x01x", 3);
    close(b);
    stop(f);
}

static void test_broadcast_frames_once(void **) {
    wsr_options o;
    wsr_options_default(&o);
    fixture *f = start(&o);
    enum { N = 20, LEN = 3000 };
    int fds[N];
    for (int &fd : fds) fd = client(f);
    static uint8_t payload[LEN];
    for (int i = 0; i < LEN; i++) payload[i] = (uint8_t)i;
    uint64_t before = buf_live_count();
    wsr_msg *m = wsr_msg_new(WSR_BINARY, payload, LEN);
    assert_non_null(m);
    for (int i = 0; i < N; i++) assert_true(wsr_send_msg(f->srv, f->ev.ids[i], m) >= 0);
    // One buffer holds the frame for all twenty receivers.
    assert_int_equal(buf_live_count(), before + 1);
    wsr_msg_free(m);
    for (int fd : fds) {
        uint8_t got[4 + LEN];
        read_exact(f, fd, got, sizeof got);
        assert_memory_equal(got, "\x82\x7e\x0b\xb8", 4); // FIN|binary, 16-bit length 3000
        assert_memory_equal(got + 4, payload, LEN);
    }
    assert_true(pump(f, [&] { return buf_live_count() == before; })); // freed after the last write
    wsr_stats st;
    wsr_server_stats(f->srv, &st);
    assert_int_equal(st.broadcast_sends, N);
    for (int fd : fds) close(fd);
    stop(f);
}

// Sends to a client that never reads until the server stops admitting messages.
static int fill_until_refused(fixture *f, wsr_conn_id id) {
    static uint8_t chunk[64 * 1024];
    for (int i = 0; i < 4096; i++) {
        int r = wsr_send(f->srv, id, WSR_BINARY, chunk, sizeof chunk);
        if (r != WSR_OK && r != WSR_QUEUED) return r;
        uv_run(&f->loop, UV_RUN_NOWAIT);
    }
    return WSR_OK;
}

static void test_slow_consumer_drop(void **) {
    wsr_options o;
    wsr_options_default(&o);
    o.max_backpressure = 256 * 1024;
    o.slow_policy = WSR_SLOW_DROP;
    fixture *f = start(&o);
    int slow = client(f);
    wsr_conn_id slow_id = f->ev.last_open;
    int fast = client(f);
    wsr_conn_id fast_id = f->ev.last_open;
    assert_int_equal(fill_until_refused(f, slow_id), WSR_DROPPED);
    // The others keep receiving, and the slow one stays open.
    assert_true(wsr_send(f->srv, fast_id, WSR_TEXT, "ok", 2) >= 0);
    uint8_t frame[4];
    read_exact(f, fast, frame, 4);
    assert_memory_equal(frame, "\x81\x02ok", 4);
    wsr_stats st;
    wsr_server_stats(f->srv, &st);
    assert_true(st.slow_drops >= 1);
    assert_int_equal(st.slow_closes, 0);
    assert_int_equal(f->ev.closed, 0);
    close(slow);
    close(fast);
    stop(f);
}

static void test_slow_consumer_close(void **) {
    wsr_options o;
    wsr_options_default(&o);
    o.max_backpressure = 256 * 1024;
    o.close_timeout_ms = 200;
    fixture *f = start(&o);
    int slow = client(f);
    wsr_conn_id slow_id = f->ev.last_open;
    assert_int_equal(fill_until_refused(f, slow_id), WSR_CLOSED);
    assert_int_equal(wsr_send(f->srv, slow_id, WSR_TEXT, "x", 1), WSR_ECLOSING);
    // It never reads, so the close timeout ends it, reported with the code we sent.
    assert_true(pump(f, [&] { return f->ev.closed == 1; }));
    assert_int_equal(f->ev.last_code, 1008);
    wsr_stats st;
    wsr_server_stats(f->srv, &st);
    assert_int_equal(st.slow_closes, 1);
    assert_int_equal(st.close_timeouts, 1);
    close(slow);
    stop(f);
}

static void test_on_close_once_per_open(void **) {
    wsr_options o;
    wsr_options_default(&o);
    o.shutdown_timeout_ms = 300;
    fixture *f = start(&o);
    // Abrupt reset, clean client close, server-initiated close, and shutdown.
    int a = client(f);
    struct linger lg = {1, 0};
    setsockopt(a, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(a);
    assert_true(pump(f, [&] { return f->ev.closed == 1; }));
    assert_int_equal(f->ev.last_code, 1006);

    int b = client(f);
    static const uint8_t close_frame[] = {0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8}; // 1000, zero mask
    assert_int_equal(write(b, close_frame, sizeof close_frame), sizeof close_frame);
    assert_true(pump(f, [&] { return f->ev.closed == 2; }));
    assert_int_equal(f->ev.last_code, 1000);

    int c = client(f);
    assert_int_equal(wsr_close(f->srv, f->ev.last_open, 4000, "bye"), WSR_OK);
    assert_int_equal(wsr_close(f->srv, f->ev.last_open, 4000, "bye"), WSR_ECLOSING);
    uint8_t got[7];
    read_exact(f, c, got, 7);
    assert_memory_equal(got, "\x88\x05\x0f\xa0" "bye", 7);
    close(c);
    assert_true(pump(f, [&] { return f->ev.closed == 3; }));

    int d = client(f);
    stop(f); // shutdown cuts d, which never answers, after the shutdown timeout
    close(b);
    close(d);
}

// --- limits the application can rely on ---------------------------------------------

static void test_sends_over_max_message_are_refused(void **) {
    wsr_options o;
    wsr_options_default(&o);
    o.max_message = 1000;
    fixture *f = start(&o);
    int a = client(f);
    static uint8_t payload[1001];
    assert_int_equal(wsr_send(f->srv, f->ev.last_open, WSR_BINARY, payload, 1001), WSR_ETOOBIG);
    wsr_msg *m = wsr_msg_new(WSR_BINARY, payload, 1001);
    assert_int_equal(wsr_send_msg(f->srv, f->ev.last_open, m), WSR_ETOOBIG);
    wsr_msg_free(m);
    assert_true(wsr_send(f->srv, f->ev.last_open, WSR_BINARY, payload, 1000) >= 0);
    uint8_t got[4 + 1000];
    read_exact(f, a, got, sizeof got);
    assert_memory_equal(got, "\x82\x7e\x03\xe8", 4);
    close(a);
    stop(f);
}

// A handler's sends to the connection whose message it handles are written once the
// read is parsed; until then they still count as buffered, or flow control that asks
// wsr_conn_buffered would see nothing pending and send without end.
static size_t buffered_seen[3];
static void send_twice(wsr_server *srv, wsr_conn_id id, wsr_opcode, const uint8_t *, size_t, void *) {
    buffered_seen[0] = wsr_conn_buffered(srv, id);
    assert_int_equal(wsr_send(srv, id, WSR_TEXT, "hello", 5), WSR_OK);
    buffered_seen[1] = wsr_conn_buffered(srv, id);
    assert_int_equal(wsr_send(srv, id, WSR_TEXT, "hello", 5), WSR_OK);
    buffered_seen[2] = wsr_conn_buffered(srv, id);
}

static void test_buffered_counts_replies_in_the_making(void **) {
    wsr_options o;
    wsr_options_default(&o);
    fixture *f = start(&o);
    static const wsr_handlers twice = {on_open, send_twice, on_close};
    assert_int_equal(wsr_server_route(f->srv, "/b", &twice, &f->ev), WSR_OK);
    int fd = client(f, "/b");
    static const uint8_t frame[] = {0x81, 0x81, 0, 0, 0, 0, 'x'};
    assert_int_equal(write(fd, frame, sizeof frame), sizeof frame);
    uint8_t got[14];
    read_exact(f, fd, got, sizeof got);
    assert_memory_equal(got, "\x81\x05hello\x81\x05hello", 14);
    assert_int_equal(buffered_seen[0], 0);
    assert_int_equal(buffered_seen[1], 7);
    assert_int_equal(buffered_seen[2], 14);
    assert_int_equal(wsr_conn_buffered(f->srv, f->ev.last_open), 0); // written since
    close(fd);
    stop(f);
}

// libuv bounds its own polling; so must the server's epoll set inside it, or sockets
// that stay readable keep timers, the flush pass and the embedder's handles waiting.
static void test_one_wakeup_is_bounded(void **) {
    wsr_options o;
    wsr_options_default(&o);
    fixture *f = start(&o);
    enum { N = 600 };
    static int fds[N];
    for (int &fd : fds) fd = client(f);
    static const uint8_t frame[] = {0x81, 0x81, 0, 0, 0, 0, 'x'}; // "x", zero mask
    for (int fd : fds) assert_int_equal(write(fd, frame, sizeof frame), sizeof frame);
    // Every socket is readable now; one loop iteration serves only a bounded batch.
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_true(f->ev.messages > 0);
    assert_true(f->ev.messages < N);
    assert_true(pump(f, [&] { return f->ev.messages == N; }));
    for (int fd : fds) close(fd);
    stop(f);
}

// Accepting is bounded per wakeup too, however often the poller reports the listener
// within it: a connect flood does not hold up the connections already open.
static void test_accepts_per_wakeup_are_bounded(void **) {
    wsr_options o;
    wsr_options_default(&o);
    fixture *f = start(&o);
    enum { N = 200 };
    static int fds[N];
    for (int &fd : fds) fd = connect_to(f); // queued by the kernel, not yet accepted
    uv_run(&f->loop, UV_RUN_NOWAIT);
    uint64_t accepted = wsr_server_counter(f->srv, WSR_COUNTER_HANDSHAKES);
    assert_true(accepted > 0);
    assert_true(accepted <= 64);
    assert_true(pump(f, [&] { return wsr_server_counter(f->srv, WSR_COUNTER_HANDSHAKES) == N; }));
    for (int fd : fds) close(fd);
    stop(f);
}

// --- teardown from the loop -----------------------------------------------------------

static int done_calls;
static void count_done(wsr_server *, uint32_t, uint32_t) { done_calls++; }

static void test_shutdown_completes_from_the_loop(void **) {
    wsr_options o;
    wsr_options_default(&o);
    fixture *f = start(&o);
    // A client still in its handshake: shutting down destroys it at once, and so the
    // last connection is gone inside wsr_server_shutdown itself.
    int fd = connect_to(f);
    assert_int_equal(write(fd, "GET /t HTTP/1.1\r\n", 16), 16);
    assert_true(pump(f, [&] { return wsr_server_counter(f->srv, WSR_COUNTER_HANDSHAKES) == 1; }));
    static log_capture lc;
    log_capture_start(&lc);
    done_calls = 0;
    wsr_server_shutdown(f->srv, count_done);
    assert_int_equal(done_calls, 0); // never inside the call that asked for it
    uv_run(&f->loop, UV_RUN_DEFAULT);
    log_capture_stop();
    assert_int_equal(done_calls, 1);
    int starts, completes;
    int start_at = log_capture_find(&lc, "shutting down", &starts);
    int complete_at = log_capture_find(&lc, "shutdown complete", &completes);
    assert_int_equal(starts, 1);
    assert_int_equal(completes, 1);
    assert_true(start_at < complete_at);
    wsr_server_free(f->srv);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    close(fd);
    free(f);
}

static int app_timer_runs;

static void test_free_without_shutdown_runs_nothing_inside(void **) {
    wsr_options o;
    wsr_options_default(&o);
    fixture *f = start(&o);
    int a = client(f);
    // An application timer that is due: a nested uv_run inside wsr_server_free would
    // run it there (libuv forbids running a loop from inside itself).
    uv_timer_t t;
    uv_timer_init(&f->loop, &t);
    app_timer_runs = 0;
    uv_timer_start(&t, [](uv_timer_t *) { app_timer_runs++; }, 0, 0);
    wsr_server_free(f->srv);
    assert_int_equal(app_timer_runs, 0);
    assert_int_equal(f->ev.closed, 0); // on_close is owed, and comes from the loop
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(app_timer_runs, 1);
    assert_int_equal(f->ev.closed, 1);
    assert_int_equal(f->ev.last_code, 1006);
    uv_close((uv_handle_t *)&t, nullptr);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(uv_loop_close(&f->loop), 0); // every handle closed, the memory freed
    close(a);
    free(f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sends_over_max_message_are_refused),
        cmocka_unit_test(test_one_wakeup_is_bounded),
        cmocka_unit_test(test_buffered_counts_replies_in_the_making),
        cmocka_unit_test(test_accepts_per_wakeup_are_bounded),
        cmocka_unit_test(test_shutdown_completes_from_the_loop),
        cmocka_unit_test(test_free_without_shutdown_runs_nothing_inside),
        cmocka_unit_test(test_stale_id_is_rejected),
        cmocka_unit_test(test_broadcast_frames_once),
        cmocka_unit_test(test_slow_consumer_drop),
        cmocka_unit_test(test_slow_consumer_close),
        cmocka_unit_test(test_on_close_once_per_open),
    };
    return unit_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
