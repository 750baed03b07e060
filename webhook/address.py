"""Addresses and names as text: TCP port numbers, DNS labels and names, and the static
peer grammar (`host:port`).

At the bottom because settings validate `--static-peers`, namespaces, cluster and
network names with the same grammar the peer set and links use; it needs nothing but
the standard library.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Final

# An RFC 1123 label as Kubernetes writes names (namespaces, Services, a link's cluster)
# and as users write network names (`pubnet`): lower case, digits, '-', at most 63.
DNS_LABEL_PATTERN: Final = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
_DNS_LABEL = re.compile(DNS_LABEL_PATTERN)


def is_dns_label(text: Any) -> bool:
    """A lower-case RFC 1123 label (`stellar-system`, `pubnet`): the one check."""
    return isinstance(text, str) and _DNS_LABEL.fullmatch(text) is not None


def is_dns_name(text: Any) -> bool:
    """Lower-case RFC 1123 labels joined by dots, at most 253 characters: a Lease's or a
    webhook configuration's name, a home domain."""
    return (
        isinstance(text, str)
        and 0 < len(text) <= 253
        and all(is_dns_label(label) for label in text.split("."))
    )


def port_number(value: Any) -> int | None:
    """A TCP port from an int or a decimal string, or None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        value = int(text) if text.isascii() and text.isdigit() else None
    if isinstance(value, int) and 1 <= value <= 65535:
        return value
    return None


def static_address(text: str) -> tuple[str, int]:
    """Parse `host:port` (IPv4, RFC 1123 DNS name, or `[IPv6]:port`), or raise ValueError.

    These strings end up in shell commands and config files, so anything
    beyond the strict grammar is refused rather than cleaned up.
    """
    if not isinstance(text, str) or not text:
        raise ValueError("static peer: expected host:port, got an empty value")
    if text.startswith("["):
        host, sep, port_text = text[1:].partition("]:")
        if not sep:
            raise ValueError(f"static peer {text!r}: expected [IPv6]:port")
        try:
            ip = str(ipaddress.IPv6Address(host))
        except ValueError as exc:
            raise ValueError(f"static peer {text!r}: {host!r} is not an IPv6 address") from exc
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or not host:
            raise ValueError(f"static peer {text!r}: expected host:port")
        ip = _static_host(text, host)
    if not (port_text.isascii() and port_text.isdigit()) or port_number(port_text) is None:
        raise ValueError(f"static peer {text!r}: port must be a number from 1 to 65535")
    return ip, int(port_text)


def _static_host(text: str, host: str) -> str:
    labels = host.split(".")
    if all(label.isascii() and label.isdigit() for label in labels):
        try:
            return str(ipaddress.IPv4Address(host))
        except ValueError as exc:
            raise ValueError(f"static peer {text!r}: {host!r} is not an IPv4 address") from exc
    if not is_dns_name(host.lower()):
        raise ValueError(
            f"static peer {text!r}: {host!r} is neither an IPv4 address nor a DNS name"
        )
    return host.lower()


def static_peer_text(text: str) -> tuple[str, str]:
    """(`host:port`, network) from `host:port` or `host:port@network`, or raise ValueError.

    The network is a DNS label (`pubnet`, `testnet`, a private network's name);
    without one the peer's network is decided by the peer set (`webhook.core.peerset.networks`).
    """
    if not isinstance(text, str):
        raise ValueError("static peer: expected host:port[@network]")
    address, sep, network = text.partition("@")
    if sep and not is_dns_label(network):
        raise ValueError(
            f"static peer {text!r}: network {network!r} must be a DNS label "
            "(lower-case letters, digits and '-', at most 63)"
        )
    static_address(address)
    return address, network
