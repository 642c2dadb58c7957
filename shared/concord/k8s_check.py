"""Check the Kubernetes manifests before anyone applies them:

    python -m concord.k8s_check deploy/k8s            # every YAML file parses; kustomizations
                                                      # point at files that exist; Deployments
                                                      # probe /livez and /readyz, run as non-root
                                                      # and select only their own pods; Services
                                                      # and disruption budgets select no workers
    python -m concord.k8s_check deploy/k8s --render   # also check what each kustomization builds
                                                      # (needs `kustomize` or `kubectl` on PATH)

Exits 0 when all is well, 1 with one line per problem otherwise, 2 when it cannot run.
Needs PyYAML, and nothing else outside the standard library.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SUMMARY = "Check Concord's Kubernetes manifests (kustomize base and overlays)."
KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
LIVENESS_PATH = "/livez"
READINESS_PATH = "/readyz"
# API and worker pods of one service share its name label and differ in this one.
COMPONENT = "app.kubernetes.io/component"
API_COMPONENT, WORKER_COMPONENT = "api", "worker"


def _load_yaml_module() -> Any:
    try:
        import yaml
    except ImportError:
        return None
    return yaml


def yaml_files(root: Path) -> list[Path]:
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and (p.suffix in (".yaml", ".yml") or p.name == "Kustomization")
    )


def is_remote(reference: str) -> bool:
    return "://" in reference or reference.startswith(("github.com/", "git@"))


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def kustomization_references(doc: dict[str, Any]) -> Iterator[tuple[str, str, bool]]:
    """(field, reference, is_patch) for every local file or folder a kustomization names."""
    for field in ("resources", "bases", "components"):
        for ref in _strings(doc.get(field)):
            yield field, ref, False
    for ref in _strings(doc.get("patchesStrategicMerge")):
        if "\n" not in ref:  # an inline patch is YAML text, not a path
            yield "patchesStrategicMerge", ref, True
    for field in ("patches", "patchesJson6902"):
        entries = doc.get(field)
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict) and isinstance(entry.get("path"), str):
                yield field, entry["path"], True
    for field in ("configMapGenerator", "secretGenerator"):
        entries = doc.get(field)
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, dict):
                continue
            for ref in _strings(entry.get("files")):
                yield field, ref.split("=", 1)[-1], False
            for ref in _strings(entry.get("envs")) + _strings([entry.get("env")]):
                yield field, ref, False


def check_kustomization(path: Path, doc: Any, patch_files: set[Path]) -> list[str]:
    if not isinstance(doc, dict):
        return [f"{path}: a kustomization must be a mapping"]
    problems = []
    for field, ref, is_patch in kustomization_references(doc):
        if is_remote(ref):
            continue
        target = (path.parent / ref).resolve()
        if not target.exists():
            problems.append(f"{path}: {field} names {ref}, which does not exist")
        elif target.is_dir() and not any((target / n).exists() for n in KUSTOMIZATION_NAMES):
            problems.append(f"{path}: {field} names folder {ref}, which has no kustomization.yaml")
        elif is_patch:
            patch_files.add(target)
    return problems


def _probe_path(container: dict[str, Any], probe: str) -> str | None:
    http_get = (container.get(probe) or {}).get("httpGet") or {}
    path = http_get.get("path")
    return path if isinstance(path, str) else None


def _runs_as_non_root(pod: dict[str, Any], container: dict[str, Any]) -> bool:
    pod_ctx = pod.get("securityContext") or {}
    ctx = container.get("securityContext") or {}
    non_root = ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot"))
    user = ctx.get("runAsUser", pod_ctx.get("runAsUser"))
    return non_root is True and user != 0


def check_deployment(where: str, doc: dict[str, Any]) -> list[str]:
    name = (doc.get("metadata") or {}).get("name", "<unnamed>")
    pod = ((doc.get("spec") or {}).get("template") or {}).get("spec") or {}
    containers = pod.get("containers") or []
    label = f"{where}: Deployment {name}"
    if not containers:
        return [f"{label}: has no containers"]
    problems = []
    for container in containers:
        cname = container.get("name", "<unnamed>")
        for probe, expected in (
            ("livenessProbe", LIVENESS_PATH),
            ("readinessProbe", READINESS_PATH),
        ):
            found = _probe_path(container, probe)
            if found != expected:
                problems.append(
                    f"{label}: container {cname}: {probe} must be an httpGet on {expected} "
                    f"(found {found or 'none'})"
                )
    for container in [*containers, *(pod.get("initContainers") or [])]:
        if not _runs_as_non_root(pod, container):
            cname = container.get("name", "<unnamed>")
            problems.append(
                f"{label}: container {cname}: securityContext must set runAsNonRoot: true "
                "(on the pod or the container) and must not run as user 0"
            )
    return problems


def _pod_labels(deployment: dict[str, Any]) -> dict[str, Any]:
    template = (deployment.get("spec") or {}).get("template") or {}
    return (template.get("metadata") or {}).get("labels") or {}


def _selector(doc: dict[str, Any]) -> dict[str, Any]:
    """A Service's selector, or the matchLabels of a Deployment's or a budget's."""
    selector = (doc.get("spec") or {}).get("selector") or {}
    return selector if doc.get("kind") == "Service" else selector.get("matchLabels") or {}


def check_selectors(where: str, docs: list[dict[str, Any]]) -> list[str]:
    """No Deployment selects another's pods, and no Service or PodDisruptionBudget selects
    worker pods (traffic and disruption budgets are for API replicas)."""
    deployments = [d for d in docs if d.get("kind") == "Deployment"]
    problems = []
    for doc in docs:
        kind, name = doc.get("kind"), (doc.get("metadata") or {}).get("name", "<unnamed>")
        selector = _selector(doc)
        if kind not in ("Deployment", "Service", "PodDisruptionBudget") or not selector:
            continue
        for deployment in deployments:
            pods = _pod_labels(deployment)
            if deployment is doc or not selector.items() <= pods.items():
                continue
            other = (deployment.get("metadata") or {}).get("name", "<unnamed>")
            if kind == "Deployment":
                problems.append(f"{where}: Deployment {name} selects the pods of {other} too")
            elif pods.get(COMPONENT) == WORKER_COMPONENT:
                problems.append(
                    f"{where}: {kind} {name} selects the worker pods of {other}; add "
                    f"{COMPONENT}: {API_COMPONENT} to its selector"
                )
    return problems


def check_documents(where: str, docs: list[Any]) -> list[str]:
    mappings = [doc for doc in docs if isinstance(doc, dict)]
    problems = []
    for doc in mappings:
        if doc.get("kind") == "Deployment":
            problems.extend(check_deployment(where, doc))
    return problems + check_selectors(where, mappings)


def _renderer() -> list[str] | None:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


def check(root: Path, *, render: bool = False) -> list[str]:
    yaml = _load_yaml_module()
    if yaml is None:
        raise RuntimeError("PyYAML is needed: pip install pyyaml")
    files = yaml_files(root)
    if not files:
        return [f"{root}: no YAML files found"]
    problems: list[str] = []
    parsed: dict[Path, list[Any]] = {}
    for path in files:
        try:
            parsed[path] = list(yaml.safe_load_all(path.read_text()))
        except yaml.YAMLError as error:
            problems.append(f"{path}: not valid YAML: {' '.join(str(error).split())}")
    patch_files: set[Path] = set()
    kustomizations = [p for p in parsed if p.name in KUSTOMIZATION_NAMES]
    for path in kustomizations:
        docs = parsed[path]
        problems.extend(check_kustomization(path, docs[0] if docs else None, patch_files))
    # Patches are partial Deployments; what they produce is checked with --render.
    for path, docs in parsed.items():
        if path.name not in KUSTOMIZATION_NAMES and path.resolve() not in patch_files:
            problems.extend(check_documents(str(path), docs))
    if render:
        command = _renderer()
        if command is None:
            raise RuntimeError("--render needs `kustomize` or `kubectl` on PATH")
        for path in kustomizations:
            built = subprocess.run([*command, str(path.parent)], capture_output=True, text=True)
            if built.returncode != 0:
                problems.append(f"{path.parent}: does not build: {built.stderr.strip()}")
                continue
            rendered = list(yaml.safe_load_all(built.stdout))
            problems.extend(check_documents(f"{path.parent} (built)", rendered))
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m concord.k8s_check", description=SUMMARY)
    parser.add_argument("folder", type=Path, help="e.g. deploy/k8s")
    parser.add_argument(
        "--render", action="store_true", help="also check each kustomization's build"
    )
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        print(f"k8s-check: {args.folder} is not a folder", file=sys.stderr)
        return 2
    try:
        problems = check(args.folder, render=args.render)
    except RuntimeError as error:
        print(f"k8s-check: {error}", file=sys.stderr)
        return 2
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"k8s-check: {len(problems)} problem(s) in {args.folder}", file=sys.stderr)
        return 1
    print(f"k8s-check: {args.folder} is fine ({len(yaml_files(args.folder))} YAML files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
