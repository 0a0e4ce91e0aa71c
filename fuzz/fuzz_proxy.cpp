// Fuzz target for the PROXY protocol header parser (src/proto/proxy.*), with the address
// text functions of src/proto/netaddr.* that its results go through.
//
// Input layout (3 bytes of settings, then the bytes a connection starts with):
//   [0] largest chunk when splitting (0 = one byte at a time)
//   [1..2] splitter seed
//
// The bytes go in twice: whole, and the way a server receives them, in chunks appended to
// what it holds, calling proxy_parse on all of it after each read until the answer is not
// NEED_MORE. Both must end with the same status, the same result (byte for byte) and the
// same error text. A header that is DONE must end exactly at header_len: the prefix of
// header_len bytes gives the same result, one byte less gives NEED_MORE. Its addresses must
// print (net_addr_format) and parse back (net_addr_parse) to themselves. A v1 line is
// judged again by a reference written here from the spec's text (split at single spaces,
// inet_pton, strict decimal ports), and the two must agree on every line that ends within
// 107 bytes. A v2 header is checked against its fixed fields, its TLV chain and a bitwise
// CRC-32C.
#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include "fuzz_util.h"
#include "proto/proxy.h"

enum { SETTINGS_LEN = 3 };

static const uint8_t V2_SIG[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

static bool same_result(const proxy_result *a, const proxy_result *b) {
    if (a->header_len != b->header_len || a->local != b->local) return false;
    if (memcmp(&a->src, &b->src, sizeof a->src) != 0 || memcmp(&a->dst, &b->dst, sizeof a->dst) != 0) return false;
    if ((a->error == nullptr) != (b->error == nullptr)) return false;
    return !a->error || strcmp(a->error, b->error) == 0;
}

// --- the v1 reference ----------------------------------------------------------------

enum ref_answer { REF_UNDECIDED, REF_ACCEPT, REF_REJECT };

struct ref_v1 {
    ref_answer answer;
    size_t header_len;
    bool local;
    net_addr src, dst;
};

static bool ref_port(const uint8_t *s, size_t n, uint16_t *port) {
    // "a decimal integer in the range [0..65535] inclusive. Heading zeroes are not
    // permitted".
    if (n == 0 || n > 5 || (n > 1 && s[0] == '0')) return false;
    uint32_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (s[i] - '0');
    }
    *port = (uint16_t)v;
    return v <= 65535;
}

static bool ref_addr(int family, const uint8_t *s, size_t n, net_addr *a) {
    char buf[64];
    if (n >= sizeof buf || memchr(s, 0, n)) return false;
    memcpy(buf, s, n);
    buf[n] = 0;
    a->family = (uint8_t)family;
    return inet_pton(family, buf, a->addr) == 1;
}

// The spec's v1 rules on a whole line. UNDECIDED while no CR or LF is among the first 107
// bytes and there are fewer than 107.
static ref_v1 ref_parse_v1(const uint8_t *d, size_t n) {
    ref_v1 r;
    memset(&r, 0, sizeof r);
    size_t scan = n < 107 ? n : 107, cr = 0;
    while (cr < scan && d[cr] != '\r' && d[cr] != '\n') cr++;
    if (cr == scan) {
        r.answer = n >= 107 ? REF_REJECT : REF_UNDECIDED;
        return r;
    }
    if (d[cr] != '\r' || cr > 105) {
        r.answer = REF_REJECT;
        return r;
    }
    if (cr + 1 == n) {
        r.answer = REF_UNDECIDED;
        return r;
    }
    r.answer = REF_REJECT;
    if (d[cr + 1] != '\n') return r;
    // Split the line at single spaces.
    const uint8_t *tok[8];
    size_t tlen[8], nt = 0, start = 0;
    for (size_t i = 0; i <= cr; i++) {
        if (i == cr || d[i] == ' ') {
            if (nt == 8) return r;
            tok[nt] = d + start;
            tlen[nt++] = i - start;
            start = i + 1;
            // UNKNOWN: whatever follows is ignored.
            if (nt == 2 && tlen[1] == 7 && memcmp(tok[1], "UNKNOWN", 7) == 0) break;
        }
    }
    if (nt < 2 || tlen[0] != 5 || memcmp(tok[0], "PROXY", 5) != 0) return r;
    if (tlen[1] == 7 && memcmp(tok[1], "UNKNOWN", 7) == 0) {
        r.answer = REF_ACCEPT;
        r.local = true;
        r.header_len = cr + 2;
        return r;
    }
    int family;
    if (tlen[1] == 4 && memcmp(tok[1], "TCP4", 4) == 0) family = AF_INET;
    else if (tlen[1] == 4 && memcmp(tok[1], "TCP6", 4) == 0) family = AF_INET6;
    else return r;
    if (nt != 6) return r;
    if (!ref_addr(family, tok[2], tlen[2], &r.src) || !ref_addr(family, tok[3], tlen[3], &r.dst)) return r;
    if (!ref_port(tok[4], tlen[4], &r.src.port) || !ref_port(tok[5], tlen[5], &r.dst.port)) return r;
    r.answer = REF_ACCEPT;
    r.header_len = cr + 2;
    return r;
}

static void check_v1(const uint8_t *d, size_t n, proxy_status st, const proxy_result *res) {
    ref_v1 ref = ref_parse_v1(d, n);
    if (ref.answer == REF_UNDECIDED) {
        FUZZ_CHECK(st != PROXY_DONE, "v1 DONE before the line ended");
        return;
    }
    if (ref.answer == REF_REJECT) {
        FUZZ_CHECK(st == PROXY_ERROR, "v1 line the spec refuses got %d", st);
        return;
    }
    FUZZ_CHECK(st == PROXY_DONE, "v1 line the spec accepts got %d (%s)", st, res->error ? res->error : "-");
    FUZZ_CHECK(res->header_len == ref.header_len && res->local == ref.local, "v1 header_len %zu/%zu local %d/%d",
               res->header_len, ref.header_len, res->local, ref.local);
    if (!ref.local)
        FUZZ_CHECK(memcmp(&res->src, &ref.src, sizeof ref.src) == 0 && memcmp(&res->dst, &ref.dst, sizeof ref.dst) == 0,
                   "v1 addresses differ from the reference");
}

// --- v2 ---------------------------------------------------------------------------------

static uint32_t crc32c_bitwise(const uint8_t *d, size_t n, size_t zero_at) {
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        crc ^= (i >= zero_at && i < zero_at + 4) ? 0 : d[i];
        for (int k = 0; k < 8; k++) crc = crc & 1 ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
    }
    return ~crc;
}

static void check_v2_done(const uint8_t *d, const proxy_result *res) {
    FUZZ_CHECK(memcmp(d, V2_SIG, 12) == 0, "v2 DONE without the signature");
    FUZZ_CHECK(d[12] == 0x20 || d[12] == 0x21, "v2 DONE with version/command %02x", d[12]);
    size_t block = (size_t)d[14] << 8 | d[15];
    FUZZ_CHECK(res->header_len == 16 + block, "v2 header_len %zu for a %zu-byte block", res->header_len, block);
    FUZZ_CHECK(block <= 4096, "v2 block of %zu bytes accepted", block);
    bool local = d[12] == 0x20 || (d[13] != 0x11 && d[13] != 0x21);
    FUZZ_CHECK(res->local == local, "v2 local %d for %02x %02x", res->local, d[12], d[13]);
    if (d[12] == 0x20) return;
    size_t addr_len;
    switch (d[13]) {
    case 0x00: return; // nothing more is read after UNSPEC
    case 0x11: case 0x12: addr_len = 12; break;
    case 0x21: case 0x22: addr_len = 36; break;
    case 0x31: case 0x32: addr_len = 216; break;
    default: FUZZ_CHECK(false, "v2 DONE with family %02x", d[13]); return;
    }
    FUZZ_CHECK(block >= addr_len, "v2 block %zu shorter than its family's %zu", block, addr_len);
    // The TLVs fill the rest exactly, and every CRC32C among them holds.
    size_t pos = 16 + addr_len, end = 16 + block;
    while (pos < end) {
        FUZZ_CHECK(end - pos >= 3, "v2 DONE with a cut TLV");
        size_t tl = (size_t)d[pos + 1] << 8 | d[pos + 2];
        FUZZ_CHECK(pos + 3 + tl <= end, "v2 DONE with a TLV past the header");
        if (d[pos] == 0x03) {
            FUZZ_CHECK(tl == 4, "v2 CRC32C TLV of %zu bytes", tl);
            const uint8_t *c = d + pos + 3;
            uint32_t sent = (uint32_t)c[0] << 24 | (uint32_t)c[1] << 16 | (uint32_t)c[2] << 8 | c[3];
            FUZZ_CHECK(crc32c_bitwise(d, end, pos + 3) == sent, "v2 DONE with a wrong CRC32C");
        }
        pos += 3 + tl;
    }
    if (local) return;
    const uint8_t *b = d + 16;
    size_t alen = d[13] == 0x11 ? 4 : 16;
    FUZZ_CHECK(memcmp(res->src.addr, b, alen) == 0 && memcmp(res->dst.addr, b + alen, alen) == 0, "v2 addresses");
    FUZZ_CHECK(res->src.port == (b[2 * alen] << 8 | b[2 * alen + 1]) &&
                   res->dst.port == (b[2 * alen + 2] << 8 | b[2 * alen + 3]),
               "v2 ports");
}

// --- addresses ----------------------------------------------------------------------------

// An address prints and parses back to itself; a mapped IPv6 address prints as the IPv4
// address it carries.
static void check_addr_text(const net_addr *a) {
    FUZZ_CHECK(a->family == AF_INET || a->family == AF_INET6, "family %u", a->family);
    FUZZ_CHECK(a->_pad == 0, "padding byte set");
    if (a->family == AF_INET)
        for (int i = 4; i < 16; i++) FUZZ_CHECK(a->addr[i] == 0, "IPv4 address with bytes past 4");
    char buf[NET_ADDR_STRLEN];
    size_t n = net_addr_format(a, buf, sizeof buf);
    FUZZ_CHECK(n > 0 && n < sizeof buf && strlen(buf) == n, "net_addr_format wrote %zu", n);
    net_addr back;
    FUZZ_CHECK(net_addr_parse(buf, n, &back), "\"%s\" does not parse back", buf);
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (a->family == AF_INET6 && memcmp(a->addr, mapped, 12) == 0) {
        FUZZ_CHECK(back.family == AF_INET && memcmp(back.addr, a->addr + 12, 4) == 0 && back.port == a->port,
                   "mapped \"%s\" parses back as another address", buf);
    } else {
        FUZZ_CHECK(memcmp(&back, a, sizeof back) == 0, "\"%s\" parses back as another address", buf);
    }
    // A buffer one byte short gets a terminated prefix and the same length.
    char small[NET_ADDR_STRLEN];
    FUZZ_CHECK(net_addr_format(a, small, n) == n && strlen(small) == n - 1 && memcmp(small, buf, n - 1) == 0,
               "truncated format of \"%s\"", buf);
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < SETTINGS_LEN) return 0;
    fuzz_splitter split;
    fuzz_splitter_init(&split, (uint32_t)data[1] | (uint32_t)data[2] << 8, data[0]);
    const uint8_t *d = data + SETTINGS_LEN;
    size_t n = size - SETTINGS_LEN;

    proxy_result whole;
    memset(&whole, 0x5A, sizeof whole);
    proxy_status st = proxy_parse(d, n, &whole);
    FUZZ_CHECK(st == PROXY_ERROR || st == PROXY_NEED_MORE || st == PROXY_DONE, "status %d", st);
    FUZZ_CHECK((st == PROXY_ERROR) == (whole.error != nullptr), "error text set %d for status %d",
               whole.error != nullptr, st);
    if (st != PROXY_DONE)
        FUZZ_CHECK(whole.header_len == 0 && !whole.local && whole.src.family == 0 && whole.dst.family == 0,
                   "status %d carries a result", st);

    // The server's way: append each read, parse all it holds.
    size_t held = 0;
    proxy_result part;
    proxy_status pst = PROXY_NEED_MORE;
    do {
        held += fuzz_splitter_next(&split, n - held);
        memset(&part, 0xA5, sizeof part);
        pst = proxy_parse(d, held, &part);
        if (pst == PROXY_DONE) FUZZ_CHECK(part.header_len <= held, "header_len %zu of %zu bytes", part.header_len, held);
    } while (pst == PROXY_NEED_MORE && held < n);
    FUZZ_CHECK(pst == st, "whole: %d (%s), in pieces: %d (%s) after %zu bytes", st, whole.error ? whole.error : "-",
               pst, part.error ? part.error : "-", held);
    FUZZ_CHECK(same_result(&whole, &part), "whole and pieces give different results (%s / %s)",
               whole.error ? whole.error : "-", part.error ? part.error : "-");

    if (st == PROXY_DONE) {
        size_t hl = whole.header_len;
        FUZZ_CHECK(hl > 0 && hl <= n && hl <= PROXY_MAX_HEADER, "header_len %zu of %zu", hl, n);
        proxy_result r;
        FUZZ_CHECK(proxy_parse(d, hl, &r) == PROXY_DONE && same_result(&r, &whole), "the header alone differs");
        FUZZ_CHECK(proxy_parse(d, hl - 1, &r) == PROXY_NEED_MORE, "the header does not end at header_len");
        if (whole.local) {
            FUZZ_CHECK(whole.src.family == 0 && whole.dst.family == 0, "a local header names addresses");
        } else {
            FUZZ_CHECK(whole.src.family == whole.dst.family, "src and dst families differ");
            check_addr_text(&whole.src);
            check_addr_text(&whole.dst);
        }
    }
    if (n && d[0] == 'P') {
        check_v1(d, n, st, &whole);
        if (st == PROXY_DONE) FUZZ_CHECK(whole.header_len <= PROXY_V1_MAX, "v1 header of %zu bytes", whole.header_len);
    } else if (n && st == PROXY_DONE) {
        check_v2_done(d, &whole);
    }
    if (n && d[0] != 'P' && d[0] != '\r') FUZZ_CHECK(st == PROXY_ERROR, "first byte %02x not refused", d[0]);
    return 0;
}
