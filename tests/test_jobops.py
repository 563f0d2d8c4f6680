"""Steering a job through control.yaml (worker/jobops.py) on a local job directory."""

from __future__ import annotations

import pytest

from ppss_helpers import Job
from worker import layout as L
from worker.control import ControlError, parse_control
from worker.errors import JobError
from worker.jobops import control_stamp, init_job, set_slots, set_state, write_control_text


@pytest.fixture
async def store(tmp_path):
    store = await Job(tmp_path / "job").init_here([b"a", b"b"])
    return store


async def test_state_and_slots_changes_are_atomic_rewrites(store):
    await set_state(store, "paused", "n1")
    await set_slots(store, "n1", 3)
    await set_state(store, "stopped")
    control = parse_control(await store.read(L.CONTROL_FILE))
    assert control.state == "stopped"
    assert control.for_node("n1") == ("stopped", 3)  # job-wide stop wins; slots stay
    assert not [n for n in await store.listdir("") if ".tmp-" in n]


async def test_malformed_control_is_never_overwritten(store):
    await store.write(L.CONTROL_FILE, b"state: [paused\n")
    with pytest.raises(ControlError, match="line"):
        await set_state(store, "running")
    assert await store.read(L.CONTROL_FILE) == b"state: [paused\n"


async def test_editor_save_refuses_a_concurrent_edit_of_the_same_size(store):
    opened = await store.read(L.CONTROL_FILE)
    stamp = control_stamp(opened)
    # Someone else changes one letter: same size, and (over SFTP) maybe the same second.
    await store.write(L.CONTROL_FILE, opened.replace(b"running", b"paused!"))
    with pytest.raises(ControlError, match="changed by someone else"):
        await write_control_text(store, b"state: stopped\n", stamp)
    # With the current text's stamp the save goes through, and invalid text never does.
    current = control_stamp(await store.read(L.CONTROL_FILE))
    with pytest.raises(ControlError, match="not one of"):
        await write_control_text(store, b"state: sleeping\n", current)
    new = await write_control_text(store, b"state: stopped\n", current)
    assert new == control_stamp(b"state: stopped\n")
    assert await store.read(L.CONTROL_FILE) == b"state: stopped\n"


async def test_init_refuses_an_existing_job(store):
    with pytest.raises(JobError, match="already exists"):
        await init_job(store, "true", [b"c"], "file", "items.txt")
