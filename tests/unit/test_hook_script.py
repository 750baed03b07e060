"""The postStart hook script, run for real under /bin/sh (dash) against a stand-in admin port."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.polling import wait_until
from tests.standin import StellarCoreStandIn, random_seed, validator_config
from webhook.core.admin_protocol import network_name
from webhook.core.injection.hook import poststart_command

# `stellar-core` is the stand-in's command line (tests/standin.py), which does what
# `http-command` does: port from HTTP_PORT in the config file, host always 127.0.0.1, every
# non-alphanumeric character after '?' %-escaped, headers then body on stdout, failures only
# logged, no timeout, exit status 0.
SHIM = """#!/bin/sh
exec {python} -I {script} "$@"
"""
STANDIN_SCRIPT = Path(__file__).resolve().parents[1] / "standin.py"


def stellar_core_shim(bin_dir: Path) -> None:
    shim = bin_dir / "stellar-core"
    shim.write_text(SHIM.format(python=sys.executable, script=STANDIN_SCRIPT))
    shim.chmod(0o755)


PEERS = ["127.0.0.41:11625", "10.1.0.2:11625", "10.1.0.3:11700", "validator-2.example.org:11625"]
MALFORMED = [
    "1.2.3.4:11625; touch {tmp}/pwned1",
    "$(touch {tmp}/pwned2)",
    "`touch {tmp}/pwned3`",
    "a b:1",
    ":1",
    "x:",
    "10.0.0.9:11625:1",
    "noport",
    "",
    "10.0.0.10:-1",
]


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def tool_dir(tmp_path: Path, tools: list[str]) -> Path:
    """A PATH holding only the given tools (symlinked), so the script finds nothing else."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in tools:
        found = shutil.which(tool)
        if found is None:
            pytest.skip(f"{tool} is not installed")
        (bin_dir / tool).symlink_to(found)
    return bin_dir


def write_peers(tmp_path: Path, lines: list[str]) -> Path:
    peers = tmp_path / "peers.txt"
    peers.write_text("\n".join(line.format(tmp=tmp_path) for line in lines) + "\n")
    return peers


def processes_with(token: str) -> list[int]:
    """PIDs whose environment carries `token`: the hook's background work and its children."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if token.encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def run_hook(
    *,
    bin_dir: Path,
    env: dict[str, str],
    http_port: int,
    timeout_seconds: int,
    shell: str = "/bin/sh",
) -> str:
    """Run the hook command; assert it returns 0 within a second. Returns the run's token."""
    token = f"STELLAR_HOOK_TEST={uuid.uuid4().hex}"
    name, _, value = token.partition("=")
    full_env = {"PATH": str(bin_dir), name: value, **env}
    command = poststart_command(http_port=http_port, timeout_seconds=timeout_seconds)
    assert command[0] == "/bin/sh"
    started = time.monotonic()
    done = subprocess.run([shell, *command[1:]], env=full_env, capture_output=True, timeout=5)
    elapsed = time.monotonic() - started
    assert done.returncode == 0
    assert elapsed < 1.0, f"the hook took {elapsed:.2f}s to return"
    assert done.stdout == b""
    return token


def assert_nothing_executed(tmp_path: Path) -> None:
    assert not list(tmp_path.glob("pwned*"))


def test_hook_with_curl_connects_every_other_peer_once_booted(tmp_path: Path) -> None:
    bin_dir = tool_dir(tmp_path, ["curl", "date", "sleep"])
    peers = write_peers(tmp_path, PEERS + MALFORMED)
    with StellarCoreStandIn(host="127.0.0.41", port=0, booting_requests=1) as node:
        token = run_hook(
            bin_dir=bin_dir,
            http_port=node.port,
            timeout_seconds=20,
            env={
                "STELLAR_PEERS_FILE": str(peers),
                "STELLAR_POD_IP": "127.0.0.41",
                "STELLAR_PEERS_ADMIN_HOST": node.host,
            },
        )
        wait_until(lambda: len(node.connects()) == 2, timeout=10, message="connects from the hook")
        wait_until(lambda: not processes_with(token), timeout=10, message="the hook to finish")
        assert sorted(node.connects()) == ["10.1.0.2:11625", "10.1.0.3:11700"]
        # The booting answer came first; the name is refused by the node (no DNS here) and
        # retried a bounded number of times; the node's own address is never sent.
        assert [r.command for r in node.received[:2]] == ["info", "info"]
        connect_peers = [r.params.get("peer") for r in node.received if r.command == "connect"]
        assert "127.0.0.41" not in connect_peers
        assert 1 < connect_peers.count("validator-2.example.org") <= 5
        assert set(connect_peers) == {"10.1.0.2", "10.1.0.3", "validator-2.example.org"}
    assert_nothing_executed(tmp_path)


def test_hook_with_only_stellar_core_uses_http_command(tmp_path: Path) -> None:
    bin_dir = tool_dir(tmp_path, ["date", "sleep"])
    stellar_core_shim(bin_dir)
    port = free_port("127.0.0.1")
    conf = tmp_path / "stellar-core.cfg"
    conf.write_text(validator_config(random_seed(), http_port=port))
    peers = write_peers(tmp_path, [*PEERS[1:3], *MALFORMED])
    with StellarCoreStandIn(host="127.0.0.1", port=port, booting_requests=2) as node:
        token = run_hook(
            bin_dir=bin_dir,
            http_port=port,
            timeout_seconds=20,
            env={
                "STELLAR_PEERS_FILE": str(peers),
                "STELLAR_POD_IP": "10.1.0.3",
                "STELLAR_CORE_CONF": str(conf),
            },
        )
        wait_until(
            lambda: node.connects() == ["10.1.0.2:11625"],
            timeout=10,
            message="the connect through http-command",
        )
        wait_until(lambda: not processes_with(token), timeout=10, message="the hook to finish")
        # http-command escaped the query; the node decoded it back.
        assert any("%3d" in path for path in node.paths)
        assert [r.command for r in node.received].count("connect") == 1
    assert_nothing_executed(tmp_path)


def test_hook_with_only_wget_connects(tmp_path: Path) -> None:
    bin_dir = tool_dir(tmp_path, ["wget", "date", "sleep"])
    peers = write_peers(tmp_path, ["10.1.0.2:11625"])
    with StellarCoreStandIn(host="127.0.0.42", port=0) as node:
        token = run_hook(
            bin_dir=bin_dir,
            http_port=node.port,
            timeout_seconds=20,
            env={"STELLAR_PEERS_FILE": str(peers), "STELLAR_PEERS_ADMIN_HOST": node.host},
        )
        wait_until(
            lambda: node.connects() == ["10.1.0.2:11625"], timeout=10, message="wget connect"
        )
        wait_until(lambda: not processes_with(token), timeout=10, message="the hook to finish")


def test_hook_under_busybox_sh(tmp_path: Path) -> None:
    # busybox's own applets for the shell and its tools; curl for HTTP, because the
    # wget of Debian's busybox-static 1.35 crashes on -T (the timeout option).
    busybox = shutil.which("busybox")
    if busybox is None:
        pytest.skip("busybox is not installed")
    bin_dir = tool_dir(tmp_path, ["curl"])
    for applet in ("sh", "date", "sleep"):
        (bin_dir / applet).symlink_to(busybox)
    peers = write_peers(tmp_path, ["10.1.0.2:11625", "127.0.0.45:11625", *MALFORMED])
    with StellarCoreStandIn(host="127.0.0.45", port=0, booting_requests=1) as node:
        token = run_hook(
            bin_dir=bin_dir,
            http_port=node.port,
            timeout_seconds=20,
            shell=str(bin_dir / "sh"),
            env={
                "STELLAR_PEERS_FILE": str(peers),
                "STELLAR_POD_IP": "127.0.0.45",
                "STELLAR_PEERS_ADMIN_HOST": node.host,
            },
        )
        wait_until(
            lambda: node.connects() == ["10.1.0.2:11625"], timeout=10, message="connect via ash"
        )
        wait_until(lambda: not processes_with(token), timeout=10, message="the hook to finish")
    assert_nothing_executed(tmp_path)


def test_hook_gives_up_after_its_bound_when_nothing_answers(tmp_path: Path) -> None:
    bin_dir = tool_dir(tmp_path, ["curl", "date", "sleep"])
    peers = write_peers(tmp_path, PEERS)
    host = "127.0.0.43"
    token = run_hook(
        bin_dir=bin_dir,
        http_port=free_port(host),
        timeout_seconds=2,
        env={"STELLAR_PEERS_FILE": str(peers), "STELLAR_PEERS_ADMIN_HOST": host},
    )
    started = time.monotonic()
    assert processes_with(token), "the background part should be waiting for the node"
    wait_until(lambda: not processes_with(token), timeout=6, message="the hook to give up")
    assert time.monotonic() - started < 5


def test_hook_without_a_peers_file_does_nothing(tmp_path: Path) -> None:
    bin_dir = tool_dir(tmp_path, ["curl", "date", "sleep"])
    with StellarCoreStandIn(host="127.0.0.44", port=0) as node:
        token = run_hook(
            bin_dir=bin_dir,
            http_port=node.port,
            timeout_seconds=20,
            env={
                "STELLAR_PEERS_FILE": str(tmp_path / "missing.txt"),
                "STELLAR_PEERS_ADMIN_HOST": node.host,
            },
        )
        wait_until(lambda: not processes_with(token), timeout=10, message="the hook to finish")
        assert [r.command for r in node.received] == ["info"]


@pytest.mark.parametrize("bad", [0, 70000, -1, True, "11626; reboot", 1.5])
def test_hook_refuses_anything_but_a_port_number(bad: object) -> None:
    with pytest.raises(ValueError, match="http_port"):
        poststart_command(http_port=bad, timeout_seconds=10)  # type: ignore[arg-type]


def test_hook_command_is_sh_c_and_interpolates_only_integers() -> None:
    command = poststart_command(http_port=11700, timeout_seconds=90)
    assert command[:2] == ["/bin/sh", "-c"]
    assert ":11700/" in command[2]
    assert "+ 90 ))" in command[2]
    assert command[2].rstrip().endswith("&\nexit 0")


def shells() -> list[str]:
    found = ["/bin/sh"]
    dash = shutil.which("dash")
    if dash is not None and Path(dash).resolve() != Path("/bin/sh").resolve():
        found.append(dash)
    return found


@pytest.mark.parametrize("shell", shells())
def test_hook_waits_for_a_state_past_booting_before_v25_2(tmp_path: Path, shell: str) -> None:
    # Before v25.2 a starting node answers `info` with `"state" : "Booting"` (jsoncpp).
    bin_dir = tool_dir(tmp_path, ["curl", "date", "sleep"])
    peers = write_peers(tmp_path, ["10.1.0.2:11625"])
    with StellarCoreStandIn(
        host="127.0.0.46", port=0, version="25.1.0", booting_requests=3
    ) as node:
        token = run_hook(
            bin_dir=bin_dir,
            http_port=node.port,
            timeout_seconds=20,
            shell=shell,
            env={"STELLAR_PEERS_FILE": str(peers), "STELLAR_PEERS_ADMIN_HOST": node.host},
        )
        wait_until(lambda: node.connects() == ["10.1.0.2:11625"], timeout=15, message="connect")
        wait_until(lambda: not processes_with(token), timeout=10, message="the hook to finish")
        assert [r.command for r in node.received] == ["info"] * 4 + ["connect"]


def test_hook_reads_the_state_whatever_the_json_spacing(tmp_path: Path) -> None:
    # The state is parsed from the answer, not matched as text: `Booting` in any spacing
    # is not ready, `"state":"Synced!"` is.
    bin_dir = tool_dir(tmp_path, ["curl", "date", "sleep"])
    command = poststart_command(http_port=1, timeout_seconds=5)[2]
    script = command[: command.index("in_time()")] + 'state "$1"\n'
    script = script[script.index("state()") :].replace("\n)", "\n")
    cases = {
        '{"info": {"state":"Synced!"}}': "Synced!",
        '{\n   "info" : {\n      "state" : "Joining SCP"\n   }\n}\n': "Joining SCP",
        '{"info":{"state"\t:\t"Booting"}}': "Booting",
        '{"error": "Core is booting, try again later"}': "",
        "<b>Welcome to stellar-core!</b>": "",
    }
    for answer, state in cases.items():
        done = subprocess.run(
            ["/bin/sh", "-c", script, "sh", answer],
            env={"PATH": str(bin_dir)},
            capture_output=True,
            timeout=5,
        )
        assert (done.returncode, done.stdout.decode()) == (0, state), answer


def test_hook_through_http_command_survives_a_node_that_accepts_and_hangs(
    tmp_path: Path,
) -> None:
    # http-command has no timeout: without the hook's own bound it would wait forever.
    bin_dir = tool_dir(tmp_path, ["date", "sleep"])
    stellar_core_shim(bin_dir)
    port = free_port("127.0.0.1")
    conf = tmp_path / "stellar-core.cfg"
    conf.write_text(validator_config(random_seed(), http_port=port))
    peers = write_peers(tmp_path, ["10.1.0.2:11625"])
    with StellarCoreStandIn(host="127.0.0.1", port=port, hang_seconds=3600) as node:
        token = run_hook(
            bin_dir=bin_dir,
            http_port=port,
            timeout_seconds=2,
            env={"STELLAR_PEERS_FILE": str(peers), "STELLAR_CORE_CONF": str(conf)},
        )
        wait_until(lambda: not processes_with(token), timeout=20, message="the hook to give up")
        assert node.connects() == []
    with StellarCoreStandIn(host="127.0.0.1", port=port, hang_seconds=4) as node:
        token = run_hook(
            bin_dir=bin_dir,
            http_port=port,
            timeout_seconds=30,
            env={"STELLAR_PEERS_FILE": str(peers), "STELLAR_CORE_CONF": str(conf)},
        )
        wait_until(lambda: node.connects() == ["10.1.0.2:11625"], timeout=20, message="connect")
        wait_until(lambda: not processes_with(token), timeout=10, message="the hook to finish")


def test_hook_with_wget_gives_up_on_a_node_that_accepts_and_hangs(tmp_path: Path) -> None:
    # GNU wget retries a read timeout 20 times unless told `-t 1`.
    bin_dir = tool_dir(tmp_path, ["wget", "date", "sleep"])
    peers = write_peers(tmp_path, ["10.1.0.2:11625"])
    with StellarCoreStandIn(host="127.0.0.47", port=0, hang_seconds=3600) as node:
        token = run_hook(
            bin_dir=bin_dir,
            http_port=node.port,
            timeout_seconds=2,
            env={"STELLAR_PEERS_FILE": str(peers), "STELLAR_PEERS_ADMIN_HOST": node.host},
        )
        wait_until(lambda: not processes_with(token), timeout=20, message="the hook to give up")
        assert node.connects() == []


def network_files(tmp_path: Path) -> Path:
    """`peers.txt` empty (two networks) beside one file per network, as the watcher writes."""
    (tmp_path / "peers-testnet.txt").write_text("10.2.0.1:11625\n10.2.0.2:11625\n")
    (tmp_path / "peers-pubnet.txt").write_text("10.3.0.1:11625\n")
    (tmp_path / "peers-net-0a1b2c3d.txt").write_text("10.4.0.1:11625\n")
    peers = tmp_path / "peers.txt"
    peers.write_text("")
    return peers


@pytest.mark.parametrize(
    ("passphrase", "label", "expected"),
    [
        ("Public Global Stellar Network ; September 2015", "", ["10.3.0.1:11625"]),
        ("Test SDF Network ; September 2015", "", ["10.2.0.1:11625", "10.2.0.2:11625"]),
        # The label wins over what the node says.
        (
            "Public Global Stellar Network ; September 2015",
            "testnet",
            ["10.2.0.1:11625", "10.2.0.2:11625"],
        ),
    ],
)
def test_hook_connects_only_its_own_networks_peers(
    tmp_path: Path, passphrase: str, label: str, expected: list[str]
) -> None:
    bin_dir = tool_dir(tmp_path, ["curl", "date", "sleep"])
    peers = network_files(tmp_path)
    env = {"STELLAR_PEERS_FILE": str(peers), "STELLAR_PEERS_ADMIN_HOST": "127.0.0.46"}
    if label:
        env["STELLAR_NETWORK"] = label
    with StellarCoreStandIn(host="127.0.0.46", port=0, network_passphrase=passphrase) as node:
        token = run_hook(bin_dir=bin_dir, http_port=node.port, timeout_seconds=20, env=env)
        wait_until(lambda: not processes_with(token), timeout=15, message="the hook to finish")
        assert sorted(node.connects()) == expected


def test_hook_without_its_networks_file_sends_nothing(tmp_path: Path) -> None:
    # A private network no file is written for yet, and a labeled pod whose network has
    # no file: neither falls back to another network's peers.
    bin_dir = tool_dir(tmp_path, ["curl", "date", "sleep"])
    peers = network_files(tmp_path)
    peers.write_text("10.9.0.1:11625\n")  # were it read, this would be connected
    for env in ({}, {"STELLAR_NETWORK": "futurenet"}):
        full = {"STELLAR_PEERS_FILE": str(peers), "STELLAR_PEERS_ADMIN_HOST": "127.0.0.47", **env}
        with StellarCoreStandIn(
            host="127.0.0.47", port=0, network_passphrase="Private Net ; 2026"
        ) as node:
            token = run_hook(bin_dir=bin_dir, http_port=node.port, timeout_seconds=20, env=full)
            wait_until(
                lambda t=token: not processes_with(t),  # type: ignore[misc]
                timeout=15,
                message="the hook to end",
            )
            assert node.connects() == []
            assert [r.command for r in node.received] == ["info"]


def test_hook_names_a_private_network_by_its_passphrase_hash(tmp_path: Path) -> None:
    bin_dir = tool_dir(tmp_path, ["curl", "date", "sleep", "sha256sum"])
    passphrase = "Private Net ; 2026"
    name = network_name(passphrase)
    (tmp_path / f"peers-{name}.txt").write_text("10.5.0.1:11625\n")
    (tmp_path / "peers-testnet.txt").write_text("10.2.0.1:11625\n")
    env = {
        "STELLAR_PEERS_FILE": str(tmp_path / "peers.txt"),
        "STELLAR_PEERS_ADMIN_HOST": "127.0.0.48",
    }
    with StellarCoreStandIn(host="127.0.0.48", port=0, network_passphrase=passphrase) as node:
        token = run_hook(bin_dir=bin_dir, http_port=node.port, timeout_seconds=20, env=env)
        wait_until(lambda: node.connects() == ["10.5.0.1:11625"], timeout=10, message="connect")
        wait_until(lambda: not processes_with(token), timeout=15, message="the hook to finish")
