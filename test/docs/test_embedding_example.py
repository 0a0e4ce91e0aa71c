#!/usr/bin/python3
"""The complete program in docs/embedding.md builds and does what the page says: a
WebSocket client without the bearer token gets 401, one with it receives the stream
paced by on_drain, and GET /healthz answers on the same port. A reader copies that
program first, so it must never rot.

Usage: test_embedding_example.py INCLUDE_DIR LIB_DIR [SANITIZERS] (where wsr/wsr.h and
libwsreactor.so are; the sanitizers the library was built with, e.g. address,undefined).
TAP output."""
import asyncio
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import websockets

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOKEN = "Bearer s3cret"


class Tap:
    def __init__(self, n):
        self.i = 0
        self.failed = 0
        print(f"1..{n}")

    def check(self, ok, what, detail=""):
        self.i += 1
        print(f"{'ok' if ok else 'not ok'} {self.i} - {what}")
        if not ok:
            self.failed += 1
            for line in str(detail).splitlines()[:20]:
                print(f"# {line}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build(src, tmp, include_dir, lib_dirs, libs, sanitize):
    """Compiles a page's C program as the page says (warnings are errors): the
    executable's path, or None and the compiler's complaint."""
    path = os.path.join(tmp, "app.c")
    with open(path, "w") as f:
        f.write(src)
    uv = subprocess.run(["pkg-config", "--cflags", "--libs", "libuv"], capture_output=True, text=True).stdout.split()
    exe = os.path.join(tmp, "app")
    flags = [f"-fsanitize={sanitize}"] if sanitize else []
    dirs = [a for d in lib_dirs for a in ("-L", d)]
    cc = subprocess.run(["cc", "-Wall", "-Werror", "-Wno-unused-parameter", *flags, "-I", include_dir, path, *dirs,
                         *(f"-l{lib}" for lib in libs), *uv, "-o", exe], capture_output=True, text=True)
    return (exe if cc.returncode == 0 else None), cc.stderr


def wait_for_port(port, seconds=10):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)


def example_source():
    with open(os.path.join(ROOT, "docs", "embedding.md"), encoding="utf-8") as f:
        blocks = re.findall(r"```c\n(.*?)```", f.read(), re.S)
    return blocks[0] if blocks else ""


async def try_without_token(url):
    try:
        async with websockets.connect(url):
            return None
    except websockets.exceptions.InvalidStatusCode as e:
        return e.status_code


async def stream_with_token(url, seconds):
    received = 0
    async with websockets.connect(url, extra_headers={"Authorization": TOKEN}, max_size=None, close_timeout=0.5) as ws:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            received += len(await asyncio.wait_for(ws.recv(), 5))
    return received


def main():
    include_dir, lib_dir = sys.argv[1], sys.argv[2]
    sanitize = sys.argv[3] if len(sys.argv) > 3 and sys.argv[3] not in ("", "none") else None
    tap = Tap(5)
    src = example_source()
    lines = src.count("\n")
    tap.check(0 < lines <= 80, f"the example is complete and short ({lines} lines)")
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        # The page's address, moved to a free port so that tests can run side by side.
        exe, err = build(src.replace("127.0.0.1:9001", f"127.0.0.1:{port}"), tmp, include_dir, [lib_dir],
                         ["wsreactor"], sanitize)
        tap.check(exe is not None, "it builds with the documented command", err)
        if not exe:
            return 1
        env = dict(os.environ, LD_LIBRARY_PATH=lib_dir)
        proc = subprocess.Popen([exe], env=env, stderr=subprocess.PIPE, text=True)
        try:
            wait_for_port(port)
            url = f"ws://127.0.0.1:{port}/stream"
            status = asyncio.run(try_without_token(url))
            tap.check(status == 401, f"no token: 401 (got {status})")
            received = asyncio.run(stream_with_token(url, 1.0))
            tap.check(received >= 1 << 20, f"with the token the stream flows ({received} bytes in 1 s)")
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5).read()
            tap.check(body == b'{"status":"ok"}', f"/healthz on the same port ({body!r})")
        finally:
            proc.kill()
            proc.wait()
    return 1 if tap.failed else 0


if __name__ == "__main__":
    sys.exit(main())
