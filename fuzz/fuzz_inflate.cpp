// Fuzz target for permessage-deflate compression (src/proto/deflate.*).
//
// Input layout (4 bytes of settings, then data):
//   [0] bit0 part: 0 inflate arbitrary bytes, 1 deflate-then-inflate round trip;
//       bits1-3 (part 0) inflate in steps (pmd_inflate_step, as a server does over
//       several rounds) of: all at once, 1, 3, 17, 100, 1000, 4096, 65536 bytes
//
// Part 0, inflate (a peer's compressed messages, as frames_feed hands them over):
//   [1] bits0-2 window bits - 8; bit3 reset after message 1; bit4 reset after message 2;
//       bits5-6 cap class: 64 KiB, 1 KiB, 255 bytes, 0
//   [2..3] length of message 1 (little-endian, clipped); message 2 is the rest.
// Both messages go through one stream, as one connection's messages do. Checks: the
// result is OK, TOO_BIG or CORRUPT; the output buffer never grows past cap + 1 bytes
// and an OK message holds at most cap; on a fresh stream (message 1, and message 2
// after a reset or a failure) the result matches zlib's own raw inflate of message +
// 00 00 ff ff: the same bytes when it fits the cap, TOO_BIG when zlib makes more than
// cap bytes, CORRUPT when zlib reports a data error.
//
// Part 1, round trip (our deflater to our inflater, what a client of ours would see):
//   [1] bits0-2 window bits - 8; bit3 context takeover (no reset); bit4 the inflater
//       also keeps its window when the deflater resets; bit5 the inflater uses window 15
//   [2] bits0-3 zlib level (1..9), bits4-7 memLevel (1..9)
//   [3] bits0-3 repeat count - 1 for each message's plaintext (compressible, long
//       distances); bits4-7 message count - 1
//   The plaintext is split into messages with fuzz_splitter (max chunk from the data's
//   first byte), empty ones included. Every message must inflate back to exactly its
//   plaintext.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "fuzz_util.h"
#include "proto/deflate.h"

enum { SETTINGS_LEN = 4 };

static const uint8_t TRAILER[4] = {0x00, 0x00, 0xff, 0xff};

enum ref_result { REF_OK, REF_TOO_BIG, REF_CORRUPT };

// One message in steps of at most `step` bytes of output each; the result of the last.
static int inflate_in_steps(pmd_stream *st, const uint8_t *in, size_t len, pmd_buf *out, size_t cap, bool reset,
                            size_t step) {
    pmd_inflate_pos pos = {};
    int r;
    do {
        size_t before = out->len;
        r = pmd_inflate_step(st, &pos, in, len, out, cap, step, reset);
        FUZZ_CHECK(out->len - before <= step, "a step of %zu wrote %zu bytes", step, out->len - before);
        FUZZ_CHECK(r != PMD_MORE || out->len > before, "a step made no progress");
    } while (r == PMD_MORE);
    return r;
}

// zlib alone: raw inflate of in + trailer into a buffer of cap + 1 bytes, stopping at the
// end of the stream. Written separately from deflate.cpp's loop.
static ref_result ref_inflate(int window_bits, const uint8_t *in, size_t len, size_t cap, uint8_t *out,
                              size_t *out_len) {
    uint8_t *msg = (uint8_t *)malloc(len + 4);
    FUZZ_CHECK(msg != nullptr, "out of memory");
    if (len) memcpy(msg, in, len);
    memcpy(msg + len, TRAILER, 4);
    z_stream z;
    memset(&z, 0, sizeof z);
    FUZZ_CHECK(inflateInit2(&z, -window_bits) == Z_OK, "inflateInit2(%d)", -window_bits);
    z.next_in = msg;
    z.avail_in = (uInt)(len + 4);
    z.next_out = out;
    z.avail_out = (uInt)(cap + 1);
    int r = inflate(&z, Z_SYNC_FLUSH);
    *out_len = cap + 1 - z.avail_out;
    inflateEnd(&z);
    free(msg);
    if (*out_len > cap) return REF_TOO_BIG;
    if (r == Z_DATA_ERROR || r == Z_NEED_DICT) return REF_CORRUPT;
    FUZZ_CHECK(r == Z_OK || r == Z_STREAM_END || r == Z_BUF_ERROR, "zlib inflate returned %d", r);
    return REF_OK;
}

// Whether zlib finds a data error anywhere in in + trailer (output discarded, at most
// 4 MiB of it looked at).
// With out_step 1 the output is taken one byte per call, so every match must reach back
// only into the window: zlib checks a distance against what it can see (the window
// plus this call's output), not against window_bits, so one large output buffer lets a
// stream use distances past a small window. Found by this target: window 8, a match
// 300+ bytes back: one big buffer inflates it, our 4 KiB steps (rightly) refuse it.
static bool ref_corrupt_anywhere(int window_bits, const uint8_t *in, size_t len, size_t out_step = 64 * 1024) {
    uint8_t *msg = (uint8_t *)malloc(len + 4);
    FUZZ_CHECK(msg != nullptr, "out of memory");
    if (len) memcpy(msg, in, len);
    memcpy(msg + len, TRAILER, 4);
    static uint8_t sink[64 * 1024];
    z_stream z;
    memset(&z, 0, sizeof z);
    FUZZ_CHECK(inflateInit2(&z, -window_bits) == Z_OK, "inflateInit2(%d)", -window_bits);
    z.next_in = msg;
    z.avail_in = (uInt)(len + 4);
    int r = Z_OK;
    for (int i = 0; i < 64 && r == Z_OK; i++) {
        size_t made = 0;
        do {
            z.next_out = sink;
            z.avail_out = (uInt)(out_step < sizeof sink ? out_step : sizeof sink);
            r = inflate(&z, Z_SYNC_FLUSH);
            made += (size_t)(z.next_out - sink);
        } while (r == Z_OK && z.avail_out == 0 && made < sizeof sink);
        if (r == Z_OK && z.avail_out > 0 && z.avail_in == 0) break;
    }
    inflateEnd(&z);
    free(msg);
    return r == Z_DATA_ERROR || r == Z_NEED_DICT;
}

static void inflate_part(const uint8_t *s, const uint8_t *d, size_t n) {
    int wbits = 8 + (s[1] & 7);
    bool reset[2] = {(s[1] & 8) != 0, (s[1] & 16) != 0};
    static const size_t caps[4] = {64 * 1024, 1024, 255, 0};
    size_t cap = caps[(s[1] >> 5) & 3];
    size_t l1 = (size_t)s[2] | (size_t)s[3] << 8;
    if (l1 > n) l1 = n;
    const uint8_t *msg[2] = {d, d + l1};
    size_t len[2] = {l1, n - l1};

    static const size_t steps[8] = {SIZE_MAX, 1, 3, 17, 100, 1000, 4096, 65536};
    size_t step = steps[(s[0] >> 1) & 7];
    pmd_stream st;
    FUZZ_CHECK(pmd_inflater_init(&st, wbits) == PMD_OK, "inflater init %d", wbits);
    uint8_t *ref = (uint8_t *)malloc(cap + 1);
    FUZZ_CHECK(ref != nullptr, "out of memory");
    bool fresh = true;
    for (int m = 0; m < 2; m++) {
        // Exact-size copy: ASan sees reads past the message.
        uint8_t *in = (uint8_t *)malloc(len[m] ? len[m] : 1);
        FUZZ_CHECK(in != nullptr, "out of memory");
        if (len[m]) memcpy(in, msg[m], len[m]);
        pmd_buf out = {};
        int r = inflate_in_steps(&st, in, len[m], &out, cap, reset[m], step);
        FUZZ_CHECK(r == PMD_OK || r == PMD_TOO_BIG || r == PMD_CORRUPT, "message %d: result %d", m + 1, r);
        FUZZ_CHECK(out.cap <= cap + 1, "message %d: buffer grew to %zu bytes with cap %zu", m + 1, out.cap, cap);
        FUZZ_CHECK(out.len <= out.cap, "message %d: len %zu > cap %zu", m + 1, out.len, out.cap);
        if (r == PMD_OK) FUZZ_CHECK(out.len <= cap, "message %d: OK with %zu bytes over cap %zu", m + 1, out.len, cap);
        if (fresh) {
            size_t rn = 0;
            ref_result rr = ref_inflate(wbits, in, len[m], cap, ref, &rn);
            if (rr == REF_OK) {
                // A distance past the window is refused or not depending on where the
                // output buffer's boundaries fall (see ref_corrupt_anywhere); refusing
                // is right.
                FUZZ_CHECK(r == PMD_OK || (r == PMD_CORRUPT && ref_corrupt_anywhere(wbits, in, len[m], 1)),
                           "message %d: zlib inflates %zu bytes, we say %d", m + 1, rn, r);
                if (r != PMD_OK) goto next;
                FUZZ_CHECK(out.len == rn && (rn == 0 || memcmp(out.data, ref, rn) == 0),
                           "message %d: %zu bytes differ from zlib's %zu", m + 1, out.len, rn);
            } else if (rr == REF_TOO_BIG) {
                // zlib may fill the output exactly to the cap and find a data error in
                // the same call (for example a stored block with bad lengths right after
                // the byte that filled it: no output space is needed to check that), so
                // CORRUPT is a right answer too when the data is corrupt further on.
                // (Found by this target at cap 0: f2 00 00 ..., a literal then a bad
                // stored block.) Either way the message is refused within the cap.
                // Past-window distances (below) can also make the one-buffer reference
                // run past the cap where we stop earlier: judged one byte per call.
                FUZZ_CHECK(r == PMD_TOO_BIG || (r == PMD_CORRUPT && ref_corrupt_anywhere(wbits, in, len[m], 1)),
                           "message %d: zlib passes the cap %zu, we say %d", m + 1, cap, r);
            } else {
                // zlib may fail only after the cap was passed; we stop at the cap first.
                FUZZ_CHECK(r == PMD_CORRUPT, "message %d: zlib finds corrupt data, we say %d (%zu bytes)", m + 1, r,
                           out.len);
            }
        }
    next:
        fresh = reset[m] || r != PMD_OK;
        free(out.data);
        free(in);
    }
    free(ref);
    pmd_inflater_free(&st);
}

static void roundtrip_part(const uint8_t *s, const uint8_t *d, size_t n) {
    int wbits = 8 + (s[1] & 7);
    bool takeover = (s[1] & 8) != 0;
    bool inflater_keeps = (s[1] & 16) != 0;
    int ibits = (s[1] & 32) ? 15 : wbits;
    int level = 1 + (s[2] & 15) % 9;
    int mem = 1 + (s[2] >> 4) % 9;
    unsigned repeat = 1 + (s[3] & 15);
    unsigned nmsg = 1 + (s[3] >> 4);
    if (n == 0) return;
    fuzz_splitter split;
    fuzz_splitter_init(&split, d[0], d[0]);
    d++;
    n--;

    pmd_stream def, inf;
    FUZZ_CHECK(pmd_deflater_init(&def, wbits, mem, level) == PMD_OK, "deflater init w%d m%d l%d", wbits, mem, level);
    FUZZ_CHECK(pmd_inflater_init(&inf, ibits) == PMD_OK, "inflater init %d", ibits);
    pmd_buf z = {}, back = {};
    size_t pos = 0;
    for (unsigned m = 0; m < nmsg; m++) {
        // 0..left bytes: empty messages too, also after the plaintext is used up (an
        // empty message after a flush is the one zlib compresses to nothing, §7.2.3.6).
        size_t k = m + 1 == nmsg ? n - pos : fuzz_splitter_next(&split, n - pos + 1) - 1;
        size_t plen = k * repeat;
        uint8_t *plain = (uint8_t *)malloc(plen ? plen : 1);
        FUZZ_CHECK(plain != nullptr, "out of memory");
        for (unsigned r = 0; r < repeat; r++)
            if (k) memcpy(plain + r * k, d + pos, k);
        pos += k;
        z.len = 0;
        FUZZ_CHECK(pmd_deflate_message(&def, plain, plen, &z, !takeover) == PMD_OK, "deflate message %u", m);
        FUZZ_CHECK(z.len > 0, "message %u compressed to nothing", m);
        FUZZ_CHECK(!(z.len >= 4 && memcmp(z.data + z.len - 4, TRAILER, 4) == 0),
                   "message %u still ends with the 00 00 ff ff trailer", m);
        // The peer receives exactly the compressed bytes: an exact-size copy.
        uint8_t *wire = (uint8_t *)malloc(z.len);
        FUZZ_CHECK(wire != nullptr, "out of memory");
        memcpy(wire, z.data, z.len);
        back.len = 0;
        // An inflater may reset only when the deflater does.
        bool ireset = !takeover && !inflater_keeps;
        int r = pmd_inflate_message(&inf, wire, z.len, &back, plen, ireset);
        FUZZ_CHECK(r == PMD_OK, "message %u (%zu bytes, w%d/%d l%d m%d takeover %d): inflate says %d", m, plen, wbits,
                   ibits, level, mem, takeover, r);
        FUZZ_CHECK(back.len == plen && (plen == 0 || memcmp(back.data, plain, plen) == 0),
                   "message %u: round trip gave %zu bytes for %zu (w%d/%d l%d m%d takeover %d)", m, back.len, plen,
                   wbits, ibits, level, mem, takeover);
        free(wire);
        free(plain);
    }
    free(z.data);
    free(back.data);
    pmd_deflater_free(&def);
    pmd_inflater_free(&inf);
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < SETTINGS_LEN) return 0;
    if (data[0] & 1)
        roundtrip_part(data, data + SETTINGS_LEN, size - SETTINGS_LEN);
    else
        inflate_part(data, data + SETTINGS_LEN, size - SETTINGS_LEN);
    return 0;
}
