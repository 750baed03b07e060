"""Where the helm and kubectl binaries built by scripts/setup.sh live.

Tests that need them fail, never skip, when one is missing: a skipped chart
test would read as a passing one.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SETUP_HINT = "run scripts/setup.sh (it builds helm and kubectl into ~/.cache/stellar-peer-injector)"


def _script_output(script: str) -> Path:
    """The bin directory a build script prints, so tests and scripts agree on versions."""
    out = subprocess.run([str(ROOT / "scripts" / script), "bin"], capture_output=True, text=True)
    if out.returncode != 0:
        pytest.fail(f"scripts/{script} bin failed: {out.stderr.strip()}; {SETUP_HINT}")
    return Path(out.stdout.strip())


def _require(path: Path, what: str) -> str:
    if not os.access(path, os.X_OK):
        pytest.fail(f"{what} not found at {path}: {SETUP_HINT}")
    return str(path)


def helm() -> str:
    """HELM_BIN, else the pinned build in the cache (scripts/build-helm.sh)."""
    override = os.environ.get("HELM_BIN")
    path = Path(override) if override else _script_output("build-helm.sh") / "helm"
    return _require(path, "helm")


def kubectl() -> str:
    """The kubectl of scripts/cluster.sh (K8S_BIN or the cached k8s build)."""
    return _require(_script_output("cluster.sh") / "kubectl", "kubectl")
