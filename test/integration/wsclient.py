"""Helpers for wsreactor's integration tests.

Starts the real server binary (path in $WSR_BIN) on an ephemeral loopback port, talks to
it with a raw-socket WebSocket client that can put arbitrary bytes on the wire, and runs
unittest test cases with a TAP reporter (`run_tap()`).

Stdlib only; the tests that use a real client import `websockets` themselves.
Run with /usr/bin/python3 (Debian's python3-websockets belongs to it).
"""

import atexit
import base64
import ctypes
import hashlib
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
import traceback
import unittest

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA

IO_TIMEOUT = 5.0        # every socket read/write is bounded by this
# Wait for the "listening on" line; WSR_START_TIMEOUT raises it for slow runs (the
# daemon under valgrind starts in seconds).
START_TIMEOUT = float(os.environ.get("WSR_START_TIMEOUT", "5"))
STOP_TIMEOUT = 10.0     # wait for the process to exit after SIGTERM

# Close codes a server may put on the wire (RFC 6455 §7.4.1, §7.4.2 and the IANA registry).
VALID_WIRE_CODES = set(range(1000, 1004)) | set(range(1007, 1015)) | set(range(3000, 5000))


# What the binary under test was built with (test/integration/meson.build sets these).
HAS_TLS = os.environ.get("WSR_HAS_TLS", "1") != "0"
HAS_JWT = os.environ.get("WSR_HAS_JWT", "1") != "0"
NO_TLS = "this build has no TLS support (-Dtls=disabled)"
NO_JWT = "this build has no JWT support (-Dtls=disabled, or -Dstatic=true without a static libjwt)"


def require_features(argv):
    """Skips the running test when argv asks for TLS or JWT and the binary has none:
    such a build refuses those options at start (CheckConfig tests that refusal)."""
    if not HAS_TLS and any(a in ("--listen-tls", "--tls-cert", "--tls-key") for a in argv):
        raise unittest.SkipTest(NO_TLS)
    if not HAS_JWT and any(str(a).startswith("--jwt-") for a in argv):
        raise unittest.SkipTest(NO_JWT)


def server_binary():
    path = os.environ.get("WSR_BIN", "")
    if not path:
        raise RuntimeError("WSR_BIN is not set: it must name the wsreactor binary to test")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise RuntimeError(f"WSR_BIN={path!r} is not an executable file")
    return path


def accept_key(key):
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 §4.2.2)."""
    if isinstance(key, str):
        key = key.encode("ascii")
    return base64.b64encode(hashlib.sha1(key + WS_GUID).digest()).decode("ascii")


def wait_for(pred, timeout, step=0.02):
    """Polls pred until it holds or timeout seconds pass; returns its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


def new_key():
    return base64.b64encode(os.urandom(16)).decode("ascii")


def _die_with_parent():
    # The server must never outlive a test script that was killed (meson timeout).
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def server_env(extra=None):
    """The environment a daemon under test runs in: hermetic (no WSR_* configuration
    from the caller's environment); under ASan/UBSan, reports go to stderr and leaks
    and UB fail the exit code. extra is added last."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WSR_")}
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    env.update(extra or {})
    return env


_LISTEN_RE = re.compile(r"listening on (\[[0-9A-Fa-f:.]+\]|[0-9.]+):(\d+)")

_live_servers = []


class Server:
    """The wsreactor binary as a subprocess on an ephemeral loopback port.

    A subclass with other listeners overrides listen_args() (the listener options),
    listening(log) (whether the log shows them all; it records their ports) and
    listening_what (for the error when they do not come)."""

    listening_what = "'listening on'"

    def __init__(self, *args, host="127.0.0.1", log_level=None, preexec=None, env=None):
        """preexec runs in the child before exec (e.g. to set a resource limit); env is
        added to the environment the server sees."""
        self.args = list(args)
        self.host = host
        self.log_level = log_level
        self.preexec = preexec
        self.extra_env = dict(env or {})
        self.proc = None
        self.port = None
        self.listen_host = None
        self.returncode = None
        self._log = None

    # -- lifecycle ---------------------------------------------------------------------
    def listen_args(self):
        return ["--listen", f"[{self.host}]:0" if ":" in self.host else f"{self.host}:0"]

    def listening(self, log):
        m = _LISTEN_RE.search(log)
        if m:
            self.listen_host = m.group(1)
            self.port = int(m.group(2))
        return m is not None

    def start(self):
        """Starts the process and waits until it listens; kills it (and raises
        RuntimeError with its log's tail) if it exits or does not listen in time."""
        argv = [server_binary()] + self.listen_args() + self.args
        require_features(argv)
        if self.log_level:
            argv += ["--log-level", self.log_level]
        self._log = tempfile.NamedTemporaryFile(prefix="wsr-", suffix=".log", delete=False)

        def in_child():
            _die_with_parent()
            if self.preexec:
                self.preexec()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, env=server_env(self.extra_env),
                                     preexec_fn=in_child)
        _live_servers.append(self)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.listening(self.log()):
                return self
            if self.proc.poll() is not None:
                why = f"server exited with {self.proc.returncode} before listening"
                break
            time.sleep(0.02)
        else:
            why = f"server did not log {self.listening_what} within {START_TIMEOUT}s"
        tail = self.log_tail()
        self.kill()
        self.remove_log()
        raise RuntimeError(f"{why}:\n" + tail)

    def log(self):
        if not self._log:
            return ""
        try:
            with open(self._log.name, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, lines=25):
        return "\n".join(self.log().splitlines()[-lines:])

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout=STOP_TIMEOUT):
        """Waits for exit; returns the exit status, or None if it is still running."""
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.returncode

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """Signals the server and waits. Returns its exit status (SIGKILLed if it hangs:
        then the status is negative)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            if self.wait(timeout) is None:
                self.kill()
        self.returncode = self.proc.returncode
        self._cleanup()
        return self.returncode

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.returncode = self.proc.returncode if self.proc else None
        self._cleanup()

    def _cleanup(self):
        if self in _live_servers:
            _live_servers.remove(self)

    def remove_log(self):
        if self._log:
            try:
                self._log.close()
                os.unlink(self._log.name)
            except OSError:
                pass

    # -- clients -----------------------------------------------------------------------
    def connect(self, timeout=IO_TIMEOUT):
        return RawClient(self.host, self.port, timeout=timeout)

    def ws_connect(self, path="/echo", **kw):
        c = RawClient(self.host, self.port)
        c.handshake(path=path, **kw)
        return c

    def uri(self, path="/echo"):
        h = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{h}:{self.port}{path}"

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.kill()
        self.remove_log()


def kill_all_servers():
    for s in list(_live_servers):
        s.kill()


NODE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "node")


def run_node_client(test, *args, timeout=50):
    """Runs the node `ws` interop client (node/ws_client.mjs) with args for a test case:
    skips the test when node or node_modules/ws is missing, and asserts the client
    exited 0 after a TAP plan with no failed case. Returns its TAP output."""
    node = shutil.which("node")
    if not node:
        test.skipTest("node is not installed")
    if not os.path.isfile(os.path.join(NODE_DIR, "node_modules", "ws", "package.json")):
        test.skipTest("node_modules missing: run `npm ci --prefix test/integration/node`")
    try:
        p = subprocess.run([node, os.path.join(NODE_DIR, "ws_client.mjs"), *args],
                           capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        test.fail(f"node client still running after {timeout} s:\n{(e.stdout or '')[-2000:]}")
    out = p.stdout
    bad = [ln for ln in out.splitlines() if ln.startswith("not ok") or ln.startswith("# ")]
    test.assertEqual(p.returncode, 0, "node ws client failed:\n" + "\n".join(bad[:30])
                     + "\n" + p.stderr[-2000:])
    test.assertRegex(out, r"(?m)^1\.\.\d+$")
    test.assertNotIn("not ok", out)
    return out


# ----------------------------------------------------------------------------------------
# frames


def mask_bytes(data, key):
    n = len(data)
    if n == 0:
        return b""
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(k, "little")).to_bytes(n, "little")


def encode_frame(opcode, payload=b"", fin=True, rsv=0, mask=True, length_form=None,
                 length=None, key=None):
    """One frame's bytes. rsv: 3-bit value (4 = RSV1, 2 = RSV2, 1 = RSV3).
    length_form: None for the minimal encoding, or 7/16/64 to force one (non-minimal
    encodings are protocol errors). length: a lie about the payload length."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0xF)
    mbit = 0x80 if mask else 0
    if length_form is None:
        length_form = 7 if n < 126 else 16 if n < 65536 else 64
    if length_form == 7:
        head = struct.pack("!BB", b0, mbit | n)
    elif length_form == 16:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if not mask:
        return head + payload
    if key is None:
        key = os.urandom(4)
    return head + key + mask_bytes(payload, key)


def close_payload(code=None, reason=b""):
    if code is None:
        return b""
    if isinstance(reason, str):
        reason = reason.encode("utf-8")
    return struct.pack("!H", code) + reason


class Frame:
    __slots__ = ("fin", "rsv", "opcode", "payload")

    def __init__(self, fin, rsv, opcode, payload):
        self.fin, self.rsv, self.opcode, self.payload = fin, rsv, opcode, payload

    def __repr__(self):
        p = self.payload if len(self.payload) <= 40 else self.payload[:40] + b"..."
        return f"Frame(fin={self.fin}, rsv={self.rsv}, op={self.opcode:#x}, len={len(self.payload)}, {p!r})"


class ProtocolFailure(AssertionError):
    """The server put something on the wire that RFC 6455 forbids."""


class Closed(Exception):
    """The server closed the TCP connection (EOF or reset)."""


class HttpResponse:
    def __init__(self, status, reason, version, headers, body, raw):
        self.status, self.reason, self.version = status, reason, version
        self.headers = headers  # list of (name, value)
        self.body, self.raw = body, raw

    def header(self, name):
        """The value of the first header with this name (case-insensitive), or None."""
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def header_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def __repr__(self):
        return f"HttpResponse({self.raw[:400]!r})"


def parse_http_head(raw):
    text = raw.decode("latin-1")
    lines = text.split("\r\n")
    m = re.match(r"^(HTTP/\d\.\d) (\d{3})(?: (.*))?$", lines[0])
    if not m:
        raise ProtocolFailure(f"bad status line {lines[0]!r}")
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        if ":" not in line:
            raise ProtocolFailure(f"bad header line {line!r}")
        k, v = line.split(":", 1)
        headers.append((k.strip(), v.strip()))
    return m.group(1), int(m.group(2)), m.group(3) or "", headers


def build_request(path="/echo", key=None, host="127.0.0.1", method="GET", version="HTTP/1.1",
                  headers=None, omit=(), extra_lines=()):
    """An upgrade request. headers: dict/list overriding the defaults; omit: default header
    names to leave out; extra_lines: raw header lines appended as-is."""
    if key is None:
        key = new_key()
    base = [("Host", host), ("Upgrade", "websocket"), ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", key), ("Sec-WebSocket-Version", "13")]
    over = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    over_names = {k.lower() for k, _ in over}
    omit_l = {o.lower() for o in omit}
    lines = [f"{method} {path} {version}"]
    for k, v in base:
        if k.lower() in omit_l or k.lower() in over_names:
            continue
        lines.append(f"{k}: {v}")
    for k, v in over:
        if k.lower() in omit_l:
            continue
        lines.append(f"{k}: {v}")
    lines.extend(extra_lines)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class RawClient:
    """A WebSocket client over a plain socket that writes exactly the bytes it is told to
    and checks every server frame against RFC 6455 (unmasked, RSV 0, minimal lengths,
    well-formed control frames)."""

    def __init__(self, host, port, timeout=IO_TIMEOUT, rcvbuf=None):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        if rcvbuf:  # before connect, so the window the server sees is small from the start
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.connect((host, port))
        self.buf = bytearray()
        self.eof = False
        self.reset = False
        self.response = None
        self.key = None

    def settimeout(self, t):
        self.sock.settimeout(t)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- raw I/O -------------------------------------------------------------------------
    def send(self, data):
        """Writes all bytes. Returns False (instead of raising) if the server already
        closed the connection."""
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False

    def send_slowly(self, data, chunk=1, pause=0.001):
        for i in range(0, len(data), chunk):
            if not self.send(data[i:i + chunk]):
                return False
            time.sleep(pause)
        return True

    def _fill(self):
        """Reads more bytes into buf; raises Closed at EOF/reset, socket.timeout on
        timeout."""
        if self.eof:
            raise Closed("connection already closed")
        try:
            data = self.sock.recv(1 << 20)
        except ConnectionResetError:
            self.eof = self.reset = True
            raise Closed("connection reset by server")
        if not data:
            self.eof = True
            raise Closed("EOF")
        self.buf += data

    def recv_exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_until_eof(self, timeout=IO_TIMEOUT, limit=1 << 24):
        """Reads until the server closes the connection. Returns every byte received
        (including anything already buffered). Raises socket.timeout if the server keeps
        the connection open for longer than timeout."""
        old = self.sock.gettimeout()
        deadline = time.monotonic() + timeout
        try:
            while not self.eof:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise socket.timeout(f"connection still open after {timeout}s")
                self.sock.settimeout(left)
                try:
                    self._fill()
                except Closed:
                    break
                if len(self.buf) > limit:
                    raise ProtocolFailure("too much data before EOF")
        finally:
            try:
                self.sock.settimeout(old)
            except OSError:
                pass
        out = bytes(self.buf)
        self.buf.clear()
        return out

    # -- HTTP ----------------------------------------------------------------------------
    def read_http_response(self, limit=65536, head_only=False):
        """Reads one response: the head, then a body of Content-Length bytes unless
        head_only (a response to HEAD) or the status has none (1xx such as 101, 204,
        304). More than one Content-Length is a ProtocolFailure."""
        while b"\r\n\r\n" not in self.buf:
            if len(self.buf) > limit:
                raise ProtocolFailure("response head too long")
            try:
                self._fill()
            except Closed:
                raise ProtocolFailure(f"connection closed before a complete response head: "
                                      f"{bytes(self.buf)[:300]!r}")
        i = self.buf.index(b"\r\n\r\n") + 4
        head = bytes(self.buf[:i])
        del self.buf[:i]
        version, status, reason, headers = parse_http_head(head[:-4])
        resp = HttpResponse(status, reason, version, headers, b"", head)
        cls = resp.header_all("Content-Length")
        if len(cls) > 1:
            raise ProtocolFailure(f"{len(cls)} Content-Length headers: {head!r}")
        if not head_only and cls and not (100 <= status < 200 or status in (204, 304)):
            try:
                resp.body = self.recv_exact(int(cls[0]))
            except Closed:
                raise ProtocolFailure(f"body shorter than Content-Length {cls[0]}: {bytes(self.buf)!r}")
            resp.raw = head + resp.body
        self.response = resp
        return resp

    def request(self, data):
        """Sends raw request bytes; returns the parsed response."""
        self.send(data)
        return self.read_http_response()

    def handshake(self, path="/echo", key=None, extra=b"", expect_status=101, **kw):
        """Performs the opening handshake; extra: bytes sent in the same write after the
        request (frames). Checks the 101 response (RFC 6455 §4.2.2)."""
        self.key = key or new_key()
        req = build_request(path=path, key=self.key, **kw)
        self.send(req + extra)
        r = self.read_http_response()
        if expect_status is not None and r.status != expect_status:
            raise AssertionError(f"expected HTTP {expect_status}, got {r.status}: {r.raw!r}")
        if r.status == 101:
            check_accept_response(r, self.key)
        return r

    # -- frames --------------------------------------------------------------------------
    def send_frame(self, opcode, payload=b"", **kw):
        return self.send(encode_frame(opcode, payload, **kw))

    def send_text(self, text, **kw):
        return self.send_frame(OP_TEXT, text.encode("utf-8") if isinstance(text, str) else text, **kw)

    def send_binary(self, data, **kw):
        return self.send_frame(OP_BINARY, data, **kw)

    def send_close(self, code=None, reason=b"", **kw):
        return self.send_frame(OP_CLOSE, close_payload(code, reason), **kw)

    def recv_frame(self):
        """One server frame, checked against RFC 6455 §5.1-§5.5."""
        h = self.recv_exact(2)
        b0, b1 = h[0], h[1]
        fin, rsv, opcode = bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0xF
        if b1 & 0x80:
            raise ProtocolFailure(f"server frame is masked (RFC 6455 §5.1): header {h.hex()}")
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self.recv_exact(2))[0]
            if n < 126:
                raise ProtocolFailure(f"server used a 16-bit length for {n} bytes")
        elif n == 127:
            n = struct.unpack("!Q", self.recv_exact(8))[0]
            if n >> 63:
                raise ProtocolFailure("server 64-bit length has the top bit set")
            if n < 65536:
                raise ProtocolFailure(f"server used a 64-bit length for {n} bytes")
        if rsv:
            raise ProtocolFailure(f"server frame has RSV bits {rsv:#o} set: header {h.hex()}")
        if opcode not in (OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG):
            raise ProtocolFailure(f"server sent reserved opcode {opcode:#x}")
        if opcode >= 8:
            if not fin:
                raise ProtocolFailure(f"server sent a fragmented control frame op={opcode:#x}")
            if n > 125:
                raise ProtocolFailure(f"server control frame of {n} bytes")
        payload = self.recv_exact(n)
        return Frame(fin, rsv, opcode, payload)

    def recv_message(self, allow_pong=False, max_size=1 << 26):
        """The next data message as (opcode, payload), reassembling fragments. Control
        frames in between are errors unless allow_pong (then pongs are skipped)."""
        op, frames = self._recv_message_frames(allow_pong)
        data = self._message_payload(frames, max_size)
        if op == OP_TEXT:
            try:
                data.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ProtocolFailure(f"server sent invalid UTF-8 in a text message: {e}")
        return op, data

    def _recv_message_frames(self, allow_pong):
        """The frames of the next data message, checked for RFC 6455 §5.4 order."""
        op = None
        frames = []
        while True:
            f = self.recv_frame()
            if f.opcode >= 8:
                if f.opcode == OP_PONG and allow_pong:
                    continue
                raise AssertionError(f"expected a data frame, got {f!r}" + _close_desc(f))
            if op is None:
                if f.opcode == OP_CONT:
                    raise ProtocolFailure("server sent a continuation frame without a message")
                op = f.opcode
            elif f.opcode != OP_CONT:
                raise ProtocolFailure(f"server started a new message inside a fragmented one: {f!r}")
            frames.append(f)
            if f.fin:
                return op, frames

    def _message_payload(self, frames, max_size):
        """The application payload of a message's frames (a subclass may decompress)."""
        return b"".join(f.payload for f in frames)

    def recv_close(self):
        """Reads the next frame, which must be a close frame; returns (code, reason)
        with code None for an empty body. Checks the body (RFC 6455 §5.5.1, §7.4)."""
        try:
            f = self.recv_frame()
        except Closed as e:
            raise AssertionError(f"connection closed ({e}) without a close frame; "
                                 f"buffered {bytes(self.buf)[:100]!r}")
        if f.opcode != OP_CLOSE:
            raise AssertionError(f"expected a close frame, got {f!r}")
        return parse_close(f.payload)

    def expect_close(self, code, reply=True, eof=True, timeout=IO_TIMEOUT):
        """Asserts the next frame is a close with this code (a set/tuple of codes is
        accepted too), answers it with a close frame (unless reply=False), then asserts
        the server closes TCP with nothing more on the wire. Returns (code, reason)."""
        got = self.recv_close()
        codes = code if isinstance(code, (set, tuple, list, frozenset)) else (code,)
        if got[0] not in codes:
            raise AssertionError(f"expected close code {_codes(codes)}, got {got[0]} reason {got[1]!r}")
        if reply:
            self.send_close(got[0] if got[0] is not None else None)
        if eof:
            self.expect_eof(timeout)
        return got

    def expect_eof(self, timeout=IO_TIMEOUT):
        rest = self.read_until_eof(timeout)
        if rest:
            raise AssertionError(f"server sent {len(rest)} more bytes after the close frame: {rest[:80]!r}")

    def echo(self, opcode, payload, **kw):
        """Sends one message and asserts it comes back unchanged."""
        self.send_frame(opcode, payload, **kw)
        op, data = self.recv_message()
        if op != opcode or data != payload:
            raise AssertionError(f"echo mismatch: sent op={opcode} {len(payload)} bytes, "
                                 f"got op={op} {len(data)} bytes {data[:60]!r}")
        return data


def _codes(codes):
    return "/".join(str(c) for c in codes)


def _close_desc(f):
    if f.opcode == OP_CLOSE:
        try:
            return f" (close {parse_close(f.payload)})"
        except AssertionError as e:
            return f" ({e})"
    return ""


def parse_close(payload):
    if len(payload) == 0:
        return None, ""
    if len(payload) == 1:
        raise ProtocolFailure("server close frame has a 1-byte body (RFC 6455 §5.5.1)")
    code = struct.unpack("!H", payload[:2])[0]
    if code not in VALID_WIRE_CODES:
        raise ProtocolFailure(f"server sent close code {code}, which must not be on the wire")
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolFailure(f"server close reason is not UTF-8: {payload[2:]!r}")
    return code, reason


def check_accept_response(r, key):
    """RFC 6455 §4.2.2 step 5 / §4.1 client checks on a 101 response."""
    if r.status != 101:
        raise AssertionError(f"expected 101, got {r.status}: {r.raw!r}")
    up = r.header("Upgrade")
    if up is None or up.lower() != "websocket":
        raise AssertionError(f"101 without 'Upgrade: websocket': {r.raw!r}")
    conn = r.header("Connection") or ""
    if "upgrade" not in [t.strip().lower() for t in conn.split(",")]:
        raise AssertionError(f"101 without 'Connection: Upgrade': {r.raw!r}")
    acc = r.header("Sec-WebSocket-Accept")
    if acc != accept_key(key):
        raise AssertionError(f"Sec-WebSocket-Accept {acc!r}, expected {accept_key(key)!r}")


# ----------------------------------------------------------------------------------------
# test framework: unittest with a TAP reporter


class ServerTestCase(unittest.TestCase):
    """A test class with one server for all its tests. Set server_args (and server_host)
    on the subclass. After each test the server must still be running, and at the end
    of the class it must exit 0 on SIGTERM (which also catches sanitizer reports)."""

    server_args = ()
    server_host = "127.0.0.1"
    server = None

    @classmethod
    def setUpClass(cls):
        cls.server = Server(*cls.server_args, host=cls.server_host)
        cls.server.start()

    @classmethod
    def tearDownClass(cls):
        s = cls.server
        if s is None:
            return
        rc = s.stop()
        tail = s.log_tail()
        s.remove_log()
        if rc != 0:
            raise AssertionError(f"server exited with status {rc} on SIGTERM (expected 0):\n{tail}")

    def setUp(self):
        self._clients = []
        cls = type(self)
        s = cls.server
        if s is not None and not s.alive():
            tail, rc = self._restart()
            raise AssertionError(f"server died (status {rc}) after the previous test:\n{tail}")

    @classmethod
    def _restart(cls):
        s = cls.server
        tail = s.log_tail(40)
        rc = s.proc.returncode
        s.remove_log()
        # A fresh server keeps the class's remaining tests independent of the dead one.
        cls.server = Server(*cls.server_args, host=cls.server_host)
        cls.server.start()
        return tail, rc

    def tearDown(self):
        for c in self._clients:
            c.close()
        s = type(self).server
        if s is not None and not s.alive():
            tail, rc = self._restart()
            raise AssertionError(f"server died (status {rc}) during this test:\n{tail}")

    def connect(self, **kw):
        c = self.server.connect(**kw)
        self._clients.append(c)
        return c

    def ws(self, path="/echo", **kw):
        c = self.server.connect()
        self._clients.append(c)
        c.handshake(path=path, **kw)
        return c


_logs_to_remove = []


@atexit.register
def _remove_logs():
    # Logs outlive their test so that a failure's TAP diagnostics can show the tail.
    for s in _logs_to_remove:
        s.remove_log()


class OwnServerCase(unittest.TestCase):
    """Each test starts its own servers with start_server() (server_class, or cls) and
    ends each with stop_ok(): exit status 0 on SIGTERM, which also catches sanitizer
    reports."""

    server_class = Server

    def new_server(self, *args, cls=None, **kw):
        """A server not started yet, killed when the test ends; its log is kept until
        the script exits."""
        srv = (cls or self.server_class)(*args, **kw)
        _logs_to_remove.append(srv)
        self.addCleanup(srv.kill)
        return srv

    def start_server(self, *args, cls=None, **kw):
        srv = self.new_server(*args, cls=cls, **kw)
        self.server = srv              # the TAP reporter prints its log tail on failure
        srv.start()
        return srv

    def stop_ok(self, srv):
        rc = srv.stop(timeout=10)
        self.assertEqual(rc, 0, "exit status on SIGTERM (0 expected, negative: killed "
                                "after 10 s):\n" + srv.log_tail(15))

    def read_to_eof(self, c, timeout=10, what="the connection"):
        """Every byte c receives until the server closes it; a failure (not an error)
        when the connection is still open after timeout seconds."""
        try:
            return c.read_until_eof(timeout=timeout)
        except socket.timeout:
            self.fail(f"{what}: still open after {timeout} s")


def add_cases(cls, prefix, cases, fn):
    """Adds one test method per case: cases is a list of (suffix, arg); fn(self, arg)."""
    for suffix, arg in cases:
        name = f"test_{prefix}_{suffix}"

        def method(self, _arg=arg):
            fn(self, _arg)

        method.__name__ = name
        method.__doc__ = None
        setattr(cls, name, method)


class TapResult(unittest.TestResult):
    """One TAP line per test, written when the test ends (a test that fails in its body
    and again in tearDown is still one line); class-level errors get their own line."""

    def __init__(self, stream=None):
        super().__init__()
        self.out = stream or sys.stdout
        self.n = 0
        self.failed = 0
        self._current = None
        self._problems = []   # diagnostics of the current test
        self._skip = None
        self.skipped_n = 0

    def _name(self, test):
        tid = test.id()
        if tid.startswith("__main__."):
            tid = tid[len("__main__."):]
        return tid.replace("#", "").replace("\n", " ")

    def _line(self, s):
        self.out.write(s + "\n")
        self.out.flush()

    def _diag(self, text):
        for line in text.rstrip().splitlines():
            self._line("# " + line)

    def _describe(self, test, err):
        etype, value, tb = err
        # unittest's own frames say nothing about the failure
        frames = [f for f in traceback.extract_tb(tb) if "/unittest/" not in f.filename]
        if isinstance(value, AssertionError):
            text = "".join(traceback.format_exception_only(etype, value))
            if frames:
                f = frames[-1]
                text += f"at {os.path.basename(f.filename)}:{f.lineno} ({f.name})\n"
        else:
            text = "Traceback (most recent call last):\n"
            text += "".join(traceback.format_list(frames))
            text += "".join(traceback.format_exception_only(etype, value))
            if isinstance(value, (socket.timeout, TimeoutError)):
                text += "(a bounded wait expired: the server did not send the expected bytes)\n"
        return text

    def _emit(self, test, problems, skip=None):
        self.n += 1
        if problems:
            self.failed += 1
            self._line(f"not ok {self.n} - {self._name(test)}")
            for p in problems:
                self._diag(p)
            srv = getattr(test, "server", None)
            if isinstance(srv, Server) and not any("server died" in p for p in problems):
                tail = srv.log_tail(8)
                if tail:
                    self._diag("server log tail:\n" + tail)
        elif skip is not None:
            self.skipped_n += 1
            self._line(f"ok {self.n} - {self._name(test)} # SKIP {skip}")
        else:
            self._line(f"ok {self.n} - {self._name(test)}")

    def _problem(self, test, err):
        if test is self._current:
            self._problems.append(self._describe(test, err))
        else:  # setUpClass/tearDownClass errors come without startTest
            self._emit(test, [self._describe(test, err)])

    def startTest(self, test):
        super().startTest(test)
        self._current, self._problems, self._skip = test, [], None

    def stopTest(self, test):
        super().stopTest(test)
        self._emit(test, self._problems, self._skip)
        self._current = None

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._problem(test, err)

    def addError(self, test, err):
        super().addError(test, err)
        if isinstance(err[1], unittest.SkipTest):
            if test is self._current:
                self._skip = str(err[1])
            else:
                self.n += 1
                self.skipped_n += 1
                self._line(f"ok {self.n} - {self._name(test)} # SKIP {err[1]}")
            return
        self._problem(test, err)

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        if test is self._current:
            self._skip = reason
        else:
            self.n += 1
            self.skipped_n += 1
            self._line(f"ok {self.n} - {self._name(test)} # SKIP {reason}")

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._problems.append("unexpected success")

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            self._problems.append(f"[{subtest._subDescription()}] " + self._describe(test, err))


class BudgetExceeded(KeyboardInterrupt):
    """Raised by SIGALRM; a KeyboardInterrupt so unittest does not swallow it."""


def run_tap(module="__main__", budget=110):
    """Runs every TestCase in the module; prints TAP; exits 1 if anything failed.
    budget: seconds after which the whole script is aborted (a hang is a failure);
    WSR_BUDGET_SCALE multiplies it for slow runs (the daemon under valgrind)."""
    budget = int(budget * float(os.environ.get("WSR_BUDGET_SCALE", "1")))
    def on_alarm(signum, frame):
        raise BudgetExceeded(f"script exceeded its {budget}s budget")

    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(budget)
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules[module])
    result = TapResult()
    try:
        suite.run(result)
    except BudgetExceeded as e:
        result.n += 1
        result.failed += 1
        result._line(f"not ok {result.n} - script budget")
        result._diag(str(e))
    finally:
        signal.alarm(0)
        kill_all_servers()
    result._line(f"1..{result.n}")
    result._line(f"# {result.n - result.failed - result.skipped_n} passed, {result.failed} failed, "
                 f"{result.skipped_n} skipped")
    sys.exit(1 if result.failed else 0)


# ----------------------------------------------------------------------------------------
# permessage-deflate (RFC 7692): a raw client that negotiates it, accepts RSV1 where the
# RFC allows it, inflates what the server sends and deflates what it is told to.

import zlib  # noqa: E402

DEFLATE_TRAILER = b"\x00\x00\xff\xff"


def parse_extensions(value):
    """Splits a Sec-WebSocket-Extensions value into [(name, {param: value or None})] with
    names lowercased and quoted values unquoted. Meant for responses, not for judging
    offers: it does not validate the grammar."""
    out = []
    for item in re.findall(r'(?:[^,"]|"(?:[^"\\]|\\.)*")+', value or ""):
        parts = re.findall(r'(?:[^;"]|"(?:[^"\\]|\\.)*")+', item)
        if not parts or not parts[0].strip():
            continue
        params = {}
        for p in parts[1:]:
            k, eq, v = p.partition("=")
            v = v.strip()
            if v.startswith('"') and v.endswith('"') and len(v) >= 2:
                v = re.sub(r"\\(.)", r"\1", v[1:-1])
            params[k.strip().lower()] = v if eq else None
        out.append((parts[0].strip().lower(), params))
    return out


def deflate_raw(data, wbits=15, level=6, final=False):
    """One message compressed alone (no context takeover): Z_SYNC_FLUSH with the
    trailer removed, or with final=True a BFINAL block followed by 0x00 (§7.2.3.4)."""
    c = zlib.compressobj(level, zlib.DEFLATED, -max(9, wbits))
    if final:
        return c.compress(data) + c.flush(zlib.Z_FINISH) + b"\x00"
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    return out[:-4] if out.endswith(DEFLATE_TRAILER) else out


class PmdClient(RawClient):
    """RawClient for permessage-deflate. handshake(offer=...) sends the offer and records
    the agreement (self.pmd: the response's parameters, or None). recv_frame accepts
    RSV1 only on the first frame of a data message and only after agreement (anything
    else is a ProtocolFailure); recv_message inflates compressed messages with the
    agreed window, keeping it across messages unless server_no_context_takeover was
    agreed. deflate() compresses as the agreement allows."""

    def __init__(self, host, port, timeout=IO_TIMEOUT):
        super().__init__(host, port, timeout=timeout)
        self.pmd = None
        self.last_compressed = False   # whether the last received message had RSV1
        self.last_frames = []          # [(fin, rsv, opcode, payload length)] of it
        self._inflater = None
        self._deflater = None

    def handshake(self, path="/echo", offer="permessage-deflate", headers=None, **kw):
        hdrs = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
        if offer is not None:
            hdrs.append(("Sec-WebSocket-Extensions", offer))
        r = super().handshake(path=path, headers=hdrs, **kw)
        self.pmd = None
        if r.status == 101:
            for value in r.header_all("Sec-WebSocket-Extensions"):
                for name, params in parse_extensions(value):
                    if name == "permessage-deflate":
                        if self.pmd is not None:
                            raise ProtocolFailure(f"permessage-deflate accepted twice: {r.raw!r}")
                        self.pmd = params
        return r

    # -- the agreement -------------------------------------------------------------------
    def _param(self, name):
        return self.pmd is not None and name in self.pmd

    @property
    def server_no_context_takeover(self):
        return self._param("server_no_context_takeover")

    @property
    def client_no_context_takeover(self):
        return self._param("client_no_context_takeover")

    @property
    def server_bits(self):
        v = (self.pmd or {}).get("server_max_window_bits")
        return int(v) if v else 15

    @property
    def client_bits(self):
        v = (self.pmd or {}).get("client_max_window_bits")
        return int(v) if v else 15

    # -- frames and messages -------------------------------------------------------------
    def recv_frame(self):
        while not self.buf:
            self._fill()
        rsv1 = bool(self.buf[0] & 0x40)
        if rsv1:
            self.buf[0] &= 0xBF  # the parent rejects any RSV bit; RSV1 is judged here
        f = super().recv_frame()
        if rsv1:
            if self.pmd is None:
                raise ProtocolFailure(f"RSV1 set without permessage-deflate agreed: {f!r}")
            if f.opcode >= 8:
                raise ProtocolFailure(f"RSV1 set on a control frame (RFC 7692 §6): {f!r}")
            if f.opcode == OP_CONT:
                raise ProtocolFailure(f"RSV1 set on a continuation frame (RFC 7692 §6): {f!r}")
            f.rsv = 4
        return f

    def _message_payload(self, frames, max_size):
        compressed = bool(frames[0].rsv & 4)
        data = b"".join(f.payload for f in frames)
        if compressed:
            data = self.inflate(data, max_size)
        self.last_compressed = compressed
        self.last_frames = [(f.fin, f.rsv, f.opcode, len(f.payload)) for f in frames]
        return data

    def inflate(self, payload, max_size=1 << 26):
        """Inflates one received message's payload with the agreed window."""
        if self._inflater is None or self.server_no_context_takeover:
            self._inflater = zlib.decompressobj(-self.server_bits)
        try:
            out = self._inflater.decompress(payload + DEFLATE_TRAILER, max_size + 1)
        except zlib.error as e:
            raise ProtocolFailure(f"server sent compressed data that does not inflate with window "
                                  f"{self.server_bits}: {e}; payload {payload[:40].hex()}")
        if len(out) > max_size or self._inflater.unconsumed_tail:
            raise ProtocolFailure(f"server message inflates past {max_size} bytes")
        if self._inflater.eof:  # a BFINAL block: the next message starts a new stream
            self._inflater = None
        return out

    def deflate(self, data, takeover=None, wbits=None, level=6):
        """Compresses one message as this client would send it: with context takeover
        unless client_no_context_takeover was agreed (or takeover=False), with the
        agreed client window unless wbits is given. Returns the payload without the
        trailer (0x00 for an empty message)."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        if takeover is None:
            takeover = not self.client_no_context_takeover
        bits = max(9, wbits or self.client_bits)
        if self._deflater is None or not takeover or self._deflater[0] != bits:
            self._deflater = (bits, zlib.compressobj(level, zlib.DEFLATED, -bits))
        c = self._deflater[1]
        out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
        if out.endswith(DEFLATE_TRAILER):
            out = out[:-4]
        if not takeover:
            self._deflater = None
        return out or b"\x00"

    def send_compressed(self, opcode, data, fragments=1, **kw):
        """Deflates one message and sends it in `fragments` frames (RSV1 on the first
        only). Returns the compressed payload."""
        z = self.deflate(data, **kw)
        self.send_payload_fragments(opcode, z, fragments, rsv1=True)
        return z

    def send_payload_fragments(self, opcode, payload, fragments=1, rsv1=True):
        n = max(1, fragments)
        step = -(-len(payload) // n) if payload else 0
        wire = b""
        for i in range(n):
            chunk = payload[i * step:(i + 1) * step] if step else b""
            wire += encode_frame(opcode if i == 0 else OP_CONT, chunk, fin=(i == n - 1),
                                 rsv=4 if (rsv1 and i == 0) else 0)
        return self.send(wire)
