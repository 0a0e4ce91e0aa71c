// A compact high-dynamic-range histogram: log-linear buckets over the whole uint64 range.
//
// Values below 2*HDR_SUB are counted exactly. Above that, each power-of-two range
// [2^k, 2^(k+1)) is split into HDR_SUB equal sub-buckets, so a bucket is at most 1/HDR_SUB
// of the values it holds wide: with HDR_SUB = 128 a reported percentile is within 0.8 %
// of the true value (it reports the bucket's upper edge, never less than the truth). The
// layout is the one HdrHistogram uses, fixed at one precision so the code stays small.
//
// Recording is a count-leading-zeros, a shift and an increment: cheap enough for every
// message. No allocation: a histogram is a plain struct (~58 KiB) the caller owns.
#pragma once

#include <stdint.h>
#include <string.h>

enum {
    HDR_SUB_BITS = 7,
    HDR_SUB = 1 << HDR_SUB_BITS,               // sub-buckets per power of two
    HDR_BUCKETS = (64 - HDR_SUB_BITS + 1) * HDR_SUB // covers every uint64 value
};

struct hdr_hist {
    uint64_t total;
    uint64_t min;
    uint64_t max;
    uint64_t counts[HDR_BUCKETS];
};

static inline void hdr_reset(hdr_hist *h) {
    memset(h, 0, sizeof *h);
    h->min = UINT64_MAX;
}

static inline unsigned hdr_index(uint64_t v) {
    if (v < 2 * HDR_SUB) return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v); // >= HDR_SUB_BITS + 1
    unsigned shift = msb - HDR_SUB_BITS;               // bucket width is 2^shift
    // (v >> shift) is in [HDR_SUB, 2*HDR_SUB): the sub-bucket within this power of two.
    return (shift + 1) * HDR_SUB + (unsigned)(v >> shift) - HDR_SUB;
}

// The largest value that lands in bucket i.
static inline uint64_t hdr_bucket_high(unsigned i) {
    if (i < 2 * HDR_SUB) return i;
    unsigned shift = i / HDR_SUB - 1;
    uint64_t sub = (uint64_t)(i % HDR_SUB) + HDR_SUB;
    return (sub << shift) + ((1ull << shift) - 1);
}

static inline void hdr_record(hdr_hist *h, uint64_t v) {
    h->counts[hdr_index(v)]++;
    h->total++;
    if (v < h->min) h->min = v;
    if (v > h->max) h->max = v;
}

static inline void hdr_record_n(hdr_hist *h, uint64_t v, uint64_t n) {
    if (n == 0) return;
    h->counts[hdr_index(v)] += n;
    h->total += n;
    if (v < h->min) h->min = v;
    if (v > h->max) h->max = v;
}

// The value at quantile q (0..1): the smallest recorded bucket edge that at least
// ceil(q * total) values are at or below. 0 when empty; q >= 1 gives the exact max.
static inline uint64_t hdr_percentile(const hdr_hist *h, double q) {
    if (h->total == 0) return 0;
    if (q >= 1.0) return h->max;
    uint64_t rank = (uint64_t)(q * (double)h->total + 0.999999);
    if (rank == 0) rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HDR_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t v = hdr_bucket_high(i);
            return v > h->max ? h->max : v < h->min ? h->min : v;
        }
    }
    return h->max;
}

static inline void hdr_merge(hdr_hist *into, const hdr_hist *from) {
    if (from->total == 0) return;
    for (unsigned i = 0; i < HDR_BUCKETS; i++) into->counts[i] += from->counts[i];
    into->total += from->total;
    if (from->min < into->min) into->min = from->min;
    if (from->max > into->max) into->max = from->max;
}

static inline double hdr_mean(const hdr_hist *h) {
    if (h->total == 0) return 0;
    double sum = 0;
    for (unsigned i = 0; i < HDR_BUCKETS; i++)
        if (h->counts[i]) sum += (double)h->counts[i] * (double)hdr_bucket_high(i);
    return sum / (double)h->total;
}
