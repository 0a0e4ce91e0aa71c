// Counters an operator asks about (the public wsr_stats), and how events map onto
// its buckets. Plain integers: one thread, no atomics.
#pragma once

#include "wsr/wsr.h"

// Bucket for a handshake refusal: its HTTP status, or STATS_HS_TIMEOUT.
enum { STATS_HS_TIMEOUT = WSR_HS_BUCKETS - 1 };
int stats_hs_bucket(uint16_t status);
// The bucket of exactly this status, or -1.
int stats_hs_bucket_exact(uint16_t status);

static inline void stats_count_close(wsr_stats *s, uint16_t code) { s->closes[wsr_stats_close_bucket(code)]++; }
