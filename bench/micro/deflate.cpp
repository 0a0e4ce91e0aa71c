// permessage-deflate (RFC 7692): pmd_deflate_message / pmd_inflate_message on JSON-like
// messages of 300 B and 16 KiB, at zlib levels 1 (the server's default) and 6, with the
// window reset after every message (no context takeover) and kept (context takeover).
// The reference is zlib's one-call API on the same message: compress2() / uncompress(),
// which set up and tear down a stream per message. Throughput in uncompressed bytes/s;
// the "ratio" counter is uncompressed / compressed bytes.
//
// Each case cycles through a corpus of distinct messages (256 x 300 B, 8 x 16 KiB: more
// than the 32 KiB window either way), so context takeover gains from the structure the
// messages share, never from finding the very same message in its window.
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "micro.h"
#include "proto/deflate.h"

enum { WINDOW_BITS = 15, MEM_LEVEL = 8, MAX_INFLATE = 1 << 20 };
enum pmd_mode_kind { MODE_RESET, MODE_TAKEOVER, MODE_ZLIB, MODES };
static const int LEVELS[] = {1, 6};
enum { NLEVELS = sizeof LEVELS / sizeof LEVELS[0] };

struct msg_set {
    size_t count;
    uint8_t **data;
    size_t *len;
    uint64_t total;
};

struct corpus {
    const char *name;
    msg_set plain;
    msg_set packed[NLEVELS][MODES]; // compressed forms, for the inflate cases
};

struct pmd_case {
    const corpus *c;
    int level_idx;
    int mode;
};

// ---- the messages ----

static size_t appendf(char *out, size_t at, size_t cap, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static size_t appendf(char *out, size_t at, size_t cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out + at, cap - at, fmt, ap);
    va_end(ap);
    return n > 0 && (size_t)n < cap - at ? at + (size_t)n : cap;
}

// A market-data style JSON object of exactly n bytes: some fields, for large messages
// an array of records, and a "note" of random words that pads it to size.
static void make_json(micro_rng *r, uint64_t seq, uint8_t *dst, size_t n, bool items) {
    static const char *const TYPES[] = {"trade", "quote", "book", "ticker"};
    static const char *const SYMS[] = {"BTC-USD", "ETH-USD", "SOL-USD", "ETH-BTC", "DOGE-USD"};
    static const char *const SIDES[] = {"buy", "sell"};
    static const char *const VENUES[] = {"alpha", "bravo", "delta", "kilo"};
    static const char *const WORDS[] = {"order", "fill", "partial", "cancel", "market", "limit", "price",
                                        "level", "update", "stream", "client", "latency", "spread", "depth"};
    static const char TAIL[] = "],\"note\":\"\"}";
    char *out = (char *)malloc(n + 1024);
    size_t cap = n + 1024;
    size_t at = appendf(out, 0, cap,
                        "{\"type\":\"%s\",\"channel\":\"%s\",\"seq\":%llu,\"ts\":%llu,\"price\":\"%u.%02u\","
                        "\"size\":\"0.%05u\",\"side\":\"%s\",\"user\":\"u_%08x\"",
                        TYPES[micro_below(r, 4)], SYMS[micro_below(r, 5)], (unsigned long long)seq,
                        1700000000000ull + seq * 37 + micro_below(r, 30), 40000 + micro_below(r, 5000),
                        micro_below(r, 100), micro_below(r, 100000), SIDES[micro_below(r, 2)],
                        (unsigned)micro_rand(r));
    if (items) {
        at = appendf(out, at, cap, ",\"items\":[");
        for (unsigned id = 0;; id++) {
            char rec[160];
            size_t rl = appendf(rec, 0, sizeof rec, "%s{\"id\":%u,\"px\":\"%u.%02u\",\"qty\":\"%u.%04u\",\"side\":\"%s\",\"venue\":\"%s\"}",
                                id ? "," : "", (unsigned)(seq * 1000 + id), 40000 + micro_below(r, 5000),
                                micro_below(r, 100), micro_below(r, 20), micro_below(r, 10000),
                                SIDES[micro_below(r, 2)], VENUES[micro_below(r, 4)]);
            if (at + rl + sizeof TAIL + 8 > n) break;
            memcpy(out + at, rec, rl);
            at += rl;
        }
        out[at++] = ']';
    }
    at = appendf(out, at, cap, ",\"note\":\"");
    while (at < n - 2) {
        const char *w = WORDS[micro_below(r, sizeof WORDS / sizeof WORDS[0])];
        size_t wl = strlen(w);
        if (at + wl + 1 > n - 2) wl = n - 2 - at - 1;
        memcpy(out + at, w, wl);
        at += wl;
        out[at++] = ' ';
    }
    out[n - 2] = '"';
    out[n - 1] = '}';
    memcpy(dst, out, n);
    free(out);
}

static void set_alloc(msg_set *s, size_t count) {
    s->count = count;
    s->data = (uint8_t **)calloc(count, sizeof *s->data);
    s->len = (size_t *)calloc(count, sizeof *s->len);
    s->total = 0;
    if (!s->data || !s->len) exit(1);
}

static void set_put(msg_set *s, size_t i, const uint8_t *p, size_t n) {
    s->data[i] = micro_alloc(n ? n : 1);
    memcpy(s->data[i], p, n);
    s->len[i] = n;
    s->total += n;
}

// Whether message i of a takeover stream ends with a reset: the last of the corpus, so
// that cycling through it repeats one well-defined stream for deflater and inflater.
static bool reset_after(int mode, size_t i, size_t count) { return mode == MODE_RESET || i + 1 == count; }

static bool pack(corpus *c) {
    for (int l = 0; l < NLEVELS; l++) {
        for (int mode = 0; mode < MODES; mode++) {
            msg_set *s = &c->packed[l][mode];
            set_alloc(s, c->plain.count);
            pmd_stream d;
            if (mode != MODE_ZLIB && pmd_deflater_init(&d, WINDOW_BITS, MEM_LEVEL, LEVELS[l]) != PMD_OK) return false;
            pmd_buf out = {nullptr, 0, 0};
            for (size_t i = 0; i < c->plain.count; i++) {
                out.len = 0;
                if (mode == MODE_ZLIB) {
                    uLongf n = compressBound(c->plain.len[i]);
                    uint8_t *tmp = micro_alloc(n);
                    if (compress2(tmp, &n, c->plain.data[i], c->plain.len[i], LEVELS[l]) != Z_OK) return false;
                    set_put(s, i, tmp, n);
                    free(tmp);
                } else {
                    if (pmd_deflate_message(&d, c->plain.data[i], c->plain.len[i], &out,
                                            reset_after(mode, i, c->plain.count)) != PMD_OK)
                        return false;
                    set_put(s, i, out.data, out.len);
                }
            }
            free(out.data);
            if (mode != MODE_ZLIB) pmd_deflater_free(&d);
        }
    }
    return true;
}

// Every compressed form inflates back to the messages, twice around the corpus.
static bool check(const corpus *c) {
    uint8_t *tmp = micro_alloc(MAX_INFLATE);
    for (int l = 0; l < NLEVELS; l++) {
        for (int mode = 0; mode < MODES; mode++) {
            const msg_set *s = &c->packed[l][mode];
            pmd_stream inf;
            if (mode != MODE_ZLIB && pmd_inflater_init(&inf, WINDOW_BITS) != PMD_OK) return false;
            pmd_buf out = {nullptr, 0, 0};
            for (size_t k = 0; k < 2 * s->count; k++) {
                size_t i = k % s->count;
                const uint8_t *got;
                size_t got_len;
                if (mode == MODE_ZLIB) {
                    uLongf n = MAX_INFLATE;
                    if (uncompress(tmp, &n, s->data[i], s->len[i]) != Z_OK) return false;
                    got = tmp, got_len = n;
                } else {
                    out.len = 0;
                    if (pmd_inflate_message(&inf, s->data[i], s->len[i], &out, MAX_INFLATE,
                                            reset_after(mode, i, s->count)) != PMD_OK)
                        return false;
                    got = out.data, got_len = out.len;
                }
                if (got_len != c->plain.len[i] || memcmp(got, c->plain.data[i], got_len) != 0) return false;
            }
            free(out.data);
            if (mode != MODE_ZLIB) pmd_inflater_free(&inf);
        }
    }
    free(tmp);
    return true;
}

// ---- the benchmarks: one message per iteration, cycling through the corpus ----

static void bm_deflate(benchmark::State &st, const pmd_case *k) {
    const msg_set *m = &k->c->plain;
    int level = LEVELS[k->level_idx];
    pmd_stream d;
    if (k->mode != MODE_ZLIB && pmd_deflater_init(&d, WINDOW_BITS, MEM_LEVEL, level) != PMD_OK) {
        st.SkipWithError("deflater init failed");
        return;
    }
    pmd_buf out = {nullptr, 0, 0};
    uLongf zcap = compressBound(m->len[0]);
    for (size_t i = 1; i < m->count; i++)
        if (compressBound(m->len[i]) > zcap) zcap = compressBound(m->len[i]);
    uint8_t *zout = micro_alloc(zcap);
    uint64_t in = 0, outn = 0;
    size_t i = 0;
    for (auto _ : st) {
        size_t produced;
        if (k->mode == MODE_ZLIB) {
            uLongf n = zcap;
            if (compress2(zout, &n, m->data[i], m->len[i], level) != Z_OK) st.SkipWithError("compress2 failed");
            produced = n;
        } else {
            out.len = 0;
            if (pmd_deflate_message(&d, m->data[i], m->len[i], &out, reset_after(k->mode, i, m->count)) != PMD_OK)
                st.SkipWithError("deflate failed");
            produced = out.len;
        }
        benchmark::DoNotOptimize(produced);
        in += m->len[i];
        outn += produced;
        i = i + 1 == m->count ? 0 : i + 1;
    }
    st.SetBytesProcessed((int64_t)in);
    st.counters["ratio"] = outn ? (double)in / (double)outn : 0;
    free(out.data);
    free(zout);
    if (k->mode != MODE_ZLIB) pmd_deflater_free(&d);
}

static void bm_inflate(benchmark::State &st, const pmd_case *k) {
    const msg_set *m = &k->c->plain;
    const msg_set *s = &k->c->packed[k->level_idx][k->mode];
    pmd_stream inf;
    if (k->mode != MODE_ZLIB && pmd_inflater_init(&inf, WINDOW_BITS) != PMD_OK) {
        st.SkipWithError("inflater init failed");
        return;
    }
    pmd_buf out = {nullptr, 0, 0};
    uint8_t *zout = micro_alloc(MAX_INFLATE);
    uint64_t in = 0, outn = 0;
    size_t i = 0;
    for (auto _ : st) {
        size_t got;
        if (k->mode == MODE_ZLIB) {
            uLongf n = MAX_INFLATE;
            if (uncompress(zout, &n, s->data[i], s->len[i]) != Z_OK) st.SkipWithError("uncompress failed");
            got = n;
        } else {
            out.len = 0;
            if (pmd_inflate_message(&inf, s->data[i], s->len[i], &out, MAX_INFLATE,
                                    reset_after(k->mode, i, s->count)) != PMD_OK)
                st.SkipWithError("inflate failed");
            got = out.len;
        }
        if (got != m->len[i]) st.SkipWithError("wrong inflated size");
        benchmark::DoNotOptimize(got);
        in += s->len[i];
        outn += got;
        i = i + 1 == s->count ? 0 : i + 1;
    }
    st.SetBytesProcessed((int64_t)outn);
    st.counters["ratio"] = in ? (double)outn / (double)in : 0;
    free(out.data);
    free(zout);
    if (k->mode != MODE_ZLIB) pmd_inflater_free(&inf);
}

static corpus corpora[2];
static pmd_case cases[2][NLEVELS][MODES];

bool micro_register_deflate(void) {
    static const struct {
        const char *name;
        size_t count, size;
        bool items;
    } SPECS[2] = {{"json300B", 256, 300, false}, {"json16KiB", 8, 16 * 1024, true}};
    static const char *const DEFLATE_IMPL[MODES] = {"pmd_reset", "pmd_takeover", "ref_compress2"};
    static const char *const INFLATE_IMPL[MODES] = {"pmd_reset", "pmd_takeover", "ref_uncompress"};
    micro_rng r = {0x5eed0401};
    for (int ci = 0; ci < 2; ci++) {
        corpus *c = &corpora[ci];
        c->name = SPECS[ci].name;
        set_alloc(&c->plain, SPECS[ci].count);
        uint8_t *tmp = micro_alloc(SPECS[ci].size);
        for (size_t i = 0; i < SPECS[ci].count; i++) {
            make_json(&r, 1000 + i, tmp, SPECS[ci].size, SPECS[ci].items);
            set_put(&c->plain, i, tmp, SPECS[ci].size);
        }
        free(tmp);
        if (!pack(c) || !check(c)) return micro_fail("permessage-deflate round trip");
    }
    for (int dir = 0; dir < 2; dir++) {
        for (int ci = 0; ci < 2; ci++) {
            for (int l = 0; l < NLEVELS; l++) {
                char kase[48];
                snprintf(kase, sizeof kase, "%s/L%d", corpora[ci].name, LEVELS[l]);
                for (int mode = 0; mode < MODES; mode++) {
                    pmd_case *k = &cases[ci][l][mode];
                    *k = {&corpora[ci], l, mode};
                    if (dir == 0) micro_add("deflate", kase, DEFLATE_IMPL[mode], bm_deflate, (const pmd_case *)k);
                    else micro_add("inflate", kase, INFLATE_IMPL[mode], bm_inflate, (const pmd_case *)k);
                }
            }
        }
    }
    return true;
}
