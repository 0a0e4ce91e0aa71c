// bench/peers/beast_echo.cpp: a WebSocket echo server on Boost.Beast (Debian libboost-dev),
// for bench/run-peers.sh. Single-threaded async, as Beast's websocket_server_async example:
// one io_context run by one thread, one session per connection that reads a message and
// writes it back with the same opcode, then reads the next. No permessage-deflate (Beast's
// default), any path answered, TCP_NODELAY on accepted sockets.
//
// usage: beast_echo [PORT]   (default 0: an ephemeral port); listens on 127.0.0.1 and prints
// "listening on 127.0.0.1:PORT" on stderr. SIGINT/SIGTERM stop it.
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include <cstdio>
#include <cstdlib>
#include <memory>

namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

class Session : public std::enable_shared_from_this<Session> {
public:
    explicit Session(tcp::socket&& socket) : ws_(std::move(socket)) {}

    void run() {
        ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
        ws_.async_accept(beast::bind_front_handler(&Session::on_accept, shared_from_this()));
    }

private:
    void on_accept(beast::error_code ec) {
        if (!ec) do_read();
    }
    void do_read() {
        ws_.async_read(buffer_, beast::bind_front_handler(&Session::on_read, shared_from_this()));
    }
    void on_read(beast::error_code ec, std::size_t) {
        if (ec) return; // closed, or an error: the session ends
        ws_.text(ws_.got_text());
        ws_.async_write(buffer_.data(), beast::bind_front_handler(&Session::on_write, shared_from_this()));
    }
    void on_write(beast::error_code ec, std::size_t n) {
        if (ec) return;
        buffer_.consume(n);
        do_read();
    }

    websocket::stream<beast::tcp_stream> ws_;
    beast::flat_buffer buffer_;
};

class Listener : public std::enable_shared_from_this<Listener> {
public:
    Listener(net::io_context& ioc, tcp::endpoint ep) : ioc_(ioc), acceptor_(ioc) {
        acceptor_.open(ep.protocol());
        acceptor_.set_option(net::socket_base::reuse_address(true));
        acceptor_.bind(ep);
        acceptor_.listen(net::socket_base::max_listen_connections);
    }
    unsigned short port() const { return acceptor_.local_endpoint().port(); }
    void run() { do_accept(); }

private:
    void do_accept() {
        acceptor_.async_accept(ioc_, beast::bind_front_handler(&Listener::on_accept, shared_from_this()));
    }
    void on_accept(beast::error_code ec, tcp::socket socket) {
        if (!ec) {
            socket.set_option(tcp::no_delay(true));
            std::make_shared<Session>(std::move(socket))->run();
        }
        do_accept();
    }

    net::io_context& ioc_;
    tcp::acceptor acceptor_;
};

} // namespace

int main(int argc, char** argv) {
    auto port = static_cast<unsigned short>(argc > 1 ? atoi(argv[1]) : 0);
    net::io_context ioc{1};
    auto listener = std::make_shared<Listener>(ioc, tcp::endpoint{net::ip::make_address("127.0.0.1"), port});
    fprintf(stderr, "listening on 127.0.0.1:%u\n", listener->port());
    listener->run();
    net::signal_set signals(ioc, SIGINT, SIGTERM);
    signals.async_wait([&](beast::error_code, int) { ioc.stop(); });
    ioc.run();
    return 0;
}
