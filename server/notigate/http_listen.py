"""Serving an aiohttp application on the gateway's event loop (the metrics endpoint, the
dashboard)."""

from __future__ import annotations

from aiohttp import web

__all__ = ["serve"]


async def serve(
    app: web.Application, listen: str, *, shutdown_timeout_s: float = 1.0
) -> web.AppRunner:
    """Bind ``host:port`` (port 0 picks a free one: ``runner.addresses``) and serve ``app``;
    the caller stops it with ``runner.cleanup()``. A bind that fails leaves nothing behind."""
    host, _, port = listen.rpartition(":")
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, shutdown_timeout=shutdown_timeout_s
    )
    await runner.setup()
    try:
        await web.TCPSite(runner, host.strip("[]"), int(port)).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner
