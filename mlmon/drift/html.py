"""The drift report as one self-contained HTML file: summary, per-feature table, a chart per feature.

Charts are inline SVG and the styles an inline ``<style>``: no script, no font, no image, nothing fetched, so
the file opens offline and anywhere an email attachment or an MLflow artifact viewer shows it. A
Content-Security-Policy in the page forbids loading anything at all, so a browser would refuse (and log) any
stray reference. Every string that came from the data or the user (feature names, categories, file names)
is escaped.

Example::

    from mlmon.drift.html import render_html

    Path("drift.html").write_text(render_html(report, reference="train.parquet", current="today/"))
"""

from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlmon.drift.report import DriftReport, FeatureDrift

CHART_WIDTH, CHART_HEIGHT = 420, 150
PLOT_TOP, PLOT_BOTTOM, PLOT_LEFT = 8, 118, 34
REFERENCE_COLOUR, CURRENT_COLOUR = "#4c78a8", "#f58518"
# Labels under the bars only while they fit; otherwise each bar's tooltip names its bin.
MAX_LABELLED_BINS = 12
LABEL_CHARACTERS = 10

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.1rem; margin-top: 2rem; }
table { border-collapse: collapse; font-size: 0.9rem; }
th, td { padding: 0.25rem 0.6rem; border-bottom: 1px solid #ddd; text-align: left; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
.drift { color: #b00020; font-weight: bold; }
.features { display: flex; flex-wrap: wrap; gap: 1.5rem; }
.feature { border: 1px solid #ddd; border-radius: 4px; padding: 0.6rem; }
.feature h3 { font-size: 1rem; margin: 0 0 0.3rem 0; overflow-wrap: anywhere; max-width: 420px; }
.meta { font-size: 0.8rem; color: #555; max-width: 420px; overflow-wrap: anywhere; }
.legend span { display: inline-block; width: 0.8rem; height: 0.8rem; margin: 0 0.3rem 0 0.8rem; }
svg text { font-size: 10px; fill: #444; }
"""


def render_html(report: DriftReport, reference: str = "reference", current: str = "current") -> str:
    """The report as a complete HTML document (a ``str``); ``reference`` and ``current`` name the inputs."""
    summary = (
        f"{len(report.drifted)} of {len(report.features)} features drifted "
        f"({report.share_drifted:.0%}); {report.rows_reference:,} reference rows, "
        f"{report.rows_current:,} current rows; PSI bins: {report.psi_bins}"
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        # Nothing may load: no script, no remote style, font or image. Inline styles and SVG only.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>mlmon drift report</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>mlmon drift report</h1>",
        f"<p>Reference: <code>{_text(reference)}</code><br>Current: <code>{_text(current)}</code></p>",
        f'<p id="summary"{" class=drift" if report.drifted else ""}>{_text(summary)}</p>',
        _table(report),
        _skipped(report),
        "<h2>Distributions</h2>",
        '<p class="legend">'
        f'<span style="background:{REFERENCE_COLOUR}"></span>reference'
        f'<span style="background:{CURRENT_COLOUR}"></span>current'
        " (share of the present values in each bin)</p>",
        '<div class="features">',
        *(_feature_card(feature) for feature in report.features),
        "</div></body></html>",
    ]
    return "\n".join(part for part in parts if part) + "\n"


def _text(value: object) -> str:
    return html.escape(str(value), quote=True)


def _number(value: float | None, spec: str) -> str:
    if value is None:
        return "-"
    if math.isnan(value):
        return "NaN"
    return format(value, spec)


def _compact(value: float) -> str:
    """A number in at most about six characters, so that ten edge labels fit under a chart: 37.4k, -1.2M."""
    for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def _table(report: DriftReport) -> str:
    header = (
        "feature", "type", "method", "statistic", "p-value", "PSI", "threshold", "drift",
        "missing reference", "missing current",
    )  # fmt: skip
    rows = []
    for f in report.features:
        cells = [
            f"<td>{_text(f.name)}</td>",
            f"<td>{f.kind}</td>",
            f"<td>{f.method}</td>",
            f'<td class="number">{_number(f.statistic, ".4g")}</td>',
            f'<td class="number">{_number(f.p_value, ".3g")}</td>',
            f'<td class="number">{_number(f.psi, ".4f")}</td>',
            f'<td class="number">{_number(f.threshold, "g")}</td>',
            '<td class="drift">DRIFT</td>' if f.drift else "<td>ok</td>",
            f'<td class="number">{f.missing_ratio_reference:.1%}</td>',
            f'<td class="number">{f.missing_ratio_current:.1%}</td>',
        ]
        rows.append(f"<tr>{''.join(cells)}</tr>")
    head = "".join(f"<th>{name}</th>" for name in header)
    return f'<table id="features"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _skipped(report: DriftReport) -> str:
    if not report.skipped:
        return ""
    items = "".join(f"<li><b>{_text(s.name)}</b>: {_text(s.reason)}</li>" for s in report.skipped)
    return f'<h2>Not compared</h2><ul id="skipped">{items}</ul>'


def _feature_card(feature: FeatureDrift) -> str:
    verdict = '<span class="drift">DRIFT</span>' if feature.drift else "ok"
    p_value = "" if feature.p_value is None else f", p-value {_number(feature.p_value, '.3g')}"
    details = [
        f"{feature.kind}; {feature.method} {_number(feature.statistic, '.4g')}{p_value} "
        f"(threshold {_number(feature.threshold, 'g')}): {verdict}; PSI {_number(feature.psi, '.4f')}",
        f"missing: {feature.missing_ratio_reference:.1%} reference, {feature.missing_ratio_current:.1%} current",
    ]
    if feature.new_categories:
        shown = ", ".join(_text(c) for c in feature.new_categories[:10])
        more = f" and {len(feature.new_categories) - 10} more" if len(feature.new_categories) > 10 else ""
        details.append(f"new categories: {shown}{more}")
    lines = "<br>".join(details)
    title = f"<h3>{_text(feature.name)}</h3>"
    return f'<div class="feature">{title}{_chart(feature)}<div class="meta">{lines}</div></div>'


def _chart(feature: FeatureDrift) -> str:
    """Reference and current shares per bin, side by side, scaled to the largest share."""
    labels = feature.bin_ranges
    bins = max(len(labels), 1)
    top = max([*feature.reference_shares, *feature.current_shares, 0.0]) or 1.0
    plot_width = CHART_WIDTH - PLOT_LEFT - 4
    slot = plot_width / bins
    bar = max(slot * 0.4, 0.5)
    height = PLOT_BOTTOM - PLOT_TOP
    shapes = [
        f'<line x1="{PLOT_LEFT}" y1="{PLOT_BOTTOM}" x2="{CHART_WIDTH - 4}" y2="{PLOT_BOTTOM}" stroke="#999"/>',
        f'<text x="{PLOT_LEFT - 4}" y="{PLOT_TOP + 8}" text-anchor="end">{top:.0%}</text>',
        f'<text x="{PLOT_LEFT - 4}" y="{PLOT_BOTTOM}" text-anchor="end">0%</text>',
    ]
    series = (
        (feature.reference_shares, REFERENCE_COLOUR, "reference"),
        (feature.current_shares, CURRENT_COLOUR, "current"),
    )
    for index, label in enumerate(labels):
        left = PLOT_LEFT + index * slot + slot * 0.1
        for offset, (shares, colour, side) in enumerate(series):
            share = shares[index] if index < len(shares) else 0.0
            bar_height = share / top * height
            x = left + offset * bar
            y = PLOT_BOTTOM - bar_height
            shapes.append(
                f'<rect class="{side}" x="{x:.2f}" y="{y:.2f}" width="{bar:.2f}" height="{bar_height:.2f}" '
                f'fill="{colour}"><title>{_text(label)}: {side} {share:.2%}</title></rect>'
            )
        if len(labels) <= MAX_LABELLED_BINS and feature.kind == "categorical":
            short = label if len(label) <= LABEL_CHARACTERS else label[: LABEL_CHARACTERS - 1] + "…"
            shapes.append(
                f'<text x="{left + bar:.2f}" y="{PLOT_BOTTOM + 12}" text-anchor="middle">{_text(short)}</text>'
            )
    edges = feature.bin_edges if feature.kind == "numerical" else ()
    if 0 < len(edges) <= MAX_LABELLED_BINS and len(edges) == len(labels) - 1:
        # Numerical bins: the edge values at the boundaries between the bars.
        for index, edge in enumerate(edges):
            x = PLOT_LEFT + (index + 1) * slot
            shapes.append(
                f'<text x="{x:.2f}" y="{PLOT_BOTTOM + 12}" text-anchor="middle">{_compact(edge)}</text>'
            )
    return (
        f'<svg class="chart" role="img" width="{CHART_WIDTH}" height="{CHART_HEIGHT}" '
        f'viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{_text(feature.name)}: reference and current shares per bin</title>{''.join(shapes)}</svg>"
    )
