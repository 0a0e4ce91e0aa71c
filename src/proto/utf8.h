// Incremental UTF-8 validation (RFC 3629 as required by RFC 6455 §5.6, §8.1).
//
// The validator carries one byte of state between calls, so a text message can be
// checked fragment by fragment and chunk by chunk as it arrives: a sequence may be
// split anywhere, and an invalid byte is reported on the call that sees it (AB 6.4.x
// expects a connection to fail at the first bad fragment, not at the end of the
// message). Overlongs, surrogates (U+D800..U+DFFF) and code points above U+10FFFF are
// rejected at the earliest byte that rules them out.
#pragma once

#include <stddef.h>
#include <stdint.h>

enum utf8_state : uint8_t {
    UTF8_ACCEPT = 0, // at a code point boundary: the text so far is complete and valid
    UTF8_REJECT = 1, // invalid; sticky
    // any other value: valid so far, in the middle of a multi-byte sequence
};

// Validates `n` bytes continuing from `state`; returns the new state.
uint8_t utf8_validate(uint8_t state, const uint8_t *s, size_t n);

// Writes the UTF-8 encoding of a scalar value (RFC 3629 §3; the caller keeps cp out
// of the surrogate range and at most U+10FFFF) into out; returns its length, 1..4.
// The server never encodes; tests, fuzzers and benchmarks build their inputs with it.
size_t utf8_encode(uint32_t cp, uint8_t out[4]);

// True when a message that ended in `state` is valid UTF-8 as a whole.
static inline bool utf8_complete(uint8_t state) { return state == UTF8_ACCEPT; }
