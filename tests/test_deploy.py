"""deploy/, the Dockerfile and the README's settings stay consistent with the code
(docker itself cannot run here); the Grafana dashboard and the Prometheus alert rules name
only metrics and labels a running gateway exports."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from notigate.config import ENV_VARS, Settings
from notigate.embedded import EmbeddedValkey
from notigate.simulator import BotApiSimulator
from notigate_client import pb
from notigate_client.cli import parser
from tests.conftest import gateway_settings, running_gateway, wait_for, wait_state
from tests.test_metrics import scrape

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "deploy" / "grafana" / "notigate.json"
ALERT_RULES = ROOT / "deploy" / "prometheus" / "notigate-alerts.yml"


def test_dockerfile_healthcheck_is_a_valid_notigate_health_command() -> None:
    text = (ROOT / "Dockerfile").read_text()
    match = re.search(r"HEALTHCHECK[^\n]*\\\n\s*CMD (\[.*\])", text)
    assert match, "HEALTHCHECK CMD in exec form not found"
    argv = json.loads(match[1])
    assert argv[:2] == ["notigate", "health"]
    args = parser({}).parse_args(argv[1:])
    assert args.command == "health" and args.target == "127.0.0.1:50051"


def test_manifests_parse_and_keep_the_essentials() -> None:
    compose = yaml.safe_load((ROOT / "deploy" / "docker-compose.yml").read_text())
    redis_cmd = compose["services"]["redis"]["command"]
    assert redis_cmd[redis_cmd.index("--maxmemory-policy") + 1] == "noeviction"
    assert redis_cmd[redis_cmd.index("--appendonly") + 1] == "yes"
    docs = list(yaml.safe_load_all((ROOT / "deploy" / "k8s" / "notigate.yaml").read_text()))
    [deployment] = [d for d in docs if d["kind"] == "Deployment"]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["readinessProbe"]["grpc"] == {"port": 50051}
    list(yaml.safe_load_all((ROOT / "deploy" / "k8s" / "redis.yaml").read_text()))
    cluster_docs = (ROOT / "deploy" / "k8s" / "notigate-redis-cluster.yaml").read_text()
    [on_cluster] = [d for d in yaml.safe_load_all(cluster_docs) if d["kind"] == "Deployment"]
    [cluster_container] = on_cluster["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in cluster_container["env"]}
    assert env["NOTIGATE_REDIS_CLUSTER"] == "1" and "REDIS_URL" not in env
    assert set(env) <= set(ENV_VARS)


def test_readme_documents_every_environment_variable() -> None:
    readme = (ROOT / "README.md").read_text()
    assert [name for name in ENV_VARS if f"`{name}`" not in readme] == []


# -- the Grafana dashboard and the Prometheus alert rules ---------------------------------

# Gauges the gateway is to export (with these labels) that a gateway of this tree may not yet:
# taken from the exposition as soon as it has them, from here only until then.
PENDING: dict[str, frozenset[str]] = {}
# Labels Prometheus adds to every series it scrapes.
TARGET_LABELS = frozenset({"instance", "job"})

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_NAME = re.compile(r"\b((?:notigate|grpc_server)_[A-Za-z0-9_]*[A-Za-z0-9])\b")
_SELECTOR = re.compile(r"\b((?:notigate|grpc_server)_[A-Za-z0-9_]+)\s*\{([^}]*)\}")
_MATCHER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)")
_LABEL_VALUES = re.compile(r"label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)\s*,\s*(\w+)\s*\)")
_TEMPLATE_LABEL = re.compile(r"\$labels\.(\w+)")


async def _exported(valkey: EmbeddedValkey, simulator: BotApiSimulator) -> dict[str, set[str]]:
    """Every series name a running gateway exports, with the labels it carries."""
    settings = gateway_settings(valkey, simulator, metrics_listen="127.0.0.1:0")
    async with running_gateway(settings) as (gw, stub):
        # One delivery: Telegram has answered (the token gauge) and every bot series exists.
        job_id = (await stub.Send(pb.SendRequest(chat_id="1", text="hi"))).job_id
        await wait_state(stub, job_id, pb.JOB_STATE_COMPLETED)

        async def complete() -> bool:
            names = {name for name, _ in await scrape(gw.metrics_port)}
            return {"notigate_queue_jobs", "notigate_bot_token_valid"} <= names

        await wait_for(complete, timeout_s=20)
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{gw.metrics_port}/metrics") as resp,
        ):
            text = await resp.text()
        # A labelled metric nothing has counted yet (a task restart) has no series, only
        # its TYPE line: its labels are the metric's own.
        declared = {
            metric._name: set(metric._labelnames)
            for metric in vars(gw.metrics).values()
            if isinstance(metric, MetricWrapperBase)
        }
    labels: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels.setdefault(sample.name, set()).update(sample.labels)
        if not family.samples:
            own = declared[family.name]
            suffixes = {
                "counter": {"_total": own},
                "histogram": {"_bucket": own | {"le"}, "_sum": own, "_count": own},
            }.get(family.type, {"": own})
            for suffix, names in suffixes.items():
                labels[family.name + suffix] = names
    return labels


def _exprs(node: Any) -> Iterator[str]:
    """Every PromQL query of a Grafana dashboard (panel targets, nested rows too)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr" and isinstance(value, str):
                yield value
            else:
                yield from _exprs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _exprs(item)


def _unknown(expr: str, known: dict[str, frozenset[str]]) -> list[str]:
    """What ``expr`` names that the gateway does not export: metrics, and labels of them."""
    bare = _STRING.sub('""', expr)
    problems = [f"metric {name}" for name in _NAME.findall(bare) if name not in known]
    used: set[str] = set()
    for name, matchers in _SELECTOR.findall(bare):
        for label in _MATCHER.findall(matchers):
            if label not in known.get(name, frozenset()):
                problems.append(f"label {label} of {name}")
        used.add(name)
    on_some = set().union(*(known.get(name, frozenset()) for name in _NAME.findall(bare)))
    for group in _GROUPING.findall(bare):
        for label in filter(None, (g.strip() for g in group.split(","))):
            if label not in on_some:
                problems.append(f"grouping label {label}")
    return problems


def _alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(ALERT_RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


async def test_dashboard_and_alert_rules_use_only_exported_metrics(
    redis: Redis, valkey: EmbeddedValkey, simulator: BotApiSimulator
) -> None:
    found = await _exported(valkey, simulator)
    known = {name: frozenset(labels) | TARGET_LABELS for name, labels in found.items()}
    for name, labels in PENDING.items():
        known.setdefault(name, labels | TARGET_LABELS)
    assert "notigate_jobs_delivered_total" in known  # the scrape really read the gateway

    dashboard = json.loads(DASHBOARD.read_text())
    exprs = list(_exprs(dashboard["panels"]))
    assert len(exprs) >= 10
    for expr in exprs:
        assert _unknown(expr, known) == [], expr
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    bot_query = variables["bot"]["definition"]
    [(metric, label)] = _LABEL_VALUES.findall(bot_query)
    assert (metric, label) == ("notigate_queue_jobs", "bot") and label in known[metric]

    rules = _alert_rules()
    for rule in rules:
        assert _unknown(rule["expr"], known) == [], rule["alert"]
        # A template may name only labels the alert's series carry.
        bare = _STRING.sub('""', rule["expr"])
        carried = set().union(*(known[name] for name in _NAME.findall(bare)))
        for text in rule["annotations"].values():
            assert set(_TEMPLATE_LABEL.findall(text)) <= carried, (rule["alert"], text)


def test_the_dashboard_is_an_importable_grafana_dashboard() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert 36 <= dashboard["schemaVersion"] <= 41
    assert dashboard["uid"] == "notigate"
    panels = dashboard["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    bot = next(v for v in dashboard["templating"]["list"] if v["name"] == "bot")
    assert bot["multi"] and bot["includeAll"] and bot["allValue"] == ".*"
    for panel in panels:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
    # Per-bot panels filter on the variable: every bot series is selected with it.
    for expr in _exprs(panels):
        for name, matchers in _SELECTOR.findall(expr):
            if name.startswith(("notigate_jobs_", "notigate_queue_", "notigate_bot_")):
                assert 'bot=~"$bot"' in matchers, expr
    titles = " ".join(panel["title"] for panel in panels)
    for shown in (
        "Delivered / s",
        "429s / s",
        "Failed / s",
        "Queue depth",
        "Dispatchers",
        "Alerts",
    ):
        assert shown in titles


def test_alert_rules_restate_the_gateways_own_alerts() -> None:
    rules = {rule["alert"]: rule for rule in _alert_rules()}
    assert len(rules) == len(_alert_rules())
    for name, rule in rules.items():
        assert re.fullmatch(r"\d+[smh]", rule["for"]), name
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
    # With the gateway's default thresholds, so both say the same thing.
    defaults = Settings()
    window = f"[{defaults.alert_failure_window_s // 60}m]"
    failure = rules["NotigateFailureRateHigh"]["expr"]
    assert f"> {defaults.alert_failure_rate}" in failure
    assert f">= {defaults.alert_failure_min_jobs}" in failure
    assert window in failure and "notigate_jobs_delivered_total" in failure
    backlog = rules["NotigateBacklogOld"]["expr"]
    assert backlog.strip().endswith(f"> {defaults.alert_backlog_age_s}")
    assert "notigate_queue_oldest_waiting_age_seconds" in backlog
    assert "notigate_dispatchers" in rules["NotigateNoDispatcher"]["expr"]
    assert "notigate_bot_token_valid" in rules["NotigateBotTokenRejected"]["expr"]
    assert "notigate_alert_firing" in rules["NotigateGatewayAlert"]["expr"]
