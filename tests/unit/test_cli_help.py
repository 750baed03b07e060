"""`stellar-peers <command> --help` explains every flag, and agrees with docs/configuration.md.

A flag without help text leaves the reader to guess; each setting's line names
the variable and the default the docs table gives, so `--help` and the docs
cannot drift apart.
"""

from __future__ import annotations

import argparse
import contextlib
import io

import pytest

from tests.unit.test_docs_configuration import FIELDS, ROWS, code
from webhook.cli.main import build_parser, main


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def flag_help(command: str) -> dict[str, str]:
    """Each option or positional of a subcommand and its help text (the --help action left out)."""
    parser = subcommands()[command]
    return {
        (action.option_strings or [action.dest])[-1]: action.help or ""
        for action in parser._actions
        if not isinstance(action, argparse._HelpAction)
    }


@pytest.mark.parametrize("command", sorted(subcommands()))
def test_every_flag_has_one_line_of_help(command: str) -> None:
    helps = flag_help(command)
    assert len(helps) >= len(FIELDS)
    missing = sorted(flag for flag, text in helps.items() if not text.strip())
    assert not missing, f"stellar-peers {command}: flags without help: {missing}"
    several = sorted(flag for flag, text in helps.items() if "\n" in text)
    assert not several, f"stellar-peers {command}: help of more than one line: {several}"


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_setting_help_names_the_documented_variable_and_default(name: str) -> None:
    row = ROWS[name]
    text = flag_help("serve")[code(row[1])]
    what, _, tail = text.partition(" [")
    assert what.strip(), f"{code(row[1])} says only {text!r}"
    assert tail.startswith(code(row[2]) + ", default "), text
    documented = "(empty)" if row[4] == "(empty)" else code(row[4])
    assert tail.removesuffix("]").endswith(f"default {documented}"), (text, row[4])


def test_serve_help_prints_every_setting() -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as stop:
        main(["serve", "--help"])
    assert stop.value.code == 0
    printed = " ".join(out.getvalue().split())
    for name in FIELDS:
        assert code(ROWS[name][1]) in printed
        assert code(ROWS[name][2]) in printed, name
