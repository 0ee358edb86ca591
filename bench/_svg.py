"""A small SVG line chart (stacked panels sharing the x axis), so that plots need no new dependency."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

WIDTH = 860
PANEL_HEIGHT = 190
LEFT, RIGHT, TOP, GAP = 70, 190, 40, 46


@dataclass(frozen=True)
class Series:
    name: str
    x: Sequence[float]
    y: Sequence[float]
    colour: str


def _nice_step(span: float, ticks: int = 5) -> float:
    raw = span / ticks if span > 0 else 1.0
    power = 10.0 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * power:
            return factor * power
    return 10 * power


def _label(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100 or value == int(value):
        return f"{value:,.0f}"
    return f"{value:g}"


def line_chart(panels: Sequence[tuple[str, Sequence[Series]]], *, x_label: str, title: str) -> str:
    """Panels stacked top to bottom, each with its own y axis (from 0) and legend; NaN breaks a line."""
    xs = [
        x for _, series in panels for s in series for x, y in zip(s.x, s.y, strict=False) if math.isfinite(y)
    ]
    x_max = max(xs, default=1.0) or 1.0
    x_step = _nice_step(x_max, 8)
    x_max = math.ceil(x_max / x_step - 1e-3) * x_step
    plot_w = WIDTH - LEFT - RIGHT
    height = TOP + len(panels) * (PANEL_HEIGHT + GAP) + 20
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="11">',
        f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
        f'<text x="{WIDTH / 2}" y="22" text-anchor="middle" font-size="14">{escape(title)}</text>',
    ]
    for index, (name, series) in enumerate(panels):
        top = TOP + index * (PANEL_HEIGHT + GAP) + 16
        bottom = top + PANEL_HEIGHT - 16
        ys = [y for s in series for y in s.y if math.isfinite(y)]
        y_max = max(ys, default=1.0) or 1.0
        y_step = _nice_step(y_max * 1.05)
        y_max = math.ceil(y_max * 1.05 / y_step) * y_step

        def px(x: float) -> float:
            return LEFT + x / x_max * plot_w

        def py(y: float, bottom: float = bottom, top: float = top, y_max: float = y_max) -> float:
            return bottom - y / y_max * (bottom - top)

        out.append(f'<text x="{LEFT}" y="{top - 6}" font-size="12" font-weight="bold">{escape(name)}</text>')
        tick = 0.0
        while tick <= y_max + 1e-9:
            y = py(tick)
            out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + plot_w}" y2="{y:.1f}" stroke="#e5e5e5"/>')
            out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_label(tick)}</text>')
            tick += y_step
        tick = 0.0
        while tick <= x_max + 1e-9:
            x = px(tick)
            out.append(f'<line x1="{x:.1f}" y1="{bottom}" x2="{x:.1f}" y2="{bottom + 4}" stroke="#555"/>')
            out.append(f'<text x="{x:.1f}" y="{bottom + 16}" text-anchor="middle">{_label(tick)}</text>')
            tick += x_step
        out.append(
            f'<rect x="{LEFT}" y="{top}" width="{plot_w}" height="{bottom - top}" fill="none" stroke="#555"/>'
        )
        for rank, s in enumerate(series):
            runs: list[list[str]] = [[]]
            for x, y in zip(s.x, s.y, strict=False):
                if math.isfinite(y):
                    runs[-1].append(f"{px(x):.1f},{py(y):.1f}")
                elif runs[-1]:
                    runs.append([])
            for run in runs:
                if len(run) == 1:
                    cx, cy = run[0].split(",")
                    out.append(f'<circle cx="{cx}" cy="{cy}" r="2" fill="{s.colour}"/>')
                elif run:
                    out.append(
                        f'<polyline fill="none" stroke="{s.colour}" stroke-width="1.6" '
                        f'points="{" ".join(run)}"/>'
                    )
            ly = top + 14 + rank * 16
            lx = LEFT + plot_w + 12
            out.append(
                f'<line x1="{lx}" y1="{ly - 4}" x2="{lx + 18}" y2="{ly - 4}" '
                f'stroke="{s.colour}" stroke-width="2"/>'
            )
            out.append(f'<text x="{lx + 24}" y="{ly}">{escape(s.name)}</text>')
    out.append(
        f'<text x="{LEFT + plot_w / 2}" y="{height - 8}" text-anchor="middle">{escape(x_label)}</text>'
    )
    out.append("</svg>")
    return "\n".join(out) + "\n"
