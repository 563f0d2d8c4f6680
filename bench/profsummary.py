#!/usr/bin/env python3
"""Summarise a py-spy ``--format raw`` profile (collapsed stacks: ``f1;f2;...;leaf COUNT``).

    python3 bench/profsummary.py PROFILE.txt [--top 25]

Prints the share of samples that were idle (waiting in the event loop's selector), then the
functions with the most samples on-CPU: self (the leaf) and inclusive (anywhere on the stack).
"""

from __future__ import annotations

import argparse
import collections
import re

# Leaves that mean "waiting": the event loop's selector, idle thread-pool threads, lock waits.
IDLE = re.compile(r"^(\w+Selector\.select \(.*selectors\.py|_worker \(.*thread\.py|"
                  r"(Condition|Event|Thread)\.(wait|join) \(.*threading\.py)")


def frame_name(frame: str) -> str:
    # "func (path/to/module.py:123)" -> "func (module.py)"
    m = re.match(r"^(.*) \((.*?):(\d+)\)$", frame)
    if not m:
        return frame
    path = m.group(2)
    short = "/".join(path.split("/")[-2:]) if "site-packages" in path or "/worker/" in path else path.split("/")[-1]
    return f"{m.group(1)} ({short})"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("profile")
    p.add_argument("--top", type=int, default=25)
    a = p.parse_args()
    self_c: collections.Counter = collections.Counter()
    incl: collections.Counter = collections.Counter()
    total = idle = 0
    for line in open(a.profile, encoding="utf-8", errors="replace"):
        line = line.rstrip("\n")
        if not line:
            continue
        stack, _, count = line.rpartition(" ")
        n = int(count)
        frames = [f for f in stack.split(";") if f and not f.startswith("process ") and not f.startswith("thread ")]
        total += n
        if frames and IDLE.match(frames[-1]):
            idle += n
            continue
        if frames:
            self_c[frame_name(frames[-1])] += n
        for name in {frame_name(f) for f in frames}:
            incl[name] += n
    busy = total - idle
    print(f"samples: {total}, idle in selector: {idle} ({100 * idle / max(total, 1):.1f}%), "
          f"busy: {busy} ({100 * busy / max(total, 1):.1f}%)")
    print("\ntop self (leaf) functions, % of busy samples:")
    for name, n in self_c.most_common(a.top):
        print(f"  {100 * n / max(busy, 1):5.1f}%  {name}")
    print("\ntop inclusive functions, % of busy samples:")
    for name, n in incl.most_common(a.top):
        print(f"  {100 * n / max(busy, 1):5.1f}%  {name}")


if __name__ == "__main__":
    main()
