"""The model runs print their budget, seeds and findings on the terminal as they go,
also while pytest captures output (a soak runs for an hour)."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from tests.model import harness


@pytest.fixture(autouse=True)
def _report_on_terminal(request: pytest.FixtureRequest) -> Iterator[None]:
    capture = request.config.pluginmanager.getplugin("capturemanager")

    def write(line: str) -> None:
        if capture is None:
            print(line, file=sys.stderr, flush=True)
            return
        with capture.global_and_fixture_disabled():
            print(line, file=sys.stderr, flush=True)

    harness.REPORTER = write
    yield
    harness.REPORTER = None
