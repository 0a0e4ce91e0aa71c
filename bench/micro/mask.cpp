// Unmasking (RFC 6455 §5.3): frame_mask, which works a 16-byte vector at a time,
// against the byte-at-a-time XOR loop the RFC describes. Throughput in bytes/s.
#include <string.h>

#include "micro.h"
#include "proto/frame.h"

// The reference: one byte per step, exactly as §5.3 writes it. Kept out of line like
// frame_mask, and kept scalar: GCC 12 at -O2 runs the "very cheap" vectorizer, which
// would otherwise turn this loop into something other than the plain reference.
#if defined(__clang__)
#define SCALAR_FN __attribute__((noinline))
#define SCALAR_LOOP _Pragma("clang loop vectorize(disable) interleave(disable)")
#else
#define SCALAR_FN __attribute__((noinline, optimize("no-tree-vectorize")))
#define SCALAR_LOOP
#endif

SCALAR_FN static void ref_mask_bytewise(uint8_t *data, size_t len, const uint8_t key[4], unsigned offset) {
    SCALAR_LOOP
    for (size_t i = 0; i < len; i++) data[i] ^= key[(offset + i) & 3];
}

struct mask_case {
    size_t len;
    uint8_t *buf;
    uint8_t key[4];
};

static const size_t SIZES[] = {16, 125, 1024, 16 * 1024, 1024 * 1024};
static mask_case cases[sizeof SIZES / sizeof SIZES[0]];

// The buffer is masked in place every iteration (it toggles between masked and clear,
// which costs the same): no copy inside the timed loop.
static void bm_frame_mask(benchmark::State &st, const mask_case *c) {
    for (auto _ : st) {
        frame_mask(c->buf, c->len, c->key, 0);
        benchmark::ClobberMemory();
    }
    st.SetBytesProcessed((int64_t)st.iterations() * (int64_t)c->len);
}

static void bm_ref_bytewise(benchmark::State &st, const mask_case *c) {
    for (auto _ : st) {
        ref_mask_bytewise(c->buf, c->len, c->key, 0);
        benchmark::ClobberMemory();
    }
    st.SetBytesProcessed((int64_t)st.iterations() * (int64_t)c->len);
}

static bool check(void) {
    // Every length 0..100 and every key offset: the vector body, the tail and the
    // rotated key must give the reference's bytes.
    micro_rng r = {0x5eed0001};
    uint8_t a[100], b[100], key[4];
    for (int i = 0; i < 4; i++) key[i] = (uint8_t)micro_rand(&r);
    for (size_t n = 0; n <= sizeof a; n++) {
        for (unsigned off = 0; off < 4; off++) {
            for (size_t i = 0; i < n; i++) a[i] = b[i] = (uint8_t)micro_rand(&r);
            frame_mask(a, n, key, off);
            ref_mask_bytewise(b, n, key, off);
            if (memcmp(a, b, n) != 0) return micro_fail("frame_mask differs from the bytewise reference");
        }
    }
    return true;
}

bool micro_register_mask(void) {
    if (!check()) return false;
    micro_rng r = {0x5eed0002};
    for (size_t i = 0; i < sizeof SIZES / sizeof SIZES[0]; i++) {
        mask_case *c = &cases[i];
        c->len = SIZES[i];
        c->buf = micro_alloc(c->len);
        for (size_t j = 0; j < c->len; j++) c->buf[j] = (uint8_t)micro_rand(&r);
        for (int k = 0; k < 4; k++) c->key[k] = (uint8_t)micro_rand(&r);
        const char *size = micro_size_name(c->len);
        micro_add("unmask", size, "frame_mask", bm_frame_mask, (const mask_case *)c);
        micro_add("unmask", size, "ref_bytewise", bm_ref_bytewise, (const mask_case *)c);
    }
    return true;
}
