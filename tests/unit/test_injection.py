"""The injection decision and mutation, on plain dicts."""

from __future__ import annotations

import json
from typing import Any

import jsonpatch
import pytest
from hypothesis import event, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from webhook import __version__, names
from webhook.core.injection import hook, mutation, patch
from webhook.core.pod import image_repository
from webhook.settings import Settings

SETTINGS = Settings()
IMAGE = "stellar/stellar-core:22.1.0-2385.b2a8ecb62.focal"


def pod(
    *,
    containers: list[dict[str, Any]] | None = None,
    labels: dict[str, Any] | None = None,
    annotations: dict[str, Any] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "v", "labels": labels or {}, "annotations": annotations or {}},
        "spec": {
            "containers": containers if containers is not None else [container()],
            **spec,
        },
    }


def container(name: str = "stellar-core", image: str = IMAGE, **fields: Any) -> dict[str, Any]:
    return {"name": name, "image": image, **fields}


def target(mutated: dict[str, Any], name: str = "stellar-core") -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in mutated["spec"]["containers"] if c["name"] == name)
    return found


def status(mutated: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(mutated["metadata"]["annotations"][names.STATUS_ANNOTATION])
    return found


def injected(p: dict[str, Any], settings: Settings = SETTINGS) -> dict[str, Any]:
    decision = mutation.decide(p, settings=settings)
    assert decision.inject, decision
    return mutation.mutate(p, decision, settings=settings)


# decide: who is a validator


def test_decide_validator_by_image() -> None:
    decision = mutation.decide(pod(), settings=SETTINGS)
    assert decision == mutation.Decision(
        inject=True,
        reason="validator-image",
        container="stellar-core",
        peer_port=11625,
        http_port=11626,
    )


@pytest.mark.parametrize("value", ["validator", "Validator", "VALIDATOR"])
def test_decide_validator_by_label_any_case(value: str) -> None:
    p = pod(
        containers=[container("node", "example/other:1")], labels={names.NODE_TYPE_LABEL: value}
    )
    decision = mutation.decide(p, settings=SETTINGS)
    assert (decision.inject, decision.reason, decision.container) == (
        True,
        "validator-label",
        "node",
    )


def test_decide_label_watcher_is_not_a_validator() -> None:
    p = pod(
        containers=[container("node", "example/other:1")], labels={names.NODE_TYPE_LABEL: "watcher"}
    )
    assert mutation.decide(p, settings=SETTINGS).reason == "not-a-validator"


@pytest.mark.parametrize(
    ("image", "repository"),
    [
        ("stellar/stellar-core", "stellar/stellar-core"),
        ("stellar/stellar-core:21.0", "stellar/stellar-core"),
        ("stellar-core@sha256:abc", "stellar-core"),
        (
            "registry:5000/stellar/stellar-core:21.0@sha256:abc",
            "registry:5000/stellar/stellar-core",
        ),
        ("registry:5000/stellar/stellar-core", "registry:5000/stellar/stellar-core"),
        ("docker.io/library/busybox:1.36", "docker.io/library/busybox"),
        ("", ""),
    ],
)
def test_image_repository_strips_tag_and_digest_keeps_registry_port(
    image: str, repository: str
) -> None:
    assert image_repository(image) == repository


@pytest.mark.parametrize(
    ("image", "validator"),
    [
        ("registry:5000/stellar/stellar-core:21.0@sha256:abc", True),
        ("stellar-core:latest", True),
        ("stellar/stellar-core-exporter:1", False),
        ("stellar/not-stellar-core:1", False),
        ("registry:5000/stellar-core-mirror/busybox:stellar-core", False),
    ],
)
def test_decide_matches_image_repository_not_tag(image: str, validator: bool) -> None:
    decision = mutation.decide(pod(containers=[container("c", image)]), settings=SETTINGS)
    assert decision.inject is validator


def test_decide_image_pattern_is_configurable() -> None:
    custom = Settings(image_pattern=r"(^|/)my-core$")
    p = pod(containers=[container("c", "example/my-core:1")])
    assert mutation.decide(p, settings=custom).reason == "validator-image"
    assert mutation.decide(pod(), settings=custom).reason == "not-a-validator"


def test_decide_init_container_image_does_not_make_a_validator() -> None:
    p = pod(containers=[container("app", "busybox")], initContainers=[container("init", IMAGE)])
    assert mutation.decide(p, settings=SETTINGS).reason == "not-a-validator"


# decide: order of precedence


@pytest.mark.parametrize("value", ["false", "False", " FALSE "])
def test_decide_opted_out(value: str) -> None:
    p = pod(
        labels={names.NODE_TYPE_LABEL: "validator"}, annotations={names.INJECT_ANNOTATION: value}
    )
    assert mutation.decide(p, settings=SETTINGS).reason == "opted-out"


def test_decide_opt_in_annotation_does_not_force_a_non_validator() -> None:
    p = pod(containers=[container("c", "busybox")], annotations={names.INJECT_ANNOTATION: "true"})
    assert mutation.decide(p, settings=SETTINGS).reason == "not-a-validator"


def test_decide_opted_out_wins_over_already_injected() -> None:
    done = injected(pod())
    done["metadata"]["annotations"][names.INJECT_ANNOTATION] = "false"
    assert mutation.decide(done, settings=SETTINGS).reason == "opted-out"


def test_decide_already_injected_at_this_version() -> None:
    done = injected(pod())
    assert mutation.decide(done, settings=SETTINGS).reason == "already-injected"
    assert mutation.patch_for(done, settings=SETTINGS)[1] == []


def test_decide_not_a_pod() -> None:
    assert mutation.decide({"kind": "Service"}, settings=SETTINGS).reason == "not-a-pod"
    assert mutation.decide([], settings=SETTINGS).reason == "not-a-pod"  # type: ignore[arg-type]


def test_decide_template_without_kind_counts_as_pod() -> None:
    template = pod()
    del template["kind"], template["apiVersion"]
    assert mutation.decide(template, settings=SETTINGS).inject


@pytest.mark.parametrize("spec", [{}, {"containers": []}, {"containers": None}, None])
def test_decide_no_containers(spec: Any) -> None:
    p = {"kind": "Pod", "metadata": {"labels": {names.NODE_TYPE_LABEL: "validator"}}, "spec": spec}
    assert mutation.decide(p, settings=SETTINGS).reason == "no-containers"


def test_decide_inject_container_annotation_picks_target() -> None:
    p = pod(
        containers=[container("stellar-core"), container("sidecar", "busybox")],
        annotations={names.CONTAINER_ANNOTATION: "sidecar"},
    )
    assert mutation.decide(p, settings=SETTINGS).container == "sidecar"


def test_decide_inject_container_annotation_naming_nothing_skips() -> None:
    p = pod(annotations={names.CONTAINER_ANNOTATION: "nope"})
    assert mutation.decide(p, settings=SETTINGS).reason == "container-not-found"


def test_decide_inject_container_annotation_cannot_name_init_container() -> None:
    p = pod(initContainers=[container("init")], annotations={names.CONTAINER_ANNOTATION: "init"})
    assert mutation.decide(p, settings=SETTINGS).reason == "container-not-found"


def test_decide_targets_first_matching_container_then_first_container() -> None:
    matching = pod(containers=[container("exporter", "prom/exporter"), container("core")])
    assert mutation.decide(matching, settings=SETTINGS).container == "core"
    by_label = pod(
        containers=[container("a", "busybox"), container("b", "busybox")],
        labels={names.NODE_TYPE_LABEL: "validator"},
    )
    assert mutation.decide(by_label, settings=SETTINGS).container == "a"


# decide: ports


def test_decide_named_ports_of_target_container() -> None:
    ports = [
        {"name": "http", "containerPort": 8080},
        {"name": "peer", "containerPort": 12000},
    ]
    p = pod(containers=[container(ports=ports)], annotations={names.PEER_PORT_ANNOTATION: "1"})
    decision = mutation.decide(p, settings=SETTINGS)
    assert (decision.peer_port, decision.http_port) == (12000, 8080)


def test_decide_ports_of_other_containers_are_ignored() -> None:
    other = container("exporter", "busybox", ports=[{"name": "peer", "containerPort": 1}])
    decision = mutation.decide(pod(containers=[container(), other]), settings=SETTINGS)
    assert decision.peer_port == 11625


@pytest.mark.parametrize(
    ("value", "port"),
    [
        ("11700", 11700),
        (" 11700 ", 11700),
        (11700, 11700),
        ("0", 11625),
        ("65536", 11625),
        ("abc", 11625),
        ("-5", 11625),
        ("", 11625),
        (True, 11625),
        ("\uff11\uff12", 11625),  # fullwidth digits are digits to str.isdigit
    ],
)
def test_decide_peer_port_annotation_validated(value: Any, port: int) -> None:
    p = pod(annotations={names.PEER_PORT_ANNOTATION: value})
    assert mutation.decide(p, settings=SETTINGS).peer_port == port


def test_decide_invalid_named_port_falls_back() -> None:
    ports = [{"name": "peer", "containerPort": "x"}, {"name": "http", "containerPort": 70000}]
    p = pod(containers=[container(ports=ports)], annotations={names.PEER_PORT_ANNOTATION: "11700"})
    decision = mutation.decide(p, settings=SETTINGS)
    assert (decision.peer_port, decision.http_port) == (11700, 11626)


# decide: odd specs never raise


@pytest.mark.parametrize(
    "odd",
    [
        {"kind": "Pod", "spec": {"containers": "stellar-core"}},
        {"kind": "Pod", "spec": {"containers": [["stellar-core"]]}},
        {"kind": "Pod", "spec": {"containers": [{"name": "c", "image": IMAGE, "ports": [1]}]}},
        {"kind": "Pod", "spec": {"containers": [{"name": "c", "image": 5}]}},
        {"kind": "Pod", "spec": {"containers": [{"image": IMAGE}]}},
        {"kind": "Pod", "spec": {"containers": [{"name": "c", "image": IMAGE, "env": {}}]}},
        {"kind": "Pod", "spec": {"containers": [{"name": "c", "lifecycle": []}]}},
        {"kind": "Pod", "spec": {"containers": [{"name": "c"}], "volumes": "x"}},
        {"kind": "Pod", "metadata": "x", "spec": {"containers": [{"name": "c"}]}},
        {"kind": "Pod", "metadata": {"labels": ["a"]}, "spec": {"containers": [{"name": "c"}]}},
        {"kind": "Pod", "spec": "x"},
    ],
)
def test_decide_malformed_pods(odd: dict[str, Any]) -> None:
    decision, ops = mutation.patch_for(odd, settings=SETTINGS)
    assert (decision.inject, decision.reason, ops) == (False, "malformed-pod", [])


def test_decide_null_labels_and_annotations_are_fine() -> None:
    p = pod()
    p["metadata"]["labels"] = None
    p["metadata"]["annotations"] = None
    mutated = injected(p)
    assert mutated["metadata"]["labels"] == {names.INJECTED_LABEL: "true"}
    assert names.STATUS_ANNOTATION in mutated["metadata"]["annotations"]


ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=12,
)
VALUES = ANY_JSON | st.sampled_from([IMAGE, "validator", "peer", "http", "false", "11625"])


def mostly(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Usually `good`, sometimes any JSON: deep enough to reach mutate, odd enough to hurt."""
    return st.sampled_from([good] * 9 + [ANY_JSON]).flatmap(lambda chosen: chosen)


def maybe_list(item: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return mostly(st.none() | st.lists(mostly(item), max_size=3))


PORT = st.fixed_dictionaries({"name": VALUES, "containerPort": VALUES})
ENTRY = st.fixed_dictionaries(
    {"name": st.sampled_from([names.ENV_PEERS, names.VOLUME_NAME, "A"]) | VALUES},
    optional={
        "value": VALUES,
        "mountPath": st.just(names.MOUNT_PATH) | VALUES,
        "valueFrom": ANY_JSON,
    },
)
CONTAINER = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["stellar-core", "a", "b"]),
        "image": mostly(
            st.sampled_from([IMAGE, "busybox:1", "registry:5000/stellar-core@sha256:0"])
        ),
    },
    optional={
        "ports": maybe_list(PORT),
        "env": maybe_list(ENTRY),
        "volumeMounts": maybe_list(ENTRY),
        "lifecycle": mostly(
            st.none() | st.fixed_dictionaries({}, optional={"postStart": ANY_JSON})
        ),
        "envFrom": ANY_JSON,
    },
)
ODD_PODS = st.fixed_dictionaries(
    {
        "spec": mostly(
            st.fixed_dictionaries(
                {"containers": mostly(st.lists(mostly(CONTAINER), min_size=1, max_size=3))},
                optional={
                    "initContainers": ANY_JSON,
                    "volumes": maybe_list(
                        st.fixed_dictionaries(
                            {"name": st.just(names.VOLUME_NAME) | VALUES},
                            optional={
                                "configMap": st.just({"name": names.CONFIGMAP_NAME}) | ANY_JSON
                            },
                        )
                    ),
                },
            )
        ),
    },
    optional={
        "kind": mostly(st.just("Pod")),
        "metadata": mostly(
            st.fixed_dictionaries(
                {},
                optional={
                    "labels": mostly(
                        st.dictionaries(
                            st.sampled_from([names.NODE_TYPE_LABEL, names.INJECTED_LABEL]), VALUES
                        )
                    ),
                    "annotations": mostly(
                        st.dictionaries(
                            st.sampled_from(
                                [
                                    names.INJECT_ANNOTATION,
                                    names.CONTAINER_ANNOTATION,
                                    names.PEER_PORT_ANNOTATION,
                                    names.STATUS_ANNOTATION,
                                ]
                            ),
                            VALUES,
                        )
                    ),
                },
            )
        ),
    },
)


@hypothesis_settings(max_examples=400, deadline=None)
@given(odd=ODD_PODS)
def test_patch_for_never_raises_and_its_ops_apply(odd: dict[str, Any]) -> None:
    before = patch.clone(odd)
    decision, ops = mutation.patch_for(odd, settings=SETTINGS)
    event(decision.reason)
    assert patch.equal(odd, before), "the input must not be changed"
    if not decision.inject:
        assert ops == []
        return
    result = jsonpatch.apply_patch(odd, ops)
    assert patch.equal(result, mutation.mutate(odd, decision, settings=SETTINGS))
    assert result["metadata"]["labels"][names.INJECTED_LABEL] == "true"
    assert mutation.decide(result, settings=SETTINGS).reason in ("already-injected", "opted-out")


# mutate: what is added


def test_mutate_adds_volume_mount_env_hook_label_status() -> None:
    mutated = injected(pod(containers=[container(ports=[{"name": "http", "containerPort": 9999}])]))
    assert mutated["spec"]["volumes"] == [
        {"name": "stellar-peers", "configMap": {"name": "stellar-peers", "optional": True}}
    ]
    core = target(mutated)
    assert core["volumeMounts"] == [
        {"name": "stellar-peers", "mountPath": "/etc/stellar/peers", "readOnly": True}
    ]
    assert "subPath" not in core["volumeMounts"][0]
    assert core["env"] == [
        {"name": "STELLAR_PEERS_FILE", "value": "/etc/stellar/peers/peers.txt"},
        {
            "name": "STELLAR_PEERS",
            "valueFrom": {
                "configMapKeyRef": {"name": "stellar-peers", "key": "peers.csv", "optional": True}
            },
        },
        {
            "name": "STELLAR_PEER_COUNT",
            "valueFrom": {
                "configMapKeyRef": {"name": "stellar-peers", "key": "peer_count", "optional": True}
            },
        },
        {
            "name": "STELLAR_POD_IP",
            "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}},
        },
    ]
    assert core["lifecycle"]["postStart"]["exec"]["command"] == hook.poststart_command(
        http_port=9999, timeout_seconds=SETTINGS.hook_timeout_seconds
    )
    assert mutated["metadata"]["labels"][names.INJECTED_LABEL] == "true"
    assert status(mutated) == {
        "version": __version__,
        "container": "stellar-core",
        "added": {
            "volumes": ["stellar-peers"],
            "volumeMounts": ["/etc/stellar/peers"],
            "env": ["STELLAR_PEERS_FILE", "STELLAR_PEERS", "STELLAR_PEER_COUNT", "STELLAR_POD_IP"],
            "postStart": True,
            "label": True,
        },
        "skipped": [],
    }


def test_mutate_status_annotation_is_compact_json() -> None:
    raw = injected(pod())["metadata"]["annotations"][names.STATUS_ANNOTATION]
    assert ", " not in raw
    assert ": " not in raw
    assert json.loads(raw)["version"] == __version__


def test_mutate_hook_timeout_comes_from_settings() -> None:
    custom = Settings(hook_timeout_seconds=42)
    mutated = injected(pod(), custom)
    assert target(mutated)["lifecycle"]["postStart"]["exec"]["command"] == (
        hook.poststart_command(http_port=11626, timeout_seconds=42)
    )


def test_mutate_leaves_input_untouched_and_returns_a_deep_copy() -> None:
    original = pod(containers=[container(env=[{"name": "A", "value": "1"}])])
    snapshot = patch.clone(original)
    mutated = injected(original)
    assert original == snapshot
    target(mutated)["env"][0]["value"] = "changed"
    assert original["spec"]["containers"][0]["env"][0]["value"] == "1"


def test_mutate_with_skip_decision_changes_nothing() -> None:
    p = pod()
    skip = mutation.Decision(inject=False, reason="opted-out")
    assert mutation.mutate(p, skip, settings=SETTINGS) == p


def test_mutate_keeps_existing_items_and_appends_ours() -> None:
    p = pod(
        containers=[
            container(
                env=[{"name": "SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
                envFrom=[{"configMapRef": {"name": "core-config"}}],
                volumeMounts=[{"name": "data", "mountPath": "/data"}],
            )
        ],
        volumes=[{"name": "data", "emptyDir": {}}],
        labels={"app": "v"},
        annotations={"keep": "me"},
    )
    mutated = injected(p)
    core = target(mutated)
    assert core["env"][0]["name"] == "SECRET"
    assert [e["name"] for e in core["env"]][1:] == list(status(mutated)["added"]["env"])
    assert core["envFrom"] == [{"configMapRef": {"name": "core-config"}}]
    assert [m["name"] for m in core["volumeMounts"]] == ["data", "stellar-peers"]
    assert [v["name"] for v in mutated["spec"]["volumes"]] == ["data", "stellar-peers"]
    assert mutated["metadata"]["labels"]["app"] == "v"
    assert mutated["metadata"]["annotations"]["keep"] == "me"


def test_mutate_missing_metadata_and_null_lists() -> None:
    p = {
        "spec": {
            "containers": [container(env=None, volumeMounts=None, lifecycle=None)],
            "volumes": None,
        }
    }
    mutated = injected(p)
    assert len(target(mutated)["env"]) == 4
    assert len(mutated["spec"]["volumes"]) == 1
    assert "postStart" in target(mutated)["lifecycle"]
    assert mutated["metadata"]["labels"] == {names.INJECTED_LABEL: "true"}


def test_mutate_generate_name_only() -> None:
    p = pod()
    p["metadata"] = {"generateName": "validator-"}
    mutated = injected(p)
    assert "name" not in mutated["metadata"]
    assert mutated["metadata"]["generateName"] == "validator-"


def test_mutate_host_network_pod_is_injected_the_same() -> None:
    mutated = injected(pod(hostNetwork=True))
    plain = injected(pod())
    assert mutated["spec"]["hostNetwork"] is True
    mutated["spec"].pop("hostNetwork")
    assert mutated == plain


def test_mutate_touches_only_target_container_never_init() -> None:
    init = container("init", IMAGE, command=["stellar-core", "new-db"])
    other = container("exporter", "prom/exporter")
    p = pod(containers=[other, container()], initContainers=[init])
    mutated = injected(p)
    assert mutated["spec"]["initContainers"] == [init]
    assert mutated["spec"]["containers"][0] == other
    assert "postStart" in target(mutated)["lifecycle"]


# mutate: collisions are skipped and recorded


def skipped(mutated: dict[str, Any]) -> dict[str, str]:
    return {s["item"]: s["reason"] for s in status(mutated)["skipped"]}


def test_mutate_own_poststart_is_kept() -> None:
    own = {
        "postStart": {"exec": {"command": ["echo", "mine"]}},
        "preStop": {"sleep": {"seconds": 1}},
    }
    mutated = injected(pod(containers=[container(lifecycle=own)]))
    assert target(mutated)["lifecycle"] == own
    assert status(mutated)["added"]["postStart"] is False
    assert skipped(mutated) == {"postStart": "has-own-poststart"}


def test_mutate_lifecycle_with_only_prestop_gets_our_hook() -> None:
    mutated = injected(
        pod(containers=[container(lifecycle={"preStop": {"sleep": {"seconds": 1}}})])
    )
    assert set(target(mutated)["lifecycle"]) == {"preStop", "postStart"}


def test_mutate_foreign_volume_named_stellar_peers_is_neither_replaced_nor_mounted() -> None:
    foreign = {"name": "stellar-peers", "emptyDir": {}}
    mutated = injected(pod(volumes=[foreign]))
    assert mutated["spec"]["volumes"] == [foreign]
    assert "volumeMounts" not in target(mutated)
    assert skipped(mutated) == {
        "volume:stellar-peers": "name-taken",
        "volumeMount:/etc/stellar/peers": "volume-not-ours",
    }


def test_mutate_our_volume_already_present_is_still_mounted() -> None:
    ours = {"name": "stellar-peers", "configMap": {"name": "stellar-peers"}}
    mutated = injected(pod(volumes=[ours]))
    assert mutated["spec"]["volumes"] == [ours]
    assert target(mutated)["volumeMounts"][0]["name"] == "stellar-peers"
    assert skipped(mutated) == {"volume:stellar-peers": "already-present"}


def test_mutate_mount_path_taken_by_another_volume() -> None:
    mount = {"name": "other", "mountPath": "/etc/stellar/peers/"}
    mutated = injected(pod(containers=[container(volumeMounts=[mount])]))
    assert target(mutated)["volumeMounts"] == [mount]
    assert "volumes" not in mutated["spec"], "a volume nothing mounts is not added"
    assert skipped(mutated) == {
        "volume:stellar-peers": "not-mounted",
        "volumeMount:/etc/stellar/peers": "path-taken",
    }


def test_mutate_volume_already_mounted_elsewhere() -> None:
    mount = {"name": "stellar-peers", "mountPath": "/peers"}
    mutated = injected(pod(containers=[container(volumeMounts=[mount])]))
    assert target(mutated)["volumeMounts"] == [mount]
    assert skipped(mutated) == {"volumeMount:/etc/stellar/peers": "volume-mounted-elsewhere"}


def test_mutate_env_collisions_keep_user_values() -> None:
    env = [
        {"name": "STELLAR_PEERS", "value": "1.2.3.4:11625"},
        {
            "name": "STELLAR_POD_IP",
            "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}},
        },
    ]
    mutated = injected(pod(containers=[container(env=env)]))
    core = target(mutated)
    assert core["env"][:2] == env
    assert [e["name"] for e in core["env"][2:]] == ["STELLAR_PEERS_FILE", "STELLAR_PEER_COUNT"]
    assert skipped(mutated) == {
        "env:STELLAR_PEERS": "name-taken",
        "env:STELLAR_POD_IP": "already-present",
    }


def test_mutate_label_already_true_is_not_recorded_as_added() -> None:
    mutated = injected(pod(labels={names.INJECTED_LABEL: "true"}))
    assert status(mutated)["added"]["label"] is False


# re-invocation


def test_patch_for_twice_is_a_no_op() -> None:
    _, ops = mutation.patch_for(pod(), settings=SETTINGS)
    once = jsonpatch.apply_patch(pod(), ops)
    decision, again = mutation.patch_for(once, settings=SETTINGS)
    assert ops
    assert again == []
    assert decision.reason == "already-injected"


def old_version(mutated: dict[str, Any]) -> dict[str, Any]:
    record = status(mutated)
    record["version"] = "0.0.1"
    mutated["metadata"]["annotations"][names.STATUS_ANNOTATION] = json.dumps(record)
    return mutated


def test_old_version_is_stripped_and_reinjected() -> None:
    original = pod(containers=[container(env=[{"name": "A", "value": "1"}])], volumes=[])
    fresh = injected(original)
    stale = old_version(injected(original))
    target(stale)["lifecycle"]["postStart"]["exec"]["command"] = ["old", "hook"]
    decision = mutation.decide(stale, settings=SETTINGS)
    assert decision.inject
    assert mutation.mutate(stale, decision, settings=SETTINGS) == fresh


def test_old_version_with_moved_target_container_is_cleaned() -> None:
    original = pod(containers=[container(), container("other", "busybox")])
    stale = old_version(injected(original))
    stale["metadata"]["annotations"][names.CONTAINER_ANNOTATION] = "other"
    mutated = injected(stale)
    assert "lifecycle" not in target(mutated)
    assert target(mutated)["env"] == []
    assert [m["name"] for m in target(mutated, "other")["volumeMounts"]] == ["stellar-peers"]
    assert status(mutated)["container"] == "other"


def test_old_version_keeps_what_it_did_not_add() -> None:
    own = {"postStart": {"exec": {"command": ["mine"]}}}
    stale = old_version(
        injected(pod(containers=[container(lifecycle=own)], labels={names.INJECTED_LABEL: "true"}))
    )
    mutated = injected(stale)
    assert target(mutated)["lifecycle"] == own
    assert mutated["metadata"]["labels"][names.INJECTED_LABEL] == "true"


@pytest.mark.parametrize(
    "record",
    [
        "not json",
        "[1]",
        '{"version": "0.0.1", "added": "x"}',
        '{"version": "0.0.1", "added": {"env": [1, null], "volumes": {}}}',
    ],
)
def test_unreadable_status_is_overwritten(record: str) -> None:
    mutated = injected(pod(annotations={names.STATUS_ANNOTATION: record}))
    assert status(mutated)["version"] == __version__
    assert len(target(mutated)["env"]) == 4


def test_patch_for_ops_turn_request_into_mutated_pod() -> None:
    p = pod(
        containers=[container(env=[{"name": "A", "value": "1"}])],
        annotations={"a/b": "c"},
        volumes=[{"name": "data", "emptyDir": {}}],
    )
    decision, ops = mutation.patch_for(p, settings=SETTINGS)
    assert jsonpatch.apply_patch(p, ops) == mutation.mutate(p, decision, settings=SETTINGS)
    assert {
        "op": "add",
        "path": "/metadata/labels/stellar.org~1peers-injected",
        "value": "true",
    } in ops


def test_patch_for_skip_has_no_ops() -> None:
    p = pod(containers=[container("c", "busybox")])
    decision, ops = mutation.patch_for(p, settings=SETTINGS)
    assert (decision.inject, ops) == (False, [])


def test_patch_for_pod_with_a_deeply_nested_field() -> None:
    deep: Any = "leaf"
    for _ in range(2000):
        deep = {"x": deep}
    p = pod(annotations={"odd": deep})
    decision, ops = mutation.patch_for(p, settings=SETTINGS)
    assert decision.inject
    result = patch.apply(p, ops)
    assert result["metadata"]["labels"][names.INJECTED_LABEL] == "true"
    assert patch.equal(result["metadata"]["annotations"]["odd"], deep)


def test_patch_for_old_version_leaves_request_untouched() -> None:
    original = pod(
        containers=[container(env=[{"name": "A", "value": "1"}]), container("b", "busybox")],
        volumes=[{"name": "data", "emptyDir": {}}],
    )
    stale = old_version(injected(original))
    stale["metadata"]["annotations"][names.CONTAINER_ANNOTATION] = "b"
    snapshot = patch.clone(stale)
    decision, ops = mutation.patch_for(stale, settings=SETTINGS)
    assert patch.equal(stale, snapshot)
    assert jsonpatch.apply_patch(stale, ops) == mutation.mutate(stale, decision, settings=SETTINGS)
    assert decision.container == "b"
