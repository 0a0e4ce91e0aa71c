#include "msg/envelope.h"

// simdjson turns on its development checks in builds without optimisation; they abort on
// input nested deeper than the parser allows, which must be an error answer instead.
#define SIMDJSON_DEVELOPMENT_CHECKS 0
#include <simdjson.h>
#include <stdlib.h>

#include <new>

using namespace simdjson;

// On-Demand only checks what it visits, so everything is visited: the known fields, the
// payload (walked by a second parser over its own text, which stays in the padded
// copy) and the values of fields the protocol ignores. simdjson is used through its
// error codes only (built without exceptions).
struct env_parser {
    ondemand::parser doc;     // the envelope
    ondemand::parser payload; // the payload's text, walked on its own
    char *buf;                // the message, followed by SIMDJSON_PADDING bytes
    size_t cap;
};

env_parser *env_parser_new(size_t max_len) {
    env_parser *p = new (std::nothrow) env_parser;
    if (!p) return nullptr;
    p->cap = max_len + SIMDJSON_PADDING;
    p->buf = (char *)malloc(p->cap);
    if (!p->buf || p->doc.allocate(max_len, ENV_MAX_DEPTH) || p->payload.allocate(max_len, ENV_MAX_DEPTH)) {
        env_parser_free(p);
        return nullptr;
    }
    return p;
}

void env_parser_free(env_parser *p) {
    if (!p) return;
    free(p->buf);
    delete p;
}

static bool walk(ondemand::value v, int depth);

static bool walk_scalar(ondemand::json_type t, ondemand::value v) {
    std::string_view s;
    ondemand::number n;
    bool b;
    switch (t) {
    case ondemand::json_type::string: return !v.get_string().get(s);
    case ondemand::json_type::number: return !v.get_number().get(n);
    case ondemand::json_type::boolean: return !v.get_bool().get(b);
    case ondemand::json_type::null: return !v.is_null().get(b) && b;
    default: return false;
    }
}

static bool walk(ondemand::value v, int depth) {
    if (depth > ENV_MAX_DEPTH) return false;
    ondemand::json_type t;
    if (v.type().get(t)) return false;
    if (t == ondemand::json_type::object) {
        ondemand::object o;
        if (v.get_object().get(o)) return false;
        for (auto fr : o) {
            ondemand::field f;
            std::string_view k;
            if (std::move(fr).get(f) || f.unescaped_key().get(k) || !walk(f.value(), depth + 1)) return false;
        }
        return true;
    }
    if (t == ondemand::json_type::array) {
        ondemand::array a;
        if (v.get_array().get(a)) return false;
        for (auto er : a) {
            ondemand::value e;
            if (std::move(er).get(e) || !walk(e, depth + 1)) return false;
        }
        return true;
    }
    return walk_scalar(t, v);
}

static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// Text as a document of its own: valid JSON, its root at depth `depth` of the envelope
// (1: the whole message, 2: a field's value), within ENV_MAX_DEPTH, and nothing after it.
static bool text_valid(env_parser *p, std::string_view s, int depth) {
    // simdjson 3.0 refuses a root scalar followed by much whitespace (its token, trailing
    // whitespace included, must fit a small copy): the whitespace is left out.
    while (!s.empty() && is_ws(s.back())) s.remove_suffix(1);
    ondemand::document d;
    size_t room = (size_t)(p->buf + p->cap - s.data());
    if (p->payload.iterate(s.data(), s.size(), room).get(d)) return false;
    bool scalar;
    if (d.is_scalar().get(scalar)) return false;
    if (scalar) {
        ondemand::json_type t;
        std::string_view sv, tok;
        ondemand::number n;
        bool b, ok;
        if (d.type().get(t) || d.raw_json_token().get(tok)) return false;
        // The literals by their exact text: simdjson 3.0 takes "falsex" for false when it is
        // a whole document. The last token of a document may run on into the padding.
        if (tok.data() + tok.size() > s.data() + s.size()) tok = tok.substr(0, (size_t)(s.data() + s.size() - tok.data()));
        size_t tl = tok.size();
        while (tl && is_ws(tok[tl - 1])) tl--;
        std::string_view lit = tok.substr(0, tl);
        switch (t) {
        case ondemand::json_type::string: ok = !d.get_string().get(sv); break;
        case ondemand::json_type::number: ok = !d.get_number().get(n); break;
        case ondemand::json_type::boolean: ok = !d.get_bool().get(b) && (lit == "true" || lit == "false"); break;
        case ondemand::json_type::null: ok = !d.is_null().get(b) && b && lit == "null"; break;
        default: ok = false;
        }
        // A scalar document is its one token: anything but whitespace after it is not JSON.
        for (size_t i = (size_t)(tok.data() + tok.size() - s.data()); ok && i < s.size(); i++) ok = is_ws(s[i]);
        return ok;
    }
    ondemand::value v;
    const char *loc;
    return !d.get_value().get(v) && walk(v, depth) && d.current_location().get(loc) == OUT_OF_BOUNDS;
}

// simdjson 3.0 gives the raw text of objects and arrays; a scalar's is its token, which
// may carry the whitespace after it.
static bool raw_text(ondemand::value &v, std::string_view *s) {
    ondemand::json_type t;
    if (v.type().get(t)) return false;
    if (t == ondemand::json_type::object) {
        ondemand::object o;
        return !v.get_object().get(o) && !o.raw_json().get(*s);
    }
    if (t == ondemand::json_type::array) {
        ondemand::array a;
        return !v.get_array().get(a) && !a.raw_json().get(*s);
    }
    *s = v.raw_json_token();
    size_t n = s->size();
    while (n && is_ws((*s)[n - 1])) n--;
    *s = s->substr(0, n);
    return true;
}

static env_str *field_of(envelope *e, std::string_view k) {
    if (k == "type") return &e->type;
    if (k == "id") return &e->id;
    if (k == "correlationId") return &e->correlation_id;
    if (k == "channel") return &e->channel;
    if (k == "to") return &e->to;
    if (k == "event") return &e->event;
    if (k == "clientId") return &e->client_id;
    if (k == "payload") return &e->payload;
    return nullptr;
}

env_result env_parse(env_parser *p, const char *data, size_t len, envelope *out, const char **why, bool need_type) {
    *out = envelope{};
    *why = nullptr;
    if (len + SIMDJSON_PADDING > p->cap) {
        *why = "message too large";
        return ENV_BAD_REQUEST;
    }
    memcpy(p->buf, data, len);
    ondemand::document doc;
    ondemand::object obj;
    ondemand::json_type t;
    if (p->doc.iterate(p->buf, len, p->cap).get(doc) || doc.type().get(t)) {
        *why = "not JSON";
        return ENV_INVALID_JSON;
    }
    if (t != ondemand::json_type::object || doc.get_object().get(obj)) {
        // On-Demand judged only the first byte: whether the rest is JSON decides the code.
        if (!text_valid(p, std::string_view(p->buf, len), 1)) return *why = "not JSON", ENV_INVALID_JSON;
        *why = "a message is one JSON object";
        return ENV_BAD_REQUEST;
    }
    env_result bad = ENV_OK;
    for (auto fr : obj) {
        ondemand::field f;
        std::string_view key;
        if (std::move(fr).get(f) || f.unescaped_key().get(key)) return *why = "not JSON", ENV_INVALID_JSON;
        env_str *slot = field_of(out, key);
        ondemand::value v = f.value();
        if (!slot) { // not the protocol's: checked, then ignored (a field's value is depth 2)
            if (!walk(v, 2)) return *why = "not JSON", ENV_INVALID_JSON;
            continue;
        }
        if (slot->ptr && !bad) {
            *why = "a field is given twice";
            bad = ENV_BAD_REQUEST; // the rest is still read: invalid JSON says more
        }
        std::string_view s;
        if (slot == &out->payload) {
            if (!raw_text(v, &s) || !text_valid(p, s, 2)) return *why = "not JSON", ENV_INVALID_JSON;
        } else {
            ondemand::json_type vt;
            if (v.type().get(vt)) return *why = "not JSON", ENV_INVALID_JSON;
            if (vt != ondemand::json_type::string) {
                if (!walk(v, 2)) return *why = "not JSON", ENV_INVALID_JSON;
                if (!bad) *why = "type, id, correlationId, channel, to, clientId and event are strings";
                bad = ENV_BAD_REQUEST;
                continue;
            }
            if (v.get_string().get(s)) return *why = "not JSON", ENV_INVALID_JSON;
        }
        *slot = env_str{s.data() ? s.data() : "", (uint32_t)s.size()};
    }
    const char *loc;
    if (doc.current_location().get(loc) != OUT_OF_BOUNDS) return *why = "not JSON", ENV_INVALID_JSON;
    if (bad) return bad;
    if (need_type && (!out->type.ptr || !out->type.len)) {
        *why = "type is required";
        return ENV_BAD_REQUEST;
    }
    return ENV_OK;
}

bool env_since(env_parser *p, env_str payload, uint64_t *offset, env_str *epoch) {
    if (!payload.ptr || payload.len == 0 || payload.ptr[0] != '{') return false;
    ondemand::document d;
    ondemand::object o, since;
    size_t room = (size_t)(p->buf + p->cap - payload.ptr);
    if (p->payload.iterate(payload.ptr, payload.len, room).get(d) || d.get_object().get(o) ||
        o.find_field_unordered("since").get_object().get(since))
        return false;
    std::string_view e;
    if (since.find_field_unordered("offset").get_uint64().get(*offset) ||
        since.find_field_unordered("epoch").get_string().get(e))
        return false;
    *epoch = env_str{e.data(), (uint32_t)e.size()};
    return true;
}

// --- writing ---------------------------------------------------------------------------

void env_out_reset(env_out *o) {
    o->len = 0;
    o->failed = false;
}

void env_out_free(env_out *o) {
    free(o->buf);
    *o = env_out{};
}

void env_raw(env_out *o, const char *s, size_t n) {
    if (o->failed) return;
    if (o->len + n > o->cap) {
        size_t cap = o->cap ? o->cap : 512;
        while (cap < o->len + n) cap *= 2;
        char *nb = (char *)realloc(o->buf, cap);
        if (!nb) {
            o->failed = true;
            return;
        }
        o->buf = nb;
        o->cap = cap;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

void env_string(env_out *o, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    env_raw(o, "\"", 1);
    size_t run = 0; // bytes copied as they are, written in one go
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        env_raw(o, s + run, i - run);
        run = i + 1;
        char esc[6] = {'\\', 0, 0, 0, 0, 0};
        size_t el = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            el = 6;
        }
        env_raw(o, esc, el);
    }
    env_raw(o, s + run, n - run);
    env_raw(o, "\"", 1);
}

void env_u64(env_out *o, uint64_t v) {
    char tmp[24];
    int n = 0;
    do tmp[sizeof tmp - 1 - n++] = (char)('0' + v % 10);
    while (v /= 10);
    env_raw(o, tmp + sizeof tmp - n, (size_t)n);
}

void env_key(env_out *o, const char *key, bool first) {
    env_raw(o, first ? "{" : ",", 1);
    env_string(o, key, strlen(key));
    env_raw(o, ":", 1);
}
