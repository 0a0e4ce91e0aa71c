#!/usr/bin/python3
"""RFC 6455 framing rules on the wire, with raw sockets.

Every protocol violation gets a close frame with the right code (1002, 1007, 1009) and
then EOF; close frames are validated and answered; UTF-8 is checked across fragments and
fails fast; pings are answered; timeouts cut silent peers; SIGTERM/SIGINT close every
connection with 1001 and the process exits 0.
"""

import os
import signal
import socket
import struct
import sys
import time
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from wsclient import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT,  # noqa: E402
                      Server, ServerTestCase, add_cases, build_request, close_payload, encode_frame,
                      mask_bytes, run_tap)

MiB = 1 << 20


def header_64(opcode, length, fin=True, key=b"\x01\x02\x03\x04"):
    """A masked frame header with a 64-bit length field holding any value."""
    return struct.pack("!BBQ", (0x80 if fin else 0) | opcode, 0x80 | 127, length) + key


class Base(ServerTestCase):
    def violation(self, wire, code, reply=True):
        """Sends wire after the handshake; expects a close with code, then EOF."""
        c = self.ws()
        c.send(wire)
        return c.expect_close(code, reply=reply)


# ========================================================================================
# 1002 protocol errors, 1007 invalid UTF-8, close frames (default limits)


class Violations(Base):
    # A short close timeout so a server that waits for our close reply after failing the
    # connection (which it may not parse, §7.1.7) still closes well within IO_TIMEOUT.
    server_args = ("--close-timeout", "1500")

    def test_messages_before_violation_are_echoed_first(self):
        c = self.ws()
        c.send(encode_frame(OP_TEXT, b"one") + encode_frame(OP_BINARY, b"two")
               + encode_frame(OP_PING, b"p") + encode_frame(0x3, b"bad"))
        # The pong may come before or after the echoes; the echoes keep their order and
        # everything comes before the close.
        got, pongs = [], []
        while len(got) < 2 or not pongs:
            f = c.recv_frame()
            if f.opcode == OP_PONG:
                pongs.append(f.payload)
            else:
                self.assertTrue(f.fin and f.opcode in (OP_TEXT, OP_BINARY), f"unexpected {f!r}")
                got.append((f.opcode, f.payload))
        self.assertEqual(got, [(OP_TEXT, b"one"), (OP_BINARY, b"two")])
        self.assertEqual(pongs, [b"p"])
        c.expect_close(1002)

    def test_nothing_processed_after_violation(self):
        c = self.ws()
        c.send(encode_frame(OP_TEXT, b"before") + encode_frame(OP_TEXT, b"x", rsv=4)
               + encode_frame(OP_TEXT, b"after") + encode_frame(OP_PING, b"after"))
        self.assertEqual(c.recv_message(), (OP_TEXT, b"before"))
        c.expect_close(1002)

    def test_continuation_after_finished_message_1002(self):
        c = self.ws()
        c.send(encode_frame(OP_TEXT, b"a", fin=False) + encode_frame(OP_CONT, b"b")
               + encode_frame(OP_CONT, b"c"))
        self.assertEqual(c.recv_message(), (OP_TEXT, b"ab"))
        c.expect_close(1002)

    def test_data_after_client_close_is_ignored(self):
        c = self.ws()
        c.send(encode_frame(OP_TEXT, b"a") + encode_frame(OP_CLOSE, close_payload(1000))
               + encode_frame(OP_TEXT, b"b"))
        self.assertEqual(c.recv_message(), (OP_TEXT, b"a"))
        c.expect_close(1000, reply=False)

    def test_frame_sent_one_byte_at_a_time(self):
        c = self.ws()
        payload = os.urandom(300)
        c.send_slowly(encode_frame(OP_BINARY, payload), chunk=1, pause=0.0005)
        self.assertEqual(c.recv_message(), (OP_BINARY, payload))
        c.send_slowly(encode_frame(OP_PING, b"slow ping"), chunk=1, pause=0.0005)
        f = c.recv_frame()
        self.assertEqual((f.opcode, f.payload), (OP_PONG, b"slow ping"))

    def test_extended_length_headers_split_byte_by_byte(self):
        c = self.ws()
        for n in (126, 65535, 65536, 70000):
            payload = os.urandom(n)
            wire = encode_frame(OP_BINARY, payload)
            hlen = 2 + (2 if n < 65536 else 8) + 4
            c.send_slowly(wire[:hlen + 3], chunk=1, pause=0.0005)
            c.send(wire[hlen + 3:])
            self.assertEqual(c.recv_message(), (OP_BINARY, payload), f"{n} bytes")

    def test_over_default_max_message_1009_from_header(self):
        # 1 MiB is the default; the header alone decides, no payload is sent.
        self.violation(header_64(OP_BINARY, MiB + 1), 1009, reply=False)

    def test_at_default_max_message_echoed(self):
        c = self.ws()
        c.echo(OP_BINARY, os.urandom(MiB))

    # -- pings and pongs -----------------------------------------------------------------
    def test_ping_payloads(self):
        c = self.ws()
        for p in (b"", b"x", os.urandom(125)):
            c.send_frame(OP_PING, p)
            f = c.recv_frame()
            self.assertEqual((f.opcode, f.payload), (OP_PONG, p))

    def test_ping_between_fragments(self):
        c = self.ws()
        c.send(encode_frame(OP_TEXT, b"a", fin=False) + encode_frame(OP_PING, b"1")
               + encode_frame(OP_CONT, b"b", fin=False) + encode_frame(OP_PING, b"2")
               + encode_frame(OP_CONT, b"c", fin=True))
        pongs = []
        while True:
            f = c.recv_frame()
            if f.opcode != OP_PONG:
                break
            pongs.append(f.payload)
        # §5.5.3: a pong for every ping, or only for the most recent one.
        self.assertIn(pongs, ([b"1", b"2"], [b"2"]))
        self.assertEqual(f.opcode, OP_TEXT)
        data = f.payload
        while not f.fin:
            f = c.recv_frame()
            self.assertEqual(f.opcode, OP_CONT)
            data += f.payload
        self.assertEqual(data, b"abc")

    def test_unsolicited_pong_ignored(self):
        c = self.ws()
        c.send(encode_frame(OP_PONG, b"hb") + encode_frame(OP_TEXT, b"y")
               + encode_frame(OP_BINARY, b"1", fin=False) + encode_frame(OP_PONG, b"")
               + encode_frame(OP_CONT, b"2"))
        self.assertEqual(c.recv_message(), (OP_TEXT, b"y"))
        self.assertEqual(c.recv_message(), (OP_BINARY, b"12"))

    # -- valid UTF-8 edges ---------------------------------------------------------------
    def test_binary_is_not_utf8_checked(self):
        c = self.ws()
        c.echo(OP_BINARY, b"\xff\xfe\xc0\xaf\xed\xa0\x80")

    def test_utf8_split_across_fragments(self):
        c = self.ws()
        text = "a€😀é".encode()
        for cut in range(1, len(text)):
            c.send(encode_frame(OP_TEXT, text[:cut], fin=False) + encode_frame(OP_CONT, text[cut:]))
            self.assertEqual(c.recv_message(), (OP_TEXT, text), f"cut at {cut}")

    def test_utf8_one_byte_per_fragment(self):
        c = self.ws()
        text = "😀€é".encode()
        wire = encode_frame(OP_TEXT, text[:1], fin=False)
        for i in range(1, len(text)):
            wire += encode_frame(OP_CONT, text[i:i + 1], fin=(i == len(text) - 1))
        c.send(wire)
        self.assertEqual(c.recv_message(), (OP_TEXT, text))

    def test_empty_fragments(self):
        c = self.ws()
        c.send(encode_frame(OP_TEXT, b"", fin=False) + encode_frame(OP_CONT, b"", fin=False)
               + encode_frame(OP_CONT, b"", fin=True))
        self.assertEqual(c.recv_message(), (OP_TEXT, b""))

    # -- fail-fast UTF-8 -----------------------------------------------------------------
    def test_utf8_fail_fast_at_second_fragment(self):
        c = self.ws()
        c.send(encode_frame(OP_TEXT, b"hello", fin=False))
        c.send(encode_frame(OP_CONT, b"ok\xffok", fin=False))
        # The third fragment is never sent: 1007 must come from the second alone.
        c.expect_close(1007)

    def test_utf8_fail_fast_across_fragment_border(self):
        c = self.ws()
        # E2 starts a 3-byte sequence; 28 '(' cannot continue it.
        c.send(encode_frame(OP_TEXT, b"abc\xe2", fin=False))
        c.send(encode_frame(OP_CONT, b"\x28xyz", fin=False))
        c.expect_close(1007)

    def test_utf8_fail_fast_above_max_code_point_across_border(self):
        c = self.ws()
        c.send(encode_frame(OP_TEXT, b"abc\xf4", fin=False))
        c.send(encode_frame(OP_CONT, b"\x90", fin=False))  # F4 90.. > U+10FFFF
        c.expect_close(1007)

    def test_utf8_fail_fast_inside_one_large_frame(self):
        c = self.ws()
        total = 512 * 1024
        payload = bytearray(b"a" * total)
        payload[100000 + 50] = 0xFF
        key = os.urandom(4)
        head = struct.pack("!BBQ", 0x80 | OP_TEXT, 0x80 | 127, total) + key
        masked = mask_bytes(bytes(payload), key)
        # Send the header and the first 100000 + 100 bytes in chunks; never the rest.
        c.send(head)
        for off in range(0, 100100, 20020):
            c.send(masked[off:off + 20020])
        c.expect_close(1007, reply=False)


def _expect_1002(self, wire):
    self.violation(wire, 1002)


def _prefix_then(frame_after_fragment):
    return encode_frame(OP_TEXT, b"start", fin=False) + frame_after_fragment


add_cases(Violations, "reserved_opcode_1002",
          [(f"{op:#x}", encode_frame(op, b"x")) for op in (3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF)],
          _expect_1002)

add_cases(Violations, "1002", [
    ("rsv1_text", encode_frame(OP_TEXT, b"x", rsv=4)),
    ("rsv2_text", encode_frame(OP_TEXT, b"x", rsv=2)),
    ("rsv3_binary", encode_frame(OP_BINARY, b"x", rsv=1)),
    ("rsv1_ping", encode_frame(OP_PING, b"x", rsv=4)),
    ("rsv1_continuation", _prefix_then(encode_frame(OP_CONT, b"x", rsv=4))),
    ("unmasked_text", encode_frame(OP_TEXT, b"hello", mask=False)),
    ("unmasked_binary_empty", encode_frame(OP_BINARY, b"", mask=False)),
    ("unmasked_ping", encode_frame(OP_PING, b"p", mask=False)),
    ("unmasked_close", encode_frame(OP_CLOSE, close_payload(1000), mask=False)),
    ("ping_126_bytes", encode_frame(OP_PING, b"p" * 126)),
    ("pong_126_bytes", encode_frame(OP_PONG, b"p" * 126)),
    ("close_126_bytes", encode_frame(OP_CLOSE, close_payload(1000, "r" * 124))),
    ("fragmented_ping", encode_frame(OP_PING, b"p", fin=False)),
    ("fragmented_pong", encode_frame(OP_PONG, b"p", fin=False)),
    ("fragmented_close", encode_frame(OP_CLOSE, close_payload(1000), fin=False)),
    ("fragmented_ping_inside_message", _prefix_then(encode_frame(OP_PING, b"p", fin=False))),
    ("continuation_without_message", encode_frame(OP_CONT, b"x")),
    ("continuation_without_message_nonfinal", encode_frame(OP_CONT, b"x", fin=False)),
    ("text_inside_fragmented_text", _prefix_then(encode_frame(OP_TEXT, b"x"))),
    ("binary_inside_fragmented_text", _prefix_then(encode_frame(OP_BINARY, b"x"))),
    ("text_nonfinal_inside_fragmented_binary",
     encode_frame(OP_BINARY, b"a", fin=False) + encode_frame(OP_TEXT, b"x", fin=False)),
    ("length64_top_bit", header_64(OP_BINARY, 1 << 63)),
    ("length64_all_ones", header_64(OP_BINARY, (1 << 64) - 1)),
    ("length16_for_5_bytes", encode_frame(OP_TEXT, b"hello", length_form=16)),
    ("length16_for_125_bytes", encode_frame(OP_BINARY, b"z" * 125, length_form=16)),
    ("length64_for_100_bytes", encode_frame(OP_BINARY, b"z" * 100, length_form=64)),
    ("length64_for_65535_bytes", encode_frame(OP_BINARY, b"z" * 65535, length_form=64)),
    ("length64_for_0_bytes", encode_frame(OP_BINARY, b"", length_form=64)),
    ("close_1_byte_body", encode_frame(OP_CLOSE, b"\x03")),
], _expect_1002)

add_cases(Violations, "close_invalid_code_1002",
          [(str(code), code) for code in (0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999,
                                          5000, 65535)],
          lambda self, code: self.violation(encode_frame(OP_CLOSE, close_payload(code)), 1002))


def _close_echoed(self, code):
    c = self.ws()
    c.send_close(code, "reason")
    c.expect_close(code, reply=False)


add_cases(Violations, "close_code_echoed",
          [(str(code), code) for code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011,
                                          1012, 1013, 1014, 3000, 3999, 4000, 4999)],
          _close_echoed)


def _close_other(self, case):
    payload, expect = case
    c = self.ws()
    c.send_frame(OP_CLOSE, payload)
    c.expect_close(expect, reply=False)


add_cases(Violations, "close", [
    ("empty_gets_empty_or_1000", (b"", (None, 1000))),
    ("code_only", (struct.pack("!H", 1000), 1000)),
    ("max_reason_123_bytes", (close_payload(1000, "é" * 61 + "x"), 1000)),
    ("reason_invalid_utf8_1007", (close_payload(1000, b"bad \xff reason"), 1007)),
    ("reason_truncated_utf8_1007", (close_payload(1000, b"bad \xe2\x82"), 1007)),
    ("reason_surrogate_1007", (close_payload(1000, b"\xed\xa0\x80"), 1007)),
], _close_other)


def _close_mid_message(self, _):
    # A close frame may interleave a fragmented message; it ends the connection.
    c = self.ws()
    c.send(encode_frame(OP_TEXT, b"part", fin=False) + encode_frame(OP_CLOSE, close_payload(1000)))
    c.expect_close(1000, reply=False)


add_cases(Violations, "close", [("inside_fragmented_message", None)], _close_mid_message)


def _expect_1007(self, wire):
    self.violation(wire, 1007)


add_cases(Violations, "invalid_utf8_1007", [
    ("ff", encode_frame(OP_TEXT, b"ab\xffcd")),
    ("lone_continuation", encode_frame(OP_TEXT, b"\x80")),
    ("overlong_2", encode_frame(OP_TEXT, b"\xc0\xaf")),
    ("overlong_3", encode_frame(OP_TEXT, b"\xe0\x80\xaf")),
    ("overlong_4", encode_frame(OP_TEXT, b"\xf0\x80\x80\xaf")),
    ("surrogate", encode_frame(OP_TEXT, b"\xed\xa0\x80")),
    ("above_10ffff", encode_frame(OP_TEXT, b"\xf4\x90\x80\x80")),
    ("f5", encode_frame(OP_TEXT, b"\xf5\x80\x80\x80")),
    ("truncated_at_end", encode_frame(OP_TEXT, b"abc\xe2\x82")),
    ("truncated_at_end_of_fragments",
     encode_frame(OP_TEXT, b"abc", fin=False) + encode_frame(OP_CONT, b"\xf0\x9f\x98")),
    ("invalid_in_final_fragment",
     encode_frame(OP_TEXT, "é".encode(), fin=False) + encode_frame(OP_CONT, b"\xc3\x28")),
    ("invalid_in_large_frame", encode_frame(OP_TEXT, b"a" * 70000 + b"\xfe" + b"b" * 10)),
], _expect_1007)


def _valid_utf8_echoed(self, payload):
    c = self.ws()
    c.echo(OP_TEXT, payload)


add_cases(Violations, "valid_utf8_echoed", [
    ("u10ffff", b"\xf4\x8f\xbf\xbf"),
    ("ud7ff", b"\xed\x9f\xbf"),
    ("ue000", b"\xee\x80\x80"),
    ("ufffd_ffff", b"\xef\xbf\xbd\xef\xbf\xbf"),
    ("nul", b"a\x00b"),
    ("mixed", "κόσμε 😀 €".encode()),
], _valid_utf8_echoed)


class AbruptPeers(Base):
    """Peers that vanish at every stage must not crash or wedge the server."""

    def rst_close(self, c):
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()

    def test_abrupt_disconnects(self):
        for rst in (False, True):
            stages = []
            c = self.connect()
            stages.append(c)                                  # connected, nothing sent
            c = self.connect()
            c.send(b"GET /echo HTTP/1.1\r\nHost: x\r\n")   # mid-request
            stages.append(c)
            c = self.ws()
            c.send(encode_frame(OP_BINARY, os.urandom(5000))[:100])  # mid-frame
            stages.append(c)
            c = self.ws()
            c.send(encode_frame(OP_TEXT, b"a", fin=False))   # mid-message
            stages.append(c)
            c = self.ws()
            c.send_close(1000)                                # after our close
            stages.append(c)
            c = self.ws()
            c.send(encode_frame(OP_BINARY, os.urandom(500000)))  # echo in flight
            stages.append(c)
            c = self.ws()
            c.send_frame(0x3)                                 # server closing with 1002
            stages.append(c)
            time.sleep(0.1)
            for c in stages:
                self.rst_close(c) if rst else c.close()
        time.sleep(0.2)
        c = self.ws()
        c.echo(OP_TEXT, b"server still fine")


class CloseExchange(Base):
    """With a very long close timeout, EOF within the bounded wait proves the server
    closes TCP because the close handshake completed, not because a timer fired."""
    server_args = ("--close-timeout", "60000")

    def test_client_initiated_close_then_eof(self):
        c = self.ws()
        c.echo(OP_TEXT, b"x")
        c.send_close(1000, "bye")
        c.expect_close(1000, reply=False)

    def test_client_initiated_empty_close_then_eof(self):
        c = self.ws()
        c.send_close()
        c.expect_close((None, 1000), reply=False)

    def test_close_and_fin_together(self):
        # Some clients send their close and half-close TCP at once: the server's close
        # reply must still arrive before the server ends the connection.
        c = self.ws()
        c.send(encode_frame(OP_TEXT, b"last") + encode_frame(OP_CLOSE, close_payload(1000, "fin")))
        c.sock.shutdown(socket.SHUT_WR)
        self.assertEqual(c.recv_message(), (OP_TEXT, b"last"))
        c.expect_close(1000, reply=False)

    def test_client_close_while_server_is_echoing_large_message(self):
        c = self.ws()
        payload = os.urandom(600000)
        c.send(encode_frame(OP_BINARY, payload) + encode_frame(OP_CLOSE, close_payload(1000)))
        self.assertEqual(c.recv_message(), (OP_BINARY, payload))
        c.expect_close(1000, reply=False)


class ConnectionSlots(Base):
    """--max-connections 1 makes a connection's slot observable: a second client gets
    503 while the first is open, and 101 as soon as the first one's close is done."""
    server_args = ("--max-connections", "1", "--close-timeout", "60000")

    def test_slot_freed_by_close_exchange(self):
        a = self.ws()
        a.echo(OP_TEXT, b"a")
        b = self.connect()
        r = b.request(build_request())
        self.assertEqual(r.status, 503, f"second connection over --max-connections 1: {r.raw!r}")
        self.assertEqual(b.read_until_eof(), b"")
        # The close exchange ends the first connection; its socket stays open on our side.
        a.send_close(1000)
        a.expect_close(1000, reply=False)
        c = self.connect()
        r = c.request(build_request())
        self.assertEqual(r.status, 101, f"slot not freed after a completed close exchange: {r.raw!r}")
        c.send_close(1000)
        c.expect_close(1000, reply=False)


# ========================================================================================
# 1009 message size


class MessageLimit(Base):
    server_args = ("--max-message", "1000", "--close-timeout", "1500")

    def test_at_limit_echoed(self):
        c = self.ws()
        c.echo(OP_BINARY, os.urandom(1000))
        c.echo(OP_TEXT, b"t" * 1000)

    def test_fragmented_at_limit_echoed(self):
        c = self.ws()
        c.send(encode_frame(OP_BINARY, b"a" * 500, fin=False) + encode_frame(OP_CONT, b"b" * 500))
        self.assertEqual(c.recv_message(), (OP_BINARY, b"a" * 500 + b"b" * 500))

    def test_over_limit_single_frame_header_only(self):
        self.violation(encode_frame(OP_TEXT, b"", length=1001), 1009, reply=False)

    def test_over_limit_full_frame(self):
        self.violation(encode_frame(OP_BINARY, b"x" * 1001), 1009)

    def test_over_limit_second_fragment_header_only(self):
        wire = encode_frame(OP_BINARY, b"a" * 600, fin=False) + encode_frame(OP_CONT, b"", length=600, fin=False)
        self.violation(wire, 1009, reply=False)

    def test_over_limit_many_small_fragments(self):
        wire = encode_frame(OP_TEXT, b"x" * 60, fin=False)
        for _ in range(30):
            wire += encode_frame(OP_CONT, b"x" * 60, fin=False)
        self.violation(wire, 1009)

    def test_huge_64bit_length(self):
        self.violation(header_64(OP_BINARY, 1 << 62), 1009, reply=False)

    def test_4gib_length(self):
        self.violation(header_64(OP_TEXT, 1 << 32), 1009, reply=False)

    def test_echo_before_limit_violation(self):
        c = self.ws()
        c.send(encode_frame(OP_TEXT, b"fine") + encode_frame(OP_BINARY, b"", length=5000))
        self.assertEqual(c.recv_message(), (OP_TEXT, b"fine"))
        c.expect_close(1009, reply=False)


# ========================================================================================
# timeouts


class CloseTimeout(Base):
    server_args = ("--close-timeout", "200")

    def test_peer_that_never_answers_close_is_cut(self):
        c = self.ws()
        c.send_frame(0x3, b"x")
        c.expect_close(1002, reply=False)  # expect_close waits for EOF (bounded, 5 s)

    def test_peer_that_keeps_sending_data_after_close_is_cut(self):
        c = self.ws()
        c.send_frame(OP_TEXT, b"\xff")
        self.assertEqual(c.recv_close()[0], 1007)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if not c.send(encode_frame(OP_TEXT, b"ignored")):
                break
            try:
                c.settimeout(0.05)
                rest = c.read_until_eof(timeout=0.05)
                self.assertEqual(rest, b"", f"server sent data after its close: {rest[:60]!r}")
                break
            except socket.timeout:
                continue
        else:
            self.fail("connection still open 5 s after the server's close (close timeout 200 ms)")
        c.settimeout(5)
        self.assertEqual(c.read_until_eof(), b"")


class HandshakeTimeout(Base):
    server_args = ("--handshake-timeout", "200")

    def assert_cut(self, c):
        data = c.read_until_eof(timeout=5)
        # Nothing, or an HTTP error status (e.g. 408), before the close.
        if data:
            self.assertTrue(data.startswith(b"HTTP/1.1 4"), f"unexpected bytes before close: {data[:100]!r}")

    def test_silent_client_is_cut(self):
        c = self.connect()
        self.assert_cut(c)

    def test_partial_request_is_cut(self):
        c = self.connect()
        c.send(b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n")
        self.assert_cut(c)

    def test_slow_request_is_cut(self):
        # The handshake time is bounded as a whole, not per read (slowloris).
        c = self.connect()
        deadline = time.monotonic() + 5
        line = b"X-Slow: " + b"a" * 4000
        i = 0
        while time.monotonic() < deadline:
            if i == 0:
                ok = c.send(b"GET /echo HTTP/1.1\r\n")
            else:
                ok = c.send(line[i % len(line):i % len(line) + 1])
            i += 1
            if not ok:
                break
            try:
                c.settimeout(0.05)
                c.read_until_eof(timeout=0.05)
                break
            except socket.timeout:
                continue
        else:
            self.fail("a request trickling in byte by byte was not cut within 5 s "
                      "(handshake timeout 200 ms)")

    def test_upgraded_connection_not_cut_by_handshake_timeout(self):
        c = self.ws()
        time.sleep(0.8)
        c.echo(OP_TEXT, b"still here")


# ========================================================================================
# shutdown


class Shutdown(unittest.TestCase):
    def shutdown_with_clients(self, sig):
        srv = Server("--close-timeout", "500", "--shutdown-timeout", "3000")
        srv.start()
        clients = []
        try:
            replying = srv.ws_connect()
            clients.append(replying)
            replying.echo(OP_TEXT, b"warm up")
            mid_message = srv.ws_connect()
            clients.append(mid_message)
            mid_message.send(encode_frame(OP_TEXT, b"unfinished", fin=False))
            silent = srv.ws_connect()          # will not answer the server's close
            clients.append(silent)
            pre_upgrade = srv.connect()         # connected, request not complete
            clients.append(pre_upgrade)
            pre_upgrade.send(b"GET /echo HTTP/1.1\r\n")
            time.sleep(0.1)                     # let the server register every connection
            srv.send_signal(sig)

            for name, c in (("replying", replying), ("mid_message", mid_message)):
                code, _ = c.recv_close()
                self.assertEqual(code, 1001, f"{name}: close code {code}")
                c.send_close(1001)
                self.assertEqual(c.read_until_eof(), b"", name)
            code, _ = silent.recv_close()
            self.assertEqual(code, 1001, f"silent: close code {code}")
            self.assertEqual(silent.read_until_eof(timeout=8), b"", "silent client")
            data = pre_upgrade.read_until_eof(timeout=8)
            self.assertTrue(data == b"" or data.startswith(b"HTTP/1.1 5"),
                            f"pre-upgrade connection got {data[:80]!r}")
            rc = srv.wait(10)
            self.assertIsNotNone(rc, "server still running 10 s after the signal")
            self.assertEqual(rc, 0, srv.log_tail())
        finally:
            for c in clients:
                c.close()
            srv.kill()
            srv.remove_log()

    def test_sigterm_closes_all_with_1001_and_exits_0(self):
        self.shutdown_with_clients(signal.SIGTERM)

    def test_sigint_closes_all_with_1001_and_exits_0(self):
        self.shutdown_with_clients(signal.SIGINT)

    def test_sigterm_many_clients(self):
        srv = Server("--close-timeout", "1000")
        srv.start()
        clients = []
        try:
            for i in range(50):
                c = srv.ws_connect()
                clients.append(c)
            clients[-1].echo(OP_TEXT, b"ready")
            time.sleep(0.1)
            srv.send_signal(signal.SIGTERM)
            for i, c in enumerate(clients):
                code, _ = c.recv_close()
                self.assertEqual(code, 1001, f"client {i}")
                c.send_close(1001)
            for i, c in enumerate(clients):
                self.assertEqual(c.read_until_eof(), b"", f"client {i}")
            self.assertEqual(srv.wait(10), 0, srv.log_tail())
        finally:
            for c in clients:
                c.close()
            srv.kill()
            srv.remove_log()

    def test_sigterm_with_websockets_client(self):
        import asyncio
        import websockets
        srv = Server()
        srv.start()

        async def go():
            async with websockets.connect(srv.uri(), compression=None, open_timeout=5,
                                          close_timeout=5, ping_interval=None) as ws:
                await ws.send("hi")
                self.assertEqual(await asyncio.wait_for(ws.recv(), 5), "hi")
                srv.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(ws.recv(), 5)
                    self.fail("received a message instead of a close")
                except websockets.ConnectionClosed:
                    pass
                self.assertEqual(ws.close_code, 1001)
        try:
            asyncio.run(asyncio.wait_for(go(), 20))
            self.assertEqual(srv.wait(10), 0, srv.log_tail())
        finally:
            srv.kill()
            srv.remove_log()

    def test_shutdown_timeout_bounds_a_silent_peer(self):
        # The peer never answers close and the close timeout is long: the shutdown
        # timeout must still end the process.
        srv = Server("--close-timeout", "60000", "--shutdown-timeout", "300")
        srv.start()
        try:
            c = srv.ws_connect()
            c.echo(OP_TEXT, b"x")
            srv.send_signal(signal.SIGTERM)
            self.assertEqual(c.recv_close()[0], 1001)
            self.assertEqual(c.read_until_eof(timeout=8), b"")
            rc = srv.wait(8)
            self.assertIsNotNone(rc, "server still running 8 s after SIGTERM with --shutdown-timeout 300")
            self.assertEqual(rc, 0, srv.log_tail())
            c.close()
        finally:
            srv.kill()
            srv.remove_log()

    def test_sigterm_close_handshake_completes_without_timers(self):
        # Long close/shutdown timeouts: the connection and the process must still end
        # promptly once the peer answers the 1001 close.
        srv = Server("--close-timeout", "60000", "--shutdown-timeout", "60000")
        srv.start()
        try:
            c = srv.ws_connect()
            c.echo(OP_TEXT, b"x")
            srv.send_signal(signal.SIGTERM)
            self.assertEqual(c.recv_close()[0], 1001)
            c.send_close(1001)
            self.assertEqual(c.read_until_eof(timeout=5), b"")
            # The client keeps its socket open: after the exchange the server ends TCP
            # itself (§7.1.1) rather than wait for our FIN.
            rc = srv.wait(5)
            self.assertIsNotNone(rc, "server still running 5 s after the close exchange of its "
                                     "last connection (it waited for a timer)")
            self.assertEqual(rc, 0, srv.log_tail())
            c.close()
        finally:
            srv.kill()
            srv.remove_log()

    def test_idle_server_exits_0_on_sigterm(self):
        srv = Server()
        srv.start()
        try:
            srv.send_signal(signal.SIGTERM)
            self.assertEqual(srv.wait(10), 0, srv.log_tail())
        finally:
            srv.kill()
            srv.remove_log()


if __name__ == "__main__":
    run_tap()
