"""monitoring/: Prometheus configuration and alert rules checked and unit-tested by promtool;
every metric that an alert, a rule test or a Grafana panel names is one the service exports;
Grafana provisioning and the compose services agree with each other.

promtool comes from Debian's `prometheus` package (.ci/run installs it). Without it the
promtool tests skip, except under REQUIRE_SERVICES=1 (CI), where they fail.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from celery import Celery
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from ops.celery_observability import QueueLengthCollector
from ops.exposition import render

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "monitoring"
DASHBOARDS = sorted((MONITORING / "grafana" / "dashboards").glob("*.json"))
DATASOURCES = MONITORING / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
PROVIDERS = MONITORING / "grafana" / "provisioning" / "dashboards" / "portfolio.yml"
# Series Prometheus itself makes; not ours to export.
PROMETHEUS_OWN = {"up", "ALERTS", "ALERTS_FOR_STATE", "scrape_duration_seconds"}


def _promtool() -> str:
    found = shutil.which("promtool")
    if found:
        return found
    message = "needs promtool (apt-get install prometheus; .ci/run installs it)"
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(f"REQUIRE_SERVICES=1 but the test {message}")
    pytest.skip(message)


def _yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


# --- promtool ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ("check", "config", "monitoring/prometheus.yml"),
        ("check", "rules", "monitoring/alerts.yml"),
        ("test", "rules", "monitoring/alerts.test.yml"),
    ],
    ids=["check-config", "check-rules", "test-rules"],
)
def test_promtool__monitoring_files__pass(argv):
    result = subprocess.run(
        [_promtool(), *argv], cwd=ROOT, capture_output=True, text=True, timeout=120
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_alert_rules__every_alert__tested_and_documented():
    alerts = {
        rule["alert"]
        for group in _yaml(MONITORING / "alerts.yml")["groups"]
        for rule in group["rules"]
    }
    tested = {
        case["alertname"]
        for test in _yaml(MONITORING / "alerts.test.yml")["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    monitoring_doc = (ROOT / "docs" / "MONITORING.md").read_text()

    assert alerts >= {
        "TargetDown",
        "APIHighLatencyP95",
        "APIHighErrorRate",
        "CacheHitRateLow",
        "CeleryBacklog",
        "CeleryTaskFailures",
        "LLMFailureRate",
        "IngestionStalled",
    }
    assert alerts == tested  # each one is seen firing in a unit test
    for alert in alerts:
        assert f"### {alert}" in monitoring_doc, alert


# --- metric names ------------------------------------------------------------------------------

_STRINGS = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'')
_GROUPING = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", re.IGNORECASE
)
_IDENTIFIER = re.compile(r"(?<![\w:.$])([A-Za-z_:][A-Za-z0-9_:]*)(?![\w:])(?!\s*\()")
_KEYWORDS = {
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "inf",
    "nan",
}


def promql_metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: identifiers left once strings, label
    matchers, ranges, grouping clauses, Grafana variables and function calls are set aside."""
    text = _STRINGS.sub('""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\$\{?\w+\}?", " ", text)
    text = _GROUPING.sub(" ", text)
    return {name for name in _IDENTIFIER.findall(text) if name.lower() not in _KEYWORDS}


def test_promql_metric_names__extracts_selectors_only():
    expr = (
        "histogram_quantile(0.95, sum by (le, endpoint) "
        '(rate(api_request_duration_seconds_bucket{endpoint=~"api/.*"}[$__rate_interval])))'
        ' > 0.2 and on (job) up{job="x"} == bool 1 unless sum(increase(x_total[1h] offset 1d))'
        ' or vector(0) / ignoring (a) count_values("v", y)'
    )

    assert promql_metric_names(expr) == {
        "api_request_duration_seconds_bucket",
        "up",
        "x_total",
        "y",
    }


def _queries() -> dict[str, set[str]]:
    """Every PromQL expression in monitoring/, by where it is."""
    queries: dict[str, set[str]] = {}
    for group in _yaml(MONITORING / "alerts.yml")["groups"]:
        for rule in group["rules"]:
            queries.setdefault("alerts.yml", set()).add(rule["expr"])
    for test in _yaml(MONITORING / "alerts.test.yml")["tests"]:
        for series in test.get("input_series", []):
            queries.setdefault("alerts.test.yml", set()).add(series["series"])
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                queries.setdefault(path.name, set()).add(target["expr"])
    return queries


def _exported_names(exposition: str) -> set[str]:
    """Sample names, plus the names a family will have once it has samples (a counter's
    `_total`, a histogram's `_bucket`/`_sum`/`_count`): families with no sample yet, like the
    LLM metrics before the first call, are exported too."""
    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_sum", "_count"),
        "summary": ("_sum", "_count", ""),
        "gauge": ("",),
    }
    names: set[str] = set()
    for family in text_string_to_metric_families(exposition):
        names.update(sample.name for sample in family.samples)
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
    return names


@pytest.mark.django_db
def test_monitoring_queries__every_metric_named__really_exported(client, settings):
    settings.RATELIMIT_ENABLE = False
    client.get("/api/personalization?user_id=monitoring.check")
    client.get("/api/personalization?user_id=monitoring.check")
    client.post("/api/events", data="{bad", content_type="application/json")
    client.get("/no/such/page")
    web = client.get("/metrics").content.decode()
    # What a worker node's port adds: its queue lengths (here from an in-memory broker).
    queues = CollectorRegistry()
    queues.register(
        QueueLengthCollector(Celery(broker="memory://", set_as_current=False), ["celery"])
    )
    worker = render([queues]).decode()
    exported = _exported_names(web) | _exported_names(worker) | PROMETHEUS_OWN

    unknown = {
        where: sorted(
            name for expr in exprs for name in promql_metric_names(expr) if name not in exported
        )
        for where, exprs in _queries().items()
    }

    assert {where: names for where, names in unknown.items() if names} == {}
    named = {
        name
        for exprs in _queries().values()
        for expr in exprs
        for name in promql_metric_names(expr)
    }
    # The dashboards and alerts do use our own metrics, not just Prometheus's.
    assert {
        "api_requests_total",
        "api_request_duration_seconds_bucket",
        "events_ingested_total",
        "events_rejected_total",
        "cache_hits_total",
        "celery_tasks_total",
        "celery_queue_length",
        "llm_requests_total",
        "llm_tokens_total",
        "visitors_segmented_total",
        "db_queries_total",
        "active_db_connections",
    } <= named


# --- Grafana and compose -----------------------------------------------------------------------


def test_grafana_dashboards__valid_and_on_the_provisioned_datasource():
    (datasource,) = _yaml(DATASOURCES)["datasources"]
    titles, uids = [], []
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        titles.append(dashboard["title"])
        uids.append(dashboard["uid"])
        ids = [panel["id"] for panel in dashboard["panels"]]
        assert len(ids) == len(set(ids)), path.name
        for panel in dashboard["panels"]:
            assert panel["datasource"]["uid"] == datasource["uid"], (path.name, panel["title"])
            assert panel["targets"], (path.name, panel["title"])
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == datasource["uid"]

    assert len(uids) == len(set(uids))
    for area in ("API", "Ingestion", "Segmentation", "Cache", "Celery", "LLM"):
        assert any(area in title for title in titles), area


def test_compose__monitoring_services__mount_what_provisioning_expects():
    services = _yaml(ROOT / "compose.yaml")["services"]
    (provider,) = _yaml(PROVIDERS)["providers"]
    grafana_mounts = dict(volume.split(":")[:2] for volume in services["grafana"]["volumes"])
    scrape = {
        job["job_name"]: job for job in _yaml(MONITORING / "prometheus.yml")["scrape_configs"]
    }

    assert grafana_mounts["./monitoring/grafana/dashboards"] == provider["options"]["path"]
    assert grafana_mounts["./monitoring/grafana/provisioning"] == "/etc/grafana/provisioning"
    assert "./monitoring:/etc/prometheus:ro" in services["prometheus"]["volumes"]
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["monitoring"]
        assert re.fullmatch(r"[\w./-]+:v?\d+\.\d+\.\d+", services[name]["image"]), name
    worker_port = int(services["worker"]["environment"]["CELERY_METRICS_PORT"])
    assert scrape["portfolio-worker"]["dns_sd_configs"][0]["port"] == worker_port
    assert str(worker_port) in services["worker"]["expose"]
    assert scrape["portfolio-web"]["dns_sd_configs"][0]["port"] == 8000


def test_queue_length_collector__published_message__counted():
    app = Celery(broker="memory://", set_as_current=False)
    collector = QueueLengthCollector(app, ["jobs", "idle"])
    with app.connection_for_write() as connection:
        connection.default_channel.queue_declare("jobs")
        connection.Producer().publish({"n": 1}, routing_key="jobs")

    (family,) = collector.collect()

    assert {s.labels["queue"]: s.value for s in family.samples} == {"jobs": 1, "idle": 0}


def test_queue_length_collector__broker_down__no_family_no_error():
    collector = QueueLengthCollector(
        Celery(broker="redis://127.0.0.1:1/0", set_as_current=False), ["celery"]
    )

    assert list(collector.collect()) == []
