"""Draw the dashboard's panels with matplotlib, from the series its queries returned.

No Grafana runs where the tests run, so the screenshot in docs/ is this: the same
panels, the same queries, the same legends, drawn from the data a real Prometheus
answered while it scraped a real service (tests/ops/test_prometheus_live.py calls
`render`; `FM_DASHBOARD_PNG=docs/dashboard.png` makes that test write the docs' copy).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.ticker import FuncFormatter, PercentFormatter

#: One query's answer: Prometheus' `result` of a range query (metric labels and values).
Series = Sequence[Mapping[str, Any]]
_LEGEND = re.compile(r"\{\{\s*(\w+)\s*\}\}")
COLUMNS = 3
MAX_LINES = 8  # the busiest series of a panel; a screenshot cannot show fifty routes


def legend(template: str, labels: Mapping[str, str]) -> str:
    return _LEGEND.sub(lambda m: labels.get(m.group(1), ""), template).strip() or "value"


def _formatter(unit: str) -> FuncFormatter | PercentFormatter | None:
    if unit == "percentunit":
        return PercentFormatter(1.0)
    if unit == "s":
        return FuncFormatter(lambda v, _: f"{v * 1000:g} ms")
    if unit == "bytes":
        return FuncFormatter(lambda v, _: f"{v / 2**20:.1f} MiB")
    return None


def _points(series: Mapping[str, Any], start: float) -> tuple[list[float], list[float]]:
    times, values = [], []
    for t, v in series["values"]:
        value = float(v)
        if math.isfinite(value):
            times.append(float(t) - start)
            values.append(value)
    return times, values


def _draw(ax: Axes, panel: Mapping[str, Any], answers: Mapping[str, Series], start: float) -> None:
    ax.set_title(panel["title"], fontsize=9, loc="left")
    ax.tick_params(labelsize=7)
    unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "short")
    lines = []
    for target in panel["targets"]:
        for series in answers.get(target["refId"], ()):
            times, values = _points(series, start)
            if values:
                lines.append((legend(target["legendFormat"], series["metric"]), times, values))
    lines.sort(key=lambda line: -max(line[2]))
    if panel["type"] == "stat":
        ax.axis("off")
        text = "\n".join(f"{name}: {values[-1]:.3g}" for name, _, values in lines[:3])
        ax.text(0.5, 0.45, text or "no data", ha="center", va="center", fontsize=13)
        return
    for name, times, values in lines[:MAX_LINES]:
        ax.plot(times, values, linewidth=1, label=name[:40])
    formatter = _formatter(unit)
    if formatter is not None:
        ax.yaxis.set_major_formatter(formatter)
    ax.set_xlabel("seconds", fontsize=7)
    ax.grid(alpha=0.3)
    if lines:
        ax.legend(fontsize=6, loc="upper left", frameon=False)


def render(
    board: Mapping[str, Any],
    answers: Mapping[str, Mapping[str, Series]],
    path: Path,
    start: float,
    caption: str = "",
) -> Path:
    """Draw every panel of `board` (rows as headings) into a PNG at `path`.

    `answers` maps a panel's title to its targets' range-query results, by refId.
    """
    panels = [p for p in board["panels"] if p.get("targets")]
    rows = math.ceil(len(panels) / COLUMNS)
    figure, axes = plt.subplots(rows, COLUMNS, figsize=(6 * COLUMNS, 3.1 * rows), squeeze=False)
    for ax, panel in zip(axes.flat, panels, strict=False):
        _draw(ax, panel, answers.get(panel["title"], {}), start)
    for ax in axes.flat[len(panels) :]:
        ax.axis("off")
    figure.suptitle(f"{board['title']}  {caption}".strip(), fontsize=13, x=0.01, ha="left")
    figure.tight_layout(rect=(0, 0, 1, 0.985))
    figure.savefig(path, dpi=72)
    plt.close(figure)
    return path
