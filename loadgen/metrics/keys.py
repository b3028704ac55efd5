"""Names of series: what a histogram or a counter is about."""

from __future__ import annotations

from dataclasses import dataclass

#: Stands for "all dialogues" / "all transports" in a key (run-level and per-transport aggregates).
ALL = "*"


@dataclass(frozen=True, order=True, slots=True)
class SeriesKey:
    transport: str
    dialogue: str
    turn: int  # 1-based turn index; 0 for aggregates over all turns
    metric: str

    def encode(self) -> str:
        return f"{self.transport}|{self.dialogue}|{self.turn}|{self.metric}"

    @staticmethod
    def decode(text: str) -> SeriesKey:
        transport, dialogue, turn, metric = text.split("|", 3)
        return SeriesKey(transport, dialogue, int(turn), metric)

    def turn_key(self) -> tuple[str, str, int]:
        return (self.transport, self.dialogue, self.turn)

    def with_metric(self, metric: str) -> SeriesKey:
        return SeriesKey(self.transport, self.dialogue, self.turn, metric)
