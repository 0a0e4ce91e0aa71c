// simdjson 3.0.1 (Debian libsimdjson-dev): builds with -fno-exceptions as it is
// (SIMDJSON_EXCEPTIONS follows __cpp_exceptions); every call below uses the
// error-code API (.get(x) returns an error_code).
//   sj-od       On-Demand parser reused; payload = value.raw_json(), not looked into
//   sj-od-full  the same, then the payload walked with a second On-Demand parser so
//               that it is validated (On-Demand only checks what it visits), and the
//               values of ignored keys walked too
//   sj-dom      DOM parser reused (validates everything); payload re-serialised with
//               simdjson's internal::string_builder (no raw text in the DOM)
#include <simdjson.h>

#include "parts.h"

#include <utility>

using namespace simdjson;

namespace jb {
namespace {

ondemand::parser g_od;
ondemand::parser g_od2;
dom::parser g_dom;
internal::string_builder<> g_sb;

constexpr int kMaxDepth = 1024;

Str view(std::string_view s) { return Str{s.data(), s.size()}; }

Str trim(std::string_view s)
{
    size_t n = s.size();
    while (n && is_ws(s[n - 1]))
        n--;
    return Str{s.data(), n};
}

bool walk(ondemand::value v, int depth)
{
    if (depth > kMaxDepth)
        return false;
    ondemand::json_type t;
    if (v.type().get(t))
        return false;
    switch (t) {
    case ondemand::json_type::object: {
        ondemand::object o;
        if (v.get_object().get(o))
            return false;
        for (auto fr : o) {
            ondemand::field f;
            std::string_view k;
            if (std::move(fr).get(f) || f.unescaped_key().get(k))
                return false;
            if (!walk(f.value(), depth + 1))
                return false;
        }
        return true;
    }
    case ondemand::json_type::array: {
        ondemand::array a;
        if (v.get_array().get(a))
            return false;
        for (auto er : a) {
            ondemand::value e;
            if (std::move(er).get(e) || !walk(e, depth + 1))
                return false;
        }
        return true;
    }
    case ondemand::json_type::string: {
        std::string_view s;
        return !v.get_string().get(s);
    }
    case ondemand::json_type::number: {
        ondemand::number n;
        return !v.get_number().get(n);
    }
    case ondemand::json_type::boolean: {
        bool b;
        return !v.get_bool().get(b);
    }
    case ondemand::json_type::null: {
        bool is;
        return !v.is_null().get(is) && is;
    }
    }
    return false;
}

// The payload's text, still inside the padded input: walk it as a document of its own.
bool validate_span(std::string_view s, const char* buf_end)
{
    ondemand::document d;
    if (g_od2.iterate(s.data(), s.size(), static_cast<size_t>(buf_end - s.data())).get(d))
        return false;
    ondemand::value v;
    // A scalar document cannot be a value; payload scalars were checked by raw_json's
    // token already only lexically, so check them through the document.
    bool scalar;
    if (d.is_scalar().get(scalar))
        return false;
    if (scalar) {
        ondemand::json_type t;
        if (d.type().get(t))
            return false;
        std::string_view sv; ondemand::number n; bool b, is;
        switch (t) {
        case ondemand::json_type::string: return !d.get_string().get(sv);
        case ondemand::json_type::number: return !d.get_number().get(n);
        case ondemand::json_type::boolean: return !d.get_bool().get(b);
        case ondemand::json_type::null: return !d.is_null().get(is) && is;
        default: return false;
        }
    }
    if (d.get_value().get(v))
        return false;
    if (!walk(v, 1))
        return false;
    const char* loc;
    return d.current_location().get(loc) == OUT_OF_BOUNDS;
}

// simdjson 3.0.1 has raw_json() on object and array only; a scalar's text is its token.
bool raw_text(ondemand::value& v, std::string_view& s)
{
    ondemand::json_type t;
    if (v.type().get(t))
        return true;
    if (t == ondemand::json_type::object) {
        ondemand::object o;
        return v.get_object().get(o) || o.raw_json().get(s);
    }
    if (t == ondemand::json_type::array) {
        ondemand::array a;
        return v.get_array().get(a) || a.raw_json().get(s);
    }
    s = v.raw_json_token();  // a plain string_view in 3.0.1
    return false;
}

template <bool Full>
long od_round(char* in, size_t len, const Meta& m, char* out, size_t cap)
{
    ondemand::document doc;
    if (g_od.iterate(in, len, len + kPad).get(doc))
        return -1;
    ondemand::object obj;
    if (doc.get_object().get(obj))
        return -1;
    Parts x;
    for (auto fr : obj) {
        ondemand::field fld;
        std::string_view key;
        if (std::move(fr).get(fld) || fld.unescaped_key().get(key))
            return -1;
        unsigned f = field_of(key.data(), key.size());
        if (!f) {
            // sj-od skips the value unvisited: On-Demand checks only its brackets.
            if (Full && !walk(fld.value(), 1))
                return -1;
            continue;
        }
        if (x.seen & f)
            return -1;
        x.seen |= f;
        ondemand::value v = fld.value();
        std::string_view s;
        if (f == F_PAYLOAD) {
            if (raw_text(v, s))
                return -1;
            if (Full && !validate_span(s, in + len + kPad))
                return -1;
            x.payload = trim(s);
        } else {
            if (v.get_string().get(s))
                return -1;
            *slot(x, f) = view(s);
        }
    }
    // Nothing may follow the root object.
    const char* loc;
    if (doc.current_location().get(loc) != OUT_OF_BOUNDS)
        return -1;
    if (!policy_ok(x))
        return -1;
    return build_by_hand(x, m, out, cap);
}

long dom_round(char* in, size_t len, const Meta& m, char* out, size_t cap)
{
    dom::element root;
    if (g_dom.parse(reinterpret_cast<const uint8_t*>(in), len, false).get(root))
        return -1;
    dom::object obj;
    if (root.get_object().get(obj))
        return -1;
    Parts x;
    g_sb.clear();
    for (dom::key_value_pair kv : obj) {
        unsigned f = field_of(kv.key.data(), kv.key.size());
        if (!f)
            continue;
        if (x.seen & f)
            return -1;
        x.seen |= f;
        if (f == F_PAYLOAD) {
            g_sb.append(kv.value);
            std::string_view s = g_sb.str();
            x.payload = view(s);
        } else {
            std::string_view s;
            if (kv.value.get_string().get(s))
                return -1;
            *slot(x, f) = view(s);
        }
    }
    if (!policy_ok(x))
        return -1;
    return build_by_hand(x, m, out, cap);
}

}  // namespace

extern const Impl sj_od = {"sj-od", "simdjson On-Demand, payload raw_json() unchecked", od_round<false>};
extern const Impl sj_od_full = {"sj-od-full", "simdjson On-Demand, payload raw_json() + walked", od_round<true>};
extern const Impl sj_dom = {"sj-dom", "simdjson DOM, payload re-serialised", dom_round};

}  // namespace jb
