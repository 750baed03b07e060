"""Result rows: what every benchmark prints, appends to a shared file, and the final table.

A row holds our figure, the baseline's figure from the same run, the target and
whether it was met. A benchmark that could not run writes a row that says why
instead of a number. `BENCH_RESULTS` names a JSON-lines file that
`scripts/bench.sh` collects; `python -m tests.bench.report FILE` prints the table.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import orjson

RESULTS_ENV = "BENCH_RESULTS"


@dataclass(frozen=True)
class Row:
    benchmark: str
    unit: str
    ours: float | None
    baseline: float | None = None
    baseline_name: str = ""
    target: str = ""
    met: bool | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.ours is None or not self.baseline:
            return None
        return self.ours / self.baseline


def not_run(benchmark: str, why: str) -> Row:
    return Row(benchmark=benchmark, unit="", ours=None, note=f"not run: {why}")


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by nearest rank, the convention of latency tools."""
    if not values:
        raise ValueError("no samples")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit in ("req/s", "writes", "pods", "count"):
        return f"{value:,.0f} {unit}"
    if abs(value) >= 100:
        return f"{value:,.0f} {unit}"
    if abs(value) >= 10:
        return f"{value:.1f} {unit}"
    return f"{value:.3g} {unit}"


def emit(rows: Iterable[Row]) -> None:
    """Print rows and append them to `$BENCH_RESULTS` when set."""
    rows = list(rows)
    path = os.environ.get(RESULTS_ENV)
    for row in rows:
        print(_line(row), flush=True)
    if path:
        with open(path, "ab") as handle:
            for row in rows:
                handle.write(orjson.dumps(dataclasses.asdict(row)) + b"\n")


def _line(row: Row) -> str:
    if row.ours is None:
        return f"  {row.benchmark}: {row.note}"
    parts = [f"  {row.benchmark}: {fmt(row.ours, row.unit)}"]
    if row.baseline is not None:
        parts.append(f"baseline {row.baseline_name} {fmt(row.baseline, row.unit)}")
    if row.ratio is not None:
        parts.append(f"ratio {row.ratio:.2f}")
    if row.target:
        parts.append(f"target {row.target}: {_met(row.met)}")
    if row.note:
        parts.append(row.note)
    return ", ".join(parts)


def _met(met: bool | None) -> str:
    return {True: "met", False: "MISSED", None: "-"}[met]


def table(rows: Sequence[Row]) -> str:
    """A Markdown table: benchmark | ours | baseline | ratio | target | met?"""
    header = ["benchmark", "ours", "baseline", "ratio", "target", "met?"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        if row.ours is None:
            cells = [row.benchmark, row.note, "-", "-", row.target or "-", _met(row.met)]
        else:
            base = (
                f"{fmt(row.baseline, row.unit)} ({row.baseline_name})"
                if row.baseline is not None
                else "-"
            )
            ratio = f"{row.ratio:.2f}" if row.ratio is not None else "-"
            cells = [
                row.benchmark,
                fmt(row.ours, row.unit),
                base,
                ratio,
                row.target or "-",
                _met(row.met),
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def load(path: str) -> list[Row]:
    rows: list[Row] = []
    with open(path, "rb") as handle:
        for line in handle:
            if line.strip():
                rows.append(Row(**orjson.loads(line)))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="print the benchmark table")
    parser.add_argument("results", help="JSON-lines file written by the benchmarks")
    parser.add_argument(
        "--not-run", nargs=2, metavar=("NAME", "WHY"), help="record that NAME did not run"
    )
    args = parser.parse_args(argv)
    if args.not_run:
        os.environ[RESULTS_ENV] = args.results
        emit([not_run(*args.not_run)])
        return 0
    rows = load(args.results)
    print(table(rows))
    notes = [row for row in rows if row.ours is not None and row.note]
    if notes:
        print()
        for row in notes:
            print(f"- {row.benchmark}: {row.note}")
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
