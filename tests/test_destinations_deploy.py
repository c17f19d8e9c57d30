"""The routing file in production, and the numbers to operate destinations by: compose, kustomize, Grafana, alerts.

No container engine: the manifests are parsed, the shipped routing files are validated by the worker's own
loader, and every metric the new panels and rules name must be one WorkerMetrics defines.
"""

from __future__ import annotations

import json
import posixpath
import re
from pathlib import Path
from typing import Any

import yaml

from workers.deliver.route import parse_destinations
from workers.operate.metrics import WorkerMetrics

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


def _series() -> set[str]:
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
    return {f.name + s for f in WorkerMetrics().registry.collect() for s in suffixes.get(f.type, ("",))}


def test_compose_mounts_the_routing_directory_and_points_sinks_config_into_it() -> None:
    """The worker mounts deploy/routing read-only (a directory, so an edit saved by rename is seen), SINKS_CONFIG
    names the file inside it, the receiver's REDIS_URL override is kept, and the shipped file is valid."""
    worker = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]["worker"]
    (mount,) = worker["volumes"]
    source, target, mode = mount.split(":")
    config = worker["environment"]["SINKS_CONFIG"]
    assert mode == "ro" and posixpath.dirname(config) == target
    assert worker["environment"]["REDIS_URL"] == "redis://redis:6379/0"
    shipped = DEPLOY / source / posixpath.basename(config)
    (events,) = parse_destinations(shipped.read_text(), {}, source=shipped.name)
    assert events.url.startswith("redis://redis:6379/0?stream=wavix:events")
    assert "rabbitmq:5672" in shipped.read_text() and "mq:5672" not in shipped.read_text().replace("rabbitmq", "")


def test_kustomize_ships_the_routing_file_as_a_configmap_the_worker_mounts() -> None:
    """kustomization.yaml generates wavix-events-routing from k8s/sinks.yaml (valid with REDIS_URL from the
    Secret); the worker mounts that ConfigMap, without subPath, at the directory SINKS_CONFIG names."""
    k8s = DEPLOY / "k8s"
    (generator,) = yaml.safe_load((k8s / "kustomization.yaml").read_text())["configMapGenerator"]
    assert generator["name"] == "wavix-events-routing" and generator["files"] == ["sinks.yaml"]
    parse_destinations((k8s / "sinks.yaml").read_text(), {"REDIS_URL": "redis://:pw@redis:6379/0"})
    config = yaml.safe_load((k8s / "configmap.yaml").read_text())["data"]["SINKS_CONFIG"]
    pod = yaml.safe_load((k8s / "worker.yaml").read_text())["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v.get("configMap", {}).get("name") == "wavix-events-routing")
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == volume["name"])
    assert mount["mountPath"] == posixpath.dirname(config) and mount["readOnly"] and "subPath" not in mount


def _panels() -> list[dict[str, Any]]:
    return json.loads((DEPLOY / "grafana" / "wavix-events.json").read_text())["panels"]  # type: ignore[no-any-return]


def test_dashboard_shows_each_destination() -> None:
    """A Destinations row charts deliveries by outcome, latency, backlog, failures, paused and dead letters,
    every one of them a series the worker exposes."""
    exprs = [t["expr"] for p in _panels() if p["type"] != "row" for t in p["targets"]]
    used = {n for e in exprs for n in re.findall(r"\bwavix_(?:deliver|destination)[a-z0-9_]*", e)}
    assert used == {"wavix_deliveries_total", "wavix_delivery_latency_seconds_bucket", "wavix_destination_backlog",
                    "wavix_destination_consecutive_failures", "wavix_destination_paused",
                    "wavix_destination_dead_letters"}
    assert used <= _series()
    assert any(p["type"] == "row" and p["title"] == "Destinations" for p in _panels())


def test_alerts_cover_failing_destinations_growing_dead_letters_and_down_workers() -> None:
    """alerts.yaml fires for a destination failing 15 minutes, dead letters being written, a worker down."""
    rules = {r["alert"]: r for g in yaml.safe_load((DEPLOY / "prometheus" / "alerts.yaml").read_text())["groups"]
             for r in g["rules"]}
    failing = rules["WavixDestinationFailing"]["expr"]
    assert "wavix_destination_failing_since_timestamp_seconds" in failing and "> 900" in failing
    assert "increase(wavix_dead_letters_total[" in rules["WavixDeadLettersGrowing"]["expr"]
    assert rules["WavixWorkerDown"]["expr"].startswith("up{") and rules["WavixWorkerDown"]["for"] == "5m"
    assert {n for r in rules.values() for n in re.findall(r"\bwavix_[a-z0-9_]+", r["expr"])} <= _series()


def test_every_commented_example_of_the_compose_routing_file_is_valid_once_uncommented() -> None:
    """The examples an operator uncomments (brokers, a signed webhook with its retry, rate and disable_after,
    an ops-event subscriber) load with the worker's own loader, each as it is written."""
    shipped = (DEPLOY / "routing" / "sinks.yaml").read_text()
    example = re.compile(r"^  # (- |  )")
    uncommented = "\n".join(line.replace("# ", "", 1) if example.match(line) else line
                            for line in shipped.splitlines())
    names = {d.name: d for d in parse_destinations(uncommented, {"CRM_WEBHOOK_SECRET": "s" * 32}, source="sinks.yaml")}
    assert sorted(names) == ["crm", "events", "jetstream", "ops", "rabbit"]
    assert names["crm"].disable_after_s == 2 * 86_400 and names["crm"].max_per_second == 5
    assert names["ops"].filter.types == ("wavix.ops.*",)
