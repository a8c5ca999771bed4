"""deploy/prometheus and deploy/grafana: the alert rules pass ``promtool check rules`` and their unit
tests (``promtool test rules``), every PromQL expression of the dashboard parses, the dashboard is
well formed, and every lanai_* metric either of them names is one a real lanai server exports.

promtool comes from Debian's ``prometheus`` package (.ci/run installs it); without it the promtool
tests skip, and the dashboard's structure and metric names are still checked.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from lanai.telemetry.metrics import Metrics

from support import RunningServer

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "lanai-alerts.yml"
RULE_TESTS = DEPLOY / "prometheus" / "lanai-alerts.test.yml"
DASHBOARD = DEPLOY / "grafana" / "lanai-fleet.json"

# A lanai metric name, not part of a recording rule's name (level:metric:operations).
METRIC = re.compile(r"(?<![\w:])lanai_[A-Za-z0-9_]+(?![\w:])")
RECORDED = re.compile(r"\b[a-zA-Z_]\w*:\w+:\w+\b")
# Grafana's variables, replaced by something PromQL accepts before promtool sees the expression.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "1m",
    "$__range": "1h",
    "${datasource}": "prometheus",
    "$instance": ".*",
    "$model": ".*",
}
MUST_FIRE = {"LanaiHot", "LanaiOverheating", "LanaiBoxDown", "LanaiRolledBack", "LanaiErrorsAfterUpdate",
             "LanaiDegraded"}  # fmt: skip


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool is missing: apt-get install prometheus (Debian), as .ci/run does")
    return found


def run_promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=60, cwd=cwd)


def load_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in document["groups"] for rule in group["rules"]]


def load_dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, those inside collapsed rows too, without the rows themselves."""
    found = []
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            found.extend(panel.get("panels", []))
        else:
            found.append(panel)
    return found


def grafana_to_promql(text: str) -> str:
    for variable, value in sorted(GRAFANA_VARIABLES.items(), key=lambda item: -len(item[0])):
        text = text.replace(variable, value)
    assert "$" not in text, f"a Grafana variable this test does not know: {text}"
    return text


def dashboard_expressions(dashboard: dict[str, Any]) -> dict[str, str]:
    """Where each PromQL expression of the dashboard is → the expression, Grafana's variables replaced."""
    found = {}
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            found[f"panel {panel['title']!r} target {target['refId']}"] = target["expr"]
    for annotation in dashboard["annotations"]["list"]:
        if "expr" in annotation:
            found[f"annotation {annotation['name']!r}"] = annotation["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
            inner = re.fullmatch(r"label_values\((.+), *\w+\)", query)
            assert inner, f"variable {variable['name']}: label_values(SELECTOR, LABEL) expected, not {query}"
            found[f"variable {variable['name']!r}"] = inner.group(1)
    return {where: grafana_to_promql(expr) for where, expr in found.items()}


def exported_metrics(*expositions: str) -> tuple[set[str], set[str]]:
    """(the series names a query may use, the family names prose may use) from text expositions."""
    series: set[str] = set()
    families: set[str] = set()
    for exposition in expositions:
        for line in exposition.splitlines():
            if line.startswith("# TYPE "):
                _, _, name, kind = line.split(maxsplit=3)
                if kind == "counter":
                    base = name.removesuffix("_total")
                    series.add(f"{base}_total")
                    families.add(base)
                elif kind == "histogram":
                    series.update(f"{name}{suffix}" for suffix in ("_bucket", "_sum", "_count"))
                elif kind == "summary":
                    series.update((name, f"{name}_sum", f"{name}_count"))
                else:
                    series.add(name)
                families.add(name)
            elif line and not line.startswith("#"):
                series.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return series, families | series


def test_promtool_checks_the_rules() -> None:
    result = run_promtool("check", "rules", RULES.name, cwd=RULES.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_unit_tests_of_the_rules_pass() -> None:
    result = run_promtool("test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_unit_tests_cover_every_alert_and_a_deliberate_drain() -> None:
    alerts = {rule["alert"] for rule in load_rules() if "alert" in rule}
    tests = yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))["tests"]
    checks = [check for test in tests for check in test.get("alert_rule_test", [])]
    fired = {check["alertname"] for check in checks if check.get("exp_alerts")}
    assert MUST_FIRE <= alerts
    assert fired == alerts, f"alerts no unit test sees fire: {sorted(alerts - fired)}"
    # The draining box: no alert of the not-ready kind while it drains for half an hour.
    draining = [
        test for test in tests if any('state="draining"' in series["series"] for series in test["input_series"])
    ]
    assert draining
    quiet = {
        check["alertname"]
        for test in draining
        for check in test["alert_rule_test"]
        if check["eval_time"] == "30m"
        and not any(alert["exp_labels"].get("state") == "draining" for alert in check["exp_alerts"])
    }
    assert {"LanaiDegraded", "LanaiStuckLoading", "LanaiDrainingForLong"} <= quiet


def test_every_promql_expression_parses(tmp_path: Path) -> None:
    expressions = dashboard_expressions(load_dashboard())
    expressions.update({f"rule {rule.get('alert') or rule['record']}": rule["expr"] for rule in load_rules()})
    assert len(expressions) > 30
    rules = {
        "groups": [
            {
                "name": "expressions",
                "rules": [
                    {"record": f"check:expression:{n}", "expr": expr} for n, expr in enumerate(expressions.values())
                ],
            }
        ]
    }
    checked = tmp_path / "expressions.yml"
    checked.write_text(yaml.safe_dump(rules), encoding="utf-8")
    result = run_promtool("check", "rules", str(checked), cwd=tmp_path)
    assert result.returncode == 0, f"{result.stdout}{result.stderr}\n" + "\n".join(
        f"{n}: {where}: {expr}" for n, (where, expr) in enumerate(expressions.items())
    )
    # and promtool does refuse a broken one, so the check above means something
    broken = tmp_path / "broken.yml"
    broken.write_text(yaml.safe_dump({"groups": [{"name": "b", "rules": [{"record": "b:c:d", "expr": "rate(x[5m]"}]}]}))
    assert run_promtool("check", "rules", str(broken), cwd=tmp_path).returncode != 0


def test_the_dashboard_is_well_formed() -> None:
    dashboard = load_dashboard()
    assert dashboard["schemaVersion"] >= 39
    assert dashboard["uid"] and dashboard["title"]
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("instance", "model"):
        assert variables[name]["type"] == "query"
        query = variables[name]["query"]
        assert (query["query"] if isinstance(query, dict) else query).startswith("label_values("), name
        assert variables[name]["datasource"]["uid"] == "${datasource}"
    rows = [panel["title"] for panel in dashboard["panels"] if panel["type"] == "row"]
    assert len(rows) >= 4
    ids = [panel["id"] for panel in dashboard["panels"]] + [
        p["id"] for p in panels(dashboard) if p not in dashboard["panels"]
    ]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for panel in panels(dashboard):
        where = f"panel {panel.get('title')!r}"
        assert panel.get("title") and panel.get("description"), where
        assert panel.get("datasource") == {"type": "prometheus", "uid": "${datasource}"}, where
        assert panel.get("targets"), f"{where} has no target"
        for target in panel["targets"]:
            assert target.get("expr", "").strip(), f"{where} has an empty target"
            assert target.get("datasource", panel["datasource"])["uid"] == "${datasource}", where
        assert panel["fieldConfig"]["defaults"].get("unit"), f"{where} has no unit"
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, where
    everything = json.dumps(dashboard)
    for wanted in ("lanai_temperature_celsius", "lanai_model_info", "histogram_quantile(0.99"):
        assert wanted in everything
    temperature = next(p for p in panels(dashboard) if "lanai_temperature_celsius" in p["targets"][0]["expr"])
    steps = [step["value"] for step in temperature["fieldConfig"]["defaults"]["thresholds"]["steps"]]
    assert steps == [None, 75, 82], "lanai's soft and hard temperature limits"


def test_every_lanai_metric_named_is_one_lanai_exports(server: RunningServer) -> None:
    server.client.get("/metrics")  # so that the next read has request samples of its own
    response = server.client.get("/metrics")
    assert response.status_code == 200, response.text
    series, families = exported_metrics(response.text, Metrics().render().decode())
    assert {"lanai_requests_total", "lanai_request_duration_seconds_bucket", "lanai_model_info"} <= series

    dashboard = load_dashboard()
    rules = load_rules()
    queries = [*dashboard_expressions(dashboard).values(), *(rule["expr"] for rule in rules)]
    rule_tests = yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))["tests"]
    queries += [series_["series"] for test in rule_tests for series_ in test["input_series"]]
    queries += [check["expr"] for test in rule_tests for check in test.get("promql_expr_test", [])]
    queried = {name for query in queries for name in METRIC.findall(query)}
    assert len(queried) >= 15
    unknown = sorted(queried - series)
    assert not unknown, f"queries name series lanai does not export: {unknown}"
    # Prose (descriptions, annotations, comments) may name a histogram or counter by its family name.
    prose = {name for text in (DASHBOARD, RULES, RULE_TESTS) for name in METRIC.findall(text.read_text("utf-8"))}
    unknown = sorted(prose - families)
    assert not unknown, f"descriptions name metrics lanai does not export: {unknown}"
    # and every recording rule an expression uses is one the rules record
    recorded = {rule["record"] for rule in rules if "record" in rule}
    used = {name for query in queries for name in RECORDED.findall(query)}
    assert used <= recorded, f"recording rules used but not recorded: {sorted(used - recorded)}"
