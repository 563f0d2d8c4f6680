"""The engine end to end with a LOCAL master path: ppss-console and ppss-worker as real processes.

Items are data, never code: every awkward name must reach the command byte for byte, and
nothing in a name may ever run (no file ``pwned`` appears anywhere).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ppss_helpers import (AWKWARD_LINES, Job, assert_ok, assert_one_line_error, console, items_n, run_worker,
                          status_json, write_items)
from worker import layout as L

RECORD_ITEM = 'printf "%s" "$ITEM" > "$OUTPUT_DIR/item"'


def no_pwned(root: Path) -> None:
    found = [p for p in root.rglob("*") if p.name == "pwned"]
    assert not found, f"an item name was executed as shell code: {found}"


def output_items(job: Path, items: list[bytes]) -> dict[bytes, bytes]:
    """item -> bytes the command wrote into its OUTPUT_DIR/item."""
    out = {}
    for item in items:
        f = job / L.output_path(L.item_id(item)) / "item"
        out[item] = f.read_bytes() if f.exists() else None
    return out


@pytest.fixture
def work(tmp_path: Path) -> Path:
    (tmp_path / "cwd").mkdir()
    return tmp_path


# ---------------------------------------------------------------------------------------------
# awkward names


def test_awkward_names_source_file_byte_exact(work: Path) -> None:
    items = AWKWARD_LINES
    src = write_items(work / "items.txt", [b"", *items[:5], b"", b"", *items[5:], b""])
    job = Job(work / "job")
    res = job.init("--source-file", str(src), "--command", RECORD_ITEM, cwd=work / "cwd")
    assert f"{len(items)} items" in res.stdout
    res = run_worker(str(job), "--slots", "3", "--node-name", "local1", cwd=work / "cwd")
    assert_ok(res)
    got = output_items(job, items)
    assert got == {i: i for i in items}
    no_pwned(work)
    assert status_json(str(job))["done"] == len(items)


def test_awkward_names_stdin_null_separated(work: Path) -> None:
    items = [*AWKWARD_LINES, b"new\nline", b"\n", b"ends with newline\n", b"\r\n"]
    data = b"".join(i + b"\0" for i in items) + b"\0\0"
    job = Job(work / "job")
    res = job.init("--source-file", "-", "--null", "--command", RECORD_ITEM, cwd=work / "cwd", input=data)
    assert f"{len(items)} items" in res.stdout
    assert_ok(run_worker(str(job), "--slots", "4", "-n", "n0", cwd=work / "cwd"))
    assert output_items(job, items) == {i: i for i in items}
    no_pwned(work)


def test_item_without_ITEM_is_last_argument(work: Path) -> None:
    """`--command CMD` without ITEM: the item is appended as one argument, never parsed."""
    (work / "ITEMS").mkdir()
    script = work / "ITEMS" / "record.sh"  # a path that contains "ITEM" is not a mention of $ITEM
    results = work / "results"
    results.mkdir()
    script.write_text('#!/bin/sh\nprintf "%s" "$#" > "' + str(results) + '/$ITEM_ID.argc"\n'
                      'printf "%s" "$1" > "' + str(results) + '/$ITEM_ID"\n')
    script.chmod(0o755)
    items = AWKWARD_LINES
    src = write_items(work / "items", items)
    job = Job(work / "job")
    job.init("--source-file", str(src), "--command", str(script), cwd=work / "cwd")
    assert_ok(run_worker(str(job), "--slots", "2", "-n", "n0", cwd=work / "cwd"))
    for item in items:
        ident = L.item_id(item)
        assert (results / f"{ident}.argc").read_text() == "1", item
        assert (results / ident).read_bytes() == item
    no_pwned(work)


def test_printf_habit_output_goes_to_log_and_joblog(work: Path) -> None:
    """`--command 'printf %s'` (no ITEM): output in the per-item log and the JSON-lines job log."""
    items = [b"-n", b"$(touch pwned)", b"hello world", b"%d"]
    src = write_items(work / "items", items)
    job = Job(work / "job")
    job.init("--source-file", str(src), "--command", "printf %s", cwd=work / "cwd")
    assert_ok(run_worker(str(job), "--slots", "2", "-n", "logger", cwd=work / "cwd"))
    for item in items:
        log = (job / L.log_path(L.item_id(item))).read_bytes()
        assert log.endswith(item), (item, log)
    events = [json.loads(line) for line in (job / L.joblog_path("logger")).read_text().splitlines()]
    done = [e for e in events if e.get("event") == "done"]
    assert sorted(L.item_from_json(e["item"]) for e in done) == sorted(items)
    for e in done:
        assert e["exit"] == 0 and e["node"] == "logger" and e["host"]
        assert isinstance(e["start"], (int, float)) and e["start"] > 1e9
        assert isinstance(e["duration"], (int, float)) and e["duration"] >= 0
        assert e["output_tail"] == L.item_from_json(e["item"]).decode()
    no_pwned(work)


def test_environment_variables(work: Path) -> None:
    items = [b"a", b"b b", b"c'c"]
    src = write_items(work / "items", items)
    job = Job(work / "job")
    cmd = ('printf "%s\\n%s\\n%s\\n%s\\n" "$ITEM_ID" "$PPSS_NODE" "$PPSS_SLOT" "$OUTPUT_DIR" '
           '> "$OUTPUT_DIR/env"; printf %s "$ITEM" > "$OUTPUT_DIR/item"')
    job.init("--source-file", str(src), "--command", cmd, cwd=work / "cwd")
    assert_ok(run_worker(str(job), "--slots", "2", "--node-name", "envnode", cwd=work / "cwd"))
    dirs = set()
    for item in items:
        ident = L.item_id(item)
        outdir = job / L.output_path(ident)
        ident_seen, node, slot, out = (outdir / "env").read_text().splitlines()
        assert ident_seen == ident
        assert node == "envnode"
        assert slot in ("1", "2")
        assert Path(out).resolve() == outdir.resolve()
        assert (outdir / "item").read_bytes() == item
        dirs.add(out)
    assert len(dirs) == len(items)  # one OUTPUT_DIR per item


# ---------------------------------------------------------------------------------------------
# --source-dir

DIR_NAMES = [
    "plain.wav", "with space.wav", "new\nline.wav", "\nleading newline", "trailing newline\n",
    "quote ' \" both", "$(touch pwned)", "`touch pwned`", "*", "-n", "--help", "back\\slash",
    "unicod\u00e9 \u2603", " lead and trail ", "cr\r", "x" * 255,
]


def make_source_dir(root: Path) -> list[bytes]:
    """Files with awkward names (top level and nested); returns the absolute paths at top level."""
    root.mkdir()
    top = []
    for n, name in enumerate(DIR_NAMES):
        p = root / name
        p.write_text(f"content {n}")
        top.append(os.fsencode(p))
    raw = os.fsencode(root) + b"/\xff\xfe-not-utf8"
    with open(raw, "wb") as fh:
        fh.write(b"content raw")
    top.append(raw)
    sub = root / "sub dir\nwith newline" / ("d" * 200)
    sub.mkdir(parents=True)
    (sub / ("e" * 200)).write_text("deep")  # a path of more than 300 bytes
    (sub / "$(touch pwned)").write_text("deep2")
    (root / "link").symlink_to(root / "plain.wav")  # not a regular file: not an item
    os.mkfifo(root / "fifo")                       # likewise
    (root / "emptydir").mkdir()
    return top


def _nested(root: Path) -> list[bytes]:
    sub = root / "sub dir\nwith newline" / ("d" * 200)
    return [os.fsencode(sub / ("e" * 200)), os.fsencode(sub / "$(touch pwned)")]


@pytest.mark.parametrize("recurse", [True, False])
def test_source_dir_awkward_file_names(work: Path, recurse: bool) -> None:
    src = work / "src"
    top = make_source_dir(src)
    expected = top + (_nested(src) if recurse else [])
    assert all(len(p) > 300 for p in _nested(src))
    job = Job(work / "job")
    cmd = 'cat -- "$ITEM" > "$OUTPUT_DIR/content" && printf %s "$ITEM" > "$OUTPUT_DIR/item"'
    args = ["--source-dir", str(src), "--command", cmd] + ([] if recurse else ["--no-recurse"])
    res = job.init(*args, cwd=work / "cwd")
    assert f"{len(expected)} items" in res.stdout
    assert_ok(run_worker(str(job), "--slots", "3", "-n", "dirnode", cwd=work / "cwd"))
    assert output_items(job, expected) == {p: p for p in expected}
    for p in expected:
        content = (job / L.output_path(L.item_id(p)) / "content").read_bytes()
        assert content == Path(os.fsdecode(p)).read_bytes()
    st = status_json(str(job))
    assert (st["total"], st["done"], st["failed"]) == (len(expected), len(expected), 0)
    no_pwned(work)


# ---------------------------------------------------------------------------------------------
# exit codes, failures and retries


def test_exit_code_1_when_an_item_fails(work: Path) -> None:
    src = write_items(work / "items", [b"ok1", b"bad", b"ok2"])
    job = Job(work / "job")
    job.init("--source-file", str(src), "--command", 'test "$ITEM" != bad', cwd=work / "cwd")
    res = run_worker(str(job), "--slots", "2", "-n", "n1", cwd=work / "cwd")
    assert_ok(res, 1)
    st = status_json(str(job))
    assert (st["done"], st["failed"], st["pending"], st["running"]) == (2, 1, 0, 0)
    assert st["nodes"][0]["state"] == "finished"
    # status exits 1 when the job has failed items (documented)
    assert console("status", str(job)).returncode == 1


def test_retry_succeeds_second_time(work: Path) -> None:
    marks = work / "marks"
    marks.mkdir()
    runs = work / "runs"
    items = items_n(12)
    src = write_items(work / "items", items)
    job = Job(work / "job")
    cmd = (f'echo "$ITEM_ID" >> "{runs}"; '
           f'if [ -e "{marks}/$ITEM_ID" ]; then exit 0; else touch "{marks}/$ITEM_ID"; exit 7; fi')
    job.init("--source-file", str(src), "--command", cmd, "--retries", "1", cwd=work / "cwd")
    res = run_worker(str(job), "--slots", "3", "-n", "n1", cwd=work / "cwd")
    assert_ok(res, 0)
    ids = runs.read_text().split()
    assert sorted(ids) == sorted([L.item_id(i) for i in items] * 2)  # each ran exactly twice
    st = status_json(str(job), "--recount")
    assert (st["done"], st["failed"], st["pending"]) == (12, 0, 0)
    assert json.loads(console("failed", str(job), "--json").stdout) == []


def test_always_failing_items_are_listed(work: Path) -> None:
    runs = work / "runs"
    items = [b"f1", b"f 2", b"-n"]
    src = write_items(work / "items", [*items, b"good"])
    job = Job(work / "job")
    cmd = f'echo "$ITEM_ID" >> "{runs}"; [ "$ITEM" = good ] && exit 0; echo "boom $ITEM"; exit 3'
    job.init("--source-file", str(src), "--command", cmd, "--retries", "2", cwd=work / "cwd")
    res = run_worker(str(job), "--slots", "2", "-n", "failnode", cwd=work / "cwd")
    assert_ok(res, 1)
    ids = runs.read_text().split()
    for item in items:
        assert ids.count(L.item_id(item)) == 3, item  # 1 + 2 retries
    assert ids.count(L.item_id(b"good")) == 1
    records = json.loads(console("failed", str(job), "--json").stdout)
    assert sorted(L.item_from_json(r["item"]) for r in records) == sorted(items)
    for r in records:
        assert r["exit"] == 3 and r["node"] == "failnode" and r["attempt"] == 3
    text = console("failed", str(job), "--raw")
    assert_ok(text)
    lines = text.stdout.splitlines()
    assert len(lines) == 3
    for line in lines:
        assert "exit 3" in line and "failnode" in line
    st = status_json(str(job), "--recount")
    assert (st["done"], st["failed"], st["pending"]) == (1, 3, 0)
    st = status_json(str(job))
    assert (st["done"], st["failed"], st["pending"]) == (1, 3, 0)


def test_worker_rerun_on_finished_job_runs_nothing(work: Path) -> None:
    runs = work / "runs"
    items = items_n(5)
    src = write_items(work / "items", items)
    job = Job(work / "job")
    job.init("--source-file", str(src), "--command", f'echo "$ITEM_ID" >> "{runs}"', cwd=work / "cwd")
    assert_ok(run_worker(str(job), "--slots", "2", "-n", "a", cwd=work / "cwd"))
    assert_ok(run_worker(str(job), "--slots", "2", "-n", "a", cwd=work / "cwd"))
    assert_ok(run_worker(str(job), "--slots", "2", "-n", "b", cwd=work / "cwd"))
    assert sorted(runs.read_text().split()) == sorted(L.item_id(i) for i in items)


def test_duplicate_items_run_once(work: Path) -> None:
    runs = work / "runs"
    src = write_items(work / "items", [b"a", b"b", b"a", b"a "])
    job = Job(work / "job")
    res = job.init("--source-file", str(src), "--command", f'echo "$ITEM_ID" >> "{runs}"', cwd=work / "cwd")
    assert "3 items" in res.stdout
    assert_ok(run_worker(str(job), "-n", "a", "--slots", "2", cwd=work / "cwd"))
    assert sorted(runs.read_text().split()) == sorted(L.item_id(i) for i in (b"a", b"b", b"a "))


# ---------------------------------------------------------------------------------------------
# clean errors


def test_init_refuses_existing_job(work: Path) -> None:
    src = write_items(work / "items", [b"a"])
    job = Job(work / "job")
    job.init("--source-file", str(src), "--command", "true")
    before = (job / "job.yaml").read_bytes()
    res = console("init", str(job), "--source-file", str(src), "--command", "false")
    assert_one_line_error(res, 4, "already exists")
    assert (job / "job.yaml").read_bytes() == before


def test_init_refuses_non_empty_directory(work: Path) -> None:
    src = write_items(work / "items", [b"a"])
    (work / "job").mkdir()
    (work / "job" / "precious").write_text("x")
    res = console("init", str(work / "job"), "--source-file", str(src), "--command", "true")
    assert_one_line_error(res, 4, "not empty")
    assert os.listdir(work / "job") == ["precious"]


@pytest.mark.parametrize("content", [b"", b"\n\n\n"])
def test_init_refuses_empty_source_file(work: Path, content: bytes) -> None:
    src = work / "items"
    src.write_bytes(content)
    res = console("init", str(work / "job"), "--source-file", str(src), "--command", "true")
    assert_one_line_error(res, 2, "no items")
    assert not (work / "job" / "job.yaml").exists()


def test_init_refuses_empty_source_dir(work: Path) -> None:
    (work / "src" / "only" / "dirs").mkdir(parents=True)
    res = console("init", str(work / "job"), "--source-dir", str(work / "src"), "--command", "true")
    assert_one_line_error(res, 2, "no items")


@pytest.mark.parametrize("args, code, fragment", [
    (["--source-file", "/nonexistent/items"], 2, "/nonexistent/items"),
    (["--source-dir", "/nonexistent/dir"], 4, "does not exist"),
    (["--source-dir", "/tmp", "--null"], 2, "--null"),
    (["--source-file", "-", "--no-recurse"], 2, "--no-recurse"),
    (["--source-file", "-", "--retries=-1"], 2, "--retries"),
    (["--source-file", "-", "--lease", "1"], 2, "--lease"),
])
def test_init_usage_errors(work: Path, args: list[str], code: int, fragment: str) -> None:
    res = console("init", str(work / "job"), *args, "--command", "true", input=b"a\n")
    assert_one_line_error(res, code, fragment)
    assert not (work / "job" / "job.yaml").exists()


def test_init_nul_in_line(work: Path) -> None:
    res = console("init", str(work / "job"), "--source-file", "-", "--command", "true", input=b"a\nb\0c\n")
    assert_one_line_error(res, 2, "line 2", "--null")


def test_missing_job_errors(work: Path) -> None:
    missing = str(work / "nope")
    assert_one_line_error(run_worker(missing, "-n", "x", "--slots", "1"), 4, "not a ppss job")
    for sub in ("status", "pause", "failed"):
        assert_one_line_error(console(sub, missing), 4)
    assert not os.path.exists(missing)  # pause/stop never create a job


def test_worker_usage_errors(work: Path) -> None:
    src = write_items(work / "items", [b"a"])
    job = Job(work / "job")
    job.init("--source-file", str(src), "--command", "true")
    assert_one_line_error(run_worker(str(job), "--slots", "0", "-n", "x"), 2, "--slots")
    assert_one_line_error(run_worker(str(job), "--slots", "1", "-n", "bad/name"), 2, "--node-name")
    assert_one_line_error(run_worker("ssh://h:99999/x", "-n", "x"), 2, "bad port")
    assert_one_line_error(console("status", "ftp://h/x"), 2, "unsupported scheme")
    # nothing ran
    st = status_json(str(job))
    assert st["done"] == 0


def test_corrupt_job_yaml_is_one_line(work: Path) -> None:
    src = write_items(work / "items", [b"a"])
    job = Job(work / "job")
    job.init("--source-file", str(src), "--command", "true")
    (job / "job.yaml").write_text("command: [\n")
    assert_one_line_error(run_worker(str(job), "-n", "x", "--slots", "1"), 4, "job.yaml", "line")
    assert_one_line_error(console("status", str(job)), 4, "job.yaml")


# ---------------------------------------------------------------------------------------------
# interrupting a worker (local master: fast)


def _wait_file(path: Path, timeout: float = 30) -> None:
    from ppss_helpers import wait_for
    wait_for(path.exists, timeout, f"{path.name} to appear")


def test_sigint_releases_claims_exit_130(work: Path) -> None:
    from ppss_helpers import finish, start_worker
    import signal
    items = items_n(6)
    src = write_items(work / "items", items)
    job = Job(work / "job")
    started = work / "started"
    job.init("--source-file", str(src), "--command", f'touch {started}; sleep 30; : "$ITEM"')
    proc = start_worker(str(job), "--slots", "2", "-n", "ctrlc", cwd=work / "cwd")
    try:
        _wait_file(started)
        proc.send_signal(signal.SIGINT)
        code, _, err = finish(proc, timeout=20)  # items are terminated, not waited for (30 s)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert code == 130, err
    assert "Traceback" not in err
    assert not [p for p in (job / L.LOCKS_DIR).glob("*/*/*") if p.name.startswith("ctrlc@")]
    assert not list((job / L.LOCKS_DIR).glob("*/*"))  # released: the lock directories are gone
    st = status_json(str(job))
    assert (st["done"], st["failed"], st["running"], st["pending"]) == (0, 0, 0, 6)
    assert st["nodes"][0]["state"] == "stopped"


def test_item_completing_during_shutdown_is_recorded(work: Path) -> None:
    from ppss_helpers import finish, start_worker
    import signal
    src = write_items(work / "items", [b"only"])
    job = Job(work / "job")
    runs, started = work / "runs", work / "started"
    # ignores SIGTERM and completes well within the worker's grace period
    job.init("--source-file", str(src), "--command",
         f"trap '' TERM; touch {started}; sleep 1; echo \"$ITEM_ID\" >> {runs}")
    proc = start_worker(str(job), "--slots", "1", "-n", "late", cwd=work / "cwd")
    try:
        _wait_file(started)
        proc.send_signal(signal.SIGTERM)
        code, _, err = finish(proc, timeout=20)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert code == 143, err
    assert runs.read_text().split() == [L.item_id(b"only")]  # it did complete, with exit 0
    assert_ok(run_worker(str(job), "--slots", "1", "-n", "late", cwd=work / "cwd"))
    assert runs.read_text().split() == [L.item_id(b"only")], "the completed item ran again"


def test_defaults_node_name_and_slots(work: Path) -> None:
    import socket
    src = write_items(work / "items", [b"a", b"b"])
    job = Job(work / "job")
    job.init("--source-file", str(src), "--command", ': "$ITEM"')
    assert_ok(run_worker(str(job), cwd=work / "cwd"))
    (node,) = status_json(str(job))["nodes"]
    assert node["name"] == socket.gethostname().split(".")[0]
    assert node["slots"] == os.cpu_count()
    assert node["state"] == "finished" and node["done"] == 2


def test_second_live_worker_with_same_name_refused_and_stop_one_node(work: Path) -> None:
    from ppss_helpers import finish, start_worker, wait_for
    import signal
    items = items_n(40)
    src = write_items(work / "items", items)
    job = Job(work / "job")
    runs = work / "runs"
    job.init("--source-file", str(src), "--command", f'sleep 0.2; echo "$ITEM_ID $PPSS_NODE" >> {runs}')
    a = start_worker(str(job), "--slots", "2", "-n", "a", cwd=work / "cwd")
    b = None
    try:
        wait_for(lambda: runs.exists() and len(runs.read_text().split()) >= 2, 30, "worker a running")
        res = run_worker(str(job), "--slots", "2", "-n", "a", cwd=work / "cwd", timeout=30)
        assert_one_line_error(res, 4, "already running")
        b = start_worker(str(job), "--slots", "2", "-n", "b", cwd=work / "cwd")
        assert_ok(console("stop", str(job), "--node", "a"))
        code, _, err = finish(a, timeout=30)
        assert code == 5, err
        code, _, err = finish(b, timeout=60)
        assert code == 0, err
    finally:
        for p in (a, b):
            if p is not None and p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.communicate()
    lines = runs.read_text().splitlines()
    ids = [line.split()[0] for line in lines]
    assert sorted(ids) == sorted(L.item_id(i) for i in items)  # all done, each once
    st = {n["name"]: n for n in status_json(str(job))["nodes"]}
    assert st["a"]["state"] == "stopped" and st["b"]["state"] == "finished"
    assert st["a"]["done"] + st["b"]["done"] == len(items)


def test_three_workers_share_a_one_chunk_job(work: Path) -> None:
    """All items in one chunk: the two workers that help its sweeper get a fair share too."""
    from ppss_helpers import finish, start_worker
    src = write_items(work / "items", items_n(90))
    job = Job(work / "job")
    job.init("--source-file", str(src), "--command", ': "$ITEM"; sleep 0.1')
    procs = [start_worker(str(job), "--slots", "2", "-n", f"w{i}", cwd=work / "cwd") for i in range(3)]
    assert [finish(p, timeout=60)[0] for p in procs] == [0, 0, 0]
    done = {n["name"]: n["done"] for n in status_json(str(job))["nodes"]}
    assert sum(done.values()) == 90
    assert min(done.values()) >= 15, done  # about 30 each; none left idle


def test_wait_runs_a_job_created_after_the_worker_started(work: Path, monkeypatch, capsys) -> None:
    """`ppss-worker --wait` (the @reboot line of deploy --autostart) on a job not created yet
    waits for it, saying so once, then runs it; without --wait that is one error line, exit 4."""
    import threading
    import time
    import worker.cli as cli
    from ppss_helpers import assert_exactly_once
    job = work / "later" / "job"
    res = run_worker(str(job), "--node-name", "w")
    assert_one_line_error(res, 4, "no such directory")
    monkeypatch.setattr(cli, "WAIT_POLL", 0.2)
    items = items_n(5)
    src = work / "items"
    src.write_bytes(b"".join(i + b"\n" for i in items))

    def create() -> None:
        time.sleep(0.6)
        assert_ok(console("init", str(job), "--source-file", str(src), "--command", 'true "$ITEM"'))
    maker = threading.Thread(target=create)
    maker.start()
    with pytest.raises(SystemExit) as ended:
        cli.main([str(job), "--wait", "--slots", "2", "--node-name", "w"])
    maker.join()
    assert ended.value.code == 0
    assert capsys.readouterr().err.count("not there yet; waiting for ppss-console init") == 1
    assert_exactly_once(Job(job), items)


async def test_wait_takes_a_job_being_made_for_a_job_not_a_root(work: Path, monkeypatch) -> None:
    """With --wait, a directory holding a job's items/, locks/ and sweep/ but no job.yaml yet is a
    job that init is writing (job.yaml comes last): waited for, not served as a jobs root."""
    import asyncio
    import worker.cli as cli
    from worker.address import parse_address
    from worker.store import LocalStore
    monkeypatch.setattr(cli, "WAIT_POLL", 0.05)
    job = work / "job"
    for d in (L.ITEMS_DIR, L.LOCKS_DIR, L.SWEEP_DIR):
        (job / d).mkdir(parents=True)
    store = LocalStore(str(job))
    said: list[str] = []
    finding = asyncio.ensure_future(cli.find_job(store, parse_address(str(job)), True, said.append))
    await asyncio.sleep(0.3)
    assert not finding.done() and len(said) == 1
    (job / L.JOB_FILE).write_bytes(b"the job")
    data, _ = await asyncio.wait_for(finding, 2)
    assert data == b"the job"
    # without --wait the same directory is a root (as before)
    (job / L.JOB_FILE).unlink()
    assert (await cli.find_job(store, parse_address(str(job)), False, said.append))[0] is None
