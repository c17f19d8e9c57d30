"""deploy/prometheus/alerts.yaml: the reconcile alerts exist, are well formed, and query metrics the worker defines.

No Prometheus runs here (promtool is not installed): the file is parsed as Prometheus' rule-file shape and
every `wavix_*` series it names is checked against `WorkerMetrics`, so a renamed metric fails this test.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from workers.operate.metrics import WorkerMetrics

RULES = Path(__file__).resolve().parent.parent / "deploy" / "prometheus" / "alerts.yaml"
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def _rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_rules_have_prometheus_shape() -> None:
    """Each rule has an alert name, a balanced expr, a valid `for`, a severity and a summary; names are unique."""
    rules = _rules()
    assert len({r["alert"] for r in rules}) == len(rules)
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        expr = rule["expr"]
        assert expr.count("(") == expr.count(")") and expr.count("[") == expr.count("]"), rule["alert"]
        assert re.fullmatch(r"\d+[smhd]", rule.get("for", "0s")), rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_rules_query_only_metrics_the_worker_exposes() -> None:
    """Every wavix_* series in the rules is one WorkerMetrics exposes (a counter `x` scrapes as `x_total`)."""
    known = {family.name + suffix for family in WorkerMetrics().registry.collect()
             for suffix in _SUFFIXES.get(family.type, ("",))}
    used = {name for rule in _rules() for name in re.findall(r"\bwavix_[a-z0-9_]+", rule["expr"])}
    assert used and not used - known, sorted(used - known)


def test_missed_webhooks_and_failing_reconciliation_are_alerted() -> None:
    """One rule fires on reconciled calls increasing; the others on no success for 3 intervals and on failures."""
    exprs = {r["alert"]: " ".join(r["expr"].split()) for r in _rules()}
    assert "increase(wavix_reconciled_calls_total[" in exprs["WavixWebhooksMissed"]
    stale = exprs["WavixReconciliationStale"]
    assert "wavix_reconcile_last_success_timestamp_seconds" in stale
    assert "> 3 * max(wavix_reconcile_interval_seconds)" in stale
    assert "increase(wavix_reconcile_failures_total[" in exprs["WavixReconciliationFailing"]
