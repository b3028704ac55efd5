"""Token accounting in the figures: who counted each reply, short replies and usage mismatches per turn, the local
count standing in for a reply without usage; the summary's ``tokens`` blocks, ``token_counting`` and warnings; the
report's token table."""

from __future__ import annotations

from typing import Any

from loadgen.metrics.batch import MetricsBatch
from loadgen.metrics.keys import Count, SeriesKey
from loadgen.metrics.summary import build_summary
from loadgen.metrics.turns import TurnOutcome, record_turn
from loadgen.report.tokens_table import tokens_section, tokens_table
from loadgen.types import Reply, TokenCheck, Usage

RUN: dict[str, Any] = {"duration_s": 10.0}


def reply(usage: Usage | None) -> Reply:
    return Reply(text="x y z", t_sent=1.0, t_done=1.5, chunk_times=[1.1, 1.2, 1.3], chunk_tokens=[1.0] * 3, usage=usage)


def recorded() -> MetricsBatch:
    batch = MetricsBatch()
    usage = Usage(prompt_tokens=120, completion_tokens=30)
    record_turn(batch, TurnOutcome("rest", "d", 1, reply(usage), tokens=TokenCheck("usage", 118, 30, 32, True)))
    record_turn(batch, TurnOutcome("rest", "d", 1, reply(usage), tokens=TokenCheck("usage", 60, 30, 30, False, True)))
    record_turn(batch, TurnOutcome("rest", "d", 2, reply(None), tokens=TokenCheck("tokenizer", 400, 28, 30)))
    record_turn(batch, TurnOutcome("rest", "d", 2, reply(usage)))  # no accounting: counted by usage
    record_turn(batch, TurnOutcome("rest", "d", 2, reply(None)))  # ... or by the transport's estimate
    return batch


def test_counters_per_turn_and_for_the_transport() -> None:
    batch = recorded()
    turn1, turn2, agg = (SeriesKey.series("rest", "d", 1), SeriesKey.series("rest", "d", 2), SeriesKey.series("rest"))
    assert batch.counter(turn1.with_metric(Count.SHORT_REPLY)) == 1
    assert batch.counter(turn1.with_metric(Count.USAGE_MISMATCH)) == 1
    assert batch.counter(turn1.with_metric(Count.TOKENS_BY_USAGE)) == 2
    assert batch.counter(turn2.with_metric(Count.TOKENS_BY_TOKENIZER)) == 1
    assert batch.counter(turn2.with_metric(Count.TOKENS_BY_USAGE)) == 1
    assert batch.counter(turn2.with_metric(Count.TOKENS_BY_ESTIMATE)) == 1
    assert batch.counter(agg.with_metric(Count.SHORT_REPLY)) == 1
    # without usage the local count is the prompt's (and the reply's) length
    assert batch.counter(turn2.with_metric(Count.PROMPT_TOKENS)) == 400 + 120


def test_summary_blocks_counting_and_warnings() -> None:
    summary = build_summary(recorded(), RUN)
    rows = {row["turn"]: row["tokens"] for row in summary["turns"]}
    assert rows[1]["prompt"]["p50"] == 120 and rows[1]["prompt"]["count"] == 2
    assert rows[1]["output"]["max"] == 30
    assert rows[1]["short_reply"] == 1 and rows[1]["usage_mismatch"] == 1
    assert rows[2]["counted_by"] == {"usage": 1, "tokenizer": 1, "estimate": 1}
    assert abs(rows[2]["prompt"]["max"] - 400) <= 1  # the tokenizer's count, the reply having no usage
    assert summary["token_counting"] == "usage"
    warnings = [w for w in summary["warnings"] if "--output-tokens" in w or "--token-tolerance" in w]
    assert warnings == [
        "rest: 1 of 5 replies were shorter than the length asked (--output-tokens): the server stops early or "
        "ignores min_tokens/ignore_eos; per turn in the report's token table",
        "rest: in 1 of 5 turns the server's usage disagreed with the local count (--tokenizer) by more than "
        "--token-tolerance: a different tokenizer, a context the server cut, or wrong usage figures; per turn in the "
        "report's token table",
    ]


def test_no_warnings_and_no_counting_without_replies() -> None:
    summary = build_summary(MetricsBatch(), RUN)
    assert summary["token_counting"] is None
    assert tokens_table(summary) is None and tokens_section(summary) == []


def test_report_token_table_shows_prompt_p50_and_p99_per_turn() -> None:
    summary = build_summary(recorded(), RUN)
    html = "\n".join(tokens_section(summary))
    assert "<h2>Tokens per turn</h2>" in html and "counted mostly by: usage" in html
    assert "<td>120</td><td>120</td><td>120</td>" in html  # turn 1: prompt p50, p99, max
    assert "usage 1, tokenizer 1, estimate 1" in html
    assert tokens_table({"turns": [{"transport": "rest", "dialogue": "d", "turn": 1, "count": 1}]}) is None
