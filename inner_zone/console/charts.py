"""Small server-side SVG charts: no chart library, no script, nothing from outside the console.

The SVG is inline in the page, so the strict CSP applies: colours come from classes in
console.css (presentation attributes and inline `style` are avoided), every label is
escaped, and each bar or point carries a <title> so a hover shows its value.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from markupsafe import Markup

W, H = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 14, 34


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    step = 10 ** (len(str(int(value))) - 1)
    for m in (1, 2, 2.5, 5, 10):
        if value <= m * step:
            return m * step
    return 10 * step


def _fmt(v: float) -> str:
    return f"{v:,.0f}" if v >= 10 or v == int(v) else f"{v:,.2f}"


def _frame(labels: Sequence[str], top: float, unit: str, title: str, chart_id: str) -> list[str]:
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM
    out = [f'<svg id="{escape(chart_id)}" class="chart" viewBox="0 0 {W} {H}" role="img" '
           f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">', f"<title>{escape(title)}</title>"]
    for i in range(5):
        y = TOP + plot_h * i / 4
        value = top * (4 - i) / 4
        out.append(f'<line class="grid" x1="{LEFT}" y1="{y:.1f}" x2="{W - RIGHT}" y2="{y:.1f}"/>')
        out.append(f'<text class="axis" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(_fmt(value))}</text>')
    out.append(f'<text class="axis unit" x="4" y="{TOP - 2}">{escape(unit)}</text>')
    n = max(len(labels), 1)
    every = max(1, n // 12)
    for i, label in enumerate(labels):
        if i % every:
            continue
        x = LEFT + plot_w * (i + 0.5) / n
        out.append(f'<text class="axis" x="{x:.1f}" y="{H - BOTTOM + 16}" text-anchor="middle">{escape(label)}</text>')
    return out


def bars(chart_id: str, title: str, labels: Sequence[str], series: Sequence[tuple[str, str, Sequence[float]]],
         unit: str = "") -> Markup:
    """Stacked bars: `series` is (css class, legend text, values per label)."""
    totals = [sum(s[2][i] for s in series) for i in range(len(labels))]
    top = _nice_max(max(totals, default=0))
    out = _frame(labels, top, unit, title, chart_id)
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM
    n = max(len(labels), 1)
    bw = plot_w / n * 0.7
    for i, label in enumerate(labels):
        base = 0.0
        x = LEFT + plot_w * i / n + (plot_w / n - bw) / 2
        for css, legend, values in series:
            v = values[i]
            if v <= 0:
                continue
            h = plot_h * v / top
            y = TOP + plot_h - plot_h * (base + v) / top
            out.append(f'<rect class="bar {escape(css)}" x="{x:.1f}" y="{y:.1f}" width="{bw:.1f}" height="{h:.1f}">'
                       f"<title>{escape(label)} {escape(legend)}: {escape(_fmt(v))}</title></rect>")
            base += v
    out.append(_legend(series))
    out.append("</svg>")
    return Markup("".join(out))  # noqa: S704  # nosec B704 - every text in it is escaped above


def lines(chart_id: str, title: str, labels: Sequence[str], series: Sequence[tuple[str, str, Sequence[float | None]]],
          unit: str = "") -> Markup:
    """One polyline per series; None leaves a hole (no data that hour)."""
    top = _nice_max(max((v for s in series for v in s[2] if v is not None), default=0))
    out = _frame(labels, top, unit, title, chart_id)
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM
    n = max(len(labels), 1)
    for css, legend, values in series:
        segment: list[str] = []
        for i, v in enumerate([*values, None]):
            if v is None:
                if len(segment) > 1:
                    out.append(f'<polyline class="line {escape(css)}" points="{" ".join(segment)}"/>')
                segment = []
                continue
            x = LEFT + plot_w * (i + 0.5) / n
            y = TOP + plot_h - plot_h * v / top
            segment.append(f"{x:.1f},{y:.1f}")
            out.append(f'<circle class="dot {escape(css)}" cx="{x:.1f}" cy="{y:.1f}" r="3">'
                       f"<title>{escape(labels[i])} {escape(legend)}: {escape(_fmt(v))} {escape(unit)}</title></circle>")
    out.append(_legend(series))
    out.append("</svg>")
    return Markup("".join(out))  # noqa: S704  # nosec B704 - every text in it is escaped above


def _legend(series) -> str:
    parts, x = [], LEFT
    for css, legend, _values in series:
        parts.append(f'<rect class="swatch {escape(css)}" x="{x}" y="{H - 12}" width="10" height="10"/>'
                     f'<text class="legend" x="{x + 14}" y="{H - 3}">{escape(legend)}</text>')
        x += 24 + sum(13 if ord(c) > 127 else 7 for c in legend)
    return "".join(parts)
