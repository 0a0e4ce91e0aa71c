// bench/json: the messaging layer's JSON round, once per candidate library.
// A round = parse one client envelope, validate it, build the outgoing "message"
// envelope with the payload embedded (raw text, or re-serialised where the library
// cannot give the raw text). Every implementation applies the same policy:
//   - the root is an object; "type" is required, a non-empty string;
//   - "channel" is required for "publish";
//   - type, channel, id, correlationId, to, event: strings if present;
//   - payload: any JSON value; other keys are ignored;
//   - a repeated known key rejects the envelope;
//   - nothing but whitespace may follow the root object.
// Output: {"type":"message","channel":C,"offset":N,"from":F,"timestamp":T[,"id":I]
//          [,"event":E],"payload":P}  (P = null when absent)
#pragma once
#include <cstddef>
#include <cstdint>

namespace jb {

// The input buffer holds len bytes followed by at least kPad writable bytes (simdjson
// reads up to 64 bytes past the end; RapidJSON's in-situ parse writes a NUL).
constexpr size_t kPad = 64;

// What the server adds to the outgoing envelope.
struct Meta {
    uint64_t offset;
    uint64_t timestamp;
    const char* from;  // 32 lowercase hex digits, NUL-terminated
};

// Returns the output length, or -1 if the envelope is rejected (or out is too small).
// in may be modified (in-situ parsing).
using RoundFn = long (*)(char* in, size_t len, const Meta& meta, char* out, size_t cap);

struct Impl {
    const char* name;
    const char* note;
    RoundFn round;
};

// JSON string escaping for the hand-built output: '"', '\\' and C0 controls; other
// bytes (valid UTF-8, the parser checked it) are copied. Returns the end, or nullptr
// when it would pass end.
char* put_string(char* p, char* end, const char* s, size_t n);
char* put_u64(char* p, char* end, uint64_t v);
char* put_raw(char* p, char* end, const char* s, size_t n);

// The field a key names, as a bit; 0 for keys the server ignores.
enum Field : unsigned {  // used as plain unsigned masks
    F_TYPE = 1, F_CHANNEL = 2, F_ID = 4, F_CORR = 8, F_TO = 16, F_EVENT = 32, F_PAYLOAD = 64,
};
unsigned field_of(const char* k, size_t n);

}  // namespace jb
