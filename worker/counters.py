"""What this node has done: the counters its status file reports (and takes back on restart)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Counters:
    done: int = 0
    failed: int = 0
    added: int = 0  # items this node found in a watched directory
    lost_leases: int = 0  # results refused because another node took the item over
    failed_this_run: int = 0
    job_failed: int = 0  # failed items of the whole job, known at the end
