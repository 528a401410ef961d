"""Zero series under multiprocess mode: written once a metrics directory, scraped for all."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import requests
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from tests.serving import Served

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ["svc-a", "svc-b", "svc-c"]
WORKER = "import sys; from receiver import metrics; metrics.precreate(sys.argv[1:])"


def start_worker(directory: Path, services: list[str]) -> subprocess.Popen[bytes]:
    """A process that, like each gunicorn worker's create_app, pre-creates the zero series."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory), "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", WORKER, *services], env=env)


def run_workers(directory: Path, count: int, services: list[str] = SERVICES) -> None:
    workers = [start_worker(directory, services) for _ in range(count)]  # starting together
    assert [w.wait(60) for w in workers] == [0] * count


def zero_keys(directory: Path) -> dict[str, int]:
    """Series a counter file holds, by file name."""
    return {
        path.name: sum(1 for _ in MmapedDict.read_all_values_from_file(str(path)))
        for path in sorted(directory.glob("counter_*.db"))
    }


def scraped_services(directory: Path) -> set[str]:
    """The services with zero `rollback_failed_total` series in a scrape of the directory."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))
    return {
        sample.labels["service"]
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for sample in family.samples
        if sample.name == "rollback_failed_total" and sample.value == 0
    }


def test_workers_starting_together_write_the_zero_series_once(tmp_path: Path) -> None:
    """Each scrape parses every worker's file: one copy of ~40 series a service, not one each."""
    run_workers(tmp_path, 3)
    files = zero_keys(tmp_path)
    assert len(files) == 1, files
    (series,) = files.values()
    assert series >= len(SERVICES) * 3 * 4  # every service, tier and stage
    assert scraped_services(tmp_path) == set(SERVICES)


def test_a_worker_started_later_adds_no_second_copy(tmp_path: Path) -> None:
    run_workers(tmp_path, 1)
    run_workers(tmp_path, 1)  # a worker gunicorn starts after one died
    assert len(zero_keys(tmp_path)) == 1


def test_the_zeros_are_written_again_once_their_file_is_removed(tmp_path: Path) -> None:
    run_workers(tmp_path, 1)
    for path in tmp_path.glob("*.db"):  # what `serve` removes from the last run
        path.unlink()
    run_workers(tmp_path, 1)
    assert scraped_services(tmp_path) == set(SERVICES)


def test_other_services_after_a_reload_get_their_zero_series(tmp_path: Path) -> None:
    run_workers(tmp_path, 1)
    run_workers(tmp_path, 1, [*SERVICES, "svc-new"])  # SIGHUP: workers read a new config
    assert scraped_services(tmp_path) == {*SERVICES, "svc-new"}


def test_serve_writes_the_zero_series_before_its_workers_start(tmp_path: Path) -> None:
    """No worker keeps the zero series' metric objects: a process that exited wrote them."""
    env = {
        "SERVICE_NAME": "app",
        "GITOPS_REPO": "acme/gitops",
        "GITOPS_PATH": "k8s/app",
        "BLACKOUT_WINDOWS": "none",
        "PROMETHEUS_URL": "http://127.0.0.1:9",
    }
    served = Served(env, workers=1, tmp=tmp_path)
    try:
        text = requests.get(served.url + "/metrics", timeout=5).text
        workers = served.worker_pids()
    finally:
        served.stop()
    failed = {
        sample.labels["stage"]
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "rollback_failed_total" and sample.labels["service"] == "app"
    }
    assert failed == {"gitops", "argocd", "validation", "interrupted"}
    writers = {path.stem.rsplit("_", 1)[-1] for path in tmp_path.glob("mp-*/counter_*.db")}
    assert writers and not writers & workers
