// bench/peers/lws_echo.cpp: a WebSocket echo server on libwebsockets (Debian
// libwebsockets-dev), for bench/run-peers.sh. Its own event loop (the default, poll), one
// thread, no extensions (so no permessage-deflate), any path answered (as in lws's
// minimal-ws-server-echo). Every message is echoed whole with its opcode: fragments are
// gathered until the final one, then the message is queued and written on the next
// WRITEABLE callback, one lws_write() per callback as lws requires. Reading pauses
// (lws_rx_flow_control) while a connection has many messages queued.
//
// usage: lws_echo [PORT]   (default 0: an ephemeral port); listens on 127.0.0.1 and prints
// "listening on 127.0.0.1:PORT" on stderr. SIGINT/SIGTERM stop it.
#include <libwebsockets.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

struct Msg {
    Msg* next;
    size_t len;
    int binary;
    unsigned char buf[]; // LWS_PRE bytes of headroom, then the payload
};

struct Session {
    Msg* head;
    Msg* tail;
    int queued;
    int paused;
    unsigned char* rx; // the message being gathered, LWS_PRE headroom included
    size_t rx_len, rx_cap;
};

constexpr int kPauseAt = 64, kResumeAt = 16;
volatile sig_atomic_t g_stop;
lws_context* g_ctx;

void on_signal(int) {
    g_stop = 1;
    if (g_ctx) lws_cancel_service(g_ctx);
}

void free_session(Session* s) {
    while (s->head) {
        Msg* m = s->head;
        s->head = m->next;
        free(m);
    }
    s->tail = nullptr;
    s->queued = 0;
    free(s->rx);
    s->rx = nullptr;
    s->rx_len = s->rx_cap = 0;
}

int callback_echo(lws* wsi, lws_callback_reasons reason, void* user, void* in, size_t len) {
    auto* s = static_cast<Session*>(user);
    switch (reason) {
    case LWS_CALLBACK_ESTABLISHED:
        memset(s, 0, sizeof *s);
        break;
    case LWS_CALLBACK_RECEIVE: {
        size_t need = LWS_PRE + s->rx_len + len;
        if (need > s->rx_cap) {
            size_t cap = s->rx_cap ? s->rx_cap : 256;
            while (cap < need) cap *= 2;
            auto* p = static_cast<unsigned char*>(realloc(s->rx, cap));
            if (!p) return -1;
            s->rx = p, s->rx_cap = cap;
        }
        if (len) memcpy(s->rx + LWS_PRE + s->rx_len, in, len);
        s->rx_len += len;
        if (!lws_is_final_fragment(wsi)) break;
        auto* m = static_cast<Msg*>(malloc(sizeof(Msg) + LWS_PRE + s->rx_len));
        if (!m) return -1;
        m->next = nullptr;
        m->len = s->rx_len;
        m->binary = lws_frame_is_binary(wsi);
        memcpy(m->buf + LWS_PRE, s->rx + LWS_PRE, s->rx_len);
        s->rx_len = 0;
        if (s->tail) s->tail->next = m; else s->head = m;
        s->tail = m;
        if (++s->queued >= kPauseAt && !s->paused) {
            s->paused = 1;
            lws_rx_flow_control(wsi, 0);
        }
        lws_callback_on_writable(wsi);
        break;
    }
    case LWS_CALLBACK_SERVER_WRITEABLE: {
        Msg* m = s->head;
        if (!m) break;
        int n = lws_write(wsi, m->buf + LWS_PRE, m->len, m->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
        if (n < static_cast<int>(m->len)) return -1;
        s->head = m->next;
        if (!s->head) s->tail = nullptr;
        free(m);
        --s->queued;
        if (s->paused && s->queued <= kResumeAt) {
            s->paused = 0;
            lws_rx_flow_control(wsi, 1);
        }
        if (s->head) lws_callback_on_writable(wsi);
        break;
    }
    case LWS_CALLBACK_CLOSED:
        free_session(s);
        break;
    default:
        break;
    }
    return 0;
}

const lws_protocols kProtocols[] = {
    {"echo", callback_echo, sizeof(Session), 0, 0, nullptr, 0},
    {nullptr, nullptr, 0, 0, 0, nullptr, 0},
};

} // namespace

int main(int argc, char** argv) {
    int port = argc > 1 ? atoi(argv[1]) : 0;
    lws_set_log_level(LLL_ERR, nullptr);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);

    lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = port;
    info.iface = "127.0.0.1";
    info.protocols = kProtocols;
    info.options = LWS_SERVER_OPTION_DISABLE_IPV6;
    g_ctx = lws_create_context(&info);
    if (!g_ctx) {
        fprintf(stderr, "lws_echo: lws_create_context failed\n");
        return 1;
    }
    lws_vhost* vh = lws_get_vhost_by_name(g_ctx, "default");
    fprintf(stderr, "listening on 127.0.0.1:%d\n", vh ? lws_get_vhost_listen_port(vh) : port);
    while (!g_stop && lws_service(g_ctx, 0) >= 0) {
    }
    lws_context_destroy(g_ctx);
    return 0;
}
