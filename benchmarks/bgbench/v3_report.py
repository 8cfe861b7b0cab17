"""Markdown tables of a protocol v3 summary (issue 26), for ``--out`` and docs/benchmarks.md.

Usage::

    python -m benchmarks.bgbench.v3_report benchmarks/results/bgbench_v3_small.json > OUT/results.md
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["COLUMNS", "report"]

#: (readout, column title) of the tables, in order.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("bg_gap", "BG-gap"), ("bg_gap_unbiased", "BG-gap, unbiased probe"), ("mixed_rand", "`mixed_rand`"),
    ("only_fg", "`only_fg`"), ("bg_decodable", "background decodable"), ("heldout_object", "held-out objects"),
    ("per_object", "per-object"), ("iou_t1", "IoU T=1"), ("obj_bg_t1", "obj − bg T=1"), ("ssl_loss", "SSL loss"),
    ("views_mixed", "views mixed"), ("views_in_box", "views in a box"),
)


def _cell(c: Mapping[str, Any] | None) -> str:
    if not c or c.get("mean") is None:
        return "–"
    return f"{c['mean']:.1f}" if c["n"] < 2 else f"{c['mean']:.1f} ± {c['std']:.1f}"


def _diff(c: Mapping[str, Any] | None) -> str:
    if not c or c.get("mean_diff") is None:
        return "–"
    lo, hi = c["ci95"]
    return f"{c['mean_diff']:+.1f}" if lo is None else f"{c['mean_diff']:+.1f} [{lo:+.1f}, {hi:+.1f}]"


def report(summary: Mapping[str, Any], columns: Sequence[tuple[str, str]] = COLUMNS) -> str:
    """The summary as Markdown: arms (mean ± std, n), paired differences to the baseline with their 95 %
    intervals, the object-learning gate and the verdicts."""
    arms, pairs = summary["arms"], summary["paired"]
    head = "| run | n | " + " | ".join(t for _, t in columns) + " |"
    rule = "|---|---|" + "---|" * len(columns)
    lines = ["### Readouts per arm (test family, %, mean ± sample std over seeds)", "", head, rule]
    for arm, cells in arms.items():
        n = max((c["n"] for c in cells.values() if isinstance(c, Mapping) and "n" in c), default=0)
        lines.append(f"| {arm} | {n} | " + " | ".join(_cell(cells.get(k)) for k, _ in columns) + " |")
    lines += ["", "### Paired differences to the baseline (points; 95 % t-interval over seeds)", "", head, rule]
    for arm, cells in pairs.items():
        n = max((c["n"] for c in cells.values()), default=0)
        lines.append(f"| {arm} | {n} | " + " | ".join(_diff(cells.get(k)) for k, _ in columns) + " |")
    gate = summary["gates"]["object_learning"]
    lines += ["", f"Object-learning gate (held-out object probe, baseline − random network ≥ "
              f"{gate['points_needed']:g} points): baseline {_cell(gate['baseline'])}, random network "
              f"{_cell(gate['random_init'])}, difference {_diff(gate['difference'])}: "
              f"**{'passed' if gate['passed'] else 'not passed'}**.", "", "| claim | verdict |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in summary["verdicts"].items()]
    lines += ["", f"Seeds {summary['seeds']}; wall time {summary['wall_s']:.0f} s; command: `{summary['command']}`"]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Print the report of a summary JSON file."""
    args = list(sys.argv[1:] if argv is None else argv)
    print(report(json.loads(Path(args[0]).read_text())), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
