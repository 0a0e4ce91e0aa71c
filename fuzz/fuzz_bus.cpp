// Fuzz target for the messages nodes exchange on Redis Pub/Sub (src/msg/broker_bus.cpp):
// anyone who can PUBLISH on the Redis the nodes share can send these bytes.
//
// Properties, for any input:
//   - bus_parse reads only the input (ASan: the input is a heap buffer of its exact size);
//   - when it accepts, the kind is one of bus_kind, every view lies inside the input, and
//     the fields written back in the format of src/msg/broker.h give the input again,
//     byte for byte: the format is canonical, so nothing was skipped, guessed or read
//     twice;
//   - the fields are what the nodes rely on: a valid channel name, 16 and 32 lowercase
//     hex digits, offset >= 1, a close code an application may send, a reason of at most
//     123 bytes, an envelope or client object that is not empty.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <string>

#include "fuzz_util.h"
#include "msg/broker.h"
#include "msg/server.h"

static bool inside(const uint8_t *data, size_t size, const char *p, size_t n) {
    const char *b = (const char *)data;
    return p >= b && n <= size && p - b <= (ptrdiff_t)(size - n);
}

static bool hex(const char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f'))) return false;
    return true;
}

static bool app_code(unsigned c) { return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999); }

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    bus_msg m;
    if (!bus_parse((const char *)data, size, &m)) return 0;
    std::string back(1, m.kind);
    switch (m.kind) {
    case BUS_HEARTBEAT:
        FUZZ_CHECK(size == 1, "a heartbeat is one byte");
        return 0;
    case BUS_PUBLICATION:
        FUZZ_CHECK(inside(data, size, m.channel, m.channel_len) && inside(data, size, m.epoch, 16), "views inside");
        FUZZ_CHECK(hex(m.epoch, 16) && m.offset >= 1, "epoch and offset");
        back += " " + std::string(m.channel, m.channel_len) + " " + std::string(m.epoch, 16) + " " +
                std::to_string(m.offset) + " ";
        break;
    case BUS_JOIN:
    case BUS_LEAVE:
        FUZZ_CHECK(inside(data, size, m.channel, m.channel_len) && inside(data, size, m.client_id, CLIENT_ID_LEN),
                   "views inside");
        back += " " + std::string(m.channel, m.channel_len) + " " + std::string(m.client_id, CLIENT_ID_LEN) + " ";
        break;
    case BUS_DIRECT:
    case BUS_DISCONNECT:
        FUZZ_CHECK(inside(data, size, m.client_id, CLIENT_ID_LEN) && hex(m.client_id, CLIENT_ID_LEN), "client id");
        back += " " + std::string(m.client_id, CLIENT_ID_LEN) + " ";
        if (m.kind == BUS_DISCONNECT) back += std::to_string(m.code) + " ";
        break;
    case BUS_DISCONNECT_USER:
        FUZZ_CHECK(inside(data, size, m.node, 16) && hex(m.node, 16), "node");
        FUZZ_CHECK(m.user_len >= 1 && inside(data, size, m.user, m.user_len), "user");
        back += " " + std::string(m.node, 16) + " " + std::to_string(m.code) + " " + std::to_string(m.user_len) + " " +
                std::string(m.user, m.user_len);
        break;
    default: FUZZ_CHECK(false, "unknown kind %d accepted", m.kind);
    }
    if (m.channel) {
        env_str name{m.channel, m.channel_len};
        FUZZ_CHECK(msg_channel_name_ok(&name), "a valid channel name");
    }
    if (m.client_id) FUZZ_CHECK(hex(m.client_id, CLIENT_ID_LEN), "client id: lowercase hex");
    bool reason = m.kind == BUS_DISCONNECT || m.kind == BUS_DISCONNECT_USER;
    if (reason) FUZZ_CHECK(app_code(m.code) && m.data_len <= 123, "code %u, reason of %zu bytes", m.code, m.data_len);
    else FUZZ_CHECK(m.data_len > 0, "an envelope or object that is not empty");
    FUZZ_CHECK(inside(data, size, m.data, m.data_len) && m.data + m.data_len == (const char *)data + size,
               "the rest runs to the end");
    back.append(m.data, m.data_len);
    FUZZ_CHECK(back.size() == size && memcmp(back.data(), data, size) == 0, "written back: %s", back.c_str());
    return 0;
}
