#!/usr/bin/python3
"""The user documentation speaks of the software only: README.md and docs/*.md never
point at the project's work tracking ("issue 6") or at how the work was done ("this
session"). One TAP line per file."""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORK_TALK = re.compile(r"\bissue #?\d+|\bsessions?\b", re.IGNORECASE)


def main():
    docs = os.path.join(ROOT, "docs")
    files = ["README.md"] + sorted(os.path.join("docs", f) for f in os.listdir(docs) if f.endswith(".md"))
    print(f"1..{len(files)}")
    failed = 0
    for n, rel in enumerate(files, 1):
        with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
            hits = [f"{rel}:{i}: {line.strip()}" for i, line in enumerate(f, 1) if WORK_TALK.search(line)]
        if hits:
            failed += 1
            print(f"not ok {n} - {rel} speaks of the work, not the software")
            for h in hits[:10]:
                print(f"# {h}")
        else:
            print(f"ok {n} - {rel}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
