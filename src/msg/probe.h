// Open-addressing tables of slot references (entry = slot + 1, 0 = empty) with linear
// probing, as the channel and client indexes use them.
#pragma once

#include <stdint.h>

// Empties index[hole] and shifts back the entries after it that may move into the hole
// (backward-shift deletion: no tombstones, so probe sequences never lengthen).
// home_of(entry) is the place an entry hashes to; cap is a power of two.
template <typename Home> void probe_remove(uint32_t *index, uint32_t cap, uint32_t hole, Home home_of) {
    uint32_t mask = cap - 1;
    index[hole] = 0;
    for (uint32_t j = (hole + 1) & mask; index[j]; j = (j + 1) & mask) {
        uint32_t home = home_of(index[j]) & mask;
        // The entry at j stays when its home lies cyclically in (hole, j].
        bool stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (stays) continue;
        index[hole] = index[j];
        index[j] = 0;
        hole = j;
    }
}
