"""The worker's clocks, injected so that tests can move time (tests/test_engine_inproc.py).

``monotonic`` measures intervals, ``wall`` stamps records and status files, ``awake`` keeps
counting while the host sleeps (a frozen or suspended node notices it was silent).
"""

from __future__ import annotations

import asyncio
import time


class Clock:
    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    def awake(self) -> float:
        """Seconds on a clock that keeps counting while the host sleeps (CLOCK_BOOTTIME on Linux)."""
        return time.clock_gettime(time.CLOCK_BOOTTIME) if hasattr(time, "CLOCK_BOOTTIME") else time.monotonic()


class FakeClock(Clock):
    """The real clocks plus an offset that ``advance`` moves (every clock alike)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def advance(self, seconds: float) -> None:
        self.offset += seconds

    def monotonic(self) -> float:
        return time.monotonic() + self.offset

    def wall(self) -> float:
        return time.time() + self.offset

    def awake(self) -> float:
        return super().awake() + self.offset


async def wait_event(event: asyncio.Event, timeout: float) -> None:
    """Wait for the event at most ``timeout`` seconds. (Python 3.11's wait_for can swallow a
    cancellation that races with the event; asyncio.timeout does not.)"""
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        pass
