#!/usr/bin/python3
"""Writes the hand-made seed inputs into fuzz/corpus/<target>/.

Run it after changing a harness's settings prefix (the first bytes of every input); the
seeds that the fuzzer found and `-merge=1` kept (files named by their SHA-1) are left
alone. Each seed is named for what it is, so a failing replay line says which case broke.

    /usr/bin/python3 fuzz/seeds.py
"""
import os
import struct

ROOT = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    d = os.path.join(ROOT, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# --- frame ---------------------------------------------------------------------
# Settings prefix (fuzz_frame.cpp): flags, limit parameter, max chunk, seed lo, seed hi.
SERVER = 0x08          # masked client frames expected, 1 MiB limit, no RSV1
SERVER_PMD = 0x09      # ... with permessage-deflate (RSV1 allowed)
CLIENT = 0x0A          # unmasked server frames expected
TINY = 0x00            # 0..255-byte message limit from the parameter byte
KEY = bytes([0x37, 0xFA, 0x21, 0x3D])


def frame(op, payload=b"", fin=True, rsv1=False, masked=True, key=KEY, length=None):
    b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | op
    n = len(payload) if length is None else length
    m = 0x80 if masked else 0
    if n < 126:
        hdr = bytes([b0, m | n])
    elif n < 65536:
        hdr = bytes([b0, m | 126]) + struct.pack(">H", n)
    else:
        hdr = bytes([b0, m | 127]) + struct.pack(">Q", n)
    if masked:
        hdr += key
        payload = bytes(c ^ key[i % 4] for i, c in enumerate(payload))
    return hdr + payload


def frames(name, flags, body, param=0, chunk=0, seed=0):
    write("frame", name, bytes([flags, param, chunk, seed & 0xFF, seed >> 8]) + body)


def close_body(code, reason=b""):
    return struct.pack(">H", code) + reason


frames("text-hello", SERVER, frame(1, b"Hello"), chunk=7)
frames("text-hello-bytewise", SERVER, frame(1, b"Hello"), chunk=0)
frames("text-fragmented", SERVER, frame(1, b"Hel", fin=False) + frame(0, b"lo"), chunk=3, seed=7)
frames("text-fragmented-ping-between", SERVER,
       frame(1, b"Hel", fin=False) + frame(9, b"p") + frame(0, b"l", fin=False) + frame(0, b"o"), chunk=5)
frames("binary-256-len16", SERVER, frame(2, bytes(range(256))), chunk=100, seed=3)
frames("binary-len64-partial", SERVER, frame(2, b"\x00" * 40, length=70000), chunk=9)
frames("binary-empty", SERVER, frame(2, b""), chunk=1)
frames("ping-pong", SERVER, frame(9, b"Hello") + frame(10, b"Hello"), chunk=4)
frames("ping-125", SERVER, frame(9, b"x" * 125), chunk=60)
frames("close-1000-bye", SERVER, frame(8, close_body(1000, b"bye")), chunk=2)
frames("close-empty", SERVER, frame(8, b""))
frames("close-3000-utf8", SERVER, frame(8, close_body(3000, "κόσμε".encode())), chunk=3)
frames("close-4999", SERVER, frame(8, close_body(4999)))
frames("close-1byte-bad", SERVER, frame(8, b"\x03"))
frames("close-1005-bad", SERVER, frame(8, close_body(1005)))
frames("close-reason-not-utf8", SERVER, frame(8, close_body(1000, b"\xed\xa0\x80")))
frames("pmd-compressed-fragmented", SERVER_PMD, frame(1, b"\xf2\x48\xcd", fin=False, rsv1=True) + frame(0, b"\xc9\xc9\x07\x00"))
frames("client-side-unmasked", CLIENT, frame(1, b"Hello", masked=False) + frame(8, close_body(1001), masked=False), chunk=4)
frames("too-big-tiny-limit", TINY, frame(1, b"0123456789"), param=9)
frames("too-big-fragments", TINY, frame(1, b"01234", fin=False) + frame(0, b"56789"), param=8)
frames("limit-exact", TINY, frame(2, b"0123456789"), param=10)
frames("bad-reserved-opcode", SERVER, frame(3, b"x"))
frames("bad-rsv2", SERVER, bytes([0xA1, 0x80]) + KEY)
frames("bad-rsv1-unnegotiated", SERVER, frame(1, b"x", rsv1=True))
frames("bad-rsv1-continuation", SERVER_PMD, frame(1, b"x", fin=False, rsv1=True) + frame(0, b"y", rsv1=True))
frames("bad-unmasked-client", SERVER, frame(1, b"Hello", masked=False))
frames("bad-masked-server", CLIENT, frame(1, b"Hello"))
frames("bad-len16-nonminimal", SERVER, bytes([0x82, 0xFE, 0x00, 0x7D]) + KEY)
frames("bad-len64-nonminimal", SERVER, bytes([0x82, 0xFF]) + struct.pack(">Q", 65535) + KEY)
frames("bad-len64-top-bit", SERVER, bytes([0x82, 0xFF, 0x80]) + bytes(7) + KEY)
frames("bad-control-126", SERVER, bytes([0x89, 0xFE, 0x00, 0x7E]) + KEY)
frames("bad-fragmented-ping", SERVER, frame(9, b"x", fin=False))
frames("bad-continuation-first", SERVER, frame(0, b"x"))
frames("bad-text-inside-message", SERVER, frame(1, b"a", fin=False) + frame(1, b"b"))

# --- utf8 ------------------------------------------------------------------------
# Settings prefix (fuzz_utf8.cpp): max chunk, seed lo, seed hi.


def text(name, data, chunk=0, seed=0):
    write("utf8", name, bytes([chunk, seed & 0xFF, seed >> 8]) + data)


text("ascii", b"Hello, world! " * 4, chunk=16)
text("autobahn-6-2", "Hello-µ@ßöäüàá-UTF-8!!".encode(), chunk=3)
text("kosme", "κόσμε".encode(), chunk=0)
text("boundaries", "\u0080\u07ff\u0800\ud7ff\ue000\uffff\U00010000\U0010ffff".encode(), chunk=5, seed=9)
text("emoji-split", "🙂🙃".encode(), chunk=1)
text("ascii-then-bad-at-17", b"a" * 17 + b"\xff" + b"b" * 20, chunk=40)
text("overlong-2", b"\xc0\xaf")
text("overlong-3", b"\xe0\x80\xaf")
text("overlong-4", b"\xf0\x80\x80\xaf")
text("surrogate", b"ab\xed\xa0\x80cd")
text("above-10ffff", b"\xf4\x90\x80\x80")
text("lead-f5", b"\xf5\x80\x80\x80")
text("truncated-4", b"ok\xf0\x9f\x99", chunk=2)
text("stray-continuation", b"a\x80b")

# --- handshake -----------------------------------------------------------------
# Settings prefix (fuzz_handshake.cpp): flags, small limit, max chunk, seed lo, seed hi.
# flags: bits0-1 limit class (2 = 8192), bit2 subprotocols, bit3 only "/chat",
# bits4-5 extension answer.
DEFAULT = 0x02


def request(name, flags, data, chunk=0, seed=0, param=0):
    write("handshake", name, bytes([flags, param, chunk, seed & 0xFF, seed >> 8]) + data)


def req(method=b"GET", target=b"/chat", version=b"HTTP/1.1", headers=None, tail=b""):
    if headers is None:
        headers = STD
    lines = [method + b" " + target + b" " + version] + [k + b": " + v for k, v in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n" + tail


STD = [
    (b"Host", b"server.example.com"),
    (b"Upgrade", b"websocket"),
    (b"Connection", b"Upgrade"),
    (b"Sec-WebSocket-Key", b"dGhlIHNhbXBsZSBub25jZQ=="),
    (b"Origin", b"http://example.com"),
    (b"Sec-WebSocket-Protocol", b"chat, superchat"),
    (b"Sec-WebSocket-Version", b"13"),
]


def without(name):
    return [(k, v) for k, v in STD if k != name]


def replaced(name, value):
    return [(k, value if k == name else v) for k, v in STD]


request("rfc6455-example", DEFAULT, req(), chunk=9)
request("rfc6455-bytewise", DEFAULT, req(), chunk=0)
request("subprotocol-chosen", DEFAULT | 0x04, req(), chunk=30)
request("extensions-answered", DEFAULT | 0x10,
        req(headers=STD + [(b"Sec-WebSocket-Extensions", b"permessage-deflate; client_max_window_bits")]), chunk=17)
request("route-chat-404", DEFAULT | 0x08, req(target=b"/other?x=1"), chunk=12)
request("absolute-form-query", DEFAULT | 0x08, req(target=b"http://server.example.com/chat?token=abc"), chunk=40)
request("connection-list-case", DEFAULT,
        req(headers=replaced(b"Connection", b"keep-alive, UPGRADE") + [(b"X-Empty", b"")]), chunk=5)
request("frames-after-head", DEFAULT, req(tail=bytes([0x81, 0x85]) + KEY + b"\x7f\x9f\x4d\x51\x58"), chunk=50)
request("bad-post-405", DEFAULT, req(method=b"POST"))
request("bad-http10", DEFAULT, req(version=b"HTTP/1.0"))
request("bad-no-host", DEFAULT, req(headers=without(b"Host")))
request("bad-no-upgrade-426", DEFAULT, req(headers=without(b"Upgrade")))
request("bad-upgrade-h2c", DEFAULT, req(headers=replaced(b"Upgrade", b"h2c")))
request("bad-no-connection", DEFAULT, req(headers=without(b"Connection")))
request("bad-version-8-426", DEFAULT, req(headers=replaced(b"Sec-WebSocket-Version", b"8")))
request("bad-two-versions", DEFAULT, req(headers=STD + [(b"Sec-WebSocket-Version", b"13")]))
request("bad-key-short", DEFAULT, req(headers=replaced(b"Sec-WebSocket-Key", b"AAAA")))
request("bad-two-keys", DEFAULT, req(headers=STD + [(b"sec-websocket-key", b"AQIDBAUGBwgJCgsMDQ4PEA==")]))
request("bad-request-line", DEFAULT, b"GET\r\n\r\n")
request("bad-bare-lf", DEFAULT, req().replace(b"\r\n", b"\n"))
request("bad-431-tiny-limit", 0x00, req(), param=40, chunk=20)
request("bad-431-too-many-headers", DEFAULT,
        req(headers=STD + [(b"X-%d" % i, b"v") for i in range(64)]), chunk=200)
request("limit-over-65535", 0x03, req(), chunk=64)
