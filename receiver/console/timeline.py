"""The stages of a rollback as bars on a time axis, for the server-rendered SVG timeline."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

WIDTH = 600
LABEL_WIDTH = 130
ROW_HEIGHT = 26


@dataclass(frozen=True)
class Bar:
    """One stage: where its bar sits, its outcome class and its duration text."""

    name: str
    x: float
    y: float
    width: float
    outcome: str
    duration: str
    error: str


def parse_time(text: str | None) -> datetime | None:
    """An RFC 3339 time from a record, or None."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def duration_text(seconds: float) -> str:
    """`850 ms`, `12.3 s`, `4 min 10 s`."""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes} min {rest} s"


def stage_bars(stages: list[dict[str, Any]], now: datetime) -> list[Bar]:
    """Bars scaled to the span from the first start to the last finish (or now)."""
    spans = []
    for stage in stages:
        start = parse_time(stage.get("started_at"))
        if start is None:
            continue
        end = parse_time(stage.get("finished_at")) or now
        spans.append((stage, start, max(end, start)))
    if not spans:
        return []
    first = min(start for _, start, _ in spans)
    last = max(end for _, _, end in spans)
    total = max((last - first).total_seconds(), 0.001)
    scale = (WIDTH - LABEL_WIDTH - 10) / total
    bars = []
    for row, (stage, start, end) in enumerate(spans):
        ok = stage.get("ok")
        outcome = "running" if ok is None else ("ok" if ok else "failed")
        seconds = (end - start).total_seconds()
        bars.append(
            Bar(
                name=str(stage.get("name", "?")),
                x=LABEL_WIDTH + (start - first).total_seconds() * scale,
                y=row * ROW_HEIGHT + 4,
                width=max(seconds * scale, 2.0),
                outcome=outcome,
                duration=duration_text(seconds),
                error=str(stage.get("error") or ""),
            )
        )
    return bars


def height(bars: list[Bar]) -> int:
    """The SVG's height for that many rows."""
    return len(bars) * ROW_HEIGHT + 8
