"""ConfigMap sizes against the real API server: mirrors without peers.json past 512 KiB,
the canonical one with it gzipped in binaryData past 1 MiB, each change in an Event."""

from __future__ import annotations

import base64
import dataclasses
import gzip
from typing import Any

import orjson
from kubernetes import client

from tests.e2e import test_watcher
from tests.e2e.test_watcher import running
from tests.polling import wait_until
from webhook import names
from webhook.settings import Settings

# The peer watcher tests' fixtures: settings with a selector of their own, a namespace it selects.
settings = test_watcher.settings
app_namespace = test_watcher.app_namespace


def static_peers(count: int) -> tuple[str, ...]:
    return tuple(f"10.{i // 250}.{i % 250}.1:11625@testnet" for i in range(count))


def configmap(core: client.CoreV1Api, namespace: str) -> dict[str, Any]:
    """The raw ConfigMap (binaryData as the API carries it, base64)."""
    response = core.read_namespaced_config_map(
        names.CONFIGMAP_NAME, namespace, _preload_content=False
    )
    found: dict[str, Any] = orjson.loads(response.data)
    return found


def holds(core: client.CoreV1Api, namespace: str, count: int) -> dict[str, Any] | None:
    """The ConfigMap once its peers.txt lists `count` peers, else None."""
    try:
        found = configmap(core, namespace)
    except client.ApiException:
        return None
    text = (found.get("data") or {}).get(names.KEY_TXT, "")
    return found if text.count("\n") == count else None


def events(core: client.CoreV1Api, namespace: str, reason: str) -> list[Any]:
    found = core.list_namespaced_event(namespace, field_selector=f"reason={reason}").items
    return [e for e in found if e.involved_object.name == names.CONFIGMAP_NAME]


def test_mirrors_leave_out_peers_json_past_512_kib(
    core: client.CoreV1Api, settings: Settings, app_namespace: str
) -> None:
    count = 3600  # peers.json about 560 KB, every key about 900 KB
    settings = dataclasses.replace(settings, static_peers=static_peers(count))
    with running(settings) as watcher:
        canonical = wait_until(
            lambda: holds(core, settings.namespace, count),
            timeout=30,
            message="the canonical ConfigMap with every static peer",
        )
        mirror = wait_until(
            lambda: holds(core, app_namespace, count),
            timeout=30,
            message="the mirror with every static peer",
        )
        plain = canonical["data"][names.KEY_JSON]
        assert len(plain) > names.MIRROR_JSON_MAX_BYTES
        assert len(orjson.loads(plain)) == count
        assert plain == orjson.dumps(orjson.loads(plain)).decode()  # compact
        assert names.KEY_JSON not in mirror["data"]
        assert mirror["data"][names.KEY_TXT] == canonical["data"][names.KEY_TXT]
        assert mirror["data"]["peers-testnet.txt"] == canonical["data"][names.KEY_TXT]
        assert "binaryData" not in canonical
        told = wait_until(
            lambda: events(core, settings.namespace, "PeersJsonCanonicalOnly"),
            timeout=10,
            message="an Event saying the mirrors leave peers.json out",
        )
        assert told[0].involved_object.uid == canonical["metadata"]["uid"]
        assert watcher.metrics.configmap_write_bytes_total.labels(kind="mirror")._value.get() > 0


def test_past_1_mib_the_canonical_holds_peers_json_gzipped(
    core: client.CoreV1Api, settings: Settings, app_namespace: str
) -> None:
    count = 5000  # every key in plain text about 1.25 MB
    settings = dataclasses.replace(settings, static_peers=static_peers(count))
    # A key someone else added to the canonical ConfigMap stays.
    with running(dataclasses.replace(settings, static_peers=static_peers(10))):
        wait_until(lambda: holds(core, settings.namespace, 10), timeout=30, message="10 peers")
        core.patch_namespaced_config_map(
            names.CONFIGMAP_NAME, settings.namespace, {"data": {"notes.txt": "theirs"}}
        )
    with running(settings):
        canonical = wait_until(
            lambda: holds(core, settings.namespace, count),
            timeout=30,
            message="the canonical ConfigMap with every static peer",
        )
        mirror = wait_until(
            lambda: holds(core, app_namespace, count),
            timeout=30,
            message="the mirror with every static peer",
        )
        assert names.KEY_JSON not in canonical["data"]
        assert canonical["data"]["notes.txt"] == "theirs"
        packed = base64.b64decode(canonical["binaryData"][names.KEY_JSON_GZ])
        entries = orjson.loads(gzip.decompress(packed))
        assert len(entries) == count
        assert {e["peerString"] for e in entries} == set(canonical["data"][names.KEY_TXT].split())
        assert entries[0]["network"] == "testnet"
        assert names.KEY_JSON not in mirror["data"]
        assert "binaryData" not in mirror
        assert mirror["data"][names.KEY_TXT] == canonical["data"][names.KEY_TXT]
        told = wait_until(
            lambda: events(core, settings.namespace, "PeersJsonCompressed"),
            timeout=10,
            message="an Event saying peers.json moved to binaryData",
        )
        assert told[0].type == "Warning"
        assert "peers.json.gz" in told[0].message
        assert "gunzip" in told[0].message
    # Back under the limits: the plain key returns, the compressed one goes.
    with running(dataclasses.replace(settings, static_peers=static_peers(10))):
        back = wait_until(
            lambda: holds(core, settings.namespace, 10), timeout=30, message="10 peers again"
        )
        assert len(orjson.loads(back["data"][names.KEY_JSON])) == 10
        assert "binaryData" not in back
        assert back["data"]["notes.txt"] == "theirs"
        mirror = wait_until(
            lambda: holds(core, app_namespace, 10), timeout=30, message="the mirror again"
        )
        assert names.KEY_JSON in mirror["data"]
