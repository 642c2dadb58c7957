"""The Kubernetes manifests, rendered from the service declarations (`concord.service`):

    concord manifests [deploy/k8s]            write them
    concord manifests [deploy/k8s] --check    exit 1 naming every file that is not what the
                                              declarations render (`make k8s-check`, and a test)

Each service gets an API Deployment and its Service, which selects API pods only, and a worker
Deployment `<service>-worker`. API replicas run no workers (`CONCORD_RUN_WORKERS=false`) and
scale on their own; the worker runs the relay, projections, reactions and timers, each led
through a PostgreSQL advisory lock, so a second worker replica is a hot standby. The base
kustomization lists every service, and the production overlay's `replicas:` and
PodDisruptionBudgets name every API Deployment.

Only these dev and CI tools need PyYAML (a dev dependency); a running service never imports
this module.
"""

from __future__ import annotations

import os
import re
import secrets
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from concord.k8s_check import (
    API_COMPONENT,
    COMPONENT,
    LIVENESS_PATH,
    READINESS_PATH,
    WORKER_COMPONENT,
)
from concord.secrets import new_key
from concord.service import Service, services

# Marks a file as rendered: `concord manifests` deletes one whose service is gone.
RENDERED = (
    "# Rendered by `concord manifests` from the service declarations: edit those (or\n"
    "# shared/concord/manifests.py) and run `concord manifests`, not this file.\n"
)
IMAGE = "concord:0.1.0"
NAME = "app.kubernetes.io/name"
PRODUCTION_API_REPLICAS = 2
# A DNS-1123 label: a service's name names its Deployments, Service and containers.
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")

SERVICE_HEADER = """\
#
# {name}: the API Deployment and its Service, which selects API pods only, and the worker
# Deployment {name}-worker (relay, projections, reactions, timers). API replicas run no
# workers (CONCORD_RUN_WORKERS=false) and scale on their own. The worker leads each piece of
# work through a PostgreSQL advisory lock, so a second worker replica is a hot standby.
#
# Shutdown: uvicorn drains requests for up to 20 s, then the runtime waits up to 5 s for the
# relay to publish what is committed; the API's preStop gives endpoints time to drop the pod.
# Readiness: /readyz answers 503 while PostgreSQL does not answer; NATS away is only
# "degraded" (docs/operations/runbook.md).
"""
BASE_HEADER = """\
#
# The Concord services: per service an API Deployment + Service and a worker Deployment.
# PostgreSQL and NATS are not part of this base: point CONCORD_DATABASE_URL and
# CONCORD_NATS_URL at yours (see README.md). The ConfigMap's addresses are placeholders,
# which the overlays set.
"""
PRODUCTION_HEADER = """\
#
# Production: {replicas} API replicas per service, which run no workers, and one worker per
# service (<service>-worker) that leads the relay, projections, reactions and timers through
# PostgreSQL advisory locks; a second worker replica would only stand by, so `replicas:`
# leaves the workers at 1. R3 JetStream streams (a 3-node NATS cluster with
# `sync_interval: always`, deploy/k8s/README.md); RS256 tokens from your identity provider's
# JWKS only: replace the CONCORD_JWT_* values with its own (a service refuses to start with a
# JWKS URL but no issuer or audience).
#
# The Secret `concord-secrets` is not generated here: create it in the namespace first with
# CONCORD_DATABASE_URL and CONCORD_SECRETS_KEYS (see deploy/k8s/README.md).
"""
PDB_HEADER = """\
#
# Keeps one API replica of each service up through voluntary disruptions (node drains).
# None for the workers: a budget on a single replica would block every drain, and a worker
# away for a moment only delays its work (nothing is lost; the next one catches up).
"""


# The dev overlay's Secret is generated from this file, made per clone and never committed.
DEV_SECRETS = Path("overlays/dev/secrets.env")
DEV_SECRETS_HEADER = """\
# The dev overlay's Secret concord-secrets (kustomize secretGenerator), made for this clone
# by `make k8s-dev-secrets` and git-ignored: never commit it. Give your dev PostgreSQL's
# user `concord` the password in the URL; mint tokens with this CONCORD_JWT_SECRET.
"""


def dev_secrets() -> str:
    """A dev cluster's secrets, new each time: the database password, the HS256 secret and
    the key that seals secrets at rest."""
    password = secrets.token_urlsafe(24)
    return DEV_SECRETS_HEADER + "\n".join(
        [
            "CONCORD_DATABASE_URL=postgresql+asyncpg://concord:"
            f"{password}@postgres.concord-dev.svc:5432/concord",
            f"CONCORD_JWT_SECRET={secrets.token_urlsafe(48)}",
            f"CONCORD_SECRETS_KEYS={new_key()}",
            "",
        ]
    )


def write_dev_secrets(root: Path) -> Path:
    """The dev overlay's secrets file under root, made (mode 0600) unless it is there."""
    path = root / DEV_SECRETS
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(dev_secrets())
    return path


def worker_name(service: Service) -> str:
    return f"{service.name}-worker"


def pod_labels(service: Service, component: str) -> dict[str, str]:
    return {NAME: service.name, COMPONENT: component}


def _http_get(path: str) -> dict[str, Any]:
    return {"path": path, "port": "http"}


def _pause_before_stop() -> dict[str, Any]:
    """Time for the endpoints to drop a pod behind a Service before it stops serving."""
    return {"preStop": {"exec": {"command": ["python", "-c", "import time; time.sleep(5)"]}}}


def _container(
    name: str, command: list[str], *, run_workers: bool, pre_stop: bool
) -> dict[str, Any]:
    return {
        "name": name,
        "image": IMAGE,
        "command": command,
        "ports": [{"name": "http", "containerPort": 8000}],
        "envFrom": [
            {"configMapRef": {"name": "concord-config"}},
            {"secretRef": {"name": "concord-secrets"}},
        ],
        "env": [
            {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
            {"name": "CONCORD_RUN_WORKERS", "value": "true" if run_workers else "false"},
        ],
        "livenessProbe": {
            "httpGet": _http_get(LIVENESS_PATH),
            "periodSeconds": 10,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        },
        "readinessProbe": {
            "httpGet": _http_get(READINESS_PATH),
            "periodSeconds": 5,
            "timeoutSeconds": 3,
            "failureThreshold": 2,
        },
        "startupProbe": {
            "httpGet": _http_get(LIVENESS_PATH),
            "periodSeconds": 2,
            "failureThreshold": 30,
        },
        **({"lifecycle": _pause_before_stop()} if pre_stop else {}),
        "resources": {
            "requests": {"cpu": "100m", "memory": "192Mi"},
            "limits": {"memory": "512Mi"},
        },
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }


def _deployment(
    name: str, labels: dict[str, str], replicas: int, container: dict[str, Any]
) -> dict[str, Any]:
    # Copies: PyYAML writes a dict it meets twice as an anchor and an alias.
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": dict(labels)},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": dict(labels)},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "terminationGracePeriodSeconds": 40,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 10001,
                        "runAsGroup": 10001,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {}}],
                },
            },
        },
    }


def api_deployment(service: Service) -> dict[str, Any]:
    command = [
        "uvicorn",
        service.factory,
        "--factory",
        "--host=0.0.0.0",
        "--port=8000",
        "--no-access-log",
        "--timeout-graceful-shutdown=20",
    ]
    container = _container(service.name, command, run_workers=False, pre_stop=True)
    return _deployment(service.name, pod_labels(service, API_COMPONENT), 1, container)


def api_service(service: Service) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": service.name, "labels": pod_labels(service, API_COMPONENT)},
        "spec": {
            "selector": pod_labels(service, API_COMPONENT),
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
        },
    }


def worker_deployment(service: Service) -> dict[str, Any]:
    command = ["concord", "worker", service.name, "--host=0.0.0.0", "--port=8000"]
    container = _container(worker_name(service), command, run_workers=True, pre_stop=False)
    return _deployment(worker_name(service), pod_labels(service, WORKER_COMPONENT), 1, container)


def base_kustomization(declared: Iterable[Service]) -> dict[str, Any]:
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "labels": [{"pairs": {"app.kubernetes.io/part-of": "concord"}}],
        "resources": [f"{s.name}.yaml" for s in declared],
        "configMapGenerator": [
            {
                "name": "concord-config",
                "literals": [
                    "CONCORD_NATS_URL=nats://nats:4222",
                    "CONCORD_NATS_REPLICAS=1",
                    "CONCORD_LOG_LEVEL=INFO",
                ],
            }
        ],
    }


def production_kustomization(declared: Iterable[Service]) -> dict[str, Any]:
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": "concord",
        "resources": ["../../base", "pdb.yaml"],
        "replicas": [{"name": s.name, "count": PRODUCTION_API_REPLICAS} for s in declared],
        "configMapGenerator": [
            {
                "name": "concord-config",
                "behavior": "merge",
                "literals": [
                    "CONCORD_NATS_URL=nats://nats.nats.svc:4222",
                    "CONCORD_NATS_REPLICAS=3",
                    "CONCORD_LOG_LEVEL=INFO",
                    "CONCORD_JWT_JWKS_URL=https://login.example.com/.well-known/jwks.json",
                    "CONCORD_JWT_ISSUER=https://login.example.com/",
                    "CONCORD_JWT_AUDIENCE=concord",
                    # The defaults, stated: allowed clock skew, and the longest token life.
                    "CONCORD_JWT_LEEWAY=30",
                    "CONCORD_JWT_MAX_LIFETIME=86400",
                ],
            }
        ],
        "patches": [
            {"path": "no-hs256.yaml", "target": {"kind": "Deployment"}},
            {"path": "resources.yaml", "target": {"kind": "Deployment"}},
        ],
    }


def disruption_budget(service: Service) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": service.name},
        "spec": {
            "minAvailable": 1,
            "selector": {"matchLabels": pod_labels(service, API_COMPONENT)},
        },
    }


def _text(header: str, docs: list[dict[str, Any]]) -> str:
    return RENDERED + header + str(yaml.safe_dump_all(docs, sort_keys=False, width=4096))


def render(declared: Iterable[Service] | None = None) -> dict[str, str]:
    """Every rendered file, by its path under deploy/k8s, from the declarations in the order
    given (all of them, in port order, unless told which)."""
    declared = list(services().values() if declared is None else declared)
    for s in declared:
        if not DNS_LABEL.fullmatch(s.name) or len(worker_name(s)) > 63:
            raise ValueError(f"{s.name!r} cannot name Kubernetes objects (a DNS-1123 label)")
    files = {
        f"base/{s.name}.yaml": _text(
            SERVICE_HEADER.format(name=s.name),
            [api_deployment(s), api_service(s), worker_deployment(s)],
        )
        for s in declared
    }
    files["base/kustomization.yaml"] = _text(BASE_HEADER, [base_kustomization(declared)])
    files["overlays/production/kustomization.yaml"] = _text(
        PRODUCTION_HEADER.format(replicas=PRODUCTION_API_REPLICAS),
        [production_kustomization(declared)],
    )
    files["overlays/production/pdb.yaml"] = _text(
        PDB_HEADER, [disruption_budget(s) for s in declared]
    )
    return files


def _left_behind(root: Path, rendered: dict[str, str]) -> list[Path]:
    """Rendered files that nothing renders any more (a service no longer declared)."""
    return sorted(
        path
        for path in root.rglob("*.yaml")
        if path.relative_to(root).as_posix() not in rendered
        and path.read_text().startswith(RENDERED)
    )


def differences(root: Path, rendered: dict[str, str]) -> list[str]:
    """One line per file under root that is not what the declarations render."""
    found = []
    for name, text in rendered.items():
        path = root / name
        if not path.exists():
            found.append(f"{path}: missing")
        elif path.read_text() != text:
            found.append(f"{path}: differs from what the declarations render")
    found += [f"{path}: no service declares it any more" for path in _left_behind(root, rendered)]
    return found


def write(root: Path, rendered: dict[str, str]) -> list[str]:
    """Bring root to what the declarations render; one line per file written or deleted."""
    done = []
    for name, text in rendered.items():
        path = root / name
        if not path.exists() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            done.append(f"wrote {path}")
    for path in _left_behind(root, rendered):
        path.unlink()
        done.append(f"deleted {path} (no service declares it any more)")
    return done


def command(root: Path, *, check: bool, dev_secrets: bool = False) -> int:
    """`concord manifests`: write (0), or with check=True only compare (1 if any differ);
    with dev_secrets=True, only make the dev overlay's secrets file if it is missing."""
    if dev_secrets:
        print(f"manifests: the dev overlay's secrets are in {write_dev_secrets(root)}")
        return 0
    rendered = render()
    if not check:
        for line in write(root, rendered) or [f"{root}: already what the declarations render"]:
            print(line)
        return 0
    found = differences(root, rendered)
    for line in found:
        print(line, file=sys.stderr)
    if found:
        print(f"manifests: run `concord manifests {root}` and commit the result", file=sys.stderr)
        return 1
    print(f"manifests: {root} is what the declarations render ({len(rendered)} files)")
    return 0
