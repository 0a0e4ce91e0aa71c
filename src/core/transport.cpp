#include "core/transport.h"

#include <errno.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "core/conn.h"

ssize_t transport_read(conn *c, void *buf, size_t len) {
    ssize_t n;
    do n = recv(c->fd, buf, len, 0);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

ssize_t transport_writev(conn *c, const struct iovec *iov, int iovcnt) {
    struct msghdr m = {};
    m.msg_iov = (struct iovec *)iov;
    m.msg_iovlen = (size_t)iovcnt;
    ssize_t n;
    // MSG_NOSIGNAL: a peer that reset must not raise SIGPIPE in an embedding program.
    do n = sendmsg(c->fd, &m, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

void transport_shutdown(conn *c) { shutdown(c->fd, SHUT_WR); }

size_t transport_pending(conn *c) {
    int n = 0;
    return ioctl(c->fd, FIONREAD, &n) == 0 && n > 0 ? (size_t)n : 0;
}
