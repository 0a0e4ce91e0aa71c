#include "proto/deflate.h"

#include <stdlib.h>
#include <string.h>

static const uint8_t TRAILER[4] = {0x00, 0x00, 0xff, 0xff};

int pmd_deflater_init(pmd_stream *s, int window_bits, int mem_level, int level) {
    memset(s, 0, sizeof *s);
    if (window_bits < 9) window_bits = 9;
    if (deflateInit2(&s->z, level, Z_DEFLATED, -window_bits, mem_level, Z_DEFAULT_STRATEGY) != Z_OK) return PMD_NOMEM;
    s->window_bits = (uint8_t)window_bits;
    s->ready = true;
    return PMD_OK;
}

int pmd_inflater_init(pmd_stream *s, int window_bits) {
    memset(s, 0, sizeof *s);
    if (inflateInit2(&s->z, -window_bits) != Z_OK) return PMD_NOMEM;
    s->window_bits = (uint8_t)window_bits;
    s->ready = true;
    return PMD_OK;
}

void pmd_deflater_free(pmd_stream *s) {
    if (s->ready) deflateEnd(&s->z);
    s->ready = false;
}

void pmd_inflater_free(pmd_stream *s) {
    if (s->ready) inflateEnd(&s->z);
    s->ready = false;
}

// Makes room for at least `want` more bytes, never beyond limit (+1 so that passing
// the limit is observable).
static bool reserve(pmd_buf *b, size_t want, size_t limit) {
    if (b->cap - b->len >= want) return true;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap - b->len < want) cap *= 2;
    if (cap > limit + 1) cap = limit + 1;
    if (cap <= b->len) return false;
    uint8_t *n = (uint8_t *)realloc(b->data, cap);
    if (!n) return false;
    b->data = n;
    b->cap = cap;
    return true;
}

int pmd_deflate_message(pmd_stream *s, const uint8_t *in, size_t len, pmd_buf *out, bool reset) {
    z_stream *z = &s->z;
    z->next_in = (Bytef *)in;
    z->avail_in = (uInt)len;
    size_t start = out->len;
    for (;;) {
        // deflateBound covers the worst case of incompressible input.
        if (!reserve(out, deflateBound(z, z->avail_in) + 16, SIZE_MAX - 1)) return PMD_NOMEM;
        z->next_out = out->data + out->len;
        z->avail_out = (uInt)(out->cap - out->len);
        int r = deflate(z, Z_SYNC_FLUSH);
        out->len = out->cap - z->avail_out;
        if (r != Z_OK && r != Z_BUF_ERROR) return PMD_CORRUPT;
        if (z->avail_in == 0 && z->avail_out > 0) break;
    }
    // A sync flush always ends with an empty stored block: 00 00 ff ff (§7.2.1).
    if (out->len - start >= 4 && memcmp(out->data + out->len - 4, TRAILER, 4) == 0) out->len -= 4;
    // An empty message right after another message's flush makes zlib emit nothing
    // (a repeated flush); its compressed form is the single byte 0x00 (§7.2.3.6).
    if (out->len == start) {
        if (!reserve(out, 1, SIZE_MAX - 1)) return PMD_NOMEM;
        out->data[out->len++] = 0x00;
    }
    if (reset) deflateReset(z);
    return PMD_OK;
}

// The peer ended the zlib stream (BFINAL). Start a new one; with context takeover the
// next message may still refer to this one's window, so carry it over.
static int restart(pmd_stream *s, bool keep_window) {
    uint8_t dict[32768];
    uInt dict_len = 0;
    if (keep_window) inflateGetDictionary(&s->z, dict, &dict_len);
    inflateReset(&s->z);
    if (dict_len && inflateSetDictionary(&s->z, dict, dict_len) != Z_OK) return PMD_CORRUPT;
    return PMD_OK;
}

// Inflates in[*off..len) into out until the input is used up (PMD_OK), the peer's
// stream ends (*ended), or out reaches `stop` bytes (PMD_MORE: call again, zlib keeps
// whatever it still has to write). *off is advanced past what zlib consumed.
static int inflate_some(pmd_stream *s, const uint8_t *in, size_t len, size_t *off, pmd_buf *out, size_t max,
                        size_t stop, bool reset, bool *ended) {
    z_stream *z = &s->z;
    z->next_in = (Bytef *)in + *off;
    z->avail_in = (uInt)(len - *off);
    int res = PMD_OK;
    for (;;) {
        if (out->len > max) {
            res = PMD_TOO_BIG;
            break;
        }
        if (out->len >= stop) {
            res = PMD_MORE;
            break;
        }
        if (!reserve(out, 4096, max)) {
            res = out->len >= max ? PMD_TOO_BIG : PMD_NOMEM;
            break;
        }
        size_t room = out->cap - out->len;
        if (room > stop - out->len) room = stop - out->len;
        z->next_out = out->data + out->len;
        z->avail_out = (uInt)room;
        int r = inflate(z, Z_SYNC_FLUSH);
        out->len += room - z->avail_out;
        if (r == Z_STREAM_END) {
            // Whatever follows the final block (the 0x00 of §7.2.3.4, our trailer)
            // carries no data.
            *ended = true;
            if (restart(s, !reset) != PMD_OK) res = PMD_CORRUPT;
            break;
        }
        if (r != Z_OK && r != Z_BUF_ERROR) {
            res = r == Z_MEM_ERROR ? PMD_NOMEM : PMD_CORRUPT;
            break;
        }
        // Done when the input is used up and the output did not fill: a full output
        // buffer may hide the rest of a match still to be copied.
        if (z->avail_out > 0 && (z->avail_in == 0 || r == Z_BUF_ERROR)) break;
    }
    *off = (size_t)(z->next_in - in);
    return res == PMD_OK && out->len > max ? PMD_TOO_BIG : res;
}

int pmd_inflate_step(pmd_stream *s, pmd_inflate_pos *pos, const uint8_t *in, size_t len, pmd_buf *out, size_t max,
                     size_t step, bool reset) {
    size_t stop = step > SIZE_MAX - out->len ? SIZE_MAX : out->len + step;
    int r = PMD_OK;
    if (pos->phase == 0) {
        r = inflate_some(s, in, len, &pos->in_off, out, max, stop, reset, &pos->ended);
        if (r == PMD_OK) pos->phase = pos->ended ? 2 : 1;
    }
    if (r == PMD_OK && pos->phase == 1) {
        size_t t = pos->trailer_off;
        r = inflate_some(s, TRAILER, sizeof TRAILER, &t, out, max, stop, reset, &pos->ended);
        pos->trailer_off = (uint8_t)t;
        if (r == PMD_OK) pos->phase = 2;
    }
    if (r == PMD_MORE) return r;
    // A stream that still wants output after the trailer was fully consumed is fine:
    // the sync point ends the message. Anything left in the window stays for the next.
    if (r == PMD_OK && reset && !pos->ended) inflateReset(&s->z);
    if (r != PMD_OK) inflateReset(&s->z); // the connection fails; leave no half state
    return r;
}

int pmd_inflate_message(pmd_stream *s, const uint8_t *in, size_t len, pmd_buf *out, size_t max, bool reset) {
    pmd_inflate_pos pos = {};
    return pmd_inflate_step(s, &pos, in, len, out, max, SIZE_MAX, reset);
}

size_t pmd_deflater_bytes(int window_bits, int mem_level) {
    if (window_bits < 9) window_bits = 9;
    return ((size_t)1 << (window_bits + 2)) + ((size_t)1 << (mem_level + 9)) + 6 * 1024;
}

size_t pmd_inflater_bytes(int window_bits) { return ((size_t)1 << window_bits) + 7 * 1024; }
