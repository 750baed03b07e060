"""Peer data that tries to smuggle shell code or URLs is refused or quoted everywhere it flows.

Three places turn peer strings into something executable or dialled: the
ConfigMap writer (`peers.static_peer`, `pod_peer`, `render`), the postStart
hook script (run here for real under /bin/sh), and the reload controller's
URLs and exec argv (`admin_port`, `reload`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests import admin_client
from tests.kubelet import container_statuses
from tests.polling import wait_until
from tests.standin import StellarCoreStandIn
from tests.unit.test_hook_script import (
    assert_nothing_executed,
    processes_with,
    run_hook,
    tool_dir,
    write_peers,
)
from webhook import names
from webhook.core import admin_protocol
from webhook.core.peerset import peers
from webhook.core.peerset.peers import Peer, PeerSet
from webhook.core.pod import port_number
from webhook.core.publishing import publish, watched
from webhook.core.reload import reload_plan
from webhook.settings import Settings, SettingsError
from webhook.stellar import admin

SMUGGLED = [
    "1.2.3.4:11625; rm -rf /",
    "1.2.3.4:11625;touch /tmp/x",
    "$(touch /tmp/x):11625",
    "`touch /tmp/x`:11625",
    "1.2.3.4:$(id)",
    "a b:11625",
    "host name.example:11625",
    "http://evil/",
    "http://evil:80",
    "http://evil.example:80/x",
    "evil.example:80/connect",
    "evil.example:80?peer=x",
    "evil.example#:80",
    "1.2.3.4:11625\ntouch /tmp/x",
    "1.2.3.4:11625\r",
    " 1.2.3.4:11625",
    "1.2.3.4:11625 ",
    "1.2.3.4:0",
    "1.2.3.4:65536",
    "1.2.3.4:+80",
    "1.2.3.4:-1",
    "1.2.3.4:\uff18\uff10",
    "\uff11.\uff12.\uff13.\uff14:11625",
    "1.2.3.999:11625",
    "[::1;rm]:11625",
    "[::1]:11625;x",
    "[http://evil/]:80",
    "[::1]",
    "::1:11625",
    "evil'.example:1",
    'evil".example:1',
    "evil\\.example:1",
    "-o:1",
    "*:11625",
    "..:11625",
    "a..b:11625",
    "-leading.example:1",
    "x" * 64 + ".example:1",
    "",
    ":11625",
    "host:",
]
ACCEPTED = {
    "1.2.3.4:11625": "1.2.3.4:11625",
    "validator-1.Example.ORG:11625": "validator-1.example.org:11625",
    "[::1]:11625": "[::1]:11625",
    "[2001:DB8::0:1]:443": "[2001:db8::1]:443",
    "[::ffff:1.2.3.4]:11625": "[::ffff:102:304]:11625",
}
# What may appear in peers.txt / peers.csv / KNOWN_PEERS: a name or IPv4, or a bracketed IPv6.
SAFE_PEER = re.compile(r"(?:[a-z0-9.-]+|\[[0-9a-f:.]+\]):[0-9]{1,5}")


@pytest.mark.parametrize("text", SMUGGLED)
def test_static_peer_refuses_smuggled_text(text: str) -> None:
    with pytest.raises(ValueError, match="static peer"):
        peers.static_peer(text)


@pytest.mark.parametrize(("text", "peer_string"), ACCEPTED.items())
def test_static_peer_accepts_and_normalises_plain_peers(text: str, peer_string: str) -> None:
    assert peers.static_peer(text).peer_string == peer_string


@settings(max_examples=1500, derandomize=True, database=None)
@given(
    text=st.text(max_size=40)
    | st.builds(
        lambda a, b: f"{a}:{b}",
        st.text(alphabet=st.characters(codec="ascii"), max_size=20),
        st.text(max_size=8),
    )
)
def test_static_peer_either_refuses_or_yields_a_safe_string(text: str) -> None:
    try:
        peer = peers.static_peer(text)
    except ValueError:
        return
    assert SAFE_PEER.fullmatch(peer.peer_string), peer


def _pod(*, ip: Any, port_annotation: Any = None, port: Any = 11625) -> dict[str, Any]:
    annotations = {} if port_annotation is None else {names.PEER_PORT_ANNOTATION: port_annotation}
    return {
        "kind": "Pod",
        "metadata": {"name": "v", "namespace": "n", "annotations": annotations},
        "spec": {"containers": [{"name": "stellar-core", "image": "stellar/stellar-core"}]}
        if port is None
        else {
            "containers": [
                {
                    "name": "stellar-core",
                    "image": "stellar/stellar-core",
                    "ports": [{"name": "peer", "containerPort": port}],
                }
            ]
        },
        "status": {
            "podIP": ip,
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": container_statuses(["stellar-core"]),
        },
    }


@pytest.mark.parametrize(
    "ip", ["1.2.3.4; rm -rf /", "$(touch /tmp/x)", "http://evil/", "evil.example", "1.2.3.4 ", ""]
)
def test_pod_peer_refuses_a_pod_ip_that_is_no_ip(ip: str) -> None:
    assert peers.pod_peer(_pod(ip=ip)) is None


@pytest.mark.parametrize("bad", ["11625; rm -rf /", "$(id)", "0", "70000", "-1", "1e3", "+80"])
def test_pod_peer_refuses_a_port_annotation_that_is_no_port(bad: str) -> None:
    assert peers.pod_peer(_pod(ip="10.0.0.1", port_annotation=bad, port=None)) is None


def test_pod_peer_port_annotation_agrees_with_injection_on_unicode_digits() -> None:
    fullwidth = "\uff18\uff10"
    assert port_number(fullwidth) is None
    peer = peers.pod_peer(_pod(ip="10.0.0.1", port_annotation=fullwidth, port=None))
    assert peer is None or peer.port == names.DEFAULT_PEER_PORT


@settings(max_examples=800, derandomize=True, database=None)
@given(ip=st.text(max_size=40) | st.ip_addresses().map(str), port=st.text(max_size=8))
@example(ip="10.0.0.1", port="\u00b2")
def test_pod_peer_either_refuses_or_yields_a_safe_string(ip: str, port: str) -> None:
    peer = peers.pod_peer(_pod(ip=ip, port_annotation=port, port=None))
    if peer is not None:
        assert SAFE_PEER.fullmatch(peer.peer_string), peer


def test_peer_set_survives_a_pod_with_a_superscript_port_annotation() -> None:
    hostile = watched.trim(_pod(ip="10.0.0.2", port_annotation="\u00b2", port=None), kind="Pod")
    hostile["metadata"]["name"] = "hostile"
    good = watched.trim(_pod(ip="10.0.0.1"), kind="Pod")
    state = watched.fold_all({}, ({"type": "LISTED", "kind": "Pod", "objects": [good, hostile]},))
    found = watched.peer_set(state, enabled_namespaces=frozenset({"n"}))
    assert found.strings == ("10.0.0.1:11625",)


def _rendered(*texts: str) -> dict[str, str]:
    static = [peers.static_peer(t) for t in texts]
    return publish.render(watched.peer_set({}, enabled_namespaces=frozenset(), static=static))


def test_render_writes_only_safe_peer_strings() -> None:
    data = _rendered(*ACCEPTED)
    lines = data[names.KEY_TXT].splitlines()
    assert sorted(lines) == sorted(ACCEPTED.values())
    assert all(SAFE_PEER.fullmatch(line) for line in lines)
    assert data[names.KEY_CSV].split(",") == lines
    quoted = re.fullmatch(r"KNOWN_PEERS = \[(.*)\]\n", data[names.KEY_KNOWN_PEERS])
    assert quoted is not None
    assert [q.strip().strip('"') for q in quoted.group(1).split(",")] == lines
    # Nothing in the cfg value can close the string early or start a new TOML line.
    assert quoted.group(1).count('"') == 2 * len(lines)


@settings(max_examples=300, derandomize=True, database=None)
@given(texts=st.lists(st.sampled_from([*SMUGGLED, *ACCEPTED]), max_size=12))
def test_settings_static_peers_with_smuggled_text_never_reach_the_configmap(
    texts: list[str],
) -> None:
    kept = []
    for text in texts:
        try:
            kept.append(peers.static_peer(text))
        except ValueError:
            assert text in SMUGGLED
    data = publish.render(watched.peer_set({}, enabled_namespaces=frozenset(), static=kept))
    for line in data[names.KEY_TXT].splitlines():
        assert SAFE_PEER.fullmatch(line)
    assert "\n" not in data[names.KEY_CSV]
    assert data[names.KEY_KNOWN_PEERS].count("\n") == 1


# --- The hook script, run under /bin/sh --------------------------------------

HOOK_SMUGGLED = [
    "1.2.3.4:11625; touch {tmp}/pwned-semicolon",
    "1.2.3.4:11625 && touch {tmp}/pwned-and",
    "1.2.3.4:11625|touch {tmp}/pwned-pipe",
    "$(touch {tmp}/pwned-dollar):11625",
    "`touch {tmp}/pwned-backtick`:11625",
    "1.2.3.4:$(touch {tmp}/pwned-port)",
    "${{IFS}}touch${{IFS}}{tmp}/pwned-ifs:1",
    "a b:11625",
    "http://{evil}:{evil_port}/",
    "{evil}:{evil_port}/connect?peer=1.1.1.1&port=1",
    "{evil}:{evil_port}#",
    "{evil}:{evil_port}?x",
    "[::1]:11625",
    "*:11625",
    "1.2.3.4:11625\r",
    "1.2.3.4:11625%0d%0aX",
    "10.9.9.9:11625'",
    '10.9.9.9"  :11625',
    "10.9.9.9\\:11625",
    "10.9.9.9:11625 touch {tmp}/pwned-space",
]
HOOK_PLAIN = ["10.2.0.1:11625", "validator-3.example.org:11700"]


def test_hook_connects_only_plain_peers_from_a_crafted_file(tmp_path: Path) -> None:
    bin_dir = tool_dir(tmp_path, ["curl", "date", "sleep"])
    # A second admin port stands for "anywhere else": no smuggled line may reach it.
    with (
        StellarCoreStandIn(host="127.0.0.51", port=0) as node,
        StellarCoreStandIn(host="127.0.0.52", port=0) as evil,
    ):
        lines = [
            line.format(tmp=tmp_path, evil=evil.host, evil_port=evil.port) for line in HOOK_SMUGGLED
        ]
        peers_file = tmp_path / "peers.txt"
        peers_file.write_text("\n".join([*lines, *HOOK_PLAIN]) + "\n")
        token = run_hook(
            bin_dir=bin_dir,
            http_port=node.port,
            timeout_seconds=20,
            env={"STELLAR_PEERS_FILE": str(peers_file), "STELLAR_PEERS_ADMIN_HOST": node.host},
        )
        wait_until(lambda: not processes_with(token), timeout=15, message="the hook to finish")
        assert evil.received == []
        # The name cannot be resolved here, so the node refuses it and the hook retries it.
        assert set(node.connects()) >= {"10.2.0.1:11625"}
        asked = {
            f"{r.params.get('peer')}:{r.params.get('port')}"
            for r in node.received
            if r.command == "connect"
        }
        assert asked == set(HOOK_PLAIN)
        assert all(path.startswith(("/info", "/connect?peer=")) for path in node.paths)
    assert_nothing_executed(tmp_path)


def test_hook_with_a_smuggled_own_pod_ip_changes_nothing(tmp_path: Path) -> None:
    """STELLAR_POD_IP comes from the downward API, but even a hostile one is only compared."""
    bin_dir = tool_dir(tmp_path, ["curl", "date", "sleep"])
    with StellarCoreStandIn(host="127.0.0.53", port=0) as node:
        peers_file = write_peers(tmp_path, ["10.2.0.1:11625"])
        token = run_hook(
            bin_dir=bin_dir,
            http_port=node.port,
            timeout_seconds=20,
            env={
                "STELLAR_PEERS_FILE": str(peers_file),
                "STELLAR_PEERS_ADMIN_HOST": node.host,
                "STELLAR_POD_IP": f"$(touch {tmp_path}/pwned-podip)",
            },
        )
        wait_until(lambda: node.connects() == ["10.2.0.1:11625"], timeout=10, message="connect")
        wait_until(lambda: not processes_with(token), timeout=10, message="the hook to finish")
    assert_nothing_executed(tmp_path)


# --- The reload controller: URLs and argv from validated values only ---------


@pytest.mark.parametrize(
    "host",
    ["evil/../x", "1.2.3.4&port=1", "a b", "http://evil/", "1.2.3.4\r\nX: y", "::1", "", "%2f"],
)
def test_connect_path_and_exec_command_refuse_a_smuggled_host(host: str) -> None:
    with pytest.raises(ValueError, match="not a peer host"):
        admin_protocol.connect_path(host=host, port=11625)
    with pytest.raises(ValueError, match="not a peer host"):
        reload_plan.exec_command(
            admin_protocol.connect_command(host=host, port=11625), conf="", seconds=2
        )


@settings(max_examples=600, derandomize=True, database=None)
@given(host=st.text(max_size=30), port=st.integers(min_value=1, max_value=65535))
def test_exec_command_is_one_argv_word_of_safe_characters(host: str, port: int) -> None:
    try:
        command = admin_protocol.connect_command(host=host, port=port)
        argv = reload_plan.exec_command(command, conf="", seconds=2)
    except ValueError:
        return
    # The script is fixed text; the command is one positional parameter after it.
    assert argv[:2] == ["sh", "-c"]
    assert argv[3] == "sh"
    assert len(argv) == 5
    assert re.fullmatch(r"connect\?peer=[A-Za-z0-9.-]+&port=[0-9]+", argv[4])


async def _get(ip: str) -> None:
    await admin.get(ip=ip, port=11626, path="/peers", time_limit=1)


@pytest.mark.parametrize(
    "ip", ["evil.example", "http://evil/", "127.0.0.1/x", "127.0.0.1:80", "1.2.3.4 ", "[::1]"]
)
def test_admin_get_dials_only_an_ip_address(ip: str) -> None:
    import asyncio

    with pytest.raises(ValueError, match="address"):
        asyncio.run(_get(ip))


@pytest.mark.parametrize("path", ["/peers\r\nHost: evil", "/connect?peer=a b", "peers", "/x\n"])
def test_admin_get_refuses_a_path_that_could_split_the_request(path: str) -> None:
    import asyncio

    with pytest.raises(ValueError, match="request path"):
        asyncio.run(admin.get(ip="127.0.0.1", port=1, path=path, time_limit=1))


class _Snapshot:
    def __init__(self, peer_set: PeerSet, validators: list[dict[str, Any]]) -> None:
        self.peers = peer_set
        self.validators = validators


def test_plan_round_skips_validators_whose_ip_is_no_ip() -> None:
    good = _pod(ip="10.0.0.7")
    bad = [_pod(ip=ip) for ip in ("http://evil/", "10.0.0.8; rm -rf /", "evil.example", None, 7)]
    for number, pod in enumerate([good, *bad]):
        pod["metadata"]["name"] = f"v{number}"
    plans = reload_plan.plan_round(_Snapshot(PeerSet(peers=()), [good, *bad]), settings=Settings())
    assert [(p.name, p.ip) for p in plans] == [("v0", "10.0.0.7")]


def test_missing_peers_never_offers_a_host_stellar_core_would_not_parse() -> None:
    crafted = [
        Peer("n", f"p{i}", "validator", ip, 11625, "static")
        for i, ip in enumerate(["1.2.3.4/../x", "a b", "$(id)", "evil.example&port=1", "::1"])
    ]
    plain = Peer("n", "ok", "validator", "10.0.0.9", 11625, "pod")
    missing = reload_plan.missing_peers(PeerSet(peers=(*crafted, plain)), set(), own_ip="10.0.0.1")
    assert missing == [plain]


def test_reload_connect_to_a_standin_sends_only_the_validated_peer() -> None:
    import asyncio

    with StellarCoreStandIn(host="127.0.0.54", port=0) as node:
        result = asyncio.run(
            admin_client.connect(
                ip=node.host,
                port=node.port,
                peer_host="validator-3.example.org",
                peer_port=11700,
                time_limit=3,
            )
        )
        assert [r.command for r in node.received] == ["connect"]
        assert node.paths == ["/connect?peer=validator-3.example.org&port=11700"]
    assert result.reason != "unknown-command"


@pytest.mark.parametrize("text", SMUGGLED)
def test_settings_refuse_a_smuggled_static_peer_before_anything_starts(text: str) -> None:
    with pytest.raises(SettingsError, match="static-peers"):
        Settings(static_peers=("10.0.0.1:11625", text))


def test_settings_refuse_a_smuggled_static_peer_from_the_environment() -> None:
    environ = {"STELLAR_INJECTOR_STATIC_PEERS": "10.0.0.1:11625,$(touch /tmp/x):11625"}
    with pytest.raises(SettingsError, match="static-peers"):
        Settings.from_env(environ)
