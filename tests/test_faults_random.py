"""issue 9.12: rounds of SIGKILL and restart of random workers during a job (real sshd, real
worker processes). Whatever the seed: one record per item, one final job-log line per item (the
lines a kill lost are restored at the end), and per kill at most the killed node's slots run
again (items whose command had ended but whose result was not yet recorded).

The seed is printed (pytest -s) and can be fixed with PPSS_FAULT_SEED=N.
"""

from __future__ import annotations

import os
import random
import sys
import time
from collections import Counter

import pytest

from ppss_helpers import assert_exactly_once, items_n
from sshcluster import SshCluster
from test_fault_tolerance import LEASE, make_job  # noqa: F401  (fixture)
from worker import layout as L

pytestmark = [pytest.mark.ssh, pytest.mark.timeout(120)]

NODES = ("r1", "r2", "r3")
SLOTS = 2
ROUNDS = 5


def test_random_kills_and_restarts(ssh_cluster: SshCluster, make_job) -> None:  # noqa: F811
    seed = int(os.environ.get("PPSS_FAULT_SEED") or random.randrange(1 << 30))
    print(f"[faults-random] seed {seed} (PPSS_FAULT_SEED={seed} to repeat)", file=sys.stderr, flush=True)
    rng = random.Random(seed)
    items = items_n(300)
    job = make_job(ssh_cluster)
    job.init("--command", job.timed("sleep 0.15"), "--lease", str(LEASE), items=items)
    for node in NODES:
        job.start(node, SLOTS)
    kills = 0
    for _ in range(ROUNDS):
        time.sleep(rng.uniform(0.8, 2.0))
        if job.done_count() >= len(items) - 3 * len(NODES) * SLOTS:
            break  # too close to the end for a kill to mean much
        victim = rng.choice(NODES)
        if job.procs[victim].poll() is not None:
            continue
        job.kill_node(victim)
        kills += 1
        time.sleep(rng.uniform(0.0, 1.0))
        job.start(victim, SLOTS)  # the same name: it takes back its own claims at once
    assert kills >= 2, f"seed {seed}: the job ended before two kills"
    for node in NODES:
        job.wait_ok(node, 60)
    counts = Counter(item for item, *_ in job.executions())
    again = {i: n for i, n in counts.items() if n > 1}
    restored = sum(1 for e in job.joblog() if e.get("restored"))
    print(f"[faults-random] seed {seed}: {kills} kills, {len(again)} items ran twice, "
          f"{restored} job-log lines restored", file=sys.stderr)
    assert_exactly_once(job, items, executions=[L.item_id(i.encode()) for i, n in counts.items()
                                                for _ in range(n)],
                        may_repeat={L.item_id(i.encode()) for i in again})
    assert sum(n - 1 for n in again.values()) <= kills * SLOTS, (seed, again)
