#include "core/compression.h"

#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/conn.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/server.h"
#include "proto/deflate.h"
#include "proto/extensions.h"
#include "proto/frame.h"
#include "proto/handshake.h"

// A received message inflated over several rounds: its compressed bytes, the output
// so far and where zlib stopped. The connection's own inflater carries the state (a
// copy of the shared one when that was in use, so the others can go on with it).
struct pmd_pending {
    uint8_t *in;
    size_t in_len;
    pmd_buf out;
    pmd_inflate_pos pos;
};

// Streams of one connection, for directions with context takeover (their window must
// survive between messages) or with a window the shared streams cannot serve; and a
// message being inflated over several rounds.
struct pmd_conn {
    pmd_stream inflate;
    pmd_stream deflate;
    pmd_pending pending; // in_len != 0 while a message waits for its next step
};

// Scratch output above this is given back after use rather than kept for the next
// message.
enum { SCRATCH_KEEP = 256 * 1024 };

static int effective_bits(int bits) { return bits < 9 ? 9 : bits; }
static uint8_t server_bits(const conn *c) { return c->pmd_bits & 15; }
static uint8_t client_bits(const conn *c) { return c->pmd_bits >> 4; }

bool compression_negotiate(wsr_server *srv, conn *c, const h1_parser *hs, char *ext, size_t cap) {
    if (srv->pmd_cfg.mode == PMD_OFF) return false;
    pmd_params p = {};
    uint16_t pos = 0;
    h1_span v;
    while (!p.enabled && h1_header_next(hs, "Sec-WebSocket-Extensions", &pos, &v))
        pmd_negotiate(&srv->pmd_cfg, h1_span_ptr(hs, v), v.len, &p);
    if (!p.enabled || !pmd_write_response(&p, ext, cap)) return false;
    c->pmd = (uint8_t)(CP_ON | (p.server_no_context_takeover ? CP_SRV_NCT : 0) |
                       (p.client_no_context_takeover ? CP_CLI_NCT : 0));
    c->pmd_bits = (uint8_t)(p.server_window_bits | (p.client_window_bits << 4));
    return true;
}

size_t compression_describe(const conn *c, char *out, size_t cap) {
    if (!(c->pmd & CP_ON)) return 0;
    pmd_params p = {};
    p.enabled = true;
    p.server_no_context_takeover = c->pmd & CP_SRV_NCT;
    p.client_no_context_takeover = c->pmd & CP_CLI_NCT;
    p.server_window_bits = c->pmd_bits & 15;
    p.client_window_bits = c->pmd_bits >> 4;
    p.server_window_requested = p.server_window_bits != 15;
    return pmd_write_response(&p, out, cap);
}

// A connection's own streams live beside the table, by slot, not in struct conn: most
// connections never have any (shared mode), and those 8 bytes are paid by every idle
// connection otherwise. The array is allocated when the first connection needs one.
static pmd_conn *streams_of(const wsr_server *srv, const conn *c) {
    return c->idx < srv->zs_cap ? srv->zs[c->idx] : nullptr;
}

static pmd_conn *conn_streams(wsr_server *srv, conn *c) {
    if (pmd_conn *z = streams_of(srv, c)) return z;
    if (!conn_table_side_fit((void **)&srv->zs, &srv->zs_cap, c->idx, sizeof *srv->zs)) return nullptr;
    return srv->zs[c->idx] = (pmd_conn *)mem_calloc(1, sizeof(pmd_conn));
}

static void streams_free(wsr_server *srv, conn *c) {
    free(srv->zs[c->idx]);
    srv->zs[c->idx] = nullptr;
}

// The scratch buffers count in the server's memory gauge while they are large, so a
// burst of big messages is given back to the system once it is over.
static void scratch_grew(wsr_server *srv, const pmd_buf *b, size_t old_cap) {
    if (b->cap != old_cap) server_mem_change(srv, (int64_t)b->cap - (int64_t)old_cap);
}

static void scratch_trim(wsr_server *srv, pmd_buf *b) {
    if (b->cap > SCRATCH_KEEP) {
        server_mem_change(srv, -(int64_t)b->cap);
        free(b->data);
        *b = pmd_buf{};
    }
    b->len = 0;
}

void compression_release_inflated(wsr_server *srv) { scratch_trim(srv, &srv->z_in); }
void compression_release_deflated(wsr_server *srv) { scratch_trim(srv, &srv->z_out); }

// The stream to inflate this connection's next message with, or NULL (no memory).
static pmd_stream *inflater_for(wsr_server *srv, conn *c, bool *reset) {
    *reset = c->pmd & CP_CLI_NCT;
    // A stream that resets after each message can serve every connection (one that
    // stops mid-message continues on a copy): a 15-bit window accepts whatever window
    // the client uses.
    pmd_stream *s;
    int bits = 15;
    if (*reset) {
        s = &srv->z_inflate;
    } else {
        pmd_conn *z = conn_streams(srv, c);
        if (!z) return nullptr;
        s = &z->inflate;
        bits = client_bits(c);
    }
    if (!s->ready && pmd_inflater_init(s, bits) != PMD_OK) return nullptr;
    return s;
}

static uint16_t close_code_of(int r) {
    if (r == PMD_TOO_BIG) return WS_CLOSE_TOO_BIG;
    if (r == PMD_CORRUPT) return WS_CLOSE_BAD_DATA;
    return WS_CLOSE_INTERNAL;
}

// The connection's own pmd_conn is only kept while it holds something: idle connections
// in shared mode stay at their fixed size.
static void release_streams_if_unused(wsr_server *srv, conn *c) {
    pmd_conn *z = streams_of(srv, c);
    if (z && !z->inflate.ready && !z->deflate.ready && !z->pending.in_len) streams_free(srv, c);
}

// The message did not finish within the round: the connection keeps its bytes, its
// output so far (the scratch buffer changes hands) and the stream state.
static uint16_t suspend(wsr_server *srv, conn *c, pmd_stream *s, const uint8_t *in, size_t len,
                        const pmd_inflate_pos &pos) {
    pmd_conn *z = conn_streams(srv, c);
    uint8_t *copy = z ? (uint8_t *)mem_alloc(len ? len : 1) : nullptr;
    bool streams_ok = z && (s == &z->inflate || inflateCopy(&z->inflate.z, &s->z) == Z_OK);
    if (!copy || !streams_ok) {
        free(copy);
        inflateReset(&s->z);
        release_streams_if_unused(srv, c);
        return WS_CLOSE_INTERNAL;
    }
    if (s != &z->inflate) {
        z->inflate.ready = true;
        z->inflate.window_bits = s->window_bits;
        inflateReset(&s->z); // the shared stream serves the next connection afresh
    }
    memcpy(copy, in, len);
    server_mem_change(srv, (int64_t)len);
    z->pending = pmd_pending{copy, len, srv->z_in, pos};
    srv->z_in = pmd_buf{};
    return COMPRESSION_MORE;
}

uint16_t compression_inflate(wsr_server *srv, conn *c, const uint8_t *in, size_t len, size_t step,
                             const uint8_t **out, size_t *out_len) {
    bool reset;
    pmd_stream *s = inflater_for(srv, c, &reset);
    if (!s) return WS_CLOSE_INTERNAL;
    srv->z_in.len = 0;
    size_t old_cap = srv->z_in.cap;
    pmd_inflate_pos pos = {};
    int r = pmd_inflate_step(s, &pos, in, len, &srv->z_in, (size_t)srv->limits.max_message, step, reset);
    scratch_grew(srv, &srv->z_in, old_cap);
    if (r == PMD_MORE) return suspend(srv, c, s, in, len, pos);
    if (r != PMD_OK) {
        scratch_trim(srv, &srv->z_in);
        return close_code_of(r);
    }
    srv->stats.messages_compressed_in++;
    *out = srv->z_in.data;
    *out_len = srv->z_in.len;
    return 0;
}

uint16_t compression_inflate_resume(wsr_server *srv, conn *c, size_t step, const uint8_t **out, size_t *out_len) {
    pmd_conn *z = streams_of(srv, c);
    pmd_pending &p = z->pending;
    bool reset = c->pmd & CP_CLI_NCT;
    size_t old_cap = p.out.cap;
    int r = pmd_inflate_step(&z->inflate, &p.pos, p.in, p.in_len, &p.out, (size_t)srv->limits.max_message, step, reset);
    scratch_grew(srv, &p.out, old_cap);
    if (r == PMD_MORE) return COMPRESSION_MORE;
    // Finished either way: the output goes back to the server's scratch, where a
    // message that finished in one step would be.
    server_mem_change(srv, -(int64_t)srv->z_in.cap);
    free(srv->z_in.data);
    srv->z_in = p.out;
    free(p.in);
    server_mem_change(srv, -(int64_t)p.in_len);
    p = pmd_pending{};
    if (reset) pmd_inflater_free(&z->inflate); // a copy of the shared stream: done with it
    release_streams_if_unused(srv, c);
    if (r != PMD_OK) {
        scratch_trim(srv, &srv->z_in);
        return close_code_of(r);
    }
    srv->stats.messages_compressed_in++;
    *out = srv->z_in.data;
    *out_len = srv->z_in.len;
    return 0;
}

// The server's no-context-takeover deflater serves a connection when its agreed window
// is the one the deflater was made with.
static pmd_stream *shared_deflater(wsr_server *srv) {
    pmd_stream *s = &srv->z_deflate;
    const pmd_config &cfg = srv->pmd_cfg;
    if (!s->ready && pmd_deflater_init(s, cfg.server_window_bits, srv->opts.deflate_mem_level,
                                       srv->opts.deflate_level) != PMD_OK)
        return nullptr;
    return s;
}

static bool shared_fits(const wsr_server *srv, const conn *c) {
    return (c->pmd & CP_SRV_NCT) && effective_bits(server_bits(c)) == effective_bits(srv->pmd_cfg.server_window_bits);
}

bool compression_deflate(wsr_server *srv, conn *c, const uint8_t *in, size_t len, const uint8_t **out,
                         size_t *out_len) {
    if (!(c->pmd & CP_ON) || len < srv->opts.deflate_threshold) return false;
    bool reset = c->pmd & CP_SRV_NCT;
    pmd_stream *s;
    if (shared_fits(srv, c)) {
        s = shared_deflater(srv);
    } else if (srv->pmd_cfg.mode == PMD_SHARED) {
        return false; // shared mode keeps memory flat: no stream of its own, send plain
    } else {
        pmd_conn *z = conn_streams(srv, c);
        s = z ? &z->deflate : nullptr;
        if (s && !s->ready &&
            pmd_deflater_init(s, server_bits(c), srv->opts.deflate_mem_level, srv->opts.deflate_level) != PMD_OK)
            s = nullptr;
    }
    if (!s) return false;
    srv->z_out.len = 0;
    size_t old_cap = srv->z_out.cap;
    int r = pmd_deflate_message(s, in, len, &srv->z_out, reset);
    scratch_grew(srv, &srv->z_out, old_cap);
    if (r != PMD_OK) {
        log_warn("deflate failed; message sent uncompressed");
        return false;
    }
    // Without takeover each message stands alone, so a poor result can still be sent
    // plain. With takeover the peer's window must see this message compressed.
    if (reset && srv->z_out.len >= len) return false;
    srv->stats.messages_compressed_out++;
    *out = srv->z_out.data;
    *out_len = srv->z_out.len;
    return true;
}

buf *compression_msg_frame(wsr_server *srv, conn *c, wsr_msg *m) {
    size_t payload = m->plain->len - m->hdr_len;
    if (!(c->pmd & CP_ON) || payload < srv->opts.deflate_threshold || !shared_fits(srv, c)) return m->plain;
    if (m->z_state == 0) {
        m->z_state = 2;
        pmd_stream *s = shared_deflater(srv);
        srv->z_out.len = 0;
        size_t old_cap = srv->z_out.cap;
        bool ok = s && pmd_deflate_message(s, m->plain->data + m->hdr_len, payload, &srv->z_out, true) == PMD_OK;
        scratch_grew(srv, &srv->z_out, old_cap);
        if (ok && srv->z_out.len < payload) {
            buf *b = buf_new(FRAME_MAX_HEADER + srv->z_out.len);
            if (b) {
                uint8_t op = m->plain->data[0] & 0x0F;
                b->len = (uint32_t)frame_write_header(b->data, op, true, true, srv->z_out.len, nullptr);
                memcpy(b->data + b->len, srv->z_out.data, srv->z_out.len);
                b->len += (uint32_t)srv->z_out.len;
                b->flags |= BUF_SHARED;
                m->deflated = b;
                m->z_state = 1;
                srv->stats.broadcast_compressions++;
            }
        }
        scratch_trim(srv, &srv->z_out);
    }
    if (m->z_state != 1) return m->plain;
    srv->stats.messages_compressed_out++;
    return m->deflated;
}

// Frees a pending message's buffers, with their accounting.
static void pending_free(wsr_server *srv, pmd_pending *p) {
    server_mem_change(srv, -(int64_t)(p->in_len + p->out.cap));
    free(p->in);
    free(p->out.data);
    *p = pmd_pending{};
}

void compression_inflate_abort(wsr_server *srv, conn *c) {
    pmd_conn *z = streams_of(srv, c);
    if (!z || !z->pending.in_len) return;
    pending_free(srv, &z->pending);
    // The stream stopped mid-message: a copy of the shared one goes, a connection's own
    // (context takeover) can never be used again, as the connection is failing.
    pmd_inflater_free(&z->inflate);
    release_streams_if_unused(srv, c);
}

void compression_conn_free(wsr_server *srv, conn *c) {
    pmd_conn *z = streams_of(srv, c);
    if (!z) return;
    pending_free(srv, &z->pending);
    pmd_inflater_free(&z->inflate);
    pmd_deflater_free(&z->deflate);
    streams_free(srv, c);
}

void compression_server_free(wsr_server *srv) {
    pmd_inflater_free(&srv->z_inflate);
    pmd_deflater_free(&srv->z_deflate);
    free(srv->z_in.data);
    free(srv->z_out.data);
    srv->z_in = srv->z_out = pmd_buf{};
}
