"""A fake kubelet: there is no node here, so tests move pods through their lifecycle.

It writes only what a kubelet would write, through the pods/status
subresource, so everything that watches pods sees ordinary status updates.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from kubernetes import client


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def running_status(
    *, ip: str, containers: Iterable[tuple[str, str]], ready: bool = True
) -> dict[str, Any]:
    """The status a kubelet reports for a running pod: `ip`, every container started."""
    containers = list(containers)
    state = "True" if ready else "False"
    now = _now()
    return {
        "phase": "Running",
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "hostIP": "127.0.0.1",
        "startTime": now,
        "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
            {"type": "Initialized", "status": "True", "lastTransitionTime": now},
            {"type": "ContainersReady", "status": state, "lastTransitionTime": now},
            {"type": "Ready", "status": state, "lastTransitionTime": now},
        ],
        "containerStatuses": [
            {**status, "image": image, "imageID": ""}
            for (_, image), status in zip(
                containers, container_statuses((n for n, _ in containers), ready=ready), strict=True
            )
        ],
    }


def container_statuses(names: Iterable[str], *, ready: bool = True) -> list[dict[str, Any]]:
    """Each container running and started, as a kubelet reports it (Ready or not)."""
    return [
        {
            "name": name,
            "ready": ready,
            "restartCount": 0,
            "started": True,
            "state": {"running": {"startedAt": _now()}},
        }
        for name in names
    ]


def crashed_statuses(names: Iterable[str]) -> list[dict[str, Any]]:
    """Each container restarting after a crash: waiting in CrashLoopBackOff, never started."""
    return [
        {
            "name": name,
            "ready": False,
            "restartCount": 3,
            "started": False,
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}},
        }
        for name in names
    ]


class FakeKubelet:
    def __init__(self, api_client: client.ApiClient) -> None:
        self.core = client.CoreV1Api(api_client)

    def mark_ready(self, *, namespace: str, name: str, ip: str, ready: bool = True) -> None:
        """Running with `ip` as podIP, Ready (or not) and every container started."""
        pod = self.core.read_namespaced_pod(name, namespace)
        containers = [(c.name, c.image) for c in pod.spec.containers]
        status = running_status(ip=ip, containers=containers, ready=ready)
        # A JSON patch replaces each field whole: a strategic merge would merge
        # podIPs by key and end up with two IPs of one family, which is invalid.
        ops = [
            {"op": "add", "path": f"/status/{key}", "value": value} for key, value in status.items()
        ]
        self.core.patch_namespaced_pod_status(name, namespace, ops)

    def mark_crashed(self, *, namespace: str, name: str) -> None:
        """Its containers crash-looping: Running phase and IP kept, no container running."""
        pod = self.core.read_namespaced_pod(name, namespace)
        names = [c.name for c in pod.spec.containers]
        ops = [
            {
                "op": "replace",
                "path": "/status/containerStatuses",
                "value": crashed_statuses(names),
            },
            {
                "op": "replace",
                "path": "/status/conditions",
                "value": [{"type": "Ready", "status": "False", "lastTransitionTime": _now()}],
            },
        ]
        self.core.patch_namespaced_pod_status(name, namespace, ops)

    def mark_not_ready(self, *, namespace: str, name: str) -> None:
        pod = self.core.read_namespaced_pod(name, namespace)
        ip = pod.status.pod_ip or "127.0.0.250"
        self.mark_ready(namespace=namespace, name=name, ip=ip, ready=False)


def main(argv: list[str] | None = None) -> int:
    """`python -m tests.kubelet --kubeconfig K ready NAMESPACE POD IP`: used by the demo."""
    import argparse

    from kubernetes import config

    parser = argparse.ArgumentParser(prog="python -m tests.kubelet")
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("action", choices=["ready", "not-ready"])
    parser.add_argument("namespace")
    parser.add_argument("pod")
    parser.add_argument("ip", nargs="?", default="127.0.0.10")
    args = parser.parse_args(argv)
    kubelet = FakeKubelet(config.new_client_from_config(config_file=args.kubeconfig))
    if args.action == "ready":
        kubelet.mark_ready(namespace=args.namespace, name=args.pod, ip=args.ip)
    else:
        kubelet.mark_not_ready(namespace=args.namespace, name=args.pod)
    print(f"kubelet: {args.namespace}/{args.pod} {args.action} {args.ip}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
