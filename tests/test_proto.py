"""The API contract: committed stubs match the .proto, and buf lint/build pass.

buf comes from npm (`npm ci` installs node_modules/.bin/buf from package-lock.json); these
tests fail rather than skip without it, so CI cannot silently stop linting the contract.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "client" / "notigate_client" / "_proto"
BUF = ROOT / "node_modules" / ".bin" / "buf"


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def _buf(*args: str) -> subprocess.CompletedProcess[str]:
    assert BUF.exists(), f"{BUF} is missing: run `npm ci` at the repository root"
    return subprocess.run(
        [str(BUF), *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def test_committed_stubs_are_fresh(tmp_path: Path) -> None:
    out = tmp_path / "_proto"
    subprocess.run(
        [sys.executable, str(ROOT / "tools" / "gen_proto.py"), str(out)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    fresh, committed = _files(out), _files(COMMITTED)
    assert sorted(fresh) == sorted(committed), "generated file set differs"
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"stale stubs {stale}: run `python tools/gen_proto.py`"


def test_buf_lint() -> None:
    result = _buf("lint")
    assert result.returncode == 0, result.stdout + result.stderr


def test_buf_build() -> None:
    result = _buf("build", "-o", "-#format=json")
    assert result.returncode == 0, result.stderr
    assert '"notigate/v1/notification.proto"' in result.stdout
