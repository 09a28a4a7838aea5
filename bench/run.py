"""``make bench``: run every benchmark, print A, B and A/B (median of ≥ 5 runs), save JSON.

    python -m bench.run [--smoke] [--big] [--only NAME ...]

Each benchmark runs in its own process so Django settings and clients never leak between them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import inspect
import json
import multiprocessing
import sys
from queue import Empty

from bench.common import ROOT, machine

BENCHES = ["session_turn", "hot_read", "webhook", "migration", "flush", "endpoint_ceiling", "cdc"]


def _child(name: str, smoke: bool, big: bool, queue) -> None:
    module = importlib.import_module(f"bench.{name}")
    kwargs = {"smoke": smoke}
    if big and "big" in inspect.signature(module.run).parameters:
        kwargs["big"] = True
    queue.put([result.row() for result in module.run(**kwargs)])


def run_bench(name: str, smoke: bool, big: bool = False) -> list[dict]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_child, args=(name, smoke, big, queue))
    process.start()
    while True:
        try:
            rows = queue.get(timeout=1)
            break
        except Empty:
            if not process.is_alive():
                raise RuntimeError(f"benchmark {name} failed (exit {process.exitcode}), traceback above") from None
    process.join()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny N: checks the benchmarks still work")
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument("--big", action="store_true", help="benchmark 5 with 1M rows instead of 100k (minutes)")
    args = parser.parse_args(argv)
    rows = []
    failed = []
    for name in args.only or BENCHES:
        try:
            bench_rows = run_bench(name, args.smoke, args.big)
        except RuntimeError as exc:  # one broken benchmark must not lose the others' figures
            print(exc, file=sys.stderr, flush=True)
            failed.append(name)
            continue
        for row in bench_rows:
            rows.append(row)
            print(
                f"{row['bench']:<16} {row['endpoint']:<14} {row['a_label']}: {row['a']:.3f} {row['unit']}  "
                f"{row['b_label']}: {row['b']:.3f} {row['unit']}  A/B = {row['ratio']:.3f}  (target {row['target']})"
                + (f"  [{row['note']}]" if row["note"] else ""),
                flush=True,
            )
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    report = {"date": dt.datetime.now(dt.UTC).isoformat(), "machine": machine(), "smoke": args.smoke, "rows": rows}
    (out / ("smoke.json" if args.smoke else "latest.json")).write_text(json.dumps(report, indent=2))
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
