#!/usr/bin/python3
"""permessage-deflate (RFC 7692) on the wire, in both --deflate shared and dedicated.

Real clients that compress (python3-websockets by default, node `ws` with
perMessageDeflate) echo messages of many sizes, fragmented, across many messages with
context takeover where it was agreed, and with every window size. A raw client checks
what the RFC pins down byte for byte: RSV1 on the first frame only, the trailer, BFINAL
blocks, the empty message, window bits, and the failures: RSV1 where it is not allowed
→ 1002, corrupt data and invalid UTF-8 after inflating → 1007, a decompression bomb →
1009 with the server's memory bounded. Every test class runs once per mode.
"""

import asyncio
import os
import sys
import time
import zlib

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import websockets  # noqa: E402
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory  # noqa: E402

from wsclient import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT,  # noqa: E402
                      PmdClient, ServerTestCase, close_payload, deflate_raw, encode_frame,
                      run_node_client, run_tap)

MiB = 1 << 20
MODES = ("shared", "dedicated")
SHARED_RESPONSE = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"


# ----------------------------------------------------------------------------------------
# data


def sample_text(n, seed=0):
    """n characters of UTF-8 text with 1- to 4-byte code points."""
    words = ["alpha ", "beta ", "gamma ", "délta ", '{"id":', '"naïve":"✓",', "\n", "😀 ", "ж"]
    out, x = [], seed * 2654435761 + 1
    size = 0
    while size < n:
        x = (x * 1103515245 + 12345) & 0xFFFFFFFF
        w = words[(x >> 8) % len(words)]
        out.append(w)
        size += len(w)
    return "".join(out)[:n]


def sample_binary(n, kind="mixed", seed=0):
    """n bytes: 'random' (incompressible), 'zeros', 'mixed' (random runs and repeats),
    or 'period5000' (a random block repeated every 5000 bytes: matches a window below
    2^13 cannot reach)."""
    if kind == "random":
        return os.urandom(n)
    if kind == "zeros":
        return bytes(n)
    if kind == "period5000":
        block = os.urandom(5000)
        return (block * (n // 5000 + 1))[:n]
    block = os.urandom(700)
    unit = block + bytes(range(256)) * 4 + block[::-1] + b"abc" * 200
    return (unit * (n // len(unit) + 1))[:n]


def run_async(coro, timeout=40):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def differ(a, b):
    """A short description of how two messages differ (never the whole data)."""
    if type(a) is not type(b):
        return f"types differ: sent {type(a).__name__}, got {type(b).__name__}"
    if len(a) != len(b):
        return f"sent {len(a)}, got {len(b)}"
    i = next(i for i in range(len(a)) if a[i] != b[i])
    return f"first difference at index {i} of {len(a)}"


def proc_status(pid):
    """VmRSS and VmHWM of a process, in bytes."""
    vals = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                vals[k] = int(v.split()[0]) * 1024
    return vals["VmRSS"], vals["VmHWM"]


# ----------------------------------------------------------------------------------------
# the tests, run once per mode (the classes are made at the end of the file)


class PmdBase:
    mode = None

    def pmd(self, offer="permessage-deflate", **kw):
        c = PmdClient(self.server.host, self.server.port)
        self._clients.append(c)
        c.handshake(offer=offer, **kw)
        return c

    def violation(self, wire, code, offer="permessage-deflate"):
        c = self.pmd(offer)
        c.send(wire)
        return c.expect_close(code)

    def expected_response(self, offer_params=""):
        """What the server answers to "permessage-deflate" plus offer_params that only
        contain no_context_takeover flags."""
        if self.mode == "shared":
            return SHARED_RESPONSE
        return "permessage-deflate" + offer_params


class EchoTests(PmdBase):
    """--deflate MODE --max-message 6 MiB."""

    extra_args = ("--max-message", str(6 * MiB))

    # -- negotiation as real clients see it --------------------------------------------
    def test_response_to_offers(self):
        for offer, want in [
            ("permessage-deflate", self.expected_response()),
            ("permessage-deflate; client_max_window_bits", self.expected_response()),
            ("permessage-deflate; client_no_context_takeover",
             self.expected_response("; client_no_context_takeover")),
            ("permessage-deflate; server_no_context_takeover",
             self.expected_response("; server_no_context_takeover")),
            ("x-webkit-deflate-frame, permessage-deflate; foo, permessage-deflate",
             self.expected_response()),
        ]:
            c = self.pmd(offer)
            got = c.response.header_all("Sec-WebSocket-Extensions")
            self.assertEqual(got, [want], f"offer {offer!r}")
            c.close()
        for offer in ("x-webkit-deflate-frame", "permessage-deflate; foo",
                      "permessage-deflate; server_max_window_bits=16"):
            c = self.pmd(offer)
            self.assertEqual(c.response.header_all("Sec-WebSocket-Extensions"), [], f"offer {offer!r}")
            c.close()
        c = self.pmd(None)
        self.assertIsNone(c.response.header("Sec-WebSocket-Extensions"))

    def test_offer_over_two_header_lines(self):
        c = PmdClient(self.server.host, self.server.port)
        self._clients.append(c)
        r = c.handshake(offer=None, extra_lines=["Sec-WebSocket-Extensions: foo, permessage-deflate; bar",
                                                 "Sec-WebSocket-Extensions: permessage-deflate; "
                                                 "server_max_window_bits=12"])
        want = (SHARED_RESPONSE if self.mode == "shared" else "permessage-deflate") + \
            "; server_max_window_bits=12"
        self.assertEqual(r.header_all("Sec-WebSocket-Extensions"), [want])

    # -- python3-websockets, compression on by default ---------------------------------
    def test_websockets_echo_sizes(self):
        sizes = [0, 1, 63, 64, 65, 125, 126, 1000, 4096, 65535, 65536, 100000, MiB, 4 * MiB]

        async def go():
            async with websockets.connect(self.server.uri(), max_size=None, open_timeout=10,
                                          close_timeout=5) as ws:
                ext = ws.response_headers.get("Sec-WebSocket-Extensions", "")
                self.assertTrue(ext.startswith("permessage-deflate"), ext)
                self.assertEqual(len(ws.extensions), 1)
                for n in sizes:
                    for data in (sample_text(n, n), sample_binary(n, "mixed"),
                                 sample_binary(min(n, 200000), "random")):
                        await ws.send(data)
                        got = await asyncio.wait_for(ws.recv(), 20)
                        if got != data:
                            self.fail(f"{type(data).__name__} of {len(data)}: {differ(data, got)}")
        run_async(go())

    def test_websockets_fragmented(self):
        async def go():
            async with websockets.connect(self.server.uri(), max_size=None, open_timeout=10) as ws:
                for n, parts in ((10, 3), (5000, 7), (300000, 5), (2 * MiB, 16)):
                    text = sample_text(n, parts)
                    step = -(-len(text) // parts)
                    await ws.send([text[i:i + step] for i in range(0, len(text), step)])
                    got = await asyncio.wait_for(ws.recv(), 20)
                    if got != text:
                        self.fail(f"text {n} in {parts}: {differ(text, got)}")
                    data = sample_binary(n, "mixed")
                    step = -(-n // parts)
                    await ws.send([data[i:i + step] for i in range(0, n, step)])
                    got = await asyncio.wait_for(ws.recv(), 20)
                    if got != data:
                        self.fail(f"binary {n} in {parts}: {differ(data, got)}")
        run_async(go())

    def test_websockets_many_messages_with_takeover(self):
        # The default offer allows context takeover both ways; dedicated mode keeps it.
        async def go():
            async with websockets.connect(self.server.uri(), open_timeout=10) as ws:
                ext = ws.response_headers.get("Sec-WebSocket-Extensions", "")
                if self.mode == "dedicated":
                    self.assertNotIn("no_context_takeover", ext)
                for i in range(300):
                    msg = f'{{"seq":{i},"type":"tick","body":"{sample_text(30 + i % 90, i % 7)}"}}'
                    await ws.send(msg)
                    got = await asyncio.wait_for(ws.recv(), 10)
                    if got != msg:
                        self.fail(f"message {i}: {differ(msg, got)}")
                    if i % 50 == 0:
                        b = sample_binary(3000 + i, "mixed")
                        await ws.send(b)
                        self.assertEqual(await asyncio.wait_for(ws.recv(), 10), b, f"binary at {i}")
        run_async(go())

    def test_websockets_window_bits(self):
        async def go(bits):
            ext = ClientPerMessageDeflateFactory(client_max_window_bits=bits, server_max_window_bits=bits)
            async with websockets.connect(self.server.uri(), extensions=[ext], max_size=None,
                                          open_timeout=10) as ws:
                resp = ws.response_headers.get("Sec-WebSocket-Extensions", "")
                self.assertIn(f"server_max_window_bits={bits}", resp)
                if bits < 15:
                    self.assertIn(f"client_max_window_bits={bits}", resp)
                for n in (100, 5000, 70000):
                    for data in (sample_binary(n, "period5000"), sample_binary(n, "mixed"),
                                 sample_text(n, bits)):
                        for _ in range(2):
                            await ws.send(data)
                            got = await asyncio.wait_for(ws.recv(), 10)
                            if got != data:
                                self.fail(f"window bits {bits}, {type(data).__name__} {n}: "
                                          f"{differ(data, got)}")
        for bits in range(9, 16):
            with self.subTest(bits=bits):
                run_async(go(bits))

    # -- raw client: what goes on the wire ---------------------------------------------
    def test_raw_fragmented_compressed(self):
        c = self.pmd()
        for n, frags in ((0, 1), (0, 3), (5, 5), (100, 2), (100, 100), (5000, 3), (70000, 9),
                         (300000, 40)):
            for op, data in ((OP_TEXT, sample_text(n, frags).encode()), (OP_BINARY, sample_binary(n))):
                c.send_compressed(op, data, fragments=frags)
                got = c.recv_message()
                if got != (op, data):
                    self.fail(f"op {op} {len(data)} bytes in {frags} fragments: "
                              f"{differ(data, got[1])}")

    def test_raw_fragments_with_ping_between(self):
        c = self.pmd()
        data = sample_text(4000).encode()
        z = c.deflate(data)
        k = len(z) // 2
        c.send(encode_frame(OP_TEXT, z[:k], fin=False, rsv=4) + encode_frame(OP_PING, b"mid")
               + encode_frame(OP_CONT, b"", fin=False) + encode_frame(OP_CONT, z[k:], fin=True))
        f = c.recv_frame()
        self.assertEqual((f.opcode, f.payload, f.rsv), (OP_PONG, b"mid", 0))
        self.assertEqual(c.recv_message(), (OP_TEXT, data))

    def test_raw_uncompressed_messages_still_allowed(self):
        # RSV1 clear: the message is not compressed, even with the extension agreed.
        c = self.pmd()
        for data in (b"", b"plain", sample_binary(100000)):
            c.send_frame(OP_BINARY, data)
            self.assertEqual(c.recv_message(), (OP_BINARY, data))
        c.send_frame(OP_TEXT, b"abc", fin=False)
        c.send_frame(OP_CONT, b"def")
        self.assertEqual(c.recv_message(), (OP_TEXT, b"abcdef"))

    def test_raw_client_takeover_many_messages(self):
        # One compressor across messages where the agreement allows it (dedicated, no
        # client_no_context_takeover); shared mode makes the client reset every time.
        c = self.pmd("permessage-deflate")
        self.assertEqual(c.client_no_context_takeover, self.mode == "shared")
        sizes = []
        for i in range(200):
            data = f"message {i % 10}: {sample_text(200, i % 10)}".encode()
            z = c.send_compressed(OP_TEXT, data)
            sizes.append(len(z))
            got = c.recv_message()
            if got != (OP_TEXT, data):
                self.fail(f"message {i}: {differ(data, got[1])}")
        if self.mode == "dedicated":
            # The repeats really refer back to earlier messages.
            self.assertLess(sum(sizes[10:]) / 190, sizes[0] / 3, sizes[:20])

    def test_raw_client_takeover_hint_only(self):
        # client_no_context_takeover offered: a hint the server may echo; the client
        # resets, and the server must still inflate every message.
        c = self.pmd("permessage-deflate; client_no_context_takeover")
        self.assertTrue(c.client_no_context_takeover)
        for i in range(20):
            data = sample_text(500, i % 3).encode()
            c.send_compressed(OP_TEXT, data)
            self.assertEqual(c.recv_message(), (OP_TEXT, data))

    def test_server_frames(self):
        # The server compresses what it sends: RSV1 on the first frame only, the trailer
        # stripped (the client inflates with it appended), contents intact.
        c = self.pmd()
        for n in (64, 100, 1000, 70000, 2 * MiB):
            data = sample_text(n, n).encode()[:n]
            c.send_frame(OP_BINARY, data)
            op, got = c.recv_message()
            self.assertEqual((op, len(got)), (OP_BINARY, n))
            self.assertEqual(got, data)
            self.assertTrue(c.last_compressed, f"{n} compressible bytes came back uncompressed: "
                                               f"{c.last_frames}")
            wire = sum(f[3] for f in c.last_frames)
            self.assertLess(wire, n, f"{n} bytes went out as {wire} compressed bytes")
            for i, f in enumerate(c.last_frames):
                self.assertEqual(f[1], 4 if i == 0 else 0, c.last_frames)

    def test_server_takeover_matches_agreement(self):
        # dedicated + no server_no_context_takeover: the server keeps its window, so
        # the same message costs less the second time. With it (shared mode, or asked
        # for) every message stands alone.
        data = sample_binary(1500, "random") + sample_text(1500).encode()
        for offer in ("permessage-deflate", "permessage-deflate; server_no_context_takeover"):
            c = self.pmd(offer)
            lens = []
            for _ in range(3):
                c.send_frame(OP_BINARY, data)
                self.assertEqual(c.recv_message(), (OP_BINARY, data))
                lens.append(sum(f[3] for f in c.last_frames) if c.last_compressed else None)
            self.assertIsNotNone(lens[0], f"{offer}: sent plain: {c.last_frames}")
            if c.server_no_context_takeover:
                self.assertEqual(lens[1], lens[0], f"{offer}: {lens}")
            else:
                self.assertIsNotNone(lens[1], f"{offer}: {lens}")
                self.assertLess(lens[1], 200, f"{offer}: the repeat was not found in the window: {lens}")
            c.close()

    def test_threshold(self):
        # Default --deflate-threshold 64: shorter messages go out plain.
        c = self.pmd()
        for n in (0, 1, 10, 63):
            c.send_frame(OP_TEXT, b"a" * n)
            self.assertEqual(c.recv_message(), (OP_TEXT, b"a" * n))
            self.assertFalse(c.last_compressed, f"{n} bytes came back compressed")
        for n in (64, 65, 200):
            c.send_frame(OP_TEXT, b"a" * n)
            self.assertEqual(c.recv_message(), (OP_TEXT, b"a" * n))
            self.assertTrue(c.last_compressed, f"{n} bytes came back plain")
        # Compressed short messages: the reply follows the threshold too.
        c.send_compressed(OP_TEXT, b"b" * 20)
        self.assertEqual(c.recv_message(), (OP_TEXT, b"b" * 20))
        self.assertFalse(c.last_compressed)

    def test_server_window_bits(self):
        # server_max_window_bits=N: what the server sends must inflate with a 2^N window
        # (the data repeats every 5000 bytes, which a larger window would reach for).
        # dedicated compresses with N (8 runs as 9, safe for a 256-byte window); shared
        # keeps one deflater of its own window and sends plain to other windows.
        data = sample_binary(40000, "period5000")
        for bits in range(8, 16):
            c = self.pmd(f"permessage-deflate; server_max_window_bits={bits}")
            self.assertEqual(c.server_bits, bits, c.response.raw)
            for _ in range(2):
                c.send_frame(OP_BINARY, data)
                self.assertEqual(c.recv_message(), (OP_BINARY, data), f"bits {bits}")
                if self.mode == "dedicated" or bits == 15:
                    self.assertTrue(c.last_compressed, f"bits {bits}: {c.last_frames}")
            c.close()

    def test_client_window_bits(self):
        for bits in range(8, 16):
            c = self.pmd(f"permessage-deflate; client_max_window_bits={bits}")
            want = f"client_max_window_bits={bits}"
            if bits < 15:
                self.assertIn(want, c.response.header("Sec-WebSocket-Extensions"))
            else:
                self.assertNotIn("client_max_window_bits", c.response.header("Sec-WebSocket-Extensions"))
            for i in range(4):
                data = sample_binary(20000, "period5000" if i % 2 else "mixed")
                c.send_compressed(OP_BINARY, data)
                self.assertEqual(c.recv_message(), (OP_BINARY, data), f"bits {bits} message {i}")
            c.close()

    def test_bfinal_message(self):
        # §7.2.3.4: a message may end with a BFINAL block followed by 0x00.
        c = self.pmd()
        for data in (b"Hello", sample_text(5000).encode(), b""):
            c.send_frame(OP_TEXT, deflate_raw(data, final=True), rsv=4)
            self.assertEqual(c.recv_message(), (OP_TEXT, data))
        # The RFC's own bytes, with and without the trailing 0x00, and fragmented.
        c.send_frame(OP_TEXT, bytes.fromhex("f348cdc9c9070000"), rsv=4)
        self.assertEqual(c.recv_message(), (OP_TEXT, b"Hello"))
        c.send_frame(OP_TEXT, bytes.fromhex("f348cdc9c90700"), rsv=4)
        self.assertEqual(c.recv_message(), (OP_TEXT, b"Hello"))
        c.send_payload_fragments(OP_TEXT, bytes.fromhex("f348cdc9c9070000"), fragments=4)
        self.assertEqual(c.recv_message(), (OP_TEXT, b"Hello"))
        # Other RFC 7692 §7.2.3 examples: stored block, two blocks.
        c.send_frame(OP_TEXT, bytes.fromhex("000500faff48656c6c6f00"), rsv=4)
        self.assertEqual(c.recv_message(), (OP_TEXT, b"Hello"))
        c.send_frame(OP_TEXT, bytes.fromhex("f248050000 00ffffcac9c90700".replace(" ", "")), rsv=4)
        self.assertEqual(c.recv_message(), (OP_TEXT, b"Hello"))
        # And ordinary messages after them.
        data = sample_text(3000, 5).encode()
        c.send_frame(OP_TEXT, deflate_raw(data), rsv=4)
        self.assertEqual(c.recv_message(), (OP_TEXT, data))

    def test_bfinal_then_takeover(self):
        # With context takeover the window outlives a BFINAL block: the next message may
        # refer to the previous one (§7.2.2). §7.2.3.2's bytes do exactly that.
        c = self.pmd("permessage-deflate")
        if c.client_no_context_takeover:
            self.skipTest("the agreement has client_no_context_takeover (shared mode)")
        c.send_frame(OP_TEXT, bytes.fromhex("f348cdc9c9070000"), rsv=4)
        self.assertEqual(c.recv_message(), (OP_TEXT, b"Hello"))
        c.send_frame(OP_TEXT, bytes.fromhex("f200110000"), rsv=4)
        self.assertEqual(c.recv_message(), (OP_TEXT, b"Hello"))
        first = sample_text(8000, 1).encode()
        c.send_frame(OP_TEXT, deflate_raw(first, final=True), rsv=4)
        self.assertEqual(c.recv_message(), (OP_TEXT, first))
        comp = zlib.compressobj(6, zlib.DEFLATED, -15, zdict=first)
        z = comp.compress(first) + comp.flush(zlib.Z_SYNC_FLUSH)
        self.assertLess(len(z), len(first) // 10)  # it refers to the previous message
        c.send_frame(OP_TEXT, z[:-4], rsv=4)
        self.assertEqual(c.recv_message(), (OP_TEXT, first))

    def test_empty_compressed_message(self):
        c = self.pmd()
        for op in (OP_TEXT, OP_BINARY):
            c.send_frame(op, b"\x00", rsv=4)
            self.assertEqual(c.recv_message(), (op, b""))
            self.assertFalse(c.last_compressed)
        # Fragmented: an empty first frame with RSV1, then 0x00.
        c.send(encode_frame(OP_TEXT, b"", fin=False, rsv=4) + encode_frame(OP_CONT, b"\x00"))
        self.assertEqual(c.recv_message(), (OP_TEXT, b""))
        # Between messages that share the window.
        a = sample_text(2000, 1).encode()
        for data in (a, b"", a, b"", b"", a):
            c.send_compressed(OP_TEXT, data)
            self.assertEqual(c.recv_message(), (OP_TEXT, data))

    def test_compressed_valid_utf8_is_checked_after_inflating(self):
        # Compressed bytes are not UTF-8; only the inflated text is judged.
        c = self.pmd()
        text = ("héllo wörld ✓ 😀 " * 300).encode()
        z = deflate_raw(text)
        with self.assertRaises(UnicodeDecodeError):
            z.decode("utf-8")
        for frags in (1, 2, 7):
            c.send_payload_fragments(OP_TEXT, z, fragments=frags)
            self.assertEqual(c.recv_message(), (OP_TEXT, text))

    def test_interleaved_connections(self):
        # Fragments of one compressed message wait while other connections' messages
        # go through the same (shared) inflater.
        a, b = self.pmd(), self.pmd()
        da, db = sample_text(20000, 1).encode(), sample_text(20000, 2).encode()
        za, zb = a.deflate(da), b.deflate(db)
        k = len(za) // 3
        a.send(encode_frame(OP_TEXT, za[:k], fin=False, rsv=4))
        time.sleep(0.05)
        b.send(encode_frame(OP_TEXT, zb[:k], fin=False, rsv=4))
        time.sleep(0.05)
        a.send(encode_frame(OP_CONT, za[k:2 * k], fin=False))
        b.send(encode_frame(OP_CONT, zb[k:]))
        self.assertEqual(b.recv_message(), (OP_TEXT, db))
        b.send_compressed(OP_BINARY, db)
        self.assertEqual(b.recv_message(), (OP_BINARY, db))
        a.send(encode_frame(OP_CONT, za[2 * k:]))
        self.assertEqual(a.recv_message(), (OP_TEXT, da))

    # -- failures ----------------------------------------------------------------------
    def test_rsv1_on_continuation_1002(self):
        z = deflate_raw(sample_text(500).encode())
        self.violation(encode_frame(OP_TEXT, z[:100], fin=False, rsv=4)
                       + encode_frame(OP_CONT, z[100:], rsv=4), 1002)
        self.violation(encode_frame(OP_TEXT, z[:100], fin=False, rsv=4)
                       + encode_frame(OP_CONT, z[100:200], fin=False)
                       + encode_frame(OP_CONT, z[200:], rsv=4), 1002)
        self.violation(encode_frame(OP_TEXT, b"plain", fin=False)
                       + encode_frame(OP_CONT, deflate_raw(b"x"), rsv=4), 1002)

    def test_rsv1_on_control_frames_1002(self):
        for op, payload in ((OP_PING, b"p"), (OP_PONG, b"p"), (OP_CLOSE, close_payload(1000)),
                            (OP_PING, b""), (OP_PING, b"\x00")):
            with self.subTest(op=op, payload=payload):
                self.violation(encode_frame(op, payload, rsv=4), 1002)
        # Also in the middle of a compressed message.
        z = deflate_raw(b"x" * 300)
        self.violation(encode_frame(OP_TEXT, z[:2], fin=False, rsv=4)
                       + encode_frame(OP_PING, b"p", rsv=4), 1002)

    def test_rsv1_without_agreement_1002(self):
        z = deflate_raw(b"Hello")
        for offer in (None, "x-webkit-deflate-frame", "permessage-deflate; foo",
                      "permessage-deflate; server_max_window_bits=7"):
            with self.subTest(offer=offer):
                c = self.pmd(offer)
                self.assertIsNone(c.pmd, c.response.raw)
                c.echo(OP_TEXT, b"fine")
                c.send_frame(OP_TEXT, z, rsv=4)
                c.expect_close(1002)

    def test_rsv2_rsv3_with_agreement_1002(self):
        z = deflate_raw(b"Hello")
        self.violation(encode_frame(OP_TEXT, z, rsv=2), 1002)
        self.violation(encode_frame(OP_TEXT, z, rsv=1), 1002)
        self.violation(encode_frame(OP_TEXT, z, rsv=6), 1002)

    def test_corrupt_data_1007(self):
        for payload in (b"\x06", b"\x07\x12\x34", b"\xff" * 8, bytes.fromhex("0005000000") + b"Hel",
                        bytes.fromhex("f200110000"), b"\xfc\xff\xff\xff\xff"):
            with self.subTest(payload=payload.hex()):
                self.violation(encode_frame(OP_BINARY, payload, rsv=4), 1007)
        # Corruption in a later fragment, and after good messages.
        c = self.pmd()
        c.echo(OP_TEXT, b"ok")
        z = c.deflate(sample_binary(10000))
        c.send_compressed(OP_BINARY, b"good")
        self.assertEqual(c.recv_message(), (OP_BINARY, b"good"))
        c.send(encode_frame(OP_BINARY, z[:50], fin=False, rsv=4) + encode_frame(OP_CONT, z[50:] + b"\x06"))
        c.expect_close(1007)

    def test_invalid_utf8_in_compressed_text_1007(self):
        for raw, frags in ((b"abc\xff\xfe", 1), (b"caf\xc3", 1), (b"\xed\xa0\x80", 1),
                           ("ok ✓".encode() * 100 + b"\xc0\xaf", 3)):
            with self.subTest(raw=raw[-8:]):
                c = self.pmd()
                c.send_payload_fragments(OP_TEXT, deflate_raw(raw), fragments=frags)
                c.expect_close(1007)
        # The same bytes are fine as binary.
        c = self.pmd()
        c.send_compressed(OP_BINARY, b"abc\xff\xfe")
        self.assertEqual(c.recv_message(), (OP_BINARY, b"abc\xff\xfe"))

    def test_dedicated_inflater_uses_the_agreed_window(self):
        # dedicated mode sizes a connection's inflater by the agreed client window
        # (memory per connection). A client that agreed to 9 bits and then refers 5000
        # bytes back into the previous message cannot be inflated: 1007. (Within one
        # message zlib may resolve longer distances from its output; across messages
        # only the window counts.)
        if self.mode != "dedicated":
            self.skipTest("shared mode inflates with a 15-bit window whatever was agreed")
        c = self.pmd("permessage-deflate; client_max_window_bits=9")
        self.assertEqual(c.client_bits, 9)
        self.assertFalse(c.client_no_context_takeover)
        data = sample_binary(5000, "random")
        comp = zlib.compressobj(6, zlib.DEFLATED, -15)
        c.send_frame(OP_BINARY, (comp.compress(data) + comp.flush(zlib.Z_SYNC_FLUSH))[:-4], rsv=4)
        self.assertEqual(c.recv_message(), (OP_BINARY, data))
        z = (comp.compress(data) + comp.flush(zlib.Z_SYNC_FLUSH))[:-4]
        self.assertLess(len(z), 100)
        c.send_frame(OP_BINARY, z, rsv=4)
        c.expect_close(1007)

    def test_shared_mode_client_must_reset(self):
        # shared mode agreed client_no_context_takeover: a message that refers back to
        # the previous one cannot be inflated (and must not be inflated against someone
        # else's window).
        if self.mode != "shared":
            self.skipTest("dedicated mode agreed context takeover")
        c = self.pmd()
        self.assertTrue(c.client_no_context_takeover)
        data = sample_binary(3000, "random")
        c.send_compressed(OP_BINARY, data, takeover=True)
        self.assertEqual(c.recv_message(), (OP_BINARY, data))
        c.send_compressed(OP_BINARY, data, takeover=True)  # refers to the first
        c.expect_close(1007)

    # -- node ws -----------------------------------------------------------------------
    def test_node_ws_interop(self):
        run_node_client(self, self.server.uri(), str(6 * MiB))


class LimitTests(PmdBase):
    """--deflate MODE with the default --max-message (1 MiB): the cap is on the
    inflated size."""

    extra_args = ()

    def test_at_the_cap_and_one_over(self):
        c = self.pmd()
        data = sample_binary(MiB, "mixed")
        z = c.send_compressed(OP_BINARY, data)
        self.assertLess(len(z), MiB // 4)
        self.assertEqual(c.recv_message(), (OP_BINARY, data))
        c.send_compressed(OP_BINARY, data + b"x", takeover=False)
        c.expect_close(1009)

    def test_bomb_1009_with_bounded_memory(self):
        bomb = deflate_raw(bytes(64 * MiB), level=9)
        self.assertLess(len(bomb), 128 * 1024)
        pid = self.server.proc.pid
        c = self.pmd()
        c.echo(OP_TEXT, b"warm up")
        rss0, _ = proc_status(pid)
        t0 = time.monotonic()
        for frags in (1, 1, 16):
            c = self.pmd()
            c.send_payload_fragments(OP_BINARY, bomb, fragments=frags)
            c.expect_close(1009)
        took = time.monotonic() - t0
        rss1, hwm = proc_status(pid)
        grew = hwm - rss0
        self.assertLess(grew, 32 * MiB, f"VmRSS {rss0 >> 10} KiB before, peak {hwm >> 10} KiB "
                                        f"after three 64 MiB bombs")
        # It stopped at the cap rather than inflating everything: quick even under ASan.
        self.assertLess(took, 15, f"three bombs took {took:.1f} s")
        # The server is still serving, compressed.
        c = self.pmd()
        data = sample_text(5000).encode()
        c.send_compressed(OP_TEXT, data)
        self.assertEqual(c.recv_message(), (OP_TEXT, data))

    def test_websockets_bomb(self):
        # A real client that compresses a huge message of zeros gets 1009.
        async def go():
            async with websockets.connect(self.server.uri(), max_size=None, open_timeout=10) as ws:
                await ws.send(bytes(8 * MiB))
                try:
                    await asyncio.wait_for(ws.recv(), 10)
                except websockets.ConnectionClosed as e:
                    return e.rcvd.code if e.rcvd else None
                return "no close"
        self.assertEqual(run_async(go()), 1009)


class ThresholdZeroTests(PmdBase):
    """--deflate MODE --deflate-threshold 0: every message the server sends is
    compressed, the empty one included."""

    extra_args = ("--deflate-threshold", "0")

    def test_websockets_empty_messages_between_others(self):
        async def go():
            async with websockets.connect(self.server.uri(), open_timeout=10) as ws:
                for i, msg in enumerate(["a" * 100, "", "b" * 100, "", "", "c" * 100, b"", b"d" * 70]):
                    await ws.send(msg)
                    try:
                        got = await asyncio.wait_for(ws.recv(), 5)
                    except websockets.ConnectionClosed as e:
                        self.fail(f"message {i} ({len(msg)} bytes): the client closed the connection: "
                                  f"sent {e.sent}, received {e.rcvd}")
                    self.assertEqual(got, msg, f"message {i}")
        run_async(go())

    def test_server_empty_message_payload(self):
        # §7.2.1: an empty message compressed is the single byte 0x00 (the empty stored
        # block, its 00 00 ff ff removed). Zero bytes with RSV1 would leave the client's
        # inflater inside a block header, and the next message would not inflate.
        c = self.pmd("permessage-deflate")
        data = sample_text(300).encode()
        for i, msg in enumerate((data, b"", data, b"", b"", data)):
            c.send_frame(OP_TEXT, msg)
            op, got = c.recv_message()
            self.assertEqual((op, got), (OP_TEXT, msg), f"message {i}")
            if c.last_compressed and not msg:
                wire = sum(f[3] for f in c.last_frames)
                self.assertEqual(wire, 1, f"message {i}: the empty message went out as {wire} compressed "
                                          f"bytes with RSV1 ({c.last_frames})")

    def test_small_messages(self):
        c = self.pmd()
        for n in (1, 2, 5, 63):
            c.send_frame(OP_BINARY, b"q" * n)
            self.assertEqual(c.recv_message(), (OP_BINARY, b"q" * n))


class OffTests(ServerTestCase):
    server_args = ("--deflate", "off")

    def test_no_extension_in_response(self):
        for offer in ("permessage-deflate", "permessage-deflate; client_max_window_bits",
                      "permessage-deflate; server_no_context_takeover; client_no_context_takeover"):
            c = PmdClient(self.server.host, self.server.port)
            self._clients.append(c)
            r = c.handshake(offer=offer)
            self.assertIsNone(r.header("Sec-WebSocket-Extensions"), r.raw)
            c.close()

    def test_websockets_without_compression(self):
        async def go():
            async with websockets.connect(self.server.uri(), max_size=None, open_timeout=10) as ws:
                self.assertEqual(ws.extensions, [])
                for n in (0, 100, 70000):
                    data = sample_binary(n)
                    await ws.send(data)
                    self.assertEqual(await asyncio.wait_for(ws.recv(), 10), data)
        run_async(go())

    def test_rsv1_1002(self):
        c = PmdClient(self.server.host, self.server.port)
        self._clients.append(c)
        c.handshake(offer="permessage-deflate")
        self.assertIsNone(c.pmd)
        c.send_frame(OP_TEXT, deflate_raw(b"Hello"), rsv=4)
        c.expect_close(1002)


# One class per (tests, mode): the server is started with --deflate MODE.
for _tests in (EchoTests, LimitTests, ThresholdZeroTests):
    for _mode in MODES:
        _name = f"{_tests.__name__[:-5]}_{_mode.capitalize()}"
        globals()[_name] = type(_name, (_tests, ServerTestCase), {
            "mode": _mode,
            "server_args": ("--deflate", _mode) + _tests.extra_args,
            "__module__": __name__,
        })
del _tests, _mode, _name


if __name__ == "__main__":
    run_tap(budget=110)
