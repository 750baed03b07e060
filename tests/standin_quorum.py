"""Quorum sets for the stellar-core stand-in, and jsoncpp's StyledWriter, standard library only.

It ships beside `standin.py` in the stand-in image. What it copies from stellar-core:

- `SCPQuorumSet` and what `Config.cpp` does with one: `computeDefaultThreshold`,
  `LocalNode::isVBlocking`, `LocalNode::findClosestVBlocking` (the FAILURE_SAFETY check),
  `normalizeQSet` (`src/scp/QuorumSetUtils.cpp`: singleton inner sets merged into their
  parent, then validators sorted by key and inner sets in `qSetCompareInt` order),
  `isQuorumSetSane`, and `LocalNode::toJson` (`{"t": threshold, "v": [...]}`).
- Whether a node's quorum slice is met by the nodes it hears from (`QuorumSet.met`): the
  stand-in's approximation of reaching consensus (see `standin.py`).
- jsoncpp's `StyledWriter`, in which `Config::toString` logs a quorum set and the admin
  port writes its answers: sorted keys, `"key" : value`, 3-space indent, short arrays on
  one line.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

try:  # imported as tests.standin_quorum
    from tests import standin_keys as keys
except ImportError:  # run from the stand-in image, beside standin_keys.py
    import standin_keys as keys  # type: ignore[no-redef]

MAXIMUM_QUORUM_NESTING_LEVEL = 4
SIMPLE_MAJORITY, BYZANTINE_FAULT_TOLERANCE, ALL_REQUIRED = "simple", "bft", "all"


@dataclass(frozen=True)
class QuorumSet:
    """An SCPQuorumSet: `threshold` of its validators (`G...` keys) and inner sets."""

    threshold: int
    validators: tuple[str, ...] = ()
    inner: tuple[QuorumSet, ...] = ()

    @classmethod
    def of(
        cls, validators: Iterable[str], percent: int = 67, inner: Iterable[QuorumSet] = ()
    ) -> QuorumSet:
        """A set with `loadQset`'s threshold for THRESHOLD_PERCENT `percent`."""
        vals, sets = tuple(validators), tuple(inner)
        return cls(threshold(len(vals) + len(sets), percent), vals, sets)

    @property
    def size(self) -> int:
        return len(self.validators) + len(self.inner)

    def nodes(self) -> set[str]:
        """Every key in the set, at any depth (`LocalNode::forAllNodes`)."""
        found = set(self.validators)
        for inner in self.inner:
            found |= inner.nodes()
        return found

    def met(self, present: set[str]) -> bool:
        """Whether the nodes `present` satisfy this slice (`LocalNode::isQuorumSlice`)."""
        count = sum(1 for v in self.validators if v in present)
        count += sum(1 for inner in self.inner if inner.met(present))
        return self.threshold > 0 and count >= self.threshold

    def to_json(self, name: Callable[[str], str]) -> dict[str, Any]:
        """`LocalNode::toJson`: `{"t": threshold, "v": [names..., inner sets...]}`."""
        return {
            "t": self.threshold,
            "v": [name(v) for v in self.validators] + [i.to_json(name) for i in self.inner],
        }


def threshold(entries: int, percent: int) -> int:
    """`loadQset`'s rounding up of THRESHOLD_PERCENT: `1 + (n * percent - 1) / 100`."""
    return 1 + (entries * percent - 1) // 100 if entries else 0


def text(qset: QuorumSet, name: Callable[[str], str]) -> str:
    """`Config::toString(SCPQuorumSet)`: StyledWriter text, `name` for each key."""
    return styled(qset.to_json(name))


def default_threshold(qset: QuorumSet, level: str) -> int:
    """`computeDefaultThreshold`."""
    size = qset.size
    if size == 0:
        return 0
    if level == SIMPLE_MAJORITY and not qset.inner:
        return size - (size - 1) // 2
    if level == ALL_REQUIRED:
        return size
    return size - (size - 1) // 3


def normalize(qset: QuorumSet) -> QuorumSet:
    """`normalizeQSet`: singleton inner sets merged up, then everything sorted."""
    return _reorder(_simplify(qset))


def _simplify(qset: QuorumSet) -> QuorumSet:
    validators = list(qset.validators)
    inner: list[QuorumSet] = []
    for i in qset.inner:
        s = _simplify(i)
        if s.threshold == 1 and len(s.validators) == 1 and not s.inner:
            validators.append(s.validators[0])
        else:
            inner.append(s)
    if qset.threshold == 1 and not validators and len(inner) == 1:
        return inner[0]
    return QuorumSet(qset.threshold, tuple(validators), tuple(inner))


def _raw(key: str) -> bytes:
    return keys.public_key_bytes(key)


def _order(qset: QuorumSet) -> tuple[Any, ...]:
    """`qSetCompareInt`'s order: validators, then inner sets, then threshold."""
    return ([_raw(v) for v in qset.validators], [_order(i) for i in qset.inner], qset.threshold)


def _reorder(qset: QuorumSet) -> QuorumSet:
    inner = sorted((_reorder(i) for i in qset.inner), key=_order)
    return QuorumSet(qset.threshold, tuple(sorted(qset.validators, key=_raw)), tuple(inner))


def v_blocking(qset: QuorumSet, nodes: set[str]) -> bool:
    """`LocalNode::isVBlocking`."""
    if qset.threshold == 0:
        return False
    left = 1 + qset.size - qset.threshold
    for v in qset.validators:
        if v in nodes:
            left -= 1
            if left <= 0:
                return True
    for inner in qset.inner:
        if v_blocking(inner, nodes):
            left -= 1
            if left <= 0:
                return True
    return False


def closest_v_blocking(qset: QuorumSet, nodes: set[str]) -> list[str]:
    """`LocalNode::findClosestVBlocking`: a smallest set of `nodes` that blocks `qset`."""
    left = 1 + qset.size - qset.threshold
    found: list[str] = []
    for v in qset.validators:
        if v not in nodes:
            left -= 1
            if left == 0:
                return []
        else:
            found.append(v)
    inner_found: list[list[str]] = []
    for inner in qset.inner:
        got = closest_v_blocking(inner, nodes)
        if not got:
            left -= 1
            if left == 0:
                return []
        else:
            inner_found.append(got)
    found = found[:left]
    left -= len(found)
    for got in sorted(inner_found, key=len):
        if left == 0:
            break
        found += got
        left -= 1
    return found


def sanity_problem(qset: QuorumSet, *, extra_checks: bool) -> str | None:
    """`isQuorumSetSane`: its error string, or None."""
    known: set[str] = set()
    count = 0

    def check(q: QuorumSet, depth: int) -> str | None:
        nonlocal count
        if depth > MAXIMUM_QUORUM_NESTING_LEVEL:
            return "Maximum quorum nesting level exceeded"
        if q.threshold < 1:
            return "Threshold must be greater than 0"
        count += len(q.validators)
        if q.threshold > q.size:
            return "Threshold exceeds total number of entries"
        if extra_checks and q.threshold < q.size - q.threshold + 1:
            return "Threshold is lower than the v-blocking size (< 51%)."
        for v in q.validators:
            if v in known:
                return "Duplicate node found in quorum configuration"
            known.add(v)
        for i in q.inner:
            problem = check(i, depth + 1)
            if problem is not None:
                return problem
        return None

    problem = check(qset, 0)
    if problem is None and not 1 <= count <= 1000:
        problem = "Total number of nodes in a quorum must be within 1 and 1000"
    return problem


# jsoncpp's StyledWriter, which `Json::Value::toStyledString` uses


def styled(value: Any) -> str:
    """`value` as jsoncpp's StyledWriter writes it: sorted keys, `"k" : v`, 3-space indent."""
    doc: list[str] = []
    _write(value, doc, "")
    return "".join(doc) + "\n"


def _indent(doc: list[str], indent: str) -> None:
    last = doc[-1][-1:] if doc else ""
    if last == " ":
        return
    if doc and last != "\n":
        doc.append("\n")
    doc.append(indent)


def _scalar(value: Any) -> str | None:
    if isinstance(value, (dict, list)):
        return None
    return json.dumps(value, ensure_ascii=False)


def _write(value: Any, doc: list[str], indent: str) -> None:
    if isinstance(value, dict):
        if not value:
            doc.append("{}")
            return
        _indent(doc, indent)
        doc.append("{")
        inner = indent + "   "
        for i, key in enumerate(sorted(value)):
            _indent(doc, inner)
            doc.append(json.dumps(key) + " : ")
            _write(value[key], doc, inner)
            if i < len(value) - 1:
                doc.append(",")
        _indent(doc, indent)
        doc.append("}")
    elif isinstance(value, list):
        _write_list(value, doc, indent)
    else:
        doc.append(str(_scalar(value)))


def _write_list(value: list[Any], doc: list[str], indent: str) -> None:
    if not value:
        doc.append("[]")
        return
    flat = [_scalar(v) for v in value]
    nested = any(isinstance(v, (dict, list)) and v for v in value)
    if not nested and all(f is not None for f in flat):
        length = 4 + (len(value) - 1) * 2 + sum(len(f or "") for f in flat)
        if len(value) * 3 < 74 and length < 74:
            doc.append("[ " + ", ".join(f or "" for f in flat) + " ]")
            return
    _indent(doc, indent)
    doc.append("[")
    inner = indent + "   "
    for i, item in enumerate(value):
        _indent(doc, inner)
        _write(item, doc, inner)
        if i < len(value) - 1:
            doc.append(",")
    _indent(doc, indent)
    doc.append("]")
