// Fuzz target for the permessage-deflate negotiation (src/proto/extensions.*).
//
// Input layout (3 bytes of settings, then the Sec-WebSocket-Extensions value):
//   [0] bits0-1 mode: 0 shared, 1 dedicated, 2 off, 3 shared (as the daemon's modes)
//   [1] bits0-2 server_window_bits - 8 (our deflater's largest window)
//   [2] bits0-2 client_window_bits - 8 (the window we ask of clients)
// The value is cut into header lines at every '\n' (a header value never holds one, so
// the fuzzer chooses the split points), and every line is copied into a buffer of
// exactly its length so ASan sees any read past its end. pmd_negotiate is called once
// per line, as core/compression.cpp does.
//
// Checks:
//   - agreed window bits are 8..15, never above what our config allows, and the
//     server_window_bits never above 15; shared mode always agrees no context takeover
//     both ways;
//   - pmd_write_response gives one offer (no ',') that, parsed back by pmd_negotiate as
//     an offer with a permissive config, is accepted with the same parameters; a buffer
//     one byte too small is refused, not truncated;
//   - client_max_window_bits is answered only when the input holds that parameter name
//     (case-insensitively): an approximation of "only when the accepted offer had it";
//   - negotiating over the lines joined with ", " into one value gives the same result
//     as over the lines, when no line but the last holds '"' or '\' (then every line end
//     falls between offers: a line ends its last offer exactly as ", " does).
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fuzz_util.h"
#include "proto/extensions.h"

enum { SETTINGS_LEN = 3, RESP_CAP = 160 }; // RESP_CAP: the size core/conn.cpp gives it

static bool params_equal(const pmd_params *a, const pmd_params *b) {
    if (a->enabled != b->enabled) return false;
    if (!a->enabled) return true;
    return a->server_no_context_takeover == b->server_no_context_takeover &&
           a->client_no_context_takeover == b->client_no_context_takeover &&
           a->server_window_requested == b->server_window_requested &&
           a->server_window_bits == b->server_window_bits && a->client_window_bits == b->client_window_bits;
}

// pmd_negotiate over one value held in a buffer of exactly its size.
static void negotiate_exact(const pmd_config *cfg, const uint8_t *v, size_t n, pmd_params *out) {
    char *copy = (char *)malloc(n ? n : 1);
    FUZZ_CHECK(copy != nullptr, "out of memory");
    if (n) memcpy(copy, v, n);
    pmd_negotiate(cfg, copy, n, out);
    free(copy);
}

static bool contains_ci(const uint8_t *d, size_t n, const char *needle) {
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++)
        if (strncasecmp((const char *)d + i, needle, k) == 0) return true;
    return false;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < SETTINGS_LEN) return 0;
    static const uint8_t modes[4] = {PMD_SHARED, PMD_DEDICATED, PMD_OFF, PMD_SHARED};
    pmd_config cfg;
    cfg.mode = modes[data[0] & 3];
    cfg.server_window_bits = (uint8_t)(8 + (data[1] & 7));
    cfg.client_window_bits = (uint8_t)(8 + (data[2] & 7));
    const uint8_t *v = data + SETTINGS_LEN;
    size_t n = size - SETTINGS_LEN;

    // Line by line, as the handshake's header lines.
    pmd_params split = {};
    bool between_offers = true;
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && v[i] != '\n') continue;
        if (i < n && (memchr(v + start, '"', i - start) || memchr(v + start, '\\', i - start))) between_offers = false;
        pmd_params before = split;
        negotiate_exact(&cfg, v + start, i - start, &split);
        if (before.enabled) FUZZ_CHECK(params_equal(&before, &split), "a later header line changed an agreement");
        start = i + 1;
    }

    if (cfg.mode == PMD_OFF) FUZZ_CHECK(!split.enabled, "negotiated with compression off");
    if (split.enabled) {
        const pmd_params &p = split;
        FUZZ_CHECK(p.server_window_bits >= 8 && p.server_window_bits <= 15, "server_window_bits %u", p.server_window_bits);
        FUZZ_CHECK(p.client_window_bits >= 8 && p.client_window_bits <= 15, "client_window_bits %u", p.client_window_bits);
        FUZZ_CHECK(p.server_window_bits <= cfg.server_window_bits, "server window %u over our %u", p.server_window_bits,
                   cfg.server_window_bits);
        FUZZ_CHECK(p.client_window_bits <= cfg.client_window_bits || p.client_window_bits == 15,
                   "client window %u: neither ours (%u) nor the default 15", p.client_window_bits, cfg.client_window_bits);
        if (cfg.mode == PMD_SHARED)
            FUZZ_CHECK(p.server_no_context_takeover && p.client_no_context_takeover,
                       "shared streams need no context takeover both ways");

        char resp[RESP_CAP];
        size_t rn = pmd_write_response(&p, resp, sizeof resp);
        FUZZ_CHECK(rn > 0 && rn < sizeof resp, "response does not fit %d bytes", RESP_CAP);
        FUZZ_CHECK(memchr(resp, ',', rn) == nullptr, "response is more than one extension: %.*s", (int)rn, resp);
        // Exactly fitting buffers: rn + 1 (NUL) works, rn is refused.
        char *tight = (char *)malloc(rn + 1);
        FUZZ_CHECK(tight != nullptr, "out of memory");
        FUZZ_CHECK(pmd_write_response(&p, tight, rn + 1) == rn && memcmp(tight, resp, rn) == 0,
                   "response differs with a tight buffer");
        FUZZ_CHECK(pmd_write_response(&p, tight, rn) == 0, "a buffer one byte short was not refused");
        free(tight);

        bool has_cmwb = contains_ci(v, n, "client_max_window_bits");
        if (!has_cmwb)
            FUZZ_CHECK(!memmem(resp, rn, "client_max_window_bits", 22),
                       "answered client_max_window_bits that was never offered: %.*s", (int)rn, resp);
        if (!has_cmwb) FUZZ_CHECK(p.client_window_bits == 15, "client window %u without an offer", p.client_window_bits);

        // The answer parsed back as an offer by a server that allows everything.
        pmd_config any = {PMD_DEDICATED, 15, 15};
        pmd_params back = {};
        negotiate_exact(&any, (const uint8_t *)resp, rn, &back);
        FUZZ_CHECK(back.enabled, "our own response is not an acceptable offer: %.*s", (int)rn, resp);
        FUZZ_CHECK(back.server_no_context_takeover == p.server_no_context_takeover &&
                       back.client_no_context_takeover == p.client_no_context_takeover,
                   "context takeover flags do not survive the response: %.*s", (int)rn, resp);
        FUZZ_CHECK(back.server_window_bits == p.server_window_bits, "server window %u announced as %u: %.*s",
                   p.server_window_bits, back.server_window_bits, (int)rn, resp);
        FUZZ_CHECK(back.client_window_bits == p.client_window_bits, "client window %u announced as %u: %.*s",
                   p.client_window_bits, back.client_window_bits, (int)rn, resp);
        FUZZ_CHECK(back.server_window_requested == (p.server_window_bits < 15 || p.server_window_requested),
                   "server_max_window_bits present/absent wrongly: %.*s", (int)rn, resp);
    }

    // One value: the lines joined with ", ".
    if (between_offers) {
        size_t lines = 1;
        for (size_t i = 0; i < n; i++) lines += v[i] == '\n';
        uint8_t *joined = (uint8_t *)malloc(n + lines * 2 + 1);
        FUZZ_CHECK(joined != nullptr, "out of memory");
        size_t jn = 0;
        for (size_t i = 0; i < n; i++) {
            if (v[i] == '\n') {
                joined[jn++] = ',';
                joined[jn++] = ' ';
            } else {
                joined[jn++] = v[i];
            }
        }
        pmd_params one = {};
        negotiate_exact(&cfg, joined, jn, &one);
        FUZZ_CHECK(params_equal(&one, &split),
                   "one joined line (enabled %d, s%u c%u) differs from %zu lines (enabled %d, s%u c%u)", one.enabled,
                   one.server_window_bits, one.client_window_bits, lines, split.enabled, split.server_window_bits,
                   split.client_window_bits);
        free(joined);
    }
    return 0;
}
