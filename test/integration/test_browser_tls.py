#!/usr/bin/python3
"""A real browser over TLS: headless Chromium (Debian's chromium + chromium-driver, driven
by python3-selenium) loads https://127.0.0.1:PORT/healthz from the daemon's TLS port and
opens a WebSocket to wss:// on the same port from that page; text and binary messages
come back; the close is clean. The certificate is a throwaway one made at test time
with the openssl CLI, so the browser is told to accept it.

Skips (TAP # SKIP) when chromium, chromedriver or selenium are missing."""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import browser  # noqa: E402
import wsclient  # noqa: E402



# Runs in the page: connects, sends a text and a binary message, waits for both echoes,
# closes, and reports what happened.
PAGE_SCRIPT = """
const url = arguments[0], done = arguments[arguments.length - 1];
const ws = new WebSocket(url);
ws.binaryType = "arraybuffer";
const got = [];
ws.onopen = () => { ws.send("hello over tls"); ws.send(new Uint8Array([0, 1, 2, 255]).buffer); };
ws.onmessage = (e) => {
  got.push(typeof e.data === "string" ? e.data : Array.from(new Uint8Array(e.data)));
  if (got.length === 2) ws.close(1000, "done");
};
ws.onclose = (e) => done(JSON.stringify({got: got, code: e.code, clean: e.wasClean,
                                         protocol: location.protocol}));
ws.onerror = () => {};
"""


def make_cert(tmp):
    key, cert = os.path.join(tmp, "k.pem"), os.path.join(tmp, "c.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True)
    return cert, key


def main():
    print("1..4")
    why = wsclient.NO_TLS if not wsclient.HAS_TLS else browser.missing() or (
        None if shutil.which("openssl") else "openssl not installed")
    if why:
        for i in range(1, 5):
            print(f"ok {i} # SKIP {why}")
        return 0
    failed = 0

    def check(n, ok, what, detail=""):
        nonlocal failed
        print(f"{'ok' if ok else 'not ok'} {n} - {what}")
        if not ok:
            failed += 1
            for line in str(detail).splitlines()[:20]:
                print(f"# {line}")

    tmp = tempfile.mkdtemp(prefix="wsr-browser-")
    cert, key = make_cert(tmp)
    srv = None
    driver = None
    try:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            tls_port = s.getsockname()[1]
        srv = wsclient.Server("--listen-tls", f"127.0.0.1:{tls_port}", "--tls-cert", cert, "--tls-key", key)
        srv.start()
        driver = browser.start(f"{tmp}/profile", "--ignore-certificate-errors")
        driver.get(f"https://127.0.0.1:{tls_port}/healthz")
        body = driver.find_element("tag name", "body").text
        check(1, '{"status":"ok"}' in body, "the page loads over https", body)
        raw = driver.execute_async_script(PAGE_SCRIPT, f"wss://127.0.0.1:{tls_port}/echo")
        res = json.loads(raw)
        check(2, res["protocol"] == "https:", "the page is an https page", res)
        check(3, res["got"] == ["hello over tls", [0, 1, 2, 255]], "text and binary echoed over wss", res)
        check(4, res["code"] == 1000 and res["clean"], "the close is clean (1000)", res)
    except Exception as e:  # a browser that cannot start is a failure, not a skip
        check(1, False, "browser run", repr(e) + "\n" + (srv.log_tail() if srv else ""))
        for i in range(2, 5):
            print(f"not ok {i} - not run")
            failed += 1
    finally:
        if driver:
            driver.quit()
        if srv:
            srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
