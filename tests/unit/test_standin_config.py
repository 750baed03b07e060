"""The stand-in refuses the configs stellar-core v25.2.0 refuses, with its messages.

Each rule cites where stellar-core v25.2.0 throws (`src/main/Config.cpp` unless named);
the command line is checked as the real one fails: `Got an exception: Failed to parse
'FILE' :<reason>` on stderr, exit 1 (`CommandLine.cpp` run, line 1697, and
handleCommandLine, line 2205).
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests import standin_config as rules
from tests import standin_keys as keys
from tests.standin import PUBNET, QuorumSet, public_key, random_seed, validator_config

SCRIPT = Path(__file__).resolve().parents[1] / "standin.py"
SDF_TESTNET = {  # stellar-core's docs/stellar-core_testnet.cfg
    "sdf_testnet_1": "GDKXE2OZMJIPOSLNA6N6F2BVCI3O777I2OOC4BV7VOYUEHYX7RTRYA7Y",
    "sdf_testnet_2": "GCUCJTIYXSOXKBSNFGNFWW5MUQ54HKRPGJUTQFJ5RQXZXNOLNXYDHRAP",
    "sdf_testnet_3": "GC2V2EFSXN6SQTWVYA5EPJPBWWIMSD2XQNKUOHGEKB535AQE2I6IXV2Z",
}


def validators_config(
    seed: str, *, own_domain: bool = True, failure_safety: int | None = None
) -> str:
    """A validator of `example.org` trusting SDF's three testnet validators, the shape of
    manifests/examples/validator-deployment.yaml."""
    lines = [
        f'NODE_SEED="{seed} self"',
        "NODE_IS_VALIDATOR=true",
        'NODE_HOME_DOMAIN="example.org"',
        "UNSAFE_QUORUM=true",
        f'NETWORK_PASSPHRASE="{PUBNET}"',
    ]
    if failure_safety is not None:
        lines.append(f"FAILURE_SAFETY={failure_safety}")
    if own_domain:
        lines += ["[[HOME_DOMAINS]]", 'HOME_DOMAIN="example.org"', 'QUALITY="LOW"']
    lines += ["[[HOME_DOMAINS]]", 'HOME_DOMAIN="testnet.stellar.org"', 'QUALITY="HIGH"']
    for name, key in SDF_TESTNET.items():
        lines += [
            "[[VALIDATORS]]",
            f'NAME="{name}"',
            'HOME_DOMAIN="testnet.stellar.org"',
            f'PUBLIC_KEY="{key}"',
            f'HISTORY="curl -sf http://history.example/{name}/{{0}} -o {{1}}"',
        ]
    return "\n".join(lines) + "\n"


def load(text: str) -> rules.CoreConfig:
    return rules.load(tomllib.loads(text))


def refused(text: str) -> str:
    with pytest.raises(rules.ConfigError) as caught:
        load(text)
    return str(caught.value)


def command(tmp_path: Path, verb: str, text: str) -> subprocess.CompletedProcess[str]:
    conf = tmp_path / "stellar-core.cfg"
    conf.write_text(text)
    return subprocess.run(
        [sys.executable, "-I", str(SCRIPT), verb, "--conf", str(conf)],
        capture_output=True,
        text=True,
        timeout=30,
    )


def assert_refused(tmp_path: Path, verb: str, text: str, reason: str) -> None:
    done = command(tmp_path, verb, text)
    assert done.returncode == 1, done.stderr
    conf = tmp_path / "stellar-core.cfg"
    assert f"[default FATAL] Got an exception: Failed to parse '{conf}' :{reason}\n" in (
        done.stderr
    )
    assert done.stdout == ""


@pytest.fixture
def seed() -> str:
    return random_seed()


def test_a_config_the_real_binary_accepts_is_accepted(seed: str) -> None:
    core = load(validator_config(seed, validators={"b": public_key(random_seed())}))
    assert core.public_key == public_key(seed)
    assert core.quorum_set == QuorumSet.of([public_key(seed), core.quorum_set.validators[1]])
    assert core.log[0][1].startswith('Using QUORUM_SET: {\n   "t" : 2,\n   "v" : [ "self", "b" ]')


# One test per rule


@pytest.mark.parametrize("verb", ["run", "new-db"])
@pytest.mark.parametrize("bad", ["SDEMO", "SDEMO-b", "Sexec-de8cfa", "GDKXE2OZMJIPOSLNA6N6F2BV"])
def test_an_invalid_seed_is_refused(tmp_path: Path, verb: str, bad: str) -> None:
    # NODE_SEED: parseNodeID(..., isSeed=true) (line 1283) -> SecretKey::fromStrKeySeed
    # throws CryptoError("invalid seed") (src/crypto/SecretKey.cpp line 309).
    text = validator_config(random_seed()).replace("NODE_SEED=", f'NODE_SEED="{bad}"\n#', 1)
    assert refused(text) == "invalid seed"
    assert_refused(tmp_path, verb, text, "invalid seed")


@pytest.mark.parametrize("verb", ["run", "new-db"])
def test_a_home_domain_without_its_home_domains_entry_is_refused(
    tmp_path: Path, verb: str, seed: str
) -> None:
    # addSelfToValidators (line 881): NODE_HOME_DOMAIN must have a [[HOME_DOMAINS]] entry,
    # else "Validator configured with NODE_HOME_DOMAIN='...' but there is no matching
    # HOME_DOMAINS" (line 905).
    reason = (
        "Validator configured with NODE_HOME_DOMAIN='example.org' but there is no matching "
        "HOME_DOMAINS"
    )
    text = validators_config(seed, own_domain=False, failure_safety=0)
    assert refused(text) == reason
    assert_refused(tmp_path, verb, text, reason)


@pytest.mark.parametrize("verb", ["run", "new-db"])
def test_a_failure_safety_the_quorum_set_cannot_meet_is_refused(
    tmp_path: Path, verb: str, seed: str
) -> None:
    # validateConfig: FAILURE_SAFETY >= the smallest v-blocking set (findClosestVBlocking)
    # throws "FAILURE_SAFETY incompatible with QUORUM_SET" (line 2335). The generated set is
    # {t: 2, [self, {t: 2, SDF's three}]}: `self` alone blocks it, so only 0 is possible.
    reason = "FAILURE_SAFETY incompatible with QUORUM_SET"
    text = validators_config(seed, failure_safety=1)
    assert refused(text) == reason
    assert_refused(tmp_path, verb, text, reason)
    assert load(validators_config(seed, failure_safety=0)).quorum_set == QuorumSet(
        2, (public_key(seed),), (QuorumSet(2, tuple(sorted_keys(SDF_TESTNET.values()))),)
    )
    # Left out (-1), it is computed: 2 entries - a threshold of 2 = 0 (line 2318).
    core = load(validators_config(seed))
    assert core.failure_safety == 0
    assert ("INFO", "Assigning calculated value of 0 to FAILURE_SAFETY") in core.log


@pytest.mark.parametrize("verb", ["run", "new-db"])
def test_the_node_named_twice_is_refused(tmp_path: Path, verb: str, seed: str) -> None:
    # NODE_SEED="S... self" names the node's key; naming it again in [QUORUM_SET] (as `n1`)
    # throws "naming node twice: n1" in addValidatorName (line 2394); the same name again
    # is "name already used: self" (line 2389).
    named = validator_config(seed, name="n1")
    text = named.replace(f'NODE_SEED="{seed}"', f'NODE_SEED="{seed} self"')
    assert refused(text) == "naming node twice: n1"
    assert_refused(tmp_path, verb, text, "naming node twice: n1")
    same = validator_config(seed).replace(f'NODE_SEED="{seed}"', f'NODE_SEED="{seed} self"')
    assert refused(same) == "name already used: self"
    # The bare seed, as the measured private network used it, is fine.
    load(validator_config(seed))


def test_no_readable_history_archive_stops_run_unless_standalone(tmp_path: Path) -> None:
    # run -> setupApp (src/main/ApplicationUtils.cpp line 128) ->
    # HistoryArchiveManager::checkSensibleConfig: with RUN_STANDALONE=false, "No readable
    # archives configured, catchup will fail." (src/history/HistoryArchiveManager.cpp line
    # 109) then "History archives misconfigured." (line 123); run logs "Unable to setup the
    # application to run" (CommandLine.cpp line 1691) and returns 1. new-db does not check.
    text = validator_config(random_seed())
    no_archive = text[: text.index("[HISTORY.local]")]
    done = command(tmp_path, "run", no_archive)
    assert done.returncode == 1
    assert "[History FATAL] No readable archives configured, catchup will fail.\n" in done.stderr
    assert "[History ERROR] History archives misconfigured.\n" in done.stderr
    assert "[default ERROR] Unable to setup the application to run\n" in done.stderr
    assert command(tmp_path, "new-db", no_archive).returncode == 0
    assert rules.history_archive_problems(load(text)) == []
    standalone = load(no_archive.replace("NODE_SEED", "RUN_STANDALONE=true\nNODE_SEED", 1))
    assert rules.history_archive_problems(standalone) == []
    put_only = no_archive + '[HISTORY.local]\nput="cp {0} /tmp/{1}"\n'
    assert rules.history_archive_problems(load(put_only))[-1] == (
        "ERROR",
        "History archives misconfigured.",
    )


# What comes with them


def sorted_keys(values: Any) -> list[str]:
    """Keys in `normalizeQSet`'s order: by their bytes, not their text."""
    return sorted(values, key=keys.public_key_bytes)


def test_the_generated_quorum_set_is_logged_with_the_names_of_its_keys(seed: str) -> None:
    # processConfig: "Generated QUORUM_SET: " + Config::toString (StyledWriter, names for
    # the keys that have one, toShortString).
    core = load(validators_config(seed, failure_safety=0))
    level, text = core.log[0]
    assert level == "INFO"
    assert text == (
        "Generated QUORUM_SET: {\n"
        '   "t" : 2,\n'
        '   "v" : [\n'
        '      "self",\n'
        "      {\n"
        '         "t" : 2,\n'
        '         "v" : [ "sdf_testnet_2", "sdf_testnet_3", "sdf_testnet_1" ]\n'
        "      }\n"
        "   ]\n"
        "}\n"
    )
    assert core.names[public_key(seed)] == "self"
    assert core.known_peers == []  # no ADDRESS in these entries


def test_high_quality_domains_need_three_validators(seed: str) -> None:
    # generateQuorumSetHelper: "must have redundancy of at least 3" (line 2629).
    text = validators_config(seed, failure_safety=0)
    one = text[: text.index('[[VALIDATORS]]\nNAME="sdf_testnet_2"')]
    assert refused(one) == (
        "Critical and High quality validators for 'testnet.stellar.org' must have "
        "redundancy of at least 3"
    )


def test_an_explicit_quorum_set_needs_unsafe_quorum_to_differ_from_validators(seed: str) -> None:
    # processConfig: [QUORUM_SET] beside [[VALIDATORS]] must equal the generated set unless
    # UNSAFE_QUORUM (line 2098).
    text = validators_config(seed, failure_safety=0).replace("UNSAFE_QUORUM=true", "")
    text = text.replace(
        "[[HOME_DOMAINS]]",
        f'[QUORUM_SET]\nVALIDATORS=["{SDF_TESTNET["sdf_testnet_1"]}"]\n\n[[HOME_DOMAINS]]',
        1,
    )
    assert refused(text) == "SCP unsafe"


def test_a_validator_listing_itself_in_validators_is_refused(seed: str) -> None:
    # parseValidators names the key (addValidatorName): with NODE_SEED's name that is
    # "naming node twice"; without it, self is a second entry for the same key
    # (setValidatorWeightConfig, line 2749).
    own = f'[[VALIDATORS]]\nNAME="me"\nHOME_DOMAIN="example.org"\nPUBLIC_KEY="{public_key(seed)}"\n'
    text = validators_config(seed, failure_safety=0) + own
    assert refused(text) == "naming node twice: me"
    bare = text.replace(f'NODE_SEED="{seed} self"', f'NODE_SEED="{seed}"')
    assert refused(bare) == f"Duplicate validator entry for '{public_key(seed)}'"


def test_no_quorum_set_at_all_is_refused() -> None:
    # Nothing to generate a quorum set from: the empty set blocks nothing, so
    # verifyHistoryValidatorsBlocking says "SCP unsafe" (line 935); with UNSAFE_QUORUM,
    # validateConfig says "no validators defined in VALIDATORS/QUORUM_SET" (line 2303).
    bare = 'HTTP_PORT=11626\nNETWORK_PASSPHRASE="x"\n'
    assert refused(bare) == "SCP unsafe"
    assert refused("UNSAFE_QUORUM=true\n" + bare) == (
        "no validators defined in VALIDATORS/QUORUM_SET"
    )


def test_failure_safety_zero_needs_unsafe_quorum(seed: str) -> None:
    # validateConfig: FAILURE_SAFETY=0 without UNSAFE_QUORUM is "SCP unsafe" (line 2346).
    assert refused(validator_config(seed).replace("UNSAFE_QUORUM=true", "")) == "SCP unsafe"


def test_quorum_set_names_and_aliases(seed: str) -> None:
    other = public_key(random_seed())
    text = validator_config(seed, validators={"b": other}).replace(
        "[HISTORY.local]", '[QUORUM_SET.inner]\nVALIDATORS=["$b"]\n\n[HISTORY.local]'
    )
    assert refused(text) == "Invalid QUORUM_SET"  # b twice: isQuorumSetSane (line 2370)
    text = validator_config(seed, PREFERRED_PEER_KEYS=["$nobody"])
    assert refused(text) == "unknown key in config: $nobody"  # parseNodeID (line 2417)
    # processConfig reads PREFERRED_PEER_KEYS (line 2071) before [QUORUM_SET]: no names yet.
    later = validator_config(seed, validators={"b": other}, PREFERRED_PEER_KEYS=["$b"])
    assert refused(later) == "unknown key in config: $b"
    core = load(validator_config(seed, PREFERRED_PEER_KEYS=[f"{other} b"]))
    assert core.preferred_peer_keys == {other}
    assert core.short(other) == "b"
