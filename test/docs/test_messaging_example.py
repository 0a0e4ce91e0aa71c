#!/usr/bin/python3
"""The messaging program in docs/embedding.md builds with the documented command and does
what the page says: anonymous clients get 401, the user `agent` connects, `announce`
publishes on `news` and is answered with the offset, and a bad `announce` gets an error.

Usage: test_messaging_example.py INCLUDE_DIR LIB_DIR MSG_LIB_DIR [SANITIZERS]. TAP output."""
import asyncio
import base64
import json
import os
import re
import subprocess
import sys
import tempfile

import websockets

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_embedding_example import ROOT, Tap, build, free_port, wait_for_port  # noqa: E402

PASSWORD = "correct horse"


def example_source():
    with open(os.path.join(ROOT, "docs", "embedding.md"), encoding="utf-8") as f:
        blocks = re.findall(r"```c\n(.*?)```", f.read(), re.S)
    return next((b for b in blocks if "wsr/messaging.h" in b), "")


async def recv_type(ws, type_):
    while True:
        msg = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if msg["type"] == type_:
            return msg


async def session(url, tap):
    try:
        async with websockets.connect(url):
            status = None
    except websockets.exceptions.InvalidStatusCode as e:
        status = e.status_code
    tap.check(status == 401, f"anonymous: 401 (got {status})")
    auth = "Basic " + base64.b64encode(f"agent:{PASSWORD}".encode()).decode()
    async with websockets.connect(url, extra_headers={"Authorization": auth}) as ws:
        est = await recv_type(ws, "connection:established")
        tap.check(est["payload"]["user"] == "agent", f"established as agent ({est})")
        await ws.send(json.dumps({"type": "subscribe", "channel": "news", "id": "s"}))
        await recv_type(ws, "subscribed")
        await ws.send(json.dumps({"type": "announce", "id": "a1", "payload": {"text": "hello"}}))
        got = {}
        while len(got) < 2:
            msg = json.loads(await asyncio.wait_for(ws.recv(), 5))
            got[msg["type"]] = msg
        pub, ans = got.get("announcement", {}), got.get("announced", {})
        tap.check((pub.get("channel"), pub.get("offset"), pub.get("payload")) == ("news", 1, {"text": "hello"}),
                  f"the announcement is published on news ({pub})")
        tap.check((ans.get("correlationId"), ans.get("payload")) == ("a1", {"offset": 1}),
                  f"the sender is answered with the offset ({ans})")
        await ws.send(json.dumps({"type": "announce", "id": "a2"}))
        err = await recv_type(ws, "error")
        tap.check((err.get("correlationId"), err["payload"]["code"]) == ("a2", "bad_request"),
                  f"announce without a payload: bad_request ({err})")


def main():
    include_dir, lib_dir, msg_lib_dir = sys.argv[1], sys.argv[2], sys.argv[3]
    sanitize = sys.argv[4] if len(sys.argv) > 4 and sys.argv[4] not in ("", "none") else None
    tap = Tap(7)
    src = example_source()
    lines = src.count("\n")
    tap.check(0 < lines <= 60, f"the example is complete and short ({lines} lines)")
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        exe, err = build(src.replace("127.0.0.1:9002", f"127.0.0.1:{port}"), tmp, include_dir, [msg_lib_dir, lib_dir],
                         ["wsreactor-messaging", "wsreactor"], sanitize)
        tap.check(exe is not None, "it builds with the documented command", err)
        if not exe:
            return 1
        env = dict(os.environ, LD_LIBRARY_PATH=f"{msg_lib_dir}:{lib_dir}", AGENT_PASSWORD=PASSWORD)
        proc = subprocess.Popen([exe], env=env, stderr=subprocess.PIPE, text=True)
        try:
            wait_for_port(port)
            asyncio.run(session(f"ws://127.0.0.1:{port}/ws", tap))
        finally:
            proc.kill()
            proc.wait()
    return 1 if tap.failed else 0


if __name__ == "__main__":
    sys.exit(main())
