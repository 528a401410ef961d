"""Recurring blackout windows (BLACKOUT_WINDOWS): parse them and say whether one is active.

Format: `;`-separated windows, each `DAYS HH:MM-HH:MM [ZONE]`, for example
`Sat,Sun 00:00-06:00 UTC; Mon-Fri 22:00-02:00 Europe/Berlin`. DAYS is a comma list of
weekday names (`Mon` or `Monday`) and inclusive ranges (`Mon-Fri`, wrapping `Fri-Mon`);
`*` or `Daily` means every day. A window's weekday is the day it starts: an end at or
before the start ends on the next day, and `24:00` is allowed as an end. ZONE is an IANA
time zone (default UTC); times are wall-clock times in it. An occurrence starts at the
first instant the zone's clock reaches its start (the end of a spring-forward gap when the
start time does not exist that day) and ends at the first instant it reaches its end.

Pure: no I/O besides the zoneinfo database; `now` is always passed in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_FULL_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_WINDOW = re.compile(
    r"^(?P<days>.+?)\s+(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})(?:\s+(?P<zone>\S+))?$"
)


@dataclass(frozen=True)
class BlackoutWindow:
    """One recurring window: on `weekdays` (0 = Monday) from `start` to `end` in `zone`."""

    weekdays: frozenset[int]
    start_minute: int  # minutes after local midnight, 0..1439
    end_minute: int  # 1..1440; <= start_minute means the window ends the next day
    zone: str = "UTC"
    text: str = ""

    @property
    def crosses_midnight(self) -> bool:
        return self.end_minute <= self.start_minute

    def describe(self) -> str:
        """A stable human text, e.g. `Sat,Sun 00:00-06:00 UTC`."""
        return (
            f"{_describe_days(self.weekdays)} {_hhmm(self.start_minute)}-"
            f"{_hhmm(self.end_minute)} {self.zone}"
        )

    def occurrence_on(self, day: date) -> tuple[datetime, datetime]:
        """The UTC start and end of the occurrence starting on local date `day`."""
        zone = zone_info(self.zone)
        start = _first_instant_at(day, self.start_minute, zone)
        end_day = day + timedelta(days=1) if self.crosses_midnight else day
        end = _first_instant_at(end_day, self.end_minute, zone)
        return start, end


def parse_windows(text: str) -> tuple[BlackoutWindow, ...]:
    """Parse BLACKOUT_WINDOWS; raise ValueError naming the bad part. Empty text: no windows."""
    windows = []
    for part in text.split(";"):
        part = part.strip()
        if part:
            windows.append(_parse_window(part))
    return tuple(windows)


def active_window(
    windows: tuple[BlackoutWindow, ...] | list[BlackoutWindow], now: datetime
) -> BlackoutWindow | None:
    """The first window whose occurrence contains `now` (tz-aware), else None."""
    now = _aware(now)
    for window in windows:
        local_today = now.astimezone(zone_info(window.zone)).date()
        # An occurrence holding `now` started today or yesterday (local); two days back
        # covers a day-long window stretched by a DST change.
        for back in (0, 1, 2):
            day = local_today - timedelta(days=back)
            if day.weekday() not in window.weekdays:
                continue
            start, end = window.occurrence_on(day)
            if start <= now < end:
                return window
    return None


def next_occurrences(
    windows: tuple[BlackoutWindow, ...] | list[BlackoutWindow], now: datetime, count: int
) -> list[tuple[datetime, datetime, BlackoutWindow]]:
    """The next `count` occurrences (UTC start, UTC end, window) not yet over, by start.

    An occurrence in progress at `now` comes first, with its start in the past.
    """
    now = _aware(now)
    if count <= 0 or not windows:
        return []
    found: list[tuple[datetime, datetime, BlackoutWindow]] = []
    weeks = count + 1  # each window occurs at least once a week
    for window in windows:
        first = now.astimezone(zone_info(window.zone)).date() - timedelta(days=2)
        for offset in range(7 * weeks + 3):
            day = first + timedelta(days=offset)
            if day.weekday() not in window.weekdays:
                continue
            start, end = window.occurrence_on(day)
            if end > now:
                found.append((start, end, window))
    found.sort(key=lambda item: (item[0], item[1]))
    return found[:count]


def _parse_window(part: str) -> BlackoutWindow:
    match = _WINDOW.match(part)
    if not match:
        raise ValueError(f"{part!r} is not like 'Sat,Sun 00:00-06:00 UTC'")
    weekdays = _parse_days(match["days"], part)
    start = _parse_minute(match["start"], part, allow_end=False)
    end = _parse_minute(match["end"], part, allow_end=True)
    if start == end:
        raise ValueError(f"{part!r}: start and end are the same time")
    zone = match["zone"] or "UTC"
    try:
        zone_info(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{part!r}: unknown time zone {zone!r}") from None
    return BlackoutWindow(frozenset(weekdays), start, end, zone, part)


def _day_index(name: str, part: str) -> int:
    key = name.strip().lower()
    for index, full in enumerate(_FULL_NAMES):
        if len(key) >= 3 and full.startswith(key):
            return index
    raise ValueError(f"{part!r}: {name.strip()!r} is not a weekday (Mon..Sun)")


def _parse_days(text: str, part: str) -> set[int]:
    if text.strip().lower() in ("*", "daily"):
        return set(range(7))
    days: set[int] = set()
    for item in text.split(","):
        item = item.strip()
        if not item:
            raise ValueError(f"{part!r}: empty weekday in {text.strip()!r}")
        if "-" in item:
            first, _, last = item.partition("-")
            begin, finish = _day_index(first, part), _day_index(last, part)
            span = (finish - begin) % 7  # Fri-Mon wraps over the weekend
            days.update((begin + step) % 7 for step in range(span + 1))
        else:
            days.add(_day_index(item, part))
    return days


def _parse_minute(text: str, part: str, allow_end: bool) -> int:
    hours, _, minutes = text.partition(":")
    hour, minute = int(hours), int(minutes)
    if hour == 24 and minute == 0 and allow_end:
        return 1440
    if hour > 23 or minute > 59:
        raise ValueError(
            f"{part!r}: {text!r} is not a time of day (00:00..23:59"
            f"{', or 24:00 as end' if allow_end else ''})"
        )
    return hour * 60 + minute


def zone_info(name: str) -> tzinfo:
    """The tzinfo of a zone name (UTC, or an IANA name through zoneinfo)."""
    if name.upper() == "UTC":
        return UTC
    return ZoneInfo(name)


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now


def _first_instant_at(day: date, minute: int, zone: tzinfo) -> datetime:
    """The first UTC instant at which the zone's wall clock on `day` reads `minute` or later."""
    if minute == 1440:
        day, minute = day + timedelta(days=1), 0
    wall = datetime.combine(day, time(minute // 60, minute % 60))
    candidate = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if candidate.astimezone(zone).replace(tzinfo=None) == wall:
        return candidate  # exists (fold=0 is the first of a repeated time)
    # The wall time falls in a spring-forward gap: the clock reaches it at the transition,
    # which lies between the two readings of the wall time (fold=1 uses the other offset).
    other = int(wall.replace(tzinfo=zone, fold=1).timestamp())
    low, high = sorted((other, int(candidate.timestamp())))
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).replace(tzinfo=None) >= wall:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _describe_days(days: frozenset[int]) -> str:
    if len(days) == 7:
        return "Daily"
    start = 0
    while (start - 1) % 7 in days and start > -6:
        start -= 1  # a run through Sunday into Monday (Fri-Mon) reads as one range
    runs: list[list[int]] = []
    for step in range(7):
        day = (start + step) % 7
        if day not in days:
            continue
        if runs and (runs[-1][-1] + 1) % 7 == day:
            runs[-1].append(day)
        else:
            runs.append([day])
    parts = []
    for run in runs:
        if len(run) >= 3:
            parts.append(f"{DAY_NAMES[run[0]]}-{DAY_NAMES[run[-1]]}")
        else:
            parts.extend(DAY_NAMES[d] for d in run)
    return ",".join(parts)
