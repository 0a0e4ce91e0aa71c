#!/usr/bin/python3
"""Connection lifecycle on the wire, with millisecond timers.

Heartbeats (a silent peer is pinged, then cut as stale; a peer that answers pings, or
that keeps sending anything, stays), the idle timeout, slowloris, graceful shutdown
(queued data goes out before the 1001; a second signal exits at once), /broadcast
fan-out order and completeness, the slow-consumer policies (close with 1008 / drop)
while other receivers keep up, an echo client that does not read being slowed by TCP
(reading pauses at half of --max-backpressure) rather than closed or losing echoes,
and 503 over --max-connections.

Timing checks are two-sided where the contract allows: an event must not come before
its interval (minus EARLY for clock rounding) and must come within it plus SLACK
(generous, for a loaded 2-core machine running the server under ASan).
"""

import asyncio
import fcntl
import os
import random
import re
import select
import signal
import socket
import struct
import sys
import termios
import threading
import time
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from wsclient import (OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, Closed,  # noqa: E402
                      RawClient, Server, ServerTestCase, build_request, encode_frame, parse_close,
                      run_tap, wait_for)

import websockets  # noqa: E402

EARLY = 0.03   # s: an interval may appear this much shorter (ms rounding, clocks)
SLACK = 3.0    # s: how late a timer may fire on a loaded machine
MiB = 1 << 20


def frame_ready(buf):
    """True if buf holds at least one whole frame (server frames are unmasked)."""
    if len(buf) < 2:
        return False
    n, need = buf[1] & 0x7F, 2
    if n == 126:
        if len(buf) < 4:
            return False
        n, need = struct.unpack("!H", buf[2:4])[0], 4
    elif n == 127:
        if len(buf) < 10:
            return False
        n, need = struct.unpack("!Q", buf[2:10])[0], 10
    return len(buf) >= need + n


def recv_whole_frame(c):
    """c.recv_frame(), but a timeout never leaves half a frame consumed."""
    while not frame_ready(c.buf):
        c._fill()
    return c.recv_frame()


def wait_log(srv, pattern, timeout=3.0):
    """The first match of pattern in the server's log, waiting up to timeout."""
    rx = re.compile(pattern)
    found = []

    def check():
        m = rx.search(srv.log())
        if m:
            found.append(m)
        return bool(m)
    wait_for(check, timeout)
    return found[0] if found else None


class SmallBufClient(RawClient):
    """A raw client whose receive buffer is set small before connecting, so a server
    writing to it fills its own queue quickly when it does not read."""

    def __init__(self, host, port, rcvbuf=4096, timeout=5.0):
        super().__init__(host, port, timeout=timeout, rcvbuf=rcvbuf)

    def unread(self):
        """Bytes waiting in the kernel receive buffer."""
        return struct.unpack("i", fcntl.ioctl(self.sock.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0]


def small_ws(srv, path, rcvbuf=4096):
    c = SmallBufClient(srv.host, srv.port, rcvbuf=rcvbuf)
    c.handshake(path=path)
    return c


def next_non_ping(c, answer=True, timeout=10.0):
    """The next frame that is not a server ping (answered with a pong if answer).
    Raises socket.timeout if only pings come for timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        f = c.recv_frame()
        if f.opcode != OP_PING:
            return f
        if answer:
            c.send_frame(OP_PONG, f.payload)
        if time.monotonic() > deadline:
            raise socket.timeout(f"only pings for {timeout}s")


def closed_within(c, timeout):
    """True if the server ends the connection within timeout (nothing read is lost:
    data goes to c.buf)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([c.sock], [], [], max(0.0, min(0.05, deadline - time.monotonic())))
        if r:
            try:
                c._fill()
            except Closed:
                return True
    return False


def refused_or_not_101(srv):
    """A connect during shutdown: refused, or no 101 within 2 s (an error status, EOF,
    or nothing: the kernel may still complete TCP for a socket nobody accepts)."""
    try:
        c = srv.connect(timeout=5)
    except (ConnectionRefusedError, ConnectionResetError):
        return True, "refused"
    try:
        c.send(build_request("/echo"))
        try:
            data = c.read_until_eof(timeout=2)
        except socket.timeout:
            data = bytes(c.buf)
        return not data.startswith(b"HTTP/1.1 101"), f"got {data[:60]!r}"
    finally:
        c.close()


class Reader(threading.Thread):
    """Reads count data messages from a client in the background."""

    def __init__(self, client, count):
        super().__init__(daemon=True)
        self.client, self.count = client, count
        self.msgs = []
        self.error = None

    def run(self):
        try:
            while len(self.msgs) < self.count:
                self.msgs.append(self.client.recv_message())
        except BaseException as e:  # reported by the test thread
            self.error = e

    def finish(self, timeout):
        self.join(timeout)
        if self.is_alive():
            raise AssertionError(f"reader got {len(self.msgs)} of {self.count} messages in {timeout}s")
        if self.error is not None:
            raise AssertionError(f"reader failed after {len(self.msgs)} of {self.count} messages: "
                                 f"{type(self.error).__name__}: {self.error}")
        return self.msgs


def seq_payload(seq, size):
    head = b"%08d:" % seq
    return head + b"x" * (size - len(head))


def seq_of(payload):
    return int(payload[:8])


# ========================================================================================
# heartbeat


class Heartbeat(ServerTestCase):
    PING, PONG = 0.2, 0.5
    server_args = ("--ping-interval", "200", "--pong-timeout", "500")

    def test_silent_client_pinged_then_cut_as_stale(self):
        t0 = time.monotonic()  # the server cannot have heard from us before this
        c = self.ws()
        c.settimeout(self.PING + SLACK)
        f = c.recv_frame()
        t_ping = time.monotonic()
        self.assertEqual((f.opcode, f.payload), (OP_PING, b""), f"expected an empty ping, got {f!r}")
        self.assertGreaterEqual(t_ping - t0, self.PING - EARLY, "ping before the ping interval")
        rest = c.read_until_eof(timeout=self.PONG + SLACK)
        t_cut = time.monotonic()
        self.assertEqual(rest, b"", "a stale connection is cut without a close frame or more pings")
        self.assertGreaterEqual(t_cut - t0, self.PING + self.PONG - EARLY,
                                "cut before ping interval + pong timeout")
        self.assertLessEqual(t_cut - t0, self.PING + self.PONG + SLACK)
        self.assertIsNotNone(wait_log(self.server, r"stale"), "no log line with 'stale'")

    def test_raw_client_answering_pings_stays(self):
        c = self.ws()
        c.settimeout(self.PING + SLACK)
        pings = 0
        end = time.monotonic() + 1.5   # 2 ping + pong-timeout cycles
        while time.monotonic() < end:
            try:
                c.settimeout(max(0.01, end - time.monotonic()))
                f = c.recv_frame()
            except socket.timeout:
                break
            self.assertEqual((f.opcode, f.payload), (OP_PING, b""), f"unexpected {f!r}")
            pings += 1
            c.send_frame(OP_PONG, f.payload)
        c.settimeout(5)
        self.assertGreaterEqual(pings, 2, "expected repeated pings over 1.5 s with a 200 ms interval")
        c.send_frame(OP_TEXT, b"still here")
        f = next_non_ping(c)
        self.assertEqual((f.opcode, f.payload), (OP_TEXT, b"still here"))

    def test_websockets_client_stays_and_echoes(self):
        async def go():
            async with websockets.connect(self.server.uri(), compression=None, open_timeout=5,
                                          close_timeout=5, ping_interval=None) as ws:
                await ws.send("first")
                self.assertEqual(await asyncio.wait_for(ws.recv(), 5), "first")
                await asyncio.sleep(1.5)  # 2 ping + pong-timeout cycles; pongs automatic
                self.assertTrue(ws.open, f"closed: code {ws.close_code}")
                for i in range(3):
                    await ws.send(f"after {i}")
                    self.assertEqual(await asyncio.wait_for(ws.recv(), 5), f"after {i}")
                    await asyncio.sleep(0.3)
                await ws.send(b"\x00\x01binary")
                self.assertEqual(await asyncio.wait_for(ws.recv(), 5), b"\x00\x01binary")
                await ws.close()
                self.assertEqual(ws.close_code, 1000)
        asyncio.run(asyncio.wait_for(go(), 30))

    def _periodic(self, frame_op):
        """Sends a frame every 50 ms for 1.2 s (over 2 ping + pong-timeout cycles) and
        never answers the server's pings: the traffic alone must keep it alive."""
        c = self.ws()
        end = time.monotonic() + 1.2
        i = 0
        while time.monotonic() < end:
            payload = b"tick %d" % i
            if not c.send_frame(frame_op, payload):
                self.fail(f"connection cut after {i} frames sent every 50 ms")
            want = OP_PONG if frame_op == OP_PING else frame_op
            while True:
                try:
                    f = c.recv_frame()
                except Closed:
                    self.fail(f"connection cut after {i} frames sent every 50 ms")
                if f.opcode != OP_PING:
                    break
                # A ping under load (a late sleep) is allowed; it is never answered.
            self.assertEqual((f.opcode, f.payload), (want, payload))
            i += 1
            time.sleep(0.05)
        c.send_frame(OP_TEXT, b"end")
        f = next_non_ping(c, answer=False)
        self.assertEqual((f.opcode, f.payload), (OP_TEXT, b"end"))

    def test_client_sending_data_periodically_is_not_cut(self):
        self._periodic(OP_TEXT)

    def test_client_sending_own_pings_periodically_is_not_cut(self):
        self._periodic(OP_PING)

    def test_any_frame_after_ping_counts_as_alive(self):
        c = self.ws()
        c.settimeout(self.PING + SLACK)
        f = c.recv_frame()
        self.assertEqual(f.opcode, OP_PING)
        c.send_frame(OP_BINARY, b"not a pong")     # any frame restarts the heartbeat
        f = c.recv_frame()
        self.assertEqual((f.opcode, f.payload), (OP_BINARY, b"not a pong"))
        # Silence again: the heartbeat starts over, so the next thing is another ping,
        # not a cut.
        try:
            f = c.recv_frame()
        except Closed:
            self.fail("cut although a data frame answered the ping")
        self.assertEqual((f.opcode, f.payload), (OP_PING, b""))
        c.send_frame(OP_PONG, b"")
        c.send_frame(OP_TEXT, b"alive")
        f = next_non_ping(c)
        self.assertEqual((f.opcode, f.payload), (OP_TEXT, b"alive"))


class HeartbeatNoPongTimeout(ServerTestCase):
    server_args = ("--ping-interval", "150", "--pong-timeout", "0")

    def test_silent_client_pinged_repeatedly_never_cut(self):
        c = self.ws()
        pings = 0
        end = time.monotonic() + 1.2
        while time.monotonic() < end:
            try:
                c.settimeout(max(0.01, end - time.monotonic()))
                f = c.recv_frame()
            except socket.timeout:
                break
            except Closed:
                self.fail(f"cut after {pings} pings with --pong-timeout 0")
            self.assertEqual((f.opcode, f.payload), (OP_PING, b""))
            pings += 1
        c.settimeout(5)
        self.assertGreaterEqual(pings, 2, "pings keep coming to a silent peer with --pong-timeout 0")
        c.send_frame(OP_TEXT, b"x")
        self.assertEqual(next_non_ping(c, answer=False).payload, b"x")


class Defaults(ServerTestCase):
    """No timer options: no ping within a second, no idle close."""

    def test_idle_off_by_default_and_no_early_ping(self):
        c = self.ws()
        c.echo(OP_TEXT, b"hello")
        c.settimeout(1.2)
        with self.assertRaises(socket.timeout, msg="the server sent something to a silent peer"):
            c.recv_frame()
        c.settimeout(5)
        c.echo(OP_TEXT, b"still open")


class PingDisabled(ServerTestCase):
    server_args = ("--ping-interval", "0", "--pong-timeout", "100")

    def test_no_pings_no_cut(self):
        c = self.ws()
        c.settimeout(1.0)
        with self.assertRaises(socket.timeout, msg="the server sent something with --ping-interval 0"):
            c.recv_frame()
        c.settimeout(5)
        c.echo(OP_TEXT, b"still open")


# ========================================================================================
# idle timeout


class Idle(ServerTestCase):
    IDLE = 0.5
    # Server pings every 100 ms (answered): pings and pongs must not reset the idle timer.
    server_args = ("--idle-timeout", "500", "--ping-interval", "100", "--pong-timeout", "5000")

    def expect_idle_close(self, c, since):
        c.settimeout(self.IDLE + SLACK)
        f = next_non_ping(c, timeout=self.IDLE + SLACK)
        t = time.monotonic()
        self.assertEqual(f.opcode, OP_CLOSE, f"expected the idle close, got {f!r}")
        self.assertEqual(parse_close(f.payload), (1001, "idle timeout"))
        self.assertGreaterEqual(t - since, self.IDLE - EARLY, "idle close before the idle timeout")
        self.assertLessEqual(t - since, self.IDLE + SLACK)
        c.send_close(1001)
        c.settimeout(5)
        self.assertEqual(c.read_until_eof(), b"")

    def test_idle_connection_gets_1001(self):
        t0 = time.monotonic()
        c = self.ws()
        self.expect_idle_close(c, t0)

    def test_client_pings_do_not_reset_idle(self):
        t0 = time.monotonic()
        c = self.ws()
        c.settimeout(self.IDLE + SLACK)
        deadline = time.monotonic() + self.IDLE + SLACK
        while time.monotonic() < deadline:
            c.send_frame(OP_PING, b"hb")
            f = next_non_ping(c)
            if f.opcode == OP_CLOSE:
                t = time.monotonic()
                self.assertEqual(parse_close(f.payload), (1001, "idle timeout"))
                self.assertGreaterEqual(t - t0, self.IDLE - EARLY)
                c.send_close(1001)
                self.assertEqual(c.read_until_eof(), b"")
                return
            self.assertEqual((f.opcode, f.payload), (OP_PONG, b"hb"))
            time.sleep(0.05)
        self.fail("pings every 50 ms kept the connection from its idle timeout")

    def test_messages_reset_idle(self):
        c = self.ws()
        end = time.monotonic() + 2.5 * self.IDLE
        i = 0
        while time.monotonic() < end:
            payload = b"m%d" % i
            t_last = time.monotonic()   # the server's last message is after this
            c.send_frame(OP_TEXT, payload)
            f = next_non_ping(c)
            self.assertEqual((f.opcode, f.payload), (OP_TEXT, payload),
                             f"message {i} (one every 50 ms, idle timeout 500 ms)")
            i += 1
            time.sleep(0.05)
        self.expect_idle_close(c, t_last)

    def test_messages_to_a_silent_receiver_reset_its_idle(self):
        # On /broadcast a receiver that never sends a message still has traffic.
        recv = self.ws("/broadcast")
        pub = self.ws("/broadcast")
        end = time.monotonic() + 2.5 * self.IDLE
        i = 0
        while time.monotonic() < end:
            payload = b"b%d" % i
            t_last = time.monotonic()
            pub.send_frame(OP_TEXT, payload)
            for who, c in (("publisher", pub), ("receiver", recv)):
                f = next_non_ping(c)
                self.assertEqual((f.opcode, f.payload), (OP_TEXT, payload), f"{who}, message {i}")
            i += 1
            time.sleep(0.05)
        self.expect_idle_close(recv, t_last)
        self.expect_idle_close(pub, t_last)


# ========================================================================================
# handshake timeout (slowloris)


class Slowloris(ServerTestCase):
    TIMEOUT = 0.5
    server_args = ("--handshake-timeout", "500")

    def test_trickled_request_is_cut(self):
        # A complete, valid request, one byte every 20 ms: about 5 s if nobody cut it.
        req = build_request("/echo", extra_lines=["X-Pad: " + "p" * 100])
        t0 = time.monotonic()
        c = self.connect()
        cut_at = None
        for i in range(len(req)):
            if not c.send(req[i:i + 1]) or closed_within(c, 0.02):
                cut_at = time.monotonic()
                break
        if cut_at is None:
            data = bytes(c.buf)
            try:
                data += c.read_until_eof(timeout=1)
            except socket.timeout:
                pass
            self.fail(f"a request trickled over {time.monotonic() - t0:.1f} s was not cut "
                      f"(handshake timeout 500 ms); got {data[:40]!r}")
        self.assertGreaterEqual(cut_at - t0, self.TIMEOUT - EARLY, "cut before the handshake timeout")
        self.assertLessEqual(cut_at - t0, self.TIMEOUT + SLACK)
        data = bytes(c.buf)
        self.assertFalse(data.startswith(b"HTTP/1.1 101"), "the trickled request was upgraded")

    def test_request_in_pieces_within_time_is_upgraded(self):
        req = build_request("/echo")
        c = self.connect()
        for i in range(0, len(req), 40):
            c.send(req[i:i + 40])
            time.sleep(0.005)
        r = c.read_http_response()
        self.assertEqual(r.status, 101)
        time.sleep(2 * self.TIMEOUT)   # the handshake timer is off once upgraded
        c.echo(OP_TEXT, b"upgraded")


# ========================================================================================
# graceful shutdown


def shutdown_summary(srv):
    m = wait_log(srv, r"shutdown complete: (\d+) connections closed cleanly", timeout=2)
    return int(m.group(1)) if m else None


class Shutdown(unittest.TestCase):
    def test_queued_echo_delivered_before_1001_to_many_clients(self):
        srv = Server("--close-timeout", "15000", "--shutdown-timeout", "20000")
        srv.start()
        clients = []
        try:
            busy = []
            for i in range(6):
                c = small_ws(srv, "/echo")
                clients.append(c)
                payload = os.urandom(MiB)
                c.send_frame(OP_BINARY, payload)
                busy.append((c, payload))
            idle = []
            for i in range(20):
                c = srv.ws_connect()
                clients.append(c)
                idle.append(c)
            idle[-1].echo(OP_TEXT, b"ready")
            # Every echo has started (so it is queued in full) before the signal.
            for i, (c, _) in enumerate(busy):
                self.assertTrue(wait_for(lambda: c.unread() >= 2, 10), f"echo {i} never started")
            srv.send_signal(signal.SIGTERM)
            # The first 1001 shows the signal was handled: from then on no upgrades.
            self.assertEqual(idle[0].recv_close()[0], 1001, "idle client 0")
            ok, what = refused_or_not_101(srv)
            self.assertTrue(ok, f"a connection made after the first 1001 was upgraded: {what}")

            for i, (c, payload) in enumerate(busy):
                c.settimeout(10)
                op, data = c.recv_message()
                self.assertEqual(op, OP_BINARY, f"busy client {i}")
                self.assertTrue(data == payload, f"busy client {i}: echo of {len(payload)} bytes "
                                                 f"came back as {len(data)} different bytes")
                self.assertEqual(c.recv_close()[0], 1001, f"busy client {i}")
                c.send_close(1001)
            for i, c in enumerate(idle):
                if i:
                    self.assertEqual(c.recv_close()[0], 1001, f"idle client {i}")
                c.send_close(1001)
            for i, c in enumerate(clients):
                self.assertEqual(c.read_until_eof(), b"", f"client {i}")
            rc = srv.wait(10)
            self.assertIsNotNone(rc, "server still running 10 s after all peers answered its close")
            self.assertEqual(rc, 0, srv.log_tail())
            n = shutdown_summary(srv)
            self.assertIsNotNone(n, "no 'shutdown complete: N connections closed cleanly' log line:\n"
                                 + srv.log_tail())
            self.assertEqual(n, len(clients), "every client answered the close: " + srv.log_tail(3))
        finally:
            for c in clients:
                c.close()
            srv.kill()
            srv.remove_log()

    def test_queued_broadcasts_delivered_before_1001(self):
        srv = Server("--close-timeout", "15000", "--shutdown-timeout", "20000")
        srv.start()
        clients = []
        try:
            slow = small_ws(srv, "/broadcast")       # never reads until the signal
            pub = srv.ws_connect("/broadcast")
            clients += [slow, pub]
            count, size = 24, 32 * 1024               # 768 KiB: under the default 1 MiB cap
            sent = []
            for i in range(count):
                p = seq_payload(i, size)
                pub.send_frame(OP_BINARY, p)
                sent.append(p)
            # The publisher's copies prove the fan-out of all of them happened.
            for i in range(count):
                self.assertEqual(pub.recv_message(), (OP_BINARY, sent[i]), f"publisher copy {i}")
            srv.send_signal(signal.SIGTERM)
            self.assertEqual(pub.recv_close()[0], 1001)
            pub.send_close(1001)
            slow.settimeout(10)
            for i in range(count):
                op, data = slow.recv_message()
                self.assertTrue(op == OP_BINARY and data == sent[i],
                                f"slow receiver message {i}: got seq {data[:8]!r}")
            self.assertEqual(slow.recv_close()[0], 1001)
            slow.send_close(1001)
            self.assertEqual(slow.read_until_eof(), b"")
            self.assertEqual(pub.read_until_eof(), b"")
            self.assertEqual(srv.wait(10), 0, srv.log_tail())
            self.assertEqual(shutdown_summary(srv), 2, srv.log_tail(3))
        finally:
            for c in clients:
                c.close()
            srv.kill()
            srv.remove_log()

    def second_signal(self, first, second):
        srv = Server("--close-timeout", "30000", "--shutdown-timeout", "30000")
        srv.start()
        c = None
        try:
            c = srv.ws_connect()
            c.echo(OP_TEXT, b"x")
            srv.send_signal(first)
            self.assertEqual(c.recv_close()[0], 1001)   # never answered
            self.assertIsNone(srv.wait(0.5), "the server did not wait for the peer's close")
            ok, what = refused_or_not_101(srv)
            self.assertTrue(ok, f"a connection made during shutdown was upgraded: {what}")
            t = time.monotonic()
            srv.send_signal(second)
            rc = srv.wait(5)
            self.assertIsNotNone(rc, "server still running 5 s after the second signal")
            self.assertLess(time.monotonic() - t, 2 + SLACK)
            self.assertEqual(rc, 1, "exit status after a second signal:\n" + srv.log_tail())
        finally:
            if c:
                c.close()
            srv.kill()
            srv.remove_log()

    def test_second_sigterm_exits_at_once(self):
        self.second_signal(signal.SIGTERM, signal.SIGTERM)

    def test_sigint_then_sigint_exits_at_once(self):
        self.second_signal(signal.SIGINT, signal.SIGINT)

    def test_sigterm_then_sigint_exits_at_once(self):
        self.second_signal(signal.SIGTERM, signal.SIGINT)


# ========================================================================================
# broadcast


class Broadcast(ServerTestCase):
    def test_every_receiver_gets_every_message_in_publisher_order(self):
        K, P, M = 10, 3, 200
        receivers = [self.ws("/broadcast") for _ in range(K)]
        pubs = [self.ws("/broadcast") for _ in range(P)]
        rnd = random.Random(7)
        expected = {p: [] for p in range(P)}
        for i in range(M):
            for p in range(P):
                op = OP_TEXT if (i + p) % 2 == 0 else OP_BINARY
                payload = b"%d:%04d:" % (p, i) + b"z" * rnd.randrange(0, 300)
                expected[p].append((op, payload))
        readers = [Reader(c, P * M) for c in receivers + pubs]  # senders receive too
        for r in readers:
            r.start()
        for i in range(M):
            for p in range(P):
                op, payload = expected[p][i]
                self.assertTrue(pubs[p].send_frame(op, payload), f"publisher {p} cut at {i}")
        for n, r in enumerate(readers):
            who = f"receiver {n}" if n < K else f"publisher {n - K}"
            msgs = r.finish(30)
            per = {p: [] for p in range(P)}
            for op, data in msgs:
                p = int(data.split(b":", 1)[0])
                self.assertIn(p, per, f"{who}: unexpected message {data[:20]!r}")
                per[p].append((op, data))
            for p in range(P):
                got = per[p]
                if got != expected[p]:
                    seqs = [int(d.split(b":")[1]) for _, d in got]
                    self.fail(f"{who}: from publisher {p} got {len(got)} of {M} messages; "
                              f"first sequence numbers {seqs[:10]}...")

    def test_members_leaving_do_not_disturb_the_rest(self):
        cs = [self.ws("/broadcast") for _ in range(6)]
        cs[1].send_close(1000)
        cs[1].expect_close(1000, reply=False)
        cs[3].close()                           # abrupt
        cs[0].send_frame(OP_TEXT, b"first")
        for i in (0, 2, 4, 5):
            self.assertEqual(cs[i].recv_message(), (OP_TEXT, b"first"), f"member {i}")
        cs[5].send_close(1000)
        cs[5].expect_close(1000, reply=False)
        time.sleep(0.1)
        cs[2].send_frame(OP_BINARY, b"second")
        for i in (0, 2, 4):
            self.assertEqual(cs[i].recv_message(), (OP_BINARY, b"second"), f"member {i}")


# ========================================================================================
# slow consumers


class SlowConsumerBase(ServerTestCase):
    TOTAL, SIZE, WINDOW = 1024, 8192, 32   # 8 MiB in all; normal readers <= 256 KiB behind

    def publish(self, slow_path="/broadcast"):
        """A slow receiver that never reads, a publisher and a normal receiver (both
        read everything). Returns (slow, pub, sent)."""
        slow = small_ws(self.server, slow_path)
        self._clients.append(slow)
        pub = self.ws("/broadcast")
        normal = self.ws("/broadcast")
        readers = [Reader(pub, self.TOTAL), Reader(normal, self.TOTAL)]
        for r in readers:
            r.start()
        sent = []
        for i in range(self.TOTAL):
            # The test paces itself on the normal readers (at most WINDOW messages in
            # flight), so only the slow receiver can fall behind.
            if not wait_for(lambda: min(len(r.msgs) for r in readers) >= i - self.WINDOW
                            or any(r.error or not r.is_alive() for r in readers), 20, step=0.001):
                self.fail(f"normal receivers stuck at {[len(r.msgs) for r in readers]} of {i} sent")
            p = seq_payload(i, self.SIZE)
            self.assertTrue(pub.send_frame(OP_BINARY, p), f"publisher cut after {i} messages")
            sent.append(p)
        for who, r in (("publisher", readers[0]), ("normal receiver", readers[1])):
            msgs = r.finish(30)
            bad = [n for n, (op, d) in enumerate(msgs) if op != OP_BINARY or d != sent[n]]
            self.assertEqual(bad, [], f"{who}: messages out of order or damaged at {bad[:5]}")
        return slow, pub, sent

    def read_slow(self, slow, sent, timeout):
        """Reads the slow receiver's stream until a close frame, EOF, or a quiet
        timeout. Returns (seqs, close or None, ended) where ended says EOF came."""
        seqs, close = [], None
        slow.settimeout(timeout)
        try:
            while True:
                f = recv_whole_frame(slow)
                if f.opcode == OP_CLOSE:
                    close = parse_close(f.payload)
                    break
                self.assertEqual(f.opcode, OP_BINARY, f"unexpected frame {f!r}")
                self.assertTrue(f.fin)
                s = seq_of(f.payload)
                self.assertEqual(f.payload, sent[s], f"message {s} damaged")
                seqs.append(s)
        except Closed:
            return seqs, close, True
        except socket.timeout:
            return seqs, close, False
        return seqs, close, False


class SlowConsumerClose(SlowConsumerBase):
    # A long close timeout: the 1008 stays queued behind the data until we read it.
    server_args = ("--max-backpressure", "65536", "--close-timeout", "20000")

    def test_slow_receiver_gets_1008_others_get_everything(self):
        slow, pub, sent = self.publish()
        seqs, close, ended = self.read_slow(slow, sent, timeout=10)
        self.assertIsNotNone(close, f"no close frame after {len(seqs)} messages (ended={ended})")
        self.assertEqual(close, (1008, "slow consumer"))
        self.assertEqual(seqs, list(range(len(seqs))),
                         "messages before the 1008 must be a gap-free prefix, in order")
        self.assertLess(len(seqs), self.TOTAL, "closed yet got every message")
        slow.send_close(1008)
        self.assertEqual(slow.read_until_eof(), b"")
        # The publisher and the normal receiver are unaffected.
        pub.send_frame(OP_TEXT, b"after")
        self.assertEqual(pub.recv_message(), (OP_TEXT, b"after"))


class SlowConsumerCut(SlowConsumerBase):
    # A short close timeout: the slow receiver never reads its 1008 and is cut.
    server_args = ("--max-backpressure", "65536", "--close-timeout", "300")

    def test_slow_receiver_that_never_reads_is_cut(self):
        slow, pub, sent = self.publish()
        time.sleep(0.3 + 0.5)
        seqs, close, ended = self.read_slow(slow, sent, timeout=0.3 + SLACK + 5)
        if close is not None:
            self.assertEqual(close, (1008, "slow consumer"))
            rest = slow.read_until_eof(timeout=SLACK)
            self.assertEqual(rest, b"", "data after the close frame")
        else:
            self.assertTrue(ended, f"still open after {len(seqs)} messages: neither closed nor cut")
        self.assertEqual(seqs, list(range(len(seqs))), "a gap-free prefix, in order")
        self.assertLess(len(seqs), self.TOTAL)
        pub.send_frame(OP_TEXT, b"after")
        self.assertEqual(pub.recv_message(), (OP_TEXT, b"after"))


class SlowConsumerDrop(SlowConsumerBase):
    server_args = ("--max-backpressure", "65536", "--backpressure-policy", "drop")

    def test_slow_receiver_loses_messages_but_stays_open(self):
        slow, pub, sent = self.publish()
        seqs, close, ended = self.read_slow(slow, sent, timeout=1.5)
        self.assertIsNone(close, f"drop policy closed the slow receiver: {close}")
        self.assertFalse(ended, "drop policy cut the slow receiver")
        self.assertEqual(seqs, sorted(set(seqs)), "kept messages are in order, without duplicates")
        self.assertLess(len(seqs), self.TOTAL, "no message was dropped for a receiver that never read")
        self.assertGreater(len(seqs), 0)
        # Its queue has drained: new messages reach it again (retried: under heavy load
        # the backlog may not have been fully read above).
        for attempt in range(10):
            marker = b"marker %d" % attempt
            pub.send_frame(OP_TEXT, marker)
            slow.settimeout(1.5)
            try:
                while True:
                    f = recv_whole_frame(slow)
                    if f.opcode == OP_CLOSE:
                        self.fail(f"drop policy closed the slow receiver: {parse_close(f.payload)}")
                    if f.opcode == OP_TEXT and f.payload.startswith(b"marker"):
                        break
                break
            except socket.timeout:
                continue
        else:
            self.fail("the slow receiver never got a new message after draining its queue")
        slow.settimeout(5)
        slow.send_frame(OP_TEXT, b"from slow")
        while True:
            op, data = slow.recv_message()
            if data == b"from slow":
                break
            self.assertTrue(data.startswith(b"marker"), f"unexpected {data[:20]!r}")


def echo_without_reading(self):
    """An /echo client with a small receive buffer sends 16 MiB of 4 KiB messages
    without reading for 0.5 s, then reads. The server must pause reading from it (at
    half of --max-backpressure), so TCP slows the sender: every echo comes back, in
    order, with no close. (16 MiB is several times what the kernel buffers hold on
    loopback, so the server's own queue does fill up.)"""
    c = small_ws(self.server, "/echo")
    count, size = 4096, 4096
    payloads = [seq_payload(i, size) for i in range(count)]
    wire = b"".join(encode_frame(OP_BINARY, p) for p in payloads)
    err = []

    def writer():
        try:
            c.sock.sendall(wire)
        except BaseException as e:
            err.append(e)
    c.settimeout(30)
    t = threading.Thread(target=writer, daemon=True)
    t.start()
    time.sleep(0.5)            # not reading: the server must pause, not close or drop
    for i in range(count):
        try:
            f = c.recv_frame()
        except Closed:
            self.fail(f"connection ended after {i} of {count} echoes")
        if f.opcode == OP_CLOSE:
            self.fail(f"closed after {i} of {count} echoes: {parse_close(f.payload)}")
        if (f.opcode, f.payload) != (OP_BINARY, payloads[i]):
            self.fail(f"echo {i}: got op {f.opcode:#x} seq {f.payload[:8]!r} "
                      f"(earlier echoes dropped?)")
    t.join(10)
    self.assertFalse(t.is_alive(), "writer still blocked after every echo was read")
    self.assertEqual(err, [])
    c.echo(OP_TEXT, b"done")


class EchoBackpressure(ServerTestCase):
    server_args = ("--max-backpressure", "65536")

    def test_echo_client_not_reading_is_slowed_not_closed(self):
        echo_without_reading(self)


class EchoBackpressureDrop(ServerTestCase):
    server_args = ("--max-backpressure", "65536", "--backpressure-policy", "drop")

    def test_echo_client_not_reading_is_slowed_nothing_dropped(self):
        echo_without_reading(self)


# ========================================================================================
# connection limit


class MaxConnections(ServerTestCase):
    server_args = ("--max-connections", "3", "--close-timeout", "2000")

    def test_503_over_the_limit_and_slots_come_back(self):
        cs = [self.ws() for _ in range(3)]
        for attempt in range(2):
            c = self.connect()
            r = c.handshake(expect_status=None)
            self.assertEqual(r.status, 503, f"4th handshake (attempt {attempt}): {r.raw[:100]!r}")
        # A clean close frees a slot at once.
        cs[0].send_close(1000)
        cs[0].expect_close(1000, reply=False)
        new = self.ws()
        new.echo(OP_TEXT, b"in")
        c = self.connect()
        self.assertEqual(c.handshake(expect_status=None).status, 503, "limit holds again")
        # An abrupt disconnect frees one as soon as the server notices.
        cs[1].close()
        got = None
        deadline = time.monotonic() + SLACK
        while time.monotonic() < deadline:
            c = self.connect()
            r = c.handshake(expect_status=None)
            if r.status == 101:
                got = c
                break
            self.assertEqual(r.status, 503)
            time.sleep(0.05)
        self.assertIsNotNone(got, "slot of an abruptly closed connection never came back")
        got.echo(OP_BINARY, b"in again")
        for c in (cs[2], new):
            c.echo(OP_TEXT, b"still here")


if __name__ == "__main__":
    run_tap(budget=110)
