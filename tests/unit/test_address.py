"""Names as text: one DNS-label check for settings, networks, links and home domains."""

from __future__ import annotations

import pytest

from webhook import names
from webhook.address import is_dns_label, is_dns_name, static_address
from webhook.core.pod import label_network
from webhook.settings import Settings, SettingsError

LABELS = ["pubnet", "net-0a1b2c3d", "a", "a" * 63]
NOT_LABELS = ["", "Pubnet", "-a", "a-", "a.b", "a_b", "a" * 64, None, 7]


@pytest.mark.parametrize("text", LABELS)
def test_a_dns_label_is_accepted_everywhere(text: str) -> None:
    assert is_dns_label(text)
    assert Settings(cluster_name=text, default_network=text).cluster_name == text
    assert label_network({"metadata": {"labels": {names.NETWORK_LABEL: text}}}) == text


@pytest.mark.parametrize("text", NOT_LABELS)
def test_what_is_no_dns_label_is_refused_everywhere(text: object) -> None:
    assert not is_dns_label(text)
    assert label_network({"metadata": {"labels": {names.NETWORK_LABEL: text}}}) == ""
    if isinstance(text, str):
        with pytest.raises(SettingsError):
            Settings(cluster_name=text)


def test_a_dns_name_is_dotted_labels_of_at_most_253() -> None:
    assert is_dns_name("stellar-peer-injector.example.org")
    assert not is_dns_name("a..b")
    assert not is_dns_name(".".join(["a" * 63] * 4) + "a")
    assert static_address("Core.Example.org:11625") == ("core.example.org", 11625)
