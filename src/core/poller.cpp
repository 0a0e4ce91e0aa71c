#include "core/poller.h"

#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

// Events taken per poll, at most per wakeup, and polls per wakeup (see poller.h).
enum { BATCH = 256, WAKEUP_EVENTS = 2 * BATCH, ROUNDS = 4 };

static uint32_t to_epoll(uint32_t events) {
    return (events & POLLER_IN ? (uint32_t)(EPOLLIN | EPOLLRDHUP) : 0u) | (events & POLLER_OUT ? (uint32_t)EPOLLOUT : 0u) |
           (events & POLLER_HUP ? (uint32_t)EPOLLRDHUP : 0u);
}

static uint32_t from_epoll(uint32_t ev) {
    uint32_t out = 0;
    // Errors and hang-ups surface as readable: the read then reports what happened.
    if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) out |= POLLER_IN;
    if (ev & (EPOLLOUT | EPOLLERR)) out |= POLLER_OUT;
    return out;
}

static void on_ready(uv_poll_t *h, int status, int) {
    poller *p = (poller *)h->data;
    if (status < 0) return;
    struct epoll_event evs[BATCH];
    int left = WAKEUP_EVENTS;
    for (int round = 0; round < ROUNDS && left > 0; round++) {
        int n = epoll_wait(p->epfd, evs, left < BATCH ? left : BATCH, 0);
        bool acted = false;
        for (int i = 0; i < n; i++)
            if (p->cb(p->ctx, evs[i].data.u64, from_epoll(evs[i].events))) acted = true;
        if (n <= 0 || !acted) return;
        left -= n;
        if (left > 0 && round + 1 < ROUNDS) p->round_done(p->ctx);
    }
}

int poller_init(poller *p, uv_loop_t *loop, poller_cb cb, poller_round_cb round_done, void *ctx) {
    p->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (p->epfd < 0) return -errno;
    p->cb = cb;
    p->round_done = round_done;
    p->ctx = ctx;
    int r = uv_poll_init(loop, &p->handle, p->epfd);
    if (r == 0) {
        p->handle.data = p;
        r = uv_poll_start(&p->handle, UV_READABLE, on_ready);
    }
    if (r != 0) {
        close(p->epfd);
        p->epfd = -1;
    }
    return r;
}

static int ctl(poller *p, int op, int fd, uint64_t tag, uint32_t events) {
    struct epoll_event ev = {};
    ev.events = to_epoll(events);
    ev.data.u64 = tag;
    return epoll_ctl(p->epfd, op, fd, &ev) == 0 ? 0 : -errno;
}

int poller_add(poller *p, int fd, uint64_t tag, uint32_t events) { return ctl(p, EPOLL_CTL_ADD, fd, tag, events); }
int poller_mod(poller *p, int fd, uint64_t tag, uint32_t events) { return ctl(p, EPOLL_CTL_MOD, fd, tag, events); }
int poller_del(poller *p, int fd) { return ctl(p, EPOLL_CTL_DEL, fd, 0, 0); }

void poller_free(poller *p) {
    if (p->epfd >= 0) close(p->epfd);
    p->epfd = -1;
}
