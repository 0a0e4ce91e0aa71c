// permessage-deflate on a connection: negotiating it at the handshake, choosing the
// stream (the server's shared pair or the connection's own), compressing what we send
// and decompressing what we receive. The RFC 7692 mechanics are in proto/deflate.*.
#pragma once

#include <stddef.h>
#include <stdint.h>

struct wsr_server;
struct conn;
struct h1_parser;
struct buf;

// Negotiates from the request's Sec-WebSocket-Extensions headers; on agreement sets
// the connection's parameters and writes the response value into ext (NUL-terminated).
// Returns false when compression is off for this connection.
bool compression_negotiate(wsr_server *srv, conn *c, const h1_parser *hs, char *ext, size_t cap);
// The agreement of an open connection as Sec-WebSocket-Extensions text; 0 for none.
size_t compression_describe(const conn *c, char *out, size_t cap);

// Decompresses a complete received message, writing at most about `step` bytes now.
// Returns 0 with *out/*out_len set (valid until the next call) when it is done;
// COMPRESSION_MORE when it stopped at `step` (the connection copied what it needs:
// go on with compression_inflate_resume in a later round); or the close code to fail
// with (1009, 1007, 1011).
enum { COMPRESSION_MORE = 1 };
uint16_t compression_inflate(wsr_server *srv, conn *c, const uint8_t *in, size_t len, size_t step,
                             const uint8_t **out, size_t *out_len);
// The next step of such a message; the same results.
uint16_t compression_inflate_resume(wsr_server *srv, conn *c, size_t step, const uint8_t **out, size_t *out_len);
// Drops a message waiting for its next step (the connection failed).
void compression_inflate_abort(wsr_server *srv, conn *c);

// Compresses a message we send, when it is worth it. Returns true with *out/*out_len
// (valid until the next call) for a frame with RSV1; false to send it as it is.
bool compression_deflate(wsr_server *srv, conn *c, const uint8_t *in, size_t len, const uint8_t **out,
                         size_t *out_len);

// The frame of a prepared message that this receiver should get: the shared
// compressed frame when its parameters allow one (built on first need), else the
// plain frame.
buf *compression_msg_frame(wsr_server *srv, conn *c, struct wsr_msg *m);

// Give back scratch output grown by a large message once its bytes were used, so one
// huge message does not pin its size for the life of the server: the inflated message
// once on_message returned (the application may send meanwhile), the deflated frame
// once it was copied into a queue.
void compression_release_inflated(wsr_server *srv);
void compression_release_deflated(wsr_server *srv);

void compression_conn_free(wsr_server *srv, conn *c);
void compression_server_free(wsr_server *srv);

struct wsr_msg {
    buf *plain;         // the whole frame, uncompressed
    buf *deflated;      // the same message compressed without context takeover, or NULL
    uint8_t z_state;    // 0 not tried, 1 built, 2 not worth it
    uint8_t z_bits;     // window bits deflated was made with
    uint8_t hdr_len;    // header bytes at the start of plain
    uint32_t refs;      // the application's references (wsr_msg_ref / wsr_msg_free)
};
