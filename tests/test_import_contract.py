"""The worker never imports textual, humanize or ppss_tui (a node needs only asyncssh and PyYAML)."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import worker

FORBIDDEN = ("textual", "humanize", "ppss_tui")
WORKER_DIR = Path(worker.__file__).resolve().parent

PROBE = r"""
import contextlib, importlib, io, pkgutil, sys
import worker
names = sorted(m.name for m in pkgutil.walk_packages(worker.__path__, "worker."))
names = [n for n in names if n != "worker.__main__"]   # __main__ runs the CLI on import
for name in names:
    importlib.import_module(name)
from worker import cli
out = io.StringIO()
with contextlib.redirect_stdout(out):
    try:
        cli.main(["--help"])
    except SystemExit as exc:
        assert exc.code == 0, exc.code
assert "ppss-worker" in out.getvalue()
bad = sorted(m for m in sys.modules if m.split(".")[0] in {FORBIDDEN})
print("IMPORTED", len(names), ",".join(names))
print("FORBIDDEN", ",".join(bad))
assert not bad, bad
"""


def _worker_modules() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages(worker.__path__, "worker."))


def test_worker_runtime_imports_nothing_forbidden() -> None:
    code = PROBE.replace("{FORBIDDEN}", repr(set(FORBIDDEN)))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    lines = dict(line.split(" ", 1) for line in res.stdout.splitlines() if " " in line)
    imported = lines["IMPORTED"].split(" ", 1)[1].split(",")
    # the probe really imported every module (not a vacuous pass)
    expected = [m for m in _worker_modules() if m != "worker.__main__"]
    assert imported == expected
    assert {"worker.engine", "worker.cli", "worker.store", "worker.sshconn"} <= set(imported)
    assert lines["FORBIDDEN"].strip() == ""


def test_ppss_worker_help_subprocess_imports_nothing_forbidden() -> None:
    # `python -m worker --help` exercises worker/__main__.py too
    code = ("import runpy, sys\nsys.argv = ['ppss-worker', '--help']\n"
            "try:\n    runpy.run_module('worker', run_name='__main__')\n"
            "except SystemExit as exc:\n    assert exc.code == 0, exc.code\n"
            f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {set(FORBIDDEN)!r})\n"
            "print('FORBIDDEN', bad)\nassert not bad\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "usage: ppss-worker" in res.stdout
    assert "FORBIDDEN []" in res.stdout


def test_probe_detects_a_forbidden_import() -> None:
    # The check itself must be able to fail: importing humanize is seen.
    code = ("import sys, humanize\n"
            f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {set(FORBIDDEN)!r})\n"
            "assert not bad, bad\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode != 0 and "humanize" in res.stderr


def _imported_roots(source: str, filename: str) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call):
            # importlib.import_module("x") / __import__("x") with a literal name
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("import_module", "__import__") and node.args \
                    and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                roots.add(node.args[0].value.split(".")[0])
    return roots


def test_static_no_forbidden_imports_in_worker_sources() -> None:
    files = sorted(WORKER_DIR.rglob("*.py"))
    assert len(files) >= 10
    offenders = {}
    for path in files:
        bad = _imported_roots(path.read_text(), str(path)) & set(FORBIDDEN)
        if bad:
            offenders[str(path.relative_to(WORKER_DIR))] = sorted(bad)
    assert offenders == {}


def test_static_check_sees_imports() -> None:
    src = "import os\nfrom textual.app import App\nimport humanize as h\n" \
          "def f():\n    import ppss_tui.cli\n    importlib.import_module('textual.widgets')\n"
    assert _imported_roots(src, "x.py") >= {"textual", "humanize", "ppss_tui"}


MAX_METHODS = 25
MAX_LINES = 60


def _oversized(source: str, filename: str) -> list[str]:
    """Classes over MAX_METHODS methods and functions over MAX_LINES lines in one source."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.ClassDef):
            methods = sum(isinstance(b, (ast.FunctionDef, ast.AsyncFunctionDef)) for b in node.body)
            if methods > MAX_METHODS:
                found.append(f"{filename}:{node.name} has {methods} methods")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lines = node.end_lineno - node.lineno + 1
            if lines > MAX_LINES:
                found.append(f"{filename}:{node.name} has {lines} lines")
    return found


def test_worker_classes_and_functions_stay_small() -> None:
    found = []
    for path in sorted(WORKER_DIR.rglob("*.py")):
        found += _oversized(path.read_text(), str(path.relative_to(WORKER_DIR)))
    assert found == []


def test_size_check_sees_a_big_class_and_a_long_function() -> None:
    big = "class Big:\n" + "".join(f"    def m{i}(self): pass\n" for i in range(MAX_METHODS + 1))
    long = "def f():\n" + "    x = 1\n" * MAX_LINES
    assert len(_oversized(big + long, "x.py")) == 2
