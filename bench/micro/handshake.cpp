// Handshake parsing (RFC 6455 §4.2): a browser's upgrade request, as Chrome sends it,
// through h1_parser_feed + hs_validate + hs_write_accept (the work a server does per
// accepted connection: parse, check, SHA-1 + base64, write the 101), with and without
// the permessage-deflate negotiation the server adds when compression is on, and
// parsing alone. The reference, and the floor, is llhttp alone on the same bytes with
// no callbacks at all. Throughput in requests/s.
#include <string.h>

#include "micro.h"
#include "proto/extensions.h"
#include "proto/handshake.h"

static const char CHROME_REQUEST[] =
    "GET /chat HTTP/1.1\r\n"
    "Host: localhost:9001\r\n"
    "Connection: Upgrade\r\n"
    "Pragma: no-cache\r\n"
    "Cache-Control: no-cache\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 "
    "Safari/537.36\r\n"
    "Upgrade: websocket\r\n"
    "Origin: http://localhost:8080\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Accept-Language: en-US,en;q=0.9\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    "\r\n";
static const size_t REQ_LEN = sizeof CHROME_REQUEST - 1;
static const char EXPECTED_ACCEPT[] = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="; // RFC 6455 §1.3

static const hs_config HS_CFG = {nullptr};
static const pmd_config PMD_CFG = {PMD_DEDICATED, 15, 15};

enum hs_work { HS_PARSE, HS_ACCEPT, HS_ACCEPT_PMD };

struct hs_case {
    int work;
};

// One request the way the server takes it: a parser reused from connection to
// connection (reset, no allocation), the whole head in one read. Returns the response
// length (0 on any failure); for HS_PARSE, the head length.
static size_t handle(h1_parser *p, int work, char *resp, size_t cap) {
    h1_parser_reset(p);
    size_t used = 0;
    if (h1_parser_feed(p, (const uint8_t *)CHROME_REQUEST, REQ_LEN, &used) != H1_COMPLETE || used != REQ_LEN) return 0;
    if (work == HS_PARSE) return used;
    hs_result r;
    hs_validate(p, &HS_CFG, &r);
    if (r.status != 101) return 0;
    if (work == HS_ACCEPT) return hs_write_accept(resp, cap, &r, nullptr);
    pmd_params pp;
    memset(&pp, 0, sizeof pp);
    uint16_t pos = 0;
    h1_span v;
    while (!pp.enabled && h1_header_next(p, "Sec-WebSocket-Extensions", &pos, &v))
        pmd_negotiate(&PMD_CFG, h1_span_ptr(p, v), v.len, &pp);
    char ext[128];
    if (!pp.enabled || !pmd_write_response(&pp, ext, sizeof ext)) return 0;
    return hs_write_accept(resp, cap, &r, ext);
}

static void bm_hs(benchmark::State &st, const hs_case *c) {
    h1_parser p;
    h1_parser_init(&p, 8192);
    char resp[512];
    for (auto _ : st) {
        size_t n = handle(&p, c->work, resp, sizeof resp);
        if (!n) st.SkipWithError("handshake failed");
        benchmark::DoNotOptimize(n);
        benchmark::ClobberMemory();
    }
    h1_parser_free(&p);
    st.SetItemsProcessed((int64_t)st.iterations());
    st.SetBytesProcessed((int64_t)(st.iterations() * REQ_LEN));
}

// The floor: llhttp with an empty settings table, nothing recorded, nothing checked.
static llhttp_settings_t bare_settings;

static llhttp_errno_t bare_parse(llhttp_t *h) {
    llhttp_init(h, HTTP_REQUEST, &bare_settings);
    return llhttp_execute(h, CHROME_REQUEST, REQ_LEN);
}

static void bm_ref_llhttp(benchmark::State &st, const hs_case *) {
    llhttp_t h;
    for (auto _ : st) {
        llhttp_errno_t e = bare_parse(&h);
        // An upgrade request ends in a pause: llhttp stops where the new protocol begins.
        if (e != HPE_OK && e != HPE_PAUSED_UPGRADE) st.SkipWithError("llhttp failed");
        benchmark::DoNotOptimize(e);
        benchmark::ClobberMemory();
    }
    st.SetItemsProcessed((int64_t)st.iterations());
    st.SetBytesProcessed((int64_t)(st.iterations() * REQ_LEN));
}

static bool check(void) {
    llhttp_settings_init(&bare_settings);
    llhttp_t h;
    llhttp_errno_t e = bare_parse(&h);
    if (e != HPE_OK && e != HPE_PAUSED_UPGRADE) return micro_fail("llhttp rejects the request");
    h1_parser p;
    h1_parser_init(&p, 8192);
    char resp[512];
    bool ok = handle(&p, HS_PARSE, resp, sizeof resp) == REQ_LEN;
    size_t n = handle(&p, HS_ACCEPT, resp, sizeof resp);
    resp[n < sizeof resp ? n : sizeof resp - 1] = '\0';
    ok = ok && n && strstr(resp, EXPECTED_ACCEPT) && strncmp(resp, "HTTP/1.1 101 ", 13) == 0;
    n = handle(&p, HS_ACCEPT_PMD, resp, sizeof resp);
    resp[n < sizeof resp ? n : sizeof resp - 1] = '\0';
    ok = ok && n && strstr(resp, EXPECTED_ACCEPT) && strstr(resp, "Sec-WebSocket-Extensions: permessage-deflate");
    h1_parser_free(&p);
    return ok || micro_fail("the handshake path does not accept the browser request");
}

static const hs_case CASES[] = {{HS_ACCEPT}, {HS_ACCEPT_PMD}, {HS_PARSE}};

bool micro_register_handshake(void) {
    if (!check()) return false;
    micro_add("handshake", "chrome", "parse_validate_accept", bm_hs, &CASES[0]);
    micro_add("handshake", "chrome", "parse_validate_accept_pmd", bm_hs, &CASES[1]);
    micro_add("handshake", "chrome", "h1_parser_feed", bm_hs, &CASES[2]);
    micro_add("handshake", "chrome", "ref_llhttp_bare", bm_ref_llhttp, &CASES[0]);
    return true;
}
