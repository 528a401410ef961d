"""/metrics under multiprocess mode: our renderer says what prometheus_client's collector says."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from receiver import exposition, metrics
from receiver.cli.serve import ZERO_SERIES

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ["svc-a", "svc-b", 'odd "quoted" \\ back\nslash']
# One worker's traffic: counters, both histograms, the mostrecent gauge, and a gauge of mode
# "all" (one series a pid), which the receiver does not define but the merge must get right.
WORKER = """
import sys
from prometheus_client import Gauge
from receiver import metrics as m
step = int(sys.argv[1])
m.SKIPPED.labels("svc-a", "duplicate").inc(step)
m.SKIPPED.labels("_unconfigured", "no_target").inc()
m.STARTED.labels("svc-b", "emergency").inc()
m.DURATION.labels("svc-b").observe(7 * step)
m.DURATION.labels(sys.argv[2]).observe(2000)
m.WEBHOOK_DURATION.observe(step / 256)  # exact in binary: sums in any order agree
m.WEBHOOK_REQUESTS.labels("200").inc(10 * step)
m.GITHUB_RATELIMIT_REMAINING.set(4000 + step)
Gauge("test_per_process", "One a process", ["kind"], multiprocess_mode="all").labels("x").set(step)
Gauge("test_lowest", "Least of all", multiprocess_mode="min").set(5 - step)
"""


def run(directory: Path, code: str, *args: str) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory), "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", code, *args], env=env, check=True, timeout=60)


def families(text: str) -> dict[str, tuple[str, str, list[tuple[str, tuple[object, ...], float]]]]:
    """Each family's type, help and samples (sorted: the text format leaves order open)."""
    return {
        family.name: (
            family.type,
            family.documentation,
            sorted((s.name, tuple(sorted(s.labels.items())), s.value) for s in family.samples),
        )
        for family in text_string_to_metric_families(text)
    }


def library_text(directory: Path) -> str:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))
    return generate_latest(registry).decode()


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    """Zero series from one process, then three workers' traffic (like serve's directory)."""
    run(tmp_path, ZERO_SERIES, *SERVICES)
    for step in ("1", "2", "3"):
        run(tmp_path, WORKER, step, SERVICES[2])
    return tmp_path


def test_every_family_series_and_value_is_the_collectors(directory: Path) -> None:
    """Zero series, sums over workers, cumulative buckets, gauge modes and escaping agree."""
    ours = b"".join(exposition.render(directory)).decode()
    assert families(ours) == families(library_text(directory))
    assert 'rollback_skipped_total{reason="duplicate",service="svc-a"} 6.0' in ours
    assert 'rollback_duration_seconds_bucket{le="15.0",service="svc-b"} 2.0' in ours
    assert "rollback_github_ratelimit_remaining 4003.0" in ours  # the most recent write


def test_a_gauge_no_process_has_set_is_not_shown(tmp_path: Path) -> None:
    """The zero series alone: the mostrecent gauge's file holds 0 at time 0, which is no value."""
    run(tmp_path, ZERO_SERIES, "a")
    ours = b"".join(exposition.render(tmp_path)).decode()
    assert families(ours) == families(library_text(tmp_path))
    assert "\nrollback_github_ratelimit_remaining " not in ours


def test_a_second_scrape_sees_new_counts(directory: Path) -> None:
    """Keys are parsed once a process; values are read on every scrape."""
    before = families(b"".join(exposition.render(directory)).decode())
    run(directory, WORKER, "4", SERVICES[2])
    after = b"".join(exposition.render(directory)).decode()
    assert families(after) == families(library_text(directory)) != before


def test_a_file_of_an_unknown_kind_falls_back_to_prometheus_client(
    directory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (directory / "gauge.db").write_bytes(b"")  # no mode, no pid: not a file we can merge
    with pytest.raises(exposition.UnknownFile):
        exposition.render(directory)
    (directory / "gauge.db").unlink()
    (directory / "enum_1.db").write_bytes(struct.pack("ii", 8, 0))  # a kind we do not merge
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))
    text = b"".join(metrics.render_process_metrics()).decode()
    assert families(text) == families(library_text(directory))


def test_a_histogram_count_written_to_a_file_is_made_from_the_buckets_once(
    tmp_path: Path,
) -> None:
    """A writer that stores `_count` too (not prometheus_client's) gets one count, as merged."""
    file = MmapedDict(str(tmp_path / "histogram_999.db"))
    name, help_text = "rollback_duration_seconds", "Time from rollback start to its end"
    for sample, labels, value in (
        ("_bucket", {"le": "5.0"}, 1.0),
        ("_bucket", {"le": "+Inf"}, 1.0),
        ("_sum", {}, 3.0),
        ("_count", {}, 7.0),
    ):
        labels = {"service": "a", **labels}
        key = mmap_key(name, name + sample, list(labels), list(labels.values()), help_text)
        file.write_value(key, value, 0.0)
    file.close()
    ours = b"".join(exposition.render(tmp_path)).decode()
    assert families(ours) == families(library_text(tmp_path))
    assert ours.count("rollback_duration_seconds_count") == 1
