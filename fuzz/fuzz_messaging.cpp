// Fuzz target for the messaging layer (src/msg/messaging.cpp) on the whole server
// (src/core) with no sockets.
//
// A server on a fresh uv loop, with wsr_messaging_new(loop, srv, "/ws", &opts) and small
// limits from the input. Its transport is an in-memory one (as in fuzz_connection.cpp):
// read hands out the bytes queued for that connection, writev appends to that
// connection's output (always all of it), shutdown is recorded. TWO connections are
// adopted (eventfds as descriptors), each sent a canned upgrade to /ws. Then the input
// is cut into client messages at every 0xFF byte; each goes to connection 0 or 1 as a
// masked text message (frame_write_header, frame_mask): one frame, or a text frame and
// one or two continuation frames, and the harness pumps the server (conn_on_readable,
// server_flush, conn_flush) until it is quiet. A connection's socket can be made to
// refuse writes (write pressure): writev then answers -EAGAIN or takes only part, so
// out-queues, read pausing and the slow-consumer policy run while the other
// connection keeps sending.
//
// Input layout (4 bytes of settings, then the messages separated by 0xFF):
//   [0] defaults.history_size [0] % 9; bit3 max_backpressure 4096 (else
//       1 MiB); bits4-6 max_channels - 1 (1..8); bit7 big payloads (below)
//   [1] bits0-1 rate limits: 0 off, 1 one message/s (burst 2), 2 64 bytes/s (burst
//       256), 3 both; bits2-3 max_strikes 16, 1, 2, 4; bit4 max_message 512 (else 4096);
//       bits5-6 fragments: every message in one frame, in two, in three, or in one to
//       three chosen per message (split points from the mask-key generator, empty
//       fragments possible); bit7 slow-consumer policy drop (else close)
//   [2..3] the seed of the clients' mask keys (and of split points and write pressure)
// A message: [b0][p1][rest...]
//   b0 bit7 the connection (0/1); bit6 raw: the text is everything after b0, as it is,
//   unless b0 & 0x3F is not 0: then it is a command, not a message: bit0 toggles write
//   pressure on connection b0 bit7 (while on, each writev to it is refused with -EAGAIN
//   seven times in eight, else takes 0..63 bytes); the rest is ignored;
//   else a template, b0 & 7: 0 ping, 1 subscribe (p1 bit6: payload.since with the last
//   epoch and offset the harness saw), 2 publish, 3 send, 4 presence, 5 unsubscribe,
//   6 an unknown type, 7 subscribe with a bad channel name; b0 bit3 no "id";
//   b0 bit4 a "correlationId" too (on send: passed to the recipient); b0 bit5 unknown
//   extra field "x" with a nested value.
//   p1 bits0-2 the channel (a table), or with bit3 the channel made from rest (mapped
//   into [A-Za-z0-9_.:@/-], 1..40 chars); bits4-5 payload: absent, a JSON string of
//   rest, a number, an object; bit6 send: to connection 0's client id, else 1's
//   (p1 bit7 with bit6: an unknown id); bit7 (not send) an "event" field.
//   With big payloads (settings [0] bit7) a string payload (p1 bits4-5 = 1) is padded
//   with letters so that the whole message is max_message - 8 .. max_message + 8 bytes:
//   one past max_message must close the connection (1009), at most must be served.
// Templates carry "id":"k<n>" (n: the message's index), unique in the run.
//
// Checks:
//   - each connection's output is "HTTP/1.1 101" with a head, then only server frames:
//     unmasked, unfragmented, text or close (close last, valid body: check_frames of
//     ws_checks.h), text UTF-8;
//   - every text frame is one JSON object (simdjson DOM) with a "type" string and an
//     integer "timestamp"; the first is connection:established with a 32-hex clientId;
//     an "error" has payload.code in the documented set (invalid_json, bad_request,
//     unknown_type, unauthorized, forbidden, not_found, too_large, unavailable,
//     rate_limited); a publication ("message") or direct message ("from") is at most
//     max_message bytes (larger ones are refused with too_large);
//   - an answer (a message with "correlationId" and without "from") names the id of a
//     template message sent on the same connection (or of a raw message whose DOM has a
//     string "id"), and has a type that answers it: ping pong, subscribe subscribed or
//     error, publish/send/unsubscribe ack or error, presence presence, unknown type
//     error unknown_type, bad channel error bad_request (any: error rate_limited;
//     publish and send also error too_large);
//   - every template message with an id gets exactly one answer on its own connection,
//     at once, unless its connection was closed (then at most one); sent while its
//     connection's socket refused writes: by the time the pressure is lifted;
//   - a message that fits in max_message is never refused as too big: the connection
//     is not closed with 1009;
//   - shutdown completes (callback once, no connection left), wsr_server_free, then
//     wsr_messaging_free and the loop run, uv_loop_close == 0; LeakSanitizer the rest.
#include <errno.h>
#include <simdjson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <uv.h>

#include <string>
#include <string_view>
#include <vector>

#include "core/conn.h"
#include "core/conn_table.h"
#include "core/server.h"
#include "core/transport.h"
#include "fuzz_util.h"
#include "wsr/messaging.h"
#include "proto/frame.h"
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function" // only check_frames is used
#include "ws_checks.h"
#pragma GCC diagnostic pop
#include "wsr/wsr.h"

using namespace simdjson;

enum { SETTINGS = 4, NCONN = 2, OUT_LIMIT = 8 << 20 };

struct peer {
    wsr_conn_id id;
    std::vector<uint8_t> in; // bytes queued for the server to read
    size_t in_pos;
    bool shut;
    fuzz_trace out;
    size_t parsed;   // output bytes looked at so far (head, then whole frames)
    bool head_done;
    bool closed;     // a close frame came, or the connection is gone
    uint16_t close_code;
    size_t longest;  // the longest message sent to it
    std::string client_id;
    bool pressure;   // the socket refuses writes (-EAGAIN, or takes a part)
};
static peer P[NCONN];
static wsr_server *g_srv;
static int g_done_calls;
static uint32_t next_rand();

static int peer_of(conn *c) {
    wsr_conn_id id = conn_id(c);
    for (int i = 0; i < NCONN; i++)
        if (P[i].id == id) return i;
    FUZZ_CHECK(false, "a connection the harness did not adopt");
    return -1;
}

static ssize_t fake_read(wsr_server *, conn *c, void *buf, size_t len) {
    peer &p = P[peer_of(c)];
    size_t left = p.in.size() - p.in_pos;
    if (left == 0) return -EAGAIN;
    size_t n = len < left ? len : left;
    memcpy(buf, p.in.data() + p.in_pos, n);
    p.in_pos += n;
    return (ssize_t)n;
}

static ssize_t fake_writev(wsr_server *, conn *c, const struct iovec *iov, int iovcnt) {
    peer &p = P[peer_of(c)];
    size_t want = 0;
    for (int i = 0; i < iovcnt; i++) want += iov[i].iov_len;
    FUZZ_CHECK(!p.shut, "writev of %zu bytes after the transport was shut down", want);
    size_t take = want;
    if (p.pressure && want > 0) {
        uint32_t r = next_rand();
        if (r & 7) return -EAGAIN;
        take = (r >> 3) % (want < 64 ? want : 64); // a short write (0 is legal, if odd)
    }
    size_t left = take;
    for (int i = 0; i < iovcnt && left > 0; i++) {
        size_t k = iov[i].iov_len < left ? iov[i].iov_len : left;
        fuzz_trace_put(&p.out, iov[i].iov_base, k);
        left -= k;
    }
    FUZZ_CHECK(p.out.len < OUT_LIMIT, "more than %d bytes of output", OUT_LIMIT);
    return (ssize_t)take;
}

static bool fake_shutdown(wsr_server *, conn *c) {
    P[peer_of(c)].shut = true;
    return true;
}
static size_t fake_pending(wsr_server *, conn *c) {
    peer &p = P[peer_of(c)];
    return p.in.size() - p.in_pos;
}
static const transport_ops fake_transport = {fake_read, fake_writev, fake_shutdown, fake_pending, nullptr, nullptr};

static void on_done(wsr_server *, uint32_t, uint32_t) { g_done_calls++; }

static conn *lookup(int i) { return conn_table_lookup(&g_srv->table, P[i].id); }

static void after_event() {
    server_flush(g_srv);
    for (int i = 0; i < NCONN; i++) {
        conn *c = lookup(i);
        if (c && (c->flags & CF_WANT_WRITE)) conn_flush(g_srv, c);
    }
}

// The loop's work for connection i while it has bytes to read or work held over.
static void pump(int i) {
    for (unsigned rounds = 0;; rounds++) {
        conn *c = lookup(i);
        if (!c) break;
        size_t left = P[i].in.size() - P[i].in_pos;
        if (left == 0 && !conn_waits(c)) break;
        FUZZ_CHECK(rounds < 100000, "no end to connection %d's rounds (flags %#x state %u)", i, c->flags, c->state);
        if (c->flags & (CF_READ_PAUSED | CF_DEAD)) {
            after_event();
            if (P[i].pressure) break; // its socket is full: read again once it drains
            FUZZ_CHECK(rounds < 1000, "connection %d paused with %zu bytes unread", i, left);
            continue;
        }
        conn_on_readable(g_srv, c);
        after_event();
    }
    after_event();
}

// --- the client's messages and the bookkeeping ---------------------------------------

enum tmpl : uint8_t { T_PING, T_SUB, T_PUB, T_SEND, T_PRES, T_UNSUB, T_UNKNOWN, T_BADCHAN };

struct sent_msg {
    int conn;
    int tmpl;        // -1: raw
    bool tracked;    // a template with an id: exactly one answer
    bool closed_by;  // its connection was closed when or after it was sent
    bool deferred;   // sent while its connection's socket refused writes
    unsigned answers;
};
static std::vector<sent_msg> g_sent;
static std::vector<std::string> g_raw_ids; // "id" strings of raw messages (answers allowed)
static std::string g_last_epoch;
static uint64_t g_last_offset;
static uint32_t g_rng;
static int g_frag;          // settings [1] bits5-6
static bool g_big;          // settings [0] bit7
static uint64_t g_max_message;
static bool g_dump; // FUZZ_DUMP_OUTPUT: print what each connection is sent and got

static uint32_t next_rand() {
    uint32_t x = g_rng;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return g_rng = x;
}

static void json_string(std::string &o, const uint8_t *d, size_t n) {
    o += '"';
    for (size_t i = 0; i < n; i++) {
        uint8_t c = d[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            o += (char)c;
        } else {
            char b[8];
            snprintf(b, sizeof b, "\\u%04x", c);
            o += b;
        }
    }
    o += '"';
}

static const char *const CHANNELS[8] = {"a", "b", "c", "news", "e:1", "f/g", "h@i.x", "j-k_L"};
static const char CHAN_CHARS[] = "abcXYZ019_.:@/-";

static std::string make_template(size_t seq, int conn_i, const uint8_t *m, size_t n, int *t_out, bool *has_id) {
    uint8_t b0 = m[0], p1 = n > 1 ? m[1] : 0;
    const uint8_t *rest = n > 2 ? m + 2 : m;
    size_t rn = n > 2 ? n - 2 : 0;
    int t = b0 & 7;
    *t_out = t;
    *has_id = !(b0 & 8);
    static const char *const TYPES[8] = {"ping", "subscribe", "publish", "send", "presence", "unsubscribe",
                                         "zzz-unknown", "subscribe"};
    std::string o = "{\"type\":\"";
    o += TYPES[t];
    o += '"';
    if (t == T_SUB || t == T_PUB || t == T_PRES || t == T_UNSUB) {
        o += ",\"channel\":\"";
        if ((p1 & 8) && rn) {
            for (size_t i = 0; i < rn && i < 40; i++) o += CHAN_CHARS[rest[i] % (sizeof CHAN_CHARS - 1)];
        } else {
            o += CHANNELS[p1 & 7];
        }
        o += '"';
    } else if (t == T_BADCHAN) {
        o += (p1 & 1) ? ",\"channel\":\"\"" : ",\"channel\":\"bad chan!\"";
    }
    if (t == T_SEND) {
        o += ",\"to\":";
        if ((p1 & 64) && (p1 & 128)) {
            o += "\"0123456789abcdef0123456789abcdef\"";
        } else {
            const std::string &cid = P[(p1 & 64) ? 0 : 1].client_id;
            json_string(o, (const uint8_t *)cid.data(), cid.size());
        }
        o += ",\"event\":\"dm\"";
    } else if (p1 & 128) {
        o += ",\"event\":";
        json_string(o, rest, rn < 12 ? rn : 12);
    }
    if (*has_id) {
        char b[32];
        snprintf(b, sizeof b, ",\"id\":\"k%zu\"", seq);
        o += b;
    }
    if (b0 & 16) {
        char b[40];
        snprintf(b, sizeof b, ",\"correlationId\":\"c%zu-%d\"", seq, conn_i);
        o += b;
    }
    if (b0 & 32) o += ",\"x\":{\"y\":[1,2,{\"z\":null}],\"w\":-1.5e3}";
    if (t == T_SUB && (p1 & 64)) {
        char b[96];
        snprintf(b, sizeof b, ",\"payload\":{\"since\":{\"offset\":%llu,\"epoch\":\"%s\"}}",
                 (unsigned long long)(g_last_offset ? g_last_offset - (p1 & 1) : 0),
                 g_last_epoch.empty() ? "0000000000000000" : g_last_epoch.c_str());
        o += b;
    } else {
        switch ((p1 >> 4) & 3) {
        case 0: break;
        case 1: {
            o += ",\"payload\":";
            size_t at = o.size() + 1; // inside the string
            json_string(o, rest, rn);
            if (g_big) {
                // Pad with letters so the whole text is max_message - 8 .. + 8 bytes.
                size_t target = (size_t)g_max_message - 8 + next_rand() % 17, now = o.size() + 1; // + '}'
                if (now < target) {
                    std::string pad(target - now, 'p');
                    for (size_t k = 0; k < pad.size() && rn; k++) pad[k] = (char)('a' + rest[k % rn] % 26);
                    o.insert(at, pad);
                }
            }
            break;
        }
        case 2: {
            char b[40];
            snprintf(b, sizeof b, ",\"payload\":%u", rn ? rest[0] * 257u : 7u);
            o += b;
            break;
        }
        case 3: o += ",\"payload\":{\"t\":"; json_string(o, rest, rn); o += ",\"n\":[true,false,null]}"; break;
        }
    }
    o += '}';
    return o;
}

static dom::parser &jparser() {
    static dom::parser p;
    return p;
}

// A raw message's "id" (when its DOM is an object with a string id): an answer naming
// it is allowed.
static void note_raw_id(const uint8_t *d, size_t n) {
    dom::element doc;
    if (jparser().parse((const char *)d, n, true).get(doc) != SUCCESS) return;
    dom::object obj;
    if (doc.get_object().get(obj) != SUCCESS) return;
    for (auto field : obj) {
        std::string_view s;
        if (field.key == "id" && field.value.get_string().get(s) == SUCCESS) g_raw_ids.emplace_back(s);
    }
}

static bool raw_id(std::string_view s) {
    for (const std::string &r : g_raw_ids)
        if (r == s) return true;
    return false;
}

static bool answers(int t, std::string_view type, std::string_view code) {
    if (type == "error" && code == "rate_limited") return true;
    switch (t) {
    case T_PING: return type == "pong";
    case T_SUB: return type == "subscribed" || (type == "error" && code == "unavailable");
    case T_PUB: return type == "ack" || (type == "error" && (code == "unavailable" || code == "too_large"));
    case T_SEND: return type == "ack" || (type == "error" && (code == "not_found" || code == "too_large"));
    case T_PRES: return type == "presence";
    case T_UNSUB: return type == "ack";
    case T_UNKNOWN: return type == "error" && code == "unknown_type";
    case T_BADCHAN: return type == "error" && code == "bad_request";
    }
    return false;
}

static const char *const CODES[] = {"invalid_json", "bad_request", "unknown_type", "unauthorized", "forbidden",
                                    "not_found",    "too_large",   "unavailable",  "rate_limited"};

// One text message the server sent on connection i.
static void check_text(int i, const uint8_t *d, size_t n, bool first) {
    dom::element doc;
    auto err = jparser().parse((const char *)d, n, true).get(doc);
    FUZZ_CHECK(err == SUCCESS, "connection %d: a server message is not JSON (%s): %.*s", i, error_message(err),
               (int)(n < 300 ? n : 300), (const char *)d);
    dom::object obj;
    FUZZ_CHECK(doc.get_object().get(obj) == SUCCESS, "connection %d: a server message is not an object: %.*s", i,
               (int)(n < 300 ? n : 300), (const char *)d);
    std::string_view type;
    FUZZ_CHECK(obj["type"].get_string().get(type) == SUCCESS, "connection %d: no \"type\" string: %.*s", i,
               (int)(n < 300 ? n : 300), (const char *)d);
    dom::element ts;
    FUZZ_CHECK(obj["timestamp"].get(ts) == SUCCESS && (ts.is_int64() || ts.is_uint64()),
               "connection %d: no integer \"timestamp\": %.*s", i, (int)(n < 300 ? n : 300), (const char *)d);
    if (first) {
        FUZZ_CHECK(type == "connection:established", "connection %d: the first message is %.*s", i, (int)type.size(),
                   type.data());
        std::string_view cid;
        FUZZ_CHECK(obj.at_pointer("/payload/clientId").get_string().get(cid) == SUCCESS && cid.size() == 32,
                   "connection %d: connection:established without a 32-character clientId", i);
        for (char ch : cid) FUZZ_CHECK(strchr("0123456789abcdef", ch), "clientId not hex");
        P[i].client_id = std::string(cid);
    } else {
        FUZZ_CHECK(type != "connection:established", "connection %d: connection:established twice", i);
    }
    // A publication or a direct message (an envelope the server made from a client's
    // message) that would pass max_message is refused with too_large, never delivered.
    std::string_view from0;
    if (type == "message" || obj["from"].get_string().get(from0) == SUCCESS)
        FUZZ_CHECK(n <= g_max_message, "connection %d: a %.*s of %zu bytes delivered, max_message %llu", i,
                   (int)type.size(), type.data(), n, (unsigned long long)g_max_message);
    std::string_view code;
    if (type == "error") {
        FUZZ_CHECK(obj.at_pointer("/payload/code").get_string().get(code) == SUCCESS,
                   "connection %d: an error without payload.code: %.*s", i, (int)n, (const char *)d);
        bool known = false;
        for (const char *k : CODES) known |= code == k;
        FUZZ_CHECK(known, "connection %d: undocumented error code %.*s", i, (int)code.size(), code.data());
        std::string_view msg;
        FUZZ_CHECK(obj.at_pointer("/payload/message").get_string().get(msg) == SUCCESS,
                   "connection %d: an error without payload.message", i);
    }
    std::string_view epoch;
    uint64_t off;
    if (obj["epoch"].get_string().get(epoch) == SUCCESS && obj["offset"].get_uint64().get(off) == SUCCESS) {
        g_last_epoch = std::string(epoch);
        g_last_offset = off;
    }
    std::string_view corr, from;
    if (obj["correlationId"].get_string().get(corr) != SUCCESS) return;
    if (obj["from"].get_string().get(from) == SUCCESS) return; // a direct message, not an answer
    if (raw_id(corr)) return;
    size_t seq = SIZE_MAX;
    if (corr.size() > 1 && corr.size() < 12 && corr[0] == 'k') {
        seq = 0;
        for (size_t k = 1; k < corr.size(); k++) {
            if (corr[k] < '0' || corr[k] > '9') {
                seq = SIZE_MAX;
                break;
            }
            seq = seq * 10 + (size_t)(corr[k] - '0');
        }
    }
    FUZZ_CHECK(seq < g_sent.size() && g_sent[seq].tracked, "connection %d: an answer (%.*s) to an id never sent: %.*s",
               i, (int)type.size(), type.data(), (int)corr.size(), corr.data());
    sent_msg &s = g_sent[seq];
    FUZZ_CHECK(s.conn == i, "the answer to k%zu (sent on connection %d) came on connection %d", seq, s.conn, i);
    FUZZ_CHECK(answers(s.tmpl, type, code), "k%zu (template %d) answered with %.*s %.*s", seq, s.tmpl,
               (int)type.size(), type.data(), (int)code.size(), code.data());
    s.answers++;
    FUZZ_CHECK(s.answers == 1, "k%zu answered %u times", seq, s.answers);
}

// Looks at what connection i's output gained: the 101 head, then whole frames.
static void scan_output(int i) {
    peer &p = P[i];
    uint8_t *d = p.out.data;
    size_t n = p.out.len;
    if (!p.head_done) {
        const uint8_t *e = n ? (const uint8_t *)memmem(d, n, "\r\n\r\n", 4) : nullptr;
        if (!e) return;
        FUZZ_CHECK(n >= 13 && memcmp(d, "HTTP/1.1 101 ", 13) == 0, "connection %d: the upgrade was refused: %.*s", i,
                   (int)(e - d), (const char *)d);
        p.head_done = true;
        p.parsed = (size_t)(e - d) + 4;
    }
    while (p.parsed + 2 <= n) {
        const uint8_t *f = d + p.parsed;
        size_t avail = n - p.parsed;
        FUZZ_CHECK((f[0] & 0x70) == 0 && (f[0] & 0x80) && !(f[1] & 0x80),
                   "connection %d: frame header %02x %02x (reserved bits, fragments or a mask)", i, f[0], f[1]);
        uint64_t len = f[1] & 0x7f;
        size_t hl = 2;
        if (len == 126) {
            if (avail < 4) return;
            len = (uint64_t)f[2] << 8 | f[3];
            hl = 4;
        } else if (len == 127) {
            if (avail < 10) return;
            len = 0;
            for (int k = 0; k < 8; k++) len = len << 8 | f[2 + k];
            hl = 10;
        }
        if (avail - hl < len) return;
        uint8_t op = f[0] & 0x0f;
        FUZZ_CHECK(!p.closed, "connection %d: a frame (opcode %u) after the close frame", i, op);
        if (g_dump)
            fprintf(stderr, "conn %d <- %s %.*s\n", i, op == WS_OP_CLOSE ? "close" : "text",
                    op == WS_OP_CLOSE ? (len >= 2 ? 2 : 0) : (int)(len < 200 ? len : 200),
                    op == WS_OP_CLOSE ? "" : (const char *)f + hl);
        if (op == WS_OP_CLOSE) {
            p.closed = true;
            p.close_code = len >= 2 ? (uint16_t)(f[hl] << 8 | f[hl + 1]) : 1005;
            FUZZ_CHECK(p.close_code != 1009 || p.longest > g_max_message,
                       "connection %d: closed 1009 (too big), but its longest message was %zu of max_message %llu", i,
                       p.longest, (unsigned long long)g_max_message);
        } else {
            FUZZ_CHECK(op == WS_OP_TEXT, "connection %d: a server frame with opcode %u", i, op);
            FUZZ_CHECK(utf8_complete(utf8_validate(UTF8_ACCEPT, f + hl, (size_t)len)), "connection %d: text not UTF-8",
                       i);
            bool first = p.client_id.empty();
            check_text(i, f + hl, (size_t)len, first);
        }
        p.parsed += hl + (size_t)len;
    }
}

static void scan_all() {
    for (int i = 0; i < NCONN; i++) {
        scan_output(i);
        if (!lookup(i)) P[i].closed = true;
    }
}

// Queues one masked frame for connection i.
static void send_frame(int i, uint8_t op, bool fin, const uint8_t *d, size_t n) {
    uint8_t key[4];
    uint32_t r = next_rand();
    memcpy(key, &r, 4);
    uint8_t hdr[FRAME_MAX_HEADER];
    size_t hl = frame_write_header(hdr, op, fin, false, n, key);
    peer &p = P[i];
    p.in.insert(p.in.end(), hdr, hdr + hl);
    size_t at = p.in.size();
    p.in.insert(p.in.end(), d, d + n);
    if (n) frame_mask(p.in.data() + at, n, key, 0);
}

// Queues a text message for connection i: one frame, or (settings [1] bits5-6) a text
// frame and one or two continuation frames, split where the generator says.
static void send_text(int i, const uint8_t *d, size_t n) {
    int frames = g_frag == 3 ? 1 + (int)(next_rand() % 3) : 1 + g_frag;
    size_t cut[3] = {0, n, n};
    if (frames >= 2) cut[0] = n ? next_rand() % (n + 1) : 0;
    if (frames == 3) {
        cut[1] = n ? next_rand() % (n + 1) : 0;
        if (cut[1] < cut[0]) {
            size_t t = cut[0];
            cut[0] = cut[1];
            cut[1] = t;
        }
    }
    size_t from = 0;
    for (int f = 0; f < frames; f++) {
        size_t to = f == frames - 1 ? n : cut[f];
        send_frame(i, f == 0 ? WS_OP_TEXT : WS_OP_CONT, f == frames - 1, d + from, to - from);
        from = to;
    }
}

// Lifts the write pressure on connection i: its socket takes everything again, and the
// server's out-queue for it drains; the input it did not read is read now.
static void release(int i) {
    P[i].pressure = false;
    for (int k = 0; k < 64; k++) {
        pump(i);
        conn *c = lookup(i);
        if (!c || !(c->flags & (CF_WANT_WRITE | CF_READ_PAUSED))) break;
    }
    conn *c = lookup(i);
    FUZZ_CHECK(!c || (P[i].in_pos == P[i].in.size() && !(c->flags & (CF_WANT_WRITE | CF_READ_PAUSED))),
               "connection %d: still waiting after its socket drained (flags %#x, %zu bytes unread)", i,
               c ? c->flags : 0, P[i].in.size() - P[i].in_pos);
}

// The messages sent on connection i while its socket refused writes: answered by now.
static void check_deferred(int i) {
    for (size_t k = 0; k < g_sent.size(); k++) {
        sent_msg &x = g_sent[k];
        if (x.conn != i || !x.deferred) continue;
        x.deferred = false;
        if (P[i].closed) x.closed_by = true;
        if (x.tracked)
            FUZZ_CHECK(x.answers == 1 || (x.closed_by && x.answers == 0),
                       "k%zu (template %d, connection %d, sent under write pressure) got %u answers once it drained",
                       k, x.tmpl, i, x.answers);
    }
}

static const char UPGRADE[] = "GET /ws HTTP/1.1\r\nHost: fuzz\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < SETTINGS) return 0;
    static const bool log_debug = getenv("FUZZ_LOG_DEBUG") != nullptr;
    g_dump = getenv("FUZZ_DUMP_OUTPUT") != nullptr;
    wsr_log_set_level(log_debug ? WSR_LOG_DEBUG : WSR_LOG_ERROR);
    const uint8_t *s = data;

    wsr_options o;
    wsr_options_default(&o);
    o.listen = "127.0.0.1:0";
    o.max_message = (s[1] & 16) ? 512 : 4096;
    o.handshake_timeout_ms = 1000000;
    o.close_timeout_ms = 1000000;
    o.ping_interval_ms = 0;
    o.pong_timeout_ms = 0;
    o.idle_timeout_ms = 0;
    o.shutdown_timeout_ms = 0;
    o.max_connections = 8;
    o.max_backpressure = (s[0] & 8) ? 4096 : 1 << 20;
    o.slow_policy = (s[1] & 128) ? WSR_SLOW_DROP : WSR_SLOW_CLOSE;
    g_max_message = o.max_message;
    g_big = s[0] & 128;
    g_frag = (s[1] >> 5) & 3;

    wsr_messaging_options mo;
    wsr_messaging_options_default(&mo);
    mo.max_message = o.max_message;
    mo.defaults.history_size = s[0] % 9;
    mo.max_channels = 1 + ((s[0] >> 4) & 7);
    mo.history_memory = 1 << 16;
    static const uint32_t strikes[4] = {16, 1, 2, 4};
    mo.max_strikes = strikes[(s[1] >> 2) & 3];
    mo.rate_messages = mo.burst_messages = 0;
    mo.rate_bytes = mo.burst_bytes = 0;
    if (s[1] & 1) {
        mo.rate_messages = 1;
        mo.burst_messages = 2;
    }
    if (s[1] & 2) {
        mo.rate_bytes = 64;
        mo.burst_bytes = 256;
    }

    for (int i = 0; i < NCONN; i++) {
        P[i] = peer{};
        fuzz_trace_init(&P[i].out);
    }
    g_sent.clear();
    g_raw_ids.clear();
    g_last_epoch.clear();
    g_last_offset = 0;
    g_done_calls = 0;
    g_rng = ((uint32_t)s[2] | (uint32_t)s[3] << 8) * 2654435761u + 12345u;
    if (!g_rng) g_rng = 1;

    uv_loop_t loop;
    FUZZ_CHECK(uv_loop_init(&loop) == 0, "uv_loop_init");
    FUZZ_CHECK(wsr_server_new(&loop, &o, &g_srv) == WSR_OK, "wsr_server_new");
    wsr_messaging *ms = wsr_messaging_new(&loop, g_srv, "/ws", &mo);
    FUZZ_CHECK(ms != nullptr, "wsr_messaging_new");
    g_srv->io = &fake_transport;
    g_srv->round_budget = 2048;

    for (int i = 0; i < NCONN; i++) {
        int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        FUZZ_CHECK(efd >= 0, "eventfd: %s", strerror(errno));
        conn *c = server_adopt(g_srv, efd);
        FUZZ_CHECK(c != nullptr, "server_adopt");
        P[i].id = conn_id(c);
        P[i].in.assign(UPGRADE, UPGRADE + sizeof UPGRADE - 1);
    }
    for (int i = 0; i < NCONN; i++) pump(i);
    scan_all();
    for (int i = 0; i < NCONN; i++)
        FUZZ_CHECK(!P[i].client_id.empty(), "connection %d: no connection:established after the upgrade", i);

    const uint8_t *m = data + SETTINGS, *end = data + size;
    while (m < end) {
        const uint8_t *sep = (const uint8_t *)memchr(m, 0xff, (size_t)(end - m));
        const uint8_t *me = sep ? sep : end;
        size_t n = (size_t)(me - m);
        m = sep ? sep + 1 : end;
        if (n == 0) continue;
        const uint8_t *msg = me - n;
        int c_i = (msg[0] >> 7) & 1;
        if ((msg[0] & 64) && (msg[0] & 63)) { // a command
            if (msg[0] & 1) {
                if (g_dump) fprintf(stderr, "conn %d: write pressure %s\n", c_i, P[c_i].pressure ? "off" : "on");
                if (P[c_i].pressure) {
                    release(c_i);
                    scan_all();
                    check_deferred(c_i);
                } else {
                    P[c_i].pressure = true;
                }
            }
            continue;
        }
        sent_msg sm = {c_i, -1, false, false, P[c_i].pressure, 0};
        size_t seq = g_sent.size();
        size_t len;
        if (msg[0] & 64) {
            note_raw_id(msg + 1, n - 1);
            send_text(c_i, msg + 1, n - 1);
            len = n - 1;
        } else {
            bool has_id;
            std::string text = make_template(seq, c_i, msg, n, &sm.tmpl, &has_id);
            sm.tracked = has_id;
            send_text(c_i, (const uint8_t *)text.data(), text.size());
            len = text.size();
        }
        if (len > P[c_i].longest) P[c_i].longest = len;
        if (g_dump) fprintf(stderr, "conn %d -> %zu bytes: %.*s\n", c_i, len, (int)(len < 200 ? len : 200),
                            (msg[0] & 64) ? (const char *)msg + 1 : "(template)");
        sm.closed_by = P[c_i].closed;
        g_sent.push_back(sm);
        pump(c_i);
        scan_all();
        sent_msg &now = g_sent[seq];
        if (P[c_i].closed) now.closed_by = true;
        if (now.tracked && !now.deferred)
            FUZZ_CHECK(now.answers == 1 || (now.closed_by && now.answers == 0),
                       "k%zu (template %d, connection %d) got %u answers", seq, now.tmpl, c_i, now.answers);
    }
    // The peers read everything from here on.
    for (int i = 0; i < NCONN; i++) {
        if (!P[i].pressure) continue;
        release(i);
        scan_all();
        check_deferred(i);
    }

    wsr_server_shutdown(g_srv, on_done);
    server_flush(g_srv);
    for (int i = 0; i < 64 && uv_loop_alive(&loop); i++) uv_run(&loop, UV_RUN_NOWAIT);
    FUZZ_CHECK(!uv_loop_alive(&loop), "the loop is still alive after shutdown");
    FUZZ_CHECK(g_done_calls == 1, "shutdown callback ran %d times", g_done_calls);
    FUZZ_CHECK(g_srv->table.live == 0, "%u connections left after shutdown", g_srv->table.live);
    for (int i = 0; i < NCONN; i++) scan_output(i);
    wsr_server_free(g_srv);
    g_srv = nullptr;
    wsr_messaging_free(ms);
    uv_run(&loop, UV_RUN_NOWAIT);
    FUZZ_CHECK(uv_loop_close(&loop) == 0, "uv_loop_close: handles left open");

    // Every tracked message: exactly one answer (at most one once its connection closed).
    for (size_t k = 0; k < g_sent.size(); k++) {
        const sent_msg &x = g_sent[k];
        if (!x.tracked) continue;
        FUZZ_CHECK(x.answers == 1 || (x.closed_by && x.answers == 0), "k%zu: %u answers at the end", k, x.answers);
    }
    // The whole output once more, through the shared frame checks: valid close last,
    // text UTF-8, ends on a frame boundary.
    for (int i = 0; i < NCONN; i++) {
        peer &p = P[i];
        const uint8_t *e = (const uint8_t *)memmem(p.out.data, p.out.len, "\r\n\r\n", 4);
        FUZZ_CHECK(e != nullptr, "connection %d: no response head", i);
        size_t at = (size_t)(e - p.out.data) + 4, end_pos;
        fuzz_trace msgs;
        fuzz_trace_init(&msgs);
        check_frames(p.out.data + at, p.out.len - at, nullptr, &msgs, nullptr, &end_pos);
        FUZZ_CHECK(at + end_pos == p.out.len, "connection %d: the output does not end on a frame boundary", i);
        FUZZ_CHECK(p.parsed == p.out.len, "connection %d: the harness's scan stopped at %zu of %zu", i, p.parsed,
                   p.out.len);
        fuzz_trace_free(&msgs);
        fuzz_trace_free(&p.out);
        p.in.clear();
        p.in.shrink_to_fit();
    }
    return 0;
}
