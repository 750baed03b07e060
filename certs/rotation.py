"""Certificate renewal: what to do with the certificates we have, and a loop that does it.

`refresh` is the decision (keep, renew the serving certificate with the same
CA, or start over with a new CA); `renew_files` applies it to a folder
(`install.ensure` to the cluster's Secret); and `renewal_loop` runs either now
and then until stopped. The server notices new files on its own and reloads
them; a Secret volume is refreshed in place by the kubelet.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Final, Literal

from certs import authority, files

log = logging.getLogger(__name__)

Action = Literal["unchanged", "renewed", "created"]

RENEW_BEFORE: Final = timedelta(days=30)
# A CA this close to expiry is replaced rather than used to sign more.
CA_RENEW_BEFORE: Final = timedelta(days=90)
CHECK_INTERVAL_SECONDS: Final = 3600.0


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


def renew_files(
    directory: str | Path,
    *,
    dns: list[str],
    ips: list[str],
    renew_before: timedelta = RENEW_BEFORE,
    validity: timedelta = authority.DEFAULT_SERVING_VALIDITY,
) -> Action:
    """Renew the serving pair in `directory` from its own CA when it is due.

    A new CA is never made here: the API server would not trust it until the
    caBundle changes, which is `stellar-peers certs install`'s job.
    """
    try:
        existing = files.read_bundle(directory)
    except OSError as exc:
        log.error("certs.renewal_skipped", extra={"directory": str(directory), "error": str(exc)})
        return "unchanged"
    bundle, action = refresh(
        existing, dns=dns, ips=ips, renew_before=renew_before, validity=validity
    )
    if action == "created":
        log.error(
            "certs.renewal_needs_new_ca",
            extra={"directory": str(directory), "hint": "run stellar-peers certs install"},
        )
        return "unchanged"
    if action == "renewed":
        files.write_bundle(directory, bundle)
        expires = authority.not_after(bundle.serving.cert_pem).isoformat()
        log.info("certs.renewed", extra={"directory": str(directory), "not_after": expires})
    return action


async def renewal_loop(
    *,
    renew: Callable[[], Action],
    stop: asyncio.Event,
    interval: float = CHECK_INTERVAL_SECONDS,
) -> None:
    """Call `renew` (a blocking function, run in a thread) now and then until `stop` is set.

    `renew` is `renew_files` bound to a folder, or `install.ensure` bound to the
    cluster. A failed round is logged and retried at the next interval: an
    expiring certificate is no reason to stop serving.
    """
    while not stop.is_set():
        try:
            await asyncio.to_thread(renew)
        except Exception:
            log.exception("certs.renewal_failed")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(interval):
                await stop.wait()
