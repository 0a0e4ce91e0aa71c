#!/usr/bin/python3
"""Finding 2 of fuzz/regression/tls/README.md against the daemon: two messages in one TLS
record; the second is not echoed while the client sends nothing more.

    python3 fuzz/regression/tls/README-daemon-stall.py build/rel/wsreactor 18443 [max-backpressure]

With --max-backpressure 1024 (reads of 512 bytes) it prints "after 3 s: 611 of 2630 echoed
bytes", then all 2630 once the client sends a ping; with 65536 all 2630 come at once.
Needs the openssl command (a throwaway certificate) and ports PORT and PORT + 1."""
import os, socket, ssl, struct, subprocess, sys, tempfile, time
exe = sys.argv[1]; port = int(sys.argv[2]); bp = sys.argv[3] if len(sys.argv) > 3 else "1024"
d = tempfile.mkdtemp()
subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", d + "/key.pem", "-out", d + "/cert.pem", "-days", "2", "-subj", "/CN=localhost"],
               check=True, stderr=subprocess.DEVNULL)
p = subprocess.Popen([exe, "--listen", "127.0.0.1:%d" % (port + 1), "--listen-tls", "127.0.0.1:%d" % port,
                      "--tls-cert", d + "/cert.pem", "--tls-key", d + "/key.pem", "--max-backpressure", bp],
                     stderr=subprocess.DEVNULL)
try:
    time.sleep(0.7)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost")
    s.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    buf = b""
    while b"\r\n\r\n" not in buf: buf += s.recv(4096)
    buf = buf.split(b"\r\n\r\n", 1)[1]
    def frame(op, payload):  # masked with a zero key
        n = len(payload)
        h = bytes([0x80 | op]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack(">H", n))
        return h + b"\0\0\0\0" + payload
    s.sendall(frame(2, b"\x01" * 607) + frame(2, b"\x02" * 2015))  # one write: one record
    s.settimeout(3)
    want = (4 + 607) + (4 + 2015)
    try:
        while len(buf) < want: buf += s.recv(65536) or b""
    except socket.timeout:
        pass
    print("after 3 s: %d of %d echoed bytes" % (len(buf), want))
    s.sendall(frame(9, b"wake"))  # any byte from the client makes the socket readable again
    try:
        while len(buf) < want: buf += s.recv(65536)
    except socket.timeout:
        pass
    print("after a ping: %d of %d echoed bytes" % (len(buf), want))
finally:
    p.terminate(); p.wait()
    for f in ("cert.pem", "key.pem"): os.unlink(os.path.join(d, f))
    os.rmdir(d)
