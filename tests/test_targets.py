"""Per-service targets: one path normalisation, bounded label overrides, trigger rules."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest

from receiver.decide.targets import (
    GitOpsTarget,
    LabelMatcher,
    ServiceTarget,
    TriggerRule,
    normalize_path,
    parse_rollback_config,
    path_is_within,
    resolve_target,
)
from tests.support import alert, payload

API = ServiceTarget(
    "api",
    "production",
    GitOpsTarget("acme/gitops", "k8s/api", "main"),
    "api-prod",
    allowed_paths=("k8s/shared/api-config",),
    allowed_apps=("api-prod-eu",),
)
SERVICES = {"api": API}


@pytest.mark.parametrize(
    "text, normal",
    [
        ("k8s/api", "k8s/api"),
        ("k8s/api/", "k8s/api"),
        ("k8s//api///", "k8s/api"),
        ("./k8s/./api/.", "k8s/api"),
    ],
)
def test_a_path_is_normalised_the_same_way_for_every_provider(text: str, normal: str) -> None:
    assert normalize_path(text) == normal


@pytest.mark.parametrize(
    "text", ["..", "k8s/api/../billing", "k8s/..", ".", "/", "//", "", "/k8s/api", "a\\b", "a\x00"]
)
def test_a_path_that_climbs_is_absolute_or_names_the_whole_repository_is_refused(
    text: str,
) -> None:
    with pytest.raises(ValueError):
        normalize_path(text)


@pytest.mark.parametrize(
    "path, inside",
    [
        ("k8s/app", True),
        ("k8s/app/overlays/prod", True),
        ("k8s/app-other", False),
        ("k8s/ap", False),
        ("k8s", False),
        ("k8s/billing", False),
    ],
)
def test_only_the_folder_itself_and_its_children_are_within_it(path: str, inside: bool) -> None:
    assert path_is_within(path, "k8s/app") is inside


@pytest.mark.parametrize(
    "labels, path, app",
    [
        ({}, "k8s/api", "api-prod"),
        ({"gitops_path": "k8s/api/"}, "k8s/api", "api-prod"),
        ({"gitops_path": "k8s/api/overlays//canary"}, "k8s/api/overlays/canary", "api-prod"),
        ({"gitops_path": "k8s/shared/api-config/"}, "k8s/shared/api-config", "api-prod"),
        ({"argocd_app": "api-prod-eu"}, "k8s/api", "api-prod-eu"),
        ({"argocd_app": "api-prod", "gitops_path": ""}, "k8s/api", "api-prod"),
    ],
)
def test_an_override_inside_the_bounds_narrows_the_target(
    labels: dict[str, str], path: str, app: str
) -> None:
    resolution = resolve_target(SERVICES, "api", labels)
    assert resolution.reason is None and resolution.target is not None
    assert resolution.target.gitops is not None
    assert (resolution.target.gitops.path, resolution.target.argocd_app) == (path, app)


@pytest.mark.parametrize(
    "labels, why",
    [
        ({"gitops_path": "k8s/billing"}, "not k8s/api, inside it"),
        ({"gitops_path": "k8s/api-other"}, "not k8s/api, inside it"),
        ({"gitops_path": "k8s/api/../billing"}, "'..' is not allowed"),
        ({"gitops_path": "."}, "whole repository"),
        ({"gitops_path": "/"}, "absolute"),
        ({"gitops_path": "//"}, "absolute"),
        ({"gitops_path": "/k8s/api"}, "absolute"),
        ({"gitops_path": "k8s/shared"}, "not k8s/api, inside it"),
        ({"argocd_app": "billing-prod"}, "allowed_apps"),
    ],
)
def test_an_override_outside_the_bounds_leaves_no_target_and_says_why(
    labels: dict[str, str], why: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="receiver.targets"):
        resolution = resolve_target(SERVICES, "api", labels)
    assert resolution.target is None and resolution.reason is not None
    assert why in resolution.reason and "api" in resolution.reason
    assert [r.getMessage() for r in caplog.records] == ["label override refused"]


def test_a_huge_refused_label_is_shown_truncated() -> None:
    resolution = resolve_target(SERVICES, "api", {"gitops_path": "x" * 65536})
    assert resolution.reason is not None
    assert len(resolution.reason) < 300 and "65536 characters" in resolution.reason


def test_a_service_without_the_overridden_backend_refuses_the_override() -> None:
    argocd_only = {"jobs": ServiceTarget("jobs", "production", None, "jobs")}
    gitops_only = {"web": ServiceTarget("web", "production", API.gitops, None)}
    assert resolve_target(argocd_only, "jobs", {"gitops_path": "k8s/jobs"}).target is None
    assert resolve_target(gitops_only, "web", {"argocd_app": "web"}).target is None


def test_an_unconfigured_service_has_no_target() -> None:
    resolution = resolve_target(SERVICES, "unknown", {})
    assert resolution.target is None
    assert resolution.reason == "no GitOps repo or Argo CD app configured for unknown"


def test_a_target_is_described_without_url_credentials() -> None:
    target = ServiceTarget(
        "api", "prod", GitOpsTarget("https://bot:pa55word@git.example.com/g.git", "k8s/api"), None
    )
    text = target.describe()
    assert "pa55word" not in text and "bot" not in text
    assert text == "git https://[REDACTED]@git.example.com/g.git:main/k8s/api"


@pytest.mark.parametrize(
    "labels, matches",
    [
        ({"alertname": "ErrorBudgetBurn", "severity": "critical"}, True),
        ({"alertname": "ErrorBudgetBurn", "severity": "critical", "extra": "x"}, True),
        ({"alertname": "ErrorBudgetBurn", "severity": "warning"}, False),
        ({"alertname": "ErrorBudgetBurn"}, False),
        ({"severity": "critical"}, False),
    ],
)
def test_a_trigger_rule_matches_when_every_label_is_equal(
    labels: dict[str, str], matches: bool
) -> None:
    rule = TriggerRule(
        (LabelMatcher("alertname", "ErrorBudgetBurn"), LabelMatcher("severity", "critical")),
        "critical",
    )
    assert rule.matches(labels) is matches


@pytest.mark.parametrize(
    "value, matches",
    [("page", True), ("pager", True), ("xpage", False), ("pag", False), ("", False)],
)
def test_a_tilde_value_is_a_full_match_regex(value: str, matches: bool) -> None:
    config = parse_rollback_config(
        {"triggers": [{"match": {"sloth_severity": "~page.?"}, "tier": "emergency"}]},
        "production",
        "main",
    )
    (rule,) = config.triggers
    assert rule.service_label == "service"
    assert rule.matches({"sloth_severity": value}) is matches


def test_a_regex_may_match_a_missing_label_as_empty() -> None:
    matcher = LabelMatcher("team", "~|ops", pattern=re.compile("|ops"))
    assert matcher.matches({}) and matcher.matches({"team": "ops"})
    assert not matcher.matches({"team": "dev"})


def test_an_alert_pointing_at_a_sibling_folder_is_skipped_no_target_with_the_reason(
    client: Any, admin: dict[str, str]
) -> None:
    answer = client.post("/webhook", json=payload(alert(gitops_path="k8s/billing")))
    assert answer.status_code == 200
    (entry,) = answer.get_json()["alerts"]
    assert (entry["decision"], entry["reason"]) == ("skipped", "no_target")
    explained = client.post(
        "/api/v1/explain", json=payload(alert(gitops_path="k8s/api/../billing")), headers=admin
    ).get_json()
    check = next(c for c in explained["alerts"][0]["checks"] if c["check"] == "no_target")
    assert check["passed"] is False
    assert "gitops_path='k8s/api/../billing' refused for api" in check["detail"]


def test_safety_targets_name_the_app_and_the_folder_without_credentials() -> None:
    from receiver.decide.targets import GitOpsTarget, ServiceTarget

    target = ServiceTarget(
        service="api",
        namespace="prod",
        gitops=GitOpsTarget("https://bot:s3cret@git.example/acme/gitops.git", "k8s/api", "main"),
        argocd_app="api-prod",
    )
    ids = target.safety_targets()
    assert ids[0] == "argocd:api-prod"
    assert ids[1].startswith("git:") and ids[1].endswith("@main:k8s/api")
    assert "s3cret" not in ids[1]
    assert ServiceTarget("x", "prod", None, None).safety_targets() == ()
