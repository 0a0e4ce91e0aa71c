#!/usr/bin/python3
"""The PROXY protocol (v1 and v2) on --listen-proxy, with a real HAProxy and by hand.

Through HAProxy (Debian's haproxy, mode tcp, send-proxy-v2, send-proxy and send-proxy-v2
with a CRC32C TLV): /healthz, a WebSocket echo (raw client and python3-websockets), and
the daemon's log line for a refused request naming the client address HAProxy saw
(127.0.0.1 and the client socket's own port). Skipped only if haproxy is absent.

By hand, straight to the PROXY port: v2 TCP4, TCP6, LOCAL, UNSPEC, with TLVs and a CRC32C;
v1 TCP4, TCP6, UNKNOWN; headers split over several writes with pauses; a header and an
upgrade with a frame in one write. A missing header, garbage, a bad version, a short
address block, an overlong v1 line, a bad CRC: 400 and close, and the daemon still
serves on both its ports.

The daemon is stopped with SIGTERM expecting exit status 0 (which also catches sanitizer
reports); HAProxy is stopped at the end of its tests.
"""

import asyncio
import ipaddress
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import wsclient  # noqa: E402
from httputil import Daemon, HttpCase, free_port, http_request, read_response  # noqa: E402
from wsclient import OP_BINARY, OP_TEXT, RawClient, _logs_to_remove, add_cases, run_tap, wait_for  # noqa: E402

HAPROXY = shutil.which("haproxy", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283  # the check value of CRC-32C


def v2(cmd=1, fam=0x11, src=None, dst=None, sport=0, dport=0, tlvs=b"", crc=None, addr=None,
       version=2):
    """A PROXY v2 header. cmd 0 LOCAL, 1 PROXY; fam 0x11 TCP4, 0x21 TCP6, 0x00 UNSPEC.
    crc: None for no CRC32C TLV, True for a correct one, an int for that value. addr:
    raw address block bytes instead of src/dst/ports."""
    if addr is None:
        if fam == 0x11:
            addr = (ipaddress.IPv4Address(src).packed + ipaddress.IPv4Address(dst).packed
                    + struct.pack("!HH", sport, dport))
        elif fam == 0x21:
            addr = (ipaddress.IPv6Address(src).packed + ipaddress.IPv6Address(dst).packed
                    + struct.pack("!HH", sport, dport))
        else:
            addr = b""
    body = addr + tlvs
    if crc is not None:
        body += b"\x03\x00\x04" + b"\x00\x00\x00\x00"
    head = V2_SIG + bytes([(version << 4) | cmd, fam]) + struct.pack("!H", len(body))
    out = head + body
    if crc is not None:
        value = crc32c(out) if crc is True else crc
        out = out[:-4] + struct.pack("!I", value)
    return out


def tlv(t, value):
    return bytes([t]) + struct.pack("!H", len(value)) + value


GOOD_V2 = v2(src="192.0.2.7", dst="127.0.0.1", sport=40000, dport=443)
GOOD_V2_WHO = "192.0.2.7:40000"


class ProxyCase(HttpCase):
    def proxy_client(self, srv, timeout=wsclient.IO_TIMEOUT):
        return self.client(srv, port=srv.proxy_port, timeout=timeout)

    def assert_named(self, srv, who, status=404, path="/nope"):
        """The log line for a refused request names who."""
        m = self.wait_log(srv, rf"request from {re.escape(who)} refused: {status}\b")
        self.assertIsNotNone(m, f"no 'request from {who} refused: {status}' line:\n" + srv.log_tail(6))

    def healthz_then_refused(self, c):
        """After a header: /healthz (kept alive), then a 404 that closes."""
        c.send(http_request("GET", "/healthz") + http_request("GET", "/nope"))
        self.assert_healthz(read_response(c))
        r = read_response(c)
        self.assertEqual(r.status, 404, r.raw)
        self.assert_eof(c)

    def assert_proxy_serves(self, srv):
        with RawClient(srv.host, srv.proxy_port, timeout=10) as c:
            c.send(GOOD_V2 + http_request("GET", "/healthz", headers=[("Connection", "close")]))
            self.assert_healthz(read_response(c), closes=True)
        with RawClient(srv.host, srv.proxy_port, timeout=10) as c:
            c.send(v2(cmd=0, fam=0))
            c.handshake()
            c.echo(OP_TEXT, b"via PROXY")


# ========================================================================================
# 1. hand-built headers straight to the PROXY port


class ByHand(ProxyCase):
    def start(self, *args):
        return self.start_server(*args, proxy=["127.0.0.1:0"])

    def check_named(self, case):
        header, who = case
        srv = self.start()
        c = self.proxy_client(srv)
        c.send(header)
        self.healthz_then_refused(c)
        self.assert_named(srv, who if who else f"127.0.0.1:{c.sock.getsockname()[1]}")
        self.assert_proxy_serves(srv)
        self.stop_ok(srv)

    def check_refused(self, data):
        srv = self.start()
        c = self.proxy_client(srv)
        c.send(data)
        try:
            rest = c.read_until_eof(timeout=10)
        except socket.timeout:
            self.fail(f"{data[:40]!r}: no answer and still open after 10 s")
        self.assertTrue(rest.startswith(b"HTTP/1.1 400 "), rest[:200])
        self.assertIn(b"\r\nConnection: close\r\n", rest)
        self.assertIn(b"PROXY", rest.split(b"\r\n\r\n", 1)[1], rest)
        self.assertEqual(rest.count(b"HTTP/1.1 "), 1, rest)
        self.assertIsNotNone(self.wait_log(srv, r"refused: 400 "), srv.log_tail())
        self.assert_serves(srv)
        self.assert_proxy_serves(srv)
        self.stop_ok(srv)

    def test_header_split_over_several_writes_with_pauses(self):
        srv = self.start()
        c = self.proxy_client(srv)
        h = v2(src="192.0.2.8", dst="127.0.0.1", sport=40100, dport=443,
               tlvs=tlv(0x04, b"\x00" * 9), crc=True)
        for piece in (h[:1], h[1:5], h[5:13], h[13:16], h[16:30], h[30:]):
            self.assertTrue(c.send(piece))
            time.sleep(0.15)
        req = http_request("GET", "/healthz") + http_request("GET", "/nope")
        c.send(req[:10])
        time.sleep(0.15)
        c.send(req[10:])
        self.assert_healthz(read_response(c))
        self.assertEqual(read_response(c).status, 404)
        self.assert_eof(c)
        self.assert_named(srv, "192.0.2.8:40100")
        self.stop_ok(srv)

    def test_v1_line_byte_by_byte(self):
        srv = self.start()
        c = self.proxy_client(srv)
        self.assertTrue(c.send_slowly(b"PROXY TCP4 198.51.100.4 127.0.0.1 40200 80\r\n", chunk=1, pause=0.01))
        time.sleep(0.1)
        self.healthz_then_refused(c)
        self.assert_named(srv, "198.51.100.4:40200")
        self.stop_ok(srv)

    def test_header_alone_then_request_later(self):
        srv = self.start()
        c = self.proxy_client(srv)
        c.send(GOOD_V2)
        time.sleep(0.3)
        self.healthz_then_refused(c)
        self.assert_named(srv, GOOD_V2_WHO)
        self.stop_ok(srv)

    def test_header_upgrade_and_frame_in_one_write(self):
        srv = self.start()
        c = self.proxy_client(srv)
        key = wsclient.new_key()
        c.send(GOOD_V2 + wsclient.build_request(key=key)
               + wsclient.encode_frame(OP_TEXT, b"first, in the same write"))
        c.key = key
        r = c.read_http_response()
        wsclient.check_accept_response(r, key)
        op, data = c.recv_message()
        self.assertEqual((op, data), (OP_TEXT, b"first, in the same write"))
        c.echo(OP_BINARY, os.urandom(70000))
        c.send_close(1000)
        c.expect_close(1000, reply=False)
        self.stop_ok(srv)

    def test_trusted_proxy_does_not_override_the_proxy_header(self):
        srv = self.start("--trusted-proxy", "127.0.0.1", "--trusted-proxy", "192.0.2.0/24")
        c = self.proxy_client(srv)
        c.send(GOOD_V2 + http_request("GET", "/nope", headers=[("X-Forwarded-For", "203.0.113.9")]))
        self.assertEqual(read_response(c).status, 404)
        self.assert_named(srv, GOOD_V2_WHO)
        self.assertNotIn("203.0.113.9", srv.log())
        self.stop_ok(srv)

    def test_trusted_proxy_set_request_without_xff_keeps_the_proxy_address(self):
        # Any --trusted-proxy configured: a request with no forwarding header at all must
        # still be named by its PROXY header, not by the load balancer's socket address.
        srv = self.start("--trusted-proxy", "10.0.0.0/8")
        c = self.proxy_client(srv)
        c.send(GOOD_V2 + http_request("GET", "/nope"))
        self.assertEqual(read_response(c).status, 404)
        self.assert_named(srv, GOOD_V2_WHO)
        self.stop_ok(srv)

    def test_v1_header_split_with_a_tiny_max_message(self):
        # The header is gathered within its own limit, whatever --max-message says.
        srv = self.start("--max-message", "16")
        c = self.proxy_client(srv)
        self.assertTrue(c.send(b"PROXY TCP4 203.0.113.7"))
        time.sleep(0.2)
        self.assertTrue(c.send(b" 10.0.0.1 5123 80"))
        time.sleep(0.2)
        c.send(b"\r\n" + http_request("GET", "/healthz") + http_request("GET", "/nope"))
        self.assert_healthz(read_response(c))
        self.assertEqual(read_response(c).status, 404)
        self.assert_eof(c)
        self.assert_named(srv, "203.0.113.7:5123")
        self.assert_proxy_serves(srv)
        self.stop_ok(srv)

    def test_v2_length_0xffff_in_pieces_with_a_tiny_max_message(self):
        srv = self.start("--max-message", "16")
        c = self.proxy_client(srv)
        h = V2_SIG + b"\x21\x11\xff\xff" + bytes(100)  # declares 65535 bytes of addresses and TLVs
        self.assertTrue(c.send(h[:10]))
        time.sleep(0.2)
        c.send(h[10:])
        try:
            rest = c.read_until_eof(timeout=10)
        except socket.timeout:
            self.fail("no answer and still open after 10 s")
        self.assertTrue(rest.startswith(b"HTTP/1.1 400 "), rest[:200])
        self.assertIsNotNone(self.wait_log(srv, r"refused: 400 "), srv.log_tail())
        with RawClient(srv.host, srv.port, timeout=10) as p:
            self.assert_healthz(self.get(p))
        self.assert_proxy_serves(srv)
        self.stop_ok(srv)

    def test_client_leaves_in_the_middle_of_a_header(self):
        srv = self.start()
        for cut in (1, 8, 15, 20):
            with RawClient(srv.host, srv.proxy_port) as c:
                c.send(GOOD_V2[:cut])
        with RawClient(srv.host, srv.proxy_port) as c:
            c.send(b"PROXY TCP4 198.51.100.4 127")
        self.assert_serves(srv)
        self.assert_proxy_serves(srv)
        self.stop_ok(srv)


add_cases(ByHand, "named", [
    ("v2_tcp4", (GOOD_V2, GOOD_V2_WHO)),
    ("v2_tcp6", (v2(fam=0x21, src="2001:db8::7", dst="::1", sport=40001, dport=443), "[2001:db8::7]:40001")),
    ("v2_local_is_the_peer", (v2(cmd=0, fam=0x00), None)),
    ("v2_local_with_tcp4_block_is_the_peer",
     (v2(cmd=0, fam=0x11, src="192.0.2.9", dst="127.0.0.1", sport=1, dport=2), None)),
    ("v2_unspec_is_the_peer", (v2(cmd=1, fam=0x00), None)),
    ("v2_tcp4_with_tlvs", (v2(src="192.0.2.10", dst="127.0.0.1", sport=40010, dport=443,
                               tlvs=tlv(0x01, b"http/1.1") + tlv(0x04, b"") + tlv(0xE0, b"custom")),
                            "192.0.2.10:40010")),
    ("v2_tcp4_with_good_crc32c", (v2(src="192.0.2.11", dst="127.0.0.1", sport=40011, dport=443, crc=True),
                                  "192.0.2.11:40011")),
    ("v1_tcp4", (b"PROXY TCP4 198.51.100.3 127.0.0.1 40002 80\r\n", "198.51.100.3:40002")),
    ("v1_tcp6", (b"PROXY TCP6 2001:db8::3 ::1 40003 80\r\n", "[2001:db8::3]:40003")),
    ("v1_unknown_is_the_peer", (b"PROXY UNKNOWN\r\n", None)),
    ("v1_unknown_with_addresses_is_the_peer",
     (b"PROXY UNKNOWN 198.51.100.3 127.0.0.1 40002 80\r\n", None)),
], ByHand.check_named)

add_cases(ByHand, "400", [
    ("missing_header", http_request("GET", "/healthz")),
    ("missing_header_upgrade", wsclient.build_request()),
    ("garbage", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(40))),
    ("random_bytes", b"\x00" + os.urandom(200)),
    ("v2_version_3", v2(src="192.0.2.7", dst="127.0.0.1", sport=1, dport=2, version=3)),
    ("v2_command_2", v2(cmd=2, src="192.0.2.7", dst="127.0.0.1", sport=1, dport=2)),
    ("v2_tcp4_block_too_short", v2(fam=0x11, addr=b"\xc0\x00\x02\x07")),
    ("v2_tcp6_with_tcp4_block", v2(fam=0x21, addr=bytes(12))),
    ("v2_tlv_overruns", v2(src="192.0.2.7", dst="127.0.0.1", sport=1, dport=2, tlvs=b"\x04\x00\x10ab")),
    ("v2_bad_crc32c", v2(src="192.0.2.7", dst="127.0.0.1", sport=1, dport=2, crc=0x12345678)),
    ("v2_length_over_4096", V2_SIG + b"\x21\x11\xff\xff" + bytes(64)),
    ("v1_line_too_long", b"PROXY TCP4 " + b"1" * 120),
    ("v1_bad_address", b"PROXY TCP4 999.0.0.1 127.0.0.1 40002 80\r\n"),
    ("v1_bad_port", b"PROXY TCP4 198.51.100.3 127.0.0.1 70000 80\r\n"),
    ("v1_tcp6_with_ipv4", b"PROXY TCP6 198.51.100.3 127.0.0.1 40002 80\r\n"),
    ("v1_lf_only", b"PROXY TCP4 198.51.100.3 127.0.0.1 40002 80\n" + http_request("GET", "/healthz")),
    ("lowercase_proxy", b"proxy TCP4 198.51.100.3 127.0.0.1 40002 80\r\n"),
], ByHand.check_refused)


# ========================================================================================
# 2. a real HAProxy in front


HAPROXY_CFG = """\
global
    maxconn 200

defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s

frontend fe_v2
    bind 127.0.0.1:{fe_v2}
    default_backend be_v2

frontend fe_v1
    bind 127.0.0.1:{fe_v1}
    default_backend be_v1

frontend fe_crc
    bind 127.0.0.1:{fe_crc}
    default_backend be_crc

backend be_v2
    server wsr 127.0.0.1:{proxy} send-proxy-v2

backend be_v1
    server wsr 127.0.0.1:{proxy} send-proxy

backend be_crc
    server wsr 127.0.0.1:{proxy} send-proxy-v2 proxy-v2-options crc32c
"""


@unittest.skipUnless(HAPROXY, "haproxy is not installed")
class ThroughHAProxy(ProxyCase):
    daemon = None
    haproxy = None
    fronts = {}

    @classmethod
    def setUpClass(cls):
        cls.daemon = Daemon(proxy=["127.0.0.1:0"])
        _logs_to_remove.append(cls.daemon)
        cls.daemon.start()
        cls.tmp = tempfile.TemporaryDirectory(prefix="wsr-haproxy-")
        cls.fronts = {"v2": free_port(), "v1": free_port(), "crc": free_port()}
        cfg = os.path.join(cls.tmp.name, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write(HAPROXY_CFG.format(fe_v2=cls.fronts["v2"], fe_v1=cls.fronts["v1"],
                                       fe_crc=cls.fronts["crc"], proxy=cls.daemon.proxy_port))
        cls.hlog = open(os.path.join(cls.tmp.name, "haproxy.log"), "w+b")
        cls.haproxy = subprocess.Popen([HAPROXY, "-f", cfg, "-db"], stdin=subprocess.DEVNULL,
                                       stdout=cls.hlog, stderr=subprocess.STDOUT,
                                       preexec_fn=wsclient._die_with_parent)

        def up():
            if cls.haproxy.poll() is not None:
                return True
            for port in cls.fronts.values():
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                except OSError:
                    return False
            return True
        if not wait_for(up, 10, step=0.05) or cls.haproxy.poll() is not None:
            out = cls.haproxy_log()
            cls._stop_haproxy()
            cls.daemon.kill()
            raise RuntimeError("haproxy did not start:\n" + out)

    @classmethod
    def haproxy_log(cls):
        cls.hlog.flush()
        cls.hlog.seek(0)
        return cls.hlog.read().decode("utf-8", "replace")

    @classmethod
    def _stop_haproxy(cls):
        p = cls.haproxy
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    @classmethod
    def tearDownClass(cls):
        cls._stop_haproxy()
        cls.hlog.close()
        cls.tmp.cleanup()
        rc = cls.daemon.stop(timeout=10)
        if rc != 0:
            raise AssertionError(f"daemon exited with {rc} on SIGTERM:\n" + cls.daemon.log_tail(15))

    def setUp(self):
        super().setUp()
        self.server = type(self).daemon
        self.assertIsNone(self.haproxy.poll(), "haproxy died:\n" + self.haproxy_log())
        self.assertTrue(self.server.alive(), "the daemon died:\n" + self.server.log_tail())

    def front(self, which):
        c = RawClient("127.0.0.1", self.fronts[which])
        self._clients.append(c)
        self.addCleanup(c.close)
        return c

    def check_healthz(self, which):
        c = self.front(which)
        for _ in range(5):
            self.assert_healthz(self.get(c))
        c.send(http_request("GET", "/healthz", headers=[("Connection", "close")]))
        self.assert_healthz(read_response(c), closes=True)
        self.assert_eof(c)

    def check_echo(self, which):
        c = self.front(which)
        c.handshake()
        c.echo(OP_TEXT, "über HAProxy".encode())
        c.echo(OP_BINARY, os.urandom(200000))
        c.send_close(1000)
        c.expect_close(1000, reply=False)

    def check_client_address(self, which):
        c = self.front(which)
        c.send(http_request("GET", "/nope"))
        self.assertEqual(read_response(c).status, 404)
        self.assert_eof(c)
        # HAProxy saw our socket: 127.0.0.1 and our local port (not HAProxy's own).
        self.assert_named(self.server, f"127.0.0.1:{c.sock.getsockname()[1]}")

    def test_websockets_library_echo_via_v2(self):
        import websockets

        async def run():
            uri = f"ws://127.0.0.1:{self.fronts['v2']}/echo"
            async with websockets.connect(uri, open_timeout=10, close_timeout=10) as ws:
                for msg in ("hello", b"\x00\x01binary", "x" * 100000):
                    await ws.send(msg)
                    got = await asyncio.wait_for(ws.recv(), 10)
                    self.assertEqual(got, msg)
            return ws.close_code
        code = asyncio.run(run())
        self.assertEqual(code, 1000)


for _name in ("v2", "v1", "crc"):
    add_cases(ThroughHAProxy, "healthz", [(_name, _name)], ThroughHAProxy.check_healthz)
    add_cases(ThroughHAProxy, "echo", [(_name, _name)], ThroughHAProxy.check_echo)
    add_cases(ThroughHAProxy, "log_names_the_client", [(_name, _name)], ThroughHAProxy.check_client_address)


if __name__ == "__main__":
    run_tap(budget=115)
