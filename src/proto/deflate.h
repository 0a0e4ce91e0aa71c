// RFC 7692 §7.2: compressing and decompressing one message with zlib's raw DEFLATE.
//
// Deflate: Z_SYNC_FLUSH, then the trailing 00 00 ff ff is stripped. Inflate: the
// trailer is appended back; a peer that ends its message with a BFINAL block (and the
// 0x00 byte of §7.2.3.4) ends the zlib stream, which is a reset point, keeping the
// window when context takeover applies. Output is capped: a decompression bomb costs
// at most the cap. No I/O.
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <zlib.h>

enum pmd_result { PMD_OK = 0, PMD_MORE = 1, PMD_TOO_BIG = -1, PMD_CORRUPT = -2, PMD_NOMEM = -3 };

// A growable output buffer owned by the caller (free(data) when done).
struct pmd_buf {
    uint8_t *data;
    size_t len, cap;
};

struct pmd_stream {
    z_stream z;
    uint8_t window_bits;
    bool ready;
};

// window_bits 8..15. A raw deflater cannot use 8 (zlib refuses it); it gets 9, whose
// longest match distance (512 - 262 = 250) still fits a peer's 256-byte window.
int pmd_deflater_init(pmd_stream *s, int window_bits, int mem_level, int level);
int pmd_inflater_init(pmd_stream *s, int window_bits);
void pmd_deflater_free(pmd_stream *s);
void pmd_inflater_free(pmd_stream *s);

// Compresses a whole message into out (appended). reset: no context takeover.
int pmd_deflate_message(pmd_stream *s, const uint8_t *in, size_t len, pmd_buf *out, bool reset);
// Decompresses a whole message (without the trailer) into out (appended), failing
// with PMD_TOO_BIG as soon as out would pass max bytes. reset: no context takeover.
int pmd_inflate_message(pmd_stream *s, const uint8_t *in, size_t len, pmd_buf *out, size_t max, bool reset);

// Where a message's decompression stopped, so that it can go on later.
struct pmd_inflate_pos {
    size_t in_off;       // message bytes consumed
    uint8_t trailer_off; // trailer bytes consumed
    uint8_t phase;       // 0 message, 1 trailer, 2 done
    bool ended;          // the peer ended its stream (BFINAL) inside the message
};

// The same, in steps: writes about `step` more bytes at most, then returns PMD_MORE;
// call again with the same stream, pos, in and out (nothing else may use the stream
// meanwhile). Start with pos zeroed. The result of the last step is the result of the
// message.
int pmd_inflate_step(pmd_stream *s, pmd_inflate_pos *pos, const uint8_t *in, size_t len, pmd_buf *out, size_t max,
                     size_t step, bool reset);

// zlib's memory for a stream (from zconf.h's formulas), for documentation and limits.
size_t pmd_deflater_bytes(int window_bits, int mem_level);
size_t pmd_inflater_bytes(int window_bits);
