"""Policy mode's pure parts: the rendered objects, the CEL text's pieces, and the mode in force.

That the API server turns the policy into the webhook's pod is the e2e tier's
(tests/e2e/test_policy_equivalence.py); these pin what can be checked without one.
"""

from __future__ import annotations

import json

import pytest

from webhook import names
from webhook.core.injection import hook, policy, policy_cel, policy_ops
from webhook.settings import Settings, SettingsError

SETTINGS = Settings()


def test_policy_scopes_pod_creates_in_enabled_namespaces_but_ours_and_kube_system() -> None:
    spec = policy.policy(Settings(namespace="injector"))["spec"]
    constraints = spec["matchConstraints"]
    assert constraints["resourceRules"][0]["operations"] == ["CREATE"]
    assert constraints["resourceRules"][0]["resources"] == ["pods"]
    selector = constraints["namespaceSelector"]
    assert selector["matchLabels"] == {names.ENABLE_LABEL: names.ENABLE_VALUE}
    assert {
        "key": "kubernetes.io/metadata.name",
        "operator": "NotIn",
        "values": ["injector", "kube-system"],
    } in selector["matchExpressions"]
    assert spec["reinvocationPolicy"] == "IfNeeded"
    assert spec["failurePolicy"] == "Ignore"
    assert spec["mutations"][0]["patchType"] == "JSONPatch"


def test_binding_names_the_policy() -> None:
    settings = Settings(webhook_config_name="injector-a")
    assert policy.binding(settings)["spec"] == {"policyName": "injector-a"}
    assert policy.policy(settings)["metadata"]["name"] == "injector-a"


def test_settings_reach_the_cel_text() -> None:
    settings = Settings(image_pattern=r"(^|/)my-core$", hook_timeout_seconds=77)
    text = json.dumps(policy.policy(settings)["spec"])
    assert json.dumps(policy_cel.lit(r"(^|/)my-core$"))[1:-1] in text
    assert "+ 77 ))" in text


def test_hook_script_parts_join_back_into_the_webhooks_script() -> None:
    expression = policy_cel.hook_script(SETTINGS)
    literal = expression.removesuffix(".join(string(variables.httpPort))")
    parts = json.loads(literal)
    for port in (11626, 11726):
        wanted = hook.poststart_command(
            http_port=port, timeout_seconds=SETTINGS.hook_timeout_seconds
        )[2]
        assert str(port).join(parts) == wanted


def test_cel_literals_refuse_what_they_cannot_write() -> None:
    assert policy_cel.lit("a'b\"c\\d\n") == '"a\'b\\"c\\\\d\\n"'
    with pytest.raises(ValueError, match="ASCII"):
        policy_cel.lit("é")


def test_variables_are_defined_before_use() -> None:
    seen: set[str] = set()
    for variable in policy_cel.variables(SETTINGS):
        for used in set(_used(variable["expression"])):
            assert used in seen, f"{variable['name']} reads variables.{used} before it is set"
        seen.add(variable["name"])
    for used in _used(policy_ops.mutation(SETTINGS)):
        assert used in seen


def _used(expression: str) -> list[str]:
    import re

    return re.findall(r"variables\.([A-Za-z0-9]+)", expression)


@pytest.mark.parametrize(
    ("setting", "served", "mode", "why"),
    [
        ("webhook", True, "webhook", "admission_mode is webhook"),
        ("policy", True, "policy", "admission_mode is policy"),
        ("policy", False, "policy", "does not serve"),
        ("auto", True, "policy", "serves"),
        ("auto", False, "webhook", "does not serve"),
        ("auto", None, "webhook", "did not answer"),
    ],
)
def test_active_mode_and_why(setting: str, served: bool | None, mode: str, why: str) -> None:
    chosen, reason = policy.active_mode(Settings(admission_mode=setting), served=served)  # type: ignore[arg-type]
    assert chosen == mode
    assert why in reason


def test_serves_policy_needs_both_resources() -> None:
    assert policy.serves_policy([policy.POLICY_RESOURCE, policy.BINDING_RESOURCE, "x"])
    assert not policy.serves_policy([policy.POLICY_RESOURCE])


def test_admission_mode_setting_is_checked() -> None:
    assert Settings().admission_mode == "auto"
    assert Settings.from_env({"STELLAR_INJECTOR_ADMISSION_MODE": "policy"}).admission_mode == (
        "policy"
    )
    with pytest.raises(SettingsError, match="--admission-mode 'both'"):
        Settings(admission_mode="both")  # type: ignore[arg-type]


def test_same_spec_ignores_server_defaults_but_not_our_fields() -> None:
    wanted = policy.policy(SETTINGS)
    read_back = json.loads(json.dumps(wanted))
    read_back["metadata"]["resourceVersion"] = "7"
    read_back["spec"]["matchConstraints"]["objectSelector"] = {}
    assert policy.same_spec(read_back, wanted)
    read_back["spec"]["variables"][0]["expression"] = "{}"
    assert not policy.same_spec(read_back, wanted)
    assert not policy.same_spec(None, wanted)


def test_a_refused_policy_is_reported_with_the_api_servers_message() -> None:
    from kubernetes.client.exceptions import ApiException

    from webhook.kube.api import describe_failure

    refused = ApiException(status=422, reason="Unprocessable Entity")
    refused.body = b'{"message": "spec.variables[8].expression: invalid matches argument"}'
    expected = "HTTP 422: spec.variables[8].expression: invalid matches argument"
    assert describe_failure(refused) == expected
    assert describe_failure(ApiException(status=500, reason="Internal")) == "HTTP 500: Internal"
    assert describe_failure(OSError("refused")) == "OSError: refused"


class _Answers:
    """A `Rest` stand-in for discovery: raises or returns what it was given."""

    def __init__(self, answer: object) -> None:
        self.answer = answer

    def get(self, url_path: str, **_: object) -> object:
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer


def test_discovery_says_served_not_served_or_unknown() -> None:
    import urllib3
    from kubernetes.client.exceptions import ApiException

    from webhook.controllers.admission_policy import discover

    listing = {"resources": [{"name": policy.POLICY_RESOURCE}, {"name": policy.BINDING_RESOURCE}]}
    assert discover(_Answers(listing)) is True  # type: ignore[arg-type]
    assert discover(_Answers({"resources": []})) is False  # type: ignore[arg-type]
    assert discover(_Answers(ApiException(status=404))) is False  # type: ignore[arg-type]
    assert discover(_Answers(ApiException(status=503))) is None  # type: ignore[arg-type]
    unreachable = urllib3.exceptions.MaxRetryError(None, "/apis", "connection refused")  # type: ignore[arg-type]
    assert discover(_Answers(unreachable)) is None  # type: ignore[arg-type]
