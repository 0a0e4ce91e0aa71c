#include "app/broadcast.h"

#include <stdint.h>
#include <stdlib.h>

// Members sit in a dense array so a fan-out is a straight loop; each connection's user
// pointer holds its index, and a leaving member is replaced by the last one.
static void room_join(wsr_server *srv, wsr_conn_id id, void *user) {
    broadcast_room *room = (broadcast_room *)user;
    if (room->count == room->cap) {
        uint32_t cap = room->cap ? room->cap * 2 : 64;
        wsr_conn_id *m = (wsr_conn_id *)realloc(room->members, cap * sizeof *m);
        if (!m) {
            wsr_close(srv, id, 1011, "out of memory");
            return;
        }
        room->members = m;
        room->cap = cap;
    }
    room->members[room->count] = id;
    wsr_conn_set_user(srv, id, (void *)(uintptr_t)(room->count + 1)); // 0: not a member
    room->count++;
}

static void room_leave(wsr_server *srv, wsr_conn_id id, uint16_t, void *user) {
    broadcast_room *room = (broadcast_room *)user;
    uintptr_t slot = (uintptr_t)wsr_conn_user(srv, id);
    if (slot == 0 || slot > room->count || room->members[slot - 1] != id) return;
    wsr_conn_id last = room->members[--room->count];
    if (last != id) {
        room->members[slot - 1] = last;
        wsr_conn_set_user(srv, last, (void *)slot);
    }
}

static void room_message(wsr_server *srv, wsr_conn_id, wsr_opcode op, const uint8_t *data, size_t len, void *user) {
    broadcast_room *room = (broadcast_room *)user;
    wsr_msg *msg = wsr_msg_new(op, data, len);
    if (!msg) return;
    // A send never tears a connection down on the spot (a slow member is only asked
    // to close, a failed socket is reaped after this callback), so the member array
    // stays as it is during the loop.
    for (uint32_t i = 0; i < room->count; i++) (void)wsr_send_msg(srv, room->members[i], msg);
    wsr_msg_free(msg);
}

const wsr_handlers broadcast_handlers = {room_join, room_message, room_leave};

void broadcast_room_free(broadcast_room *room) {
    free(room->members);
    room->members = nullptr;
    room->count = room->cap = 0;
}
