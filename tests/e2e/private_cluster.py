"""Helpers for tests that need more than the shared control plane gives them.

- `PrivateCluster`: a control plane of its own (etcd, kube-apiserver,
  kube-controller-manager via scripts/cluster.sh) on free ports in a temporary
  folder, for fault tests that stop or restart kube-apiserver: the shared one
  is never touched.
- `ServeProcess`: `stellar-peers serve` as a subprocess with test-scoped
  flags, its JSON log lines kept in a file.

The injector's parts without a whole serve process: `tests.service.running_service`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from kubernetes import client, config

from tests.polling import wait_until
from webhook.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_SH = ROOT / "scripts" / "cluster.sh"
STELLAR_PEERS = ROOT / ".venv" / "bin" / "stellar-peers"


def free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 right now (held open together so they differ)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


class PrivateCluster:
    """A whole control plane of its own; `down()` removes every trace."""

    def __init__(self, folder: Path) -> None:
        etcd, etcd_peer, apiserver, kcm = free_ports(4)
        self.folder = folder
        self.apiserver_port = apiserver
        self.env = {
            **os.environ,
            "STELLAR_CLUSTER_DIR": str(folder),
            "ETCD_PORT": str(etcd),
            "ETCD_PEER_PORT": str(etcd_peer),
            "APISERVER_PORT": str(apiserver),
            "KCM_PORT": str(kcm),
        }
        self.kubeconfig = str(folder / "kubeconfig")
        self._api_client: client.ApiClient | None = None

    def _sh(self, action: str, *, timeout: float = 180) -> None:
        done = subprocess.run(
            [str(CLUSTER_SH), action], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if done.returncode != 0:
            raise RuntimeError(f"cluster.sh {action} failed: {done.stderr[-2000:]}")

    def up(self) -> None:
        self._sh("up")

    def down(self) -> None:
        if self._api_client is not None:
            self._api_client.close()
            self._api_client = None
        self._sh("down", timeout=60)

    def stop_apiserver(self) -> None:
        self._sh("stop-apiserver", timeout=60)

    def start_apiserver(self) -> None:
        self._sh("start-apiserver")

    @property
    def api_client(self) -> client.ApiClient:
        if self._api_client is None:
            self._api_client = config.new_client_from_config(config_file=self.kubeconfig)
        return self._api_client

    def apiserver_pid(self) -> int | None:
        try:
            return int((self.folder / "kube-apiserver.pid").read_text().strip())
        except (OSError, ValueError):
            return None


@contextlib.contextmanager
def private_cluster(folder: Path) -> Iterator[PrivateCluster]:
    cluster = PrivateCluster(folder)
    try:
        cluster.up()
        yield cluster
    finally:
        cluster.down()


# --- stellar-peers serve as a subprocess ------------------------------------


def settings_args(settings: Settings) -> list[str]:
    """Command-line flags that reproduce every non-default field of `settings`."""
    defaults = Settings()
    args: list[str] = []
    for field in dataclasses.fields(Settings):
        if not field.init:
            continue
        value = getattr(settings, field.name)
        if value == getattr(defaults, field.name):
            continue
        flag = "--" + field.name.replace("_", "-")
        if isinstance(value, bool):
            args += [flag, "true" if value else "false"]
        elif isinstance(value, tuple):
            args += [flag, ",".join(value)]
        else:
            args += [flag, str(value)]
    return args


class ServeProcess:
    """`stellar-peers serve [--local]` with its stderr (JSON lines) written to `log_path`."""

    def __init__(
        self,
        settings: Settings,
        *,
        log_path: Path,
        local: bool = True,
    ) -> None:
        self.settings = settings
        self.log_path = log_path
        command = [str(STELLAR_PEERS), "serve", *(["--local"] if local else [])]
        command += settings_args(settings)
        self._log = log_path.open("ab")
        self.process = subprocess.Popen(
            command, stdout=self._log, stderr=self._log, stdin=subprocess.DEVNULL, cwd=ROOT
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def events(self) -> list[dict[str, Any]]:
        """Every JSON log line written so far."""
        found = []
        for line in self.log_path.read_bytes().splitlines():
            with contextlib.suppress(orjson.JSONDecodeError):
                entry = orjson.loads(line)
                if isinstance(entry, dict):
                    found.append(entry)
        return found

    def named(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events() if e.get("event") == event]

    def wait_for(self, event: str, *, timeout: float = 20) -> dict[str, Any]:
        def seen() -> dict[str, Any] | None:
            assert self.alive(), f"serve exited ({self.process.returncode}): {self.tail()}"
            hits = self.named(event)
            return hits[0] if hits else None

        return wait_until(seen, timeout=timeout, message=f"serve to log {event}")

    def tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL: no clean-up runs (the Lease is not released, the webhook not removed)."""
        if self.alive():
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self._log.close()

    def stop(self) -> int:
        """SIGTERM and wait; the exit code."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()
        return int(self.process.returncode)


@contextlib.contextmanager
def serving(settings: Settings, *, log_path: Path, local: bool = True) -> Iterator[ServeProcess]:
    process = ServeProcess(settings, log_path=log_path, local=local)
    try:
        yield process
    finally:
        process.stop()
