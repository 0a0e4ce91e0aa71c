// RFC 6455 §5 framing: an incremental frame parser, the header writer and masking.
//
// The parser is a pull parser over caller-owned, mutable bytes: each call consumes
// what it can and returns one event. Payload is unmasked in place and handed out as
// it arrives, so a frame never has to be buffered whole to be checked, and feeding
// one byte at a time yields the same headers, payload bytes and errors as feeding
// everything at once. No allocation, no I/O.
#pragma once

#include <stddef.h>
#include <stdint.h>

enum ws_opcode : uint8_t {
    WS_OP_CONT = 0x0,
    WS_OP_TEXT = 0x1,
    WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8,
    WS_OP_PING = 0x9,
    WS_OP_PONG = 0xA,
};

// Close codes (RFC 6455 §7.4.1) that this server sends.
enum ws_close_code : uint16_t {
    WS_CLOSE_NORMAL = 1000,
    WS_CLOSE_GOING_AWAY = 1001,
    WS_CLOSE_PROTOCOL = 1002,
    WS_CLOSE_UNSUPPORTED = 1003,
    WS_CLOSE_NO_STATUS = 1005, // never on the wire: "the close frame had no body"
    WS_CLOSE_ABNORMAL = 1006,  // never on the wire: "the TCP connection just ended"
    WS_CLOSE_BAD_DATA = 1007,
    WS_CLOSE_POLICY = 1008,
    WS_CLOSE_TOO_BIG = 1009,
    WS_CLOSE_INTERNAL = 1011,
    WS_CLOSE_TRY_AGAIN = 1013, // the server is overloaded (RFC 6455 §11.7 registry)
};

enum frame_event_type : uint8_t {
    FRAME_NEED_MORE, // every byte given was consumed; call again with more
    FRAME_HEADER,    // a frame header is complete: opcode, fin, rsv1, frame_len
    FRAME_PAYLOAD,   // data/len: the next unmasked payload bytes of the current frame
    FRAME_END,       // the current frame is complete
    FRAME_ERROR,     // the stream is invalid: close_code and reason; sticky
};

struct frame_event {
    uint8_t type;
    uint8_t opcode;      // of the current frame (WS_OP_CONT for a continuation)
    uint8_t fin;
    uint8_t rsv1;        // RFC 7692 "per-message compressed", first frame only
    uint8_t ascii;       // frame_parse_whole: the payload was seen to be all ASCII (0: not looked at)
    uint16_t close_code; // FRAME_ERROR: 1002 or 1009
    const char *reason;  // FRAME_ERROR: static text, fit for a log line and a close frame
    uint64_t frame_len;  // FRAME_HEADER: payload length of this frame
    uint8_t *data;       // FRAME_PAYLOAD
    size_t len;          // FRAME_PAYLOAD
};

struct frame_limits {
    uint64_t max_message; // data bytes per message, summed over fragments; over it: 1009
    bool allow_rsv1;      // permessage-deflate was negotiated
    bool expect_masked;   // true on the server (client frames are masked), false on a client
    // Bytes on the wire of a compressed (RSV1) message, 0: max_message. Incompressible
    // data grows a little when deflated, and the limit a user sets is on what the
    // message is, not on how it travels: the inflater holds it to max_message.
    uint64_t max_compressed;
};

// The max_compressed that goes with a max_message: deflate's own framing makes
// incompressible data a little longer (stored blocks: 5 bytes per 64 KiB; a poor
// encoder's fixed Huffman codes: up to about 1/8 more). Kept within what a 32-bit
// message length holds.
static inline uint64_t frame_max_compressed(uint64_t max_message) {
    uint64_t c = max_message + max_message / 8 + 1024;
    return c < 0xFFFFFFBFull ? c : 0xFFFFFFBFull;
}

struct frame_parser {
    uint64_t remaining; // payload bytes still to come in the current frame
    uint64_t msg_len;   // data bytes so far in the current message
    uint8_t state;
    uint8_t hdr_have;   // header bytes collected so far
    uint8_t hdr_need;   // header length, known once the second byte is in
    uint8_t opcode;
    uint8_t fin;
    uint8_t rsv1;
    uint8_t in_message; // a fragmented data message is open
    uint8_t msg_opcode; // WS_OP_TEXT or WS_OP_BINARY of the open (or just finished) message
    uint8_t msg_rsv1;   // the open message's first frame had RSV1
    uint8_t mask_off;   // position of the next payload byte within the 4-byte key
    uint8_t mask[4];
    uint8_t hdr[14];
};

void frame_parser_init(frame_parser *p);

// Consumes a prefix of data[0..len) and reports one event in *ev. Returns the number
// of bytes consumed (0 is normal for FRAME_END and FRAME_ERROR). Call in a loop until
// FRAME_NEED_MORE or FRAME_ERROR.
size_t frame_parse(frame_parser *p, const frame_limits *lim, uint8_t *data, size_t len, frame_event *ev);

// The fast path for the common case: when data starts with one whole, unfragmented,
// valid text or binary frame (7- or 16-bit length) and no frame or fragmented message
// is in progress, consumes that frame, unmasks its payload in place and reports it as
// one FRAME_PAYLOAD event (data, len, opcode, fin, rsv1, frame_len) that also ends the
// frame: the parser is left as frame_parse leaves it after that frame's FRAME_END.
// Returns 0, consuming nothing, for anything else (a partial frame, a control frame, a
// fragment, any rule broken); frame_parse then takes it, so events and errors are the
// same either way.
size_t frame_parse_whole(frame_parser *p, const frame_limits *lim, uint8_t *data, size_t len, frame_event *ev);

static inline bool ws_opcode_is_control(uint8_t op) { return (op & 0x8) != 0; }

// Largest header a frame can have: 2 + 8 (64-bit length) + 4 (mask key).
enum { FRAME_MAX_HEADER = 14 };

// Writes a frame header into out (at least FRAME_MAX_HEADER bytes); returns its size.
// mask_key is NULL for server frames, which are never masked (§5.1).
size_t frame_write_header(uint8_t *out, uint8_t opcode, bool fin, bool rsv1, uint64_t len,
                          const uint8_t *mask_key);

// XORs data with the key, starting at key position `offset` (0..3). Works a vector at
// a time; masking and unmasking are the same operation.
void frame_mask(uint8_t *data, size_t len, const uint8_t key[4], unsigned offset);
// frame_mask's inner loop: XORs whole 64-byte blocks of data with the 4-byte pattern k32
// (as it lies in memory); returns the bytes done (len rounded down to 64).
size_t frame_mask_bulk(uint8_t *data, size_t len, uint32_t k32);

// True for the codes a peer may put on the wire (§7.4.1, §7.4.2 and the IANA registry).
bool frame_close_code_valid(uint16_t code);

// Checks a received close payload. Returns 0 and sets *code (WS_CLOSE_NO_STATUS for an
// empty body) when it is valid; otherwise the close code to fail with: 1002 for a
// 1-byte body or an invalid code, 1007 for a reason that is not UTF-8.
uint16_t frame_close_parse(const uint8_t *payload, size_t len, uint16_t *code);
