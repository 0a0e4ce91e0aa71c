#!/usr/bin/env python3
"""bench/peers/summarize.py DIR: the tables of bench/run-peers.sh, and the data of bench/plot.sh.

Reads DIR/results.txt (one line per wsbench run: server=, run=, case=, exit=, then wsbench's
key=value line), DIR/meta.txt, DIR/servers.txt (name|label|why not run) and DIR/cases.txt
(index|scenario|options|label). Writes DIR/table.md (also printed), DIR/pct-CASE.dat (the
median latency percentiles per server, for the plots) and DIR/throughput.dat.

Medians are over the rounds. Ratios are server / wsreactor, the median of the per-round
paired ratios (a round runs every server once, back to back). A server with errors in a
case is shown with its error count and left out of that case's ratios and plots.
"""
import os
import sys
from collections import defaultdict
from statistics import median

REF = "wsreactor"
RAW = "rawecho"
# gnuplot line style of each server in bench/plot.sh, the same on every chart
STYLE = {"wsreactor": 1, "rawecho": 2, "lws": 3, "beast": 4, "wspp": 5, "node": 6}


def load(d):
    servers, labels, why = [], {}, {}
    for line in open(os.path.join(d, "servers.txt")):
        name, label, status = (line.rstrip("\n").split("|") + ["", ""])[:3]
        servers.append(name)
        labels[name] = label
        why[name] = status
    cases = {}
    for line in open(os.path.join(d, "cases.txt")):
        i, sc, opts, label = line.rstrip("\n").split("|")
        cases[int(i)] = (sc, opts, label)
    meta = [l.rstrip("\n") for l in open(os.path.join(d, "meta.txt"))]
    runs = defaultdict(dict)  # (server, case) -> run -> dict
    for line in open(os.path.join(d, "results.txt")):
        kv = dict(p.split("=", 1) for p in line.split() if "=" in p)
        try:
            key = (kv["server"], int(kv["case"]))
            runs[key][int(kv["run"])] = kv
        except (KeyError, ValueError):
            continue
    return servers, labels, why, cases, meta, runs


def num(kv, k):
    try:
        return float(kv[k])
    except (KeyError, ValueError):
        return None


def derived(kv, k):
    if k == "cpu_us_per_msg":
        cpu, rate = num(kv, "server_cpu_pct"), num(kv, "msgs_per_s")
        return cpu * 1e4 / rate if cpu is not None and rate else None
    return num(kv, k)


class Table:
    def __init__(self, servers, runs):
        self.servers, self.runs = servers, runs

    def errors(self, s, c):
        rs = self.runs.get((s, c), {})
        n = 0
        for kv in rs.values():
            e = num(kv, "errors") or 0
            if kv.get("exit", "0") != "0" and e == 0:
                e = 1
            n += int(e)
        return n, len(rs)

    def ok(self, s, c):
        n, have = self.errors(s, c)
        return have > 0 and n == 0

    def med(self, s, c, k):
        v = [derived(kv, k) for kv in self.runs.get((s, c), {}).values()]
        v = [x for x in v if x is not None]
        return median(v) if v else None

    def ratio(self, s, c, k, ref=REF):
        """median over rounds of s / ref, rounds where both ran without errors"""
        if not (self.ok(s, c) and self.ok(ref, c)):
            return None
        a, b = self.runs[(s, c)], self.runs[(ref, c)]
        v = []
        for r in sorted(set(a) & set(b)):
            x, y = derived(a[r], k), derived(b[r], k)
            if x is not None and y:
                v.append(x / y)
        return median(v) if v else None


def fmt(x, kind):
    if x is None:
        return "-"
    if kind == "rate":
        return f"{x:,.0f}".replace(",", " ")
    if kind == "mb":
        return f"{x:.1f}"
    if kind == "us":
        return f"{x:.0f}" if x >= 100 else f"{x:.1f}"
    if kind == "pct":
        return f"{x:.0f} %"
    if kind == "cpu":
        return f"{x:.2f}"
    if kind == "bytes":
        return f"{x:,.0f}".replace(",", " ")
    if kind == "ratio":
        return f"{x:.2f}"
    return str(x)


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else "bench/results/latest"
    servers, labels, why, cases, meta, runs = load(d)
    t = Table(servers, runs)
    out = []
    p = out.append

    p("# wsreactor vs Debian-packaged peers and a raw TCP echo")
    p("")
    for m in meta:
        p(f"- {m}")
    for s in servers:
        if why.get(s):
            p(f"- **{labels[s]}: {why[s]}**")
    p("")
    p("Medians over the rounds. In brackets: the server's figure divided by wsreactor's, the")
    p("median of the per-round paired ratios (> 1: more messages/s, or more latency, CPU or memory")
    p("than wsreactor). A server with errors in a case shows `ERR` and is not ranked there.")
    p("")

    def cell(s, c, k, kind, ratio=True):
        n, have = t.errors(s, c)
        if have == 0:
            return "not run" if why.get(s) else "-"
        if n:
            return f"ERR {n}"
        v = fmt(t.med(s, c, k), kind)
        if ratio and s != REF:
            r = t.ratio(s, c, k)
            if r is not None:
                v += f" ({r:.2f})"
        return v

    heads = [labels[s] for s in servers]
    p("## Summary")
    p("")
    p("| case | figure | " + " | ".join(heads) + " |")
    p("|---|---|" + "---:|" * len(servers))
    rows = []
    for c, (sc, _, label) in sorted(cases.items()):
        if sc == "echo":
            rows.append((c, label, "msg/s", "msgs_per_s", "rate"))
            if "16k" in cases[c][1]:
                rows.append((c, label, "MB/s each way", "mb_per_s", "mb"))
            rows.append((c, label, "p99 us", "p99_us", "us"))
        elif sc == "latency":
            rows.append((c, label, "p50 us", "p50_us", "us"))
            rows.append((c, label, "p99 us", "p99_us", "us"))
            rows.append((c, label, "server CPU", "server_cpu_pct", "pct"))
        elif sc == "idle":
            rows.append((c, label, "bytes per conn", "bytes_per_conn", "bytes"))
    for c, label, fig, k, kind in rows:
        p(f"| {label} | {fig} | " + " | ".join(cell(s, c, k, kind) for s in servers) + " |")
    p("")

    # wsreactor against the targets of issue 6
    p("## wsreactor against the targets")
    p("")
    p("| case | figure | wsreactor / raw echo | target | wsreactor / best peer | target |")
    p("|---|---|---:|---|---:|---|")
    peers = [s for s in servers if s not in (REF, RAW)]

    def vs_raw(c, k):
        r = t.ratio(REF, c, k, ref=RAW) if RAW in servers else None
        return fmt(r, "ratio")

    def vs_best(c, k, higher_better):
        best, name = None, None
        for s in peers:
            r = t.ratio(REF, c, k, ref=s)
            if r is None:
                continue
            if best is None or (r < best if higher_better else r > best):
                best, name = r, labels[s]
        text = f"{best:.2f} ({name})" if best is not None else "-"
        bad = [labels[s] for s in peers if t.errors(s, c)[0]]
        if bad:
            text += "; not ranked (errors): " + ", ".join(bad)
        return text

    for c, (sc, opts, label) in sorted(cases.items()):
        if sc == "echo":
            tgt2 = "≥ 3" if "--depth 16" in opts else ""
            p(f"| {label} | msg/s | {vs_raw(c, 'msgs_per_s')} | ≥ 0.95 | {vs_best(c, 'msgs_per_s', True)} | {tgt2} |")
        elif sc == "latency":
            p(f"| {label} | server CPU | {vs_raw(c, 'server_cpu_pct')} | ≤ 1.1 | {vs_best(c, 'server_cpu_pct', False)} | |")
            p(f"| {label} | p99 | {vs_raw(c, 'p99_us')} | ≤ 1.2 | {vs_best(c, 'p99_us', False)} | |")
        elif sc == "idle":
            b = t.med(REF, c, "bytes_per_conn")
            p(f"| {label} | bytes per conn | {fmt(b, 'bytes')} B (absolute) | ≤ 256 B | {vs_best(c, 'bytes_per_conn', False)} | |")
    p("")
    p("\"best peer\": the Debian-packaged peer closest to wsreactor in that figure (lowest")
    p("throughput ratio, highest CPU, latency or memory ratio), raw echo excluded.")
    p("")

    # one detail table per case
    p("## Per case")
    for c, (sc, opts, label) in sorted(cases.items()):
        p("")
        p(f"### {label}")
        p("")
        p(f"`wsbench {sc} {opts}`" + (" (raw echo: `--raw`)" if sc != "idle" else "; on a freshly started server"))
        p("")
        if sc == "idle":
            p("| server | bytes/conn | VmRSS before KiB | VmRSS held KiB | handshakes/s | errors | bytes/conn ÷ wsreactor |")
            p("|---|---:|---:|---:|---:|---:|---:|")
            for s in servers:
                n, have = t.errors(s, c)
                if have == 0:
                    continue
                p(f"| {labels[s]} | {fmt(t.med(s, c, 'bytes_per_conn'), 'bytes')} | {fmt(t.med(s, c, 'rss_before_kb'), 'bytes')} "
                  f"| {fmt(t.med(s, c, 'rss_hold_kb'), 'bytes')} | {fmt(t.med(s, c, 'msgs_per_s'), 'rate')} | {n} "
                  f"| {fmt(t.ratio(s, c, 'bytes_per_conn'), 'ratio')} |")
            continue
        p("| server | msg/s | MB/s | p50 us | p90 us | p99 us | p99.9 us | max us | server CPU | server us/msg | client CPU | errors | msg/s ÷ wsr | p99 ÷ wsr | us/msg ÷ wsr |")
        p("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for s in servers:
            n, have = t.errors(s, c)
            if have == 0:
                continue
            m = lambda k, kind: fmt(t.med(s, c, k), kind)
            r = lambda k: fmt(t.ratio(s, c, k), "ratio")
            p(f"| {labels[s]} | {m('msgs_per_s', 'rate')} | {m('mb_per_s', 'mb')} | {m('p50_us', 'us')} | {m('p90_us', 'us')} "
              f"| {m('p99_us', 'us')} | {m('p999_us', 'us')} | {m('max_us', 'us')} | {m('server_cpu_pct', 'pct')} "
              f"| {m('cpu_us_per_msg', 'cpu')} | {m('client_cpu_pct', 'pct')} | {n} | {r('msgs_per_s')} | {r('p99_us')} "
              f"| {r('cpu_us_per_msg')} |")

    text = "\n".join(out) + "\n"
    with open(os.path.join(d, "table.md"), "w") as f:
        f.write(text)
    sys.stdout.write(text)

    # plot data: median percentiles per server, one file per case with latencies
    for c, (sc, opts, label) in sorted(cases.items()):
        if sc == "idle":
            continue
        with open(os.path.join(d, f"pct-{c}.dat"), "w") as f:
            f.write(f"# title: {label}\n")
            left = [labels[s] for s in servers if t.errors(s, c)[0]]
            f.write(f"# left out (errors): {', '.join(left)}\n")
            cols = []
            for s in servers:
                vals = [t.med(s, c, k) for k in ("p50_us", "p90_us", "p99_us", "p999_us")]
                if t.ok(s, c) and None not in vals:
                    cols.append((labels[s], vals, STYLE.get(s, 7)))
            f.write("# styles: " + " ".join(str(st) for _, _, st in cols) + "\n")
            f.write("percentile " + " ".join(f"\"{name}\"" for name, _, _ in cols) + "\n")
            for j, pct in enumerate(("p50", "p90", "p99", "p99.9")):
                f.write(pct + " " + " ".join(f"{vals[j]:.1f}" for _, vals, _ in cols) + "\n")
    # throughput relative to the raw echo, per echo case (no file without the raw echo)
    tpath = os.path.join(d, "throughput.dat")
    if os.path.exists(tpath):
        os.remove(tpath)
    echo_cases = [c for c, (sc, _, _) in sorted(cases.items()) if sc == "echo"]
    shown = [s for s in servers if s != RAW]
    rows, any_ratio = [], False
    for c in echo_cases:
        vals = []
        for s in shown:
            r = t.ratio(s, c, "msgs_per_s", ref=RAW) if RAW in servers else None
            any_ratio |= r is not None
            vals.append(f"{r:.3f}" if r is not None else "0")
        short = cases[c][2].replace("echo ", "").replace(" conns", "")
        rows.append(f"\"{short}\" " + " ".join(vals))
    if any_ratio:
        with open(tpath, "w") as f:
            f.write("# msg/s divided by the raw echo's (median of per-round paired ratios); 0: not run or errors\n")
            f.write("# styles: " + " ".join(str(STYLE.get(s, 7)) for s in shown) + "\n")
            f.write("case " + " ".join(f"\"{labels[s]}\"" for s in shown) + "\n")
            f.write("\n".join(rows) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
