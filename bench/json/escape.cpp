// The hand-written JSON output helpers (simdjson 3.0 has no builder).
#include "jb.h"

#include <cstring>

namespace jb {

char* put_raw(char* p, char* end, const char* s, size_t n)
{
    if (static_cast<size_t>(end - p) < n)
        return nullptr;
    memcpy(p, s, n);
    return p + n;
}

char* put_string(char* p, char* end, const char* s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    // Worst case every byte becomes \u00XX.
    if (static_cast<size_t>(end - p) < 6 * n + 2)
        return nullptr;
    *p++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = static_cast<unsigned char>(s[i]);
        if (c >= 0x20 && c != '"' && c != '\\') {
            *p++ = static_cast<char>(c);
            continue;
        }
        *p++ = '\\';
        switch (c) {
        case '"': *p++ = '"'; break;
        case '\\': *p++ = '\\'; break;
        case '\n': *p++ = 'n'; break;
        case '\r': *p++ = 'r'; break;
        case '\t': *p++ = 't'; break;
        case '\b': *p++ = 'b'; break;
        case '\f': *p++ = 'f'; break;
        default:
            *p++ = 'u'; *p++ = '0'; *p++ = '0';
            *p++ = hex[c >> 4]; *p++ = hex[c & 15];
        }
    }
    *p++ = '"';
    return p;
}

char* put_u64(char* p, char* end, uint64_t v)
{
    char tmp[20];
    int n = 0;
    do {
        tmp[n++] = static_cast<char>('0' + v % 10);
        v /= 10;
    } while (v);
    if (end - p < n)
        return nullptr;
    while (n)
        *p++ = tmp[--n];
    return p;
}

unsigned field_of(const char* k, size_t n)
{
    switch (n) {
    case 2:
        if (memcmp(k, "id", 2) == 0) return F_ID;
        if (memcmp(k, "to", 2) == 0) return F_TO;
        return 0;
    case 4: return memcmp(k, "type", 4) == 0 ? F_TYPE : 0u;
    case 5: return memcmp(k, "event", 5) == 0 ? F_EVENT : 0u;
    case 7:
        if (memcmp(k, "channel", 7) == 0) return F_CHANNEL;
        if (memcmp(k, "payload", 7) == 0) return F_PAYLOAD;
        return 0;
    case 13: return memcmp(k, "correlationId", 13) == 0 ? F_CORR : 0u;
    }
    return 0;
}

}  // namespace jb
