"""The client package imports without the server's dependencies."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_client_imports_without_server_deps() -> None:
    code = textwrap.dedent(
        """
        import sys
        # None in sys.modules makes any import of these raise ImportError.
        for name in ("redis", "telegram", "aiohttp", "notigate"):
            sys.modules[name] = None
        import notigate_client
        from notigate_client import AsyncNotificationClient, NotificationClient, pb, pb_grpc
        from notigate_client.errors import InvalidArgumentError
        assert pb.SendRequest(chat_id="1").chat_id == "1"
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_the_gateway_uses_the_clients_public_modules_only() -> None:
    """The stubs are the client's private layout: the gateway goes through ``pb``/``pb_grpc``."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "server"
    offenders = [
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if "notigate_client._" in path.read_text()
    ]
    assert offenders == []
