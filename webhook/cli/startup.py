"""What `serve` checks before it starts, and how a failure on start is told to a user.

A user meeting an error on start needs what happened and what to do about it,
never an exception class name: `explain` turns each failure `serve` can meet
before its parts run into one such sentence.
"""

from __future__ import annotations

import errno
import logging

import urllib3
from kubernetes.client.exceptions import ApiException
from kubernetes.config import ConfigException

from webhook.kube.api import CALL_TIMEOUT_SECONDS, describe_failure
from webhook.kube.rest import Rest, path

log = logging.getLogger(__name__)


class StartupError(RuntimeError):
    """Serving cannot start; the message says what to do."""


# What can fail before the parts run, besides files and ports (OSError) and certificates.
STARTUP_FAILURES: tuple[type[BaseException], ...] = (
    StartupError,
    ConfigException,
    ApiException,
    urllib3.exceptions.HTTPError,
)


def ensure_namespace(rest: Rest, namespace: str, *, create: bool) -> None:
    """The namespace of the Lease and the canonical ConfigMap must exist before anything runs.

    Without it the Lease cannot be written, no replica ever leads and nothing is
    published. `--local` creates it (a development cluster); in a cluster it is
    the installation's own, so a missing one means a wrong `--namespace`.
    """
    try:
        rest.get(path("v1", "namespaces", name=namespace), timeout=CALL_TIMEOUT_SECONDS)
        return
    except ApiException as exc:
        if exc.status == 403 and not create:  # not ours to read: the Lease will tell
            log.warning("serve.namespace-unchecked", extra={"error": describe_failure(exc)})
            return
        if exc.status != 404:
            raise
    command = f"kubectl create namespace {namespace}"
    if not create:
        raise StartupError(
            f"namespace {namespace!r} (--namespace) does not exist: it holds the Lease and the "
            f"canonical ConfigMap; create it with `{command}` (or `kubectl apply -k manifests/`), "
            "or pass the namespace the injector is installed in"
        )
    try:
        rest.create(
            path("v1", "namespaces"),
            {"metadata": {"name": namespace}},
            timeout=CALL_TIMEOUT_SECONDS,
        )
    except ApiException as exc:
        if exc.status == 409:  # created meanwhile by someone else
            return
        raise StartupError(
            f"namespace {namespace!r} (--namespace) does not exist and could not be created "
            f"({describe_failure(exc)}): create it with `{command}` as a user allowed to"
        ) from exc
    log.info("serve.namespace-created", extra={"namespace": namespace})


_STATUS_HINTS = {
    401: "the credentials were refused: check --kubeconfig "
    "(or the in-cluster ServiceAccount token)",
    403: "the API server refused the call: grant the rights in manifests/base "
    "(or run --local as a user allowed to create webhook configurations)",
    404: "the object or its namespace does not exist: check --namespace and the installation",
}


_REACH_FAILURES = ("connection refused", "timed out", "name or service not known", "certificate")


def explain(exc: BaseException, *, server: str = "") -> str:
    """One sentence for a failure on start: what happened and what to do."""
    where = f" at {server}" if server else ""
    if isinstance(exc, StartupError):
        return str(exc)
    if isinstance(exc, ConfigException):
        return (
            f"no Kubernetes configuration ({exc}): pass --kubeconfig FILE, set KUBECONFIG, "
            "or run in a pod with a ServiceAccount"
        )
    if isinstance(exc, ApiException) and exc.status:
        hint = _STATUS_HINTS.get(exc.status, "check the API server's health and try again")
        return f"the API server{where} answered {describe_failure(exc)}: {hint}"
    if isinstance(exc, urllib3.exceptions.HTTPError | ApiException):
        text = str(exc).lower()
        why = next((w for w in _REACH_FAILURES if w in text), "no answer")
        return (
            f"cannot reach the API server{where} ({why}): check that it runs "
            "and that --kubeconfig names the right cluster"
        )
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
        return f"{exc.strerror}: pick free ports with --port and --metrics-port"
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.strerror}: {exc.filename}: check the file named by its flag"
    return str(exc)
