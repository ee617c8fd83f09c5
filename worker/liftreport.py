"""``sgr report lift``: the holdout experiment's figures read from the hot store, as a table, as
JSON, as a plot (the statistics: ``worker/domain/lift.py``; how to read it: docs/lift.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stores.base import HotStore
from worker.domain import lift
from worker.domain.experiment import Experiment
from worker.domain.timefmt import to_text

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def lift_report(
    hot: HotStore, experiment: Experiment, since: datetime | None = None
) -> dict[str, Any]:
    """The report of the running experiment (the salt's) on carts decided since ``since``."""
    if not experiment.active:
        return {
            "experiment": None,
            "verdict": "no experiment: set SGR_HOLDOUT_PCT (5-10 is usual) and "
            "SGR_EXPERIMENT_SALT to hold customers out and measure the lift.",
        }
    rows = hot.lift_rows(experiment.id, since or EPOCH)
    out = lift.report(rows, experiment.holdout_share).as_dict()
    started = next(
        (e["started_at"] for e in hot.experiments() if e["experiment"] == experiment.id), None
    )
    return {
        "experiment": experiment.id,
        "started_at": to_text(started) if started else None,  # the API's one time form
        "since": to_text(since) if since else None,
        **out,
    }


def _pct(x: float) -> str:
    return f"{x * 100:5.1f}%"


def _points(low: float, high: float) -> str:
    return f"[{low * 100:+.1f}, {high * 100:+.1f}]"


def table(report: dict[str, Any]) -> str:
    """The report as a few lines of text: groups, the lift, per segment, the verdict."""
    if report.get("experiment") is None:
        return str(report["verdict"])
    g = report["groups"]
    lines = [
        f"experiment {report['experiment']} (holdout {report['holdout_share']:.0%}), "
        f"sample ratio p = {report['srm_p']:.3g}" + ("  MISMATCH" if report["srm_flag"] else ""),
        f"{'group':<10} {'carts':>7} {'orders':>7} {'conversion':>10} {'revenue':>11} "
        f"{'discounts':>10} {'net margin':>11}",
    ]
    for name in lift.GROUPS:
        row = g[name]
        lines.append(
            f"{name:<10} {row['carts']:>7} {row['orders']:>7} {_pct(row['conversion']):>10} "
            f"{row['revenue']:>11.2f} {row['discount_cost']:>10.2f} {row['net_margin']:>11.2f}"
        )
    rev, net = report["incremental_revenue_per_cart"], report["net_incremental_margin_per_cart"]
    lines += [
        f"lift in conversion {report['lift'] * 100:+.1f} points, 95 % interval "
        f"{_points(report['ci_low'], report['ci_high'])} (Newcombe)",
        f"incremental revenue per eligible cart {rev['diff']:+.2f} "
        f"[{rev['ci_low']:+.2f}, {rev['ci_high']:+.2f}] (Welch)",
        f"net incremental margin per eligible cart {net['diff']:+.2f} "
        f"[{net['ci_low']:+.2f}, {net['ci_high']:+.2f}]",
        f"{'segment':<11} {'carts T/H':>13} {'conv T':>7} {'conv H':>7} {'lift':>7}  interval",
    ]
    for seg in report["segments"]:
        t, h = seg["groups"]["treatment"], seg["groups"]["holdout"]
        lines.append(
            f"{seg['segment']:<11} {t['carts']:>6}/{h['carts']:<6} {_pct(t['conversion']):>7} "
            f"{_pct(h['conversion']):>7} {seg['lift'] * 100:>+6.1f}  "
            f"{_points(seg['ci_low'], seg['ci_high'])}"
        )
    lines.append(str(report["verdict"]))
    return "\n".join(lines)


def plot(report: dict[str, Any], path: Path) -> None:
    """The lift overall and per segment with their intervals, as a PNG (matplotlib: the
    ``bench`` extra)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [("all", report)] + [(s["segment"], s) for s in report["segments"]]
    fig, ax = plt.subplots(figsize=(6, 3))
    for i, (_name, r) in enumerate(rows):
        ax.errorbar(
            r["lift"] * 100,
            i,
            xerr=[
                [max(0.0, (r["lift"] - r["ci_low"]) * 100)],
                [max(0.0, (r["ci_high"] - r["lift"]) * 100)],
            ],
            fmt="o",
            capsize=4,
        )
    ax.axvline(0, color="grey", linewidth=1)
    ax.set_yticks(range(len(rows)), [name for name, _ in rows])
    ax.invert_yaxis()
    ax.set_xlabel("lift in conversion, points (95 % interval)")
    ax.set_title(f"experiment {report['experiment']}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
