#!/usr/bin/python3
"""Reads /metrics with prometheus_client's parser (Debian's python3-prometheus-client),
the way a Python scraper or exporter would, and checks the families, their types, their
HELP and their samples; then checks docs/grafana-dashboard.json against the daemon's own
/metrics, so that the dashboard cannot name a metric that does not exist. TAP output;
the family list as comments.

Three parts:
  1. the text of a fresh server and messaging layer, rendered by test/app/metrics_dump:
     every family with its type, every figure 0;
  2. the real daemon (--rate-publish 1 --burst-publish 1, handshake limits, an API key
     and a namespace) scraped over HTTP before and after clients subscribe, publish, get
     rate-limited (messages and upgrades), are refused by a namespace, get a direct
     message from the backend API and close: the figures move by what was done; then a
     daemon with --auth-required yes answering an anonymous upgrade 401;
  3. the Grafana dashboard: valid JSON importable by Grafana (an input for the
     Prometheus data source, panels with PromQL targets), every metric it names present
     in the daemon's /metrics, counters only inside rate()/increase().

Usage: /usr/bin/python3 test/app/test_metrics_parse.py --exec PROGRAM [--daemon WSREACTOR]
  --exec PROGRAM: test/app/metrics_dump; --daemon: the wsreactor binary (default: WSR_BIN,
  else the wsreactor two directories above PROGRAM, i.e. the build directory's).
  A FILE or - (stdin) instead of --exec checks that text alone (part 1).
"""
import json
import math
import os
import re
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean
HERE = os.path.dirname(os.path.abspath(__file__))
DASHBOARD = os.path.join(HERE, "..", "..", "docs", "grafana-dashboard.json")

COUNTERS = [  # family names: the parser takes _total off a counter's name
    "wsreactor_connections_accepted", "wsreactor_accept_errors", "wsreactor_accept_pauses",
    "wsreactor_handshakes_completed", "wsreactor_handshakes_failed", "wsreactor_handshakes_shed",
    "wsreactor_closes", "wsreactor_protocol_errors", "wsreactor_close_timeouts", "wsreactor_pings_sent",
    "wsreactor_stale_cuts", "wsreactor_idle_closes", "wsreactor_slow_consumer_closes",
    "wsreactor_slow_consumer_drops", "wsreactor_messages_received", "wsreactor_messages_sent",
    "wsreactor_messages_compressed_received", "wsreactor_messages_compressed_sent",
    "wsreactor_broadcast_sends", "wsreactor_broadcast_compressions", "wsreactor_bytes_received",
    "wsreactor_bytes_sent", "wsreactor_memory_closes", "wsreactor_log_lines_suppressed",
    "wsreactor_http_requests", "wsreactor_upgrades_refused", "wsreactor_tls_handshakes", "wsreactor_tls_failures",
    # the messaging layer's
    "wsreactor_publications", "wsreactor_deliveries", "wsreactor_direct_messages", "wsreactor_bad_messages",
    "wsreactor_rate_limited", "wsreactor_auth_failures", "wsreactor_forbidden", "wsreactor_api_requests",
    "wsreactor_broker_reconnects", "wsreactor_broker_errors",
]
GAUGES = [
    "wsreactor_connections_open", "wsreactor_handshakes_in_progress", "wsreactor_memory_held_bytes",
    "process_resident_memory_bytes", "process_open_fds", "process_start_time_seconds",
    "wsreactor_uptime_seconds", "wsreactor_build_info",
    # the messaging layer's
    "wsreactor_messaging_clients", "wsreactor_messaging_authenticated_clients", "wsreactor_channels",
    "wsreactor_subscriptions", "wsreactor_history_entries", "wsreactor_history_bytes",
    "wsreactor_broker_up",
]
RATE_KINDS = {"message", "handshake"}
# The library's bucket labels (wsr_stats_close_labels, wsr_stats_hs_labels): dashboards
# select on them, so a change must be deliberate.
CLOSE_CODES = {"1000", "1001", "1002", "1003", "1006", "1007", "1008", "1009", "1011", "other", "1005"}
HS_STATUSES = {"400", "401", "403", "404", "405", "426", "431", "503", "timeout"}


class Tap:
    def __init__(self):
        self.n = 0
        self.failed = 0

    def check(self, ok, what, detail=""):
        self.n += 1
        print(f"{'ok' if ok else 'not ok'} {self.n} - {what}")
        if not ok:
            self.failed += 1
            for line in str(detail).splitlines()[:20]:
                print(f"# {line}")


def read_text(argv):
    if len(argv) >= 2 and argv[0] == "--exec":
        p = subprocess.run([argv[1]], capture_output=True, timeout=60)
        if p.returncode != 0:
            print("1..1")
            print(f"not ok 1 - {argv[1]} exited with {p.returncode}")
            for line in p.stderr.decode(errors="replace").splitlines()[:40]:
                print(f"# {line}")
            sys.exit(1)
        return p.stdout.decode()
    if not argv or argv[0] == "-":
        return sys.stdin.read()
    with open(argv[0], encoding="utf-8") as f:
        return f.read()


def parse(text):
    from prometheus_client.parser import text_string_to_metric_families
    try:
        return list(text_string_to_metric_families(text)), ""
    except Exception as e:  # the parser raises ValueError and others on bad lines
        return [], f"{type(e).__name__}: {e}"


def check_families(tap, families, err, where):
    """The checks any /metrics text must pass: parsed, every family once with its type
    and HELP, sample names, the bucket labels. Returns {family name: family}."""
    tap.check(not err and families, f"{where}: the parser reads the text", err)
    fam = {f.name: f for f in families}
    # This parser is lax: a sample outside its HELP/TYPE becomes an untyped family of
    # its own, and a repeated HELP a second family of the same name.
    names = [f.name for f in families]
    # (The parser names the untyped type "unknown", as OpenMetrics does.)
    tap.check(len(names) == len(set(names)) and all(f.type in ("counter", "gauge") for f in families),
              f"{where}: every family once, each a counter or a gauge", [(f.name, f.type) for f in families])
    want = {n: "counter" for n in COUNTERS} | {n: "gauge" for n in GAUGES}
    got = {f.name: f.type for f in families}
    tap.check(got == want, f"{where}: the expected families with their types",
              f"missing: {sorted(set(want) - set(got))}\nextra: {sorted(set(got) - set(want))}\n"
              f"types differ: {sorted(n for n in want if n in got and got[n] != want[n])}")
    tap.check(all(f.documentation for f in families), f"{where}: every family has HELP text",
              [f.name for f in families if not f.documentation])
    bad = [(f.name, s.name) for f in families for s in f.samples
           if s.name != f.name + ("_total" if f.type == "counter" else "")]
    tap.check(not bad, f"{where}: sample names: counters end in _total, gauges are the family name", bad)
    labels = {n: sorted(tuple(sorted(s.labels)) for s in fam[n].samples) for n in
              ("wsreactor_closes", "wsreactor_handshakes_failed", "wsreactor_rate_limited") if n in fam}
    tap.check(labels.get("wsreactor_closes") == [("code",)] * len(CLOSE_CODES)
              and {s.labels["code"] for s in fam["wsreactor_closes"].samples} == CLOSE_CODES
              and labels.get("wsreactor_handshakes_failed") == [("status",)] * len(HS_STATUSES)
              and {s.labels["status"] for s in fam["wsreactor_handshakes_failed"].samples} == HS_STATUSES
              and labels.get("wsreactor_rate_limited") == [("kind",)] * len(RATE_KINDS)
              and {s.labels["kind"] for s in fam["wsreactor_rate_limited"].samples} == RATE_KINDS,
              f"{where}: one sample per close code, handshake status and rate-limit kind", labels)
    return fam


def value(fam, sample, **labels):
    """A sample's value by its name as written (…_total for counters) and labels; None
    when absent, so that a missing figure never passes for a 0."""
    f = fam.get(sample[:-len("_total")] if sample.endswith("_total") else sample)
    if f is None:
        return None
    for s in f.samples:
        if s.name == sample and s.labels == labels:
            return s.value
    return None


def part_static(tap, text):
    families, err = parse(text)
    for f in families:
        print(f"# {f.type:8} {f.name:45} {len(f.samples)} sample(s)")
    fam = check_families(tap, families, err, "fresh")

    # A fresh server and messaging layer: the wsreactor figures are 0, except the build
    # info and the uptime.
    zero_ok = ("wsreactor_build_info", "wsreactor_uptime_seconds")
    nonzero = [(s.name, s.labels, s.value) for f in families for s in f.samples
               if f.name.startswith("wsreactor_") and f.name not in zero_ok and s.value != 0]
    single = {f.name: f.samples[0] for f in families if len(f.samples) == 1}
    bi = single.get("wsreactor_build_info")
    tap.check(not nonzero and bi is not None and bi.value == 1
              and re.fullmatch(r"\d+\.\d+\.\d+", bi.labels.get("version", "")),
              "fresh: every figure 0; build_info is 1 with a version label", f"{nonzero} {bi}")

    def one(name):
        s = single.get(name)
        return math.nan if s is None else s.value

    now = time.time()
    start, up = one("process_start_time_seconds"), one("wsreactor_uptime_seconds")
    rss, fds = one("process_resident_memory_bytes"), one("process_open_fds")
    tap.check(now - 70 < start < now and 2.5 <= up < 60 and abs((now - start) - up) < 10
              and rss > 1 << 20 and fds >= 1,
              "fresh: process figures: start time, uptime, resident memory, open fds",
              f"start {start} (now {now}), uptime {up}, rss {rss}, fds {fds}")


# --- the daemon -------------------------------------------------------------------------

API_KEY = "metrics-test-key"
MESSAGING_GAUGES = ["wsreactor_messaging_clients", "wsreactor_messaging_authenticated_clients",
                    "wsreactor_channels", "wsreactor_subscriptions", "wsreactor_history_entries",
                    "wsreactor_history_bytes"]
MESSAGING_COUNTERS = ["wsreactor_publications_total", "wsreactor_deliveries_total",
                      "wsreactor_direct_messages_total", "wsreactor_bad_messages_total",
                      "wsreactor_auth_failures_total", "wsreactor_forbidden_total", "wsreactor_api_requests_total"]


class Daemon:
    """The integration tests' helpers (test/integration/wsclient.py, httputil.py) around
    the real binary."""

    def __init__(self, path):
        sys.path.insert(0, os.path.join(HERE, "..", "integration"))
        os.environ["WSR_BIN"] = path
        import httputil
        import wsclient
        self.wsclient, self.httputil = wsclient, httputil

    def start(self, *args, env=None):
        return self.wsclient.Server(*args, env=env).start()

    def request(self, srv, method, path, headers=(), body=b""):
        with self.wsclient.RawClient(srv.host, srv.port, timeout=10) as c:
            c.send(self.httputil.http_request(method, path, headers=list(headers) + [("Connection", "close")],
                                              body=body))
            return self.httputil.read_response(c)

    def scrape(self, srv):
        """(response, text, families, parse error)"""
        r = self.request(srv, "GET", "/metrics")
        text = r.body.decode("utf-8", errors="replace")
        families, err = parse(text)
        return r, text, families, err

    def ws(self, srv, path="/ws", headers=None, expect=101):
        """A client on /ws past connection:established: (client, its clientId); or, when
        expect is not 101, (client, the HTTP response)."""
        c = self.wsclient.RawClient(srv.host, srv.port, timeout=10)
        r = c.handshake(path=path, headers=headers or {}, expect_status=None)
        if r.status != 101 or expect != 101:
            return c, r
        est = recv_json(c)
        assert est.get("type") == "connection:established", est
        return c, est["payload"]["clientId"]


def recv_json(c):
    _, data = c.recv_message(allow_pong=True)
    return json.loads(data)


def send_json(c, m):
    c.send_text(json.dumps(m))


def expect_type(c, *types, limit=10):
    """The next message of one of these types (others skipped); its JSON."""
    seen = []
    for _ in range(limit):
        m = recv_json(c)
        if m.get("type") in types:
            return m
        seen.append(m)
    raise AssertionError(f"no {types} among {seen}")


def part_daemon(tap, d):
    srv = d.start("--rate-publish", "1", "--burst-publish", "1", "--rate-handshakes", "1",
                  "--burst-handshakes", "2", "--api-key", API_KEY,
                  "--namespace", "members:subscribe=users,publish=users")
    r, text0, families, err = d.scrape(srv)
    tap.check(r.status == 200 and r.header("Content-Type") == "text/plain; version=0.0.4; charset=utf-8",
              "daemon: GET /metrics answers 200 text/plain; version=0.0.4", r.raw[:300] if r else r)
    f0 = check_families(tap, families, err, "daemon")
    figures = {n: value(f0, n) for n in MESSAGING_GAUGES + MESSAGING_COUNTERS}
    figures |= {f"rate_limited{{kind={k}}}": value(f0, "wsreactor_rate_limited_total", kind=k) for k in RATE_KINDS}
    tap.check(all(v == 0 for v in figures.values()), "daemon: a fresh messaging layer's figures are all 0", figures)

    # Two clients; B subscribes, A publishes until the publish bucket (burst 1) refuses.
    clients = []
    a, id_a = d.ws(srv)
    b, id_b = d.ws(srv)
    clients += [a, b]
    # Upgrades to /ws past the handshake bucket (burst 2, 1/s): 429 within a few tries.
    extra_ok, limited_hs = 0, 0
    for _ in range(8):
        c, resp = d.ws(srv, expect=None)
        if resp.status == 429:
            limited_hs += 1
            c.close()
            break
        extra_ok += 1
        c.send_close(1000)
        c.expect_close(1000, reply=False)
        c.close()
    send_json(b, {"type": "subscribe", "channel": "t:metrics", "id": "s1"})
    sub_reply = expect_type(b, "subscribed", "error")
    acks, limited = 0, 0
    for i in range(8):
        send_json(a, {"type": "publish", "channel": "t:metrics", "payload": {"n": i}, "id": f"p{i}"})
        m = expect_type(a, "ack", "error")
        if m["type"] == "ack":
            acks += 1
            continue
        if m.get("payload", {}).get("code") == "rate_limited":
            limited += 1
            break
        raise AssertionError(f"publish: {m}")
    got = [expect_type(b, "message")["payload"] for _ in range(acks)]
    # Refused by the namespace's rule: anonymous clients may not subscribe to members:*.
    send_json(a, {"type": "subscribe", "channel": "members:x", "id": "s2"})
    refused = expect_type(a, "error")
    # A direct message from the backend API.
    body = json.dumps({"clientId": id_b, "payload": {"hello": 1}}).encode()
    api = d.request(srv, "POST", "/api/send", headers=[("Authorization", f"Bearer {API_KEY}"),
                                                        ("Content-Type", "application/json"),
                                                        ("Content-Length", str(len(body)))], body=body)
    direct = expect_type(b, "message", "direct", "send") if api.status == 200 else None
    tap.check(sub_reply["type"] == "subscribed" and acks >= 1 and limited == 1 and limited_hs == 1
              and got == [{"n": i} for i in range(acks)] and refused["type"] == "error" and api.status == 200
              and direct is not None,
              "daemon: subscribed, published, rate-limited (publish and upgrade), refused, sent a direct message",
              f"subscribe {sub_reply}\nacks {acks} limited {limited} upgrades limited {limited_hs}\n"
              f"got {got}\nrefused {refused}\napi {api.status} {api.body[:200]!r}\ndirect {direct}")

    r, text1, families, err = d.scrape(srv)
    f1 = {f.name: f for f in families}
    want = {
        "wsreactor_messaging_clients": 2, "wsreactor_messaging_authenticated_clients": 0,
        "wsreactor_connections_open": 2, "wsreactor_channels": 1, "wsreactor_subscriptions": 1,
        "wsreactor_history_entries": acks, "wsreactor_publications_total": acks,
        "wsreactor_deliveries_total": acks, "wsreactor_direct_messages_total": 1,
        "wsreactor_api_requests_total": 1, "wsreactor_auth_failures_total": 0,
        "wsreactor_handshakes_completed_total": 2 + extra_ok,
    }
    have = {n: value(f1, n) for n in want}
    tap.check(not err and have == want, "daemon: the gauges and counters after the clients' work", 
              "\n".join(f"{n}: {have[n]} (expected {want[n]})" for n in want if have[n] != want[n]) or err)
    hb = value(f1, "wsreactor_history_bytes")
    rl = {k: value(f1, "wsreactor_rate_limited_total", kind=k) for k in RATE_KINDS}
    bad, forb = value(f1, "wsreactor_bad_messages_total"), value(f1, "wsreactor_forbidden_total")
    refused_up = value(f1, "wsreactor_upgrades_refused_total")
    tap.check(hb is not None and hb > 0 and rl == {"message": 1, "handshake": 1}
              and bad == 1 and forb == 1  # the refused subscribe; the rate-limited publish is not "bad"
              and refused_up is not None and refused_up >= 1,
              "daemon: history bytes, rate limits by kind, bad messages, forbidden, refused upgrades",
              f"history_bytes {hb} rate_limited {rl} bad {bad} forbidden {forb} upgrades_refused {refused_up}")
    moved = {n: (value(f0, n), value(f1, n)) for n in
             ("wsreactor_messages_received_total", "wsreactor_messages_sent_total", "wsreactor_bytes_received_total",
              "wsreactor_bytes_sent_total", "wsreactor_http_requests_total")}
    tap.check(all(x is not None and y is not None and y > x for x, y in moved.values())
              and moved["wsreactor_messages_received_total"][1] >= acks + limited + 2,
              "daemon: messages, bytes and HTTP requests counted", moved)

    # Both close; a bad upgrade on /echo gets 400.
    b.send_close(1000)
    b.expect_close(1000, reply=False)
    a.send_close(1001)
    a.expect_close(1001, reply=False)
    c = d.wsclient.RawClient(srv.host, srv.port, timeout=10)
    bad_up = c.handshake(path="/echo", omit=("Sec-WebSocket-Key",), expect_status=None)
    c.close()
    r, text2, families, err = d.scrape(srv)
    f2 = {f.name: f for f in families}
    want = {("wsreactor_messaging_clients", ()): 0, ("wsreactor_subscriptions", ()): 0,
            ("wsreactor_connections_open", ()): 0, ("wsreactor_history_entries", ()): acks,
            ("wsreactor_closes_total", (("code", "1000"),)): 1 + extra_ok,
            ("wsreactor_closes_total", (("code", "1001"),)): 1,
            ("wsreactor_handshakes_failed_total", (("status", "400"),)): 1}
    have = {k: value(f2, k[0], **dict(k[1])) for k in want}
    tap.check(not err and bad_up.status == 400 and have == want,
              "daemon: closes by code, a handshake failure by status, the gauges back to 0",
              f"bad upgrade {bad_up.status}\n" + "\n".join(f"{k}: {have[k]} (expected {want[k]})" for k in want
                                                          if have[k] != want[k]))
    for c in clients:
        c.close()
    rc = srv.stop()
    tap.check(rc == 0, "daemon: exits 0 on SIGTERM", srv.log_tail())
    srv.remove_log()

    # --auth-required yes: an anonymous upgrade and a wrong password get 401.
    srv = d.start("--auth-required", "yes", env={"WSR_AUTH_USER": "alice", "WSR_AUTH_PASSWORD": "secret"})
    import base64
    basic = lambda pw: "Basic " + base64.b64encode(f"alice:{pw}".encode()).decode()  # noqa: E731
    anon, r_anon = d.ws(srv, expect=None)
    wrong, r_wrong = d.ws(srv, headers={"Authorization": basic("nope")}, expect=None)
    good, id_good = d.ws(srv, headers={"Authorization": basic("secret")})
    r, text3, families, err = d.scrape(srv)
    f3 = {f.name: f for f in families}
    want = {("wsreactor_auth_failures_total", ()): 2, ("wsreactor_handshakes_failed_total", (("status", "401"),)): 2,
            ("wsreactor_messaging_clients", ()): 1, ("wsreactor_messaging_authenticated_clients", ()): 1}
    have = {k: value(f3, k[0], **dict(k[1])) for k in want}
    tap.check(not err and r_anon.status == 401 and r_wrong.status == 401 and have == want,
              "auth daemon: 401s counted as auth failures and by status; the authenticated client",
              f"anonymous {r_anon.status} wrong password {r_wrong.status}\n"
              + "\n".join(f"{k}: {have[k]} (expected {want[k]})" for k in want if have[k] != want[k]))
    for c in (anon, wrong, good):
        c.close()
    rc = srv.stop()
    tap.check(rc == 0, "auth daemon: exits 0 on SIGTERM", srv.log_tail())
    srv.remove_log()
    return text1


# --- the dashboard ----------------------------------------------------------------------

# What PromQL expressions may name besides metrics: functions, aggregations, keywords.
PROMQL_WORDS = {
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile", "count_values",
    "group", "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
    "offset", "rate", "irate", "increase", "delta", "idelta", "deriv", "resets", "changes", "abs", "ceil",
    "floor", "round", "clamp", "clamp_min", "clamp_max", "time", "timestamp", "vector", "scalar",
    "label_replace", "label_join", "sort", "sort_desc", "absent", "max_over_time", "min_over_time",
    "avg_over_time", "sum_over_time", "last_over_time", "histogram_quantile", "inf", "nan",
}
# Labels Prometheus adds to every scraped sample.
TARGET_LABELS = {"instance", "job", "__name__"}
# What the issue asks the dashboard to show.
REQUIRED = {
    "wsreactor_connections_open", "wsreactor_messages_received_total", "wsreactor_messages_sent_total",
    "wsreactor_bytes_received_total", "wsreactor_bytes_sent_total", "wsreactor_closes_total",
    "wsreactor_handshakes_failed_total", "wsreactor_channels", "wsreactor_subscriptions",
    "wsreactor_history_bytes", "wsreactor_rate_limited_total", "wsreactor_auth_failures_total",
    "wsreactor_slow_consumer_closes_total", "wsreactor_slow_consumer_drops_total",
    "process_resident_memory_bytes",
}


def metric_catalog(text):
    """{metric name as written in samples: (type, set of its label names)} from a
    /metrics text (the sample names a query uses: counters with _total)."""
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    labels = {n: set() for n in types}
    for m in re.finditer(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})? ", text, re.M):
        if m.group(1) in labels and m.group(2):
            labels[m.group(1)] |= set(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="', m.group(2)))
    return {n: (t, labels[n]) for n, t in types.items()}


def expr_problems(expr, catalog):
    """What is wrong with one PromQL expression against the daemon's metrics: unknown
    names, counters without a range (not under rate()/increase()), unknown labels."""
    problems = []
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    metrics = set()
    for m in re.finditer(r"(?<![\w:$])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?\s*(\[)?", bare):
        name, sel, rng = m.group(1), m.group(2), m.group(3)
        before = bare[:m.start()].rstrip()
        if name in PROMQL_WORDS or re.search(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*$", before):
            continue
        if name not in catalog:
            problems.append(f"no metric {name} in /metrics")
            continue
        metrics.add(name)
        typ, labels = catalog[name]
        if typ == "counter" and not rng:
            problems.append(f"counter {name} without a range: use rate() or increase()")
        for label in re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", sel or ""):
            if label not in labels | TARGET_LABELS:
                problems.append(f"{name} has no label {label}")
    known = set().union(*(catalog[n][1] for n in metrics)) | TARGET_LABELS if metrics else TARGET_LABELS
    for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", bare):
        for label in re.findall(r"[a-zA-Z_][a-zA-Z0-9_]*", group):
            if label not in known:
                problems.append(f"grouping by {label}, which no metric of the expression has")
    if not metrics:
        problems.append("names no metric")
    return problems, metrics


def all_panels(panels):
    for p in panels:
        yield p
        yield from all_panels(p.get("panels") or [])


def part_dashboard(tap, text):
    try:
        with open(DASHBOARD, encoding="utf-8") as f:
            dash = json.load(f)
        err = ""
    except (OSError, ValueError) as e:
        dash, err = {}, f"{type(e).__name__}: {e}"
    inputs = dash.get("__inputs") or []
    ds = [i for i in inputs if i.get("name") == "DS_PROMETHEUS"]
    tap.check(not err and isinstance(dash.get("schemaVersion"), int) and dash["schemaVersion"] >= 36
              and dash.get("title") and dash.get("uid") and len(ds) == 1 and ds[0].get("type") == "datasource"
              and ds[0].get("pluginId") == "prometheus",
              "dashboard: JSON for Grafana's import (schemaVersion, title, uid, a DS_PROMETHEUS input)",
              err or {k: dash.get(k) for k in ("schemaVersion", "title", "uid", "__inputs")})

    panels = [p for p in all_panels(dash.get("panels") or []) if p.get("type") != "row"]
    ids = [p.get("id") for p in all_panels(dash.get("panels") or [])]
    shape = [p.get("title") for p in panels
             if not p.get("title") or not p.get("targets") or not isinstance(p.get("gridPos"), dict)
             or (p.get("datasource") or {}).get("uid") != "${DS_PROMETHEUS}"
             or any((t.get("datasource") or {}).get("uid", "${DS_PROMETHEUS}") != "${DS_PROMETHEUS}"
                    or not t.get("expr") or not t.get("refId") for t in p.get("targets") or [])]
    tap.check(len(panels) >= 10 and not shape and len(ids) == len(set(ids)) and None not in ids,
              "dashboard: panels with an id, a title, a place, the Prometheus input and PromQL targets",
              f"{len(panels)} panels; bad: {shape}; ids {ids}")

    catalog = metric_catalog(text)
    problems, named = [], set()
    for p in panels:
        for t in p.get("targets") or []:
            probs, metrics = expr_problems(t.get("expr", ""), catalog)
            named |= metrics
            problems += [f"{p.get('title')!r} {t.get('expr')!r}: {x}" for x in probs]
    for v in (dash.get("templating") or {}).get("list") or []:
        q = v.get("query")
        q = q.get("query", "") if isinstance(q, dict) else str(q or "")
        for name in re.findall(r"label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)", q):
            if name not in catalog:
                problems.append(f"variable {v.get('name')!r}: no metric {name} in /metrics")
    tap.check(catalog and not problems,
              "dashboard: every metric and label of its queries is in the daemon's /metrics; counters under rate()",
              "\n".join(problems))
    tap.check(REQUIRED <= named, "dashboard: shows connections, messages, bytes, closes, handshake failures, "
              "channels, subscriptions, history, rate limits, auth failures, slow consumers, RSS",
              f"not shown: {sorted(REQUIRED - named)}")

    # The checker finds what it is there to find.
    cases = {
        'rate(wsreactor_no_such_metric_total[5m])': "no metric",
        'wsreactor_closes_total': "without a range",
        'sum by (code) (wsreactor_bytes_sent_total[1m])': "grouping by code",
        'rate(wsreactor_closes_total{status="400"}[5m])': "no label status",
        'vector(1)': "names no metric",
    }
    missed = {e: expr_problems(e, catalog)[0] for e, why in cases.items()
              if not any(why in x for x in expr_problems(e, catalog)[0])}
    ok_expr = 'sum by (code) (rate(wsreactor_closes_total{instance=~"$instance",code!="1000"}[$__rate_interval]))'
    tap.check(not missed and expr_problems(ok_expr, catalog)[0] == [],
              "dashboard: the query checker refuses unknown metrics and labels and bare counters",
              f"missed {missed}; on a good query {expr_problems(ok_expr, catalog)[0]}")


def daemon_path(argv, program):
    if "--daemon" in argv:
        return argv[argv.index("--daemon") + 1]
    if os.environ.get("WSR_BIN"):
        return os.environ["WSR_BIN"]
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(program))), "wsreactor")


def main(argv):
    try:
        import prometheus_client.parser  # noqa: F401
    except ImportError as e:
        print("1..1")
        print(f"not ok 1 - prometheus_client not importable ({e}); apt-get install python3-prometheus-client")
        return 1
    text = read_text(argv)
    tap = Tap()
    part_static(tap, text)
    if len(argv) >= 2 and argv[0] == "--exec":
        path = daemon_path(argv, argv[1])
        try:
            text = part_daemon(tap, Daemon(path))
        except Exception as e:  # a client or the daemon failed: report it, then stop
            import traceback
            tap.check(False, f"daemon {path}: the scenario ran to its end", traceback.format_exc())
            text = None
        if text is not None:
            part_dashboard(tap, text)
    print(f"1..{tap.n}")
    return 1 if tap.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
