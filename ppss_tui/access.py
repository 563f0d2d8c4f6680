"""What the console's screens do to a job, on top of the ``Store`` interface.

Every change goes through control.yaml with the same ``worker.jobops`` functions the headless
``ppss-console pause|resume|stop|suspend`` use, so the console and the command line agree.
Screens talk to a ``ConsoleAccess`` (the protocol below): ``JobAccess`` on a real store, and the
fixed ``tests/console_data.FakeAccess`` in the tests (tests/test_console_headless.py checks that
both follow the protocol, method by method).
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from worker import layout as L
from worker.control import Control
from worker.errors import JobError, PpssError
from worker.jobops import control_stamp, failed_items, resume_halted, set_slots, set_state, write_control_text
from worker.jobsroot import ACTIVE_DIR, reopen, retry_failed, root_of, valid_job_name
from worker.jobstatus import FINISHED_FILE, read_job_status
from worker.store import Store

FAILED_LIMIT = 10_000
TAIL_BYTES = 64 * 1024


_TEMP_NAME = re.compile(r"\.tmp-[0-9a-f]+")


@runtime_checkable
class ConsoleAccess(Protocol):
    """Everything a screen may ask of a job."""

    async def set_state(self, state: str, node: str | None = None) -> object: ...

    async def set_slots(self, node: str, slots: int | None) -> object: ...

    async def read_control(self) -> tuple[str, object]: ...

    async def write_control(self, text: str, stamp: object) -> object: ...

    async def failed(self, limit: int = FAILED_LIMIT) -> list[dict]: ...

    async def retry(self, ids: Sequence[str]) -> int: ...

    async def item_log(self, ident: str) -> str | None: ...

    async def node_joblog(self, node: str, lines: int = 200) -> str | None: ...


def without_temp_names(exc: PpssError) -> PpssError:
    """The same error without the store's temporary file names (``control.yaml.tmp-1a2b``)."""
    text = _TEMP_NAME.sub("", str(exc))
    return exc if text == str(exc) else type(exc)(text)


class JobAccess:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def _require_job(self) -> None:
        if not await self.store.exists(L.JOB_FILE):
            raise JobError(f"{self.store.where('')}: not a ppss job (no {L.JOB_FILE})")

    async def set_state(self, state: str, node: str | None = None) -> Control:
        """As ``ppss-console pause|resume|stop|suspend``: resuming a halted job records the failures
        so far (it halts again only past the threshold from there) and marks it active again."""
        if state == "running" and node is None:
            if await resume_halted(self.store, (await read_job_status(self.store)).failed) is not None:
                if not await self.store.exists(FINISHED_FILE):
                    await reopen(self.store)
        return await set_state(self.store, state, node)

    async def set_slots(self, node: str, slots: int | None) -> Control:
        return await set_slots(self.store, node, slots)

    async def read_control(self) -> tuple[str, str | None]:
        """control.yaml's text and its stamp (``worker.jobops.control_stamp``)."""
        await self._require_job()
        data = await self.store.read(L.CONTROL_FILE)
        return (data or b"").decode("utf-8", "replace"), control_stamp(data)

    async def write_control(self, text: str, stamp: str | None) -> str | None:
        """Validate and save; raises ControlError if invalid or changed meanwhile. Returns the new stamp."""
        await self._require_job()
        try:
            return await write_control_text(self.store, text.encode(), stamp)
        except PpssError as exc:
            raise without_temp_names(exc) from None

    async def retry(self, ids: Sequence[str]) -> int:
        """Run these failed items again as new attempts (``ppss-console retry``'s steps, for
        exactly these ids); their failed records are kept as history. Returns how many."""
        await self._require_job()
        try:
            n = await retry_failed(self.store, ids=ids)
            if n and root_of(self.store) is None:
                await self._mark_active_in_parent_root()
            return n
        except PpssError as exc:
            raise without_temp_names(exc) from None

    async def _mark_active_in_parent_root(self) -> None:
        """A job opened by its own address whose directory sits in a jobs root (the parent holds
        active/ and no job.yaml): mark it active there, as ``ppss-console retry`` does, so the
        serving workers take the retried items up."""
        name = posixpath.basename(self.store.root.rstrip("/"))
        if (valid_job_name(name) and await self.store.exists(f"../{ACTIVE_DIR}")
                and not await self.store.exists(f"../{L.JOB_FILE}")):
            await self.store.write(f"../{ACTIVE_DIR}/{name}", b"")

    async def failed(self, limit: int = FAILED_LIMIT) -> list[dict]:
        return await failed_items(self.store, limit)

    async def read_tail(self, rel: str, limit: int = TAIL_BYTES) -> tuple[str | None, int]:
        """The last ``limit`` bytes of a file on the master, and how many bytes were skipped."""
        entry = await self.store.stat(rel)
        if entry is None:
            return None, 0
        skip = max(0, entry.size - limit)
        data = await self.store.read_range(rel, skip, limit)
        if data is None:
            return None, 0
        text = data.decode("utf-8", "replace")
        if skip:
            text = text.split("\n", 1)[-1]  # drop the partial first line
        return text, skip

    async def item_log(self, ident: str) -> str | None:
        text, skip = await self.read_tail(L.log_path(ident), 256 * 1024)
        if text is not None and skip:
            text = f"[... first {skip} bytes not shown ...]\n" + text
        return text

    async def node_joblog(self, node: str, lines: int = 200) -> str | None:
        text, _ = await self.read_tail(L.joblog_path(node))
        if text is None:
            return None
        return format_joblog(text.splitlines()[-lines:])


def format_joblog(lines: list[str]) -> str:
    import time
    out = []
    for line in lines:
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        when = time.strftime("%H:%M:%S", time.localtime(ev.get("time") or 0))
        item = L.display_item(L.item_from_json(str(ev.get("item", ""))), 100)
        exit_code = ev.get("exit")
        extra = f" exit {exit_code}" if exit_code not in (None, 0) else ""
        dur = ev.get("duration")
        dur = f" {dur:.2f}s" if isinstance(dur, (int, float)) else ""
        out.append(f"{when} {ev.get('event', '?'):<10}{extra}{dur}  {item}")
        tail = str(ev.get("output_tail") or "").rstrip("\n")
        if ev.get("event") in ("failed", "retry") and tail:
            out.extend("    | " + t for t in tail.splitlines()[-5:])
    return "\n".join(out)
