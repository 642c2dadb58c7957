"""The Kubernetes manifests are what the service declarations render: an API Deployment that
runs no workers and its Service per service, and a worker Deployment beside it."""

from __future__ import annotations

import shutil
import stat
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from concord import cli, k8s_check, manifests
from concord.service import services

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
API = {k8s_check.COMPONENT: k8s_check.API_COMPONENT}


def documents(text: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(text)}


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    [only] = deployment["spec"]["template"]["spec"]["containers"]
    return only


def env(deployment: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container(deployment)["env"]}


def selects(selector: dict[str, str], deployment: dict[str, Any]) -> bool:
    return selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


def test_the_committed_manifests_are_what_the_declarations_render() -> None:
    # Fails for a service declared, renamed or moved without `concord manifests` after it.
    assert manifests.differences(K8S, manifests.render()) == []


@pytest.mark.parametrize("name", list(services()))
def test_each_service_has_an_api_without_workers_and_one_worker(name: str) -> None:
    service = services()[name]
    docs = documents((K8S / "base" / f"{name}.yaml").read_text())
    api, worker = docs["Deployment", name], docs["Deployment", f"{name}-worker"]

    assert container(api)["command"][:3] == ["uvicorn", service.factory, "--factory"]
    assert env(api)["CONCORD_RUN_WORKERS"] == "false"
    assert container(worker)["command"] == [
        "concord",
        "worker",
        name,
        "--host=0.0.0.0",
        "--port=8000",
    ]
    assert env(worker)["CONCORD_RUN_WORKERS"] == "true"
    assert worker["spec"]["replicas"] == 1
    for deployment in (api, worker):
        assert k8s_check.check_deployment(name, deployment) == []  # probes, non-root
    for field in ("livenessProbe", "readinessProbe", "startupProbe", "securityContext"):
        assert container(worker)[field] == container(api)[field]
    pods = [d["spec"]["template"]["spec"] for d in (api, worker)]
    assert pods[0]["securityContext"] == pods[1]["securityContext"]


@pytest.mark.parametrize("name", list(services()))
def test_the_service_selects_api_pods_only(name: str) -> None:
    docs = documents((K8S / "base" / f"{name}.yaml").read_text())
    selector = docs["Service", name]["spec"]["selector"]
    assert selects(selector, docs["Deployment", name])
    assert not selects(selector, docs["Deployment", f"{name}-worker"])
    # Nor does the API Deployment own the worker's pods.
    api_selector = docs["Deployment", name]["spec"]["selector"]["matchLabels"]
    assert not selects(api_selector, docs["Deployment", f"{name}-worker"])


def test_production_scales_and_protects_the_api_deployments_only() -> None:
    overlay = K8S / "overlays" / "production"
    [kustomization] = yaml.safe_load_all((overlay / "kustomization.yaml").read_text())
    assert [r["name"] for r in kustomization["replicas"]] == list(services())
    budgets = list(yaml.safe_load_all((overlay / "pdb.yaml").read_text()))
    assert [b["metadata"]["name"] for b in budgets] == list(services())
    for budget in budgets:
        assert budget["spec"]["selector"]["matchLabels"].items() >= API.items()


def test_the_committed_manifests_pass_the_checker(tmp_path: Path) -> None:
    # As in a fresh clone: the dev overlay's secrets file is made first (make k8s-check).
    clone = tmp_path / "k8s"
    shutil.copytree(K8S, clone, ignore=shutil.ignore_patterns("secrets.env"))
    manifests.write_dev_secrets(clone)
    assert k8s_check.check(clone) == []


def test_the_dev_overlay_commits_no_secret_and_each_clone_makes_its_own(tmp_path: Path) -> None:
    overlay = K8S / "overlays" / "dev"
    [kustomization] = yaml.safe_load_all((overlay / "kustomization.yaml").read_text())
    [generated] = kustomization["secretGenerator"]
    assert generated == {"name": "concord-secrets", "envs": ["secrets.env"]}  # no literals
    ignored = (K8S.parents[1] / ".gitignore").read_text().splitlines()
    assert "deploy/k8s/overlays/dev/secrets.env" in ignored

    clones = [tmp_path / "a", tmp_path / "b"]
    made = []
    for clone in clones:
        (clone / "overlays" / "dev").mkdir(parents=True)
        path = manifests.write_dev_secrets(clone)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        values = dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
        assert set(values) == {"CONCORD_DATABASE_URL", "CONCORD_JWT_SECRET", "CONCORD_SECRETS_KEYS"}
        made.append(values)
        assert manifests.write_dev_secrets(clone).read_text() == path.read_text()  # kept
    for name in made[0]:
        assert made[0][name] != made[1][name], f"{name} is the same in two clones"


def test_the_checker_refuses_selectors_that_reach_worker_pods() -> None:
    service = services()["scorecard"]
    worker = manifests.worker_deployment(service)
    by_name_only = {manifests.NAME: "scorecard"}  # the selectors from before workers
    old_service = manifests.api_service(service)
    old_service["spec"]["selector"] = by_name_only
    old_api = manifests.api_deployment(service)
    old_api["spec"]["selector"]["matchLabels"] = by_name_only

    problems = k8s_check.check_documents("base", [old_api, old_service, worker])

    assert problems == [
        "base: Deployment scorecard selects the pods of scorecard-worker too",
        "base: Service scorecard selects the worker pods of scorecard-worker; "
        "add app.kubernetes.io/component: api to its selector",
    ]


def test_a_new_declaration_is_rendered_everywhere_it_must_be_named() -> None:
    health = replace(
        services()["notifications"], name="alliance-health", package="alliance_health", port=8005
    )
    rendered = manifests.render([*services().values(), health])

    docs = documents(rendered["base/alliance-health.yaml"])
    assert list(docs) == [
        ("Deployment", "alliance-health"),
        ("Service", "alliance-health"),
        ("Deployment", "alliance-health-worker"),
    ]
    assert container(docs["Deployment", "alliance-health"])["command"][1] == (
        "alliance_health.app:create_app"
    )
    [base] = yaml.safe_load_all(rendered["base/kustomization.yaml"])
    [production] = yaml.safe_load_all(rendered["overlays/production/kustomization.yaml"])
    budgets = yaml.safe_load_all(rendered["overlays/production/pdb.yaml"])
    assert base["resources"][-1] == "alliance-health.yaml"
    assert production["replicas"][-1] == {"name": "alliance-health", "count": 2}
    assert [b["metadata"]["name"] for b in budgets][-1] == "alliance-health"
    # ...and the committed tree, not rendered again, fails the first test above.
    assert manifests.differences(K8S, rendered) == [
        f"{K8S}/base/alliance-health.yaml: missing",
        f"{K8S}/base/kustomization.yaml: differs from what the declarations render",
        f"{K8S}/overlays/production/kustomization.yaml: differs from what the declarations render",
        f"{K8S}/overlays/production/pdb.yaml: differs from what the declarations render",
    ]


def test_a_name_kubernetes_cannot_take_is_refused() -> None:
    bad = replace(services()["notifications"], name="Trust_Survey")
    with pytest.raises(ValueError, match="DNS-1123"):
        manifests.render([bad])


def test_concord_manifests_writes_checks_and_clears_what_no_service_declares(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["manifests", str(tmp_path)]) == 0
    assert cli.main(["manifests", str(tmp_path), "--check"]) == 0
    (tmp_path / "base" / "scorecard.yaml").write_text("edited by hand\n")
    gone = tmp_path / "base" / "alliance-health.yaml"
    gone.write_text(manifests.RENDERED + "kind: Deployment\n")
    capsys.readouterr()

    assert cli.main(["manifests", str(tmp_path), "--check"]) == 1
    assert capsys.readouterr().err.splitlines()[:2] == [
        f"{tmp_path}/base/scorecard.yaml: differs from what the declarations render",
        f"{gone}: no service declares it any more",
    ]
    assert cli.main(["manifests", str(tmp_path)]) == 0
    assert not gone.exists()
    assert manifests.differences(tmp_path, manifests.render()) == []
