"""`stellar-peers check`: a post-install self-test against the live cluster.

Owns the four checks an operator runs after installing, each printed as one
`PASS name: ...` or `FAIL name: ...` line:

- `webhook`: a server-side dry-run create of a validator pod in the first
  namespace the webhook selects comes back injected, so the API server reaches
  the webhook and trusts its certificate;
- `certificate`: the serving certificate (from the TLS Secret, else the
  certificate file, else the one the webhook's URL serves) is valid for long
  enough;
- `lease`: the leader-election Lease has a holder that renewed it in time;
- `configmaps`: the canonical `stellar-peers` ConfigMap exists with a hash
  annotation matching its `peers.txt`, and every enabled namespace has a
  mirror equal to it.

The exit code is 0 only when every check passes. Reads only, apart from the
dry-run create, which stores nothing.
"""

from __future__ import annotations

import datetime as dt
import ssl
import sys
import uuid
from dataclasses import dataclass
from typing import Any, Final, TextIO

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.config import ConfigException

from certs import authority, install
from webhook import names
from webhook.cli import check_admission, serving_certificate
from webhook.cli import check_beyond as beyond
from webhook.core.peerset.peers import text_hash
from webhook.core.selector import is_enabled
from webhook.kube import api as kube
from webhook.kube import leader
from webhook.kube.rest import Rest, path
from webhook.settings import Settings

# A serving certificate closer to expiry than this fails the check: rotation
# renews 30 days ahead, so reaching this means rotation is not running.
MIN_CERT_VALIDITY: Final = dt.timedelta(days=7)
# The API's failures, and answers that do not parse.
FAILURES: Final[tuple[type[BaseException], ...]] = (*kube.FAILURES, ValueError)


@dataclass(frozen=True)
class Result:
    name: str
    ok: bool
    detail: str

    @property
    def line(self) -> str:
        return f"{'PASS' if self.ok else 'FAIL'} {self.name}: {self.detail}"


def _not_found(exc: BaseException) -> bool:
    return isinstance(exc, ApiException) and exc.status == 404


def enabled_namespaces(rest: Rest, settings: Settings) -> list[str]:
    """Namespaces the webhook and the watcher act in: the selector's, as `is_enabled` says."""
    listed = rest.get(
        path("v1", "namespaces"),
        timeout=kube.CALL_TIMEOUT_SECONDS,
        label_selector=settings.namespace_selector,
    )
    return sorted(
        item["metadata"]["name"]
        for item in listed.get("items") or ()
        if is_enabled(item, settings=settings)
    )


# --- webhook ----------------------------------------------------------------


def probe_pod(name: str) -> dict[str, Any]:
    """A minimal validator pod, as a user would write it."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {names.NODE_TYPE_LABEL: "validator", "app": "stellar-peers-check"},
        },
        "spec": {
            "containers": [
                {
                    "name": "stellar-core",
                    "image": "stellar/stellar-core:latest",
                    "ports": [
                        {"name": "peer", "containerPort": names.DEFAULT_PEER_PORT},
                        {"name": "http", "containerPort": names.DEFAULT_HTTP_PORT},
                    ],
                }
            ],
        },
    }


def injected(pod: dict[str, Any]) -> str | None:
    """None when `pod` carries everything injection adds, else what is missing."""
    metadata = pod.get("metadata") or {}
    if (metadata.get("labels") or {}).get(names.INJECTED_LABEL) != "true":
        return f"label {names.INJECTED_LABEL}=true is missing"
    if names.STATUS_ANNOTATION not in (metadata.get("annotations") or {}):
        return f"annotation {names.STATUS_ANNOTATION} is missing"
    spec = pod.get("spec") or {}
    if not any(v.get("name") == names.VOLUME_NAME for v in spec.get("volumes") or ()):
        return f"volume {names.VOLUME_NAME} is missing"
    containers = spec.get("containers") or [{}]
    env = {e.get("name") for e in containers[0].get("env") or ()}
    wanted = {names.ENV_PEERS_FILE, names.ENV_PEERS, names.ENV_PEER_COUNT, names.ENV_POD_IP}
    if not wanted <= env:
        return f"env {', '.join(sorted(wanted - env))} missing"
    return None


def check_webhook(api: client.ApiClient, settings: Settings) -> Result:
    name = "webhook"
    configuration = path(
        "admissionregistration.k8s.io/v1",
        "mutatingwebhookconfigurations",
        name=settings.webhook_config_name,
    )
    try:
        Rest(api).get(configuration, timeout=kube.CALL_TIMEOUT_SECONDS)
    except FAILURES as exc:
        if _not_found(exc):
            return Result(
                name,
                False,
                f"MutatingWebhookConfiguration {settings.webhook_config_name} not found",
            )
        return Result(
            name, False, f"cannot read the webhook configuration: {kube.describe_failure(exc)}"
        )
    return dry_run_probe(api, settings, name=name, by="the webhook")


def dry_run_probe(api: client.ApiClient, settings: Settings, *, name: str, by: str) -> Result:
    """A server-side dry-run create of a validator pod in the first enabled namespace:
    injected means the API server applied `by`'s mutation."""
    rest = Rest(api)
    try:
        namespaces = enabled_namespaces(rest, settings)
    except FAILURES as exc:
        return Result(name, False, f"cannot list namespaces: {kube.describe_failure(exc)}")
    if not namespaces:
        return Result(
            name,
            False,
            f"no namespace matches {settings.namespace_selector!r} (besides "
            f"{settings.namespace} and kube-system), so no pod can be injected; label one",
        )
    namespace = namespaces[0]
    pod_name = f"stellar-peers-check-{uuid.uuid4().hex[:8]}"
    try:
        pod = rest.create(
            path("v1", "pods", namespace=namespace),
            probe_pod(pod_name),
            timeout=kube.CALL_TIMEOUT_SECONDS,
            dry_run="All",
        )
    except FAILURES as exc:
        return Result(
            name, False, f"dry-run create in {namespace} failed: {kube.describe_failure(exc)}"
        )
    missing = injected(pod)
    if missing is not None:
        return Result(
            name,
            False,
            f"dry-run pod in {namespace} came back uninjected ({missing}): the API server "
            f"did not apply {by}, or ignored its failure (failurePolicy Ignore)",
        )
    return Result(name, True, f"dry-run validator pod in {namespace} came back injected")


# --- certificate ------------------------------------------------------------


def check_certificate(
    api: client.ApiClient, settings: Settings, *, now: dt.datetime | None = None
) -> Result:
    name = "certificate"
    try:
        found = serving_certificate.find(api, settings, timeout=kube.CALL_TIMEOUT_SECONDS)
    except FAILURES as exc:
        return Result(
            name, False, f"cannot get the serving certificate: {kube.describe_failure(exc)}"
        )
    except ssl.SSLError as exc:  # an OSError too, but say what it means
        return Result(name, False, f"the served certificate is not trusted: {exc}")
    if found is None:
        return Result(
            name,
            False,
            f"no serving certificate: no Secret {install.secret_name(settings.service_name)} in "
            f"{settings.namespace}, no file {settings.cert_file}, no webhook URL to ask",
        )
    pem, source = found
    try:
        left = authority.remaining_validity(pem, now=now)
        expiry = authority.not_after(pem)
    except ValueError as exc:
        return Result(name, False, f"{source} holds no readable certificate: {exc}")
    when = expiry.strftime("%Y-%m-%dT%H:%M:%SZ")
    days = left.total_seconds() / 86400
    if left <= dt.timedelta(0):
        return Result(name, False, f"{source} expired at {when}")
    if left < MIN_CERT_VALIDITY:
        return Result(
            name, False, f"{source} expires in {days:.1f} days ({when}): rotation is not working"
        )
    return Result(name, True, f"{source} valid for {days:.0f} more days (until {when})")


# --- lease ------------------------------------------------------------------


def check_lease(
    api: client.ApiClient, settings: Settings, *, now: dt.datetime | None = None
) -> Result:
    name = "lease"
    where = f"{settings.namespace}/{settings.lease_name}"
    if not settings.leader_election:
        return Result(name, True, "leader election is off: this replica always writes")
    try:
        lease = Rest(api).get(
            path(
                "coordination.k8s.io/v1",
                "leases",
                namespace=settings.namespace,
                name=settings.lease_name,
            ),
            timeout=kube.CALL_TIMEOUT_SECONDS,
        )
    except FAILURES as exc:
        if _not_found(exc):
            return Result(name, False, f"Lease {where} not found: no replica ever led")
        return Result(name, False, f"cannot read Lease {where}: {kube.describe_failure(exc)}")
    spec = lease.get("spec") or {}
    holder = spec.get("holderIdentity") or ""
    renewed = leader.parse_time(spec.get("renewTime"))
    duration = spec.get("leaseDurationSeconds") or 0
    if not holder:
        return Result(name, False, f"Lease {where} has no holder: no replica leads")
    if renewed is None:
        return Result(name, False, f"Lease {where} held by {holder} has no renewTime")
    age = ((now or dt.datetime.now(dt.UTC)) - renewed).total_seconds()
    if age > duration:
        return Result(
            name,
            False,
            f"Lease {where} held by {holder} is stale: renewed {age:.0f}s ago, "
            f"duration {duration}s",
        )
    return Result(
        name,
        True,
        f"Lease {where} held by {holder}, renewed {max(age, 0):.1f}s ago (of {duration}s)",
    )


# --- configmaps -------------------------------------------------------------


def _configmap(rest: Rest, namespace: str) -> dict[str, Any] | None:
    try:
        return rest.get(
            path("v1", "configmaps", namespace=namespace, name=names.CONFIGMAP_NAME),
            timeout=kube.CALL_TIMEOUT_SECONDS,
        )
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def _hash_of(configmap: dict[str, Any]) -> str | None:
    return ((configmap.get("metadata") or {}).get("annotations") or {}).get(
        names.PEERS_HASH_ANNOTATION
    )


def check_configmaps(api: client.ApiClient, settings: Settings) -> Result:
    name = "configmaps"
    rest = Rest(api)
    where = f"{settings.namespace}/{names.CONFIGMAP_NAME}"
    try:
        canonical = _configmap(rest, settings.namespace)
        namespaces = enabled_namespaces(rest, settings)
        mirrors = {namespace: _configmap(rest, namespace) for namespace in namespaces}
    except FAILURES as exc:
        return Result(name, False, f"cannot read ConfigMaps: {kube.describe_failure(exc)}")
    if canonical is None:
        return Result(name, False, f"canonical ConfigMap {where} not found")
    data = canonical.get("data") or {}
    text = data.get(names.KEY_TXT)
    recorded = _hash_of(canonical)
    if text is None:
        return Result(name, False, f"{where} has no {names.KEY_TXT}")
    actual = text_hash(text)
    if recorded != actual:
        return Result(
            name,
            False,
            f"{where} annotation {names.PEERS_HASH_ANNOTATION} is {recorded!r}, "
            f"but {names.KEY_TXT} hashes to {actual}",
        )
    missing = sorted(ns for ns, mirror in mirrors.items() if mirror is None)
    stale = sorted(
        ns
        for ns, mirror in mirrors.items()
        if mirror is not None and ((mirror.get("data") or {}) != data or _hash_of(mirror) != actual)
    )
    if missing or stale:
        parts = []
        if missing:
            parts.append(f"mirror missing in {', '.join(missing)}")
        if stale:
            parts.append(f"mirror differs from {where} in {', '.join(stale)}")
        return Result(name, False, "; ".join(parts))
    count = data.get(names.KEY_COUNT, "?")
    return Result(
        name,
        True,
        f"{where} holds {count} peers ({actual[:19]}…), {len(mirrors)} mirrors match",
    )


def checks(api: client.ApiClient, settings: Settings) -> list[Result]:
    """The mode in force first; policy mode proves its policy instead of the webhook and
    needs no certificate."""
    try:
        namespaces = enabled_namespaces(Rest(api), settings)
    except FAILURES:
        namespaces = []  # check_configmaps says why
    mode, why = check_admission.mode(api, settings)
    if mode == "policy":
        first = [
            Result("admission", True, f"policy mode: {why}"),
            check_admission.check_policy(api, settings, probe=dry_run_probe),
            Result("certificate", True, "policy mode serves no TLS: no certificate is needed"),
        ]
    else:
        first = [
            Result("admission", True, f"webhook mode: {why}"),
            check_webhook(api, settings),
            check_certificate(api, settings),
        ]
    return [
        *first,
        check_lease(api, settings),
        check_configmaps(api, settings),
        Result(*beyond.advertised(api, settings, namespaces)),
        Result(*beyond.links(api, settings)),
    ]


def run(settings: Settings, *, out: TextIO | None = None) -> int:
    """Run every check, print one line each; 0 only when all pass."""
    stream = out or sys.stdout
    try:
        api = kube.api_client(settings)
    except (ConfigException, OSError) as exc:
        print(f"FAIL cluster: cannot build a Kubernetes client: {exc}", file=stream)
        return 1
    with api:
        results = checks(api, settings)
    for result in results:
        print(result.line, file=stream)
    return 0 if all(r.ok for r in results) else 1
