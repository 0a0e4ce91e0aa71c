// The PROXY protocol header (HAProxy's "The PROXY protocol", versions 1 and 2) that a
// load balancer sends before the client's first byte, naming the client it relays.
//
// proxy_parse is a pure function of the bytes received so far: the caller keeps them and
// calls again with more until the answer is DONE or ERROR. It reads nothing past the
// header, allocates nothing and keeps no state, so a connection needs no parser struct
// while it waits.
#pragma once

#include "proto/netaddr.h"

enum { PROXY_V1_MAX = 107, PROXY_MAX_HEADER = 16 + 4096 /* v2 with TLVs; longer is refused */ };

enum proxy_status : int8_t { PROXY_ERROR = -1, PROXY_NEED_MORE = 0, PROXY_DONE = 1 };

struct proxy_result {
    size_t header_len; // PROXY_DONE: bytes the header took; everything after belongs to the application protocol
    bool local;        // v2 LOCAL, v1 UNKNOWN, or an address family we do not carry (UNSPEC, UNIX,
                       // and UDP, which falls back to UNSPEC as the spec allows): keep the socket's own address
    net_addr src, dst; // !local: the client and the address it connected to
    const char *error; // PROXY_ERROR: a short static reason for the log
};

// Parses the header at the start of data[0..len). PROXY_NEED_MORE while every byte so far
// is a valid prefix of some header (the same answer whether the bytes come at once or one
// at a time). PROXY_ERROR as soon as the prefix cannot become a valid header: not a PROXY
// header at all, bad version/command/family, a v1 line longer than 107 bytes or with
// malformed numbers/addresses/ports, a v2 address block shorter than the family needs, a
// v2 length over PROXY_MAX_HEADER - 16, a v2 TLV that overruns the header, or a v2
// PP2_TYPE_CRC32C that does not match. *out is fully written on every call.
proxy_status proxy_parse(const uint8_t *data, size_t len, proxy_result *out);
