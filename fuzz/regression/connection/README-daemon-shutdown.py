import socket, subprocess, time, sys
port = 18931
p = subprocess.Popen([sys.argv[1], "--listen", f"127.0.0.1:{port}", "--shutdown-timeout", sys.argv[2]], stderr=subprocess.DEVNULL)
time.sleep(0.3)
s = socket.create_connection(("127.0.0.1", port))
s.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
print(s.recv(1000).split(b"\r\n")[0])
p.terminate()
try:
    p.wait(3); print("exited", p.returncode)
except subprocess.TimeoutExpired:
    print("HANG: still running 3 s after SIGTERM"); p.kill()
