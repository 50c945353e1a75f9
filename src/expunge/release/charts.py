"""Horizontal bar charts as inline SVG, for the release report (:mod:`expunge.release.report`).

Drawn here rather than by a charting library so the report stays one self-contained file with no
scripts, renders the same in any browser and under strict content-security policies, and is
byte-identical for the same inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

# One distinct colour per chart, so a screenshot can tell the charts apart (the browser test relies on
# this), and none of them is used for text or borders.
COLORS: dict[str, str] = {
    "signal": "#1f6fb4",
    "bank": "#7040a8",
    "removed": "#c8282d",
    "quarantined": "#e89a0c",
    "reason": "#9a5a1c",
    "versions": "#14897c",
    "timings": "#4b5a6b",
    "shard-bins": "#3d7a34",  # drawn only for releases with more affected shards than the report draws
}

_CHART_WIDTH = 520
WIDE_WIDTH = 1060
_ROW = 22
_BAR = 14
_CHAR = 7.2  # approximate width of one 12px label character, to size the label column


@dataclass(frozen=True)
class Series:
    """One colour of bars in a chart: its name for the legend and tooltips, and its colour key."""

    name: str
    color: str


@dataclass(frozen=True)
class Row:
    """One labelled group of bars: a value per series (in series order)."""

    label: str
    values: tuple[float, ...]
    notes: tuple[str, ...] = ()  # extra tooltip text per series value, e.g. "+12 / -3"


def num(value: float) -> str:
    """Counts with thousands separators; seconds with enough digits to compare stages."""
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.2f}" if value >= 1 else f"{value:.3f}"


def bar_chart(
    chart: str, series: list[Series], rows: list[Row], width: int = _CHART_WIDTH, unit: str = ""
) -> str:
    """A horizontal bar chart as inline SVG; one rect (with a <title> tooltip) per non-zero value.

    Horizontal bars keep long labels (shard and bank names) readable without rotation. Zero values get no
    rect, only their number, because a zero-size rect would look like a rendering bug.
    """
    longest = max((len(r.label) for r in rows), default=4)
    label_w = int(min(260, max(60, longest * _CHAR + 12)))
    value_w = 70
    plot_w = max(100, width - label_w - value_w)
    group_h = _ROW * len(series) if len(series) > 1 else _ROW
    legend_h = 22 if len(series) > 1 else 0
    height = legend_h + group_h * len(rows) + (6 * len(rows) if len(series) > 1 else 0) + 6
    peak = max((v for r in rows for v in r.values), default=0.0) or 1.0
    out = [
        f'<svg data-chart="{escape(chart)}" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(chart)} chart">'
    ]
    if len(series) > 1:
        x = label_w
        for s in series:
            out.append(
                f'<rect class="key" x="{x}" y="4" width="12" height="12" fill="{COLORS[s.color]}"/>'
                f'<text x="{x + 17}" y="14" class="lg">{escape(s.name)}</text>'
            )
            x += int(len(s.name) * _CHAR) + 40
    y = legend_h
    for row in rows:
        mid = y + group_h / 2
        out.append(
            f'<text x="{label_w - 8}" y="{mid + 4:.1f}" text-anchor="end" class="lb">'
            f"{escape(row.label)}</text>"
        )
        for i, (s, value) in enumerate(zip(series, row.values, strict=True)):
            by = y + i * _ROW + (_ROW - _BAR) / 2
            note = row.notes[i] if i < len(row.notes) and row.notes[i] else ""
            tip = f"{row.label} · {s.name}: {num(value)}{unit}" + (f" ({note})" if note else "")
            bw = max(1.0, value / peak * plot_w) if value > 0 else 0.0
            if bw > 0:
                out.append(
                    f'<rect x="{label_w}" y="{by:.1f}" width="{bw:.1f}" height="{_BAR}" '
                    f'fill="{COLORS[s.color]}"><title>{escape(tip)}</title></rect>'
                )
            out.append(
                f'<text x="{label_w + bw + 5:.1f}" y="{by + _BAR - 3:.1f}" class="vl">'
                f"{num(value)}{unit}</text>"
            )
        y += group_h + (6 if len(series) > 1 else 0)
    out.append("</svg>")
    return "".join(out)
