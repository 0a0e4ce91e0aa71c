#!/usr/bin/python3
"""Plain HTTP beside WebSocket, on the wire, with raw sockets.

GET /healthz (status, headers, body), keep-alive (100 requests on one connection,
HTTP/1.0, Connection: close, --http-max-requests, --http-idle-timeout), pipelining (in
order, one write or many), HEAD without a body, 405 with Allow, unknown methods, bodies
(--max-body: 413 before the body is read, chunked too; Expect: 100-continue), request
smuggling shapes (400), and /metrics read with Debian's prometheus_client (request,
close and handshake-failure counters, Content-Type).

Every test starts its own daemon on an ephemeral loopback port, checks that it still
answers /healthz after each bad case, and stops it with SIGTERM expecting exit status 0
(which also catches sanitizer reports). No pass or fail depends on timing: waits are
polls with generous bounds.
"""

import email.utils
import os
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from httputil import (HEALTHZ_BODY, IMF_FIXDATE, METRICS_TYPE, HttpCase, conn_tokens,  # noqa: E402
                      http_request, read_response, sample, scrape)
from wsclient import OP_TEXT, add_cases, build_request, run_tap, wait_for  # noqa: E402


def chunked(body, size):
    out = b""
    for i in range(0, len(body), size):
        part = body[i:i + size]
        out += b"%x\r\n" % len(part) + part + b"\r\n"
    return out + b"0\r\n\r\n"


# ========================================================================================
# 1. /healthz and keep-alive


class Healthz(HttpCase):
    def test_status_headers_body(self):
        srv, c = self.start_with_client()
        r = self.get(c)
        self.assertTrue(r.raw.startswith(b"HTTP/1.1 200 OK\r\n"), r.raw[:100])
        self.assert_healthz(r)
        self.assertEqual(len(r.header_all("Content-Length")), 1, r.raw)
        self.assertEqual(len(r.header_all("Date")), 1, r.raw)
        date = r.header("Date")
        self.assertRegex(date, IMF_FIXDATE)
        skew = abs(email.utils.parsedate_to_datetime(date).timestamp() - time.time())
        self.assertLess(skew, 300, f"Date {date!r} is {skew:.0f} s off the clock")
        # HTTP/1.1 without Connection: close stays open: a second request is answered.
        self.assert_healthz(self.get(c))
        self.stop_ok(srv)

    def test_100_requests_on_one_connection(self):
        srv, c = self.start_with_client()
        for i in range(100):
            r = self.get(c)
            self.assertEqual(r.status, 200, f"request {i}: {r.raw[:200]!r}")
            self.assertEqual(r.body, HEALTHZ_BODY, f"request {i}")
            self.assertNotIn("close", conn_tokens(r), f"request {i} closed: {r.raw[:200]!r}")
        self.assertEqual(c.buf, b"", "bytes beyond the 100 responses")
        self.stop_ok(srv)

    def test_http10_without_keep_alive_closes(self):
        srv, c = self.start_with_client()
        c.send(b"GET /healthz HTTP/1.0\r\n\r\n")
        r = read_response(c)
        self.assert_healthz(r, closes=True)
        self.end_closed(srv, c, serves=False)

    def test_http10_with_keep_alive_stays_open(self):
        srv, c = self.start_with_client()
        for i in range(3):
            c.send(b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            r = read_response(c)
            self.assertEqual((r.status, r.body), (200, HEALTHZ_BODY), f"request {i}: {r.raw!r}")
            self.assertEqual(conn_tokens(r), ["keep-alive"], f"request {i}: {r.raw!r}")
        self.stop_ok(srv)

    def test_connection_close_closes_after_the_response(self):
        srv, c = self.start_with_client()
        self.assert_healthz(self.get(c))
        c.send(http_request("GET", "/healthz", headers=[("Connection", "close")]))
        self.assert_healthz(read_response(c), closes=True)
        self.end_closed(srv, c, serves=False)

    def test_max_requests_3_closes_after_the_third(self):
        srv, c = self.start_with_client("--http-max-requests", "3")
        self.assert_healthz(self.get(c))
        self.assert_healthz(self.get(c))
        self.assert_healthz(self.get(c), closes=True)
        self.end_closed(srv, c)

    def test_max_requests_3_pipelined_5_gets_3(self):
        # The two requests past the limit are not answered: the connection ends.
        srv, c = self.start_with_client("--http-max-requests", "3")
        c.send(http_request("GET", "/healthz") * 5)
        self.assert_healthz(read_response(c))
        self.assert_healthz(read_response(c))
        self.assert_healthz(read_response(c), closes=True)
        self.end_closed(srv, c, serves=False)

    def test_idle_keep_alive_connections_do_not_count_against_max_handshakes(self):
        srv = self.start_server("--max-handshakes", "2")
        idle = [self.client(srv) for _ in range(2)]
        for c in idle:
            self.assert_healthz(self.get(c))
        ws = self.client(srv)
        ws.handshake()
        ws.echo(OP_TEXT, b"past two idle keep-alive connections")
        for c in idle:
            self.assert_healthz(self.get(c))
        self.stop_ok(srv)

    def test_idle_timeout_closes_an_idle_keep_alive_connection(self):
        srv, c = self.start_with_client("--http-idle-timeout", "300")
        self.assert_healthz(self.get(c))
        t0 = time.monotonic()
        rest = self.read_to_eof(c, 15, "an idle keep-alive connection (--http-idle-timeout 300)")
        self.assertEqual(rest, b"", "bytes sent on an idle connection")
        self.assertGreater(time.monotonic() - t0, 0.2, "closed before the idle timeout")
        self.assert_serves(srv)
        self.stop_ok(srv)


# ========================================================================================
# 2. pipelining and HEAD


class Pipelining(HttpCase):
    PLAN = ["/healthz", "/metrics", "/healthz", "/healthz", "/metrics", "HEAD /healthz",
            "/metrics", "/healthz", "/metrics", "/metrics", "/healthz", "HEAD /metrics",
            "/healthz", "/metrics", "/healthz", "/healthz", "/metrics", "/healthz",
            "/metrics", "/nope"]

    def requests(self):
        out = b""
        for p in self.PLAN:
            m, path = p.split() if " " in p else ("GET", p)
            out += http_request(m, path)
        return out

    def check_answers(self, c):
        for i, p in enumerate(self.PLAN):
            head = p.startswith("HEAD ")
            path = p.split()[-1]
            r = read_response(c, head_only=head)
            where = f"response {i} (to {p}): {r.raw[:160]!r}"
            if path == "/nope":
                self.assertEqual(r.status, 404, where)
                self.assertIn("close", conn_tokens(r), where)
            elif path == "/healthz":
                self.assertEqual((r.status, r.header("Content-Type")), (200, "application/json"), where)
                self.assertEqual(r.body, b"" if head else HEALTHZ_BODY, where)
            else:
                self.assertEqual((r.status, r.header("Content-Type")), (200, METRICS_TYPE), where)
                if not head:
                    self.assertTrue(r.body.startswith(b"# HELP wsreactor_"), where)
                    self.assertEqual(len(r.body), int(r.header("Content-Length")), where)
            if i < len(self.PLAN) - 1:
                self.assertNotIn("close", conn_tokens(r), where)
        self.assert_eof(c)

    def test_20_in_one_write_answered_in_order(self):
        srv, c = self.start_with_client()
        c.send(self.requests())
        self.check_answers(c)
        self.assert_serves(srv)
        self.stop_ok(srv)

    def test_20_split_at_odd_places_answered_in_order(self):
        srv, c = self.start_with_client()
        self.assertTrue(c.send_slowly(self.requests(), chunk=37, pause=0.002))
        self.check_answers(c)
        self.stop_ok(srv)

    def test_300_in_one_write_all_answered(self):
        # More than one loop round's budget: the rest is held and answered later.
        srv = self.start_server()
        c = self.client(srv, timeout=15)
        c.send(http_request("GET", "/healthz") * 300)
        for i in range(300):
            r = read_response(c)
            self.assertEqual((r.status, r.body), (200, HEALTHZ_BODY), f"response {i}")
        c.send(http_request("GET", "/healthz", headers=[("Connection", "close")]))
        self.assert_healthz(read_response(c), closes=True)
        self.end_closed(srv, c, serves=False)

    def test_head_healthz_has_content_length_15_and_no_body(self):
        srv, c = self.start_with_client()
        # HEAD then GET in one write: the GET's status line must follow the HEAD's head
        # at once, with no body bytes between.
        c.send(http_request("HEAD", "/healthz") + http_request("GET", "/healthz"))
        r = read_response(c, head_only=True)
        self.assertEqual((r.status, r.header("Content-Length")), (200, "15"), r.raw)
        self.assertEqual(r.header("Content-Type"), "application/json", r.raw)
        nxt = c.recv_exact(17)
        self.assertEqual(nxt, b"HTTP/1.1 200 OK\r\n", "bytes after the HEAD response's head")
        c.buf[:0] = nxt
        self.assert_healthz(read_response(c))
        self.stop_ok(srv)


# ========================================================================================
# 3. methods


class Methods(HttpCase):
    def check_405(self, method):
        srv, c = self.start_with_client()
        body = b"x=1" if method in ("POST", "PUT", "PATCH") else b""
        hdrs = [("Content-Length", str(len(body)))] if body else []
        c.send(http_request(method, "/healthz", headers=hdrs, body=body))
        r = read_response(c)
        self.assertEqual(r.status, 405, r.raw)
        self.assertEqual(r.header_all("Allow"), ["GET, HEAD"], r.raw)
        self.assertIn("close", conn_tokens(r), r.raw)
        self.end_closed(srv, c)

    def check_unknown(self, request):
        srv, c = self.start_with_client()
        c.send(request)
        data = self.read_to_eof(c, 10, f"{request[:40]!r}: the connection")
        self.assertRegex(data[:13], rb"^HTTP/1\.1 [45]\d\d ", f"{request[:40]!r} got {data[:200]!r}")
        self.assertEqual(data.count(b"HTTP/1.1 "), 1, f"more than one response: {data!r}")
        self.assert_serves(srv)
        self.stop_ok(srv)


add_cases(Methods, "405_with_allow", [(m.lower(), m) for m in
                                      ("POST", "PUT", "DELETE", "PATCH", "OPTIONS")],
          Methods.check_405)
add_cases(Methods, "unknown_method_4xx_or_5xx_and_close", [
    ("brew", http_request("BREW", "/healthz")),
    ("brew_on_metrics", http_request("BREW", "/metrics")),
    ("lowercase_get", http_request("get", "/healthz")),
    ("connect_authority", http_request("CONNECT", "127.0.0.1:80")),
    ("garbage", os.urandom(64).replace(b"\r\n", b"..") + b"\r\n\r\n"),
], Methods.check_unknown)


# ========================================================================================
# 4. bodies


class Bodies(HttpCase):
    def test_content_length_over_max_body_413_before_the_body(self):
        srv, c = self.start_with_client("--max-body", "1024")
        # 100 MB announced, 10 bytes sent: the 413 must come without the rest.
        r = self.get(c, headers=[("Content-Length", "100000000")], body=b"0123456789")
        self.assertEqual(r.status, 413, r.raw)
        self.assertIn("close", conn_tokens(r), r.raw)
        self.end_closed(srv, c)

    def test_content_length_1025_over_1024_gets_413(self):
        srv, c = self.start_with_client("--max-body", "1024")
        r = self.get(c, headers=[("Content-Length", "1025")])
        self.assertEqual(r.status, 413, r.raw)
        self.end_closed(srv, c, serves=False)

    def test_body_of_exactly_max_body_is_read_and_keeps_alive(self):
        srv, c = self.start_with_client("--max-body", "1024")
        body = os.urandom(1024)
        # The body is consumed exactly: the request behind it is a request of its own.
        c.send(http_request("GET", "/healthz", headers=[("Content-Length", "1024")], body=body)
               + http_request("GET", "/healthz"))
        self.assert_healthz(read_response(c))
        self.assert_healthz(read_response(c))
        self.stop_ok(srv)

    def test_chunked_body_over_max_body_gets_413(self):
        srv, c = self.start_with_client("--max-body", "1024")
        c.send(http_request("GET", "/healthz", headers=[("Transfer-Encoding", "chunked")]))
        sent = c.send(chunked(os.urandom(4000), 500))
        r = read_response(c)
        self.assertEqual(r.status, 413, f"(body write ok: {sent}) {r.raw!r}")
        self.assertIn("close", conn_tokens(r), r.raw)
        self.end_closed(srv, c)

    def test_chunked_one_huge_chunk_gets_413_before_its_end(self):
        # A single chunk announcing 16 MiB, of which 4000 bytes come: the 413 must come
        # once the limit is passed, not after 16 MiB.
        srv, c = self.start_with_client("--max-body", "1024")
        c.send(http_request("GET", "/healthz", headers=[("Transfer-Encoding", "chunked")])
               + b"1000000\r\n" + b"a" * 4000)
        r = read_response(c)
        self.assertEqual(r.status, 413, r.raw)
        self.end_closed(srv, c, serves=False)

    def test_chunked_body_within_max_body_is_read_and_keeps_alive(self):
        srv, c = self.start_with_client("--max-body", "1024")
        c.send(http_request("GET", "/healthz", headers=[("Transfer-Encoding", "chunked")])
               + chunked(os.urandom(1000), 300) + http_request("GET", "/healthz"))
        self.assert_healthz(read_response(c))
        self.assert_healthz(read_response(c))
        self.stop_ok(srv)

    def test_expect_100_continue_on_post_healthz_gets_405_not_100(self):
        # The daemon has no route taking POST: the 405 comes first, and no 100 Continue
        # invites a body that would not be read.
        srv, c = self.start_with_client()
        c.send(http_request("POST", "/healthz", headers=[("Content-Length", "10"),
                                                         ("Expect", "100-continue")]))
        r = read_response(c)
        self.assertEqual(r.status, 405, r.raw)
        self.assertTrue(r.raw.startswith(b"HTTP/1.1 405 "), r.raw)
        self.assertEqual(r.header("Allow"), "GET, HEAD", r.raw)
        self.end_closed(srv, c)

    def test_expect_100_continue_within_limits_gets_100_first(self):
        # GET /healthz takes a body (and ignores it): a client that waits for 100 Continue
        # gets it before the final answer, and only after sending the body the 200.
        srv, c = self.start_with_client("--max-body", "1024")
        c.send(http_request("GET", "/healthz", headers=[("Content-Length", "10"),
                                                        ("Expect", "100-continue")]))
        want = b"HTTP/1.1 100 Continue\r\n\r\n"
        self.assertEqual(c.recv_exact(len(want)), want)
        c.send(b"0123456789")
        self.assert_healthz(read_response(c))
        self.stop_ok(srv)

    def test_expect_100_continue_over_limit_gets_413_and_no_100(self):
        srv, c = self.start_with_client("--max-body", "1024")
        r = self.get(c, headers=[("Content-Length", "5000"), ("Expect", "100-continue")])
        self.assertTrue(r.raw.startswith(b"HTTP/1.1 413 "), r.raw)
        self.end_closed(srv, c, serves=False)

    def test_unknown_expectation_gets_417(self):
        srv, c = self.start_with_client()
        r = self.get(c, headers=[("Content-Length", "3"), ("Expect", "200-ok")])
        self.assertEqual(r.status, 417, r.raw)
        self.end_closed(srv, c)


    def test_unknown_expectation_without_a_body_gets_417(self):
        srv, c = self.start_with_client()
        r = self.get(c, headers=[("Expect", "foo")])
        self.assertEqual(r.status, 417, r.raw)
        self.end_closed(srv, c)

    def test_http10_expect_100_continue_gets_no_100(self):
        # HTTP/1.0 has no expectations: the header is ignored, the answer comes alone.
        srv, c = self.start_with_client("--max-body", "1024")
        r = self.get(c, version="HTTP/1.0",
                     headers=[("Content-Length", "10"), ("Expect", "100-continue")],
                     body=b"0123456789")
        self.assert_healthz(r, closes=True)
        self.end_closed(srv, c, serves=False)

# ========================================================================================
# 5. request smuggling shapes


class Smuggling(HttpCase):
    def check_400(self, request):
        srv, c = self.start_with_client()
        c.send(request)
        data = self.read_to_eof(c, 10)
        # Exactly one answer, a 400: the request hidden behind the body is never answered.
        self.assertTrue(data.startswith(b"HTTP/1.1 400 "), data[:200])
        self.assertEqual(data.count(b"HTTP/1.1 "), 1, f"more than one response: {data!r}")
        self.assertIn(b"\r\nConnection: close\r\n", data, data[:300])
        self.assert_serves(srv)
        self.stop_ok(srv)


SMUGGLED = http_request("GET", "/nope")
add_cases(Smuggling, "400", [
    ("content_length_and_transfer_encoding",
     http_request("GET", "/healthz", headers=[("Content-Length", "4"), ("Transfer-Encoding", "chunked")],
                  body=b"0\r\n\r\n" + SMUGGLED)),
    ("transfer_encoding_and_content_length",
     http_request("GET", "/healthz", headers=[("Transfer-Encoding", "chunked"), ("Content-Length", "40")],
                  body=b"0\r\n\r\n" + SMUGGLED)),
    ("two_different_content_lengths",
     http_request("GET", "/healthz", headers=[("Content-Length", "0"), ("Content-Length", "24")],
                  body=SMUGGLED)),
    ("two_content_lengths_in_one_header",
     http_request("GET", "/healthz", headers=[("Content-Length", "0, 24")], body=SMUGGLED)),
    ("negative_content_length",
     http_request("GET", "/healthz", headers=[("Content-Length", "-1")], body=SMUGGLED)),
    ("content_length_with_space_inside",
     http_request("GET", "/healthz", headers=[("Content-Length", "1 0")], body=SMUGGLED)),
    ("space_before_colon",
     http_request("GET", "/healthz", headers=["Content-Length : 24"], body=SMUGGLED)),
    ("chunked_not_last",
     http_request("GET", "/healthz", headers=[("Transfer-Encoding", "chunked, identity")],
                  body=b"0\r\n\r\n" + SMUGGLED)),
    ("bad_chunk_size",
     http_request("GET", "/healthz", headers=[("Transfer-Encoding", "chunked")],
                  body=b"zz\r\nhello\r\n0\r\n\r\n" + SMUGGLED)),
], Smuggling.check_400)


# ========================================================================================
# 6. /metrics


class Metrics(HttpCase):
    def test_content_type_and_parse(self):
        srv = self.start_server()
        r, fams = scrape(srv.host, srv.port)
        self.assertEqual(r.status, 200, r.raw[:200])
        self.assertEqual(r.header("Content-Type"), METRICS_TYPE)
        self.assertEqual(fams["wsreactor_http_requests"].type, "counter")
        self.assertEqual(fams["wsreactor_handshakes_failed"].type, "counter")
        self.assertEqual(fams["wsreactor_closes"].type, "counter")
        self.stop_ok(srv)

    def test_http_requests_total_counts_exactly(self):
        srv = self.start_server()
        _, before = scrape(srv.host, srv.port)
        c = self.client(srv)
        n = 37
        for _ in range(n):
            self.assert_healthz(self.get(c))
        c.send(http_request("HEAD", "/healthz") * 3)
        for _ in range(3):
            self.assertEqual(read_response(c, head_only=True).status, 200)
        _, after = scrape(srv.host, srv.port)
        # The first scrape is answered (and counted) after its own figures were rendered.
        delta = sample(after, "wsreactor_http_requests_total") - sample(before, "wsreactor_http_requests_total")
        self.assertEqual(delta, n + 3 + 1, f"{n} GET + 3 HEAD + 1 scrape")
        self.stop_ok(srv)

    def test_closes_total_1000_after_a_clean_close(self):
        srv = self.start_server()
        _, before = scrape(srv.host, srv.port)
        c = self.client(srv)
        c.handshake()
        c.echo(OP_TEXT, b"hello")
        c.send_close(1000)
        c.expect_close(1000, reply=False)
        key = {"code": "1000"}
        b = sample(before, "wsreactor_closes_total", key)
        got = [b]

        def counted():
            got[0] = sample(scrape(srv.host, srv.port)[1], "wsreactor_closes_total", key)
            return got[0] != b
        wait_for(counted, 5, step=0.1)
        self.assertEqual(got[0], b + 1, 'wsreactor_closes_total{code="1000"}')
        self.stop_ok(srv)

    def test_handshakes_failed_403_after_an_origin_refusal(self):
        srv = self.start_server("--allowed-origin", "https://app.example")
        _, before = scrape(srv.host, srv.port)
        c = self.client(srv)
        r = c.handshake(headers={"Origin": "https://evil.example"}, expect_status=403)
        self.assertEqual(r.status, 403)
        _, after = scrape(srv.host, srv.port)
        key = {"status": "403"}
        self.assertEqual(sample(after, "wsreactor_handshakes_failed_total", key)
                         - sample(before, "wsreactor_handshakes_failed_total", key), 1)
        self.assertEqual(sample(after, "wsreactor_handshakes_completed_total")
                         - sample(before, "wsreactor_handshakes_completed_total"), 0)
        self.stop_ok(srv)


if __name__ == "__main__":
    run_tap(budget=115)
