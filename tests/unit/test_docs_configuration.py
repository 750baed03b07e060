"""docs/configuration.md against the code: every setting, its flag, variable, default, range.

Only `webhook.settings` is imported. Flags and variables are checked by what
they do (parse the documented flag, set the documented variable, and see the
field change), not by re-deriving their names, so the test follows the code's
own mapping wherever it lives. Helm values are checked by rendering the chart.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import subprocess
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import binaries
from webhook import settings as settings_module
from webhook.settings import Settings, SettingsError

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "configuration.md"
CHART = ROOT / "charts" / "stellar-peer-injector"
FIELDS = {f.name: f for f in dataclasses.fields(Settings) if f.init}
TYPES = typing.get_type_hints(Settings)
CODE = re.compile(r"`([^`]*)`")


def cells(line: str) -> list[str]:
    """A Markdown table row's cells; `\\|` is a pipe inside a cell."""
    parts = re.split(r"(?<!\\)\|", line.strip())[1:-1]
    return [p.strip().replace("\\|", "|") for p in parts]


def table(heading: str) -> list[list[str]]:
    text = DOC.read_text()
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [cells(line) for line in section.splitlines() if line.startswith("|")]
    return rows[2:]  # header and separator


def code(cell: str) -> str:
    found = CODE.match(cell)
    assert found, f"expected a `code` cell, got {cell!r}"
    return found.group(1)


ROWS = {code(row[0]): row for row in table("Settings")}


def test_every_setting_is_documented_once_and_nothing_else() -> None:
    names = [code(row[0]) for row in table("Settings")]
    assert len(names) == len(set(names)), "a setting is documented twice"
    assert set(names) == set(FIELDS), (
        f"undocumented: {sorted(set(FIELDS) - set(names))}, "
        f"not settings: {sorted(set(names) - set(FIELDS))}"
    )


def sample(name: str) -> Any:
    """A valid value different from the default, to see a flag or variable take effect."""
    default, kind = FIELDS[name].default, TYPES[name]
    if typing.get_origin(kind) is typing.Literal:
        return next(v for v in typing.get_args(kind) if v != default)
    if kind is bool:
        return not default
    if kind is int:
        return default + 1
    if kind is float:
        return default + 1.5
    if kind == tuple[str, ...]:
        return ("core1.example.org:11625",)
    return {"log_level": "DEBUG", "image_pattern": "my-core$"}.get(
        name, "test-" + name.replace("_", "-")
    )


def as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(value)
    return str(value)


def from_environment(environ: dict[str, str]) -> Settings:
    return Settings.from_namespace(argparse.Namespace(), environ)


def from_flags(argv: list[str]) -> Settings:
    parser = argparse.ArgumentParser()
    settings_module.add_arguments(parser)
    return Settings.from_namespace(parser.parse_args(argv), {})


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_documented_flag_sets_the_setting(name: str) -> None:
    flag = code(ROWS[name][1])
    assert getattr(from_flags([flag, as_text(sample(name))]), name) == sample(name)


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_documented_variable_sets_the_setting(name: str) -> None:
    variable = code(ROWS[name][2])
    assert getattr(from_environment({variable: as_text(sample(name))}), name) == sample(name)


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_documented_default_is_the_code_default(name: str) -> None:
    cell = ROWS[name][4]
    text = "" if cell == "(empty)" else code(cell)
    documented = getattr(from_environment({code(ROWS[name][2]): text}), name)
    assert documented == FIELDS[name].default, f"{name}: doc says {cell}"
    assert getattr(Settings(), name) == FIELDS[name].default


def out_of_range(allowed: str) -> list[Any]:
    """Values the documented range excludes (for the ranges the code enforces)."""
    first = allowed.split(",")[0].strip()
    if first == "`> 0`":
        return [0, -1]
    if first == "`>= 0`":
        return [-1]
    if bounds := BOUNDS.fullmatch(first.split(" ")[0]):
        return [int(bounds.group(1)) - 1, int(bounds.group(2)) + 1]
    return []


def in_range(allowed: str) -> list[Any]:
    first = allowed.split(",")[0].strip()
    if bounds := BOUNDS.fullmatch(first.split(" ")[0]):
        return [int(bounds.group(1)), int(bounds.group(2))]
    return {"`>= 0`": [0]}.get(first, [])


BOUNDS = re.compile(r"`(-?\d+)\.\.(\d+)`")


NUMERIC = sorted(n for n in FIELDS if n in ROWS and out_of_range(ROWS[n][5]))


def test_numeric_settings_all_have_a_checked_range() -> None:
    numbers = {n for n in FIELDS if TYPES[n] in (int, float)}
    assert numbers == set(NUMERIC)


@pytest.mark.parametrize("name", NUMERIC)
def test_documented_range_is_the_enforced_range(name: str) -> None:
    allowed = ROWS[name][5]
    for bad in out_of_range(allowed):
        with pytest.raises(SettingsError):
            Settings(**{name: bad})
    for good in in_range(allowed):
        assert getattr(Settings(**{name: good}), name) == good


@pytest.mark.parametrize(
    "name", [n for n in FIELDS if typing.get_origin(TYPES[n]) is typing.Literal]
)
def test_documented_choices_are_the_code_choices(name: str) -> None:
    allowed = ROWS[name][5]
    assert allowed.startswith("one of: ")
    documented = [c.strip() for c in allowed.removeprefix("one of: ").split(",")]
    assert documented == list(typing.get_args(TYPES[name]))
    with pytest.raises(SettingsError):
        Settings(**{name: "not-a-choice"})


# --- the Helm column --------------------------------------------------------


@pytest.fixture(scope="module")
def helm() -> str:
    return binaries.helm()


def rendered_env(helm: str, *args: str) -> dict[str, Any]:
    out = subprocess.run(
        [helm, "template", "stellar-peer-injector", str(CHART), "-n", "stellar-system", *args],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    deployment = next(d for d in yaml.safe_load_all(out.stdout) if d and d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def helm_path(name: str) -> str | None:
    if name not in ROWS:
        return None  # test_every_setting_is_documented_once_and_nothing_else says so
    cell = ROWS[name][3]
    return None if cell.startswith(("fixed", "—")) else code(cell)


def values_default(path: str) -> Any:
    node: Any = yaml.safe_load((CHART / "values.yaml").read_text())
    for part in path.split("."):
        assert part in node, f"values.yaml has no {path}"
        node = node[part]
    return node


# A Helm value's sample and the setting it must produce, where they differ in shape.
HELM_SAMPLES = {
    "cert_mode": ("cert-manager", "external"),
    "namespace_selector": (
        {"matchLabels": {"team": "a"}},
        "stellar.org/peer-injection=enabled,team=a",
    ),
}


@pytest.mark.parametrize("name", sorted(n for n in FIELDS if helm_path(n)))
def test_helm_value_becomes_the_documented_variable(helm: str, name: str) -> None:
    path = helm_path(name)
    assert path is not None
    values_default(path)  # exists
    given, wanted = HELM_SAMPLES.get(name, (sample(name), sample(name)))
    given = list(given) if isinstance(given, tuple) else given
    env = rendered_env(helm, "--set-json", f"{path}={json.dumps(given)}")
    variable = code(ROWS[name][2])
    assert variable in env, f"{path} did not set {variable}"
    assert getattr(from_environment({variable: env[variable]}), name) == wanted


@pytest.mark.parametrize("name", sorted(n for n in FIELDS if helm_path(n)))
def test_helm_default_leaves_the_code_default(helm: str, name: str) -> None:
    env = rendered_env(helm)
    variable = code(ROWS[name][2])
    settings = from_environment({k: v for k, v in env.items() if isinstance(v, str)})
    assert getattr(settings, name) == FIELDS[name].default, f"{variable}={env.get(variable)}"


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_fixed_and_unset_helm_cells_are_what_the_chart_renders(helm: str, name: str) -> None:
    cell, variable = ROWS[name][3], code(ROWS[name][2])
    env = rendered_env(helm)
    if cell.startswith("—"):
        assert variable not in env
    elif cell.startswith("fixed"):
        assert variable in env
        if "`" in cell:
            assert env[variable] == code(cell.split(":", 1)[1].strip())
        else:
            assert "fieldRef" in env[variable], "a fixed value without `value` comes from the pod"


@pytest.mark.parametrize("name", [n for n in NUMERIC if helm_path(n)])
def test_helm_schema_refuses_what_the_code_refuses(helm: str, name: str) -> None:
    path = helm_path(name)
    assert path is not None
    for bad in out_of_range(ROWS[name][5]):
        out = subprocess.run(
            [helm, "template", "x", str(CHART), "--set-json", f"{path}={bad}"],
            capture_output=True,
            text=True,
        )
        assert out.returncode != 0, f"{path}={bad} was accepted"
        assert "/" + path.replace(".", "/") in out.stderr, out.stderr


def leaf_paths(node: Any, prefix: str = "") -> list[str]:
    free_form = {"resources", "namespaceSelector"}
    if not isinstance(node, dict) or not node or prefix in free_form:
        return [prefix]
    return [p for k, v in node.items() for p in leaf_paths(v, f"{prefix}.{k}" if prefix else k)]


def test_every_chart_value_is_documented() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    documented = {helm_path(n) for n in FIELDS} | {
        code(r[0]) for r in table("Chart values with no setting behind them")
    }
    missing = [p for p in leaf_paths(values) if p not in documented]
    assert not missing, f"values.yaml keys missing from docs/configuration.md: {missing}"
    extra = [p for p in documented if p and p not in leaf_paths(values)]
    assert not extra, f"documented Helm values not in values.yaml: {extra}"
