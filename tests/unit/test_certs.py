"""The webhook's CA and serving certificates, their files, and caBundle merging."""

from __future__ import annotations

import base64
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509

from certs import authority, files, install, rotation
from webhook.cli import certs as command
from webhook.settings import Settings


def test_serving_cert_is_signed_by_its_ca_and_not_by_another() -> None:
    ca = authority.make_ca()
    other = authority.make_ca()
    serving = authority.make_serving(ca=ca, dns_names=["svc.ns.svc"])
    assert authority.signed_by(serving.cert_pem, ca.cert_pem)
    assert not authority.signed_by(serving.cert_pem, other.cert_pem)


def test_ca_may_sign_certificates_and_leaf_may_not() -> None:
    ca = x509.load_pem_x509_certificate(authority.make_ca().cert_pem)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign is True
    leaf_pem = authority.make_serving(ca=authority.make_ca(), dns_names=["a"]).cert_pem
    leaf = x509.load_pem_x509_certificate(leaf_pem)
    assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False


def test_serving_cert_sans_cover_service_names_and_ips() -> None:
    dns = authority.service_dns_names(service="stellar-peer-injector", namespace="stellar-system")
    assert dns == [
        "stellar-peer-injector",
        "stellar-peer-injector.stellar-system",
        "stellar-peer-injector.stellar-system.svc",
        "stellar-peer-injector.stellar-system.svc.cluster.local",
    ]
    serving = authority.make_serving(ca=authority.make_ca(), dns_names=dns, ips=["127.0.0.1"])
    assert authority.san_names(serving.cert_pem) == (dns, ["127.0.0.1"])


def test_remaining_validity_and_needs_renewal() -> None:
    ca = authority.make_ca()
    serving = authority.make_serving(ca=ca, dns_names=["a"], validity=timedelta(days=10))
    left = authority.remaining_validity(serving.cert_pem)
    assert timedelta(days=9, hours=23) < left <= timedelta(days=10)
    assert not authority.needs_renewal(serving.cert_pem, before=timedelta(days=5))
    assert authority.needs_renewal(serving.cert_pem, before=timedelta(days=11))
    later = datetime.now(UTC) + timedelta(days=6)
    assert authority.needs_renewal(serving.cert_pem, before=timedelta(days=5), now=later)
    expired = datetime.now(UTC) + timedelta(days=11)
    assert authority.remaining_validity(serving.cert_pem, now=expired) < timedelta(0)


def test_merge_ca_bundle_keeps_new_then_previous_at_most_two() -> None:
    first, second, third = (authority.make_ca().cert_pem for _ in range(3))
    assert authority.merge_ca_bundle(new_ca=first, previous=b"") == first
    assert authority.merge_ca_bundle(new_ca=first, previous=first) == first
    assert authority.merge_ca_bundle(new_ca=second, previous=first) == second + first
    merged = authority.merge_ca_bundle(new_ca=third, previous=second + first)
    assert authority.split_pem_bundle(merged) == [third, second]
    assert authority.merge_ca_bundle(new_ca=second, previous=second + first) == second + first


def test_merge_ca_bundle_replaces_an_unreadable_bundle() -> None:
    ca = authority.make_ca().cert_pem
    assert authority.merge_ca_bundle(new_ca=ca, previous=b"garbage") == ca


def test_write_bundle_keys_are_0600_and_read_back(tmp_path: Path) -> None:
    ca = authority.make_ca()
    serving = authority.make_serving(ca=ca, dns_names=["a"])
    bundle = files.Bundle(ca_cert=ca.cert_pem, serving=serving, ca_key=ca.key_pem)
    files.write_bundle(tmp_path / "out", bundle)
    folder = tmp_path / "out"
    assert stat.S_IMODE((folder / files.TLS_KEY).stat().st_mode) == 0o600
    assert stat.S_IMODE((folder / files.CA_KEY).stat().st_mode) == 0o600
    assert stat.S_IMODE((folder / files.TLS_CERT).stat().st_mode) == 0o644
    assert files.read_bundle(folder) == bundle
    assert sorted(p.name for p in folder.iterdir()) == ["ca.crt", "ca.key", "tls.crt", "tls.key"]


def test_write_bundle_without_ca_key_writes_three_files(tmp_path: Path) -> None:
    ca = authority.make_ca()
    bundle = files.Bundle(
        ca_cert=ca.cert_pem, serving=authority.make_serving(ca=ca, dns_names=["a"])
    )
    files.write_bundle(tmp_path, bundle)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ca.crt", "tls.crt", "tls.key"]
    assert files.read_bundle(tmp_path).ca_key is None


DNS = ["svc", "svc.ns", "svc.ns.svc", "svc.ns.svc.cluster.local"]


def test_refresh_creates_when_nothing_exists() -> None:
    bundle, action = rotation.refresh(None, dns=DNS, ips=[])
    assert action == "created"
    assert bundle.ca_key is not None
    assert authority.signed_by(bundle.serving.cert_pem, bundle.ca_cert)


def test_refresh_keeps_a_fitting_bundle() -> None:
    bundle, _ = rotation.refresh(None, dns=DNS, ips=["10.0.0.1"])
    again, action = rotation.refresh(bundle, dns=DNS, ips=["10.0.0.1"])
    assert action == "unchanged"
    assert again is bundle


def test_refresh_renews_from_same_ca_when_due_or_names_change() -> None:
    short, _ = rotation.refresh(None, dns=DNS, ips=[], validity=timedelta(days=3))
    renewed, action = rotation.refresh(short, dns=DNS, ips=[], renew_before=timedelta(days=7))
    assert action == "renewed"
    assert renewed.ca_cert == short.ca_cert
    assert renewed.serving.cert_pem != short.serving.cert_pem
    assert authority.remaining_validity(renewed.serving.cert_pem) > timedelta(days=300)
    wider, action = rotation.refresh(renewed, dns=[*DNS, "extra.example"], ips=[])
    assert action == "renewed"
    assert "extra.example" in authority.san_names(wider.serving.cert_pem)[0]


def test_refresh_starts_over_without_ca_key() -> None:
    bundle, _ = rotation.refresh(None, dns=DNS, ips=[], validity=timedelta(days=3))
    keyless = files.Bundle(ca_cert=bundle.ca_cert, serving=bundle.serving)
    fresh, action = rotation.refresh(keyless, dns=DNS, ips=[], renew_before=timedelta(days=7))
    assert action == "created"
    assert fresh.ca_cert != bundle.ca_cert


def test_ca_bundle_ops_put_new_ca_first_and_skip_current() -> None:
    old, new = authority.make_ca().cert_pem, authority.make_ca().cert_pem
    configuration = {
        "webhooks": [
            {"name": "a.stellar.org", "clientConfig": {"caBundle": base64.b64encode(old).decode()}},
            {"name": "b.stellar.org", "clientConfig": {}},
        ]
    }
    ops = install.ca_bundle_ops(configuration, new_ca=new)
    assert ops[0] == {"op": "test", "path": "/webhooks/0/name", "value": "a.stellar.org"}
    assert base64.b64decode(ops[1]["value"]) == new + old
    assert ops[3]["path"] == "/webhooks/1/clientConfig/caBundle"
    assert base64.b64decode(ops[3]["value"]) == new
    current = {
        "webhooks": [
            {"name": "a", "clientConfig": {"caBundle": base64.b64encode(new + old).decode()}}
        ]
    }
    assert install.ca_bundle_ops(current, new_ca=new) == []


def test_secret_body_is_a_tls_secret() -> None:
    bundle, _ = rotation.refresh(None, dns=DNS, ips=[])
    body = install.secret_body(
        namespace="ops", secret=install.secret_name(Settings().service_name), bundle=bundle
    )
    assert body["type"] == "kubernetes.io/tls"
    assert body["metadata"] == {
        "name": "stellar-peer-injector-tls",
        "namespace": "ops",
        "labels": {"app.kubernetes.io/name": "stellar-peer-injector"},
    }
    assert sorted(body["data"]) == ["ca.crt", "ca.key", "tls.crt", "tls.key"]
    assert base64.b64decode(body["data"]["tls.key"]) == bundle.serving.key_pem


def test_generate_command_writes_and_keeps_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path / "certs")
    settings = Settings(namespace="ops", service_name="hook")
    assert (
        command.main(
            action="generate", out=out, dns=["extra"], ips=["127.0.0.1"], settings=settings
        )
        == 0
    )
    first = files.read_bundle(out)
    dns, ips = authority.san_names(first.serving.cert_pem)
    assert dns == ["hook", "hook.ops", "hook.ops.svc", "hook.ops.svc.cluster.local", "extra"]
    assert ips == ["127.0.0.1"]
    assert "created" in capsys.readouterr().out
    assert (
        command.main(
            action="generate", out=out, dns=["extra"], ips=["127.0.0.1"], settings=settings
        )
        == 0
    )
    assert files.read_bundle(out) == first
    assert "unchanged" in capsys.readouterr().out


def test_generate_command_refuses_bad_ip(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = command.main(
        action="generate", out=str(tmp_path), dns=[], ips=["not-an-ip"], settings=Settings()
    )
    assert code == 2
    assert "not an IP address" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_ca_bundle_ops_only_if_missing_leaves_a_bundle_that_trusts_the_ca() -> None:
    old, new = authority.make_ca().cert_pem, authority.make_ca().cert_pem
    both = {
        "webhooks": [
            {"name": "a", "clientConfig": {"caBundle": base64.b64encode(new + old).decode()}}
        ]
    }
    # A replica still serving the older CA must not reorder the two (and push the newer out later).
    assert install.ca_bundle_ops(both, new_ca=old, only_if_missing=True) == []
    assert install.ca_bundle_ops(both, new_ca=old) != []
    empty = {"webhooks": [{"name": "a", "clientConfig": {}}]}
    ops = install.ca_bundle_ops(empty, new_ca=new, only_if_missing=True)
    assert base64.b64decode(ops[1]["value"]) == new


def test_usable_is_valid_now_from_its_ca_with_every_name() -> None:
    ca = authority.make_ca()
    pair = authority.make_serving(ca=ca, dns_names=["a.svc"], validity=timedelta(days=1))
    bundle = files.Bundle(ca_cert=ca.cert_pem, serving=pair)
    assert rotation.usable(bundle, dns=["a.svc"], ips=[])  # due for renewal, still servable
    assert not rotation.usable(bundle, dns=["b.svc"], ips=[])
    other = files.Bundle(ca_cert=authority.make_ca().cert_pem, serving=pair)
    assert not rotation.usable(other, dns=["a.svc"], ips=[])
