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
    """Clocks that stand still until ``advance`` moves them (all three alike): whatever the
    machine's speed, a test sees the same rates, intervals and silences."""

    def __init__(self, wall: float | None = None) -> None:
        self.now_monotonic = 1000.0
        self.now_wall = time.time() if wall is None else wall
        self.now_awake = 1000.0

    def advance(self, seconds: float) -> None:
        self.now_monotonic += seconds
        self.now_wall += seconds
        self.now_awake += seconds

    def monotonic(self) -> float:
        return self.now_monotonic

    def wall(self) -> float:
        return self.now_wall

    def awake(self) -> float:
        return self.now_awake


async def wait_event(event: asyncio.Event, timeout: float) -> None:
    """Wait for the event at most ``timeout`` seconds. (Python 3.11's wait_for can swallow a
    cancellation that races with the event; asyncio.timeout does not.)"""
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        pass
