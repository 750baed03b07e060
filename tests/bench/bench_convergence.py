"""Peer convergence and scale, on the private control plane.

1. Scale: N injected validator pods (1,000, then 5,000) across 100 enabled
   namespaces are created and marked Ready first; then the peer watcher starts
   (`tests/bench/run_watcher.py`: the wired parts in a process of their own). Measured: time
   until the canonical ConfigMap and every mirror hold all N peers, the
   watcher's peak RSS (VmHWM), and, from its log, when it first held all N.
   Baseline: one naive poll (list every pod, write one ConfigMap) of the same pods.
2. Latency (at the first scale, watcher running): one pod at a time has its
   container crash-loop, then run again (not Ready alone: that leaves the set as is);
   time from the status write to the canonical ConfigMap holding the new set (a
   watch), to the last mirror holding the set in force (its own, or a later change's
   once made: a set made stale need not reach them) and to the last mirror written
   with its own set (the watcher's log); bytes sent per change. Baseline in the same run:
   a naive poller (list all pods, write when changed) whose 30 s period is
   shortened to `naive_period` here and its waits scaled back to 30 s.
3. Roll (same): pods are replaced in waves of 25 (new pod Ready, then the old one
   deleted), as a Deployment rollout does; canonical ConfigMap writes are counted
   from resourceVersion changes seen by a watch. Baseline: the peer-set changes
   the roll caused, i.e. the writes of a watcher that does not coalesce.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.bench import procs
from tests.bench.cluster import api_client, private_cluster
from tests.bench.fleet import ConfigMapObserver, Fleet, NaivePoller, RawClient, Seen
from tests.bench.report import Row, emit, percentile
from tests.bench.watcher_log import (
    Change,
    every_mirror_current,
    every_mirror_written,
    layouts,
    log_events,
    log_time,
    round_bytes,
    set_hash,
    write_breakdown,
)
from webhook import names

TARGET_P99_SECONDS = 1.0
TARGET_MIRRORS_P99_SECONDS = 2.0
TARGET_SCALE_PODS = 5000
TARGET_SCALE_SECONDS = 15.0
TARGET_SCALE_RSS_MB = 200.0
TARGET_ROLL_WRITES = 5
NAIVE_REAL_PERIOD = 30.0
WAVE = 25


@dataclass(frozen=True)
class Plan:
    scales: tuple[int, ...]
    namespaces: int
    changes: int
    naive_period: float
    roll: int
    timeout: float = 180.0


DEFAULT = Plan(scales=(1000, 5000), namespaces=100, changes=24, naive_period=2.0, roll=100)
QUICK = Plan(scales=(200,), namespaces=10, changes=6, naive_period=1.0, roll=25)


class Bench:
    def __init__(self, *, plan: Plan, kubeconfig: str, folder: Path) -> None:
        self.plan = plan
        self.kubeconfig = kubeconfig
        self.folder = folder
        self.api = api_client(kubeconfig, qps_pool=64)
        self.core = client.CoreV1Api(self.api)
        self.raw = RawClient(self.api)
        run = uuid.uuid4().hex[:6]
        self.system = f"bs{run}"
        self.selector = f"{names.ENABLE_LABEL}={names.ENABLE_VALUE},stellar-bench={run}"
        self.fleet = Fleet(
            core=self.core,
            raw=self.raw,
            run=run,
            namespace_count=plan.namespaces,
            labels={names.ENABLE_LABEL: names.ENABLE_VALUE, "stellar-bench": run},
        )
        self.mirror = self.fleet.namespaces[plan.namespaces // 2]
        self.rows: list[Row] = []

    def watcher_argv(self) -> list[str]:
        return [
            procs.PYTHON, "-m", "tests.bench.run_watcher",
            "--kubeconfig", self.kubeconfig, "--namespace", self.system,
            "--namespace-selector", self.selector,
            "--leader-election", "false", "--reload-mode", "none",
        ]  # fmt: skip

    def run(self) -> list[Row]:
        self.core.create_namespace({"metadata": {"name": self.system}})
        try:
            self.fleet.create_namespaces()
            for index, count in enumerate(self.plan.scales):
                started = time.monotonic()
                self.fleet.grow(count)
                print(
                    f"  {count} Ready pods in {self.plan.namespaces} namespaces "
                    f"(set up in {time.monotonic() - started:.1f} s)",
                    flush=True,
                )
                self.scale(count, first=index == 0)
        finally:
            self.fleet.delete_namespaces()
            with contextlib.suppress(ApiException):
                self.core.delete_namespace(self.system)
        return self.rows

    def holds(self, expected: frozenset[str], *spaces: str) -> Callable[[dict[str, Seen]], bool]:
        def predicate(latest: dict[str, Seen]) -> bool:
            return all(ns in latest and latest[ns].peers == expected for ns in spaces)

        return predicate

    def scale(self, count: int, *, first: bool) -> None:
        expected = self.fleet.peer_strings()
        everywhere = [self.system, *self.fleet.namespaces]
        log = self.folder / f"watcher-{count}.log"
        with ConfigMapObserver(self.raw, name=names.CONFIGMAP_NAME, namespace=None) as seen:
            wall_started, started = time.time(), time.monotonic()
            with procs.running(self.watcher_argv(), log=log) as watcher:
                done = self.converge(seen, expected, everywhere, log=log)
                peak = procs.memory_kb(watcher.pid)["VmHWM"] / 1024
                full = [e for e in log_events(log, "watcher.peers-changed") if e["peers"] == count]
                held = log_time(full[0]) - wall_started if full else None
                oversize = log_events(log, "configmap.oversize")
                sent = round_bytes(log, since=wall_started, peers_hash=set_hash(expected))
                naive = self.naive_poll_seconds()
                if first:
                    seen.close()  # stop following 100 mirrors before timing changes
                    self.latency(log=log)
                    self.roll()
                    peak = procs.memory_kb(watcher.pid)["VmHWM"] / 1024
        converged = None if done is None else done - started
        note = f"{self.plan.namespaces} namespaces; process start to the last mirror written"
        if held is not None:
            note += f"; watcher held all {count} peers after {held:.1f} s"
        if sent:
            note += f"; the rounds writing all {count} sent {sum(sent) / 1e6:.1f} MB"
        modes = layouts(log)
        if modes:
            note += f"; layout: {modes[0]}"
        if oversize:
            note += (
                f"; ConfigMap NOT written: {oversize[0]['bytes']} bytes > "
                f"{oversize[0]['limit']} (1 MiB)"
            )
        at_target = count == TARGET_SCALE_PODS
        if converged is None:
            self.rows.append(
                Row(
                    benchmark=f"scale: {count:,} pods, canonical + all mirrors written",
                    unit="s",
                    ours=None,
                    target=f"≤ {TARGET_SCALE_SECONDS:g} s" if at_target else "",
                    met=False if at_target else None,
                    note=f"not converged within {self.plan.timeout:g} s; {note}",
                )
            )
        else:
            self.rows.append(
                Row(
                    benchmark=f"scale: {count:,} pods, canonical + all mirrors written",
                    unit="s",
                    ours=converged,
                    baseline=naive,
                    baseline_name="one naive list + write",
                    target=f"≤ {TARGET_SCALE_SECONDS:g} s" if at_target else "",
                    met=converged <= TARGET_SCALE_SECONDS if at_target else None,
                    note=note,
                )
            )
        self.rows.append(
            Row(
                benchmark=f"scale: {count:,} pods, watcher peak RSS",
                unit="MB",
                ours=peak,
                target=f"≤ {TARGET_SCALE_RSS_MB:g} MB" if at_target else "",
                met=peak <= TARGET_SCALE_RSS_MB if at_target else None,
                note="VmHWM of the watcher process" + (", incl. latency and roll" if first else ""),
            )
        )

    def converge(
        self, seen: ConfigMapObserver, expected: frozenset[str], spaces: list[str], *, log: Path
    ) -> float | None:
        """When every ConfigMap held `expected`; None on timeout or once the watcher
        said the set cannot be written (then nothing more will come)."""
        deadline = time.monotonic() + self.plan.timeout
        while time.monotonic() < deadline:
            done = seen.wait(self.holds(expected, *spaces), timeout=1.0)
            if done is not None:
                return done
            if log_events(log, "configmap.oversize"):
                return None
        return None

    def naive_poll_seconds(self) -> float:
        poller = NaivePoller(
            self.core, namespace=self.system, enabled=self.fleet.namespaces, period=1.0
        )
        started = time.monotonic()
        poller.poll_once(None)
        return time.monotonic() - started

    def latency(self, *, log: Path) -> None:
        period = self.plan.naive_period
        wall_started = time.time()
        ours: list[float] = []
        naive: list[float] = []
        changes: list[Change] = []
        keys = list(self.fleet.pods)[: max(1, self.plan.changes // 2)]
        with (
            ConfigMapObserver(self.raw, name=names.CONFIGMAP_NAME, namespace=self.system) as canon,
            ConfigMapObserver(self.raw, name=names.CONFIGMAP_NAME, namespace=self.mirror) as mirror,
            NaivePoller(
                self.core, namespace=self.system, enabled=self.fleet.namespaces, period=period
            ) as poller,
            ConfigMapObserver(self.raw, name=poller.name, namespace=self.system) as plain,
        ):
            current = self.fleet.peer_strings()
            if plain.wait(self.holds(current, self.system), timeout=60) is None:
                raise RuntimeError("the naive poller never wrote the initial set")
            for change in range(self.plan.changes):
                namespace, name = keys[change // 2 % len(keys)]
                ip = self.fleet.pods[(namespace, name)]
                running = change % 2 == 1
                expected = current if running else current - {f"{ip}:11625"}
                # A random pause, or every change would land just after a naive poll
                # (the previous change was seen right after one) and wait a whole period.
                time.sleep(random.uniform(0, period))
                started = time.monotonic()
                changes.append(Change(hash=set_hash(expected), at=time.time()))
                self.fleet.set_ready(namespace, name, ip, running=running)
                at_canon = canon.wait(self.holds(expected, self.system), timeout=30)
                at_mirror = mirror.wait(self.holds(expected, self.mirror), timeout=30)
                at_plain = plain.wait(self.holds(expected, self.system), timeout=period * 3 + 30)
                if at_canon is None or at_mirror is None or at_plain is None:
                    raise RuntimeError(f"change {change} did not converge within the time limit")
                ours.append(at_canon - started)
                naive.append(at_plain - started)
            work = statistics.median(poller.poll_seconds)
        # The naive wait is the rest of the poll period plus one poll's work: scale the wait.
        scaled = [max(0.0, n - work) * NAIVE_REAL_PERIOD / period + work for n in naive]
        note = (
            f"{len(ours)} changes at {len(self.fleet.pods)} pods in {self.plan.namespaces} "
            f"namespaces; naive measured with a {period:g} s period "
            f"(p99 {percentile(naive, 99):.2f} s) and scaled to 30 s"
        )
        breakdown = write_breakdown(log, since=wall_started)
        if breakdown:
            note += "; " + breakdown
        for quantile in (50, 99):
            value = percentile(ours, quantile)
            self.rows.append(
                Row(
                    benchmark=f"convergence: Ready → canonical, p{quantile}",
                    unit="s",
                    ours=value,
                    baseline=percentile(scaled, quantile),
                    baseline_name="naive 30 s poll",
                    target=f"≤ {TARGET_P99_SECONDS:g} s" if quantile == 99 else "",
                    met=value <= TARGET_P99_SECONDS if quantile == 99 else None,
                    note=note if quantile == 50 else "",
                )
            )
        self.mirror_rows(log, changes, since=wall_started)

    def mirror_rows(self, log: Path, changes: list[Change], *, since: float) -> None:
        """Ready → every mirror current (the target) and → every mirror written with the
        change's own set, and the bytes each change sent, from the log."""
        mirrors = len(self.fleet.namespaces)
        delays, unreached = every_mirror_current(log, changes, mirrors=mirrors)
        note = (
            f"the last of {mirrors} mirrors to hold the set in force (the change's own, "
            "or a later change's once made), as the watcher logged it"
        )
        if unreached:
            note += f"; {unreached} of {len(changes)} changes never reached them all"
        for quantile in (50, 99):
            value = percentile(delays, quantile) if delays else None
            self.rows.append(
                Row(
                    benchmark=f"convergence: Ready → every mirror current, p{quantile}",
                    unit="s",
                    ours=value,
                    target=f"≤ {TARGET_MIRRORS_P99_SECONDS:g} s" if quantile == 99 else "",
                    met=(
                        value is not None and value <= TARGET_MIRRORS_P99_SECONDS and not unreached
                        if quantile == 99
                        else None
                    ),
                    note=note if quantile == 50 else "",
                )
            )
        own, short = every_mirror_written(log, changes, mirrors=mirrors)
        note = f"the last of {mirrors} mirrors written with the change's own set"
        if short:
            note += (
                f"; {short} of {len(changes)} changes reached them only after the next, "
                "or never (their set made stale)"
            )
        for quantile in (50, 99):
            self.rows.append(
                Row(
                    benchmark=f"convergence: Ready → every mirror written, p{quantile}",
                    unit="s",
                    ours=percentile(own, quantile) if own else None,
                    note=note if quantile == 50 else "",
                )
            )
        sent = round_bytes(log, since=since)
        self.rows.append(
            Row(
                benchmark="convergence: API bytes written per change, median",
                unit="MB",
                ours=statistics.median(sent) / 1e6 if sent else None,
                note=f"{len(sent)} write rounds; ConfigMap bodies as compact JSON, all "
                f"{mirrors + 1} ConfigMaps",
            )
        )

    def roll(self) -> None:
        victims = list(self.fleet.pods)[-self.plan.roll :]
        with ConfigMapObserver(self.raw, name=names.CONFIGMAP_NAME, namespace=self.system) as canon:
            before = self.fleet.peer_strings()
            if canon.wait(self.holds(before, self.system), timeout=30) is None:
                raise RuntimeError("the canonical ConfigMap is not current before the roll")
            since = time.monotonic()
            changes = 0
            for start in range(0, len(victims), WAVE):
                wave = victims[start : start + WAVE]
                self.fleet.add([self.fleet.new_pod(namespace) for namespace, _ in wave])
                self.fleet.remove(wave)
                changes += 2 * len(wave)  # one Ready pod in, one out
            rolled = time.monotonic() - since
            expected = self.fleet.peer_strings()
            done = canon.wait(self.holds(expected, self.system), timeout=60)
            time.sleep(3.0)  # any trailing write shows up by now (debounce is 0.2 s)
            writes = canon.writes(self.system, since=since)
        self.rows.append(
            Row(
                benchmark=f"roll: canonical writes while {len(victims)} pods are replaced",
                unit="writes",
                ours=writes,
                baseline=changes,
                baseline_name="peer-set changes (no coalescing)",
                target=f"≤ {TARGET_ROLL_WRITES}",
                met=writes <= TARGET_ROLL_WRITES,
                note=f"waves of {WAVE}; roll took {rolled:.1f} s; canonical current "
                + (f"{done - since:.1f} s after it began" if done else "never (60 s)"),
            )
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="200 pods in 10 namespaces")
    parser.add_argument("--keep", help="keep logs in this folder instead of a temporary one")
    args = parser.parse_args(argv)
    print("== peer convergence and scale (private control plane)")
    try:
        from webhook.controllers import watcher as discovery  # noqa: F401
    except ImportError as exc:
        emit([Row(benchmark="convergence", unit="", ours=None, note=f"not run: {exc}")])
        return 0
    plan = QUICK if args.quick else DEFAULT
    with contextlib.ExitStack() as stack:
        if args.keep:
            folder = Path(args.keep)
            folder.mkdir(parents=True, exist_ok=True)
        else:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="stellar-bench-")))
        kubeconfig = stack.enter_context(private_cluster())
        rows = Bench(plan=plan, kubeconfig=kubeconfig, folder=folder).run()
    emit(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
