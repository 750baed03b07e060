"""Versions are set once, in versions.env; whatever cannot source it must agree with it.

The scripts source the file; pyproject.toml, the package, the chart and the
kustomize base carry the injector's version in their own formats, and the docs
name the Kubernetes and helm versions the tests run: a bump that misses one of
them fails here.
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

import webhook

ROOT = Path(__file__).resolve().parents[2]
ENV = ROOT / "versions.env"


def pinned() -> dict[str, str]:
    """versions.env as bash sees it, with no override in the environment."""
    script = f'source "{ENV}"; echo "$K8S_VERSION $HELM_VERSION $INJECTOR_VERSION"'
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env={}, check=True)
    k8s, helm, injector = out.stdout.split()
    return {"k8s": k8s, "helm": helm, "injector": injector}


def test_versions_env_pins_all_three() -> None:
    versions = pinned()
    assert re.fullmatch(r"v1\.\d+\.\d+", versions["k8s"])
    assert re.fullmatch(r"v3\.\d+\.\d+", versions["helm"])
    assert re.fullmatch(r"\d+\.\d+\.\d+", versions["injector"])


@pytest.mark.parametrize(
    "script", ["build-k8s.sh", "build-helm.sh", "cluster.sh", "images.sh"], ids=str
)
def test_scripts_source_versions_env_and_pin_nothing_themselves(script: str) -> None:
    text = (ROOT / "scripts" / script).read_text()
    assert "/versions.env" in text
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    assert not re.search(r"(K8S_VERSION|HELM_VERSION)=.*:-v\d", code), script
    injector = re.escape(pinned()["injector"])
    assert not re.search(rf"(?<![\d.]){injector}(?![\d.])", code), f"{script} repeats it"


def test_the_injector_version_is_the_same_everywhere() -> None:
    version = pinned()["injector"]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["version"] == version
    assert webhook.__version__ == version
    chart = yaml.safe_load((ROOT / "charts" / "stellar-peer-injector" / "Chart.yaml").read_text())
    assert chart["appVersion"] == version
    base = yaml.safe_load((ROOT / "manifests" / "base" / "kustomization.yaml").read_text())
    tags = {i["name"]: i["newTag"] for i in base["images"]}
    assert tags["stellar-peer-injector"] == version


def test_docs_name_the_pinned_versions() -> None:
    versions = pinned()
    development = (ROOT / "docs" / "development.md").read_text()
    assert f"**{versions['k8s']}**" in development
    assert f"helm {versions['helm']}" in development
    assert f"stellar-peer-injector:{versions['injector']}" in development
    quickstart = (ROOT / "docs" / "quickstart.md").read_text()
    assert f"helm {versions['helm']}" in quickstart
    assert f"stellar-peer-injector:{versions['injector']}" in quickstart
    assert f"stellar-peer-injector:{versions['injector']}" in (ROOT / "README.md").read_text()
