"""The Sentinel variants of the deployment: deploy/compose.sentinel.yaml and the overlay deploy/k8s-sentinel.

As tests/test_deploy.py: no container engine. compose.yaml with its override is merged as compose merges
(mappings key by key, a volume by its target, other lists replaced); the overlay is built from its
kustomization (the base's manifests, its own, the ConfigMap patch) and validated against Kubernetes' schemas.
What the containers would run is run here: the Redis and Sentinel configurations the compose commands write
are given to a real redis-server on loopback, and the Kubernetes start scripts run under sh with stand-ins
for redis-cli and redis-server, then their configurations are given to the real ones too.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import msgspec
import pytest
import redis
import yaml

from contract.redisurl import sentinel_target
from contract.settings import Settings
from workers.deliver.route import parse_destinations

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
OVERLAY = DEPLOY / "k8s-sentinel"
SETTINGS = {f.encode_name for f in msgspec.structs.fields(Settings)}
ROLES = ("receiver", "worker")  # the compose services that run wavix-events and talk to Redis
K8S_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
CRD_KINDS = {"ScaledObject"}


# ---- compose -----------------------------------------------------------------------------------------------


def _merge(base: Any, override: Any, key: str = "") -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        return {k: _merge(base[k], v, k) if k in base else v for k, v in override.items()} | {
            k: v for k, v in base.items() if k not in override}
    if key == "volumes" and isinstance(base, list) and isinstance(override, list):
        targets = {v.split(":")[1] for v in override}
        return [v for v in base if v.split(":")[1] not in targets] + override
    return override


def _compose() -> dict[str, Any]:
    """compose.yaml with compose.sentinel.yaml over it, as `docker compose -f ... -f ...` reads them."""
    base = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return _merge(base, yaml.safe_load((DEPLOY / "compose.sentinel.yaml").read_text()))  # type: ignore[no-any-return]


def _config_lines(service: dict[str, Any]) -> list[str]:
    """The configuration a node's or Sentinel's command writes (the quoted lines of its printf), `$$` read
    as compose reads it."""
    script = service["command"][-1].replace("$$", "$")
    words = shlex.split(script.split(">")[0].replace("\\\n", " "))
    return words[words.index("%s\\n") + 1:]


def _sentinel_conf(services: dict[str, Any]) -> dict[str, list[str]]:
    return {name: _config_lines(s) for name, s in services.items() if "--sentinel" in s.get("command", [""])[-1]}


def test_compose_sentinel_variant_has_a_primary_a_replica_and_three_sentinels_on_named_volumes() -> None:
    """redis (the primary, compose.yaml's volume), redis-replica following it, three Sentinels; every node
    keeps AOF and noeviction; each has a named volume of its own (their configurations live there) and a
    CMD healthcheck; none is behind a profile."""
    compose = _compose()
    services = compose["services"]
    sentinels = _sentinel_conf(services)
    assert sorted(sentinels) == ["sentinel-1", "sentinel-2", "sentinel-3"]
    nodes = {name: _config_lines(services[name]) for name in ("redis", "redis-replica")}
    for name, lines in nodes.items():
        assert {"appendonly yes", "appendfsync everysec", "maxmemory-policy noeviction"} <= set(lines), name
        assert f"replica-announce-ip {name}" in lines, "Sentinels hand out names: a container's address changes"
    assert "replicaof redis 6379" in nodes["redis-replica"] and not any("replicaof" in x for x in nodes["redis"])
    volumes = [services[name]["volumes"][0].split(":") for name in [*nodes, *sentinels]]
    assert all(target == "/data" and source in compose["volumes"] for source, target in volumes)
    assert len({source for source, _ in volumes}) == len(volumes)
    for name in [*nodes, *sentinels]:
        assert "profiles" not in services[name] and services[name]["healthcheck"]["test"][0] == "CMD", name
        assert "exec docker-entrypoint.sh redis-server /data/" in services[name]["command"][-1], name


def test_compose_sentinels_agree_on_the_primary_and_every_role_asks_them_for_it() -> None:
    """The Sentinels monitor one primary name at redis:6379 with a majority quorum; each role's REDIS_URL is a
    redis+sentinel:// URL naming that primary and exactly the Sentinel services, and waits for them healthy."""
    services = _compose()["services"]
    sentinels = _sentinel_conf(services)
    monitors = {next(x for x in lines if x.startswith("sentinel monitor ")) for lines in sentinels.values()}
    (monitor,) = monitors
    _, _, master, host, port, quorum = monitor.split()
    assert (host, port) == ("redis", "6379") and int(quorum) == len(sentinels) // 2 + 1
    for lines in sentinels.values():
        assert {"sentinel resolve-hostnames yes", "sentinel announce-hostnames yes"} <= set(lines)
        assert lines.index("sentinel resolve-hostnames yes") < lines.index(monitor), "names resolve before monitor"
        assert f"sentinel down-after-milliseconds {master} 5000" in lines
    for role in ROLES:
        env = services[role]["environment"]
        target = sentinel_target(env["REDIS_URL"])
        assert target is not None and target.master == master, role
        assert sorted(target.sentinels) == sorted((name, 26379) for name in sentinels), role
        assert all(services[role]["depends_on"][name]["condition"] == "service_healthy" for name in sentinels)
        assert set(env) <= SETTINGS, role
        Settings.from_env(env)


def test_compose_sentinel_workers_route_the_events_stream_through_the_sentinels() -> None:
    """The workers' SINKS_CONFIG is a file in their mounted routing directory whose Redis stream destination
    is ${REDIS_URL}: with the Sentinel URL it is a redis+sentinel:// destination, valid for the worker."""
    worker = _compose()["services"]["worker"]
    (mount,) = worker["volumes"]
    source, target, _ = mount.split(":")
    path = Path(worker["environment"]["SINKS_CONFIG"])
    assert str(path.parent) == target
    text = (DEPLOY / source / path.name).read_text()
    (events,) = parse_destinations(text, {"REDIS_URL": worker["environment"]["REDIS_URL"]}, source=path.name)
    assert events.url.startswith("redis+sentinel://sentinel-1:26379,") and "stream=wavix:events" in events.url


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _server(directory: Path, lines: list[str], *, sentinel: bool = False) -> Iterator[redis.Redis]:
    """redis-server (or a Sentinel) on a free loopback port with `lines` as its configuration file; the client
    logs in with its `requirepass`, if it has one."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is not installed (Debian: apt-get install redis-server)"
    port = _free_port()
    directory.mkdir(parents=True)
    conf = directory / "redis.conf"
    conf.write_text("\n".join([*lines, f"port {port}", "bind 127.0.0.1", f"dir {directory}", 'save ""']) + "\n")
    log = directory / "log"
    process = subprocess.Popen([binary, str(conf), *(["--sentinel"] if sentinel else [])],
                               stdout=log.open("wb"), stderr=subprocess.STDOUT)
    password = next((x.split()[1] for x in lines if x.startswith("requirepass ")), None)
    client = redis.Redis(port=port, password=password, socket_timeout=2, decode_responses=True)
    try:
        deadline = time.monotonic() + 10
        while True:
            assert process.poll() is None, log.read_text()
            try:
                client.ping()
                break
            except redis.RedisError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
        yield client
    finally:
        process.kill()
        process.wait()
        client.close()


def _in_sync(replica: redis.Redis) -> bool:
    return dict(replica.info("replication")).get("master_link_status") == "up"  # type: ignore[arg-type]


def _primary(sentinel: redis.Redis, master: str) -> tuple[str, int]:
    host, port = sentinel.sentinel_get_master_addr_by_name(master)  # type: ignore[no-untyped-call]
    return str(host), int(port)


def _replicas_known(sentinel: redis.Redis, master: str) -> int:
    return int(sentinel.sentinel_master(master)["num-slaves"])  # type: ignore[no-untyped-call]


def _until(check: Any, what: str, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def _on_loopback(lines: list[str], names: dict[str, int]) -> list[str]:
    """`lines` with each `NAME PORT` (and a bare announced NAME) moved to 127.0.0.1 and its real port."""
    out = []
    for line in lines:
        for name, port in names.items():
            line = re.sub(rf"\b{re.escape(name)} 6379\b", f"127.0.0.1 {port}", line)
        out.append(re.sub(r"^(replica-announce-ip|sentinel announce-ip) \S+$", r"\1 127.0.0.1", line))
    return out


def test_compose_node_and_sentinel_configurations_run_on_a_real_redis(tmp_path: Path) -> None:
    """The lines the compose commands write, moved to loopback: the replica syncs from the primary, and a
    Sentinel given sentinel-1's configuration names the primary and finds the replica."""
    services = _compose()["services"]
    sentinel_lines = _sentinel_conf(services)["sentinel-1"]
    with _server(tmp_path / "primary", _on_loopback(_config_lines(services["redis"]), {})) as primary:
        port = int(primary.connection_pool.connection_kwargs["port"])
        names = {"redis": port}
        replica_lines = _on_loopback(_config_lines(services["redis-replica"]), names)
        with _server(tmp_path / "replica", replica_lines) as replica, \
                _server(tmp_path / "sentinel", _on_loopback(sentinel_lines, names), sentinel=True) as sentinel:
            _until(lambda: _in_sync(replica), "replica not in sync")
            master = next(x.split()[2] for x in sentinel_lines if x.startswith("sentinel monitor "))
            assert _primary(sentinel, master) == ("127.0.0.1", port)
            _until(lambda: _replicas_known(sentinel, master) == 1, "the Sentinel did not find the replica")


# ---- Kubernetes --------------------------------------------------------------------------------------------


def _documents(directory: Path) -> list[dict[str, Any]]:
    """What `kubectl kustomize DIRECTORY` would give, for the kustomization features these two use."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    docs: list[dict[str, Any]] = []
    for name in kustomization["resources"]:
        path = (directory / name).resolve()
        docs += _documents(path) if path.is_dir() else [d for d in yaml.safe_load_all(path.read_text()) if d]
    for patch in kustomization.get("patches", []):
        change = yaml.safe_load((directory / patch["path"]).read_text())
        (target,) = [d for d in docs if (d["kind"], d["metadata"]["name"]) ==
                     (change["kind"], change["metadata"]["name"])]
        target["data"] = {**target.get("data", {}), **change["data"]}
    return docs


def _one(kind: str, name: str) -> dict[str, Any]:
    found = [d for d in _documents(OVERLAY) if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, (kind, name)
    return found[0]


def _env(statefulset: str) -> dict[str, Any]:
    container = _one("StatefulSet", statefulset)["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def _example_secrets() -> dict[str, dict[str, str]]:
    docs = yaml.safe_load_all((OVERLAY / "secret.example.yaml").read_text())
    return {d["metadata"]["name"]: d["stringData"] for d in docs if d}


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_overlay_manifests_validate_against_kubernetes_schemas(version: str) -> None:
    """The overlay (the base's manifests, two StatefulSets, their headless Services, PDBs, a NetworkPolicy)
    passes kubernetes-validate in strict mode; its example Secrets too; neither Secret is applied by it."""
    docs = _documents(OVERLAY)
    kinds = {d["kind"] for d in docs}
    assert {"StatefulSet", "NetworkPolicy", "Deployment", "ScaledObject"} <= kinds and "Secret" not in kinds
    for doc in docs:
        if doc["kind"] not in CRD_KINDS:
            kubernetes_validate.validate(doc, version, strict=True)
    for doc in yaml.safe_load_all((OVERLAY / "secret.example.yaml").read_text()):
        kubernetes_validate.validate(doc, version, strict=True)
    generated = yaml.safe_load((OVERLAY / "kustomization.yaml").read_text())["configMapGenerator"]
    assert all((OVERLAY / f).is_file() for g in generated for f in g["files"])


def test_overlay_roles_ask_the_three_sentinels_for_the_primary_they_monitor() -> None:
    """REDIS_URL (the example Secret every role reads) lists each Sentinel pod by its stable name on 26379
    and the SENTINEL_MASTER both StatefulSets use; NODES and SENTINELS match the replica counts; the quorum
    is a majority; ACK_REPLICAS asks for a replica and still answers with one replica down."""
    sentinels, nodes = _one("StatefulSet", "wavix-redis-sentinel"), _one("StatefulSet", "wavix-redis")
    s_env, n_env = _env("wavix-redis-sentinel"), _env("wavix-redis")
    service = sentinels["spec"]["serviceName"]
    assert _one("Service", service)["spec"]["clusterIP"] == "None"
    assert _one("Service", nodes["spec"]["serviceName"])["spec"]["clusterIP"] == "None"
    target = sentinel_target(_example_secrets()["wavix-events-secrets"]["REDIS_URL"])
    assert target is not None and target.master == s_env["SENTINEL_MASTER"] == n_env["SENTINEL_MASTER"]
    count = sentinels["spec"]["replicas"]
    assert list(target.sentinels) == [(f"wavix-redis-sentinel-{i}.{service}", 26379) for i in range(count)]
    assert int(s_env["SENTINELS"]) == int(n_env["SENTINELS"]) == count and int(s_env["QUORUM"]) == count // 2 + 1
    assert int(s_env["NODES"]) == int(n_env["NODES"]) == nodes["spec"]["replicas"] == 3
    config = _one("ConfigMap", "wavix-events-config")["data"]
    assert 1 <= int(config["ACK_REPLICAS"]) <= nodes["spec"]["replicas"] - 2
    assert set(config) <= SETTINGS and "REDIS_URL" not in config
    Settings.from_env({**config, "REDIS_URL": _example_secrets()["wavix-events-secrets"]["REDIS_URL"]})
    for name in ("wavix-events-receiver", "wavix-events-worker"):
        sources = _one("Deployment", name)["spec"]["template"]["spec"]["containers"][0]["envFrom"]
        assert {"secretRef": {"name": "wavix-events-secrets"}} in sources


def test_overlay_redis_pods_are_bounded_non_root_and_disruptions_keep_a_quorum() -> None:
    """Node and Sentinel pods: non-root, read-only root, no privilege escalation, memory limits (the nodes'
    MAXMEMORY below it), the scripts mounted; PDBs let one pod of each go at a time; the NetworkPolicy lets
    in only the roles' pods and each other."""
    for name in ("wavix-redis", "wavix-redis-sentinel"):
        spec = _one("StatefulSet", name)["spec"]
        pod = spec["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
        (container,) = pod["containers"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert "memory" in container["resources"]["limits"]
        assert container["command"][0] == "sh" and container["command"][1].startswith("/scripts/")
        pdb = _one("PodDisruptionBudget", name)["spec"]
        assert pdb["selector"]["matchLabels"] == spec["selector"]["matchLabels"] and pdb["maxUnavailable"] == 1
    limit = _one("StatefulSet", "wavix-redis")["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert int(_env("wavix-redis")["MAXMEMORY"].removesuffix("mb")) < int(limit["memory"].removesuffix("Gi")) * 1024
    (rule,) = _one("NetworkPolicy", "wavix-redis")["spec"]["ingress"]
    allowed = set(rule["from"][0]["podSelector"]["matchExpressions"][0]["values"])
    receiver = _one("Deployment", "wavix-events-receiver")["spec"]["template"]["metadata"]["labels"]
    assert {receiver["app.kubernetes.io/name"], "wavix-redis"} == allowed


# ---- the start scripts, run -------------------------------------------------------------------------------

_STAND_INS = {
    # redis-cli: a Sentinel answers FAKE_PRIMARY when it is set; a node named FAKE_MASTER_NODE says it is a
    # primary; PING answers; anything else is a connection refused.
    "redis-cli": """#!/bin/sh
case "$*" in
  *get-master-addr-by-name*) [ -n "${FAKE_PRIMARY:-}" ] && printf '%s\\n6379\\n' "$FAKE_PRIMARY" && exit 0 ;;
  *"-h $FAKE_MASTER_NODE INFO"*) [ -n "${FAKE_MASTER_NODE:-}" ] && echo role:master && exit 0 ;;
  *PING*) echo PONG; exit 0 ;;
esac
echo "Could not connect to Redis" >&2; exit 1
""",
    "redis-server": "#!/bin/sh\ncat \"$1\"\n",  # prints the configuration it was given
}


def _start(script: str, pod: str, tmp_path: Path, **fake: str) -> list[str]:
    """Runs the overlay's `script` as pod `pod` would (its StatefulSet's env, the password given); returns
    the configuration it hands to redis-server."""
    bin_dir, run_dir = tmp_path / "bin", tmp_path / pod
    bin_dir.mkdir(exist_ok=True)
    run_dir.mkdir()
    for name, text in _STAND_INS.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    statefulset = pod.rsplit("-", 1)[0]
    env = {k: v for k, v in _env(statefulset).items() if isinstance(v, str)}
    env |= {"RUN_DIR": str(run_dir), "REDIS_PASSWORD": "pw", "REDISCLI_AUTH": "pw", "HOSTNAME": pod,
            "PATH": f"{bin_dir}:{os.environ['PATH']}", **fake}
    result = subprocess.run(["sh", str(OVERLAY / script)], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [line for line in result.stdout.splitlines() if not line.startswith(("redis-start:", "sentinel-start:"))]


def test_start_scripts_pick_pod_0_first_and_whatever_the_sentinels_name_after(tmp_path: Path) -> None:
    """Nobody answers (the first start): pod 0 starts as the primary, pod 1 as its replica, a Sentinel watches
    pod 0. A Sentinel names pod 2 (a failover happened): pod 0 comes back as pod 2's replica. No Sentinel,
    but pod 1 says it is a primary (all Sentinels restarted at once): pod 0 follows pod 1."""
    first = _start("redis-start.sh", "wavix-redis-0", tmp_path)
    assert "replica-announce-ip wavix-redis-0.wavix-redis" in first and not any("replicaof" in x for x in first)
    assert "replicaof wavix-redis-0.wavix-redis 6379" in _start("redis-start.sh", "wavix-redis-1", tmp_path)
    sentinel = _start("sentinel-start.sh", "wavix-redis-sentinel-0", tmp_path)
    assert "sentinel monitor wavix wavix-redis-0.wavix-redis 6379 2" in sentinel
    after = tmp_path / "after"
    after.mkdir()
    assert "replicaof wavix-redis-2.wavix-redis 6379" in _start(
        "redis-start.sh", "wavix-redis-0", after, FAKE_PRIMARY="wavix-redis-2.wavix-redis")
    lost = tmp_path / "lost"
    lost.mkdir()
    assert "replicaof wavix-redis-1.wavix-redis 6379" in _start(
        "redis-start.sh", "wavix-redis-0", lost, FAKE_MASTER_NODE="wavix-redis-1.wavix-redis")


def test_start_scripts_configurations_run_on_a_real_redis(tmp_path: Path) -> None:
    """What the scripts write for pod 0, pod 1 and a Sentinel, moved to loopback, is accepted by the real
    redis-server: the replica authenticates and syncs, the Sentinel (auth-pass) names the primary."""
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    primary_lines = [x for x in _start("redis-start.sh", "wavix-redis-0", scripts) if not x.startswith(("port", "dir"))]
    replica_lines = [x for x in _start("redis-start.sh", "wavix-redis-1", scripts) if not x.startswith(("port", "dir"))]
    sentinel_lines = [x for x in _start("sentinel-start.sh", "wavix-redis-sentinel-0", scripts)
                      if not x.startswith(("port", "dir"))]
    with _server(tmp_path / "primary", _on_loopback(primary_lines, {})) as primary:
        port = int(primary.connection_pool.connection_kwargs["port"])
        names = {"wavix-redis-0.wavix-redis": port}
        with _server(tmp_path / "replica", _on_loopback(replica_lines, names)) as replica, \
                _server(tmp_path / "sentinel", _on_loopback(sentinel_lines, names), sentinel=True) as sentinel:
            _until(lambda: _in_sync(replica), "replica not in sync")
            assert _primary(sentinel, "wavix") == ("127.0.0.1", port)
            # The replica is known only from the primary's INFO: the Sentinel has logged in (auth-pass).
            _until(lambda: _replicas_known(sentinel, "wavix") == 1, "the Sentinel cannot log in")
