#!/usr/bin/python3
"""Operating the daemon: --check-config, --print-config, --log-format, the HTTP access log
and SIGHUP reloads of the configuration.

- --check-config: "configuration OK" and exit 0 for good settings; exit 2 with a line
  that names the problem for a bad listen address, a missing certificate, a missing
  users file, a missing JWT key, a bad value in the file (with file:line), an unknown
  key; nothing listens meanwhile.
- --print-config: the effective values (file < environment < flags), which load back
  to the same output; secrets (api-key, jwt-secret, auth-password) shown as <set> and
  their values nowhere in the output; namespaces as sections.
- --log-format json: every line of a run is one JSON object {ts, level, msg}.
- Access log: one line per answer of an HTTP route with method, path, status, bytes and
  client address, without the query string (a token there stays out of the log).
- SIGHUP: the file, environment and flags are read again; the log level, log format,
  API keys and namespaces change live (a key rotation: the old key gets 401, the new
  one 200; a namespace turning subscribe=users refuses anonymous subscribers), one
  "reload:" line per change, secrets as "changed"; settings that need a restart are
  logged as such and not applied; a broken file is logged and everything in use stays.
"""
import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from httputil import free_port  # noqa: E402
from wsclient import (HAS_JWT, HAS_TLS, Server, require_features, run_tap, server_binary,  # noqa: E402
                      server_env, wait_for)

import websockets  # noqa: E402

SECRET_KEY = "key-" + os.urandom(8).hex()
NEW_KEY = "key-" + os.urandom(8).hex()
JWT_SECRET = "jwt-" + os.urandom(8).hex()
PASSWORD = "pw-" + os.urandom(8).hex()
BROKER_PASSWORD = "redis-" + os.urandom(8).hex()
BROKER = f"redis://ops:{BROKER_PASSWORD}@127.0.0.1:1/3"  # never connected to: only printed


def run(*args, env=None, timeout=20, unsupported_ok=False):
    """The binary with args; (exit status, stdout, stderr). Skips the test when args need
    what this build lacks, unless unsupported_ok (a test of that refusal)."""
    if not unsupported_ok:
        require_features(args)
    p = subprocess.run([server_binary(), *args], capture_output=True, text=True, env=server_env(env),
                       timeout=timeout, stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout, p.stderr


def ws_exchange(port, message=None):
    """Opens /ws, reads connection:established, sends message (a dict) if given and
    returns the answer as a dict (else the established envelope); closes normally."""
    async def go():
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws") as ws:
            first = json.loads(await asyncio.wait_for(ws.recv(), 5))
            if message is None:
                return first
            await ws.send(json.dumps(message))
            return json.loads(await asyncio.wait_for(ws.recv(), 5))
    return asyncio.run(go())


def write(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def http(port, path, key=None, method="GET", body=None):
    """(status, body) of a request to the daemon."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method, data=body)
    if key:
        req.add_header("Authorization", "Bearer " + key)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class ConfigFile(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory(prefix="wsr-ops-")
        self.path = os.path.join(self.dir.name, "wsreactor.ini")

    def tearDown(self):
        self.dir.cleanup()


class CheckConfig(ConfigFile):
    def test_good_settings_are_ok(self):
        port = free_port()
        write(self.path, f"listen = 127.0.0.1:{port}\nmax-message = 64k\n[namespace agents]\nsubscribe = users\n")
        rc, out, err = run("--config", self.path, "--check-config")
        self.assertEqual(rc, 0, err)
        self.assertIn("configuration OK", out)
        self.assertNotIn("listening", out + err)
        # nothing was bound: the port is still free
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))

    def assert_refused(self, args, needle, env=None, unsupported_ok=False):
        rc, out, err = run(*args, "--check-config", env=env, unsupported_ok=unsupported_ok)
        self.assertEqual(rc, 2, out + err)
        self.assertNotIn("configuration OK", out)
        self.assertIn(needle, err)
        # errors only: no start or shutdown lines that would read as if it had served
        self.assertNotIn("shutdown complete", err)

    def test_read_buffer_below_a_tls_record(self):
        self.assert_refused(["--read-buffer", "8k"], "read-buffer")

    def test_bad_listen_address(self):
        self.assert_refused(["--listen", "999.1.1.1:80"], "999.1.1.1:80")

    def test_missing_certificate(self):
        missing = os.path.join(self.dir.name, "nope.pem")
        self.assert_refused(["--listen-tls", "127.0.0.1:0", "--tls-cert", missing, "--tls-key", missing], missing)

    @unittest.skipIf(HAS_TLS, "this build has TLS")
    def test_tls_refused_without_tls(self):
        self.assert_refused(["--listen-tls", "127.0.0.1:0"], "this build has no TLS support", unsupported_ok=True)

    @unittest.skipIf(HAS_JWT, "this build has JWT")
    def test_jwt_refused_without_jwt(self):
        self.assert_refused(["--jwt-secret", "x" * 32], "this build has no JWT support", unsupported_ok=True)

    def test_missing_users_file(self):
        missing = os.path.join(self.dir.name, "users")
        self.assert_refused(["--users-file", missing], missing)

    def test_missing_jwt_key(self):
        missing = os.path.join(self.dir.name, "jwt.pem")
        self.assert_refused(["--jwt-public-key", missing], missing)

    def test_bad_value_names_file_and_line(self):
        write(self.path, "log-level = info\nmax-message = lots\n")
        self.assert_refused(["--config", self.path], f"{self.path}:2")

    def test_unknown_key(self):
        write(self.path, "no-such-setting = 1\n")
        self.assert_refused(["--config", self.path], "no-such-setting")

    def test_bad_environment_value(self):
        self.assert_refused([], "WSR_MAX_MESSAGE", env={"WSR_MAX_MESSAGE": "-1"})


class PrintConfig(ConfigFile):
    def test_layers_and_round_trip(self):
        write(self.path, "max-message = 64k\nmax-body = 4m\nrate-publish = 20\n"
                         "[namespace agents]\nsubscribe = users\nhistory-size = 7\n")
        # the single user comes from the environment only (a password in argv is visible in ps)
        env = {"WSR_MAX_BODY": "2m", "WSR_API_KEYS": SECRET_KEY, "WSR_AUTH_USER": "ops", "WSR_AUTH_PASSWORD": PASSWORD}
        rc, out, err = run("--config", self.path, "--print-config", "--rate-publish", "30",
                           "--jwt-secret", JWT_SECRET, "--broker", BROKER,
                           "--listen", "127.0.0.1:7001", "--listen", "127.0.0.1:7002", env=env)
        self.assertEqual(rc, 0, err)
        lines = out.splitlines()
        self.assertIn("max-message = 64k", lines)   # file
        self.assertIn("max-body = 2m", lines)       # environment over file
        self.assertIn("rate-publish = 30", lines)   # flag over file
        self.assertIn("listen = 127.0.0.1:7001", lines)
        self.assertIn("listen = 127.0.0.1:7002", lines)
        self.assertIn("log-level = info", lines)    # a default
        for secret in ("api-key", "jwt-secret", "auth-password", "broker"):
            self.assertIn(f"{secret} = <set>", lines)
        for value in (SECRET_KEY, JWT_SECRET, PASSWORD, BROKER_PASSWORD):
            self.assertNotIn(value, out + err)
        self.assertIn("[namespace agents]", lines)
        section = lines[lines.index("[namespace agents]"):]
        self.assertIn("subscribe = users", section)
        self.assertIn("history-size = 7", section)

        # loaded back (secrets written back as the comment says), the same settings
        back = out.replace("api-key = <set>", f"api-key = {SECRET_KEY}")
        back = back.replace("jwt-secret = <set>", f"jwt-secret = {JWT_SECRET}")
        back = back.replace("auth-password = <set>", f"auth-password = {PASSWORD}")
        back = back.replace("broker = <set>", f"broker = {BROKER}")
        again = os.path.join(self.dir.name, "again.ini")
        write(again, back)
        rc, out2, err2 = run("--config", again, "--print-config")
        self.assertEqual(rc, 0, err2)
        self.assertEqual(out2, out)
        rc, out3, err3 = run("--config", again, "--check-config")
        self.assertEqual(rc, 0, out3 + err3)

    def test_version(self):
        rc, out, _ = run("--version")
        self.assertEqual(rc, 0)
        self.assertRegex(out, r"^wsreactor \d+\.\d+\.\d+")


class JsonLogs(unittest.TestCase):
    def test_every_line_is_a_json_object(self):
        srv = Server("--log-format", "json", "--api-key", SECRET_KEY).start()
        try:
            self.assertEqual(http(srv.port, "/healthz")[0], 200)
            self.assertEqual(http(srv.port, "/api/channels", key="wrong")[0], 401)
            self.assertEqual(ws_exchange(srv.port)["type"], "connection:established")
            wait_for(lambda: "closed" in srv.log(), 5)
        finally:
            self.assertEqual(srv.stop(), 0, srv.log_tail())
        lines = [l for l in srv.log().splitlines() if l]
        srv.remove_log()
        self.assertGreaterEqual(len(lines), 5)
        for line in lines:
            obj = json.loads(line)
            self.assertEqual(set(obj), {"ts", "level", "msg"}, line)
            self.assertRegex(obj["ts"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            self.assertIn(obj["level"], ("error", "warn", "info", "debug"))
        msgs = [json.loads(l)["msg"] for l in lines]
        self.assertTrue(any(m.startswith("listening on") for m in msgs), msgs)
        self.assertTrue(any(m.startswith("GET /healthz 200") for m in msgs), msgs)


class AccessLog(unittest.TestCase):
    def test_route_answers_are_logged_without_query(self):
        srv = Server("--api-key", SECRET_KEY).start()
        try:
            token = "tok-" + os.urandom(6).hex()
            self.assertEqual(http(srv.port, f"/healthz?token={token}")[0], 200)
            self.assertEqual(http(srv.port, "/api/nothing", key=SECRET_KEY)[0], 404)
            self.assertEqual(http(srv.port, "/api/publish", key=SECRET_KEY, method="POST",
                                  body=b'{"channel":"a","payload":1}')[0], 200)
            self.assertEqual(http(srv.port, "/no/such/route")[0], 404)
            wait_for(lambda: "POST /api/publish" in srv.log(), 5)
            log = srv.log()
            self.assertRegex(log, r"GET /healthz 200 \d+ bytes \d+ ms from 127\.0\.0\.1:\d+")
            self.assertRegex(log, r"GET /api/nothing 404 \d+ bytes \d+ ms from 127\.0\.0\.1:\d+")
            self.assertRegex(log, r"POST /api/publish 200 \d+ bytes \d+ ms from 127\.0\.0\.1:\d+")
            self.assertNotIn(token, log)
            self.assertNotIn(SECRET_KEY, log)
        finally:
            self.assertEqual(srv.stop(), 0, srv.log_tail())
            srv.remove_log()


class Reload(ConfigFile):
    """SIGHUP re-reads the --config file; its listen line is the same file's."""

    def start(self, text):
        self.port = free_port()
        self.base = f"listen = 127.0.0.1:{self.port}\n"
        write(self.path, self.base + text)
        srv = Server("--config", self.path)
        srv.listen_args = lambda: []
        return srv.start()

    def hup(self, srv, text, *expect):
        """Writes the file, sends SIGHUP and waits until the log shows every line of
        expect (a reload logs them one by one); returns the log since the signal."""
        before = len(srv.log())
        write(self.path, self.base + text)
        srv.proc.send_signal(signal.SIGHUP)
        self.assertTrue(wait_for(lambda: all(e in srv.log()[before:] for e in expect), 10), srv.log_tail())
        return srv.log()[before:]

    def anonymous_subscribe(self, port, channel):
        return ws_exchange(port, {"type": "subscribe", "channel": channel, "id": "s"})

    def test_live_changes_and_restart_needed(self):
        srv = self.start(f"api-key = {SECRET_KEY}\nlog-level = info\n")
        try:
            self.assertEqual(http(srv.port, "/api/channels", key=SECRET_KEY)[0], 200)
            self.assertEqual(self.anonymous_subscribe(srv.port, "agents:one")["type"], "subscribed")

            out = self.hup(srv, f"api-key = {NEW_KEY}\nlog-level = warn\nmax-body = 2m\nbroker = {BROKER}\n"
                                "[namespace agents]\nsubscribe = users\n",
                           "reload: api-key changed", "reload: log-level info -> warn", "reload: namespace",
                           "reload: max-body 1m -> 2m: restart needed", "reload: broker changed: restart needed")
            self.assertNotIn(BROKER_PASSWORD, srv.log())
            self.assertNotIn(SECRET_KEY, out)
            self.assertNotIn(NEW_KEY, out)
            # the key rotated
            self.assertEqual(http(srv.port, "/api/channels", key=SECRET_KEY)[0], 401)
            self.assertEqual(http(srv.port, "/api/channels", key=NEW_KEY)[0], 200)
            # the namespace now wants users
            reply = self.anonymous_subscribe(srv.port, "agents:one")
            self.assertEqual(reply["type"], "error", reply)
            self.assertIn(reply["payload"]["code"], ("unauthorized", "forbidden"))
            # max-body was not applied: a 1.5 MiB body is still too large
            status, _ = http(srv.port, "/api/publish", key=NEW_KEY, method="POST", body=b"x" * (3 << 19))
            self.assertEqual(status, 413)
            # the level is warn now: no access log lines after the reload
            n = len(srv.log())
            self.assertEqual(http(srv.port, "/healthz")[0], 200)
            time.sleep(0.3)
            self.assertNotIn("GET /healthz", srv.log()[n:])
        finally:
            self.assertEqual(srv.stop(), 0, srv.log_tail())
            srv.remove_log()

    def test_broken_file_keeps_everything(self):
        srv = self.start(f"api-key = {SECRET_KEY}\nrate-publish = 500\n")
        try:
            out = self.hup(srv, f"api-key = {NEW_KEY}\nrate-publish = lots\n", "the running configuration is kept")
            self.assertIn(f"{self.path}:3", out)
            self.assertNotIn("reload: api-key changed", out)
            self.assertEqual(http(srv.port, "/api/channels", key=SECRET_KEY)[0], 200)
            self.assertEqual(http(srv.port, "/api/channels", key=NEW_KEY)[0], 401)
            # a file that cannot be read at all: the same
            os.unlink(self.path)
            srv.proc.send_signal(signal.SIGHUP)
            self.assertTrue(wait_for(lambda: srv.log().count("the running configuration is kept") >= 2, 5))
            self.assertEqual(http(srv.port, "/api/channels", key=SECRET_KEY)[0], 200)
            self.assertTrue(srv.alive())
        finally:
            self.assertEqual(srv.stop(), 0, srv.log_tail())
            srv.remove_log()

    def test_log_format_switches_live(self):
        srv = self.start("log-format = text\n")
        try:
            self.hup(srv, "log-format = json\n", "reload: log-format text -> json")
            n = len(srv.log())
            self.assertEqual(http(srv.port, "/healthz")[0], 200)
            self.assertTrue(wait_for(lambda: "GET /healthz" in srv.log()[n:], 5))
            line = next(l for l in srv.log()[n:].splitlines() if "GET /healthz" in l)
            self.assertTrue(json.loads(line)["msg"].startswith("GET /healthz 200"))
        finally:
            self.assertEqual(srv.stop(), 0, srv.log_tail())
            srv.remove_log()


if __name__ == "__main__":
    run_tap(budget=110)
