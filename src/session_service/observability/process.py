"""`process_*` with several workers: the sum over every live worker.

prometheus_client's multiprocess mode has no process metrics (its collector reads
the sample files, and `/proc/self` is whichever worker answers the scrape). Each
worker writes sample files named after its pid, so the scrape can read every
live worker's `/proc/<pid>` instead: CPU and memory of the whole service, as one
process would report them, whichever worker answers.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from prometheus_client import ProcessCollector
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

_PID_FILE = re.compile(r"_(\d+)\.db$")
# The earliest start of a live worker is the service's; every other value adds up.
_COMBINE = {"process_start_time_seconds": min, "process_max_fds": min}


def _pids_with_files(directory: str) -> set[int]:
    return {int(m.group(1)) for name in os.listdir(directory) if (m := _PID_FILE.search(name))}


def worker_pids(directory: str) -> list[int]:
    """Workers with sample files in `directory` that are still running (a dead
    worker's files stay behind for its counters)."""
    return sorted(pid for pid in _pids_with_files(directory) if Path(f"/proc/{pid}").exists())


def dead_worker_pids(directory: str) -> list[int]:
    """Workers with sample files in `directory` that no longer run: uvicorn replaces a
    worker it killed (or one that crashed) without telling prometheus_client."""
    return sorted(pid for pid in _pids_with_files(directory) if not Path(f"/proc/{pid}").exists())


class WorkersProcessCollector(Collector):
    def __init__(self, directory: str) -> None:
        self.directory = directory

    def collect(self) -> Iterable[Metric]:
        values: dict[str, list[float]] = {}
        families: dict[str, Metric] = {}
        for pid in worker_pids(self.directory):
            one = ProcessCollector(pid=lambda pid=pid: pid, registry=None)  # type: ignore[misc]
            for family in one.collect():
                families.setdefault(family.name, family)
                for sample in family.samples:
                    values.setdefault(sample.name, []).append(sample.value)
        for family in families.values():
            merged = Metric(family.name, family.documentation, family.type)
            for sample in family.samples:
                combine = _COMBINE.get(sample.name, sum)
                merged.add_sample(sample.name, {}, combine(values[sample.name]))
            yield merged
