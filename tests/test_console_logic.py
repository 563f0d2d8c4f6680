"""Unit tests for the console's pure logic: folding, grouping, rates, ETA, snapshot building;
and Pilot tests of the keys against a recording JobAccess (no network)."""

from __future__ import annotations

import pytest

from console_data import NOW, FakeAccess, cluster, failed_records, snapshot
from ppss_tui import format as F
from ppss_tui.app import PpssConsole, read_keymap
from ppss_tui.failgroups import fold_names, group_failures
from ppss_tui.snapshot import (CONNECTING, HOSTKEY_CHANGED, HOSTKEY_UNKNOWN, LOGIN_REFUSED, NOT_LISTED,
                               UNREACHABLE, UP, NodeHealth, RateMeter, build_snapshot,
                               classify_connect_error, eta_seconds, parse_proc, rate_of)
from ppss_tui.widgets import NodeTable
from worker.control import Control, NodeControl
from worker.jobspec import JobSpec
from worker.jobstatus import JobStatus, NodeStatus, RunningItem


# ---- fold_names ---------------------------------------------------------------------------------

@pytest.mark.parametrize("names, folded", [
    (["node1", "node2", "node3", "node7"], "node[1-3,7]"),
    (["node7"], "node7"),
    (["node3", "node1", "node2", "node2"], "node[1-3]"),
    (["web", "node1", "node2", "db"], "db,node[1-2],web"),
    (["n01", "n02", "n03", "n10"], "n[01-03,10]"),
    (["n1", "n01"], "n[1,01]"),
    (["a1", "b1", "a2"], "a[1-2],b1"),
    (["rack1-node1", "rack1-node2", "rack2-node1"], "rack1-node[1-2],rack2-node1"),
    (["node1", "node3", "node5"], "node[1,3,5]"),
    ([], ""),
])
def test_fold_names(names, folded):
    assert fold_names(names) == folded


def test_group_failures_groups_identical_tails_and_folds_nodes():
    groups = group_failures(failed_records())
    assert [(g.count, g.exit, g.nodes) for g in groups] == [
        (5, 2, "node[1-3,7]"), (3, 137, "gpu1,node4"), (1, 1, "node2")]
    # The item's own text is neutralised so per-item messages still group together.
    assert groups[0].tail == "lame: $ITEM: unsupported WAV format (ADPCM)"
    assert groups[0].last_line.endswith("(ADPCM)")
    assert groups[0].items[0] == "/srv/wavs/a 1.wav"  # earliest start first
    assert groups[1].tail == "encoding frame 90210\nKilled"


def test_group_failures_keeps_different_exit_codes_apart():
    recs = [{"id": "1", "item": "x", "node": "n1", "exit": 1, "output_tail": "boom\n"},
            {"id": "2", "item": "y", "node": "n2", "exit": 2, "output_tail": "boom\n"}]
    assert len(group_failures(recs)) == 2


# ---- rates and ETA ------------------------------------------------------------------------------

def test_rate_of_and_eta():
    assert rate_of([(0.0, 0)]) is None
    assert rate_of([(0.0, 10), (4.0, 30)]) == pytest.approx(5.0)
    assert eta_seconds(100, 5.0) == pytest.approx(20.0)
    assert eta_seconds(0, None) == 0.0
    assert eta_seconds(10, 0.0) is None


def test_rate_meter_window_reset_and_history():
    m = RateMeter(window=10, bucket=5, span=20)
    for t in range(0, 31):
        m.add(float(t), 2 * t)
    assert m.rate == pytest.approx(2.0)
    assert m.samples[0][0] >= 19  # older samples dropped
    assert list(m.history) == pytest.approx([2.0] * 4)  # span/bucket = 4 buckets kept
    m.add(31.0, 3)  # the counter went down: a worker restarted
    assert m.rate is None
    m.add(33.0, 7)
    assert m.rate == pytest.approx(2.0)


def test_eta_is_humanized():
    snap = snapshot()
    assert snap.eta == pytest.approx(9528.3, abs=1) and F.eta(snap) == "3 hours"
    assert F.age(0.5) == "now" and F.age(300) == "5 minutes ago"


# ---- parsing what nodes and ssh say -------------------------------------------------------------

def test_classify_connect_error():
    fp = "SHA256:abcDEF0123+/xyz"
    assert classify_connect_error(f"u@h:22: HOST KEY CHANGED (it offers {fp}); it does not match kh") == \
        (HOSTKEY_CHANGED, f"u@h:22: HOST KEY CHANGED (it offers {fp}); it does not match kh", fp)
    assert classify_connect_error(f"h: host key unknown (it offers {fp}), not in kh")[::2] == (HOSTKEY_UNKNOWN, fp)
    assert classify_connect_error("h: login refused (no accepted key)")[0] == LOGIN_REFUSED
    assert classify_connect_error("h: cannot connect: Connection refused")[0] == UNREACHABLE


def test_parse_proc():
    text = ("0.52 0.58 0.59 1/467 12345\nMemTotal:       16318064 kB\nMemFree:  1000 kB\n"
            "MemAvailable:   8159032 kB\nBuffers: 1 kB\n")
    assert parse_proc(text) == ((0.52, 0.58, 0.59), 8159032 * 1024, 16318064 * 1024)
    assert parse_proc("") == (None, None, None)


# ---- building snapshots -------------------------------------------------------------------------

def _status(nodes, control=None, total=1000):
    spec = JobSpec(command="true", total=total, chunks=1, chunk_size=1000, source_kind="file", source="-",
                   lease=60.0)
    return JobStatus(spec, tuple(nodes), control or Control(), "", 0, NOW)


def test_build_snapshot_combines_status_health_and_control():
    c = cluster()
    nodes = [NodeStatus("node1", "running", slots=2, done=100, failed=2, last_seen_s=0.5,
                        running=(RunningItem("aa11", "/x/a.wav", 1, NOW - 3), RunningItem("bb22", "/x/b.wav", 0, NOW)),
                        claims=(("cc33", "/x/c.wav"),)),
             NodeStatus("node2", "paused", slots=1, done=50, last_seen_s=500.0),  # lost (older than lease)
             NodeStatus("stray", "running", host="stray.lan", slots=1, done=5, last_seen_s=1.0)]
    control = Control("running", {"node1": NodeControl(None, 4)})
    health = {"node1": NodeHealth(UP, load=(1.0, 2.0, 3.0), mem_free=1024, mem_total=2048),
              "node2": NodeHealth(UNREACHABLE, "node2: cannot connect: Connection refused")}
    meters = {"node1": RateMeter()}
    meters["node1"].add(0.0, 0)
    meters["node1"].add(10.0, 102)
    job = RateMeter()
    job.add(0.0, 0)
    job.add(10.0, 157)
    snap = build_snapshot("job", _status(nodes, control), c.nodes, health, job, meters, NOW)
    assert [n.name for n in snap.nodes] == ["node1", "node2", "node3", "node4", "node5", "gpu1", "stray"]
    n1 = snap.node("node1")
    assert (n1.conn, n1.state, n1.slots, n1.control_slots, n1.done, n1.failed) == (UP, "running", 2, 4, 100, 2)
    assert [r.slot for r in n1.running] == [0, 1] and n1.running[0].item == "/x/b.wav"
    assert n1.rate == pytest.approx(10.2) and n1.load == (1.0, 2.0, 3.0)
    assert snap.node("node2").state == "lost" and snap.node("node2").conn == UNREACHABLE
    assert snap.node("node3").state == "no worker" and snap.node("node3").conn == CONNECTING
    assert snap.node("stray").conn == NOT_LISTED and snap.node("stray").host == "stray.lan"
    assert (snap.total, snap.done, snap.failed) == (1000, 155, 2)
    assert snap.running == 2  # node1 runs two; stray runs none; lost node2 does not count
    assert snap.claimed == 3  # node1: 2 running + 1 claimed ahead; lost node2 excluded
    assert snap.rate == pytest.approx(15.7)
    assert snap.eta == pytest.approx((1000 - 157) / 15.7)
    assert F.slots(n1) == "2/2 →4"


def test_build_snapshot_without_master():
    snap = build_snapshot("job", None, cluster().nodes, {}, None, {}, NOW, "error", "master: no answer")
    assert snap.master_state == "error" and snap.master_error == "master: no answer"
    assert len(snap.nodes) == 6 and all(n.state == "no worker" for n in snap.nodes)


# ---- keys, against a recording JobAccess -----------------------------------------------------------

def _app(access, **kw):
    return PpssConsole(cluster(), clock=lambda: NOW, poll=False, snapshot=snapshot(), access=access, **kw)


async def _settle(pilot, access, n):
    for _ in range(50):
        if len(access.calls) >= n:
            return
        await pilot.pause(0.02)


async def test_keys_call_control_functions():
    access = FakeAccess()
    app = _app(access)
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.pause()
        assert app.screen.query_one(NodeTable).selected == "node1"
        await pilot.press("p")
        await _settle(pilot, access, 1)
        await pilot.press("down", "r")          # node2
        await _settle(pilot, access, 2)
        await pilot.press("P")
        await _settle(pilot, access, 3)
        await pilot.press("R")
        await _settle(pilot, access, 4)
        await pilot.press("down", "plus")       # node3: override 6 -> 7
        await _settle(pilot, access, 5)
        await pilot.press("up", "minus")        # node2: reported 4 slots -> 3
        await _settle(pilot, access, 6)
        await pilot.press("z")
        await _settle(pilot, access, 7)
        await pilot.press("s")                  # asks first
        await pilot.pause(0.1)
        assert len(access.calls) == 7
        await pilot.press("n")
        await pilot.pause(0.1)
        await pilot.press("s", "y")
        await _settle(pilot, access, 8)
    assert access.calls == [("set_state", "paused", "node1"), ("set_state", "running", "node2"),
                            ("set_state", "paused", None), ("set_state", "running", None),
                            ("set_slots", "node3", 7), ("set_slots", "node2", 3),
                            ("set_state", "suspended", "node2"), ("set_state", "stopped", None)]


async def test_keymap_remaps_by_binding_id(tmp_path):
    path = tmp_path / "keymap.yaml"
    path.write_text("pause_node: ctrl+t\nslots_up: u\n")
    access = FakeAccess()
    app = _app(access, keymap=read_keymap(str(path)))
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.pause()
        await pilot.press("p")                  # no longer bound
        await pilot.press("ctrl+t", "u")
        await _settle(pilot, access, 2)
    assert access.calls == [("set_state", "paused", "node1"), ("set_slots", "node1", 5)]


async def test_editor_validates_and_refuses_a_concurrent_edit():
    access = FakeAccess()
    app = _app(access)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("e")
        await pilot.pause(0.2)
        editor = app.screen
        area = editor.query_one("#editor")
        area.text = "state: sideways\n"
        await pilot.pause()
        assert "invalid" in str(editor.query_one("#editor-status").render())
        await pilot.press("ctrl+s")
        await pilot.pause(0.1)
        assert access.calls == []               # never saved an invalid file
        area.text = "state: paused\n"
        access.stamp = (NOW + 5, 99)            # someone else saved meanwhile
        await pilot.press("ctrl+s")
        await pilot.pause(0.2)
        assert access.calls == []
        assert "changed by someone else" in str(editor.query_one("#editor-status").render())
        await pilot.press("ctrl+r")             # reload, edit again, save
        await pilot.pause(0.2)
        area.text = "state: paused\n"
        await pilot.press("ctrl+s")
        await pilot.pause(0.2)
        assert access.calls == [("write_control", "state: paused\n")]
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen.id == "main"


# ---- statusread: the poller's incremental read equals read_job_status --------------------------

async def _job_with_statuses(root, n: int):
    import os
    from worker import layout as L
    from worker.jobops import init_job
    from worker.store import LocalStore
    await init_job(LocalStore(str(root)), "true", [b"a", b"b", b"c"], "file", "-")
    old = NOW - 3600
    for i in range(n):
        st = NodeStatus(f"n{i}", "finished" if i % 2 else "running", slots=2, done=i, failed=i % 3,
                        running=(RunningItem(f"{i:04x}", '"a"', 0, old),) if i % 2 == 0 else (), updated=old)
        path = root / L.NODES_DIR / f"n{i}.json"
        path.write_bytes(st.to_json())
        os.utime(path, (old, old))
    (root / L.NODES_DIR / "torn.json").write_bytes(b'{"name": ')
    os.utime(root / L.NODES_DIR / "torn.json", (old, old))


def _same_status(a, b) -> bool:
    """Equal but for the heartbeat ages (the two reads ran at different times)."""
    import dataclasses
    strip = lambda st: tuple(dataclasses.replace(n, last_seen_s=None) for n in st.nodes)  # noqa: E731
    ages_close = all(abs(x.last_seen_s - y.last_seen_s) < 5 for x, y in zip(a.nodes, b.nodes))
    return (strip(a) == strip(b) and ages_close and dataclasses.replace(a, nodes=(), now=0)
            == dataclasses.replace(b, nodes=(), now=0))


@pytest.mark.parametrize("threads", [False, True])
async def test_status_reader_equals_read_job_status_and_rereads_only_changed_files(tmp_path, threads):
    import os
    from ppss_tui.statusread import StatusReader
    from worker import layout as L
    from worker.jobstatus import read_job_status, read_spec
    from worker.store import LocalStore
    await _job_with_statuses(tmp_path, 40)
    store = LocalStore(str(tmp_path))
    spec = await read_spec(store)
    reader = StatusReader(threads=threads)
    first = await reader.read(store, spec)
    assert reader.files_read == 41
    expected = await read_job_status(store, spec)
    assert _same_status(first, expected)
    assert len(first.nodes) == 40   # the torn file skipped, as read_job_status does
    again = await reader.read(store, spec)
    assert reader.files_read == 0 and _same_status(again, first)   # nothing changed: nothing read
    # A node writes a new status: only its file is read again, and the change is seen.
    path = tmp_path / L.NODES_DIR / "n3.json"
    path.write_bytes(NodeStatus("n3", "stopped", slots=2, done=99).to_json())
    third = await reader.read(store, spec)
    assert reader.files_read == 1
    assert next(n for n in third.nodes if n.name == "n3").done == 99
    assert _same_status(third, await read_job_status(store, spec))
    # ... and again next time (changed within the mtime step of that read), then no more.
    await reader.read(store, spec)
    assert reader.files_read == 1
    os.utime(path, (NOW - 60, NOW - 60))
    await reader.read(store, spec)
    assert reader.files_read == 1   # its mtime changed
    await reader.read(store, spec)
    assert reader.files_read == 0
    # A removed node disappears.
    path.unlink()
    assert "n3" not in {n.name for n in (await reader.read(store, spec)).nodes}


async def test_status_reader_reads_a_file_grown_since_the_listing_whole(tmp_path):
    import dataclasses
    from ppss_tui.statusread import StatusReader
    from worker.jobstatus import read_spec
    from worker.store import LocalStore
    await _job_with_statuses(tmp_path, 4)

    class ListsShorter(LocalStore):  # the listing saw n1.json before a longer rewrite
        async def scandir(self, rel):
            entries = await super().scandir(rel)
            return [dataclasses.replace(e, size=e.size - 7) if e.name == "n1.json" else e for e in entries]
    store = ListsShorter(str(tmp_path))
    status = await StatusReader(threads=False).read(store, await read_spec(store))
    assert {n.name for n in status.nodes} == {"n0", "n1", "n2", "n3"}
    assert next(n for n in status.nodes if n.name == "n1").done == 1


# ---- the jobs list's figures ------------------------------------------------------------------

def test_job_rows_eta_and_short_counts():
    from console_data import jobs
    from ppss_tui.snapshot import JobRow
    from ppss_tui.widgets.jobstable import job_columns, progress
    rows = {r.name: r for r in jobs()}
    assert rows["wav2mp3"].eta == pytest.approx((100_000 - 32_339 - 11) / 7.1)
    assert F.job_eta(rows["thumbnails"]) == "12% failed"     # a halt shows its reason
    assert F.job_eta(rows["reindex"]) == "paused" and F.job_eta(rows["old-export"]) == "stopped"
    assert F.job_eta(rows["nightly-2026-11-25"]) == "done"
    assert F.job_eta(JobRow("x", "running", total=10)) == "—"   # no rate yet
    assert [F.short_count(n) for n in (0, 9_999, 10_000, 32_350, 100_000, 1_250_000)] == \
        ["0", "9,999", "10k", "32.4k", "100k", "1.2M"]
    assert progress(rows["wav2mp3"]) == " 32% 32.4k/100k"
    # At 80 columns the jobs list keeps name, state, progress, rate and ETA.
    assert job_columns(80, list(rows.values()))[:5] == ("name", "state", "progress", "rate", "eta")
    assert "prio" in job_columns(200, list(rows.values()))
