"""BLACKOUT_WINDOWS: parsing, which window is active, next occurrences, and Alertmanager parity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from receiver.config import Settings
from receiver.decide.blackout import (
    BlackoutWindow,
    active_window,
    next_occurrences,
    parse_windows,
)

ROOT = Path(__file__).resolve().parent.parent
TIME_INTERVALS = ROOT / "deploy" / "alertmanager" / "time-intervals.yml"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# -- parsing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "weekdays", "start", "end", "zone"),
    [
        ("Sat,Sun 00:00-06:00 UTC", {5, 6}, 0, 360, "UTC"),
        ("Mon-Fri 22:00-02:00 Europe/Berlin", {0, 1, 2, 3, 4}, 1320, 120, "Europe/Berlin"),
        ("Fri-Mon 18:00-24:00 UTC", {4, 5, 6, 0}, 1080, 1440, "UTC"),
        ("saturday, sunday 01:30-02:45", {5, 6}, 90, 165, "UTC"),
        ("Mon,Wed-Thu 9:00 - 17:00 America/New_York", {0, 2, 3}, 540, 1020, "America/New_York"),
        ("* 03:00-04:00 UTC", set(range(7)), 180, 240, "UTC"),
        ("Daily 23:00-00:30 Asia/Kolkata", set(range(7)), 1380, 30, "Asia/Kolkata"),
    ],
)
def test_a_window_parses_into_weekdays_minutes_and_zone(
    text: str, weekdays: set[int], start: int, end: int, zone: str
) -> None:
    (window,) = parse_windows(text)
    assert (set(window.weekdays), window.start_minute, window.end_minute, window.zone) == (
        weekdays,
        start,
        end,
        zone,
    )


def test_several_windows_are_separated_by_semicolons() -> None:
    windows = parse_windows("Sat,Sun 00:00-06:00 UTC; Mon-Fri 22:00-02:00 Europe/Berlin;")
    assert [w.describe() for w in windows] == [
        "Sat,Sun 00:00-06:00 UTC",
        "Mon-Fri 22:00-02:00 Europe/Berlin",
    ]


@pytest.mark.parametrize("text", ["", "   ", ";", " ; ; "])
def test_empty_text_means_no_windows(text: str) -> None:
    assert parse_windows(text) == ()


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("Sat,Sun 00:00-06:00 Mars/Olympus", "unknown time zone 'Mars/Olympus'"),
        ("Caturday 00:00-06:00 UTC", "'Caturday' is not a weekday"),
        ("Sat 25:00-06:00 UTC", "'25:00' is not a time of day"),
        ("Sat 00:00-06:61 UTC", "'06:61' is not a time of day"),
        ("Sat 24:00-06:00 UTC", "'24:00' is not a time of day"),
        ("Sat 06:00-06:00 UTC", "start and end are the same time"),
        ("Sat,,Sun 00:00-06:00 UTC", "empty weekday"),
        ("weekends at night", "is not like 'Sat,Sun 00:00-06:00 UTC'"),
        ("Sat 00:00-06:00 UTC; Sun 1-2", "'Sun 1-2' is not like"),
    ],
)
def test_a_bad_window_raises_one_line_naming_the_bad_part(text: str, names: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_windows(text)
    assert names in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_bad_window_fails_the_settings_naming_the_variable() -> None:
    from receiver.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^BLACKOUT_WINDOWS: .*Caturday"):
        Settings.from_env({"BLACKOUT_WINDOWS": "Caturday 00:00-06:00 UTC"})


@pytest.mark.parametrize(
    ("text", "described"),
    [
        ("sat,sun 0:00-6:00 utc", "Sat,Sun 00:00-06:00 utc"),
        ("Fri-Mon 18:00-24:00 UTC", "Fri-Mon 18:00-24:00 UTC"),
        ("Mon,Tue,Wed,Fri 22:00-02:00 Europe/Berlin", "Mon-Wed,Fri 22:00-02:00 Europe/Berlin"),
        ("Sun,Mon 01:00-02:00", "Sun,Mon 01:00-02:00 UTC"),
        ("Mon-Sun 01:00-02:00", "Daily 01:00-02:00 UTC"),
    ],
)
def test_describe_is_a_normalised_form_that_parses_back(text: str, described: str) -> None:
    (window,) = parse_windows(text)
    assert window.describe() == described
    assert parse_windows(window.describe())[0].weekdays == window.weekdays


# -- which window is active ------------------------------------------------------------------

DEFAULT = "Sat,Sun 00:00-06:00 UTC"
NIGHTS = "Mon-Fri 22:00-02:00 Europe/Berlin"


@pytest.mark.parametrize(
    ("text", "now", "active"),
    [
        # 2026-11-28 is a Saturday.
        (DEFAULT, "2026-11-28T00:00:00", True),  # start is inclusive
        (DEFAULT, "2026-11-28T05:59:59", True),
        (DEFAULT, "2026-11-28T06:00:00", False),  # end is exclusive
        (DEFAULT, "2026-11-29T03:00:00", True),  # Sunday
        (DEFAULT, "2026-11-30T03:00:00", False),  # Monday
        (DEFAULT, "2026-11-27T23:59:59", False),  # Friday night
        # Berlin is UTC+1 in winter: Mon 22:00 local = Mon 21:00Z; ends Tue 02:00 = 01:00Z.
        (NIGHTS, "2026-11-30T21:00:00", True),
        (NIGHTS, "2026-11-30T20:59:00", False),
        (NIGHTS, "2026-12-01T00:59:00", True),  # after midnight: Monday's window still
        (NIGHTS, "2026-12-01T01:00:00", False),
        # Friday's window runs into Saturday; Saturday's own night has none.
        (NIGHTS, "2026-11-28T00:30:00", True),  # Sat 01:30 local
        (NIGHTS, "2026-11-28T21:30:00", False),  # Sat 22:30 local
        (NIGHTS, "2026-11-30T00:30:00", False),  # Mon 01:30 local (Sunday started none)
        # Fri-Mon wraps over the weekend.
        ("Fri-Mon 12:00-13:00 UTC", "2026-11-30T12:30:00", True),  # Monday
        ("Fri-Mon 12:00-13:00 UTC", "2026-12-01T12:30:00", False),  # Tuesday
        ("Fri-Mon 12:00-13:00 UTC", "2026-11-27T12:30:00", True),  # Friday
        # 24:00 as end covers the last minute of the day and stops at midnight.
        ("Sun 18:00-24:00 UTC", "2026-11-29T23:59:59", True),
        ("Sun 18:00-24:00 UTC", "2026-11-30T00:00:00", False),
    ],
)
def test_a_window_is_active_from_its_start_up_to_but_not_including_its_end(
    text: str, now: str, active: bool
) -> None:
    window = active_window(parse_windows(text), utc(now))
    assert (window is not None) is active


def test_the_active_window_returned_is_the_one_that_holds_now() -> None:
    windows = parse_windows(f"{DEFAULT}; {NIGHTS}")
    found = active_window(windows, utc("2026-12-01T00:30:00"))
    assert found is windows[1]


def test_no_windows_means_never_active() -> None:
    assert active_window((), utc("2026-11-28T01:00:00")) is None


def test_now_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        active_window(parse_windows(DEFAULT), datetime(2026, 11, 28, 1, 0))


# -- DST in a named zone ---------------------------------------------------------------------


def test_a_window_starting_in_the_spring_forward_gap_starts_when_the_clock_jumps() -> None:
    """Berlin, Sun 2026-03-29: 02:00 CET jumps to 03:00 CEST at 01:00Z; 02:30 never exists."""
    (window,) = parse_windows("Sun 02:30-05:00 Europe/Berlin")
    start, end = window.occurrence_on(datetime(2026, 3, 29).date())
    assert start == utc("2026-03-29T01:00:00")
    assert end == utc("2026-03-29T03:00:00")  # 05:00 CEST
    assert active_window((window,), utc("2026-03-29T00:59:59")) is None
    assert active_window((window,), utc("2026-03-29T01:00:00")) is window
    assert active_window((window,), utc("2026-03-29T02:59:59")) is window
    assert active_window((window,), utc("2026-03-29T03:00:00")) is None


def test_a_night_window_over_the_autumn_change_lasts_one_hour_longer() -> None:
    """Berlin, Sun 2026-10-25: 03:00 CEST falls back to 02:00 CET at 01:00Z."""
    (window,) = parse_windows("Sat 22:00-06:00 Europe/Berlin")
    start, end = window.occurrence_on(datetime(2026, 10, 24).date())
    assert start == utc("2026-10-24T20:00:00")  # 22:00 CEST
    assert end == utc("2026-10-25T05:00:00")  # 06:00 CET
    assert end - start == timedelta(hours=9)
    assert active_window((window,), utc("2026-10-25T04:59:00")) is window
    assert active_window((window,), utc("2026-10-25T05:00:00")) is None


def test_local_wall_clock_times_follow_the_zone_across_summer_and_winter() -> None:
    (window,) = parse_windows("Mon 09:00-10:00 America/New_York")
    summer = window.occurrence_on(datetime(2026, 7, 6).date())
    winter = window.occurrence_on(datetime(2026, 12, 7).date())
    assert summer[0] == utc("2026-07-06T13:00:00")
    assert winter[0] == utc("2026-12-07T14:00:00")
    for start, _ in (summer, winter):
        local = start.astimezone(ZoneInfo("America/New_York"))
        assert (local.hour, local.minute) == (9, 0)


# -- next occurrences -------------------------------------------------------------------------


def test_next_occurrences_are_sorted_across_windows_and_start_with_the_current_one() -> None:
    windows = parse_windows(f"{DEFAULT}; {NIGHTS}")
    now = utc("2026-11-28T01:00:00")  # inside Saturday's default window
    found = next_occurrences(windows, now, 4)
    assert [(s.isoformat(), e.isoformat(), w.describe()) for s, e, w in found] == [
        ("2026-11-28T00:00:00+00:00", "2026-11-28T06:00:00+00:00", DEFAULT),
        ("2026-11-29T00:00:00+00:00", "2026-11-29T06:00:00+00:00", DEFAULT),
        ("2026-11-30T21:00:00+00:00", "2026-12-01T01:00:00+00:00", NIGHTS),
        ("2026-12-01T21:00:00+00:00", "2026-12-02T01:00:00+00:00", NIGHTS),
    ]


def test_next_occurrences_agree_with_active_window() -> None:
    """Every instant inside a listed occurrence is active, and just outside it is not."""
    windows = parse_windows(
        "Sat,Sun 00:00-06:00 UTC; Mon-Fri 22:00-02:00 Europe/Berlin; Sun 02:30-05:00 Europe/Berlin"
    )
    now = utc("2026-03-20T12:00:00")  # spans the March change in Berlin
    found = next_occurrences(windows, now, 30)
    assert len(found) == 30
    assert [s for s, _, _ in found] == sorted(s for s, _, _ in found)
    for start, end, window in found:
        assert start < end
        assert window in windows
        assert active_window((window,), start) is window
        assert active_window((window,), end - timedelta(seconds=1)) is window
        assert active_window((window,), end) is not window or any(
            s == end for s, _, w in found if w is window
        )


@pytest.mark.parametrize("count", [0, -1])
def test_no_occurrences_are_asked_for_none(count: int) -> None:
    assert next_occurrences(parse_windows(DEFAULT), utc("2026-11-28T01:00:00"), count) == []


# -- the Alertmanager time interval shipped in deploy/ agrees with the default ----------------

AM_WEEKDAYS = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")


def _am_weekdays(items: list[str]) -> set[int]:
    """Alertmanager weekday ranges as Python weekdays (0 = Monday); week starts Sunday."""
    days: set[int] = set()
    for item in items:
        first, _, last = str(item).lower().partition(":")
        begin = AM_WEEKDAYS.index(first.strip())
        finish = AM_WEEKDAYS.index((last or first).strip())
        assert begin <= finish, (
            f"{item!r}: Alertmanager rejects it: start day cannot be "
            "before end day (list saturday and sunday separately)"
        )
        days.update((day - 1) % 7 for day in range(begin, finish + 1))
    return days


def _am_minute(text: str) -> int:
    hours, minutes = str(text).split(":")
    return int(hours) * 60 + int(minutes)


def _am_interval_matches(spec: dict[str, Any], now: datetime) -> bool:
    """Alertmanager `<time_interval_spec>` semantics (weekdays, times, location)."""
    unsupported = set(spec) - {"times", "weekdays", "location"}
    assert not unsupported, f"this comparison does not model {sorted(unsupported)}"
    local = now.astimezone(ZoneInfo(spec.get("location", "UTC")))
    if "weekdays" in spec and local.weekday() not in _am_weekdays(spec["weekdays"]):
        return False
    if "times" in spec:
        minute = local.hour * 60 + local.minute
        return any(
            _am_minute(t["start_time"]) <= minute < _am_minute(t["end_time"]) for t in spec["times"]
        )
    return True


def _rollback_blackout_specs() -> list[dict[str, Any]]:
    if not TIME_INTERVALS.exists():
        pytest.fail(
            f"{TIME_INTERVALS.relative_to(ROOT)} is missing: it must ship the "
            "'rollback-blackout' time interval"
        )
    data = yaml.safe_load(TIME_INTERVALS.read_text(encoding="utf-8"))
    entries = data.get("time_intervals", []) if isinstance(data, dict) else data
    for entry in entries or []:
        if entry.get("name") == "rollback-blackout":
            return list(entry["time_intervals"])
    pytest.fail("no time interval named 'rollback-blackout' in deploy/alertmanager/")


def test_the_alertmanager_time_interval_agrees_with_the_default_windows() -> None:
    """Both are evaluated at every 15 minutes of one week, Monday 00:00 to Monday 00:00."""
    specs = _rollback_blackout_specs()
    windows = Settings.from_env({}).blackout_windows
    assert windows, "the default BLACKOUT_WINDOWS must not be empty"
    start = utc("2026-11-23T00:00:00")  # a Monday
    disagreements = []
    for step in range(7 * 24 * 4 + 1):
        now = start + timedelta(minutes=15 * step)
        receiver_says = active_window(windows, now) is not None
        alertmanager_says = any(_am_interval_matches(spec, now) for spec in specs)
        if receiver_says != alertmanager_says:
            disagreements.append(
                f"{now:%a %H:%M} receiver={receiver_says} alertmanager={alertmanager_says}"
            )
    assert disagreements == []


def test_the_parity_check_itself_notices_a_different_interval() -> None:
    """A Saturday-only interval disagrees with the default on Sundays."""
    windows = parse_windows("Sat,Sun 00:00-06:00 UTC")
    spec = {"weekdays": ["saturday"], "times": [{"start_time": "00:00", "end_time": "06:00"}]}
    sunday = utc("2026-11-29T03:00:00")
    assert (active_window(windows, sunday) is not None) != _am_interval_matches(spec, sunday)


def test_blackout_window_is_a_frozen_value() -> None:
    (window,) = parse_windows(DEFAULT)
    with pytest.raises(AttributeError):
        window.zone = "Europe/Berlin"  # type: ignore[misc]
    assert window == BlackoutWindow(frozenset({5, 6}), 0, 360, "UTC", DEFAULT)
