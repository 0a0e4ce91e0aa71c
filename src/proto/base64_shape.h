// The shape both crypto.h backends demand of base64 before their library decodes it.
// OpenSSL's decoder trims whitespace and nettle's skips it anywhere, and they differ on
// where '=' may stand; checking the shape first gives one answer whichever is linked.
#pragma once

#include <stddef.h>

// Whether in[0..len) is a multiple of 4 characters from the standard alphabet, with at
// most two '=' and only at the end. *pad receives the number of '='.
static inline bool base64_shape_ok(const char *in, size_t len, size_t *pad) {
    if (len % 4) return false;
    size_t p = 0;
    while (p < 2 && p < len && in[len - 1 - p] == '=') p++;
    for (size_t i = 0; i < len - p; i++) {
        char c = in[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
        if (!ok) return false;
    }
    *pad = p;
    return true;
}
