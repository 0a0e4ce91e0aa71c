#!/usr/bin/python3
"""The opening handshake on the wire (RFC 6455 §4.2), with raw sockets.

Each bad request gets its HTTP status, Connection: close, a short text/plain body and
then EOF; a good one gets 101 with the right Sec-WebSocket-Accept; a subprotocol is
chosen from the client's list; frames sent in the same write as the request are
processed; the header limit answers 431; IPv6 listening works.
"""

import base64
import os
import socket
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from wsclient import (OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, RawClient, Server,  # noqa: E402
                      ServerTestCase, accept_key, add_cases, build_request, check_accept_response,
                      encode_frame, close_payload, run_tap, server_binary)
import unittest  # noqa: E402


class ErrorChecks:
    def bad_request(self, req, status):
        """Sends req and checks an error response: status, Connection: close, a short
        text/plain body, then the server closes the connection."""
        c = self.connect()
        c.send(req)
        r = c.read_http_response()
        self.assertEqual(r.status, status, f"response {r.raw!r}")
        self.assertEqual(r.version, "HTTP/1.1", r.raw)
        conn = [t.strip().lower() for t in (r.header("Connection") or "").split(",")]
        self.assertIn("close", conn, f"error response without Connection: close: {r.raw!r}")
        ctype = (r.header("Content-Type") or "").lower()
        self.assertTrue(ctype.startswith("text/plain"), f"Content-Type {ctype!r}: {r.raw!r}")
        rest = c.read_until_eof()
        if r.header("Content-Length") is not None:
            self.assertEqual(rest, b"", f"bytes after the body of {status}: {rest[:100]!r}")
        body = r.body + rest
        self.assertTrue(0 < len(body) <= 512, f"body should be short and non-empty: {body!r}")
        self.assertIsNone(r.header("Sec-WebSocket-Accept"), f"error response with an Accept: {r.raw!r}")
        return r


class Handshake(ErrorChecks, ServerTestCase):
    server_args = ()

    # -- good handshakes ---------------------------------------------------------------
    def test_rfc_sample_key_accept(self):
        # RFC 6455 §1.3's worked example.
        key = "dGhlIHNhbXBsZSBub25jZQ=="
        self.assertEqual(accept_key(key), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        c = self.connect()
        r = c.handshake(key=key)
        self.assertEqual(r.header("Sec-WebSocket-Accept"), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        self.assertEqual(r.status, 101)
        self.assertEqual(r.version, "HTTP/1.1")
        c.echo(OP_TEXT, b"after handshake")

    def test_random_key_accept_and_no_unasked_subprotocol(self):
        for _ in range(5):
            c = self.connect()
            r = c.handshake()  # checks Upgrade, Connection, Accept
            self.assertEqual(r.header_all("Sec-WebSocket-Protocol"), [],
                             f"subprotocol chosen though none was offered: {r.raw!r}")
            c.echo(OP_BINARY, os.urandom(32))
            c.close()

    def test_connection_header_is_a_list(self):
        c = self.connect()
        c.handshake(headers={"Connection": "keep-alive, Upgrade"})
        c.echo(OP_TEXT, b"x")

    def test_header_values_case_insensitive(self):
        c = self.connect()
        c.handshake(headers={"Upgrade": "WebSocket", "Connection": "upgrade"})
        c.echo(OP_TEXT, b"x")

    def test_header_names_case_insensitive(self):
        key = os.urandom(16)
        key = base64.b64encode(key).decode()
        req = ("GET /echo HTTP/1.1\r\nhost: 127.0.0.1\r\nUPGRADE: websocket\r\nconnection: Upgrade\r\n"
               f"sec-websocket-key: {key}\r\nSEC-WEBSOCKET-VERSION: 13\r\n\r\n").encode()
        c = self.connect()
        c.send(req)
        r = c.read_http_response()
        check_accept_response(r, key)
        c.echo(OP_TEXT, b"x")

    def test_extra_headers_and_offers_are_tolerated(self):
        # A browser-like request with Origin, User-Agent and an extension offer.
        c = self.connect()
        r = c.handshake(headers={"Origin": "http://127.0.0.1", "User-Agent": "t/1",
                                 "Sec-WebSocket-Extensions": "x-unknown-extension",
                                 "Pragma": "no-cache"})
        self.assertEqual(r.header_all("Sec-WebSocket-Extensions"), [],
                         f"server accepted an unknown extension: {r.raw!r}")
        c.echo(OP_TEXT, b"x")

    # -- frames in the same write as the request --------------------------------------
    def test_frames_in_same_write_as_request(self):
        c = self.connect()
        frames = (encode_frame(OP_TEXT, b"hello") + encode_frame(OP_BINARY, b"\x00\xff\x01")
                  + encode_frame(OP_PING, b"p1"))
        c.handshake(extra=frames)
        self.assertEqual(c.recv_message(), (OP_TEXT, b"hello"))
        self.assertEqual(c.recv_message(), (OP_BINARY, b"\x00\xff\x01"))
        f = c.recv_frame()
        self.assertEqual((f.opcode, f.payload), (OP_PONG, b"p1"))
        c.echo(OP_TEXT, b"still open")

    def test_frames_and_close_in_same_write_as_request(self):
        c = self.connect()
        frames = encode_frame(OP_TEXT, b"one") + encode_frame(OP_CLOSE, close_payload(1000, "bye"))
        c.handshake(extra=frames)
        self.assertEqual(c.recv_message(), (OP_TEXT, b"one"))
        code, _ = c.recv_close()
        self.assertEqual(code, 1000)
        c.expect_eof()

    def test_large_frame_in_same_write_as_request(self):
        c = self.connect()
        payload = os.urandom(200000)
        c.handshake(extra=encode_frame(OP_BINARY, payload))
        self.assertEqual(c.recv_message(), (OP_BINARY, payload))

    def test_request_sent_one_byte_at_a_time(self):
        c = self.connect()
        c.key = base64.b64encode(os.urandom(16)).decode()
        c.send_slowly(build_request(key=c.key) + encode_frame(OP_TEXT, b"slow"), chunk=1, pause=0.0005)
        r = c.read_http_response()
        check_accept_response(r, c.key)
        self.assertEqual(c.recv_message(), (OP_TEXT, b"slow"))

    def test_request_split_mid_header_with_frame_in_second_write(self):
        c = self.connect()
        c.key = base64.b64encode(os.urandom(16)).decode()
        data = build_request(key=c.key) + encode_frame(OP_TEXT, b"split")
        cut = data.index(b"Sec-WebSocket-Key") + 5
        c.send(data[:cut])
        time.sleep(0.05)
        c.send(data[cut:])
        check_accept_response(c.read_http_response(), c.key)
        self.assertEqual(c.recv_message(), (OP_TEXT, b"split"))

    def test_header_just_under_default_limit_is_accepted(self):
        # 8192 is the default limit; a 7000-byte request head must pass.
        base = build_request(headers={"X-Pad": ""})
        pad = "a" * (7000 - len(base))
        c = self.connect()
        r = c.handshake(headers={"X-Pad": pad})
        self.assertEqual(r.status, 101)
        c.echo(OP_TEXT, b"x")

    # -- error statuses -----------------------------------------------------------------
    def test_header_over_default_limit_431(self):
        self.bad_request(build_request(headers={"X-Pad": "a" * 9000}), 431)

    def test_many_headers_over_default_limit_431(self):
        lines = [f"X-H{i}: {'v' * 60}" for i in range(200)]  # ~14 KB
        self.bad_request(build_request(extra_lines=lines), 431)

    def test_method_post_405(self):
        self.bad_request(build_request(method="POST"), 405)

    def test_method_put_405(self):
        self.bad_request(build_request(method="PUT"), 405)

    def test_405_has_allow_header(self):
        # RFC 9110 §15.5.6: a 405 response MUST carry Allow.
        c = self.connect()
        r = c.request(build_request(method="POST"))
        self.assertEqual(r.status, 405, r.raw)
        allow = r.header("Allow")
        self.assertIsNotNone(allow, f"405 without Allow: {r.raw!r}")
        self.assertIn("GET", [t.strip() for t in allow.split(",")], r.raw)

    def test_unknown_path_404(self):
        self.bad_request(build_request(path="/nope"), 404)

    def test_root_path_404(self):
        self.bad_request(build_request(path="/"), 404)

    def test_path_prefix_404(self):
        self.bad_request(build_request(path="/echoes"), 404)

    def test_missing_upgrade_426(self):
        self.bad_request(build_request(omit=("Upgrade",)), 426)

    def test_plain_http_get_426(self):
        req = b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        self.bad_request(req, 426)

    def test_bad_upgrade_value_400(self):
        self.bad_request(build_request(headers={"Upgrade": "h2c"}), 400)

    def test_connection_without_upgrade_token_400(self):
        self.bad_request(build_request(headers={"Connection": "keep-alive"}), 400)

    def test_connection_upgrade_as_substring_only_400(self):
        self.bad_request(build_request(headers={"Connection": "keep-alive, Upgraded"}), 400)

    def test_missing_connection_400(self):
        self.bad_request(build_request(omit=("Connection",)), 400)

    def test_missing_key_400(self):
        self.bad_request(build_request(omit=("Sec-WebSocket-Key",)), 400)

    def test_empty_key_400(self):
        self.bad_request(build_request(key=""), 400)

    def test_no_host_400(self):
        self.bad_request(build_request(omit=("Host",)), 400)

    def test_http_1_0_400(self):
        self.bad_request(build_request(version="HTTP/1.0"), 400)

    def test_garbage_request_line_400(self):
        self.bad_request(b"THIS IS NOT HTTP\r\n\r\n", 400)

    def test_error_response_then_socket_closed_even_with_trailing_bytes(self):
        # A rejected request followed by frame bytes: answer 400, ignore the rest, close.
        self.bad_request(build_request(omit=("Host",)) + encode_frame(OP_TEXT, b"ignored"), 400)


def _bad_version(self, version):
    if version is None:
        req = build_request(omit=("Sec-WebSocket-Version",))
    else:
        req = build_request(headers={"Sec-WebSocket-Version": version})
    r = self.bad_request(req, 426)
    vals = ",".join(r.header_all("Sec-WebSocket-Version"))
    self.assertIn("13", [v.strip() for v in vals.split(",")],
                  f"426 must name the supported version 13: {r.raw!r}")


add_cases(Handshake, "version_426", [
    ("12", "12"), ("8", "8"), ("14", "14"), ("empty", ""), ("missing", None), ("13_and_text", "13x"),
], _bad_version)


def _bad_key(self, key):
    self.bad_request(build_request(key=key), 400)


add_cases(Handshake, "bad_key_400", [
    ("short", "abc"),
    ("15_bytes", base64.b64encode(b"\x01" * 15).decode()),
    ("17_bytes", base64.b64encode(b"\x01" * 17).decode()),
    ("not_base64", "!!!!!!!!!!!!!!!!!!!!!!=="),
    ("32_bytes", base64.b64encode(os.urandom(32)).decode()),
], _bad_key)


class HeaderLimit(ErrorChecks, ServerTestCase):
    server_args = ("--max-header", "1024")

    def test_under_limit_accepted(self):
        base = build_request(headers={"X-Pad": ""})
        c = self.connect()
        c.handshake(headers={"X-Pad": "b" * (900 - len(base))})
        c.echo(OP_TEXT, b"ok")

    def test_over_limit_431(self):
        self.bad_request(build_request(headers={"X-Pad": "b" * 1200}), 431)

    def test_over_limit_sent_slowly_431(self):
        # The limit holds when the head arrives in many reads.
        c = self.connect()
        c.send_slowly(build_request(headers={"X-Pad": "b" * 1500}), chunk=200, pause=0.01)
        r = c.read_http_response()
        self.assertEqual(r.status, 431, r.raw)
        c.read_until_eof()


class Subprotocols(ServerTestCase):
    server_args = ("--subprotocol", "chat", "--subprotocol", "superchat")

    def chosen(self, *offers):
        c = self.connect()
        hdrs = [("Sec-WebSocket-Protocol", o) for o in offers]
        r = c.handshake(headers=hdrs)
        vals = r.header_all("Sec-WebSocket-Protocol")
        self.assertLessEqual(len(vals), 1, f"more than one Sec-WebSocket-Protocol: {r.raw!r}")
        c.echo(OP_TEXT, b"sp")
        return vals[0] if vals else None

    def test_single_supported(self):
        self.assertEqual(self.chosen("superchat"), "superchat")

    def test_first_unsupported_second_supported(self):
        self.assertEqual(self.chosen("foo, chat"), "chat")

    def test_one_of_several(self):
        # §4.2.2: the server picks one of the client's values it supports.
        self.assertIn(self.chosen("foo, superchat, chat"), ("superchat", "chat"))

    def test_across_two_header_lines(self):
        self.assertEqual(self.chosen("foo", "chat"), "chat")

    def test_unsupported_only_gets_none(self):
        self.assertIsNone(self.chosen("foo, bar"))

    def test_no_offer_gets_none(self):
        self.assertIsNone(self.chosen())

    def test_no_partial_token_match(self):
        self.assertIsNone(self.chosen("cha, superchatx"))

    def test_websockets_client_gets_subprotocol(self):
        import asyncio
        import websockets

        async def go():
            async with websockets.connect(self.server.uri(), subprotocols=["nope", "superchat"],
                                          compression=None, open_timeout=5, close_timeout=5) as ws:
                self.assertEqual(ws.subprotocol, "superchat")
                await ws.send("hi")
                self.assertEqual(await asyncio.wait_for(ws.recv(), 5), "hi")

        asyncio.run(asyncio.wait_for(go(), 15))


def ipv6_loopback_available():
    if not socket.has_ipv6:
        return False
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        try:
            s.bind(("::1", 0))
        finally:
            s.close()
        return True
    except OSError:
        return False


class IPv6(unittest.TestCase):
    def test_listen_on_ipv6_loopback(self):
        if not ipv6_loopback_available():
            self.skipTest("::1 is not available")
        srv = Server(host="::1")
        srv.start()
        try:
            self.assertEqual(srv.listen_host, "[::1]", srv.log_tail())
            with RawClient("::1", srv.port) as c:
                c.handshake(host=f"[::1]:{srv.port}")
                c.echo(OP_TEXT, "über IPv6".encode())
                c.echo(OP_BINARY, os.urandom(70000))
                c.send_close(1000)
                c.expect_close(1000, reply=False)
            rc = srv.stop()
            self.assertEqual(rc, 0, srv.log_tail())
        finally:
            srv.kill()
            srv.remove_log()


class CommandLine(unittest.TestCase):
    def assert_binary_runs(self):
        # So that "exits non-zero" below cannot pass just because the binary is broken.
        p = subprocess.run([server_binary(), "--help"], stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=10)
        self.assertEqual(p.returncode, 0, f"--help failed: {p.stderr[-300:]!r}")

    def test_help_lists_every_option(self):
        p = subprocess.run([server_binary(), "--help"], stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=10)
        self.assertEqual(p.returncode, 0, p.stderr[-500:])
        text = (p.stdout + p.stderr).decode("utf-8", "replace")
        for opt in ("--listen", "--max-message", "--max-header", "--handshake-timeout",
                    "--close-timeout", "--shutdown-timeout", "--subprotocol", "--log-level",
                    "--help"):
            self.assertIn(opt, text, f"--help does not mention {opt}")

    def test_unknown_option_fails(self):
        self.assert_binary_runs()
        p = subprocess.run([server_binary(), "--listen", "127.0.0.1:0", "--no-such-option"],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=5)
        self.assertNotEqual(p.returncode, 0, "an unknown option must be an error")
        self.assertNotIn(b"listening on", p.stdout + p.stderr)

    def test_invalid_values_fail(self):
        self.assert_binary_runs()
        for args in (["--max-message", "abc"], ["--listen", "127.0.0.1:99999"],
                     ["--log-level", "loud"]):
            argv = [server_binary(), "--listen", "127.0.0.1:0"] + args
            try:
                p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=5)
            except subprocess.TimeoutExpired:
                self.fail(f"{args} was accepted (the server kept running)")
            self.assertNotEqual(p.returncode, 0, f"{args} must be an error")

    def test_log_level_debug_runs(self):
        srv = Server(log_level="debug")
        srv.start()
        try:
            with srv.connect() as c:
                c.handshake()
                c.echo(OP_TEXT, b"debug")
            self.assertEqual(srv.stop(), 0, srv.log_tail())
        finally:
            srv.kill()
            srv.remove_log()


if __name__ == "__main__":
    run_tap()
