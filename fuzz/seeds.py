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

# --- proxy -------------------------------------------------------------------------
# Settings prefix (fuzz_proxy.cpp): max chunk, seed lo, seed hi. The "haproxy-" headers
# are bytes HAProxy 2.6.12 sent to a backend (send-proxy, send-proxy-v2 with the
# proxy-v2-options named), captured with a plain TCP listener; the rest follow the spec.
APP = b"GET / HTTP/1.1\r\n\r\n"
V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def proxy_seed(name, data, chunk=0, seed=0):
    write("proxy", name, bytes([chunk, seed & 0xFF, seed >> 8]) + data)


def v2(cmd, fam, block):
    return V2_SIG + bytes([cmd, fam]) + struct.pack(">H", len(block)) + block


def tlv(t, value):
    return bytes([t]) + struct.pack(">H", len(value)) + value


HP_V2_TCP4_TLV = bytes.fromhex(
    "0d0a0d0a000d0a515549540a211100447f0000017f000001a0224652030004eae96d4f05002e37463030303030313a"
    "413032325f37463030303030313a343635325f36423044323832415f303030313a35464439")
HP_V2_TCP6 = bytes.fromhex(
    "0d0a0d0a000d0a515549540a212100240000000000000000000000000000000100000000000000000000000000000001"
    "dc964653")
HP_V2_SSL_TLV = bytes.fromhex(
    "0d0a0d0a000d0a515549540a211100727f0000017f00000192584655030004a55fae0f010008687474702f312e3102"
    "000f6170702e6578616d706c652e636f6d20003f0100000000210007544c5376312e332500075253413230343824000a"
    "5253412d534841323536230016544c535f4145535f3235365f47434d5f534841333834")
TCP4_BLOCK = bytes([198, 51, 100, 7, 10, 0, 1, 2]) + struct.pack(">HH", 51258, 443)

proxy_seed("haproxy-v1-tcp4", b"PROXY TCP4 127.0.0.1 127.0.0.1 58682 18001\r\n" + APP, chunk=7)
proxy_seed("haproxy-v1-tcp6", b"PROXY TCP6 ::1 ::1 35890 18004\r\n" + APP, chunk=0)
proxy_seed("haproxy-v2-tcp4-crc32c-unique-id", HP_V2_TCP4_TLV + APP, chunk=5, seed=3)
proxy_seed("haproxy-v2-tcp6", HP_V2_TCP6 + APP, chunk=16)
proxy_seed("haproxy-v2-ssl-tlvs", HP_V2_SSL_TLV + APP, chunk=9, seed=11)
proxy_seed("haproxy-v2-local-check", V2_SIG + b"\x20\x00\x00\x00", chunk=2)
proxy_seed("aws-v2-vpce", v2(0x21, 0x11, TCP4_BLOCK + tlv(0xEA, b"\x01vpce-0123456789abcdef0")) + b"\x16\x03\x01",
           chunk=4)
proxy_seed("v1-tcp6-mapped", b"PROXY TCP6 ::ffff:203.0.113.7 2001:db8::1 51234 443\r\n" + APP, chunk=3)
proxy_seed("v1-tcp6-longest", b"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
           b"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n", chunk=20)
proxy_seed("v1-unknown-longest", b"PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
           b"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n", chunk=30)
proxy_seed("v1-unknown-short", b"PROXY UNKNOWN\r\n" + APP)
proxy_seed("v2-unspec", v2(0x21, 0x00, b""), chunk=1)
proxy_seed("v2-unix", v2(0x21, 0x31, b"/run/a.sock".ljust(108, b"\x00") + b"/run/b.sock".ljust(108, b"\x00")), chunk=50)
proxy_seed("v2-udp6", v2(0x21, 0x22, bytes(15) + b"\x01" + bytes(15) + b"\x02" + b"\x00\x35\x00\x35"), chunk=8)
proxy_seed("v2-noop-padding", v2(0x21, 0x11, TCP4_BLOCK + tlv(0x04, bytes(40))), chunk=12)
proxy_seed("bad-v1-port-leading-zero", b"PROXY TCP4 1.2.3.4 5.6.7.8 080 443\r\n", chunk=6)
proxy_seed("bad-v1-bare-lf", b"PROXY TCP4 1.2.3.4 5.6.7.8 80 443\n")
proxy_seed("bad-v1-too-long", b"PROXY UNKNOWN " + b"a" * 100 + b"\r\n", chunk=40)
proxy_seed("bad-v2-version", V2_SIG + b"\x11\x11\x00\x0c" + TCP4_BLOCK)
proxy_seed("bad-v2-short-block", V2_SIG + b"\x21\x21\x00\x0c" + TCP4_BLOCK)
proxy_seed("bad-v2-crc32c", HP_V2_TCP4_TLV[:-1] + b"\x00", chunk=10)
proxy_seed("bad-http", APP)

# --- extensions ------------------------------------------------------------------
# Settings prefix (fuzz_extensions.cpp): mode (0 shared, 1 dedicated, 2 off), server
# window bits - 8, client window bits - 8. The value follows; '\n' starts a new header line.
EXT_SHARED, EXT_DEDICATED, EXT_OFF = 0, 1, 2


def ext(name, mode, value, sbits=15, cbits=15):
    write("extensions", name, bytes([mode, sbits - 8, cbits - 8]) + value)


ext("pmd-plain", EXT_DEDICATED, b"permessage-deflate")
ext("pmd-shared", EXT_SHARED, b"permessage-deflate")
ext("pmd-off", EXT_OFF, b"permessage-deflate")
ext("pmd-cmwb-valueless", EXT_DEDICATED, b"permessage-deflate; client_max_window_bits", cbits=10)
ext("pmd-all-params", EXT_DEDICATED,
    b"permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
    b"server_max_window_bits=9; client_max_window_bits=8", sbits=12)
ext("pmd-quoted-bits", EXT_DEDICATED, b'permessage-deflate; server_max_window_bits="10"')
ext("pmd-fallback-offers", EXT_DEDICATED,
    b"permessage-deflate; server_max_window_bits=7, permessage-deflate; client_max_window_bits=16, "
    b"permessage-deflate; client_max_window_bits")
ext("pmd-two-lines", EXT_SHARED, b"x-webkit-deflate-frame\npermessage-deflate; client_max_window_bits=12", cbits=9)
ext("pmd-duplicate-param", EXT_DEDICATED,
    b"permessage-deflate; server_no_context_takeover; server_no_context_takeover, permessage-deflate")
ext("pmd-unknown-param", EXT_DEDICATED, b"permessage-deflate; foo=bar, permessage-deflate; SERVER_MAX_WINDOW_BITS=15")
ext("pmd-quoted-comma", EXT_DEDICATED, b'foo; bar="a,permessage-deflate", permessage-deflate')
ext("pmd-split-in-quote", EXT_DEDICATED, b'foo; bar="a\npermessage-deflate"')

# --- inflate ---------------------------------------------------------------------
# Settings prefix (fuzz_inflate.cpp): part (0 inflate, 1 round trip), then three bytes
# whose meaning depends on the part.
import zlib  # noqa: E402


def raw_deflate(data, wbits=15, flush_final=False):
    c = zlib.compressobj(6, zlib.DEFLATED, -wbits)
    out = c.compress(data) + (c.flush(zlib.Z_FINISH) if flush_final else c.flush(zlib.Z_SYNC_FLUSH))
    if not flush_final and out.endswith(b"\x00\x00\xff\xff"):
        out = out[:-4]
    return out


def inflate_seed(name, m1, m2=b"", wbits=15, reset1=False, reset2=False, cap_class=0):
    b1 = (wbits - 8) | (8 if reset1 else 0) | (16 if reset2 else 0) | (cap_class << 5)
    write("inflate", name, bytes([0, b1, len(m1) & 0xFF, len(m1) >> 8]) + m1 + m2)


hello = raw_deflate(b"Hello")
inflate_seed("rfc7692-hello", b"\xf2\x48\xcd\xc9\xc9\x07\x00", b"\xf2\x00\x11\x00\x00")  # §7.2.3.2 takeover
inflate_seed("rfc7692-hello-reset", b"\xf2\x48\xcd\xc9\xc9\x07\x00", b"\xf2\x48\xcd\xc9\xc9\x07\x00", reset1=True)
inflate_seed("bfinal-then-zero", raw_deflate(b"Hello", flush_final=True) + b"\x00", hello)
inflate_seed("stored-block", b"\x00\x05\x00\xfa\xffHello", b"\x00", wbits=8)
inflate_seed("bomb-64k", raw_deflate(b"\x00" * 200000), cap_class=0)
inflate_seed("bomb-tiny-cap", raw_deflate(b"a" * 300), hello, cap_class=2)
inflate_seed("corrupt", b"\xff\xff\xff", hello)
inflate_seed("far-distance-w8", raw_deflate(bytes(range(256)) * 2, wbits=9), wbits=8)


def roundtrip(name, plain, wbits=15, takeover=False, keep=False, i15=False, level=1, mem=8, repeat=1, nmsg=1,
              maxchunk=16):
    b1 = (wbits - 8) | (8 if takeover else 0) | (16 if keep else 0) | (32 if i15 else 0)
    b2 = (level - 1) | ((mem - 1) << 4)
    b3 = (repeat - 1) | ((nmsg - 1) << 4)
    write("inflate", name, bytes([1, b1, b2, b3, maxchunk]) + plain)


roundtrip("rt-text", b"Hello, Hello, Hello! " * 4, nmsg=3)
roundtrip("rt-takeover", b"abcabcabcabc" * 8, takeover=True, nmsg=4, maxchunk=20)
roundtrip("rt-w8-long", bytes(range(256)), wbits=8, repeat=8, level=9, mem=9, nmsg=2, maxchunk=200)
roundtrip("rt-empty-messages", b"", takeover=True, nmsg=3)
roundtrip("rt-mem1-level9", b"The quick brown fox jumps over the lazy dog. " * 3, level=9, mem=1, i15=True)

# --- connection ------------------------------------------------------------------
# Settings prefix (fuzz_connection.cpp): flags, limits, deflate, max chunk, seed lo,
# seed hi, write pressure, mem level. See the layout at the top of that file.
C_OFF, C_SHARED, C_DEDICATED = 0, 1, 2
C_SUBPROTO, C_EOF, C_CANNED, C_BROADCAST = 4, 8, 16, 32
ZERO_KEY = bytes(4)


def conn_seed(name, flags, stream, limits=0, deflate=0x3F, chunk=0, seed=0, pressure=0, mem=7):
    write("connection", name, bytes([flags, limits, deflate, chunk, seed & 0xFF, seed >> 8, pressure, mem]) + stream)


def cframe(op, payload=b"", fin=True, rsv1=False):
    return frame(op, payload, fin=fin, rsv1=rsv1, masked=True, key=KEY)


def ext_flags(i):
    return i << 6


CANNED = C_CANNED | C_EOF
conn_seed("echo-text-close", CANNED, cframe(1, b"Hello") + cframe(8, close_body(1000, b"bye")), chunk=7)
conn_seed("echo-bytewise", CANNED, cframe(1, "κόσμε".encode()) + cframe(8, close_body(1000)), chunk=0)
conn_seed("echo-fragmented-ping", CANNED,
          cframe(1, b"Hel", fin=False) + cframe(9, b"p") + cframe(0, b"lo") + cframe(8, b""), chunk=5)
conn_seed("echo-binary-pressure", CANNED, cframe(2, bytes(range(256)) * 4) + cframe(8, close_body(1001)),
          chunk=100, pressure=128)
conn_seed("echo-no-close-no-eof", C_CANNED, cframe(1, b"open at shutdown"), chunk=50)
conn_seed("echo-bad-utf8", CANNED, cframe(1, b"\xed\xa0\x80"), chunk=3)
conn_seed("echo-too-big", CANNED, cframe(2, b"x" * 200), limits=1, chunk=40)
conn_seed("echo-backpressure-1k", CANNED, b"".join(cframe(2, b"y" * 120) for _ in range(20)), limits=4,
          chunk=255, pressure=200)
conn_seed("broadcast", CANNED | C_BROADCAST, cframe(1, b"to all") + cframe(2, b"\x00\x01") + cframe(8, b""), chunk=9)
conn_seed("pmd-shared", C_SHARED | CANNED | ext_flags(1),
          cframe(1, b"\xf2\x48\xcd\xc9\xc9\x07\x00", rsv1=True) + cframe(1, b"x" * 100) + cframe(8, b""),
          limits=0x20, chunk=11)
conn_seed("pmd-dedicated-takeover", C_DEDICATED | CANNED | ext_flags(1),
          cframe(1, b"\xf2\x48\xcd\xc9\xc9\x07\x00", rsv1=True) + cframe(1, b"\xf2\x00\x11\x00\x00", rsv1=True)
          + cframe(8, close_body(1000)), limits=0x20, chunk=6)
conn_seed("pmd-dedicated-w8", C_DEDICATED | CANNED | ext_flags(3),
          cframe(1, raw_deflate(b"abcdefgh" * 64, wbits=9), rsv1=True) + cframe(8, b""), limits=0x40, deflate=0x00,
          chunk=30, pressure=60)
conn_seed("pmd-bomb", C_SHARED | CANNED | ext_flags(2), cframe(2, raw_deflate(b"\x00" * 100000), rsv1=True),
          chunk=64)
conn_seed("pmd-corrupt", C_DEDICATED | CANNED | ext_flags(1), cframe(2, b"\xff\xff", rsv1=True), chunk=4)
REQ = req(target=b"/echo", headers=STD + [(b"Sec-WebSocket-Extensions", b"permessage-deflate")])
conn_seed("raw-handshake", C_DEDICATED | C_EOF | C_SUBPROTO, REQ + cframe(1, b"hi") + cframe(8, b""), chunk=13)
conn_seed("raw-handshake-404", C_EOF, req(target=b"/nowhere"), chunk=20)
conn_seed("raw-handshake-bad", C_EOF, b"GET / HTTP/1.0\r\n\r\n")
conn_seed("raw-handshake-split", 0, REQ + cframe(9, b"ping"), chunk=1, pressure=90)

# HTTP mode (b) and PROXY mode (c): bit5 / bit6 of settings byte [7], then two more
# settings bytes [8] and [9] (see fuzz_connection.cpp).
M_HTTP, M_PROXY = 0x20, 0x40
HOOK_ACCEPT, HOOK_REFUSE, HOOK_DEFER_ACCEPT, HOOK_DEFER_REFUSE = 0, 1, 2, 3
API_NOW, API_LATER, API_ALT_NOW, API_ALT_LATER = 0, 4, 8, 12
X8_MAX_BODY_64, X8_ORIGIN, X8_LATE, X8_SUBPROTO = 16, 32, 64, 128
PX_V1, PX_V2_TCP4, PX_V2_TCP6 = 1, 2, 3
CANNED_GET, CANNED_POST, CANNED_HEAD_CHUNKED = 4, 8, 12
X9_TRUSTED, X9_MAX_REQUESTS_2, X9_MIN_MEMORY = 16, 32, 64


def http_seed(name, flags, stream, modes=M_HTTP, x8=0, x9=0, limits=0, deflate=0x3F, chunk=0, seed=0, pressure=0,
              mem=7):
    write("connection", name,
          bytes([flags, limits, deflate, chunk, seed & 0xFF, seed >> 8, pressure, mem | modes, x8, x9]) + stream)


def hreq(method, target, headers=(), body=b"", version=b"HTTP/1.1"):
    lines = [method + b" " + target + b" " + version, b"Host: fuzz"] + [k + b": " + v for k, v in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


WS = [(b"Upgrade", b"websocket"), (b"Connection", b"Upgrade"), (b"Sec-WebSocket-Key", b"dGhlIHNhbXBsZSBub25jZQ=="),
      (b"Sec-WebSocket-Version", b"13")]
ECHO_FRAMES = cframe(1, b"Hello") + cframe(2, b"\x00\x01\x02") + cframe(8, close_body(1000))

http_seed("http-healthz-keepalive-404", C_EOF,
          hreq(b"GET", b"/healthz") + hreq(b"HEAD", b"/healthz") + hreq(b"GET", b"/ws") + hreq(b"GET", b"/nowhere"),
          chunk=9)
http_seed("http-api-bodies-now", C_EOF,
          hreq(b"POST", b"/api/echo?q=1", [(b"Content-Length", b"5")], b"hello")
          + hreq(b"POST", b"/api/chunked", [(b"Transfer-Encoding", b"chunked")], b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
          + hreq(b"GET", b"/api/x") + hreq(b"POST", b"/api/e", [(b"Content-Length", b"1")], b"#"), chunk=17)
http_seed("http-api-later-pipelined", C_EOF,
          b"".join(hreq(b"POST", b"/api/%d" % i, [(b"Content-Length", b"2")], b"%02d" % i) for i in range(6)),
          x8=API_LATER, chunk=40)
http_seed("http-api-alternate-small-rounds", 0,
          b"".join(hreq(b"GET", b"/api/r%d" % i) for i in range(12)), x8=API_ALT_LATER, chunk=255, pressure=100)
http_seed("http-api-500-closes", C_EOF,
          hreq(b"POST", b"/api/fail", [(b"Content-Length", b"3")], b"!no") + hreq(b"GET", b"/healthz"), chunk=30)
http_seed("http-max-body-413", C_EOF,
          hreq(b"POST", b"/api/big", [(b"Content-Length", b"100")], b"x" * 100), x8=X8_MAX_BODY_64, chunk=50)
http_seed("http-max-body-chunked-413", C_EOF,
          hreq(b"POST", b"/api/big", [(b"Transfer-Encoding", b"chunked")], b"50\r\n" + b"y" * 80 + b"\r\n0\r\n\r\n"),
          x8=X8_MAX_BODY_64 | API_LATER, chunk=20)
http_seed("http-expect-100-then-417", C_EOF,
          hreq(b"POST", b"/api/c", [(b"Expect", b"100-continue"), (b"Content-Length", b"4")], b"data")
          + hreq(b"POST", b"/api/c", [(b"Expect", b"something-else"), (b"Content-Length", b"4")], b"data"), chunk=11)
http_seed("http-405-allow", C_EOF, hreq(b"GET", b"/healthz") + hreq(b"DELETE", b"/api/x"), chunk=13)
http_seed("http-501-unknown-method", C_EOF, hreq(b"PURGE", b"/api/x"), chunk=7)
http_seed("http-10-keepalive", C_EOF,
          hreq(b"GET", b"/healthz", [(b"Connection", b"keep-alive")], version=b"HTTP/1.0") + hreq(b"GET", b"/api/a",
                                                                                                  version=b"HTTP/1.0"),
          chunk=5)
http_seed("http-max-requests-2", C_EOF, hreq(b"GET", b"/healthz") * 3, x9=X9_MAX_REQUESTS_2, chunk=100)
http_seed("http-min-memory-body", C_EOF,
          hreq(b"POST", b"/api/m", [(b"Content-Length", b"200")], b"z" * 200), limits=1, x9=X9_MIN_MEMORY, chunk=64)
http_seed("ws-hook-accept-now", C_CANNED | C_BROADCAST | C_EOF, ECHO_FRAMES, x8=HOOK_ACCEPT, chunk=9)
http_seed("ws-hook-refuse-now", C_CANNED | C_BROADCAST | C_EOF, ECHO_FRAMES, x8=HOOK_REFUSE, chunk=9)
http_seed("ws-hook-defer-accept", C_CANNED | C_BROADCAST | C_EOF, ECHO_FRAMES, x8=HOOK_DEFER_ACCEPT, chunk=4)
http_seed("ws-hook-defer-refuse", C_CANNED | C_BROADCAST | C_EOF, ECHO_FRAMES, x8=HOOK_DEFER_REFUSE, chunk=4)
http_seed("ws-hook-defer-left-at-eof", C_CANNED | C_BROADCAST | C_EOF, cframe(1, b"x"), x8=HOOK_DEFER_ACCEPT | X8_LATE,
          chunk=200)
http_seed("ws-hook-defer-late-no-eof", C_CANNED | C_BROADCAST, cframe(1, b"after the answer"),
          x8=HOOK_DEFER_ACCEPT | X8_LATE, chunk=200)
http_seed("ws-subprotocol-x-fuzz", C_CANNED | C_BROADCAST | C_EOF | C_SUBPROTO, ECHO_FRAMES,
          x8=HOOK_DEFER_ACCEPT | X8_SUBPROTO, chunk=30)
http_seed("ws-origin-allowed-default-port", C_EOF,
          hreq(b"GET", b"/ws", WS + [(b"Origin", b"HTTPS://app.example.com:443")]) + cframe(1, b"ok")
          + cframe(8, b""), x8=X8_ORIGIN, chunk=25)
http_seed("ws-origin-refused-403", C_EOF, hreq(b"GET", b"/ws", WS + [(b"Origin", b"https://evil.example")]),
          x8=X8_ORIGIN, chunk=25)
http_seed("ws-after-keepalive-requests", C_CANNED | C_BROADCAST | C_EOF | C_DEDICATED | ext_flags(1),
          cframe(1, b"\xf2\x48\xcd\xc9\xc9\x07\x00", rsv1=True) + cframe(8, b""), x8=HOOK_DEFER_ACCEPT | API_LATER,
          x9=CANNED_HEAD_CHUNKED, chunk=21)
http_seed("ws-echo-after-get", C_CANNED | C_EOF, ECHO_FRAMES, x9=CANNED_GET, chunk=33)
http_seed("ws-echo-after-post-body", C_CANNED | C_BROADCAST | C_EOF, ECHO_FRAMES, x8=HOOK_ACCEPT | API_LATER,
          x9=CANNED_POST, chunk=6)
http_seed("proxy-v1-echo", C_CANNED | C_EOF, ECHO_FRAMES, modes=M_PROXY, x9=PX_V1, chunk=7)
http_seed("proxy-v2-ws-defer", C_CANNED | C_BROADCAST | C_EOF, ECHO_FRAMES, modes=M_HTTP | M_PROXY,
          x8=HOOK_DEFER_ACCEPT, x9=PX_V2_TCP4 | X9_TRUSTED, chunk=5)
http_seed("proxy-v2-tcp6-tlv-api", C_EOF,
          hreq(b"GET", b"/api/who", [(b"X-Forwarded-For", b"203.0.113.9")]) + hreq(b"GET", b"/healthz"),
          modes=M_HTTP | M_PROXY, x9=PX_V2_TCP6 | X9_TRUSTED, chunk=3)
http_seed("proxy-raw-v1-split", C_EOF,
          b"PROXY TCP6 2001:db8::1 2001:db8::2 4000 443\r\n" + hreq(b"GET", b"/healthz"), modes=M_HTTP | M_PROXY,
          chunk=0)
http_seed("proxy-raw-v2-local", C_EOF,
          b"\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00" + hreq(b"GET", b"/echo", WS) + cframe(1, b"hi"), modes=M_PROXY,
          chunk=4)
http_seed("proxy-missing-400", C_EOF, hreq(b"GET", b"/healthz"), modes=M_HTTP | M_PROXY, chunk=6)
http_seed("http-pipelined-past-round-budget", C_EOF, b"GET /ws HTTP/1.1\r\nHost: a\r\n\r\n" * 12, chunk=255)


# --- tls -----------------------------------------------------------------------
# Settings prefix (fuzz_tls.cpp): [0] flags, [1] ALPN and SO_SNDBUF of each end, [2] client
# read size, [3] largest SSL_write, [4..5] seed, [6] server limits, [7] events first,
# certificate reloads, log sink.
T13 = 0x01             # TLS 1.3 (else 1.2)
T_FRAMES = 0x02        # the harness builds masked frames from the script's data commands
T_CLOSE = 0x04         # a close frame at the end of the script
T_END_NOTIFY = 1 << 3  # end action: close_notify, then FIN
T_END_FIN = 2 << 3     # end action: FIN without close_notify
T_END_CLOSE = 3 << 3   # end action: close the socket
T_PLAIN_FIRST = 0x20   # a plaintext HTTP request before the ClientHello
SNI_LOCALHOST = 0x40
SNI_DEFAULT = 0x80
ALPN_HTTP11 = 1
ALPN_H2 = 2
ALPN_BOTH = 3


def sndbuf(server=0, client=0):
    """Indexes into default, 1, 2048, 4096, 8192, 16384, 32768, 65536."""
    return server << 2 | client << 5


def tcmd(op, payload=b""):
    """One script command: op in the low 3 bits, the length above (31: 31 + 16 * next byte)."""
    n = len(payload)
    if n < 31:
        return bytes([n << 3 | op]) + payload
    assert (n - 31) % 16 == 0 and n <= 31 + 16 * 255, n
    return bytes([31 << 3 | op, (n - 31) // 16]) + payload


def ttext(s):
    return tcmd(0, s)


def tbin(b):
    return tcmd(1, b)


def tfrag(b):
    return tcmd(2, b)


def tping(b):
    return tcmd(3, b)


def tgarbage_record(b):
    return tcmd(4, b)


def tgarbage_raw(b):
    return tcmd(5, b)


def tkey_update(requested):
    return bytes([(8 if requested else 0) | 6])


def ttruncate(cut, rest):
    """Ends the script: the rest as one more record, cut after 1 + cut % (record - 1) bytes, then FIN."""
    return bytes([(cut & 0x1E) << 3 | 7]) + rest


def tabort(rest=b""):
    return bytes([8 | 7]) + rest


def tls_input(flags, script, alpn_buf=ALPN_HTTP11, read=0, wmax=0, seed=1, limits=0, x7=0):
    return bytes([flags, alpn_buf, read, wmax, seed & 0xFF, seed >> 8, limits, x7]) + script


def tls_seed(name, flags, script, **kw):
    write("tls", name, tls_input(flags, script, **kw))


TECHO = ttext(b"hello") + tbin(bytes(range(47))) + tfrag("κόσμε over TLS".encode()) + tping(b"p1")

tls_seed("tls13-echo-close", T13 | T_FRAMES | T_CLOSE | SNI_LOCALHOST, TECHO)
tls_seed("tls12-echo-close", T_FRAMES | T_CLOSE, TECHO, alpn_buf=ALPN_BOTH, wmax=5)
tls_seed("tls13-sni-default-h2-only", T13 | T_FRAMES | T_END_NOTIFY | SNI_DEFAULT, TECHO, alpn_buf=ALPN_H2)
tls_seed("tls12-sni-unknown-fin", T_FRAMES | T_END_FIN | 0xC0, TECHO, alpn_buf=0)
tls_seed("tls13-one-byte-records", T13 | T_FRAMES | T_CLOSE, ttext(b"tiny records") + tping(b""), wmax=0x01)
tls_seed("tls13-big-message-many-records", T13 | T_FRAMES | T_CLOSE, tbin(bytes(i & 0xFF for i in range(31 + 16 * 200))),
         wmax=0)
tls_seed("tls12-small-buffers-slow-reader", T_FRAMES | T_CLOSE,
         tbin(b"\xa5" * (31 + 16 * 250)) + ttext(b"after"), alpn_buf=sndbuf(1, 1) | ALPN_HTTP11, read=2, wmax=40)
tls_seed("tls13-small-buffers-1byte-reads", T13 | T_FRAMES | T_END_NOTIFY,
         tbin(b"\x5a" * (31 + 16 * 100)), alpn_buf=sndbuf(1, 1), read=1, wmax=20)
tls_seed("tls13-key-update-requested", T13 | T_FRAMES | T_CLOSE,
         ttext(b"before") + tkey_update(True) + ttext(b"after") + tkey_update(False) + ttext(b"again"))
tls_seed("tls13-key-update-full-socket", T13 | T_FRAMES | T_END_NOTIFY,
         tbin(b"\x11" * (31 + 16 * 250)) + tkey_update(True) + ttext(b"after"), alpn_buf=sndbuf(1, 1), read=3, wmax=60)
tls_seed("tls13-garbage-record-after-echo", T13 | T_FRAMES, ttext(b"one") + tgarbage_record(b"\x00" * 24) + ttext(b"lost"))
tls_seed("tls12-garbage-record-after-echo", T_FRAMES, ttext(b"one") + tgarbage_record(b"junk") + ttext(b"lost"))
tls_seed("tls13-garbage-record-in-handshake", T13 | T_FRAMES, tgarbage_record(b"\x17" * 30) + ttext(b"never"), x7=1)
tls_seed("tls12-garbage-record-in-handshake", T_FRAMES, tgarbage_record(b"\x01" * 5) + ttext(b"never"), x7=1)
tls_seed("tls13-garbage-raw-half-header", T13 | T_FRAMES | T_END_FIN, ttext(b"one") + tgarbage_raw(b"\x17\x03"))
tls_seed("tls12-garbage-raw-ccs-in-handshake", T_FRAMES | T_END_NOTIFY, tgarbage_raw(b"\x14\x03\x03\x00\x01\x01"), x7=1)
tls_seed("tls13-truncated-record-fin", T13 | T_FRAMES, ttext(b"whole") + ttruncate(9, b"cut short" * 4))
tls_seed("tls12-truncated-header-fin", T_FRAMES, ttext(b"whole") + ttruncate(2, b"cut"))
tls_seed("tls13-plaintext-http-first", T13 | T_FRAMES | T_PLAIN_FIRST, ttext(b"never"))
tls_seed("tls12-raw-unmasked-frame", 0, tcmd(0, b"\x81\x02hi"))
tls_seed("tls13-raw-masked-then-close", T13 | T_END_NOTIFY,
         tcmd(0, b"\x82\x83\x01\x02\x03\x04\x01\x02\x03" + b"\x88\x80\x00\x00\x00\x00"))
# Read size 512 (max_backpressure 1024) and 2 KiB rounds, with records of at most 485 bytes
# (larger ones run into finding 2 of fuzz/regression/tls/README.md).
tls_seed("tls13-small-read-size-budget", T13 | T_FRAMES, tbin(b"\x42" * (31 + 16 * 250)) + ttext(b"next"),
         wmax=22, limits=0 | 1 << 2)
tls_seed("tls12-backpressure-drop", T_FRAMES | T_CLOSE,
         tbin(b"\x33" * (31 + 16 * 120)) + tbin(b"\x44" * (31 + 16 * 120)) + ttext(b"x"),
         alpn_buf=sndbuf(1, 1), read=1, wmax=40, limits=2 << 2 | 16)

X7_EVENTS_FIRST = 1
X7_RELOAD_AT_ADOPT = 2
X7_RELOAD_AFTER_HANDSHAKE = 4
X7_LOG_SINK = 8
tls_seed("tls13-reload-certificates-sni-localhost", T13 | T_FRAMES | T_CLOSE | SNI_LOCALHOST, TECHO,
         x7=X7_RELOAD_AT_ADOPT | X7_RELOAD_AFTER_HANDSHAKE)
tls_seed("tls12-garbage-record-logged", T_FRAMES, ttext(b"one") + tgarbage_record(b"junk" * 7), x7=X7_LOG_SINK)
# Five 4111-byte echoes queue up behind a slow reader: tls_writev gathers more than one
# record's worth from several iovecs and writes it in 16 KiB records.
tls_seed("tls13-queued-echoes-gathered", T13 | T_FRAMES | T_CLOSE,
         b"".join(tbin(bytes([i]) * (31 + 16 * 255)) for i in range(5)), alpn_buf=ALPN_HTTP11 | sndbuf(3, 0), read=4)
tls_seed("tls12-plaintext-http-first-logged", T_FRAMES | T_PLAIN_FIRST, ttext(b"never"), x7=X7_LOG_SINK)

# Reproducers of the findings (fuzz/regression/tls/README.md): hand-made, replayed by
# `make test` like the rest of fuzz/regression.
def tls_regression(name, flags, script, **kw):
    d = os.path.join(ROOT, "regression", "tls")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(tls_input(flags, script, **kw))


tls_regression("sigpipe-echo-to-closed-peer", T13 | T_FRAMES, ttext(b"hello") * 3 + tabort())
# max_backpressure 1024 (read size 512), production round budget: one record holds a
# 607-byte message (its echo pauses reading) and the start of the next.
tls_regression("held-decrypted-input-after-pause-stalls", T13 | T_FRAMES,
               tbin(b"\x01" * 607) + tbin(b"\x02" * 2015), limits=1 | 1 << 2)
tls_regression("close-notify-dropped-socket-full", T13 | T_FRAMES | T_CLOSE, tbin(b"\x11" * (31 + 16 * 250)),
               alpn_buf=ALPN_HTTP11 | sndbuf(1, 1), read=2)

# --- envelope --------------------------------------------------------------------
# Settings prefix (fuzz_envelope.cpp): max_len class (0 exact, 1 +1, 2 +63, 3 shared
# 1 MiB parser, 4 one byte short), then a little-endian u64 for env_u64. The message
# (a client's JSON envelope, docs/messaging.md) follows.
ENV_EXACT, ENV_PLUS1, ENV_PLUS63, ENV_SHARED, ENV_SHORT = 0, 1, 2, 3, 4


def env_seed(name, msg, cls=ENV_EXACT, u=0, target_dir="corpus"):
    if isinstance(msg, str):
        msg = msg.encode()
    d = os.path.join(ROOT, target_dir, "envelope")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(bytes([cls]) + struct.pack("<Q", u) + msg)


env_seed("subscribe", '{"type":"subscribe","channel":"news","id":"1"}', ENV_SHARED, 42)
env_seed("subscribe-since", '{"type":"subscribe","channel":"news","payload":{"since":{"offset":17,"epoch":"0123456789abcdef"}}}',
         ENV_PLUS1, 17)
env_seed("publish-object", '{"type":"publish","channel":"c","correlationId":"q1","payload":{"a":[1,2.5e3,-0,true,null,"x"]}}',
         ENV_PLUS63, 2**64 - 1)
env_seed("publish-scalar-ws", '{ "type" : "publish" , "channel":"c", "payload" : 12 \n}\t', ENV_EXACT, 10**19)
env_seed("publish-string-payload", '{"type":"publish","channel":"c","payload":"\\u00e9\\n"}')
env_seed("send-to", '{"type":"send","to":"0123456789abcdef0123456789abcdef","event":"hi","payload":[]}', ENV_SHARED)
env_seed("ping", '{"type":"ping"}', ENV_EXACT, 1)
env_seed("unknown-fields", '{"x":{"y":[{}]},"type":"ping","z":-1.5E-7,"w":"\\ud83d\\ude00"}')
env_seed("escaped-key-type", '{"typ\\u0065":"ping","\\u0069d":"\\"\\\\\\/\\b\\f\\n\\r\\t"}')
env_seed("utf8-strings", '{"type":"κόσμε","channel":"🙂","event":"\u0800\uffff"}'.encode(), ENV_PLUS1)
env_seed("nul-in-string", b'{"type":"a\\u0000b","channel":"c\\u0000"}')
env_seed("key-with-nul", b'{"type\\u0000":"x","type":"y"}')
env_seed("too-large", '{"type":"ping"}', ENV_SHORT)
env_seed("empty-message", b"", ENV_EXACT)
# BAD_REQUEST
env_seed("bad-array", "[1,2]")
env_seed("bad-scalar", '"type"')
env_seed("bad-no-type", '{"channel":"c"}')
env_seed("bad-empty-type", '{"type":""}')
env_seed("bad-type-number", '{"type":1}')
env_seed("bad-channel-null", '{"type":"publish","channel":null}')
env_seed("bad-duplicate-type", '{"type":"ping","type":"ping"}')
env_seed("bad-duplicate-escaped", '{"type":"ping","\\u0074ype":"pong"}')
env_seed("bad-duplicate-payload", '{"type":"publish","payload":1,"payload":2}')
env_seed("bad-duplicate-then-invalid", '{"type":"a","type":"b","x":tru}')
# INVALID_JSON
env_seed("invalid-truncated", '{"type":"ping"')
env_seed("invalid-trailing", '{"type":"ping"}x')
env_seed("invalid-two-objects", '{"type":"ping"}{}')
env_seed("invalid-lone-high-surrogate", '{"type":"\\ud800"}')
env_seed("invalid-lone-low-surrogate-payload", '{"type":"p","payload":"\\udc00x"}')
env_seed("invalid-raw-nul", b'{"type":"a\x00b"}')
env_seed("invalid-raw-control", b'{"type":"a\x01"}')
env_seed("invalid-utf8-overlong", b'{"type":"\xc0\xaf"}')
env_seed("invalid-utf8-surrogate-bytes", b'{"type":"ok","x":"\xed\xa0\x80"}')
env_seed("invalid-utf8-outside-strings", b'{"type":"ok"}\xff')
env_seed("invalid-bigint", '{"type":"p","payload":123456789012345678901234567890}')
env_seed("invalid-u64-plus-1", '{"type":"p","x":18446744073709551616}')
env_seed("invalid-i64-minus-1", '{"type":"p","x":-9223372036854775809}')
env_seed("invalid-huge-exponent", '{"type":"p","payload":1e400}')
env_seed("invalid-leading-zero", '{"type":"p","payload":01}')
env_seed("invalid-bad-escape", '{"type":"p\\x"}')
env_seed("invalid-payload-trailing-comma", '{"type":"p","payload":[1,]}')
env_seed("invalid-unknown-field-garbage", '{"type":"p","u":[tru]}')
# Depth: DOM (max_depth 64) counts every value, the root at 1. Depth 65 inside the
# envelope is a finding (env_parse accepts it): those go to fuzz/regression/envelope.
for n in (63, 64, 65, 66):
    where = "regression" if n == 65 else "corpus"
    env_seed("depth-array-%d" % n, "[" * n + "]" * n)
    env_seed("depth-field-%d" % n, '{"type":"p","x":' + "[" * (n - 1) + "]" * (n - 1) + "}", target_dir=where)
    env_seed("depth-payload-%d" % n, '{"type":"p","payload":' + "[" * (n - 1) + "]" * (n - 1) + "}",
             target_dir=where)
    env_seed("depth-field-scalar-%d" % n, '{"type":"p","x":' + "[" * (n - 2) + "1" + "]" * (n - 2) + "}",
             target_dir=where)
env_seed("depth-1000", '{"type":"p","payload":' + "[" * 1000 + "]" * 1000 + "}")
# A string at the root followed by anything: env_parse says BAD_REQUEST, not INVALID_JSON
# (fuzz/regression/envelope/README.md). libFuzzer's find is kept as it came:
# regression/envelope/root-string-libfuzzer-9a39d115.
env_seed("root-string-trailing-garbage", '"a" x', target_dir="regression")
env_seed("root-string-then-brace", '"a"}', target_dir="regression")
# `false` followed by a letter or '-' as a document of its own (the message, or the
# payload, which payload_valid parses on its own): accepted (fuzz/regression/envelope/README.md).
env_seed("payload-falsex", '{"type":"p","payload":falsex}', target_dir="regression")
env_seed("payload-false-minus", '{"type":"p","payload":false-}', target_dir="regression")
env_seed("root-falsex", "falsex", target_dir="regression")
