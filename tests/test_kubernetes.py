"""deploy/kubernetes: renders with kustomize, passes Kubernetes schemas, stays in sync."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.tools import run, tool

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "kubernetes"
# A Kubernetes version kubernetes-validate ships schemas for (offline); CronJob timeZone is GA.
KUBERNETES_VERSION = "1.30.0"
CRD_GROUPS = ("monitoring.coreos.com/",)


def kustomize(path: Path) -> list[dict[str, Any]]:
    result = run(tool("kubectl"), "kustomize", str(path))
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    return kustomize(K8S)


@pytest.fixture(scope="module")
def secrets() -> list[dict[str, Any]]:
    return kustomize(K8S / "secrets")


def one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"want one {kind} {name or ''}, got {len(found)}"
    return found[0]


def validate(tmp_path: Path, docs: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    files = []
    for index, doc in enumerate(docs):
        path = tmp_path / f"{index:02d}-{doc['kind']}-{doc['metadata']['name']}.yaml"
        path.write_text(yaml.safe_dump(doc))
        files.append(str(path))
    return run(tool("kubernetes-validate"), "--strict", "--quiet", "-k", KUBERNETES_VERSION, *files)


def pod_template(workload: dict[str, Any]) -> dict[str, Any]:
    if workload["kind"] == "CronJob":
        return workload["spec"]["jobTemplate"]["spec"]["template"]
    return workload["spec"]["template"]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    return pod_template(workload)["spec"]


def test_the_kustomization_renders_every_object(objects: list[dict[str, Any]]) -> None:
    """`kubectl kustomize deploy/kubernetes` renders the receiver and everything around it."""
    kinds = sorted(o["kind"] for o in objects)
    assert kinds == sorted(
        [
            "ConfigMap",
            "CronJob",
            "Deployment",
            "NetworkPolicy",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "PodDisruptionBudget",
            "PrometheusRule",
            "Service",
            "Service",
            "ServiceAccount",
            "ServiceMonitor",
            "StatefulSet",
        ]
    )
    assert {o["metadata"]["namespace"] for o in objects} == {"monitoring"}


def test_core_objects_validate_against_kubernetes_schemas(
    objects: list[dict[str, Any]], secrets: list[dict[str, Any]], tmp_path: Path
) -> None:
    """Every core object (and the example Secrets) passes strict schema validation."""
    core = [o for o in objects + secrets if not o["apiVersion"].startswith(CRD_GROUPS)]
    result = validate(tmp_path, core)
    assert result.returncode == 0, result.stdout + result.stderr


def test_strict_validation_catches_a_misspelt_field(
    objects: list[dict[str, Any]], tmp_path: Path
) -> None:
    """The validation is not vacuous: an unknown field in the Deployment fails it."""
    deployment = yaml.safe_load(yaml.safe_dump(one(objects, "Deployment")))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    assert validate(tmp_path, [deployment]).returncode != 0


def test_the_prometheusrule_is_generated_from_alerts() -> None:
    """prometheusrule.yaml is exactly what scripts/gen-prometheusrule.py makes from alerts/."""
    result = run(sys.executable, str(ROOT / "scripts" / "gen-prometheusrule.py"), "--check")
    assert result.returncode == 0, result.stderr
    rule = yaml.safe_load((K8S / "prometheusrule.yaml").read_text())
    shipped = [
        group
        for path in sorted((ROOT / "alerts").glob("*.yml"))
        for group in yaml.safe_load(path.read_text())["groups"]
    ]
    assert rule["spec"]["groups"] == shipped


def test_the_prometheusrule_groups_pass_promtool(
    objects: list[dict[str, Any]], tmp_path: Path
) -> None:
    """The rendered PrometheusRule's spec.groups pass `promtool check rules`."""
    rule = one(objects, "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    result = run(tool("promtool"), "check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_servicemonitor_scrapes_the_receiver_service(objects: list[dict[str, Any]]) -> None:
    """ServiceMonitor has its required fields, selects the Service and names one of its ports."""
    monitor = one(objects, "ServiceMonitor")
    service = one(objects, "Service", "rollback-receiver")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["name"]
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    port_names = {port["name"] for port in service["spec"]["ports"]}
    assert monitor["spec"]["endpoints"]
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["port"] in port_names
        assert endpoint["path"] == "/metrics"


def test_the_receiver_deployment_is_hardened_and_probed(objects: list[dict[str, Any]]) -> None:
    """Two non-root replicas, read-only root fs, resources, /healthz liveness, /readyz readiness."""
    deployment = one(objects, "Deployment", "rollback-receiver")
    assert deployment["spec"]["replicas"] == 2
    spec = pod_spec(deployment)
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] != 0
    (container,) = spec["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["args"] == ["serve"]


@pytest.mark.parametrize("kind", ["Deployment", "CronJob"])
def test_workloads_keep_metrics_in_an_emptydir_and_secrets_in_files(
    objects: list[dict[str, Any]], secrets: list[dict[str, Any]], kind: str
) -> None:
    """PROMETHEUS_MULTIPROC_DIR is an emptyDir; each *_FILE is a key of a mounted example Secret.

    A *_FILE comes from the container's env or from the ConfigMap (receiver.env) it loads.
    """
    spec = pod_spec(one(objects, kind))
    (container,) = spec["containers"]
    config = {k: {"name": k, "value": v} for k, v in one(objects, "ConfigMap")["data"].items()}
    env = {**config, **{e["name"]: e for e in container["env"]}}
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
    assert "emptyDir" in mounts[env["PROMETHEUS_MULTIPROC_DIR"]["value"]]
    example = {s["metadata"]["name"]: s["stringData"] for s in secrets}
    file_vars = [name for name in env if name.endswith("_FILE")]
    assert "GITOPS_TOKEN_FILE" in file_vars and "ARGOCD_PASSWORD_FILE" in file_vars
    for name in file_vars:
        directory, key = env[name]["value"].rsplit("/", 1)
        volume = mounts[directory]["secret"]
        assert key in example[volume["secretName"]], name
        assert key in [i["path"] for i in volume.get("items", [{"path": key}])], name
    for var in env.values():
        if "valueFrom" in var:
            ref = var["valueFrom"]["secretKeyRef"]
            assert ref["key"] in example[ref["name"]], var["name"]
    for name in (
        "GITOPS_TOKEN",
        "ARGOCD_PASSWORD",
        "WEBHOOK_TOKEN",
        "ADMIN_TOKEN",
        "SLACK_WEBHOOK",
        "PAGERDUTY_KEY",
    ):
        assert name not in env, f"{name} must come from a file"


def test_example_secrets_are_named_as_in_the_original_design(secrets: list[dict[str, Any]]) -> None:
    """gitops-credentials holds repo/token; argocd-credentials holds server/app-name/password."""
    data = {s["metadata"]["name"]: s["stringData"] for s in secrets}
    assert {"repo", "token"} <= data["gitops-credentials"].keys()
    assert {"server", "app-name", "password"} <= data["argocd-credentials"].keys()


def test_the_monitor_cronjob_runs_every_five_minutes_without_overlap(
    objects: list[dict[str, Any]],
) -> None:
    """error-budget-rollback-monitor in monitoring runs `monitor --once` every 5 minutes, Forbid."""
    cron = one(objects, "CronJob", "error-budget-rollback-monitor")
    assert cron["metadata"]["namespace"] == "monitoring"
    assert cron["spec"]["schedule"] == "*/5 * * * *"
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    (container,) = pod_spec(cron)["containers"]
    assert container["args"] == ["monitor", "--once"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_service_pdb_and_networkpolicy_select_the_receiver_pods_only(
    objects: list[dict[str, Any]],
) -> None:
    """Service, PDB and NetworkPolicy pick the receiver's pods, not the monitor's."""
    receiver_pods = pod_template(one(objects, "Deployment"))["metadata"]["labels"]
    monitor_pods = pod_template(one(objects, "CronJob"))["metadata"]["labels"]
    selectors = [
        one(objects, "Service", "rollback-receiver")["spec"]["selector"],
        one(objects, "PodDisruptionBudget", "rollback-receiver")["spec"]["selector"]["matchLabels"],
        one(objects, "NetworkPolicy", "rollback-receiver")["spec"]["podSelector"]["matchLabels"],
    ]
    for selector in selectors:
        assert selector.items() <= receiver_pods.items()
        assert not selector.items() <= monitor_pods.items()
    assert one(objects, "PodDisruptionBudget", "rollback-receiver")["spec"]["minAvailable"] == 1


def test_redis_is_reachable_at_the_configured_url(objects: list[dict[str, Any]]) -> None:
    """REDIS_URL names the Redis Service, whose selector matches the StatefulSet's pods."""
    config = one(objects, "ConfigMap")["data"]
    redis = one(objects, "Service", "rollback-redis")
    assert config["REDIS_URL"].startswith(
        f"redis://{redis['metadata']['name']}.monitoring.svc:6379/"
    )
    pods = one(objects, "StatefulSet")["spec"]["template"]["metadata"]["labels"]
    assert redis["spec"]["selector"].items() <= pods.items()


OPTIONAL_SECRETS = {"gitops-credentials", "argocd-credentials", "rollback-notify"}
REQUIRED_SECRETS = {"rollback-receiver-auth", "rollback-redis-auth"}


@pytest.mark.parametrize("kind", ["Deployment", "CronJob"])
def test_optional_secrets_are_optional_and_credentials_are_not(
    objects: list[dict[str, Any]], kind: str
) -> None:
    """A gitops-only or Slack-only team deploys without placeholder Secrets (optional: true)."""
    spec = pod_spec(one(objects, kind))
    (container,) = spec["containers"]
    seen = set()
    for volume in spec["volumes"]:
        if "secret" in volume:
            name = volume["secret"]["secretName"]
            seen.add(name)
            assert volume["secret"].get("optional", False) is (name in OPTIONAL_SECRETS), name
    for var in container["env"]:
        ref = var.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            seen.add(ref["name"])
            assert ref.get("optional", False) is (ref["name"] in OPTIONAL_SECRETS), var["name"]
    assert OPTIONAL_SECRETS <= seen and "rollback-redis-auth" in seen


SAFETY_DEFAULTS = {
    "ROLLBACK_ENABLED": "true",
    "AUTO_ROLLBACK_CRITICAL": "true",
    "AUTO_ROLLBACK_EMERGENCY": "true",
    "REQUIRE_APPROVAL": "false",
    "APPROVAL_TIMEOUT_MINUTES": "30",
    "EMERGENCY_VETO_MINUTES": "",
    "ROLLBACK_MODE": "both",
    "GITOPS_MODE": "push",
    "ARGOCD_DISABLE_AUTOSYNC": "false",
    "BLACKOUT_WINDOWS": "Sat,Sun 00:00-06:00 UTC",
    "ROLLBACK_CHANGE_WINDOW": "24h",
    "COOLDOWN_MINUTES": "60",
    "MAX_ROLLBACKS_PER_HOUR": "1",
    "MAX_ROLLBACKS_PER_DAY": "3",
    "MAX_CONCURRENT_ROLLBACKS": "3",
    "GLOBAL_LIMIT_WINDOW": "10m",
    "VALIDATION_TIMEOUT_SECONDS": "600",
    "LOCK_LEASE_SECONDS": "120",
    "STABILIZATION_SECONDS": "300",
    "STABILIZATION_THRESHOLD": "0.01",
    "PUBLIC_URL": "",
}


def env_file_entries() -> list[tuple[str, str, list[str]]]:
    """(name, value, the comment block above it) per line of receiver.env.

    A comment block covers the assignments right below it, up to a blank line.
    """
    entries: list[tuple[str, str, list[str]]] = []
    block: list[str] = []
    after_comment = False
    for line in (K8S / "receiver.env").read_text().splitlines():
        if line.startswith("#"):
            block = [*block, line] if after_comment else [line]
            after_comment = True
        elif "=" in line:
            name, _, value = line.partition("=")
            entries.append((name, value, block))
            after_comment = False
        else:
            block, after_comment = [], False
    return entries


def test_receiver_env_spells_out_every_safety_default_with_a_comment() -> None:
    """Each safety setting is written with the contract's default and explained above it."""
    entries = {name: (value, comments) for name, value, comments in env_file_entries()}
    for name, default in SAFETY_DEFAULTS.items():
        assert name in entries, f"{name} missing from receiver.env"
        value, comments = entries[name]
        assert value == default, f"{name}={value}, the default is {default!r}"
        assert comments, f"{name} has no comment above it"
    assert entries["DRY_RUN"][0] == "true"
    assert any("WEEKEND" in c.upper() for c in entries["BLACKOUT_WINDOWS"][1])


def test_receiver_env_is_a_valid_configuration(objects: list[dict[str, Any]]) -> None:
    """The rendered ConfigMap loads as Settings (with the Secrets' values stood in)."""
    from receiver.config import Settings

    data = dict(one(objects, "ConfigMap")["data"])
    data = {k: v for k, v in data.items() if not k.endswith("_FILE")}
    data.update({"GITOPS_REPO": "acme/gitops", "ARGOCD_SERVER": "argocd:443"})
    settings = Settings.from_env(data)
    assert settings.dry_run is True
    windows = "; ".join(w.describe() for w in settings.blackout_windows)
    assert windows == SAFETY_DEFAULTS["BLACKOUT_WINDOWS"]
    assert settings.public_url is None and settings.emergency_veto_minutes is None


def test_redis_requires_the_password_the_receiver_and_monitor_read(
    objects: list[dict[str, Any]], secrets: list[dict[str, Any]]
) -> None:
    """Redis needs the password of rollback-redis-auth; receiver and monitor read it as a file."""
    redis = one(objects, "StatefulSet", "rollback-redis")
    spec = pod_spec(redis)
    (container,) = spec["containers"]
    script = " ".join(container["command"] + container["args"])
    assert "requirepass" in script and "/etc/redis-auth/password" in script
    assert "REDISCLI_AUTH" in " ".join(container["readinessProbe"]["exec"]["command"])
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: volumes.get(m["name"]) for m in container["volumeMounts"]}
    assert mounts["/etc/redis-auth"]["secret"]["secretName"] == "rollback-redis-auth"
    example = {s["metadata"]["name"]: s["stringData"] for s in secrets}
    assert "password" in example["rollback-redis-auth"]
    for kind in ("Deployment", "CronJob"):
        (client,) = pod_spec(one(objects, kind))["containers"]
        env = {e["name"]: e.get("value") for e in client["env"]}
        assert env["REDIS_PASSWORD_FILE"] == "/etc/rollback-receiver/redis/password", kind
    assert "@" not in one(objects, "ConfigMap")["data"]["REDIS_URL"]


def test_redis_has_a_disruption_budget(objects: list[dict[str, Any]]) -> None:
    """A drain does not evict the single Redis (nothing can roll back while it is away)."""
    budget = one(objects, "PodDisruptionBudget", "rollback-redis")
    pods = pod_template(one(objects, "StatefulSet", "rollback-redis"))["metadata"]["labels"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= pods.items()
    assert budget["spec"]["minAvailable"] == 1


@pytest.mark.parametrize("kind", ["Deployment", "CronJob"])
def test_the_git_ssh_overlay_mounts_a_deploy_key_and_known_hosts(
    objects: list[dict[str, Any]], tmp_path: Path, kind: str
) -> None:
    """deploy/overlays/git-ssh: GIT_SSH_COMMAND names the mounted key and known_hosts files."""
    overlay = kustomize(ROOT / "deploy" / "overlays" / "git-ssh")
    core = [o for o in overlay if not o["apiVersion"].startswith(CRD_GROUPS)]
    result = validate(tmp_path, core)
    assert result.returncode == 0, result.stdout + result.stderr
    spec = pod_spec(one(overlay, kind))
    (container,) = spec["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    (base,) = pod_spec(one(objects, kind))["containers"]
    assert {e["name"] for e in base["env"]} <= env.keys()
    command = env["GIT_SSH_COMMAND"] or ""
    key = command.split("-i ", 1)[1].split()[0]
    known_hosts = command.split("UserKnownHostsFile=", 1)[1].split()[0]
    assert "StrictHostKeyChecking=yes" in command and "BatchMode=yes" in command
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
    for path in (key, known_hosts):
        directory, _ = path.rsplit("/", 1)
        assert mounts[directory]["secret"]["secretName"] == "gitops-ssh"
        assert mounts[directory]["secret"]["defaultMode"] == 0o440
    config = one(overlay, "ConfigMap")["data"]
    assert config["GITOPS_PROVIDER"] == "git" and config["GITOPS_TOKEN_FILE"] == ""


def test_the_documented_ingress_example_validates(tmp_path: Path) -> None:
    """docs/deploy.md's Ingress behind auth is a valid Ingress that routes only /ui and /api/v1."""
    import textwrap

    docs = (ROOT / "docs" / "deploy.md").read_text()
    blocks = [b.split("```", 1)[0] for b in docs.split("```yaml\n")[1:]]
    (ingress_text,) = [b for b in blocks if "kind: Ingress" in b]
    ingress = yaml.safe_load(textwrap.dedent(ingress_text))
    assert "nginx.ingress.kubernetes.io/auth-url" in ingress["metadata"]["annotations"]
    result = validate(tmp_path, [ingress])
    assert result.returncode == 0, result.stdout + result.stderr
    paths = {p["path"] for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]}
    assert paths == {"/ui", "/api/v1"}
