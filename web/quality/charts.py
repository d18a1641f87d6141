"""Geometry of the quality and analytics charts, drawn as inline SVG by
`templates/quality/_charts.html` (no script needed). The scale and the plot margins are the
dashboard's (`web.dashboard`), so every chart in the application reads alike."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..dashboard import CHART, _nice_ceiling

SERIES_CLASSES = 6
BAR_ROW = 22
LABEL_WIDTH = 220


def _scale(biggest: float) -> float:
    """A round top of the scale at or above `biggest` (1 for charts of fractions)."""
    if biggest <= 0:
        return 0
    if biggest <= 1:
        return 1
    return _nice_ceiling(math.ceil(biggest))


def _figure(value: float) -> str:
    return f"{value:g}" if value == int(value) else f"{value:.1f}"


def column_chart(
    labels: Sequence[str], series: Sequence[tuple[str, Sequence[float]]], unit: str = ""
) -> dict[str, Any]:
    """Stacked columns: one column per label, one coloured part per series."""
    width, height = CHART["width"], CHART["height"]
    plot_height = height - CHART["top"] - CHART["bottom"]
    baseline = CHART["top"] + plot_height
    totals = [sum(values[i] for _, values in series) for i in range(len(labels))]
    top = _scale(max(totals, default=0))
    slot = (width - CHART["left"]) / max(1, len(labels))
    columns = []
    for i, label in enumerate(labels):
        x = CHART["left"] + i * slot + CHART["gap"] / 2
        y = baseline
        parts = []
        for n, (name, values) in enumerate(series):
            value = values[i]
            if not value:
                continue
            part_height = round(plot_height * value / top, 1)
            y -= part_height
            parts.append(
                {
                    "y": round(y, 1),
                    "height": part_height,
                    "css": f"s{n % SERIES_CLASSES}",
                    "title": f"{label} · {name}: {_figure(value)}{unit}",
                }
            )
        columns.append(
            {
                "x": round(x, 1),
                "width": round(max(1.0, slot - CHART["gap"]), 1),
                "centre": round(CHART["left"] + i * slot + slot / 2, 1),
                "label": label,
                "total": totals[i],
                "total_text": _figure(totals[i]),
                "top": round(y, 1),
                "parts": parts,
            }
        )
    return {
        "width": width,
        "height": height,
        "left": CHART["left"],
        "baseline": baseline,
        "label_y": height - CHART["bottom"] + 16,
        "columns": columns,
        "legend": [
            {"name": name, "css": f"s{n % SERIES_CLASSES}"} for n, (name, _) in enumerate(series)
        ],
        "ticks": _ticks(top, baseline, plot_height),
        "empty": not any(totals),
    }


def bar_list(rows: Sequence[tuple[str, float, str]], unit: str = "") -> dict[str, Any]:
    """Horizontal bars, one per (label, value, title) row, in the order given."""
    width = CHART["width"]
    top = _scale(max((value for _, value, _ in rows), default=0))
    plot_width = width - LABEL_WIDTH - 60
    bars = []
    for i, (label, value, title) in enumerate(rows):
        length = round(plot_width * value / top, 1) if top else 0
        bars.append(
            {
                "y": i * BAR_ROW + 4,
                "text_y": i * BAR_ROW + 16,
                "length": max(length, 1),
                "label": label if len(label) <= 34 else label[:33] + "…",
                "value": f"{_figure(value)}{unit}",
                "value_x": LABEL_WIDTH + length + 6,
                "title": title,
            }
        )
    return {
        "width": width,
        "height": max(1, len(rows)) * BAR_ROW + 8,
        "label_width": LABEL_WIDTH,
        "bars": bars,
        "empty": not rows,
    }


def scatter_chart(
    points: Sequence[tuple[float, float, str, bool]],
    x_lines: Sequence[float],
    y_lines: Sequence[float],
) -> dict[str, Any]:
    """Points (x in 0..1, y in -1..1, title, flagged) with threshold lines: item difficulty
    against discrimination."""
    width, height = CHART["width"], 300
    left, right, top, bottom = 44, 12, 12, 34
    plot_w, plot_h = width - left - right, height - top - bottom

    def sx(x: float) -> float:
        return round(left + plot_w * x, 1)

    def sy(y: float) -> float:
        return round(top + plot_h * (1 - (y + 1) / 2), 1)

    return {
        "width": width,
        "height": height,
        "left": left,
        "right": width - right,
        "top": top,
        "bottom": top + plot_h,
        "points": [
            {"x": sx(x), "y": sy(y), "title": title, "flagged": flagged}
            for x, y, title, flagged in points
        ],
        "x_lines": [{"x": sx(v), "value": f"{v:g}"} for v in x_lines],
        "y_lines": [{"y": sy(v), "value": f"{v:g}"} for v in y_lines],
        "x_ticks": [{"x": sx(v), "value": f"{v:g}"} for v in (0, 0.25, 0.5, 0.75, 1)],
        "y_ticks": [{"y": sy(v), "value": f"{v:g}"} for v in (-1, -0.5, 0, 0.5, 1)],
        "zero_y": sy(0),
        "label_y": height - 6,
    }


def _ticks(top: float, baseline: float, plot_height: float) -> list[dict[str, Any]]:
    values = (0, top / 2, top) if top else (0,)
    return [
        {
            "value": _figure(v),
            "y": round(baseline - plot_height * v / top, 1) if top else baseline,
        }
        for v in values
    ]
