#!/usr/bin/python3
"""The live status page (GET /status, WebSocket /status/live) in a real browser: headless
Chromium (Debian's chromium + chromium-driver, driven by python3-selenium).

HTTP level first: without --api-key the page and its WebSocket answer 403 whatever the
key; with one, no key or a wrong key gets 401, the right one the page (also at /). Then
the browser opens /status?key=KEY and the test reads the page's data (window.wsrStatus)
and DOM: title, version, uptime; python3-websockets clients subscribe on /ws, and the
page's connection, channel and subscription figures follow them; publishers then load
the server for a few seconds and the messages-per-second series rises from zero and
the chart's pixels change; the clients leave and their close codes are counted. A
screenshot is kept in $WSR_ARTIFACTS/status-page.png (path printed as a TAP comment).
The key never appears in the server's log, and the server exits cleanly (its timer
closed, nothing leaked under ASan).

Every wait is bounded. Skips (TAP # SKIP) when chromium, chromedriver or selenium are
missing."""
import asyncio
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import httputil  # noqa: E402
import browser  # noqa: E402
import wsclient  # noqa: E402

try:
    import websockets
except ImportError:  # pragma: no cover
    websockets = None

KEY = "st-" + os.urandom(12).hex()          # URL-safe; also searched for in the log
ODD_KEY = "k+y/=&" + os.urandom(4).hex()    # needs percent-encoding in a query
N_SUBSCRIBERS = 4
CHANNELS = ["status-a", "status-b", "status-c"]  # subscriber i takes the first i % 3 + 1
N_PUBLISHERS = 2
LOAD_SECONDS = 4.0
PUBLISH_EVERY = 0.01  # per publisher: ~100/s, well under the default publish rate limit
PLAN = 30


def header_version():
    """WSR_VERSION from include/wsr/wsr.h, which the page must show."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "include", "wsr", "wsr.h")
    with open(path, encoding="utf-8") as f:
        return re.search(r'#define WSR_VERSION "([^"]+)"', f.read()).group(1)


def http_get(srv, target):
    with srv.connect() as c:
        return c.request(httputil.http_request("GET", target))


def upgrade_status(srv, target):
    """The status of an upgrade request to target (101 or the refusal)."""
    with srv.connect() as c:
        return c.handshake(path=target, expect_status=None).status


class Load:
    """python3-websockets clients on /ws, run by an asyncio loop in a thread of their own
    so that the browser can be read meanwhile."""

    def __init__(self, uri):
        self.uri = uri
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.subs, self.pubs = [], []
        self.published = 0
        self.received = 0

    def run(self, coro, timeout=30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _client(self):
        ws = await websockets.connect(self.uri, open_timeout=5, close_timeout=5, compression=None)
        msg = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert msg.get("type") == "connection:established", msg
        return ws

    async def _open(self):
        for i in range(N_SUBSCRIBERS):
            ws = await self._client()
            for ch in CHANNELS[: i % len(CHANNELS) + 1]:
                await ws.send(json.dumps({"type": "subscribe", "channel": ch, "id": ch}))
                while True:
                    msg = json.loads(await asyncio.wait_for(ws.recv(), 5))
                    if msg.get("type") == "subscribed" and msg.get("channel") == ch:
                        break
            self.subs.append(ws)
        for _ in range(N_PUBLISHERS):
            self.pubs.append(await self._client())

    def open(self):
        self.run(self._open())
        # What the page must then count.
        subscriptions = sum(i % len(CHANNELS) + 1 for i in range(N_SUBSCRIBERS))
        return N_SUBSCRIBERS + N_PUBLISHERS, len(CHANNELS), subscriptions

    async def _drain(self, ws):
        try:
            async for _ in ws:
                self.received += 1
        except Exception:
            pass

    async def _publish(self, ws, seconds):
        end = time.monotonic() + seconds
        n = 0
        while time.monotonic() < end:
            await ws.send(json.dumps({"type": "publish", "channel": CHANNELS[n % len(CHANNELS)],
                                      "payload": {"n": n, "pad": "x" * 64}}))
            n += 1
            self.published += 1
            await asyncio.sleep(PUBLISH_EVERY)

    def start_publishing(self, seconds):
        for ws in self.subs + self.pubs:
            asyncio.run_coroutine_threadsafe(self._drain(ws), self.loop)
        return [asyncio.run_coroutine_threadsafe(self._publish(ws, seconds), self.loop) for ws in self.pubs]

    async def _close(self):
        await asyncio.gather(*(ws.close(1000, "done") for ws in self.subs + self.pubs), return_exceptions=True)

    def close(self):
        try:
            self.run(self._close(), timeout=15)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)


def main():
    print(f"1..{PLAN}")
    why = browser.missing() or (None if websockets else "python3-websockets not installed")
    if why:
        for i in range(1, PLAN + 1):
            print(f"ok {i} # SKIP {why}")
        return 0
    failed = 0
    n = 0

    def check(ok, what, detail=""):
        nonlocal failed, n
        n += 1
        print(f"{'ok' if ok else 'not ok'} {n} - {what}")
        if not ok:
            failed += 1
            for line in str(detail).splitlines()[:20]:
                print(f"# {line}")
        sys.stdout.flush()
        return ok

    artifacts = os.environ.get("WSR_ARTIFACTS") or tempfile.gettempdir()
    tmp = tempfile.mkdtemp(prefix="wsr-status-")
    version = header_version()
    srv = nokey = driver = load = None
    try:
        # -- HTTP level ---------------------------------------------------------------------
        nokey = wsclient.Server()
        nokey.start()
        r = http_get(nokey, f"/status?key={KEY}")
        check(r.status == 403, "no --api-key: GET /status?key= is 403 (never open by accident)", r)
        check(upgrade_status(nokey, f"/status/live?key={KEY}") == 403, "no --api-key: the WebSocket is 403")
        nokey.stop()
        nokey.remove_log()
        nokey = None

        from urllib.parse import quote
        srv = wsclient.Server("--api-key", KEY, "--api-key", ODD_KEY)
        srv.start()
        r = http_get(srv, "/status")
        check(r.status == 401, "GET /status without a key is 401", r)
        r = http_get(srv, f"/status?key={KEY}x")
        check(r.status == 401 and KEY.encode() not in r.raw, "a wrong key is 401 (and not echoed)", r)
        r = http_get(srv, f"/status?key={KEY}")
        ok = (r.status == 200 and (r.header("Content-Type") or "").startswith("text/html")
              and b"<canvas" in r.body and b"http://" not in r.body and b"https://" not in r.body)
        check(ok, "the right key gets the page: HTML with canvases and no external resource", r.raw[:300])
        page = r.body
        r = http_get(srv, f"/?key={quote(ODD_KEY, safe='')}&x=1")
        check(r.status == 200 and r.body == page, "GET / serves the same page; any key of --api-key, percent-encoded", r)
        codes = (upgrade_status(srv, "/status/live"), upgrade_status(srv, f"/status/live?key=nope"),
                 upgrade_status(srv, f"/status/live?key={KEY}"))
        check(codes == (401, 401, 101), "the WebSocket: 401 without or with a wrong key, 101 with it", codes)
        codes = (upgrade_status(srv, f"/status?key={KEY}"), upgrade_status(srv, f"/?key={KEY}"))
        check(codes == (404, 404), "an upgrade at the page's own paths is 404, as at any path without an endpoint",
              codes)

        # -- the browser ----------------------------------------------------------------------
        driver = browser.start(f"{tmp}/profile", "--window-size=1400,1500")
        driver.get(f"http://127.0.0.1:{srv.port}/status?key={KEY}")

        def state():
            return driver.execute_script(
                "const S = window.wsrStatus; if (!S) return null;"
                "return {snapshots: S.snapshots, connected: S.connected, last: S.last, config: S.config,"
                " series: S.series};")

        def text(id_):
            return driver.execute_script("const e = document.getElementById(arguments[0]);"
                                         "return e ? e.textContent : null;", id_)

        def wait_state(pred, timeout):
            """Polls the page's data until pred holds (bounded); returns the last state."""
            deadline = time.monotonic() + timeout
            s = state()
            while time.monotonic() < deadline and not (s and pred(s)):
                time.sleep(0.2)
                s = state()
            return s

        s = wait_state(lambda s: s["snapshots"] >= 3 and s["config"], 10)
        check(bool(s) and s["snapshots"] >= 3 and s["connected"], "the page's WebSocket delivers snapshots",
              json.dumps(s)[:500] if s else "no window.wsrStatus")
        up = text("uptime") or ""
        check(driver.title == "wsreactor status" and text("version") == version
              and re.fullmatch(r"(\d+m )?\d+s", up) is not None,
              f"title, version {version} and uptime are shown", (driver.title, text("version"), up))
        cfg = (s or {}).get("config") or {}
        ports = [l.get("port") for l in cfg.get("listeners", [])]
        cfg_text = json.dumps(cfg)
        check(ports == [srv.port] and (cfg.get("auth") or {}).get("api_keys") == 2
              and KEY not in cfg_text and ODD_KEY not in json.dumps(cfg, ensure_ascii=False)
              and KEY not in (driver.find_element("tag name", "body").text),
              "the configuration summary names the listener and counts the keys, never shows one", cfg_text[:400])
        rows = driver.execute_script("return document.querySelectorAll('#config tr').length")
        check(rows >= 10, "the configuration table is filled", rows)
        baseline = s["series"]["msgsIn"][-3:] if s else None
        check(baseline is not None and len(baseline) == 3 and max(baseline) < 1,
              "before any load, messages in per second is 0", baseline)
        chart_before = driver.execute_script("return document.getElementById('chart-msgs').toDataURL()")

        # -- clients open: the figures follow ---------------------------------------------
        load = Load(srv.uri("/ws"))
        nclients, nchannels, nsubs = load.open()
        s = wait_state(lambda s: s["last"]["connections"]["open"] == nclients + 1
                       and s["last"]["messaging"]["subscriptions"] == nsubs, 10)
        last = s["last"]
        check(last["connections"]["open"] == nclients + 1 and text("conn-open") == str(nclients + 1),
              f"connections open: {nclients} clients + the page itself, in the data and on the page",
              (last["connections"], text("conn-open")))
        check(last["messaging"]["clients"] == nclients, "messaging clients counted", last["messaging"])
        check(last["messaging"]["channels"] == nchannels and text("channels") == str(nchannels),
              f"{nchannels} channels shown", (last["messaging"], text("channels")))
        check(last["messaging"]["subscriptions"] == nsubs and text("subscriptions") == str(nsubs),
              f"{nsubs} subscriptions shown", (last["messaging"], text("subscriptions")))
        check(last.get("broker", {}).get("state") == "none" and text("broker") == "none",
              "one node: the broker tile says none", (last.get("broker"), text("broker")))
        # subscriber i takes the first i % 3 + 1 channels: most subscribers first
        want = sorted(((c, sum(1 for i in range(N_SUBSCRIBERS) if c in CHANNELS[:i % len(CHANNELS) + 1]))
                       for c in CHANNELS), key=lambda e: -e[1])
        shown = driver.execute_script(
            "return [...document.querySelectorAll('#top-channels tbody tr')]"
            ".map(tr => [...tr.children].map(td => td.textContent))")
        check([(t["name"], t["subscribers"]) for t in last["top_channels"]] == want
              and [(r[0], int(r[1])) for r in shown] == want,
              "the channels with the most subscribers, in order, in the data and the table",
              (last["top_channels"], shown, want))

        # -- load: the chart moves ----------------------------------------------------------------
        before = s["snapshots"]
        futures = load.start_publishing(LOAD_SECONDS)
        s = wait_state(lambda s: s["snapshots"] >= before + 3 and max(s["series"]["msgsIn"][-3:]) > 50,
                       LOAD_SECONDS + 6)
        series = s["series"]
        peak_in = max(series["msgsIn"][-6:])
        peak_out = max(series["msgsOut"][-6:])
        check(peak_in > 50, "under load the messages-in series rises above zero (> 50/s)", series["msgsIn"][-10:])
        check(peak_out > peak_in, "messages out per second exceed messages in (fan-out)",
              (series["msgsOut"][-10:], series["msgsIn"][-10:]))
        check(max(series["bytesIn"][-6:]) > 50 * 64, "bytes in per second follow",
              series["bytesIn"][-10:])
        tile = text("msgs-in-rate") or ""
        check(re.fullmatch(r"[\d.]+k?", tile) is not None and float(tile.rstrip("k")) > 0,
              "the messages-in tile shows a rate", tile)
        chart_after = driver.execute_script("return document.getElementById('chart-msgs').toDataURL()")
        check(chart_after != chart_before, "the messages chart was redrawn with the load")
        for f in futures:
            f.result(LOAD_SECONDS + 10)
        shot = os.path.join(artifacts, "status-page.png")
        ok = driver.save_screenshot(shot)
        print(f"# screenshot: {shot}")
        check(ok and os.path.getsize(shot) > 10000, "screenshot saved", shot)

        # -- the clients leave ----------------------------------------------------------------------
        closes_before = last["closes"]["1000"]
        load.close()
        load = None
        s = wait_state(lambda s: s["last"]["connections"]["open"] == 1
                       and s["last"]["messaging"]["subscriptions"] == 0
                       and s["last"]["closes"]["1000"] >= closes_before + nclients, 10)
        last = s["last"]
        # (their channels stay: they hold the history of what was published)
        check(last["connections"]["open"] == 1 and last["messaging"]["subscriptions"] == 0
              and last["messaging"]["clients"] == 0 and text("subscriptions") == "0",
              "after the clients leave: only the page is connected, no subscription",
              (last["connections"], last["messaging"]))
        row = driver.execute_script(
            "for (const tr of document.querySelectorAll('#closes tr'))"
            "  if (tr.cells[0].textContent === '1000') return tr.cells[1].textContent;"
            "return null;")
        check(last["closes"]["1000"] >= closes_before + nclients and row == str(last["closes"]["1000"]),
              "their close code 1000 is counted in the close codes table", (last["closes"], row))
        later = wait_state(lambda x: x["last"]["uptime_ms"] > last["uptime_ms"], 5)
        check(later["last"]["uptime_ms"] > last["uptime_ms"], "snapshots keep coming (uptime advances)",
              (last["uptime_ms"], later["last"]["uptime_ms"]))
        driver.quit()
        driver = None

        log = srv.log()
        code = srv.stop()
        check(KEY not in log and ODD_KEY not in log, "no key in the server's log", log[-2000:])
        check(code == 0, "the server exits 0 after serving the page (timer closed, nothing leaked)",
              f"exit {code}\n" + log[-2000:])
        srv.remove_log()
        srv = None
    except Exception as e:  # a browser that cannot start is a failure, not a skip
        import traceback
        check(False, "status page run", traceback.format_exc() + "\n" + (srv.log_tail() if srv else ""))
    finally:
        if load:
            try:
                load.close()
            except Exception:
                pass
        if driver:
            driver.quit()
        for s_ in (srv, nokey):
            if s_:
                s_.stop()
                s_.remove_log()
        shutil.rmtree(tmp, ignore_errors=True)
    while n < PLAN:
        n += 1
        print(f"not ok {n} - not run")
        failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
