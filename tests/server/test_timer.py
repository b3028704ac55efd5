"""PreciseSleeper: absolute-deadline sleeps in an event loop, sub-millisecond where Linux has timerfd."""

from __future__ import annotations

import asyncio
import statistics
import sys
import time

import pytest

from loadgen.server.timer import PreciseSleeper


def test_sleeps_end_at_their_deadlines_in_order() -> None:
    async def main() -> list[tuple[int, float]]:
        sleeper = PreciseSleeper()
        if sys.platform.startswith("linux"):
            assert sleeper.precise
        woke: list[tuple[int, float]] = []
        t0 = time.monotonic()

        async def one(i: int, at: float) -> None:
            await sleeper.sleep_until(t0 + at)
            woke.append((i, time.monotonic() - t0 - at))

        # out of order on purpose: a later-armed earlier deadline must re-arm the timer
        await asyncio.gather(one(0, 0.030), one(1, 0.010), one(2, 0.020), one(3, 0.0105), one(4, -1.0))
        sleeper.close()
        return woke

    woke = asyncio.run(main())
    assert [i for i, _ in woke] == [4, 1, 3, 2, 0]
    assert min(late for i, late in woke if i != 4) >= 0  # never early


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="timerfd is Linux only")
def test_sleeps_are_sub_millisecond_precise() -> None:
    async def main() -> float:
        sleeper = PreciseSleeper()
        t0 = time.monotonic()
        lateness: list[float] = []

        async def one(at: float) -> None:
            await sleeper.sleep_until(t0 + at)
            lateness.append(time.monotonic() - t0 - at)

        # deadlines off the millisecond grid: asyncio.sleep alone would be ~0.5 ms late on median
        await asyncio.gather(*(one(0.005 + i * 0.00137) for i in range(30)))
        sleeper.close()
        return statistics.median(lateness)

    # a busy machine can delay a whole run: the best of five must be precise
    best = min(asyncio.run(main()) for _ in range(5))
    assert 0 <= best < 0.0003


def test_a_cancelled_sleep_does_not_disturb_the_others() -> None:
    async def main() -> float:
        sleeper = PreciseSleeper()
        t0 = time.monotonic()
        doomed = asyncio.create_task(sleeper.sleep_until(t0 + 0.005))
        await asyncio.sleep(0)
        doomed.cancel()
        await sleeper.sleep_until(t0 + 0.015)
        late = time.monotonic() - t0 - 0.015
        with pytest.raises(asyncio.CancelledError):
            await doomed
        sleeper.close()
        return late

    assert 0 <= asyncio.run(main()) < 0.005


def test_close_cancels_pending_sleeps() -> None:
    async def main() -> None:
        sleeper = PreciseSleeper()
        task = asyncio.create_task(sleeper.sleep_until(time.monotonic() + 10))
        await asyncio.sleep(0.001)
        sleeper.close()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 1)

    asyncio.run(main())
