// The wsreactor daemon: configuration, signals, and the built-in endpoints.
#include <signal.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <unistd.h>
#include <uv.h>

#include "app/config.h"
#include "app/broadcast.h"
#include "app/echo.h"
#include "app/ops.h"
#include "app/status.h"
#include "app/web.h"
#include "wsr/messaging.h"
#include "wsr/wsr.h"

struct daemon_state {
    wsr_server *srv;
    broadcast_room room;
    ops_state ops;
    wsr_messaging *msg;
    const char *api_keys[CONFIG_MAX_LIST + 1];
    uv_signal_t sigterm, sigint, sighup;
    bool stopping;
};

static void close_signals(daemon_state *d) {
    uv_close((uv_handle_t *)&d->sigterm, nullptr);
    uv_close((uv_handle_t *)&d->sigint, nullptr);
    uv_close((uv_handle_t *)&d->sighup, nullptr);
}

static void on_shutdown_done(wsr_server *srv, uint32_t, uint32_t) { close_signals((daemon_state *)wsr_server_user(srv)); }

// SIGHUP: certificates renewed on disk (certbot and the like) are taken up by new
// handshakes, and the --users-file is read again; a broken file is logged and what is
// in use stays.
static void on_reload(uv_signal_t *h, int) {
    daemon_state *d = (daemon_state *)h->data;
    wsr_server_reload_certificates(d->srv);
    wsr_messaging_reload(d->msg);
}

static void on_signal(uv_signal_t *h, int signum) {
    daemon_state *d = (daemon_state *)h->data;
    if (d->stopping) {
        // A second signal: the operator does not want to wait.
        fprintf(stderr, "wsreactor: second signal %d, exiting now\n", signum);
        _exit(1);
    }
    d->stopping = true;
    wsr_server_shutdown(d->srv, on_shutdown_done);
}

int main(int argc, char **argv) {
    config cfg;
    switch (config_load(&cfg, argc, argv)) {
    case CONFIG_EXIT_OK: config_free(&cfg); return 0;
    case CONFIG_ERROR: config_free(&cfg); return 2;
    case CONFIG_OK: break;
    }
    wsr_log_set_level(cfg.log_level);
    signal(SIGPIPE, SIG_IGN);

    uv_loop_t *loop = uv_default_loop();
    daemon_state d = {};
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    d.ops.started_ms = (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000;
    int r = wsr_server_new(loop, &cfg.opts, &d.srv);
    if (r == WSR_OK) r = config_apply(&cfg, d.srv);
    if (r == WSR_OK) r = wsr_server_route(d.srv, "/echo", &echo_handlers, nullptr);
    if (r == WSR_OK) r = wsr_server_route(d.srv, "/broadcast", &broadcast_handlers, &d.room);
    if (r == WSR_OK) r = ops_register(d.srv, &d.ops);
    if (r == WSR_OK) r = web_register(d.srv);
    if (r == WSR_OK) {
        wsr_messaging_options mo;
        config_messaging(&cfg, &mo);
        d.msg = wsr_messaging_new(loop, d.srv, "/ws", &mo);
        if (!d.msg) r = WSR_EINVAL; // the layer logged why: a file it reads, an option
        d.ops.msg = d.msg;          // its figures in /metrics
    }
    if (r == WSR_OK) {
        for (int i = 0; i < cfg.api_keys.n; i++) d.api_keys[i] = cfg.api_keys.items[i];
        d.api_keys[cfg.api_keys.n] = nullptr;
        r = wsr_messaging_api(d.msg, "/api/", d.api_keys);
    }
    if (r == WSR_OK) r = status_register(d.srv, loop, d.msg, &cfg, d.api_keys, d.ops.started_ms);
    if (r != WSR_OK) {
        fprintf(stderr, "wsreactor: cannot start: %s\n", wsr_strerror(r));
        wsr_server_free(d.srv);
        uv_run(loop, UV_RUN_DEFAULT); // the server's handles close from the loop
        config_free(&cfg);
        return 1;
    }
    wsr_server_set_user(d.srv, &d);
    // Handlers go in before the listening line is logged: whoever starts us may signal
    // as soon as they read it.
    uv_signal_init(loop, &d.sigterm);
    uv_signal_init(loop, &d.sigint);
    uv_signal_init(loop, &d.sighup);
    d.sigterm.data = d.sigint.data = d.sighup.data = &d;
    uv_signal_start(&d.sigterm, on_signal, SIGTERM);
    uv_signal_start(&d.sigint, on_signal, SIGINT);
    uv_signal_start(&d.sighup, on_reload, SIGHUP);
    r = wsr_server_listen(d.srv);
    if (r != WSR_OK) {
        fprintf(stderr, "wsreactor: cannot start: %s\n", wsr_strerror(r));
        close_signals(&d);
        wsr_server_free(d.srv);
        wsr_messaging_free(d.msg);
        uv_run(loop, UV_RUN_DEFAULT);
        config_free(&cfg);
        return 1;
    }

    uv_run(loop, UV_RUN_DEFAULT);

    wsr_server_free(d.srv);
    wsr_messaging_free(d.msg);
    status_free();
    uv_run(loop, UV_RUN_DEFAULT); // the messaging timer's close callback
    broadcast_room_free(&d.room);
    uv_loop_close(loop);
    config_free(&cfg); // the messaging layer pointed at its strings until now
    return 0;
}
