#!/usr/bin/python3
"""The browser client (/client.js) in a real browser: headless Chromium (Debian's chromium
+ chromium-driver, driven by python3-selenium) imports the module the daemon serves and
uses it against the daemon's /ws, while python plays the backend (/api/publish,
/api/disconnect), an agent (python3-websockets, answering command:request) and the token
issuer (PyJWT, tokens handed to the page when its getToken() asks).

The page is the daemon's own /healthz document, so `import("/client.js")` is a
same-origin module import: the daemon sends no Access-Control-Allow-Origin, so a page
from another origin could not import http://HOST:PORT/client.js (see docs/client.md).

Cases: connect with ?token= (states connecting, open; clientId, user); a subscription
receives backend publications; request('ping') → pong, an unknown type rejects with its
code; publish resolves with the offset; call() to the agent resolves with its reply; a
backend disconnect (4009) while publications are made and sends are queued: the page
resubscribes with since, recovered:true, exactly the missed offsets (no gap, no
duplicate), the queued sends reach the agent in order after the resubscription; a frozen
server (SIGSTOP): no pong, the client drops the socket and comes back; token refresh:
3 s tokens from getToken keep one connection alive past several expiries, while a static
3 s token is closed with 4002 and not retried; a bounded queue drops its oldest; a daemon
restart: recovered:false and onReset with the channel's new epoch.

Skips (TAP # SKIP) when chromium, chromedriver, selenium or PyJWT are missing. Every
wait is bounded and fails with what the page saw."""
import asyncio
import http.client
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import browser  # noqa: E402
import wsclient  # noqa: E402
from httputil import Daemon, free_port  # noqa: E402

try:
    import jwt
except ImportError:  # pragma: no cover
    jwt = None
import websockets  # noqa: E402

API_KEY = "browser-client-test-key"
SECRET = "browser-client-test-secret-0123456789abcdef"
CH = "feed"
WAIT = 15.0          # bound of every wait on the page

# Installed once in the page: imports the served module and keeps a record of
# everything the clients report. getToken() parks a request in H.wanted until python
# answers it with a token (or holds it, to keep a client in "connecting").
HARNESS = """
const done = arguments[arguments.length - 1];
import("/client.js").then((m) => {
  const H = window.H = { m, clients: {}, log: [], wanted: [], calls: {}, results: {} };
  H.rec = (who, kind, data) => H.log.push({ who, kind, data: JSON.parse(JSON.stringify(data ?? null)) });
  H.getToken = (who) => () => {
    H.calls[who] = (H.calls[who] || 0) + 1;
    return new Promise((resolve) => H.wanted.push({ who, resolve }));
  };
  H.give = (who, token) => {
    const i = H.wanted.findIndex((w) => w.who === who);
    if (i < 0) return false;
    H.wanted.splice(i, 1)[0].resolve(token);
    return true;
  };
  H.make = (who, url, opts) => {
    const c = new m.Client(url, {
      onState: (e) => H.rec(who, "state", e),
      onReset: (ch, s) => H.rec(who, "reset", { ch, s }),
      onDropped: (env) => H.rec(who, "dropped", env),
      onError: (e) => H.rec(who, "error", String(e)),
      ...opts,
    });
    c.on("subscribed", (env) => H.rec(who, "subscribed", env));
    H.clients[who] = c;
    return c;
  };
  // A promise's outcome, kept under a name for python to poll.
  H.track = (name, p) => p.then((v) => { H.results[name] = { ok: v ?? null }; },
                               (e) => { H.results[name] = { err: e.code || String(e) }; });
  done({ connect: typeof m.connect, Client: typeof m.Client, WsrError: typeof m.WsrError });
}, (e) => done({ error: String(e) }));
"""


def token(user, ttl):
    now = int(time.time())
    return jwt.encode({"sub": user, "iat": now, "exp": now + ttl}, SECRET, algorithm="HS256")


def api(port, method, path, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        c.request(method, path, body=json.dumps(body) if body is not None else None,
                  headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"})
        r = c.getresponse()
        return r.status, json.loads(r.read() or b"null")
    finally:
        c.close()


class Agent:
    """A python3-websockets client in its own thread: answers command:request with a
    command:response carrying the same correlationId, and records every `note` payload."""

    def __init__(self, uri):
        self.uri = uri
        self.client_id = None
        self.notes = []
        self.commands = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.task = asyncio.run_coroutine_threadsafe(self.run(), self.loop)

    async def run(self):
        async with websockets.connect(self.uri) as ws:
            self.ws = ws
            async for raw in ws:
                env = json.loads(raw)
                if env["type"] == "connection:established":
                    self.client_id = env["payload"]["clientId"]
                elif env["type"] == "command:request":
                    self.commands.append(env)
                    await ws.send(json.dumps({"type": "send", "to": env["from"], "event": "command:response",
                                              "correlationId": env["correlationId"],
                                              "payload": {"ran": env["payload"]["command"], "exit": 0}}))
                elif env["type"] == "note":
                    self.notes.append(env["payload"]["i"])

    def stop(self):
        async def close():
            if getattr(self, "ws", None):
                await self.ws.close()
        try:
            asyncio.run_coroutine_threadsafe(close(), self.loop).result(5)
            self.task.result(5)
        except Exception:
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class Page:
    def __init__(self, driver):
        self.d = driver
        self.held = set()        # clients whose getToken() is left waiting
        self.ttl = {"A": 3600, "B": 3}
        self.users = {"A": "alice", "B": "bob"}

    def js(self, script, *args):
        return self.d.execute_script(script, *args)

    def pump(self):
        """Answers the page's token requests (PyJWT tokens made now), except held ones."""
        for who in self.js("return H.wanted.map((w) => w.who)"):
            if who not in self.held and who in self.ttl:
                self.js("return H.give(arguments[0], arguments[1])", who, token(self.users[who], self.ttl[who]))

    def log(self, who=None, kind=None):
        return [e["data"] for e in self.js("return H.log") if (who is None or e["who"] == who)
                and (kind is None or e["kind"] == kind)]

    def states(self, who):
        return [s["state"] for s in self.log(who, "state")]

    def result(self, name):
        return self.js("return H.results[arguments[0]] || null", name)

    def until(self, pred, what, timeout=WAIT):
        deadline = time.monotonic() + timeout
        while True:
            self.pump()
            v = pred()
            if v:
                return v
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; page log tail: "
                                     + json.dumps(self.js("return H.log")[-12:]))
            time.sleep(0.05)

    def settled(self, name, timeout=WAIT):
        return self.until(lambda: self.result(name), f"promise {name}", timeout)


def main():
    checks = [
        "the served /client.js imports as an ES module; /client.d.ts declares it",
        "connect with ?token=: states connecting, open; clientId and user",
        "a subscription receives the backend's publications in order",
        "request: ping resolves with pong; an unknown type rejects with its code",
        "publish resolves with the offset",
        "call() to an agent resolves with its correlated reply",
        "4009 backend disconnect: recovered:true, exactly the missed offsets, no gap/dup",
        "sends queued while disconnected reach the agent in order after resubscribing",
        "state events in order across the disconnect",
        "no pong from a frozen server: the socket is dropped and the client comes back",
        "token refresh: 3 s tokens from getToken keep one connection past its expiries",
        "a static expired token: closed 4002 and not retried (state closed, final)",
        "the bounded queue drops its oldest sends (event + rejection)",
        "daemon restart: recovered:false, onReset with the new epoch, live again",
        "the daemon exits 0 (sanitizers clean)",
    ]
    print(f"1..{len(checks)}")
    why = wsclient.NO_JWT if not wsclient.HAS_JWT else browser.missing() or (None if jwt else "python3-jwt not installed")
    if why:
        for i in range(1, len(checks) + 1):
            print(f"ok {i} # SKIP {why}")
        return 0
    failed = 0
    n = 0

    def check(ok, detail=""):
        nonlocal failed, n
        n += 1
        print(f"{'ok' if ok else 'not ok'} {n} - {checks[n - 1]}")
        if not ok:
            failed += 1
            for line in str(detail).splitlines()[:30]:
                print(f"# {line}")
        sys.stdout.flush()

    tmp = tempfile.mkdtemp(prefix="wsr-browser-client-")
    port = free_port()
    args = ("--api-key", API_KEY, "--jwt-secret", SECRET)
    srv = Daemon(*args, listen=(f"127.0.0.1:{port}",))
    driver = agent = None
    try:
        srv.start()
        driver = browser.start(f"{tmp}/profile", script_timeout=WAIT)
        driver.get(f"http://127.0.0.1:{port}/healthz")
        loaded = driver.execute_async_script(HARNESS)
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", "/client.d.ts")
        r = c.getresponse()
        dts = r.read().decode()
        c.close()
        check(loaded == {"connect": "function", "Client": "function", "WsrError": "function"}
              and r.status == 200 and "export function connect(" in dts, f"{loaded} {r.status}")

        page = Page(driver)
        uri = f"ws://127.0.0.1:{port}/ws"
        agent = Agent(uri)
        wsclient.wait_for(lambda: agent.client_id, 5)
        # Heartbeat every 500 ms, so a frozen server is noticed in about a second.
        page.js("""H.make("A", arguments[0], { getToken: H.getToken("A"), minDelay: 100, maxDelay: 800,
                                               pingInterval: 500, pingTimeout: 1000 }).open();""", uri)
        page.until(lambda: "open" in page.states("A"), "A open")
        a = page.js("const c = H.clients.A; return {id: c.clientId, user: c.user, state: c.state}")
        check(page.states("A") == ["connecting", "open"] and re.fullmatch(r"[0-9a-f]{32}", a["id"] or "")
              and a["user"] == "alice", f"{page.states('A')} {a}")

        page.js("""H.got = []; H.track("sub", H.clients.A.subscribe(arguments[0],
                     (p, env) => H.got.push({ o: env.offset, e: env.epoch, n: p.n })));""", CH)
        sub = page.settled("sub")
        epoch = sub["ok"]["epoch"]
        for i in (1, 2, 3):
            status, body = api(port, "POST", "/api/publish", {"channel": CH, "payload": {"n": i}})
            assert status == 200, (status, body)
        got = page.until(lambda: (lambda g: g if len(g) >= 3 else None)(page.js("return H.got")), "3 publications")
        check([(g["o"], g["n"], g["e"]) for g in got] == [(1, 1, epoch), (2, 2, epoch), (3, 3, epoch)], got)

        page.js("""const A = H.clients.A; H.track("ping", A.request("ping"));
                   H.track("bad", A.request("no:such:type"));""")
        ping, bad = page.settled("ping"), page.settled("bad")
        check(ping["ok"]["type"] == "pong" and ping["ok"]["correlationId"] and bad == {"err": "unknown_type"},
              f"{ping} {bad}")

        page.js("H.track('pub1', H.clients.A.publish('other', {x: 1})); "
                "H.track('pub2', H.clients.A.publish('other', {x: 2}, {event: 'custom'}));")
        check((page.settled("pub1"), page.settled("pub2")) == ({"ok": 1}, {"ok": 2}),
              f"{page.result('pub1')} {page.result('pub2')}")

        page.js("H.track('call', H.clients.A.call(arguments[0], 'command:request', {command: 'uptime'}));",
                agent.client_id)
        call = page.settled("call")
        reply = call.get("ok") or {}
        check(reply.get("type") == "command:response" and reply.get("from") == agent.client_id
              and reply.get("payload") == {"ran": "uptime", "exit": 0}
              and reply.get("correlationId") == agent.commands[0]["correlationId"], call)

        # 4009: the backend cuts A. A's next getToken() is held, so A stays "connecting"
        # while the backend publishes 4..6 and the page sends notes 1..5 (queued).
        page.held.add("A")
        a_id = page.js("return H.clients.A.clientId")
        status, body = api(port, "POST", "/api/disconnect", {"clientId": a_id})
        assert (status, body) == (200, {"disconnected": 1}), (status, body)
        page.until(lambda: page.states("A")[-1:] == ["connecting"] and page.js("return H.wanted.length"),
                   "A reconnecting, asking for a token")
        for i in (4, 5, 6):
            status, _ = api(port, "POST", "/api/publish", {"channel": CH, "payload": {"n": i}})
            assert status == 200
        page.js("for (let i = 1; i <= 5; i++) H.track('note' + i, H.clients.A.send(arguments[0], 'note', {i}));",
                agent.client_id)
        time.sleep(0.2)
        queued_early = agent.notes[:]
        page.held.discard("A")
        page.until(lambda: page.states("A")[-1:] == ["open"], "A open again")
        page.until(lambda: len(page.js("return H.got")) >= 6, "6 publications")
        status, _ = api(port, "POST", "/api/publish", {"channel": CH, "payload": {"n": 7}})
        got = page.until(lambda: (lambda g: g if len(g) >= 7 else None)(page.js("return H.got")), "7 publications")
        subs = page.log("A", "subscribed")
        resub = [s for s in subs if s.get("channel") == CH][-1]["payload"]
        check(resub["recovered"] is True and resub["epoch"] == epoch
              and [(g["o"], g["n"]) for g in got] == [(i, i) for i in range(1, 8)]
              and not page.log("A", "reset"), f"{resub} {got} {page.log('A', 'reset')}")
        for i in range(1, 6):
            page.settled(f"note{i}")
        wsclient.wait_for(lambda: len(agent.notes) >= 5, 5)
        check(queued_early == [] and agent.notes == [1, 2, 3, 4, 5]
              and all(page.result(f"note{i}") == {"ok": None} for i in range(1, 6)),
              f"early={queued_early} notes={agent.notes}")
        states = page.log("A", "state")
        want = ["connecting", "open", "reconnecting", "connecting", "open"]
        check([s["state"] for s in states] == want and states[2].get("code") == 4009
              and states[4].get("clientId") not in (None, a_id), json.dumps(states))

        # A frozen server answers no ping: A must give the socket up by itself.
        srv.send_signal(signal.SIGSTOP)
        try:
            page.until(lambda: any(s["state"] == "reconnecting" and s.get("reason") == "no pong"
                                   for s in page.log("A", "state")[5:]), "A noticing the missing pong", 8)
        finally:
            srv.send_signal(signal.SIGCONT)
        page.until(lambda: page.states("A")[-1:] == ["open"], "A open after the freeze")
        api(port, "POST", "/api/publish", {"channel": CH, "payload": {"n": 8}})
        got = page.until(lambda: (lambda g: g if len(g) >= 8 else None)(page.js("return H.got")), "8 publications")
        resub = [s for s in page.log("A", "subscribed") if s.get("channel") == CH][-1]["payload"]
        check([g["o"] for g in got] == list(range(1, 9)) and resub["recovered"] is True,
              f"{got} {resub} {page.log('A', 'state')[5:]}")

        # After the freeze (a frozen server cannot take a refresh in time). B: 3 s tokens handed out fresh by getToken; C: one static 3 s token, no getToken.
        b_start = time.monotonic()
        page.js("H.make('B', arguments[0], { getToken: H.getToken('B'), pingInterval: 0 }).open();", uri)
        page.js("H.make('C', arguments[0], { token: arguments[1], pingInterval: 0, minDelay: 50 }).open();",
                uri, token("carol", 3))

        page.until(lambda: page.states("B")[-1:] == ["open"], "B open")
        # B has lived through several 3 s tokens (the server closes 4002 at exp without a
        # refresh, as C shows).
        page.until(lambda: time.monotonic() - b_start > 8.5, "8.5 s of B", 20)
        page.js("H.track('bping', H.clients.B.request('ping'))")
        bping = page.settled("bping")
        b = page.js("return {id: H.clients.B.clientId, user: H.clients.B.user, calls: H.calls.B}")
        check(page.states("B") == ["connecting", "open"] and bping.get("ok", {}).get("type") == "pong"
              and b["user"] == "bob" and b["calls"] >= 3, f"{page.log('B')} {bping} {b}")
        cst = page.log("C", "state")
        check([s["state"] for s in cst] == ["connecting", "open", "closed"] and cst[-1].get("code") == 4002
              and cst[-1].get("final") is True, json.dumps(cst))
        page.js("H.clients.B.close(); H.clients.C.close();")

        # D never reaches a server: 5 sends into a queue of 3.
        dead = f"ws://127.0.0.1:{free_port()}/ws"
        page.js("""const D = H.make("D", arguments[0], { queueSize: 3, minDelay: 100, maxDelay: 200 }).open();
                   for (let i = 1; i <= 5; i++) H.track("d" + i, D.send("nobody", "note", {i}));""", dead)
        page.until(lambda: all(page.result(f"d{i}") for i in (1, 2)), "two drops")
        page.js("H.clients.D.close()")
        page.until(lambda: all(page.result(f"d{i}") for i in range(1, 6)), "the rest rejected at close")
        dres = [page.result(f"d{i}") for i in range(1, 6)]
        dropped = [e["payload"]["i"] for e in page.log("D", "dropped")]
        check(dres == [{"err": "dropped"}] * 2 + [{"err": "closed"}] * 3 and dropped == [1, 2]
              and page.states("D")[-1] == "closed", f"{dres} {dropped} {page.states('D')}")

        # Restart: every history is gone; A's since is answered recovered:false.
        agent.stop()
        agent = None
        n_states = len(page.log("A", "state"))
        code = srv.stop()
        srv = Daemon(*args, listen=(f"127.0.0.1:{port}",))
        srv.start()
        page.until(lambda: page.log("A", "reset"), "onReset after the restart")
        page.until(lambda: page.states("A")[-1:] == ["open"], "A open after the restart")
        api(port, "POST", "/api/publish", {"channel": CH, "payload": {"n": 1}})
        got = page.until(lambda: (lambda g: g if len(g) >= 9 else None)(page.js("return H.got")), "a new offset 1")
        reset = page.log("A", "reset")
        after = page.log("A", "state")[n_states:]
        check(len(reset) == 1 and reset[0]["ch"] == CH and reset[0]["s"]["recovered"] is False
              and reset[0]["s"]["epoch"] != epoch and (got[-1]["o"], got[-1]["e"]) == (1, reset[0]["s"]["epoch"])
              and after[0]["state"] == "reconnecting" and after[0].get("code") == 1001 and code == 0,
              f"{reset} {got[-1]} {json.dumps(after[:4])} first exit={code}")
        page.js("H.clients.A.close()")
        code = srv.stop()
        check(code == 0, srv.log_tail())
        srv = None
    except Exception as e:  # a browser that cannot start is a failure, not a skip
        import traceback
        detail = traceback.format_exc() + "\n" + (srv.log_tail() if srv else "")
        while n < len(checks):
            check(False, detail)
            detail = "not run"
    finally:
        if agent:
            agent.stop()
        if driver:
            driver.quit()
        if srv:
            srv.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
