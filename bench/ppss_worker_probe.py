#!/usr/bin/env python3
"""ppss-worker with instrumentation, for the benchmarks only.

    python3 bench/ppss_worker_probe.py OUT.json [ppss-worker arguments...]

Runs ``worker.cli.main`` unchanged, but counts every SFTP request the worker sends (by packet
type, by patching asyncssh's SFTPClientHandler._send_request; one dict increment per request)
and, at exit, writes to OUT.json: the counts, the worker's own CPU time and peak RSS, and the
CPU time of its reaped children (the items).  Writes its pid to OUT.json.pid at start so a
profiler can attach (``py-spy record --pid``).
"""

from __future__ import annotations

import atexit
import collections
import json
import os
import resource
import sys
import time

out = sys.argv[1]
worker_argv = sys.argv[2:]
with open(out + ".pid", "w") as fh:
    fh.write(f"{os.getpid()}\n")

import worker  # noqa: E402,F401  (first: it imports asyncssh without find_library's subprocesses)
import asyncssh.sftp as S  # noqa: E402

_names = {v: k[4:].lower() for k, v in vars(S).items()
          if k.startswith("FXP_") and isinstance(v, int) and v < 200}
counts: collections.Counter = collections.Counter()
_orig = S.SFTPClientHandler._send_request


def _send_request(self, pkttype, args, waiter):
    counts[pkttype.decode("ascii", "replace") if isinstance(pkttype, bytes)
           else _names.get(pkttype, str(pkttype))] += 1
    return _orig(self, pkttype, args, waiter)


S.SFTPClientHandler._send_request = _send_request
t0 = time.monotonic()


def _dump() -> None:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    data = {"requests": dict(counts), "total_requests": sum(counts.values()),
            "wall_s": time.monotonic() - t0,
            "self_user_s": me.ru_utime, "self_sys_s": me.ru_stime, "maxrss_kb": me.ru_maxrss,
            "children_user_s": kids.ru_utime, "children_sys_s": kids.ru_stime}
    with open(out, "w") as fh:
        json.dump(data, fh)


atexit.register(_dump)

from worker.cli import main  # noqa: E402

main(worker_argv)
