"""Keeps the admission mode in force: the policy and binding applied (policy mode), the
webhook configuration this injector would own removed, and the reverse in webhook mode.

The leader checks every `policy_sync_seconds`: a policy someone deleted or edited
comes back within one period. Only objects of the configured name are touched, and
the other mode's object only once this mode is in force (docs/operations.md,
"Switching modes").
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from webhook.core.injection import admission_switch as switch
from webhook.core.injection import policy
from webhook.kube import api as kube
from webhook.kube.rest import Rest, path
from webhook.settings import Settings

log = logging.getLogger(__name__)

WEBHOOKS = "mutatingwebhookconfigurations"
_API = f"{policy.GROUP}/v1"


def discover(rest: Rest) -> bool | None:
    """Whether the API server serves MutatingAdmissionPolicy v1; None when it did not say."""
    try:
        listing = rest.get(f"/apis/{_API}", timeout=10)
    except ApiException as exc:
        return False if exc.status == 404 else None
    except kube.FAILURES:  # unreachable: urllib3's errors are not OSErrors
        return None
    return policy.serves_policy(
        r.get("name", "") for r in listing.get("resources") or () if isinstance(r, dict)
    )


@dataclasses.dataclass
class Seen:
    """What earlier passes found: since when (monotonic) our webhook configuration, by
    uid, has been in force (webhook mode removes the policy `settle_seconds` after)."""

    settle_seconds: float
    webhook_uid: str = ""
    since: float = 0.0


def sync_once(
    rest: Rest, settings: Settings, mode: policy.Mode, seen: Seen | None = None
) -> list[str]:
    """One pass: what it changed, as `verb kind`, for the log (empty: all was in place).

    The other mode's object goes only once this mode is in force, and never when it is
    newer than ours (`webhook.core.injection.admission_switch`): a switch in either direction never
    leaves the cluster with neither.
    """
    name = settings.webhook_config_name
    seen = seen if seen is not None else Seen(switch.settle_seconds(settings))
    webhook_url = path(_API, WEBHOOKS, name=name)
    done: list[str] = []
    if mode == "policy":
        owner = _owner(rest, name)
        applied: dict[str, Any] | None = None
        settled = True
        for plural, wanted in (
            (policy.POLICY_RESOURCE, policy.policy(settings)),
            (policy.BINDING_RESOURCE, policy.binding(settings)),
        ):
            if owner is not None:
                wanted["metadata"]["ownerReferences"] = [owner]
            verb, stored = _ensure(rest, path(_API, plural), wanted)
            if verb:
                done.append(f"{verb} {plural}")
                settled = False
            if plural == policy.POLICY_RESOURCE:
                applied = stored
        configuration = _get(rest, webhook_url)
        if switch.may_remove_webhook(
            policy_settled=settled,
            configuration=configuration,
            policy=applied,
            pinned=settings.admission_mode == "policy",
        ) and _delete(rest, webhook_url):
            done.append(f"deleted {WEBHOOKS}")
        return done
    configuration = _get(rest, webhook_url)
    ours = _ours(rest, path(_API, policy.POLICY_RESOURCE, name=name))
    now = time.monotonic()
    uid = ""
    if configuration is not None and switch.webhook_in_force(configuration):
        uid = str((configuration.get("metadata") or {}).get("uid") or "")
    if uid != seen.webhook_uid:
        seen.webhook_uid, seen.since = uid, now
    if switch.may_remove_policy(
        configuration=configuration,
        in_force_seconds=now - seen.since,
        settle_seconds=seen.settle_seconds,
        policy=ours,
    ):
        done = remove_policy(rest, settings)
    return done


def remove_policy(rest: Rest, settings: Settings) -> list[str]:
    """Our binding and policy, removed whatever is in force (`serve --local` on exit)."""
    done = []
    for plural in (policy.BINDING_RESOURCE, policy.POLICY_RESOURCE):
        if _delete(rest, path(_API, plural, name=settings.webhook_config_name), only_ours=True):
            done.append(f"deleted {plural}")
    return done


def _get(rest: Rest, url: str) -> dict[str, Any] | None:
    try:
        return rest.get(url)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def _ours(rest: Rest, url: str) -> dict[str, Any] | None:
    """The object when it carries our labels, else None."""
    found = _get(rest, url)
    labels = ((found or {}).get("metadata") or {}).get("labels") or {}
    if found is None or any(labels.get(k) != v for k, v in policy.LABELS.items()):
        return None
    return found


def _owner(rest: Rest, name: str) -> dict[str, Any] | None:
    """Our ClusterRole as the owner of what we apply: uninstalling (kubectl delete -k, helm
    uninstall) deletes it, and the garbage collector then the policy the manifests never
    named. None where there is no such ClusterRole (serve --local, tests) or it is hidden."""
    try:
        role = rest.get(path("rbac.authorization.k8s.io/v1", "clusterroles", name=name))
    except ApiException as exc:
        if exc.status in (403, 404):
            return None
        raise
    uid = (role.get("metadata") or {}).get("uid")
    if not uid:
        return None
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "name": name,
        "uid": uid,
    }


def _ensure(rest: Rest, collection: str, wanted: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Create `wanted`, or replace what is there when it says something else; the verb
    (empty: it was in place) and the object as stored."""
    name = wanted["metadata"]["name"]
    current = _get(rest, f"{collection}/{name}")
    if current is None:
        return "created", rest.create(collection, wanted)
    if policy.same_spec(current, wanted):
        return "", current
    version = (current.get("metadata") or {}).get("resourceVersion")
    stored = rest.replace(
        f"{collection}/{name}",
        {**wanted, "metadata": {**wanted["metadata"], "resourceVersion": version}},
    )
    return "replaced", stored


def _delete(rest: Rest, url: str, *, only_ours: bool = False) -> bool:
    if only_ours and _ours(rest, url) is None:
        return False
    try:
        rest.delete(url)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


class AdmissionKeeper:
    """The leader's loop over `sync_once`; every replica knows the mode and why
    (`detail`), only the leader runs it."""

    def __init__(
        self,
        *,
        settings: Settings,
        api_client: client.ApiClient,
        mode: policy.Mode,
        why: str,
    ) -> None:
        self.settings = settings
        self.rest = Rest(api_client)
        self.mode = mode
        self.why = why
        self.in_place = asyncio.Event()
        self.last_error = ""
        self.seen = Seen(switch.settle_seconds(settings))

    def detail(self) -> dict[str, str]:
        return {"admission": f"{self.mode}: {self.why}"} | (
            {"admission_error": self.last_error} if self.last_error else {}
        )

    async def run(self, stop: asyncio.Event) -> None:
        """A leader-only runnable: started when the Lease is won, cancelled when lost."""
        # What an earlier term saw in force is not this term's settle.
        self.seen = Seen(switch.settle_seconds(self.settings))
        while not stop.is_set():
            await self._pass()
            # Until the first pass is done (no leader yet, or a failure), look every second:
            # a fresh install should not wait a whole period for its policy.
            period = self.settings.policy_sync_seconds
            if not self.in_place.is_set():
                period = min(period, 1.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=period)

    async def _pass(self) -> None:
        try:
            done = await asyncio.to_thread(
                sync_once, self.rest, self.settings, self.mode, self.seen
            )
        except kube.FAILURES as exc:
            self.last_error = kube.describe_failure(exc)
            log.warning(
                "admission.sync_failed", extra={"mode": self.mode, "error": self.last_error}
            )
            return
        self.last_error = ""
        self.in_place.set()
        if done:
            log.info("admission.synced", extra={"mode": self.mode, "changed": done})
