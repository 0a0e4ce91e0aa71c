// bench/peers/wspp_echo.cpp: a WebSocket echo server on websocketpp (Debian
// libwebsocketpp-dev) over standalone Asio (libasio-dev), for bench/run-peers.sh. As
// websocketpp's echo_server example: config::asio (no TLS, permessage-deflate disabled), one
// io_service run by one thread, the message handler sends every message back with its
// opcode. Logging off, any path answered, TCP_NODELAY on accepted sockets.
//
// usage: wspp_echo [PORT]   (default 0: an ephemeral port); listens on 127.0.0.1 and prints
// "listening on 127.0.0.1:PORT" on stderr. SIGINT/SIGTERM stop it.
#define ASIO_STANDALONE
#include <websocketpp/config/asio_no_tls.hpp>
#include <websocketpp/server.hpp>

#include <cstdio>
#include <cstdlib>

using Server = websocketpp::server<websocketpp::config::asio>;

int main(int argc, char** argv) {
    auto port = static_cast<unsigned short>(argc > 1 ? atoi(argv[1]) : 0);
    Server server;
    server.clear_access_channels(websocketpp::log::alevel::all);
    server.clear_error_channels(websocketpp::log::elevel::all);
    server.init_asio();
    server.set_reuse_addr(true);
    server.set_listen_backlog(asio::socket_base::max_listen_connections);
    server.set_tcp_pre_init_handler([&server](websocketpp::connection_hdl hdl) {
        asio::error_code ec;
        server.get_con_from_hdl(hdl)->get_raw_socket().set_option(asio::ip::tcp::no_delay(true), ec);
    });
    server.set_message_handler([&server](websocketpp::connection_hdl hdl, Server::message_ptr msg) {
        websocketpp::lib::error_code ec;
        server.send(hdl, msg->get_payload(), msg->get_opcode(), ec);
    });
    server.listen(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    websocketpp::lib::error_code ec;
    fprintf(stderr, "listening on 127.0.0.1:%u\n", server.get_local_endpoint(ec).port());
    server.start_accept();
    asio::signal_set signals(server.get_io_service(), SIGINT, SIGTERM);
    signals.async_wait([&](const asio::error_code&, int) { server.stop(); });
    server.run();
    return 0;
}
