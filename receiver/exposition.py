"""The multiprocess metric files rendered to the Prometheus text format, cheaply.

prometheus_client's MultiProcessCollector re-parses every key of every process's file on
each scrape (a JSON document a series), builds Metric and Sample objects for each and formats
them again: with 100 configured services (~3,900 series) that is ~120 ms of CPU and ~5 MB
allocated for the moment of the scrape, which glibc then keeps in the serving thread's malloc
arena. Here each distinct key is parsed and formatted once per process into a small entry
(about 1.5 MB for those ~3,900 keys; the keys are bounded: the contract bounds label
cardinality), the files are read through mmap rather than copied to the heap, and a scrape
only adds values up. Same families, series, labels and values as
prometheus_client's collector (tests/test_exposition.py compares both); series order may
differ, which the text format allows.
"""

from __future__ import annotations

import json
import mmap
import os
import struct
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, cast

from prometheus_client import utils

KEYS_CACHED = 65_536  # distinct keys; far above what the contract's bounded labels make
_INT = struct.Struct("i")
_TWO_DOUBLES = struct.Struct("dd")
# Gauge modes whose series drop the pid label (prometheus_client's multiprocess_mode).
_GAUGE_MERGED = {"min", "max", "sum", "mostrecent"} | {
    f"live{m}" for m in ("min", "max", "sum", "mostrecent")
}
_TYPES = {"counter", "histogram", "summary", "gauge"}
_PARTS = ("_bucket", "_sum", "_count")  # a histogram's samples, grouped into its series
# The client's own number format (+Inf, Go's exponents), so values read as its collector's.
_number = cast(Callable[[float], str], utils.floatToGoString)


class UnknownFile(ValueError):
    """A file this renderer does not know how to merge (the caller falls back)."""


class _Key(NamedTuple):
    """One key of a multiprocess file, parsed and formatted once: one a series, so kept small."""

    family: str  # the metric's name (a counter's without `_total`), interned
    line: str  # how the series' line starts, name and labels: `x_total{a="b"}`
    group: str | None  # a histogram's series (`_sum`, `_bucket`): labels without `le`, interned
    le: float | None  # a histogram bucket's bound


_parsed: dict[bytes, _Key] = {}  # by the key's bytes in the file (the same in every file)
_help: dict[str, str] = {}  # by family; the first help text seen wins, as in the collector


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _label_text(labels: dict[str, str]) -> str:
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
    return f"{{{inner}}}" if inner else ""


def _parse(raw: bytes, pid: str | None = None) -> _Key:
    """A key of a file, parsed once a process; with `pid` (a gauge a process), every time."""
    key = _parsed.get(raw) if pid is None else None
    if key is not None:
        return key
    family, sample, labels, help_text = json.loads(raw)
    family = sys.intern(family)
    _help.setdefault(family, help_text)
    if pid is not None:
        return _Key(family, sample + _label_text({**labels, "pid": pid}), None, None)
    le = labels.pop("le", None) if sample.endswith("_bucket") else None
    bound = float(le) if le is not None else None
    group = sys.intern(_label_text(labels)) if sample.endswith(_PARTS) else None
    if bound is not None:
        labels["le"] = _number(bound)
    key = _parsed[raw] = _Key(family, sample + _label_text(labels), group, bound)
    return key


def _entries(path: Path) -> Iterator[tuple[bytes, float, float]]:
    """(key, value, timestamp) of one file, read in place; a half-written last entry ends it."""
    try:
        with path.open("rb") as f:
            if os.fstat(f.fileno()).st_size < 8:
                return
            data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except FileNotFoundError:  # a live gauge's file removed by mark_process_dead meanwhile
        return
    with data:
        used = min(_INT.unpack_from(data, 0)[0], len(data))
        pos = 8
        while pos + 4 <= used:
            length = _INT.unpack_from(data, pos)[0]
            start = pos + 4
            pos = start + length + (8 - (length + 4) % 8)
            if pos + 16 > used:
                return
            value, stamp = _TWO_DOUBLES.unpack_from(data, pos)
            yield data[start : start + length], value, stamp
            pos += 16


@dataclass(slots=True)
class _Family:
    typ: str
    keys: dict[str, _Key]  # by series (its line's start), first seen
    values: dict[str, float]
    stamps: dict[str, float]


def _collect(directory: Path) -> dict[str, _Family]:
    if len(_parsed) > KEYS_CACHED:  # never with the contract's labels; a bound all the same
        _parsed.clear()
    families: dict[str, _Family] = {}
    for path in sorted(directory.glob("*.db")):
        parts = path.name[: -len(".db")].split("_")
        typ = parts[0]
        if typ not in _TYPES or (typ == "gauge" and len(parts) < 3):
            raise UnknownFile(path.name)
        mode = parts[1] if typ == "gauge" else "sum"
        pid = None if mode in _GAUGE_MERGED else parts[2]  # a gauge series a process
        for raw, value, stamp in _entries(path):
            key = _parse(raw, pid)
            family = families.get(key.family)
            if family is None:
                family = families[key.family] = _Family(typ, {}, {}, {})
            _merge(family, mode, key, value, stamp)
    return families


def _merge(family: _Family, mode: str, key: _Key, value: float, stamp: float) -> None:
    """prometheus_client's merge: counters, histograms and summaries add up; gauges by mode."""
    series, values = key.line, family.values
    if mode in ("mostrecent", "livemostrecent"):  # a gauge never set (time 0) is not shown
        if stamp > family.stamps.get(series, 0.0):
            family.keys[series] = key
            values[series] = value
            family.stamps[series] = stamp
        return
    if series not in values:
        family.keys[series] = key
        values[series] = value
    elif mode in ("sum", "livesum"):
        values[series] += value
    elif mode in ("min", "livemin"):
        values[series] = min(values[series], value)
    elif mode in ("max", "livemax"):
        values[series] = max(values[series], value)


def _family_lines(name: str, family: _Family) -> list[str]:
    shown = f"{name}_total" if family.typ == "counter" else name
    help_text = _help.get(name, "").replace("\\", r"\\").replace("\n", r"\n")
    lines = [f"# HELP {shown} {help_text}\n# TYPE {shown} {family.typ}\n"]
    if family.typ != "histogram":
        lines += [f"{line} {_number(v)}\n" for line, v in family.values.items()]
        return lines
    by_group: dict[str, list[tuple[_Key, float]]] = {}
    for line, value in family.values.items():
        key = family.keys[line]
        by_group.setdefault(key.group or "", []).append((key, value))
    for group, samples in by_group.items():
        count = f"{name}_count{group}"  # made from the buckets below, as the collector does
        sums = [(k, v) for k, v in samples if k.le is None and k.line != count]
        lines += [f"{k.line} {_number(v)}\n" for k, v in sums]
        buckets = sorted(((k, v) for k, v in samples if k.le is not None), key=_bound)
        total = 0.0
        for key, value in buckets:  # the files hold each bucket's own count: make them cumulative
            total += value
            lines.append(f"{key.line} {_number(total)}\n")
        if buckets:
            lines.append(f"{count} {_number(total)}\n")
    return lines


def _bound(sample: tuple[_Key, float]) -> float:
    return sample[0].le or 0.0


def render(directory: str | Path) -> list[bytes]:
    """Every family of the directory's files, one chunk each (a Response body as it is)."""
    return [
        "".join(_family_lines(name, family)).encode()
        for name, family in _collect(Path(directory)).items()
    ]
