// The byte path between a connection and the protocol. Everything above reads and
// writes through one table of operations per server, so an encrypted transport, or a
// fuzzer's in-memory one, slots in without the connection logic knowing.
#pragma once

#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

struct conn;

struct transport_ops {
    // Bytes read (>0), 0 at end of stream, or -errno (-EAGAIN when nothing is ready).
    ssize_t (*read)(conn *c, void *buf, size_t len);
    // Bytes written, or -errno (-EAGAIN when the peer cannot take more now).
    ssize_t (*writev)(conn *c, const struct iovec *iov, int iovcnt);
    // Ends our direction of the stream (TCP FIN) while still reading.
    void (*shutdown)(conn *c);
    // Bytes received and not yet read (0 when unknown).
    size_t (*pending)(conn *c);
};

// Plain TCP on the connection's non-blocking socket.
extern const transport_ops transport_tcp;
