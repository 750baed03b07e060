"""Mutation compute: `mutation.patch_for` alone, beside what any handler must at least do.

Baselines from the same run: `copy.deepcopy` of the same pod, and
`orjson.loads(orjson.dumps(pod))`. Each figure is the best of several timeit
repeats (the least disturbed one; the machine is shared), in microseconds per call.
"""

from __future__ import annotations

import argparse
import copy
import sys
import timeit
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from tests.bench import pods
from tests.bench.report import Row, emit
from webhook.core.injection import mutation
from webhook.settings import Settings

TARGET_TYPICAL_US = 100.0


def per_call_us(
    funcs: Sequence[Callable[[], Any]], *, repeat: int, min_seconds: float
) -> list[float]:
    """Best of `repeat` rounds for each function, in µs per call.

    The functions take turns within each round, so a burst of load from
    elsewhere on the machine hits all of them alike rather than one.
    """
    timers = [timeit.Timer(func) for func in funcs]
    numbers = []
    for timer in timers:
        number = 1
        while timer.timeit(number) < min_seconds:
            number *= 2
        numbers.append(number)
    best = [float("inf")] * len(timers)
    for _ in range(repeat):
        for index, (timer, number) in enumerate(zip(timers, numbers, strict=True)):
            best[index] = min(best[index], timer.timeit(number) / number * 1e6)
    return best


def measure(*, quick: bool) -> list[Row]:
    settings = Settings()
    repeat, min_seconds = (5, 0.05) if quick else (9, 0.1)
    rows: list[Row] = []
    for label, pod in (("typical", pods.validator_pod()), ("large", pods.large_pod())):
        decision, ops = mutation.patch_for(pod, settings=settings)
        if not decision.inject or not ops:
            raise SystemExit(f"bench_mutation: the {label} pod was not injected: {decision}")

        def ours(pod: dict[str, Any] = pod) -> object:
            return mutation.patch_for(pod, settings=settings)

        def deep(pod: dict[str, Any] = pod) -> object:
            return copy.deepcopy(pod)

        def roundtrip(pod: dict[str, Any] = pod) -> object:
            return orjson.loads(orjson.dumps(pod))

        ours_us, deep_us, trip_us = per_call_us(
            [ours, deep, roundtrip], repeat=repeat, min_seconds=min_seconds
        )
        typical = label == "typical"
        rows.append(
            Row(
                benchmark=f"mutation: patch_for, {label} pod",
                unit="µs",
                ours=ours_us,
                baseline=trip_us,
                baseline_name="orjson round trip",
                target=f"≤ {TARGET_TYPICAL_US:.0f} µs" if typical else "",
                met=ours_us <= TARGET_TYPICAL_US if typical else None,
                note=f"{len(ops)} patch ops; best of {repeat} timeit rounds" if typical else "",
            )
        )
        rows.append(
            Row(
                benchmark=f"mutation: patch_for vs deepcopy, {label} pod",
                unit="µs",
                ours=ours_us,
                baseline=deep_us,
                baseline_name="copy.deepcopy",
            )
        )
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer, shorter repeats")
    args = parser.parse_args(argv)
    print("== mutation compute")
    emit(measure(quick=args.quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())
