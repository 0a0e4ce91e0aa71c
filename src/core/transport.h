// The byte path between a connection and the protocol. Everything above reads and
// writes through a table of operations, chosen per connection (plain TCP, or TLS for a
// connection from a TLS listener), so an encrypted transport, or a fuzzer's in-memory
// one, slots in without the connection logic knowing. Operations get the server, where
// a transport keeps its per-connection state (see core/tls.h).
#pragma once

#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "wsr/wsr.h"

struct conn;

// read's answer when nothing can be read until the socket is writable (TLS: the
// handshake has bytes to send first). The caller arms writability and reads again then.
enum { TRANSPORT_WANT_WRITE = -1000000 };

struct transport_ops {
    // Bytes read (>0), 0 at end of stream, -errno (-EAGAIN when nothing is ready), or
    // TRANSPORT_WANT_WRITE.
    ssize_t (*read)(wsr_server *srv, conn *c, void *buf, size_t len);
    // Bytes written, or -errno (-EAGAIN when the peer cannot take more now).
    ssize_t (*writev)(wsr_server *srv, conn *c, const struct iovec *iov, int iovcnt);
    // Ends our direction of the stream (TLS close_notify, TCP FIN) while still reading.
    // False when it could not finish for a full socket: call again once it is writable.
    bool (*shutdown)(wsr_server *srv, conn *c);
    // Bytes received on the socket and not yet read (0 when unknown).
    size_t (*pending)(wsr_server *srv, conn *c);
    // Optional. Bytes the transport already holds for read: they are read now, as no
    // readiness event will come for them.
    size_t (*buffered)(wsr_server *srv, conn *c);
    // Optional. The connection is being destroyed: release its transport state.
    void (*close)(wsr_server *srv, conn *c);
};

// Plain TCP on the connection's non-blocking socket.
extern const transport_ops transport_tcp;
