"""Widgets of the console: each renders part of a ``JobSnapshot`` and nothing else."""

from .jobstable import JobsTable
from .nodetable import NodeDetail, NodeTable
from .summary import JobSummary

__all__ = ["JobSummary", "JobsTable", "NodeDetail", "NodeTable"]
