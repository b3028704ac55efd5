"""What tracing costs a turn on the client, off and on (reports/BENCHMARKS.md, "Tracing off: cost per turn").

    python tests/bench/bench_tracing.py [--conversations 4000] [--rounds 7]

Per turn, in one process, the arms interleaved round by round (median of the rounds, ns per turn):

- ``request()``: ``conversation.request(turn)``, what a user did per turn before tracing existed;
- ``rt.request() off``: the same through :meth:`LoadgenRuntime.request` with tracing off (``rt.tracing is None``):
  its difference to the first arm is what tracing costs when it is off;
- ``rt.request() on``: with tracing on (an SDK tracer provider, spans to an in-memory exporter): the turn's span
  started and its context injected, then ended by the turn listener (the conversation's span every fifth turn);
- ``whole turn off``: request, the conversation's record of the reply, and ``rt.report`` (Locust's request event,
  our histograms): a turn's whole client-side bookkeeping without the wire, for scale.

No transport: the wire costs the same either way but for a ``None`` check on ``request.trace_headers``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import configargparse
import locust  # noqa: F401 - imported first, as the locust command does (gevent's monkey-patching)
from locust.env import Environment
from locust.event import Events

from loadgen.dialogues import Conversation
from loadgen.locust_plugin import ConversationUser, options, runtime
from loadgen.types import Reply, Usage

DIALOGUE = """\
name: plan
slots:
  name: {choice: [Zephyrine]}
turns:
  - user: "Hi, I am {name}."
    plant: [name]
  - user: "Any news?"
  - user: "More news?"
  - user: "Still nothing?"
  - user: "And my name?"
    probe: [name]
"""


class ChatUser(ConversationUser):
    pass


def _runtime(folder: Path) -> runtime.LoadgenRuntime:
    (folder / "plan.yaml").write_text(DIALOGUE, encoding="utf-8")
    parser = configargparse.ArgumentParser()
    options.add_arguments(parser)
    parsed = parser.parse_args(["--dialogues", str(folder / "plan.yaml"), "--seed", "1"])
    env = Environment(user_classes=[ChatUser], events=Events(), host="http://bench")
    return runtime.build_runtime(parsed, "local", env.events.request)


def _reply(conversation: Conversation) -> Reply:
    now = time.perf_counter()
    name = conversation.slots.get("name", "")
    return Reply(f"Hello {name}", t_sent=now, t_done=now + 0.004, chunk_times=[now + 0.001], chunk_tokens=[3.0],
                 usage=Usage(40, 3))  # fmt: skip


Arm = Callable[[list[Conversation]], None]


def _arms(rt: runtime.LoadgenRuntime, tracing: object) -> dict[str, Arm]:
    """Each arm runs every turn of the conversations it is given (made beforehand, not timed)."""
    dialogue = rt.dialogues[0]
    turns = dialogue.turns

    def plain(conversations: list[Conversation]) -> None:
        for conversation in conversations:
            for turn in turns:
                conversation.request(turn)

    def off(conversations: list[Conversation]) -> None:
        rt.tracing = None
        for conversation in conversations:
            for turn in turns:
                rt.request(conversation, turn)

    def on(conversations: list[Conversation]) -> None:
        from loadgen.metrics.turns import TurnOutcome

        rt.tracing = tracing  # type: ignore[assignment]
        assert rt.tracing is not None
        end = rt.tracing.end_turn
        outcomes = [TurnOutcome("rest", dialogue.name, turn.index, None) for turn in turns]
        for conversation in conversations:
            cid = conversation.conversation_id
            for turn, outcome in zip(turns, outcomes, strict=True):
                rt.request(conversation, turn)
                end(outcome, cid)
        rt.tracing = None

    def whole(conversations: list[Conversation]) -> None:
        rt.tracing = None
        for conversation in conversations:
            reply = _reply(conversation)
            for turn in turns:
                rt.request(conversation, turn)
                result = conversation.record(turn, reply, None)
                rt.report(result, schedule_lag_s=0.0, elapsed_s=0.004)

    return {"request()": plain, "rt.request() off": off, "rt.request() on": on, "whole turn off": whole}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conversations", type=int, default=4000, help="per arm and round (default %(default)s)")
    parser.add_argument("--rounds", type=int, default=7, help="default %(default)s")
    args = parser.parse_args(argv)

    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from loadgen.telemetry.tracing import TurnTracing

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with tempfile.TemporaryDirectory() as folder:
        rt = _runtime(Path(folder))
        arms = _arms(rt, TurnTracing(provider.get_tracer("bench"), "rest"))
        per_turn = len(rt.dialogues[0].turns)
        for arm in arms.values():  # warm up
            arm([rt.factory.new(i) for i in range(200)])
        samples: dict[str, list[float]] = {name: [] for name in arms}
        for _ in range(args.rounds):
            for name, arm in arms.items():
                exporter.clear()
                conversations = [rt.factory.new(i) for i in range(args.conversations)]
                t0 = time.perf_counter()
                arm(conversations)
                samples[name].append((time.perf_counter() - t0) / (args.conversations * per_turn) * 1e9)
            rt.flush_local()
            rt.pending.empty_in_place()
    median = {name: statistics.median(values) for name, values in samples.items()}
    print(f"Python {sys.version.split()[0]}, {args.conversations} conversations x {per_turn} turns per arm, "
          f"{args.rounds} interleaved rounds, median ns per turn (min-max)")  # fmt: skip
    print("| arm | ns per turn | min | max |")
    print("| --- | ---: | ---: | ---: |")
    for name, values in samples.items():
        print(f"| {name} | {median[name]:.0f} | {min(values):.0f} | {max(values):.0f} |")
    fastest = {name: min(values) for name, values in samples.items()}
    for label, figures in (("median", median), ("fastest round", fastest)):
        off = figures["rt.request() off"] - figures["request()"]
        on = figures["rt.request() on"] - figures["request()"]
        print(f"{label}: tracing off costs {off:+.0f} ns per turn, on {on:+.0f} ns "
              f"(a whole turn's bookkeeping: {figures['whole turn off']:.0f} ns)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
