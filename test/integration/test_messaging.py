#!/usr/bin/python3
"""The messaging protocol on /ws with real clients (python3-websockets 10.4, raw frames
where a real client cannot put the bytes on the wire, and the node `ws` client).

connection:established and client ids, ping/pong, subscribe/publish/unsubscribe with
offsets, epochs, acks and the payload relayed byte for byte, recovery from the channel
history (since), direct send, the seed agent/dashboard scenario, every error code, the
bad-message limit (close 1008), and /healthz still answering at the end.

"No message arrives" is checked with a barrier, never a sleep: the observer sends a ping
with an id after the other side's ack; the server handles both connections on one loop
in order, so anything meant for the observer would come before that pong.
"""

import asyncio
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from wsclient import NODE_DIR, OP_BINARY, OP_TEXT, ServerTestCase, add_cases, run_tap  # noqa: E402

import websockets  # noqa: E402

HEX32 = re.compile(r"^[0-9a-f]{32}$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")
RECV_TIMEOUT = 5


def run(coro, timeout=40):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def now_ms():
    return time.time() * 1000


def fresh_channel(prefix="t"):
    return f"{prefix}:{uuid.uuid4().hex[:12]}"


def top_level_spans(text):
    """{key: raw text of its value} for a JSON object's top-level members, exactly as
    they are on the wire (json.loads alone would hide spacing and duplicate keys)."""
    dec = json.JSONDecoder()
    ws = " \t\n\r"
    i = 0
    while text[i] in ws:
        i += 1
    assert text[i] == "{", f"not an object: {text[:80]!r}"
    i += 1
    spans = {}
    while True:
        while text[i] in ws:
            i += 1
        if text[i] == "}":
            break
        key, i = dec.raw_decode(text, i)
        assert key not in spans, f"key {key!r} twice in {text!r}"
        while text[i] in ws:
            i += 1
        assert text[i] == ":"
        i += 1
        while text[i] in ws:
            i += 1
        _, end = dec.raw_decode(text, i)
        spans[key] = text[i:end]
        i = end
        while text[i] in ws:
            i += 1
        if text[i] == ",":
            i += 1
            continue
        assert text[i] == "}", f"bad object at {i}: {text!r}"
        break
    return spans


class Peer:
    """One websockets connection to /ws; every message it receives is parsed and its
    timestamp checked (live ones within a second of now)."""

    def __init__(self, test, ws):
        self.t, self.ws = test, ws
        self.id = None
        self.established = None
        self._n = 0
        # join / leave of other members (presence is on for every channel): set aside,
        # in order, for the tests that look at them.
        self.presence = []

    async def recv(self, live=True, presence=False):
        while True:
            raw = await asyncio.wait_for(self.ws.recv(), RECV_TIMEOUT)
            self.t.assertIsInstance(raw, str, "server messages are text frames")
            msg = json.loads(raw)
            if presence or not isinstance(msg, dict) or msg.get("type") not in ("join", "leave"):
                break
            self.presence.append(msg)
        self.t.assertIsInstance(msg, dict, raw)
        ts = msg.get("timestamp")
        self.t.assertTrue(isinstance(ts, int) and not isinstance(ts, bool),
                          f"no integer timestamp in {raw}")
        if live:
            self.t.assertLess(abs(ts - now_ms()), 1000, f"timestamp not within 1 s of now: {raw}")
        return raw, msg

    async def expect(self, type_, live=True):
        raw, msg = await self.recv(live, presence=type_ in ("join", "leave"))
        self.t.assertEqual(msg.get("type"), type_, f"expected {type_}, got {raw}")
        return raw, msg

    async def send(self, obj):
        await self.ws.send(obj if isinstance(obj, str) else json.dumps(obj))

    async def barrier(self):
        """Asserts that nothing else is pending for this peer (see the module doc)."""
        self._n += 1
        tag = f"barrier-{self._n}"
        await self.send({"type": "ping", "id": tag})
        raw, msg = await self.recv()
        self.t.assertEqual((msg.get("type"), msg.get("correlationId")), ("pong", tag),
                           f"unexpected message before the barrier pong: {raw}")

    async def subscribe(self, channel, since=None, id_="sub"):
        m = {"type": "subscribe", "channel": channel, "id": id_}
        if since is not None:
            m["payload"] = {"since": since}
        await self.send(m)
        raw, msg = await self.expect("subscribed")
        self.t.assertEqual(msg.get("channel"), channel, raw)
        self.t.assertEqual(msg.get("correlationId"), id_, raw)
        p = msg.get("payload")
        self.t.assertIsInstance(p, dict, raw)
        self.t.assertIsInstance(p.get("offset"), int, raw)
        self.t.assertRegex(p.get("epoch", ""), HEX16, raw)
        self.t.assertIn(p.get("recovered"), (True, False), raw)
        return p

    async def publish(self, channel, payload_text, event=None, id_="pub"):
        """Publishes payload_text (raw JSON text) and returns the acked offset."""
        parts = ['{"type":"publish"', f'"channel":{json.dumps(channel)}']
        if event is not None:
            parts.append(f'"event":{json.dumps(event)}')
        if id_ is not None:
            parts.append(f'"id":{json.dumps(id_)}')
        parts.append(f'"payload":{payload_text}')
        await self.ws.send(",".join(parts) + "}")
        if id_ is None:
            return None
        raw, msg = await self.expect("ack")
        self.t.assertEqual(msg.get("correlationId"), id_, raw)
        self.t.assertIsInstance(msg.get("payload", {}).get("offset"), int, raw)
        return msg["payload"]["offset"]

    async def expect_error(self, code, correlation=None):
        raw, msg = await self.expect("error")
        p = msg.get("payload") or {}
        self.t.assertEqual(p.get("code"), code, raw)
        self.t.assertIsInstance(p.get("message"), str, raw)
        if correlation is None:
            self.t.assertNotIn("correlationId", msg, raw)
        else:
            self.t.assertEqual(msg.get("correlationId"), correlation, raw)
        return msg


class MessagingBase(ServerTestCase):
    server_args = ()

    def uri(self):
        return self.server.uri("/ws")

    async def peer(self):
        ws = await websockets.connect(self.uri(), max_size=None, compression=None, open_timeout=5,
                                      close_timeout=2, ping_interval=None)
        p = Peer(self, ws)
        raw, msg = await p.expect("connection:established")
        self.assertEqual(set(msg), {"type", "payload", "timestamp"}, raw)
        self.assertEqual(set(msg["payload"]), {"clientId", "user"}, raw)
        self.assertIsNone(msg["payload"]["user"], raw)
        self.assertRegex(msg["payload"]["clientId"], HEX32, raw)
        p.id, p.established = msg["payload"]["clientId"], msg
        return p

    async def peers(self, n):
        return await asyncio.gather(*(self.peer() for _ in range(n)))

    async def close_all(self, *ps):
        for p in ps:
            await p.ws.close()

    def check_pub(self, raw, msg, channel, offset, epoch, payload_text, sender, type_="message"):
        """A publication as every subscriber must see it."""
        self.assertEqual(set(msg), {"type", "channel", "offset", "epoch", "payload", "from", "timestamp"}, raw)
        self.assertEqual((msg["type"], msg["channel"], msg["offset"], msg["epoch"], msg["from"]),
                         (type_, channel, offset, epoch, sender), raw)
        self.assertEqual(top_level_spans(raw)["payload"], payload_text, f"payload not byte for byte: {raw}")

    # -- connection ------------------------------------------------------------------------


class Messaging(MessagingBase):
    def test_established_ids_unique(self):
        async def go():
            ps = await self.peers(50)
            ids = [p.id for p in ps]
            self.assertEqual(len(set(ids)), 50, "client ids repeat")
            await self.close_all(*ps)
        run(go())

    def test_ping_pong(self):
        async def go():
            p = await self.peer()
            await p.send({"type": "ping", "id": "p-1"})
            raw, msg = await p.expect("pong")
            self.assertEqual(msg.get("correlationId"), "p-1", raw)
            await p.send({"type": "ping"})
            raw, msg = await p.expect("pong")
            self.assertNotIn("correlationId", msg, raw)
            self.assertEqual(set(msg), {"type", "timestamp"}, raw)
            # an id with characters that need escaping comes back equal
            odd = 'q"\\\n\u00e9\U0001F600'
            await p.send({"type": "ping", "id": odd})
            raw, msg = await p.expect("pong")
            self.assertEqual(msg.get("correlationId"), odd, raw)
        run(go())

    # -- pub/sub ---------------------------------------------------------------------------
    def test_pubsub_fanout_offsets_payload_bytes(self):
        payloads = ['{ "a" : [1, 2 ,3] ,"b":"x y" }', '[ ]', '"caf\\u00e9\\n\u00e9"', '1.50e+3',
                    'true', 'null', '{"deep":[[[{"x":{}}]]]}', '  {"lead":"ws"}  ', '-0']

        async def go():
            s1, s2, pub = await self.peers(3)
            ch, other = fresh_channel(), fresh_channel()
            a = await s1.subscribe(ch)
            self.assertEqual((a["offset"], a["recovered"]), (0, False))
            b = await s2.subscribe(ch)
            self.assertEqual(b["epoch"], a["epoch"], "one epoch per channel")
            o = await s2.subscribe(other, id_="sub-other")
            epoch = a["epoch"]
            for i, text in enumerate(payloads):
                event = None if i % 2 else f"ev:{i}"
                off = await pub.publish(ch, text, event=event, id_=f"pub-{i}")
                self.assertEqual(off, i + 1, "offsets increase by one per channel")
                for s in (s1, s2):
                    raw, msg = await s.recv()
                    self.check_pub(raw, msg, ch, i + 1, epoch, text.strip(), pub.id,
                                   type_=event or "message")
            # a second channel counts from 1 on its own
            off = await pub.publish(other, '{"o":1}', id_="pub-o")
            self.assertEqual(off, 1)
            raw, msg = await s2.recv()
            self.check_pub(raw, msg, other, 1, o["epoch"], '{"o":1}', pub.id)
            off = await pub.publish(ch, '"after"', id_="pub-after")
            self.assertEqual(off, len(payloads) + 1)
            raw, msg = await s1.recv()
            self.check_pub(raw, msg, ch, len(payloads) + 1, epoch, '"after"', pub.id)
            raw, msg = await s2.recv()
            self.check_pub(raw, msg, ch, len(payloads) + 1, epoch, '"after"', pub.id)
            # the publisher is not subscribed: only its acks came, nothing else
            for p in (s1, s2, pub):
                await p.barrier()
            # a publish without id: delivered, no ack; without payload: null
            await pub.send({"type": "publish", "channel": ch})
            raw, msg = await s1.recv()
            self.check_pub(raw, msg, ch, len(payloads) + 2, epoch, "null", pub.id)
            await pub.barrier()
            await self.close_all(s1, s2, pub)
        run(go())

    def test_subscribed_publisher_gets_own_message(self):
        async def go():
            p, = await self.peers(1)
            ch = fresh_channel()
            sub = await p.subscribe(ch)
            await p.send('{"type":"publish","channel":"%s","id":"x","payload":{"k": 1}}' % ch)
            got = {}
            for _ in range(2):
                raw, msg = await p.recv()
                got[msg["type"]] = (raw, msg)
            self.assertEqual(set(got), {"message", "ack"}, got)
            self.check_pub(*got["message"], ch, 1, sub["epoch"], '{"k": 1}', p.id)
            self.assertEqual(got["ack"][1].get("payload"), {"offset": 1})
            await p.barrier()
        run(go())

    def test_unsubscribe_stops_delivery(self):
        async def go():
            s, keep, pub = await self.peers(3)
            ch = fresh_channel()
            await s.subscribe(ch)
            await keep.subscribe(ch)
            await pub.publish(ch, "1")
            await s.expect("message")
            await keep.expect("message")
            await s.send({"type": "unsubscribe", "channel": ch, "id": "u1"})
            raw, msg = await s.expect("ack")
            self.assertEqual(msg.get("correlationId"), "u1", raw)
            self.assertNotIn("payload", msg, raw)
            await pub.publish(ch, "2")
            raw, msg = await keep.expect("message")
            self.assertEqual(msg["offset"], 2)
            await s.barrier()
            # unsubscribing from a channel never subscribed (or unknown) is harmless
            await s.send({"type": "unsubscribe", "channel": fresh_channel(), "id": "u2"})
            raw, msg = await s.expect("ack")
            self.assertEqual(msg.get("correlationId"), "u2", raw)
            await self.close_all(s, keep, pub)
        run(go())

    # -- recovery ----------------------------------------------------------------------------
    def test_recovery_replays_exactly_the_missed(self):
        N, K, L = 5, 7, 3

        async def go():
            a, watcher, pub = await self.peers(3)
            ch = fresh_channel("rec")
            sub = await a.subscribe(ch)
            epoch = sub["epoch"]
            await watcher.subscribe(ch)
            live = {}  # offset -> raw, as the watcher got it live
            for i in range(1, N + 1):
                await pub.publish(ch, '{"n": %d}' % i, event="line")
                raw, msg = await a.recv()
                self.assertEqual(msg["offset"], i)
                live[i] = (await watcher.recv())[0]
            await a.ws.close()
            for i in range(N + 1, N + K + 1):
                await pub.publish(ch, '{"n": %d}' % i, event="line")
                live[i] = (await watcher.recv())[0]
            a2 = await self.peer()
            p = await a2.subscribe(ch, since={"offset": N, "epoch": epoch})
            self.assertEqual((p["recovered"], p["offset"], p["epoch"]), (True, N + K, epoch))
            for i in range(N + 1, N + K + 1):
                raw, msg = await a2.recv(live=False)  # the original frames: their own timestamps
                self.assertEqual(msg["offset"], i)
                self.assertEqual(raw, live[i], "a replayed publication differs from the live one")
            for i in range(N + K + 1, N + K + L + 1):
                await pub.publish(ch, '{"n": %d}' % i, event="line")
                raw, msg = await a2.recv()
                self.check_pub(raw, msg, ch, i, epoch, '{"n": %d}' % i, pub.id, type_="line")
            await a2.barrier()
            await self.close_all(a2, watcher, pub)
        run(go())

    def test_recovery_refused(self):
        async def go():
            a, pub = await self.peers(2)
            ch = fresh_channel("ref")
            epoch = (await a.subscribe(ch))["epoch"]
            for i in range(3):
                await pub.publish(ch, str(i))
            wrong = "0123456789abcdef" if epoch != "0123456789abcdef" else "fedcba9876543210"
            for since, want in (({"offset": 1, "epoch": wrong}, False),
                                ({"offset": 1, "epoch": epoch.upper()}, False),
                                ({"offset": 99, "epoch": epoch}, False),   # never given out
                                ({"offset": 3, "epoch": epoch}, True),     # the newest: nothing missed
                                ({"offset": 0, "epoch": epoch}, True)):    # everything still here
                b = await self.peer()
                p = await b.subscribe(ch, since=since)
                self.assertEqual((p["recovered"], p["offset"]), (want, 3), since)
                if want and since["offset"] == 0:
                    for i in range(1, 4):
                        raw, msg = await b.recv(live=False)
                        self.assertEqual(msg["offset"], i, raw)
                await b.barrier()
                await b.ws.close()
        run(go())

    def test_recovery_older_than_history(self):
        async def go():
            a, pub = await self.peers(2)
            ch = fresh_channel("old")
            epoch = (await a.subscribe(ch))["epoch"]
            for i in range(1, 106):
                await pub.publish(ch, str(i), id_=None)
            await pub.barrier()
            for i in range(1, 106):
                raw, msg = await a.recv()
                self.assertEqual(msg["offset"], i)
            b = await self.peer()
            p = await b.subscribe(ch, since={"offset": 2, "epoch": epoch})
            self.assertEqual((p["recovered"], p["offset"]), (False, 105))
            await b.barrier()
            # 100 kept: offsets 6..105; since 5 still recovers exactly those
            c = await self.peer()
            p = await c.subscribe(ch, since={"offset": 5, "epoch": epoch})
            self.assertEqual((p["recovered"], p["offset"]), (True, 105))
            for i in range(6, 106):
                raw, msg = await c.recv(live=False)
                self.assertEqual(msg["offset"], i, raw)
            await c.barrier()
            await self.close_all(a, pub, b, c)
        run(go())

    # -- direct send -------------------------------------------------------------------------
    def test_send(self):
        async def go():
            a, b = await self.peers(2)
            await a.send('{"type":"send","to":"%s","event":"hello","id":"s1","correlationId":"c-9",'
                         '"payload":{ "x" : [1,2] }}' % b.id)
            raw, msg = await b.recv()
            self.assertEqual(set(msg), {"type", "from", "payload", "correlationId", "timestamp"}, raw)
            self.assertEqual((msg["type"], msg["from"], msg["correlationId"]), ("hello", a.id, "c-9"), raw)
            self.assertEqual(top_level_spans(raw)["payload"], '{ "x" : [1,2] }', raw)
            raw, msg = await a.expect("ack")
            self.assertEqual(msg.get("correlationId"), "s1", raw)
            # no correlationId, no event, no id: type message, no ack
            await a.send({"type": "send", "to": b.id, "payload": 7})
            raw, msg = await b.recv()
            self.assertEqual(set(msg), {"type", "from", "payload", "timestamp"}, raw)
            self.assertEqual((msg["type"], msg["from"], msg["payload"]), ("message", a.id, 7), raw)
            await a.barrier()
            await b.barrier()
            # unknown recipients
            for i, to in enumerate(["0" * 32, b.id.upper(), b.id[:31], b.id + "0", ""]):
                await a.send({"type": "send", "to": to, "payload": 1, "id": f"nf-{i}"})
                await a.expect_error("not_found", f"nf-{i}")
            await a.send({"type": "send", "payload": 1, "id": "nf-none"})
            await a.expect_error("not_found", "nf-none")
            # a closed client is gone
            await b.ws.close()
            await a.barrier()
            await a.send({"type": "send", "to": b.id, "payload": 1, "id": "nf-gone"})
            await a.expect_error("not_found", "nf-gone")
            await a.ws.close()
        run(go())

    # -- the seed scenario ---------------------------------------------------------------------
    def test_seed_agent_and_dashboards(self):
        async def go():
            agent, d1, d2 = await self.peers(3)
            out = f"agents:{agent.id}:output"
            epoch = (await d1.subscribe(out))["epoch"]
            await d2.subscribe(out)
            await d1.send({"type": "send", "to": agent.id, "event": "command:request", "id": "cmd-1",
                           "correlationId": "cmd-1", "payload": {"command": "ls -la"}})
            raw, req = await agent.expect("command:request")
            self.assertEqual((req["from"], req["correlationId"], req["payload"]),
                             (d1.id, "cmd-1", {"command": "ls -la"}), raw)
            await d1.expect("ack")
            await agent.send({"type": "send", "to": req["from"], "event": "command:response",
                              "correlationId": req["correlationId"], "payload": {"accepted": True}})
            raw, resp = await d1.expect("command:response")
            self.assertEqual((resp["from"], resp["correlationId"], resp["payload"]),
                             (agent.id, "cmd-1", {"accepted": True}), raw)
            lines = {}
            for i in range(1, 51):
                text = json.dumps({"line": i, "text": f"output line {i}"})
                await agent.publish(out, text, event="output", id_=None)
                raw, msg = await d2.recv()
                self.check_pub(raw, msg, out, i, epoch, text, agent.id, type_="output")
                lines[i] = raw
                if i <= 20:
                    raw, msg = await d1.recv()
                    self.assertEqual(raw, lines[i])
                    seen = msg["offset"]
                if i == 20:
                    await d1.ws.close()
            d1b = await self.peer()
            p = await d1b.subscribe(out, since={"offset": seen, "epoch": epoch})
            self.assertEqual((p["recovered"], p["offset"]), (True, 50))
            got = [(await d1b.recv(live=False))[0] for _ in range(30)]
            self.assertEqual([json.loads(r)["payload"]["line"] for r in got], list(range(21, 51)))
            self.assertEqual(got, [lines[i] for i in range(21, 51)])
            await d1b.barrier()
            await d2.barrier()
            await self.close_all(agent, d2, d1b)
        run(go())

    # -- errors --------------------------------------------------------------------------------
    def test_errors(self):
        ch129 = "c" * 129
        cases = [
            ("not json", "invalid_json", None),
            ('{"type":"ping"', "invalid_json", None),
            ('{"type":"ping"} x', "invalid_json", None),
            ('{"type":"ping","id":"\\udc00"}', "invalid_json", None),
            ('{"type":"publish","channel":"c","payload":"\\ud800"}', "invalid_json", None),
            ('{"type":"ping","x":"\\udc00"}', "invalid_json", None),
            ("[1,2]", "bad_request", None),
            ('"ping"', "bad_request", None),
            ("42", "bad_request", None),
            ("null", "bad_request", None),
            ('{"id":"e1"}', "bad_request", "e1"),
            ('{"type":"","id":"e2"}', "bad_request", "e2"),
            ('{"type":5,"id":"e3"}', "bad_request", "e3"),
            ('{"type":null,"id":"e4"}', "bad_request", "e4"),
            ('{"type":["ping"]}', "bad_request", None),
            ('{"type":"ping","type":"ping","id":"e5"}', "bad_request", "e5"),
            ('{"type":"publish","channel":"a","channel":"b","id":"e6"}', "bad_request", "e6"),
            ('{"type":"publish","channel":"a","payload":1,"payload":2,"id":"e7"}', "bad_request", "e7"),
            ('{"type":"subscribe","id":"e8"}', "bad_request", "e8"),
            ('{"type":"subscribe","channel":"","id":"e9"}', "bad_request", "e9"),
            ('{"type":"subscribe","channel":"%s","id":"e10"}' % ch129, "bad_request", "e10"),
            ('{"type":"publish","channel":"a b","id":"e11"}', "bad_request", "e11"),
            ('{"type":"unsubscribe","channel":"caf\u00e9","id":"e12"}', "bad_request", "e12"),
            ('{"type":"subscribe","channel":"a\\u0000b","id":"e13"}', "bad_request", "e13"),
            ('{"type":"subscribe","channel":7,"id":"e14"}', "bad_request", "e14"),
            ('{"type":"nope","id":"e15"}', "unknown_type", "e15"),
            ('{"type":"Ping"}', "unknown_type", None),
        ]

        async def go():
            p = await self.peer()
            for text, code, corr in cases:
                with self.subTest(msg=text[:60]):
                    await p.send(text)
                    await p.expect_error(code, corr)
                    await p.barrier()  # a good message: the strike count starts again
            # a binary frame
            await p.ws.send(b'{"type":"ping","id":"bin"}')
            await p.expect_error("bad_request")
            await p.barrier()
            # a 128-character channel is fine
            await p.subscribe("c" * 128)
            await p.ws.close()
        run(go())

    def test_too_large_envelopes(self):
        """A payload that fits a message but whose envelope would not: too_large, and
        nothing delivered, to a channel or to a client."""
        async def go():
            a, b = await self.peers(2)
            ch = fresh_channel("big")
            await b.subscribe(ch)
            big = '"' + "x" * ((1 << 20) - 82) + '"'  # the message fits, its envelope not
            await a.send('{"type":"publish","channel":"%s","id":"p1","payload":%s}' % (ch, big))
            await a.expect_error("too_large", "p1")
            await a.send('{"type":"send","to":"%s","id":"s1","payload":%s}' % (b.id, big))
            await a.expect_error("too_large", "s1")
            await b.barrier()  # nothing reached b meanwhile
            await a.publish(ch, '"small"', id_="p2")
            raw, m = await b.expect("message")
            self.assertEqual((m["offset"], m["payload"]), (1, "small"), raw)
            await self.close_all(a, b)
        run(go())

    def test_invalid_utf8_closes_1007(self):
        c = self.ws("/ws")
        op, data = c.recv_message()
        self.assertEqual(op, OP_TEXT)
        self.assertEqual(json.loads(data)["type"], "connection:established")
        c.send_frame(OP_TEXT, b'{"type":"ping","id":"\xff\xfe"}')
        c.expect_close(1007)
        # the same bytes in a binary frame are just a bad message
        c2 = self.ws("/ws")
        c2.recv_message()
        c2.send_frame(OP_BINARY, b'{"type":"ping","id":"\xff"}')
        op, data = c2.recv_message()
        msg = json.loads(data)
        self.assertEqual((msg["type"], msg["payload"]["code"]), ("error", "bad_request"), data)

    def test_fifteen_bad_then_good_resets(self):
        async def go():
            p = await self.peer()
            for round_ in range(3):
                for i in range(15):
                    await p.send("[]" if i % 3 else "{")
                for i in range(15):
                    await p.expect("error")
                await p.barrier()
            # and one more than that in a row still closes
            for i in range(16):
                await p.send("x")
            for i in range(16):
                await p.expect("error")
            with self.assertRaises(websockets.ConnectionClosed) as cm:
                await asyncio.wait_for(p.ws.recv(), RECV_TIMEOUT)
            self.assertEqual((cm.exception.rcvd.code, cm.exception.rcvd.reason),
                             (1008, "too many bad messages"))
        run(go())

    # -- node ws ---------------------------------------------------------------------------
    def test_node_ws_pubsub(self):
        node = shutil.which("node")
        if not node:
            self.skipTest("node is not installed")
        if not os.path.isfile(os.path.join(NODE_DIR, "node_modules", "ws", "package.json")):
            self.skipTest("node_modules missing: run `npm ci --prefix test/integration/node`")
        p = subprocess.run([node, os.path.join(NODE_DIR, "msg_client.mjs"), self.uri()],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, "node msg client failed:\n" + p.stdout[-2000:] + p.stderr[-2000:])
        self.assertRegex(p.stdout, r"(?m)^1\.\.\d+$")
        self.assertNotIn("not ok", p.stdout)

    # -- last: the daemon is still fine ------------------------------------------------------
    def test_send_after_many_clients_left(self):
        """Client ids stay findable while others leave (the id index's deletions)."""
        async def go():
            peers = await self.peers(120)
            gone, kept = peers[::2], peers[1::2]
            for p in gone:
                await p.ws.close()
            sender = kept[0]
            for i, p in enumerate(kept[1:]):
                await sender.send({"type": "send", "to": p.id, "event": "hi", "id": f"k{i}"})
                await sender.expect("ack")
                _, m = await p.expect("hi")
                self.assertEqual(m["from"], sender.id)
            for i, p in enumerate(gone):
                await sender.send({"type": "send", "to": p.id, "event": "hi", "id": f"g{i}"})
                _, m = await sender.expect("error")
                self.assertEqual(m["payload"]["code"], "not_found")
            for p in kept:
                await p.ws.close()
        run(go(), 60)

    def test_rate_limit(self):
        """Past the burst (2000 messages) a client gets rate_limited with retryAfterMs, its
        message not acted on; 16 in a row close it 1008. Others are not affected."""
        async def go():
            a, b = await self.peer(), await self.peer()
            # Far more than the burst plus what a slow machine's seconds refill: the
            # connection may close while we still send.
            try:
                for i in range(8000):
                    await a.ws.send(json.dumps({"type": "ping", "id": f"r{i}"}))
            except websockets.ConnectionClosed:
                pass
            pongs, limited = 0, []
            try:
                while True:
                    _, m = await a.recv(live=False)
                    if m["type"] == "pong":
                        pongs += 1
                    elif m["type"] == "error" and m["payload"]["code"] == "rate_limited":
                        limited.append(m)
            except websockets.ConnectionClosed as e:
                self.assertEqual((e.rcvd.code, e.rcvd.reason), (1008, "over the rate limit"))
            self.assertGreaterEqual(pongs, 2000)
            self.assertGreaterEqual(len(limited), 16)
            self.assertTrue(all(m["payload"]["retryAfterMs"] >= 1 for m in limited), limited[:2])
            self.assertTrue(all(m["correlationId"].startswith("r") for m in limited), limited[:2])
            await b.send({"type": "ping", "id": "b"})
            _, m = await b.expect("pong")
            self.assertEqual(m["correlationId"], "b")
            await b.ws.close()
        run(go())

    def test_presence_join_leave_and_list(self):
        """Subscribers hear who joins and leaves; presence lists the members."""
        async def go():
            ch = fresh_channel("room")
            a = await self.peer()
            b = await self.peer()
            await a.send({"type": "subscribe", "channel": ch, "id": "s"})
            await a.expect("subscribed")
            await b.send({"type": "subscribe", "channel": ch, "id": "s"})
            await b.expect("subscribed")
            _, j = await a.expect("join")
            self.assertEqual((j["channel"], j["payload"]["clientId"]), (ch, b.id))
            await a.send({"type": "presence", "channel": ch, "id": "p"})
            _, p = await a.expect("presence")
            self.assertEqual(p["correlationId"], "p")
            self.assertEqual(sorted(c["clientId"] for c in p["payload"]["clients"]),
                             sorted([a.id, b.id]))
            await b.ws.close()
            _, l = await a.expect("leave")
            self.assertEqual(l["payload"]["clientId"], b.id)
            await a.send({"type": "presence", "channel": ch, "id": "p2"})
            _, p = await a.expect("presence")
            self.assertEqual([c["clientId"] for c in p["payload"]["clients"]], [a.id])
            await a.ws.close()
        run(go())

    def test_zz_healthz_after_everything(self):
        conn = http.client.HTTPConnection(self.server.host, self.server.port, timeout=5)
        try:
            conn.request("GET", "/healthz")
            r = conn.getresponse()
            self.assertEqual((r.status, r.read()), (200, b'{"status":"ok"}'))
        finally:
            conn.close()
        self.assertTrue(self.server.alive())


# Sixteen bad messages in a row of one kind (and mixed) cost the connection: 16 error
# envelopes, then close 1008 "too many bad messages".
BAD_KINDS = [
    ("invalid_json", [(OP_TEXT, b"nope")] * 16),
    ("bad_request", [(OP_TEXT, b"[]")] * 16),
    ("bad_channel", [(OP_TEXT, b'{"type":"subscribe","channel":"a b"}')] * 16),
    ("binary", [(OP_BINARY, b'{"type":"ping"}')] * 16),
    ("unknown_type", [(OP_TEXT, b'{"type":"x"}')] * 16),
    ("mixed", [(OP_TEXT, b"nope"), (OP_TEXT, b'{"type":"x"}'), (OP_BINARY, b"{}"),
               (OP_TEXT, b'{"type":5}')] * 4),
]


def _bad_limit(self, frames):
    c = self.ws("/ws")
    c.recv_message()
    for op, data in frames:
        c.send_frame(op, data)
    for i in range(16):
        op, data = c.recv_message()
        self.assertEqual(json.loads(data)["type"], "error", data)
    try:
        got = c.expect_close(1008)
    except socket.timeout:
        self.fail("no close frame within 5 s after 16 bad messages in a row (16 errors came)")
    self.assertEqual(got, (1008, "too many bad messages"))


add_cases(Messaging, "sixteen_bad_close_1008", BAD_KINDS, _bad_limit)


class BackendApi(MessagingBase):
    """The backend HTTP API under /api/, with two keys (rotation)."""
    server_args = ("--api-key", "first-key", "--api-key", "second-key")

    def call(self, method, path, body=None, key="first-key"):
        import http.client
        c = http.client.HTTPConnection(self.server.host, self.server.port, timeout=5)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        data = body if isinstance(body, (str, bytes)) or body is None else json.dumps(body)
        c.request(method, path, body=data, headers=headers)
        r = c.getresponse()
        text = r.read().decode()
        c.close()
        self.assertEqual(r.getheader("Content-Type"), "application/json", text)
        return r.status, json.loads(text) if text else None

    def test_api_publish_send_channels_presence(self):
        async def go():
            ch = fresh_channel("events")
            a = await self.peer()
            await a.subscribe(ch)
            st, body = await asyncio.to_thread(self.call, "POST", "/api/publish",
                                               {"channel": ch, "event": "alert", "payload": {"n": 1}})
            self.assertEqual(st, 200, body)
            self.assertEqual(body["offset"], 1)
            _, m = await a.expect("alert")
            self.assertEqual((m["channel"], m["offset"], m["epoch"], m["payload"]), (ch, 1, body["epoch"], {"n": 1}))
            self.assertNotIn("from", m)
            st, body = await asyncio.to_thread(self.call, "POST", "/api/send",
                                               {"clientId": a.id, "event": "hello", "payload": [1]}, "second-key")
            self.assertEqual((st, body), (200, {}))
            _, m = await a.expect("hello")
            self.assertEqual(m["payload"], [1])
            st, body = await asyncio.to_thread(self.call, "POST", "/api/send", {"clientId": "0" * 32, "event": "x"})
            self.assertEqual((st, body["error"]["code"]), (404, "not_found"))
            st, body = await asyncio.to_thread(self.call, "GET", "/api/channels")
            mine = [c for c in body["channels"] if c["name"] == ch]
            self.assertEqual((st, mine[0]["subscribers"], mine[0]["offset"]), (200, 1, 1), body)
            st, body = await asyncio.to_thread(self.call, "GET", "/api/presence?channel=" + ch.replace(":", "%3A"))
            self.assertEqual((st, [c["clientId"] for c in body["clients"]]), (200, [a.id]))
            await a.ws.close()
        run(go())

    def test_api_broadcast_and_disconnect(self):
        async def go():
            c1, c2 = fresh_channel("b"), fresh_channel("b")
            a = await self.peer()
            await a.subscribe(c1)
            await a.subscribe(c2, id_="s2")
            st, body = await asyncio.to_thread(self.call, "POST", "/api/broadcast",
                                               {"channels": [c1, c2], "event": "note", "payload": "x"})
            self.assertEqual(st, 200, body)
            self.assertEqual([(c["channel"], c["offset"]) for c in body["channels"]], [(c1, 1), (c2, 1)])
            got = []
            for _ in range(2):
                _, m = await a.expect("note")
                got.append(m["channel"])
            self.assertEqual(got, [c1, c2])
            for bad in [{"channels": [], "payload": 1}, {"channels": ["ok", "bad name"], "payload": 1},
                        {"channels": "x", "payload": 1}]:
                st, body = await asyncio.to_thread(self.call, "POST", "/api/broadcast", bad)
                self.assertEqual((st, body["error"]["code"]), (400, "bad_request"), bad)
            st, body = await asyncio.to_thread(self.call, "POST", "/api/disconnect", {"clientId": a.id, "code": 999})
            self.assertEqual(st, 400, body)
            st, body = await asyncio.to_thread(self.call, "POST", "/api/disconnect", {"clientId": a.id, "user": "x"})
            self.assertEqual(st, 400, body)
            st, body = await asyncio.to_thread(self.call, "POST", "/api/disconnect", {"user": "nobody"})
            self.assertEqual(st, 404, body)
            st, body = await asyncio.to_thread(self.call, "POST", "/api/disconnect", {"clientId": a.id})
            self.assertEqual((st, body), (200, {"disconnected": 1}))
            with self.assertRaises(websockets.ConnectionClosed) as cm:
                while True:
                    await asyncio.wait_for(a.ws.recv(), 5)
            self.assertEqual((cm.exception.rcvd.code, cm.exception.rcvd.reason), (4009, "disconnected by the backend"))
            st, body = await asyncio.to_thread(self.call, "POST", "/api/disconnect", {"clientId": a.id})
            self.assertEqual(st, 404, body)
        run(go())

    def test_api_history(self):
        async def go():
            ch = fresh_channel("h")
            a = await self.peer()
            await a.subscribe(ch)
            sent = []
            for i in range(3):
                st, body = await asyncio.to_thread(self.call, "POST", "/api/publish",
                                                   {"channel": ch, "event": "e", "payload": {"i": i}})
                self.assertEqual(st, 200, body)
                raw, _ = await a.expect("e")
                sent.append(json.loads(raw))
            q = "/api/history?channel=" + ch.replace(":", "%3A")
            st, body = await asyncio.to_thread(self.call, "GET", q)
            self.assertEqual(st, 200, body)
            self.assertEqual((body["channel"], body["offset"], body["epoch"]), (ch, 3, sent[0]["epoch"]))
            # The very envelopes subscribers got, oldest first.
            self.assertEqual(body["publications"], sent)
            st, body = await asyncio.to_thread(self.call, "GET", q + "&limit=2")
            self.assertEqual([p["offset"] for p in body["publications"]], [2, 3])
            st, body = await asyncio.to_thread(self.call, "GET", q + "&limit=0")
            self.assertEqual(body["publications"], [])
            st, body = await asyncio.to_thread(self.call, "GET", "/api/history?channel=never-used")
            self.assertEqual((st, body), (200, {"channel": "never-used", "offset": 0, "epoch": None, "publications": []}))
            for bad in ["/api/history", "/api/history?channel=bad%20name", q + "&limit=x", q + "&limit=-1"]:
                st, body = await asyncio.to_thread(self.call, "GET", bad)
                self.assertEqual((st, body["error"]["code"]), (400, "bad_request"), bad)
            self.assertEqual((await asyncio.to_thread(self.call, "POST", q, {}))[0], 405)
            await a.ws.close()
        run(go())

    def test_api_refusals(self):
        for key, st, code in [(None, 401, "unauthorized"), ("wrong", 401, "unauthorized"), ("first-ke", 401, "unauthorized")]:
            got, body = self.call("POST", "/api/publish", {"channel": "a", "payload": 1}, key)
            self.assertEqual((got, body["error"]["code"]), (st, code), key)
        for body, code in [("not json", "invalid_json"), ("[1]", "bad_request"), ({"payload": 1}, "bad_request"),
                           ({"channel": "bad name", "payload": 1}, "bad_request")]:
            got, answer = self.call("POST", "/api/publish", body)
            self.assertEqual((got, answer["error"]["code"]), (400, code), body)
        self.assertEqual(self.call("GET", "/api/publish")[0], 405)
        self.assertEqual(self.call("POST", "/api/channels", {})[0], 405)
        self.assertEqual(self.call("GET", "/api/nothing")[0], 404)


class BackendApiOff(MessagingBase):
    """Without --api-key the API is never open: 403 whatever the key."""

    def test_api_off(self):
        st, body = BackendApi.call(self, "GET", "/api/channels", key="anything")
        self.assertEqual((st, body["error"]["code"]), (403, "forbidden"))


if __name__ == "__main__":
    run_tap(budget=110)
