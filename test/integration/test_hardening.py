#!/usr/bin/python3
"""Hardening of the daemon against hostile or unlucky conditions, on the wire.

Running out of file descriptors (recovers, logs once, still exits 0), a bound on pending
handshakes (--max-handshakes: 503 and EOF), a slow /echo consumer (--slow-timeout: its
echoes, then close 1008), upgrade requests with a body or a wrong HTTP version (400,
505), log flooding (similar lines suppressed), configuration refused at start, a memory
budget (--max-memory: 1013 for the connections past it), memory returned to the OS
after a decompression bomb and large messages, and a peer that resets the connection
while the server is echoing a burst.

Every test starts its own daemon on an ephemeral loopback port and stops it with SIGTERM,
expecting exit status 0 (which also catches sanitizer reports). Nothing passes or fails
on timing: waits are polls with generous bounds for a loaded 2-core machine running the
server under ASan.
"""

import os
import resource
import select
import socket
import struct
import sys
import threading
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import wsclient  # noqa: E402
from wsclient import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, Closed,  # noqa: E402
                      OwnServerCase, PmdClient, RawClient, build_request,
                      deflate_raw, encode_frame, parse_close, parse_http_head, run_tap, wait_for)

MiB = 1 << 20

# ASan keeps freed memory in a quarantine (256 MiB by default) and its allocator caches
# freed chunks, so under ASan VmRSS says nothing about what the server frees. For the
# memory-return test only: no quarantine, and free pages go back to the OS at once.
# (Harmless for a binary built without ASan.)
ASAN_RETURN_MEMORY = ("quarantine_size_mb=0:thread_local_quarantine_size_kb=0:"
                      "allocator_release_to_os_interval_ms=0")


def log_bytes(srv):
    """The server's log (stdout and stderr) as bytes; cheap enough for a flooded log."""
    try:
        with open(srv._log.name, "rb") as f:
            return f.read()
    except (OSError, AttributeError):
        return b""


def count_lines(srv, needle):
    return sum(1 for line in log_bytes(srv).splitlines() if needle in line)


def limit_fds_64():
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))


def vm_status(pid, key="VmRSS"):
    """A /proc/PID/status memory figure (VmRSS, VmHWM: the peak RSS), in bytes."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no {key} for pid {pid}")


def send_best_effort(c, data, timeout=10.0):
    """Writes data; returns False instead of raising if the server closed the connection
    or stopped reading (a server refusing a message may do either)."""
    old = c.sock.gettimeout()
    c.sock.settimeout(timeout)
    try:
        c.sock.sendall(data)
        return True
    except (BrokenPipeError, ConnectionResetError, socket.timeout):
        return False
    finally:
        c.sock.settimeout(old)


def fragment_then_ping(c, payload, tag):
    """Sends the first fragment (FIN=0) of a binary message followed by a ping, and
    returns the server's answer: ("pong", None), or ("close", (code, reason)) if it
    closed instead. The pong proves the server has processed the whole fragment, so
    successive calls reach the server one after the other (no race between clients)."""
    send_best_effort(c, encode_frame(OP_BINARY, payload, fin=False) + encode_frame(OP_PING, tag))
    c.settimeout(20)
    try:
        f = c.recv_frame()
    except Closed as e:
        raise AssertionError(f"connection ended without a close frame ({e})")
    if f.opcode == OP_CLOSE:
        return "close", parse_close(f.payload)
    if f.opcode != OP_PONG or f.payload != tag:
        raise AssertionError(f"expected the pong for {tag!r} or a close frame, got {f!r}")
    return "pong", None


def finish_refused(c):
    """After the server's close frame: answer it, then the server must end TCP with
    nothing more on the wire (reset counts as ended)."""
    send_best_effort(c, encode_frame(OP_CLOSE, struct.pack("!H", 1000)), timeout=2)
    rest = c.read_until_eof(timeout=15)
    if rest:
        raise AssertionError(f"{len(rest)} bytes after the close frame: {rest[:60]!r}")


def status_line(data):
    return data.split(b"\r\n", 1)[0].decode("latin-1")


class HardeningCase(OwnServerCase):
    """Each test starts its own server with start_server() and ends with stop_ok()."""

    def client(self, srv, **kw):
        c = srv.connect(**kw)
        self.addCleanup(c.close)
        return c

    def ws(self, srv, path="/echo", **kw):
        c = self.client(srv)
        c.handshake(path=path, **kw)
        return c

    def assert_serves(self, srv):
        with srv.connect(timeout=10) as c:
            c.handshake()
            c.echo(OP_TEXT, b"still serving")
            c.echo(OP_BINARY, os.urandom(3000))


# ========================================================================================
# 1. file descriptor exhaustion


class FdExhaustion(HardeningCase):
    def test_recovers_logs_once_and_exits_0(self):
        # RLIMIT_NOFILE 64 and 70 silent connections: accept() fails with EMFILE while
        # connections wait in the backlog. A server that retries at once spins (and logs)
        # forever; it must back off, log once, and serve again when fds come back.
        srv = self.start_server(preexec=limit_fds_64)
        held = []
        try:
            for _ in range(70):
                held.append(socket.create_connection((srv.host, srv.port), timeout=5))
            time.sleep(1.0)
        finally:
            for s in held:
                s.close()

        def echo_works():
            try:
                with RawClient(srv.host, srv.port, timeout=2) as c:
                    c.handshake()
                    c.echo(OP_TEXT, b"after exhaustion")
                    return True
            except (OSError, Closed, AssertionError):  # ProtocolFailure is one too
                return False
        with self.subTest("a: serves again"):
            self.assertTrue(wait_for(echo_works, 10, step=0.2),
                            "no echo within 10 s after the 70 connections were closed")
        with self.subTest("b: logs once per episode"):
            n = count_lines(srv, b"out of file descriptors")
            self.assertLessEqual(n, 5, f"{n} lines with 'out of file descriptors'")
        with self.subTest("c: SIGTERM exits 0"):
            self.stop_ok(srv)


# ========================================================================================
# 2. pending handshakes are bounded


class MaxHandshakes(HardeningCase):
    def test_503_and_eof_past_the_limit_then_slots_come_back(self):
        srv = self.start_server("--max-handshakes", "4", "--handshake-timeout", "20000")
        idle = [self.client(srv) for _ in range(4)]   # connect and send nothing
        # Connections are accepted in order, so these come after the 4 pending ones.
        for n in range(2):
            c = self.client(srv, timeout=10)
            data = c.read_until_eof(timeout=10)      # we send nothing at all
            self.assertRegex(status_line(data), r"^HTTP/1\.1 503\b",
                             f"connection {n + 5} with 4 handshakes pending: {data[:120]!r}")
            self.assertIn(b"\r\n\r\n", data, "incomplete response head before EOF")
            parse_http_head(data[:data.index(b"\r\n\r\n")])
        for c in idle:
            c.close()
        # The server notices the closes on its own schedule: poll for an upgrade.
        last = []

        def upgrades():
            with RawClient(srv.host, srv.port, timeout=5) as c:
                r = c.handshake(expect_status=None)
                last[:] = [r.status]
                if r.status == 101:
                    c.echo(OP_TEXT, b"in")
                    return True
                self.assertEqual(r.status, 503, f"while slots free up: {r.raw[:100]!r}")
                return False
        self.assertTrue(wait_for(upgrades, 10, step=0.1),
                        f"no upgrade within 10 s after the 4 pending closed (last status {last})")
        self.stop_ok(srv)


# ========================================================================================
# 3. slow consumer on /echo


class SlowEchoConsumer(HardeningCase):
    SIZE = 32 * 1024
    CAP = 1024          # 32 MiB: far more than the socket buffers on both sides hold

    def test_not_reading_gets_its_echoes_then_1008(self):
        # A long close timeout: the 1008 waits behind the echoes until we read them, and
        # the server cannot cut TCP (losing them) before we get there.
        srv = self.start_server("--max-backpressure", "65536", "--slow-timeout", "1000",
                                "--close-timeout", "20000")
        c = RawClient(srv.host, srv.port, rcvbuf=65536)
        self.addCleanup(c.close)
        c.handshake()
        sent, pending = [], b""
        c.sock.setblocking(False)
        # Send until the socket stays full for 2 s: then the server has stopped reading
        # (reading pauses at half of --max-backpressure), not merely lagged.
        while len(sent) < self.CAP:
            p = (b"%08d:" % len(sent)) + bytes([len(sent) & 0xFF]) * (self.SIZE - 9)
            wire = encode_frame(OP_BINARY, p)
            try:
                n = c.sock.send(wire)
            except BlockingIOError:
                _, w, _ = select.select([], [c.sock], [], 2.0)
                if w:
                    continue
                break
            if n < len(wire):           # a partial frame: finished after the close frame
                pending = wire[n:]
                break
            sent.append(p)
        c.sock.settimeout(10)
        self.assertLess(len(sent), self.CAP, "the server kept reading from a client that "
                                             "never read its echoes")
        time.sleep(3.0)                 # not reading: over --slow-timeout stalled
        got = 0
        try:
            while True:
                f = c.recv_frame()
                if f.opcode == OP_CLOSE:
                    close = parse_close(f.payload)
                    break
                self.assertEqual((f.opcode, f.fin), (OP_BINARY, True), f"unexpected {f!r}")
                self.assertLess(got, len(sent), "more echoes than messages sent")
                self.assertTrue(f.payload == sent[got],
                                f"echo {got} damaged or out of order: {f.payload[:12]!r}")
                got += 1
        except socket.timeout:
            self.fail(f"no close frame within 10 s after {got} echoes of {len(sent)} sent")
        except Closed as e:
            self.fail(f"connection ended ({e}) without a close frame after {got} echoes")
        self.assertEqual(close[0], 1008, f"close {close} after {got} echoes")
        self.assertGreater(got, 0, "the echoes before the close were lost")
        send_best_effort(c, pending + encode_frame(OP_CLOSE, struct.pack("!H", 1008)))
        rest = c.read_until_eof(timeout=25)
        self.assertEqual(rest, b"", "data after the close frame")
        self.assert_serves(srv)
        self.stop_ok(srv)


# ========================================================================================
# 4. upgrade requests with a body, and HTTP versions other than 1.1


class UpgradeRequestShape(HardeningCase):
    def respond(self, request):
        srv = self.start_server()
        c = self.client(srv)
        r = c.request(request)
        return srv, c, r

    def test_content_length_5_gets_400(self):
        # A GET with a body: the body would otherwise be parsed as WebSocket frames.
        srv, _, r = self.respond(build_request(headers={"Content-Length": "5"}) + b"hello")
        self.assertEqual(r.status, 400, r.raw[:200])
        self.assert_serves(srv)
        self.stop_ok(srv)

    def test_transfer_encoding_chunked_gets_400(self):
        srv, _, r = self.respond(build_request(headers={"Transfer-Encoding": "chunked"})
                                 + b"5\r\nhello\r\n0\r\n\r\n")
        self.assertEqual(r.status, 400, r.raw[:200])
        self.assert_serves(srv)
        self.stop_ok(srv)

    def test_content_length_0_still_upgrades(self):
        srv = self.start_server()
        c = self.client(srv)
        r = c.handshake(headers={"Content-Length": "0"}, expect_status=None)
        self.assertEqual(r.status, 101, r.raw[:200])
        c.echo(OP_TEXT, b"empty body is no body")
        self.stop_ok(srv)

    def test_http_2_0_request_line_gets_505(self):
        srv, _, r = self.respond(build_request(version="HTTP/2.0"))
        self.assertEqual(r.status, 505, r.raw[:200])
        self.assert_serves(srv)
        self.stop_ok(srv)


# ========================================================================================
# 5. log flood


class LogFlood(HardeningCase):
    def test_300_rejected_handshakes_are_summarised(self):
        srv = self.start_server()
        for i in range(300):
            with srv.connect() as c:
                r = c.request(build_request(path="/nope"))
                self.assertEqual(r.status, 404, f"handshake {i}: {r.raw[:100]!r}")
        # The summary may only come when the suppression interval ends.
        summary = wait_for(lambda: b"similar lines suppressed" in log_bytes(srv), 5, step=0.1)
        rejected = count_lines(srv, b"rejected")
        self.assertLess(rejected, 100, f"{rejected} 'rejected' lines for 300 bad handshakes")
        self.assertTrue(summary, "no 'similar lines suppressed' line within 5 s of the flood")
        self.assert_serves(srv)
        self.stop_ok(srv)


# ========================================================================================
# 6. bad configuration is refused at start


class BadConfiguration(HardeningCase):
    def refused(self, args, names):
        """The server must exit non-zero without listening, naming the option."""
        shown = [a if len(a) <= 40 else f"<{len(a)} bytes: {a[:12]}...>" for a in args]
        srv = self.new_server(*args)
        try:
            srv.start()
        except RuntimeError as e:
            rc = srv.proc.returncode if srv.proc else None
            self.assertTrue(rc is not None and rc > 0,
                            f"{shown!r}: no clean non-zero exit (status {rc}): {e}")
            text = str(e).lower()
            self.assertTrue(any(n in text for n in names),
                            f"{shown!r}: the message names none of {names}: {e}")
            return
        srv.kill()
        self.fail(f"{shown!r} was accepted: the server is listening on port {srv.port}")

    def accepted(self, args):
        srv = self.start_server(*args)
        self.assert_serves(srv)
        self.stop_ok(srv)

    def test_subprotocol_with_crlf_refused(self):
        # It would be written into the 101 response: header injection.
        self.refused(["--subprotocol", "a\r\nX-Evil: 1"], ["subprotocol"])

    def test_subprotocol_of_600_bytes_refused(self):
        self.refused(["--subprotocol", "p" * 600], ["subprotocol"])

    def test_max_memory_0_refused(self):
        self.accepted(["--max-memory", "8m"])   # the option exists: 0 is refused as a value
        self.refused(["--max-memory", "0"], ["max-memory", "max_memory"])

    def test_max_handshakes_0_refused(self):
        self.accepted(["--max-handshakes", "4"])
        self.refused(["--max-handshakes", "0"], ["max-handshakes", "max_handshakes"])

    def test_idle_timeout_3000000000_refused(self):
        # Over 32 bits of milliseconds.
        self.refused(["--idle-timeout", "3000000000"], ["idle"])

    def test_subprotocol_of_100_token_chars_accepted_and_echoed(self):
        name = ("chat.v1-" + "abcdefghij" * 10)[:100]
        srv = self.start_server("--subprotocol", name)
        c = self.client(srv)
        r = c.handshake(headers={"Sec-WebSocket-Protocol": "other, " + name})
        self.assertEqual(r.header_all("Sec-WebSocket-Protocol"), [name], r.raw[:300])
        c.echo(OP_TEXT, b"sp")
        self.stop_ok(srv)


# ========================================================================================
# 7. memory budget


class MemoryBudget(HardeningCase):
    FRAG = 1_000_000

    def test_1013_past_the_budget_first_ones_complete(self):
        srv = self.start_server("--max-memory", "8m", "--max-message", "1m")
        cs = [self.ws(srv) for _ in range(20)]
        first = bytes(range(256)) * (self.FRAG // 256) + bytes(self.FRAG % 256)
        answers = []
        for i, c in enumerate(cs):
            # One at a time (the ping's pong or a close ends each step): the server holds
            # the earlier fragments while it reads the next.
            answers.append(fragment_then_ping(c, first, b"conn %d" % i))
        kept = [i for i, (what, _) in enumerate(answers) if what == "pong"]
        refused = {i: a[1] for i, a in enumerate(answers) if a[0] == "close"}
        other = {i: cl for i, cl in refused.items() if cl[0] != 1013}
        self.assertEqual(other, {}, "connections closed with a code other than 1013")
        # 20 x 1,000,000 bytes cannot be held in 8 MiB: at most 8 fit.
        self.assertGreaterEqual(len(refused), 12, f"only {sorted(refused)} got 1013; "
                                                  f"{len(kept)} hold 1 MB each under 8 MiB")
        self.assertGreaterEqual(len(kept), 5, f"only {kept} kept their first fragment")
        self.assertEqual(kept, list(range(len(kept))), "the first ones are the ones kept")
        for i in refused:
            finish_refused(cs[i])
        for i in kept:
            c = cs[i]
            c.settimeout(20)
            tail = b"end %d" % i
            c.send_frame(OP_CONT, tail, fin=True)
            try:
                op, data = c.recv_message()
            except (AssertionError, Closed) as e:
                raise AssertionError(f"connection {i} (of {len(kept)} kept, "
                                     f"{len(refused)} refused) completing its message: {e}")
            self.assertEqual(op, OP_BINARY, f"connection {i}")
            self.assertTrue(data == first + tail,
                            f"connection {i}: echo of {len(data)} bytes, expected {len(first + tail)}")
        for i in kept:
            cs[i].send_close(1000)
            cs[i].expect_close(1000, reply=False, timeout=10)
        self.assert_serves(srv)
        self.stop_ok(srv)


# ========================================================================================
# 8. memory comes back


class MemoryReturned(HardeningCase):
    def test_rss_back_to_baseline_after_bomb_fragments_and_large_echoes(self):
        asan = os.environ.get("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        srv = self.start_server("--max-message", "16m", env={"ASAN_OPTIONS": asan + ":" + ASAN_RETURN_MEMORY})
        pid = srv.proc.pid
        with srv.connect() as c:
            c.handshake()
            c.echo(OP_TEXT, b"warm up")
            c.send_close(1000)
            c.expect_close(1000, reply=False)
        base = vm_status(pid)

        # (a) a decompression bomb: 32 MiB of zeros in ~32 KiB; over --max-message inflated.
        p = PmdClient(srv.host, srv.port, timeout=20)
        self.addCleanup(p.close)
        p.handshake(offer="permessage-deflate; client_no_context_takeover")
        self.assertIsNotNone(p.pmd, "permessage-deflate was not agreed")
        p.send_payload_fragments(OP_BINARY, deflate_raw(bytes(32 * MiB)), 1, rsv1=True)
        p.expect_close(1009, timeout=20)
        p.close()

        # (b) 50 unfinished 200 KB messages, then every client goes away.
        frag = os.urandom(200_000)
        cs = [self.ws(srv) for _ in range(50)]
        for i, c in enumerate(cs):
            what, cl = fragment_then_ping(c, frag, b"f%d" % i)
            if what == "close":   # a memory budget may refuse some; nothing else may
                self.assertEqual(cl[0], 1013, f"fragment {i}: close {cl}")
        for c in cs:
            c.close()

        # (c) 20 clients, each echoes a 4 MiB message (all stay open until the end).
        big = os.urandom(4 * MiB)
        wire = encode_frame(OP_BINARY, big)
        cs = [self.ws(srv) for _ in range(20)]
        for i, c in enumerate(cs):
            c.settimeout(30)
            t = threading.Thread(target=send_best_effort, args=(c, wire, 30), daemon=True)
            t.start()   # the echo comes back while we send: read concurrently
            op, data = c.recv_message()
            t.join(30)
            self.assertTrue(op == OP_BINARY and data == big, f"4 MiB echo {i}: {len(data)} bytes")
        for c in cs:
            c.close()

        limit = base + MiB
        now = [vm_status(pid)]

        def back():
            now[0] = vm_status(pid)
            return now[0] <= limit
        ok = wait_for(back, 15, step=0.2)
        peak = vm_status(pid, "VmHWM")
        figures = (f"VmRSS baseline {base >> 10} KiB, peak (VmHWM) {peak >> 10} KiB, "
                   f"after {now[0] >> 10} KiB (limit {limit >> 10} KiB)")
        print("# " + figures, flush=True)
        self.assertTrue(ok, "memory not returned within 15 s: " + figures)
        self.assert_serves(srv)
        self.stop_ok(srv)


# ========================================================================================
# 9. a peer that resets in the middle of a burst of echoes


class ResetDuringBurst(HardeningCase):
    def test_reset_after_50_messages_server_keeps_serving(self):
        srv = self.start_server()
        burst = b"".join(encode_frame(OP_TEXT, b"burst %d" % i) for i in range(50))
        linger_0 = struct.pack("ii", 1, 0)
        for _ in range(20):     # the reset lands at different points of the dispatch
            c = RawClient(srv.host, srv.port)
            try:
                c.handshake()
                c.send(burst)
                c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger_0)
            finally:
                c.close()       # RST
        self.assertTrue(srv.alive(), "the server died:\n" + srv.log_tail())
        self.assert_serves(srv)
        self.stop_ok(srv)


if __name__ == "__main__":
    run_tap(budget=115)
