"""The convergence benchmark's reading of the watcher's log: when every mirror was current."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import orjson
import pytest

from tests.bench.watcher_log import Change, every_mirror_current, every_mirror_written


def write_log(path: Path, writes: list[tuple[float, str, str]]) -> None:
    lines = []
    for at, namespace, digest in writes:
        stamp = dt.datetime.fromtimestamp(at, dt.UTC).isoformat().replace("+00:00", "Z")
        entry = {"ts": stamp, "event": "configmap.written", "kind": "mirror"}
        lines.append(orjson.dumps({**entry, "namespace": namespace, "hash": digest}))
    path.write_bytes(b"\n".join(lines) + b"\n")


def test_a_set_made_stale_counts_from_the_newer_sets_writes(tmp_path: Path) -> None:
    log = tmp_path / "watcher.log"
    # Both mirrors hold A; B is made at 10 and C at 11, before B reached mirror "b".
    write_log(
        log,
        [(1.0, "a", "A"), (1.0, "b", "A"), (10.5, "a", "B"), (11.5, "a", "C"), (12.0, "b", "C")],
    )
    changes = [Change(hash="B", at=10.0), Change(hash="C", at=11.0)]
    current, unreached = every_mirror_current(log, changes, mirrors=2)
    assert current == pytest.approx([2.0, 1.0])
    assert unreached == 0
    written, short = every_mirror_written(log, changes, mirrors=2)
    assert written == pytest.approx([1.0])
    assert short == 1  # B never reached "b": its own set went stale


def test_a_mirror_already_holding_the_set_in_force_needs_no_write(tmp_path: Path) -> None:
    log = tmp_path / "watcher.log"
    # A at first; B made at 10 and reverted to A at 11: mirror "b" never left A, and
    # holds the set in force from 11 on; mirror "a" is back on A at 11.2.
    write_log(log, [(1.0, "a", "A"), (1.0, "b", "A"), (10.5, "a", "B"), (11.2, "a", "A")])
    changes = [Change(hash="B", at=10.0), Change(hash="A", at=11.0)]
    current, unreached = every_mirror_current(log, changes, mirrors=2)
    assert current == pytest.approx([1.0, 0.2])
    assert unreached == 0


def test_a_mirror_never_written_with_the_set_in_force_is_unreached(tmp_path: Path) -> None:
    log = tmp_path / "watcher.log"
    write_log(log, [(1.0, "a", "A"), (1.0, "b", "A"), (10.5, "a", "B")])
    current, unreached = every_mirror_current(log, [Change(hash="B", at=10.0)], mirrors=2)
    assert (current, unreached) == ([], 1)
