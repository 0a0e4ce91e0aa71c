#!/usr/bin/python3
"""What `make install` puts in place, installed from the build directory under test.

`meson install --destdir TMP --no-rebuild` of the build directory that holds WSR_BIN, then:
every file is there (the binary, libwsreactor and libwsreactor-messaging, their headers
and pkg-config files, the systemd unit, the man page, the example config); pkg-config
with PKG_CONFIG_PATH into TMP gives flags a tiny C program compiles, links and runs with
against the installed files; `systemd-analyze verify` accepts the installed unit (its
ExecStart pointed at the TMP copy of the binary; a copy naming a missing binary is
refused, so the check is real); the installed binary runs as the unit's ExecStart and
ExecReload say (config from its path, SIGHUP re-reads it, SIGTERM exits 0); the man
page renders without a warning and has an entry for every option of `wsreactor --help`
with its environment variable and default (docs/man-options.py --check); the installed
binary prints its version.
"""

import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
SRC = os.path.dirname(os.path.dirname(HERE))

from wsclient import run_tap, server_binary, server_env  # noqa: E402

LISTEN_RE = re.compile(r"listening on ([0-9.]+):(\d+)")


def load_man_options():
    spec = importlib.util.spec_from_file_location("man_options", os.path.join(SRC, "docs", "man-options.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run(argv, env=None, timeout=120, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, **kw)


class Installed:
    """One `meson install` into a temporary DESTDIR, shared by the test cases."""
    root = None

    @classmethod
    def get(cls):
        if cls.root is None:
            cls.setup()
        return cls

    @classmethod
    def setup(cls):
        cls.builddir = os.path.dirname(os.path.abspath(server_binary()))
        meson = shutil.which("meson")
        if not meson:
            raise RuntimeError("meson is not on PATH")
        opts = json.loads(run([meson, "introspect", cls.builddir, "--buildoptions"]).stdout)
        cls.opt = {o["name"]: o["value"] for o in opts}
        info = json.loads(run([meson, "introspect", cls.builddir, "--projectinfo"]).stdout)
        cls.version = info["version"]
        cls.tmp = tempfile.mkdtemp(prefix="wsr-install-")
        cls.root = os.path.join(cls.tmp, "root")
        r = run([meson, "install", "-C", cls.builddir, "--no-rebuild", "--destdir", cls.root,
                 "--quiet"])
        if r.returncode != 0:
            raise RuntimeError(f"meson install failed ({r.returncode}):\n{r.stdout}{r.stderr}")
        p = cls.opt["prefix"]
        cls.prefix = p

        def at(option, *rest):
            d = cls.opt[option]
            return os.path.join(d if os.path.isabs(d) else os.path.join(p, d), *rest)
        cls.bindir_real = at("bindir")
        cls.libdir_real = at("libdir")
        cls.paths = {
            "binary": at("bindir", "wsreactor"),
            "libwsreactor": at("libdir", "libwsreactor.so"),
            "libwsreactor-messaging": at("libdir", "libwsreactor-messaging.so"),
            "wsr.h": at("includedir", "wsr", "wsr.h"),
            "messaging.h": at("includedir", "wsr", "messaging.h"),
            "libwsreactor.pc": at("libdir", "pkgconfig", "libwsreactor.pc"),
            "libwsreactor-messaging.pc": at("libdir", "pkgconfig", "libwsreactor-messaging.pc"),
            "unit": os.path.join(p, "lib", "systemd", "system", "wsreactor.service"),
            "man page": at("mandir", "man1", "wsreactor.1"),
            "example config": at("datadir", "doc", "wsreactor", "wsreactor.ini"),
        }
        cls.libdir = cls.staged(cls.libdir_real)
        cls.mandir = cls.staged(at("mandir"))

    @classmethod
    def staged(cls, path):
        return cls.root + path

    @classmethod
    def env(cls, extra=None):
        """The environment for an installed program: its libraries from the DESTDIR."""
        env = server_env({"LD_LIBRARY_PATH": cls.libdir})
        env.update(extra or {})
        return env


def tearDownModule():
    tmp = getattr(Installed, "tmp", None)
    if tmp and not os.environ.get("WSR_KEEP_INSTALL"):
        shutil.rmtree(tmp, ignore_errors=True)


class Files(unittest.TestCase):
    def test_every_file_installed(self):
        inst = Installed.get()
        for what, path in inst.paths.items():
            with self.subTest(what=what):
                self.assertTrue(os.path.isfile(inst.staged(path)), f"{what}: {path} not installed")
        self.assertTrue(os.access(inst.staged(inst.paths["binary"]), os.X_OK))
        # Nothing under /etc: an install never replaces an administrator's file.
        self.assertFalse(os.path.exists(os.path.join(inst.root, "etc")), "installed into /etc")

    def test_installed_binary_version(self):
        inst = Installed.get()
        binary = inst.staged(inst.paths["binary"])
        r = run([binary, "--version"], env=inst.env())
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.strip(), f"wsreactor {inst.version}")
        # The installed binary loads the installed libraries, not the build directory's.
        r = run(["ldd", binary], env=inst.env())
        for lib in ("libwsreactor.so", "libwsreactor-messaging.so"):
            m = re.search(re.escape(lib) + r" => (\S+)", r.stdout)
            self.assertIsNotNone(m, f"{lib} not linked:\n{r.stdout}")
            self.assertEqual(os.path.realpath(m.group(1)),
                             os.path.realpath(os.path.join(inst.libdir, lib)))


TINY_PROGRAM = r"""
#include <stdio.h>
#include <string.h>
#include <uv.h>
#include <wsr/wsr.h>
#include <wsr/messaging.h>

int main(void) {
    uv_loop_t *loop = uv_default_loop();
    wsr_options opts;
    wsr_options_default(&opts);
    wsr_server *srv = NULL;
    int r = wsr_server_new(loop, &opts, &srv);
    if (r != WSR_OK) { printf("wsr_server_new: %s\n", wsr_strerror(r)); return 1; }
    wsr_messaging_options mo;
    wsr_messaging_options_default(&mo);
    wsr_messaging *msg = wsr_messaging_new(loop, srv, "/ws", &mo);
    if (!msg) { printf("wsr_messaging_new failed\n"); return 1; }
    wsr_server_free(srv);
    wsr_messaging_free(msg);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    printf("embedded %s\n", WSR_VERSION);
    return 0;
}
"""


class PkgConfig(unittest.TestCase):
    def pkg_env(self):
        inst = Installed.get()
        env = dict(os.environ)
        env["PKG_CONFIG_PATH"] = os.path.join(inst.libdir, "pkgconfig")
        # The .pc files name the real prefix; the sysroot maps -I and -L into the DESTDIR.
        env["PKG_CONFIG_SYSROOT_DIR"] = inst.root
        return env

    def pkg(self, *args):
        r = run(["pkg-config"] + list(args), env=self.pkg_env())
        self.assertEqual(r.returncode, 0, f"pkg-config {' '.join(args)}: {r.stderr}")
        return r.stdout.split()

    def test_requires(self):
        self.assertIn("libuv", " ".join(self.pkg("--print-requires", "libwsreactor")))
        self.assertEqual(self.pkg("--print-requires", "libwsreactor-messaging")[:1], ["libwsreactor"])
        self.assertEqual(self.pkg("--modversion", "libwsreactor"), [Installed.get().version])

    def test_flags_point_into_destdir(self):
        inst = Installed.get()
        flags = self.pkg("--cflags", "--libs", "libwsreactor-messaging")
        self.assertIn("-I" + inst.staged(os.path.dirname(os.path.dirname(inst.paths["wsr.h"]))), flags)
        self.assertIn("-L" + inst.libdir, flags)
        # Requires: libwsreactor brings its library in after the messaging layer's.
        self.assertIn("-lwsreactor-messaging", flags)
        self.assertIn("-lwsreactor", flags)
        self.assertLess(flags.index("-lwsreactor-messaging"), flags.index("-lwsreactor"))
        self.assertIn("-luv", flags)

    def test_tiny_program_builds_and_runs(self):
        inst = Installed.get()
        d = os.path.join(inst.tmp, "tiny")
        os.makedirs(d, exist_ok=True)
        src = os.path.join(d, "tiny.c")
        with open(src, "w") as f:
            f.write(TINY_PROGRAM)
        cflags = self.pkg("--cflags", "libwsreactor-messaging")
        libs = self.pkg("--libs", "libwsreactor-messaging")
        san = []
        if inst.opt.get("b_sanitize", "none") not in ("none", "", []):
            s = inst.opt["b_sanitize"]
            san = ["-fsanitize=" + (s if isinstance(s, str) else ",".join(s))]
        cc = os.environ.get("CC", "cc")
        exe = os.path.join(d, "tiny")
        r = run([cc, "-std=gnu11", "-Wall", "-Werror", "-o", exe, src] + san + cflags + libs)
        self.assertEqual(r.returncode, 0, f"{cc} failed:\n{r.stderr}")
        r = run([exe], env=inst.env(), timeout=30)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn(f"embedded {inst.version}", r.stdout)


class Unit(unittest.TestCase):
    def unit_text(self):
        inst = Installed.get()
        with open(inst.staged(inst.paths["unit"])) as f:
            return f.read()

    def verify(self, text):
        """systemd-analyze verify of a copy of the unit: (status, output)."""
        inst = Installed.get()
        d = tempfile.mkdtemp(dir=inst.tmp)
        path = os.path.join(d, "wsreactor.service")
        with open(path, "w") as f:
            f.write(text)
        # Documentation=man:wsreactor(1) is checked with man(1): the installed page.
        r = run(["/usr/bin/systemd-analyze", "verify", path],
                env=dict(os.environ, MANPATH=inst.mandir, SYSTEMD_LOG_COLOR="0"))
        return r.returncode, (r.stdout + r.stderr).strip()

    def staged_text(self):
        """The installed unit with ExecStart naming the DESTDIR copy of the binary."""
        inst = Installed.get()
        text = self.unit_text()
        real = inst.paths["binary"]
        self.assertIn(f"ExecStart={real} ", text)
        return text.replace(f"ExecStart={real} ", f"ExecStart={inst.staged(real)} ")

    def test_systemd_analyze_verify(self):
        status, out = self.verify(self.staged_text())
        self.assertEqual((status, out), (0, ""), "systemd-analyze verify refused the unit")

    def test_verify_really_checks(self):
        inst = Installed.get()
        text = self.staged_text()
        bad = text.replace(inst.staged(inst.paths["binary"]), os.path.join(inst.tmp, "missing", "wsreactor"))
        status, out = self.verify(bad)
        self.assertNotEqual(status, 0, out)
        self.assertIn("not executable", out)
        status, out = self.verify(text.replace("[Service]\n", "[Service]\nLimitNOFILLE=1\n"))
        self.assertIn("LimitNOFILLE", out)

    def test_unit_settings(self):
        text = self.unit_text()
        settings = {}
        for line in text.splitlines():
            if "=" in line and not line.startswith(("#", ";")):
                k, _, v = line.partition("=")
                settings.setdefault(k, []).append(v)
        want = {
            "Type": "exec", "DynamicUser": "yes", "LimitNOFILE": "1048576",
            "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
            "PrivateTmp": "yes", "PrivateDevices": "yes", "ProtectKernelTunables": "yes",
            "ProtectKernelModules": "yes", "ProtectKernelLogs": "yes",
            "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
            "MemoryDenyWriteExecute": "yes", "LockPersonality": "yes", "RestrictRealtime": "yes",
            "RestrictNamespaces": "yes", "CapabilityBoundingSet": "", "Restart": "on-failure",
            "ExecReload": "/bin/kill -HUP $MAINPID",
            "ConditionPathExists": "/etc/wsreactor/wsreactor.ini",
            "SupplementaryGroups": "wsreactor",
            "EnvironmentFile": "-/etc/default/wsreactor",
        }
        for k, v in want.items():
            with self.subTest(setting=k):
                self.assertIn(v, settings.get(k, []))
        self.assertIn("@system-service", settings.get("SystemCallFilter", []))
        self.assertNotIn("User", settings)

    def test_runs_as_the_unit_says(self):
        """ExecStart with its config path pointing at a copy of the example config, the
        WSR_* environment over it; ExecReload's SIGHUP keeps it serving; SIGTERM exits 0."""
        inst = Installed.get()
        text = self.unit_text()
        m = re.search(r"^ExecStart=(.*)$", text, re.M)
        confdir = tempfile.mkdtemp(dir=inst.tmp)
        shutil.copy(inst.staged(inst.paths["example config"]), os.path.join(confdir, "wsreactor.ini"))
        argv = m.group(1).replace("/etc/wsreactor/wsreactor.ini", os.path.join(confdir, "wsreactor.ini")).split()
        self.assertIn(os.path.join(confdir, "wsreactor.ini"), argv)
        argv[0] = inst.staged(argv[0])
        # The example listens on 0.0.0.0:8080; the environment overrides the file.
        log = open(os.path.join(confdir, "log"), "w+")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                env=inst.env({"WSR_LISTEN": "127.0.0.1:0"}))
        try:
            port = None
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and port is None and proc.poll() is None:
                time.sleep(0.05)
                log.seek(0)
                mm = LISTEN_RE.search(log.read())
                port = int(mm.group(2)) if mm else None
            log.seek(0)
            self.assertIsNotNone(port, "did not listen:\n" + log.read())
            self.assertEqual(self.healthz(port), 200)
            # the file edited in place is what a reload reads
            conf = os.path.join(confdir, "wsreactor.ini")
            with open(conf) as f:
                text = f.read()
            self.assertIn("\nlog-level = info\n", text)
            with open(conf, "w") as f:
                f.write(text.replace("\nlog-level = info\n", "\nlog-level = warn\n"))
            proc.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 10
            text = ""
            while time.monotonic() < deadline and "reload: log-level" not in text:
                time.sleep(0.05)
                log.seek(0)
                text = log.read()
            self.assertIn("reload: log-level info -> warn", text)
            self.assertIsNone(proc.poll(), "exited on SIGHUP")
            self.assertEqual(self.healthz(port), 200)
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(proc.wait(timeout=15), 0)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.close()

    @staticmethod
    def healthz(port):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        return int(data.split(b" ", 2)[1])


class ManPage(unittest.TestCase):
    def page(self):
        inst = Installed.get()
        return inst.staged(inst.paths["man page"])

    def test_renders_without_warnings(self):
        page = self.page()
        with open(page, "rb") as f:
            raw = f.read()
        self.assertTrue(all(b < 128 for b in raw), "non-ASCII bytes (groff without preconv warns)")
        r = run(["groff", "-man", "-Tutf8", "-ww", "-z", page])
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        r = run(["man", "--warnings", "-l", page], env=dict(os.environ, MANWIDTH="80"))
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        out = re.sub(r".\x08", "", r.stdout)  # overstrike bold and underline
        for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "CONFIGURATION FILE",
                        "SIGNALS", "FILES", "EXIT STATUS", "SEE ALSO"):
            self.assertIsNotNone(re.search(r"(?m)^" + section + "$", out), f"no {section} section")
        for endpoint in ("/echo", "/broadcast", "/ws", "/api/", "/healthz", "/metrics", "/status",
                         "/client.js"):
            self.assertIsNotNone(re.search(r"(?m)^ +" + re.escape(endpoint) + r"(?: |$)", out),
                                 f"endpoint {endpoint} not described")

    def test_every_option(self):
        mo = load_man_options()
        opts = mo.parse_help(run([server_binary(), "--help"], env=server_env()).stdout)
        self.assertGreater(len(opts), 40)
        with open(self.page()) as f:
            text = f.read()
        self.assertEqual(mo.check(opts, text), [])
        # The check is real: an entry taken out, or a default changed, is reported.
        victim = next(o for o in opts if o["flag"] == "--max-message")
        entry = re.search(r"\.TP\n\.BI \\-\\-max\\-message .*?(?=\n\.TP\n)", text, re.S).group(0)
        problems = mo.check(opts, text.replace(entry + "\n", ""))
        self.assertEqual(problems, ["--max-message: no entry"])
        changed = text.replace(entry, entry.replace("(default " + victim["default"], "(default 4242"))
        self.assertEqual(mo.check(opts, changed), ["--max-message: default %r not given" % victim["default"]])


if __name__ == "__main__":
    run_tap(budget=240)
