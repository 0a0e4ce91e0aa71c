#include "proto/proxy.h"

#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>

static proxy_status fail(proxy_result *out, const char *why) {
    out->error = why;
    return PROXY_ERROR;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// --- version 1 -------------------------------------------------------------------
//
// The spec asks the receiver to wait for the CRLF before decoding, but answering ERROR
// early needs more: knowing, byte by byte, whether the text so far can still become a
// valid field. The checks below are written from glibc's inet_pton grammar (which decides
// a complete field), so that no prefix of a field inet_pton accepts is ever refused.

// Can s[0..n) begin (closed: be) a dotted quad that inet_pton(AF_INET) accepts? Four
// decimal parts 0..255, no leading zeros (the spec forbids them too, against octal
// readings).
static bool ipv4_text_ok(const char *s, size_t n, bool closed) {
    unsigned dots = 0, digits = 0, val = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (is_digit(c)) {
            if (digits == 1 && val == 0) return false;
            val = val * 10 + (unsigned)(c - '0');
            if (++digits > 3 || val > 255) return false;
        } else if (c == '.') {
            if (digits == 0 || ++dots > 3) return false;
            digits = val = 0;
        } else {
            return false;
        }
    }
    return !closed || (dots == 3 && digits > 0);
}

// Can s[0..n) begin an IPv6 text that inet_pton(AF_INET6) accepts? Counts the 16-bit
// groups written so far against the 8 there are room for (7 once "::" stands for at least
// one), and hands a token that turns out to be a dotted quad to ipv4_text_ok. Closed
// fields are decided by inet_pton itself.
static bool ipv6_text_prefix_ok(const char *s, size_t n) {
    unsigned groups = 0, xd = 0; // complete groups; hex digits of the current token
    bool dbl = false;            // "::" seen
    bool colon = false;          // the previous character was ':'
    size_t tok = 0;              // where the current token starts
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (is_hex(c)) {
            if (colon && groups == 0 && !dbl) return false; // ":1": a leading colon is half of "::"
            if (xd == 0) tok = i;
            if (++xd > 4 || groups + 1 > (dbl ? 7u : 8u)) return false;
            colon = false;
        } else if (c == ':') {
            if (xd == 0) {
                // At the start a colon must begin "::"; elsewhere an empty token after
                // a colon is the second half of "::", of which there is one.
                if (i == 0) {
                    colon = true;
                    continue;
                }
                if (!colon || dbl) return false;
                dbl = true;
            } else {
                // A group then one colon: a group or the second colon of "::" must
                // follow, and either needs room for one more group.
                groups++;
                xd = 0;
                if (groups > (dbl ? 6u : 7u)) return false;
            }
            colon = true;
        } else if (c == '.') {
            // The current token starts an IPv4 tail, which ends the text: it needs two
            // groups of room, exactly the last two when there is no "::".
            if (xd == 0 || (dbl ? groups > 5 : groups != 6)) return false;
            return ipv4_text_ok(s + tok, n - tok, false);
        } else {
            return false;
        }
    }
    // A lone leading ':' is still a prefix of "::".
    return true;
}

// inet_pton on a counted field (at most 45 characters, so the copy is bounded).
static bool ip_from_text(int family, const char *s, size_t n, uint8_t out[16]) {
    char buf[INET6_ADDRSTRLEN];
    if (n >= sizeof buf) return false;
    memcpy(buf, s, n);
    buf[n] = 0;
    return inet_pton(family, buf, out) == 1;
}

// A port 0..65535, decimal, no sign and no leading zeros.
static bool port_text_ok(const char *s, size_t n, bool closed, uint16_t *port) {
    if (n > 5 || (n > 1 && s[0] == '0')) return false;
    uint32_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!is_digit(s[i])) return false;
        v = v * 10 + (uint32_t)(s[i] - '0');
    }
    if (v > 65535 || (closed && n == 0)) return false;
    *port = (uint16_t)v;
    return true;
}

static bool is_prefix_of(const char *s, size_t n, const char *word) {
    return n <= strlen(word) && memcmp(s, word, n) == 0;
}

// The fields of a v1 line s[0..n) (without its CRLF). ended: the line ends at n, so the
// last field is complete; otherwise it may still grow. PROXY_NEED_MORE means "valid so
// far", PROXY_DONE (ended only) "a complete header". Fields are checked in order, so an
// error is always the one at the first byte that rules the line out.
static proxy_status v1_fields(const char *s, size_t n, bool ended, proxy_result *out) {
    if (!is_prefix_of(s, n < 6 ? n : 6, "PROXY ")) return fail(out, "not a PROXY protocol header");
    if (n < 6) return ended ? fail(out, "truncated PROXY v1 line") : PROXY_NEED_MORE;
    int family = 0;
    size_t pos = 6;
    for (int field = 0;; field++) {
        size_t e = pos;
        while (e < n && s[e] != ' ') e++;
        bool closed = e < n || ended; // by a space or by the end of the line
        const char *f = s + pos;
        size_t fl = e - pos;
        if (closed && fl == 0) return fail(out, "empty field in PROXY v1 line");
        if (field == 0) {
            if (!closed) {
                if (is_prefix_of(f, fl, "TCP4") || is_prefix_of(f, fl, "TCP6") || is_prefix_of(f, fl, "UNKNOWN"))
                    return PROXY_NEED_MORE;
                return fail(out, "unknown PROXY v1 protocol");
            }
            // The spec: the receiver ignores whatever follows UNKNOWN up to the CRLF.
            if (fl == 7 && memcmp(f, "UNKNOWN", 7) == 0) {
                out->local = true;
                return ended ? PROXY_DONE : PROXY_NEED_MORE;
            }
            if (fl == 4 && memcmp(f, "TCP4", 4) == 0) family = AF_INET;
            else if (fl == 4 && memcmp(f, "TCP6", 4) == 0) family = AF_INET6;
            else return fail(out, "unknown PROXY v1 protocol");
        } else if (field <= 2) {
            net_addr *a = field == 1 ? &out->src : &out->dst;
            bool ok = family == AF_INET ? ipv4_text_ok(f, fl, closed) : ipv6_text_prefix_ok(f, fl);
            if (ok && closed) ok = ip_from_text(family, f, fl, a->addr);
            if (!ok)
                return fail(out, family == AF_INET ? "bad IPv4 address in PROXY v1 line"
                                                   : "bad IPv6 address in PROXY v1 line");
            a->family = (uint8_t)family;
        } else {
            net_addr *a = field == 3 ? &out->src : &out->dst;
            if (!port_text_ok(f, fl, closed, &a->port)) return fail(out, "bad port in PROXY v1 line");
        }
        if (!closed) return PROXY_NEED_MORE;
        if (e == n) return field < 4 ? fail(out, "truncated PROXY v1 line") : PROXY_DONE;
        if (field == 4) return fail(out, "trailing data in PROXY v1 line");
        pos = e + 1;
    }
}

// "PROXY TCP4 src dst sport dport\r\n", "PROXY TCP6 ...", "PROXY UNKNOWN[ anything]\r\n",
// at most 107 bytes with the CRLF, single spaces between fields.
static proxy_status parse_v1(const char *s, size_t len, proxy_result *out) {
    // The text runs to the first CR or LF; at most 105 bytes of it fit before a CRLF.
    size_t scan = len < (size_t)PROXY_V1_MAX ? len : (size_t)PROXY_V1_MAX, n = 0;
    while (n < scan && s[n] != '\r' && s[n] != '\n') n++;
    // The checks run in the order of the bytes they judge, so that a line that goes wrong
    // in several places gets the same reason whether it arrives whole or in pieces: the
    // fields as far as they go, the length (byte 106), the terminator, the fields as
    // complete ones (judged at the CR), and the byte after the CR.
    size_t body = n < (size_t)PROXY_V1_MAX - 1 ? n : (size_t)PROXY_V1_MAX - 1;
    if (v1_fields(s, body, false, out) == PROXY_ERROR) return PROXY_ERROR;
    if (n > (size_t)PROXY_V1_MAX - 2) return fail(out, "PROXY v1 line longer than 107 bytes");
    if (n == len) return PROXY_NEED_MORE;
    if (s[n] == '\n') return fail(out, "PROXY v1 line with a bare LF");
    if (v1_fields(s, n, true, out) == PROXY_ERROR) return PROXY_ERROR;
    if (n + 1 == len) return PROXY_NEED_MORE;
    if (s[n + 1] != '\n') return fail(out, "PROXY v1 line with a bare CR");
    out->header_len = n + 2;
    return PROXY_DONE;
}

// --- version 2 -------------------------------------------------------------------

static const uint8_t V2_SIG[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

static const uint8_t PP2_TYPE_CRC32C = 0x03;
static const size_t V2_HEADER = 16;

// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as RFC 4960 appendix B and the
// PROXY spec §2.2.3 define it; the table is built at compile time.
struct crc_table {
    uint32_t t[256];
};
static constexpr crc_table make_crc_table(void) {
    crc_table c{};
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t r = i;
        for (int k = 0; k < 8; k++) r = (r >> 1) ^ (0x82F63B78u & (0u - (r & 1)));
        c.t[i] = r;
    }
    return c;
}
static constexpr crc_table CRC32C = make_crc_table();

// The checksum of the header with its 4 checksum bytes (at zero_at) read as zeros.
static uint32_t header_crc32c(const uint8_t *d, size_t n, size_t zero_at) {
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        uint8_t b = i - zero_at < 4 ? 0 : d[i];
        crc = CRC32C.t[(crc ^ b) & 0xFF] ^ (crc >> 8);
    }
    return crc ^ 0xFFFFFFFFu;
}

static uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

static void v2_addr(net_addr *a, int family, const uint8_t *ip, const uint8_t *port) {
    a->family = (uint8_t)family;
    memcpy(a->addr, ip, family == AF_INET ? 4 : 16);
    a->port = be16(port);
}

static proxy_status parse_v2(const uint8_t *d, size_t len, proxy_result *out) {
    if (memcmp(d, V2_SIG, len < 12 ? len : 12) != 0) return fail(out, "not a PROXY protocol header");
    if (len < 13) return PROXY_NEED_MORE;
    // The spec: version 2 is the only one a receiver accepts; commands other than LOCAL
    // (0) and PROXY (1) must be dropped.
    if (d[12] >> 4 != 2) return fail(out, "unsupported PROXY protocol version");
    if ((d[12] & 0x0F) > 1) return fail(out, "unknown PROXY v2 command");
    bool local = (d[12] & 0x0F) == 0;
    if (len < 14) return PROXY_NEED_MORE;
    // With LOCAL the family is ignored (the spec: "discard the protocol block including
    // the family"); with PROXY only the seven combinations the spec lists are valid.
    size_t addr_len = 0;
    if (!local) {
        switch (d[13]) {
        case 0x00: addr_len = 0; break;
        case 0x11: case 0x12: addr_len = 12; break;
        case 0x21: case 0x22: addr_len = 36; break;
        case 0x31: case 0x32: addr_len = 216; break;
        default: return fail(out, "bad PROXY v2 address family");
        }
    }
    if (len < V2_HEADER) return PROXY_NEED_MORE;
    size_t block = be16(d + 14), total = V2_HEADER + block;
    if (block > (size_t)PROXY_MAX_HEADER - V2_HEADER) return fail(out, "PROXY v2 header too long");
    if (block < addr_len) return fail(out, "PROXY v2 address block too short for its family");

    // What follows the addresses is a list of TLVs (type, 16-bit length, value). Their
    // framing is checked as the bytes arrive, as HAProxy does: a TLV that runs past the
    // declared length means the length or the TLVs are wrong, so neither can be trusted.
    // After LOCAL or UNSPEC we do not know where addresses end, and skip the block whole.
    size_t crc_at = 0; // offset of a CRC32C value, 0 for none
    if (!local && d[13] != 0x00) {
        for (size_t pos = V2_HEADER + addr_len; pos < total;) {
            if (total - pos < 3) return fail(out, "PROXY v2 TLV cut off by the header length");
            if (pos + 3 > len) return PROXY_NEED_MORE;
            size_t tl = be16(d + pos + 1);
            if (pos + 3 + tl > total) return fail(out, "PROXY v2 TLV runs past the header");
            if (d[pos] == PP2_TYPE_CRC32C) {
                if (tl != 4) return fail(out, "PROXY v2 CRC32C TLV is not 4 bytes");
                crc_at = pos + 3;
            }
            pos += 3 + tl;
        }
    }
    if (len < total) return PROXY_NEED_MORE;
    // §2.2.3: a receiver that supports the checksum MUST refuse a header that fails it.
    // A corrupted header could otherwise name any client.
    if (crc_at) {
        const uint8_t *c = d + crc_at;
        uint32_t sent = (uint32_t)c[0] << 24 | (uint32_t)c[1] << 16 | (uint32_t)c[2] << 8 | c[3];
        if (header_crc32c(d, total, crc_at) != sent) return fail(out, "PROXY v2 CRC32C mismatch");
    }
    out->header_len = total;
    // UDP over a stream connection and UNIX sockets name no client address we can use; the
    // spec lets a receiver fall back to UNSPEC for combinations it does not implement.
    if (local || (d[13] != 0x11 && d[13] != 0x21)) {
        out->local = true;
        return PROXY_DONE;
    }
    const uint8_t *b = d + V2_HEADER;
    if (d[13] == 0x11) {
        v2_addr(&out->src, AF_INET, b, b + 8);
        v2_addr(&out->dst, AF_INET, b + 4, b + 10);
    } else {
        v2_addr(&out->src, AF_INET6, b, b + 32);
        v2_addr(&out->dst, AF_INET6, b + 16, b + 34);
    }
    return PROXY_DONE;
}

proxy_status proxy_parse(const uint8_t *data, size_t len, proxy_result *out) {
    memset(out, 0, sizeof *out);
    if (len == 0) return PROXY_NEED_MORE;
    // The two versions differ in their first byte: 'P' of "PROXY", CR of the v2 signature.
    if (data[0] == 'P') {
        proxy_status st = parse_v1((const char *)data, len, out);
        // Fields are written as they are read; a header that is not done names no one.
        if (st != PROXY_DONE) {
            const char *error = out->error;
            memset(out, 0, sizeof *out);
            out->error = error;
        }
        return st;
    }
    if (data[0] == 0x0D) return parse_v2(data, len, out);
    return fail(out, "not a PROXY protocol header");
}
