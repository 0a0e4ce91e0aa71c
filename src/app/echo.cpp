#include "app/echo.h"

static void echo_message(wsr_server *srv, wsr_conn_id id, wsr_opcode op, const uint8_t *data, size_t len, void *) {
    // A failure here means the connection is closing or gone; there is no one left
    // to tell, and the close path already logged why.
    (void)wsr_send(srv, id, op, data, len);
}

const wsr_handlers echo_handlers = {nullptr, echo_message, nullptr};
