"""Helping in a chunk that another node sweeps (or in one's own, once its sweep ran into a helper):
look where the free items are, then take them from there.

A chunk's own sweeper goes forwards from its start. A helper surveys the chunk: in one round trip
it looks at (``stat``) the locks of up to SURVEY items spread over those it knows nothing of,
picks the longest run of free ones and starts inside it, at a point that depends on the node (so
helpers arriving together start apart), going backwards, towards the start of the run. It
surveys again when it gets to an item it knows is taken, or when a batch was all lost (someone
else is there). A sampled survey that finds nothing free is followed by one that looks at every
item it knows nothing of: a helper leaves a chunk only once every item in it is taken, so it
leaves nothing behind for the end-of-job check.
"""

from __future__ import annotations

import zlib

from .claims import Candidate

SURVEY = 64  # locks looked at in one sampled survey


class ChunkHelp:
    def __init__(self, index: int, candidates: list[Candidate], node: str, known_taken: int = 0) -> None:
        """``candidates``: the chunk's items in order; ``known_taken``: the first so many are taken
        (its own sweeper got that far)."""
        self.index = index
        self.candidates = candidates
        self.taken = bytearray(len(candidates))  # 1: taken, or offered by us (claimed or lost)
        self.taken[:known_taken] = b"\1" * min(known_taken, len(candidates))
        self.pos: int | None = None  # the next item to offer, going backwards (None: survey first)
        self.salt = zlib.crc32(f"{node}/{index}".encode())
        self.surveys = 0
        self.done = False  # every item is taken

    def needs_survey(self) -> bool:
        return self.pos is None and not self.done

    def offer(self, want: int) -> list[Candidate]:
        """Up to ``want`` candidates from where we are, backwards, up to an item known taken."""
        out: list[Candidate] = []
        while self.pos is not None and len(out) < want:
            if self.pos < 0 or self.taken[self.pos]:
                self.pos = None
                break
            out.append(self.candidates[self.pos])
            self.taken[self.pos] = 1
            self.pos -= 1
        return out

    def note(self, tried: list[Candidate], won: set[str]) -> None:
        """A batch (or a look-ahead probe) came back: all of it lost means someone else is here."""
        if tried and not any(c.lock in won for c in tried):
            self.pos = None

    def targets(self, exact: bool = False) -> tuple[list[int], bool]:
        """The items to look at, and whether that is every item we know nothing of (``exact``, or
        few left); else SURVEY of them spread evenly, from an offset that changes each survey."""
        unknown = [i for i, t in enumerate(self.taken) if not t]
        if exact or len(unknown) <= SURVEY:
            return unknown, True
        step = len(unknown) / SURVEY
        offset = ((self.salt + self.surveys * 0x9E3779B9) % 1024) / 1024
        return [unknown[int((k + offset) * step)] for k in range(SURVEY)], False

    def surveyed(self, looked: list[int], held: list[bool], exact: bool) -> bool:
        """What a survey found (``held``: a lock exists); False when it found nothing free."""
        self.surveys += 1
        runs: list[list[int]] = []  # [first, last] of each run of free items next to each other in ``looked``
        previous_free = False
        for i, h in zip(looked, held):
            if h:
                self.taken[i] = 1
            elif previous_free:
                runs[-1][1] = i
            else:
                runs.append([i, i])
            previous_free = not h
        if not runs:
            self.done = exact
            return False
        first, last = max(runs, key=lambda r: (r[1] - r[0], (r[0] ^ self.salt) & 0xFFFF))
        # Start between the middle and the top of the run (by the node): a second helper finding
        # the same run starts elsewhere in it, and each goes backwards through its own part.
        self.pos = first + int((last - first) * (0.5 + (self.salt % 1000) / 2000))
        while self.pos > first and self.taken[self.pos]:
            self.pos -= 1
        return True
