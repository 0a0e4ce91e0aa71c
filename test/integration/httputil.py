"""Helpers for the plain-HTTP, listener and PROXY-protocol integration tests.

Raw request bytes, a response reader that knows HEAD has no body, a daemon started with
an explicit set of listeners (every "listening on" line is collected), a scrape of
/metrics parsed with Debian's prometheus_client, and a test case base class whose
servers must exit 0 on SIGTERM. Stdlib only, apart from prometheus_client for /metrics.
"""

import os
import re
import socket

import wsclient
from wsclient import OP_BINARY, OP_TEXT, OwnServerCase, RawClient, Server, wait_for

IMF_FIXDATE = re.compile(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|"
                         r"Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT$")
HEALTHZ_BODY = b'{"status":"ok"}'
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def free_port(host="127.0.0.1"):
    """A loopback port nobody listens on right now (bound to 0, then released)."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def http_request(method="GET", path="/healthz", version="HTTP/1.1", headers=(), body=b"",
                 host="127.0.0.1"):
    """One request's bytes: the request line, Host (unless headers name one), headers
    (a list of (name, value) or raw lines) in order, then body as given."""
    lines = [f"{method} {path} {version}"]
    names = {h[0].lower() for h in headers if isinstance(h, tuple)}
    if host is not None and "host" not in names:
        lines.append(f"Host: {host}")
    for h in headers:
        lines.append(h if isinstance(h, str) else f"{h[0]}: {h[1]}")
    if isinstance(body, str):
        body = body.encode("latin-1")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def read_response(c, head_only=False, limit=1 << 20):
    """Reads one response from a RawClient (see RawClient.read_http_response); a head
    may be up to limit bytes long."""
    return c.read_http_response(limit=limit, head_only=head_only)


def conn_tokens(r):
    return [t.strip().lower() for t in (r.header("Connection") or "").split(",") if t.strip()]


LISTENING_RE = re.compile(r"listening on (\[[0-9A-Fa-f:.]+\]|[0-9.]+):(\d+)( \(PROXY protocol\))?")


class Daemon(Server):
    """The daemon with the listeners given (no implicit --listen): listen is a list of
    addresses for --listen, proxy a list for --listen-proxy. After start(), listeners is
    [(host, port, is_proxy)] in the order they were logged, port the first plain one and
    proxy_port the first PROXY one."""

    def __init__(self, *args, listen=("127.0.0.1:0",), proxy=(), log_level="info", **kw):
        super().__init__(*args, log_level=log_level, **kw)
        self.listen = list(listen)
        self.proxy = list(proxy)
        self.listeners = []
        self.proxy_port = None

    @property
    def listening_what(self):
        return f"{len(self.listen) + len(self.proxy)} 'listening on' lines"

    def listen_args(self):
        return [a for addr in self.listen for a in ("--listen", addr)] + \
               [a for addr in self.proxy for a in ("--listen-proxy", addr)]

    def listening(self, log):
        want = len(self.listen) + len(self.proxy)
        found = LISTENING_RE.findall(log)
        if len(found) < want:
            return False
        self.listeners = [(h.strip("[]"), int(p), bool(x)) for h, p, x in found[:want]]
        plain = [(h, p) for h, p, x in self.listeners if not x]
        prox = [p for _, p, x in self.listeners if x]
        self.port = plain[0][1] if plain else None
        self.proxy_port = prox[0] if prox else None
        if plain:
            self.host = plain[0][0]
        return True


class HttpCase(OwnServerCase):
    """Each test starts its own daemon (a Daemon: explicit listeners) with start_server()
    and ends with stop_ok()."""

    server_class = Daemon

    def setUp(self):
        self._clients = []

    def stop_ok(self, srv):
        # Our clients go first: a connection the server has answered with "Connection:
        # close" is held (up to --close-timeout) until the peer closes its side too.
        for c in self._clients:
            c.close()
        super().stop_ok(srv)

    def client(self, srv, port=None, host=None, timeout=wsclient.IO_TIMEOUT):
        c = RawClient(host or srv.host, port or srv.port, timeout=timeout)
        self.addCleanup(c.close)
        self._clients.append(c)
        return c

    def start_with_client(self, *args, **kw):
        """start_server(*args, **kw), and one client of the daemon: (daemon, client)."""
        srv = self.start_server(*args, **kw)
        return srv, self.client(srv)

    def end_closed(self, srv, c, serves=True):
        """The daemon has closed c after its last answer; unless serves=False, a fresh
        connection is still served; then the daemon exits 0 on SIGTERM."""
        self.assert_eof(c)
        if serves:
            self.assert_serves(srv)
        self.stop_ok(srv)

    def get(self, c, path="/healthz", method="GET", **kw):
        c.send(http_request(method, path, **kw))
        return read_response(c, head_only=(method == "HEAD"))

    def assert_healthz(self, r, closes=False):
        self.assertEqual((r.version, r.status, r.reason), ("HTTP/1.1", 200, "OK"), r.raw[:300])
        self.assertEqual(r.header("Content-Type"), "application/json", r.raw[:300])
        self.assertEqual(r.header("Content-Length"), "15", r.raw[:300])
        self.assertEqual(r.body, HEALTHZ_BODY, r.raw[:300])
        self.assertEqual("close" in conn_tokens(r), closes, r.raw[:300])

    def assert_eof(self, c, timeout=5):
        rest = c.read_until_eof(timeout=timeout)
        self.assertEqual(rest, b"", "bytes after the last response")

    def assert_serves(self, srv, port=None, host=None):
        """A fresh connection gets /healthz, and /echo echoes."""
        port = port or srv.port
        with RawClient(host or srv.host, port, timeout=10) as c:
            self.assert_healthz(self.get(c))
        with RawClient(host or srv.host, port, timeout=10) as c:
            c.handshake()
            c.echo(OP_TEXT, b"still serving")
            c.echo(OP_BINARY, os.urandom(300))

    def refused_lines(self, srv, needle="refused"):
        return [l for l in srv.log().splitlines() if needle in l]

    def wait_log(self, srv, pattern, timeout=5):
        """Waits for a log line matching the regex; returns the match or None."""
        rx = re.compile(pattern)
        box = [None]

        def found():
            for line in srv.log().splitlines():
                m = rx.search(line)
                if m:
                    box[0] = m
                    return True
            return False
        wait_for(found, timeout, step=0.05)
        return box[0]


def scrape(host, port):
    """GET /metrics on a new connection: (response, {family name: family})."""
    from prometheus_client.parser import text_string_to_metric_families
    with RawClient(host, port, timeout=10) as c:
        c.send(http_request("GET", "/metrics", headers=[("Connection", "close")]))
        r = read_response(c)
    fams = {f.name: f for f in text_string_to_metric_families(r.body.decode("utf-8"))}
    return r, fams


def sample(fams, family, labels=None, suffix="_total"):
    """The value of a sample of a family (prometheus_client strips _total from counter
    family names), or 0.0 when the labelled sample is absent."""
    f = fams.get(family[:-len("_total")] if family.endswith("_total") else family)
    if f is None:
        raise AssertionError(f"no metric family {family} in {sorted(fams)}")
    for s in f.samples:
        if s.name == family and (labels is None or s.labels == labels):
            return s.value
    return 0.0
