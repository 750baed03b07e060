"""Copies of the example validator, one more node each, as operators run several.

`python -m scripts.validator_copies [--requests cpu=10m,memory=32Mi] SUFFIX... < example.yaml`
prints, for each SUFFIX, the example's objects renamed `stellar-validator-SUFFIX`
reading the seed Secret `validator-seed-SUFFIX`. One Deployment scaled up would
not do: its replicas share one NODE_SEED, and stellar-core never authenticates
a peer with its own node ID, so they would never connect to each other.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import yaml


def renamed(docs: list[dict[str, Any]], suffix: str) -> list[dict[str, Any]]:
    """The objects of one more validator: its own Deployment, config and seed Secret name."""

    def rename(value: Any) -> Any:
        if isinstance(value, str):
            return value.replace("stellar-validator", f"stellar-validator-{suffix}").replace(
                "validator-seed", f"validator-seed-{suffix}"
            )
        if isinstance(value, dict):
            return {rename(k): rename(v) for k, v in value.items()}
        if isinstance(value, list):
            return [rename(v) for v in value]
        return value

    return [rename(doc) for doc in docs]


def with_requests(docs: list[dict[str, Any]], requests: dict[str, str]) -> list[dict[str, Any]]:
    """Lower every container's requests (a small node fits several validators only so)."""
    for doc in docs:
        if doc.get("kind") in ("Deployment", "StatefulSet"):
            for container in doc["spec"]["template"]["spec"]["containers"]:
                container.setdefault("resources", {})["requests"] = dict(requests)
    return docs


def _requests(text: str) -> dict[str, str]:
    try:
        return dict(item.split("=", 1) for item in text.split(",") if item)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected cpu=10m,memory=32Mi") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.validator_copies")
    parser.add_argument("--requests", type=_requests, default={}, help="e.g. cpu=10m,memory=32Mi")
    parser.add_argument("suffixes", nargs="+")
    args = parser.parse_args(argv)
    docs = [d for d in yaml.safe_load_all(sys.stdin) if d]
    out: list[dict[str, Any]] = []
    for suffix in args.suffixes:
        copies = renamed(docs, suffix)
        out += with_requests(copies, args.requests) if args.requests else copies
    yaml.safe_dump_all(out, sys.stdout, sort_keys=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
