"""ReadyBatches (loadgen.server.ready), which the AMQP front's ``--amqp-coalesce ready`` publishes by: the items an
async stream had ready at the same moment, never one held back for another; and the option's validation."""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from loadgen.server.config import ServerConfig
from loadgen.server.main import OPTIONS, build_config, configure
from loadgen.server.ready import ReadyBatches


class Produced:
    """A stream fed from outside: ``put`` makes items ready, ``end``/``fail`` end it; a reader waits on a future."""

    def __init__(self) -> None:
        self.items: list[object] = []
        self.waiter: asyncio.Future[None] | None = None
        self.ended: BaseException | None = None
        self.cancelled = False

    def put(self, *items: object) -> None:
        self.items.extend(items)
        self._wake()

    def end(self, error: BaseException | None = None) -> None:
        self.ended = error or StopAsyncIteration()
        self._wake()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def __aiter__(self) -> Produced:
        return self

    async def __anext__(self) -> object:
        while not self.items:
            if self.ended is not None:
                raise self.ended
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await self.waiter
            except asyncio.CancelledError:
                self.cancelled = True
                raise
        return self.items.pop(0)


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_ready_items_come_in_one_batch_and_a_waited_one_alone() -> None:
    async def main() -> list[list[object]]:
        stream = Produced()
        batches = ReadyBatches(stream)
        stream.put(1, 2, 3)
        got = [await batches.__anext__()]  # all three were ready: one batch
        assert batches.waiting  # the fourth is being waited for, its step kept
        asyncio.get_running_loop().call_soon(stream.put, 4)
        got.append(await batches.__anext__())  # it had to be waited for: alone, not held for the fifth
        stream.put(5)
        stream.end()
        got.append(await batches.__anext__())
        with pytest.raises(StopAsyncIteration):
            await batches.__anext__()
        return got

    assert run(main()) == [[1, 2, 3], [4], [5]]


def test_a_paced_stream_comes_out_one_item_per_batch_at_its_own_time() -> None:
    """Items 20 ms apart: each batch holds one item and comes out within a few ms of it being produced."""

    async def paced() -> AsyncIterator[float]:
        for _ in range(6):
            await asyncio.sleep(0.02)
            yield time.perf_counter()

    async def main() -> list[tuple[list[float], float]]:
        return [(batch, time.perf_counter()) async for batch in ReadyBatches(paced())]

    out = run(main())
    assert isinstance(out, list) and len(out) == 6
    for batch, at in out:
        assert len(batch) == 1
        assert 0 <= at - batch[0] < 0.01  # out as soon as produced, never held for the next one (20 ms later)


def test_the_limit_splits_a_long_ready_run() -> None:
    async def main() -> list[list[object]]:
        stream = Produced()
        stream.put(*range(7))
        stream.end()
        return [batch async for batch in ReadyBatches(stream, limit=3)]

    assert run(main()) == [[0, 1, 2], [3, 4, 5], [6]]
    with pytest.raises(ValueError, match="at least 1"):
        ReadyBatches(Produced(), limit=0)


def test_limit_one_is_one_item_per_batch_and_never_probes() -> None:
    async def main() -> tuple[list[list[object]], bool]:
        stream = Produced()
        stream.put(1, 2)
        batches = ReadyBatches(stream, limit=1)
        first = await batches.__anext__()
        return [first, await batches.__anext__()], batches.waiting

    assert run(main()) == ([[1], [2]], False)


def test_an_error_after_ready_items_comes_after_them() -> None:
    async def main() -> list[object]:
        stream = Produced()
        stream.put("a", "b")
        stream.end(RuntimeError("the engine fell over"))
        batches = ReadyBatches(stream)
        got: list[object] = [await batches.__anext__()]
        try:
            await batches.__anext__()
        except RuntimeError as exc:
            got.append(str(exc))
        return got

    assert run(main()) == [["a", "b"], "the engine fell over"]


def test_cancelling_the_reader_reaches_the_step_that_waits() -> None:
    async def main() -> bool:
        stream = Produced()
        stream.put(1)
        batches = ReadyBatches(stream)
        assert await batches.__anext__() == [1]
        task = asyncio.ensure_future(batches.__anext__())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return stream.cancelled

    assert run(main()) is True


def test_close_drops_the_waiting_step() -> None:
    async def main() -> bool:
        stream = Produced()
        stream.put(1)
        batches = ReadyBatches(stream)
        await batches.__anext__()
        assert batches.waiting
        batches.close()
        return batches.waiting

    assert run(main()) is False


def test_the_coalesce_option() -> None:
    parser = argparse.ArgumentParser()
    configure(parser)
    assert build_config(parser.parse_args([])).amqp_coalesce == "ready"
    assert build_config(parser.parse_args(["--amqp-coalesce", "off"])).amqp_coalesce == "off"
    with pytest.raises(SystemExit):
        parser.parse_args(["--amqp-coalesce", "sometimes"])
    with pytest.raises(ValueError, match="amqp_coalesce must be one of ready, off"):
        ServerConfig(amqp_coalesce="sometimes")
    assert any(o.flag == "--amqp-coalesce" for o in OPTIONS)
