"""The one place the service is wired: every background part, declared leader-only or not.

`serve` runs what `wire` returns; so do the e2e tests, the benchmarks and the
measuring scripts, which may change the settings and the audit's clock but
not the wiring. Runnables start through `webhook.kube.leader.start`:
leader-only ones when the Lease is won, cancelled when it is lost. No part
asks who leads: what only the leader may do is a runnable of its own.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Coroutine
from typing import Any

from kubernetes import client

from webhook.controllers import admission_policy, certificates
from webhook.controllers.audit import AUDIT_INTERVAL_SECONDS, Evictions, UninjectedAudit
from webhook.controllers.configmaps import ConfigMapPublisher
from webhook.controllers.exposure import ExposureReport
from webhook.controllers.identity import IdentityLearner
from webhook.controllers.links import LinkWatcher
from webhook.controllers.publisher import ConfigMapWriter
from webhook.controllers.reload import ReloadController
from webhook.controllers.watcher import PeerWatcher
from webhook.core.injection import policy
from webhook.kube.leader import LeaderElector, Runnable, start
from webhook.kube.rest import Rest
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
    # What tests and benchmarks look at (the peer set, identities, links); None without a watcher.
    watcher: PeerWatcher | None
    audit: UninjectedAudit | None = None

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

    The watcher, the identity learner and the audit's count run on every replica
    (so a new leader starts with a warm state); the ConfigMap publisher, the
    reload controller, the audit's evictions, link following, certificate
    renewal and the keeper of the admission mode are leader-only.
    Readiness waits for the watcher's first LIST of every source, so a replica
    never serves admission without having seen the cluster.
    """
    runnables: list[Runnable] = []
    ready: list[Callable[[], bool]] = []
    details: list[Callable[[], dict[str, str]]] = []
    certificate_ready = None
    watching = None
    if settings.enable_watcher:
        watching = _watching(
            settings=settings,
            metrics=metrics,
            api_client=api_client,
            audit_interval_seconds=audit_interval_seconds,
        )
        runnables += watching.runnables
        ready.append(_ready_when_listed(watching.watcher))
        details.append(watching.watcher.detail)
    policy_mode = admission is not None and admission[0] == "policy"
    if renew_certificates and settings.cert_mode == "self":
        # Every replica installs the pair from the Secret; only the leader renews it. In
        # policy mode a replica only reads it, to answer a webhook configuration of ours
        # left during a mode switch, and is not ready while it exists unanswered.
        controller = certificates.CertificateController(
            settings=settings, api_client=api_client, follow_only=policy_mode
        )
        runnables.append(Runnable("certificates", controller.run))
        if not policy_mode:
            runnables.append(Runnable("certificate-renewal", controller.renew, leader_only=True))
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
        leader=watching.leader if watching else None,
        ready=lambda: all(check() for check in ready),
        detail=lambda: {key: why for detail in details for key, why in detail().items()},
        certificate_ready=certificate_ready,
        watcher=watching.watcher if watching else None,
        audit=watching.audit if watching else None,
    )


@dataclasses.dataclass(frozen=True)
class _Watching:
    leader: LeaderElector
    watcher: PeerWatcher
    audit: UninjectedAudit
    runnables: list[Runnable]


def _watching(
    *,
    settings: Settings,
    metrics: Metrics,
    api_client: client.ApiClient,
    audit_interval_seconds: float,
) -> _Watching:
    """The watcher and every part it feeds or is fed by, joined by listener hooks."""
    leader = LeaderElector(settings=settings, api_client=api_client, metrics=metrics)
    reload = ReloadController(settings=settings, api_client=api_client, metrics=metrics)
    links = LinkWatcher(settings=settings, api_client=api_client, metrics=metrics)
    publisher = ConfigMapPublisher(
        writer=ConfigMapWriter(settings=settings, api_client=api_client, metrics=metrics),
        exposure=ExposureReport(api_client=api_client),
        # A new leader's last fold, made as a follower, has no remote entries: wait for
        # the first made once its links answered (`links` starts before `configmaps`).
        hold=links.first_pass_pending,
    )
    rest = Rest(api_client)
    evictions = Evictions(rest=rest)
    audit = UninjectedAudit(
        settings=settings,
        rest=rest,
        metrics=metrics,
        on_found=evictions.offer if settings.evict_uninjected else lambda found: None,
        interval_seconds=audit_interval_seconds,
    )
    identity = IdentityLearner(settings=settings, api_client=api_client)
    watcher = PeerWatcher(
        settings=settings,
        api_client=api_client,
        metrics=metrics,
        identity=identity,
        links=links,
        on_enabled=audit.see,
        on_fold=publisher.offer,
        on_change=reload.on_change,
    )
    runnables = [
        Runnable("leader-election", leader.run),
        Runnable("peer-watcher", watcher.run),
        Runnable("identity", identity.run),
        Runnable("audit", audit.run),
        Runnable("links", links.run, leader_only=True),
        Runnable("configmaps", publisher.run, leader_only=True),
        Runnable("reload", reload.run, leader_only=True),
    ]
    if settings.evict_uninjected:
        runnables.append(Runnable("evictions", evictions.run, leader_only=True))
    return _Watching(leader=leader, watcher=watcher, audit=audit, runnables=runnables)


def _ready_when_listed(watcher: PeerWatcher) -> Callable[[], bool]:
    return lambda: watcher.ready
