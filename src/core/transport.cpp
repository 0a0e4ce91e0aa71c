#include "core/transport.h"

#include <errno.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "core/conn.h"

static ssize_t tcp_read(wsr_server *, conn *c, void *buf, size_t len) {
    ssize_t n;
    do n = recv(c->fd, buf, len, 0);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

static ssize_t tcp_writev(wsr_server *, conn *c, const struct iovec *iov, int iovcnt) {
    struct msghdr m = {};
    m.msg_iov = (struct iovec *)iov;
    m.msg_iovlen = (size_t)iovcnt;
    ssize_t n;
    // MSG_NOSIGNAL: a peer that reset must not raise SIGPIPE in an embedding program.
    do n = sendmsg(c->fd, &m, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

static bool tcp_shutdown(wsr_server *, conn *c) {
    shutdown(c->fd, SHUT_WR);
    return true;
}

static size_t tcp_pending(wsr_server *, conn *c) {
    int n = 0;
    return ioctl(c->fd, FIONREAD, &n) == 0 && n > 0 ? (size_t)n : 0;
}

const transport_ops transport_tcp = {tcp_read, tcp_writev, tcp_shutdown, tcp_pending, nullptr, nullptr};
