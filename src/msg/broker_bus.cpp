// The messages nodes exchange on Redis Pub/Sub (src/msg/broker.h): a pure parser, with no
// I/O, unit-tested in test/msg and fuzzed (fuzz/fuzz_bus.cpp). Anyone who can PUBLISH on
// the Redis the nodes share can put bytes here, so every field is checked before a node
// acts on it.
#include <string.h>

#include "msg/broker.h"
#include "msg/server.h"

// The next space-separated field of [*p, end): not empty, followed by a space.
static bool field(const char **p, const char *end, const char **f, size_t *len) {
    const char *s = *p, *sp = (const char *)memchr(s, ' ', (size_t)(end - s));
    if (!sp || sp == s) return false;
    *f = s;
    *len = (size_t)(sp - s);
    *p = sp + 1;
    return true;
}

// A decimal number of 1 to 19 digits (no sign, no leading zeros but "0" itself).
static bool field_u64(const char **p, const char *end, uint64_t *v) {
    const char *f;
    size_t len;
    if (!field(p, end, &f, &len) || len > 19 || (len > 1 && f[0] == '0')) return false;
    uint64_t x = 0;
    for (size_t i = 0; i < len; i++) {
        if (f[i] < '0' || f[i] > '9') return false;
        x = x * 10 + (uint64_t)(f[i] - '0');
    }
    *v = x;
    return true;
}

static bool lower_hex(const char *s, size_t len, size_t want) {
    if (len != want) return false;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
    return true;
}

static bool channel_field(const char **p, const char *end, bus_msg *out) {
    const char *f;
    size_t len;
    if (!field(p, end, &f, &len)) return false;
    env_str name{f, (uint32_t)(len > MAX_CHANNEL_NAME ? MAX_CHANNEL_NAME + 1 : len)};
    if (!msg_channel_name_ok(&name)) return false;
    out->channel = f;
    out->channel_len = (uint32_t)len;
    return true;
}

static bool client_field(const char **p, const char *end, bus_msg *out) {
    const char *f;
    size_t len;
    if (!field(p, end, &f, &len) || !lower_hex(f, len, CLIENT_ID_LEN)) return false;
    out->client_id = f;
    return true;
}

// A close code an application may send (RFC 6455 7.4), as the backend API takes them.
static bool code_field(const char **p, const char *end, bus_msg *out) {
    uint64_t c;
    if (!field_u64(p, end, &c)) return false;
    if (!((c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999))) return false;
    out->code = (uint16_t)c;
    return true;
}

bool bus_parse(const char *m, size_t len, bus_msg *out) {
    memset(out, 0, sizeof *out);
    if (len == 1 && m[0] == 'h') return out->kind = BUS_HEARTBEAT, true;
    if (len < 2 || m[1] != ' ') return false;
    const char *p = m + 2, *end = m + len;
    switch (m[0]) {
    case BUS_PUBLICATION: {
        const char *ep;
        size_t el;
        if (!channel_field(&p, end, out) || !field(&p, end, &ep, &el) || !lower_hex(ep, el, 16) ||
            !field_u64(&p, end, &out->offset) || !out->offset)
            return false;
        out->epoch = ep;
        break;
    }
    case BUS_JOIN:
    case BUS_LEAVE:
        if (!channel_field(&p, end, out) || !client_field(&p, end, out)) return false;
        break;
    case BUS_DIRECT:
        if (!client_field(&p, end, out)) return false;
        break;
    case BUS_DISCONNECT:
        if (!client_field(&p, end, out) || !code_field(&p, end, out)) return false;
        break;
    case BUS_DISCONNECT_USER: {
        const char *node;
        size_t nl;
        uint64_t ul;
        if (!field(&p, end, &node, &nl) || !lower_hex(node, nl, 16) || !code_field(&p, end, out) ||
            !field_u64(&p, end, &ul) || !ul || ul > (uint64_t)(end - p))
            return false;
        out->node = node;
        out->user = p;
        out->user_len = (size_t)ul;
        p += ul;
        break;
    }
    default: return false;
    }
    out->kind = m[0];
    out->data = p;
    out->data_len = (size_t)(end - p);
    // What the rest is: an envelope or a client object (not empty), or a close reason
    // (at most 123 bytes, as a close frame carries).
    bool reason = out->kind == BUS_DISCONNECT || out->kind == BUS_DISCONNECT_USER;
    return reason ? out->data_len <= 123 : out->data_len > 0;
}
