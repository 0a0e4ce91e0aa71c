// jansson 2.14 (Debian libjansson-dev, a C library: nothing to define).
//   js  json_loadb(JSON_REJECT_DUPLICATES) builds a tree (validates everything);
//       the output is a new object holding the parsed channel/id/event/payload
//       values by reference, written by json_dumpb(JSON_COMPACT) straight into the
//       output buffer (json_dumps would malloc the string as well)
#include <jansson.h>

#include "parts.h"

namespace jb {
namespace {

long js_round(char* in, size_t len, const Meta& m, char* out, size_t cap)
{
    json_error_t err;
    json_t* root = json_loadb(in, len, JSON_REJECT_DUPLICATES, &err);
    if (!root)
        return -1;
    long n = -1;
    json_t* fields[8] = {};
    Parts x;
    const char* key;
    json_t* v;
    json_t* o = nullptr;
    if (!json_is_object(root))
        goto done;
    json_object_foreach(root, key, v) {
        unsigned f = field_of(key, strlen(key));
        if (!f)
            continue;
        x.seen |= f;  // duplicates were rejected by the parser
        if (f != F_PAYLOAD && !json_is_string(v))
            goto done;
        fields[__builtin_ctz(f)] = v;
    }
    if (fields[0])
        x.type = Str{json_string_value(fields[0]), json_string_length(fields[0])};
    if (!policy_ok(x))
        goto done;
    o = json_object();
    json_object_set_new(o, "type", json_string_nocheck("message"));
    json_object_set_new(o, "channel", fields[1] ? json_incref(fields[1]) : json_string_nocheck(""));
    json_object_set_new(o, "offset", json_integer(static_cast<json_int_t>(m.offset)));
    json_object_set_new(o, "from", json_string_nocheck(m.from));
    json_object_set_new(o, "timestamp", json_integer(static_cast<json_int_t>(m.timestamp)));
    if (fields[2])
        json_object_set(o, "id", fields[2]);
    if (fields[5])
        json_object_set(o, "event", fields[5]);
    json_object_set_new(o, "payload", fields[6] ? json_incref(fields[6]) : json_null());
    {
        size_t w = json_dumpb(o, out, cap, JSON_COMPACT);
        if (w && w <= cap)
            n = static_cast<long>(w);
    }
done:
    json_decref(o);
    json_decref(root);
    return n;
}

}  // namespace

extern const Impl js = {"js", "jansson json_loadb + json_dumpb", js_round};

}  // namespace jb
