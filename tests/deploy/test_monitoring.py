"""deploy/monitoring (ServiceMonitor, PrometheusRule) and deploy/grafana (the dashboard).

The Prometheus Operator's CRDs are not Kubernetes built-ins and are not available offline, so the
objects are checked by structure (known fields only, so a misspelt one fails), the ServiceMonitor
against the Service it must select, the alert expressions with `promtool check rules` and, alert
by alert, with `promtool test rules` on input series; the dashboard's queries are sent to a
throwaway Prometheus, which answers 400 to any that does not parse. Every `homeostat_*` metric
and label used must be one the operator exports (`OperatorMetrics`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from homeostat.operator.metrics import OperatorMetrics

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy" / "monitoring"
DASHBOARD = ROOT / "deploy" / "grafana" / "homeostat-dashboard.json"
NAMESPACE = "homeostat-system"
KUBECTL = shutil.which("kubectl")
PROMTOOL = shutil.which("promtool") or ("/usr/bin/promtool" if os.access("/usr/bin/promtool", os.X_OK) else None)
JOB = "homeostat-metrics"  # what the Prometheus Operator names the job: the Service's name
# Labels that Prometheus adds to every series of a ServiceMonitor target (honorLabels keeps the
# operator's own `namespace` where it has one).
TARGET_LABELS = {"job", "instance", "namespace", "pod", "service", "endpoint", "container"}
# Metrics from elsewhere that the dashboard and alerts use: the scrape's `up` and the kubelet's cAdvisor.
EXTERNAL_METRICS = {"up", "container_cpu_usage_seconds_total", "container_memory_working_set_bytes"}

# The fields of the Prometheus Operator's v1 objects that these manifests may use (a subset of
# the CRDs' schemas: anything else is a typo or needs adding here after checking the CRD).
SERVICEMONITOR_SPEC = {"selector", "namespaceSelector", "endpoints", "jobLabel", "targetLabels", "podTargetLabels",
                       "sampleLimit", "targetLimit"}
ENDPOINT = {"port", "targetPort", "path", "scheme", "interval", "scrapeTimeout", "honorLabels", "honorTimestamps",
            "relabelings", "metricRelabelings", "params", "tlsConfig", "bearerTokenSecret", "followRedirects"}
RULE_GROUP = {"name", "interval", "rules", "limit"}
RULE = {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"}


def exported_metrics() -> dict[str, set[str]]:
    """Every series name the operator exposes, with its label names (from the collectors)."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
    names: dict[str, set[str]] = {}
    for collector in vars(OperatorMetrics()).values():
        name, labelnames, kind = (getattr(collector, attr, None) for attr in ("_name", "_labelnames", "_type"))
        if name is None or labelnames is None:
            continue
        for suffix in suffixes.get(kind, ("",)):
            names[name + suffix] = set(labelnames) | ({"le"} if suffix == "_bucket" else set())
    return names


SELECTOR = re.compile(r"\b(homeostat_[a-z_]+)\s*(\{[^}]*\})?")


def check_names_and_labels(expr: str) -> list[str]:
    """Problems with the homeostat_* series and matchers in a PromQL expression."""
    exported = exported_metrics()
    problems = []
    for name, matchers in SELECTOR.findall(expr):
        if name not in exported:
            problems.append(f"{name} is not exported by the operator (known: {sorted(exported)})")
            continue
        for label in re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", matchers):
            if label not in exported[name] | TARGET_LABELS:
                problems.append(f"{name} has no label {label!r} (it has {sorted(exported[name])})")
    return problems


# --- the overlay ------------------------------------------------------------------------------------


def kustomize(path: Path) -> list[dict[str, Any]]:
    if KUBECTL is None:
        pytest.skip("kubectl is not installed: cannot render with kustomize")
    done = subprocess.run([KUBECTL, "kustomize", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"kubectl kustomize {path} failed:\n{done.stderr}"
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture(scope="module")
def monitoring() -> dict[str, dict[str, Any]]:
    objects = kustomize(MONITORING)
    kinds = sorted(o["kind"] for o in objects)
    assert kinds == ["PrometheusRule", "ServiceMonitor"], kinds
    return {o["kind"]: o for o in objects}


@pytest.fixture(scope="module")
def rules(monitoring: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [rule for group in monitoring["PrometheusRule"]["spec"]["groups"] for rule in group["rules"]]


def test_objects_are_prometheus_operator_v1_in_the_operators_namespace(monitoring: dict[str, dict[str, Any]]) -> None:
    for obj in monitoring.values():
        assert obj["apiVersion"] == "monitoring.coreos.com/v1"
        assert obj["metadata"]["namespace"] == NAMESPACE
        assert obj["metadata"]["labels"]["app.kubernetes.io/part-of"] == "homeostat"
        assert set(obj) == {"apiVersion", "kind", "metadata", "spec"}


def test_servicemonitor_scrapes_the_metrics_service_of_the_base(
    monitoring: dict[str, dict[str, Any]], kustomized: list[dict[str, Any]]
) -> None:
    monitor = monitoring["ServiceMonitor"]["spec"]
    assert set(monitor) <= SERVICEMONITOR_SPEC, set(monitor) - SERVICEMONITOR_SPEC
    services = [o for o in kustomized if o["kind"] == "Service"]
    wanted = monitor["selector"]["matchLabels"].items()
    selected = [s for s in services if all(s["metadata"].get("labels", {}).get(k) == v for k, v in wanted)]
    assert [s["metadata"]["name"] for s in selected] == [JOB], "the selector must pick exactly the metrics Service"
    service = selected[0]
    assert monitor["namespaceSelector"] == {"matchNames": [service["metadata"]["namespace"]]}
    port_names = {p["name"] for p in service["spec"]["ports"]}
    (endpoint,) = monitor["endpoints"]
    assert set(endpoint) <= ENDPOINT, set(endpoint) - ENDPOINT
    assert endpoint["port"] in port_names
    assert endpoint["path"] == "/metrics"
    # The policy's namespace is a label of the per-policy metrics; without honorLabels Prometheus
    # would rename it to exported_namespace and the alerts and dashboard would group wrongly.
    assert endpoint["honorLabels"] is True


def test_rules_are_well_formed_alerts(rules: list[dict[str, Any]], monitoring: dict[str, dict[str, Any]]) -> None:
    for group in monitoring["PrometheusRule"]["spec"]["groups"]:
        assert set(group) <= RULE_GROUP, set(group) - RULE_GROUP
    names = [rule["alert"] for rule in rules]
    assert sorted(names) == sorted([
        "HomeostatOperatorDown", "HomeostatPrometheusUnreachable", "HomeostatEvaluationsStalled",
        "HomeostatEvaluationsLagging", "HomeostatIncidentEscalated", "HomeostatNoLeader",
    ])
    for rule in rules:
        assert set(rule) <= RULE, f"{rule['alert']}: unknown fields {set(rule) - RULE}"
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        assert not check_names_and_labels(rule["expr"]), check_names_and_labels(rule["expr"])


def rules_file(monitoring: dict[str, dict[str, Any]], directory: Path, *, annotations: bool = True) -> Path:
    """The PrometheusRule's spec as a Prometheus rules file (without annotations for unit tests:
    promtool compares them rendered, and `promtool check rules` already parses their templates)."""
    groups = monitoring["PrometheusRule"]["spec"]["groups"]
    if not annotations:
        groups = [{**group, "rules": [{k: v for k, v in rule.items() if k != "annotations"} for rule in group["rules"]]}
                  for group in groups]
    path = directory / "homeostat-rules.yaml"
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    return path


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    if PROMTOOL is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus)")
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def test_promtool_accepts_the_rules(monitoring: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    path = rules_file(monitoring, tmp_path)
    done = promtool("check", "rules", str(path), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


# Series as the ServiceMonitor delivers them: job=homeostat-metrics, the operator's own labels, and
# (honorLabels) `namespace` = the policy's on per-policy metrics, the target's on the others.
OPERATOR = 'job="homeostat-metrics", instance="10.0.0.7:9464", pod="homeostat-operator-abc"'
SYSTEM = f'{OPERATOR}, namespace="homeostat-system"'
# A second replica of the operator (with leader election, one of the two leads).
STANDBY = ('job="homeostat-metrics", instance="10.0.0.8:9464", pod="homeostat-operator-def", '
           'namespace="homeostat-system"')


def alert(name: str, labels: dict[str, str], severity: str) -> dict[str, Any]:
    return {"exp_labels": {"severity": severity, **labels}}


RULE_TESTS: list[dict[str, Any]] = [
    {   # healthy: one policy evaluated every 30s, no errors: nothing fires
        "interval": "30s",
        "input_series": [
            {"series": f"up{{{SYSTEM}}}", "values": "1x60"},
            {"series": f'homeostat_evaluations_total{{{OPERATOR}, namespace="shop", policy="checkout", outcome="ok"}}',
             "values": "0+1x60"},
            {"series": f'homeostat_evaluation_lag_seconds{{{OPERATOR}, namespace="shop", policy="checkout"}}',
             "values": "0.01x60"},
            {"series": f'homeostat_incidents_total{{{SYSTEM}, phase="Detected"}}', "values": "0x30 1x30"},
            {"series": f'homeostat_leader{{{SYSTEM}, lease="homeostat"}}', "values": "1x60"},
            {"series": f'homeostat_leader{{{STANDBY}, lease="homeostat"}}', "values": "0x60"},
        ],
        "alert_rule_test": [
            {"eval_time": f"{m}m", "alertname": name, "exp_alerts": []}
            for m in (10, 29) for name in ("HomeostatOperatorDown", "HomeostatPrometheusUnreachable",
                                           "HomeostatEvaluationsStalled", "HomeostatEvaluationsLagging",
                                           "HomeostatIncidentEscalated", "HomeostatNoLeader")
        ],
    },
    {   # the leader's pod goes at 10m (its series ends); the standby leads a scrape later: no alert
        "interval": "30s",
        "input_series": [
            {"series": f'homeostat_leader{{{SYSTEM}, lease="homeostat"}}', "values": "1x20"},
            {"series": f'homeostat_leader{{{STANDBY}, lease="homeostat"}}', "values": "0x21 1x40"},
        ],
        "alert_rule_test": [{"eval_time": f"{m}m", "alertname": "HomeostatNoLeader", "exp_alerts": []}
                            for m in (10, 11, 14, 25)],
    },
    {   # from 5m neither replica holds the Lease of shard 1 (say, RBAC): fires after 2 minutes
        "interval": "1m",
        "input_series": [
            {"series": f'homeostat_leader{{{SYSTEM}, lease="homeostat-shard-1"}}', "values": "1x4 0x20"},
            {"series": f'homeostat_leader{{{STANDBY}, lease="homeostat-shard-1"}}', "values": "0x25"},
            {"series": f'homeostat_leader{{{STANDBY}, lease="homeostat-shard-0"}}', "values": "1x25"},
        ],
        "alert_rule_test": [
            {"eval_time": "6m", "alertname": "HomeostatNoLeader", "exp_alerts": []},
            {"eval_time": "8m", "alertname": "HomeostatNoLeader", "exp_alerts": [
                alert("HomeostatNoLeader", {"namespace": NAMESPACE, "lease": "homeostat-shard-1"}, "critical")]},
        ],
    },
    {   # the operator stops answering at 5m: down after 5 more minutes
        "interval": "1m",
        "input_series": [{"series": f"up{{{SYSTEM}}}", "values": "1x4 0x20"}],
        "alert_rule_test": [
            {"eval_time": "8m", "alertname": "HomeostatOperatorDown", "exp_alerts": []},
            {"eval_time": "11m", "alertname": "HomeostatOperatorDown", "exp_alerts": [
                alert("HomeostatOperatorDown", {"job": JOB, "instance": "10.0.0.7:9464",
                                                "pod": "homeostat-operator-abc", "namespace": NAMESPACE}, "critical")]},
        ],
    },
    {   # no target at all (Deployment gone, ServiceMonitor not selected)
        "interval": "1m",
        "input_series": [{"series": 'up{job="something-else"}', "values": "1x20"}],
        "alert_rule_test": [
            {"eval_time": "3m", "alertname": "HomeostatOperatorDown", "exp_alerts": []},
            {"eval_time": "6m", "alertname": "HomeostatOperatorDown",
             "exp_alerts": [alert("HomeostatOperatorDown", {"job": JOB}, "critical")]},
        ],
    },
    {   # queries fail as unavailable from 10m on: the alert needs 10 minutes of errors
        "interval": "1m",
        "input_series": [{"series": f'homeostat_query_errors_total{{{SYSTEM}, reason="unavailable"}}',
                          "values": "0x10 0+4x30"}],
        "alert_rule_test": [
            {"eval_time": "15m", "alertname": "HomeostatPrometheusUnreachable", "exp_alerts": []},
            {"eval_time": "25m", "alertname": "HomeostatPrometheusUnreachable", "exp_alerts": [
                alert("HomeostatPrometheusUnreachable", {"job": JOB, "namespace": NAMESPACE,
                                                         "pod": "homeostat-operator-abc"}, "warning")]},
        ],
    },
    {   # a rejected query is the policy's fault, not an outage: no alert
        "interval": "1m",
        "input_series": [{"series": f'homeostat_query_errors_total{{{SYSTEM}, reason="rejected"}}',
                          "values": "0+4x40"}],
        "alert_rule_test": [{"eval_time": "30m", "alertname": "HomeostatPrometheusUnreachable", "exp_alerts": []}],
    },
    {   # checkout is evaluated until 10m, then its monitor hangs; an invalid policy never is (no lag gauge)
        "interval": "30s",
        "input_series": [
            {"series": f'homeostat_evaluations_total{{{OPERATOR}, namespace="shop", policy="checkout", outcome="ok"}}',
             "values": "0+1x20 20x60"},
            {"series": f'homeostat_evaluation_lag_seconds{{{OPERATOR}, namespace="shop", policy="checkout"}}',
             "values": "0.02x80"},
            {"series": f'homeostat_evaluations_total{{{OPERATOR}, namespace="shop", policy="broken", '
                       'outcome="invalid"}', "values": "1x80"},
        ],
        "alert_rule_test": [
            {"eval_time": "12m", "alertname": "HomeostatEvaluationsStalled", "exp_alerts": []},
            {"eval_time": "22m", "alertname": "HomeostatEvaluationsStalled", "exp_alerts": [
                alert("HomeostatEvaluationsStalled", {"namespace": "shop", "policy": "checkout"}, "warning")]},
        ],
    },
    {   # cycles start 90 s late for 10 minutes
        "interval": "1m",
        "input_series": [
            {"series": f'homeostat_evaluation_lag_seconds{{{OPERATOR}, namespace="shop", policy="checkout"}}',
             "values": "0x5 90x15"},
            {"series": f'homeostat_evaluations_total{{{OPERATOR}, namespace="shop", policy="checkout", outcome="ok"}}',
             "values": "0+1x20"},
        ],
        "alert_rule_test": [
            {"eval_time": "8m", "alertname": "HomeostatEvaluationsLagging", "exp_alerts": []},
            {"eval_time": "12m", "alertname": "HomeostatEvaluationsLagging", "exp_alerts": [
                alert("HomeostatEvaluationsLagging", {"namespace": "shop", "policy": "checkout"}, "warning")]},
        ],
    },
    {   # one incident escalates at 10m: the alert fires at once and stops 30 minutes later
        "interval": "1m",
        "input_series": [{"series": f'homeostat_incidents_total{{{SYSTEM}, phase="Escalated"}}',
                          "values": "0x10 1x50"}],
        "alert_rule_test": [
            {"eval_time": "9m", "alertname": "HomeostatIncidentEscalated", "exp_alerts": []},
            {"eval_time": "12m", "alertname": "HomeostatIncidentEscalated", "exp_alerts": [
                alert("HomeostatIncidentEscalated", {"job": JOB, "namespace": NAMESPACE,
                                                     "pod": "homeostat-operator-abc"}, "critical")]},
            {"eval_time": "45m", "alertname": "HomeostatIncidentEscalated", "exp_alerts": []},
        ],
    },
]


def test_alerts_fire_when_they_should_and_only_then(monitoring: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    path = rules_file(monitoring, tmp_path, annotations=False)
    tests = tmp_path / "homeostat-rules-test.yaml"
    tests.write_text(yaml.safe_dump({"rule_files": [path.name], "evaluation_interval": "30s", "tests": RULE_TESTS},
                                    sort_keys=False))
    done = promtool("test", "rules", str(tests), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_overlay_composes_with_the_base(tmp_path: Path) -> None:
    """The documented way to install both at once: an overlay listing deploy/ and deploy/monitoring/."""
    overlay = tmp_path / "my-cluster"
    overlay.mkdir()
    resources = [os.path.relpath(ROOT / "deploy", overlay), os.path.relpath(MONITORING, overlay)]
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump({"resources": resources}))
    kinds = sorted(o["kind"] for o in kustomize(overlay))
    assert kinds.count("ServiceMonitor") == 1 and kinds.count("PrometheusRule") == 1
    assert "Deployment" in kinds and "Service" in kinds


# --- the dashboard ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def expressions(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target and every variable's label_values() selector."""
    found = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            found.append((f"panel {panel['title']!r} {target['refId']}", target["expr"]))
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        match = re.fullmatch(r"label_values\((.+),\s*([a-zA-Z_]+)\)", variable["query"]["query"])
        assert match, f"variable {variable['name']}: expected label_values(selector, label)"
        found.append((f"variable {variable['name']}", match.group(1)))
    return found


GRAFANA_VARIABLES = {"__rate_interval": "2m", "__interval": "30s", "__range": "6h", "job": JOB,
                     "namespace": ".+", "policy": ".+", "datasource": "prometheus"}


def substitute(expr: str) -> str:
    """Grafana's `$var`, `${var}` and `[[var]]` with plausible values, as Grafana would send them."""
    def value(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        assert name in GRAFANA_VARIABLES, f"unknown Grafana variable ${name}"
        return GRAFANA_VARIABLES[name]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)|\[\[(\w+)\]\]", value, expr)


def test_dashboard_is_a_grafana_dashboard(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "homeostat-operator" and dashboard["title"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for panel in dashboard["panels"]:
        position = panel["gridPos"]
        assert position["x"] >= 0 and position["x"] + position["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        assert panel.get("description"), f"panel {panel['title']!r}: say what it shows"
    titles = " ".join(panel["title"].lower() for panel in dashboard["panels"])
    for topic in ("outcome", "latency", "errors", "series tracked", "anomalous", "lag", "detector cpu",
                  "incidents", "actions"):
        assert topic in titles, f"no panel about {topic}"


def test_dashboard_uses_only_exported_metrics_and_labels(dashboard: dict[str, Any]) -> None:
    problems = [f"{where}: {problem}" for where, expr in expressions(dashboard)
                for problem in check_names_and_labels(expr)]
    assert not problems, "\n".join(problems)
    used = {name for _, expr in expressions(dashboard) for name in re.findall(r"\b([a-z_]+)\s*\{", expr)}
    unknown = {name for name in used if not name.startswith("homeostat_")} - EXTERNAL_METRICS - {"by", "without"}
    assert not unknown, f"metrics from outside the operator not listed in EXTERNAL_METRICS: {unknown}"


@pytest.fixture(scope="module")
def prometheus_url() -> Iterator[str]:
    from homeostat.lab.prometheus import PrometheusMissing, PrometheusServer

    try:
        server = PrometheusServer(scrape_interval=5.0).start()
    except PrometheusMissing as exc:
        pytest.skip(str(exc))
    try:
        yield server.url
    finally:
        server.stop()


def test_every_dashboard_query_parses(dashboard: dict[str, Any], prometheus_url: str) -> None:
    failures = []
    for where, expr in expressions(dashboard):
        response = httpx.get(f"{prometheus_url}/api/v1/query", params={"query": substitute(expr)}, timeout=10)
        if response.status_code != 200:
            failures.append(f"{where}: {response.status_code} {response.json().get('error')}\n    {expr}")
    assert not failures, "\n".join(failures)


def test_rule_expressions_parse_in_prometheus_too(rules: list[dict[str, Any]], prometheus_url: str) -> None:
    for rule in rules:
        response = httpx.get(f"{prometheus_url}/api/v1/query", params={"query": rule["expr"]}, timeout=10)
        assert response.status_code == 200, f"{rule['alert']}: {response.text}"


def test_dashboard_configmap_for_the_grafana_sidecar() -> None:
    (configmap,) = kustomize(DASHBOARD.parent)
    assert configmap["kind"] == "ConfigMap" and configmap["metadata"]["name"] == "homeostat-dashboard"
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(configmap["data"][DASHBOARD.name]) == json.loads(DASHBOARD.read_text())
    # `kubectl apply` keeps the whole object in an annotation, limited to 256 KiB.
    assert len(DASHBOARD.read_bytes()) < 200_000
