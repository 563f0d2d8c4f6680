"""SVG snapshot tests of the console's screens, from fixed data (tests/console_data.py), with a
frozen clock, no pollers and a fixed terminal size. Update with --snapshot-update after a
deliberate change, and look at the SVGs under tests/__snapshots__/ before committing them."""

from __future__ import annotations

from console_data import NOW, FakeAccess, cluster, root_snapshot, snapshot
from ppss_tui.app import PpssConsole

SIZE = (160, 45)
SMALL = (80, 24)
LARGE = (200, 50)


def make_app(snap=None) -> PpssConsole:
    return PpssConsole(cluster(), clock=lambda: NOW, poll=False, snapshot=snap or snapshot(), access=FakeAccess())


async def _settle(pilot) -> None:
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def test_main_screen(snap_compare):
    assert snap_compare(make_app(), terminal_size=SIZE, run_before=_settle)


def test_main_screen_80x24(snap_compare):
    assert snap_compare(make_app(), terminal_size=SMALL, run_before=_settle)


def test_main_screen_200x50(snap_compare):
    assert snap_compare(make_app(), terminal_size=LARGE, run_before=_settle)


def test_filter_lost_80x24(snap_compare):
    async def filter_lost(pilot):
        await pilot.press("slash", *"lost")
        await _settle(pilot)
    assert snap_compare(make_app(), terminal_size=SMALL, run_before=filter_lost)


def test_sorted_by_failed_problems_first_200x50(snap_compare):
    async def sort(pilot):
        await pilot.press("o", "o", "exclamation_mark")
        await _settle(pilot)
    assert snap_compare(make_app(), terminal_size=LARGE, run_before=sort)


def test_failed_view_80x24(snap_compare):
    async def open_failed(pilot):
        await pilot.press("f")
        await _settle(pilot)
    assert snap_compare(make_app(), terminal_size=SMALL, run_before=open_failed)


def test_help_80x24(snap_compare):
    async def open_help(pilot):
        await pilot.press("question_mark")
        await _settle(pilot)
    assert snap_compare(make_app(), terminal_size=SMALL, run_before=open_help)


def test_main_screen_selected_unreachable_node(snap_compare):
    async def select(pilot):
        await pilot.press("down", "down", "down", "down")  # node5: host key changed
        await _settle(pilot)
    assert snap_compare(make_app(), terminal_size=SIZE, run_before=select)


def test_failed_view(snap_compare):
    async def open_failed(pilot):
        await pilot.press("f")
        await _settle(pilot)
    assert snap_compare(make_app(), terminal_size=SIZE, run_before=open_failed)


def test_editor(snap_compare):
    async def open_editor(pilot):
        await pilot.press("e")
        await _settle(pilot)
    assert snap_compare(make_app(), terminal_size=SIZE, run_before=open_editor)


def test_editor_invalid(snap_compare):
    async def break_it(pilot):
        await pilot.press("e")
        await _settle(pilot)
        pilot.app.screen.query_one("#editor").text = "state: sideways\nnodes: {}\n"
        await _settle(pilot)
    assert snap_compare(make_app(), terminal_size=SIZE, run_before=break_it)


def test_help(snap_compare):
    async def open_help(pilot):
        await pilot.press("question_mark")
        await _settle(pilot)
    assert snap_compare(make_app(), terminal_size=SIZE, run_before=open_help)


def test_stop_confirm(snap_compare):
    async def ask(pilot):
        await pilot.press("s")
        await _settle(pilot)
    assert snap_compare(make_app(), terminal_size=SIZE, run_before=ask)


# ---- a jobs root: the jobs list above the selected job's dashboard ----------------------------

def test_jobs_root_80x24(snap_compare):
    assert snap_compare(make_app(root_snapshot()), terminal_size=SMALL, run_before=_settle)


def test_jobs_root_200x50(snap_compare):
    assert snap_compare(make_app(root_snapshot()), terminal_size=LARGE, run_before=_settle)
