// The fields of a client envelope as views, and the hand-built outgoing envelope
// (used by the simdjson variants: simdjson 3.0 has no JSON builder).
#pragma once
#include "jb.h"

#include <cstring>

namespace jb {

struct Str {
    const char* p = nullptr;
    size_t n = 0;
};

struct Parts {
    Str type, channel, id, corr, to, event, payload;  // payload: JSON text
    unsigned seen = 0;
};

inline Str* slot(Parts& x, unsigned f)
{
    switch (f) {
    case F_TYPE: return &x.type;
    case F_CHANNEL: return &x.channel;
    case F_ID: return &x.id;
    case F_CORR: return &x.corr;
    case F_TO: return &x.to;
    case F_EVENT: return &x.event;
    case F_PAYLOAD: return &x.payload;
    }
    return nullptr;
}

// The policy checks beyond types (jb.h).
inline bool policy_ok(const Parts& x)
{
    if (!(x.seen & F_TYPE) || x.type.n == 0)
        return false;
    if (x.type.n == 7 && memcmp(x.type.p, "publish", 7) == 0 && !(x.seen & F_CHANNEL))
        return false;
    return true;
}

inline bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

inline long build_by_hand(const Parts& x, const Meta& m, char* out, size_t cap)
{
    char* p = out;
    char* end = out + cap;
#define PUT(expr) do { if (!(p = (expr))) return -1; } while (0)
#define LIT(s) PUT(put_raw(p, end, s, sizeof(s) - 1))
    LIT("{\"type\":\"message\",\"channel\":");
    PUT(put_string(p, end, x.channel.p, x.channel.n));
    LIT(",\"offset\":");
    PUT(put_u64(p, end, m.offset));
    LIT(",\"from\":");
    PUT(put_string(p, end, m.from, strlen(m.from)));
    LIT(",\"timestamp\":");
    PUT(put_u64(p, end, m.timestamp));
    if (x.seen & F_ID) {
        LIT(",\"id\":");
        PUT(put_string(p, end, x.id.p, x.id.n));
    }
    if (x.seen & F_EVENT) {
        LIT(",\"event\":");
        PUT(put_string(p, end, x.event.p, x.event.n));
    }
    LIT(",\"payload\":");
    if (x.seen & F_PAYLOAD)
        PUT(put_raw(p, end, x.payload.p, x.payload.n));
    else
        LIT("null");
    LIT("}");
#undef LIT
#undef PUT
    return p - out;
}

}  // namespace jb
