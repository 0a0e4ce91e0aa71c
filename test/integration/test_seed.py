#!/usr/bin/python3
"""The seed scenario end to end, with real clients in two languages (docs/messaging.md).

One AGENT (node `ws`, node/seed_agent.mjs) and two DASHBOARDS (python3-websockets) on
/ws, and a backend publishing over the HTTP API (POST /api/publish, --api-key):
- dashboard A sends `command:request` (send, with an id and a correlationId) to the
  agent; A gets the ack and exactly one `command:response` with that correlationId; the
  agent streams output lines on `agents:<name>:output`, a channel both dashboards watch;
- dashboard B drops (abruptly: the TCP connection cut without a close frame; or with a
  clean close) right after it has seen offset k; the backend publishes meanwhile; B
  reconnects with `since: {offset: k, epoch}` and gets `recovered: true` and exactly the
  publications k+1..(the offset `subscribed` names), in order, then the live ones, no gap,
  no duplicate; it asks the agent for more output, which only it gets the response to;
  at the end B's offsets (before and after the drop) are A's offsets 1..last, the same
  bytes, with the backend's publications at the offsets /api/publish answered;
- the daemon restarts (history lost): B's old `since` gets `recovered: false`, a new
  epoch, offsets counting from 1 again, and the agent (reconnected, a new client id)
  still answers.

Every wait is bounded (a few seconds) and waits for an expected message; "nothing else
came" is checked with a ping barrier (the server handles a connection's messages in
order, and every connection on one loop, so anything meant for a dashboard comes before
its pong). The node cases are skipped, with the reason, without node or node_modules/ws.
"""

import asyncio
import http.client
import json
import os
import re
import shutil
import sys
import uuid

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from httputil import Daemon, sample, scrape  # noqa: E402
from wsclient import NODE_DIR, OwnServerCase, ServerTestCase, run_tap  # noqa: E402

import websockets  # noqa: E402

API_KEY = "seed-backend-key"
HEX32 = re.compile(r"^[0-9a-f]{32}$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")
WAIT = 5            # seconds for any one expected message
AGENT = os.path.join(NODE_DIR, "seed_agent.mjs")


def run(coro, timeout=60):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def node_or_skip(test):
    node = shutil.which("node")
    if not node:
        test.skipTest("node is not installed")
    if not os.path.isfile(os.path.join(NODE_DIR, "node_modules", "ws", "package.json")):
        test.skipTest("node_modules missing: run `make node-deps` (npm ci in test/integration/node)")
    return node


def is_pub(msg):
    """A channel publication (subscribed answers carry their offset in the payload)."""
    return "offset" in msg and "channel" in msg


async def until(test, cond, pred, what, timeout=WAIT, describe=None):
    """Waits (bounded) until pred() holds, woken by cond whenever something arrives;
    on a timeout the failure shows describe() (what did arrive)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with cond:
        while not pred():
            left = deadline - loop.time()
            if left <= 0:
                test.fail(f"timed out after {timeout} s waiting for {what}"
                          + (f"; {describe()}" if describe else ""))
            try:
                await asyncio.wait_for(cond.wait(), left)
            except asyncio.TimeoutError:
                pass


class Agent:
    """node seed_agent.mjs as a subprocess; its JSON report lines collected in order."""

    def __init__(self, test, node, uri, channel, reconnect=False):
        self.t, self.node, self.uri, self.channel = test, node, uri, channel
        self.reconnect = reconnect
        self.events = []
        self.cond = asyncio.Condition()
        self.proc = None

    async def start(self):
        args = [self.node, AGENT, self.uri, self.channel] + (["--reconnect"] if self.reconnect else [])
        self.proc = await asyncio.create_subprocess_exec(
            *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        self.reader = asyncio.create_task(self._read())
        return await self.ready(0)

    async def _read(self):
        while True:
            line = await self.proc.stdout.readline()
            if not line:
                break
            try:
                ev = json.loads(line)
            except ValueError:
                ev = {"event": "unexpected", "raw": line.decode(errors="replace")}
            async with self.cond:
                self.events.append(ev)
                self.cond.notify_all()
        async with self.cond:
            self.events.append({"event": "eof"})
            self.cond.notify_all()

    def of(self, kind):
        return [e for e in self.events if e["event"] == kind]

    def describe(self):
        return "agent reported:\n" + "\n".join(json.dumps(e) for e in self.events[-30:])

    async def wait(self, kind, count, what=None):
        await until(self.t, self.cond, lambda: len(self.of(kind)) >= count or self.dead(),
                    what or f"agent event {kind} #{count}", describe=self.describe)
        self.t.assertGreaterEqual(len(self.of(kind)), count,
                                  f"agent ended before {kind} #{count}; {self.describe()}")
        return self.of(kind)[count - 1]

    def dead(self):
        return any(e["event"] in ("eof", "fatal") for e in self.events)

    async def ready(self, n):
        ev = await self.wait("ready", n + 1, f"the agent's connection #{n + 1}")
        self.t.assertRegex(ev["clientId"], HEX32, ev)
        self.t.assertEqual(ev["channel"], self.channel)
        return ev["clientId"]

    def assert_clean(self):
        bad = [e for e in self.events if e["event"] in ("error", "unexpected", "fatal")]
        self.t.assertEqual(bad, [], self.describe())

    async def stop(self):
        """Ends stdin: the agent closes with 1000 and must exit 0."""
        if self.proc.returncode is None:
            self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), WAIT)
            except asyncio.TimeoutError:
                self.proc.kill()
                await self.proc.wait()
                self.t.fail("the agent did not exit within 5 s after its stdin closed")
        await self.reader
        err = (await self.proc.stderr.read()).decode(errors="replace")
        self.t.assertEqual(self.proc.returncode, 0, f"agent exit status; stderr:\n{err[-2000:]}\n"
                           + self.describe())

    def kill(self):
        if self.proc and self.proc.returncode is None:
            self.proc.kill()


class Dashboard:
    """A python3-websockets client of /ws. A reader task records every message in arrival
    order (log); drop_after=(offset, how) cuts the connection right after the
    publication with that offset has been seen ("abort": the TCP connection closed with
    no close frame; "close": a close handshake), and nothing after it is looked at."""

    def __init__(self, test, name, channel):
        self.t, self.name, self.channel = test, name, channel
        self.log = []
        self.cond = asyncio.Condition()
        self.drop_after = None
        self.ended = None          # how the reader ended: "dropped", or the ConnectionClosed
        self.id = None
        self._n = 0

    async def open(self, uri):
        self.ws = await websockets.connect(uri, max_size=None, max_queue=None, compression=None,
                                           open_timeout=WAIT, close_timeout=2, ping_interval=None)
        self.reader = asyncio.create_task(self._read())
        _, est = await self.wait_for(lambda m: True, "connection:established")
        self.t.assertEqual(est["type"], "connection:established", est)
        self.t.assertRegex(est["payload"]["clientId"], HEX32, est)
        self.id = est["payload"]["clientId"]
        return self

    async def _read(self):
        try:
            async for raw in self.ws:
                msg = json.loads(raw)
                self.t.assertIsInstance(msg, dict, raw)
                async with self.cond:
                    self.log.append((raw, msg))
                    self.cond.notify_all()
                if self.drop_after and is_pub(msg) and msg["offset"] == self.drop_after[0]:
                    if self.drop_after[1] == "abort":
                        self.ws.transport.abort()
                    else:
                        await self.ws.close(1000, "dashboard leaving")
                    self.ended = "dropped"
                    break
        except websockets.ConnectionClosed as e:
            self.ended = e
        finally:
            if self.ended is None:
                self.ended = "reader ended"
            async with self.cond:
                self.cond.notify_all()

    def describe(self):
        return f"dashboard {self.name} got:\n" + "\n".join(r for r, _ in self.log[-30:])

    async def wait_for(self, pred, what, start=0):
        """The first message from log[start:] that pred accepts: (index, msg)."""
        box = []

        def found():
            for i in range(start, len(self.log)):
                if pred(self.log[i][1]):
                    box.append(i)
                    return True
            return self.ended is not None

        await until(self.t, self.cond, found, f"{what} on dashboard {self.name}", describe=self.describe)
        self.t.assertTrue(box, f"connection ended ({self.ended!r}) before {what}; {self.describe()}")
        return box[0], self.log[box[0]][1]

    async def send(self, obj):
        await self.ws.send(json.dumps(obj))

    def pubs(self):
        return [(raw, msg) for raw, msg in self.log if is_pub(msg) and msg["channel"] == self.channel]

    def offsets(self):
        return [m["offset"] for _, m in self.pubs()]

    def of(self, type_):
        return [m for _, m in self.log if m.get("type") == type_]

    async def until_offset(self, offset):
        await until(self.t, self.cond, lambda: offset in self.offsets() or self.ended is not None,
                    f"offset {offset} on dashboard {self.name}", describe=self.describe)
        self.t.assertIn(offset, self.offsets(), f"connection ended ({self.ended!r}); {self.describe()}")

    async def subscribe(self, since=None, id_="sub"):
        m = {"type": "subscribe", "channel": self.channel, "id": id_}
        if since is not None:
            m["payload"] = {"since": since}
        start = len(self.log)
        await self.send(m)
        i, msg = await self.wait_for(lambda x: x.get("correlationId") == id_, f"the answer to {id_}", start)
        self.t.assertEqual((msg["type"], msg["channel"]), ("subscribed", self.channel), msg)
        p = msg["payload"]
        self.t.assertEqual(set(p), {"offset", "epoch", "recovered"}, msg)
        self.t.assertRegex(p["epoch"], HEX16, msg)
        self.t.assertIs(type(p["offset"]), int, msg)
        self.t.assertIn(p["recovered"], (True, False), msg)
        return i, p

    async def command(self, agent_id, cid, payload):
        """Sends command:request to the agent; returns its ack's log index."""
        start = len(self.log)
        await self.send({"type": "send", "to": agent_id, "event": "command:request", "id": cid,
                         "correlationId": cid, "payload": payload})
        i, msg = await self.wait_for(lambda x: x.get("type") in ("ack", "error") and x.get("correlationId") == cid,
                                     f"the ack of {cid}", start)
        self.t.assertEqual(msg["type"], "ack", msg)
        return i

    async def response(self, cid):
        _, msg = await self.wait_for(lambda x: x.get("type") == "command:response"
                                     and x.get("correlationId") == cid, f"command:response {cid}")
        return msg

    async def barrier(self):
        """Everything meant for this dashboard so far has arrived (see the module doc)."""
        self._n += 1
        tag = f"barrier-{self._n}"
        await self.send({"type": "ping", "id": tag})
        await self.wait_for(lambda x: x.get("type") == "pong" and x.get("correlationId") == tag, tag)

    async def close(self):
        if self.ended is None:
            await self.ws.close()
        await self.reader

    def assert_no_errors(self, expected=()):
        """No error answers but those to the ids in expected."""
        self.t.assertEqual([m for m in self.of("error") if m.get("correlationId") not in expected], [],
                           self.describe())


def api_publish(host, port, channel, event, payload, key=API_KEY):
    c = http.client.HTTPConnection(host, port, timeout=WAIT)
    try:
        c.request("POST", "/api/publish", body=json.dumps({"channel": channel, "event": event, "payload": payload}),
                  headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
        r = c.getresponse()
        return r.status, json.loads(r.read() or b"null")
    finally:
        c.close()


def output_channel():
    return f"agents:agent1-{uuid.uuid4().hex[:8]}:output"


class SeedMixin:
    async def backend_publish(self, host, port, channel, n, epoch=None):
        """POST /api/publish of {"n": n} (event backend:status): returns its offset."""
        st, body = await asyncio.to_thread(api_publish, host, port, channel, "backend:status", {"n": n})
        self.assertEqual(st, 200, body)
        self.assertEqual(set(body), {"offset", "epoch"}, body)
        if epoch is not None:
            self.assertEqual(body["epoch"], epoch, body)
        return body["offset"]

    def check_response(self, msg, agent_id, cid, lines):
        self.assertEqual(set(msg), {"type", "from", "payload", "correlationId", "timestamp"}, msg)
        self.assertEqual((msg["from"], msg["correlationId"], msg["payload"]),
                         (agent_id, cid, {"ok": True, "command": "stream", "lines": lines}), msg)

    def check_request(self, ev, dashboard, cid, payload):
        self.assertEqual((ev["from"], ev["correlationId"], ev["payload"]), (dashboard.id, cid, payload), ev)

    def check_sequence(self, pubs, channel, epoch, agent_id, expect):
        """pubs: [(raw, msg)] with offsets 1..len; expect: {offset: ("agent", cid, line) or
        ("backend", n)}. Every publication is in its place, with its sender."""
        for raw, m in pubs:
            want = expect.get(m["offset"])
            self.assertIsNotNone(want, f"no publication expected at offset {m['offset']}: {raw}")
            if want[0] == "agent":
                self.assertEqual(set(m), {"type", "channel", "offset", "epoch", "payload", "from", "timestamp"}, raw)
                self.assertEqual((m["type"], m["channel"], m["epoch"], m["from"], m["payload"]),
                                 ("output", channel, epoch, agent_id, {"command": want[1], "line": want[2]}), raw)
            else:
                self.assertEqual(set(m), {"type", "channel", "offset", "epoch", "payload", "timestamp"},
                                 f"a backend publication has no from: {raw}")
                self.assertEqual((m["type"], m["channel"], m["epoch"], m["payload"]),
                                 ("backend:status", channel, epoch, {"n": want[1]}), raw)


class SeedRecovery(SeedMixin, ServerTestCase):
    """One daemon (with a backend key) for the drop-and-recover cases."""
    server_args = ("--api-key", API_KEY)

    N1, N2, K = 40, 10, 8       # lines of the first and second stream; B drops after offset K

    @staticmethod
    def closes(srv):
        _, fams = scrape(srv.host, srv.port)
        return {c: sample(fams, "wsreactor_closes_total", {"code": c}) for c in ("1000", "1006")}

    def scenario(self, how):
        node = node_or_skip(self)
        srv = self.server
        uri = srv.uri("/ws")
        ch = output_channel()

        async def go():
            agent = Agent(self, node, uri, ch)
            try:
                agent_id = await agent.start()
                a = await Dashboard(self, "A", ch).open(uri)
                b = await Dashboard(self, "B", ch).open(uri)
                _, sa = await a.subscribe()
                _, sb = await b.subscribe()
                self.assertEqual((sa["offset"], sa["recovered"]), (0, False), sa)
                self.assertEqual((sb["offset"], sb["recovered"], sb["epoch"]), (0, False, sa["epoch"]), sb)
                epoch = sa["epoch"]
                b.drop_after = (self.K, how)
                closes0 = await asyncio.to_thread(self.closes, srv)

                # A asks the agent to stream: its ack, then exactly one response.
                cmd1 = {"command": "stream", "lines": self.N1, "intervalMs": 25}
                await a.command(agent_id, "cmd-1", cmd1)
                self.check_request(await agent.wait("request", 1), a, "cmd-1", cmd1)
                self.check_response(await a.response("cmd-1"), agent_id, "cmd-1", self.N1)

                # B drops right after offset K, while the agent streams; the backend
                # publishes while B is away.
                await until(self, b.cond, lambda: b.ended is not None, "dashboard B's drop",
                            describe=b.describe)
                self.assertEqual(b.ended, "dropped", b.describe())
                self.assertEqual(b.offsets(), list(range(1, self.K + 1)), b.describe())
                # The server noticed: A hears B leave, and the close is counted as the
                # application saw it (1006: no close frame, or B's 1000).
                await a.wait_for(lambda m: m.get("type") == "leave" and m["payload"]["clientId"] == b.id,
                                 "B's leave")
                closes1 = await asyncio.to_thread(self.closes, srv)
                want = {"1006": 1, "1000": 0} if how == "abort" else {"1006": 0, "1000": 1}
                self.assertEqual({c: closes1[c] - closes0[c] for c in want}, want, (closes0, closes1))
                h1 = await self.backend_publish(srv.host, srv.port, ch, 1, epoch)
                h2 = await self.backend_publish(srv.host, srv.port, ch, 2, epoch)
                self.assertGreater(h1, self.K)
                # (The first stream, 40 lines at 25 ms, is normally still running here; the
                # checks below hold either way, and cmd-2 and the third backend publication
                # make sure live publications follow B's recovery.)

                # B comes back (a new connection, a new client id) with what it had seen.
                b2 = await Dashboard(self, "B2", ch).open(uri)
                self.assertNotEqual(b2.id, b.id)
                i_sub, s2 = await b2.subscribe(since={"offset": self.K, "epoch": epoch})
                self.assertEqual((s2["recovered"], s2["epoch"]), (True, epoch), s2)
                last_replayed = s2["offset"]
                self.assertGreaterEqual(last_replayed, h2, s2)
                self.assertEqual([m for _, m in b2.log[:i_sub] if is_pub(m)], [],
                                 "a publication came before the subscribed answer")

                # B2 asks for more: its response comes to B2 only; the backend publishes
                # once more while both watch.
                cmd2 = {"command": "stream", "lines": self.N2, "intervalMs": 5}
                await b2.command(agent_id, "cmd-2", cmd2)
                self.check_request(await agent.wait("request", 2), b2, "cmd-2", cmd2)
                self.check_response(await b2.response("cmd-2"), agent_id, "cmd-2", self.N2)
                h3 = await self.backend_publish(srv.host, srv.port, ch, 3, epoch)
                self.assertGreater(h3, last_replayed)

                s1 = await agent.wait("streamed", 1, "the end of the first stream")
                s2_ = await agent.wait("streamed", 2, "the end of the second stream")
                self.assertEqual([s1["correlationId"], s2_["correlationId"]], ["cmd-1", "cmd-2"])
                last = self.N1 + self.N2 + 3
                # Where each publication must be: the agent's acked offsets and the API's answers.
                expect = {o: ("agent", "cmd-1", i + 1) for i, o in enumerate(s1["offsets"])}
                expect.update({o: ("agent", "cmd-2", i + 1) for i, o in enumerate(s2_["offsets"])})
                expect.update({h1: ("backend", 1), h2: ("backend", 2), h3: ("backend", 3)})
                self.assertEqual(sorted(expect), list(range(1, last + 1)), expect)
                self.assertEqual(s1["offsets"], sorted(s1["offsets"]))
                self.assertEqual(s2_["offsets"], sorted(s2_["offsets"]))
                self.assertGreater(s2_["offsets"][0], s1["offsets"][-1], "the streams ran one after the other")

                await a.until_offset(last)
                await b2.until_offset(last)
                await a.barrier()
                await b2.barrier()

                # A never dropped: 1..last, each in its place.
                self.assertEqual(a.offsets(), list(range(1, last + 1)), a.describe())
                self.check_sequence(a.pubs(), ch, epoch, agent_id, expect)
                # B: 1..K before the drop; after it, exactly K+1..last_replayed replayed then
                # the live ones: together A's sequence, byte for byte the same frames.
                self.assertEqual(b2.offsets(), list(range(self.K + 1, last + 1)), b2.describe())
                b_all = b.pubs() + b2.pubs()
                self.assertEqual([m["offset"] for _, m in b_all], a.offsets())
                self.assertEqual([r for r, _ in b_all], [r for r, _ in a.pubs()],
                                 "B's publications (live and replayed) differ from A's")
                self.assertIn(h1, b2.offsets()[:last_replayed - self.K])
                self.assertIn(h2, b2.offsets()[:last_replayed - self.K])
                self.assertNotIn(h3, b2.offsets()[:last_replayed - self.K])

                # Responses: each to its requester, exactly once.
                self.assertEqual([m["correlationId"] for m in a.of("command:response")], ["cmd-1"])
                self.assertEqual([m["correlationId"] for m in b2.of("command:response")], ["cmd-2"])
                self.assertEqual([m["correlationId"] for m in a.of("ack")], ["cmd-1"])
                self.assertEqual([m["correlationId"] for m in b2.of("ack")], ["cmd-2"])
                self.assertEqual([e["correlationId"] for e in agent.of("responded")], ["cmd-1", "cmd-2"])
                self.assertEqual([e["to"] for e in agent.of("responded")], [a.id, b2.id])
                self.assertEqual(len(agent.of("request")), 2, agent.describe())

                # Presence on A: B joined, left (noticed even without a close frame), B2 joined.
                self.assertEqual([(m["type"], m["payload"]["clientId"]) for _, m in a.log
                                  if m.get("type") in ("join", "leave")],
                                 [("join", b.id), ("leave", b.id), ("join", b2.id)], a.describe())
                self.assertEqual(b2.of("join") + b2.of("leave"), [], b2.describe())
                for d in (a, b, b2):
                    d.assert_no_errors()
                agent.assert_clean()
                self.assertEqual(agent.of("closed"), [])

                await a.close()
                await b2.close()
                await agent.stop()
                self.assertEqual([e["code"] for e in agent.of("closed")], [1000], agent.describe())
            finally:
                agent.kill()

        run(go())

    def test_seed_b_drops_abruptly_and_recovers(self):
        """B's TCP connection is cut with no close frame."""
        self.scenario("abort")

    def test_seed_b_closes_and_recovers(self):
        """B leaves with a close handshake."""
        self.scenario("close")


class SeedRestart(SeedMixin, OwnServerCase):
    """The daemon restarts on the same port: every history is gone."""
    server_class = Daemon

    def test_seed_restart_history_lost(self):
        node = node_or_skip(self)
        srv = self.start_server("--api-key", API_KEY)
        port = srv.port
        uri = srv.uri("/ws")
        ch = output_channel()

        async def go():
            agent = Agent(self, node, uri, ch, reconnect=True)
            try:
                agent_id = await agent.start()
                a = await Dashboard(self, "A", ch).open(uri)
                b = await Dashboard(self, "B", ch).open(uri)
                _, sa = await a.subscribe()
                await b.subscribe()
                epoch = sa["epoch"]
                cmd = {"command": "stream", "lines": 5, "intervalMs": 5}
                await a.command(agent_id, "cmd-1", cmd)
                self.check_response(await a.response("cmd-1"), agent_id, "cmd-1", 5)
                await agent.wait("streamed", 1)
                h = await self.backend_publish(srv.host, port, ch, 1, epoch)
                self.assertEqual(h, 6)
                for d in (a, b):
                    await d.until_offset(6)
                    self.assertEqual(d.offsets(), [1, 2, 3, 4, 5, 6], d.describe())
                k = b.offsets()[-1]

                # SIGTERM: every client gets close 1001; the daemon exits 0.
                await asyncio.to_thread(self.stop_ok, srv)
                for d in (a, b):
                    await d.reader
                    self.assertEqual(d.ws.close_code, 1001, f"{d.ended!r}; {d.describe()}")
                # The agent reports its close through a pipe, which may be read after the
                # dashboards have seen theirs (it was, against the -Os static daemons).
                await agent.wait("closed", 1)
                self.assertEqual([e["code"] for e in agent.of("closed")], [1001], agent.describe())

                srv2 = await asyncio.to_thread(self.start_server, "--api-key", API_KEY,
                                               listen=(f"127.0.0.1:{port}",))
                self.assertEqual(srv2.port, port)
                new_agent_id = await agent.ready(1)       # the agent is back: a new client id
                self.assertNotEqual(new_agent_id, agent_id)

                b2 = await Dashboard(self, "B2", ch).open(uri)
                _, s = await b2.subscribe(since={"offset": k, "epoch": epoch})
                self.assertEqual((s["recovered"], s["offset"]), (False, 0), s)
                self.assertNotEqual(s["epoch"], epoch, "a restarted daemon reused the old epoch")
                await b2.barrier()
                self.assertEqual(b2.pubs(), [], "something replayed after a restart")
                a2 = await Dashboard(self, "A2", ch).open(uri)
                _, s_a = await a2.subscribe(since={"offset": k, "epoch": epoch})
                self.assertEqual((s_a["recovered"], s_a["offset"], s_a["epoch"]), (False, 0, s["epoch"]), s_a)
                new_epoch = s["epoch"]

                # The old agent id is gone; the new one answers B2, and offsets start over.
                start = len(b2.log)
                await b2.send({"type": "send", "to": agent_id, "event": "command:request", "id": "old",
                               "correlationId": "old", "payload": cmd})
                _, err = await b2.wait_for(lambda m: m.get("correlationId") == "old", "the answer to old", start)
                self.assertEqual((err["type"], err["payload"]["code"]), ("error", "not_found"), err)
                cmd2 = {"command": "stream", "lines": 3, "intervalMs": 5}
                await b2.command(new_agent_id, "cmd-2", cmd2)
                self.check_request(await agent.wait("request", 2), b2, "cmd-2", cmd2)
                self.check_response(await b2.response("cmd-2"), new_agent_id, "cmd-2", 3)
                st = await agent.wait("streamed", 2)
                self.assertEqual(st["offsets"], [1, 2, 3], st)
                h2 = await self.backend_publish(srv2.host, port, ch, 2, new_epoch)
                self.assertEqual(h2, 4)
                expect = {1: ("agent", "cmd-2", 1), 2: ("agent", "cmd-2", 2), 3: ("agent", "cmd-2", 3),
                          4: ("backend", 2)}
                for d in (a2, b2):
                    await d.until_offset(4)
                    await d.barrier()
                    self.assertEqual(d.offsets(), [1, 2, 3, 4], d.describe())
                    self.check_sequence(d.pubs(), ch, new_epoch, new_agent_id, expect)
                    self.assertEqual([m["correlationId"] for m in d.of("command:response")],
                                     ["cmd-2"] if d is b2 else [])
                self.assertEqual([r for r, _ in a2.pubs()], [r for r, _ in b2.pubs()])
                for d in (a, b, a2):
                    d.assert_no_errors()
                b2.assert_no_errors(expected=("old",))
                agent.assert_clean()
                await a2.close()
                await b2.close()
                await agent.stop()
                await asyncio.to_thread(self.stop_ok, srv2)
            finally:
                agent.kill()

        run(go())


if __name__ == "__main__":
    run_tap(budget=110)
