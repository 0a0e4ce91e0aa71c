// Fuzz target for the messaging envelope (src/msg/envelope.*): env_parse against a
// reference decision made with simdjson's DOM parser, and the writer (env_string,
// env_u64, env_key) by round trip.
//
// Input layout (9 bytes of settings, then the message):
//   [0]    bits0-2: the parser's max_len: 0 = the message's length, 1 = length + 1,
//          2 = length + 63, 3 = a parser kept across inputs with max_len 1 MiB (as the
//          server's default max_message), 4 = length - 1 (the message is too large:
//          BAD_REQUEST "message too large"); 5-7 = the length
//   [1..8] a u64 (little-endian) for env_u64
//
// Part 1, env_parse. The reference:
//   INVALID_JSON  exactly when the DOM parser (max_depth ENV_MAX_DEPTH) refuses the
//                 bytes or they are not UTF-8 (src/proto's utf8_validate, as an
//                 independent check; the DOM must refuse every such input too);
//   BAD_REQUEST   a JSON text that is not an object, or an object in which type, id,
//                 correlationId, channel, to or event is not a string, or a known field
//                 (those and payload) appears twice (keys compared unescaped), or type
//                 is missing or empty;
//   OK            otherwise: each field is the DOM's unescaped string (absent: NULL),
//                 payload's raw text has no surrounding whitespace and re-parses (DOM)
//                 to a value whose minified text equals the DOM payload's.
// `why` is NULL exactly on OK. The same parser given the message again must answer the
// same (a reused parser keeps no state between messages).
//
// Part 2, the writer. The longest valid UTF-8 prefix of the message goes through
// env_string: the DOM must read back exactly those bytes, and only '"', '\\' and
// control characters may be escaped. An object written with env_key/env_string/env_u64
// ({"type":<prefix>,"payload":<u64>,"channel":<prefix>}) must parse with the DOM (the
// number equal to the u64) and with env_parse (OK, or BAD_REQUEST when the prefix is
// empty).

#include <simdjson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <string>
#include <string_view>

#include "fuzz_util.h"
#include "msg/envelope.h"
#include "proto/utf8.h"

using namespace simdjson;

static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

enum { SETTINGS_LEN = 9, SHARED_MAX = 1 << 20 };

static const char *const KNOWN[] = {"type", "id", "correlationId", "channel", "to", "event", "clientId", "payload"};
enum { N_KNOWN = 8, PAYLOAD = 7 };

static env_str *slot(envelope *e, int i) {
    switch (i) {
    case 0: return &e->type;
    case 1: return &e->id;
    case 2: return &e->correlation_id;
    case 3: return &e->channel;
    case 4: return &e->to;
    case 5: return &e->event;
    case 6: return &e->client_id;
    default: return &e->payload;
    }
}

static int known_index(std::string_view k) {
    for (int i = 0; i < N_KNOWN; i++)
        if (k == KNOWN[i]) return i;
    return -1;
}


static dom::parser &ref_parser() {
    static dom::parser p;
    static bool ready = false;
    if (!ready) {
        FUZZ_CHECK(p.allocate(SHARED_MAX, ENV_MAX_DEPTH) == SUCCESS, "dom allocate");
        ready = true;
    }
    return p;
}

// A second DOM parser, for texts parsed while the first one's document is in use.
static dom::parser &ref_parser2() {
    static dom::parser p;
    static bool ready = false;
    if (!ready) {
        FUZZ_CHECK(p.allocate(SHARED_MAX, ENV_MAX_DEPTH) == SUCCESS, "dom allocate");
        ready = true;
    }
    return p;
}

static void show(const char *what, const uint8_t *d, size_t n) {
    fprintf(stderr, "%s (%zu bytes): ", what, n);
    for (size_t i = 0; i < n && i < 200; i++) {
        if (d[i] >= 0x20 && d[i] < 0x7f) fputc(d[i], stderr);
        else fprintf(stderr, "\\x%02x", d[i]);
    }
    fputc('\n', stderr);
}

static const char *res_name(env_result r) {
    return r == ENV_OK ? "OK" : r == ENV_INVALID_JSON ? "INVALID_JSON" : r == ENV_BAD_REQUEST ? "BAD_REQUEST" : "?";
}

// Nesting depth as the DOM counts it (every value; the root at 1), computed on a
// document the DOM accepted: used only in failure messages.
static size_t dom_depth(dom::element e) {
    size_t d = 0;
    dom::object o;
    dom::array a;
    if (!e.get_object().get(o)) {
        for (auto f : o) {
            size_t c = dom_depth(f.value);
            if (c > d) d = c;
        }
    } else if (!e.get_array().get(a)) {
        for (auto v : a) {
            size_t c = dom_depth(v);
            if (c > d) d = c;
        }
    }
    return d + 1;
}

// The result the reference expects; on OK, the DOM object in *obj.
static env_result reference(const uint8_t *msg, size_t len, dom::object *obj, error_code *dom_err) {
    dom::element root;
    *dom_err = ref_parser().parse((const char *)msg, len, true).get(root);
    bool utf8 = utf8_validate(UTF8_ACCEPT, msg, len) == UTF8_ACCEPT;
    // The two checks must agree where they overlap: the DOM validates UTF-8 too.
    FUZZ_CHECK(utf8 || *dom_err != SUCCESS, "DOM accepted bytes that are not UTF-8");
    if (*dom_err != SUCCESS || !utf8) return ENV_INVALID_JSON;
    if (root.get_object().get(*obj)) return ENV_BAD_REQUEST;
    bool seen[N_KNOWN] = {};
    for (auto f : *obj) {
        int i = known_index(f.key);
        if (i < 0) continue;
        if (seen[i]) return ENV_BAD_REQUEST;
        seen[i] = true;
        if (i != PAYLOAD && f.value.type() != dom::element_type::STRING) return ENV_BAD_REQUEST;
    }
    std::string_view type;
    if (obj->at_key("type").get_string().get(type) || type.empty()) return ENV_BAD_REQUEST;
    return ENV_OK;
}

static void check_ok(const envelope *e, dom::object obj, const uint8_t *msg, size_t len) {
    for (int i = 0; i < N_KNOWN; i++) {
        const env_str *s = slot((envelope *)e, i);
        dom::element v;
        if (obj.at_key(KNOWN[i]).get(v)) {
            FUZZ_CHECK(s->ptr == nullptr, "absent field %s returned (%u bytes)", KNOWN[i], s->len);
            continue;
        }
        FUZZ_CHECK(s->ptr != nullptr, "field %s present but not returned", KNOWN[i]);
        if (i != PAYLOAD) {
            std::string_view want;
            FUZZ_CHECK(!v.get_string().get(want), "reference: %s not a string", KNOWN[i]);
            if (s->len != want.size() || memcmp(s->ptr, want.data(), want.size()) != 0) {
                show("message", msg, len);
                show("env_parse", (const uint8_t *)s->ptr, s->len);
                show("DOM", (const uint8_t *)want.data(), want.size());
                FUZZ_CHECK(false, "field %s differs from the DOM's value", KNOWN[i]);
            }
            continue;
        }
        // payload: raw text, re-parsed on its own.
        FUZZ_CHECK(s->len > 0, "empty payload text");
        FUZZ_CHECK(!is_ws(s->ptr[0]) && !is_ws(s->ptr[s->len - 1]), "payload text carries whitespace");
        dom::element pe;
        error_code err = ref_parser2().parse(s->ptr, s->len, true).get(pe);
        if (err) {
            show("message", msg, len);
            show("payload text", (const uint8_t *)s->ptr, s->len);
            FUZZ_CHECK(false, "payload text does not parse on its own: %s", error_message(err));
        }
        std::string a = minify(pe), b = minify(v);
        if (a != b) {
            show("message", msg, len);
            show("payload (env_parse, minified)", (const uint8_t *)a.data(), a.size());
            show("payload (DOM, minified)", (const uint8_t *)b.data(), b.size());
            FUZZ_CHECK(false, "payload differs from the DOM's");
        }
    }
}

static void check_parse(const uint8_t *msg, size_t len, uint8_t cls) {
    static env_parser *shared = nullptr;
    env_parser *p;
    size_t max_len;
    switch (cls) {
    case 1: max_len = len + 1; break;
    case 2: max_len = len + 63; break;
    case 3:
        if (!shared) shared = env_parser_new(SHARED_MAX);
        FUZZ_CHECK(shared != nullptr, "env_parser_new(%d)", SHARED_MAX);
        max_len = SHARED_MAX;
        break;
    case 4: max_len = len ? len - 1 : 0; break;
    default: max_len = len; break;
    }
    if (cls == 3) {
        if (len > SHARED_MAX) return;
        p = shared;
    } else {
        p = env_parser_new(max_len);
        FUZZ_CHECK(p != nullptr, "env_parser_new(%zu)", max_len);
    }

    envelope e;
    const char *why = (const char *)1;
    env_result r = env_parse(p, (const char *)msg, len, &e, &why, true);
    FUZZ_CHECK(r == ENV_OK || r == ENV_INVALID_JSON || r == ENV_BAD_REQUEST, "result %d", (int)r);
    FUZZ_CHECK((r == ENV_OK) == (why == nullptr), "why %s for %s", why ? why : "NULL", res_name(r));

    // The same parser, the same message: the same answer.
    envelope e2;
    const char *why2;
    env_result r2 = env_parse(p, (const char *)msg, len, &e2, &why2, true);
    FUZZ_CHECK(r2 == r && why2 == why, "second parse: %s (%s), first %s (%s)", res_name(r2), why2 ? why2 : "-",
               res_name(r), why ? why : "-");
    for (int i = 0; i < N_KNOWN; i++) {
        env_str *a = slot(&e, i), *b = slot(&e2, i);
        FUZZ_CHECK((a->ptr == nullptr) == (b->ptr == nullptr) && a->len == b->len &&
                       (!a->ptr || memcmp(a->ptr, b->ptr, a->len) == 0),
                   "second parse: field %s differs", KNOWN[i]);
    }

    if (len > max_len) {
        FUZZ_CHECK(r == ENV_BAD_REQUEST && why && strcmp(why, "message too large") == 0,
                   "%zu bytes on a parser for %zu: %s (%s)", len, max_len, res_name(r), why ? why : "-");
    } else {
        dom::object obj;
        error_code dom_err;
        env_result want = reference(msg, len, &obj, &dom_err);
        if (want != r) {
            show("message", msg, len);
            dom::parser deep;
            dom::element root;
            if (dom_err == DEPTH_ERROR && !deep.allocate(len + 1, 4096) && !deep.parse((const char *)msg, len).get(root))
                fprintf(stderr, "depth as the DOM counts it: %zu (ENV_MAX_DEPTH %d)\n", dom_depth(root), ENV_MAX_DEPTH);
            FUZZ_CHECK(false, "env_parse %s (%s), reference %s (DOM: %s)", res_name(r), why ? why : "-",
                       res_name(want), error_message(dom_err));
        }
        if (r == ENV_OK) check_ok(&e, obj, msg, len);
    }
    if (p != shared) env_parser_free(p);
}

// Length of the longest prefix of s that is complete, valid UTF-8.
static size_t utf8_prefix(const uint8_t *s, size_t n) {
    uint8_t st = UTF8_ACCEPT;
    size_t good = 0;
    for (size_t i = 0; i < n; i++) {
        st = utf8_validate(st, s + i, 1);
        if (st == UTF8_REJECT) break;
        if (st == UTF8_ACCEPT) good = i + 1;
    }
    return good;
}

static void check_writer(const uint8_t *s, size_t n, uint64_t u) {
    env_out o = {};
    env_string(&o, (const char *)s, n);
    FUZZ_CHECK(!o.failed, "env_string failed");
    // Only '"', '\\' and controls escaped: the output length says it.
    size_t want_len = n + 2;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"' || s[i] == '\\' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t') want_len += 1;
        else if (s[i] < 0x20) want_len += 5;
    }
    FUZZ_CHECK(o.len == want_len, "env_string wrote %zu bytes, expected %zu", o.len, want_len);
    dom::element el;
    std::string_view back;
    error_code err = ref_parser().parse(o.buf, o.len, true).get(el);
    if (err || el.get_string().get(back) || back.size() != n || memcmp(back.data(), s, n) != 0) {
        show("input", s, n);
        show("env_string", (const uint8_t *)o.buf, o.len);
        FUZZ_CHECK(false, "env_string does not read back: %s", error_message(err));
    }

    // env_u64 alone: the decimal digits.
    env_out_reset(&o);
    env_u64(&o, u);
    char dec[32];
    int dn = snprintf(dec, sizeof dec, "%llu", (unsigned long long)u);
    FUZZ_CHECK(o.len == (size_t)dn && memcmp(o.buf, dec, (size_t)dn) == 0, "env_u64(%s) wrote %.*s", dec, (int)o.len,
               o.buf);

    // A whole envelope, read by the DOM and by env_parse.
    env_out_reset(&o);
    env_key(&o, "type", true);
    env_string(&o, (const char *)s, n);
    env_key(&o, "payload", false);
    env_u64(&o, u);
    env_key(&o, "channel", false);
    env_string(&o, (const char *)s, n);
    env_raw(&o, "}", 1);
    FUZZ_CHECK(!o.failed, "env_out failed");
    uint64_t got;
    std::string_view ch;
    err = ref_parser().parse(o.buf, o.len, true).get(el);
    FUZZ_CHECK(!err, "written envelope is not JSON: %s", error_message(err));
    FUZZ_CHECK(!el.at_key("payload").get_uint64().get(got) && got == u, "payload %s does not read back", dec);
    FUZZ_CHECK(!el.at_key("channel").get_string().get(ch) && ch == std::string_view((const char *)s, n),
               "channel does not read back");

    env_parser *p = env_parser_new(o.len);
    FUZZ_CHECK(p != nullptr, "env_parser_new");
    envelope e;
    const char *why;
    env_result r = env_parse(p, o.buf, o.len, &e, &why, true);
    if (n == 0) {
        FUZZ_CHECK(r == ENV_BAD_REQUEST, "empty type: %s", res_name(r));
    } else {
        FUZZ_CHECK(r == ENV_OK, "written envelope: %s (%s)", res_name(r), why ? why : "-");
        FUZZ_CHECK(e.type.len == n && memcmp(e.type.ptr, s, n) == 0, "type does not read back");
        FUZZ_CHECK(e.channel.len == n && memcmp(e.channel.ptr, s, n) == 0, "channel does not read back");
        FUZZ_CHECK(e.payload.len == (size_t)dn && memcmp(e.payload.ptr, dec, (size_t)dn) == 0,
                   "payload text %.*s, wrote %s", (int)e.payload.len, e.payload.ptr, dec);
    }
    env_parser_free(p);
    env_out_free(&o);
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < SETTINGS_LEN) return 0;
    uint8_t cls = data[0] & 7;
    uint64_t u = 0;
    for (int i = 0; i < 8; i++) u |= (uint64_t)data[1 + i] << (8 * i);
    const uint8_t *msg = data + SETTINGS_LEN;
    size_t len = size - SETTINGS_LEN;
    check_parse(msg, len, cls);
    check_writer(msg, utf8_prefix(msg, len), u);
    return 0;
}
