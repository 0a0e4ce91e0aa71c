// The messaging protocol's JSON envelopes (docs/messaging.md): a client's message
// parsed and validated with simdjson (every byte checked: structure, escapes, UTF-8,
// numbers, depth), and the server's messages written into a reused buffer.
//
// A client's message must be one JSON object; the fields the protocol knows are
// strings, except payload (any JSON, kept as its raw text so that it goes out to
// subscribers byte for byte, never re-serialised); unknown fields are validated and
// ignored; a field given twice is refused.
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct env_str {
    const char *ptr; // NULL: absent
    uint32_t len;
};

struct envelope {
    env_str type, id, correlation_id, channel, to, event;
    env_str client_id; // clientId: the backend API's name for to
    env_str payload;   // raw JSON text
};

enum env_result : uint8_t {
    ENV_OK,
    ENV_INVALID_JSON, // not JSON (or not UTF-8, or nested deeper than ENV_MAX_DEPTH)
    ENV_BAD_REQUEST,  // JSON, but not an envelope: not an object, a field of the wrong
                      // type or given twice, no type
};

enum { ENV_MAX_DEPTH = 64 };

struct env_parser; // simdjson's parsers and a padded copy of the input

// NULL when out of memory. max_len: the longest message it will be given.
env_parser *env_parser_new(size_t max_len);
void env_parser_free(env_parser *p);
// Parses one message (need_type: a client's message; the backend API's bodies have no
// type). The strings in *out point into the parser, valid until the next call; *why
// says what was wrong otherwise.
env_result env_parse(env_parser *p, const char *data, size_t len, envelope *out, const char **why, bool need_type);
// Other fields of the message env_parse accepted last (the backend API's arguments):
// true with the value when the field is there and of the type asked for.
bool env_field_u64(env_parser *p, const char *key, uint64_t *out);
bool env_field_string(env_parser *p, const char *key, env_str *out);
// The field's array of strings, one at a time: index i (0-based); false past the end or
// when the field is not an array of strings.
bool env_field_string_at(env_parser *p, const char *key, size_t i, env_str *out);
// payload.since of a subscribe: {"offset": N, "epoch": "..."}. False when absent or
// malformed (then nothing is recovered).
bool env_since(env_parser *p, env_str payload, uint64_t *offset, env_str *epoch);
// A string field of the payload (an auth's payload.token), unescaped; valid until the
// next call. False when absent or not a string.
bool env_payload_string(env_parser *p, env_str payload, const char *key, env_str *out);
// Whether text is one JSON value (an embedder's payload). Leaves the message env_parse
// accepted last, and the views into it, untouched.
bool env_json_valid(env_parser *p, const char *text, size_t len);

// --- writing ---------------------------------------------------------------------------

// A growing output buffer, reused message after message.
struct env_out {
    char *buf;
    size_t len, cap;
    bool failed; // out of memory: the text is incomplete
};

void env_out_reset(env_out *o);
void env_out_free(env_out *o);
void env_raw(env_out *o, const char *s, size_t n);
static inline void env_lit(env_out *o, const char *s) { env_raw(o, s, strlen(s)); }
// A JSON string: quoted, with '"', '\\' and control characters escaped (the text is
// UTF-8 already: the transport validated it).
void env_string(env_out *o, const char *s, size_t n);
void env_u64(env_out *o, uint64_t v);
// `,"key":` (or `{"key":` for the first field).
void env_key(env_out *o, const char *key, bool first);
