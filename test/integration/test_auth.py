#!/usr/bin/python3
"""Authentication and authorization on /ws, end to end against the real daemon.

Upgrade credentials (Basic against WSR_AUTH_USER/WSR_AUTH_PASSWORD or a --users-file of
bcrypt, sha512-crypt and yescrypt hashes; Bearer and ?token= JWTs with HS*, RS* and ES*
keys, aud, iss, exp, nbf, sub, alg none and the HMAC-with-the-public-key confusion), the
401 answers and their WWW-Authenticate, --auth-required, --auth-timeout, the in-band
`auth` message (ack, 4001, 4002, 4003, bad_request), token expiry (4002) and refresh,
namespaces (anyone/users/granted/backend, presence, join-leave, history-size), strikes
(--max-strikes: 1008), the publish and handshake rate limits, the users file re-read on
SIGHUP and MD5/DES hashes refused at start.

Every test starts its own daemon on an ephemeral loopback port and expects exit status
0 on SIGTERM (which also catches sanitizer reports). "Nothing arrives" is checked with
a ping barrier (test_messaging.Peer.barrier), never a sleep; sleeps only wait for the
deadline cases, which then wait for the close with a bound of a few seconds.
"""

import asyncio
import base64
import hashlib
import hmac
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from httputil import http_request, read_response  # noqa: E402
from test_messaging import HEX32, Peer, fresh_channel, run  # noqa: E402
from wsclient import OwnServerCase, RawClient, run_tap  # noqa: E402

import jwt  # noqa: E402
import websockets  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, rsa  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt  # noqa: E402

SECRET = "s3cret-" + "k" * 40          # long enough not to draw the short-secret warning
OTHER_SECRET = "other-" + "k" * 40
API_KEY = "backend-key"
BASIC_REALM = 'Basic realm="wsreactor", charset="UTF-8"'
BEARER_REALM = 'Bearer realm="wsreactor"'
BEARER_INVALID = 'Bearer realm="wsreactor", error="invalid_token"'


# ----------------------------------------------------------------------------------------
# credentials


def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def token(sub="alice", key=SECRET, alg="HS256", ttl=None, **claims):
    """A signed JWT; ttl: seconds until exp (negative: expired). sub=None leaves it out."""
    body = dict(claims)
    if sub is not None:
        body["sub"] = sub
    if ttl is not None:
        body["exp"] = int(time.time()) + ttl
    return jwt.encode(body, key, algorithm=alg)


def raw_token(header, claims, sign):
    """A JWT assembled by hand (PyJWT refuses to make the malicious ones): sign(bytes)
    gives the signature bytes of the signing input."""
    head = b64u(json.dumps(header).encode())
    body = b64u(json.dumps(claims).encode())
    return f"{head}.{body}.{b64u(sign(f'{head}.{body}'.encode()))}"


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def bearer(tok):
    return "Bearer " + tok


class Keys:
    """Throwaway RSA and EC key pairs, the public halves as PEM files in a temp dir."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="wsr-auth-")
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.rsa_other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.rsa_pub_pem = self._write("rsa.pem", self.rsa)
        self.ec_pub_pem = self._write("ec.pem", self.ec)

    def _write(self, name, key):
        pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
        path = os.path.join(self.dir, name)
        with open(path, "wb") as f:
            f.write(pem)
        return path, pem

    @staticmethod
    def priv(key):
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())


_keys = None


def keys():
    global _keys
    if _keys is None:
        _keys = Keys()
    return _keys


CRYPT_ALPHABET = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def yescrypt(password):
    salt = "".join(CRYPT_ALPHABET[b % 64] for b in os.urandom(16))
    h = crypt.crypt(password, "$y$j9T$" + salt)
    assert h and h.startswith("$y$"), f"this libcrypt made no yescrypt hash: {h!r}"
    return h


def htpasswd(*args):
    subprocess.run(["htpasswd", *args], check=True, capture_output=True, timeout=30)


# ----------------------------------------------------------------------------------------
# test base


class AuthCase(OwnServerCase):
    """Each test starts its own daemon(s) with daemon() and ends with stop_ok()."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="wsr-auth-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def daemon(self, *args, env=None):
        return self.start_server(*args, env=env)

    def path(self, name):
        return os.path.join(self.tmp, name)

    # -- raw upgrades: status, headers, body ---------------------------------------------
    def upgrade(self, srv, auth=None, path="/ws"):
        """One upgrade request with an optional Authorization value: (client, response,
        the connection:established message or None)."""
        c = RawClient(srv.host, srv.port)
        self.addCleanup(c.close)
        headers = {"Authorization": auth} if auth is not None else {}
        r = c.handshake(path=path, headers=headers, expect_status=None)
        est = None
        if r.status == 101 and path.startswith("/ws"):
            _, data = c.recv_message()
            est = json.loads(data)
            self.assertEqual(est.get("type"), "connection:established", data)
            self.assertRegex(est["payload"]["clientId"], HEX32, data)
        return c, r, est

    def assert_user(self, srv, auth, user, path="/ws", bug=""):
        """The upgrade is accepted and connection:established names user."""
        c, r, est = self.upgrade(srv, auth, path)
        self.assertEqual(r.status, 101, f"credential {auth!r} path {path!r}: {r.raw!r}")
        self.assertIn("user", est["payload"], est)
        self.assertEqual(est["payload"]["user"], user,
                         f"{bug}connection:established user for credential {auth!r} path {path!r}")
        c.close()

    def assert_accepted(self, srv, auth):
        """The upgrade is accepted (101 and connection:established), whoever it names."""
        c, r, est = self.upgrade(srv, auth)
        self.assertEqual(r.status, 101, f"credential {auth!r}: {r.raw!r}")
        c.close()

    def assert_401(self, srv, auth, www, path="/ws", what=""):
        """The upgrade gets 401 with exactly the WWW-Authenticate values www and a JSON
        error body with code unauthorized; returns the response."""
        c, r, _ = self.upgrade(srv, auth, path)
        ctx = f"{what} credential {auth!r} path {path[:60]!r}: {r.raw[:400]!r}"
        self.assertEqual(r.status, 401, ctx)
        self.assertEqual(sorted(r.header_all("WWW-Authenticate")), sorted(www), ctx)
        self.assertEqual(r.header("Content-Type"), "application/json", ctx)
        body = json.loads(r.body)
        self.assertEqual(set(body), {"error"}, ctx)
        self.assertEqual(body["error"].get("code"), "unauthorized", ctx)
        self.assertIsInstance(body["error"].get("message"), str, ctx)
        c.close()
        return r

    # -- websockets peers ----------------------------------------------------------------
    async def peer(self, srv, auth=None, user=None, query="", bug=""):
        headers = {"Authorization": auth} if auth is not None else {}
        ws = await websockets.connect(srv.uri("/ws" + query), extra_headers=headers,
                                      compression=None, open_timeout=5, close_timeout=2,
                                      ping_interval=None, max_size=None)
        p = Peer(self, ws)
        raw, msg = await p.expect("connection:established")
        self.assertEqual(msg["payload"].get("user"), user, bug + raw)
        p.id = msg["payload"]["clientId"]
        return p

    async def closed(self, p, timeout=5):
        """Every message until the server closes p: (messages, close code, reason)."""
        msgs = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            while True:
                left = deadline - loop.time()
                if left <= 0:
                    raise asyncio.TimeoutError
                msgs.append(json.loads(await asyncio.wait_for(p.ws.recv(), left)))
        except asyncio.TimeoutError:
            self.fail(f"connection still open after {timeout} s; received {msgs}")
        except websockets.ConnectionClosed as e:
            self.assertIsNotNone(e.rcvd, f"TCP closed without a close frame after {msgs}")
            return msgs, e.rcvd.code, e.rcvd.reason

    async def ask(self, p, msg, type_):
        """Sends msg (with its id) and expects the answer type_ correlated to it."""
        await p.send(msg)
        raw, got = await p.expect(type_)
        self.assertEqual(got.get("correlationId"), msg["id"], raw)
        return got

    async def publish_subscribed(self, p, msg):
        """p publishes msg on a channel it is subscribed to: its ack and its own copy
        come in either order; returns the copy."""
        await p.send(msg)
        got = {}
        for _ in range(2):
            raw, m = await p.recv()
            self.assertNotIn(m["type"], got, raw)
            got[m["type"]] = m
        self.assertEqual(set(got), {"ack", "message"}, got)
        self.assertEqual(got["ack"].get("correlationId"), msg["id"], got)
        return got["message"]

    async def refused(self, p, msg, code):
        """msg gets error code (correlated) and the connection stays."""
        await p.send(msg)
        await p.expect_error(code, msg.get("id"))

    def api_publish(self, srv, body):
        c = RawClient(srv.host, srv.port)
        try:
            data = json.dumps(body).encode()
            c.send(http_request("POST", "/api/publish", body=data, headers=[
                ("Authorization", f"Bearer {API_KEY}"), ("Content-Type", "application/json"),
                ("Content-Length", str(len(data))), ("Connection", "close")]))
            r = read_response(c)
            return r.status, json.loads(r.body)
        finally:
            c.close()


def sub(ch, id_="s", since=None):
    m = {"type": "subscribe", "channel": ch, "id": id_}
    if since is not None:
        m["payload"] = {"since": since}
    return m


def pub(ch, payload, id_="p"):
    return {"type": "publish", "channel": ch, "payload": payload, "id": id_}


def auth_msg(tok, id_="a1"):
    return {"type": "auth", "id": id_, "payload": {"token": tok}}


# ----------------------------------------------------------------------------------------
# Basic with WSR_AUTH_USER / WSR_AUTH_PASSWORD


ENV_USER = {"WSR_AUTH_USER": "alice", "WSR_AUTH_PASSWORD": "pa:ss wörd"}


# Found by this file: basic() in src/msg/upgrade.cpp wipes the decoded credentials
# (OPENSSL_cleanse(buf)) before auth_identity_new(user, ...) reads the user out of them.
ENV_USER_BUG = ("BUG: a WSR_AUTH_USER login is named '' (src/msg/upgrade.cpp basic(): "
                "OPENSSL_cleanse(buf) runs before auth_identity_new(user) reads user out of buf): ")


class BasicEnv(AuthCase):
    def test_basic_good_names_the_user(self):
        """The env user is named in connection:established, presence and join/leave."""
        srv = self.daemon(env=ENV_USER)
        self.assert_user(srv, basic("alice", "pa:ss wörd"), "alice", bug=ENV_USER_BUG)

        async def go():
            ch = fresh_channel("room")
            a = await self.peer(srv)
            await self.ask(a, sub(ch), "subscribed")
            b = await self.peer(srv, basic("alice", "pa:ss wörd"), "alice", bug=ENV_USER_BUG)
            await self.ask(b, sub(ch), "subscribed")
            _, j = await a.expect("join")
            self.assertEqual(j["payload"], {"clientId": b.id, "user": "alice"}, ENV_USER_BUG)
            await a.ws.close()
            await b.ws.close()
        run(go(), 20)
        self.stop_ok(srv)

    def test_basic_wrong_password_and_unknown_user_same_401(self):
        srv = self.daemon(env=ENV_USER)
        wrong = self.assert_401(srv, basic("alice", "pa:ss word"), [BASIC_REALM], what="wrong password")
        unknown = self.assert_401(srv, basic("mallory", "pa:ss wörd"), [BASIC_REALM], what="unknown user")
        self.assertEqual((wrong.status, wrong.body), (unknown.status, unknown.body))
        self.assert_401(srv, basic("alice", ""), [BASIC_REALM], what="empty password")
        self.assert_401(srv, basic("alic", "pa:ss wörd"), [BASIC_REALM], what="user prefix")
        self.stop_ok(srv)

    def test_unconfigured_or_malformed_scheme_401(self):
        srv = self.daemon(env=ENV_USER)
        for auth in [bearer(token()), "Digest username=\"alice\"", "Basic !!!notbase64",
                     "Basic " + base64.b64encode(b"no-colon").decode(), "Basic"]:
            self.assert_401(srv, auth, [BASIC_REALM], what="unconfigured or malformed")
        self.stop_ok(srv)

    def test_no_credential_is_anonymous(self):
        srv = self.daemon(env=ENV_USER)
        self.assert_user(srv, None, None)
        self.stop_ok(srv)

    def test_auth_required_refuses_anonymous(self):
        srv = self.daemon("--auth-required", "yes", env=ENV_USER)
        self.assert_401(srv, None, [BASIC_REALM], what="anonymous with --auth-required yes")
        self.assert_accepted(srv, basic("alice", "pa:ss wörd"))
        self.stop_ok(srv)


# ----------------------------------------------------------------------------------------
# --users-file


class UsersFile(AuthCase):
    def write_users(self, name, lines):
        path = self.path(name)
        with open(path, "w") as f:
            f.write("".join(l + "\n" for l in lines))
        return path

    def test_bcrypt_sha512_yescrypt_users(self):
        path = self.path("users")
        htpasswd("-B", "-c", "-b", path, "alice", "alice-pw")
        with open(path, "a") as f:
            f.write("bob:" + crypt.crypt("bob-pw", crypt.mksalt(crypt.METHOD_SHA512)) + "\n")
            f.write("carol:" + yescrypt("carol-pw") + "\n")
        srv = self.daemon("--users-file", path)
        for user in ("alice", "bob", "carol"):
            self.assert_user(srv, basic(user, f"{user}-pw"), user)
        www = [BASIC_REALM]
        wrong = self.assert_401(srv, basic("bob", "alice-pw"), www, what="wrong password")
        unknown = self.assert_401(srv, basic("dave", "dave-pw"), www, what="unknown user")
        self.assertEqual((wrong.status, wrong.body), (unknown.status, unknown.body))
        self.assert_401(srv, basic("carol", "carol-pW"), www, what="yescrypt wrong password")
        self.stop_ok(srv)

    def refused_at_start(self, flag, what):
        path = self.path("users")
        htpasswd("-B", "-c", "-b", path, "alice", "alice-pw")
        htpasswd(flag, "-b", path, "bob", "bob-pw")        # line 2
        srv = self.new_server("--users-file", path)
        with self.assertRaises(RuntimeError, msg=f"daemon started with a {what} hash") as cm:
            srv.start()
        why = str(cm.exception)    # start() puts the log's tail in it
        self.assertIn("server exited with", why, f"{what} hash: the daemon kept running")
        self.assertIsNotNone(srv.returncode, f"{what} hash: still running")
        self.assertNotEqual(srv.returncode, 0, f"{what} hash: exit status")
        self.assertIn(f"{path}:2", why, f"{what} hash: no log line naming file:line")

    def test_md5_apr1_refused_at_start(self):
        self.refused_at_start("-m", "MD5 $apr1$")

    def test_des_refused_at_start(self):
        self.refused_at_start("-d", "DES")

    def test_sighup_reload(self):
        path = self.path("users")
        htpasswd("-B", "-c", "-b", path, "alice", "alice-pw")
        srv = self.daemon("--users-file", path)
        self.assert_user(srv, basic("alice", "alice-pw"), "alice")
        self.assert_401(srv, basic("bob", "bob-pw"), [BASIC_REALM], what="bob before reload")
        # a new file (rename over, as editors do) adding bob
        tmp = path + ".new"
        shutil.copy(path, tmp)
        htpasswd("-B", "-b", tmp, "bob", "bob-pw")
        os.rename(tmp, path)
        srv.send_signal(signal.SIGHUP)
        ok = False
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not ok:
            _, r, est = self.upgrade(srv, basic("bob", "bob-pw"))
            ok = r.status == 101
            if not ok:
                time.sleep(0.05)
        self.assertTrue(ok, "bob still refused 5 s after SIGHUP with him in the users file")
        self.assertEqual(est["payload"]["user"], "bob")
        self.assert_user(srv, basic("alice", "alice-pw"), "alice")
        # garbage: the old users stay
        with open(path, "w") as f:
            f.write("this is not a users file\nalice:$apr1$xyz$abc\n\x00\x01\n")
        said = f"users file {path}:"
        before = srv.log().count(said)
        srv.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and srv.log().count(said) == before:
            time.sleep(0.05)
        self.assertGreater(srv.log().count(said), before,
                           f"no '{said}N: ...' line about the broken users file within 5 s of SIGHUP")
        self.assertTrue(srv.alive(), "daemon died on SIGHUP with a broken users file")
        self.assert_user(srv, basic("alice", "alice-pw"), "alice")
        self.assert_user(srv, basic("bob", "bob-pw"), "bob")
        self.stop_ok(srv)


# ----------------------------------------------------------------------------------------
# JWT at the upgrade


class JwtUpgrade(AuthCase):
    def test_hs256_384_512_header_and_query(self):
        srv = self.daemon("--jwt-secret", SECRET)
        self.assert_user(srv, bearer(token("alice")), "alice")
        self.assert_user(srv, bearer(token("bob", alg="HS384", ttl=60)), "bob")
        self.assert_user(srv, bearer(token("carol", alg="HS512")), "carol")
        self.assert_user(srv, None, "dave", path="/ws?token=" + token("dave", ttl=60))
        self.assert_user(srv, None, None)
        self.stop_ok(srv)

    def test_bad_tokens_401_invalid_token(self):
        srv = self.daemon("--jwt-secret", SECRET)
        now = int(time.time())
        good = token("alice")
        h, b, s = good.split(".")
        forged_body = b64u(json.dumps({"sub": "root"}).encode())
        bad = {
            "other secret": token("alice", key=OTHER_SECRET),
            "expired": token("alice", ttl=-30),
            "nbf in the future": token("alice", nbf=now + 120),
            "no sub": token(None, ttl=60),
            "alg none": raw_token({"alg": "none", "typ": "JWT"}, {"sub": "alice"}, lambda m: b""),
            "alg none with a signature": raw_token({"alg": "none"}, {"sub": "alice"},
                                                   lambda m: hmac.new(SECRET.encode(), m, hashlib.sha256).digest()),
            "payload swapped": f"{h}.{forged_body}.{s}",
            "garbage": "not.a.token",
            "two parts": f"{h}.{b}",
        }
        for what, tok in bad.items():
            with self.subTest(what):
                self.assert_401(srv, bearer(tok), [BEARER_INVALID], what=what)
                self.assert_401(srv, None, [BEARER_INVALID], path="/ws?token=" + tok, what=what + " (query)")
        # Basic is not configured here: the scheme is refused, with only the Bearer challenge
        self.assert_401(srv, basic("alice", "x"), [BEARER_REALM], what="Basic without a password source")
        self.stop_ok(srv)

    def test_both_sources_both_challenges(self):
        srv = self.daemon("--jwt-secret", SECRET, env=ENV_USER)
        self.assert_401(srv, basic("alice", "nope"), [BASIC_REALM, BEARER_REALM], what="bad Basic")
        self.assert_401(srv, bearer(token(key=OTHER_SECRET)), [BASIC_REALM, BEARER_INVALID], what="bad Bearer")
        self.assert_accepted(srv, basic("alice", "pa:ss wörd"))
        self.assert_user(srv, bearer(token("zed")), "zed")
        self.stop_ok(srv)

    def test_audience_and_issuer(self):
        srv = self.daemon("--jwt-secret", SECRET, "--jwt-audience", "wsr", "--jwt-issuer", "https://idp")
        iss = "https://idp"
        self.assert_user(srv, bearer(token("a1", aud="wsr", iss=iss)), "a1")
        self.assert_user(srv, bearer(token("a2", aud=["other", "wsr"], iss=iss)), "a2")
        for what, tok in {
            "aud missing": token(iss=iss),
            "aud wrong": token(aud="wsr2", iss=iss),
            "aud array without it": token(aud=["other", "ws"], iss=iss),
            "iss missing": token(aud="wsr"),
            "iss wrong": token(aud="wsr", iss="https://idp/"),
        }.items():
            with self.subTest(what):
                self.assert_401(srv, bearer(tok), [BEARER_INVALID], what=what)
        self.stop_ok(srv)

    def test_rsa_public_key_and_alg_confusion(self):
        k = keys()
        path, pem = k.rsa_pub_pem
        srv = self.daemon("--jwt-public-key", path)
        self.assert_user(srv, bearer(token("r256", key=Keys.priv(k.rsa), alg="RS256")), "r256")
        self.assert_user(srv, bearer(token("r512", key=Keys.priv(k.rsa), alg="RS512", ttl=60)), "r512")
        for what, tok in {
            "HS256 signed with the public key PEM (alg confusion)":
                raw_token({"alg": "HS256", "typ": "JWT"}, {"sub": "root"},
                          lambda m: hmac.new(pem, m, hashlib.sha256).digest()),
            "HS512 signed with the public key PEM":
                raw_token({"alg": "HS512", "typ": "JWT"}, {"sub": "root"},
                          lambda m: hmac.new(pem, m, hashlib.sha512).digest()),
            "RS256 by another key": token("x", key=Keys.priv(k.rsa_other), alg="RS256"),
            "alg none": raw_token({"alg": "none"}, {"sub": "root"}, lambda m: b""),
            "ES256 against an RSA key": token("x", key=Keys.priv(k.ec), alg="ES256"),
            "RS256 expired": token("x", key=Keys.priv(k.rsa), alg="RS256", ttl=-30),
        }.items():
            with self.subTest(what):
                self.assert_401(srv, bearer(tok), [BEARER_INVALID], what=what)
        self.stop_ok(srv)

    def test_ec_public_key(self):
        k = keys()
        path, pem = k.ec_pub_pem
        srv = self.daemon("--jwt-public-key", path)
        self.assert_user(srv, bearer(token("e256", key=Keys.priv(k.ec), alg="ES256")), "e256")
        for what, tok in {
            "HS256 signed with the EC public key PEM":
                raw_token({"alg": "HS256"}, {"sub": "root"}, lambda m: hmac.new(pem, m, hashlib.sha256).digest()),
            "RS256 against an EC key": token("x", key=Keys.priv(k.rsa), alg="RS256"),
            "ES256 by another key": token("x", key=Keys.priv(ec.generate_private_key(ec.SECP256R1())), alg="ES256"),
        }.items():
            with self.subTest(what):
                self.assert_401(srv, bearer(tok), [BEARER_INVALID], what=what)
        self.stop_ok(srv)


# ----------------------------------------------------------------------------------------
# --auth-required with --auth-timeout, and the in-band auth message


class InBand(AuthCase):
    def test_auth_message_ack_and_presence_user(self):
        srv = self.daemon("--jwt-secret", SECRET)

        async def go():
            p = await self.peer(srv)
            exp = int(time.time()) + 120
            ack = await self.ask(p, auth_msg(token("alice", exp=exp)), "ack")
            self.assertEqual(ack["payload"], {"user": "alice", "expiresAt": exp * 1000})
            ack = await self.ask(p, auth_msg(token("alice"), "a2"), "ack")
            self.assertEqual(ack["payload"], {"user": "alice", "expiresAt": None})
            ch = fresh_channel("room")
            await self.ask(p, sub(ch), "subscribed")
            got = await self.ask(p, {"type": "presence", "channel": ch, "id": "pr"}, "presence")
            self.assertEqual(got["payload"]["clients"], [{"clientId": p.id, "user": "alice"}])
            await p.ws.close()
        run(go(), 20)
        self.stop_ok(srv)

    def test_auth_bad_token_4001(self):
        srv = self.daemon("--jwt-secret", SECRET)

        async def go():
            p = await self.peer(srv)
            await p.send(auth_msg(token("alice", key=OTHER_SECRET)))
            msgs, code, _ = await self.closed(p)
            self.assertEqual([(m["type"], m.get("correlationId"), m["payload"]["code"]) for m in msgs],
                             [("error", "a1", "unauthorized")], msgs)
            self.assertEqual(code, 4001, msgs)
        run(go(), 20)
        self.stop_ok(srv)

    def test_auth_expired_token_4002(self):
        srv = self.daemon("--jwt-secret", SECRET)

        async def go():
            p = await self.peer(srv)
            await p.send(auth_msg(token("alice", ttl=-30)))
            msgs, code, _ = await self.closed(p)
            self.assertEqual([m["type"] for m in msgs], ["error"], msgs)
            self.assertEqual(msgs[0].get("correlationId"), "a1", msgs)
            self.assertEqual(code, 4002, msgs)
        run(go(), 20)
        self.stop_ok(srv)

    def test_auth_other_user_4003(self):
        users = os.path.join(self.tmp, "users")
        htpasswd("-B", "-c", "-b", users, "alice", "alice-pw")
        srv = self.daemon("--jwt-secret", SECRET, "--users-file", users)

        async def go():
            # a connection authenticated in-band, then a token of another user
            p = await self.peer(srv)
            await self.ask(p, auth_msg(token("alice")), "ack")
            await p.send(auth_msg(token("bob"), "a2"))
            msgs, code, _ = await self.closed(p)
            self.assertEqual([(m["type"], m.get("correlationId"), m["payload"]["code"]) for m in msgs],
                             [("error", "a2", "forbidden")], msgs)
            self.assertEqual(code, 4003, msgs)
            # a connection authenticated with Basic at the upgrade
            q = await self.peer(srv, basic("alice", "alice-pw"), "alice")
            await q.send(auth_msg(token("mallory"), "a3"))
            msgs, code, _ = await self.closed(q)
            self.assertEqual([(m["type"], m["payload"]["code"]) for m in msgs], [("error", "forbidden")], msgs)
            self.assertEqual(code, 4003, msgs)
        run(go(), 20)
        self.stop_ok(srv)

    def test_auth_without_token_bad_request(self):
        srv = self.daemon("--jwt-secret", SECRET)

        async def go():
            p = await self.peer(srv)
            for i, m in enumerate([{"type": "auth", "id": "n0"}, {"type": "auth", "id": "n1", "payload": {}},
                                   {"type": "auth", "id": "n2", "payload": {"token": 5}}]):
                await self.refused(p, m, "bad_request")
            await p.barrier()
            await self.ask(p, auth_msg(token("alice")), "ack")
            await p.ws.close()
        run(go(), 20)
        self.stop_ok(srv)

    def test_auth_without_jwt_key_bad_request(self):
        srv = self.daemon(env=ENV_USER)

        async def go():
            p = await self.peer(srv)
            await self.refused(p, auth_msg(token("alice")), "bad_request")
            await p.barrier()
            await p.ws.close()
        run(go(), 20)
        self.stop_ok(srv)

    def test_required_with_timeout_only_auth_and_ping(self):
        srv = self.daemon("--jwt-secret", SECRET, "--auth-required", "yes", "--auth-timeout", "5000")

        async def go():
            p = await self.peer(srv)
            ch = fresh_channel("room")
            await self.refused(p, sub(ch), "unauthorized")
            await self.refused(p, pub(ch, 1), "unauthorized")
            await self.refused(p, {"type": "presence", "channel": ch, "id": "pr"}, "unauthorized")
            await self.refused(p, {"type": "send", "to": p.id, "event": "x", "id": "sd"}, "unauthorized")
            await p.barrier()                                  # ping still answered
            ack = await self.ask(p, auth_msg(token("alice")), "ack")
            self.assertEqual(ack["payload"]["user"], "alice")
            got = await self.ask(p, sub(ch), "subscribed")
            self.assertEqual(got["channel"], ch)
            await p.ws.close()
        run(go(), 20)
        # and with a credential the upgrade is just accepted
        self.assert_user(srv, bearer(token("bob")), "bob")
        self.stop_ok(srv)

    def test_required_unauthenticated_messages_are_strikes(self):
        srv = self.daemon("--jwt-secret", SECRET, "--auth-required", "yes", "--auth-timeout", "5000",
                          "--max-strikes", "3")

        async def go():
            p = await self.peer(srv)
            for i in range(2):
                await self.refused(p, sub(fresh_channel(), f"s{i}"), "unauthorized")
            await p.barrier()                                  # a good message resets the count
            for i in range(2):
                await self.refused(p, pub(fresh_channel(), 1, f"p{i}"), "unauthorized")
            await p.send(sub(fresh_channel(), "last"))
            msgs, code, reason = await self.closed(p)
            self.assertEqual([(m["type"], m["payload"]["code"]) for m in msgs], [("error", "unauthorized")], msgs)
            self.assertEqual(code, 1008, (msgs, reason))
        run(go(), 20)
        self.stop_ok(srv)

    def test_auth_timeout_closes_anonymous_4001(self):
        srv = self.daemon("--jwt-secret", SECRET, "--auth-timeout", "600")

        async def go():
            t0 = time.monotonic()
            silent, authed_late, authed_up = await asyncio.gather(
                self.peer(srv), self.peer(srv), self.peer(srv, bearer(token("bob")), "bob"))
            await self.ask(authed_late, auth_msg(token("alice")), "ack")
            msgs, code, reason = await self.closed(silent, timeout=5)
            took = time.monotonic() - t0
            self.assertEqual(code, 4001, (msgs, reason))
            self.assertGreaterEqual(took, 0.35, "closed before --auth-timeout 600 (less its 250 ms grain)")
            self.assertLess(took, 2.5, "closed long after --auth-timeout 600")
            await asyncio.sleep(max(0, t0 + 1.2 - time.monotonic()))   # past the deadline + grain
            await authed_late.barrier()
            await authed_up.barrier()
            await authed_late.ws.close()
            await authed_up.ws.close()
        run(go(), 20)
        self.stop_ok(srv)

    def test_token_expiry_closes_4002(self):
        srv = self.daemon("--jwt-secret", SECRET)

        async def go():
            exp = int(time.time()) + 2
            p = await self.peer(srv, bearer(token("alice", exp=exp)), "alice")
            msgs, code, reason = await self.closed(p, timeout=6)
            now = time.time()
            self.assertEqual(code, 4002, (msgs, reason))
            self.assertGreaterEqual(now, exp - 0.05, "closed before the token's exp")
            self.assertLess(now, exp + 1.5, "closed long after the token's exp")
        run(go(), 20)
        self.stop_ok(srv)

    def test_token_refresh_keeps_connection(self):
        srv = self.daemon("--jwt-secret", SECRET)

        async def go():
            exp = int(time.time()) + 2
            p = await self.peer(srv, bearer(token("alice", exp=exp)), "alice")
            later = exp + 60
            ack = await self.ask(p, auth_msg(token("alice", exp=later)), "ack")
            self.assertEqual(ack["payload"], {"user": "alice", "expiresAt": later * 1000})
            await asyncio.sleep(max(0, exp + 1.0 - time.time()))      # past the old exp
            await p.barrier()
            await p.ws.close()
        run(go(), 20)
        self.stop_ok(srv)


# ----------------------------------------------------------------------------------------
# namespaces and channel defaults


def ns(spec):
    return ("--namespace", spec)


class Namespaces(AuthCase):
    def test_users_rule(self):
        srv = self.daemon("--jwt-secret", SECRET, *ns("members:subscribe=users,publish=users"))

        async def go():
            ch = "members:" + fresh_channel("x")
            anon = await self.peer(srv)
            user = await self.peer(srv, bearer(token("alice")), "alice")
            await self.refused(anon, sub(ch), "unauthorized")
            await self.refused(anon, pub(ch, 1), "unauthorized")
            await self.refused(anon, {"type": "presence", "channel": ch, "id": "pr"}, "unauthorized")
            await self.ask(user, sub(ch), "subscribed")
            m = await self.publish_subscribed(user, pub(ch, {"n": 1}))
            self.assertEqual((m["channel"], m["payload"], m["from"]), (ch, {"n": 1}, user.id))
            await anon.barrier()
            await anon.ws.close()
            await user.ws.close()
        run(go(), 20)
        self.stop_ok(srv)

    def test_granted_rule_with_claims(self):
        srv = self.daemon("--jwt-secret", SECRET, *ns("agents:subscribe=granted,publish=granted"))

        async def go():
            anon = await self.peer(srv)
            plain = await self.peer(srv, bearer(token("nogrant")), "nogrant")
            star = await self.peer(srv, bearer(token("ops", channels=["agents:*"], publish="agents:a1")), "ops")
            one = await self.peer(srv, bearer(token("one", channels="agents:a2", publish=["agents:a2"])), "one")
            await self.refused(anon, sub("agents:a1"), "unauthorized")
            await self.refused(anon, pub("agents:a1", 1), "unauthorized")
            await self.refused(plain, sub("agents:a1"), "forbidden")
            await self.refused(plain, pub("agents:a1", 1), "forbidden")
            await self.refused(plain, {"type": "presence", "channel": "agents:a1", "id": "pr"}, "forbidden")
            await self.ask(star, sub("agents:a1"), "subscribed")
            await self.ask(star, sub("agents:zz", "s2"), "subscribed")
            m = await self.publish_subscribed(star, pub("agents:a1", "hi"))
            self.assertEqual((m["channel"], m["payload"]), ("agents:a1", "hi"))
            await self.refused(star, pub("agents:a2", 1), "forbidden")
            await self.ask(one, sub("agents:a2"), "subscribed")
            await self.refused(one, sub("agents:a1", "s2"), "forbidden")
            await self.refused(one, sub("agents:a22", "s3"), "forbidden")
            await self.publish_subscribed(one, pub("agents:a2", 2))
            await self.refused(one, pub("agents:a1", 3, "p2"), "forbidden")
            await star.barrier()
            self.assertEqual([m for m in star.presence if m["channel"] != "agents:a2"], [], star.presence)
            for p in (anon, plain, star, one):
                await p.ws.close()
        run(go(), 20)
        self.stop_ok(srv)

    def test_backend_rule_and_api_publish(self):
        srv = self.daemon("--jwt-secret", SECRET, "--api-key", API_KEY,
                          *ns("feed:subscribe=anyone,publish=backend"),
                          *ns("vault:subscribe=backend,publish=backend"))

        async def go():
            ch = "feed:" + fresh_channel("x")
            anon = await self.peer(srv)
            user = await self.peer(srv, bearer(token("alice", channels="*", publish="*")), "alice")
            await self.ask(anon, sub(ch), "subscribed")
            await self.refused(user, pub(ch, 1), "forbidden")
            await self.refused(anon, pub(ch, 1), "forbidden")
            await self.refused(anon, sub("vault:v"), "forbidden")
            await self.refused(user, sub("vault:v"), "forbidden")
            await anon.barrier()
            st, body = await asyncio.to_thread(self.api_publish, srv, {"channel": ch, "event": "news", "payload": [7]})
            self.assertEqual(st, 200, body)
            _, m = await anon.expect("news")
            self.assertEqual((m["channel"], m["payload"], m["offset"]), (ch, [7], 1))
            await anon.ws.close()
            await user.ws.close()
        run(go(), 20)
        self.stop_ok(srv)

    def test_presence_no_join_leave_no(self):
        srv = self.daemon("--jwt-secret", SECRET, *ns("quiet:presence=no,join-leave=no"))

        async def go():
            ch = "quiet:" + fresh_channel("x")
            a = await self.peer(srv, bearer(token("alice")), "alice")
            b = await self.peer(srv)
            await self.ask(a, sub(ch), "subscribed")
            await self.ask(b, sub(ch), "subscribed")
            await self.refused(a, {"type": "presence", "channel": ch, "id": "pr"}, "forbidden")
            await b.ws.close()
            await a.barrier()
            self.assertEqual(a.presence, [], "join/leave on a join-leave=no namespace")
            # outside the namespace, join and leave name the user
            loud = fresh_channel("loud")
            c = await self.peer(srv, bearer(token("carol")), "carol")
            await self.ask(a, sub(loud, "s2"), "subscribed")
            await self.ask(c, sub(loud), "subscribed")
            _, j = await a.expect("join")
            self.assertEqual((j["channel"], j["payload"]), (loud, {"clientId": c.id, "user": "carol"}))
            got = await self.ask(a, {"type": "presence", "channel": loud, "id": "pr2"}, "presence")
            self.assertEqual(sorted((x["clientId"], x["user"]) for x in got["payload"]["clients"]),
                             sorted([(a.id, "alice"), (c.id, "carol")]))
            await c.ws.close()
            _, l = await a.expect("leave")
            self.assertEqual(l["payload"], {"clientId": c.id, "user": "carol"})
            await a.ws.close()
        run(go(), 20)
        self.stop_ok(srv)

    def test_history_size_per_namespace(self):
        srv = self.daemon(*ns("short:history-size=2"), *ns("none:history-size=0"))

        async def go():
            p = await self.peer(srv)
            short, none, plain = "short:" + fresh_channel(), "none:" + fresh_channel(), fresh_channel()
            epochs = {}
            for ch in (short, none, plain):
                epochs[ch] = (await self.ask(p, sub(ch), "subscribed"))["payload"]["epoch"]
                for i in range(1, 5):
                    await self.publish_subscribed(p, pub(ch, i))
                await self.ask(p, {"type": "unsubscribe", "channel": ch, "id": "u"}, "ack")
            q = await self.peer(srv)
            # short keeps the last 2: from offset 2 on is recovered, from 1 is not
            got = await self.ask(q, sub(short, since={"offset": 1, "epoch": epochs[short]}), "subscribed")
            self.assertFalse(got["payload"]["recovered"], got)
            await self.ask(q, {"type": "unsubscribe", "channel": short, "id": "u"}, "ack")
            got = await self.ask(q, sub(short, "s2", since={"offset": 2, "epoch": epochs[short]}), "subscribed")
            self.assertTrue(got["payload"]["recovered"], got)
            self.assertEqual([(await q.expect("message"))[1]["payload"] for _ in range(2)], [3, 4])
            # none keeps nothing
            got = await self.ask(q, sub(none, since={"offset": 3, "epoch": epochs[none]}), "subscribed")
            self.assertFalse(got["payload"]["recovered"], got)
            # outside every namespace: the default 100
            got = await self.ask(q, sub(plain, since={"offset": 0, "epoch": epochs[plain]}), "subscribed")
            self.assertTrue(got["payload"]["recovered"], got)
            self.assertEqual([(await q.expect("message"))[1]["payload"] for _ in range(4)], [1, 2, 3, 4])
            await q.barrier()
            await p.ws.close()
            await q.ws.close()
        run(go(), 20)
        self.stop_ok(srv)

    def test_defaults_outside_namespaces(self):
        srv = self.daemon("--jwt-secret", SECRET, "--subscribe", "users", "--publish", "granted",
                          *ns("open:subscribe=anyone,publish=anyone"))

        async def go():
            anon = await self.peer(srv)
            user = await self.peer(srv, bearer(token("alice", publish="news")), "alice")
            await self.refused(anon, sub("news"), "unauthorized")
            await self.refused(anon, pub("news", 1), "unauthorized")
            await self.ask(anon, sub("open:x"), "subscribed")
            await self.publish_subscribed(anon, pub("open:x", 1))
            await self.ask(user, sub("news"), "subscribed")
            await self.publish_subscribed(user, pub("news", 2))
            await self.refused(user, pub("other", 3), "forbidden")
            for p in (anon, user):
                await p.barrier()
                await p.ws.close()
        run(go(), 20)
        self.stop_ok(srv)


# ----------------------------------------------------------------------------------------
# strikes and rate limits


class Limits(AuthCase):
    def test_max_strikes_in_a_row_1008(self):
        srv = self.daemon(*ns("members:subscribe=users,publish=users"), "--max-strikes", "3")

        async def go():
            p = await self.peer(srv)
            refused = [sub("members:a", "r1"), pub("members:a", 1, "r2")]
            for _ in range(3):   # two strikes, then a good message resets the count
                for m in refused:
                    await self.refused(p, m, "unauthorized")
                await p.barrier()
            await p.send("not json")
            await p.expect_error("invalid_json")
            await p.send({"type": "nope"})
            await p.expect_error("unknown_type")
            await p.send(sub("members:b", "r3"))
            msgs, code, reason = await self.closed(p)
            self.assertEqual([(m["type"], m["payload"]["code"]) for m in msgs], [("error", "unauthorized")], msgs)
            self.assertEqual(code, 1008, (msgs, reason))
        run(go(), 20)
        self.stop_ok(srv)

    def test_publish_rate(self):
        srv = self.daemon("--rate-publish", "1", "--burst-publish", "2")

        async def go():
            ch = fresh_channel()
            a, b = await self.peer(srv), await self.peer(srv)
            await self.ask(b, sub(ch), "subscribed")
            for i in range(3):
                await a.send(pub(ch, i, f"p{i}"))
            for i in range(2):
                raw, m = await a.expect("ack")
                self.assertEqual(m["correlationId"], f"p{i}", raw)
            m = await a.expect_error("rate_limited", "p2")
            after = m["payload"].get("retryAfterMs")
            self.assertTrue(isinstance(after, int) and after > 0, m)
            for _ in range(20):               # pings are not limited by the publish bucket
                await a.barrier()
            got = [(await b.expect("message"))[1]["payload"] for _ in range(2)]
            self.assertEqual(got, [0, 1])
            await b.barrier()                 # the limited publication never arrives
            await a.ws.close()
            await b.ws.close()
        run(go(), 20)
        self.stop_ok(srv)

    def test_handshake_rate(self):
        srv = self.daemon("--rate-handshakes", "1", "--burst-handshakes", "3")
        for i in range(3):
            self.assert_user(srv, None, None)
        c, r, _ = self.upgrade(srv)
        self.assertEqual(r.status, 429, r.raw[:300])
        ra = r.header("Retry-After")
        self.assertTrue(ra is not None and ra.isdigit() and int(ra) >= 1, r.raw[:300])
        c.close()
        for i in range(6):                    # /echo is not limited
            c, r, _ = self.upgrade(srv, path="/echo")
            self.assertEqual(r.status, 101, f"/echo upgrade {i}: {r.raw[:300]!r}")
            c.close()
        self.stop_ok(srv)


if __name__ == "__main__":
    run_tap(budget=110)
