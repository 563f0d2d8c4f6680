"""deploy/start/erase/check at fleet size: the grouped summary (outcome, reason, node ranges),
and the per-node lines kept when the output is not a terminal."""

from __future__ import annotations

import io

from ppss_tui.clusterfile import NodeSpec
from ppss_tui.deploy import FAILED, OK, UNREACHABLE, NodeResult, Reporter, group_results, reason, positive_int


def result(i: int, outcome: str, word: str, detail: str, port: int | None = None) -> NodeResult:
    return NodeResult(NodeSpec(f"node{i:03d}", "10.0.0.%d" % i, "ppss", port), outcome, word, detail)


def test_nodes_group_by_outcome_word_and_reason_with_ranges() -> None:
    results = [result(i, OK, "installed", f"ppss 0.1 in ~/.ppss (10.0.0.{i})") for i in range(1, 91)]
    results += [result(i, OK, "up to date", "ppss 0.1") for i in range(91, 98)]
    # the same failure, worded with each node's own address: one group
    results += [result(i, UNREACHABLE, "UNREACHABLE", f"ppss@10.0.0.{i}:22: connection refused", port=22)
                for i in (98, 99)]
    results += [result(100, FAILED, "FAILED", "python3 missing")]
    lines = group_results(results)
    assert lines == ["  installed (90): node[001-090]",
                     "  up to date (7): node[091-097]",
                     "  FAILED (1): node100: python3 missing",
                     "  UNREACHABLE (2): node[098-099]: NODE: connection refused"]


def test_reason_hides_what_names_the_node() -> None:
    r = result(7, FAILED, "FAILED", "node007 (ppss@10.0.0.7:2222): cannot log into the master", port=2222)
    assert reason(r) == "NODE (NODE): cannot log into the master"


def test_different_reasons_stay_apart() -> None:
    lines = group_results([result(1, FAILED, "FAILED", "disk full"), result(2, FAILED, "FAILED", "no venv"),
                           result(3, FAILED, "FAILED", "disk full")])
    assert lines == ["  FAILED (2): node[001,003]: disk full", "  FAILED (1): node002: no venv"]


def test_not_a_terminal_one_plain_line_per_node() -> None:
    out = io.StringIO()
    nodes = tuple(NodeSpec(f"n{i}", "h") for i in range(3))
    rep = Reporter(nodes, out, verb="deploy")
    assert rep.progress is None
    rep.line(NodeResult(nodes[0], OK, "installed", "ppss 0.1"))
    rep.close()
    assert out.getvalue() == "n0    installed   ppss 0.1\n"


def test_parallel_must_be_positive() -> None:
    import argparse

    import pytest
    assert positive_int("64") == 64
    for bad in ("0", "-1", "x"):
        with pytest.raises(argparse.ArgumentTypeError):
            positive_int(bad)


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_a_progress_bar_and_the_lines_above_it() -> None:
    out = Tty()
    nodes = tuple(NodeSpec(f"n{i}", "h") for i in range(3))
    rep = Reporter(nodes, out, verb="deploy")
    assert rep.progress is not None
    for n in nodes:
        rep.line(NodeResult(n, OK, "installed", "ppss 0.1"))
    assert rep.progress.tasks[0].completed == 3
    rep.close()
    text = out.getvalue()
    assert all(f"n{i}    installed   ppss 0.1" in text for i in range(3)), text


def test_a_failure_with_a_shared_why_groups_despite_each_nodes_details() -> None:
    # deploy --autostart on nodes without cron: each line names its own home, the summary one reason
    results = [NodeResult(NodeSpec(f"n{i}", f"h{i}", f"ppss{i}", None), FAILED, "FAILED",
                          f"installed (ppss 0.1 in /home/ppss{i}/.ppss), but --autostart is NOT set up",
                          "installed, but --autostart is NOT set up") for i in (1, 2, 3)]
    assert group_results(results) == ["  FAILED (3): n[1-3]: installed, but --autostart is NOT set up"]
