"""Shared pytest fixtures: real OpenSSH servers on 127.0.0.1 (see tests/sshcluster.py)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sshcluster import SSHD, MakeCluster, SshCluster, sshd_available  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "ssh: needs a real OpenSSH sshd (started by fixtures)")


def _require_sshd() -> None:
    """Skip locally when sshd is missing; under CI a missing sshd is a hard failure."""
    if sshd_available():
        return
    msg = f"{SSHD} not found: install openssh-server (apt-get install openssh-server)"
    if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        pytest.fail(f"CI is set but {msg}", pytrace=False)
    pytest.skip(msg)


@pytest.fixture
def require_sshd() -> None:
    """For tests that build ``SshServer``/``SshCluster`` objects themselves."""
    _require_sshd()


@pytest.fixture(scope="session")
def ssh_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshCluster]:
    """master + node1..node3, shared by the whole session.  Do not stop or re-key these."""
    _require_sshd()
    cluster = SshCluster(tmp_path_factory.mktemp("sshcluster"), n_nodes=3)
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def fresh_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MakeCluster]:
    """Factory ``make_cluster(n_nodes=2)`` for tests that stop, kill or re-key servers."""
    _require_sshd()
    clusters: list[SshCluster] = []

    def make_cluster(n_nodes: int = 2) -> SshCluster:
        cluster = SshCluster(tmp_path_factory.mktemp("fresh_cluster"), n_nodes=n_nodes)
        clusters.append(cluster)
        return cluster

    try:
        yield make_cluster
    finally:
        for cluster in clusters:
            cluster.close()
