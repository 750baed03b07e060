"""The configs users copy pass the checks stellar-core v25.2.0 makes (`tests/standin_config.py`).

The shipped examples' configs, assembled as their containers assemble them, and docs/reference.md's
"config that includes the peers file", run as its shell block runs. Before issue 22 the
example was refused by the real binary ("no matching HOME_DOMAINS", then "FAILURE_SAFETY
incompatible with QUORUM_SET"), and the demo's seeds were no seeds.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from tests import standin_config as rules
from tests.standin import database_path, public_key, random_seed
from webhook.core.peerset import networks
from webhook.core.peerset.peers import Peer, PeerSet

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tests" / "standin.py"
EXAMPLES = sorted((ROOT / "manifests" / "examples").glob("validator-*.yaml"))
SEED_LINE = 'printf \'NODE_SEED="%s self"\\n\' "$NODE_SEED"; cat /etc/stellar/stellar-core.cfg;'


def new_db(conf: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-I", str(SCRIPT), "new-db", "--conf", str(conf)],
        capture_output=True,
        text=True,
        timeout=30,
    )


def accepted(text: str, tmp_path: Path) -> rules.CoreConfig:
    """Loads as stellar-core would, `new-db` takes it, and `run` would find an archive."""
    core = rules.load(tomllib.loads(text))
    assert rules.history_archive_problems(core) == []
    conf = tmp_path / "stellar-core.cfg"
    conf.write_text(text.replace("sqlite3:///", f"sqlite3://{tmp_path}/"))
    database = database_path(tomllib.loads(conf.read_text()))
    if database is not None:
        Path(database).parent.mkdir(parents=True, exist_ok=True)  # the data volume
    done = new_db(conf)
    assert done.returncode == 0, done.stderr
    return core


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_the_shipped_examples_start_on_stellar_core(example: Path, tmp_path: Path) -> None:
    docs = [d for d in yaml.safe_load_all(example.read_text()) if d]
    cfg = next(d for d in docs if d["kind"] == "ConfigMap")["data"]["stellar-core.cfg"]
    workload = next(d for d in docs if d["kind"] in ("Deployment", "StatefulSet"))
    script = workload["spec"]["template"]["spec"]["containers"][0]["args"][0]
    # The container puts the seed from its Secret on top of the config, named "self".
    assert SEED_LINE in " ".join(script.split())
    seed = random_seed()
    core = accepted(f'NODE_SEED="{seed} self"\n' + cfg, tmp_path)
    assert core.public_key == public_key(seed)
    assert core.generated
    assert core.failure_safety == 0


def test_the_documented_config_that_includes_the_peers_file(tmp_path: Path) -> None:
    reference = (ROOT / "docs" / "reference.md").read_text()
    section = reference.split("### A validator config that includes the peers file", 1)[1]
    shell = re.search(r"```sh\n(.*?)```", section, re.S)
    config = re.search(r"```toml\n(.*?)```", section, re.S)
    assert shell is not None, "docs/reference.md lost its example"
    assert config is not None, "docs/reference.md lost its example"
    # The mounted file as the injector writes it, the keys of the network's three nodes.
    keys = re.findall(r'"(G[A-Z2-7]{55}) ', config.group(1))
    assert len(keys) == 3
    peers = PeerSet(
        tuple(
            Peer(
                "private",
                f"core-{i}",
                "validator",
                f"10.0.0.{i}",
                11625,
                "pod",
                network="private",
                public_key=key,
            )
            for i, key in enumerate(keys)
        )
    )
    mounted = tmp_path / "etc" / "stellar" / "peers"
    mounted.mkdir(parents=True)
    (mounted / "preferred_peer_keys-private.cfg").write_text(
        networks.preferred_peer_keys_cfg(peers)
    )
    (tmp_path / "etc" / "stellar" / "stellar-core.cfg").write_text(config.group(1))
    (tmp_path / "data").mkdir()
    assemble = "\n".join(
        line for line in shell.group(1).splitlines() if not line.startswith("exec ")
    )
    assemble = assemble.replace("/etc/stellar", f"{tmp_path}/etc/stellar")
    assemble = assemble.replace("/data", f"{tmp_path}/data")
    seed = random_seed()
    subprocess.run(["sh", "-c", assemble], env={"NODE_SEED": seed}, check=True, timeout=30)
    text = (tmp_path / "data" / "stellar-core.cfg").read_text()
    core = accepted(text, tmp_path)
    assert core.preferred_peer_keys == set(keys)
    assert core.names == {key: f"core-{i}" for i, key in enumerate(keys)}
    # Without the mounted file (no key known yet) it starts all the same.
    (mounted / "preferred_peer_keys-private.cfg").unlink()
    subprocess.run(["sh", "-c", assemble], env={"NODE_SEED": seed}, check=True, timeout=30)
    assert accepted((tmp_path / "data" / "stellar-core.cfg").read_text(), tmp_path)


def test_validators_files_cannot_be_included_by_a_node_they_list(tmp_path: Path) -> None:
    """`validators-<network>.cfg` lists every node of the network, the reader included:
    stellar-core refuses its own key among its [[VALIDATORS]] (a second entry for one key),
    and entries without HOME_DOMAIN. Pinned here so a change to that file is seen."""
    seed = random_seed()
    me = Peer(
        "ns",
        "core-0",
        "validator",
        "10.0.0.1",
        11625,
        "pod",
        network="private",
        public_key=public_key(seed),
        home_domain="example.org",
    )
    peers = PeerSet((me,))
    text = (
        f'NODE_SEED="{seed}"\nNODE_IS_VALIDATOR=true\nNODE_HOME_DOMAIN="example.org"\n'
        'UNSAFE_QUORUM=true\n[[HOME_DOMAINS]]\nHOME_DOMAIN="example.org"\nQUALITY="MEDIUM"\n'
    ) + networks.validators_cfg(peers)
    with pytest.raises(rules.ConfigError, match="Duplicate validator entry"):
        rules.load(tomllib.loads(text))
