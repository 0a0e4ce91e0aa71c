#!/usr/bin/python3
"""Allowed origins, several listeners, SO_REUSEPORT and trusted proxies, on the wire.

--allowed-origin (exact and wildcard patterns: 101 or 403, no Origin allowed), --listen
repeated (every port serves /healthz and /echo, IPv4 and IPv6), --reuseport yes (two
daemons share a port; without it the second refuses to start and says why), and
--trusted-proxy (X-Forwarded-For / Forwarded believed only from those peers: the log
line for a refused request names the real client).

Every test starts its own daemons on loopback ports and stops them with SIGTERM,
expecting exit status 0 (which also catches sanitizer reports).
"""

import os
import re
import sys

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from httputil import HttpCase, conn_tokens, free_port, http_request, read_response  # noqa: E402
from wsclient import OP_BINARY, OP_TEXT, RawClient, add_cases, run_tap  # noqa: E402


# ========================================================================================
# 1. allowed origins


ORIGIN_ARGS = ("--allowed-origin", "https://app.example", "--allowed-origin", "https://*.example.com")


class Origins(HttpCase):
    def check(self, case):
        origin, want = case
        srv, c = self.start_with_client(*ORIGIN_ARGS)
        hdrs = {"Origin": origin} if origin is not None else {}
        r = c.handshake(headers=hdrs, expect_status=None)
        self.assertEqual(r.status, want, f"Origin {origin!r}: {r.raw[:200]!r}")
        if want == 101:
            c.echo(OP_TEXT, b"from " + (origin or "no origin").encode())
            c.send_close(1000)
            c.expect_close(1000, reply=False)
        else:
            self.assertIn("close", conn_tokens(r), r.raw[:200])
            self.assert_eof(c)
            self.assert_serves(srv)
            line = self.wait_log(srv, r"refused: 403 origin not allowed")
            self.assertIsNotNone(line, "no log line for the refused origin")
        self.stop_ok(srv)


add_cases(Origins, "origin", [
    ("app_example_101", ("https://app.example", 101)),
    ("app_example_port_443_101", ("https://app.example:443", 101)),
    ("a_b_example_com_101", ("https://a.b.example.com", 101)),
    ("none_101", (None, 101)),
    ("evil_example_403", ("https://evil.example", 403)),
    ("example_com_evil_net_403", ("https://example.com.evil.net", 403)),
    ("evil_example_com_no_dot_403", ("https://evilexample.com", 403)),
    ("http_scheme_403", ("http://app.example", 403)),
    ("other_port_403", ("https://app.example:8443", 403)),
    ("app_example_evil_403", ("https://app.example.evil", 403)),
    ("null_403", ("null", 403)),
], Origins.check)


# ========================================================================================
# 2. several listeners


class Listeners(HttpCase):
    def test_two_listen_ports_and_ipv6_all_serve(self):
        srv = self.start_server(listen=["127.0.0.1:0", "127.0.0.1:0", "[::1]:0"])
        ports = [(h, p) for h, p, proxy in srv.listeners]
        self.assertEqual(len({p for _, p in ports}), 3, f"listeners {srv.listeners}")
        for host, port in ports:
            with self.subTest(listener=f"{host}:{port}"):
                self.assert_serves(srv, port=port, host=host)
        self.stop_ok(srv)

    def test_reuseport_two_daemons_share_a_port(self):
        port = free_port()
        addr = f"127.0.0.1:{port}"
        a = self.start_server("--reuseport", "yes", listen=[addr])
        b = self.start_server("--reuseport", "yes", listen=[addr])
        for d in (a, b):
            self.assertEqual(d.listeners, [("127.0.0.1", port, False)], d.log_tail())
            self.assertIn(f"listening on {addr} (reuseport)", d.log())
        # The kernel spreads connections over both: each refuses some of 40 requests.
        for i in range(40):
            with RawClient("127.0.0.1", port) as c:
                c.send(http_request("GET", f"/nope{i}"))
                self.assertEqual(read_response(c).status, 404)
        ra, rb = (len(self.refused_lines(d)) for d in (a, b))
        self.assertTrue(ra > 0 and rb > 0, f"refusals logged: {ra} by one daemon, {rb} by the other")
        # Either alone serves the port.
        self.stop_ok(a)
        for _ in range(10):
            self.assert_serves(b)
        self.stop_ok(b)

    def check_second_refuses_to_start(self, second_args, error):
        """A daemon on a free port, then a second one with second_args on the same port:
        the second exits non-zero, with error (formatted with the address) in its message,
        and the first still serves."""
        addr = f"127.0.0.1:{free_port()}"
        a = self.start_server(listen=[addr])
        b = self.new_server(*second_args, listen=[addr])
        with self.assertRaises(RuntimeError, msg="a second daemon listens on a port in use") as cm:
            b.start()
        self.assertGreater(b.proc.returncode, 0, str(cm.exception))
        self.assertRegex(str(cm.exception), error.format(addr=re.escape(addr)))
        self.assert_serves(a)
        self.stop_ok(a)

    def test_same_port_without_reuseport_second_refuses_to_start(self):
        # The reason is the C library's text for EADDRINUSE: glibc says "Address already
        # in use", musl (the static daemon, docs/edge.md) "Address in use".
        self.check_second_refuses_to_start((), "cannot listen on {addr}: Address (already )?in use")

    def test_reuseport_on_one_side_only_second_refuses_to_start(self):
        self.check_second_refuses_to_start(("--reuseport", "yes"), "cannot listen on {addr}")


# ========================================================================================
# 3. trusted proxies


class TrustedProxy(HttpCase):
    def refused_from(self, args, headers, path="/nope", origin=None):
        """Starts a daemon, makes one refused request; returns (log line, client port)."""
        srv, c = self.start_with_client(*args)
        if origin:
            r = c.handshake(headers=dict(headers, Origin=origin), expect_status=403)
        else:
            c.send(http_request("GET", path, headers=headers))
            r = read_response(c)
            self.assertEqual(r.status, 404, r.raw)
        m = self.wait_log(srv, r"request from (\S+) refused: (\d+)")
        self.assertIsNotNone(m, "no 'request from ... refused' log line:\n" + srv.log_tail())
        self.assertEqual(m.group(2), str(r.status), m.group(0))
        self.srv = srv
        return m.group(1), c.sock.getsockname()[1]

    def check_named(self, args, headers, named=None, **kw):
        """One refused request (see refused_from); its log line must name named (None:
        the connecting client itself), and the daemon exit 0. Returns the daemon."""
        who, port = self.refused_from(args, headers, **kw)
        self.assertEqual(who, named or f"127.0.0.1:{port}")
        self.stop_ok(self.srv)
        return self.srv

    def test_xff_from_trusted_peer_names_the_client(self):
        self.check_named(["--trusted-proxy", "127.0.0.1"], [("X-Forwarded-For", "203.0.113.9")], "203.0.113.9")

    def test_xff_without_trusted_proxy_names_the_peer(self):
        srv = self.check_named([], [("X-Forwarded-For", "203.0.113.9")])
        self.assertNotIn("203.0.113.9", srv.log())

    def test_xff_from_untrusted_peer_is_ignored(self):
        self.check_named(["--trusted-proxy", "10.0.0.0/8"], [("X-Forwarded-For", "203.0.113.9")])

    def test_xff_spoofed_leftmost_entry_is_not_believed(self):
        # The client wrote 198.51.100.1 itself; the trusted proxy appended 203.0.113.9.
        self.check_named(["--trusted-proxy", "127.0.0.1/32"], [("X-Forwarded-For", "198.51.100.1, 203.0.113.9")],
                         "203.0.113.9")

    def test_xff_through_two_trusted_proxies(self):
        self.check_named(["--trusted-proxy", "127.0.0.1", "--trusted-proxy", "10.0.0.0/8"],
                         [("X-Forwarded-For", "203.0.113.9, 10.1.2.3")], "203.0.113.9")

    def test_xff_17_lines_the_last_ones_are_the_proxys(self):
        # The client wrote 16 lines of its own; the trusted proxy appended the last one.
        headers = ([("X-Forwarded-For", "198.51.100.66")] * 16
                   + [("X-Forwarded-For", "198.51.100.77, 203.0.113.9")])
        self.check_named(["--trusted-proxy", "127.0.0.1"], headers, "203.0.113.9")

    def test_xff_and_forwarded_together_neither_is_believed(self):
        # Which of the two the proxy wrote is unknown: the peer's own address stands.
        self.check_named(["--trusted-proxy", "127.0.0.1"],
                         [("X-Forwarded-For", "198.51.100.66"), ("Forwarded", "for=203.0.113.9")])

    def test_forwarded_header_names_the_client(self):
        self.check_named(["--trusted-proxy", "127.0.0.1"], [("Forwarded", 'for="[2001:db8::9]:4711";proto=https')],
                         "[2001:db8::9]:4711")

    def test_origin_refusal_names_the_forwarded_client(self):
        self.check_named(["--trusted-proxy", "127.0.0.1", "--allowed-origin", "https://app.example"],
                         [("X-Forwarded-For", "203.0.113.9")], "203.0.113.9", origin="https://evil.example")


if __name__ == "__main__":
    run_tap(budget=115)
