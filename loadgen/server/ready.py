"""What an async stream has ready now: its items in batches, without ever waiting for one more.

:class:`ReadyBatches` waits for one item of the stream as usual, then takes every further item the stream can give
at once (its ``__anext__`` finishes without suspending: the item was produced already), and stops at the first
one that would have to wait. That one is not dropped or restarted: its suspended step is kept and awaited at the
next batch. So a batch is exactly "what was ready at the same moment": an item that had to be waited for is never
held back for another, and a paced stream (items some milliseconds apart) comes out one item per batch, each as
soon as it was produced. The reference server's AMQP front publishes one reply message per batch
(:mod:`loadgen.wire.amqp`: a message may carry several token chunks).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Generator
from typing import Any, Generic, TypeVar

T = TypeVar("T")

_END: Any = object()


class _Resume:
    """Awaits the rest of an awaitable whose first step already ran (and yielded ``first``): what
    ``yield from`` does, for an iterator that was started by hand."""

    __slots__ = ("_first", "_steps")

    def __init__(self, steps: Generator[Any, Any, Any], first: Any) -> None:
        self._steps, self._first = steps, first

    def __await__(self) -> Generator[Any, Any, Any]:
        steps, value = self._steps, self._first
        while True:
            try:
                sent = yield value
            except GeneratorExit:
                steps.close()
                raise
            except BaseException as exc:  # a cancellation (or any throw) goes on to the suspended step
                try:
                    value = steps.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    value = steps.send(sent)
                except StopIteration as stop:
                    return stop.value


class ReadyBatches(Generic[T]):
    """``async for batch in ReadyBatches(stream)``: lists of items of ``stream``, each the one item waited for
    and every item ready with it (at most ``limit``). An error of the stream raised while taking the ready items
    ends the batch; it is raised at the next one, after the items before it went out."""

    __slots__ = ("_error", "_limit", "_pending", "_source")

    def __init__(self, source: AsyncIterable[T], limit: int = 1024) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        self._source: AsyncIterator[T] = source.__aiter__()
        self._limit = limit
        self._pending: _Resume | None = None  # the next item's step that had to wait
        self._error: BaseException | None = None

    def __aiter__(self) -> ReadyBatches[T]:
        return self

    async def __anext__(self) -> list[T]:
        error, self._error = self._error, None
        if error is not None:
            raise error
        pending, self._pending = self._pending, None
        first: T = await (pending if pending is not None else self._source.__anext__())
        batch = [first]
        while len(batch) < self._limit:
            item = self._ready()
            if item is _END:
                break
            batch.append(item)
        return batch

    def _ready(self) -> Any:
        """The next item if the stream has it now, else ``_END`` (having kept its suspended step, or the error)."""
        steps = self._source.__anext__().__await__()
        try:
            suspended = steps.send(None)
        except StopIteration as done:
            return done.value
        except StopAsyncIteration as exc:
            self._error = exc
            return _END
        except Exception as exc:
            self._error = exc
            return _END
        self._pending = _Resume(steps, suspended)
        return _END

    @property
    def waiting(self) -> bool:
        """A step that waits for the next item is kept (the stream was left before its end)."""
        return self._pending is not None

    def close(self) -> None:
        """Drop the step that waits for the next item, if any (after the stream itself was closed)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending._steps.close()


__all__ = ["ReadyBatches"]
