"""Widgets of the console: each renders part of a ``JobSnapshot`` and nothing else."""

from .nodetable import NodeDetail, NodeTable
from .summary import JobSummary

__all__ = ["JobSummary", "NodeDetail", "NodeTable"]
