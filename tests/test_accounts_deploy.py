"""The accounts file in production (issue #26): compose and kustomize set ACCOUNTS_FILE optionally, where both roles
read it, beside the routing file, and the example each ships is one the services would load.

No container engine: the manifests are parsed, the commented ACCOUNTS_FILE lines are read as an operator would
uncomment them, and the example files are checked by contract/accounts.py's own parser.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

import msgspec
import yaml

from contract.accounts import parse_accounts
from contract.settings import Settings

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


def commented(path: Path, pattern: str) -> str:
    """The value of the one commented-out line `# ACCOUNTS_FILE<sep>value` (`pattern` the separator)."""
    (value,) = re.findall(rf"^\s*#\s*ACCOUNTS_FILE{pattern}\s*(\S+)", path.read_text(), flags=re.MULTILINE)
    return value


def loads(example: Path) -> tuple[str, ...]:
    """The example's account names, parsed as the receiver and workers parse it, its variables set."""
    text = example.read_text()
    env = {name: f"value-of-{name}-0123456789" for name in re.findall(r"_env:\s*(\w+)", text)}
    return parse_accounts(text, env, source=example.name).names


def test_compose_mounts_the_accounts_directory_in_both_roles_and_ships_a_valid_example() -> None:
    """The receiver and the worker mount deploy/routing read-only at the same path; .env.example's commented
    ACCOUNTS_FILE names a file in it (a real setting); routing/accounts.example.yaml loads (alpha and beta)."""
    services = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    mounts = {role: services[role]["volumes"] for role in ("receiver", "worker")}
    assert mounts["receiver"] == mounts["worker"] == ["./routing:/etc/wavix-events:ro"]
    setting = commented(DEPLOY / ".env.example", "=")
    assert posixpath.dirname(setting) == "/etc/wavix-events"
    assert "ACCOUNTS_FILE" in {f.encode_name for f in msgspec.structs.fields(Settings)}
    assert loads(DEPLOY / "routing" / "accounts.example.yaml") == ("alpha", "beta")


def test_kustomize_mounts_the_routing_configmap_in_both_roles_where_accounts_file_points() -> None:
    """Both Deployments mount the wavix-events-routing ConfigMap (no subPath) at the directory of configmap.yaml's
    commented ACCOUNTS_FILE; kustomization.yaml's generator names accounts.yaml, commented, beside sinks.yaml; and
    k8s/accounts.example.yaml loads."""
    k8s = DEPLOY / "k8s"
    target = posixpath.dirname(commented(k8s / "configmap.yaml", ":"))
    for role in ("receiver", "worker"):
        pods = [d for d in yaml.safe_load_all((k8s / f"{role}.yaml").read_text()) if d and d["kind"] == "Deployment"]
        pod = pods[0]["spec"]["template"]["spec"]
        volume = next(v for v in pod["volumes"] if v.get("configMap", {}).get("name") == "wavix-events-routing")
        mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == volume["name"])
        assert mount["mountPath"] == target and mount["readOnly"] and "subPath" not in mount, role
    assert re.search(r"^\s*- sinks\.yaml\n\s*# - accounts\.yaml$", (k8s / "kustomization.yaml").read_text(),
                     flags=re.MULTILINE)
    assert loads(k8s / "accounts.example.yaml") == ("alpha", "beta")
