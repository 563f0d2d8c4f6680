"""The console for real fleets: the 80x24 layout, the filter and sort, the header's truth, the
palette, the theme, and the bugs of issue 12 (pure logic and Pilot tests on fixed data)."""

from __future__ import annotations

import dataclasses

import pytest

from console_data import NOW, FakeAccess, cluster, snapshot
from ppss_tui import format as F
from ppss_tui import settings
from ppss_tui.app import PpssConsole, binding_ids
from ppss_tui.clusterfile import parse_cluster
from ppss_tui.failgroups import group_failures, mask_item, tail_end
from ppss_tui.nodeview import View, matches
from ppss_tui.snapshot import UP, JobSnapshot, NodeRow, RunningView
from ppss_tui.widgets import NodeTable
from ppss_tui.widgets.nodetable import ALWAYS, COLUMNS, columns_for
from worker.errors import UsageError


def _app(snap=None, access=None, **kw) -> PpssConsole:
    return PpssConsole(kw.pop("cluster", None) or cluster(), clock=lambda: NOW, poll=False,
                       snapshot=snap or snapshot(), access=access or FakeAccess(), **kw)


async def _settle(pilot) -> None:
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def _screen_text(app) -> str:
    return "\n".join("".join(seg.text for seg in strip) for strip in app.screen._compositor.render_strips())


# ---- 80x24 ------------------------------------------------------------------------------------

def three_nodes(finished: bool = False) -> tuple:
    rows = tuple(NodeRow(f"node{i}", f"ppss@node{i}", UP, state="finished" if finished else "running",
                         slots=2, done=100 * i, failed=i - 1, rate=None if finished else 1.5 * i,
                         heartbeat_age=1.0, reported=True) for i in (1, 2, 3))
    cl = parse_cluster("master: ssh://ppss@m/srv/job\nnodes: [ppss@node1, ppss@node2, ppss@node3]\n",
                       "ppss.yaml", "/")
    total = sum(r.done + r.failed for r in rows) + (0 if finished else 50)
    snap = JobSnapshot(job="ppss@m/srv/job", master_state=UP, command="true", total=total,
                       done=sum(r.done for r in rows), failed=sum(r.failed for r in rows),
                       control_state="running", finished=finished, nodes=rows, taken=NOW, rate=None)
    return cl, snap


async def test_done_when_three_nodes_at_80x24():
    cl, snap = three_nodes()
    app = _app(snap, cluster=cl)
    async with app.run_test(size=(80, 24)) as pilot:
        await _settle(pilot)
        text = _screen_text(app)
        for i in (1, 2, 3):
            assert f"node{i}" in text
        assert text.count("running") >= 3 and "? Help" in text and "q Quit" in text
        await pilot.press("slash", *"node2", "enter")
        await _settle(pilot)
        assert [r.name for r in app.screen.query_one(NodeTable).rows_shown] == ["node2"]
        await pilot.press("escape")
        await _settle(pilot)
        assert len(app.screen.query_one(NodeTable).rows_shown) == 3
        app.snapshot = three_nodes(finished=True)[1]
        await _settle(pilot)
        title = str(app.screen.query_one("#job-title").render())
        assert "finished" in title and "running" not in title


def test_columns_by_priority():
    assert columns_for(80, 6, 20)[:ALWAYS] == ("name", "state", "slots", "done", "failed", "rate")
    assert columns_for(10, 6, 20) == tuple(k for k, _, _ in COLUMNS[:ALWAYS])
    wide = columns_for(250, 6, 20)
    assert wide == tuple(k for k, _, _ in COLUMNS)
    assert len(columns_for(80, 6, 20)) < len(columns_for(120, 6, 20)) < len(wide)


async def test_80x24_keeps_the_essentials_and_pins_the_node_column():
    app = _app()
    async with app.run_test(size=(80, 24)) as pilot:
        await _settle(pilot)
        table = app.screen.query_one(NodeTable)
        assert table.fixed_columns == 1
        assert [str(c.label) for c in table.columns.values()][:ALWAYS] == \
            ["Node", "State", "Slots", "Done", "Failed", "Rate"]
        text = _screen_text(app)
        assert "? Help" in text and "q Quit" in text and "/ Filter" in text
        await pilot.press("question_mark")
        await _settle(pilot)
        box = app.screen.query_one("#help-box")
        assert box.outer_size.width <= 80


# ---- filter and sort ------------------------------------------------------------------------

def test_filter_by_name_state_and_problem():
    rows = snapshot().nodes
    assert [r.name for r in View("node").arrange(rows)][:2] == ["node1", "node2"]
    assert [r.name for r in View("lost").arrange(rows)] == ["node4"]
    assert [r.name for r in View("unreachable").arrange(rows)] == ["node4"]
    assert {r.name for r in View("problem").arrange(rows)} == {"node4", "node5", "gpu1"}
    assert [r.name for r in View("GPU").arrange(rows)] == ["gpu1"]
    assert not matches(rows[0], "zzz")


def test_sorts_cycle_and_problems_first():
    rows = snapshot().nodes
    view = View()
    seen = []
    for _ in range(5):
        seen.append(view.sort)
        view = view.next_sort()
    assert seen == ["file", "name", "failed", "rate", "heartbeat"] and view.sort == "file"
    assert [r.name for r in View(sort="failed").arrange(rows)][:2] == ["node4", "node1"]
    assert [r.name for r in View(sort="rate").arrange(rows)][0] == "node1"
    assert [r.name for r in View(sort="heartbeat").arrange(rows)][0] in ("node5", "gpu1")  # never seen
    names = [r.name for r in View(sort="name", problems_first=True).arrange(rows)]
    assert names[:3] == ["gpu1", "node4", "node5"] and names[3:] == ["node1", "node2", "node3", "node9"]
    two = [dataclasses.replace(rows[0], name=n) for n in ("node10", "node2")]
    assert [r.name for r in View(sort="name").arrange(two)] == ["node2", "node10"]


async def test_header_click_and_key_sort():
    app = _app()
    async with app.run_test(size=(160, 45)) as pilot:
        await _settle(pilot)
        await pilot.click("NodeTable", offset=(40, 0))  # the Failed header at 160 columns
        await _settle(pilot)
        screen = app.screen
        assert screen.view.sort == "failed"
        assert screen.query_one(NodeTable).rows_shown[0].name == "node4"
        await pilot.press("o")
        await _settle(pilot)
        assert screen.view.sort == "rate"


async def test_only_changed_rows_repaint():
    app = _app()
    async with app.run_test(size=(160, 45)) as pilot:
        await _settle(pilot)
        table = app.screen.query_one(NodeTable)
        before, lines, rebuilds = table.rows_repainted, table.lines_rendered, table.rebuilds
        snap = app.snapshot
        nodes = list(snap.nodes)
        nodes[1] = dataclasses.replace(nodes[1], done=nodes[1].done + 1)
        app.snapshot = dataclasses.replace(snap, nodes=tuple(nodes))
        await _settle(pilot)
        assert table.rebuilds == rebuilds
        assert table.rows_repainted - before == 1
        assert table.lines_rendered - lines <= 2          # that row's line, not the table
        assert str(table.get_cell("node2", "done")) == F.count(nodes[1].done)


# ---- the header tells the truth ----------------------------------------------------------------

def test_job_state_and_eta():
    snap = snapshot()
    assert snap.job_state == "running" and F.eta(snap) == "3 hours"
    assert dataclasses.replace(snap, control_state="paused").job_state == "paused"
    assert F.eta(dataclasses.replace(snap, control_state="paused")) == "paused"
    assert dataclasses.replace(snap, control_state="stopped").job_state == "stopped"
    assert F.eta(dataclasses.replace(snap, control_state="stopped")) == "—"
    assert dataclasses.replace(snap, finished=True).job_state == "finished"
    gone = tuple(dataclasses.replace(n, state="lost") for n in snap.nodes)
    assert dataclasses.replace(snap, nodes=gone).job_state == "no workers"
    assert F.eta(dataclasses.replace(snap, nodes=gone)) == "—"
    paused = tuple(dataclasses.replace(n, state="paused") if n.live else n for n in snap.nodes)
    assert dataclasses.replace(snap, nodes=paused).job_state == "paused"
    assert F.eta(dataclasses.replace(snap, eta=None)) == "—"
    assert JobSnapshot(job="x").job_state == ""


def test_done_and_failed_apart():
    snap = JobSnapshot(job="x", total=100, done=0, failed=100, command="c")
    assert snap.done_fraction == 0 and snap.failed_fraction == 1.0
    snap = JobSnapshot(job="x", total=100, done=60, failed=10, command="c")
    assert (snap.done_fraction, snap.failed_fraction) == (0.6, 0.1)


async def test_all_failed_bar_is_red_and_rate_graph_empty_before_data():
    snap = JobSnapshot(job="x", master_state=UP, command="c", total=10, failed=10, finished=True, taken=NOW)
    app = _app(snap)
    async with app.run_test(size=(80, 24)) as pilot:
        await _settle(pilot)
        bar = app.screen.query_one("#progress").render()
        assert "green" not in str(bar.spans) and bar.spans and all(s.style == "red" for s in bar.spans if s.end > s.start)
        assert not app.screen.query_one("#spark").display
        counts = str(app.screen.query_one("#counts").render())
        assert counts.count("failed") == 1 and "locks" not in _screen_text(app) and "claimed" not in _screen_text(app)


def test_counter_lag_is_computed_in_the_snapshot():
    snap = snapshot()
    assert snap.counter_lag == (3, 0)
    assert dataclasses.replace(snap, recount=(snap.done, snap.failed)).counter_lag is None


# ---- bugs ---------------------------------------------------------------------------------------

def test_short_age_fits_the_heartbeat_column():
    assert [F.short_age(s) for s in (None, 0.5, 4.9, 27, 312, 7300, 200_000)] == ["-", "now", "now", "27 s", "5 min", "2 h", "2 d"]
    assert max(len(F.short_age(s)) for s in range(0, 10**7, 997)) <= 9


def test_slots_read_right_after_lowering():
    row = NodeRow("n", reported=True, slots=1, running=tuple(RunningView("l", "i", "x", s, 0.0) for s in (0, 1)))
    assert F.slots(row) == "1/1 +1"
    assert F.plural(1, "slot") == "1 slot" and F.plural(2, "slot") == "2 slots"


async def test_minus_says_1_slot():
    access = FakeAccess()
    snap = snapshot()
    nodes = list(snap.nodes)
    nodes[0] = dataclasses.replace(nodes[0], slots=2)
    app = _app(dataclasses.replace(snap, nodes=tuple(nodes)), access)
    async with app.run_test(size=(120, 40)) as pilot:
        await _settle(pilot)
        await pilot.press("minus")
        await _settle(pilot)
        assert access.calls == [("set_slots", "node1", 1)]
        assert any(n.message == "node1: 1 slot" for n in app._notifications)


def test_keymap_unknown_binding_id_is_an_error(tmp_path):
    path = tmp_path / "keymap.yaml"
    path.write_text("pause_nod: ctrl+p\n")
    with pytest.raises(UsageError, match=r"keymap.yaml: unknown binding id pause_nod"):
        settings.read_keymap(str(path), known=binding_ids())
    path.write_text("pause_node: ctrl+p\nfailed_retry: t\n")
    assert settings.read_keymap(str(path), known=binding_ids()) == {"pause_node": "ctrl+p", "failed_retry": "t"}


async def test_editor_escape_asks_before_dropping_edits():
    access = FakeAccess()
    app = _app(access=access)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("e")
        await _settle(pilot)
        app.screen.query_one("#editor").text = "state: paused\n"
        await pilot.press("escape")
        await _settle(pilot)
        assert app.screen.__class__.__name__ == "ConfirmScreen"
        await pilot.press("n")                      # keep editing
        await _settle(pilot)
        assert app.screen.__class__.__name__ == "EditorScreen"
        assert app.screen.query_one("#editor").text == "state: paused\n"
        await pilot.press("escape", "y")            # drop them
        await _settle(pilot)
        assert app.screen.id == "main" and access.calls == []


# ---- failed view ------------------------------------------------------------------------------

def test_mask_item_path_and_name():
    item = "/data/in/take 17.wav"
    assert mask_item("cp: cannot open '/tmp/ppss-x1/take 17.wav': Permission denied", item) == \
        "cp: cannot open '$NAME': Permission denied"
    assert mask_item(f"lame: {item}: bad", item) == "lame: $ITEM: bad"
    recs = [{"id": str(n), "item": f"/data/in/f{n:03d}.wav", "node": f"node{n % 3 + 1}", "exit": 1,
             "output_tail": f"open /scratch/job/{n}/f{n:03d}.wav: Permission denied\n"} for n in range(54)]
    groups = group_failures(recs)
    assert len(groups) == 1 and groups[0].count == 54 and groups[0].nodes == "node[1-3]"
    assert tail_end("x" * 100 + " Permission denied", 30).endswith("Permission denied")
    assert tail_end("short", 30) == "short"


async def test_failed_view_retry_retries_exactly_the_selected_group():
    access = FakeAccess()
    app = _app(access=access)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f")
        await _settle(pilot)
        screen = app.screen
        assert [g.count for g in screen.groups] == [5, 3, 1]
        await pilot.press("down", "r")  # the second group: exit 137, Killed
        await _settle(pilot)
        assert access.calls[-1] == ("retry", ("00bb0", "01bb1", "02bb2"))
        assert any("3 items queued again" in n.message for n in app._notifications)
        await _settle(pilot)
        assert [g.count for g in screen.groups] == [5, 1] and screen.total == 6  # reloaded


async def test_palette_retries_a_failed_group():
    access = FakeAccess()
    app = _app(access=access)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f")
        await _settle(pilot)
        await pilot.press("ctrl+p")
        await _settle(pilot)
        await pilot.press(*"retry failed group 3")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await _settle(pilot)
        assert access.calls[-1] == ("retry", ("ffcc00",))


# ---- palette and theme --------------------------------------------------------------------------

async def test_palette_has_ppss_commands():
    access = FakeAccess()
    app = _app(access=access)
    async with app.run_test(size=(120, 40)) as pilot:
        await _settle(pilot)
        await pilot.press("ctrl+p")
        await _settle(pilot)
        await pilot.press(*"pause node node3")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await _settle(pilot)
        assert ("set_state", "paused", "node3") in access.calls
        await pilot.press("ctrl+p")
        await _settle(pilot)
        await pilot.press(*"go to node node4")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await _settle(pilot)
        assert app.screen.query_one(NodeTable).selected == "node4"


async def test_theme_is_remembered(tmp_path):
    app = _app(config_dir=str(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        await _settle(pilot)
        app.theme = "nord"
        await _settle(pilot)
    assert settings.read_settings(str(tmp_path)) == {"theme": "nord"}
    again = _app(config_dir=str(tmp_path))
    assert again.theme == "nord"


# ---- e on a directory that is not a job; temp names never shown ---------------------------------

async def test_edit_control_refuses_a_directory_that_is_not_a_job(tmp_path):
    from ppss_tui.access import JobAccess
    from worker.errors import JobError
    from worker.store import LocalStore
    access = JobAccess(LocalStore(str(tmp_path)))
    with pytest.raises(JobError, match="not a ppss job"):
        await access.read_control()
    with pytest.raises(JobError, match="not a ppss job"):
        await access.write_control("state: paused\n", None)
    assert list(tmp_path.iterdir()) == []


def test_errors_never_show_temp_names():
    from ppss_tui.access import without_temp_names
    from worker.errors import JobError
    exc = without_temp_names(JobError("/srv/job/control.yaml.tmp-1a2b3c4d: Permission denied"))
    assert isinstance(exc, JobError) and str(exc) == "/srv/job/control.yaml: Permission denied"


async def test_rows_changed_off_screen_are_right_when_scrolled_to():
    rows = tuple(NodeRow(f"n{i:03d}", "h", UP, state="running", slots=1, done=i, reported=True) for i in range(200))
    snap = JobSnapshot(job="j", master_state=UP, command="c", total=10_000, nodes=rows, taken=NOW)
    app = _app(snap)
    async with app.run_test(size=(80, 24)) as pilot:
        await _settle(pilot)
        table = app.screen.query_one(NodeTable)
        changed = tuple(dataclasses.replace(r, done=r.done + 1000) for r in rows)
        painted = table.rows_repainted
        app.snapshot = dataclasses.replace(snap, nodes=changed)
        await _settle(pilot)
        assert table.rows_repainted - painted < 30          # the rows on screen, not 200
        assert str(table.get_cell("n000", "done")) == "1,000"
        table.move_cursor(row=199, animate=False)  # scrolls to the last row
        await _settle(pilot)
        await pilot.pause(0.2)
        assert str(table.get_cell("n199", "done")) == "1,199"
        assert table.selected == "n199"


async def test_names_and_items_are_never_markup():
    row = NodeRow("n[1]", "h", UP, state="running", slots=1, reported=True,
                  running=(RunningView("l", "i", "[bold]x[/bold] [link=y]", 0, NOW),))
    snap = JobSnapshot(job="j", master_state=UP, command="c", total=5, nodes=(row,), taken=NOW)
    app = _app(snap)
    async with app.run_test(size=(200, 50)) as pilot:
        await _settle(pilot)
        table = app.screen.query_one(NodeTable)
        assert table.get_cell("n[1]", "current").plain == "[bold]x[/bold] [link=y]"
        assert "[bold]x[/bold]" in _screen_text(app)


@pytest.mark.parametrize("in_root", [True, False])
async def test_retry_of_a_job_opened_by_its_address_marks_it_active_in_its_root(tmp_path, in_root):
    import json
    from ppss_tui.access import JobAccess
    from worker import layout as L
    from worker.jobops import init_job
    from worker.store import LocalStore
    root = tmp_path / "root"
    root.mkdir()
    if in_root:
        (root / "active").mkdir()
    store = LocalStore(str(root / "j"))
    await init_job(store, "true", [b"x1", b"x2"], "file", "-")
    ident = L.item_id(b"x1")
    (root / "j" / L.FAILED_DIR / L.shard(ident)).mkdir(parents=True, exist_ok=True)
    rec = {"id": ident, "item": L.item_to_json(b"x1"), "exit": 3, "attempt": 1, "node": "n1", "output_tail": "no"}
    (root / "j" / L.failed_path(ident)).write_text(json.dumps(rec))
    assert await JobAccess(store).retry([ident]) == 1
    assert (root / "active" / "j").exists() == in_root   # serving workers take it up again
    assert not (root / "j" / L.failed_path(ident)).exists()
    assert len(list((root / "j" / L.RETRY_DIR).iterdir())) == 1


async def test_jobs_root_j_and_cursor_select_the_job_the_stop_names():
    from console_data import root_snapshot
    from ppss_tui.widgets import JobsTable
    app = _app(root_snapshot())
    async with app.run_test(size=(100, 30)) as pilot:
        await _settle(pilot)
        jobs = app.screen.query_one(JobsTable)
        assert jobs.display and jobs.highlighted == "wav2mp3" and not jobs.has_focus
        await pilot.press("j", "down")
        await _settle(pilot)
        assert jobs.has_focus and app.snapshot.selected == "thumbnails"
        assert "▶ thumbnails" in _screen_text(app)
        await pilot.press("s")
        await _settle(pilot)
        assert "Stop the job thumbnails?" in _screen_text(app)
        await pilot.press("escape")
        await pilot.press("j")
        assert app.screen.query_one(NodeTable).has_focus


async def test_single_job_hides_the_jobs_list_and_j():
    app = _app()
    async with app.run_test(size=(100, 30)) as pilot:
        await _settle(pilot)
        from ppss_tui.widgets import JobsTable
        assert not app.screen.query_one(JobsTable).display
        assert "j Jobs" not in _screen_text(app)
