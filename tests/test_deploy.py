"""deploy/, the Dockerfile and the README's settings stay consistent with the code
(docker itself cannot run here)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from notigate.config import ENV_VARS
from notigate_client.cli import parser

ROOT = Path(__file__).resolve().parent.parent


def test_dockerfile_healthcheck_is_a_valid_notigate_health_command() -> None:
    text = (ROOT / "Dockerfile").read_text()
    match = re.search(r"HEALTHCHECK[^\n]*\\\n\s*CMD (\[.*\])", text)
    assert match, "HEALTHCHECK CMD in exec form not found"
    argv = json.loads(match[1])
    assert argv[:2] == ["notigate", "health"]
    args = parser({}).parse_args(argv[1:])
    assert args.command == "health" and args.target == "127.0.0.1:50051"


def test_manifests_parse_and_keep_the_essentials() -> None:
    yaml = pytest.importorskip("yaml")  # PyYAML is not a dependency; checked where present
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
