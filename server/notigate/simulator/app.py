"""The simulator's HTTP server: :class:`BotApiSimulator` and :func:`run_simulator`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from aiohttp import web

from notigate.simulator.botapi import STATE_KEY, handle_bot_api
from notigate.simulator.config import SimulatorConfig
from notigate.simulator.control import add_control_routes
from notigate.simulator.state import SimulatorState

__all__ = ["BotApiSimulator", "build_app", "run_simulator"]

_LOG = logging.getLogger(__name__)
# Uploads through sendDocument may exceed aiohttp's 1 MiB default.
_MAX_BODY = 50 * 1024 * 1024


def build_app(state: SimulatorState) -> web.Application:
    """An aiohttp application serving the Bot API and the ``/_sim`` control endpoints."""
    app = web.Application(client_max_size=_MAX_BODY)
    app[STATE_KEY] = state
    app.router.add_route("*", "/bot{token}/{method}", handle_bot_api)
    add_control_routes(app)
    return app


class BotApiSimulator(SimulatorState):
    """A Telegram Bot API look-alike on a real HTTP port.

    Example::

        sim = BotApiSimulator(tokens=["123456:TEST-TOKEN"], config=SimulatorConfig())
        await sim.start(host="127.0.0.1", port=0)
        bot = telegram.Bot(token, base_url=f"{sim.base_url}/bot")
        ...
        await sim.stop()
    """

    def __init__(self, tokens: Iterable[str], config: SimulatorConfig | None = None) -> None:
        super().__init__(tokens, config)
        self._runner: web.AppRunner | None = None
        self._host = ""
        self._port: int | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Bind and start serving; ``port=0`` picks a free port (see :attr:`port`)."""
        if self._runner is not None:
            raise RuntimeError("simulator already started")
        # No access log: it costs more than the request itself at benchmark rates.
        runner = web.AppRunner(build_app(self), access_log=None, handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.readers_may_wait = True
        self._host = host
        self._port = int(runner.addresses[0][1])

    @property
    def port(self) -> int:
        """The bound TCP port."""
        if self._port is None:
            raise RuntimeError("simulator not started")
        return self._port

    @property
    def base_url(self) -> str:
        """Bot API root: requests go to ``f"{base_url}/bot{token}/{method}"``."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    async def stop(self) -> None:
        """Stop serving and close open connections."""
        runner, self._runner = self._runner, None
        self._port = None
        # Waiting long polls would hold up the runner's cleanup for up to a minute.
        self.release_readers()
        if runner is not None:
            await runner.cleanup()


async def run_simulator(host: str, port: int, tokens: list[str], config: SimulatorConfig) -> None:
    """Serve a simulator until the calling task is cancelled."""
    sim = BotApiSimulator(tokens=tokens, config=config)
    await sim.start(host=host, port=port)
    _LOG.info("Bot API simulator listening on %s (%d tokens)", sim.base_url, len(tokens))
    try:
        await asyncio.Event().wait()
    finally:
        await sim.stop()
