"""Certificate renewal: what to do with the certificates we have.

`refresh` is the decision (keep, renew the serving certificate with the same
CA, or start over with a new CA); `certs.bootstrap` applies it to the
cluster's Secret from inside the service, `certs.install` from the CLI. The
server notices new files on its own and reloads them; a Secret volume is
refreshed in place by the kubelet.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final, Literal

from certs import authority, files

Action = Literal["unchanged", "renewed", "created"]

RENEW_BEFORE: Final = timedelta(days=30)
# A CA this close to expiry is replaced rather than used to sign more.
CA_RENEW_BEFORE: Final = timedelta(days=90)


def _serving_fits(
    bundle: files.Bundle, *, dns: list[str], ips: list[str], renew_before: timedelta
) -> bool:
    """The serving certificate is from this CA, names everything wanted, and is not due."""
    cert = bundle.serving.cert_pem
    have_dns, have_ips = authority.san_names(cert)
    return (
        authority.signed_by(cert, bundle.ca_cert)
        and set(dns) <= set(have_dns)
        and set(ips) <= set(have_ips)
        and not authority.needs_renewal(cert, before=renew_before)
    )


def usable(bundle: files.Bundle, *, dns: list[str], ips: list[str]) -> bool:
    """The serving certificate can be served now: from this CA, with every name, not expired."""
    return _serving_fits(bundle, dns=dns, ips=ips, renew_before=timedelta(0))


def refresh(
    existing: files.Bundle | None,
    *,
    dns: list[str],
    ips: list[str],
    renew_before: timedelta = RENEW_BEFORE,
    validity: timedelta = authority.DEFAULT_SERVING_VALIDITY,
) -> tuple[files.Bundle, Action]:
    """Keep what still fits; else renew from the same CA when we can; else start over."""
    if existing is not None and _serving_fits(
        existing, dns=dns, ips=ips, renew_before=renew_before
    ):
        return existing, "unchanged"
    if (
        existing is not None
        and existing.ca_key is not None
        and not authority.needs_renewal(existing.ca_cert, before=CA_RENEW_BEFORE)
    ):
        ca = authority.KeyPair(existing.ca_cert, existing.ca_key)
        serving = authority.make_serving(ca=ca, dns_names=dns, ips=ips, validity=validity)
        return files.Bundle(ca_cert=ca.cert_pem, serving=serving, ca_key=ca.key_pem), "renewed"
    ca = authority.make_ca()
    serving = authority.make_serving(ca=ca, dns_names=dns, ips=ips, validity=validity)
    return files.Bundle(ca_cert=ca.cert_pem, serving=serving, ca_key=ca.key_pem), "created"
