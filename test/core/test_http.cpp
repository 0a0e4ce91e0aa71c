// In-process tests of the application-facing request API (include/wsr/wsr.h): the
// upgrade hook and its answers (now, later, never), plain HTTP routes, several
// listeners, drain, pings, per-connection facts and the older registration calls.
//
// Each test runs a real server on a libuv loop and talks to it with raw sockets on
// loopback from the same thread. What is asserted is what an embedding application
// depends on: the bytes on the wire, HTTP statuses, and which callbacks run, how often,
// and never one inside another.
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "unit.h"

#include "wsr/wsr.h"

// --- what the callbacks saw -------------------------------------------------------------

struct record {
    int upgrades, opens, closes, messages, drains, pongs, http_calls;
    int depth;                    // > 0 while one of our callbacks runs
    int nested;                   // callbacks that began while another was running
    int shutdowns;                // wsr_server_shutdown calls made by the test
    int in_shutdown, in_accept;   // set around calls that must not run callbacks inside them
    int done_calls, done_inside;  // shutdown's done callback; how often inside the call
    int open_inside;              // on_open ran inside wsr_upgrade_accept
    wsr_conn_id open_id, pending; // the last on_open; a request kept for a later answer
    void *open_user;              // wsr_conn_user as on_open saw it
    char open_subproto[64];       // wsr_conn_subprotocol as on_open saw it, "(null)" for none
    uint16_t close_code;
    uint8_t msg[256];
    size_t msg_len;
    uint8_t pong[256];
    size_t pong_len;
    char trace[512]; // an ordered trace, for the tests about order
};
static record R;

// Counts a callback, and notes one that begins inside another: the library promises
// that none of its callbacks runs inside a call the application made from a callback.
struct in_callback {
    in_callback() {
        if (R.depth++) R.nested++;
    }
    ~in_callback() { R.depth--; }
};

static void trace(const char *what) {
    size_t n = strlen(R.trace);
    snprintf(R.trace + n, sizeof R.trace - n, "%s;", what);
}

// The reentrancy tests: one callback (the source) makes one call (the action), once.
enum source { FROM_NONE, FROM_UPGRADE, FROM_OPEN, FROM_MESSAGE, FROM_DRAIN, FROM_PONG, FROM_HTTP };
enum action { DO_CLOSE, DO_SEND, DO_SHUTDOWN };
static struct {
    source src;
    action act;
    int fired;
    int rc;
} RE;

static void rec_done(wsr_server *, uint32_t, uint32_t) {
    in_callback g;
    R.done_calls++;
    if (R.in_shutdown) R.done_inside++;
}

static void shutdown_now(wsr_server *srv) {
    R.shutdowns++;
    R.in_shutdown++;
    wsr_server_shutdown(srv, rec_done);
    R.in_shutdown--;
}

static void reenter(wsr_server *srv, source from, wsr_conn_id id) {
    if (RE.src != from || RE.fired) return;
    RE.fired = 1;
    switch (RE.act) {
    case DO_CLOSE: RE.rc = wsr_close(srv, id, 1000, "bye"); break;
    case DO_SEND: RE.rc = wsr_send(srv, id, WSR_TEXT, "hi", 2); break;
    case DO_SHUTDOWN: shutdown_now(srv); break;
    }
}

static void reset(void) {
    memset(&R, 0, sizeof R);
    memset(&RE, 0, sizeof RE);
}

static void rec_open(wsr_server *srv, wsr_conn_id id, void *) {
    in_callback g;
    R.opens++;
    R.open_id = id;
    R.open_user = wsr_conn_user(srv, id);
    if (R.in_accept) R.open_inside++;
    const char *sp = wsr_conn_subprotocol(srv, id);
    snprintf(R.open_subproto, sizeof R.open_subproto, "%s", sp ? sp : "(null)");
    reenter(srv, FROM_OPEN, id);
}

static void rec_message(wsr_server *srv, wsr_conn_id id, wsr_opcode, const uint8_t *data, size_t len, void *) {
    in_callback g;
    R.messages++;
    R.msg_len = len < sizeof R.msg ? len : sizeof R.msg;
    memcpy(R.msg, data, R.msg_len);
    reenter(srv, FROM_MESSAGE, id);
}

static void rec_close(wsr_server *, wsr_conn_id, uint16_t code, void *) {
    in_callback g;
    R.closes++;
    R.close_code = code;
}

static void rec_drain(wsr_server *srv, wsr_conn_id id, void *) {
    in_callback g;
    R.drains++;
    reenter(srv, FROM_DRAIN, id);
}

static void rec_pong(wsr_server *srv, wsr_conn_id id, const uint8_t *data, size_t len, void *) {
    in_callback g;
    R.pongs++;
    R.pong_len = len < sizeof R.pong ? len : sizeof R.pong;
    memcpy(R.pong, data, R.pong_len);
    reenter(srv, FROM_PONG, id);
}

typedef void (*hook_fn)(wsr_server *, wsr_request *, void *);

// An endpoint whose every callback records; hook answers upgrades (NULL: the server does).
static wsr_endpoint endpoint(hook_fn hook) {
    return {.size = sizeof(wsr_endpoint), .on_upgrade = hook, .on_open = rec_open, .on_message = rec_message,
            .on_close = rec_close, .on_drain = rec_drain, .on_pong = rec_pong};
}

// --- the server under test ----------------------------------------------------------------

struct fixture {
    uv_loop_t loop;
    wsr_server *srv;
    int port;
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

// Runs the loop until pred holds or secs pass.
template <typename P> static bool pump(fixture *f, P pred, double secs = 5) {
    double end = now_s() + secs;
    while (!pred()) {
        if (now_s() > end) return false;
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(200);
    }
    return true;
}

// Runs the loop for a while: the time in which something must not happen.
static void run_for(fixture *f, double secs) {
    pump(f, [] { return false; }, secs);
}

// A server with the endpoint at "/ws" (when ep is given), not listening yet: routes and
// options come first.
static fixture *fx_new(wsr_options *o, const wsr_endpoint *ep) {
    fixture *f = (fixture *)calloc(1, sizeof *f);
    uv_loop_init(&f->loop);
    o->listen = "127.0.0.1:0";
    assert_int_equal(wsr_server_new(&f->loop, o, &f->srv), WSR_OK);
    if (ep) assert_int_equal(wsr_server_endpoint(f->srv, "/ws", ep, nullptr), WSR_OK);
    return f;
}

static void fx_listen(fixture *f) {
    assert_int_equal(wsr_server_listen(f->srv), WSR_OK);
    f->port = wsr_server_port(f->srv);
    assert_true(f->port > 0);
}

static fixture *fx_start(wsr_options *o, const wsr_endpoint *ep) {
    fixture *f = fx_new(o, ep);
    fx_listen(f);
    return f;
}

// Shuts down (unless the test did), runs the loop dry and checks what every test owes:
// done ran once and from the loop, on_close once per on_open, no callback in another.
static void fx_stop(fixture *f) {
    if (!R.shutdowns) shutdown_now(f->srv);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    wsr_server_free(f->srv);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
    assert_int_equal(R.done_calls, 1);
    assert_int_equal(R.done_inside, 0);
    assert_int_equal(R.closes, R.opens);
    assert_int_equal(R.nested, 0);
}

// Where every test begins: what the callbacks saw is forgotten, and the default options
// are returned for the test to change before it starts its server.
static wsr_options begin_test(void) {
    reset();
    wsr_options o;
    wsr_options_default(&o);
    return o;
}

// A listening server whose "/ws" endpoint records every callback; hook answers upgrades.
static fixture *fx_start_ws(wsr_options *o, hook_fn hook) {
    wsr_endpoint ep = endpoint(hook);
    return fx_start(o, &ep);
}

// A listening server with no endpoint and one GET route.
static fixture *fx_start_route(wsr_options *o, const char *path, wsr_http_fn route, void *user) {
    fixture *f = fx_new(o, nullptr);
    assert_int_equal(wsr_server_http(f->srv, path, WSR_HTTP_GET, route, user), WSR_OK);
    fx_listen(f);
    return f;
}

// Registers the recording endpoint (hook: none) at "/ws" as an application compiled
// against a shorter wsr_endpoint passes it: a copy allocated to exactly size bytes, so
// that AddressSanitizer sees any read past it.
static int endpoint_of_size(fixture *f, size_t size) {
    wsr_endpoint full = endpoint(nullptr); // on_drain and on_pong set: past size they must not run
    wsr_endpoint *cut = (wsr_endpoint *)malloc(size);
    memcpy(cut, &full, size);
    cut->size = size;
    int rc = wsr_server_endpoint(f->srv, "/ws", cut, nullptr);
    free(cut); // the server keeps its own copy
    return rc;
}

// --- a raw client -------------------------------------------------------------------------

struct client {
    int fd;
    bool eof;
    size_t len;     // bytes received and not yet taken
    uint64_t total; // bytes received in all
    uint8_t buf[1 << 18];
};

static client *dial(int port) {
    client *c = (client *)calloc(1, sizeof *c);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(c->fd, (struct sockaddr *)&a, sizeof a), 0);
    fcntl(c->fd, F_SETFL, O_NONBLOCK);
    return c;
}

static int local_port(const client *c) {
    struct sockaddr_in a = {};
    socklen_t len = sizeof a;
    getsockname(c->fd, (struct sockaddr *)&a, &len);
    return ntohs(a.sin_port);
}

static void hangup(client *c) {
    if (c->fd >= 0) close(c->fd);
    free(c);
}

// Reads what the socket has, as far as the buffer takes it.
static void client_read(client *c) {
    while (!c->eof && c->len < sizeof c->buf) {
        ssize_t n = read(c->fd, c->buf + c->len, sizeof c->buf - c->len);
        if (n > 0) {
            c->len += (size_t)n;
            c->total += (uint64_t)n;
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            c->eof = true;
        } else {
            return;
        }
    }
}

static void take(client *c, size_t n) {
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

static void send_bytes(client *c, const void *p, size_t n) {
    assert_int_equal(write(c->fd, p, n), (ssize_t)n); // small writes: the kernel takes them whole
}

static void send_text(client *c, const char *s) { send_bytes(c, s, strlen(s)); }

// Runs the loop, reading c, until pred holds.
template <typename P> static bool await(fixture *f, client *c, P pred, double secs = 5) {
    return pump(
        f,
        [&] {
            client_read(c);
            return pred();
        },
        secs);
}

// --- HTTP on the client side ----------------------------------------------------------------

static const char KEY_LINES[] = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";
// RFC 6455 §1.3: the accept value for that key.
static const char ACCEPT_LINE[] = "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n";

static void send_upgrade(client *c, const char *target, const char *extra = "") {
    char req[2048];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n%s%s\r\n",
                     target, KEY_LINES, extra);
    send_bytes(c, req, (size_t)n);
}

struct response {
    int status;
    char head[4096]; // NUL-terminated, through the blank line
    char body[4096]; // NUL-terminated
    size_t body_len;
};

// Takes one whole response from the front of c's buffer: a body of Content-Length
// bytes, none for a HEAD request's answer (head_only) or without the header (a 101).
static bool take_response(client *c, response *r, bool head_only) {
    uint8_t *end = (uint8_t *)memmem(c->buf, c->len, "\r\n\r\n", 4);
    if (!end) return false;
    size_t hl = (size_t)(end + 4 - c->buf);
    assert_true(hl < sizeof r->head);
    memcpy(r->head, c->buf, hl);
    r->head[hl] = 0;
    const char *cl = strstr(r->head, "\r\nContent-Length: ");
    size_t bl = cl && !head_only ? strtoul(cl + 18, nullptr, 10) : 0;
    assert_true(bl < sizeof r->body);
    if (c->len < hl + bl) return false;
    memcpy(r->body, c->buf + hl, bl);
    r->body[bl] = 0;
    r->body_len = bl;
    r->status = atoi(r->head + 9);
    take(c, hl + bl);
    return true;
}

static bool read_response(fixture *f, client *c, response *r, bool head_only = false) {
    return await(f, c, [&] { return take_response(c, r, head_only); });
}

// Removes the Date line (its value changes every second) from a head, so that the rest
// can be compared byte for byte; false when there was none.
static bool strip_date(char *head) {
    char *d = strstr(head, "\r\nDate: ");
    if (!d) return false;
    char *end = strstr(d + 2, "\r\n");
    if (!end || !strstr(d, " GMT\r\n") || strstr(d, " GMT\r\n") != end - 4) return false;
    memmove(d, end, strlen(end) + 1);
    return true;
}

// --- WebSocket on the client side -------------------------------------------------------------

// A client frame: masked (RFC 6455 §5.3) with a key that changes the bytes.
static void send_frame(client *c, uint8_t first, const void *data, size_t len) {
    assert_true(len <= 1000);
    uint8_t f[14 + 1000];
    size_t n = 0;
    f[n++] = first;
    if (len < 126) {
        f[n++] = (uint8_t)(0x80 | len);
    } else {
        f[n++] = 0x80 | 126;
        f[n++] = (uint8_t)(len >> 8);
        f[n++] = (uint8_t)len;
    }
    static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    memcpy(f + n, key, 4);
    n += 4;
    for (size_t i = 0; i < len; i++) f[n + i] = ((const uint8_t *)data)[i] ^ key[i % 4];
    send_bytes(c, f, n + len);
}

struct frame {
    uint8_t first; // FIN, RSV and opcode
    size_t len;
    uint8_t data[256]; // the first 256 bytes of the payload
};

// Takes one whole server frame (unmasked) from the front of c's buffer.
static bool take_frame(client *c, frame *fr) {
    if (c->len < 2) return false;
    assert_int_equal(c->buf[1] & 0x80, 0); // servers never mask
    size_t hl = 2;
    uint64_t len = c->buf[1] & 0x7f;
    if (len == 126) {
        if (c->len < 4) return false;
        len = (uint64_t)c->buf[2] << 8 | c->buf[3];
        hl = 4;
    } else if (len == 127) {
        if (c->len < 10) return false;
        len = 0;
        for (int i = 0; i < 8; i++) len = len << 8 | c->buf[2 + i];
        hl = 10;
    }
    assert_true(hl + len <= sizeof c->buf);
    if (c->len < hl + len) return false;
    fr->first = c->buf[0];
    fr->len = (size_t)len;
    memcpy(fr->data, c->buf + hl, len < sizeof fr->data ? len : sizeof fr->data);
    take(c, hl + (size_t)len);
    return true;
}

// What a client that reads every frame has seen.
struct seen {
    int data_frames;
    uint64_t data_bytes;
    int his;        // text frames "hi"
    int close_code; // -1 until a close frame came
};

// Reads and takes every whole frame the socket has (the buffer is emptied as it goes,
// so a client that scans keeps the server's socket draining).
static void scan(client *c, seen *s) {
    for (;;) {
        client_read(c);
        frame fr;
        bool took = false;
        while (take_frame(c, &fr)) {
            took = true;
            uint8_t op = fr.first & 0x0f;
            if (op == 0x1 || op == 0x2) {
                s->data_frames++;
                s->data_bytes += fr.len;
                if (op == 0x1 && fr.len == 2 && memcmp(fr.data, "hi", 2) == 0) s->his++;
            } else if (op == 0x8) {
                s->close_code = fr.len >= 2 ? fr.data[0] << 8 | fr.data[1] : 1005;
            }
        }
        if (!took) return;
    }
}

static seen no_frames(void) { return seen{0, 0, 0, -1}; }

// A client that has sent an upgrade request for /ws (nothing read yet).
static client *dial_upgrade(fixture *f, const char *extra = "") {
    client *c = dial(f->port);
    send_upgrade(c, "/ws", extra);
    return c;
}

// A client whose upgrade request the hook has seen (and, with defer_hook, kept).
static client *dial_held_upgrade(fixture *f) {
    int upgrades = R.upgrades;
    client *c = dial_upgrade(f);
    assert_true(pump(f, [&] { return R.upgrades == upgrades + 1; }));
    return c;
}

// Reads the next whole response into *r and checks its status.
static void expect_status(fixture *f, client *c, response *r, int status, bool head_only = false) {
    assert_true(read_response(f, c, r, head_only));
    assert_int_equal(r->status, status);
}

// Runs the loop until the server has closed the connection.
static void await_eof(fixture *f, client *c) {
    assert_true(await(f, c, [&] { return c->eof; }));
}

// Everything c holds, as a string without its Date line (which must be there).
static void received_without_date(client *c, char *got, size_t cap) {
    assert_true(c->len < cap);
    memcpy(got, c->buf, c->len);
    got[c->len] = 0;
    assert_true(strip_date(got));
}

// Runs the loop, reading and taking every frame c gets (into *s), until pred holds.
template <typename P> static bool scan_until(fixture *f, client *c, seen *s, P pred) {
    return await(f, c, [&] {
        scan(c, s);
        return pred();
    });
}

// A client whose upgrade to /ws completed: the 101 taken (into *out), on_open run.
static client *open_client(fixture *f, const char *extra = "", response *out = nullptr) {
    int opens = R.opens;
    client *c = dial_upgrade(f, extra);
    response r;
    expect_status(f, c, &r, 101);
    assert_true(pump(f, [&] { return R.opens > opens; }));
    if (out) *out = r;
    return c;
}

// Sends 8 KiB messages to a client that does not read, running the loop between them,
// until the server says WSR_QUEUED: the socket is full and bytes wait in the out-queue.
static void fill_until_queued(fixture *f, wsr_conn_id id) {
    static uint8_t chunk[8192];
    for (int i = 0; i < 100000; i++) {
        if (RE.fired) return; // a reentrancy test's action ran (from on_drain): it decides now
        int r = wsr_send(f->srv, id, WSR_BINARY, chunk, sizeof chunk);
        assert_true(r == WSR_OK || r == WSR_QUEUED);
        if (r == WSR_QUEUED) return;
        uv_run(&f->loop, UV_RUN_NOWAIT);
    }
    fail_msg("the socket never filled");
}

// Fills until the socket stays full: while the kernel still moves queued bytes on its
// own (into the peer's receive buffer), on_drain rightly comes without the peer
// reading, so the test fills again until a pause brings no drain.
static void saturate(fixture *f, wsr_conn_id id) {
    for (int round = 0; round < 50; round++) {
        int drains = R.drains;
        fill_until_queued(f, id);
        run_for(f, 0.1);
        if (R.drains == drains) return;
    }
    fail_msg("the socket never stayed full");
}

// --- 1. what the upgrade hook sees -----------------------------------------------------------

static struct {
    char method[16], path[64], query[64], auth[64], cookie[64], origin[64], proto[64], address[64];
    int missing; // wsr_request_header for an absent name
    char headers[1024]; // header_at: "name=value\n" in order
    size_t nheaders;
    int past_last; // header_at one past the last
    size_t address_len;
    wsr_str body;
} SEEN;

static void copy_str(char *out, size_t cap, wsr_str s) { snprintf(out, cap, "%.*s", (int)s.len, s.ptr); }

static void copy_header(const wsr_request *req, const char *name, char *out, size_t cap) {
    wsr_str v;
    if (wsr_request_header(req, name, &v))
        copy_str(out, cap, v);
    else
        snprintf(out, cap, "(absent)");
}

static void inspect_hook(wsr_server *srv, wsr_request *req, void *) {
    in_callback g;
    R.upgrades++;
    // The views die with the callback: everything is copied out here.
    copy_str(SEEN.method, sizeof SEEN.method, wsr_request_method(req));
    copy_str(SEEN.path, sizeof SEEN.path, wsr_request_path(req));
    copy_str(SEEN.query, sizeof SEEN.query, wsr_request_query(req));
    copy_header(req, "Authorization", SEEN.auth, sizeof SEEN.auth);
    copy_header(req, "Cookie", SEEN.cookie, sizeof SEEN.cookie);
    copy_header(req, "ORIGIN", SEEN.origin, sizeof SEEN.origin);
    copy_header(req, "sec-websocket-protocol", SEEN.proto, sizeof SEEN.proto);
    wsr_str v;
    SEEN.missing = wsr_request_header(req, "X-Absent", &v);
    wsr_str n;
    size_t i = 0;
    while (wsr_request_header_at(req, i, &n, &v)) {
        size_t len = strlen(SEEN.headers);
        snprintf(SEEN.headers + len, sizeof SEEN.headers - len, "%.*s=%.*s\n", (int)n.len, n.ptr, (int)v.len, v.ptr);
        i++;
    }
    SEEN.nheaders = i;
    SEEN.past_last = wsr_request_header_at(req, i + 1, &n, &v);
    SEEN.address_len = wsr_request_address(req, SEEN.address, sizeof SEEN.address);
    SEEN.body = wsr_request_body(req);
    assert_int_equal(wsr_upgrade_accept(srv, wsr_request_id(req), nullptr, nullptr), WSR_OK);
}

static void test_hook_sees_the_request(void **) {
    wsr_options o = begin_test();
    memset(&SEEN, 0, sizeof SEEN);
    fixture *f = fx_start_ws(&o, inspect_hook);
    client *c = dial(f->port);
    static const char req[] = "GET /ws?room=7&x=%20y HTTP/1.1\r\n"
                              "Host: localhost\r\n"
                              "Upgrade: websocket\r\n"
                              "Connection: Upgrade\r\n"
                              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                              "Sec-WebSocket-Version: 13\r\n"
                              "authorization: Bearer t0k3n\r\n"
                              "COOKIE:   session=abc; theme=dark\r\n"
                              "Origin: https://app.example.com\r\n"
                              "Sec-WebSocket-Protocol: chat, superchat\r\n"
                              "\r\n";
    send_text(c, req);
    response r;
    expect_status(f, c, &r, 101);
    assert_int_equal(R.upgrades, 1);
    assert_string_equal(SEEN.method, "GET");
    assert_string_equal(SEEN.path, "/ws");
    assert_string_equal(SEEN.query, "room=7&x=%20y");
    // By name, whatever the case on either side; values trimmed.
    assert_string_equal(SEEN.auth, "Bearer t0k3n");
    assert_string_equal(SEEN.cookie, "session=abc; theme=dark");
    assert_string_equal(SEEN.origin, "https://app.example.com");
    assert_string_equal(SEEN.proto, "chat, superchat");
    assert_int_equal(SEEN.missing, 0);
    // In arrival order, names as sent.
    assert_string_equal(SEEN.headers, "Host=localhost\n"
                                      "Upgrade=websocket\n"
                                      "Connection=Upgrade\n"
                                      "Sec-WebSocket-Key=dGhlIHNhbXBsZSBub25jZQ==\n"
                                      "Sec-WebSocket-Version=13\n"
                                      "authorization=Bearer t0k3n\n"
                                      "COOKIE=session=abc; theme=dark\n"
                                      "Origin=https://app.example.com\n"
                                      "Sec-WebSocket-Protocol=chat, superchat\n");
    assert_int_equal(SEEN.nheaders, 9);
    assert_int_equal(SEEN.past_last, 0);
    char want[64];
    snprintf(want, sizeof want, "127.0.0.1:%d", local_port(c));
    assert_string_equal(SEEN.address, want);
    assert_int_equal(SEEN.address_len, strlen(want));
    assert_int_equal(SEEN.body.len, 0); // upgrades have no body
    // The same address once open.
    char addr[64];
    assert_int_equal(wsr_conn_address(f->srv, R.open_id, addr, sizeof addr), strlen(want));
    assert_string_equal(addr, want);
    hangup(c);
    fx_stop(f);
}

// --- 2. accepting in the hook: user pointer and subprotocol ----------------------------------------

static int USER_TOKEN;
static const char *CHOOSE; // the subprotocol the hook picks
static int CHOOSE_RC;

static void choose_hook(wsr_server *srv, wsr_request *req, void *) {
    in_callback g;
    R.upgrades++;
    wsr_conn_id id = wsr_request_id(req);
    CHOOSE_RC = wsr_upgrade_accept(srv, id, &USER_TOKEN, CHOOSE);
    // Refused (not offered): the request is still unanswered, so accept without one.
    if (CHOOSE_RC == WSR_EINVAL) assert_int_equal(wsr_upgrade_accept(srv, id, &USER_TOKEN, nullptr), WSR_OK);
}

static void test_accept_with_user_and_subprotocol(void **) {
    wsr_options o = begin_test();
    fixture *f = fx_start_ws(&o, choose_hook);

    CHOOSE = "superchat"; // offered, and not the first
    response r;
    client *a = open_client(f, "Sec-WebSocket-Protocol: chat, superchat\r\n", &r);
    assert_int_equal(CHOOSE_RC, WSR_OK);
    assert_ptr_equal(R.open_user, &USER_TOKEN);
    assert_string_equal(R.open_subproto, "superchat");
    assert_non_null(strstr(r.head, "\r\nSec-WebSocket-Protocol: superchat\r\n"));
    assert_non_null(strstr(r.head, ACCEPT_LINE));
    assert_string_equal(wsr_conn_subprotocol(f->srv, R.open_id), "superchat");
    assert_ptr_equal(wsr_conn_user(f->srv, R.open_id), &USER_TOKEN);

    CHOOSE = "mqtt"; // not offered
    client *b = open_client(f, "Sec-WebSocket-Protocol: chat, superchat\r\n", &r);
    assert_int_equal(CHOOSE_RC, WSR_EINVAL);
    assert_null(strstr(r.head, "Sec-WebSocket-Protocol"));
    assert_string_equal(R.open_subproto, "(null)");
    assert_null(wsr_conn_subprotocol(f->srv, R.open_id));

    hangup(a);
    hangup(b);
    fx_stop(f);
}

// --- 3. refusing in the hook -------------------------------------------------------------------

struct refusal {
    uint16_t status;
    const char *line;    // the status line expected
    const char *headers; // the application's extra lines
    const char *body;
};
static const refusal REFUSALS[] = {
    {400, "HTTP/1.1 400 Bad Request\r\n", nullptr, "missing room\n"},
    {401, "HTTP/1.1 401 Unauthorized\r\n", "WWW-Authenticate: Bearer realm=\"x\"\r\n", "token required"},
    {403, "HTTP/1.1 403 Forbidden\r\n", "X-Reason: banned\r\n", "no"},
    {429, "HTTP/1.1 429 Too Many Requests\r\n", "Retry-After: 30\r\nX-Limit: 10\r\n", "slow down"},
    {503, "HTTP/1.1 503 Service Unavailable\r\n", "Retry-After: 5\r\n", ""},
};
static const refusal *REFUSE;
static struct {
    int s101, s200, s299, s600, no_crlf, no_colon, content_length, connection, transfer, answer, again, accept;
} RF;

static void refuse_hook(wsr_server *srv, wsr_request *req, void *) {
    in_callback g;
    R.upgrades++;
    wsr_conn_id id = wsr_request_id(req);
    // Invalid answers first: each must leave the request unanswered.
    RF.s101 = wsr_respond(srv, id, 101, nullptr, nullptr, 0);
    RF.s200 = wsr_respond(srv, id, 200, nullptr, "x", 1);
    RF.s299 = wsr_respond(srv, id, 299, nullptr, nullptr, 0);
    RF.s600 = wsr_respond(srv, id, 600, nullptr, nullptr, 0);
    RF.no_crlf = wsr_respond(srv, id, 401, "WWW-Authenticate: Bearer", nullptr, 0);
    RF.no_colon = wsr_respond(srv, id, 401, "WWW-Authenticate Bearer\r\n", nullptr, 0);
    RF.content_length = wsr_respond(srv, id, 401, "Content-Length: 3\r\n", "abc", 3);
    RF.connection = wsr_respond(srv, id, 401, "connection: keep-alive\r\n", nullptr, 0);
    RF.transfer = wsr_respond(srv, id, 401, "Transfer-Encoding: chunked\r\n", nullptr, 0);
    RF.answer = wsr_respond(srv, id, REFUSE->status, REFUSE->headers, REFUSE->body, strlen(REFUSE->body));
    RF.again = wsr_respond(srv, id, 403, nullptr, nullptr, 0);
    RF.accept = wsr_upgrade_accept(srv, id, nullptr, nullptr);
}

static void test_refuse_in_hook(void **) {
    wsr_options o = begin_test();
    fixture *f = fx_start_ws(&o, refuse_hook);
    for (const refusal &rf : REFUSALS) {
        print_message("refusing with %u\n", rf.status);
        REFUSE = &rf;
        memset(&RF, 0, sizeof RF);
        client *c = dial_upgrade(f);
        // The whole answer, then the end of the connection.
        await_eof(f, c);
        assert_int_equal(RF.s101, WSR_EINVAL);
        assert_int_equal(RF.s200, WSR_EINVAL);
        assert_int_equal(RF.s299, WSR_EINVAL);
        assert_int_equal(RF.s600, WSR_EINVAL);
        assert_int_equal(RF.no_crlf, WSR_EINVAL);
        assert_int_equal(RF.no_colon, WSR_EINVAL);
        assert_int_equal(RF.content_length, WSR_EINVAL);
        assert_int_equal(RF.connection, WSR_EINVAL);
        assert_int_equal(RF.transfer, WSR_EINVAL);
        assert_int_equal(RF.answer, WSR_OK);
        assert_int_equal(RF.again, WSR_ESTATE);
        assert_int_equal(RF.accept, WSR_ESTATE);
        // Byte for byte, but for the Date line.
        char got[4096];
        received_without_date(c, got, sizeof got);
        char want[4096];
        snprintf(want, sizeof want, "%sContent-Length: %zu\r\nConnection: close\r\n%s\r\n%s", rf.line, strlen(rf.body),
                 rf.headers ? rf.headers : "", rf.body);
        assert_string_equal(got, want);
        hangup(c);
    }
    assert_int_equal(R.upgrades, 5);
    assert_int_equal(R.opens, 0);
    assert_int_equal(R.closes, 0);
    // Every refusal is counted; as a failed handshake too where its status has a
    // bucket (429 has none: it is not a malformed request).
    wsr_stats st;
    wsr_server_stats(f->srv, &st);
    assert_int_equal(st.handshakes_ok, 0);
    uint64_t failed = 0;
    for (uint64_t n : st.handshakes_failed) failed += n;
    assert_int_equal(failed, 4);
    assert_int_equal(st.handshakes_failed[0], 1); // 400
    assert_int_equal(wsr_server_counter(f->srv, WSR_COUNTER_UPGRADES_REFUSED), 5);
    assert_int_equal(st.handshakes_failed[1], 1); // 401
    assert_int_equal(st.handshakes_failed[2], 1); // 403
    assert_int_equal(st.handshakes_failed[7], 1); // 503
    fx_stop(f);
}

// --- 4. answering later ---------------------------------------------------------------------

static void defer_hook(wsr_server *, wsr_request *req, void *) {
    in_callback g;
    R.upgrades++;
    R.pending = wsr_request_id(req);
}

static int LATER_RC;

static void accept_later(uv_timer_t *t) {
    in_callback g;
    fixture *f = (fixture *)t->data;
    R.in_accept = 1;
    LATER_RC = wsr_upgrade_accept(f->srv, R.pending, &USER_TOKEN, nullptr);
    R.in_accept = 0;
    trace("accepted");
}

static void test_accept_later(void **) {
    wsr_options o = begin_test();
    fixture *f = fx_start_ws(&o, defer_hook);
    client *c = dial_held_upgrade(f);
    assert_int_not_equal(R.pending, 0);
    // Undecided: nothing goes to the client, however long the loop runs.
    run_for(f, 0.2);
    client_read(c);
    assert_int_equal(c->total, 0);
    assert_false(c->eof);
    assert_int_equal(R.opens, 0);

    uv_timer_t t;
    uv_timer_init(&f->loop, &t);
    t.data = f;
    LATER_RC = -100;
    uv_timer_start(&t, accept_later, 10, 0);
    response r;
    expect_status(f, c, &r, 101);
    assert_int_equal(LATER_RC, WSR_OK);
    assert_non_null(strstr(r.head, ACCEPT_LINE));
    assert_true(pump(f, [] { return R.opens == 1; }));
    assert_int_equal(R.open_inside, 0); // from the loop, not inside wsr_upgrade_accept
    assert_ptr_equal(R.open_user, &USER_TOKEN);
    assert_int_equal(R.open_id, R.pending); // the request's id became the connection's
    // A second answer finds the request answered.
    assert_int_equal(wsr_upgrade_accept(f->srv, R.pending, nullptr, nullptr), WSR_ESTATE);
    assert_int_equal(wsr_respond(f->srv, R.pending, 401, nullptr, nullptr, 0), WSR_ESTATE);

    // Both ways.
    send_frame(c, 0x81, "hello", 5);
    assert_true(pump(f, [] { return R.messages == 1; }));
    assert_memory_equal(R.msg, "hello", 5);
    assert_int_equal(R.msg_len, 5);
    assert_true(wsr_send(f->srv, R.open_id, WSR_TEXT, "world", 5) >= 0);
    frame fr;
    assert_true(await(f, c, [&] { return take_frame(c, &fr); }));
    assert_int_equal(fr.first, 0x81);
    assert_int_equal(fr.len, 5);
    assert_memory_equal(fr.data, "world", 5);

    uv_close((uv_handle_t *)&t, nullptr);
    hangup(c);
    fx_stop(f);
}

static int WORK_RC = -100;

static void test_refuse_later_from_work(void **) {
    wsr_options o = begin_test();
    fixture *f = fx_start_ws(&o, defer_hook);
    client *c = dial_held_upgrade(f);
    run_for(f, 0.1);
    client_read(c);
    assert_int_equal(c->total, 0);

    // The decision is made on the thread pool (an auth lookup, say); the answer is given
    // in the after-work callback, on the loop's thread.
    uv_work_t w;
    w.data = f;
    WORK_RC = -100;
    assert_int_equal(uv_queue_work(
                         &f->loop, &w, [](uv_work_t *) { usleep(20000); },
                         [](uv_work_t *wk, int) {
                             in_callback g;
                             fixture *fx = (fixture *)wk->data;
                             WORK_RC = wsr_respond(fx->srv, R.pending, 401, "WWW-Authenticate: Bearer realm=\"x\"\r\n",
                                                   "who are you", 11);
                         }),
                     0);
    await_eof(f, c);
    assert_int_equal(WORK_RC, WSR_OK);
    char got[1024];
    received_without_date(c, got, sizeof got);
    assert_string_equal(got, "HTTP/1.1 401 Unauthorized\r\nContent-Length: 11\r\nConnection: close\r\n"
                             "WWW-Authenticate: Bearer realm=\"x\"\r\n\r\nwho are you");
    assert_int_equal(R.opens, 0);
    assert_int_equal(wsr_respond(f->srv, R.pending, 401, nullptr, nullptr, 0) < 0, 1);
    hangup(c);
    fx_stop(f);
}

// --- 5 and 6. the client leaves, or the application never answers ---------------------------------

static void test_accept_after_client_left(void **) {
    wsr_options o = begin_test();
    fixture *f = fx_start_ws(&o, defer_hook);
    client *c = dial_held_upgrade(f);
    assert_int_equal(wsr_server_counter(f->srv, WSR_COUNTER_HANDSHAKES), 1);
    hangup(c);
    // The server notices while the request waits (it watches the socket for the hangup).
    assert_true(pump(f, [&] { return wsr_server_counter(f->srv, WSR_COUNTER_HANDSHAKES) == 0; }));
    assert_int_equal(wsr_upgrade_accept(f->srv, R.pending, &USER_TOKEN, nullptr), WSR_ENOCONN);
    assert_int_equal(wsr_respond(f->srv, R.pending, 401, nullptr, nullptr, 0), WSR_ENOCONN);
    run_for(f, 0.05);
    assert_int_equal(R.opens, 0);
    fx_stop(f); // LeakSanitizer checks the kept request's memory went with it
}

// Begins a test on a server whose hook keeps every upgrade request and never answers:
// the handshake timeout (200 ms) answers 503 in its place.
static fixture *fx_start_never_answering(void) {
    wsr_options o = begin_test();
    o.handshake_timeout_ms = 200;
    return fx_start_ws(&o, defer_hook);
}

static void test_handshake_timeout_answers_503(void **) {
    fixture *f = fx_start_never_answering();
    client *c = dial_held_upgrade(f);
    response r;
    expect_status(f, c, &r, 503);
    assert_memory_equal(r.head, "HTTP/1.1 503 Service Unavailable\r\n", 34);
    assert_non_null(strstr(r.head, "\r\nRetry-After: 1\r\n"));
    await_eof(f, c);
    assert_int_equal(c->len, 0); // nothing after the answer
    assert_int_equal(R.opens, 0);
    // The header: "WSR_ENOCONN: the client left, or the handshake timeout answered for you".
    assert_int_equal(wsr_upgrade_accept(f->srv, R.pending, nullptr, nullptr), WSR_ENOCONN);
    hangup(c);
    fx_stop(f);
}

// --- 7. reentrancy --------------------------------------------------------------------------

static void re_hook(wsr_server *srv, wsr_request *req, void *) {
    in_callback g;
    R.upgrades++;
    reenter(srv, FROM_UPGRADE, wsr_request_id(req));
    wsr_upgrade_accept(srv, wsr_request_id(req), nullptr, nullptr); // may find it gone
}

static void re_route(wsr_server *srv, wsr_request *req, void *) {
    in_callback g;
    R.http_calls++;
    reenter(srv, FROM_HTTP, wsr_request_id(req));
    wsr_respond(srv, wsr_request_id(req), 200, nullptr, "ok", 2); // may find it gone
}

template <source S, action A> static void test_reentry(void **) {
    wsr_options o = begin_test();
    RE.src = S;
    RE.act = A;
    RE.rc = -100;
    o.max_backpressure = 64 * 1024;
    o.shutdown_timeout_ms = 1000;
    o.close_timeout_ms = 1000;
    wsr_endpoint ep = endpoint(re_hook);
    fixture *f = fx_new(&o, &ep);
    assert_int_equal(wsr_server_http(f->srv, "/h", WSR_HTTP_GET, re_route, nullptr), WSR_OK);
    fx_listen(f);
    seen s = no_frames();
    bool ws = S != FROM_UPGRADE && S != FROM_HTTP; // the source runs on an open connection
    client *c;
    if (ws) {
        c = open_client(f);
        if (S == FROM_MESSAGE) send_frame(c, 0x81, "m", 1);
        if (S == FROM_PONG) send_frame(c, 0x8a, "p", 1);
        if (S == FROM_DRAIN) fill_until_queued(f, R.open_id);
        assert_true(scan_until(f, c, &s, [&] { return RE.fired == 1; }));
    } else {
        c = dial(f->port);
        if (S == FROM_HTTP)
            send_text(c, "GET /h HTTP/1.1\r\nHost: x\r\n\r\n");
        else
            send_upgrade(c, "/ws");
        assert_true(pump(f, [] { return RE.fired == 1; }));
    }

    // What the call did, as the client sees it.
    if (ws) {
        int want_code = A == DO_CLOSE ? 1000 : A == DO_SHUTDOWN ? 1001 : -1;
        if (A == DO_CLOSE) assert_int_equal(RE.rc, WSR_OK);
        if (A == DO_SEND) assert_true(RE.rc >= 0);
        assert_true(scan_until(f, c, &s, [&] { return A == DO_SEND ? s.his == 1 : s.close_code == want_code; }));
    } else if (A == DO_SEND) {
        assert_int_equal(RE.rc, WSR_ESTATE); // no WebSocket yet: nothing to send on
        response r;
        expect_status(f, c, &r, S == FROM_HTTP ? 200 : 101);
        if (S == FROM_UPGRADE) assert_true(pump(f, [] { return R.opens == 1; }));
    } else {
        // Closed (or shut down) before it was answered: the connection ends unanswered.
        await_eof(f, c);
        assert_int_equal(c->total, 0);
        assert_int_equal(R.opens, 0);
    }
    hangup(c);
    fx_stop(f);
}

// --- 8. drain ------------------------------------------------------------------------------

static void test_drain(void **) {
    wsr_options o = begin_test();
    o.max_backpressure = 64 * 1024;
    wsr_endpoint ep = endpoint(nullptr);
    fixture *f = fx_new(&o, &ep);
    // 0 .. max_backpressure.
    assert_int_equal(wsr_server_set_option(f->srv, WSR_OPT_DRAIN_BYTES, o.max_backpressure + 1), WSR_EINVAL);
    assert_int_equal(wsr_server_set_option(f->srv, WSR_OPT_DRAIN_BYTES, UINT64_MAX), WSR_EINVAL);
    assert_int_equal(wsr_server_set_option(f->srv, WSR_OPT_DRAIN_BYTES, o.max_backpressure), WSR_OK);
    assert_int_equal(wsr_server_set_option(f->srv, WSR_OPT_DRAIN_BYTES, 0), WSR_OK);
    assert_int_equal(wsr_server_set_option(f->srv, WSR_OPT_DRAIN_BYTES, 16 * 1024), WSR_OK);
    fx_listen(f);
    client *c = open_client(f);
    wsr_conn_id id = R.open_id;
    seen s = no_frames();
    uint64_t sent = 0;
    for (int round = 1; round <= 2; round++) {
        print_message("round %d\n", round);
        saturate(f, id);
        int drains = R.drains;
        // Blocked, and no drain while the client does not read.
        run_for(f, 0.3);
        assert_int_equal(R.drains, drains);
        assert_true(wsr_conn_buffered(f->srv, id) > 0);
        // The client reads everything: one drain, and nothing left queued.
        assert_true(scan_until(f, c, &s, [&] { return wsr_conn_buffered(f->srv, id) == 0 && R.drains > drains; }));
        run_for(f, 0.1);
        scan(c, &s);
        assert_int_equal(R.drains, drains + 1);
        assert_int_equal(wsr_conn_buffered(f->srv, id), 0);
        // A send that is not queued owes no drain, though its bytes wait for this
        // iteration's flush.
        assert_int_equal(wsr_send(f->srv, id, WSR_BINARY, "abc", 3), WSR_OK);
        run_for(f, 0.1);
        scan(c, &s);
        assert_int_equal(R.drains, drains + 1);
    }
    // Every message arrived whole.
    wsr_stats st;
    wsr_server_stats(f->srv, &st);
    sent = st.messages_out;
    assert_true(scan_until(f, c, &s, [&] { return (uint64_t)s.data_frames == sent; }));
    assert_int_equal(s.data_bytes, (sent - 2) * 8192 + 2 * 3);
    assert_int_equal(R.closes, 0);
    hangup(c);
    fx_stop(f);
}

// --- 9. ping and pong -------------------------------------------------------------------------

static void test_ping_pong(void **) {
    wsr_options o = begin_test();
    fixture *f = fx_start_ws(&o, nullptr);
    client *c = open_client(f);
    uint8_t payload[126];
    for (int i = 0; i < 126; i++) payload[i] = (uint8_t)(i * 7 + 1);
    assert_int_equal(wsr_ping(f->srv, R.open_id, payload, 126), WSR_EINVAL);
    assert_int_equal(wsr_ping(f->srv, R.open_id, payload, 125), WSR_OK);
    frame fr;
    assert_true(await(f, c, [&] { return take_frame(c, &fr); }));
    assert_int_equal(fr.first, 0x89); // FIN | ping
    assert_int_equal(fr.len, 125);
    assert_memory_equal(fr.data, payload, 125);
    send_frame(c, 0x8a, fr.data, fr.len);
    assert_true(pump(f, [] { return R.pongs == 1; }));
    assert_int_equal(R.pong_len, 125);
    assert_memory_equal(R.pong, payload, 125);
    // An unsolicited pong (RFC 6455 §5.5.3: a unidirectional heartbeat) too.
    send_frame(c, 0x8a, "beat", 4);
    assert_true(pump(f, [] { return R.pongs == 2; }));
    assert_int_equal(R.pong_len, 4);
    assert_memory_equal(R.pong, "beat", 4);
    // An empty ping is a ping.
    assert_int_equal(wsr_ping(f->srv, R.open_id, nullptr, 0), WSR_OK);
    assert_true(await(f, c, [&] { return take_frame(c, &fr); }));
    assert_int_equal(fr.first, 0x89);
    assert_int_equal(fr.len, 0);
    assert_int_equal(wsr_ping(f->srv, R.open_id + (1ull << 32), "x", 1), WSR_ENOCONN); // another generation
    assert_int_equal(R.messages, 0);
    hangup(c);
    fx_stop(f);
}

// --- 10. per-connection facts ----------------------------------------------------------------

static uint64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

// Opens a client between two readings of the wall clock: wsr_conn_opened_ms ("since
// the Unix epoch, to the second") must fall in the second of one of them or between.
static client *open_client_timed(fixture *f) {
    uint64_t before = wall_ms();
    client *c = open_client(f);
    uint64_t after = wall_ms();
    uint64_t at = wsr_conn_opened_ms(f->srv, R.open_id);
    print_message("opened between %llu and %llu; wsr_conn_opened_ms says %llu\n", (unsigned long long)before,
                  (unsigned long long)after, (unsigned long long)at);
    assert_true(at / 1000 >= before / 1000);
    assert_true(at / 1000 <= after / 1000);
    return c;
}

static void test_connection_facts(void **) {
    wsr_options o = begin_test();
    fixture *f = fx_start_ws(&o, nullptr);

    client *a = open_client_timed(f);
    wsr_conn_id plain = R.open_id;
    char ext[256];
    memset(ext, 'x', sizeof ext);
    assert_int_equal(wsr_conn_extensions(f->srv, plain, ext, sizeof ext), 0);
    assert_string_equal(ext, "");

    response r;
    client *b = open_client(f, "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n", &r);
    wsr_conn_id z = R.open_id;
    size_t n = wsr_conn_extensions(f->srv, z, ext, sizeof ext);
    assert_true(n > 0);
    assert_int_equal(n, strlen(ext));
    assert_memory_equal(ext, "permessage-deflate", 18);
    // The same text the client was answered with.
    char line[300];
    snprintf(line, sizeof line, "\r\nSec-WebSocket-Extensions: %s\r\n", ext);
    assert_non_null(strstr(r.head, line));

    // Unknown ids: 0 and NULL, never another connection's facts.
    wsr_conn_id unknown[] = {0, plain + (1ull << 32), 0xfffffff0u};
    for (wsr_conn_id id : unknown) {
        assert_int_equal(wsr_conn_opened_ms(f->srv, id), 0);
        assert_null(wsr_conn_subprotocol(f->srv, id));
        assert_null(wsr_conn_user(f->srv, id));
        assert_int_equal(wsr_conn_buffered(f->srv, id), 0);
        char buf[64] = "junk";
        assert_int_equal(wsr_conn_extensions(f->srv, id, buf, sizeof buf), 0);
        assert_string_equal(buf, "");
        strcpy(buf, "junk");
        assert_int_equal(wsr_conn_address(f->srv, id, buf, sizeof buf), 0);
        assert_string_equal(buf, "");
    }
    // A closed connection's id is unknown after its on_close.
    hangup(a);
    assert_true(pump(f, [] { return R.closes == 1; }));
    assert_int_equal(wsr_conn_opened_ms(f->srv, plain), 0);
    char buf[64];
    assert_int_equal(wsr_conn_address(f->srv, plain, buf, sizeof buf), 0);
    hangup(b);
    fx_stop(f);
}

// "Returns the length, cut to fit cap": a buffer too small for the text gets its start
// (NUL-terminated) and the length it needed, like wsr_conn_address; never the "" that
// means no compression was agreed.
static void test_facts_cut_to_fit(void **) {
    wsr_options o = begin_test();
    fixture *f = fx_start_ws(&o, nullptr);
    client *c = open_client(f, "Sec-WebSocket-Extensions: permessage-deflate\r\n");
    char full[256], small[8];
    size_t n = wsr_conn_address(f->srv, R.open_id, full, sizeof full);
    assert_int_equal(wsr_conn_address(f->srv, R.open_id, small, sizeof small), n);
    assert_memory_equal(small, full, sizeof small - 1);
    assert_int_equal(small[sizeof small - 1], 0);
    n = wsr_conn_extensions(f->srv, R.open_id, full, sizeof full);
    assert_true(n > sizeof small);
    size_t m = wsr_conn_extensions(f->srv, R.open_id, small, sizeof small);
    print_message("wsr_conn_extensions: \"%s\" (%zu) in full, \"%s\" (%zu) cut to %zu bytes\n", full, n, small, m,
                  sizeof small);
    assert_int_equal(m, n);
    assert_memory_equal(small, full, sizeof small - 1);
    assert_int_equal(small[sizeof small - 1], 0);
    hangup(c);
    fx_stop(f);
}

// wsr_conn_opened_ms is "milliseconds since the Unix epoch, to the second". Here the
// server starts late in one wall-clock second and the connection opens early in the
// next: its second must be the one it opened in.
static void test_opened_ms_across_a_second(void **) {
    wsr_options o = begin_test();
    // Start at .70 .. .75 of a second.
    while (wall_ms() % 1000 < 700 || wall_ms() % 1000 >= 750) usleep(1000);
    fixture *f = fx_start_ws(&o, nullptr);
    // Open at about .15 .. .25 of the next one.
    usleep(450 * 1000);
    client *a = open_client_timed(f);
    hangup(a);
    fx_stop(f);
}

// The same when the loop was created a while before the server (the application read
// its configuration first), without running in between.
static void test_opened_ms_after_a_late_start(void **) {
    wsr_options o = begin_test();
    o.listen = "127.0.0.1:0";
    wsr_endpoint ep = endpoint(nullptr);
    fixture *f = (fixture *)calloc(1, sizeof *f);
    uv_loop_init(&f->loop);
    usleep(1500 * 1000);
    assert_int_equal(wsr_server_new(&f->loop, &o, &f->srv), WSR_OK);
    assert_int_equal(wsr_server_endpoint(f->srv, "/ws", &ep, nullptr), WSR_OK);
    fx_listen(f);
    client *a = open_client_timed(f);
    hangup(a);
    fx_stop(f);
}

// --- 11. HTTP routes ------------------------------------------------------------------------

// Answers with its own name (the route's user pointer) as the body.
static void named_route(wsr_server *srv, wsr_request *req, void *user) {
    in_callback g;
    R.http_calls++;
    const char *name = (const char *)user;
    char hdr[64];
    snprintf(hdr, sizeof hdr, "X-Route: %s\r\n", name);
    trace(name);
    assert_int_equal(wsr_respond(srv, wsr_request_id(req), 200, hdr, name, strlen(name)), WSR_OK);
}

static void slow_route(uv_timer_t *t);
static uv_timer_t SLOW_TIMER;

// Answers from a timer, 50 ms later.
static void deferred_route(wsr_server *srv, wsr_request *req, void *) {
    in_callback g;
    R.http_calls++;
    trace("slow");
    R.pending = wsr_request_id(req);
    SLOW_TIMER.data = srv;
    uv_timer_start(&SLOW_TIMER, slow_route, 50, 0);
}

static void slow_route(uv_timer_t *t) {
    in_callback g;
    trace("answer");
    int rc = wsr_respond((wsr_server *)t->data, R.pending, 200, nullptr, "first", 5);
    trace(rc == WSR_OK ? "ok" : "failed");
}

// Begins a test with a server of routes: GET /api/* ("prefix"), GET and POST /api/x
// ("exact"), GET /api/long/* ("long"), and GET /slow, answered 50 ms later.
static fixture *routes_server(void) {
    wsr_options o = begin_test();
    fixture *f = fx_new(&o, nullptr);
    assert_int_equal(wsr_server_http(f->srv, "/api/*", WSR_HTTP_GET, named_route, (void *)"prefix"), WSR_OK);
    assert_int_equal(wsr_server_http(f->srv, "/api/x", WSR_HTTP_GET | WSR_HTTP_POST, named_route, (void *)"exact"),
                     WSR_OK);
    assert_int_equal(wsr_server_http(f->srv, "/api/long/*", WSR_HTTP_GET, named_route, (void *)"long"), WSR_OK);
    assert_int_equal(wsr_server_http(f->srv, "/slow", WSR_HTTP_GET, deferred_route, nullptr), WSR_OK);
    assert_int_equal(wsr_server_http(f->srv, "/api/*", WSR_HTTP_PUT, named_route, (void *)"again"), WSR_EEXIST);
    fx_listen(f);
    uv_timer_init(&f->loop, &SLOW_TIMER);
    return f;
}

static void routes_done(fixture *f) {
    uv_close((uv_handle_t *)&SLOW_TIMER, nullptr);
    fx_stop(f);
}

static void get(client *c, const char *method, const char *path) {
    char req[256];
    snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: x\r\n\r\n", method, path);
    send_text(c, req);
}

static void test_routes_pick_the_best_match(void **) {
    fixture *f = routes_server();
    client *c = dial(f->port);
    // path -> route, all on one kept-alive connection
    static const char *const cases[][2] = {
        {"/api/x", "exact"},     {"/api/y", "prefix"},     {"/api/xy", "prefix"},
        {"/api/long/z", "long"}, {"/api/long/", "long"},   {"/api/", "prefix"},
        {"/api/x?q=1", "exact"}, {"/api/longer", "prefix"},
    };
    for (const auto &tc : cases) {
        print_message("GET %s\n", tc[0]);
        get(c, "GET", tc[0]);
        response r;
        expect_status(f, c, &r, 200);
        assert_string_equal(r.body, tc[1]);
        assert_true(strip_date(r.head));
        char want[256];
        snprintf(want, sizeof want, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nX-Route: %s\r\n\r\n", strlen(tc[1]),
                 tc[1]);
        assert_string_equal(r.head, want);
    }
    assert_false(c->eof);
    hangup(c);
    // No route at all: 404.
    c = dial(f->port);
    get(c, "GET", "/ap");
    response r;
    expect_status(f, c, &r, 404);
    hangup(c);
    routes_done(f);
}

static void test_method_not_allowed(void **) {
    fixture *f = routes_server();
    static const char *const cases[][3] = {
        {"POST", "/api/y", "Allow: GET, HEAD\r\n"},
        {"DELETE", "/api/x", "Allow: GET, HEAD, POST\r\n"},
    };
    for (const auto &tc : cases) {
        client *c = dial(f->port);
        char req[256];
        snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", tc[0], tc[1]);
        send_text(c, req);
        response r;
        expect_status(f, c, &r, 405);
        assert_memory_equal(r.head, "HTTP/1.1 405 Method Not Allowed\r\n", 33);
        char line[64];
        snprintf(line, sizeof line, "\r\n%s", tc[2]);
        assert_non_null(strstr(r.head, line));
        hangup(c);
    }
    assert_int_equal(R.http_calls, 0); // the handler never saw them
    routes_done(f);
}

static void test_head_on_a_get_route(void **) {
    fixture *f = routes_server();
    client *c = dial(f->port);
    get(c, "GET", "/api/y");
    response g;
    assert_true(read_response(f, c, &g));
    get(c, "HEAD", "/api/y");
    response h;
    expect_status(f, c, &h, 200, true);
    assert_true(strip_date(g.head));
    assert_true(strip_date(h.head));
    assert_string_equal(h.head, g.head); // the same head, Content-Length: 6 included
    assert_non_null(strstr(h.head, "\r\nContent-Length: 6\r\n"));
    // No body: the next bytes are the next response.
    get(c, "GET", "/api/x");
    response x;
    assert_true(read_response(f, c, &x));
    assert_string_equal(x.body, "exact");
    hangup(c);
    routes_done(f);
}

static void test_deferred_answer_keeps_pipelined_order(void **) {
    fixture *f = routes_server();
    client *c = dial(f->port);
    // Two requests in one write: the second waits for the first's answer.
    send_text(c, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /api/x HTTP/1.1\r\nHost: x\r\n\r\n");
    response a, b;
    assert_true(read_response(f, c, &a));
    assert_true(read_response(f, c, &b));
    assert_string_equal(a.body, "first");
    assert_string_equal(b.body, "exact");
    // The second handler ran after the first was answered, not before.
    assert_string_equal(R.trace, "slow;answer;ok;exact;");
    // And the connection is still good for more.
    get(c, "GET", "/api/y");
    assert_true(read_response(f, c, &a));
    assert_string_equal(a.body, "prefix");
    hangup(c);
    routes_done(f);
}

// --- 12. several listeners --------------------------------------------------------------------

static void which_route(wsr_server *srv, wsr_request *req, void *user) {
    in_callback g;
    R.http_calls++;
    char body[32];
    int n = snprintf(body, sizeof body, "%s%u", user ? (const char *)user : "", wsr_request_listener(req));
    wsr_respond(srv, wsr_request_id(req), 200, nullptr, body, (size_t)n);
}

static void ask(fixture *f, int port, response *r) {
    client *c = dial(port);
    send_text(c, "GET /which HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_true(read_response(f, c, r));
    hangup(c);
}

static void test_several_listeners(void **) {
    wsr_options o = begin_test();
    fixture *f = fx_new(&o, nullptr);
    assert_int_equal(wsr_server_http(f->srv, "/which", WSR_HTTP_GET, which_route, nullptr), WSR_OK);
    assert_int_equal(wsr_server_add_listener(f->srv, "127.0.0.1:0", 0), 0);
    assert_int_equal(wsr_server_add_listener(f->srv, "127.0.0.1:0", 0), 1);
    assert_int_equal(wsr_server_add_listener(f->srv, "127.0.0.1:0", 1u << 7), WSR_EINVAL);
    assert_int_equal(wsr_server_add_listener(f->srv, "nonsense", 0), WSR_EADDR);
    fx_listen(f);
    int p0 = wsr_server_listener_port(f->srv, 0), p1 = wsr_server_listener_port(f->srv, 1);
    assert_true(p0 > 0 && p1 > 0 && p0 != p1);
    assert_int_equal(wsr_server_port(f->srv), p0);
    assert_int_equal(wsr_server_listener_port(f->srv, 2), -1);
    assert_int_equal(wsr_server_add_listener(f->srv, "127.0.0.1:0", 0), WSR_EINVAL); // listening already
    response r;
    ask(f, p0, &r);
    assert_string_equal(r.body, "0");
    ask(f, p1, &r);
    assert_string_equal(r.body, "1");
    fx_stop(f);
}

static int SECOND_DONE;

static void test_reuseport_shares_a_port(void **) {
    wsr_options o = begin_test();
    fixture *f = fx_new(&o, nullptr);
    assert_int_equal(wsr_server_http(f->srv, "/which", WSR_HTTP_GET, which_route, (void *)"A"), WSR_OK);
    assert_int_equal(wsr_server_add_listener(f->srv, "127.0.0.1:0", WSR_LISTEN_REUSEPORT), 0);
    fx_listen(f);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", f->port);

    // Without the flag the port is taken: the flag is what makes sharing work.
    wsr_server *taken;
    assert_int_equal(wsr_server_new(&f->loop, &o, &taken), WSR_OK);
    assert_int_equal(wsr_server_add_listener(taken, addr, 0), 0);
    assert_int_equal(wsr_server_listen(taken), WSR_ESYS);
    wsr_server_free(taken);

    // A second server on the same loop and port.
    wsr_server *b;
    assert_int_equal(wsr_server_new(&f->loop, &o, &b), WSR_OK);
    assert_int_equal(wsr_server_http(b, "/which", WSR_HTTP_GET, which_route, (void *)"B"), WSR_OK);
    assert_int_equal(wsr_server_add_listener(b, addr, WSR_LISTEN_REUSEPORT), 0);
    assert_int_equal(wsr_server_listen(b), WSR_OK);
    assert_int_equal(wsr_server_port(b), f->port);
    // The kernel spreads connections by their addresses: over 32 both must be seen.
    int a_seen = 0, b_seen = 0;
    for (int i = 0; i < 32; i++) {
        response r;
        ask(f, f->port, &r);
        assert_int_equal(r.status, 200);
        if (strcmp(r.body, "A0") == 0)
            a_seen++;
        else if (strcmp(r.body, "B0") == 0)
            b_seen++;
        else
            fail_msg("unexpected body '%s'", r.body);
    }
    print_message("A answered %d, B %d\n", a_seen, b_seen);
    assert_true(a_seen > 0 && b_seen > 0);
    SECOND_DONE = 0;
    wsr_server_shutdown(b, [](wsr_server *, uint32_t, uint32_t) { SECOND_DONE++; });
    assert_true(pump(f, [] { return SECOND_DONE == 1; }));
    wsr_server_free(b);
    fx_stop(f);
}

// --- 13. the older registration calls ------------------------------------------------------------

static void test_old_handlers_api(void **) {
    wsr_options o = begin_test();
    fixture *f = fx_new(&o, nullptr);
    static const wsr_handlers h = {rec_open, rec_message, rec_close};
    assert_int_equal(wsr_server_route(f->srv, "/ws", &h, nullptr), WSR_OK);
    assert_int_equal(wsr_server_route(f->srv, "/ws", &h, nullptr), WSR_EEXIST);
    wsr_endpoint ep = endpoint(nullptr);
    assert_int_equal(wsr_server_endpoint(f->srv, "/ws", &ep, nullptr), WSR_EEXIST);
    fx_listen(f);
    client *c = open_client(f);
    send_frame(c, 0x81, "old", 3);
    assert_true(pump(f, [] { return R.messages == 1; }));
    assert_memory_equal(R.msg, "old", 3);
    // A pong reaches no one (the table has no on_pong) and changes nothing.
    send_frame(c, 0x8a, "p", 1);
    send_frame(c, 0x88, "\x03\xe8", 2); // close 1000
    assert_true(pump(f, [] { return R.closes == 1; }));
    assert_int_equal(R.close_code, 1000);
    assert_int_equal(R.pongs, 0);
    hangup(c);
    fx_stop(f);
}

// An application compiled when wsr_endpoint ended before on_drain: the struct it passes
// is that long and no longer (allocated to the byte, so that AddressSanitizer sees a
// read past it), and what it does not know of must count as absent.
static void test_short_endpoint_struct(void **) {
    wsr_options o = begin_test();
    o.max_backpressure = 64 * 1024;
    fixture *f = fx_new(&o, nullptr);
    assert_int_equal(endpoint_of_size(f, offsetof(wsr_endpoint, on_drain)), WSR_OK);
    // Shorter than the first version: refused.
    wsr_endpoint tiny = endpoint(nullptr);
    tiny.size = offsetof(wsr_endpoint, on_upgrade) - 1;
    assert_int_equal(wsr_server_endpoint(f->srv, "/tiny", &tiny, nullptr), WSR_EINVAL);
    fx_listen(f);

    client *c = open_client(f);
    wsr_conn_id id = R.open_id;
    send_frame(c, 0x8a, "p", 1);
    send_frame(c, 0x81, "after", 5); // once this arrives, the pong was handled
    assert_true(pump(f, [] { return R.messages == 1; }));
    assert_int_equal(R.pongs, 0);
    // A queued send that drains: no on_drain either.
    seen s = no_frames();
    fill_until_queued(f, id);
    assert_true(scan_until(f, c, &s, [&] { return wsr_conn_buffered(f->srv, id) == 0; }));
    run_for(f, 0.1);
    assert_int_equal(R.drains, 0);
    hangup(c);
    fx_stop(f);
}

// --- 14. found in review ---------------------------------------------------------------------

// Answers GET requests from a timer, LATE_MS later, with "late".
static uv_timer_t LATE_TIMER;
static unsigned LATE_MS;
static int LATE_RC;

static void late_answer(uv_timer_t *t) {
    in_callback g;
    LATE_RC = wsr_respond((wsr_server *)t->data, R.pending, 200, nullptr, "late", 4);
}

static void late_route(wsr_server *srv, wsr_request *req, void *) {
    in_callback g;
    R.http_calls++;
    R.pending = wsr_request_id(req);
    LATE_TIMER.data = srv;
    uv_timer_start(&LATE_TIMER, late_answer, LATE_MS, 0);
}

static fixture *late_server(wsr_options *o, unsigned late_ms) {
    fixture *f = fx_new(o, nullptr);
    assert_int_equal(wsr_server_http(f->srv, "/late", WSR_HTTP_GET, late_route, nullptr), WSR_OK);
    assert_int_equal(wsr_server_http(f->srv, "/now", WSR_HTTP_GET, named_route, (void *)"now"), WSR_OK);
    fx_listen(f);
    uv_timer_init(&f->loop, &LATE_TIMER);
    LATE_MS = late_ms;
    LATE_RC = -100;
    return f;
}

static void late_done(fixture *f) {
    uv_close((uv_handle_t *)&LATE_TIMER, nullptr);
    fx_stop(f);
}

// A sender told WSR_QUEUED hears on_drain once its queue empties, wherever the write
// that empties it happens: here inside a later send (a ping), after the client read
// everything while the loop did not run.
static void test_drain_when_a_send_empties_the_queue(void **) {
    wsr_options o = begin_test();
    wsr_endpoint ep = endpoint(nullptr);
    fixture *f = fx_new(&o, &ep);
    assert_int_equal(wsr_server_set_option(f->srv, WSR_OPT_DRAIN_BYTES, 0), WSR_OK); // on_drain only when empty
    fx_listen(f);
    client *c = open_client(f);
    wsr_conn_id id = R.open_id;
    seen s = no_frames();
    saturate(f, id);
    // 100 KB sends, the loop not running, until one stays queued for the most part:
    // the kernel's buffers are full.
    int drains = R.drains;
    static uint8_t big[100 * 1000];
    int rc = WSR_OK;
    for (int i = 0; i < 100 && wsr_conn_buffered(f->srv, id) < 64 * 1024; i++) {
        rc = wsr_send(f->srv, id, WSR_BINARY, big, sizeof big);
        assert_true(rc == WSR_OK || rc == WSR_QUEUED);
    }
    assert_int_equal(rc, WSR_QUEUED);
    size_t queued = wsr_conn_buffered(f->srv, id);
    // The client reads all the kernel holds; the server's loop does not run meanwhile.
    uint64_t before = c->total, got = c->total;
    for (double quiet = now_s() + 0.1; now_s() < quiet;) {
        scan(c, &s);
        if (c->total != got) {
            got = c->total;
            quiet = now_s() + 0.1;
        }
        usleep(1000);
    }
    assert_int_equal(wsr_ping(f->srv, id, "hb", 2), WSR_OK);
    // Large output is written at once: the ping's write takes the whole queue.
    print_message("queued %zu bytes; the client read %llu; after the ping %zu queued\n", queued,
                  (unsigned long long)(got - before), wsr_conn_buffered(f->srv, id));
    assert_true(scan_until(f, c, &s, [&] { return wsr_conn_buffered(f->srv, id) == 0 && R.drains > drains; }));
    run_for(f, 0.2);
    scan(c, &s);
    assert_int_equal(R.drains, drains + 1);
    assert_int_equal(R.closes, 0);
    hangup(c);
    fx_stop(f);
}

// max_connections counts the upgrades accepted later whose 101 is not out yet: the
// accept that would pass it answers 503 itself and says so.
static wsr_conn_id HELD[4];
static int NHELD;

static void hold_hook(wsr_server *, wsr_request *req, void *) {
    in_callback g;
    R.upgrades++;
    HELD[NHELD++] = wsr_request_id(req);
}

static void test_late_accepts_respect_max_connections(void **) {
    wsr_options o = begin_test();
    NHELD = 0;
    o.max_connections = 2;
    fixture *f = fx_start_ws(&o, hold_hook);
    client *c[3];
    for (int i = 0; i < 3; i++) c[i] = dial_held_upgrade(f); // one at a time: HELD[i] is c[i]'s request
    assert_int_equal(wsr_upgrade_accept(f->srv, HELD[0], nullptr, nullptr), WSR_OK);
    assert_int_equal(wsr_upgrade_accept(f->srv, HELD[1], nullptr, nullptr), WSR_OK);
    assert_int_equal(wsr_upgrade_accept(f->srv, HELD[2], nullptr, nullptr), WSR_ECLOSING);
    response r;
    for (int i = 0; i < 2; i++) expect_status(f, c[i], &r, 101);
    expect_status(f, c[2], &r, 503);
    await_eof(f, c[2]);
    assert_true(pump(f, [] { return R.opens == 2; }));
    run_for(f, 0.1);
    assert_int_equal(R.opens, 2);
    assert_int_equal(wsr_upgrade_accept(f->srv, HELD[2], nullptr, nullptr), WSR_ENOCONN);
    for (client *x : c) hangup(x);
    fx_stop(f);
}

// Subprotocol names the hook chooses (a token per client) are each connection's own:
// no table of names that fills up, no connection reading another's.
enum { NTOK = 300 };
static wsr_conn_id TOK_ID[NTOK];
static int TOK_RC[NTOK];

static void token_hook(wsr_server *srv, wsr_request *req, void *) {
    in_callback g;
    R.upgrades++;
    wsr_str v;
    assert_true(wsr_request_header(req, "Sec-WebSocket-Protocol", &v));
    char name[32];
    snprintf(name, sizeof name, "%.*s", (int)v.len, v.ptr);
    int n = atoi(name + 4);
    assert_true(n >= 0 && n < NTOK);
    wsr_conn_id id = wsr_request_id(req);
    TOK_ID[n] = id;
    TOK_RC[n] = wsr_upgrade_accept(srv, id, nullptr, name);
    if (TOK_RC[n] != WSR_OK) assert_int_equal(wsr_respond(srv, id, 500, nullptr, nullptr, 0), WSR_OK);
}

static void test_300_subprotocols_chosen_by_the_hook(void **) {
    wsr_options o = begin_test();
    fixture *f = fx_start_ws(&o, token_hook);
    static client *c[NTOK];
    static response r[NTOK];
    static bool done[NTOK];
    for (int i = 0; i < NTOK; i++) {
        TOK_RC[i] = -100;
        done[i] = false;
        char line[64];
        snprintf(line, sizeof line, "Sec-WebSocket-Protocol: tok.%d\r\n", i);
        c[i] = dial_upgrade(f, line);
        if (i % 50 == 49) run_for(f, 0.01);
    }
    int answered = 0;
    assert_true(pump(
        f,
        [&] {
            for (int i = 0; i < NTOK; i++) {
                if (done[i]) continue;
                client_read(c[i]);
                if (take_response(c[i], &r[i], false)) done[i] = true, answered++;
            }
            return answered == NTOK;
        },
        20));
    assert_true(pump(f, [] { return R.opens == NTOK; }, 10));
    for (int i = 0; i < NTOK; i++) {
        char want[64];
        snprintf(want, sizeof want, "\r\nSec-WebSocket-Protocol: tok.%d\r\n", i);
        if (TOK_RC[i] != WSR_OK || r[i].status != 101 || !strstr(r[i].head, want))
            fail_msg("client %d: accept %d, status %d", i, TOK_RC[i], r[i].status);
    }
    // All open at once: each still has its own.
    static const int some[] = {0, 1, 127, 254, 255, 256, NTOK - 1};
    for (int i : some) {
        char want[32];
        snprintf(want, sizeof want, "tok.%d", i);
        const char *sp = wsr_conn_subprotocol(f->srv, TOK_ID[i]);
        assert_non_null(sp);
        assert_string_equal(sp, want);
    }
    for (int i = 0; i < NTOK; i++) hangup(c[i]);
    assert_true(pump(f, [] { return R.closes == NTOK; }, 10));
    fx_stop(f);
}

// An HTTP client may close its sending side after its request and still read the
// answer, given later.
static void test_deferred_answer_after_client_half_close(void **) {
    wsr_options o = begin_test();
    fixture *f = late_server(&o, 100);
    client *c = dial(f->port);
    send_text(c, "GET /late HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(shutdown(c->fd, SHUT_WR), 0);
    response r;
    expect_status(f, c, &r, 200);
    assert_int_equal(LATE_RC, WSR_OK);
    assert_string_equal(r.body, "late");
    await_eof(f, c);
    assert_int_equal(c->len, 0);
    hangup(c);
    late_done(f);
}

// 304 has no body (RFC 9110 §15.4.5): one given is refused, and none is announced.
static int NM_BODY_RC, NM_RC;

static void not_modified_route(wsr_server *srv, wsr_request *req, void *) {
    in_callback g;
    R.http_calls++;
    wsr_conn_id id = wsr_request_id(req);
    NM_BODY_RC = wsr_respond(srv, id, 304, nullptr, "XYZ", 3);
    NM_RC = wsr_respond(srv, id, 304, "ETag: \"v1\"\r\n", nullptr, 0);
}

static void test_304_has_no_body_and_no_content_length(void **) {
    wsr_options o = begin_test();
    fixture *f = fx_start_route(&o, "/nm", not_modified_route, nullptr);
    client *c = dial(f->port);
    NM_BODY_RC = NM_RC = -100;
    send_text(c, "GET /nm HTTP/1.1\r\nHost: x\r\n\r\nGET /nm HTTP/1.1\r\nHost: x\r\n\r\n");
    for (int i = 0; i < 2; i++) {
        response r;
        assert_true(read_response(f, c, &r));
        assert_int_equal(NM_BODY_RC, WSR_EINVAL);
        assert_int_equal(NM_RC, WSR_OK);
        assert_int_equal(r.status, 304);
        assert_non_null(strstr(r.head, "\r\nETag: \"v1\"\r\n"));
        assert_null(strstr(r.head, "Content-Length"));
    }
    run_for(f, 0.1);
    client_read(c);
    assert_int_equal(c->len, 0); // nothing after the second head
    assert_false(c->eof);        // and still kept alive
    hangup(c);
    fx_stop(f);
}

// The 503 the handshake timeout gives for the application is a timeout, not a refusal.
static void test_handshake_timeout_counts_as_timeout(void **) {
    fixture *f = fx_start_never_answering();
    client *c = dial_upgrade(f);
    response r;
    expect_status(f, c, &r, 503);
    int timeout = -1, b503 = -1;
    for (int i = 0; i < WSR_HS_BUCKETS; i++) {
        if (strcmp(wsr_stats_hs_labels[i], "timeout") == 0) timeout = i;
        if (strcmp(wsr_stats_hs_labels[i], "503") == 0) b503 = i;
    }
    assert_true(timeout >= 0 && b503 >= 0);
    wsr_stats st;
    wsr_server_stats(f->srv, &st);
    assert_int_equal(st.handshakes_failed[timeout], 1);
    assert_int_equal(st.handshakes_failed[b503], 0);
    assert_int_equal(wsr_server_counter(f->srv, WSR_COUNTER_UPGRADES_REFUSED), 0);
    hangup(c);
    fx_stop(f);
}

// Each request has a deadline of its own: a request pipelined behind another does not
// inherit the earlier one's, which here had run for 0.5 s of its 1 s already.
static void test_pipelined_request_gets_its_own_deadline(void **) {
    wsr_options o = begin_test();
    o.handshake_timeout_ms = 1000;
    fixture *f = late_server(&o, 700);
    client *c = dial(f->port);
    send_text(c, "GET /now HTTP/1.1\r\nHost: x\r\n"); // the first request's head, not yet whole
    run_for(f, 0.5);
    // Its end, and the second request, answered 0.7 s later: 1.2 s after the first began.
    send_text(c, "\r\nGET /late HTTP/1.1\r\nHost: x\r\n\r\n");
    response a, b;
    expect_status(f, c, &a, 200);
    assert_string_equal(a.body, "now");
    expect_status(f, c, &b, 200);
    assert_string_equal(b.body, "late");
    assert_int_equal(LATE_RC, WSR_OK);
    hangup(c);
    late_done(f);
}

// An endpoint size that ends inside a callback pointer: that callback is absent, not
// half copied and called.
static void test_endpoint_size_inside_a_pointer(void **) {
    wsr_options o = begin_test();
    fixture *f = fx_new(&o, nullptr);
    assert_int_equal(endpoint_of_size(f, offsetof(wsr_endpoint, on_open) + sizeof(void *) / 2), WSR_OK);
    fx_listen(f);
    client *c = dial_upgrade(f);
    response r;
    expect_status(f, c, &r, 101);
    send_frame(c, 0x81, "x", 1);
    run_for(f, 0.1);
    assert_int_equal(R.opens, 0);
    assert_int_equal(R.messages, 0);
    hangup(c);
    fx_stop(f);
}

// --- the list --------------------------------------------------------------------------------

#define REENTRY(s, a) {"test_reentry_" #s "_" #a, test_reentry<s, a>, nullptr, nullptr, nullptr}

int main(void) {
    wsr_log_set_level(WSR_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hook_sees_the_request),
        cmocka_unit_test(test_accept_with_user_and_subprotocol),
        cmocka_unit_test(test_refuse_in_hook),
        cmocka_unit_test(test_accept_later),
        cmocka_unit_test(test_refuse_later_from_work),
        cmocka_unit_test(test_accept_after_client_left),
        cmocka_unit_test(test_handshake_timeout_answers_503),
        REENTRY(FROM_UPGRADE, DO_CLOSE),
        REENTRY(FROM_UPGRADE, DO_SEND),
        REENTRY(FROM_UPGRADE, DO_SHUTDOWN),
        REENTRY(FROM_OPEN, DO_CLOSE),
        REENTRY(FROM_OPEN, DO_SEND),
        REENTRY(FROM_OPEN, DO_SHUTDOWN),
        REENTRY(FROM_MESSAGE, DO_CLOSE),
        REENTRY(FROM_MESSAGE, DO_SEND),
        REENTRY(FROM_MESSAGE, DO_SHUTDOWN),
        REENTRY(FROM_DRAIN, DO_CLOSE),
        REENTRY(FROM_DRAIN, DO_SEND),
        REENTRY(FROM_DRAIN, DO_SHUTDOWN),
        REENTRY(FROM_PONG, DO_CLOSE),
        REENTRY(FROM_PONG, DO_SEND),
        REENTRY(FROM_PONG, DO_SHUTDOWN),
        REENTRY(FROM_HTTP, DO_CLOSE),
        REENTRY(FROM_HTTP, DO_SEND),
        REENTRY(FROM_HTTP, DO_SHUTDOWN),
        cmocka_unit_test(test_drain),
        cmocka_unit_test(test_ping_pong),
        cmocka_unit_test(test_connection_facts),
        cmocka_unit_test(test_facts_cut_to_fit),
        cmocka_unit_test(test_opened_ms_across_a_second),
        cmocka_unit_test(test_opened_ms_after_a_late_start),
        cmocka_unit_test(test_routes_pick_the_best_match),
        cmocka_unit_test(test_method_not_allowed),
        cmocka_unit_test(test_head_on_a_get_route),
        cmocka_unit_test(test_deferred_answer_keeps_pipelined_order),
        cmocka_unit_test(test_several_listeners),
        cmocka_unit_test(test_reuseport_shares_a_port),
        cmocka_unit_test(test_old_handlers_api),
        cmocka_unit_test(test_short_endpoint_struct),
        cmocka_unit_test(test_drain_when_a_send_empties_the_queue),
        cmocka_unit_test(test_late_accepts_respect_max_connections),
        cmocka_unit_test(test_300_subprotocols_chosen_by_the_hook),
        cmocka_unit_test(test_deferred_answer_after_client_half_close),
        cmocka_unit_test(test_304_has_no_body_and_no_content_length),
        cmocka_unit_test(test_handshake_timeout_counts_as_timeout),
        cmocka_unit_test(test_pipelined_request_gets_its_own_deadline),
        cmocka_unit_test(test_endpoint_size_inside_a_pointer), // last: on older code it crashes
    };
    return unit_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
