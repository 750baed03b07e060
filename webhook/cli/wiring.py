"""The one place the service is wired: every background part, declared leader-only or not.

`serve` runs what `wire` returns; so do the e2e tests, the benchmarks and the
measuring scripts, which may change the settings and the audit's clock but
not the wiring. Runnables start through `webhook.kube.leader.start`:
leader-only ones when the Lease is won, cancelled when it is lost.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Coroutine
from typing import Any

from kubernetes import client

from webhook.controllers import admission_policy, certificates
from webhook.controllers.audit import AUDIT_INTERVAL_SECONDS
from webhook.controllers.configmaps import ConfigMapPublisher
from webhook.controllers.exposure import ExposureReport
from webhook.controllers.publisher import ConfigMapWriter
from webhook.controllers.reload import ReloadController
from webhook.controllers.watcher import PeerWatcher
from webhook.core.injection import policy
from webhook.kube.leader import LeaderElector, Runnable, start
from webhook.metrics import Metrics
from webhook.settings import Settings


@dataclasses.dataclass(frozen=True)
class Service:
    """The wired parts: what runs, who leads, and when the replica is ready."""

    runnables: tuple[Runnable, ...]
    leader: LeaderElector | None
    ready: Callable[[], bool]
    # Sources that cannot list, and what to do: shown by /readyz.
    detail: Callable[[], dict[str, str]]
    # Set once the serving certificate is on disk (self-managed certificates only).
    certificate_ready: asyncio.Event | None
    # What tests and benchmarks look at (the peer set, identities); None without a watcher.
    watcher: PeerWatcher | None

    def parts(self, stop: asyncio.Event) -> list[Coroutine[Any, Any, None]]:
        """Every runnable as a coroutine, leader-only ones under the Lease."""
        return start(self.runnables, leader=self.leader, stop=stop)


def wire(
    *,
    settings: Settings,
    metrics: Metrics,
    api_client: client.ApiClient,
    renew_certificates: bool = False,
    admission: tuple[policy.Mode, str] | None = None,
    audit_interval_seconds: float = AUDIT_INTERVAL_SECONDS,
) -> Service:
    """The service's parts, each declared leader-only or not.

    The watcher runs on every replica (so a new leader starts with a warm state);
    the ConfigMap publisher, the reload controller and the keeper of the admission
    mode are leader-only.
    Readiness waits for the watcher's first LIST of every source, so a replica
    never serves admission without having seen the cluster.
    """
    leader = None
    watcher = None
    runnables: list[Runnable] = []
    ready: list[Callable[[], bool]] = []
    details: list[Callable[[], dict[str, str]]] = []
    certificate_ready = None
    if settings.enable_watcher:
        leader = LeaderElector(settings=settings, api_client=api_client, metrics=metrics)
        reload = ReloadController(settings=settings, api_client=api_client, metrics=metrics)
        publisher = ConfigMapPublisher(
            writer=ConfigMapWriter(settings=settings, api_client=api_client, metrics=metrics),
            exposure=ExposureReport(api_client=api_client),
        )
        watcher = PeerWatcher(
            settings=settings,
            api_client=api_client,
            metrics=metrics,
            is_leader=leader.is_leader,
            on_fold=publisher.offer,
            on_change=reload.on_change,
            audit_interval_seconds=audit_interval_seconds,
        )
        runnables += [
            Runnable("leader-election", leader.run),
            Runnable("peer-watcher", watcher.run),
            Runnable("configmaps", publisher.run, leader_only=True),
            Runnable("reload", reload.run, leader_only=True),
        ]
        ready.append(_ready_when_listed(watcher))
        details.append(watcher.detail)
    policy_mode = admission is not None and admission[0] == "policy"
    if renew_certificates and settings.cert_mode == "self":
        # Every replica installs the pair from the Secret; only the leader renews it. In
        # policy mode a replica only reads it, to answer a webhook configuration of ours
        # left during a mode switch, and is not ready while it exists unanswered.
        controller = certificates.CertificateController(
            settings=settings,
            api_client=api_client,
            is_leader=leader.is_leader if leader is not None else lambda: True,
            follow_only=policy_mode,
        )
        runnables.append(Runnable("certificates", controller.run))
        ready.append(
            controller.serving_what_is_in_force if policy_mode else controller.installed.is_set
        )
        details.append(controller.detail)
        certificate_ready = controller.installed
    elif policy_mode:
        certificate_ready = asyncio.Event()  # no certificate of its own: the TLS port stays shut
    if admission is not None:
        # The leader applies the policy and removes our webhook configuration once the
        # policy is in force (policy mode), or removes our policy once the webhook
        # configuration is (webhook mode): docs/operations.md, "Switching modes".
        mode, why = admission
        keeper = admission_policy.AdmissionKeeper(
            settings=settings, api_client=api_client, mode=mode, why=why
        )
        runnables.append(Runnable("admission", keeper.run, leader_only=True))
        details.append(keeper.detail)
    return Service(
        runnables=tuple(runnables),
        leader=leader,
        ready=lambda: all(check() for check in ready),
        detail=lambda: {key: why for detail in details for key, why in detail().items()},
        certificate_ready=certificate_ready,
        watcher=watcher,
    )


def _ready_when_listed(watcher: PeerWatcher) -> Callable[[], bool]:
    return lambda: watcher.ready
