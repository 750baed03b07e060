"""Settings: the one frozen configuration object, built and validated at startup.

Every option has a command-line flag and an environment variable
(`STELLAR_INJECTOR_<NAME>`); a flag wins over the environment. Nothing else in
the program reads `os.environ`: `Settings` is passed in explicitly.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal, get_args

from webhook import names
from webhook.address import is_dns_label, is_dns_name, static_peer_text

ReloadMode = Literal["http", "exec", "rollout", "none"]
RELOAD_MODES: tuple[str, ...] = get_args(ReloadMode)
CertMode = Literal["self", "external"]
CERT_MODES: tuple[str, ...] = get_args(CertMode)
AdmissionMode = Literal["webhook", "policy", "auto"]
ADMISSION_MODES: tuple[str, ...] = get_args(AdmissionMode)
ENV_PREFIX = "STELLAR_INJECTOR_"


class SettingsError(ValueError):
    """A setting is malformed; the message names the flag, the bad value and what is allowed."""


LOG_LEVELS: tuple[str, ...] = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

# Numeric limits: (lowest, highest, lowest allowed itself?, why the bound). None: no bound.
_LIMITS: dict[str, tuple[float | None, float | None, bool, str]] = {
    "port": (0, 65535, True, "a TCP port; 0 picks a free one"),
    "metrics_port": (0, 65535, True, "a TCP port; 0 picks a free one"),
    "max_body_bytes": (0, None, False, ""),
    "hook_timeout_seconds": (
        1,
        names.HOOK_MAX_TIMEOUT_SECONDS,
        True,
        "the postStart hook refuses longer waits, and every injection would fail",
    ),
    "debounce_seconds": (0, None, True, ""),
    "watch_timeout_seconds": (0, None, False, ""),
    "reload_concurrency": (0, None, False, ""),
    "reload_timeout_seconds": (0, None, False, ""),
    "reload_retries": (0, None, True, ""),
    "lease_duration_seconds": (0, None, False, ""),
    "lease_renew_seconds": (0, None, False, ""),
    "reload_connect_wait_seconds": (0, None, False, ""),
    "shutdown_grace_seconds": (0, 300, True, "longer than any terminationGracePeriod needs"),
    "cert_sync_seconds": (0, None, False, ""),
    "link_stale_seconds": (0, None, False, ""),
    "policy_sync_seconds": (0, None, False, ""),
}


_CHOICES: dict[str, tuple[str, ...]] = {
    "reload_mode": RELOAD_MODES,
    "cert_mode": CERT_MODES,
    "admission_mode": ADMISSION_MODES,
    "log_level": LOG_LEVELS,
}

# One line of `--help` per setting (the full text: docs/configuration.md, which a test
# holds to these names); add_arguments appends the variable and the default.
_HELP: dict[str, str] = {
    "namespace": "where the canonical ConfigMap, the Lease and the TLS Secret live",
    "namespace_selector": "label selector of the namespaces whose pods are injected and mirrored",
    "image_pattern": "regular expression: a container image repository matching it is a validator",
    "static_peers": "peers outside the cluster, host:port or host:port@network, comma-separated",
    "default_network": "network of validators whose network is neither labeled nor learned",
    "host": "address of the TLS admission server",
    "port": "port of the TLS admission server (0 picks a free one)",
    "metrics_host": "address of the plain-HTTP /healthz, /readyz and /metrics server",
    "metrics_port": "port of that server (0 picks a free one)",
    "cert_file": "serving certificate (self mode writes it, external mode reads it)",
    "key_file": "its private key",
    "max_body_bytes": "largest AdmissionReview body read; a larger one gets 413",
    "cert_mode": "self: make and renew the CA and TLS Secret; external: only read the files",
    "cert_sync_seconds": "self mode: how often each replica reads the TLS Secret again",
    "shutdown_grace_seconds": "after SIGTERM, unready but still answering admissions this long",
    "hook_timeout_seconds": "how long the injected postStart hook waits for the admin port",
    "debounce_seconds": "changes within this window make one ConfigMap write and one reload round",
    "watch_timeout_seconds": "server-side timeout of each watch request",
    "enable_watcher": "false: serve admission only (no ConfigMaps, no reloads)",
    "evict_uninjected": "evict validator pods admitted uninjected so they come back injected",
    "reload_mode": "how running validators learn a peer change",
    "reload_concurrency": "validators told at once in a reload round",
    "reload_timeout_seconds": "timeout of one admin call",
    "reload_retries": "retries of a transient admin call failure, with backoff",
    "reload_connect_wait_seconds": "after connect, how long a round reads the node's peers again",
    "leader_election": "false: every replica writes and reloads (only with one replica)",
    "lease_name": "the Lease in --namespace that elects the writer",
    "lease_duration_seconds": "how long a Lease holds without renewal",
    "lease_renew_seconds": "how often the holder renews the Lease",
    "identity": "holder identity in the Lease (empty: hostname-pid)",
    "cluster_name": "this cluster's name in peers.json and in links",
    "link_stale_seconds": "how long an unreachable linked cluster's entries are kept",
    "kubeconfig": "kubeconfig file (empty: in-cluster, else ~/.kube/config)",
    "log_level": "level of the JSON logs",
    "webhook_config_name": "name of the webhook configuration, and of the policy in policy mode",
    "admission_mode": "who injects: webhook, a MutatingAdmissionPolicy, or auto (policy if served)",
    "policy_sync_seconds": "policy mode: how often the leader puts the policy and binding back",
    "service_name": "the Service the certificate is made for (Secret <name>-tls)",
}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _allowed(low: float | None, high: float | None, inclusive: bool) -> str:
    if low is not None and high is not None:
        return f"{low}..{high}"
    return f"{'>=' if inclusive else '>'} {low}"


def _check_limits(settings: Settings) -> None:
    for name, (low, high, inclusive, why) in _LIMITS.items():
        value = getattr(settings, name)
        too_low = low is not None and (value < low if inclusive else value <= low)
        too_high = high is not None and value > high
        if too_low or too_high or (isinstance(value, float) and not math.isfinite(value)):
            reason = f" ({why})" if why else ""
            raise SettingsError(
                f"{_flag(name)} {value!r}: allowed {_allowed(low, high, inclusive)}{reason}"
            )


@dataclass(frozen=True)
class Settings:
    # Where the injector runs and keeps its canonical ConfigMap and Lease.
    namespace: str = names.SYSTEM_NAMESPACE
    # Namespaces whose pods are injected and get a mirror ConfigMap.
    namespace_selector: str = names.DEFAULT_NAMESPACE_SELECTOR
    # A container image repository matching this makes a pod a validator.
    image_pattern: str = names.DEFAULT_IMAGE_PATTERN
    # Peers outside the cluster (`host:port` or `host:port@network`), e.g. other
    # organisations' validators.
    static_peers: tuple[str, ...] = ()
    # The network of nodes whose network is neither labeled nor learned ("": none).
    default_network: str = ""

    # Admission server
    host: str = "127.0.0.1"
    port: int = 8443
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9090
    cert_file: str = "/etc/stellar-peer-injector/tls/tls.crt"
    key_file: str = "/etc/stellar-peer-injector/tls/tls.key"
    max_body_bytes: int = 3 * 1024 * 1024
    # self: the injector creates its CA and TLS Secret when missing, keeps the
    # webhook's caBundle holding that CA, renews, and writes the serving pair to
    # cert_file/key_file. external: someone else (cert-manager, `stellar-peers
    # certs install`) manages Secret and caBundle; the files are only read.
    cert_mode: CertMode = "self"
    # self mode: how often each replica reads the Secret again (renewals, a deleted Secret).
    cert_sync_seconds: float = 10.0
    # After SIGTERM: unready but still serving admissions for this long, so the
    # Service stops sending reviews here before the server closes.
    shutdown_grace_seconds: float = 5.0
    # postStart hook: how long the background part waits for the admin port.
    hook_timeout_seconds: int = 600

    # Peer watcher
    debounce_seconds: float = 0.2
    watch_timeout_seconds: int = 300
    enable_watcher: bool = True
    # Report validator pods in enabled namespaces that were admitted uninjected
    # (webhook down under failurePolicy Ignore); evict them if asked to.
    evict_uninjected: bool = False

    # Reload controller
    reload_mode: ReloadMode = "http"
    reload_concurrency: int = 16
    reload_timeout_seconds: float = 2.0
    reload_retries: int = 5
    reload_connect_wait_seconds: float = 5.0

    # Leader election
    leader_election: bool = True
    lease_name: str = "stellar-peer-injector"
    lease_duration_seconds: float = 15.0
    lease_renew_seconds: float = 5.0
    identity: str = ""

    # Beyond one cluster: this cluster's name in `peers.json` (`cluster`) and in links;
    # how long an unreachable link's entries are kept before they are dropped.
    cluster_name: str = names.DEFAULT_CLUSTER_NAME
    link_stale_seconds: float = 600.0

    # Kubernetes connection: empty means in-cluster, then ~/.kube/config.
    kubeconfig: str = ""
    log_level: str = "INFO"

    # Names the webhook registers itself under (serve --local, certs install).
    webhook_config_name: str = "stellar-peer-injector"
    # Who injects: the webhook (TLS server, MutatingWebhookConfiguration), a
    # MutatingAdmissionPolicy the API server applies itself (Kubernetes 1.36+), or
    # auto: the policy where the API server serves it, else the webhook.
    admission_mode: AdmissionMode = "auto"
    # Policy mode: how often the leader checks the policy, its binding and that no
    # webhook configuration of ours is left (a deleted or edited policy comes back).
    policy_sync_seconds: float = 10.0
    service_name: str = "stellar-peer-injector"

    _image_regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            regex = re.compile(self.image_pattern)
        except re.error as exc:
            raise SettingsError(f"--image-pattern {self.image_pattern!r}: {exc}") from exc
        object.__setattr__(self, "_image_regex", regex)
        if self.reload_mode not in RELOAD_MODES:
            raise SettingsError(
                f"--reload-mode {self.reload_mode!r}: expected one of {', '.join(RELOAD_MODES)}"
            )
        if self.cert_mode not in CERT_MODES:
            raise SettingsError(
                f"--cert-mode {self.cert_mode!r}: expected one of {', '.join(CERT_MODES)}"
            )
        if self.admission_mode not in ADMISSION_MODES:
            raise SettingsError(
                f"--admission-mode {self.admission_mode!r}: expected one of "
                f"{', '.join(ADMISSION_MODES)}"
            )
        _check_limits(self)
        if self.lease_renew_seconds >= self.lease_duration_seconds:
            raise SettingsError(
                f"--lease-renew-seconds {self.lease_renew_seconds!r}: allowed below "
                f"--lease-duration-seconds ({self.lease_duration_seconds!r})"
            )
        if self.log_level.upper() not in LOG_LEVELS:
            raise SettingsError(
                f"--log-level {self.log_level!r}: allowed one of {', '.join(LOG_LEVELS)} (any case)"
            )
        if not is_dns_label(self.namespace):
            raise SettingsError(
                f"--namespace {self.namespace!r}: allowed a namespace name "
                "(lower-case letters, digits and '-', at most 63)"
            )
        if not is_dns_label(self.service_name):
            raise SettingsError(
                f"--service-name {self.service_name!r}: allowed a Service name "
                "(lower-case letters, digits and '-', at most 63)"
            )
        for name in ("lease_name", "webhook_config_name"):
            value = getattr(self, name)
            if not is_dns_name(value):
                raise SettingsError(
                    f"{_flag(name)} {value!r}: allowed an object name "
                    "(lower-case letters, digits, '-' and '.', at most 253)"
                )
        if not is_dns_label(self.cluster_name):
            raise SettingsError(
                f"--cluster-name {self.cluster_name!r}: allowed a cluster name "
                "(lower-case letters, digits and '-', at most 63)"
            )
        if self.default_network and not is_dns_label(self.default_network):
            raise SettingsError(
                f"--default-network {self.default_network!r}: allowed a network name "
                "(lower-case letters, digits and '-', at most 63)"
            )
        for text in self.static_peers:
            try:
                static_peer_text(text)
            except ValueError as exc:
                raise SettingsError(f"--static-peers: {exc}") from exc

    def image_matches(self, repository: str) -> bool:
        return self._image_regex.search(repository) is not None

    @classmethod
    def from_env(cls, environ: Mapping[str, str], argv: Sequence[str] = ()) -> Settings:
        """Build settings from `STELLAR_INJECTOR_*` variables, then flags over them: a seam
        for benchmark drivers and tests (the CLI parses its own flags: `from_namespace`)."""
        parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
        add_arguments(parser)
        args = parser.parse_args(list(argv))
        return cls.from_namespace(args, environ)

    @classmethod
    def from_namespace(cls, args: argparse.Namespace, environ: Mapping[str, str]) -> Settings:
        """Merge parsed flags (None when absent) over the environment, over defaults."""
        values: dict[str, Any] = {}
        for f in _public_fields():
            flag_value = getattr(args, f.name, None)
            env_value = environ.get(ENV_PREFIX + f.name.upper())
            if flag_value is not None:
                values[f.name] = flag_value
            elif env_value is not None:
                values[f.name] = _convert(f.name, f.type, env_value)
        return cls(**values)


def _public_fields() -> list[Any]:
    return [f for f in fields(Settings) if f.init]


def _convert(name: str, type_name: Any, raw: str) -> Any:
    """Turn one environment string into the field's type, or explain why not."""
    kind = str(type_name)
    try:
        if kind == "bool":
            return _parse_bool(raw)
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind.startswith("tuple"):
            return tuple(item.strip() for item in raw.split(",") if item.strip())
    except ValueError as exc:
        raise SettingsError(f"{ENV_PREFIX}{name.upper()}={raw!r}: {exc}") from exc
    return raw


def _parse_bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _help(f: Any) -> str:
    """One line: what the setting does, its variable and its default (argparse formats `%`)."""
    default = f.default if f.default not in ("", ()) else "(empty)"
    if isinstance(default, bool):
        default = "true" if default else "false"
    choices = f"; one of {', '.join(_CHOICES[f.name])}" if f.name in _CHOICES else ""
    text = f"{_HELP.get(f.name, '')}{choices} [{ENV_PREFIX}{f.name.upper()}, default {default}]"
    return text.replace("%", "%%")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare one flag per setting; absent flags stay None so the environment shows through."""
    for f in _public_fields():
        flag = "--" + f.name.replace("_", "-")
        kind = str(f.type)
        if kind == "bool":
            parser.add_argument(
                flag, dest=f.name, type=_parse_bool, default=None, metavar="BOOL", help=_help(f)
            )
        elif kind == "int":
            parser.add_argument(
                flag, dest=f.name, type=int, default=None, metavar="N", help=_help(f)
            )
        elif kind == "float":
            parser.add_argument(
                flag, dest=f.name, type=float, default=None, metavar="SECONDS", help=_help(f)
            )
        elif kind.startswith("tuple"):
            parser.add_argument(
                flag,
                dest=f.name,
                default=None,
                type=lambda raw: tuple(i.strip() for i in raw.split(",") if i.strip()),
                metavar="A,B",
                help=_help(f),
            )
        else:
            parser.add_argument(flag, dest=f.name, default=None, help=_help(f))
