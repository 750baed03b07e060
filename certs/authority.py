"""The webhook's own certificate authority and the serving certificates it signs.

The API server trusts the webhook through the `caBundle` we give it, so a small
private CA is enough: ECDSA P-256, a CA certificate that may only sign
certificates, and serving certificates for the Service's DNS names (and IPs
for local use). Everything goes in and out as PEM bytes; no files here.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_CA_VALIDITY = timedelta(days=3650)
DEFAULT_SERVING_VALIDITY = timedelta(days=365)
# Tolerate clocks that run a little behind ours.
BACKDATE = timedelta(minutes=5)


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key, both PEM."""

    cert_pem: bytes
    key_pem: bytes


def service_dns_names(*, service: str, namespace: str) -> list[str]:
    """Every name the API server may use to reach a Service."""
    return [
        service,
        f"{service}.{namespace}",
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.cluster.local",
    ]


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def make_ca(
    *, common_name: str = "stellar-peer-injector-ca", validity: timedelta = DEFAULT_CA_VALIDITY
) -> KeyPair:
    """A self-signed CA that can sign certificates and nothing else."""
    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return KeyPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def make_serving(
    *,
    ca: KeyPair,
    dns_names: list[str],
    ips: list[str] | None = None,
    validity: timedelta = DEFAULT_SERVING_VALIDITY,
) -> KeyPair:
    """A TLS server certificate for `dns_names` and `ips`, signed by `ca`."""
    if not dns_names and not ips:
        raise ValueError("a serving certificate needs at least one DNS name or IP")
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
    ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError("the CA key must be an ECDSA key")
    key = _new_key()
    sans: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips or []]
    common_name = dns_names[0] if dns_names else (ips or [""])[0]
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return KeyPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def not_after(cert_pem: bytes) -> datetime:
    return x509.load_pem_x509_certificate(cert_pem).not_valid_after_utc


def remaining_validity(cert_pem: bytes, *, now: datetime | None = None) -> timedelta:
    """Time left before the certificate expires (negative once it has)."""
    return not_after(cert_pem) - (now or datetime.now(UTC))


def needs_renewal(cert_pem: bytes, *, before: timedelta, now: datetime | None = None) -> bool:
    return remaining_validity(cert_pem, now=now) <= before


def san_names(cert_pem: bytes) -> tuple[list[str], list[str]]:
    """The certificate's (DNS names, IP addresses)."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [], []
    dns = sans.get_values_for_type(x509.DNSName)
    ips = [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)]
    return dns, ips


def signed_by(cert_pem: bytes, ca_cert_pem: bytes) -> bool:
    """True when `ca_cert_pem` issued `cert_pem` (signature and issuer name check out)."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def split_pem_bundle(bundle: bytes) -> list[bytes]:
    """The certificates of a PEM bundle, each as its own PEM block."""
    return [
        cert.public_bytes(serialization.Encoding.PEM)
        for cert in x509.load_pem_x509_certificates(bundle)
    ]


def merge_ca_bundle(*, new_ca: bytes, previous: bytes, keep: int = 2) -> bytes:
    """New CA first, then the CAs already trusted, de-duplicated, at most `keep`.

    Keeping the previous CA lets pods still serving the old certificate be
    trusted until they reload the new one.
    """
    try:
        old = split_pem_bundle(previous) if previous.strip() else []
    except ValueError:
        old = []  # an unreadable old bundle is replaced, not kept
    unique: list[bytes] = []
    for cert in split_pem_bundle(new_ca) + old:
        if cert not in unique:
            unique.append(cert)
    return b"".join(unique[:keep])
