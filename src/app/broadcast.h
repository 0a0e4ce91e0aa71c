// The broadcast endpoint: every message received from one client goes to every client
// connected to it (the sender included), framed once and shared by all receivers.
#pragma once

#include "wsr/wsr.h"

struct broadcast_room {
    wsr_conn_id *members;
    uint32_t count, cap;
};

extern const wsr_handlers broadcast_handlers; // route user pointer: a broadcast_room
void broadcast_room_free(broadcast_room *room);
