"""The console's parts below the app load no Textual (as tconbeer/harlequin checks), and every
access the screens use follows one typed protocol, which the test fake follows too."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

from console_data import FakeAccess
from ppss_tui.access import ConsoleAccess, JobAccess

HEADLESS = ("ppss_tui.poller", "ppss_tui.snapshot", "ppss_tui.access", "ppss_tui.format", "ppss_tui.nodeview",
            "ppss_tui.failgroups", "ppss_tui.settings", "ppss_tui.clusterfile", "ppss_tui.watch", "ppss_tui.failedcmd",
            "ppss_tui.statusread")


@pytest.mark.parametrize("module", HEADLESS)
def test_headless_module_loads_no_textual(module):
    probe = (f"import sys, importlib; importlib.import_module({module!r}); "
             "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'textual'); "
             "print(','.join(bad)); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"{module} loads Textual: {r.stdout[:300]} {r.stderr[-500:]}"


def test_the_probe_can_fail():
    r = subprocess.run([sys.executable, "-c", "import sys, ppss_tui.app; "
                        "sys.exit(1 if 'textual' in sys.modules else 0)"], capture_output=True, timeout=60)
    assert r.returncode == 1


def _members(cls) -> dict[str, inspect.Signature]:
    return {name: inspect.signature(fn) for name, fn in inspect.getmembers(cls, inspect.iscoroutinefunction)
            if not name.startswith("_")}


@pytest.mark.parametrize("impl", [JobAccess, FakeAccess])
def test_access_follows_the_protocol(impl):
    wanted = _members(ConsoleAccess)
    assert set(wanted) == {"set_state", "set_slots", "read_control", "write_control", "failed", "retry",
                           "item_log", "node_joblog"}
    have = _members(impl)
    for name, sig in wanted.items():
        assert name in have, f"{impl.__name__} lacks {name}"
        assert list(have[name].parameters) == list(sig.parameters), f"{impl.__name__}.{name}{have[name]}"
    assert isinstance(impl.__new__(impl), ConsoleAccess)


def test_worker_never_loads_clustershell():
    probe = ("import sys, pkgutil, importlib, worker\n"
             "for m in pkgutil.walk_packages(worker.__path__, 'worker.'):\n"
             "    if m.name != 'worker.__main__': importlib.import_module(m.name)\n"
             "sys.exit(1 if 'ClusterShell' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", probe], timeout=60).returncode == 0
    r = subprocess.run([sys.executable, "-c", "import sys, ppss_tui.failgroups; "
                        "sys.exit(1 if 'ClusterShell' in sys.modules else 0)"], timeout=60)
    assert r.returncode == 1  # the probe sees it when it is there
