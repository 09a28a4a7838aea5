"""Markdown tables (one per benchmark) from ``bench/results/*.json``, for docs/BENCHMARKS.md.

    python -m bench.report [bench/results/latest.json ...]

Several files are merged in order (a later file's rows for a benchmark replace an earlier file's), so
separate runs (``--only``, ``--big``, ``BENCH_MIGRATION_ROWS=100000``) make one report.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bench.common import ROOT


def _number(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.3f}"


def main(paths: list[str]) -> None:
    files = [Path(p) for p in paths] or [ROOT / "bench" / "results" / "latest.json"]
    benches: dict[str, tuple[dict, list[dict]]] = {}
    for path in files:
        report = json.loads(path.read_text())
        grouped: dict[str, list[dict]] = {}
        for row in report["rows"]:
            grouped.setdefault(row["bench"], []).append(row)
        for bench, rows in grouped.items():
            benches[bench] = (report, rows)
    for bench, (report, rows) in benches.items():
        print(f"#### `{bench}` ({report['date'][:16].replace('T', ' ')} UTC, {report['machine']})\n")
        print("| endpoint | A | B | A/B | target | note |")
        print("|---|---|---|---|---|---|")
        for row in rows:
            a = f"{row['a_label']}: **{_number(row['a'])} {row['unit']}**"
            b = f"{row['b_label']}: {_number(row['b'])} {row['unit']}"
            note = row.get("note", "")
            print(f"| {row['endpoint']} | {a} | {b} | **{row['ratio']:.2f}** | {row['target']} | {note} |")
        print()


if __name__ == "__main__":
    main(sys.argv[1:])
