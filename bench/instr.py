#!/usr/bin/python3
"""bench/instr.py: user-space instructions per message from two callgrind profiles.

usage: instr.py [--top N] [--json] SMALL.out N_SMALL LARGE.out N_LARGE

Both profiles are of the same server doing the same thing, once with N_SMALL and once
with N_LARGE messages (deliveries). Start-up, handshakes and shutdown are the same in
both, so (LARGE - SMALL) / (N_LARGE - N_SMALL) is the cost of one message. Prints that
per object (the executable and each shared library) and the top functions by self cost.

Reads callgrind's own format (not callgrind_annotate's text), so the numbers are exact:
a cost line belongs to the current ob=/fn= unless it follows a calls= line (then it is
the inclusive cost of that call, which belongs to the callee's own lines).
"""
import json
import os
import sys


def load(path):
    names = {"ob": {}, "fn": {}}
    ob = fn = "???"
    self_cost = {}
    after_call = False
    events = None
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            c = line[:1]
            if c.isdigit() or c in "+-*":
                if after_call:
                    after_call = False
                    continue
                parts = line.split()
                if len(parts) < 2:
                    continue
                ir = int(parts[1])  # positions: line; events: Ir first
                key = (ob, fn)
                self_cost[key] = self_cost.get(key, 0) + ir
                continue
            if line.startswith("calls="):
                after_call = True
                continue
            if line.startswith("events:"):
                events = line.split()[1:]
                continue
            for kind in ("ob", "fn", "cob", "cfn", "cfi", "cfl"):
                if line.startswith(kind + "="):
                    value = line[len(kind) + 1:].rstrip("\n")
                    table = "ob" if kind in ("ob", "cob") else ("fn" if kind in ("fn", "cfn") else None)
                    name = resolve(names, table, value) if table else None
                    if kind == "ob":
                        ob = name
                    elif kind == "fn":
                        fn = name
                    break
    if events and events[0] != "Ir":
        sys.exit("instr.py: %s: first event is %s, not Ir" % (path, events[0]))
    return self_cost


def resolve(names, table, value):
    # Name compression: "(id) name" defines id, "(id)" refers to it.
    if value.startswith("("):
        end = value.index(")")
        ident = value[1:end]
        rest = value[end + 1:].strip()
        if rest:
            names[table][ident] = rest
            return rest
        return names[table].get(ident, "(%s)" % ident)
    return value


def short_object(path):
    base = os.path.basename(path)
    if base.startswith("ld-linux") or base.startswith("ld-"):
        return "ld.so"
    for lib in ("libwsreactor-messaging", "libwsreactor", "libuv", "libc", "libstdc++", "libcrypto",
                "libssl", "libz", "libsimdjson", "libm", "libgcc_s", "libjwt", "libinih"):
        if base.startswith(lib + ".") or base.startswith(lib + "-"):
            return lib
    if base.startswith("vgpreload") or base.startswith("valgrind"):
        return "valgrind"
    return base


def main(argv):
    top = 20
    as_json = False
    args = []
    i = 1
    while i < len(argv):
        if argv[i] == "--top":
            top = int(argv[i + 1])
            i += 2
        elif argv[i] == "--json":
            as_json = True
            i += 1
        else:
            args.append(argv[i])
            i += 1
    if len(args) != 4:
        sys.exit(__doc__)
    small, n_small, large, n_large = args[0], int(args[1]), args[2], int(args[3])
    if n_large <= n_small:
        sys.exit("instr.py: N_LARGE must be larger than N_SMALL")
    a, b = load(small), load(large)
    dn = n_large - n_small
    per_fn = {}
    for key in set(a) | set(b):
        d = b.get(key, 0) - a.get(key, 0)
        if d:
            per_fn[key] = d / dn
    per_ob = {}
    for (ob, _), v in per_fn.items():
        name = short_object(ob)
        per_ob[name] = per_ob.get(name, 0) + v
    total = sum(per_fn.values())
    fns = sorted(per_fn.items(), key=lambda kv: -kv[1])[:top]
    if as_json:
        print(json.dumps({"total": round(total, 1),
                          "objects": {k: round(v, 1) for k, v in per_ob.items()},
                          "functions": [{"object": short_object(ob), "function": fn, "ir": round(v, 1)}
                                        for (ob, fn), v in fns]}))
        return
    print("instructions per message: %.1f  (%d - %d messages)" % (total, n_large, n_small))
    print("  by object:")
    for name, v in sorted(per_ob.items(), key=lambda kv: -kv[1]):
        if abs(v) >= 0.05:
            print("    %-28s %9.1f" % (name, v))
    print("  top functions (self):")
    for (ob, fn), v in fns:
        print("    %9.1f  %-40s %s" % (v, fn[:60], short_object(ob)))


if __name__ == "__main__":
    main(sys.argv)
