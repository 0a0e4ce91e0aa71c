#!/usr/bin/python3
"""Reads the /metrics text of a fresh server with prometheus_client's parser (Debian's
python3-prometheus-client), the way a Python scraper or exporter would, and checks the
families, their types and their samples. TAP output; the family list as comments.

Usage: /usr/bin/python3 test/app/test_metrics_parse.py [FILE | - | --exec PROGRAM]
  FILE or - (stdin, the default): a rendered text;
  --exec PROGRAM: run PROGRAM (test/app/metrics_dump) and read its stdout.
"""
import math
import re
import subprocess
import sys
import time

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
]
GAUGES = [
    "wsreactor_connections_open", "wsreactor_handshakes_in_progress", "wsreactor_memory_held_bytes",
    "process_resident_memory_bytes", "process_open_fds", "process_start_time_seconds",
    "wsreactor_uptime_seconds", "wsreactor_build_info",
]
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


def main(argv):
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError as e:
        print("1..1")
        print(f"not ok 1 - prometheus_client not importable ({e}); apt-get install python3-prometheus-client")
        return 1
    text = read_text(argv)
    tap = Tap()
    print("1..9")

    try:
        families = list(text_string_to_metric_families(text))
        err = ""
    except Exception as e:  # the parser raises ValueError and others on bad lines
        families, err = [], f"{type(e).__name__}: {e}"
    tap.check(not err and families, "the parser reads the text", err)
    for f in families:
        print(f"# {f.type:8} {f.name:45} {len(f.samples)} sample(s)")
    fam = {f.name: f for f in families}

    # This parser is lax: a sample outside its HELP/TYPE becomes an untyped family of
    # its own, and a repeated HELP a second family of the same name.
    names = [f.name for f in families]
    # (The parser names the untyped type "unknown", as OpenMetrics does.)
    tap.check(len(names) == len(set(names)) and all(f.type in ("counter", "gauge") for f in families),
              "every family once, each a counter or a gauge", [(f.name, f.type) for f in families])

    want = {n: "counter" for n in COUNTERS} | {n: "gauge" for n in GAUGES}
    got = {f.name: f.type for f in families}
    tap.check(got == want, "the expected families with their types",
              f"missing: {sorted(set(want) - set(got))}\nextra: {sorted(set(got) - set(want))}\n"
              f"types differ: {sorted(n for n in want if n in got and got[n] != want[n])}")

    tap.check(all(f.documentation for f in families), "every family has HELP text",
              [f.name for f in families if not f.documentation])

    bad = [(f.name, s.name) for f in families for s in f.samples
           if s.name != f.name + ("_total" if f.type == "counter" else "")]
    tap.check(not bad, "sample names: counters end in _total, gauges are the family name", bad)

    def buckets(name):
        f = fam.get(name)
        return [] if f is None else [(s.labels, s.value) for s in f.samples]

    closes = buckets("wsreactor_closes")
    tap.check(len(closes) == 11 and {tuple(l) for l, _ in closes} == {("code",)}
              and {l["code"] for l, _ in closes} == CLOSE_CODES and all(v == 0 for _, v in closes),
              "wsreactor_closes_total: one sample per close code bucket, all 0", closes)
    hs = buckets("wsreactor_handshakes_failed")
    tap.check(len(hs) == 9 and {tuple(l) for l, _ in hs} == {("status",)}
              and {l["status"] for l, _ in hs} == HS_STATUSES and all(v == 0 for _, v in hs),
              "wsreactor_handshakes_failed_total: one sample per status bucket, all 0", hs)

    # A fresh server: the single-sample wsreactor figures are 0, except the build info.
    single = {f.name: f.samples[0] for f in families if len(f.samples) == 1}
    nonzero = [n for n, s in single.items()
               if n.startswith("wsreactor_") and n not in ("wsreactor_build_info", "wsreactor_uptime_seconds")
               and s.value != 0]
    bi = single.get("wsreactor_build_info")
    tap.check(not nonzero and bi is not None and bi.value == 1
              and re.fullmatch(r"\d+\.\d+\.\d+", bi.labels.get("version", "")),
              "a fresh server counts 0; build_info is 1 with a version label", f"{nonzero} {bi}")

    def value(name):
        s = single.get(name)
        return math.nan if s is None else s.value

    now = time.time()
    start, up = value("process_start_time_seconds"), value("wsreactor_uptime_seconds")
    rss, fds = value("process_resident_memory_bytes"), value("process_open_fds")
    tap.check(now - 70 < start < now and 2.5 <= up < 60 and abs((now - start) - up) < 10
              and rss > 1 << 20 and fds >= 1,
              "process figures: start time, uptime, resident memory, open fds",
              f"start {start} (now {now}), uptime {up}, rss {rss}, fds {fds}")
    return 1 if tap.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
