#include "msg/envelope.h"

// simdjson turns on its development checks in builds without optimisation; they abort on
// input nested deeper than the parser allows, which must be an error answer instead.
#define SIMDJSON_DEVELOPMENT_CHECKS 0
#include <simdjson.h>
#include <stdlib.h>

#include <new>

using namespace simdjson;

// The message is first validated whole by the DOM parser (structure, escapes, UTF-8,
// literals, numbers, depth: On-Demand checks only what it visits, and simdjson 3.0's
// On-Demand lets some malformed text through where it skips), then read with On-Demand,
// which gives the payload's raw text. simdjson is used through its error codes only
// (built without exceptions).
struct env_parser {
    dom::parser check;        // validates the whole message
    dom::element root;        // the last message env_parse accepted, as the DOM read it
    ondemand::parser doc;     // reads the envelope
    ondemand::parser payload; // reads a subscribe's payload.since
    dom::parser other;        // validates an embedder's payloads
    char *buf;                // the message, followed by SIMDJSON_PADDING bytes
    size_t cap;
};

env_parser *env_parser_new(size_t max_len) {
    env_parser *p = new (std::nothrow) env_parser;
    if (!p) return nullptr;
    p->cap = max_len + SIMDJSON_PADDING;
    p->buf = (char *)malloc(p->cap);
    if (!p->buf || p->check.allocate(max_len, ENV_MAX_DEPTH) || p->doc.allocate(max_len, ENV_MAX_DEPTH) ||
        p->payload.allocate(max_len, ENV_MAX_DEPTH)) {
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

static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// simdjson 3.0 gives the raw text of objects and arrays; a scalar's is its token, which
// may carry the whitespace after it.
static bool raw_text(ondemand::value &v, std::string_view *s) {
    ondemand::json_type t;
    bool ok;
    if (v.type().get(t)) return false;
    if (t == ondemand::json_type::object) {
        ondemand::object o;
        ok = !v.get_object().get(o) && !o.raw_json().get(*s);
    } else if (t == ondemand::json_type::array) {
        ondemand::array a;
        ok = !v.get_array().get(a) && !a.raw_json().get(*s);
    } else {
        *s = v.raw_json_token();
        ok = true;
    }
    // The texts may carry the whitespace around the value: it is not the payload's.
    while (ok && !s->empty() && is_ws(s->back())) s->remove_suffix(1);
    while (ok && !s->empty() && is_ws(s->front())) s->remove_prefix(1);
    return ok;
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
    // simdjson reads into the padding (whole SIMD blocks): defined bytes, as its own
    // padded_string has, so that nothing depends on leftovers of an earlier message.
    memset(p->buf + len, 0, SIMDJSON_PADDING);
    dom::element &root = p->root;
    if (p->check.parse(p->buf, len, false).get(root)) {
        *why = "not JSON";
        return ENV_INVALID_JSON;
    }
    ondemand::document doc;
    ondemand::object obj;
    if (!root.is_object() || p->doc.iterate(p->buf, len, p->cap).get(doc) || doc.get_object().get(obj)) {
        *why = "a message is one JSON object";
        return ENV_BAD_REQUEST;
    }
    // Valid JSON from here: reading it cannot fail but for the envelope's own rules.
    env_result bad = ENV_OK;
    for (auto fr : obj) {
        ondemand::field f;
        std::string_view key;
        if (std::move(fr).get(f) || f.unescaped_key().get(key)) return *why = "not JSON", ENV_INVALID_JSON;
        env_str *slot = field_of(out, key);
        if (!slot) continue; // not the protocol's
        ondemand::value v = f.value();
        if (slot->ptr && !bad) {
            *why = "a field is given twice";
            bad = ENV_BAD_REQUEST;
        }
        std::string_view s;
        if (slot == &out->payload) {
            if (!raw_text(v, &s)) return *why = "not JSON", ENV_INVALID_JSON;
        } else {
            ondemand::json_type vt;
            if (v.type().get(vt)) return *why = "not JSON", ENV_INVALID_JSON;
            if (vt != ondemand::json_type::string || v.get_string().get(s)) {
                if (!bad) *why = "type, id, correlationId, channel, to, clientId and event are strings";
                bad = ENV_BAD_REQUEST;
                continue;
            }
        }
        *slot = env_str{s.data() ? s.data() : "", (uint32_t)s.size()};
    }
    if (bad) return bad;
    if (need_type && (!out->type.ptr || !out->type.len)) {
        *why = "type is required";
        return ENV_BAD_REQUEST;
    }
    return ENV_OK;
}

bool env_field_u64(env_parser *p, const char *key, uint64_t *out) {
    return !p->root.at_key(key).get_uint64().get(*out);
}

bool env_field_string(env_parser *p, const char *key, env_str *out) {
    std::string_view s;
    if (p->root.at_key(key).get_string().get(s)) return false;
    *out = env_str{s.data(), (uint32_t)s.size()};
    return true;
}

bool env_field_string_at(env_parser *p, const char *key, size_t i, env_str *out) {
    dom::array a;
    std::string_view s;
    if (p->root.at_key(key).get_array().get(a) || a.at(i).get_string().get(s)) return false;
    *out = env_str{s.data(), (uint32_t)s.size()};
    return true;
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

bool env_payload_string(env_parser *p, env_str payload, const char *key, env_str *out) {
    if (!payload.ptr || payload.len == 0 || payload.ptr[0] != '{') return false;
    ondemand::document d;
    ondemand::object o;
    std::string_view v;
    size_t room = (size_t)(p->buf + p->cap - payload.ptr);
    if (p->payload.iterate(payload.ptr, payload.len, room).get(d) || d.get_object().get(o) ||
        o.find_field_unordered(key).get_string().get(v))
        return false;
    *out = env_str{v.data(), (uint32_t)v.size()};
    return true;
}

bool env_json_valid(env_parser *p, const char *text, size_t len) {
    dom::element e;
    // The text is copied into padded room of the parser's own (it may sit anywhere).
    return len <= p->cap - SIMDJSON_PADDING && !p->other.parse(text, len, true).get(e);
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
