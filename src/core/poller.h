// Readiness for every socket through one uv_poll_t.
//
// A uv_poll_t costs 160 bytes; one per connection would be most of the memory an idle
// connection is allowed. Instead the server keeps its own epoll set and libuv watches
// just that set's fd: when it is readable, the ready sockets are collected with a
// non-blocking epoll_wait and dispatched by tag. Linux only.
//
// While a poll finds sockets ready and some of them are acted on (see poller_cb), the set
// is polled again: what arrived while the last batch was handled is taken in without a
// trip through the loop, whose every iteration costs several hundred instructions
// (bench/run-instr.sh: 644 -> 597 per echoed message at depth 1; epoll_wait calls per
// message at depth 1, counted natively with perf's syscall tracepoints, 0.27-0.53 before
// and 0.20-0.27 after, docs/benchmarks.md). Work per wakeup stays bounded, as libuv bounds its own polling: after a few
// rounds, and after two full batches at most, control goes back to the loop so timers,
// the flush pass and the embedder's handles run. Sockets are level-triggered, so whatever
// is left is reported at the next wakeup.
#pragma once

#include <stdint.h>
#include <uv.h>

// POLLER_HUP alone watches a socket only for the peer hanging up (reported as POLLER_IN).
enum { POLLER_IN = 1, POLLER_OUT = 2, POLLER_HUP = 4 };

// True when the event was acted on (a read, a write, an accept). A round of events none
// of which was, such as sockets whose input is held over or a listener whose accepts
// this wakeup are spent, is not a reason to poll again.
typedef bool (*poller_cb)(void *ctx, uint64_t tag, uint32_t events);
// Runs after a round that acted on some event, before the set is polled again: what the
// round queued can leave then, as it would at the end of a loop iteration, rather than
// pile up over several rounds.
typedef void (*poller_round_cb)(void *ctx);

struct poller {
    int epfd;
    uv_poll_t handle;
    poller_cb cb;
    poller_round_cb round_done;
    void *ctx;
};

int poller_init(poller *p, uv_loop_t *loop, poller_cb cb, poller_round_cb round_done, void *ctx);
// events: POLLER_IN | POLLER_OUT. The tag comes back to cb. 0 or -errno.
int poller_add(poller *p, int fd, uint64_t tag, uint32_t events);
int poller_mod(poller *p, int fd, uint64_t tag, uint32_t events);
int poller_del(poller *p, int fd);
// Closes the epoll set; the uv_poll_t must have been closed (uv_close) before.
void poller_free(poller *p);
