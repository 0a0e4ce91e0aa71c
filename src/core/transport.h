// The byte path between a socket and the protocol. Everything above reads and writes
// through these calls, so an encrypted transport can slot in here without the
// connection logic knowing.
#pragma once

#include <sys/types.h>
#include <sys/uio.h>

struct conn;

// Bytes read (>0), 0 at end of stream, or -errno (-EAGAIN when nothing is ready).
ssize_t transport_read(conn *c, void *buf, size_t len);
// Bytes written, or -errno (-EAGAIN when the socket buffer is full).
ssize_t transport_writev(conn *c, const struct iovec *iov, int iovcnt);
// Ends our direction of the stream (TCP FIN) while still reading.
void transport_shutdown(conn *c);
// Bytes received and not yet read (0 when unknown).
size_t transport_pending(conn *c);
