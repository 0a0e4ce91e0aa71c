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
    // The settings the server started with, and those in use since the last reload (the
    // messaging layer and api_keys point into it); the arguments a reload reads again.
    const config *start;
    config *live;
    int argc;
    char **argv;
};

static void close_signals(daemon_state *d) {
    uv_close((uv_handle_t *)&d->sigterm, nullptr);
    uv_close((uv_handle_t *)&d->sigint, nullptr);
    uv_close((uv_handle_t *)&d->sighup, nullptr);
}

static void on_shutdown_done(wsr_server *srv, uint32_t, uint32_t) { close_signals((daemon_state *)wsr_server_user(srv)); }

static void reload_refused(const char *line) {
    wsr_log(WSR_LOG_ERROR, "reload: %s; the running configuration is kept", line);
}

// SIGHUP: certificates renewed on disk (certbot and the like) are taken up by new
// handshakes, the --users-file is read again, and the settings are read again (the
// --config file, the environment, the original flags): what can change live does (log
// level and format, the messaging layer's limits, auth and namespaces, the API keys),
// one log line per change; what needs a restart is logged as such. A broken file or a
// refused setting is logged and everything in use stays.
static void on_reload(uv_signal_t *h, int) {
    daemon_state *d = (daemon_state *)h->data;
    wsr_server_reload_certificates(d->srv);
    wsr_messaging_reload(d->msg);
    config *next = (config *)malloc(sizeof *next);
    if (!next) return;
    config_set_reporter(reload_refused);
    config_result cr = config_load(next, d->argc, d->argv);
    config_set_reporter(nullptr);
    if (cr == CONFIG_OK) {
        // Given every time, so that the layer always points into the live settings
        // (all or nothing: refused, it keeps the old ones and logged why).
        wsr_messaging_options mo;
        config_messaging(next, &mo);
        if (wsr_messaging_update(d->msg, &mo) != WSR_OK) {
            reload_refused("the messaging settings were refused");
            cr = CONFIG_ERROR;
        }
    }
    if (cr != CONFIG_OK) {
        config_free(next);
        free(next);
        return;
    }
    config_log_changes(d->live, d->start, next);
    wsr_log_set_level(next->log_level);
    wsr_log_set_format(next->log_format);
    int n = 0;
    for (; n < next->api_keys.n; n++) d->api_keys[n] = next->api_keys.items[n];
    d->api_keys[n] = nullptr;
    if (d->live != d->start) {
        config_free(d->live);
        free(d->live);
    }
    d->live = next;
}

static void on_signal(uv_signal_t *h, int signum) {
    daemon_state *d = (daemon_state *)h->data;
    if (d->stopping) {
        // A second signal: the operator does not want to wait.
        wsr_log(WSR_LOG_WARN, "second signal %d, exiting now", signum);
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
    wsr_log_set_format(cfg.log_format);
    if (cfg.print_config || cfg.check_config) {
        int r = WSR_OK;
        if (cfg.print_config) config_print(&cfg, stdout);
        if (cfg.check_config) r = config_check(&cfg);
        if (cfg.check_config && r == WSR_OK) printf("configuration OK\n");
        config_free(&cfg);
        return r == WSR_OK ? 0 : 2;
    }
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
        wsr_log(WSR_LOG_ERROR, "cannot start: %s", wsr_strerror(r));
        wsr_server_free(d.srv);
        uv_run(loop, UV_RUN_DEFAULT); // the server's handles close from the loop
        config_free(&cfg);
        return 1;
    }
    wsr_server_set_user(d.srv, &d);
    d.start = d.live = &cfg;
    d.argc = argc;
    d.argv = argv;
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
        wsr_log(WSR_LOG_ERROR, "cannot start: %s", wsr_strerror(r));
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
    if (d.live != &cfg) { // the messaging layer pointed at its strings until now
        config_free(d.live);
        free(d.live);
    }
    config_free(&cfg);
    return 0;
}
