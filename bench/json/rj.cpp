// RapidJSON 1.1.0 (Debian rapidjson-dev, header-only). No exceptions are used by
// RapidJSON itself; RAPIDJSON_HAS_STDSTRING defaults to 0; RAPIDJSON_ASSERT is set
// to a no-op-in-release check so that a misuse never aborts the daemon (it is only
// reached on API misuse, not on bad input).
//   rj-dom  Document with MemoryPoolAllocators over static buffers, reused; in-situ
//           parse (iterative, UTF-8 validated); payload re-serialised by the Writer
//           (in-situ parsing unescapes strings in place: the raw text is gone)
//   rj-sax  Reader (SAX), reused, over the unmodified input, numbers kept as text;
//           the payload's raw text from the stream offsets (Tell()) around its
//           value; the output by the Writer with RawValue() for the payload
#define RAPIDJSON_ASSERT(x) ((void)0)
#include <rapidjson/document.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/encodedstream.h>
#include <rapidjson/reader.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "parts.h"

using namespace rapidjson;

namespace jb {
namespace {

constexpr unsigned kMaxDepth = 1024;

// DOM ---------------------------------------------------------------------------
char g_value_buf[16384];
char g_parse_buf[8192];
MemoryPoolAllocator<> g_value_alloc(g_value_buf, sizeof g_value_buf);
MemoryPoolAllocator<> g_parse_alloc(g_parse_buf, sizeof g_parse_buf);
using Doc = GenericDocument<UTF8<>, MemoryPoolAllocator<>, MemoryPoolAllocator<>>;
Doc g_doc(&g_value_alloc, 1024, &g_parse_alloc);
StringBuffer g_out(nullptr, 1024);
// Reused: a Writer built per round allocates its level stack (and that stack's allocator).
Writer<StringBuffer> g_w(g_out);

constexpr unsigned kDomFlags = kParseInsituFlag | kParseValidateEncodingFlag | kParseIterativeFlag;

template <typename W>
void put_meta(W& w, const Meta& m, const GenericValue<UTF8<>, MemoryPoolAllocator<>>* channel)
{
    (void)channel;
    w.Key("offset", 6);
    w.Uint64(m.offset);
    w.Key("from", 4);
    w.String(m.from, 32);
    w.Key("timestamp", 9);
    w.Uint64(m.timestamp);
}

long copy_out(char* out, size_t cap)
{
    size_t n = g_out.GetSize();
    if (n > cap)
        return -1;
    memcpy(out, g_out.GetString(), n);
    return static_cast<long>(n);
}

long dom_round(char* in, size_t len, const Meta& m, char* out, size_t cap)
{
    g_doc.SetNull();
    g_value_alloc.Clear();  // keeps the user buffer, frees any chunk beyond it
    in[len] = '\0';         // in-situ needs a terminator: a NUL byte ends the input early
    g_doc.ParseInsitu<kDomFlags>(in);
    if (g_doc.HasParseError() || !g_doc.IsObject())
        return -1;
    using V = Doc::ValueType;
    const V* fields[8] = {};
    unsigned seen = 0;
    // By count: clang in C++20 finds 1.1.0's MemberIterator != ambiguous
    // (-Wambiguous-reversed-operator, an error under -Werror).
    auto it = g_doc.MemberBegin();
    for (SizeType i = 0, n = g_doc.MemberCount(); i < n; ++i, ++it) {
        unsigned f = field_of(it->name.GetString(), it->name.GetStringLength());
        if (!f)
            continue;
        if (seen & f)
            return -1;
        seen |= f;
        if (f != F_PAYLOAD && !it->value.IsString())
            return -1;
        fields[__builtin_ctz(f)] = &it->value;
    }
    Parts x;  // only for the policy check
    x.seen = seen;
    if (const V* t = fields[0])
        x.type = Str{t->GetString(), t->GetStringLength()};
    if (!policy_ok(x))
        return -1;
    g_out.Clear();
    Writer<StringBuffer>& w = g_w;
    w.Reset(g_out);
    w.StartObject();
    w.Key("type", 4);
    w.String("message", 7);
    w.Key("channel", 7);
    const V* ch = fields[1];
    if (ch)
        w.String(ch->GetString(), ch->GetStringLength());
    else
        w.String("", 0);
    put_meta(w, m, ch);
    if (const V* id = fields[2]) {
        w.Key("id", 2);
        w.String(id->GetString(), id->GetStringLength());
    }
    if (const V* ev = fields[5]) {
        w.Key("event", 5);
        w.String(ev->GetString(), ev->GetStringLength());
    }
    w.Key("payload", 7);
    if (const V* p = fields[6])
        p->Accept(w);  // recursive, as deep as the payload
    else
        w.Null();
    w.EndObject();
    return copy_out(out, cap);
}

// SAX ---------------------------------------------------------------------------
using Stream = EncodedInputStream<UTF8<>, MemoryStream>;

struct Handler : BaseReaderHandler<UTF8<>, Handler> {
    Stream* is = nullptr;
    const char* base = nullptr;  // the input, for the payload's offsets
    unsigned depth = 0;
    unsigned field = 0;          // the field whose value comes next (depth 1)
    size_t payload_start = 0;
    Parts x;
    char strings[2048];          // envelope strings: the Reader's copies die with the call
    size_t used = 0;

    void reset(Stream* s, const char* b)
    {
        is = s; base = b; depth = 0; field = 0; used = 0; x = Parts{};
    }
    // The value of the current field starts after ws ':' ws from the key's end.
    bool key_end()
    {
        size_t i = is->Tell();
        while (is_ws(base[i]) || base[i] == ':')
            i++;
        payload_start = i;
        return true;
    }
    // A value at depth 1 is complete. In iterative mode the Reader calls EndObject and
    // EndArray before it takes the '}' or ']' (the recursive mode after): closer = 1.
    bool done(bool is_string, const char* s, size_t n, size_t closer = 0)
    {
        unsigned f = field;
        field = 0;
        if (!f)
            return true;
        if (f == F_PAYLOAD) {
            x.payload = Str{base + payload_start, is->Tell() + closer - payload_start};
            return true;
        }
        if (!is_string || sizeof strings - used < n)
            return false;
        memcpy(strings + used, s, n);
        *slot(x, f) = Str{strings + used, n};
        used += n;
        return true;
    }
    bool Default() { return depth > 1 || (depth == 1 && done(false, nullptr, 0)); }
    bool Null() { return Default(); }
    bool Bool(bool) { return Default(); }
    bool RawNumber(const char*, SizeType, bool) { return Default(); }
    bool String(const char* s, SizeType n, bool)
    {
        return depth > 1 || (depth == 1 && done(true, s, n));
    }
    bool StartObject()
    {
        if (depth == 1 && field && field != F_PAYLOAD)
            return false;  // an object where a string belongs
        return ++depth <= kMaxDepth;
    }
    bool Key(const char* s, SizeType n, bool)
    {
        if (depth != 1)
            return true;
        unsigned f = field_of(s, n);
        if (f & x.seen)
            return false;
        x.seen |= f;
        field = f;
        return f != F_PAYLOAD || key_end();
    }
    bool EndObject(SizeType)
    {
        --depth;
        return depth != 1 || done(false, nullptr, 0, 1);
    }
    bool StartArray()
    {
        if (depth == 0 || (depth == 1 && field && field != F_PAYLOAD))
            return false;  // the root must be an object
        return ++depth <= kMaxDepth;
    }
    bool EndArray(SizeType)
    {
        --depth;
        return depth != 1 || done(false, nullptr, 0, 1);
    }
};

Reader g_reader;
Handler g_h;
constexpr unsigned kSaxFlags = kParseValidateEncodingFlag | kParseIterativeFlag | kParseNumbersAsStringsFlag;

long sax_round(char* in, size_t len, const Meta& m, char* out, size_t cap)
{
    MemoryStream ms(in, len);
    Stream is(ms);
    g_h.reset(&is, in);
    // A scalar root reaches depth 0 handlers: Default() returns false there.
    if (!g_reader.Parse<kSaxFlags>(is, g_h))
        return -1;
    const Parts& x = g_h.x;
    if (!policy_ok(x))
        return -1;
    g_out.Clear();
    Writer<StringBuffer>& w = g_w;
    w.Reset(g_out);
    w.StartObject();
    w.Key("type", 4);
    w.String("message", 7);
    w.Key("channel", 7);
    w.String(x.channel.p ? x.channel.p : "", static_cast<SizeType>(x.channel.n));
    put_meta(w, m, nullptr);
    if (x.seen & F_ID) {
        w.Key("id", 2);
        w.String(x.id.p, static_cast<SizeType>(x.id.n));
    }
    if (x.seen & F_EVENT) {
        w.Key("event", 5);
        w.String(x.event.p, static_cast<SizeType>(x.event.n));
    }
    w.Key("payload", 7);
    if (x.seen & F_PAYLOAD)
        w.RawValue(x.payload.p, x.payload.n, kObjectType);
    else
        w.Null();
    w.EndObject();
    return copy_out(out, cap);
}

}  // namespace

extern const Impl rj_dom = {"rj-dom", "RapidJSON Document in-situ, payload re-serialised", dom_round};
extern const Impl rj_sax = {"rj-sax", "RapidJSON Reader (SAX), payload raw via Tell()", sax_round};

}  // namespace jb
