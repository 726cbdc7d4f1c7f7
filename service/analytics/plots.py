"""Kaplan-Meier plots of a `SurvivalReport` (PNG or SVG bytes), drawn with matplotlib's Agg
backend (no display, thread-safe through the object API: no pyplot state is used).

Only what the report shows is drawn: curves stop where the report cut them (fewer than the
minimum number at risk), refused groups are absent, and the numbers-at-risk table under the plot
is the report's risk table (rows below the threshold are already gone).
"""

from __future__ import annotations

import io

from service.analytics.reports import SurvivalReport

_DAYS_PER_MONTH = 30.4375


def km_plot(report: SurvivalReport, *, image_format: str = "png") -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if image_format not in ("png", "svg"):
        raise ValueError(f"unsupported image format {image_format!r}")
    figure = Figure(figsize=(7.5, 5.5), dpi=110)
    FigureCanvasAgg(figure)
    axes = figure.add_axes((0.1, 0.3, 0.85, 0.62))
    table_axes = figure.add_axes((0.1, 0.04, 0.85, 0.16))
    for curve in report.curves:
        months = [p.day / _DAYS_PER_MONTH for p in curve.points]
        survival = [p.survival for p in curve.points]
        label = f"{curve.group} (n={curve.n})"
        if curve.median_days is not None:
            label += f", median {curve.median_days / _DAYS_PER_MONTH:.1f} mo"
        (line,) = axes.step(months, survival, where="post", label=label)
        axes.fill_between(
            months,
            [p.ci_low for p in curve.points],
            [p.ci_high for p in curve.points],
            step="post",
            alpha=0.15,
            color=line.get_color(),
        )
    axes.set_ylim(0, 1.02)
    axes.set_xlim(left=0)
    axes.set_ylabel(f"{report.endpoint.upper()} probability")
    axes.set_xlabel("Months since start of immunotherapy")
    title = f"Kaplan-Meier {report.endpoint.upper()}"
    if report.overall is not None:
        title += f" (log-rank p = {report.overall.p:.3g})"
    axes.set_title(title)
    if report.curves:
        axes.legend(loc="upper right", fontsize="small")
    table_axes.axis("off")
    groups = [c.group for c in report.curves]
    days = sorted({r.day for r in report.risk_table})
    cells = {(r.group, r.day): str(r.at_risk) for r in report.risk_table}
    if groups and days:
        table_axes.table(
            cellText=[[cells.get((g, d), "") for d in days] for g in groups],
            rowLabels=groups,
            colLabels=[f"{d / _DAYS_PER_MONTH:.0f}" for d in days],
            loc="center",
            fontsize=7,
        )
        table_axes.set_title("Numbers at risk (months)", fontsize=8)
    if report.refused:
        figure.text(0.1, 0.005, "Not shown: " + "; ".join(r.reason for r in report.refused), fontsize=6)
    out = io.BytesIO()
    figure.savefig(out, format=image_format)
    return out.getvalue()
