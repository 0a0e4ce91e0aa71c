#!/usr/bin/python3
"""Echo with a real client (python3-websockets 10.4) and with raw frames.

Every text and binary message comes back unchanged as one message: boundary sizes of
the length encodings, 1 MiB at the default limit, bigger under a raised limit,
fragmented messages, pings, many messages in order, many clients at once.
"""

import asyncio
import os
import sys
import threading

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from wsclient import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, ServerTestCase,  # noqa: E402
                      add_cases, encode_frame, run_tap)

import websockets  # noqa: E402

MiB = 1 << 20
SIZES = [0, 1, 125, 126, 65535, 65536, MiB]


def run(coro, timeout=30):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def connect(server, **kw):
    opts = dict(max_size=None, compression=None, open_timeout=5, close_timeout=5,
                ping_interval=None)
    opts.update(kw)
    return websockets.connect(server.uri(), **opts)


def text_of_size(n, seed=0):
    """A str whose UTF-8 encoding is exactly n bytes, with 1-4 byte code points."""
    unit = "aé€😀"  # 1 + 2 + 3 + 4 bytes
    reps = n // 10
    s = unit * reps
    s += "z" * (n - len(s.encode("utf-8")))
    assert len(s.encode("utf-8")) == n
    return s


class EchoMixin:
    def assert_same(self, got, expected, what="message"):
        if got != expected:
            self.fail(f"{what} differs: type {type(got).__name__} len {len(got)} vs "
                      f"type {type(expected).__name__} len {len(expected)}; got {got[:40]!r}")

    async def roundtrip(self, msg, **kw):
        async with connect(self.server, **kw) as ws:
            await ws.send(msg)
            got = await asyncio.wait_for(ws.recv(), 10)
            self.assert_same(got, msg)
            await ws.close()
            self.assertEqual(ws.close_code, 1000)


class Echo(EchoMixin, ServerTestCase):
    server_args = ()  # default --max-message (1 MiB)

    # -- fragmented messages -------------------------------------------------------------
    def test_fragmented_text(self):
        async def go():
            async with connect(self.server) as ws:
                await ws.send(["ab", "cdé", "", "f€"])
                self.assertEqual(await asyncio.wait_for(ws.recv(), 5), "abcdéf€")
        run(go())

    def test_fragmented_binary(self):
        parts = [os.urandom(n) for n in (1, 0, 125, 126, 70000, 3)]

        async def go():
            async with connect(self.server) as ws:
                await ws.send(parts)
                self.assert_same(await asyncio.wait_for(ws.recv(), 5), b"".join(parts))
        run(go())

    def test_fragmented_async_iterable(self):
        async def frags():
            for i in range(100):
                yield f"{i:03d}|"
                await asyncio.sleep(0)

        async def go():
            async with connect(self.server) as ws:
                await ws.send(frags())
                self.assertEqual(await asyncio.wait_for(ws.recv(), 5),
                                 "".join(f"{i:03d}|" for i in range(100)))
                await ws.send("after")
                self.assertEqual(await asyncio.wait_for(ws.recv(), 5), "after")
        run(go())

    # -- pings ---------------------------------------------------------------------------
    def test_pings(self):
        async def go():
            async with connect(self.server) as ws:
                for payload in (b"", b"abc", bytes(range(125)), b"\xff\x00"):
                    waiter = await ws.ping(payload)
                    await asyncio.wait_for(waiter, 5)  # resolves on the matching pong
                # several outstanding pings; each pong must come back
                waiters = [await ws.ping(f"p{i}".encode()) for i in range(10)]
                await asyncio.wait_for(asyncio.gather(*waiters), 5)
                await ws.send("after pings")
                self.assertEqual(await asyncio.wait_for(ws.recv(), 5), "after pings")
        run(go())

    def test_ping_between_fragments_raw(self):
        c = self.server.ws_connect()
        self._clients.append(c)
        c.send(encode_frame(OP_TEXT, b"frag-1 ", fin=False) + encode_frame(OP_PING, b"mid")
               + encode_frame(OP_CONT, b"frag-2", fin=True))
        f = c.recv_frame()
        self.assertEqual((f.opcode, f.payload), (OP_PONG, b"mid"))
        self.assertEqual(c.recv_message(), (OP_TEXT, b"frag-1 frag-2"))

    # -- ordering and concurrency --------------------------------------------------------
    def test_many_messages_in_order(self):
        n = 2000
        msgs = [f"message {i}" if i % 2 else f"bin {i}".encode() for i in range(n)]

        async def go():
            async with connect(self.server) as ws:
                async def sender():
                    for m in msgs:
                        await ws.send(m)

                async def receiver():
                    for i in range(n):
                        got = await asyncio.wait_for(ws.recv(), 10)
                        self.assertEqual(got, msgs[i], f"message {i} out of order")
                await asyncio.gather(sender(), receiver())
        run(go())

    def test_many_frames_in_one_write_raw(self):
        c = self.server.ws_connect()
        self._clients.append(c)
        msgs = [os.urandom(i % 300) for i in range(500)]
        c.send(b"".join(encode_frame(OP_BINARY, m) for m in msgs))
        for i, m in enumerate(msgs):
            self.assertEqual(c.recv_message(), (OP_BINARY, m), f"message {i}")

    def test_replies_to_one_read_in_order_raw(self):
        # Everything in one write, so the server parses it from one read: echoes of small
        # and large whole frames (a large one is sent from where it arrived), pongs, a
        # fragmented message, more than the server collects before it queues, then a
        # close. Every answer comes back in the order of what it answers, then the close.
        c = self.server.ws_connect()
        self._clients.append(c)
        wire, want = [], []
        for i in range(60):
            size = (5, 700, 3000, 126, 20000)[i % 5]
            data = bytes((i + k) & 0xFF for k in range(size))
            wire.append(encode_frame(OP_BINARY, data))
            want.append((OP_BINARY, data))
            if i % 7 == 3:
                wire.append(encode_frame(OP_PING, b"p%d" % i))
                want.append((OP_PONG, b"p%d" % i))
            if i % 11 == 5:
                wire.append(encode_frame(OP_TEXT, b"part-a ", fin=False) + encode_frame(OP_CONT, b"part-b", fin=True))
                want.append((OP_TEXT, b"part-a part-b"))
        wire.append(encode_frame(OP_CLOSE, b"\x03\xe8"))
        c.send(b"".join(wire))
        for n, (op, payload) in enumerate(want):
            f = c.recv_frame()
            if op == OP_PONG:
                self.assertEqual((f.opcode, f.payload), (OP_PONG, payload), f"answer {n}")
                continue
            frames = [f]
            while not frames[-1].fin:
                frames.append(c.recv_frame())
            self.assertEqual((frames[0].opcode, b"".join(x.payload for x in frames)), (op, payload), f"answer {n}")
        c.expect_close(1000, reply=False)

    def test_concurrent_clients(self):
        nclients, nmsgs = 25, 40

        async def client(k):
            async with connect(self.server) as ws:
                for i in range(nmsgs):
                    m = f"client {k} msg {i} " + "x" * (k * 37 % 500)
                    await ws.send(m if i % 3 else m.encode())
                    got = await asyncio.wait_for(ws.recv(), 10)
                    self.assertEqual(got, m if i % 3 else m.encode())
                return k

        async def go():
            done = await asyncio.gather(*(client(k) for k in range(nclients)))
            self.assertEqual(sorted(done), list(range(nclients)))
        run(go(), timeout=45)

    def test_concurrent_large_messages(self):
        async def client(k):
            async with connect(self.server) as ws:
                m = os.urandom(300000 + k)
                await ws.send(m)
                self.assert_same(await asyncio.wait_for(ws.recv(), 15), m)

        async def go():
            await asyncio.gather(*(client(k) for k in range(6)))
        run(go(), timeout=45)

    def test_many_raw_connections(self):
        # 200 open connections at once, then each echoes.
        conns = []
        for i in range(200):
            c = self.server.connect()
            self._clients.append(c)
            c.handshake()
            conns.append(c)
        for i, c in enumerate(conns):
            c.send_frame(OP_TEXT, f"conn {i}".encode())
        for i, c in enumerate(conns):
            self.assertEqual(c.recv_message(), (OP_TEXT, f"conn {i}".encode()))

    def test_slow_reader_gets_everything_in_order(self):
        # The client writes 24 MB without reading; the server must queue or pause
        # reading (backpressure), never drop or reorder, and deliver all once we read.
        c = self.server.ws_connect()
        self._clients.append(c)
        n, size = 2400, 10000
        msgs = [i.to_bytes(4, "big") + os.urandom(size - 4) for i in range(n)]
        errors = []

        def sender():
            try:
                for m in msgs:
                    if not c.send(encode_frame(OP_BINARY, m)):
                        errors.append("server closed the connection while we were sending")
                        return
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))

        t = threading.Thread(target=sender, daemon=True)
        t.start()
        t.join(1.0)  # let both directions' buffers fill up
        try:
            for i in range(n):
                op, data = c.recv_message()
                self.assertEqual(op, OP_BINARY)
                if data != msgs[i]:
                    self.fail(f"message {i} differs (got index {int.from_bytes(data[:4], 'big')})")
        finally:
            t.join(20)
        self.assertEqual(errors, [])

    # -- close ---------------------------------------------------------------------------
    def test_close_normal(self):
        async def go():
            async with connect(self.server) as ws:
                await ws.send("x")
                await asyncio.wait_for(ws.recv(), 5)
                await ws.close(1000, "done")
                self.assertEqual(ws.close_code, 1000)
        run(go())

    def test_close_code_echoed(self):
        async def go():
            async with connect(self.server) as ws:
                await ws.close(4000, "app")
                self.assertEqual(ws.close_code, 4000)
        run(go())

    # -- with the client's default permessage-deflate offer ---------------------------------
    def test_echo_with_compression_offered(self):
        # Whether the server accepts or declines the offer, echo must work.
        async def go():
            async with connect(self.server, compression="deflate") as ws:
                for m in ("hello " * 1000, os.urandom(5000), "", b""):
                    await ws.send(m)
                    self.assert_same(await asyncio.wait_for(ws.recv(), 5), m)
        run(go())


def _echo_text(self, n):
    run(self.roundtrip(text_of_size(n)))


def _echo_binary(self, n):
    run(self.roundtrip(os.urandom(n)))


add_cases(Echo, "text", [(str(n), n) for n in SIZES], _echo_text)
add_cases(Echo, "binary", [(str(n), n) for n in SIZES], _echo_binary)


class EchoSmallReadBuffer(EchoMixin, ServerTestCase):
    """--read-buffer at its least (the small-board profile): a message many times the
    buffer, and many frames in one write, arrive whole over many reads."""
    server_args = ("--read-buffer", "16k")

    def test_message_of_many_buffers(self):
        run(self.roundtrip(os.urandom(300 * 1024)))

    def test_many_frames_in_one_write_raw(self):
        c = self.server.ws_connect()
        self._clients.append(c)
        msgs = [os.urandom(1000 + i) for i in range(40)]  # ~42 KB in one send
        self.assertTrue(c.send(b"".join(encode_frame(OP_BINARY, m) for m in msgs)))
        for m in msgs:
            op, data = c.recv_message()
            self.assertEqual(op, OP_BINARY)
            self.assert_same(data, m)


class EchoLarge(EchoMixin, ServerTestCase):
    server_args = ("--max-message", "8388608")

    def test_binary_4mib(self):
        run(self.roundtrip(os.urandom(4 * MiB)))

    def test_text_4mib(self):
        run(self.roundtrip(text_of_size(4 * MiB)))

    def test_binary_just_over_default_limit(self):
        run(self.roundtrip(os.urandom(MiB + 1)))

    def test_binary_at_raised_limit(self):
        run(self.roundtrip(os.urandom(8 * MiB)), timeout=45)

    def test_4mib_in_64_byte_fragments_raw(self):
        # A text message with multi-byte code points cut at arbitrary fragment borders.
        payload = text_of_size(4 * MiB).encode("utf-8")
        frags = [payload[i:i + 64] for i in range(0, len(payload), 64)]
        wire = b"".join(
            encode_frame(OP_TEXT if i == 0 else OP_CONT, f, fin=(i == len(frags) - 1))
            for i, f in enumerate(frags))
        c = self.server.ws_connect()
        self._clients.append(c)
        errors = []

        def sender():
            try:
                if not c.send(wire):
                    errors.append("server closed the connection while we were sending")
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))

        t = threading.Thread(target=sender, daemon=True)
        t.start()
        try:
            op, data = c.recv_message()
        finally:
            t.join(20)
        self.assertEqual(errors, [])
        self.assertEqual(op, OP_TEXT)
        self.assert_same(data, payload)
        c.echo(OP_BINARY, b"next")  # the connection still works


if __name__ == "__main__":
    run_tap()
