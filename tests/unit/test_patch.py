"""JSON Patch diff and apply, checked against the `jsonpatch` library."""

from __future__ import annotations

import datetime as dt
from typing import Any

import jsonpatch
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webhook.core.injection import patch

KEYS = st.sampled_from(["a", "b", "c/d", "e~f", "~1", "/", "", "0", "-", "stellar.org/x"])
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**40), max_value=2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5)
)
JSON = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=4),
    max_leaves=20,
)


def _round_trip(before: Any, after: Any) -> list[dict[str, Any]]:
    """Diff, then apply with both appliers; both must give `after` exactly."""
    ops = patch.diff(before, after)
    assert patch.equal(jsonpatch.apply_patch(before, ops), after)
    assert patch.equal(patch.apply(before, ops), after)
    return ops


def test_diff_equal_documents_is_empty() -> None:
    doc = {"a": [1, {"b": None}], "c": "x"}
    assert patch.diff(doc, patch.clone(doc)) == []


def test_diff_escapes_slash_and_tilde_in_keys() -> None:
    before: dict[str, Any] = {"metadata": {"annotations": {}}}
    after = {"metadata": {"annotations": {"stellar.org/peers-injection-status": "{}", "a~b": "1"}}}
    ops = _round_trip(before, after)
    paths = {op["path"] for op in ops}
    assert paths == {
        "/metadata/annotations/stellar.org~1peers-injection-status",
        "/metadata/annotations/a~0b",
    }


def test_diff_appends_become_adds_at_explicit_indices() -> None:
    before = {"env": [{"name": "A", "value": "1"}]}
    after = {"env": [{"name": "A", "value": "1"}, {"name": "B"}, {"name": "C"}]}
    ops = _round_trip(before, after)
    assert ops == [
        {"op": "add", "path": "/env/1", "value": {"name": "B"}},
        {"op": "add", "path": "/env/2", "value": {"name": "C"}},
    ]


def test_diff_same_length_lists_diff_item_by_item() -> None:
    before = {"containers": [{"name": "a"}, {"name": "b", "env": []}]}
    after = {"containers": [{"name": "a"}, {"name": "b", "env": [{"name": "X"}]}]}
    ops = _round_trip(before, after)
    assert ops == [{"op": "add", "path": "/containers/1/env/0", "value": {"name": "X"}}]


def test_diff_shorter_or_reordered_list_is_replaced_whole() -> None:
    ops = _round_trip({"l": [1, 2, 3]}, {"l": [3]})
    assert ops == [{"op": "replace", "path": "/l", "value": [3]}]
    ops = _round_trip({"l": [1, 2]}, {"l": [0, 1, 2]})
    assert ops == [{"op": "replace", "path": "/l", "value": [0, 1, 2]}]


def test_diff_null_becomes_list_is_a_replace() -> None:
    ops = _round_trip({"volumes": None}, {"volumes": [{"name": "v"}]})
    assert ops == [{"op": "replace", "path": "/volumes", "value": [{"name": "v"}]}]


def test_diff_tells_true_from_one_and_one_from_one_point_zero() -> None:
    assert _round_trip({"a": 1}, {"a": True}) == [{"op": "replace", "path": "/a", "value": True}]
    assert _round_trip([1], [1.0]) == [{"op": "replace", "path": "/0", "value": 1.0}]
    assert _round_trip({"a": {"b": [0]}}, {"a": {"b": [False]}}) != []


def test_diff_removes_keys() -> None:
    assert _round_trip({"a": 1, "b/c": 2}, {"a": 1}) == [{"op": "remove", "path": "/b~1c"}]


def test_diff_whole_document_replaced_when_types_differ() -> None:
    assert _round_trip({"a": 1}, [1]) == [{"op": "replace", "path": "", "value": [1]}]


def test_diff_handles_values_orjson_refuses() -> None:
    stamp = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    before = {"t": stamp, "big": 2**70, "k": {1: "int key"}}
    after = {"t": stamp, "big": 2**70, "k": {1: "int key"}, "new": 1}
    assert patch.diff(before, after) == [{"op": "add", "path": "/new", "value": 1}]
    assert patch.diff({"t": stamp}, {"t": stamp.isoformat()}) != []


def test_clone_is_deep_and_keeps_types() -> None:
    doc: dict[str, Any] = {"a": [{"b": 1.0, "c": True, "d": None}], "t": dt.date(2024, 1, 1)}
    copy = patch.clone(doc)
    assert patch.equal(copy, doc)
    copy["a"][0]["b"] = 2
    assert doc["a"][0]["b"] == 1.0


def test_apply_leaves_input_untouched() -> None:
    doc = {"a": [1]}
    result = patch.apply(doc, [{"op": "add", "path": "/a/-", "value": 2}])
    assert result == {"a": [1, 2]}
    assert doc == {"a": [1]}


def test_apply_supports_add_remove_replace() -> None:
    doc = {"a": [1, 2], "b": {"c": 1}}
    ops: list[dict[str, Any]] = [
        {"op": "add", "path": "/a/0", "value": 0},
        {"op": "remove", "path": "/b/c"},
        {"op": "replace", "path": "/a/2", "value": 9},
        {"op": "add", "path": "/b/x~1y", "value": "z"},
    ]
    assert patch.apply(doc, ops) == jsonpatch.apply_patch(doc, ops)


@pytest.mark.parametrize(
    "op",
    [
        {"op": "move", "path": "/a", "from": "/b"},
        {"op": "add", "path": "a", "value": 1},
        {"op": "add", "path": "/a"},
        {"op": "remove", "path": "/missing"},
        {"op": "replace", "path": "/missing", "value": 1},
        {"op": "add", "path": "/l/5", "value": 1},
        {"op": "add", "path": "/l/01", "value": 1},
        {"op": "remove", "path": "/l/-"},
        {"op": "replace", "path": "/l/x", "value": 1},
        {"op": "add", "path": "/s/x", "value": 1},
        {"op": "add", "path": "/missing/x", "value": 1},
        {"op": "remove", "path": ""},
    ],
)
def test_apply_rejects_bad_ops(op: dict[str, Any]) -> None:
    with pytest.raises(patch.PatchError):
        patch.apply({"a": 1, "l": [0], "s": "text"}, [op])


def test_apply_replaces_whole_document() -> None:
    assert patch.apply({"a": 1}, [{"op": "replace", "path": "", "value": [1]}]) == [1]


@settings(max_examples=400, deadline=None)
@given(before=JSON, after=JSON)
def test_diff_round_trips_random_documents(before: Any, after: Any) -> None:
    _round_trip(before, after)


@settings(max_examples=200, deadline=None)
@given(before=st.dictionaries(KEYS, JSON, max_size=5), extra=st.lists(JSON, max_size=3))
def test_diff_of_extended_lists_round_trips(before: dict[str, Any], extra: list[Any]) -> None:
    """The webhook's common case: items appended to lists that already exist."""
    doc = {"items": list(before.values()), "meta": before}
    after = patch.clone(doc)
    after["items"].extend(extra)
    after["meta"]["new/key"] = extra
    ops = _round_trip(doc, after)
    assert all(op["op"] == "add" for op in ops)


def nested(depth: int, leaf: Any) -> Any:
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"x": value}
    return value


@pytest.mark.parametrize("depth", [300, 1200, 5000])
def test_clone_equal_same_have_no_depth_limit(depth: int) -> None:
    """Past orjson's 254 levels and Python's recursion limit alike."""
    deep = nested(depth, 1)
    copy = patch.clone(deep)
    assert patch.equal(copy, deep)
    assert patch.same(copy, deep)
    assert not patch.equal(nested(depth, 2), deep)
    assert not patch.same(nested(depth, True), deep)


def test_diff_next_to_a_deep_value_is_shallow() -> None:
    before = {"deep": nested(3000, 1), "labels": {}}
    after = patch.clone(before)
    after["labels"]["a"] = "b"
    ops = patch.diff(before, after)
    assert ops == [{"op": "add", "path": "/labels/a", "value": "b"}]
    assert patch.equal(patch.apply(before, ops), after)
