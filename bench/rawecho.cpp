// rawecho: a plain epoll TCP echo server, the physical limit wsreactor is compared to.
//
// usage: rawecho [--listen HOST:PORT]   (default 127.0.0.1:0; logs "listening on HOST:PORT")
//
// One thread, level-triggered epoll, one read into one shared buffer and one write of
// what was read, per readiness event: the least work a server can do for an echo on
// this kernel. When the peer does not take everything, the rest is kept and the
// connection stops reading until it drains (no unbounded buffering). No framing, no
// parsing, so `wsbench echo --raw` against it measures loopback TCP plus the client.
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

enum { RBUF_SIZE = 256 * 1024, MAX_EVENTS = 512 };

struct pending { // bytes the peer has not taken yet
    uint8_t *data;
    uint32_t off, len;
};

static volatile sig_atomic_t g_stop;
static void on_signal(int) { g_stop = 1; }

static pending **g_pending; // indexed by fd
static int g_max_fd;

static void conn_close(int ep, int fd) {
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr);
    close(fd);
    if (g_pending[fd]) {
        free(g_pending[fd]->data);
        free(g_pending[fd]);
        g_pending[fd] = nullptr;
    }
}

static void conn_watch(int ep, int fd, uint32_t events) {
    epoll_event ev = {};
    ev.events = events;
    ev.data.fd = fd;
    epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
}

static void conn_on_readable(int ep, int fd, uint8_t *buf) {
    ssize_t n = read(fd, buf, RBUF_SIZE);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        conn_close(ep, fd);
        return;
    }
    if (n < 0) return;
    ssize_t w = send(fd, buf, (size_t)n, MSG_NOSIGNAL);
    if (w < 0) {
        if (errno != EAGAIN) {
            conn_close(ep, fd);
            return;
        }
        w = 0;
    }
    if (w == n) return;
    pending *p = (pending *)calloc(1, sizeof *p);
    p->len = (uint32_t)(n - w);
    p->data = (uint8_t *)malloc(p->len);
    if (!p->data) {
        free(p);
        conn_close(ep, fd);
        return;
    }
    memcpy(p->data, buf + w, p->len);
    g_pending[fd] = p;
    conn_watch(ep, fd, EPOLLOUT); // stop reading until the peer catches up
}

static void conn_on_writable(int ep, int fd) {
    pending *p = g_pending[fd];
    if (!p) {
        conn_watch(ep, fd, EPOLLIN);
        return;
    }
    ssize_t w = send(fd, p->data + p->off, p->len - p->off, MSG_NOSIGNAL);
    if (w < 0) {
        if (errno != EAGAIN && errno != EINTR) conn_close(ep, fd);
        return;
    }
    p->off += (uint32_t)w;
    if (p->off < p->len) return;
    free(p->data);
    free(p);
    g_pending[fd] = nullptr;
    conn_watch(ep, fd, EPOLLIN);
}

static int listen_on(const char *spec, char *shown, size_t shown_len) {
    char host[256];
    const char *colon = strrchr(spec, ':');
    if (!colon) return -1;
    const char *h = spec;
    size_t hl = (size_t)(colon - spec);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') h++, hl -= 2;
    if (hl >= sizeof host) return -1;
    memcpy(host, h, hl);
    host[hl] = 0;
    addrinfo hints = {}, *res = nullptr;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST;
    if (getaddrinfo(host, colon + 1, &hints, &res) != 0 || !res) return -1;
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
        freeaddrinfo(res);
        if (fd >= 0) close(fd);
        return -1;
    }
    freeaddrinfo(res);
    sockaddr_storage ss;
    socklen_t len = sizeof ss;
    getsockname(fd, (sockaddr *)&ss, &len);
    int port = ntohs(ss.ss_family == AF_INET6 ? ((sockaddr_in6 *)&ss)->sin6_port : ((sockaddr_in *)&ss)->sin_port);
    snprintf(shown, shown_len, "%.*s:%d", (int)(colon - spec), spec, port);
    return fd;
}

int main(int argc, char **argv) {
    const char *spec = "127.0.0.1:0";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc) {
            spec = argv[++i];
        } else if (strncmp(argv[i], "--listen=", 9) == 0) {
            spec = argv[i] + 9;
        } else {
            fprintf(stderr, "usage: rawecho [--listen HOST:PORT]  (default 127.0.0.1:0)\n");
            return strcmp(argv[i], "--help") == 0 ? 0 : 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    g_max_fd = (int)rl.rlim_cur;
    g_pending = (pending **)calloc((size_t)g_max_fd, sizeof *g_pending);

    char shown[300];
    int lfd = listen_on(spec, shown, sizeof shown);
    if (lfd < 0) {
        fprintf(stderr, "rawecho: cannot listen on %s: %s\n", spec, strerror(errno));
        return 1;
    }
    int ep = epoll_create1(EPOLL_CLOEXEC);
    epoll_event ev = {};
    ev.events = EPOLLIN;
    ev.data.fd = lfd;
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    fprintf(stderr, "rawecho: listening on %s\n", shown);

    uint8_t *buf = (uint8_t *)malloc(RBUF_SIZE);
    epoll_event evs[MAX_EVENTS];
    while (!g_stop) {
        int n = epoll_wait(ep, evs, MAX_EVENTS, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == lfd) {
                for (;;) {
                    int c = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (c < 0) break;
                    if (c >= g_max_fd) {
                        close(c);
                        continue;
                    }
                    int one = 1;
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    epoll_event cev = {};
                    cev.events = EPOLLIN;
                    cev.data.fd = c;
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
                }
                continue;
            }
            if (evs[i].events & EPOLLOUT)
                conn_on_writable(ep, fd);
            else if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                conn_on_readable(ep, fd, buf);
        }
    }
    for (int fd = 0; fd < g_max_fd; fd++)
        if (g_pending[fd]) conn_close(ep, fd);
    free(g_pending);
    free(buf);
    close(ep);
    close(lfd);
    return 0;
}
