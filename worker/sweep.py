"""Where a worker finds its next items: the retry queue first, then the item chunks.

Each worker starts at its own place in the chunk list and takes whole chunks to sweep
(``mkdir sweep/<chunk>``), so nodes rarely contend for the same items; when no chunk is left
untaken it helps in the others' unfinished chunks (chunkhelp.py), and a sweep that runs into a
helper's items goes on as a helper. Item-level mkdir remains the only thing that decides who
runs an item, so this is an optimisation, never a correctness rule.
"""

from __future__ import annotations

import asyncio
import time
import zlib

from . import layout as L
from .chunkhelp import ChunkHelp
from .claims import Candidate
from .errors import JobError
from .jobspec import JobSpec
from .sourcedir import walk_files
from .store import Store

RETRY_POLL = 2.0
HELP_GIVE_UP = 32  # taken items in a row after which a chunk's sweeper goes on as a helper
WATCH_PERIOD = 3.0   # how often an idle worker lists a watched source directory
WATCH_SETTLE = 3.0   # a new file is taken once unchanged for this long (master clock)


def chunk_items(data: bytes | None, index: int, spec: JobSpec, where: str) -> list[bytes]:
    """The items of chunk ``index`` of the item list; a chunk missing, emptied or cut short
    (its count is known from job.yaml) is a corrupt job: waiting on it would be forever."""
    expected = spec.chunk_size if index < spec.chunks - 1 else spec.total - spec.chunk_size * (spec.chunks - 1)
    if data is None:
        raise JobError(f"{where}: item list chunk missing; the job is corrupt")
    items = L.decode_chunk(data)
    if len(items) != expected or (data and not data.endswith(b"\0")):
        raise JobError(f"{where}: item list chunk corrupt ({len(items)} of {expected} items, "
                       f"{len(data)} bytes: emptied or truncated?)")
    return items


class Sweeper:
    def __init__(self, store: Store, spec: JobSpec, node: str, files: Store | None = None,
                 master_now=None) -> None:
        self.store = store
        self.files = files or store  # where a watched source directory lives
        self.master_now = master_now or time.time
        self.spec = spec
        self.node = node
        self.watch_seen = 0.0
        self.watch_known: set[bytes] = set()
        self.watch_pending: dict[bytes, tuple[int, float]] = {}
        n = max(1, spec.chunks)
        start = zlib.crc32(node.encode()) % n
        self.order = [(start + i) % n for i in range(spec.chunks)]
        self.swept: set[int] = set()       # chunks known to be fully tried
        self.taken: set[int] = set()       # chunks some node sweeps (or swept)
        self.current: list[Candidate] = []
        self.current_chunk: int | None = None
        self.pos = 0
        self.helping = False  # no chunk left to take: helping in the others'
        self.help: ChunkHelp | None = None  # the chunk we help in
        self.miss_streak = 0  # items found taken in a row by our chunk's sweep
        self.retry_seen = 0.0
        self.retry_busy: set[str] = set()  # retry entries we failed to claim lately
        self.exhausted = spec.chunks == 0
        self.markers_read = False
        self.markers_fresh = False  # read during this call of next(): no second listing
        self.retry_ahead: list[Candidate] | None = None  # the retry queue, listed with the markers
        self.retry_fresh = False  # listed during this call of next(): not again with the markers
        self.read_ahead: dict[int, bytes | None] = {}  # chunks read while taking them, lost to another node

    async def _refresh_markers(self) -> None:
        taken, swept = await asyncio.gather(self.store.listdir(L.SWEEP_DIR), self.store.listdir(L.SWEPT_DIR))
        self.taken |= {int(n) for n in taken or () if n.isdigit()}
        self.swept |= {int(n) for n in swept or () if n.isdigit()}
        self.taken |= self.swept
        self.markers_read = self.markers_fresh = True

    def _candidates(self, index: int, data: bytes | None) -> list[Candidate]:
        items = chunk_items(data, index, self.spec, self.store.where(L.chunk_path(index)))
        return [Candidate(L.item_id(item), item) for item in items]

    def _use_chunk(self, index: int, data: bytes | None) -> None:
        self.current = self._candidates(index, data)
        self.current_chunk = index
        self.pos = 0
        self.miss_streak = 0

    async def _take_first_chunk(self) -> None:
        if self.current_chunk is None and self.order:
            await self._take_chunk(self.order[0])

    async def _take_chunk(self, index: int) -> bool:
        """Take the chunk and read it in one round trip (a chunk lost to another node is kept
        for helping in it); True if it is ours."""
        self.taken.add(index)
        won, data = await asyncio.gather(self.store.mkdir(f"{L.SWEEP_DIR}/{L.chunk_name(index)}"),
                                         self.store.read(L.chunk_path(index)))
        if won:
            self._use_chunk(index, data)
        else:
            self.read_ahead[index] = data
        return won

    async def _next_chunk(self, want: int) -> bool:
        if self.current_chunk is not None:  # swept to its end
            await self._mark_swept(self.current_chunk)
            self.current_chunk = None
        if not self.helping:
            if not self.taken and not self.markers_read:
                await self._refresh_markers()
            for index in self.order:
                if index not in self.taken and await self._take_chunk(index):
                    return True
            self.helping = True
        if not self.markers_fresh:  # (listed in this call already: the first call)
            if self.retry_fresh:  # (the retry queue too, at this call's start)
                await self._refresh_markers()
            else:
                # Every chunk may be swept, and the retry queue is the last place to look: it
                # is listed meanwhile (what it offers is added to this call's candidates).
                _, self.retry_ahead = await asyncio.gather(self._refresh_markers(),
                                                           self.retry_candidates(want, force=True))
        for index in self.order:
            if index not in self.swept:
                data = self.read_ahead.pop(index) if index in self.read_ahead else \
                    await self.store.read(L.chunk_path(index))
                self.help = ChunkHelp(index, self._candidates(index, data), self.node)
                return True
        return False

    async def _mark_swept(self, index: int) -> None:
        """Every item of the chunk is taken: helpers need not come."""
        await self.store.mkdir(f"{L.SWEPT_DIR}/{L.chunk_name(index)}")
        self.swept.add(index)

    async def _survey(self) -> None:
        """Where are the free items of the chunk we help in (chunkhelp.py)? One round trip, or two
        when a sampled look found none; the chunk is left once every item in it is taken."""
        helped, exact = self.help, False
        while helped.needs_survey():
            looked, exact = helped.targets(exact)
            held = await asyncio.gather(*(self.store.stat(L.lock_path(helped.candidates[i].lock)) for i in looked))
            if not helped.surveyed(looked, [h is not None for h in held], exact) and not exact:
                exact = True  # (nothing free among the samples: look at every item)
        if helped.done:
            self.help = None
            await self._mark_swept(helped.index)

    async def retry_candidates(self, want: int, force: bool = False) -> list[Candidate]:
        now = time.monotonic()
        if not force and now - self.retry_seen < RETRY_POLL:
            return []
        self.retry_seen, self.retry_fresh = now, True
        names = await self.store.listdir(L.RETRY_DIR) or []
        names = [n for n in names if ".tmp-" not in n and n not in self.retry_busy][:want]
        if not names:
            self.retry_busy.clear()
            return []
        blobs = await asyncio.gather(*(self.store.read(f"{L.RETRY_DIR}/{n}") for n in names))
        # An entry still being written reads empty (or short): take only bytes whose id is the
        # one in the entry's name; a later pass finds it complete.
        return [Candidate(n, b, from_retry=True) for n, b in zip(names, blobs)
                if b is not None and L.item_id(b) == L.parse_lock_name(n)[0]]

    def note_busy(self, candidates: list[Candidate], won: set[str]) -> None:
        self.retry_busy |= {c.lock for c in candidates if c.from_retry and c.lock not in won}
        swept = [c for c in candidates if not c.from_retry and c.lock == L.item_id(c.item)]
        if not swept:
            return
        if self.help is not None:
            self.help.note(swept, won)
            return
        if any(c.lock in won for c in swept):
            self.miss_streak = 0
            return
        self.miss_streak += len(swept)
        if self.miss_streak < HELP_GIVE_UP or self.current_chunk is None:
            return
        # A long run of taken items: our sweep ran into a helper's. What is past it may still be
        # free (helpers start inside the chunk): go on in it as a helper does.
        self.help = ChunkHelp(self.current_chunk, self.current, self.node, known_taken=self.pos)
        self.current, self.current_chunk, self.pos = [], None, 0

    async def next(self, want: int) -> list[Candidate]:
        """Up to ``want`` candidates; [] when the retry queue and every chunk are exhausted."""
        self.markers_fresh, self.retry_fresh, self.retry_ahead = False, False, None
        if not self.markers_read and not self.exhausted:
            # The first call: the retry queue, the chunk markers and (a guess: usually free) our
            # first chunk, taken and read, in one round trip.
            out, _, _ = await asyncio.gather(self.retry_candidates(want), self._refresh_markers(),
                                             self._take_first_chunk())
        else:
            out = await self.retry_candidates(want)
        while len(out) < want and not self.exhausted:
            if self.help is not None:
                if self.help.needs_survey():
                    if out:
                        break  # (what we have; the look at the next call)
                    await self._survey()
                    continue
                out += self.help.offer(want - len(out))
                continue
            if self.pos >= len(self.current):
                if not await self._next_chunk(want - len(out)):
                    self.exhausted = True
                    break
                continue
            take = self.current[self.pos:self.pos + want - len(out)]
            self.pos += len(take)
            out += take
        ahead, self.retry_ahead = self.retry_ahead, None
        if ahead is not None:  # (listed with the chunk markers: first in line, as retry entries are)
            out += ahead[:max(0, want - len(out))]
        elif not out and self.exhausted:
            out = await self.retry_candidates(want, force=True)
        if not out and self.exhausted and self.spec.watch:
            out = await self.watch_candidates(want)
        return out

    async def watch_candidates(self, want: int) -> list[Candidate]:
        """New files in a watched source directory, once they stopped changing."""
        now = time.monotonic()
        if now - self.watch_seen < WATCH_PERIOD:
            return []
        self.watch_seen = now
        master_now = self.master_now()
        out = []
        for path, entry in await walk_files(self.files, self.spec.source, self.spec.recurse):
            if path in self.watch_known:
                continue
            signature = (entry.size, entry.mtime)
            if self.watch_pending.get(path) == signature and master_now - entry.mtime >= WATCH_SETTLE:
                out.append(Candidate(L.item_id(path), path))
            else:
                self.watch_pending[path] = signature
        for c in out[:want]:
            self.watch_known.add(c.item)
            self.watch_pending.pop(c.item, None)
        return out[:want]
