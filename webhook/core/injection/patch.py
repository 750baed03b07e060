"""JSON Patch (RFC 6902): the diff that turns one JSON document into another, and back.

The webhook answers with `diff(request_object, mutated_copy)`, never with
hand-written ops, and the offline CLI replays the same ops with `apply`. Only
`add`, `remove` and `replace` are produced or understood. Documents are plain
JSON values: dicts with string keys, lists, strings, numbers, booleans, None.
"""

from __future__ import annotations

from typing import Any

import orjson

# orjson would turn a datetime into a string; refusing it keeps comparisons exact.
_EXACT = orjson.OPT_PASSTHROUGH_DATETIME


class PatchError(ValueError):
    """An op cannot be applied: unknown op, bad pointer, or missing target."""


def escape(key: str) -> str:
    """One JSON-pointer reference token: `~` and `/` are escaped (RFC 6901)."""
    if "~" in key or "/" in key:
        return key.replace("~", "~0").replace("/", "~1")
    return key


def unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def clone(doc: Any) -> Any:
    """A deep copy of a JSON document, made in C by orjson: the webhook's hot path.

    Values orjson refuses (a datetime from YAML, a huge int, a non-string key) fall
    back to copying in Python. NaN and infinities are not JSON and become null.
    """
    try:
        return orjson.loads(orjson.dumps(doc, option=_EXACT))
    except TypeError:
        return _copy(doc)


def _copy(doc: Any) -> Any:
    """`clone` in Python, with a stack instead of recursion: depth is no limit."""
    if type(doc) not in _NESTED:
        return doc
    root: Any = {} if type(doc) is dict else []
    stack: list[tuple[Any, Any]] = [(doc, root)]
    while stack:
        source, target = stack.pop()
        pairs = source.items() if type(source) is dict else enumerate(source)
        for key, value in pairs:
            if type(value) in _NESTED:
                fresh: Any = {} if type(value) is dict else []
                stack.append((value, fresh))
                value = fresh
            if type(target) is dict:
                target[key] = value
            else:
                target.append(value)
    return root


_NESTED = (dict, list)


def equal(a: Any, b: Any) -> bool:
    """JSON equality: unlike `==`, `True` is not `1` and `1` is not `1.0`; depth is no limit."""
    stack: list[tuple[Any, Any]] = [(a, b)]
    while stack:
        x, y = stack.pop()
        kind = type(x)
        if x is y and kind in _NESTED:
            continue
        if kind is not type(y):
            return False
        if kind is dict:
            if x.keys() != y.keys():
                return False
            stack.extend((value, y[key]) for key, value in x.items())
        elif kind is list:
            if len(x) != len(y):
                return False
            stack.extend(zip(x, y, strict=True))
        elif x != y:
            return False
    return True


def same(a: Any, b: Any) -> bool:
    """`equal`, fast: `==` rules out most differences in C, then orjson's bytes tell
    `1`, `1.0` and `true` apart, which `==` does not."""
    if a is b:
        return True
    kind = type(a)
    if kind is not type(b):
        return False
    if kind not in _NESTED:
        return bool(a == b)
    try:
        if a != b:
            return False
        if orjson.dumps(a, option=_EXACT) == orjson.dumps(b, option=_EXACT):
            return True
    except TypeError:
        pass  # not plain JSON (a datetime from YAML, a huge int): compare the slow way
    except RecursionError:
        pass  # nested deeper than C comparison and orjson go: the slow way has no limit
    return equal(a, b)


def diff(before: Any, after: Any) -> list[dict[str, Any]]:
    """The ops that turn `before` into `after`; empty when they are equal.

    Op values are parts of `after`, not copies: change neither afterwards.
    """
    ops: list[dict[str, Any]] = []
    _diff(before, after, "", ops)
    return ops


def _diff(before: Any, after: Any, path: str, ops: list[dict[str, Any]]) -> None:
    kind = type(before)
    if kind is not type(after):
        ops.append({"op": "replace", "path": path, "value": after})
    elif kind is dict:
        for key, value in before.items():
            if key not in after:
                ops.append({"op": "remove", "path": f"{path}/{escape(key)}"})
                continue
            other = after[key]
            if not same(value, other):
                _diff(value, other, f"{path}/{escape(key)}", ops)
        for key, value in after.items():
            if key not in before:
                ops.append({"op": "add", "path": f"{path}/{escape(key)}", "value": value})
    elif kind is list:
        _diff_list(before, after, path, ops)
    elif before != after:
        ops.append({"op": "replace", "path": path, "value": after})


def _diff_list(before: list[Any], after: list[Any], path: str, ops: list[dict[str, Any]]) -> None:
    """Appends become `add` ops, same-length lists diff item by item, the rest is replaced."""
    n = len(before)
    if len(after) > n and all(map(same, before, after)):
        for index in range(n, len(after)):
            ops.append({"op": "add", "path": f"{path}/{index}", "value": after[index]})
    elif len(after) == n:
        for index, (value, other) in enumerate(zip(before, after, strict=True)):
            if not same(value, other):
                _diff(value, other, f"{path}/{index}", ops)
    else:
        ops.append({"op": "replace", "path": path, "value": after})


def apply(doc: Any, ops: list[dict[str, Any]]) -> Any:
    """`doc` with `ops` applied, in order; `doc` itself is left untouched."""
    result = clone(doc)
    for op in ops:
        result = _apply_one(result, op)
    return result


def _apply_one(doc: Any, op: dict[str, Any]) -> Any:
    name, path = op.get("op"), op.get("path")
    if name not in ("add", "remove", "replace") or not isinstance(path, str):
        raise PatchError(f"unsupported op {op!r}")
    if name != "remove" and "value" not in op:
        raise PatchError(f"op without a value: {op!r}")
    if path == "":
        if name == "remove":
            raise PatchError("cannot remove the whole document")
        return clone(op["value"])
    if not path.startswith("/"):
        raise PatchError(f"pointer must start with '/': {path!r}")
    *parents, last = (unescape(token) for token in path[1:].split("/"))
    target = doc
    for token in parents:
        target = _child(target, token, path)
    if type(target) is dict:
        if name != "add" and last not in target:
            raise PatchError(f"no member {last!r} at {path!r}")
        if name == "remove":
            del target[last]
        else:
            target[last] = clone(op["value"])
    elif type(target) is list:
        index = _index(target, last, path, appending=name == "add")
        if name == "add":
            target.insert(index, clone(op["value"]))
        elif name == "remove":
            del target[index]
        else:
            target[index] = clone(op["value"])
    else:
        raise PatchError(f"{path!r} does not point into an object or array")
    return doc


def _child(node: Any, token: str, path: str) -> Any:
    if type(node) is dict:
        if token not in node:
            raise PatchError(f"no member {token!r} on the way to {path!r}")
        return node[token]
    if type(node) is list:
        return node[_index(node, token, path, appending=False)]
    raise PatchError(f"{path!r} goes through a value that is neither object nor array")


def _index(items: list[Any], part: str, path: str, *, appending: bool) -> int:
    """An array index from a pointer token; `-` and `len` are valid only when adding."""
    if appending and part == "-":
        return len(items)
    if not (part.isascii() and part.isdigit()) or (len(part) > 1 and part.startswith("0")):
        raise PatchError(f"bad array index {part!r} in {path!r}")
    index = int(part)
    if index > len(items) or (index == len(items) and not appending):
        raise PatchError(f"array index {index} out of range in {path!r}")
    return index
